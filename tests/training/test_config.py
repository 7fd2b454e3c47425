import dataclasses
import json

import pytest

from tfllm.training.config import DEFAULTS, DataConfig, ModelConfig, RunConfig, TrainConfig


@pytest.mark.parametrize("architecture", ["transformer", "lstm", "rnn"])
def test_defaults_are_complete_and_valid(architecture):
    config = RunConfig.default(architecture)
    assert config.model.architecture == architecture
    assert config.validate() is config
    for kind, values in ((ModelConfig, DEFAULTS["model"][architecture]),
                         (DataConfig, {**DEFAULTS["data"], "vocab_size": None}),
                         (TrainConfig, DEFAULTS["train"][architecture])):
        names = {field.name for field in dataclasses.fields(kind)} - {"architecture"}
        assert set(values) == names, kind.__name__


@pytest.mark.parametrize("architecture", ["transformer", "lstm", "rnn"])
def test_dict_and_json_round_trips(architecture, tmp_path):
    config = RunConfig.default(architecture, data={"tokenizer": "sentencepiece", "vocab_size": 500},
                               train={"sample_prompts": ["a", "b"], "jit_compile": False})
    assert RunConfig.from_dict(config.to_dict()) == config
    assert RunConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    path = tmp_path / "config.json"
    config.to_json(path)
    assert RunConfig.from_json(path) == config
    assert json.loads(path.read_text())["train"]["sample_prompts"] == ["a", "b"]
    assert config.train.sample_prompts == ("a", "b")  # lists become tuples: the config stays hashable and frozen


def test_the_vocabulary_size_follows_the_tokenizer_unless_given():
    assert (DataConfig.default().tokenizer, DataConfig.default().vocab_size) == ("sentencepiece", 4096)
    assert RunConfig.default(data={"tokenizer": "byte"}).validate().data.vocab_size is None
    assert RunConfig.default(data={"tokenizer": "char"}).data.vocab_size is None
    assert RunConfig.default(data={"tokenizer": "wordpiece", "vocab_size": 500}).data.vocab_size == 500
    assert DataConfig.default("byte") == DataConfig("kjv", "byte", None, False)


def test_default_overrides_and_replace():
    config = RunConfig.default("lstm", model={"hidden_dim": 64}, train={"steps": 10, "learning_rate": 1})
    assert (config.model.hidden_dim, config.train.steps, config.model.num_heads) == (64, 10, None)
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    changed = config.replace(train={"steps": 20}, data={"clean": True})
    assert changed.differences(config) == [("data.clean", True, False), ("train.steps", 20, 10)]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.steps = 3


BAD_DICTS = [
    ({"modle": {}}, "unknown key modle"),
    ({"train": {"stpes": 10}}, r"unknown key train\.stpes"),
    ({"train": {"steps": "10"}}, r"train\.steps='10' has the type str: expected int"),
    ({"train": {"steps": 10.0}}, r"train\.steps=10\.0 has the type float: expected int"),
    ({"train": {"batch_size": True}}, r"train\.batch_size=True has the type bool: expected int"),
    ({"train": {"learning_rate": "fast"}}, r"train\.learning_rate='fast' has the type str: expected float"),
    ({"train": {"sample_prompts": "In the"}}, r"train\.sample_prompts='In the' .* expected a list of str"),
    ({"train": {"sample_prompts": ["ok", 3]}}, r"train\.sample_prompts\[1\]=3 .* expected str"),
    ({"train": {"validation_steps": 2.5}}, r"train\.validation_steps=2\.5 .* expected int or null"),
    ({"train": {"jit_compile": 1}}, r"train\.jit_compile=1 .* expected str or bool"),
    ({"data": {"clean": "yes"}}, r"data\.clean='yes' .* expected bool"),
    ({"model": {"architecture": "gru"}}, r"model\.architecture='gru' is invalid"),
    ({"model": {"hidden_dim": None}}, r"model\.hidden_dim=None .* expected int"),
    ({"data": []}, r"data=\[\] is invalid: expected a dict"),
]


def test_from_dict_names_the_bad_key_and_the_expected_type():
    for values, message in BAD_DICTS:  # one test, not one each: every test costs a Keras reset
        with pytest.raises(ValueError, match=message):
            RunConfig.from_dict(values, fill_defaults=True)


def test_from_dict_without_defaults_needs_every_key():
    values = RunConfig.default().to_dict()
    del values["train"]["seed"]
    with pytest.raises(ValueError, match=r"no train\.seed"):
        RunConfig.from_dict(values)
    with pytest.raises(ValueError, match="no data section"):
        RunConfig.from_dict({"model": values["model"], "train": values["train"]})


def test_from_json_names_a_damaged_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"model": ')
    with pytest.raises(ValueError, match="config.json is not valid JSON"):
        RunConfig.from_json(path)


BAD_VALUES = [
    ("transformer", {"model": {"num_layers": 0}}, r"model\.num_layers=0 is invalid"),
    ("lstm", {"model": {"hidden_dim": -8}}, r"model\.hidden_dim=-8 is invalid"),
    ("transformer", {"model": {"hidden_dim": 250, "num_heads": 4}},
     r"model\.hidden_dim=250 is not divisible by model\.num_heads=4"),
    ("transformer", {"model": {"num_heads": None}}, r"model\.num_heads=None is invalid"),
    ("transformer", {"model": {"intermediate_dim": 0}}, r"model\.intermediate_dim=0 is invalid"),
    ("transformer", {"model": {"max_sequence_length": 0}}, r"model\.max_sequence_length=0 is invalid"),
    ("transformer", {"model": {"position_embedding": "sinusoidal"}}, r"model\.position_embedding='sinusoidal'"),
    ("rnn", {"model": {"dropout": 1.0}}, r"model\.dropout=1\.0 is invalid"),
    ("transformer", {"data": {"tokenizer": "bpe"}}, r"data\.tokenizer='bpe' is invalid"),
    ("transformer", {"data": {"corpus": ""}}, r"data\.corpus='' is invalid"),
    ("transformer", {"data": {"tokenizer": "byte", "vocab_size": 300}},
     r"data\.vocab_size=300 is invalid for data\.tokenizer='byte'"),
    ("transformer", {"data": {"tokenizer": "wordpiece", "vocab_size": None}}, r"data\.vocab_size=None is invalid"),
    ("lstm", {"data": {"tokenizer": "char", "vocab_size": 3}}, r"data\.vocab_size=3 is invalid"),
    ("transformer", {"train": {"steps": 0}}, r"train\.steps=0 is invalid"),
    ("transformer", {"train": {"batch_size": -1}}, r"train\.batch_size=-1 is invalid"),
    ("transformer", {"train": {"sequence_length": 0}}, r"train\.sequence_length=0 is invalid"),
    ("transformer", {"train": {"eval_every": 0}}, r"train\.eval_every=0 is invalid"),
    ("transformer", {"train": {"checkpoint_every": 0}}, r"train\.checkpoint_every=0 is invalid"),
    ("transformer", {"train": {"validation_steps": 0}}, r"train\.validation_steps=0 is invalid"),
    ("transformer", {"train": {"sample_every": 0}}, r"train\.sample_every=0 is invalid"),
    ("transformer", {"train": {"sample_tokens": 0}}, r"train\.sample_tokens=0 is invalid"),
    ("transformer", {"train": {"learning_rate": 0.0}}, r"train\.learning_rate=0\.0 is invalid"),
    ("transformer", {"train": {"learning_rate": float("nan")}}, r"train\.learning_rate=nan is invalid"),
    ("transformer", {"train": {"weight_decay": -0.1}}, r"train\.weight_decay=-0\.1 is invalid"),
    ("transformer", {"train": {"warmup_steps": -1}}, r"train\.warmup_steps=-1 is invalid"),
    ("transformer", {"train": {"seed": -1}}, r"train\.seed=-1 is invalid"),
    ("transformer", {"train": {"gradient_accumulation_steps": 0}}, r"train\.gradient_accumulation_steps=0"),
    ("transformer", {"train": {"steps": 7, "gradient_accumulation_steps": 2}},
     r"train\.steps=7 is not divisible by train\.gradient_accumulation_steps=2"),
    ("transformer", {"train": {"precision": "float16"}}, r"train\.precision='float16' is invalid"),
    ("transformer", {"train": {"jit_compile": "xla"}}, r"train\.jit_compile='xla' is invalid"),
    ("transformer", {"train": {"sample_prompts": []}}, r"train\.sample_prompts=\[\] is invalid"),
    ("transformer", {"train": {"sample_temperature": -0.5}}, r"train\.sample_temperature=-0\.5 is invalid"),
    ("transformer", {"train": {"sample_top_p": 0.0}}, r"train\.sample_top_p=0\.0 is invalid"),
    ("transformer", {"train": {"sample_top_p": 1.5}}, r"train\.sample_top_p=1\.5 is invalid"),
    ("transformer", {"train": {"sample_prompts": ["ok", ""]}}, r"train\.sample_prompts=\['ok', ''\] is invalid"),
    ("transformer", {"model": {"max_sequence_length": 128}, "train": {"sequence_length": 256}},
     r"train\.sequence_length=256 is longer than model\.max_sequence_length=128"),
    ("transformer", {"model": {"max_sequence_length": 64}, "train": {"sequence_length": 64, "sample_tokens": 64}},
     r"train\.sample_tokens=64 leaves no room for a prompt in model\.max_sequence_length=64"),
]


def test_validate_names_the_field_and_the_value():
    for architecture, changes, message in BAD_VALUES:
        config = RunConfig.default(architecture, **changes)
        with pytest.raises(ValueError, match=message):
            config.validate()


def test_validate_checks_the_batch_against_the_replicas():
    config = RunConfig.default("lstm", train={"batch_size": 6})
    assert config.validate(num_replicas=2) is config
    with pytest.raises(ValueError, match=r"train\.batch_size=6 is not divisible by the number of replicas \(4\)"):
        config.validate(num_replicas=4)


def test_recurrent_models_ignore_transformer_sizes():
    config = RunConfig.default("rnn", model={"num_heads": 3}, train={"sequence_length": 4096, "sample_tokens": 999})
    assert config.validate() is config  # no context limit, no heads: nothing to check against
