"""Per-token scoring: the rule of sliding windows, the same rule on tensors (the SavedModel's), `CausalLM.score`
against windows read by hand, and compiled functions reused without keeping a model alive."""

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from tests.evaluation.common import TEXTS, byte_ids, lstm, total_nats, transformer
from tfllm.evaluation import evaluate_texts, scoring, sliding_windows


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


@pytest.mark.parametrize("length, context, stride", [(2, 4, 2), (10, 4, 2), (37, 8, 3), (40, 8, 1), (9, 8, 4)])
def test_the_rule_on_tensors_gives_the_same_windows_row_by_row(length, context, stride):
    # The SavedModel's graph loop moves a (B,) vector of `first` positions through `window_bounds` with keras.ops.
    lengths = ops.convert_to_tensor([length, 2, length + 3], "int32")  # (B,)
    first = ops.ones((3,), "int32")
    found = [[], [], []]
    while bool(ops.any(first < lengths)):
        begin, stop = scoring.window_bounds(first, lengths, context, stride, xp=ops)
        for row in range(3):
            if int(first[row]) < int(lengths[row]):
                found[row].append((int(begin[row]), int(first[row]), int(stop[row])))
        first = ops.where(first < lengths, stop, first)
    assert found == [sliding_windows(n, context, stride) for n in (length, 2, length + 3)]


def test_a_long_text_agrees_with_score_token_for_token():
    model = transformer(context=16)
    text = "In the beginning God created the heaven and the earth. " * 3  # 165 tokens through windows of 16
    ids = np.asarray(byte_ids(text), np.int32)
    reference = np.zeros(len(ids) - 1)  # log p(ids[i] | its window), one window at a time, by hand
    for begin, first, stop in sliding_windows(len(ids), 16, 8):
        log_probs = np.asarray(tf.nn.log_softmax(model(ids[None, begin : stop - 1]))[0])  # (W, V)
        for position in range(first, stop):
            reference[position - 1] = log_probs[position - 1 - begin, ids[position]]
    (score_ll,), (count,), (per_token,) = model.score([text], per_token=True)
    assert count == len(ids) - 2 and per_token.shape == (count,)
    np.testing.assert_allclose(per_token, reference[:-1], rtol=1e-5, atol=1e-5)  # the eos is not scored
    assert float(score_ll) == pytest.approx(reference[:-1].sum(), rel=1e-5)
    assert total_nats(evaluate_texts(model, [text])) == pytest.approx(-reference.sum(), rel=1e-5)  # it is here


def test_evaluation_reuses_its_compiled_functions_without_keeping_the_model_alive():
    model = lstm()
    first = evaluate_texts(model, TEXTS)
    assert evaluate_texts(model, TEXTS) == first and len(scoring._COMPILED[model]) == 1
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


@pytest.mark.parametrize("stride", [0, 33, True, "8", 8.0])
def test_a_stride_outside_the_context_or_not_an_integer_is_refused_naming_the_context(stride):
    # True passed as a stride of 1, and "8" raised a TypeError that named no argument.
    with pytest.raises(ValueError, match=rf"^stride={stride!r} is invalid: expected an integer in \[1, 32\] \(at "
                                         r"most the model's max_sequence_length\)\.$"):
        scoring.token_log_likelihoods(transformer(context=32), [byte_ids("In the beginning")], stride=stride)
