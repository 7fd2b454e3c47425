"""Which format a checkpoint directory is in, and the errors of reading one.

`checkpoint_format(path)` reads only `config.json`: a KerasHub preset's names a Keras class (`"class_name":
"GPT2Backbone"`), a Hugging Face model's a `model_type` (`"gpt2"`). Anything else, or another architecture, is a
`CheckpointError` (a `ValueError`) of one line, raised before any weight is read.
"""

import json
import os

FORMATS = ("keras_hub", "hugging_face")
CONFIG = "config.json"  # both formats describe the model in it
KERAS_HUB_GPT2 = "GPT2Backbone"
HUGGING_FACE_GPT2 = "gpt2"


class CheckpointError(ValueError):
    """A checkpoint directory tfllm cannot convert: the message names the file, tensor or setting, and what was
    expected. A `ValueError`, so the command line reports it as bad input (exit status 2).

    Example:

    >>> import tempfile
    >>> try:
    ...     checkpoint_format(tempfile.mkdtemp())
    ... except CheckpointError as error:
    ...     print(isinstance(error, ValueError), str(error).split(": ")[0].endswith("has no config.json"))
    True True
    """


def checkpoint_format(path):
    """`"keras_hub"` or `"hugging_face"`: the format of the GPT-2 checkpoint directory `path`.

    Raises:
        CheckpointError: `path` is not a directory, has no `config.json`, is neither format, or holds a model of
            another architecture (named).

    Example:

    >>> import json, os, tempfile
    >>> directory = tempfile.mkdtemp()
    >>> with open(os.path.join(directory, "config.json"), "w") as file:
    ...     json.dump({"model_type": "gpt2", "n_layer": 12}, file)
    >>> checkpoint_format(directory)
    'hugging_face'
    >>> with open(os.path.join(directory, "config.json"), "w") as file:
    ...     json.dump({"model_type": "llama"}, file)
    >>> checkpoint_format(directory)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: ... holds a Hugging Face llama model: only GPT-2 (model_type "gpt2") ...
    """
    config = read_config(path)
    if "class_name" in config and "config" in config:
        if config["class_name"] != KERAS_HUB_GPT2:
            raise CheckpointError(f"{path} holds a KerasHub {config['class_name']}: only GPT-2 ({KERAS_HUB_GPT2}) "
                                  "converts")
        return "keras_hub"
    if "model_type" in config:
        if config["model_type"] != HUGGING_FACE_GPT2:
            raise CheckpointError(f"{path} holds a Hugging Face {config['model_type']} model: only GPT-2 (model_type "
                                  f"\"{HUGGING_FACE_GPT2}\") converts")
        return "hugging_face"
    raise CheckpointError(
        f"{path}/{CONFIG} is neither a KerasHub preset's (a \"class_name\" such as \"{KERAS_HUB_GPT2}\") nor a Hugging "
        f"Face model's (a \"model_type\" such as \"{HUGGING_FACE_GPT2}\")"
    )


def read_config(path):
    """The JSON object of `path/config.json`; a missing directory or file, or bad JSON, is a `CheckpointError`."""
    if not os.path.isdir(path):
        raise CheckpointError(f"{path} is not a directory: expected a KerasHub GPT-2 preset or a Hugging Face GPT-2 "
                              "model directory")
    config_path = os.path.join(path, CONFIG)
    if not os.path.isfile(config_path):
        raise CheckpointError(
            f"{path} has no {CONFIG}: expected a KerasHub preset ({CONFIG}, model.weights.h5, assets/tokenizer/) or a "
            f"Hugging Face model directory ({CONFIG}, model.safetensors, vocab.json, merges.txt)"
        )
    try:
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_path} is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} holds a {type(config).__name__}: expected a JSON object")
    return config


def require_file(path, name):
    """`path/name`, which must exist; else a `CheckpointError` naming it."""
    file_path = os.path.join(path, name)
    if not os.path.isfile(file_path):
        raise CheckpointError(f"{path} has no {name}: the checkpoint is incomplete")
    return file_path


def require_setting(config_path, check, *arguments):
    """`check(*arguments)`, a rule of `tfllm.checks`, whose `ValueError` becomes a `CheckpointError` naming
    `config_path`: how both readers check a config's settings.

    >>> from tfllm.checks import require_positive_int
    >>> require_setting("preset/config.json", require_positive_int, "num_heads", 0)
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: preset/config.json: num_heads=0 is invalid: expected a positive integer
    """
    try:
        return check(*arguments)
    except ValueError as error:
        raise CheckpointError(f"{config_path}: {str(error).rstrip('.')}") from None
