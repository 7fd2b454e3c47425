"""The top-k and top-p cuts, once for the samplers of fixed settings and for `RequestSampler`'s per-row ones, and
the samplers' checks of their settings."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.generation import RandomSampler, RequestSampler, TopKSampler, TopPSampler
from tfllm.generation.samplers import top_k_filter, top_p_filter

# Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 over five tokens, in a shuffled order: top-2 keeps tokens 1 and 3,
# the nucleus of 0.7 too, the nucleus of 0.8 tokens 1, 3 and 0.
ROW = np.log([0.125, 0.5, 0.0625, 0.25, 0.0625]).astype("float32")
NEG = -np.inf


def _kept(logits):
    return np.isfinite(np.asarray(logits)).tolist()


def test_top_k_cuts_each_row_by_its_own_k_and_zero_cuts_nothing():
    logits = tf.constant(np.stack([ROW, ROW, ROW]))  # (3, 5)
    kept = _kept(top_k_filter(logits, tf.constant([1, 0, 2])))
    assert kept == [[False, True, False, False, False], [True] * 5, [False, True, False, True, False]]
    assert _kept(top_k_filter(logits, 2)) == [[False, True, False, True, False]] * 3  # one k for every row
    assert _kept(top_k_filter(logits, 9)) == [[True] * 5] * 3  # more than the vocabulary: all
    np.testing.assert_array_equal(top_k_filter(logits, 2)[0], [NEG, ROW[1], NEG, ROW[3], NEG])  # kept as they were


def test_top_p_cuts_each_row_to_its_own_nucleus_and_one_cuts_nothing():
    logits = tf.constant(np.stack([ROW, ROW, ROW]))  # (3, 5)
    kept = _kept(top_p_filter(logits, tf.constant([0.7, 1.0, 0.8])))
    assert kept == [[False, True, False, True, False], [True] * 5, [True, True, False, True, False]]
    assert _kept(top_p_filter(logits, 0.3)) == [[False, True, False, False, False]] * 3  # one p for every row
    np.testing.assert_array_equal(top_p_filter(logits, 0.7)[0], [NEG, ROW[1], NEG, ROW[3], NEG])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
def test_a_request_s_rows_draw_what_the_sampler_of_their_settings_draws(compiled):
    # RequestSampler promises the draws of TopKSampler, TopPSampler and RandomSampler. Row i of a batch drawn with
    # one seed gets the uniform number of row i whichever sampler draws, so each row must draw its sampler's row i.
    logits = tf.constant(np.random.default_rng(0).normal(scale=2.0, size=(4, 50)).astype("float32"))  # (B, V)
    request = RequestSampler([0.7, 1.3, 1.0, 0.9], top_k=[5, 0, 0, 3], top_p=[1.0, 0.6, 1.0, 0.5])
    alone = [TopKSampler(5, 0.7), TopPSampler(0.6, 1.3), RandomSampler(1.0),
             RequestSampler(0.9, top_k=3, top_p=0.5)]  # the last: top-k, then top-p, with one setting for the batch

    request, *alone = (tf.function(sampler.__call__, jit_compile=True) if compiled else sampler
                       for sampler in (request, *alone))  # each compiled once
    for position in range(20):
        seed = tf.constant([11, position], tf.int32)
        drawn = np.asarray(request(logits, seed))
        assert drawn.tolist() == [int(sampler(logits, seed)[row]) for row, sampler in enumerate(alone)], position


@pytest.mark.parametrize("value", [True, "0.8", None], ids=["bool", "str", "none"])
def test_samplers_refuse_a_temperature_or_p_that_is_no_number(value):
    # True passed as the temperature 1 or the probability 1, and a string raised a TypeError naming nothing.
    with pytest.raises(ValueError, match=rf"^temperature={value!r} is invalid: expected a number > 0 \(0 means "
                                         r"greedy\)\.$"):
        RandomSampler(value)
    with pytest.raises(ValueError, match=rf"^top_p={value!r} is invalid: expected a probability in \(0, 1\]\.$"):
        TopPSampler(value)
    assert RandomSampler(2).temperature == 2.0 and TopPSampler(1).p == 1.0
