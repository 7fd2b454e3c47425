"""GPT-2 checkpoints written by the reference libraries, with small random weights, for the converter tests.

`write_keras_hub_preset` saves a KerasHub `GPT2CausalLM` (its `GPT2Tokenizer` on the BPE files of `tests/bpe_files.py`)
with `save_to_preset`; `write_hugging_face_directory` writes what a Hugging Face GPT-2 directory holds: `config.json`
from `transformers.GPT2Config`, the tokenizer files from `transformers.GPT2TokenizerFast`, and `model.safetensors`
with Hugging Face's tensor names and layouts, holding the same weights as the KerasHub model (PyTorch is not
installed, so the tensors are written from numpy). The weights are drawn large enough that the logits are far from
ties, so greedy decoding is the same under float32 round-off.
"""

import atexit
import functools
import json
import os
import shutil
import tempfile
import typing

import numpy as np

from tests.bpe_files import write_byte_level_bpe

TINY_GPT2 = {"num_layers": 2, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 128, "max_sequence_length": 64}
VOCAB_SIZE = 1000


def bpe_files(directory, vocab_size=VOCAB_SIZE):
    """`(vocabulary dict, merges list)` of the test BPE, written to `directory`."""
    vocab_path, merges_path = write_byte_level_bpe(directory, vocab_size=vocab_size)
    with open(vocab_path, encoding="utf-8") as file:
        vocabulary = json.load(file)
    with open(merges_path, encoding="utf-8") as file:
        merges = [line.rstrip("\n") for line in file if line.strip() and not line.startswith("#version")]
    return vocabulary, merges


def keras_hub_gpt2(directory, seed=0, **settings):
    """A KerasHub `GPT2CausalLM` with random weights (seeded) and the test BPE; `directory` receives the BPE files."""
    import keras_hub

    vocabulary, merges = bpe_files(os.path.join(directory, "bpe"))
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocabulary, merges=merges)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer, sequence_length=16)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=len(vocabulary), dropout=0.0,
                                             **{**TINY_GPT2, **settings})
    _randomize(backbone, seed)
    return keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)


def _randomize(backbone, seed):
    """Every weight drawn from a normal distribution: embeddings and kernels wide enough that the logits spread,
    layer-norm scales around 1."""
    rng = np.random.default_rng(seed)
    for variable in backbone.weights:
        shape, name = tuple(variable.shape), variable.path
        if name.endswith("gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif "embedding" in name:
            value = 0.5 * rng.standard_normal(shape)
        elif name.endswith("bias") or name.endswith("beta"):
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(shape[0])
        variable.assign(value.astype("float32"))


def write_keras_hub_preset(directory, seed=0, **settings):
    """Saves a KerasHub GPT-2 preset with random weights into `directory/preset`; returns `(path, GPT2CausalLM)`."""
    model = keras_hub_gpt2(directory, seed, **settings)
    path = os.path.join(directory, "preset")
    model.save_to_preset(path)
    return path, model


def hugging_face_tensors(backbone, prefix="transformer."):
    """`{name: array}` of the KerasHub `backbone`'s weights with Hugging Face GPT-2's names and layouts: Conv1D
    weights (in, out), the query, key and value projections packed into `c_attn` (D, 3 D)."""
    width = backbone.hidden_dim
    tensors = {"wte.weight": backbone.token_embedding.embeddings,
               "wpe.weight": backbone.position_embedding.position_embeddings,
               "ln_f.weight": backbone.layer_norm.gamma, "ln_f.bias": backbone.layer_norm.beta}
    for index, layer in enumerate(backbone.transformer_layers):
        attention = layer._self_attention_layer
        kernels = [dense.kernel.numpy().reshape(width, width)  # (D, H, Dh) -> (D, D)
                   for dense in (attention.query_dense, attention.key_dense, attention.value_dense)]
        biases = [dense.bias.numpy().reshape(width) for dense in
                  (attention.query_dense, attention.key_dense, attention.value_dense)]
        tensors.update({
            f"h.{index}.ln_1.weight": layer._self_attention_layer_norm.gamma,
            f"h.{index}.ln_1.bias": layer._self_attention_layer_norm.beta,
            f"h.{index}.attn.c_attn.weight": np.concatenate(kernels, axis=1),
            f"h.{index}.attn.c_attn.bias": np.concatenate(biases),
            f"h.{index}.attn.c_proj.weight": attention.output_dense.kernel.numpy().reshape(width, width),
            f"h.{index}.attn.c_proj.bias": attention.output_dense.bias,
            f"h.{index}.ln_2.weight": layer._feedforward_layer_norm.gamma,
            f"h.{index}.ln_2.bias": layer._feedforward_layer_norm.beta,
            f"h.{index}.mlp.c_fc.weight": layer._feedforward_intermediate_dense.kernel,
            f"h.{index}.mlp.c_fc.bias": layer._feedforward_intermediate_dense.bias,
            f"h.{index}.mlp.c_proj.weight": layer._feedforward_output_dense.kernel,
            f"h.{index}.mlp.c_proj.bias": layer._feedforward_output_dense.bias,
        })
    return {prefix + name: np.ascontiguousarray(np.asarray(value), dtype="float32") for name, value in tensors.items()}


def write_hugging_face_directory(directory, backbone, prefix="transformer.", name="hf", **config):
    """Writes a Hugging Face GPT-2 directory holding `backbone`'s weights into `directory/name`; returns its path.

    Its files are those of the hub's `openai-community/gpt2`: `config.json`, `model.safetensors`, `vocab.json`,
    `merges.txt` and `tokenizer.json` (transformers 5 writes only the last: the first two are copied from the BPE
    files of `directory/bpe`). `config` overrides `GPT2Config` settings (e.g. `model_type`)."""
    from safetensors.numpy import save_file
    from transformers import GPT2Config, GPT2TokenizerFast

    path = os.path.join(directory, name)
    settings = dict(vocab_size=backbone.vocabulary_size, n_positions=backbone.max_sequence_length,
                    n_embd=backbone.hidden_dim, n_layer=backbone.num_layers, n_head=backbone.num_heads,
                    n_inner=None if backbone.intermediate_dim == 4 * backbone.hidden_dim else backbone.intermediate_dim,
                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=backbone.vocabulary_size - 1,
                    eos_token_id=backbone.vocabulary_size - 1, architectures=["GPT2LMHeadModel"])
    GPT2Config(**settings).save_pretrained(path)
    if config:
        _update_json(os.path.join(path, "config.json"), config)
    bpe = os.path.join(directory, "bpe")
    vocabulary, merges = bpe_files(bpe)
    GPT2TokenizerFast(vocab=vocabulary, merges=[tuple(merge.split(" ")) for merge in merges]).save_pretrained(path)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(bpe, name), os.path.join(path, name))
    save_file(hugging_face_tensors(backbone, prefix), os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    return path


def _update_json(path, changes):
    with open(path, encoding="utf-8") as file:
        values = json.load(file)
    values.update(changes)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(values, file, indent=2)


@functools.lru_cache(maxsize=None)
def reference_checkpoints():
    """One KerasHub preset and one Hugging Face directory of the same random GPT-2, written once per process into a
    temporary folder (removed when the process ends): `ReferenceCheckpoints(folder, preset, hugging_face,
    keras_hub_model)`. Treat them as read-only (copy one before breaking it)."""
    folder = tempfile.mkdtemp(prefix="tfllm-gpt2-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    preset, model = write_keras_hub_preset(folder)
    return ReferenceCheckpoints(folder, preset, write_hugging_face_directory(folder, model.backbone), model)


class ReferenceCheckpoints(typing.NamedTuple):
    folder: str
    preset: str
    hugging_face: str
    keras_hub_model: object
