"""The run directory: everything a pretraining run writes, laid out so that a half-written run is recognized.

```
run_dir/
  run.json         what wrote the run: its kind ("pretrain" or "finetune"), the run format and the tfllm version
  config.json      the RunConfig, written first
  checkpoints/     the latest training state (weights, optimizer, step, loss history) and the tokenizer, for resuming
  logs/            TensorBoard logs
  samples.txt      generated samples, by step
  model.keras      the trained model, its tokenizer inside
  loss_curve.png   training and validation loss by step
  history.json     the loss of every step and the logs of every validation
  metrics.json     the final numbers, written last: a run is complete when it exists
```

Every file is written atomically (`tfllm.training.atomic`), so each is either absent or whole. A fine-tuning run
(`tfllm.training.finetune_run`) has `run.json` and `finetune.json` instead of `config.json`, and no checkpoints.
A run whose `run.json` names another run format than this tfllm's is refused, naming both.
"""

import json
import math
import os
import shutil
import warnings

import keras

import tfllm
from tfllm.training.atomic import TEMPORARY_PREFIX, atomic_write_text
from tfllm.training.config import RunConfig

RUN = "run.json"
RUN_FORMAT = 1  # raise when the files of a run change in a way older runs cannot be read by
CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
SAMPLES = "samples.txt"
MODEL = "model.keras"
LOSS_CURVE = "loss_curve.png"
HISTORY = "history.json"
METRICS = "metrics.json"
FINAL_FILES = (CONFIG, MODEL, LOSS_CURVE, HISTORY, SAMPLES, METRICS)


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked: incomplete, damaged, of another config, or already complete.

    A `ValueError`, raised before any training starts (by `RunDirectory`, `load_run`, `pretrain`, `finetune_run`).

    Example:

    >>> import os, tempfile
    >>> try:
    ...     load_run(os.path.join(tempfile.mkdtemp(), "missing"))
    ... except RunDirectoryError as error:
    ...     print(type(error).__name__, isinstance(error, ValueError))
    ...     print(str(error).split(": ", 1)[1])
    RunDirectoryError True
    expected a run directory written by tfllm
    """


class RunDirectory:
    """The paths of a run directory and the checks on its state.

    Args:
        path: the run directory (it need not exist yet).

    Example:

    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.is_run(), run.is_complete()
    (False, False)
    >>> run.missing_files()
    ['config.json', 'model.keras', 'loss_curve.png', 'history.json', 'samples.txt', 'metrics.json']
    """

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunDirectory({self.path!r})"

    def file(self, name):
        """The path of `name` inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def config_path(self):
        return self.file(CONFIG)

    @property
    def checkpoints(self):
        return self.file(CHECKPOINTS)

    @property
    def logs(self):
        return self.file(LOGS)

    @property
    def samples_path(self):
        return self.file(SAMPLES)

    @property
    def model_path(self):
        return self.file(MODEL)

    @property
    def loss_curve_path(self):
        return self.file(LOSS_CURVE)

    @property
    def history_path(self):
        return self.file(HISTORY)

    @property
    def metrics_path(self):
        return self.file(METRICS)

    def is_run(self):
        """Whether a run was started here (its `config.json` exists)."""
        return os.path.exists(self.config_path)

    def missing_files(self):
        """The final files not (yet) written, in the order a run writes them."""
        return [name for name in FINAL_FILES if not os.path.exists(self.file(name))]

    def is_complete(self):
        """Whether the run finished: every final file exists (`metrics.json` is written last)."""
        return not self.missing_files()

    def read_config(self):
        """The `RunConfig` stored in `config.json`; a damaged file raises `RunDirectoryError` naming it."""
        try:
            return RunConfig.from_json(self.config_path)
        except FileNotFoundError:
            raise RunDirectoryError(f"{self.path} is not a run directory: it has no {CONFIG}") from None
        except ValueError as error:
            raise RunDirectoryError(f"{self.config_path} is damaged: {error}") from None

    def plan(self, config, overwrite=False):
        """Says how a run of `config` can use this directory, without changing anything: `"new"`, `"resume"` or
        `"overwrite"`; raises `RunDirectoryError` when it cannot.

        - no directory, or an empty one: `"new"`.
        - an incomplete run of the same config: `"resume"`.
        - a complete run: refused unless `overwrite` (`"overwrite"`: it is deleted and trained anew).
        - an incomplete run of another config: refused, naming the differences, unless `overwrite`.
        - a non-empty folder that is not a run: always refused (`overwrite` never deletes what tfllm did not write).
        """
        if os.path.isdir(self.path) and os.listdir(self.path) and not self.is_run():
            raise RunDirectoryError(
                f"{self.path} exists and is not a run directory (it has files but no {CONFIG}): choose a new or "
                "empty directory"
            )
        if not self.is_run():
            return "new"
        if overwrite:
            return "overwrite"
        if read_run_kind(self.path) != "pretrain":
            raise RunDirectoryError(f"{self.path} holds a fine-tuning run, not a pretraining run: choose another directory")
        if self.is_complete():
            raise RunDirectoryError(
                f"{self.path} holds a complete run: use overwrite=True (--overwrite) to train it again, or another "
                "directory"
            )
        differences = self.read_config().differences(config)
        if differences:
            listed = "; ".join(f"{key}: {stored!r} in the run, {new!r} now" for key, stored, new in differences)
            raise RunDirectoryError(
                f"{self.path} holds an unfinished run of another config ({listed}): resume it with its own config, "
                "use another directory, or overwrite=True to start it again"
            )
        return "resume"

    def start(self, config, plan):
        """Carries out a `plan(config, ...)`: deletes an overwritten run, writes `config.json` of a new one, and
        clears the temporary files a killed process left in a resumed one."""
        if plan == "resume":
            for name in os.listdir(self.path):
                if name.startswith(TEMPORARY_PREFIX):
                    os.remove(self.file(name))  # left by a process killed while writing
            return
        if plan == "overwrite":
            shutil.rmtree(self.path)
        os.makedirs(self.path, exist_ok=True)
        write_run_marker(self.path, "pretrain")
        config.to_json(self.config_path)

    def write_json(self, name, values):
        """Writes `values` as indented JSON to `name`, atomically; NaN and infinities become null."""
        atomic_write_text(self.file(name), json.dumps(_finite_or_none(values), indent=2) + "\n")

    def read_json(self, name):
        with open(self.file(name), encoding="utf-8") as file:
            return json.load(file)


def write_run_marker(path, kind):
    """Writes `run.json`: the kind of run, the run format and the tfllm version that wrote it."""
    marker = {"kind": kind, "format": RUN_FORMAT, "tfllm_version": tfllm.__version__}
    atomic_write_text(os.path.join(path, RUN), json.dumps(marker, indent=2) + "\n")


def read_run_kind(path):
    """The kind ("pretrain" or "finetune") of the run in `path`; `RunDirectoryError` if tfllm cannot read it."""
    marker_path = os.path.join(os.fspath(path), RUN)
    try:
        with open(marker_path, encoding="utf-8") as file:
            marker = json.load(file)
    except FileNotFoundError:
        raise RunDirectoryError(
            f"{path} has no {RUN}: it was written by an older tfllm (before run format {RUN_FORMAT}) or by "
            "something else; train it again with this version"
        ) from None
    except json.JSONDecodeError as error:
        raise RunDirectoryError(f"{marker_path} is damaged ({error})") from None
    if not isinstance(marker, dict) or marker.get("kind") not in ("pretrain", "finetune"):
        raise RunDirectoryError(f"{marker_path} is damaged: expected a kind of 'pretrain' or 'finetune'")
    if marker.get("format") != RUN_FORMAT:
        raise RunDirectoryError(
            f"{path} was written by tfllm {marker.get('tfllm_version', '?')} in run format {marker.get('format')!r}; "
            f"this tfllm {tfllm.__version__} reads run format {RUN_FORMAT}: use that version, or train it again"
        )
    return marker["kind"]


def load_run(run_dir):
    """The config and the trained model of a complete run directory (pretraining or fine-tuning).

    Returns:
        `(config, model)`: for a pretraining run the `RunConfig` and the `CausalLM`, its tokenizer attached; for a
        fine-tuning run its `FinetuneConfig` and model (a `CausalLM`, or a `SequenceClassifier` for a classifier
        run). The model is in the precision it was trained in and compiled with the defaults of its `compile()`
        (so `evaluate` works; the training settings are in the config).

    Raises:
        RunDirectoryError: the directory is not a run, was written by an incompatible tfllm, is unfinished (the
            message lists the missing files: an interrupted run resumes when it is started again), or its config or
            `model.keras` is damaged.

    `pretrain`'s example reads back the run it trains. What is refused, before anything is loaded:

    Example:

    >>> import os, tempfile
    >>> load_run(os.path.join(tempfile.mkdtemp(), "missing"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ...missing does not exist: expected a run directory written ...
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.start(RunConfig.default("lstm"), "new")  # what a run writes first: config.json and run.json
    >>> load_run(run.path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ... holds an unfinished run: model.keras, loss_curve.png, ...
    """
    run = RunDirectory(run_dir)
    if not os.path.isdir(run.path):
        raise RunDirectoryError(f"{run.path} does not exist: expected a run directory written by tfllm")
    if not any(os.path.exists(run.file(name)) for name in (RUN, CONFIG, "finetune.json")):
        raise RunDirectoryError(f"{run.path} is not a run directory: it has no {RUN} or {CONFIG}")
    if read_run_kind(run.path) == "finetune":
        from tfllm.training.finetune_run import load_finetune_run  # it builds on this module

        return load_finetune_run(run.path)
    missing = run.missing_files()
    if missing:
        raise RunDirectoryError(
            f"{run.path} holds an unfinished run: {', '.join(missing)} missing. Run the same training again to "
            "resume it from its last checkpoint"
        )
    config = run.read_config()
    model = load_model_file(run.model_path, config.train.precision)
    if not model.compiled:
        model.compile()  # the defaults, enough for evaluate; fine-tuning compiles with its own settings
    return config, model


def load_model_file(path, precision):
    """The model saved at `path` (a `.keras` file), rebuilt under the dtype policy `precision` it was trained in;
    a damaged file raises `RunDirectoryError` naming it."""
    previous_policy = keras.config.dtype_policy()
    try:
        with warnings.catch_warnings():
            # CausalLM.compile has arguments of its own, which Keras cannot replay; it is compiled below instead.
            warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called as part of model loading")
            # The layers are made under the global policy when the model is rebuilt, so set the run's precision.
            keras.config.set_dtype_policy(precision)
            return keras.saving.load_model(path)
    except Exception as error:  # zipfile, h5py and Keras raise many kinds for a damaged archive
        raise RunDirectoryError(
            f"{path} cannot be loaded ({type(error).__name__}: {error}); the file is damaged: train the run again "
            "with overwrite=True"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value
