"""The configuration of a run: what model, on what text, trained how. Small frozen dataclasses.

A pretraining run's `RunConfig` is three sections, each a frozen dataclass: `model` (`ModelConfig`: the architecture
and its sizes, independent of the vocabulary), `data` (`DataConfig`: the corpus and the tokenizer) and `train`
(`TrainConfig`: the optimization, precision and bookkeeping). A fine-tuning run's config is one more section of the
same kind, `FinetuneConfig`. A run directory stores the config it ran with (`tfllm.training.run_directory`), so a
run can always be rebuilt and resumed exactly as it was started.

Every default value lives in one table, `DEFAULTS`, below: the data defaults, then the model and training defaults
of each architecture, then fine-tuning's. `RunConfig.default(architecture)` reads it; nothing else holds a default.
The named choices (architectures, tokenizers, precisions, fine-tuning tasks) are `tfllm.choices`'; a field that takes
one says which in its metadata (`choices`), which `validate` and the command line's flags read.

Types are checked when a section is made (`from_dict` and the constructors raise a `ValueError` naming the key and
the expected type); values are checked by `validate`, which the recipes call before any long work.
"""

import dataclasses
import json
import numbers
import os
import types
import typing

from tfllm.checks import (
    require_choice,
    require_divisible,
    require_even_rotary_heads,
    require_int_at_least,
    require_number_at_least,
    require_positive_int,
    require_positive_number,
    require_probability,
    require_rate,
    require_seed,
    require_text,
)
from tfllm.choices import (
    ARCHITECTURES,
    FINETUNE_TASKS,
    JIT_COMPILE,
    POSITION_EMBEDDINGS,
    PRECISIONS,
    TOKENIZERS,
    TRAIN_TASKS,
)
from tfllm.training.atomic import atomic_write_text

DEFAULT_ARCHITECTURE = "transformer"
QUESTION_ANSWER_DATA = "qa"  # `finetune.data` naming the embedded question/answer pairs

# Training defaults shared by the three architectures; `DEFAULTS["train"]` adds what differs.
_TRAIN = {
    "batch_size": 16,
    "sequence_length": 128,
    "learning_rate": 3e-3,
    "warmup_steps": 100,
    "weight_decay": 0.1,
    "gradient_accumulation_steps": 1,
    "precision": "float32",
    "seed": 0,
    # A TensorBoard point per 5 steps: 320 for all 1,600 default steps, and 80 or more when the time budget keeps only
    # a quarter of them.
    "log_every": 5,
    "eval_every": 400,
    "validation_steps": 10,
    "checkpoint_every": 200,
    "sample_every": 400,
    "sample_prompts": ("In the beginning", "And the LORD said", "Blessed are", "And it came to pass"),
    "sample_tokens": 64,
    "sample_temperature": 0.8,
    "sample_top_p": 0.9,
    "jit_compile": "auto",
    # The steps that fit in this many minutes, at most `steps`, so that a default run ends within 10 minutes on a
    # 2-core CPU twice as slow as the one it was measured on (README, Quickstart): the samples during training, the
    # tokenizer before it and the evaluation after it are not in the budget, and took 3 more minutes there.
    "time_budget_minutes": 5.0,
}

# Every default, in one place. Measured on a 2-core CPU with the embedded KJV corpus: `tfllm train` (the
# Transformer) trains the steps its time budget lets it (all 1,600: about 7.5 minutes end to end, about 1.4 bits per
# byte on the validation split; the times with the budget are in the README's Quickstart; the goal: at most
# 10 minutes and 2.0 bits per byte). SentencePiece pieces of the KJV average 3.6 bytes, so a step of 16 x 128 tokens
# reads about 7 KB of text, 3.6 times what the byte tokenizer would read at nearly the same cost.
DEFAULTS = {
    "data": {"corpus": "kjv", "tokenizer": "sentencepiece", "clean": False, "task": "lm", "train_pairs": None},
    # By tokenizer: the vocabulary to learn when the config names none (byte's is fixed; char keeps every character).
    "vocab_size": {"byte": None, "char": None, "wordpiece": 4096, "sentencepiece": 4096},
    "model": {
        "transformer": {
            "num_layers": 4,
            "hidden_dim": 256,
            "num_heads": 4,
            "intermediate_dim": 1024,
            "max_sequence_length": 128,
            "dropout": 0.0,
            "position_embedding": "learned",
        },
        # The recurrent models have about the Transformer's parameter count (4.2M with the default vocabulary), so
        # `benchmarks/compare_architectures.py` compares like with like.
        "lstm": {
            "num_layers": 2,
            "hidden_dim": 400,
            "num_heads": None,
            "intermediate_dim": None,
            "max_sequence_length": None,
            "dropout": 0.0,
            "position_embedding": None,
        },
        "rnn": {
            "num_layers": 2,
            "hidden_dim": 640,
            "num_heads": None,
            "intermediate_dim": None,
            "max_sequence_length": None,
            "dropout": 0.0,
            "position_embedding": None,
        },
    },
    "train": {
        "transformer": {**_TRAIN, "steps": 1600},
        "lstm": {**_TRAIN, "steps": 1000},
        "rnn": {**_TRAIN, "steps": 1200, "learning_rate": 1e-3},
    },
    # What a task changes in the defaults above, by section. `data.task="translate"` (`tfllm train --task translate`): the
    # HSK sentence pairs, a joint vocabulary of both languages, a model with dropout (a few thousand short pairs
    # overfit), rows of several packed pairs, a time budget within 15 minutes on 2 cores with the evaluation after it.
    "task": {"translate": {
        "data": {"corpus": "hsk", "vocab_size": 3000},
        # Smaller than the language model's: a step costs about the same at this size (the per-step work of Keras
        # and the callbacks dominates), so the batch is large instead (measured in the README's Translation).
        "model": {"transformer": {"num_layers": 3, "hidden_dim": 192, "intermediate_dim": 768, "dropout": 0.1,
                                  "max_sequence_length": 96}},
        "train": {"steps": 6000, "time_budget_minutes": 10.0, "batch_size": 128, "sequence_length": 64,
                  "learning_rate": 3e-3, "warmup_steps": 100, "eval_every": 150, "validation_steps": None,
                  "checkpoint_every": 150, "sample_every": 600, "sample_tokens": 32, "sample_temperature": 0.0,
                  "sample_prompts": ("<zh>天气如何？<en>", "<en>The weather is very nice today.<zh>")},
    },
        # `data.task="chat"` (`tfllm train --task chat`): the chatterbot conversations in English and Chinese after
        # bilingual pretraining (`tfllm.training.chat_task`), a joint vocabulary with the roles as special tokens,
        # the translation recipe's model size, and a time budget within 20 minutes on 2 cores with the evaluation.
        "chat": {
            "data": {"corpus": "chatterbot", "vocab_size": 4000},
            "model": {"transformer": {"num_layers": 3, "hidden_dim": 192, "intermediate_dim": 768, "dropout": 0.1,
                                      "max_sequence_length": 128}},
            "train": {"steps": 6000, "time_budget_minutes": 10.0, "batch_size": 32, "sequence_length": 128,
                      "learning_rate": 3e-3, "warmup_steps": 100, "eval_every": 150, "validation_steps": None,
                      "checkpoint_every": 150, "sample_every": 600, "sample_tokens": 32, "sample_temperature": 0.0,
                      "sample_prompts": ("<user>天气如何？<assistant>", "<user>How is the weather?<assistant>")},
        },
    },
    # `FinetuneConfig`'s, for every task; a fine-tuning run is short and starts from a trained model.
    # LoRA is off unless a rank is given; alpha None means alpha = rank (a scale of 1, Keras's default).
    "finetune": {"steps": 300, "batch_size": 16, "sequence_length": None, "learning_rate": 1e-3, "seed": 0,
                 "lora_rank": None, "lora_alpha": None},
}


class _Section:
    """Type checks (and light normalization: list -> tuple, int -> float) shared by every section."""

    section = None  # the key of the section in a config file, used to name fields in errors
    # Keys added after run format 1, with the value that reproduces how a config written before them ran: an older
    # run directory's config.json still loads and resumes as it was.
    keys_added_later = {}

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _checked(f"{self.section}.{field.name}", getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_dict(cls, values):
        """Makes the section from a dict; unknown keys, missing keys (of fields without a default) and wrong types
        raise a `ValueError` naming the key."""
        if not isinstance(values, dict):
            raise ValueError(f"{cls.section}={values!r} is invalid: expected a dict (a JSON object)")
        values = {**cls.keys_added_later, **values}
        fields = dataclasses.fields(cls)
        names = [field.name for field in fields]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(
                f"unknown key {cls.section}.{unknown[0]} in the config: expected keys of {cls.section} are "
                f"{', '.join(names)}"
            )
        missing = [field.name for field in fields if field.name not in values and field.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"the config has no {cls.section}.{missing[0]}: every key of {cls.section} is required")
        return cls(**values)

    def check_choices(self):
        """Raises a `ValueError` for the first field set to something else than one of its `choices` (None, where the
        type allows it, is left to `validate`)."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if "choices" in field.metadata and value is not None:
                require_choice(f"{self.section}.{field.name}", value, field.metadata["choices"])

    def to_dict(self):
        """The section as a JSON-ready dict (tuples become lists)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }

    def differences(self, other):
        """The dotted keys whose values differ from `other`'s (a section of the same kind), as `(key, ours, theirs)`
        tuples."""
        ours, theirs = self.to_dict(), other.to_dict()
        return [(f"{self.section}.{key}", ours[key], theirs.get(key)) for key in ours if ours[key] != theirs.get(key)]


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """The architecture and its sizes; the vocabulary size comes from the tokenizer.

    Attributes:
        architecture: "transformer", "lstm" or "rnn" (`TransformerLM`, `LSTMLM`, `SimpleRNNLM`).
        num_layers: Transformer blocks or stacked recurrent layers.
        hidden_dim: D, the width of embeddings and hidden states.
        num_heads: attention heads (Transformer only; must divide `hidden_dim`; None for recurrent models).
        intermediate_dim: width of each block's MLP (Transformer only; its default does not follow hidden_dim:
            it is 4 x the default hidden_dim).
        max_sequence_length: the longest context (Transformer only; recurrent models read any length).
        dropout: rate in [0, 1).
        position_embedding: "learned" or "rotary" (Transformer only).

    Example:

    >>> ModelConfig.default("lstm").hidden_dim > 0
    True
    """

    section = "model"

    architecture: str = dataclasses.field(metadata={"choices": ARCHITECTURES})
    num_layers: int
    hidden_dim: int
    num_heads: int | None
    intermediate_dim: int | None
    max_sequence_length: int | None
    dropout: float
    position_embedding: str | None = dataclasses.field(metadata={"choices": POSITION_EMBEDDINGS})

    @classmethod
    def default(cls, architecture=DEFAULT_ARCHITECTURE):
        """The default sizes of `architecture`, from `DEFAULTS`."""
        return cls(architecture=architecture, **DEFAULTS["model"][_known_architecture(architecture)])


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """The text and its tokenizer.

    Attributes:
        corpus: a corpus name ("kjv", "shakespeare") or a path, as `tfllm.data.load_corpus` takes it. The tokenizer
            learns from its train split; validation uses its validation split.
        tokenizer: "byte" (fixed 259 ids, nothing to learn), "char", "wordpiece" or "sentencepiece".
        vocab_size: the largest vocabulary to learn: required for "wordpiece" and "sentencepiece", optional for
            "char" (None keeps every character), None for "byte". A corpus with fewer pieces to learn gives fewer:
            the config keeps the limit asked for, and the run reports the size it learned (`tfllm train` prints it;
            `metrics.json`'s `vocab_size`).
        clean: run `tfllm.data.clean_text` on every document first (NFC, control characters out, whitespace
            folded). Off keeps the bytes as they are, which the lossless byte tokenizer wants.
        task: what the run learns: "lm" (the corpus as text), "translate" (a parallel corpus, as
            `tfllm.data.load_parallel_corpus` takes it: one model translates in both directions) or "chat"
            (conversations, as `tfllm.data.load_dialogs` takes them, after pretraining on English and Chinese text:
            a bilingual assistant); "translate" and "chat" change the defaults of the other keys
            (`DEFAULTS["task"]`).
        train_pairs: "translate" only: train on this many pairs of the training split (a fixed sample, see
            `load_parallel_corpus`), to see what more data buys; None: all of them.

    Example:

    >>> DataConfig.default()
    DataConfig(corpus='kjv', tokenizer='sentencepiece', vocab_size=4096, clean=False, task='lm', train_pairs=None)
    >>> DataConfig.default("byte").vocab_size is None  # the byte tokenizer learns nothing
    True
    >>> DataConfig("kjv", "byte", None, clean="no")
    Traceback (most recent call last):
    ...
    ValueError: data.clean='no' has the type str: expected bool
    """

    section = "data"
    keys_added_later = {"task": "lm", "train_pairs": None}

    corpus: str
    tokenizer: str = dataclasses.field(metadata={"choices": TOKENIZERS})
    vocab_size: int | None
    clean: bool
    task: str = dataclasses.field(default=DEFAULTS["data"]["task"], metadata={"choices": TRAIN_TASKS})
    train_pairs: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.train_pairs is not None:
            require_positive_int("data.train_pairs", self.train_pairs)
            if self.task != "translate":
                raise ValueError(f"data.train_pairs={self.train_pairs} is for data.task='translate' (a parallel "
                                 f"corpus), not {self.task!r}")

    @classmethod
    def default(cls, tokenizer=None):
        """The default data settings, from `DEFAULTS`, for the default tokenizer or for `tokenizer`."""
        return cls(**_data_defaults({} if tokenizer is None else {"tokenizer": tokenizer}))


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Section):
    """How to train: optimization, precision and bookkeeping. A step is one batch (one `train_step` call).

    Attributes:
        steps: training batches in total; with gradient accumulation the optimizer applies
            `steps // gradient_accumulation_steps` updates.
        time_budget_minutes: train only the steps that fit in this many minutes (None: all `steps`). The first
            steps are timed (they count), then the step count is fixed once, at most `steps`, so that the training
            steps and their validations fit; the samples and the evaluation after training come on top. The count
            is recorded in the run's `run.json` (a resumed run keeps it) and in `metrics.json`.
        batch_size: sequences per batch, across all replicas (the global batch).
        sequence_length: tokens per sequence.
        learning_rate: peak of the warmup-cosine schedule, which decays over `steps`.
        warmup_steps: steps of linear warmup.
        weight_decay: AdamW's decoupled weight decay.
        gradient_accumulation_steps: batches whose gradients are averaged into one update (1: none).
        precision: "float32", "mixed_bfloat16" or "mixed_float16" (the Keras dtype policy while building the model).
        seed: seeds the weights, the data order and the samples.
        log_every: steps between TensorBoard points of the training loss (the mean over those steps), the
            learning rate, tokens/s and MFU, in the run's `logs/`.
        eval_every: steps between validations (the Keras "epoch").
        validation_steps: validation batches per validation; None reads the whole validation split.
        checkpoint_every: steps between checkpoints (and one at the end).
        sample_every: steps between samples; None samples only at the end.
        sample_prompts: prompts to continue in the samples.
        sample_tokens: new tokens per sample.
        sample_temperature: the temperature of the samples' draws; 0 is greedy decoding (which tends to repeat
            itself).
        sample_top_p: draw from the nucleus of this probability (top-p sampling); 1.0 turns it off.
        jit_compile: "auto" (XLA on accelerators, and for the recurrent models in float32 on CPUs: see
            `CausalLM.compile`), True or False.

    Example:

    >>> train = TrainConfig.default("lstm")
    >>> train.steps, train.batch_size, train.sequence_length, train.learning_rate
    (1000, 16, 128, 0.003)
    >>> dataclasses.replace(train, steps=10).steps  # frozen: change a copy
    10
    >>> TrainConfig.from_dict({**train.to_dict(), "steps": "10"})
    Traceback (most recent call last):
    ...
    ValueError: train.steps='10' has the type str: expected int
    """

    section = "train"
    keys_added_later = {"time_budget_minutes": None, "log_every": 5}

    steps: int
    time_budget_minutes: float | None
    batch_size: int
    sequence_length: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    gradient_accumulation_steps: int
    precision: str = dataclasses.field(metadata={"choices": PRECISIONS})
    seed: int
    log_every: int
    eval_every: int
    validation_steps: int | None
    checkpoint_every: int
    sample_every: int | None
    sample_prompts: tuple[str, ...]
    sample_tokens: int
    sample_temperature: float
    sample_top_p: float
    jit_compile: str | bool = dataclasses.field(metadata={"choices": JIT_COMPILE})

    @classmethod
    def default(cls, architecture=DEFAULT_ARCHITECTURE):
        """The default training settings of `architecture`, from `DEFAULTS`."""
        return cls(**DEFAULTS["train"][_known_architecture(architecture)])


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole pretraining run: `model`, `data` and `train` sections.

    Example:

    >>> config = RunConfig.default("lstm", model={"hidden_dim": 64}, train={"steps": 10})
    >>> config.model.hidden_dim, config.train.steps, config.data.tokenizer
    (64, 10, 'sentencepiece')
    >>> RunConfig.from_dict(config.to_dict()) == config
    True
    >>> RunConfig.default(model={"hidden_dim": 250, "num_heads": 4}).validate()
    Traceback (most recent call last):
    ...
    ValueError: model.hidden_dim=250 is not divisible by model.num_heads=4.
    """

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    def __post_init__(self):
        for name, kind in self.sections().items():
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected a {kind.__name__}")

    @classmethod
    def sections(cls):
        """The section classes, by name: `{"model": ModelConfig, "data": DataConfig, "train": TrainConfig}`."""
        hints = typing.get_type_hints(cls)
        return {field.name: hints[field.name] for field in dataclasses.fields(cls)}

    @classmethod
    def default(cls, architecture=DEFAULT_ARCHITECTURE, model=None, data=None, train=None):
        """The defaults of `architecture` (from `DEFAULTS`), with the keys of the `model`, `data` and `train` dicts
        replaced."""
        return cls.from_dict(
            {"model": {"architecture": architecture, **(model or {})}, "data": data or {}, "train": train or {}},
            fill_defaults=True,
        )

    @classmethod
    def from_dict(cls, values, fill_defaults=False):
        """The config of a dict as `to_dict` gives it.

        Args:
            values: {"model": {...}, "data": {...}, "train": {...}}.
            fill_defaults: take missing keys from `DEFAULTS` (for the architecture of `values`); otherwise every key
                is required.

        Raises:
            ValueError: an unknown key, a missing key, or a value of the wrong type; the message names the key
                (e.g. `train.steps`) and the expected type.
        """
        if not isinstance(values, dict):
            raise ValueError(f"the config is a {type(values).__name__}: expected a dict (a JSON object)")
        sections = cls.sections()
        unknown = sorted(set(values) - set(sections))
        if unknown:
            raise ValueError(f"unknown key {unknown[0]} in the config: expected the sections {', '.join(sections)}")
        values = {name: values.get(name, {} if fill_defaults else None) for name in sections}
        for name in sections:
            if values[name] is None:
                raise ValueError(f"the config has no {name} section: expected the sections {', '.join(sections)}")
            if not isinstance(values[name], dict):
                raise ValueError(f"{name}={values[name]!r} is invalid: expected a dict (a JSON object)")
        if fill_defaults:
            architecture = values["model"].get("architecture", DEFAULT_ARCHITECTURE)
            architecture = _checked("model.architecture", architecture, str)
            _known_architecture(architecture)
            task = DEFAULTS["task"].get(values["data"].get("task"), {})  # what a task changes in the defaults
            task_data = dict(task.get("data", {}))
            if "tokenizer" in values["data"]:  # another tokenizer than the task's: its own vocabulary default
                task_data.pop("vocab_size", None)
            values = {
                "model": {"architecture": architecture, **DEFAULTS["model"][architecture],
                          **task.get("model", {}).get(architecture, {}), **values["model"]},
                "data": _data_defaults({**task_data, **values["data"]}),
                "train": {**DEFAULTS["train"][architecture], **task.get("train", {}), **values["train"]},
            }
        return cls(**{name: section.from_dict(values[name]) for name, section in sections.items()})

    def to_dict(self):
        """The config as a JSON-ready dict of the three sections."""
        return {name: getattr(self, name).to_dict() for name in self.sections()}

    def to_json(self, path):
        """Writes the config to `path` as indented JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path):
        """Reads a config written by `to_json`; a file that is not valid JSON raises a `ValueError` naming it."""
        with open(path, encoding="utf-8") as file:
            text = file.read()
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        return cls.from_dict(values)

    def replace(self, **sections):
        """A copy with some keys of some sections replaced: `config.replace(train={"steps": 100})`."""
        values = self.to_dict()
        for name, changes in sections.items():
            if name not in values:
                raise ValueError(f"unknown section {name}: expected {', '.join(values)}")
            values[name] = {**values[name], **changes}
        return RunConfig.from_dict(values)

    def differences(self, other):
        """The dotted keys whose values differ from `other`'s, as `(key, ours, theirs)` tuples."""
        ours, theirs = self.to_dict(), other.to_dict()
        return [
            (f"{section}.{key}", ours[section][key], theirs[section].get(key))
            for section in ours
            for key in ours[section]
            if ours[section][key] != theirs[section].get(key)
        ]

    def validate(self, num_replicas=1):
        """Checks every value; raises a `ValueError` naming the first bad field and its value. Returns the config.

        Args:
            num_replicas: replicas of the distribution strategy, which must divide `train.batch_size`.
        """
        for name in self.sections():
            getattr(self, name).check_choices()
        self._validate_model()
        self._validate_data()
        self._validate_train()
        _require_batch_shares("train.batch_size", self.train.batch_size, num_replicas)
        return self

    def _validate_model(self):
        model = self.model
        require_positive_int("model.num_layers", model.num_layers)
        require_positive_int("model.hidden_dim", model.hidden_dim)
        require_rate("model.dropout", model.dropout)
        if model.architecture == "transformer":
            for name in ("num_heads", "intermediate_dim", "max_sequence_length"):
                require_positive_int(f"model.{name}", getattr(model, name), why=" (the Transformer needs it)")
            require_divisible("model.hidden_dim", model.hidden_dim, "model.num_heads", model.num_heads)
            require_choice("model.position_embedding", model.position_embedding, POSITION_EMBEDDINGS)
            require_even_rotary_heads(model.position_embedding, model.hidden_dim, model.num_heads, prefix="model.")
            return
        for name, what in (("num_heads", "attention heads"), ("intermediate_dim", "MLP"),
                           ("max_sequence_length", "context limit"), ("position_embedding", "position embedding")):
            value = getattr(model, name)
            if value is not None:  # a Transformer's setting, which a recurrent model would ignore
                raise ValueError(f"model.{name}={value!r} is invalid for model.architecture={model.architecture!r}, "
                                 f"which has no {what} (a Transformer's setting): expected None")

    def _validate_data(self):
        data = self.data
        require_text("data.corpus", data.corpus, "a corpus name (kjv, shakespeare) or a path")
        if data.tokenizer == "byte" and data.vocab_size is not None:
            raise ValueError(
                f"data.vocab_size={data.vocab_size} is invalid for data.tokenizer='byte': its vocabulary is fixed "
                "(259 ids); expected None"
            )
        if data.tokenizer in ("wordpiece", "sentencepiece") and data.vocab_size is None:
            raise ValueError(
                f"data.vocab_size=None is invalid for data.tokenizer={data.tokenizer!r}: expected the size of the "
                "vocabulary to learn"
            )
        if data.vocab_size is not None:
            require_int_at_least("data.vocab_size", data.vocab_size, 5, " (4 special tokens and one more)")

    def _validate_train(self):
        train, model = self.train, self.model
        for name in ("steps", "batch_size", "sequence_length", "gradient_accumulation_steps", "log_every",
                     "eval_every", "checkpoint_every", "sample_tokens"):
            require_positive_int(f"train.{name}", getattr(train, name))
        for name in ("validation_steps", "sample_every"):
            if getattr(train, name) is not None:
                require_positive_int(f"train.{name}", getattr(train, name), why=" or None")
        if train.time_budget_minutes is not None:
            require_positive_number("train.time_budget_minutes", train.time_budget_minutes)
        require_positive_number("train.learning_rate", train.learning_rate)
        require_number_at_least("train.weight_decay", train.weight_decay, 0)
        require_int_at_least("train.warmup_steps", train.warmup_steps, 0)
        require_seed("train.seed", train.seed)
        if train.steps % train.gradient_accumulation_steps:
            raise ValueError(
                f"train.steps={train.steps} is not divisible by train.gradient_accumulation_steps="
                f"{train.gradient_accumulation_steps}: the last update would be left half accumulated"
            )
        require_number_at_least("train.sample_temperature", train.sample_temperature, 0, " (0 is greedy)")
        require_probability("train.sample_top_p", train.sample_top_p, " (1 is off)")
        if not train.sample_prompts or not all(train.sample_prompts):
            raise ValueError(
                f"train.sample_prompts={list(train.sample_prompts)!r} is invalid: expected at least one prompt, "
                "none of them empty"
            )
        if model.architecture == "transformer":
            if train.sequence_length > model.max_sequence_length:
                raise ValueError(
                    f"train.sequence_length={train.sequence_length} is longer than model.max_sequence_length="
                    f"{model.max_sequence_length}"
                )
            if train.sample_tokens >= model.max_sequence_length:
                raise ValueError(
                    f"train.sample_tokens={train.sample_tokens} leaves no room for a prompt in "
                    f"model.max_sequence_length={model.max_sequence_length}: expected fewer"
                )

    def __str__(self):
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"{section}:")
            lines.extend(f"  {key}: {json.dumps(value)}" for key, value in values.items())
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(_Section):
    """What to fine-tune on, and how: the `finetune` section of a fine-tuning run (`tfllm.training.finetune_run`).

    Attributes:
        task: "continue" (more pretraining), "sft" (prompt/completion pairs) or "classify" (a classification head).
        data: the corpus ("continue"), the prompt/completion pairs or "qa" ("sft"), the labelled texts
            ("classify"); see `tfllm.training.finetune_run`.
        steps: optimizer steps.
        batch_size: sequences per step.
        sequence_length: tokens per sequence; None: the parent's training length.
        learning_rate: the peak learning rate (warmup, then cosine decay for "continue" and "sft"; constant for
            "classify").
        seed: seeds the weights of a new head and the data order.
        lora_rank: train a LoRA adapter of this rank on the attention and MLP projections instead of every weight
            ("continue" and "sft" on a Transformer); the run then stores only the adapter. None: full fine-tuning.
        lora_alpha: the adapter's scale is lora_alpha / lora_rank; None means lora_alpha = lora_rank.

    Example:

    >>> FinetuneConfig("sft", "qa", steps=200).validate()  # "qa": the embedded question/answer pairs
    FinetuneConfig(task='sft', data='qa', steps=200, batch_size=16, sequence_length=None, learning_rate=0.001, seed=0, lora_rank=None, lora_alpha=None)
    >>> FinetuneConfig("sft", "qa", lora_rank=0).validate()
    Traceback (most recent call last):
    ...
    ValueError: finetune.lora_rank=0 is invalid: expected a positive integer or None (full fine-tuning).
    >>> FinetuneConfig.from_dict({"task": "sft", "data": "qa", "steps": "200"})  # as finetune.json is read back
    Traceback (most recent call last):
    ...
    ValueError: finetune.steps='200' has the type str: expected int
    >>> FinetuneConfig("translate", "qa").validate()
    Traceback (most recent call last):
    ...
    ValueError: finetune.task='translate' is invalid: expected one of 'continue', 'sft', 'classify'.
    """

    section = "finetune"

    task: str = dataclasses.field(metadata={"choices": FINETUNE_TASKS})
    data: str
    steps: int = DEFAULTS["finetune"]["steps"]
    batch_size: int = DEFAULTS["finetune"]["batch_size"]
    sequence_length: int | None = DEFAULTS["finetune"]["sequence_length"]
    learning_rate: float = DEFAULTS["finetune"]["learning_rate"]
    seed: int = DEFAULTS["finetune"]["seed"]
    lora_rank: int | None = DEFAULTS["finetune"]["lora_rank"]
    lora_alpha: float | None = DEFAULTS["finetune"]["lora_alpha"]

    def validate(self, num_replicas=1):
        """Checks every value before any work; a `ValueError` names the first bad one. Returns the config.

        Args:
            num_replicas: replicas of the distribution strategy, which must divide `batch_size`.
        """
        self.check_choices()
        require_text("finetune.data", self.data, "a corpus name or a file path")
        require_positive_int("finetune.steps", self.steps)
        require_positive_int("finetune.batch_size", self.batch_size)
        if self.sequence_length is not None:
            require_positive_int("finetune.sequence_length", self.sequence_length, why=" or None")
        require_positive_number("finetune.learning_rate", self.learning_rate)
        require_seed("finetune.seed", self.seed)
        self._validate_lora()
        if self.task in ("sft", "classify") and self.data != QUESTION_ANSWER_DATA and not os.path.isfile(self.data):
            raise ValueError(f"finetune.data={self.data!r} does not exist: expected a JSONL or CSV file"
                             + (" (or 'qa', the embedded question/answer pairs)" if self.task == "sft" else ""))
        if self.task == "classify" and self.data == QUESTION_ANSWER_DATA:
            raise ValueError("finetune.data='qa' holds prompt/completion pairs, not labelled texts: expected a JSONL "
                             "or CSV file with text and label")
        _require_batch_shares("finetune.batch_size", self.batch_size, num_replicas)
        return self

    def _validate_lora(self):
        if self.lora_rank is None:
            if self.lora_alpha is not None:
                raise ValueError(f"finetune.lora_alpha={self.lora_alpha!r} is set without finetune.lora_rank: give "
                                 "the adapter's rank too (--lora-rank R)")
            return
        require_positive_int("finetune.lora_rank", self.lora_rank, why=" or None (full fine-tuning)")
        if self.lora_alpha is not None:
            require_positive_number("finetune.lora_alpha", self.lora_alpha)
        if self.task == "classify":
            raise ValueError("finetune.lora_rank is for the language-model tasks 'continue' and 'sft': a 'classify' "
                             "run trains a new head, so drop --lora-rank")


def _require_batch_shares(name, batch_size, num_replicas):
    """Raises a `ValueError` unless the global batch `batch_size` (the config field `name`) splits evenly over
    `num_replicas`, the replicas of the distribution strategy: the rule of both `RunConfig.validate` and
    `FinetuneConfig.validate`.

    >>> _require_batch_shares("train.batch_size", 6, num_replicas=4)
    Traceback (most recent call last):
    ...
    ValueError: train.batch_size=6 is not divisible by the number of replicas (4): expected a multiple of 4, so that every replica gets the same share of the global batch
    """
    num_replicas = require_positive_int("num_replicas", num_replicas)
    if batch_size % num_replicas:
        raise ValueError(f"{name}={batch_size} is not divisible by the number of replicas ({num_replicas}): expected "
                         f"a multiple of {num_replicas}, so that every replica gets the same share of the global batch")


def absolute_data_path(value):
    """A corpus or data path as an absolute path, so that a run records where its data is and later commands find it
    from any directory; names of tfllm's own data stay names (a local file of such a name is `./NAME`, as
    `load_corpus` reads it), and a path that does not exist stays as given, to be refused by name.

    >>> import os
    >>> absolute_data_path("kjv"), absolute_data_path("qa"), absolute_data_path(".") == os.getcwd()
    ('kjv', 'qa', True)
    """
    from tfllm.data import CORPUS_NAMES, DIALOG_CORPUS_NAMES, PARALLEL_CORPUS_NAMES
    from tfllm.data.files import has_glob_pattern

    names = (*CORPUS_NAMES, *PARALLEL_CORPUS_NAMES, *DIALOG_CORPUS_NAMES, QUESTION_ANSWER_DATA)
    if not isinstance(value, str) or value in names:
        return value
    expanded = os.path.expanduser(value)
    if os.path.exists(expanded) or has_glob_pattern(value):
        return os.path.abspath(expanded)
    return value


def _data_defaults(values):
    """`values` with the missing data keys filled from `DEFAULTS`; the vocabulary size follows the tokenizer."""
    values = {**DEFAULTS["data"], **values}
    if "vocab_size" not in values:
        tokenizer = values["tokenizer"]
        values["vocab_size"] = DEFAULTS["vocab_size"].get(tokenizer) if isinstance(tokenizer, str) else None
    return values


def _known_architecture(architecture):
    return require_choice("model.architecture", architecture, ARCHITECTURES)


def _type_name(annotation):
    if isinstance(annotation, types.UnionType):
        return " or ".join(_type_name(member) for member in typing.get_args(annotation))
    if typing.get_origin(annotation) is tuple:
        return f"a list of {_type_name(typing.get_args(annotation)[0])}"
    return {int: "int", float: "float", str: "str", bool: "bool", type(None): "null"}[annotation]


def _checked(name, value, annotation):
    """`value` if it has the type `annotation` (int, float, str, bool, X | None, tuple[X, ...]), normalized."""
    if isinstance(annotation, types.UnionType):
        for member in typing.get_args(annotation):
            try:
                return _checked(name, value, member)
            except ValueError:
                pass
    elif typing.get_origin(annotation) is tuple:
        if isinstance(value, (list, tuple)):
            item_type = typing.get_args(annotation)[0]
            return tuple(_checked(f"{name}[{index}]", item, item_type) for index, item in enumerate(value))
    elif annotation is type(None):
        if value is None:
            return value
    elif annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif annotation is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, annotation):
        return value
    raise ValueError(f"{name}={value!r} has the type {type(value).__name__}: expected {_type_name(annotation)}")
