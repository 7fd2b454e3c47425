"""GPT-2 checkpoints in: KerasHub presets and Hugging Face model directories, read without keras_hub or transformers.

`read_gpt2_checkpoint(path)` finds the directory's format (`checkpoint_format`) and reads it as a `GPT2Checkpoint`;
`tfllm.models.TransformerLM.from_pretrained(path)` builds the model from it, tokenizer attached.
"""

from tfllm.checkpoints.formats import FORMATS, CheckpointError, checkpoint_format
from tfllm.checkpoints.gpt2_checkpoint import GPT2Checkpoint, gpt2_weight_shapes
from tfllm.checkpoints.hugging_face_gpt2 import read_hugging_face_gpt2
from tfllm.checkpoints.keras_hub_gpt2 import read_keras_hub_gpt2

READERS = {"keras_hub": read_keras_hub_gpt2, "hugging_face": read_hugging_face_gpt2}


def read_gpt2_checkpoint(path):
    """The GPT-2 checkpoint in the local directory `path`, a KerasHub preset or a Hugging Face model directory.

    Returns:
        A `GPT2Checkpoint`: the format, the `TransformerLM` arguments, the weights in tfllm's names and layouts, and
        the tokenizer files.

    Raises:
        CheckpointError: (a `ValueError`, one line) the directory is neither format, holds another architecture,
            misses a file or a tensor, has a tensor of the wrong shape, or a vocabulary that does not fit the weights.

    Example:

    >>> import tempfile
    >>> read_gpt2_checkpoint(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: ... has no config.json: expected a KerasHub preset (config.json, ...
    """
    return READERS[checkpoint_format(path)](path)


__all__ = ["FORMATS", "CheckpointError", "GPT2Checkpoint", "checkpoint_format", "gpt2_weight_shapes",
           "read_gpt2_checkpoint", "read_hugging_face_gpt2", "read_keras_hub_gpt2"]
