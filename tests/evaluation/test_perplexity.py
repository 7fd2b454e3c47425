"""Exact evaluation: golden numbers on a uniform model, each token counted once, windows against a window-by-window
reference, recurrent chunks against one full pass, agreement with `CausalLM.score`."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tests.evaluation.common import TEXTS, VOCAB, byte_ids, direct_nats, lstm, total_nats, transformer
from tfllm.evaluation import EvaluationResult, evaluate_corpus, evaluate_texts, sliding_windows
from tfllm.models import LSTMLM, SimpleRNNLM
from tfllm.tokenizers import ByteTokenizer


@pytest.mark.parametrize("make", [transformer, lstm], ids=["transformer", "lstm"])
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


def test_texts_that_fit_give_the_full_pass_whatever_the_stride_and_batch():
    model = transformer(context=64)
    expected = sum(direct_nats(model, byte_ids(text)) for text in TEXTS)
    for stride, batch_size in [(None, 32), (1, 1), (64, 2)]:
        result = evaluate_texts(model, TEXTS, batch_size=batch_size, stride=stride)
        assert total_nats(result) == pytest.approx(expected, rel=1e-5)


def windowed_nats(model, ids, context, stride):
    """-log p of ids[1:], each position read in its own window of `sliding_windows` (the reference, by hand)."""
    ids = np.asarray(ids, np.int32)
    nats = 0.0
    for begin, first, stop in sliding_windows(len(ids), context, stride):
        log_probs = np.asarray(tf.nn.log_softmax(model(ids[None, begin : stop - 1]))[0], np.float64)  # (W, V)
        nats -= sum(log_probs[position - 1 - begin, ids[position]] for position in range(first, stop))
    return nats


def context_dependent_transformer(context):
    """An untrained model whose every token costs about ln V whatever it reads would pass any rule of windows; with
    its embeddings scaled up, attention is sharp and a token's loss depends on the tokens before it."""
    model = transformer(context=context)
    model(np.ones((1, 2), np.int32))  # builds the embeddings
    model.token_embedding.embeddings.assign(model.token_embedding.embeddings * 30.0)
    return model


def test_a_long_text_is_scored_window_by_window_with_the_left_context_of_its_stride():
    model = context_dependent_transformer(context=32)
    text = " ".join(["and the earth was without form and void"] * 5)
    ids = byte_ids(text)  # 201: bos, 199 bytes, eos
    with_context = {stride: windowed_nats(model, ids, 32, stride) for stride in (32, 16, 4)}
    # The left context changes the loss by far more than the tolerance below: other windows give other numbers.
    for stride, other in ((32, 16), (32, 4), (16, 4)):
        assert abs(with_context[stride] - with_context[other]) > 1e-3 * with_context[other]
    for stride in (16, 4):
        result = evaluate_texts(model, [text], stride=stride)
        assert result.tokens == 200
        assert total_nats(result) == pytest.approx(with_context[stride], rel=1e-5)
    with pytest.raises(ValueError, match="stride=33"):
        evaluate_texts(model, [text], stride=33)


@pytest.mark.parametrize("make", [lstm, lambda: SimpleRNNLM(VOCAB, hidden_dim=8, num_layers=2,
                                                              tokenizer=ByteTokenizer())], ids=["lstm", "rnn"])
def test_recurrent_state_carried_chunk_by_chunk_equals_one_full_pass(make):
    model = make()
    texts = [text * 7 for text in TEXTS]  # up to 386 tokens
    expected = sum(direct_nats(model, byte_ids(text)) for text in texts)
    for chunk_length, batch_size in [(5, 3), (64, 1), (1000, 4)]:
        result = evaluate_texts(model, texts, batch_size=batch_size, chunk_length=chunk_length)
        assert total_nats(result) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("make", [lambda: transformer(context=64), lstm], ids=["transformer", "lstm"])
def test_agrees_with_score_which_leaves_out_the_eos(make):
    model = make()
    texts = [TEXTS[0], TEXTS[3]]
    log_likelihood, counts = model.score(texts)
    for text, score_ll, count in zip(texts, log_likelihood, counts):
        ids = byte_ids(text)
        eos_nats = -float(tf.nn.log_softmax(model(np.asarray([ids[:-1]], np.int32)))[0, -1, 2])
        result = evaluate_texts(model, [text])
        assert result.tokens == count + 1
        assert total_nats(result) - eos_nats == pytest.approx(-float(score_ll), rel=1e-5)


def test_evaluate_corpus_reads_a_split_and_checks_its_arguments(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("abc\n\ndef")
    result = evaluate_corpus(lstm(), str(path), split=None)  # two paragraphs: "abc" and "def", each with its eos
    assert isinstance(result, EvaluationResult) and (result.tokens, result.bytes, result.documents) == (8, 6, 2)
    with pytest.raises(ValueError, match="tokenizer"):
        evaluate_texts(LSTMLM(VOCAB, hidden_dim=4), ["abc"])
    with pytest.raises(ValueError, match="empty"):
        evaluate_texts(lstm(), [])
