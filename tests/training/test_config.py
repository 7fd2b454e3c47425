import dataclasses
import json
import os

import pytest

from tfllm import choices
from tfllm.training.config import (
    DEFAULTS,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    absolute_data_path,
)


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
    ("transformer", {"model": {"position_embedding": "rotary", "hidden_dim": 6, "num_heads": 2}},
     r"model\.hidden_dim=6 over model\.num_heads=2 gives heads of width 3"),
    # Accepted, then trained to the end before generation's int32 seed (or Keras's, from 2**32) refused it.
    ("transformer", {"train": {"seed": 3_000_000_000}}, r"train\.seed=3000000000 is invalid: expected an integer in "
                                                        r"\[0, 2\*\*31\), as generation seeds are int32"),
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
    with pytest.raises(ValueError, match=r"train\.batch_size=6 is not divisible by the number of replicas \(4\): "
                                         r"expected a multiple of 4, so that every replica gets the same share"):
        config.validate(num_replicas=4)


def test_recurrent_models_refuse_the_transformer_s_settings_and_read_any_length():
    # A Transformer's setting was ignored by a recurrent model, and recorded in its config as if it had applied.
    config = RunConfig.default("rnn", train={"sequence_length": 4096, "sample_tokens": 999})
    assert config.validate() is config  # no context limit: any length
    for name, value, what in (("num_heads", 3, "attention heads"), ("intermediate_dim", 64, "MLP"),
                              ("max_sequence_length", 64, "context limit"),
                              ("position_embedding", "rotary", "position embedding")):
        with pytest.raises(ValueError, match=rf"model\.{name}={value!r} is invalid for model\.architecture='lstm', "
                                             rf"which has no {what} \(a Transformer's setting\): expected None"):
            RunConfig.default("lstm", model={name: value}).validate()


def test_the_choices_of_each_field_are_tfllms_one_tuple():
    fields = {f"{kind.section}.{field.name}": field.metadata.get("choices")
              for kind in (ModelConfig, DataConfig, TrainConfig, FinetuneConfig) for field in dataclasses.fields(kind)}
    assert fields["model.architecture"] is choices.ARCHITECTURES and fields["data.tokenizer"] is choices.TOKENIZERS
    assert fields["train.precision"] is choices.PRECISIONS and fields["finetune.task"] is choices.FINETUNE_TASKS
    assert set(DEFAULTS["model"]) == set(choices.ARCHITECTURES) == set(DEFAULTS["train"])


def test_finetune_config_is_a_section_like_the_others(tmp_path):
    config = FinetuneConfig("sft", "qa", sequence_length=64, learning_rate=1)
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    assert FinetuneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    defaults = FinetuneConfig.from_dict({"task": "continue", "data": "kjv"})  # the defaults of DEFAULTS["finetune"]
    assert {key: value for key, value in defaults.to_dict().items() if key not in ("task", "data")} == \
        DEFAULTS["finetune"]
    for values, message in [
        ({"task": "sft", "data": "qa", "steps": "10"}, r"finetune\.steps='10' has the type str: expected int"),
        ({"task": "sft", "data": "qa", "seed": 1.5}, r"finetune\.seed=1\.5 has the type float: expected int"),
        ({"task": "sft", "data": 3}, r"finetune\.data=3 has the type int: expected str"),
        ({"task": "sft", "data": "qa", "sequence_length": "64"}, r"finetune\.sequence_length='64' .* int or null"),
        ({"task": "sft", "data": "qa", "stepz": 10}, r"unknown key finetune\.stepz in the config"),
        ({"data": "qa"}, r"the config has no finetune\.task"),
    ]:
        with pytest.raises(ValueError, match=message):
            FinetuneConfig.from_dict(values)


def test_finetune_validate_names_the_field_and_the_value(tmp_path):
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("{}")
    assert FinetuneConfig("classify", str(labelled)).validate(num_replicas=2).task == "classify"
    for config, message in [
        (FinetuneConfig("translate", "qa"), r"finetune\.task='translate' is invalid: expected one of 'continue', "),
        (FinetuneConfig("continue", ""), r"finetune\.data='' is invalid: expected a corpus name or a file path"),
        (FinetuneConfig("sft", "qa", steps=0), r"finetune\.steps=0 is invalid: expected a positive integer"),
        (FinetuneConfig("sft", "qa", batch_size=-2), r"finetune\.batch_size=-2 is invalid"),
        (FinetuneConfig("sft", "qa", sequence_length=0), r"finetune\.sequence_length=0 is invalid: .* or None"),
        (FinetuneConfig("sft", "qa", learning_rate=float("inf")), r"finetune\.learning_rate=inf is invalid"),
        (FinetuneConfig("sft", "qa", seed=-1), r"finetune\.seed=-1 is invalid: expected an integer in \[0, 2\*\*31\)"),
        (FinetuneConfig("sft", "qa", seed=2**31), r"finetune\.seed=2147483648 is invalid"),
        (FinetuneConfig("sft", str(tmp_path / "none.jsonl")), r"none\.jsonl' does not exist: expected a JSONL or CSV"),
        (FinetuneConfig("classify", "qa"), r"finetune\.data='qa' holds prompt/completion pairs, not labelled texts"),
    ]:
        with pytest.raises(ValueError, match=message):
            config.validate()
    with pytest.raises(ValueError, match=r"finetune\.batch_size=16 is not divisible by the number of replicas \(3\): "
                                         r"expected a multiple of 3, so that every replica gets the same share"):
        FinetuneConfig("sft", "qa").validate(num_replicas=3)


def test_a_config_written_before_later_keys_loads_as_it_ran():
    recorded = RunConfig.default().to_dict()
    for key in ("time_budget_minutes", "log_every"):
        del recorded["train"][key]
    config = RunConfig.from_dict(recorded)  # strict: every other key is still required
    assert config.train.time_budget_minutes is None  # older runs trained all their steps
    assert config.train.log_every == 5
    del recorded["train"]["steps"]
    with pytest.raises(ValueError, match="the config has no train.steps"):
        RunConfig.from_dict(recorded)


def test_data_paths_are_recorded_absolute_and_names_stay_names(tmp_path, monkeypatch):
    # A run recorded --corpus docs as typed: `tfllm evaluate RUN` from another directory then read another folder
    # named docs, or none.
    (tmp_path / "docs").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "kjv").write_text("a local file named like the embedded corpus")
    monkeypatch.chdir(tmp_path)
    for typed, recorded in [("docs", tmp_path / "docs"), ("./notes.txt", tmp_path / "notes.txt"),
                            ("docs/*.txt", tmp_path / "docs" / "*.txt"), ("./kjv", tmp_path / "kjv")]:
        assert absolute_data_path(typed) == os.fspath(recorded), typed
    for name in ["kjv", "shakespeare", "hsk", "chatterbot", "qa", "missing.txt"]:
        assert absolute_data_path(name) == name
