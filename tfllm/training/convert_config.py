"""`ConvertConfig`: what a converted checkpoint's run directory records (`convert.json`)."""

import dataclasses

from tfllm.checkpoints.formats import FORMATS
from tfllm.checks import require_choice, require_positive_int

DEFAULT_SEQUENCE_LENGTH = 256  # a fine-tuning's sequences, when the context is longer: GPT-2's 1,024 is slow on CPUs


@dataclasses.dataclass(frozen=True)
class ConvertConfig:
    """The checkpoint a "convert" run came from, and what the run answers for it.

    Attributes:
        source: the absolute path of the checkpoint directory.
        format: "keras_hub" or "hugging_face".
        checkpoint_config: the checkpoint's own `config.json`, as it was read.
        sequence_length: tokens per sequence of a fine-tuning that names none: min(context, 256).

    A converted model was trained on no corpus tfllm knows (`corpus` is None: `tfllm evaluate` asks for one) and is
    float32 (`precision`).

    Example:

    >>> config = ConvertConfig.for_checkpoint("/models/gpt2", "hugging_face", {"model_type": "gpt2"}, context=1024)
    >>> config.sequence_length, config.precision, config.corpus
    (256, 'float32', None)
    >>> ConvertConfig.from_dict(config.to_dict()) == config
    True
    """

    source: str
    format: str
    checkpoint_config: dict
    sequence_length: int

    precision = "float32"
    corpus = None

    @classmethod
    def for_checkpoint(cls, source, format, checkpoint_config, context):
        """The config of a conversion of a model whose context is `context` tokens."""
        return cls(source, format, checkpoint_config, min(context, DEFAULT_SEQUENCE_LENGTH)).validate()

    @classmethod
    def from_dict(cls, values):
        """The config of `convert.json`'s object; a missing or unknown key raises a `ValueError` naming it."""
        names = [field.name for field in dataclasses.fields(cls)]
        if not isinstance(values, dict) or set(values) != set(names):
            given = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise ValueError(f"expected the keys {', '.join(names)}; got {given}")
        return cls(**values).validate()

    def to_dict(self):
        return dataclasses.asdict(self)

    def validate(self):
        """Checks every value; returns the config."""
        require_choice("format", self.format, FORMATS)
        require_positive_int("sequence_length", self.sequence_length)
        if not isinstance(self.source, str):
            raise ValueError(f"source={self.source!r} is invalid: expected the checkpoint's path, a string")
        if not isinstance(self.checkpoint_config, dict):
            raise ValueError(f"checkpoint_config is a {type(self.checkpoint_config).__name__}: expected the "
                             "checkpoint's config, a JSON object")
        return self
