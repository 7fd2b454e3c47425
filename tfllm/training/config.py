"""The configuration of a pretraining run: what model, on what text, trained how. Small frozen dataclasses.

A `RunConfig` is three sections, each a frozen dataclass: `model` (`ModelConfig`: the architecture and its sizes,
independent of the vocabulary), `data` (`DataConfig`: the corpus and the tokenizer) and `train` (`TrainConfig`: the
optimization, precision and bookkeeping). A run directory stores it as `config.json`, so a run can always be
rebuilt and resumed exactly as it was started.

Every default value lives in one table, `DEFAULTS`, below: the data defaults, then the model and training defaults
of each architecture. `RunConfig.default(architecture)` reads it; nothing else holds a default size.

Types are checked when a section is made (`from_dict` and the constructors raise a `ValueError` naming the key and
the expected type); values are checked by `RunConfig.validate`, which pretraining calls before any long work.
"""

import dataclasses
import json
import math
import numbers
import types
import typing

from tfllm.training.atomic import atomic_write_text

ARCHITECTURES = ("transformer", "lstm", "rnn")
TOKENIZERS = ("byte", "char", "wordpiece", "sentencepiece")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
POSITION_EMBEDDINGS = ("learned", "rotary")
JIT_COMPILE = ("auto", True, False)
DEFAULT_ARCHITECTURE = "transformer"

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
    "eval_every": 400,
    "validation_steps": 10,
    "checkpoint_every": 200,
    "sample_every": 400,
    "sample_prompts": ("In the beginning", "And the LORD said", "Blessed are", "And it came to pass"),
    "sample_tokens": 64,
    "sample_temperature": 0.8,
    "sample_top_p": 0.9,
    "jit_compile": "auto",
}

# Every default, in one place. Measured on a 2-core CPU with the embedded KJV corpus: `tfllm train` (the
# Transformer) ends in about 7 minutes at about 1.4 bits per byte on the validation split (the goal: at most
# 10 minutes and 2.0 bits per byte). SentencePiece pieces of the KJV average 3.6 bytes, so a step of 16 x 128 tokens
# reads about 7 KB of text, 3.6 times what the byte tokenizer would read at nearly the same cost.
DEFAULTS = {
    "data": {"corpus": "kjv", "tokenizer": "sentencepiece", "clean": False},
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
}


class _Section:
    """Type checks (and light normalization: list -> tuple, int -> float) shared by the three sections."""

    section = None  # the key of the section in `RunConfig.to_dict()`, used to name fields in errors

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = _checked(f"{self.section}.{field.name}", getattr(self, field.name), hints[field.name])
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_dict(cls, values):
        """Makes the section from a dict; unknown keys, missing keys and wrong types raise a `ValueError`."""
        if not isinstance(values, dict):
            raise ValueError(f"{cls.section}={values!r} is invalid: expected a dict (a JSON object)")
        names = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(
                f"unknown key {cls.section}.{unknown[0]} in the config: expected keys of {cls.section} are "
                f"{', '.join(names)}"
            )
        missing = [name for name in names if name not in values]
        if missing:
            raise ValueError(f"the config has no {cls.section}.{missing[0]}: every key of {cls.section} is required")
        return cls(**values)

    def to_dict(self):
        """The section as a JSON-ready dict (tuples become lists)."""
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            for value in [getattr(self, field.name)]
        }


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """The architecture and its sizes; the vocabulary size comes from the tokenizer.

    Attributes:
        architecture: "transformer", "lstm" or "rnn" (`TransformerLM`, `LSTMLM`, `SimpleRNNLM`).
        num_layers: Transformer blocks or stacked recurrent layers.
        hidden_dim: D, the width of embeddings and hidden states.
        num_heads: attention heads (Transformer only; must divide `hidden_dim`; None for recurrent models).
        intermediate_dim: width of each block's MLP (Transformer only).
        max_sequence_length: the longest context (Transformer only; recurrent models read any length).
        dropout: rate in [0, 1).
        position_embedding: "learned" or "rotary" (Transformer only).

    Example:

    >>> ModelConfig.default("lstm").hidden_dim > 0
    True
    """

    section = "model"

    architecture: str
    num_layers: int
    hidden_dim: int
    num_heads: int | None
    intermediate_dim: int | None
    max_sequence_length: int | None
    dropout: float
    position_embedding: str | None

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
        vocab_size: the vocabulary size to learn: required for "wordpiece" and "sentencepiece", optional for "char"
            (None keeps every character), None for "byte".
        clean: run `tfllm.data.clean_text` on every document first (NFC, control characters out, whitespace
            folded). Off keeps the bytes as they are, which the lossless byte tokenizer wants.

    Example:

    >>> DataConfig.default()
    DataConfig(corpus='kjv', tokenizer='sentencepiece', vocab_size=4096, clean=False)
    >>> DataConfig.default("byte").vocab_size is None  # the byte tokenizer learns nothing
    True
    >>> DataConfig("kjv", "byte", None, clean="no")
    Traceback (most recent call last):
    ...
    ValueError: data.clean='no' has the type str: expected bool
    """

    section = "data"

    corpus: str
    tokenizer: str
    vocab_size: int | None
    clean: bool

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
        batch_size: sequences per batch, across all replicas (the global batch).
        sequence_length: tokens per sequence.
        learning_rate: peak of the warmup-cosine schedule, which decays over `steps`.
        warmup_steps: steps of linear warmup.
        weight_decay: AdamW's decoupled weight decay.
        gradient_accumulation_steps: batches whose gradients are averaged into one update (1: none).
        precision: "float32", "mixed_bfloat16" or "mixed_float16" (the Keras dtype policy while building the model).
        seed: seeds the weights, the data order and the samples.
        eval_every: steps between validations (the Keras "epoch").
        validation_steps: validation batches per validation; None reads the whole validation split.
        checkpoint_every: steps between checkpoints (and one at the end).
        sample_every: steps between samples; None samples only at the end.
        sample_prompts: prompts to continue in the samples.
        sample_tokens: new tokens per sample.
        sample_temperature: the temperature of the samples' draws; 0 is greedy decoding (which tends to repeat
            itself).
        sample_top_p: draw from the nucleus of this probability (top-p sampling); 1.0 turns it off.
        jit_compile: "auto" (XLA on accelerators), True or False.

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

    steps: int
    batch_size: int
    sequence_length: int
    learning_rate: float
    warmup_steps: int
    weight_decay: float
    gradient_accumulation_steps: int
    precision: str
    seed: int
    eval_every: int
    validation_steps: int | None
    checkpoint_every: int
    sample_every: int | None
    sample_prompts: tuple[str, ...]
    sample_tokens: int
    sample_temperature: float
    sample_top_p: float
    jit_compile: str | bool

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
    ValueError: model.hidden_dim=250 is not divisible by model.num_heads=4
    """

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    def __post_init__(self):
        for name, kind in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: expected a {kind.__name__}")

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
        sections = ("model", "data", "train")
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
            values = {
                "model": {"architecture": architecture, **DEFAULTS["model"][_known_architecture(architecture)],
                          **values["model"]},
                "data": _data_defaults(values["data"]),
                "train": {**DEFAULTS["train"][architecture], **values["train"]},
            }
        return cls(
            model=ModelConfig.from_dict(values["model"]),
            data=DataConfig.from_dict(values["data"]),
            train=TrainConfig.from_dict(values["train"]),
        )

    def to_dict(self):
        """The config as a JSON-ready dict of the three sections."""
        return {"model": self.model.to_dict(), "data": self.data.to_dict(), "train": self.train.to_dict()}

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
                raise ValueError(f"unknown section {name}: expected model, data or train")
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
        model, data, train = self.model, self.data, self.train
        _choice("model.architecture", model.architecture, ARCHITECTURES)
        _positive("model.num_layers", model.num_layers)
        _positive("model.hidden_dim", model.hidden_dim)
        _rate("model.dropout", model.dropout)
        if model.architecture == "transformer":
            for name in ("num_heads", "intermediate_dim", "max_sequence_length"):
                _positive(f"model.{name}", getattr(model, name), why=" (the Transformer needs it)")
            if model.hidden_dim % model.num_heads:
                raise ValueError(
                    f"model.hidden_dim={model.hidden_dim} is not divisible by model.num_heads={model.num_heads}"
                )
            _choice("model.position_embedding", model.position_embedding, POSITION_EMBEDDINGS)

        _choice("data.tokenizer", data.tokenizer, TOKENIZERS)
        if not data.corpus:
            raise ValueError("data.corpus='' is invalid: expected a corpus name (kjv, shakespeare) or a path")
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
        if data.vocab_size is not None and data.vocab_size < 5:
            raise ValueError(
                f"data.vocab_size={data.vocab_size} is invalid: expected at least 5 (4 special tokens and one more)"
            )

        for name in ("steps", "batch_size", "sequence_length", "gradient_accumulation_steps", "eval_every",
                     "checkpoint_every", "sample_tokens"):
            _positive(f"train.{name}", getattr(train, name))
        for name in ("validation_steps", "sample_every"):
            if getattr(train, name) is not None:
                _positive(f"train.{name}", getattr(train, name), why=" or None")
        if not (math.isfinite(train.learning_rate) and train.learning_rate > 0):
            raise ValueError(f"train.learning_rate={train.learning_rate!r} is invalid: expected a number > 0")
        if not (math.isfinite(train.weight_decay) and train.weight_decay >= 0):
            raise ValueError(f"train.weight_decay={train.weight_decay!r} is invalid: expected a number >= 0")
        if train.warmup_steps < 0:
            raise ValueError(f"train.warmup_steps={train.warmup_steps} is invalid: expected an integer >= 0")
        if train.seed < 0:
            raise ValueError(f"train.seed={train.seed} is invalid: expected an integer >= 0")
        if train.steps % train.gradient_accumulation_steps:
            raise ValueError(
                f"train.steps={train.steps} is not divisible by train.gradient_accumulation_steps="
                f"{train.gradient_accumulation_steps}: the last update would be left half accumulated"
            )
        _choice("train.precision", train.precision, PRECISIONS)
        if train.jit_compile not in JIT_COMPILE:
            raise ValueError(f"train.jit_compile={train.jit_compile!r} is invalid: expected 'auto', true or false")
        if not (math.isfinite(train.sample_temperature) and train.sample_temperature >= 0):
            raise ValueError(
                f"train.sample_temperature={train.sample_temperature!r} is invalid: expected a number >= 0 (0 is "
                "greedy)"
            )
        if not 0 < train.sample_top_p <= 1:
            raise ValueError(
                f"train.sample_top_p={train.sample_top_p!r} is invalid: expected a probability in (0, 1] (1 is off)"
            )
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
        num_replicas = _positive("num_replicas", num_replicas)
        if train.batch_size % num_replicas:
            raise ValueError(
                f"train.batch_size={train.batch_size} is not divisible by the number of replicas ({num_replicas}): "
                "every replica must get the same share of the global batch"
            )
        return self

    def __str__(self):
        lines = []
        for section, values in self.to_dict().items():
            lines.append(f"{section}:")
            lines.extend(f"  {key}: {json.dumps(value)}" for key, value in values.items())
        return "\n".join(lines)


def _data_defaults(values):
    """`values` with the missing data keys filled from `DEFAULTS`; the vocabulary size follows the tokenizer."""
    values = {**DEFAULTS["data"], **values}
    if "vocab_size" not in values:
        tokenizer = values["tokenizer"]
        values["vocab_size"] = DEFAULTS["vocab_size"].get(tokenizer) if isinstance(tokenizer, str) else None
    return values


def _known_architecture(architecture):
    return _choice("model.architecture", architecture, ARCHITECTURES)


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid: expected one of {', '.join(map(repr, choices))}")
    return value


def _positive(name, value, why=""):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid: expected a positive integer{why}")
    return int(value)


def _rate(name, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} is invalid: expected a rate in [0, 1)")
    return value


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
