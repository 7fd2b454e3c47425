"""Run directories: the one owner of every kind of run tfllm writes, of its files and of how it is read back.

```
run_dir/
  run.json         what wrote the run: its kind, the run format and the tfllm version; written first. Then what
                   the run decided once and keeps when it resumes (`record`: the steps its time budget fixed)
  config.json      pretrain: the RunConfig
  finetune.json    finetune: the FinetuneConfig, the parent run directory and the parent's own config file
  convert.json     convert: the ConvertConfig (the checkpoint's path, format and config.json)
  template.json    the prompt template, for a run that has one
  checkpoints/     pretrain: the latest training state and the tokenizer (tokenizer.json), for resuming
  logs/            pretrain: TensorBoard logs
  samples.txt      generated samples (pretrain: by step; finetune "sft": held-out prompts and completions)
  model.keras      the trained model, its tokenizer inside
  adapter.weights.h5  finetune with LoRA (`lora_rank`): the adapter alone, in place of model.keras; the model is
                   rebuilt from the parent run's (`tfllm.models.lora`)
  loss_curve.png   pretrain: training and validation loss by step
  history.json     the losses of the run
  metrics.json     the final numbers, written last: a run is complete when it exists
```

Each kind of run is one entry of `KINDS`: its config file and class, whether it starts from a parent run, whether an
unfinished one resumes, and the files of a complete run. `RunDirectory(path, kind)` plans, starts and writes a run;
`load_run(path)` reads any complete run back as a `LoadedRun`. Every file name of a run is a constant here.

Every file is written atomically (`tfllm.training.atomic`), so each is either absent or whole. A run whose
`run.json` names another run format than this tfllm's is refused, naming both.
"""

import dataclasses
import hashlib
import json
import math
import os
import shutil
import warnings
import zipfile

import keras
import tensorflow as tf

import tfllm
import tfllm.models  # noqa: F401  (these two register the classes of the models and tokenizers `load_run` reads)
import tfllm.tokenizers  # noqa: F401
from tfllm.checks import require_choice, require_directory_path
from tfllm.data.templates import ChatTemplate, PromptTemplate, template_from_config
from tfllm.models.lora import load_adapter, merge_lora, save_adapter
from tfllm.training.atomic import TEMPORARY_PREFIX, atomic_path, atomic_write_text
from tfllm.training.config import FinetuneConfig, RunConfig
from tfllm.training.convert_config import ConvertConfig

RUN = "run.json"
RUN_FORMAT = 1  # raise when the files of a run change in a way older runs cannot be read by
CONFIG = "config.json"
FINETUNE = "finetune.json"
CONVERT = "convert.json"
TEMPLATE = "template.json"
CHECKPOINTS = "checkpoints"
TOKENIZER = "tokenizer.json"  # in CHECKPOINTS
LOGS = "logs"
SAMPLES = "samples.txt"
MODEL = "model.keras"
ADAPTER = "adapter.weights.h5"  # a LoRA fine-tuning's, in place of MODEL
PARENT_FINGERPRINT = "parent_fingerprint"  # in RUN, for a LoRA fine-tuning: the parent's model file it adapts
LOSS_CURVE = "loss_curve.png"
HISTORY = "history.json"
METRICS = "metrics.json"


@dataclasses.dataclass(frozen=True)
class RunKind:
    """What one kind of run stores.

    Attributes:
        config_file: the file of its config, written right after `run.json`.
        config_class: the config's class (`from_dict`, `to_dict`, `validate`; and `differences` for a kind that
            resumes, or whose workers compare their config with the chief's).
        final_files: the files of a complete run, in the order it writes them, `metrics.json` last.
        has_parent: it starts from another run; its config file records the parent's path, kind and config file.
        resumes: an unfinished run continues from its last checkpoint when started again; otherwise it is refused
            unless overwritten.
    """

    config_file: str
    config_class: type
    final_files: tuple
    has_parent: bool = False
    resumes: bool = False


KINDS = {
    "pretrain": RunKind(CONFIG, RunConfig, (CONFIG, MODEL, LOSS_CURVE, HISTORY, SAMPLES, METRICS), resumes=True),
    "finetune": RunKind(FINETUNE, FinetuneConfig, (FINETUNE, MODEL, HISTORY, METRICS), has_parent=True),
    "convert": RunKind(CONVERT, ConvertConfig, (CONVERT, MODEL, METRICS)),  # a GPT-2 checkpoint, converted
}


def _config_differences(stored, config):
    """The keys whose values differ between the `stored` config and `config` (both `RunConfig`s or both
    `FinetuneConfig`s), as "key: stored in the run, given now; ...", or "" when there is none."""
    return "; ".join(f"{key}: {ours!r} in the run, {theirs!r} now" for key, ours, theirs in stored.differences(config))


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


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """A complete run as `load_run` reads it back.

    Attributes:
        kind: a key of `KINDS` ("pretrain", "finetune", "convert").
        path: the run directory.
        config: its config (a `RunConfig`, a `FinetuneConfig`, ...: `KINDS[kind].config_class`).
        model: the trained model (a `CausalLM`, or a `SequenceClassifier` for a classifier), compiled with the
            defaults of its `compile()`; None for a `parent`.
        parent: the run it started from (a fine-tuning's), as its config file recorded it when it started: kind,
            path and config, and its own parent; its model is not loaded. None for a run of its own.
        template: the `PromptTemplate` or `ChatTemplate` of `template.json`, or None.
        metrics: the contents of `metrics.json`; None for a `parent`.

    What the command line asks, answered from the kind and the config: `is_classifier`, `precision`, `corpus`,
    `sequence_length`, `pretraining`.

    Example (`pretrain`'s example reads back the run it trains; here a parent and its child are made by hand):

    >>> from tfllm.training.config import FinetuneConfig, RunConfig
    >>> parent = LoadedRun("pretrain", "runs/kjv", RunConfig.default("lstm", train={"sequence_length": 64}))
    >>> run = LoadedRun("finetune", "runs/kjv-sft", FinetuneConfig("sft", "qa"), parent=parent)
    >>> run.is_classifier, run.corpus, run.precision, run.sequence_length  # what the parent trained on, and how
    (False, 'kjv', 'float32', 64)
    >>> LoadedRun("finetune", "runs/kjv-sft-more", FinetuneConfig("continue", "notes.txt"), parent=run).pretraining.path
    'runs/kjv'
    """

    kind: str
    path: str
    config: object
    model: object = None
    parent: "LoadedRun | None" = None
    template: PromptTemplate | ChatTemplate | None = None
    metrics: dict | None = None

    @property
    def is_classifier(self):
        """Whether the model labels texts (a `SequenceClassifier`) instead of generating them."""
        return self.kind == "finetune" and self.config.task == "classify"

    @property
    def is_lora(self):
        """Whether the run trained a LoRA adapter (its config has a `lora_rank`) and stores only that."""
        return getattr(self.config, "lora_rank", None) is not None

    @property
    def precision(self):
        """The dtype policy the model was trained in; a fine-tuning keeps its parent's."""
        if self.kind == "convert":
            return self.config.precision
        return self.parent.precision if self.kind == "finetune" else self.config.train.precision

    @property
    def corpus(self):
        """The corpus the model last learned as a language model: its own, or its parent's for "sft" and
        "classify"; None for a converted checkpoint (it learned from no corpus tfllm knows)."""
        if self.kind == "pretrain":
            return self.config.data.corpus
        if self.kind == "convert":
            return self.config.corpus
        return self.config.data if self.config.task == "continue" else self.parent.corpus

    @property
    def pretraining(self):
        """The pretraining run this run comes from: itself, or its nearest ancestor of kind "pretrain" (a fine-tuning
        of a translation run evaluates on that run's pairs); None for a converted checkpoint and its fine-tunings."""
        run = self
        while run is not None and run.kind != "pretrain":
            run = run.parent
        return run

    @property
    def sequence_length(self):
        """Tokens per training sequence: the config's, or for a fine-tuning that names none, its parent's."""
        if self.kind == "pretrain":
            return self.config.train.sequence_length
        if self.kind == "convert":
            return self.config.sequence_length
        return self.config.sequence_length or self.parent.sequence_length


class RunDirectory:
    """The paths of a run directory of one kind, the checks on its state, and the writes of a run.

    Args:
        path: the run directory (it need not exist yet).
        kind: a key of `KINDS`.

    Example:

    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.is_run(), run.is_complete()
    (False, False)
    >>> run.missing_files()
    ['config.json', 'model.keras', 'loss_curve.png', 'history.json', 'samples.txt', 'metrics.json']
    >>> RunDirectory(run.path, "finetune").missing_files()
    ['finetune.json', 'model.keras', 'history.json', 'metrics.json']
    """

    def __init__(self, path, kind="pretrain"):
        self.path = os.fspath(path)
        self.kind = require_choice("kind", kind, tuple(KINDS))

    def __repr__(self):
        return f"RunDirectory({self.path!r}, {self.kind!r})"

    @property
    def spec(self):
        """The `RunKind` of this directory's kind."""
        return KINDS[self.kind]

    def file(self, name):
        """The path of `name` inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def config_path(self):
        return self.file(self.spec.config_file)

    @property
    def checkpoints(self):
        return self.file(CHECKPOINTS)

    @property
    def tokenizer_path(self):
        return os.path.join(self.checkpoints, TOKENIZER)

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
    def adapter_path(self):
        return self.file(ADAPTER)

    @property
    def loss_curve_path(self):
        return self.file(LOSS_CURVE)

    @property
    def history_path(self):
        return self.file(HISTORY)

    @property
    def metrics_path(self):
        return self.file(METRICS)

    @property
    def template_path(self):
        return self.file(TEMPLATE)

    def is_run(self):
        """Whether a run (of any kind) was started here: it has a `run.json` (or the `config.json` of an older
        tfllm)."""
        return os.path.exists(self.file(RUN)) or os.path.exists(self.file(CONFIG))

    def final_files(self):
        """The files of a complete run, in the order it writes them: its kind's, but a LoRA fine-tuning (whose config
        file records a `lora_rank`) has `adapter.weights.h5` in place of `model.keras`."""
        files = self.spec.final_files
        if self.spec.has_parent and os.path.exists(self.config_path) and self._read_recorded_run().is_lora:
            files = tuple(ADAPTER if name == MODEL else name for name in files)
        return files

    def missing_files(self):
        """The final files not (yet) written, in the order a run writes them."""
        return [name for name in self.final_files() if not os.path.exists(self.file(name))]

    def is_complete(self):
        """Whether the run finished: every final file exists (`metrics.json` is written last)."""
        return not self.missing_files()

    def read_config(self):
        """The config stored in the config file; a missing or damaged file raises `RunDirectoryError` naming it."""
        return self._read_recorded_run().config

    def plan(self, config, overwrite=False):
        """Says how a run of `config` can use this directory, without changing anything: `"new"`, `"resume"` or
        `"overwrite"`; raises `RunDirectoryError` when it cannot.

        - no directory, or an empty one: `"new"`.
        - a run, with `overwrite`: `"overwrite"` (it is deleted and trained anew).
        - a complete run, a run of another kind, or an unfinished run of a kind that does not resume: refused.
        - an unfinished run of the same config: `"resume"`; of another config: refused, naming the differences.
        - a non-empty folder that is not a run: always refused (`overwrite` never deletes what tfllm did not write).
        - a file, a path under a file, or in a directory that cannot be written: refused.
        """
        try:
            require_directory_path("the run directory", self.path)
        except ValueError as error:
            raise RunDirectoryError(str(error)) from None
        if os.path.isdir(self.path) and os.listdir(self.path) and not self.is_run():
            raise RunDirectoryError(
                f"{self.path} exists and is not a run directory (it has files but no {RUN}): choose a new or "
                "empty directory"
            )
        if not self.is_run():
            return "new"
        if overwrite:
            return "overwrite"
        stored = read_run_kind(self.path)
        if stored != self.kind:
            raise RunDirectoryError(f"{self.path} holds a {stored} run, not a {self.kind} run: choose another "
                                    "directory, or use overwrite=True (--overwrite) to replace it")
        if self.is_complete():
            raise RunDirectoryError(
                f"{self.path} holds a complete run: use overwrite=True (--overwrite) to replace it, or another "
                "directory"
            )
        if not self.spec.resumes:
            raise RunDirectoryError(f"{self.path} holds an unfinished {self.kind} run, which does not resume: use "
                                    "overwrite=True (--overwrite) to replace it, or another directory")
        differences = _config_differences(self.read_config(), config)
        if differences:
            raise RunDirectoryError(
                f"{self.path} holds an unfinished run of another config ({differences}): resume it with its own "
                "config, use another directory, or overwrite=True (--overwrite) to start it again"
            )
        return "resume"

    def require_chief_config(self, config):
        """Refuses, on a worker of a multi-worker job that is not the chief, a `config` other than the one the chief
        wrote into this directory: the job would train on one config and record another. Call it after the chief
        has started the run (a barrier)."""
        differences = _config_differences(self.read_config(), config)
        if differences:
            raise RunDirectoryError(
                f"this worker's config is not the chief's in {self.path} ({differences}): every worker of a "
                "multi-worker job runs the same command"
            )

    def start(self, config, plan, parent=None):
        """Carries out a `plan(config, ...)`: deletes an overwritten run, writes `run.json` and the config file of a
        new one (recording `parent`, the `LoadedRun` it starts from, for a kind that has one), and clears the
        temporary files a killed process left in a resumed one."""
        if plan == "resume":
            for name in os.listdir(self.path):
                if name.startswith(TEMPORARY_PREFIX):
                    os.remove(self.file(name))  # left by a process killed while writing
            return
        if self.spec.has_parent and parent is None:
            raise ValueError(f"a {self.kind} run starts from a parent run: pass parent=load_run(...)")
        if plan == "overwrite":
            shutil.rmtree(self.path)
        self._made_directory = not os.path.isdir(self.path)
        os.makedirs(self.path, exist_ok=True)
        write_run_marker(self.path, self.kind)
        record = _config_record(LoadedRun(self.kind, self.path, config, parent=parent))
        atomic_write_text(self.config_path, json.dumps(record, indent=2) + "\n")

    def abandon(self):
        """Undoes `start` of a new run found bad before it trained (such as a validation split too short for one
        batch of the tokenizer's tokens): removes what it wrote, and the directory if `start` made it, so that the
        corrected command starts afresh instead of finding an unfinished run of another config."""
        for name in os.listdir(self.path):
            path = self.file(name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        if getattr(self, "_made_directory", False):
            os.rmdir(self.path)

    def write_json(self, name, values):
        """Writes `values` as indented JSON to `name`, atomically; NaN and infinities become null."""
        atomic_write_text(self.file(name), json.dumps(_finite_or_none(values), indent=2) + "\n")

    def read_json(self, name):
        with open(self.file(name), encoding="utf-8") as file:
            return json.load(file)

    def record(self, name, value):
        """Adds `name: value` to `run.json`, atomically: what a run decides once and keeps when it resumes (the
        step count a time budget fixed)."""
        marker = _read_json_file(self.file(RUN))
        atomic_write_text(self.file(RUN), json.dumps({**marker, name: value}, indent=2) + "\n")

    def recorded(self, name):
        """What `record` wrote under `name` in `run.json`, or None."""
        if not os.path.exists(self.file(RUN)):
            return None
        marker = _read_json_file(self.file(RUN))
        return marker.get(name) if isinstance(marker, dict) else None

    def write_text(self, name, text):
        """Writes `text` to `name`, atomically."""
        atomic_write_text(self.file(name), text)

    def save_model(self, model):
        """Saves `model` as `model.keras`, atomically, and its prompt template (if any) as `template.json`."""
        template = getattr(model, "prompt_template", None)
        if template is not None:
            self.write_json(TEMPLATE, template.get_config())
        with atomic_path(self.model_path) as temporary:
            model.save(temporary)

    def save_adapter(self, model, parent_path):
        """Saves the LoRA adapter of `model` alone as `adapter.weights.h5`, atomically, and its prompt template (if
        any) as `template.json`; records in `run.json` the fingerprint of the model file of the parent run at
        `parent_path` (whose model it adapts), which `load_run` checks. Returns the adapter file's size in bytes."""
        self.record(PARENT_FINGERPRINT, _model_file_fingerprint(parent_path))
        template = getattr(model, "prompt_template", None)
        if template is not None:
            self.write_json(TEMPLATE, template.get_config())
        with atomic_path(self.adapter_path) as temporary:
            return save_adapter(model, temporary)

    def _read_recorded_run(self):
        """The run as its config file records it: a `LoadedRun` without model."""
        if not os.path.exists(self.config_path):
            raise RunDirectoryError(f"{self.path} is not a run directory: it has no {self.spec.config_file}")
        record = _read_json_file(self.config_path)
        try:
            return _recorded_run(self.kind, self.path, record)
        except ValueError as error:
            raise RunDirectoryError(f"{self.config_path} is damaged: {error} (restore the file, or train the run "
                                    "again with overwrite=True, --overwrite)") from None

    def _read_template(self):
        if not os.path.exists(self.template_path):
            return None
        config = _read_json_file(self.template_path)
        try:
            return template_from_config(config)
        except ValueError as error:
            raise RunDirectoryError(f"{self.template_path} is damaged: {error} (restore the file, or train the "
                                    "run again with overwrite=True, --overwrite)") from None


def write_run_marker(path, kind):
    """Writes `run.json`: the kind of run, the run format and the tfllm version that wrote it."""
    marker = {"kind": kind, "format": RUN_FORMAT, "tfllm_version": tfllm.__version__}
    atomic_write_text(os.path.join(path, RUN), json.dumps(marker, indent=2) + "\n")


def read_run_kind(path):
    """The kind (a key of `KINDS`) of the run in `path`; `RunDirectoryError` if tfllm cannot read it."""
    marker_path = os.path.join(os.fspath(path), RUN)
    if not os.path.exists(marker_path):
        raise RunDirectoryError(
            f"{path} has no {RUN}: it was written by an older tfllm (before run format {RUN_FORMAT}) or by "
            "something else; train it again with this version"
        )
    marker = _read_json_file(marker_path)
    if not isinstance(marker, dict) or marker.get("kind") not in KINDS:
        raise RunDirectoryError(f"{marker_path} is damaged: expected a kind of {', '.join(map(repr, KINDS))}")
    if marker.get("format") != RUN_FORMAT:
        raise RunDirectoryError(
            f"{path} was written by tfllm {marker.get('tfllm_version', '?')} in run format {marker.get('format')!r}; "
            f"this tfllm {tfllm.__version__} reads run format {RUN_FORMAT}: use that version, or train it again"
        )
    return marker["kind"]


def load_run(run_dir):
    """A complete run directory of any kind, read back: its config, its trained model, its parent.

    Returns:
        A `LoadedRun`. The model is in the precision it was trained in and compiled with the defaults of its
        `compile()` (so `evaluate` works; the training settings are in the config).

    Raises:
        RunDirectoryError: the directory is not a run, was written by an incompatible tfllm, is unfinished (the
            message lists the missing files: an interrupted pretraining resumes when it is started again), or its
            config, `model.keras` or another file is damaged.

    `pretrain`'s example reads back the run it trains. What is refused, before anything is loaded:

    Example:

    >>> import os, tempfile
    >>> load_run(os.path.join(tempfile.mkdtemp(), "missing"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ...missing does not exist: expected a run directory written ...
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.start(RunConfig.default("lstm"), "new")  # what a run writes first: run.json and config.json
    >>> load_run(run.path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.training.run_directory.RunDirectoryError: ... holds an unfinished run: model.keras, loss_curve.png, ...
    """
    path = os.fspath(run_dir)
    if not os.path.isdir(path):
        problem = "is not a directory" if os.path.exists(path) else "does not exist"
        raise RunDirectoryError(f"{path} {problem}: expected a run directory written by tfllm")
    if not RunDirectory(path).is_run():
        raise RunDirectoryError(f"{path} is not a run directory: it has no {RUN} or {CONFIG}")
    run = RunDirectory(path, read_run_kind(path))
    missing = run.missing_files()
    if missing:
        advice = ("Run the same training again to resume it from its last checkpoint" if run.spec.resumes else
                  f"A {run.kind} run does not resume: run it again with overwrite=True (--overwrite)")
        raise RunDirectoryError(f"{path} holds an unfinished run: {', '.join(missing)} missing. {advice}")
    recorded = run._read_recorded_run()
    metrics = _read_json_file(run.metrics_path)
    if recorded.is_lora:
        model = _load_lora_model(run, recorded.parent.path)
    else:
        model = load_model_file(run.model_path, recorded.precision)
    if not model.compiled:
        model.compile()  # the defaults, enough for evaluate; fine-tuning compiles with its own settings
    return dataclasses.replace(recorded, model=model, template=run._read_template(), metrics=metrics)


def load_model_file(path, precision):
    """The model saved at `path` (a `.keras` file), rebuilt under the dtype policy `precision` it was trained in;
    a damaged file raises `RunDirectoryError` naming it."""
    if os.path.isfile(path) and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise RunDirectoryError(f"{path} cannot be loaded: it is not a .keras archive (a zip file), so it is damaged "
                                "or was cut short: train the run again with overwrite=True (--overwrite)")
    previous_policy = keras.config.dtype_policy()
    try:
        with warnings.catch_warnings():
            # CausalLM.compile has arguments of its own, which Keras cannot replay; it is compiled below instead.
            warnings.filterwarnings("ignore", message=r"`compile\(\)` was not called as part of model loading")
            # The layers are made under the global policy when the model is rebuilt, so set the run's precision.
            keras.config.set_dtype_policy(precision)
            return keras.saving.load_model(path)
    except tf.errors.OpError:  # TensorFlow's runtime failed, not the file: say, another worker of a job is gone
        raise
    except Exception as error:  # zipfile, h5py and Keras raise many kinds for a damaged archive
        raise RunDirectoryError(
            f"{path} cannot be loaded ({type(error).__name__}: {error}); the file is damaged: train the run again "
            "with overwrite=True (--overwrite)"
        ) from error
    finally:
        keras.config.set_dtype_policy(previous_policy)


def _load_lora_model(run, parent_path):
    """The model of the LoRA fine-tuning `run`: its parent run's model (an adapted parent merged first), with the
    run's adapter loaded onto it."""
    if not os.path.isdir(parent_path):
        raise RunDirectoryError(f"{run.path} stores only a LoRA adapter, and its parent run {parent_path} (whose "
                                "model it adapts) does not exist: put the parent back there, or fine-tune again")
    fingerprint = run.recorded(PARENT_FINGERPRINT)
    if fingerprint is not None and fingerprint != _model_file_fingerprint(parent_path):
        raise RunDirectoryError(f"{parent_path}, the parent run of {run.path}, holds another model than the one the "
                                "LoRA adapter was trained on (it was trained again): fine-tune it again")
    try:
        parent = load_run(parent_path)
    except RunDirectoryError as error:
        raise RunDirectoryError(f"{run.path} adapts the model of its parent run, which cannot be loaded: {error}") \
            from None
    try:
        model = load_adapter(merge_lora(parent.model), run.adapter_path)
    except ValueError as error:
        raise RunDirectoryError(f"{run.adapter_path} does not load onto the model of its parent run {parent_path}: "
                                f"{error}") from None
    model.prompt_template = run._read_template()  # the fine-tuning's own, not the parent's (None: it had none)
    model.compile()  # anew: the parent's optimizer was built for every weight, the adapter's are the trainable ones
    return model


def _model_file_fingerprint(path):
    """The SHA-256 of the file that holds the model of the run at `path` (`model.keras`, or a LoRA run's adapter),
    or None if it has none."""
    run = RunDirectory(path, read_run_kind(path))
    name = ADAPTER if ADAPTER in run.final_files() else MODEL
    if not os.path.exists(run.file(name)):
        return None
    digest = hashlib.sha256()
    with open(run.file(name), "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _config_record(run):
    """What the config file of `run` (a `LoadedRun`) holds: its config, and for a kind with a parent, the parent's
    path, kind and config file, so a run can be understood even when its parent has moved."""
    if not KINDS[run.kind].has_parent:
        return run.config.to_dict()
    return {"config": run.config.to_dict(), "parent": os.path.abspath(run.parent.path),
            "parent_kind": run.parent.kind, "parent_config": _config_record(run.parent)}


def _recorded_run(kind, path, record):
    """The `LoadedRun` (without model) of a config file's `record`; a `ValueError` names what is wrong."""
    spec = KINDS[kind]
    if not spec.has_parent:
        return LoadedRun(kind, path, spec.config_class.from_dict(record))
    keys = ("config", "parent", "parent_config")
    if not isinstance(record, dict) or not all(key in record for key in keys):
        raise ValueError(f"expected a JSON object with the keys {', '.join(keys)}")
    parent_kind = record.get("parent_kind", "pretrain")  # fine-tunings of pretrained runs before it was recorded
    if parent_kind not in KINDS:
        raise ValueError(f"parent_kind={parent_kind!r} is invalid: expected one of {', '.join(map(repr, KINDS))}")
    parent = _recorded_run(parent_kind, record["parent"], record["parent_config"])
    return LoadedRun(kind, path, spec.config_class.from_dict(record["config"]), parent=parent)


def _read_json_file(path):
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise RunDirectoryError(f"{path} is damaged: not valid JSON ({error})") from None


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value
