"""A KerasHub GPT-2 preset directory, read with h5py (no keras_hub needed).

```
preset/
  config.json                         {"class_name": "GPT2Backbone", "config": {"vocabulary_size", "num_layers", ...}}
  model.weights.h5                    the backbone's weights, by Keras's layer paths (below)
  assets/tokenizer/vocabulary.json    token -> id
  assets/tokenizer/merges.txt         the BPE merges
```

In `model.weights.h5` each layer is a group `layers/<name>` whose `vars/0`, `vars/1`, ... are its weights in creation
order: `reversible_embedding` (V, D), `position_embedding` (P, D), `layer_normalization` (the final norm), and one
`transformer_decoder`, `transformer_decoder_1`, ... per block, inside which `_self_attention_layer/{query,key,value}_
dense` hold kernels (D, H, Dh) and biases (H, Dh) and `output_dense` (H, Dh, D) and (D,): the layout of tfllm's own
`CausalSelfAttention`, so the arrays are copied as they are.
"""

import os
import re

from tfllm.checkpoints.formats import CONFIG, CheckpointError, read_config, require_file, require_setting
from tfllm.checkpoints.gpt2_checkpoint import (
    GPT2_ACTIVATION, GPT2Checkpoint, gpt2_weight_shapes, require_shape, require_gpt2_vocabulary)
from tfllm.checks import require_divisible, require_positive_int
from tfllm.tokenizers.byte_pair_files import read_merges, read_vocabulary

WEIGHTS = "model.weights.h5"
VOCABULARY = os.path.join("assets", "tokenizer", "vocabulary.json")
MERGES = os.path.join("assets", "tokenizer", "merges.txt")
KERAS_HUB_LAYER_NORM_EPSILON = 1e-5  # GPT2Backbone's, fixed: its config does not carry it
# GPT2Backbone's config keys, each a positive integer (max_sequence_length has a default, but presets always save it)
SIZES = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "max_sequence_length")

# tfllm's name below a block -> the group below a `transformer_decoder` and the index of the weight in its `vars`.
_BLOCK_WEIGHTS = {
    "self_attention/query/kernel": ("_self_attention_layer/query_dense", 0),
    "self_attention/query/bias": ("_self_attention_layer/query_dense", 1),
    "self_attention/key/kernel": ("_self_attention_layer/key_dense", 0),
    "self_attention/key/bias": ("_self_attention_layer/key_dense", 1),
    "self_attention/value/kernel": ("_self_attention_layer/value_dense", 0),
    "self_attention/value/bias": ("_self_attention_layer/value_dense", 1),
    "self_attention/attention_output/kernel": ("_self_attention_layer/output_dense", 0),
    "self_attention/attention_output/bias": ("_self_attention_layer/output_dense", 1),
    "self_attention_layer_norm/gamma": ("_self_attention_layer_norm", 0),
    "self_attention_layer_norm/beta": ("_self_attention_layer_norm", 1),
    "feedforward_layer_norm/gamma": ("_feedforward_layer_norm", 0),
    "feedforward_layer_norm/beta": ("_feedforward_layer_norm", 1),
    "feedforward_intermediate_dense/kernel": ("_feedforward_intermediate_dense", 0),
    "feedforward_intermediate_dense/bias": ("_feedforward_intermediate_dense", 1),
    "feedforward_output_dense/kernel": ("_feedforward_output_dense", 0),
    "feedforward_output_dense/bias": ("_feedforward_output_dense", 1),
}
_MODEL_WEIGHTS = {
    "token_embedding/embeddings": ("layers/reversible_embedding", 0),
    "position_embedding/embeddings": ("layers/position_embedding", 0),
    "final_norm/gamma": ("layers/layer_normalization", 0),
    "final_norm/beta": ("layers/layer_normalization", 1),
}


def read_keras_hub_gpt2(path):
    """The KerasHub GPT-2 preset in the directory `path`, as a `GPT2Checkpoint`.

    Raises:
        CheckpointError: a missing file (named), a backbone of another class, a missing size or one that is not a
            positive integer, a num_heads that does not divide hidden_dim, a vocabulary whose size differs from the
            embedding's rows, a missing weight or one of the wrong shape (the tensor's path, expected, got).

    Example (`tests/gpt2_checkpoints.py` writes a preset with KerasHub; here only its config.json):

    >>> import json, os, tempfile
    >>> preset = tempfile.mkdtemp()
    >>> config = {"vocabulary_size": 50257, "num_layers": 12, "num_heads": 12, "hidden_dim": 768,
    ...           "intermediate_dim": 3072, "max_sequence_length": 1024}
    >>> with open(os.path.join(preset, "config.json"), "w") as file:
    ...     json.dump({"class_name": "GPT2Backbone", "config": config}, file)
    >>> read_keras_hub_gpt2(preset)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: ... has no model.weights.h5: the checkpoint is incomplete
    """
    path = os.fspath(path)
    source_config = read_config(path)
    if source_config.get("class_name") != "GPT2Backbone":
        raise CheckpointError(f"{path} holds a KerasHub {source_config.get('class_name')}: only GPT-2 (GPT2Backbone) "
                              "converts")
    arguments = model_arguments(source_config.get("config", {}), path)
    weights_path = require_file(path, WEIGHTS)
    vocabulary_path, merges_path = require_file(path, VOCABULARY), require_file(path, MERGES)
    vocabulary = read_vocabulary(vocabulary_path)
    require_gpt2_vocabulary(vocabulary, arguments["vocab_size"], vocabulary_path)
    weights = _read_weights(weights_path, arguments)
    merges, _ = read_merges(merges_path)
    return GPT2Checkpoint(path, "keras_hub", source_config, arguments, weights, vocabulary, merges)


def model_arguments(config, path):
    """The `TransformerLM` arguments of a `GPT2Backbone` config, every size checked before a weight is read: each a
    positive integer, and num_heads a divisor of hidden_dim, since each head gets hidden_dim / num_heads of the
    width."""
    config_path = os.path.join(path, CONFIG)
    for key in SIZES:
        if config.get(key) is None:
            raise CheckpointError(f"{config_path} lacks the GPT2Backbone setting {key} (an integer)")
    sizes = {key: require_setting(config_path, require_positive_int, key, config[key]) for key in SIZES}
    require_setting(config_path, require_divisible, "hidden_dim", sizes["hidden_dim"], "num_heads", sizes["num_heads"])
    return {"vocab_size": sizes["vocabulary_size"], "num_layers": sizes["num_layers"],
            "num_heads": sizes["num_heads"], "hidden_dim": sizes["hidden_dim"],
            "intermediate_dim": sizes["intermediate_dim"], "max_sequence_length": sizes["max_sequence_length"],
            "activation": GPT2_ACTIVATION, "layer_norm_epsilon": KERAS_HUB_LAYER_NORM_EPSILON}


def _read_weights(weights_path, arguments):
    """`{tfllm name: array}` from `model.weights.h5`, every tensor checked against `gpt2_weight_shapes`."""
    import h5py  # a Keras dependency; imported here so that `import tfllm` stays light

    shapes = gpt2_weight_shapes(arguments)
    with h5py.File(weights_path, "r") as file:
        blocks = _block_groups(file, weights_path)
        if len(blocks) != arguments["num_layers"]:
            raise CheckpointError(f"{weights_path} has {len(blocks)} transformer_decoder layers: {CONFIG} says "
                                  f"num_layers={arguments['num_layers']}")
        locations = dict(_MODEL_WEIGHTS)
        for index, block in enumerate(blocks):
            for name, (group, position) in _BLOCK_WEIGHTS.items():
                locations[f"block_{index}/{name}"] = (f"{block}/{group}", position)
        weights = {}
        for name, (group, position) in locations.items():
            tensor = f"{group}/vars/{position}"
            if tensor not in file:
                raise CheckpointError(f"{weights_path} has no tensor {tensor} (tfllm's {name})")
            weights[name] = require_shape(tensor, file[tensor][()], shapes[name])
    return weights


def _block_groups(file, weights_path):
    """The groups of the Transformer blocks, `layers/transformer_decoder`, `..._1`, ..., in the order of the
    blocks."""
    if "layers" not in file:
        raise CheckpointError(f"{weights_path} has no group layers: expected the weights of a KerasHub backbone")
    numbered = []
    for name in file["layers"]:
        match = re.fullmatch(r"transformer_decoder(?:_(\d+))?", name)
        if match:
            numbered.append((int(match[1] or 0), f"layers/{name}"))
    return [group for _, group in sorted(numbered)]
