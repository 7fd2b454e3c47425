"""The memorization check: an overfit model recites its training text and not held-out text; windows are checked
against the model's context."""

import random

import keras
import pytest

from tests.evaluation.common import VOCAB, transformer
from tfllm.evaluation import evaluate_texts, memorization_rate, memorization_report
from tfllm.models import LSTMLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.training.finetune import continue_pretraining


@pytest.fixture(scope="module")
def overfit_model():
    """An LSTM trained until it recites one random text of 150 letters; and a held-out random text."""
    letters = random.Random(1)
    text = "".join(letters.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(150))
    heldout = "".join(letters.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(150))
    keras.utils.set_random_seed(0)
    model = LSTMLM(VOCAB, hidden_dim=128, tokenizer=ByteTokenizer())
    # Suffixes rather than copies, so that training windows start at every offset of the text.
    suffixes = [text[start:] for start in range(0, 150, 5)]
    continue_pretraining(model, suffixes, steps=150, sequence_length=32, batch_size=32, learning_rate=1e-2, seed=0)
    return model, text, heldout


def test_an_overfit_model_recites_its_training_text_but_not_held_out_text(overfit_model):
    model, text, heldout = overfit_model
    report = memorization_report(model, [text], [heldout], prefix_tokens=16, continuation_tokens=16, samples=40)
    assert report.train_rate >= 0.9 and report.heldout_rate <= 0.05
    assert report.gap == report.train_rate - report.heldout_rate and "held-out" in str(report)
    # ... and exact evaluation sees the same: the training text costs next to nothing, the held-out text a lot.
    assert evaluate_texts(model, [text]).bits_per_byte < 0.5 < evaluate_texts(model, [heldout]).bits_per_byte


def test_memorization_rate_checks_windows_against_the_context():
    model = transformer(context=32)
    with pytest.raises(ValueError, match="max_sequence_length=32"):
        memorization_rate(model, ["x" * 100], prefix_tokens=24, continuation_tokens=16)
    with pytest.raises(ValueError, match="no text has"):
        memorization_rate(model, ["short"], prefix_tokens=8, continuation_tokens=8)
