"""`pretrain`: trains a language model from a `RunConfig` into a run directory, resuming it if it was interrupted.

The recipe behind `tfllm train`. Steps are batches: a run trains exactly `config.train.steps` of them, whether it
runs in one go or is killed and started again any number of times.

How resuming works. Training state is checkpointed every `checkpoint_every` steps and at the last step
(`StepCheckpoint`: weights, optimizer variables with the iteration count, the step, the loss history; atomic).
Starting the same run again restores the latest checkpoint, step s, and continues from there:

- the training data skips the s batches already seen: each `fit` call gets a new pipeline whose stream depends
  only on the seed (`build_train_batches`), so the batches are those of an uninterrupted run, in every process;
- Keras "epochs" are the validation windows of `eval_every` steps, numbered globally; when s falls inside an
  epoch, a first `fit` call finishes that epoch (its remaining steps, then validation) and the next `fit` calls
  run the following epochs, the last one shorter if `eval_every` does not divide `steps`;
- the progress bar, the loss history, TensorBoard and the samples carry on with the global step.

So the steps trained after a resume are steps s + 1 .. steps, and the optimizer ends with `steps` iterations
(`steps // gradient_accumulation_steps` updates), as in an uninterrupted run.
"""

import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf

from tfllm.training.atomic import atomic_path, atomic_write_text
from tfllm.training.builders import (
    build_model,
    build_texts,
    build_tokenizer,
    build_train_batches,
    build_validation_batches,
    compile_model,
)
from tfllm.training.callbacks import (
    LossHistory,
    NaNGuard,
    RunProgress,
    SampleCallback,
    ScalarLogs,
    StepCheckpoint,
    ThroughputCallback,
)
from tfllm.training.evaluation import evaluate_texts
from tfllm.training.loss_curve import plot_loss_curve
from tfllm.training.memorization import memorization_report
from tfllm.training.run_directory import HISTORY, METRICS, RunDirectory, RunDirectoryError
from tfllm.training.strategies import barrier, is_chief
from tfllm.training.word_share import corpus_words, known_word_share

TOKENIZER_FILE = "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class PretrainResult:
    """What `pretrain` returns.

    Attributes:
        run_dir: the run directory.
        config: the `RunConfig` trained.
        model: the trained model (its tokenizer attached).
        metrics: the contents of `metrics.json`.
        resumed_from_step: the step the run was resumed from (0 for a fresh run).
        history: the loss history (`LossHistory.to_dict()`: every step's loss, every validation's logs).

    Example (made by hand here; `pretrain`'s example gets one from a run):

    >>> result = PretrainResult("runs/first", config=None, model=None, metrics={}, resumed_from_step=0, history={})
    >>> result.paths["model"], result.paths["checkpoints"]
    ('runs/first/model.keras', 'runs/first/checkpoints')
    """

    run_dir: str
    config: object
    model: keras.Model
    metrics: dict
    resumed_from_step: int
    history: dict

    @property
    def paths(self):
        """The files of the run, by name: config, model, metrics, loss_curve, samples, history, checkpoints, logs."""
        run = RunDirectory(self.run_dir)
        return {
            "config": run.config_path,
            "model": run.model_path,
            "metrics": run.metrics_path,
            "loss_curve": run.loss_curve_path,
            "samples": run.samples_path,
            "history": run.history_path,
            "checkpoints": run.checkpoints,
            "logs": run.logs,
        }


def pretrain(config, run_dir, strategy=None, overwrite=False, verbose=1, callbacks=None, peak_flops=None):
    """Pretrains the model of `config` on its corpus and writes the run directory `run_dir`.

    Everything is checked before the long work starts: the config (`config.validate`, including that the global
    batch splits evenly over the strategy's replicas) and the run directory (a complete run is refused unless
    `overwrite`; an unfinished run of the same config is resumed from its last checkpoint; an unfinished run of
    another config is refused, naming the differences).

    Args:
        config: a `RunConfig`.
        run_dir: the run directory (see `tfllm.training.run_directory`).
        strategy: a `tf.distribute.Strategy`; the model, its optimizer and its variables are made in its scope and
            `fit` splits each global batch among its replicas. None uses the current strategy (the default one,
            or the one whose scope is open).
        overwrite: delete a run already in `run_dir` (complete or not) and train anew.
        verbose: 0 silent, 1 progress bars, 2 one line per validation window.
        callbacks: more Keras callbacks, called after the checkpoint of each step.
        peak_flops: the machine's peak FLOP/s for MFU; None measures it (`measure_peak_flops`).

    Returns:
        A `PretrainResult`.

    Raises:
        ValueError: a bad config (naming the field) or a corpus problem.
        RunDirectoryError: `run_dir` cannot be used as asked.
        TrainingDivergedError: the loss became NaN or infinite; the last good checkpoint is kept, and the run is
            left unfinished.
        RunInterrupted: a `KeyboardInterrupt` (Ctrl-C) during training; the step reached is checkpointed first.

    A first real run takes about half a minute on a laptop CPU: `result = pretrain(RunConfig.default("transformer",
    train={"steps": 200}), "runs/first")`, then `result.metrics["bits_per_byte"]`.

    Example (a tiny model, 4 steps on a few verses):

    >>> import json, os, tempfile
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.training import RunConfig
    >>> folder = tempfile.mkdtemp()
    >>> corpus = os.path.join(folder, "verses.jsonl")  # the 80 verses of Genesis 1-3, a document each
    >>> with open(corpus, "w") as file:
    ...     file.writelines(json.dumps({"text": verse}) + "\\n" for chapter in kjv_chapters()[:3]
    ...                     for verse in chapter.text.splitlines())
    >>> config = RunConfig.default(
    ...     "lstm", model={"num_layers": 1, "hidden_dim": 8}, data={"corpus": corpus, "tokenizer": "byte"},
    ...     train={"steps": 4, "batch_size": 4, "sequence_length": 16, "eval_every": 4, "validation_steps": 1,
    ...            "sample_prompts": ["In the beginning"], "sample_tokens": 8})
    >>> result = pretrain(config, os.path.join(folder, "run"), verbose=0, peak_flops=1e11)  # peak given: not measured
    >>> sorted(os.listdir(result.run_dir))  # doctest: +NORMALIZE_WHITESPACE
    ['checkpoints', 'config.json', 'history.json', 'logs', 'loss_curve.png', 'metrics.json', 'model.keras',
     'run.json', 'samples.txt']
    >>> result.metrics["steps"], result.metrics["tokens_seen"], result.resumed_from_step  # 4 steps of 4 x 16 tokens
    (4, 256, 0)
    >>> result.metrics["validation_documents"], result.metrics["validation_bytes"]  # exact, over the whole split
    (3, 268)
    >>> from tfllm.training import load_run
    >>> loaded_config, model = load_run(result.run_dir)  # the config and the trained model, read back
    >>> loaded_config == config, type(model).__name__, model.count_params() == result.model.count_params()
    (True, 'LSTMLM', True)
    >>> pretrain(config, result.run_dir, verbose=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ...run holds a complete run: use overwrite=True (--overwrite) ...
    """
    started = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    config.validate(num_replicas=strategy.num_replicas_in_sync)
    run = RunDirectory(run_dir)
    plan = run.plan(config, overwrite)
    train = config.train
    writer = is_chief(strategy)  # the other workers of a multi-worker job train and write nothing
    barrier(strategy)  # every worker has made its plan before the chief changes the directory
    if not writer:
        verbose = 0
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(train.precision)
    try:
        keras.utils.set_random_seed(train.seed)  # the same on every worker: the data is sharded from one stream
        texts = build_texts(config.data)
        if writer:
            run.start(config, plan)
        _say(verbose, f"{'Resuming' if plan == 'resume' else 'Starting'} the run in {run.path}\n{config}")
        tokenizer = _run_tokenizer(run, config, texts, resume=plan == "resume", verbose=verbose, writer=writer)
        with strategy.scope():
            model = compile_model(build_model(config.model, tokenizer), train)
            model(tf.zeros((1, train.sequence_length), tf.int32))  # make the weights
            model.optimizer.build(model.trainable_variables)  # make the optimizer's, so a checkpoint can fill them
        validation = build_validation_batches(train, tokenizer, texts.validation)
        eval_every = min(train.eval_every, train.steps)

        session_start = time.perf_counter()
        checkpoint = StepCheckpoint(
            run.checkpoints,
            every=train.checkpoint_every,
            total_steps=train.steps,
            # Saved with each checkpoint, so they always match its weights (`history` and `elapsed_before` are
            # set below, before the first save).
            extra_state=lambda: {
                "history": history.to_dict(),
                "elapsed_seconds": elapsed_before + time.perf_counter() - session_start,
            },
            write=writer,
        )
        state = (checkpoint.restore(model) if plan == "resume" else None) or {}
        start_step = state.get("step", 0)
        elapsed_before = state.get("elapsed_seconds", 0.0)
        history = LossHistory(start_step, records=state.get("history"))
        _say(
            verbose,
            f"{model.count_params():,} parameters, vocabulary of {tokenizer.vocab_size:,}, "
            f"{len(texts.train):,} training and {len(texts.validation):,} validation documents, "
            f"{validation.steps} validation batches"
            + (f"; resuming at step {start_step} of {train.steps}" if start_step else ""),
        )

        throughput = ThroughputCallback(train.sequence_length, train.batch_size, peak_flops=peak_flops)
        samples = SampleCallback(
            list(train.sample_prompts),
            every=train.sample_every,
            max_new_tokens=train.sample_tokens,
            path=run.samples_path,
            seed=train.seed,
            at_train_end=False,
            initial_step=start_step,
            sampler="random",
            temperature=train.sample_temperature,
            top_p=train.sample_top_p,
        )
        samples.set_model(model)  # `fit` would do it, but a run resumed at its last step has no `fit` call
        run_callbacks = [
            NaNGuard(checkpoint, initial_step=start_step),
            throughput,
            history,
            checkpoint,
            *([samples] if writer else []),
            *(callbacks or []),
            *([ScalarLogs(run.logs, initial_step=start_step)] if writer else []),
        ]
        if verbose:
            run_callbacks.append(RunProgress(train.steps, initial_step=start_step))

        try:
            for initial_epoch, epochs, steps_per_epoch in fit_plan(start_step, train.steps, eval_every):
                model.fit(
                    build_train_batches(train, tokenizer, texts.train, start_step=checkpoint.step),
                    initial_epoch=initial_epoch,
                    epochs=epochs,
                    steps_per_epoch=steps_per_epoch,
                    validation_data=validation.batches,
                    validation_steps=validation.steps,
                    callbacks=run_callbacks,
                    verbose=verbose,
                    shuffle=False,
                )
        except KeyboardInterrupt:
            if not writer:
                raise
            raise RunInterrupted(_checkpoint_interrupted(model, checkpoint, train.steps)) from None

        final = history.epochs[-1] if history.epochs and history.epochs[-1]["step"] == train.steps else {}
        if "val_loss" not in final:  # resumed from the last checkpoint, saved before the last validation
            final = {f"val_{name}": value for name, value in
                     model.evaluate(validation.batches, verbose=0, return_dict=True).items()}
            history.epochs.append({"step": train.steps, **final})
        if not writer:
            # Another worker of a multi-worker job: its weights are the chief's, which writes the run.
            return PretrainResult(run.path, config, model, {}, start_step, history.to_dict())
        final_samples = samples.sample(train.steps)
        _say(verbose, f"Samples at step {train.steps}:\n" + "\n".join(sample["text"] for sample in final_samples))

        with atomic_path(run.model_path) as temporary:
            model.save(temporary)
        history_records = history.to_dict()
        run.write_json(HISTORY, history_records)
        title = f"{config.model.architecture} on {os.path.basename(config.data.corpus)}"
        plot_loss_curve(history_records, run.loss_curve_path, title=title)
        _say(verbose, f"Evaluating on the whole validation split ({len(texts.validation):,} documents)")
        exact = evaluate_texts(model, texts.validation)
        metrics = _metrics(config, model, history_records, final, exact, throughput, final_samples, start_step,
                           elapsed_before + time.perf_counter() - session_start, strategy)
        metrics["known_word_share"] = known_word_share(
            [sample["text"] for sample in final_samples], corpus_words(texts.train)
        )
        metrics["memorization"] = _memorization(model, texts, train.seed)
        _say(verbose, f"Generated words found in the corpus: {metrics['known_word_share']:.1%}; "
                      f"{metrics['memorization'].get('summary')}")
        run.write_json(METRICS, metrics)  # last: its presence marks the run complete
        _say(
            verbose,
            f"Validation loss {metrics['validation_loss']:.4f} nats/token, perplexity "
            f"{metrics['validation_perplexity']:.3f}, {metrics['bits_per_byte']:.3f} bits per byte; "
            f"{train.steps} steps in {time.perf_counter() - started:.1f} s. Run directory: {run.path}",
        )
        return PretrainResult(run.path, config, model, metrics, start_step, history_records)
    finally:
        keras.config.set_dtype_policy(previous_policy)


def fit_plan(start_step, steps, eval_every):
    """The `fit` calls that train steps `start_step + 1 .. steps` in epochs of `eval_every` steps, numbered from the
    first step: a list of `(initial_epoch, epochs, steps_per_epoch)`.

    Epoch k covers steps k * eval_every + 1 .. min((k + 1) * eval_every, steps). A start inside an epoch gets a call
    of its own for the rest of that epoch, and a last epoch shorter than `eval_every` gets one too.

    >>> fit_plan(0, 1000, 200)
    [(0, 5, 200)]
    >>> fit_plan(450, 1000, 200)  # finish epoch 2 (steps 451-600), then epochs 3 and 4
    [(2, 3, 150), (3, 5, 200)]
    >>> fit_plan(0, 1050, 200), fit_plan(1050, 1050, 200)
    ([(0, 5, 200), (5, 6, 50)], [])
    """
    calls = []
    step = start_step
    full_epochs = steps // eval_every
    if step % eval_every and step < steps:
        epoch = step // eval_every
        end = min((epoch + 1) * eval_every, steps)
        calls.append((epoch, epoch + 1, end - step))
        step = end
    if step < full_epochs * eval_every:
        calls.append((step // eval_every, full_epochs, eval_every))
        step = full_epochs * eval_every
    if step < steps:
        calls.append((full_epochs, full_epochs + 1, steps - step))
    return calls


class RunInterrupted(KeyboardInterrupt):
    """Training was interrupted (Ctrl-C); the run is saved and resumes when started again. The message says where.

    A `KeyboardInterrupt`, so a program that does not catch it stops as on any Ctrl-C.

    Example (a callback presses Ctrl-C after step 2 of a tiny run):

    >>> import json, os, tempfile
    >>> from tfllm.data import kjv_chapters
    >>> from tfllm.training import RunConfig
    >>> folder = tempfile.mkdtemp()
    >>> corpus = os.path.join(folder, "verses.jsonl")  # the 80 verses of Genesis 1-3, a document each
    >>> with open(corpus, "w") as file:
    ...     file.writelines(json.dumps({"text": verse}) + "\\n" for chapter in kjv_chapters()[:3]
    ...                     for verse in chapter.text.splitlines())
    >>> config = RunConfig.default(
    ...     "lstm", model={"num_layers": 1, "hidden_dim": 8}, data={"corpus": corpus, "tokenizer": "byte"},
    ...     train={"steps": 4, "batch_size": 4, "sequence_length": 16, "eval_every": 4, "validation_steps": 1,
    ...            "sample_prompts": ["In the beginning"], "sample_tokens": 8})
    >>> class CtrlC(keras.callbacks.Callback):
    ...     def on_train_batch_end(self, batch, logs=None):
    ...         if batch == 1:
    ...             raise KeyboardInterrupt
    >>> run_dir = os.path.join(folder, "run")
    >>> try:
    ...     pretrain(config, run_dir, verbose=0, callbacks=[CtrlC()], peak_flops=1e11)
    ... except RunInterrupted as error:
    ...     print(error)
    ...     print(isinstance(error, KeyboardInterrupt))
    Interrupted: the run is saved at step 2 of 4. Run the same command again to resume it.
    True
    >>> RunDirectory(run_dir).is_complete()  # `pretrain(config, run_dir)` would resume it at step 2
    False
    """


def _checkpoint_interrupted(model, checkpoint, total_steps):
    """On Ctrl-C: saves the state of the last step the optimizer finished, so nothing trained is lost; returns what
    to tell the user.

    The interrupt usually lands right after a training step returns and before Keras's callbacks saw it; the
    optimizer's batch counter says how many steps the weights hold (Keras 3 keeps it in `_iterations`, which counts
    batches also under gradient accumulation; `iterations` counts updates). Such a step's loss is missing from the
    loss history, which the curve shows as a gap.
    """
    counter = getattr(model.optimizer, "_iterations", model.optimizer.iterations)
    step = int(keras.ops.convert_to_numpy(counter))
    if step > checkpoint.step + 1 or step < checkpoint.step:
        step = checkpoint.step  # not what a single interrupted step leaves: trust the callbacks' count
    if step in (0, checkpoint.saved_step):
        saved = True  # nothing trained since the last checkpoint
    else:
        checkpoint.set_model(model)
        saved = checkpoint.save(step)
    where = f"step {step} of {total_steps}" if saved else f"step {checkpoint.saved_step} (the last good checkpoint)"
    return f"Interrupted: the run is saved at {where}. Run the same command again to resume it."


def _run_tokenizer(run, config, texts, resume, verbose, writer=True, timeout=600):
    """The run's tokenizer: learned once, saved with the checkpoints, and read back when the run resumes (learning
    it again need not give the same ids). The other workers of a multi-worker job read the chief's, waiting for it
    up to `timeout` seconds on a fresh run."""
    path = os.path.join(run.checkpoints, TOKENIZER_FILE)
    if not writer and config.data.tokenizer != "byte":
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RunDirectoryError(f"{path} did not appear in {timeout} s: the chief writes it, on storage every "
                                        "worker must share")
            time.sleep(0.5)
        resume = True
    if resume and os.path.exists(path):
        with open(path, encoding="utf-8") as file:
            return keras.saving.deserialize_keras_object(json.load(file))
    if config.data.tokenizer != "byte":
        _say(verbose, f"Learning a {config.data.tokenizer} vocabulary from {len(texts.train):,} documents")
    tokenizer = build_tokenizer(config.data, texts.train, verbose=verbose == 1)
    if writer:
        atomic_write_text(path, json.dumps(keras.saving.serialize_keras_object(tokenizer)))
    return tokenizer


def _metrics(config, model, history, final, exact, throughput, samples, start_step, wall_time, strategy):
    """The numbers of `metrics.json`. The validation figures are exact (`evaluate_texts` on the whole validation
    split); `validation_loss_estimate` is the last periodic validation, on `validation_steps` batches."""
    train = config.train
    window = [loss for step, loss in zip(history["steps"], history["losses"])
              if step > train.steps - min(train.eval_every, train.steps)]
    return {
        "steps": train.steps,
        "optimizer_updates": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "tokens_seen": train.steps * train.batch_size * train.sequence_length,
        "train_loss": sum(window) / len(window) if window else math.nan,
        "validation_loss": exact.loss,
        "validation_perplexity": exact.perplexity,
        "bits_per_byte": exact.bits_per_byte,
        "validation_tokens": exact.tokens,
        "validation_bytes": exact.bytes,
        "validation_documents": exact.documents,
        "validation_tokens_per_byte": exact.tokens / exact.bytes if exact.bytes else math.nan,
        "validation_loss_estimate": float(final["val_loss"]),
        "tokens_per_second": throughput.tokens_per_second,
        "mfu": throughput.mfu,
        "peak_flops": throughput.peak_flops,
        "training_flops_per_token": throughput.flops_per_token,
        "wall_time_seconds": wall_time,
        "resumed_from_step": start_step,
        "parameters": model.count_params(),
        "num_replicas": strategy.num_replicas_in_sync,
        "precision": train.precision,
        "samples": samples,
    }


def _memorization(model, texts, seed):
    """The memorization check on training vs validation text, with windows the model's context can hold."""
    half = min(32, (model.max_sequence_length or 64) // 2)
    try:
        report = memorization_report(model, texts.train, texts.validation, half, half, samples=64, seed=seed)
    except ValueError as error:  # texts too short for one window: nothing to check
        return {"summary": f"memorization not checked: {error}"}
    return {**dataclasses.asdict(report), "summary": str(report)}


def _say(verbose, message):
    if verbose:
        print(message, flush=True)
