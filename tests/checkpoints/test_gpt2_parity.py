"""GPT-2 checkpoints converted by tfllm compute what the reference implementation computes from the same files.

The references (`tests/gpt2_checkpoints.py`): a KerasHub `GPT2CausalLM` with random weights saved with
`save_to_preset`, and a Hugging Face directory of the same weights, which KerasHub's own Hugging Face converter reads
back (`GPT2CausalLM.from_preset(directory)`) as the independent reading of that format.
"""

import os
import shutil

import numpy as np
import pytest

from tests.gpt2_checkpoints import reference_checkpoints, write_hugging_face_directory
from tfllm.checkpoints import read_gpt2_checkpoint
from tfllm.models import TransformerLM

TOKEN_IDS = np.random.default_rng(7).integers(0, 1000, (2, 24)).astype("int32")  # (B, T)


def keras_hub_logits(model, token_ids):
    return model({"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}).numpy()  # (B, T, V)


@pytest.fixture(scope="module")
def references():
    return reference_checkpoints()


@pytest.fixture(scope="module")
def converted(references):
    return {"keras_hub": TransformerLM.from_pretrained(references.preset),
            "hugging_face": TransformerLM.from_pretrained(references.hugging_face)}


def test_logits_equal_keras_hub_for_its_preset(references, converted):
    want = keras_hub_logits(references.keras_hub_model, TOKEN_IDS)
    assert want.std() > 1.0  # far from ties
    np.testing.assert_allclose(converted["keras_hub"](TOKEN_IDS).numpy(), want, atol=1e-4, rtol=0)


def test_logits_equal_keras_hubs_own_reading_of_the_hugging_face_directory(references, converted):
    import keras_hub

    reference = keras_hub.models.GPT2CausalLM.from_preset(references.hugging_face)
    want = keras_hub_logits(reference, TOKEN_IDS)
    np.testing.assert_allclose(converted["hugging_face"](TOKEN_IDS).numpy(), want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("format, prompt", [("keras_hub", "In the beginning"),
                                            ("hugging_face", "And God said, Let there be light: 天气如何？")])
def test_greedy_generation_equals_keras_hubs_token_for_token(references, converted, format, prompt):
    # KerasHub's preprocessor puts <|endoftext|> before the prompt, and so does tfllm's generate (its bos): the same
    # ids go in. KerasHub's max_length counts that token and the prompt's, so tfllm gets the rest as new tokens.
    reference = references.keras_hub_model
    reference.compile(sampler="greedy", jit_compile=False)  # XLA is not the point here, and compiles slowly
    model = converted[format]
    max_length = 40
    prompt_ids = model.tokenizer.tokenize([prompt]).to_list()[0]
    want = reference.generate(prompt, max_length=max_length)
    got = model.generate(prompt, max_new_tokens=max_length - 1 - len(prompt_ids), sampler="greedy", jit_compile=False)
    assert got == want
    assert len(model.tokenizer.tokenize([got]).to_list()[0]) > len(prompt_ids) + 10  # it did generate


def test_the_config_is_honoured(converted):
    model = converted["hugging_face"]
    assert (model.num_layers, model.num_heads, model.hidden_dim, model.intermediate_dim, model.max_sequence_length,
            model.vocab_size) == (2, 2, 32, 128, 64, 1000)
    assert (model.activation, model.layer_norm_epsilon, model.tokenizer.eos_id) == ("gelu_approximate", 1e-5, 999)


def test_hugging_face_variants_read_the_same(references, tmp_path):
    """Names without the "transformer." prefix (a bare GPT2Model's), and only tokenizer.json for the tokenizer (as
    transformers 5 saves it); n_inner, n_positions and layer_norm_epsilon set in config.json are honoured."""
    backbone = references.keras_hub_model.backbone
    shutil.copytree(os.path.join(references.folder, "bpe"), tmp_path / "bpe")
    path = write_hugging_face_directory(tmp_path, backbone, prefix="", n_inner=128, layer_norm_epsilon=1e-3,
                                        activation_function="gelu")
    os.remove(os.path.join(path, "vocab.json"))
    os.remove(os.path.join(path, "merges.txt"))
    checkpoint = read_gpt2_checkpoint(path)
    reference = read_gpt2_checkpoint(references.hugging_face)
    assert checkpoint.vocabulary == reference.vocabulary and list(checkpoint.merges) == list(reference.merges)
    assert {name: weight.tolist() for name, weight in checkpoint.weights.items()} == {
        name: weight.tolist() for name, weight in reference.weights.items()}
    assert checkpoint.model_arguments == {**reference.model_arguments, "layer_norm_epsilon": 1e-3,
                                          "activation": "gelu"}
