"""`pretrain`: trains a language model from a `RunConfig` into a run directory, resuming it if it was interrupted.

The recipe behind `tfllm train`. Steps are batches: a run trains exactly `config.train.steps` of them (or the
count its time budget fixed, below), whether it runs in one go or is killed and started again any number of times.

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

A time budget (`train.time_budget_minutes`) fixes the step count once, at the start of training (`fix_steps`): the
first `MEASURED_STEPS` steps are trained and timed (they are the run's first steps, not a rehearsal), the count is
set to what fits in the rest of the budget at the measured speed (at most `train.steps`), recorded in `run.json`,
and the model is compiled again, its optimizer state kept, so that the cosine decays over that count. The timed
steps lie in the warmup (the default's is 100 steps), where the learning rate does not depend on the count, so the
run is the one `train.steps` = that count would have trained. A resumed run reads the count back instead of timing
again, so it ends where the first session planned, whatever the speed of the machine it resumes on.

The recipe reads as four phases, each a function of this module that runs (and is tested) on its own: `open_run`
(check the config and the directory, read the corpus, start or resume the directory), `build_run` (the tokenizer,
the model, the validation batches, the checkpoint restored), `train_run` (the callbacks, the `fit` calls of
`fit_plan`, Ctrl-C) and `write_results` (the model, the history, the loss curve, the exact evaluation and
`metrics.json`, last).
"""

import contextlib
import dataclasses
import json
import math
import os
import time

import keras
import tensorflow as tf

from tfllm.evaluation import corpus_words, evaluate_texts, known_word_share, memorization_report
from tfllm.training.atomic import atomic_write_text
from tfllm.training.builders import ValidationData, build_model, compile_model
from tfllm.training.callbacks import (
    BestWeights,
    CtrlC,
    LossHistory,
    NaNGuard,
    RunProgress,
    SampleCallback,
    ScalarLogs,
    StepCheckpoint,
    ThroughputCallback,
)
from tfllm.training.callbacks.summaries import drop_events
from tfllm.training.config import RunConfig, absolute_data_path
from tfllm.training.loss_curve import plot_loss_curve
from tfllm.training.run_directory import HISTORY, METRICS, RunDirectory, RunDirectoryError
from tfllm.training.tasks import task_of
from tfllm.training.strategies import barrier, is_chief

MEASURED_STEPS = 20  # the steps a time budget times before it fixes the step count
UNTIMED_STEPS = 4  # the first of them, left out of the timing: tracing the train step, warming caches
TIME_BUDGET = "time_budget"  # what `run.json` records of it: the fixed count, and the speed it was fixed from


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

    Example (a two-step run; `pretrain`'s example reads the run directory it leaves):

    >>> import json, os, tempfile
    >>> from tfllm.data import kjv_chapters
    >>> folder = tempfile.mkdtemp()
    >>> corpus = os.path.join(folder, "verses.txt")  # the 80 verses of Genesis 1-3, a paragraph each
    >>> with open(corpus, "w") as file:
    ...     file.writelines(verse + "\\n\\n" for chapter in kjv_chapters()[:3] for verse in chapter.text.splitlines())
    >>> config = RunConfig.default(
    ...     "lstm", model={"hidden_dim": 8}, data={"corpus": corpus, "tokenizer": "byte"},
    ...     train={"steps": 2, "batch_size": 2, "sequence_length": 8, "eval_every": 2, "validation_steps": 1,
    ...            "sample_prompts": ["In"], "sample_tokens": 1})
    >>> result = pretrain(config, os.path.join(folder, "run"), verbose=0, peak_flops=1e11)
    >>> result.history["steps"], result.resumed_from_step  # a loss per step of a fresh run
    ([1, 2], 0)
    >>> with open(RunDirectory(result.run_dir).metrics_path) as file:  # the metrics are metrics.json's
    ...     result.metrics == json.load(file)
    True
    >>> result.model.count_params() == result.metrics["parameters"]  # the trained model, ready to use
    True
    """

    run_dir: str
    config: RunConfig
    model: keras.Model
    metrics: dict
    resumed_from_step: int
    history: dict


def pretrain(config, run_dir, strategy=None, overwrite=False, verbose=1, callbacks=None, peak_flops=None):
    """Pretrains the model of `config` on its corpus and writes the run directory `run_dir`.

    Everything is checked before the long work starts: the config (`config.validate`, including that the global
    batch splits evenly over the strategy's replicas) and the run directory (a complete run is refused unless
    `overwrite`; an unfinished run of the same config is resumed from its last checkpoint; an unfinished run of
    another config is refused, naming the differences). The work is four phases, `open_run`, `build_run`,
    `train_run` and `write_results`.

    Args:
        config: a `RunConfig`. A corpus path relative to the working directory is recorded as an absolute path
            (`absolute_data_path`), so later commands find the corpus from any directory.
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
    >>> loaded = load_run(result.run_dir)  # the config and the trained model, read back
    >>> loaded.kind, loaded.config == config, type(loaded.model).__name__, loaded.parent is None
    ('pretrain', True, 'LSTMLM', True)
    >>> pretrain(config, result.run_dir, verbose=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ...run holds a complete run: use overwrite=True (--overwrite) ...
    """
    started = time.perf_counter()
    if absolute_data_path(config.data.corpus) != config.data.corpus:  # the run records where its corpus is
        config = config.replace(data={"corpus": absolute_data_path(config.data.corpus)})
    opened = open_run(config, run_dir, strategy, overwrite, verbose)
    with _dtype_policy(config.train.precision):
        try:
            built = build_run(opened)
        except (ValueError, FileNotFoundError):  # bad input found before any step: a new run leaves nothing behind
            if opened.writer and not opened.resume:
                opened.run.abandon()
            raise
        trained = train_run(opened, built, callbacks, peak_flops)
        if not opened.writer:
            # Another worker of a multi-worker job: its weights are the chief's, which writes the run.
            return PretrainResult(opened.run.path, config, built.model, {}, built.start_step,
                                  built.state.history.to_dict())
        metrics = write_results(opened, built, trained)
    if task_of(config).keeps_best_weights:
        summary = (f"Best validation loss {metrics['validation_loss']:.4f} nats/token (step "
                   f"{metrics['best_step']})")
    else:
        summary = (f"Validation loss {metrics['validation_loss']:.4f} nats/token, perplexity "
                   f"{metrics['validation_perplexity']:.3f}, {metrics['bits_per_byte']:.3f} bits per byte")
    _say(opened.verbose, f"{summary}; {metrics['steps']} steps in {time.perf_counter() - started:.1f} s. "
                         f"Run directory: {opened.run.path}")
    return PretrainResult(opened.run.path, config, built.model, metrics, built.start_step,
                          built.state.history.to_dict())


@dataclasses.dataclass(frozen=True)
class OpenedRun:
    """What `open_run` checked and started.

    Attributes:
        config: the validated `RunConfig`.
        run: its `RunDirectory`.
        resume: whether the directory holds an unfinished run of this config, resumed from its last checkpoint.
        strategy: the `tf.distribute.Strategy` to train under.
        writer: whether this process writes the run (the chief of a multi-worker job, or the only process).
        verbose: the caller's verbosity, 0 on the processes that do not write.
        texts: what the run's task reads (`tfllm.training.tasks`): the train and validation documents of the
            corpus (`CorpusTexts`), the pairs of every split of a translation run (`translation_task.ParallelTexts`),
            the conversations and the pretraining text of a chat run (`chat_task.DialogTexts`).
        budget: what `run.json` records of the time budget (`fix_steps`) when the run resumes one, else None.
    """

    config: RunConfig
    run: RunDirectory
    resume: bool
    strategy: tf.distribute.Strategy
    writer: bool
    verbose: int
    texts: object
    budget: dict | None = None

    @property
    def steps(self):
        """The run's steps: the count its time budget fixed, else `config.train.steps`."""
        return self.budget["steps"] if self.budget else self.config.train.steps


def open_run(config, run_dir, strategy=None, overwrite=False, verbose=1):
    """Phase 1: checks the config and the run directory, reads the corpus, then starts the directory (a new run) or
    clears what a killed process left in it (a resumed one). Nothing is written before every check has passed, and
    only the chief of a multi-worker job writes. Returns an `OpenedRun`."""
    strategy = strategy or tf.distribute.get_strategy()
    config.validate(num_replicas=strategy.num_replicas_in_sync)
    run = RunDirectory(run_dir)
    plan = run.plan(config, overwrite)
    writer = is_chief(strategy)  # the other workers of a multi-worker job train and write nothing
    barrier(strategy)  # every worker has made its plan before the chief changes the directory
    verbose = verbose if writer else 0
    keras.utils.set_random_seed(config.train.seed)  # the same on every worker: the data is sharded from one stream
    texts = task_of(config).read_texts(config.data)
    if writer:
        run.start(config, plan)
    barrier(strategy)  # the chief has started the directory (an overwritten run's files gone) before others read it
    if not writer:
        run.require_chief_config(config)
    _say(verbose, f"{'Resuming' if plan == 'resume' else 'Starting'} the run in {run.path}\n{config}")
    budget = run.recorded(TIME_BUDGET) if plan == "resume" else None
    return OpenedRun(config, run, plan == "resume", strategy, writer, verbose, texts, budget)


class _TrainingState:
    """What a checkpoint saves beside the weights, so that the two always match: the loss history, the seconds
    trained by this run, over all its sessions, and the training speed (`speed`)."""

    def __init__(self, history, elapsed_before=0.0, speed_before=None):
        self.history = history
        self.elapsed_before = elapsed_before
        self.speed_before = dict(speed_before or {})
        self.throughput = None  # this session's `ThroughputCallback`, once training starts
        self.session_start = time.perf_counter()

    def elapsed_seconds(self):
        return self.elapsed_before + time.perf_counter() - self.session_start

    def speed(self):
        """Tokens per second, MFU, the peak and the FLOPs per token measured in this session, or, when it timed no
        step (a run resumed at its last step), in the last session that did."""
        throughput = self.throughput
        if throughput is None or math.isnan(throughput.tokens_per_second):
            return dict(self.speed_before)
        return {"tokens_per_second": throughput.tokens_per_second, "mfu": throughput.mfu,
                "peak_flops": throughput.peak_flops, "training_flops_per_token": throughput.flops_per_token}

    def to_dict(self):
        return {"history": self.history.to_dict(), "elapsed_seconds": self.elapsed_seconds(), "speed": self.speed()}


@dataclasses.dataclass(frozen=True)
class BuiltRun:
    """What `build_run` made.

    Attributes:
        tokenizer: the run's tokenizer (learned, or read back when resuming).
        model: the compiled model, its weights and optimizer variables made (and restored when resuming).
        validation: the periodic validation batches (`ValidationData`).
        checkpoint: the run's `StepCheckpoint`, at the restored step.
        state: the loss history (`state.history`, a `LossHistory`) and the training time, saved with each checkpoint.
        start_step: the step the run starts from (0, or the restored one).
    """

    tokenizer: object
    model: keras.Model
    validation: ValidationData
    checkpoint: StepCheckpoint
    state: _TrainingState
    start_step: int


def build_run(opened):
    """Phase 2: the tokenizer, the model (in the strategy's scope, under the dtype policy the caller set), the
    validation batches, and the checkpoint, restored when the run resumes. Returns a `BuiltRun`."""
    config, run = opened.config, opened.run
    train = dataclasses.replace(config.train, steps=opened.steps)  # the cosine decays over the run's steps
    tokenizer = _run_tokenizer(opened)
    with opened.strategy.scope():
        model = compile_model(build_model(config.model, tokenizer), train)
        model(tf.zeros((1, train.sequence_length), tf.int32))  # make the weights
        model.optimizer.build(model.trainable_variables)  # make the optimizer's, so a checkpoint can fill them
    validation = task_of(config).validation_batches(train, tokenizer, opened.texts)
    checkpoint = StepCheckpoint(run.checkpoints, every=train.checkpoint_every, total_steps=train.steps,
                                write=opened.writer)
    restored = (checkpoint.restore(model) if opened.resume else None) or {}
    start_step = restored.get("step", 0)
    state = _TrainingState(LossHistory(start_step, records=restored.get("history")),
                           restored.get("elapsed_seconds", 0.0), restored.get("speed"))
    checkpoint.extra_state = state.to_dict  # saved with each checkpoint, so the two always match its weights
    _say(
        opened.verbose,
        f"{model.count_params():,} parameters, vocabulary of {tokenizer.vocab_size:,}, "
        f"{len(opened.texts.train):,} training and {len(opened.texts.validation):,} validation "
        f"{task_of(config).unit}, "
        f"{validation.steps} validation batches"
        + (f"; resuming at step {start_step} of {train.steps}" if start_step else ""),
    )
    return BuiltRun(tokenizer, model, validation, checkpoint, state, start_step)


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    """What `train_run` leaves for the results.

    Attributes:
        throughput: the `ThroughputCallback` (tokens per second, MFU).
        samples: the `SampleCallback`, which samples the final model.
        final: the logs of the validation at the last step (`val_loss`, ...).
        steps: the steps the run trained: `train.steps`, or the count its time budget fixed.
    """

    throughput: ThroughputCallback
    samples: SampleCallback
    final: dict
    steps: int


def train_run(opened, built, callbacks=None, peak_flops=None):
    """Phase 3: trains the steps from `built.start_step` to the run's last step in the `fit` calls of `fit_plan`,
    then makes sure the last step has its validation. A run with a time budget whose step count is not fixed yet
    fixes it first (`fix_steps`). Ctrl-C checkpoints the step reached and raises `RunInterrupted`. Returns a
    `TrainedRun`."""
    train, model, checkpoint = opened.config.train, built.model, built.checkpoint
    throughput = ThroughputCallback(train.sequence_length, train.batch_size, peak_flops=peak_flops)
    built.state.throughput = throughput
    samples = SampleCallback(
        list(train.sample_prompts), every=train.sample_every, max_new_tokens=train.sample_tokens,
        path=opened.run.samples_path, seed=train.seed, at_train_end=False, initial_step=built.start_step,
        sampler="random", temperature=train.sample_temperature, top_p=train.sample_top_p,
    )
    samples.set_model(model)  # `fit` would do it, but a run resumed at its last step has no `fit` call
    ctrl_c = CtrlC()  # last: the batch is done for every other callback when Ctrl-C is raised
    run_callbacks = [*_callbacks(opened, built, throughput, samples, callbacks), ctrl_c]
    steps = opened.steps
    try:
        with ctrl_c.installed():
            _set_total_steps(run_callbacks, steps, min(train.eval_every, steps))
            if opened.writer and built.start_step:
                _drop_logs_after_checkpoint(opened.run.logs, built, steps, min(train.eval_every, steps))
            _validate_interrupted_epoch_end(built, run_callbacks, checkpoint.step, steps, min(train.eval_every, steps))
            if (train.time_budget_minutes is not None and opened.budget is None
                    and steps - built.start_step > MEASURED_STEPS):
                steps = fix_steps(opened, built, run_callbacks)
            _fit(opened, built, run_callbacks, fit_plan(checkpoint.step, steps, min(train.eval_every, steps)))
            ctrl_c.raise_if_pressed()  # pressed after the last batch
    except KeyboardInterrupt:
        if not opened.writer:
            raise
        raise RunInterrupted(_checkpoint_interrupted(model, checkpoint, steps)) from None
    return TrainedRun(throughput, samples, _final_validation(model, built, steps), steps)


def fix_steps(opened, built, run_callbacks):
    """Fixes the step count of a run with a time budget: trains and times the next `MEASURED_STEPS` steps (with
    the validation of each epoch they end, and one at their end), takes the steps that fit in the rest of the
    budget (`steps_within_budget`, at most `train.steps`, a multiple of the gradient accumulation), records them in
    `run.json` (the chief; every worker reads them back) and moves the end of the schedule's cosine to it
    (`set_decay_steps`: the train step already compiled is kept, no new trace). Returns the count."""
    train, model, checkpoint = opened.config.train, built.model, built.checkpoint
    start, every = checkpoint.step, min(train.eval_every, train.steps)
    _say(opened.verbose, f"Timing steps {start + 1}-{start + MEASURED_STEPS} to fit the time budget of "
                         f"{train.time_budget_minutes:g} minutes")
    stopwatch = _Stopwatch()
    _fit(opened, built, [*run_callbacks, stopwatch], fit_plan(start, start + MEASURED_STEPS, every))
    if opened.writer:
        done, multiple = checkpoint.step, train.gradient_accumulation_steps
        seconds_left = 60 * train.time_budget_minutes - built.state.elapsed_seconds()
        more = steps_within_budget(seconds_left, stopwatch.seconds_per_step(), stopwatch.seconds_per_validation(),
                                   every)
        steps = min(train.steps, done + more)
        steps = max(steps - steps % multiple, -(-done // multiple) * multiple)
        opened.run.record(TIME_BUDGET, {
            "minutes": train.time_budget_minutes, "steps": steps, "configured_steps": train.steps,
            "measured_steps": done - start, "seconds_per_step": stopwatch.seconds_per_step(),
            "seconds_per_validation": stopwatch.seconds_per_validation(),
        })
    barrier(opened.strategy)
    steps = opened.run.recorded(TIME_BUDGET)["steps"]
    model.set_decay_steps(steps)
    _set_total_steps(run_callbacks, steps, min(train.eval_every, steps))
    _say(opened.verbose, f"The time budget fixes the run at {steps} of {train.steps} steps")
    return steps


def steps_within_budget(seconds_left, seconds_per_step, seconds_per_validation, eval_every):
    """How many more steps fit in `seconds_left`, each taking `seconds_per_step`, with a validation of
    `seconds_per_validation` every `eval_every` steps.

    >>> steps_within_budget(100.0, 0.5, 3.0, eval_every=10)  # 10 steps and their validation: 8 s
    125
    >>> steps_within_budget(-5.0, 0.5, 3.0, eval_every=10)  # the budget was spent already
    0
    """
    window = eval_every * seconds_per_step + seconds_per_validation  # the seconds of an epoch
    return max(math.floor(seconds_left * eval_every / window), 0)


def _fit(opened, built, run_callbacks, plan):
    """The `fit` calls of `plan` (a `fit_plan`), from the checkpoint's step on."""
    train, model = opened.config.train, built.model
    steps = (opened.run.recorded(TIME_BUDGET) or {}).get("steps", opened.steps)  # once a time budget fixed them
    for initial_epoch, epochs, steps_per_epoch in plan:
        start = built.checkpoint.step
        end = start + (epochs - initial_epoch) * steps_per_epoch
        batches = task_of(opened.config).train_batches(train, built.tokenizer, opened.texts, start, steps, end)
        model.fit(
            batches,
            initial_epoch=initial_epoch,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=built.validation.batches,
            validation_steps=built.validation.steps,
            callbacks=run_callbacks,
            verbose=opened.verbose,
            shuffle=False,
        )


class _Stopwatch(keras.callbacks.Callback):
    """Times the steps (each from the end of the step before it, validations left out, after the first
    `UNTIMED_STEPS`) and the validations of `fit` calls."""

    def __init__(self):
        super().__init__()
        self.steps, self.validations = [], []
        self._seen, self._last, self._validation_start = 0, None, None

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self._seen += 1
        if self._last is not None and self._seen > UNTIMED_STEPS:
            self.steps.append(now - self._last)
        self._last = now

    def on_test_begin(self, logs=None):
        self._validation_start = time.perf_counter()

    def on_test_end(self, logs=None):
        seconds = time.perf_counter() - self._validation_start
        self.validations.append(seconds)
        if self._last is not None:
            self._last += seconds  # the next step's time is its own

    def seconds_per_step(self):
        return sum(self.steps) / len(self.steps)

    def seconds_per_validation(self):
        return max(self.validations, default=0.0)  # the first one traces the test step: a safe side estimate


def _set_total_steps(run_callbacks, steps, eval_every):
    """Tells the callbacks that count to the run's last step (the checkpoint, the progress bar) the run's steps,
    which a time budget may have fixed below `train.steps`."""
    for callback in run_callbacks:
        if isinstance(callback, (StepCheckpoint, RunProgress)):
            callback.total_steps = steps
        if isinstance(callback, RunProgress):
            callback.eval_every = eval_every


def write_results(opened, built, trained):
    """Phase 4 (the chief only): the final samples, `model.keras`, `history.json`, the loss curve, the exact
    evaluation on the whole validation split, and `metrics.json`, last. Returns the metrics."""
    if task_of(opened.config).keeps_best_weights:
        return _write_task_results(opened, built, trained)
    config, run, model, verbose = opened.config, opened.run, built.model, opened.verbose
    final_samples = trained.samples.sample(trained.steps)
    _say(verbose, f"Samples at step {trained.steps}:\n" + "\n".join(sample["text"] for sample in final_samples))
    run.save_model(model)
    history = built.state.history.to_dict()
    run.write_json(HISTORY, history)
    plot_loss_curve(history, run.loss_curve_path,
                    title=f"{config.model.architecture} on {os.path.basename(config.data.corpus)}")
    _say(verbose, f"Evaluating on the whole validation split ({len(opened.texts.validation):,} documents)")
    exact = evaluate_texts(model, opened.texts.validation)
    metrics = _metrics(opened, built, trained, exact, final_samples)
    metrics["known_word_share"] = known_word_share(
        [sample["text"] for sample in final_samples], corpus_words(opened.texts.train)
    )
    metrics["memorization"] = _memorization(model, opened.texts, config.train.seed)
    _say(verbose, f"Generated words found in the corpus: {metrics['known_word_share']:.1%}; "
                  f"{metrics['memorization'].get('summary')}")
    run.write_json(METRICS, metrics)  # last: its presence marks the run complete
    return metrics


def _write_task_results(opened, built, trained):
    """`write_results` of a supervised task (translation, chat): the best validation's weights, the task's template
    saved with the model, then the task's report on the test split (`translation_task.translation_report`,
    `chat_task.chat_report`)."""
    config, run, model, verbose = opened.config, opened.run, built.model, opened.verbose
    task = task_of(config)
    best = BestWeights(run.checkpoints).restore(model) or {"step": trained.steps,
                                                           "val_loss": float(trained.final["val_loss"])}
    final_samples = trained.samples.sample(trained.steps)
    model.prompt_template = task.template
    run.save_model(model)
    history = built.state.history.to_dict()
    run.write_json(HISTORY, history)
    plot_loss_curve(history, run.loss_curve_path,
                    title=f"{config.model.architecture}, {task.name} on {os.path.basename(config.data.corpus)}")
    _say(verbose, f"Kept the weights of step {best['step']} (validation loss {best['val_loss']:.4f}); measuring "
                  f"on the test split ({len(opened.texts.test):,} {task.unit})")
    report = task.report(model, opened.texts)
    _say(verbose, "\n".join(task.report_lines(report)))
    metrics = {
        **_metrics(opened, built, trained, None, final_samples),
        "validation_loss": best["val_loss"],
        "best_step": best["step"],
        **task.counts(opened.texts),
        task.report_key: report,
    }
    run.write_json(METRICS, metrics)  # last: its presence marks the run complete
    return metrics


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


def _run_tokenizer(opened):
    """The run's tokenizer: learned once by the chief, saved with the checkpoints, and read back when the run resumes
    (learning it again need not give the same ids). The other workers of a multi-worker job read the chief's once it
    is written (a barrier: if the chief stops, say on a vocabulary size its corpus cannot give, so do they)."""
    config, texts, verbose = opened.config, opened.texts, opened.verbose
    path = opened.run.tokenizer_path
    learned = config.data.tokenizer != "byte"
    tokenizer = None
    if opened.writer and opened.resume and os.path.exists(path):
        tokenizer = _read_tokenizer(path)
    elif opened.writer or not learned:
        if learned:
            _say(verbose, f"Learning a {config.data.tokenizer} vocabulary from "
                          f"{task_of(config).tokenizer_source(texts)}")
        tokenizer = task_of(config).build_tokenizer(config.data, texts, verbose=verbose == 1)
        if opened.writer:
            atomic_write_text(path, json.dumps(keras.saving.serialize_keras_object(tokenizer)))
    barrier(opened.strategy)  # the chief's tokenizer is written before the other workers read it
    if tokenizer is None:
        if not os.path.exists(path):
            raise RunDirectoryError(f"{path}, which the chief has written, is not on this worker's storage: the run "
                                    "directory must be on storage every worker shares")
        tokenizer = _read_tokenizer(path)
    return tokenizer


def _read_tokenizer(path):
    with open(path, encoding="utf-8") as file:
        return keras.saving.deserialize_keras_object(json.load(file))


def _callbacks(opened, built, throughput, samples, callbacks):
    """The callbacks of every `fit` call, in order: the NaN guard first, the checkpoint before the caller's. The
    TensorBoard logs (the chief's) follow the throughput and the loss history, whose figures they write."""
    start_step = built.start_step
    run_callbacks = [NaNGuard(built.checkpoint, initial_step=start_step), throughput, built.state.history,
                     built.checkpoint]
    if task_of(opened.config).keeps_best_weights:  # a few thousand records overfit: keep the weights of the best validation
        run_callbacks.append(BestWeights(opened.run.checkpoints, initial_step=start_step, write=opened.writer))
    if opened.writer:
        samples.log_dir = opened.run.logs  # every sampling, the final one after training too, goes to TensorBoard
        run_callbacks.append(samples)
    run_callbacks.extend(callbacks or [])
    if opened.writer:
        run_callbacks.append(ScalarLogs(opened.run.logs, every=opened.config.train.log_every,
                                        history=built.state.history, initial_step=start_step))
    if opened.verbose:
        run_callbacks.append(RunProgress(opened.config.train.steps, initial_step=start_step))
    return run_callbacks


def _validate_interrupted_epoch_end(built, run_callbacks, step, steps, eval_every):
    """The validation of the epoch that ends at `step`, the step a run resumes from, when its history has none.

    The checkpoint of an epoch's last step is saved before the epoch's validation, and a resumed run starts with the
    next epoch: a run stopped during that validation (or after it, before the next checkpoint, whose history would
    have held it) would never have it. It is run now and given to the callbacks that keep validations: the loss
    history, the best weights (which would otherwise keep an earlier, worse step's) and the TensorBoard logs. The
    epoch's training loss is the mean of its steps' losses, as Keras logs it.
    """
    history = built.state.history
    if not _epoch_end_without_validation(history, step, steps, eval_every):
        return
    first = (step - 1) // eval_every * eval_every + 1
    losses = [loss for loss_step, loss in zip(history.steps, history.losses) if first <= loss_step <= step]
    logs = {"loss": sum(losses) / len(losses)} if losses else {}
    logs.update({f"val_{name}": value for name, value in built.model.evaluate(
        built.validation.batches, steps=built.validation.steps, verbose=0, return_dict=True).items()})
    for callback in run_callbacks:
        if isinstance(callback, (LossHistory, BestWeights, ScalarLogs)):
            callback.set_model(built.model)
            callback.on_epoch_end((step - 1) // eval_every, logs)


def _epoch_end_without_validation(history, step, steps, eval_every):
    """Whether `step` ends an epoch (of `eval_every` steps, or the last) whose validation `history` does not hold."""
    if step == 0 or (step % eval_every and step != steps):
        return False
    return not any(entry["step"] == step and "val_loss" in entry for entry in history.epochs)


def _drop_logs_after_checkpoint(log_dir, built, steps, eval_every):
    """Takes out of the TensorBoard logs what a run killed after its last checkpoint logged and the resumed run logs
    again, which TensorBoard would draw twice: every step after the checkpoint's; at its step, the validation that
    `_validate_interrupted_epoch_end` runs again, and the final samples of a run resumed at its last step."""
    step = built.start_step
    validated_again = _epoch_end_without_validation(built.state.history, step, steps, eval_every)

    def logged_again(folder, event_step, tag):
        if event_step != step:
            return event_step > step
        if folder == "validation" or tag.startswith("epoch_"):
            return validated_again
        return folder == "samples" and step == steps

    drop_events(log_dir, logged_again)


def _final_validation(model, built, steps):
    """The logs of the validation at step `steps`, run now if the history has none (a run resumed from its last
    checkpoint, which is saved before the last validation)."""
    history = built.state.history
    final = history.epochs[-1] if history.epochs and history.epochs[-1]["step"] == steps else {}
    if "val_loss" not in final:
        final = {f"val_{name}": value for name, value in
                 model.evaluate(built.validation.batches, verbose=0, return_dict=True).items()}
        history.epochs.append({"step": steps, **final})
    return final


@contextlib.contextmanager
def _dtype_policy(name):
    """The global Keras dtype policy `name` while the model is built and trained, the previous one afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _metrics(opened, built, trained, exact, samples):
    """The numbers of `metrics.json`. The validation figures are exact (`evaluate_texts` on the whole validation
    split, `exact`; None leaves them out); `validation_loss_estimate` is the last periodic validation, on
    `validation_steps` batches."""
    train, model, history, speed = opened.config.train, built.model, built.state.history, built.state.speed()
    steps = trained.steps
    window = [loss for step, loss in zip(history.steps, history.losses) if step > steps - min(train.eval_every, steps)]
    metrics = {
        "steps": steps,
        "configured_steps": train.steps,
        "time_budget": opened.run.recorded(TIME_BUDGET),  # None: no time budget fixed the steps
        "optimizer_updates": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "tokens_seen": steps * train.batch_size * train.sequence_length,
        "train_loss": sum(window) / len(window) if window else math.nan,
        "validation_loss_estimate": float(trained.final["val_loss"]),
        "tokens_per_second": speed.get("tokens_per_second", math.nan),  # of the last session that trained
        "mfu": speed.get("mfu", math.nan),
        "peak_flops": speed.get("peak_flops"),
        "training_flops_per_token": speed.get("training_flops_per_token", trained.throughput.flops_per_token),
        "wall_time_seconds": built.state.elapsed_seconds(),
        "resumed_from_step": built.start_step,
        "parameters": model.count_params(),
        "vocab_size": built.tokenizer.vocab_size,  # learned: at most data.vocab_size
        "num_replicas": opened.strategy.num_replicas_in_sync,
        "precision": train.precision,
        "samples": samples,
    }
    if exact is not None:
        metrics.update({
            "validation_loss": exact.loss,
            "validation_perplexity": exact.perplexity,
            "bits_per_byte": exact.bits_per_byte,
            "validation_tokens": exact.tokens,
            "validation_bytes": exact.bytes,
            "validation_documents": exact.documents,
            "validation_tokens_per_byte": exact.tokens / exact.bytes if exact.bytes else math.nan,
        })
    return metrics


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
