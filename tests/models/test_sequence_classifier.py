"""SequenceClassifier: learns Old vs New Testament verses far above the majority class, reads the last real token or
averages the real ones, saves with its backbone and tokenizer, and works on every backbone."""

import random

import keras
import numpy as np
import pytest

from tests.helpers import assert_config_round_trip, assert_saving_round_trip
from tfllm.data import kjv_chapters
from tfllm.models import LSTMLM, SequenceClassifier, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer, WordPieceTokenizer
from tfllm.training.finetune import train_classifier

BACKBONES = ["rnn", "lstm", "transformer"]


def _backbone(name, tokenizer=None, hidden_dim=16, context=16):
    tokenizer = tokenizer or ByteTokenizer()
    vocab_size = tokenizer.vocab_size
    if name == "rnn":
        return SimpleRNNLM(vocab_size, hidden_dim=hidden_dim, tokenizer=tokenizer)
    if name == "lstm":
        return LSTMLM(vocab_size, hidden_dim=hidden_dim, tokenizer=tokenizer)
    return TransformerLM(vocab_size, 1, 2, hidden_dim, 2 * hidden_dim, context, tokenizer=tokenizer)


@pytest.fixture(scope="module")
def testaments():
    """Balanced verses labelled "old"/"new" by book order: training from train chapters, held out from the rest."""
    chapters = kjv_chapters()
    first_new = next(index for index, chapter in enumerate(chapters) if chapter.book == "Matthew")

    def verses(in_train):
        parts = {"old": chapters[:first_new], "new": chapters[first_new:]}
        return {
            label: [
                verse
                for chapter in part
                if (chapter.split == "train") == in_train
                for verse in chapter.text.split("\n")
            ]
            for label, part in parts.items()
        }

    draw = random.Random(0)
    train, heldout = verses(True), verses(False)
    train = [(verse, label) for label in train for verse in draw.sample(train[label], 3000)]
    heldout = [(verse, label) for label in heldout for verse in draw.sample(heldout[label], 200)]
    draw.shuffle(train)
    tokenizer = WordPieceTokenizer.train([text for text, _ in train], vocab_size=1000, verbose=False)
    return train, heldout, tokenizer


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_beats_the_majority_class_on_held_out_verses(testaments, name):
    train, heldout, tokenizer = testaments
    keras.utils.set_random_seed(0)
    backbone = _backbone(name, tokenizer, hidden_dim=32, context=24)
    classifier, names, _ = train_classifier(
        backbone, train, steps=300, sequence_length=24, batch_size=32, learning_rate=3e-3, seed=0
    )
    predicted = [names[index] for index in classifier.predict_texts([text for text, _ in heldout])]
    accuracy = np.mean([guess == label for guess, (_, label) in zip(predicted, heldout)])
    majority = max(np.mean([label == name for _, label in heldout]) for name in names)  # 0.5: balanced
    assert accuracy >= majority + 0.18, accuracy


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_after_the_text_changes_nothing(name, pooling):
    keras.utils.set_random_seed(1)
    classifier = SequenceClassifier(_backbone(name), num_classes=3, pooling=pooling)
    ids = np.array([[7, 8, 9, 10], [11, 12, 0, 0]], np.int32)  # the second row: two tokens and padding
    logits = np.asarray(classifier(ids))
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(np.asarray(classifier(np.pad(ids, [(0, 0), (0, 5)]))), logits, atol=1e-5)
    np.testing.assert_allclose(np.asarray(classifier(ids[1:, :2])), logits[1:], atol=1e-5)


def test_last_pooling_reads_the_hidden_state_of_the_last_real_token():
    keras.utils.set_random_seed(2)
    classifier = SequenceClassifier(_backbone("lstm"), num_classes=2)
    ids = np.array([[7, 8, 9, 0, 0]], np.int32)
    logits = np.asarray(classifier(ids))
    hidden = np.asarray(classifier.backbone.hidden_states(ids))[:, 2]  # (B, D) at position 2, the last real one
    kernel, bias = classifier.head.get_weights()
    np.testing.assert_allclose(logits, hidden @ kernel + bias, atol=1e-5)


def test_mean_pooling_averages_the_hidden_states_of_the_real_tokens():
    keras.utils.set_random_seed(2)
    classifier = SequenceClassifier(_backbone("lstm"), num_classes=2, pooling="mean")
    ids = np.array([[7, 8, 9, 0, 0], [4, 5, 6, 7, 8]], np.int32)  # three real tokens, then five
    logits = np.asarray(classifier(ids))
    hidden = np.asarray(classifier.backbone.hidden_states(ids))  # (B, T, D)
    pooled = np.stack([hidden[0, :3].mean(axis=0), hidden[1].mean(axis=0)])  # (B, D)
    kernel, bias = classifier.head.get_weights()
    np.testing.assert_allclose(logits, pooled @ kernel + bias, atol=1e-5)


@pytest.mark.parametrize("name", BACKBONES)
def test_saved_and_loaded_in_safe_mode_with_backbone_and_tokenizer(name, tmp_path):
    keras.utils.set_random_seed(3)
    classifier, _, _ = train_classifier(
        _backbone(name), [("in the beginning", "a"), ("and jesus said", "b")] * 4, steps=2, batch_size=4,
        sequence_length=12, pooling="mean",
    )
    ids = np.array([[7, 8, 9, 0], [11, 12, 13, 14]], np.int32)
    loaded = assert_saving_round_trip(classifier, ids, str(tmp_path / "classifier.keras"), atol=1e-6)
    assert isinstance(loaded.backbone, type(classifier.backbone))
    assert loaded.backbone.tokenizer.get_config() == classifier.backbone.tokenizer.get_config()
    assert (loaded.pooling, loaded.sequence_length) == ("mean", 12)
    # Compiled as it was saved, with the optimizer's state: training goes on where it stopped.
    assert isinstance(loaded.optimizer, keras.optimizers.AdamW)
    assert int(loaded.optimizer.iterations) == int(classifier.optimizer.iterations) == 2
    for want, got in zip(classifier.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want))
    texts = ["in the beginning was the word", "jesus wept", ""]
    np.testing.assert_array_equal(loaded.predict_texts(texts), classifier.predict_texts(texts))
    assert loaded.predict_texts("jesus wept") == classifier.predict_texts(texts)[1]
    assert_config_round_trip(classifier)


def test_compile_defaults_and_argument_errors():
    backbone = _backbone("lstm")
    classifier = SequenceClassifier(backbone, num_classes=2)
    classifier.compile()
    assert isinstance(classifier.optimizer, keras.optimizers.AdamW)
    assert isinstance(classifier.loss, keras.losses.SparseCategoricalCrossentropy) and classifier.loss.from_logits
    history = classifier.fit(np.array([[5, 6, 0], [7, 0, 0]], np.int32), np.array([0, 1]), epochs=1, verbose=0)
    assert set(history.history) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match="num_classes=1"):
        SequenceClassifier(backbone, num_classes=1)
    with pytest.raises(ValueError, match="pooling='max'"):
        SequenceClassifier(backbone, num_classes=2, pooling="max")
    with pytest.raises(ValueError, match="expected a tfllm CausalLM"):
        SequenceClassifier(keras.layers.Dense(3), num_classes=2)
    with pytest.raises(ValueError, match="tokenizer"):
        SequenceClassifier(LSTMLM(259, hidden_dim=4), num_classes=2).predict_texts(["abc"])
