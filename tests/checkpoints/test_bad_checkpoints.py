"""A checkpoint tfllm cannot convert is refused with one line naming the problem, before the model is built."""

import json
import os
import re
import shutil

import h5py
import numpy as np
import pytest

from tests.gpt2_checkpoints import reference_checkpoints
from tfllm.checkpoints import CheckpointError, read_gpt2_checkpoint
from tfllm.models import TransformerLM


@pytest.fixture(scope="module")
def references():
    return reference_checkpoints()


@pytest.fixture
def preset(references, tmp_path):
    return shutil.copytree(references.preset, tmp_path / "preset")


@pytest.fixture
def hugging_face(references, tmp_path):
    return shutil.copytree(references.hugging_face, tmp_path / "hf")


def refused(path):
    """The one-line message `TransformerLM.from_pretrained(path)` refuses `path` with."""
    with pytest.raises(ValueError) as error:
        TransformerLM.from_pretrained(path)
    message = str(error.value)
    assert "\n" not in message
    return message.replace(os.fspath(path), "DIR")


def edit_json(path, **changes):
    with open(path, encoding="utf-8") as file:
        values = json.load(file)
    values.update(changes)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(values, file)


def test_a_directory_of_neither_format(tmp_path):
    assert refused(tmp_path) == ("DIR has no config.json: expected a KerasHub preset (config.json, model.weights.h5, "
                                 "assets/tokenizer/) or a Hugging Face model directory (config.json, "
                                 "model.safetensors, vocab.json, merges.txt)")
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    assert refused(tmp_path) == ('DIR/config.json is neither a KerasHub preset\'s (a "class_name" such as '
                                 '"GPT2Backbone") nor a Hugging Face model\'s (a "model_type" such as "gpt2")')
    assert refused(tmp_path / "missing") == ("DIR is not a directory: expected a KerasHub GPT-2 preset or a Hugging "
                                             "Face GPT-2 model directory")


@pytest.mark.parametrize("where, change, expected", [
    ("keras_hub", {"class_name": "LlamaBackbone"}, "DIR holds a KerasHub LlamaBackbone: only GPT-2 (GPT2Backbone) "
                                                   "converts"),
    ("hugging_face", {"model_type": "llama"}, 'DIR holds a Hugging Face llama model: only GPT-2 (model_type "gpt2") '
                                              "converts"),
    ("hugging_face", {"model_type": "bert"}, 'DIR holds a Hugging Face bert model: only GPT-2 (model_type "gpt2") '
                                             "converts"),
])
def test_another_architecture_is_named(preset, hugging_face, where, change, expected):
    path = preset if where == "keras_hub" else hugging_face
    edit_json(path / "config.json", **change)
    assert refused(path) == expected


@pytest.mark.parametrize("where, name", [("keras_hub", "model.weights.h5"),
                                         ("keras_hub", "assets/tokenizer/vocabulary.json"),
                                         ("keras_hub", "assets/tokenizer/merges.txt"),
                                         ("hugging_face", "model.safetensors"), ("hugging_face", "merges.txt")])
def test_a_missing_file_is_named(preset, hugging_face, where, name):
    path = preset if where == "keras_hub" else hugging_face
    os.remove(path / name)
    assert refused(path) == f"DIR has no {name}: the checkpoint is incomplete"


def test_a_vocabulary_that_does_not_fit_the_embedding(preset, hugging_face):
    for path, name in ((preset, "assets/tokenizer/vocabulary.json"), (hugging_face, "vocab.json")):
        edit_json(path / name, **{"<|extra|>": 1000})
        assert refused(path) == (f"the vocabulary DIR/{name} has 1001 tokens but the embedding has 1000 rows: the "
                                 "tokenizer does not belong to these weights")


def test_a_vocabulary_without_gpt2s_end_of_text_token(preset, hugging_face):
    # It converted, and the run then failed in generate, evaluate and export (a tokenizer without bos and eos).
    for path, name in ((preset, "assets/tokenizer/vocabulary.json"), (hugging_face, "vocab.json")):
        with open(path / name, encoding="utf-8") as file:
            vocabulary = json.load(file)
        vocabulary["</s>"] = vocabulary.pop("<|endoftext|>")
        with open(path / name, "w", encoding="utf-8") as file:
            json.dump(vocabulary, file)
        assert refused(path) == (f"the vocabulary DIR/{name} has no <|endoftext|>, GPT-2's token that begins and ends "
                                 "every text: this tokenizer is not GPT-2's")


def test_a_missing_or_misshapen_hugging_face_tensor(hugging_face):
    from safetensors.numpy import load_file, save_file

    weights_path = hugging_face / "model.safetensors"
    tensors = load_file(weights_path)
    save_file({name: value for name, value in tensors.items() if name != "transformer.h.1.mlp.c_fc.bias"},
              weights_path)
    assert refused(hugging_face) == "DIR/model.safetensors has no tensor transformer.h.1.mlp.c_fc.bias"
    save_file({**tensors, "transformer.h.0.attn.c_attn.weight": np.zeros((32, 64), "float32")}, weights_path)
    assert refused(hugging_face) == ("the tensor transformer.h.0.attn.c_attn.weight has the shape (32, 64): expected "
                                     "(32, 96)")


def test_a_missing_or_misshapen_keras_hub_tensor(preset):
    query = "layers/transformer_decoder_1/_self_attention_layer/query_dense/vars/0"
    with h5py.File(preset / "model.weights.h5", "r+") as file:
        del file[query]
    assert refused(preset) == (f"DIR/model.weights.h5 has no tensor {query} (tfllm's "
                               "block_1/self_attention/query/kernel)")
    with h5py.File(preset / "model.weights.h5", "r+") as file:
        file[query] = np.zeros((32, 4, 8), "float32")
    assert refused(preset) == f"the tensor {query} has the shape (32, 4, 8): expected (32, 2, 16)"


def test_a_wrong_setting_in_the_config(preset, hugging_face):
    edit_json(hugging_face / "config.json", activation_function="gelu_fast")
    assert re.fullmatch(r"DIR/config.json has activation_function='gelu_fast': expected one of 'gelu_new', .*",
                        refused(hugging_face))
    config = json.loads((preset / "config.json").read_text())
    del config["config"]["num_heads"]
    (preset / "config.json").write_text(json.dumps(config))
    assert refused(preset) == "DIR/config.json lacks the GPT2Backbone setting num_heads (an integer)"


@pytest.mark.parametrize("change, expected", [
    ({"n_head": 3}, "DIR/config.json: n_embd=32 is not divisible by n_head=3"),
    ({"n_head": 0}, "DIR/config.json: n_head=0 is invalid: expected a positive integer"),
    ({"n_layer": -1}, "DIR/config.json: n_layer=-1 is invalid: expected a positive integer"),
    ({"n_inner": 0}, "DIR/config.json: n_inner=0 is invalid: expected a positive integer"),
    ({"layer_norm_epsilon": None}, "DIR/config.json: layer_norm_epsilon=None is invalid: expected a number > 0"),
    ({"layer_norm_epsilon": 0}, "DIR/config.json: layer_norm_epsilon=0 is invalid: expected a number > 0"),
])
def test_a_hugging_face_size_or_epsilon_out_of_range(hugging_face, change, expected):
    edit_json(hugging_face / "config.json", **change)
    assert refused(hugging_face) == expected



# GPT2Backbone's config holds no layer-norm epsilon (KerasHub fixes it at 1e-5), so only its sizes can be out of range.
@pytest.mark.parametrize("change, expected", [
    ({"num_heads": 3}, "DIR/config.json: hidden_dim=32 is not divisible by num_heads=3"),
    ({"num_heads": 0}, "DIR/config.json: num_heads=0 is invalid: expected a positive integer"),
    ({"num_layers": -1}, "DIR/config.json: num_layers=-1 is invalid: expected a positive integer"),
    ({"hidden_dim": -32}, "DIR/config.json: hidden_dim=-32 is invalid: expected a positive integer"),
    ({"intermediate_dim": 0}, "DIR/config.json: intermediate_dim=0 is invalid: expected a positive integer"),
    ({"vocabulary_size": 0}, "DIR/config.json: vocabulary_size=0 is invalid: expected a positive integer"),
    ({"max_sequence_length": 64.0}, "DIR/config.json: max_sequence_length=64.0 is invalid: expected a positive "
                                    "integer"),
])
def test_a_keras_hub_size_out_of_range(preset, change, expected):
    config = json.loads((preset / "config.json").read_text())
    config["config"].update(change)
    (preset / "config.json").write_text(json.dumps(config))
    assert refused(preset) == expected


def test_a_corrupt_safetensors_file_is_named_and_convert_exits_2(hugging_face, tmp_path, capsys):
    from tfllm import cli

    (hugging_face / "model.safetensors").write_bytes(b"not a safetensors file " * 8)
    assert refused(hugging_face) == ("DIR/model.safetensors is not a readable safetensors file (Error while "
                                     "deserializing header: header too large)")
    assert cli.main(["convert", str(hugging_face), str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"tfllm convert: error: {hugging_face}/model.safetensors is not a readable "
                                       "safetensors file (Error while deserializing header: header too large)\n")


def test_the_reader_names_the_format(references):
    assert read_gpt2_checkpoint(references.preset).format == "keras_hub"
    assert read_gpt2_checkpoint(references.hugging_face).format == "hugging_face"
