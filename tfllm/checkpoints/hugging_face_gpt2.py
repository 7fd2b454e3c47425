"""A Hugging Face GPT-2 model directory, read with safetensors' numpy API (no transformers, no torch).

```
model/
  config.json          {"model_type": "gpt2", "n_layer", "n_head", "n_embd", "n_inner", "n_positions", "vocab_size",
                        "activation_function", "layer_norm_epsilon", ...}
  model.safetensors    wte.weight (V, D), wpe.weight (P, D), h.N.ln_1 / attn.c_attn / attn.c_proj / ln_2 / mlp.c_fc /
                       mlp.c_proj (.weight and .bias), ln_f; the names may carry a "transformer." prefix
  vocab.json           token -> id
  merges.txt           the BPE merges
  tokenizer.json       the tokenizers library's file; read for the vocabulary and merges when vocab.json and
                       merges.txt are absent (transformers 5 saves only this one)
```

GPT-2's projections are `Conv1D`s, whose weights are (in, out) like a Keras kernel; `c_attn` packs the query, key and
value projections side by side, (D, 3 D), each then split into heads (D, H, Dh).
"""

import json
import os

from tfllm.checkpoints.formats import CONFIG, CheckpointError, read_config, require_file, require_setting
from tfllm.checkpoints.gpt2_checkpoint import (
    GPT2Checkpoint, gpt2_weight_shapes, require_shape, require_gpt2_vocabulary)
from tfllm.checks import require_divisible, require_positive_int, require_positive_number
from tfllm.tokenizers.byte_pair_files import read_merges, read_vocabulary

WEIGHTS = "model.safetensors"
VOCABULARY = "vocab.json"
MERGES = "merges.txt"
TOKENIZER = "tokenizer.json"
PREFIX = "transformer."  # GPT2LMHeadModel's names; a bare GPT2Model's have none
# Hugging Face's activation_function -> tfllm's activation ("gelu_new" is GPT-2's tanh approximation).
ACTIVATIONS = {"gelu_new": "gelu_approximate", "gelu_pytorch_tanh": "gelu_approximate", "gelu": "gelu",
               "relu": "relu", "silu": "silu", "swish": "silu", "tanh": "tanh"}
DEFAULTS = {"n_positions": 1024, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}  # GPT2Config's
SIZES = ("vocab_size", "n_layer", "n_head", "n_embd", "n_positions")  # each a positive integer


def read_hugging_face_gpt2(path):
    """The Hugging Face GPT-2 model in the directory `path`, as a `GPT2Checkpoint`.

    Raises:
        CheckpointError: a missing file (named), another model_type, a setting tfllm's blocks do not have, a size
            that is not a positive integer or an n_head that does not divide n_embd, a layer_norm_epsilon that is not
            a positive number, a vocabulary whose size differs from the embedding's rows, a model.safetensors that
            safetensors cannot read, a missing tensor or one of the wrong shape (its name, expected, got).

    Example (`tests/gpt2_checkpoints.py` writes a whole directory; here only GPT-2 small's config.json):

    >>> import json, os, tempfile
    >>> directory = tempfile.mkdtemp()
    >>> config = {"model_type": "gpt2", "vocab_size": 50257, "n_layer": 12, "n_head": 12, "n_embd": 768}
    >>> with open(os.path.join(directory, "config.json"), "w") as file:
    ...     json.dump(config, file)
    >>> model_arguments(config, directory)  # doctest: +NORMALIZE_WHITESPACE
    {'vocab_size': 50257, 'num_layers': 12, 'num_heads': 12, 'hidden_dim': 768, 'intermediate_dim': 3072,
     'max_sequence_length': 1024, 'activation': 'gelu_approximate', 'layer_norm_epsilon': 1e-05}
    >>> read_hugging_face_gpt2(directory)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tfllm.checkpoints.formats.CheckpointError: ... has no model.safetensors: the checkpoint is incomplete
    """
    path = os.fspath(path)
    source_config = read_config(path)
    if source_config.get("model_type") != "gpt2":
        raise CheckpointError(f"{path} holds a Hugging Face {source_config.get('model_type')} model: only GPT-2 "
                              "(model_type \"gpt2\") converts")
    arguments = model_arguments(source_config, path)
    weights_path = require_file(path, WEIGHTS)
    vocabulary, merges, where = read_tokenizer(path)
    require_gpt2_vocabulary(vocabulary, arguments["vocab_size"], where)
    weights = _read_weights(weights_path, arguments)
    return GPT2Checkpoint(path, "hugging_face", source_config, arguments, weights, vocabulary, merges)


def read_tokenizer(path):
    """`(vocabulary, merges, the file(s) they came from)`: from `vocab.json` and `merges.txt`, or else from
    `tokenizer.json`'s BPE model."""
    if os.path.isfile(os.path.join(path, VOCABULARY)) or not os.path.isfile(os.path.join(path, TOKENIZER)):
        vocabulary_path, merges_path = require_file(path, VOCABULARY), require_file(path, MERGES)
        merges, _ = read_merges(merges_path)
        return read_vocabulary(vocabulary_path), merges, vocabulary_path
    tokenizer_path = os.path.join(path, TOKENIZER)
    try:
        with open(tokenizer_path, encoding="utf-8") as file:
            model = json.load(file)["model"]
        vocabulary, merges = model["vocab"], model["merges"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{tokenizer_path} is not a BPE tokenizer file ({type(error).__name__}: {error}) and "
                              f"{path} has no {VOCABULARY}") from None
    if model.get("type") != "BPE":
        raise CheckpointError(f"{tokenizer_path} holds a {model.get('type')} tokenizer: expected GPT-2's BPE")
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in merges]  # "a b" or ["a", "b"]
    return vocabulary, merges, tokenizer_path


def model_arguments(config, path):
    """The `TransformerLM` arguments of a `GPT2Config` (its defaults where a key is absent), every setting checked
    before a weight is read."""
    config = {**DEFAULTS, **config}
    config_path = os.path.join(path, CONFIG)
    sizes = _sizes(config, config_path)
    epsilon = require_setting(config_path, require_positive_number, "layer_norm_epsilon",
                              config["layer_norm_epsilon"])
    activation = config["activation_function"]
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise CheckpointError(f"{config_path} has activation_function={activation!r}: expected one of "
                              f"{', '.join(map(repr, ACTIVATIONS))}")
    unsupported = {"scale_attn_by_inverse_layer_idx": True, "scale_attn_weights": False, "add_cross_attention": True,
                   "tie_word_embeddings": False}
    for key, value in unsupported.items():
        if config.get(key) == value:
            raise CheckpointError(f"{config_path} has {key}={value}: tfllm's GPT-2 does not support it")
    return {"vocab_size": sizes["vocab_size"], "num_layers": sizes["n_layer"], "num_heads": sizes["n_head"],
            "hidden_dim": sizes["n_embd"], "intermediate_dim": sizes["n_inner"],
            "max_sequence_length": sizes["n_positions"], "activation": ACTIVATIONS[activation],
            "layer_norm_epsilon": epsilon}


def _sizes(config, config_path):
    """`{key: positive int}` of the config's `SIZES` and `n_inner` (None means 4 n_embd); n_head must divide n_embd,
    since each head gets n_embd / n_head of the width."""
    for key in SIZES:
        if config.get(key) is None:
            raise CheckpointError(f"{config_path} lacks the GPT-2 setting {key} (an integer)")
    sizes = {key: require_setting(config_path, require_positive_int, key, config[key]) for key in SIZES}
    require_setting(config_path, require_divisible, "n_embd", sizes["n_embd"], "n_head", sizes["n_head"])
    inner = config.get("n_inner")
    sizes["n_inner"] = 4 * sizes["n_embd"] if inner is None else require_setting(
        config_path, require_positive_int, "n_inner", inner)
    return sizes


def hugging_face_shapes(arguments):
    """`{Hugging Face name (no prefix): shape}` of a GPT-2 of `arguments` (tfllm's)."""
    width, inner = arguments["hidden_dim"], arguments["intermediate_dim"]
    shapes = {"wte.weight": (arguments["vocab_size"], width), "wpe.weight": (arguments["max_sequence_length"], width),
              "ln_f.weight": (width,), "ln_f.bias": (width,)}
    for index in range(arguments["num_layers"]):
        for name, shape in {"ln_1.weight": (width,), "ln_1.bias": (width,), "attn.c_attn.weight": (width, 3 * width),
                            "attn.c_attn.bias": (3 * width,), "attn.c_proj.weight": (width, width),
                            "attn.c_proj.bias": (width,), "ln_2.weight": (width,), "ln_2.bias": (width,),
                            "mlp.c_fc.weight": (width, inner), "mlp.c_fc.bias": (inner,),
                            "mlp.c_proj.weight": (inner, width), "mlp.c_proj.bias": (width,)}.items():
            shapes[f"h.{index}.{name}"] = shape
    return shapes


def _read_weights(weights_path, arguments):
    """`{tfllm name: array}` from `model.safetensors`: every tensor found and shape-checked first, then converted."""
    return _tfllm_weights(_read_tensors(weights_path, hugging_face_shapes(arguments)), arguments)


def _read_tensors(weights_path, shapes):
    """`{Hugging Face name (no prefix): float32 array}` of every tensor in `shapes`, each checked against its shape.
    A file safetensors cannot read (junk, truncated) is a `CheckpointError` naming it."""
    # The Hugging Face reader's own dependency: loaded only when it is used.
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(weights_path, framework="numpy") as file:
            stored = set(file.keys())
            prefix = PREFIX if f"{PREFIX}wte.weight" in stored else ""
            tensors = {}
            for name, shape in shapes.items():
                if prefix + name not in stored:
                    raise CheckpointError(f"{weights_path} has no tensor {prefix + name}")
                tensors[name] = require_shape(prefix + name, file.get_tensor(prefix + name), shape)
    except SafetensorError as error:
        raise CheckpointError(f"{weights_path} is not a readable safetensors file ({error})") from None
    return tensors


def _tfllm_weights(tensors, arguments):
    """Hugging Face's tensors (shapes checked), renamed and reshaped to tfllm's `gpt2_weight_shapes`."""
    width, heads = arguments["hidden_dim"], arguments["num_heads"]
    head_dim = width // heads
    weights = {"token_embedding/embeddings": tensors["wte.weight"],
               "position_embedding/embeddings": tensors["wpe.weight"],
               "final_norm/gamma": tensors["ln_f.weight"], "final_norm/beta": tensors["ln_f.bias"]}
    for index in range(arguments["num_layers"]):
        block, source = f"block_{index}", f"h.{index}"
        packed_kernel = tensors[f"{source}.attn.c_attn.weight"]  # (D, 3 D): query, key, value side by side
        packed_bias = tensors[f"{source}.attn.c_attn.bias"]  # (3 D,)
        for part, projection in enumerate(("query", "key", "value")):
            columns = slice(part * width, (part + 1) * width)
            weights[f"{block}/self_attention/{projection}/kernel"] = packed_kernel[:, columns].reshape(
                width, heads, head_dim)  # (D, H, Dh)
            weights[f"{block}/self_attention/{projection}/bias"] = packed_bias[columns].reshape(heads, head_dim)
        weights[f"{block}/self_attention/attention_output/kernel"] = tensors[f"{source}.attn.c_proj.weight"].reshape(
            heads, head_dim, width)  # (H, Dh, D): the heads' rows, in order
        weights[f"{block}/self_attention/attention_output/bias"] = tensors[f"{source}.attn.c_proj.bias"]
        weights[f"{block}/self_attention_layer_norm/gamma"] = tensors[f"{source}.ln_1.weight"]
        weights[f"{block}/self_attention_layer_norm/beta"] = tensors[f"{source}.ln_1.bias"]
        weights[f"{block}/feedforward_layer_norm/gamma"] = tensors[f"{source}.ln_2.weight"]
        weights[f"{block}/feedforward_layer_norm/beta"] = tensors[f"{source}.ln_2.bias"]
        weights[f"{block}/feedforward_intermediate_dense/kernel"] = tensors[f"{source}.mlp.c_fc.weight"]
        weights[f"{block}/feedforward_intermediate_dense/bias"] = tensors[f"{source}.mlp.c_fc.bias"]
        weights[f"{block}/feedforward_output_dense/kernel"] = tensors[f"{source}.mlp.c_proj.weight"]
        weights[f"{block}/feedforward_output_dense/bias"] = tensors[f"{source}.mlp.c_proj.bias"]
    return weights
