"""`finetune_run`: fine-tunes the model of a run directory into a new run directory that records its parent.

The recipe behind `tfllm finetune`. Three tasks (`FinetuneConfig.task`), each one of the recipes of
`tfllm.training.finetune`:

- "continue": more pretraining on another corpus (`data` is a corpus name or path, as `load_corpus` takes it);
  reports the exact validation loss and bits per byte of that corpus.
- "sft": supervised fine-tuning on prompt/completion pairs (`data` is a JSONL or CSV file with `prompt` and
  `completion`, or "qa" for the embedded question/answer pairs, asked through `QUESTION_ANSWER_TEMPLATE`, which
  is saved with the model so that `tfllm generate` takes a plain question); the loss falls on completions only.
  Reports the validation loss on held-out pairs and the share of them whose greedy completion is exactly the
  reference.
- "classify": a `SequenceClassifier` on the model (`data` is a JSONL or CSV file with `text` and `label`); reports
  the held-out accuracy against always answering the most frequent class.

Held-out data comes from tfllm's split rule (`tfllm.data.split_of`) on each record's text: train for training,
validation and test for the report. The new run is a "finetune" run of `tfllm.training.run_directory` (which lists
its files): `finetune.json` records the config and the parent, then come `model.keras` (a `SequenceClassifier` for
"classify"), `history.json` (one entry per `log_every` steps), `samples.txt` ("sft": held-out prompts, references
and the model's completions) and, last, `metrics.json`. A fine-tuning run is short and has no checkpoints: an
unfinished one is refused (naming the problem, suggesting overwrite) rather than resumed.

With `lora_rank` ("continue" and "sft" on a Transformer), only a LoRA adapter trains (`tfllm.models.lora`): the run
stores `adapter.weights.h5` in place of `model.keras`, and `load_run` rebuilds its model from the parent run's,
which must stay where it was. A parent that is itself a LoRA run has its adapter merged first, as has any parent of
a full fine-tuning. `metrics.json` counts the trainable and total parameters (and the adapter's bytes).
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from tfllm.data import QUESTION_ANSWER_TEMPLATE, PromptTemplate, load_texts, question_answer_records, split_of
from tfllm.data.records import read_records
from tfllm.evaluation import evaluate_texts
from tfllm.models.lora import merge_lora, parameter_counts
from tfllm.training.config import QUESTION_ANSWER_DATA, FinetuneConfig, absolute_data_path
from tfllm.training.finetune import continue_pretraining, supervised_finetune, train_classifier
from tfllm.training.run_directory import HISTORY, METRICS, SAMPLES, RunDirectory, RunDirectoryError, load_run
from tfllm.training.strategies import barrier, is_chief


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What `finetune_run` returns: the run directory, its config, the fine-tuned model and the metrics.

    Attributes:
        run_dir: the fine-tuned run's directory (`load_run(run_dir)` reads it back).
        config: the `FinetuneConfig` it ran, its data path made absolute.
        model: the fine-tuned model.
        metrics: the contents of `metrics.json`: the task, steps, records and train loss, and the task's own
            (held-out loss, perplexity and bits per byte for "continue"; exact match for "sft"; accuracy and the
            majority baseline for "classify"). Empty on the other workers of a multi-worker job.

    Example (a two-step pretraining run, then two steps of supervised fine-tuning on the embedded questions):

    >>> import json, os, tempfile
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.training import RunConfig, pretrain
    >>> folder = tempfile.mkdtemp()
    >>> corpus = os.path.join(folder, "verses.txt")  # the 80 verses of Genesis 1-3, a paragraph each
    >>> with open(corpus, "w") as file:
    ...     file.writelines(verse + "\\n\\n" for chapter in kjv_chapters()[:3] for verse in chapter.text.splitlines())
    >>> parent = pretrain(RunConfig.default(
    ...     "lstm", model={"hidden_dim": 8}, data={"corpus": corpus, "tokenizer": "byte"},
    ...     train={"steps": 2, "batch_size": 2, "sequence_length": 8, "eval_every": 2, "validation_steps": 1,
    ...            "sample_prompts": ["In"], "sample_tokens": 1}), os.path.join(folder, "kjv"), verbose=0,
    ...     peak_flops=1e11)
    >>> result = finetune_run(parent.run_dir, FinetuneConfig("sft", "qa", steps=2, batch_size=4),
    ...                       os.path.join(folder, "kjv-qa"), verbose=0)
    >>> result.config.data, result.metrics["task"], result.metrics["steps"], 0 <= result.metrics["exact_match"] <= 1
    ('qa', 'sft', 2, True)
    >>> with open(os.path.join(result.run_dir, "metrics.json")) as file:  # the metrics are metrics.json's
    ...     result.metrics == json.load(file)
    True
    >>> load_run(result.run_dir).model.count_params() == result.model.count_params()  # the model the run saved
    True
    """

    run_dir: str
    config: FinetuneConfig
    model: object
    metrics: dict


def finetune_run(parent_dir, config, run_dir, overwrite=False, verbose=1, strategy=None):
    """Fine-tunes the model of the complete run `parent_dir` as `config` says, into the new run `run_dir`.

    Args:
        parent_dir: a complete run directory (pretraining, or an earlier "continue" or "sft" fine-tuning).
        config: a `FinetuneConfig`. A data path relative to the working directory is recorded as an absolute path.
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
    ValueError: finetune.data='qa' holds prompt/completion pairs, not labelled texts: expected a JSONL or CSV ...
    >>> parent = RunDirectory(tempfile.mkdtemp())
    >>> parent.start(RunConfig.default("lstm"), "new")  # a pretraining run that has not finished
    >>> run_dir = os.path.join(tempfile.mkdtemp(), "qa")
    >>> finetune_run(parent.path, FinetuneConfig("sft", "qa"), run_dir)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ... holds an unfinished run: model.keras, loss_curve.png, ...
    """
    started = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    config = dataclasses.replace(config, data=absolute_data_path(config.data))  # the run records where its data is
    config.validate(num_replicas=strategy.num_replicas_in_sync)
    writer = is_chief(strategy)
    run = RunDirectory(run_dir, "finetune")
    if os.path.abspath(run.path) == os.path.abspath(parent_dir):
        raise RunDirectoryError(f"{run.path} is the parent run: the fine-tuned run needs a directory of its own")
    with strategy.scope():
        parent = load_run(parent_dir)
        if parent.is_classifier:
            raise RunDirectoryError(f"{parent.path} holds a classifier: fine-tune a language-model run instead")
        model = _model_to_train(parent.model, config)
    plan = run.plan(config, overwrite)
    data = _split(config)
    _say(verbose, f"Fine-tuning {parent.path} ({config.task}) on {config.data}: {len(data.train):,} training and "
                  f"{len(data.heldout):,} held-out records, {config.steps} steps")
    barrier(strategy)  # every worker has checked the directory before the chief changes it
    if writer:
        run.start(config, plan, parent=parent)
    barrier(strategy)  # the chief has started the directory before the others read it
    if not writer:
        run.require_chief_config(config)
    try:
        with strategy.scope():
            model, label_names, history = _train(config, model, parent, data, verbose if writer else 0)
    except (ValueError, FileNotFoundError):  # bad input: an unfinished fine-tuning (it does not resume) would block
        if writer:  # the corrected command
            run.abandon()
        raise
    if not writer:
        return FinetuneResult(run.path, config, model, {})

    samples = None
    if config.task == "continue":
        result = evaluate_texts(model, data.heldout)
        metrics = {"validation_loss": result.loss, "validation_perplexity": result.perplexity,
                   "bits_per_byte": result.bits_per_byte, "validation_tokens": result.tokens}
    elif config.task == "sft":
        metrics, samples = _sft_report(model, data.heldout, data.template, history)
    else:
        metrics = _classifier_report(model, label_names, data.heldout)
    if config.lora_rank is None:
        run.save_model(model)
        stored = parameter_counts(model)
    else:
        stored = {**parameter_counts(model), "adapter_bytes": run.save_adapter(model, parent.path)}
    run.write_json(HISTORY, {key: [float(value) for value in values] for key, values in history.history.items()})
    if samples is not None:
        run.write_text(SAMPLES, samples)
    metrics = {"task": config.task, "steps": config.steps, "train_records": len(data.train),
               "heldout_records": len(data.heldout), "train_loss": float(history.history["loss"][-1]), **metrics,
               **stored, "wall_time_seconds": time.perf_counter() - started}
    run.write_json(METRICS, metrics)  # last: its presence marks the run complete
    _say(verbose, "Fine-tuned: " + ", ".join(f"{key} {value:.4g}" for key, value in metrics.items()
                                              if isinstance(value, float)) + f". Run directory: {run.path}")
    return FinetuneResult(run.path, config, model, metrics)


def _model_to_train(model, config):
    """The parent's model ready to fine-tune: its LoRA adapter, if it has one, merged; then, for a LoRA run, a new
    adapter of `config.lora_rank` on it (a `ValueError` for a model LoRA cannot adapt, before any work)."""
    model = merge_lora(model)
    if config.lora_rank is not None:
        model.enable_lora(config.lora_rank, config.lora_alpha)
    return model


def _train(config, model, parent, data, verbose):
    """Trains `model` (the parent's) by the recipe of `config.task`: `(model, label_names, history)`; the model is a
    new `SequenceClassifier` for "classify" (and `label_names` None for the other tasks)."""
    common = {"steps": config.steps, "batch_size": config.batch_size, "learning_rate": config.learning_rate,
              "seed": config.seed, "verbose": verbose,
              "sequence_length": config.sequence_length or parent.sequence_length}
    if config.task == "continue":
        return model, None, continue_pretraining(model, data.train, validation_texts=data.heldout, **common)
    if config.task == "sft":
        return model, None, supervised_finetune(model, data.train, validation_pairs=data.heldout,
                                                template=data.template, **common)
    return train_classifier(model, data.train, validation_examples=data.heldout, **common)


def evaluate_classifier(run):
    """The held-out accuracy of a classifier run (a `LoadedRun`) and the majority baseline, computed anew from its
    data."""
    if not run.is_classifier:
        raise ValueError(f"{run.path} holds a {run.kind} run, not a classifier: expected a run fine-tuned with the "
                         "task 'classify' (tfllm finetune RUN_DIR --task classify --data PATH)")
    heldout = _split(run.config).heldout
    return {"data": run.config.data, "heldout_records": len(heldout),
            **_classifier_report(run.model, run.metrics["label_names"], heldout)}


@dataclasses.dataclass(frozen=True)
class _Split:
    train: list
    heldout: list
    template: PromptTemplate | None = None  # how "sft" records become prompt and completion (None: they are pairs)


def _split(config):
    """The training and held-out records of the task's data."""
    if config.task == "continue":
        return _Split(load_texts(config.data, "train"), load_texts(config.data, "validation"))
    if config.data == QUESTION_ANSWER_DATA:
        return _Split(question_answer_records("train"), question_answer_records("validation"),
                      QUESTION_ANSWER_TEMPLATE)
    fields = ("prompt", "completion") if config.task == "sft" else ("text", "label")
    columns = read_records(config.data, fields, "prompt/completion pairs" if config.task == "sft" else "labelled texts",
                           text_fields=fields if config.task == "sft" else fields[:1])  # a label may be a number
    records = [dict(zip(fields, values)) for values in zip(*columns)]
    train = [record for record in records if split_of(record[fields[0]]) == "train"]
    heldout = [record for record in records if split_of(record[fields[0]]) != "train"]
    if not train or not heldout:
        raise ValueError(
            f"{config.data} has {len(train)} training and {len(heldout)} held-out records after the 90/5/5 split of "
            f"their {fields[0]}s: expected some of each (about 20 records or more)"
        )
    return _Split(train, heldout)


def _sft_report(model, records, template, history, limit=64):
    """Validation loss and the exact-match rate of greedy completions on up to `limit` held-out records (the model
    wraps each in its prompt template, as `tfllm generate` does)."""
    records = records[:limit]
    template = template or PromptTemplate()  # pairs: {"prompt", "completion"} as they are
    prompts = [template.format_prompt(record) for record in records]
    references = [template.segments(record)[-1][0] for record in records]
    completions = model.generate(prompts, max_new_tokens=_answer_budget(model, references), strip_prompt=True,
                                 apply_template=False)
    matches = [completion.strip() == reference.strip() for completion, reference in zip(completions, references)]
    lines = []
    for prompt, reference, completion, match in zip(prompts, references, completions, matches):
        lines += [f"--- prompt: {prompt!r}", f"reference: {reference}",
                  f"model ({'exact' if match else 'differs'}): {completion}"]
    metrics = {"exact_match": float(np.mean(matches)), "exact_match_samples": len(records)}
    if "val_loss" in history.history:
        metrics["validation_loss"] = float(history.history["val_loss"][-1])
    return metrics, "\n".join(lines) + "\n"


def _answer_budget(model, references):
    """New tokens for completions: the longest reference's, plus room, within a Transformer's context."""
    longest = max(len(ids) for ids in model.tokenizer.tokenize(references).to_list())
    budget = longest + 8
    if model.max_sequence_length is not None:
        budget = min(budget, model.max_sequence_length // 2)
    return max(budget, 1)


def _classifier_report(classifier, label_names, examples):
    """Held-out accuracy, and the accuracy of always answering the most frequent held-out label."""
    labels = np.asarray([label_names.index(str(example["label"])) for example in examples])
    predicted = np.asarray(classifier.predict_texts([example["text"] for example in examples]))
    majority = np.bincount(labels, minlength=len(label_names)).max() / len(labels)
    return {"accuracy": float(np.mean(predicted == labels)), "majority_baseline": float(majority),
            "label_names": list(label_names)}


def _say(verbose, message):
    if verbose:
        print(message, flush=True)
