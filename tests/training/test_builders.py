import json

import keras
import pytest
import tensorflow as tf

from tests.training.common import write_kjv_verses
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.training.builders import (
    build_model,
    build_texts,
    build_tokenizer,
    build_train_batches,
    build_validation_batches,
)
from tfllm.training.config import DEFAULTS, DataConfig, ModelConfig, RunConfig


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    return build_texts(DataConfig(write_kjv_verses(tmp_path_factory.mktemp("corpus")), "byte", None, False))


def test_texts_are_the_train_and_validation_splits(texts):
    assert (len(texts.train), len(texts.validation)) == (70, 3)
    assert texts.train[0].startswith(b"In the beginning God")


def test_cleaning_is_applied_when_asked(tmp_path):
    with open(tmp_path / "messy.jsonl", "w") as file:
        for index in range(60):
            file.write(json.dumps({"text": f"Verse {index}:  In the\tbeginning\r\n\u0007God "}) + "\n")
    raw = build_texts(DataConfig(str(tmp_path / "messy.jsonl"), "char", None, False))
    clean = build_texts(DataConfig(str(tmp_path / "messy.jsonl"), "char", None, True))
    assert all(b"\r" in text and b"\x07" in text for text in raw.train + raw.validation)
    assert all(text.endswith(b": In the beginning\nGod") for text in clean.train + clean.validation)
    assert (len(clean.train), len(clean.validation)) == (len(raw.train), len(raw.validation))


@pytest.mark.parametrize("kind, vocab_size", [("char", 40), ("wordpiece", 200), ("sentencepiece", 400)])
def test_learned_tokenizers_survive_the_json_that_resuming_reads(kind, vocab_size, texts):
    tokenizer = build_tokenizer(DataConfig("kjv", kind, vocab_size, False), texts.train)
    assert 5 <= tokenizer.vocab_size <= vocab_size
    revived = keras.saving.deserialize_keras_object(json.loads(json.dumps(
        keras.saving.serialize_keras_object(tokenizer))))
    sample = tf.constant([texts.validation[0]])
    assert revived.tokenize(sample).to_list() == tokenizer.tokenize(sample).to_list()


def test_model_and_batches_follow_the_config(texts):
    config = RunConfig.default("transformer", model={"num_layers": 1, "hidden_dim": 8, "num_heads": 2,
                                                     "intermediate_dim": 16, "max_sequence_length": 16},
                               data={"tokenizer": "byte"},
                               train={"batch_size": 4, "sequence_length": 12, "validation_steps": 50})
    tokenizer = build_tokenizer(config.data, texts.train)
    model = build_model(config.model, tokenizer)
    assert isinstance(model, TransformerLM) and model.max_sequence_length == 16 and model.tokenizer is tokenizer

    validation = build_validation_batches(config.train, tokenizer, texts.validation)
    assert validation.steps == int(validation.batches.cardinality()) < 50  # all the split holds, no more
    x, y = next(iter(validation.batches))
    assert x.shape == y.shape == (4, 12) and x.dtype == tf.int32

    # A new pipeline gives the same stream, and skipping s batches lands where s batches of it end.
    stream = [x.numpy().tolist() for x, _ in build_train_batches(config.train, tokenizer, texts.train).take(5)]
    again = [x.numpy().tolist() for x, _ in build_train_batches(config.train, tokenizer, texts.train).take(5)]
    skipped = [x.numpy().tolist() for x, _ in build_train_batches(config.train, tokenizer, texts.train, 3).take(2)]
    assert stream == again and skipped == stream[3:]


def test_the_default_models_of_the_three_architectures_have_about_the_same_size():
    # benchmarks/compare_architectures.py compares the defaults as models of equal parameter count.
    vocab_size = DEFAULTS["vocab_size"][DEFAULTS["data"]["tokenizer"]]
    transformer = ModelConfig.default("transformer")
    counts = {"transformer": TransformerLM(
        vocab_size, transformer.num_layers, transformer.num_heads, transformer.hidden_dim,
        transformer.intermediate_dim, transformer.max_sequence_length)}
    for architecture, model_class in (("lstm", LSTMLM), ("rnn", SimpleRNNLM)):
        config = ModelConfig.default(architecture)
        counts[architecture] = model_class(vocab_size, config.hidden_dim, num_layers=config.num_layers)
    for name, model in counts.items():
        model(tf.zeros((1, 4), tf.int32))
        counts[name] = model.count_params()
    assert counts["lstm"] == pytest.approx(counts["transformer"], rel=0.05)
    assert counts["rnn"] == pytest.approx(counts["transformer"], rel=0.05)
