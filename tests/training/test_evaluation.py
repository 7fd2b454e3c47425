"""Exact evaluation: golden numbers on a uniform model, each token counted once, windows and chunks vs one full pass,
agreement with `CausalLM.score`; and the memorization check on an overfit model."""

import math
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.models.scoring import sliding_windows
from tfllm.training.evaluation import EvaluationResult, evaluate_corpus, evaluate_texts
from tfllm.training.finetune import continue_pretraining
from tfllm.training.memorization import memorization_rate, memorization_report

VOCAB = 259  # the byte tokenizer's
TEXTS = ["In the beginning", "", "é!", "And God said, Let there be light: and there was light."]


def _transformer(context=32, position_embedding="learned", seed=0):
    keras.utils.set_random_seed(seed)
    return TransformerLM(
        VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=context,
        position_embedding=position_embedding, tokenizer=ByteTokenizer(),
    )


def _lstm(seed=0):
    keras.utils.set_random_seed(seed)
    return LSTMLM(VOCAB, hidden_dim=16, tokenizer=ByteTokenizer())


def _ids(text):
    return [1, *(byte + 3 for byte in text.encode("utf-8")), 2]  # bos, bytes, eos


def _direct_nats(model, ids):
    """-log p of ids[1:] from one forward pass over ids[:-1] (the reference; needs the text to fit the model)."""
    ids = np.asarray(ids, np.int32)
    log_probs = np.asarray(tf.nn.log_softmax(model(ids[None, :-1]))[0], np.float64)  # (T, V)
    return -float(np.sum(log_probs[np.arange(len(ids) - 1), ids[1:]]))


def _total_nats(result):
    return result.loss * result.tokens


@pytest.mark.parametrize("make", [_transformer, _lstm], ids=["transformer", "lstm"])
def test_a_uniform_model_has_loss_ln_vocab_and_the_golden_bits_per_byte(make):
    model = make()
    model(np.ones((1, 2), np.int32))
    embedding = model.token_embedding if hasattr(model, "token_embedding") else model.embedding
    embedding.embeddings.assign(np.zeros((VOCAB, 16), np.float32))  # tied logits h @ 0 = 0: uniform
    result = evaluate_texts(model, TEXTS, batch_size=3)
    tokens = sum(len(text.encode("utf-8")) + 1 for text in TEXTS)  # every byte and each eos, once
    size = sum(len(text.encode("utf-8")) for text in TEXTS)
    assert (result.tokens, result.bytes, result.documents) == (tokens, size, 4)
    assert result.loss == pytest.approx(math.log(VOCAB), rel=1e-6)
    assert result.perplexity == pytest.approx(VOCAB, rel=1e-5)
    assert result.bits_per_byte == pytest.approx(tokens * math.log(VOCAB) / (size * math.log(2)), rel=1e-6)


@pytest.mark.parametrize("length, context, stride", [(2, 4, 2), (5, 4, 2), (10, 4, 2), (37, 8, 3), (40, 8, 8),
                                                     (40, 8, 1), (9, 8, 4)])
def test_sliding_windows_predict_each_position_once_with_enough_context(length, context, stride):
    windows = sliding_windows(length, context, stride)
    predicted = [position for _, first, stop in windows for position in range(first, stop)]
    assert predicted == list(range(1, length))  # each position once, in order
    for begin, first, stop in windows:
        assert 0 <= begin < first and stop - 1 - begin <= context  # a window reads at most a context
        # the first prediction of a window sees `first - begin` tokens: a full context - stride + 1, or all there is
        assert first - begin >= min(first, context - stride + 1)


def test_texts_that_fit_give_the_full_pass_whatever_the_stride_and_batch():
    model = _transformer(context=64)
    expected = sum(_direct_nats(model, _ids(text)) for text in TEXTS)
    for stride, batch_size in [(None, 32), (1, 1), (64, 2)]:
        result = evaluate_texts(model, TEXTS, batch_size=batch_size, stride=stride)
        assert _total_nats(result) == pytest.approx(expected, rel=1e-5)


def test_a_long_text_through_windows_is_close_to_a_full_pass_with_a_longer_context():
    # Rotary positions have no weights, so the same weights serve a model with a short and one with a long context.
    long_model = _transformer(context=256, position_embedding="rotary")
    text = " ".join(["and the earth was without form and void"] * 5)  # 199 bytes
    expected = _direct_nats(long_model, _ids(text))
    short_model = _transformer(context=32, position_embedding="rotary")
    short_model(np.ones((1, 2), np.int32))
    short_model.set_weights(long_model.get_weights())
    for stride in (16, 4):
        result = evaluate_texts(short_model, [text], stride=stride)
        assert result.tokens == 200 and np.isfinite(result.loss)
        assert _total_nats(result) == pytest.approx(expected, rel=0.01)
    with pytest.raises(ValueError, match="stride=33"):
        evaluate_texts(short_model, [text], stride=33)


@pytest.mark.parametrize("make", [_lstm, lambda: SimpleRNNLM(VOCAB, hidden_dim=8, num_layers=2,
                                                              tokenizer=ByteTokenizer())], ids=["lstm", "rnn"])
def test_recurrent_state_carried_chunk_by_chunk_equals_one_full_pass(make):
    model = make()
    texts = [text * 7 for text in TEXTS]  # up to 386 tokens
    expected = sum(_direct_nats(model, _ids(text)) for text in texts)
    for chunk_length, batch_size in [(5, 3), (64, 1), (1000, 4)]:
        result = evaluate_texts(model, texts, batch_size=batch_size, chunk_length=chunk_length)
        assert _total_nats(result) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("make", [lambda: _transformer(context=64), _lstm], ids=["transformer", "lstm"])
def test_agrees_with_score_which_leaves_out_the_eos(make):
    model = make()
    texts = [TEXTS[0], TEXTS[3]]
    log_likelihood, counts = model.score(texts)
    for text, score_ll, count in zip(texts, log_likelihood, counts):
        ids = _ids(text)
        eos_nats = -float(tf.nn.log_softmax(model(np.asarray([ids[:-1]], np.int32)))[0, -1, 2])
        result = evaluate_texts(model, [text])
        assert result.tokens == count + 1
        assert _total_nats(result) - eos_nats == pytest.approx(-float(score_ll), rel=1e-5)


def test_a_long_text_agrees_with_score_token_for_token():
    model = _transformer(context=16)
    text = "In the beginning God created the heaven and the earth. " * 3  # 165 tokens through windows of 16
    ids = np.asarray(_ids(text), np.int32)
    reference = np.zeros(len(ids) - 1)  # log p(ids[i] | its window), one window at a time, by hand
    for begin, first, stop in sliding_windows(len(ids), 16, 8):
        log_probs = np.asarray(tf.nn.log_softmax(model(ids[None, begin : stop - 1]))[0])  # (W, V)
        for position in range(first, stop):
            reference[position - 1] = log_probs[position - 1 - begin, ids[position]]
    (score_ll,), (count,), (per_token,) = model.score([text], per_token=True)
    assert count == len(ids) - 2 and per_token.shape == (count,)
    np.testing.assert_allclose(per_token, reference[:-1], rtol=1e-5, atol=1e-5)  # the eos is not scored
    assert float(score_ll) == pytest.approx(reference[:-1].sum(), rel=1e-5)
    assert _total_nats(evaluate_texts(model, [text])) == pytest.approx(-reference.sum(), rel=1e-5)  # it is here


def test_evaluate_corpus_reads_a_split_and_checks_its_arguments(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("abc\n\ndef")
    result = evaluate_corpus(_lstm(), str(path), split=None)
    assert isinstance(result, EvaluationResult) and (result.tokens, result.bytes) == (9, 8)
    with pytest.raises(ValueError, match="tokenizer"):
        evaluate_texts(LSTMLM(VOCAB, hidden_dim=4), ["abc"])
    with pytest.raises(ValueError, match="empty"):
        evaluate_texts(_lstm(), [])


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
    model = _transformer(context=32)
    with pytest.raises(ValueError, match="max_sequence_length=32"):
        memorization_rate(model, ["x" * 100], prefix_tokens=24, continuation_tokens=16)
    with pytest.raises(ValueError, match="no text has"):
        memorization_rate(model, ["short"], prefix_tokens=8, continuation_tokens=8)


def test_evaluation_reuses_its_compiled_functions_without_keeping_the_model_alive():
    import gc
    import weakref

    from tfllm.models import scoring

    model = _lstm()
    first = evaluate_texts(model, TEXTS)
    assert evaluate_texts(model, TEXTS) == first and len(scoring._COMPILED[model]) == 1
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None
