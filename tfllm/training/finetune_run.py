"""`finetune_run`: fine-tunes the model of a run directory into a new run directory that records its parent.

The recipe behind `tfllm finetune`. Three tasks, each one of the recipes of `tfllm.training.finetune`:

- "continue": more pretraining on another corpus (`data` is a corpus name or path, as `load_corpus` takes it);
  reports the exact validation loss and bits per byte of that corpus.
- "sft": supervised fine-tuning on prompt/completion pairs (`data` is a JSONL or CSV file with `prompt` and
  `completion`, or "qa" for the embedded question/answer pairs); the loss falls on completions only. Reports the
  validation loss on held-out pairs and the share of them whose greedy completion is exactly the reference.
- "classify": a `SequenceClassifier` on the model (`data` is a JSONL or CSV file with `text` and `label`); reports
  the held-out accuracy against always answering the most frequent class.

Held-out data comes from tfllm's split rule (`tfllm.data.split_of`) on each record's text: train for training,
validation and test for the report. The run directory:

```
run_dir/
  run.json         kind "finetune", the run format and the tfllm version
  finetune.json    the FinetuneConfig, the parent run directory and the parent's config
  model.keras      the fine-tuned model (a SequenceClassifier for "classify"), tokenizer inside
  history.json     the Keras history (one entry per `log_every` steps)
  samples.txt      "sft": held-out prompts, the references and the model's completions
  metrics.json     the final numbers, written last: the run is complete when it exists
```

A fine-tuning run is short and has no checkpoints: an unfinished one is refused (name the problem, suggest
overwrite) rather than resumed.
"""

import dataclasses
import json
import os
import shutil
import time

import numpy as np
import tensorflow as tf

from tfllm.checks import require_choice, require_positive_int
from tfllm.data import load_texts, question_answer_pairs, split_of
from tfllm.data.records import read_records
from tfllm.training.atomic import atomic_path, atomic_write_text
from tfllm.training.evaluation import evaluate_texts
from tfllm.training.finetune import continue_pretraining, supervised_finetune, train_classifier
from tfllm.training.run_directory import (
    MODEL,
    RUN,
    RunDirectory,
    RunDirectoryError,
    load_model_file,
    load_run,
    write_run_marker,
)
from tfllm.training.strategies import barrier, is_chief

TASKS = ("continue", "sft", "classify")
FINETUNE = "finetune.json"
METRICS = "metrics.json"
HISTORY = "history.json"
SAMPLES = "samples.txt"


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
    """What to fine-tune on, and how.

    Attributes:
        task: "continue", "sft" or "classify".
        data: the corpus ("continue"), the prompt/completion pairs or "qa" ("sft"), the labelled texts
            ("classify"); see the module.
        steps: optimizer steps.
        batch_size: sequences per step.
        sequence_length: tokens per sequence; None: the parent's training length.
        learning_rate: the peak learning rate (warmup, then cosine decay for "continue" and "sft"; constant for
            "classify").
        seed: seeds the weights of a new head and the data order.

    Example:

    >>> FinetuneConfig("sft", "qa", steps=200).validate()  # "qa": the embedded question/answer pairs
    FinetuneConfig(task='sft', data='qa', steps=200, batch_size=16, sequence_length=None, learning_rate=0.001, seed=0)
    >>> FinetuneConfig("translate", "qa").validate()
    Traceback (most recent call last):
    ...
    ValueError: task='translate' is invalid: expected one of 'continue', 'sft', 'classify'.
    """

    task: str
    data: str
    steps: int = 300
    batch_size: int = 16
    sequence_length: int | None = None
    learning_rate: float = 1e-3
    seed: int = 0

    def validate(self):
        """Checks every value before any work; a `ValueError` names the first bad one. Returns the config."""
        require_choice("task", self.task, TASKS)
        if not isinstance(self.data, str) or not self.data:
            raise ValueError(f"data={self.data!r} is invalid: expected a corpus name or a file path")
        require_positive_int("steps", self.steps)
        require_positive_int("batch_size", self.batch_size)
        if self.sequence_length is not None:
            require_positive_int("sequence_length", self.sequence_length)
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate!r} is invalid: expected a number > 0")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is invalid: expected an integer >= 0")
        if self.task in ("sft", "classify") and self.data != "qa" and not os.path.isfile(self.data):
            raise ValueError(f"data={self.data!r} does not exist: expected a JSONL or CSV file"
                             + (" (or 'qa', the embedded question/answer pairs)" if self.task == "sft" else ""))
        if self.task == "classify" and self.data == "qa":
            raise ValueError("data='qa' holds prompt/completion pairs, not labelled texts: expected a JSONL or CSV "
                             "file with text and label")
        return self


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What `finetune_run` returns: the run directory, its config, the fine-tuned model and the metrics.

    Example (made by hand here; `finetune_run`'s example gets one from a run):

    >>> result = FinetuneResult("runs/kjv-qa", FinetuneConfig("sft", "qa"), model=None, metrics={"exact_match": 0.25})
    >>> result.config.task, result.metrics["exact_match"]
    ('sft', 0.25)
    """

    run_dir: str
    config: FinetuneConfig
    model: object
    metrics: dict


def finetune_run(parent_dir, config, run_dir, overwrite=False, verbose=1, strategy=None):
    """Fine-tunes the model of the complete run `parent_dir` as `config` says, into the new run `run_dir`.

    Args:
        parent_dir: a complete run directory (pretraining, or an earlier "continue" or "sft" fine-tuning).
        config: a `FinetuneConfig`.
        run_dir: where the fine-tuned run goes; it must not exist (or be empty) unless `overwrite`.
        overwrite: replace a run already in `run_dir`.
        verbose: 0 silent, 1 progress bars.
        strategy: a `tf.distribute.Strategy`; the model is loaded, compiled and trained in its scope, and only the
            chief of a multi-worker job writes. None uses the current one.

    Returns:
        A `FinetuneResult` (with empty metrics on the other workers of a multi-worker job).

    Raises:
        ValueError: a bad config or data (naming the field, the file and the line).
        RunDirectoryError: `parent_dir` is not a complete language-model run, or `run_dir` cannot be used.

    In practice: `finetune_run("runs/kjv", FinetuneConfig("sft", "qa", steps=200), "runs/kjv-qa")`.

    Example (what is refused before any work; a tiny pretraining run and its fine-tuning take some ten seconds, so
    they are left to the tests):

    >>> import os, tempfile
    >>> from tfllm.training import RunConfig
    >>> finetune_run("runs/kjv", FinetuneConfig("classify", "qa"), "runs/kjv-qa")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data='qa' holds prompt/completion pairs, not labelled texts: expected a JSONL or CSV file ...
    >>> parent = RunDirectory(tempfile.mkdtemp())
    >>> parent.start(RunConfig.default("lstm"), "new")  # a pretraining run that has not finished
    >>> run_dir = os.path.join(tempfile.mkdtemp(), "qa")
    >>> finetune_run(parent.path, FinetuneConfig("sft", "qa"), run_dir)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ... holds an unfinished run: model.keras, loss_curve.png, ...
    """
    started = time.perf_counter()
    config.validate()
    strategy = strategy or tf.distribute.get_strategy()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size={config.batch_size} is not divisible by the number of replicas "
                         f"({strategy.num_replicas_in_sync})")
    writer = is_chief(strategy)
    parent_dir, run_dir = os.path.abspath(os.fspath(parent_dir)), os.fspath(run_dir)
    if os.path.abspath(run_dir) == parent_dir:
        raise RunDirectoryError(f"{run_dir} is the parent run: the fine-tuned run needs a directory of its own")
    with strategy.scope():
        parent_config, model = load_run(parent_dir)
    if isinstance(parent_config, FinetuneConfig) and parent_config.task == "classify":
        raise RunDirectoryError(f"{parent_dir} holds a classifier: fine-tune a language-model run instead")
    _check_directory(run_dir, overwrite)
    sequence_length = config.sequence_length or _training_length(parent_config, model)
    data = _split(config)
    _say(verbose, f"Fine-tuning {parent_dir} ({config.task}) on {config.data}: {len(data.train):,} training and "
                  f"{len(data.heldout):,} held-out records, {config.steps} steps")
    barrier(strategy)  # every worker has checked the directory before the chief changes it
    if writer:
        _start_directory(run_dir)
        write_run_marker(run_dir, "finetune")
        atomic_write_text(os.path.join(run_dir, FINETUNE), json.dumps({
            "config": dataclasses.asdict(config),
            "parent": parent_dir,
            "parent_config": _config_dict(parent_config),
        }, indent=2) + "\n")

    common = {"steps": config.steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
              "seed": config.seed, "verbose": verbose if writer else 0}
    with strategy.scope():
        if config.task == "continue":
            history = continue_pretraining(model, data.train, sequence_length=sequence_length,
                                           validation_texts=data.heldout, **common)
        elif config.task == "sft":
            history = supervised_finetune(model, data.train, sequence_length=sequence_length,
                                          validation_pairs=data.heldout, **common)
        else:
            model, label_names, history = train_classifier(model, data.train, sequence_length=sequence_length,
                                                           validation_examples=data.heldout, **common)
    if not writer:
        return FinetuneResult(run_dir, config, model, {})

    samples = None
    if config.task == "continue":
        result = evaluate_texts(model, data.heldout)
        metrics = {"validation_loss": result.loss, "validation_perplexity": result.perplexity,
                   "bits_per_byte": result.bits_per_byte, "validation_tokens": result.tokens}
    elif config.task == "sft":
        metrics, samples = _sft_report(model, data.heldout, history)
    else:
        metrics = _classifier_report(model, label_names, data.heldout)
    with atomic_path(os.path.join(run_dir, MODEL)) as temporary:
        model.save(temporary)
    _write_json(run_dir, HISTORY, {key: [float(value) for value in values] for key, values in history.history.items()})
    if samples is not None:
        atomic_write_text(os.path.join(run_dir, SAMPLES), samples)
    metrics = {"task": config.task, "steps": config.steps, "train_records": len(data.train),
               "heldout_records": len(data.heldout), "train_loss": float(history.history["loss"][-1]), **metrics,
               "wall_time_seconds": time.perf_counter() - started}
    _write_json(run_dir, METRICS, metrics)  # last: its presence marks the run complete
    _say(verbose, "Fine-tuned: " + ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()
                                              if isinstance(value, float)) + f". Run directory: {run_dir}")
    return FinetuneResult(run_dir, config, model, metrics)


def load_finetune_run(run_dir):
    """The `FinetuneConfig` and model of a complete fine-tuning run (`load_run` calls this for such runs)."""
    missing = [name for name in (FINETUNE, MODEL, HISTORY, METRICS) if not os.path.exists(os.path.join(run_dir, name))]
    if missing:
        raise RunDirectoryError(
            f"{run_dir} holds an unfinished fine-tuning run: {', '.join(missing)} missing. Fine-tuning runs do not "
            "resume: run it again with --overwrite"
        )
    with open(os.path.join(run_dir, FINETUNE), encoding="utf-8") as file:
        try:
            record = json.load(file)
            config = FinetuneConfig(**record["config"])
            precision = record["parent_config"]["train"]["precision"]
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise RunDirectoryError(f"{os.path.join(run_dir, FINETUNE)} is damaged ({error})") from None
    model = load_model_file(os.path.join(run_dir, MODEL), precision)
    if not model.compiled:
        model.compile()
    return config, model


@dataclasses.dataclass(frozen=True)
class _Split:
    train: list
    heldout: list


def _split(config):
    """The training and held-out records of the task's data."""
    if config.task == "continue":
        return _Split(load_texts(config.data, "train"), load_texts(config.data, "validation"))
    if config.data == "qa":
        return _Split(question_answer_pairs("train"), question_answer_pairs("validation"))
    fields = ("prompt", "completion") if config.task == "sft" else ("text", "label")
    columns = read_records(config.data, fields, "prompt/completion pairs" if config.task == "sft" else "labelled texts")
    records = [dict(zip(fields, values)) for values in zip(*columns)]
    train = [record for record in records if split_of(record[fields[0]]) == "train"]
    heldout = [record for record in records if split_of(record[fields[0]]) != "train"]
    if not train or not heldout:
        raise ValueError(
            f"{config.data} has {len(train)} training and {len(heldout)} held-out records after the 90/5/5 split of "
            f"their {fields[0]}s: expected some of each (about 20 records or more)"
        )
    return _Split(train, heldout)


def _sft_report(model, pairs, history, limit=64):
    """Validation loss and the exact-match rate of greedy completions on up to `limit` held-out pairs."""
    pairs = pairs[:limit]
    completions = model.generate([pair["prompt"] for pair in pairs], max_new_tokens=_answer_budget(model, pairs),
                                 strip_prompt=True)
    matches = [completion.strip() == pair["completion"].strip() for completion, pair in zip(completions, pairs)]
    lines = []
    for pair, completion, match in zip(pairs, completions, matches):
        lines += [f"--- prompt: {pair['prompt']!r}", f"reference: {pair['completion']}",
                  f"model ({'exact' if match else 'differs'}): {completion}"]
    metrics = {"exact_match": float(np.mean(matches)), "exact_match_samples": len(pairs)}
    if "val_loss" in history.history:
        metrics["validation_loss"] = float(history.history["val_loss"][-1])
    return metrics, "\n".join(lines) + "\n"


def _answer_budget(model, pairs):
    """New tokens for completions: the longest reference's, plus room, within a Transformer's context."""
    longest = max(len(ids) for ids in model.tokenizer.tokenize([pair["completion"] for pair in pairs]).to_list())
    budget = longest + 8
    if model.max_sequence_length is not None:
        budget = min(budget, model.max_sequence_length // 2)
    return max(budget, 1)


def evaluate_classifier(run_dir, config=None, classifier=None):
    """The held-out accuracy of a "classify" run (and the majority baseline), computed anew from its data."""
    if config is None or classifier is None:
        config, classifier = load_finetune_run(run_dir)
    if config.task != "classify":
        raise ValueError(f"{run_dir} is a {config.task!r} run, not a classifier")
    with open(os.path.join(run_dir, METRICS), encoding="utf-8") as file:
        label_names = json.load(file)["label_names"]
    heldout = _split(config).heldout
    return {"data": config.data, "heldout_records": len(heldout),
            **_classifier_report(classifier, label_names, heldout)}


def _classifier_report(classifier, label_names, examples):
    """Held-out accuracy, and the accuracy of always answering the most frequent held-out label."""
    labels = np.asarray([label_names.index(str(example["label"])) for example in examples])
    predicted = np.asarray(classifier.predict_texts([example["text"] for example in examples]))
    majority = np.bincount(labels, minlength=len(label_names)).max() / len(labels)
    return {"accuracy": float(np.mean(predicted == labels)), "majority_baseline": float(majority),
            "label_names": list(label_names)}


def _training_length(parent_config, model):
    if isinstance(parent_config, FinetuneConfig):
        return parent_config.sequence_length or model.max_sequence_length or 128
    return parent_config.train.sequence_length


def _config_dict(config):
    return dataclasses.asdict(config) if isinstance(config, FinetuneConfig) else config.to_dict()


def _check_directory(run_dir, overwrite):
    """Refuses a `run_dir` that holds something, unless it is a run and `overwrite` (before any work)."""
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        if not os.path.exists(os.path.join(run_dir, RUN)):
            raise RunDirectoryError(f"{run_dir} exists and is not a run directory: choose a new or empty directory")
        if not overwrite:
            raise RunDirectoryError(f"{run_dir} holds a run: use overwrite=True (--overwrite) to replace it, or "
                                    "another directory")


def _start_directory(run_dir):
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        shutil.rmtree(run_dir)  # checked by _check_directory: a run to overwrite
    os.makedirs(run_dir, exist_ok=True)


def _write_json(run_dir, name, values):
    RunDirectory(run_dir).write_json(name, values)  # atomically, NaN as null


def _say(verbose, message):
    if verbose:
        print(message, flush=True)
