"""Samplers on fixed logits: what they may draw, how often, and that a seed reproduces the draw."""

import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfllm.generation import (GreedySampler, RandomSampler, RequestSampler, TopKSampler, TopPSampler, get_sampler,
                              samplers)
from tfllm.generation.samplers import LARGEST_FLOAT32, draw

# Probabilities 0.5, 0.25, 0.125, 0.0625, 0.0625 over five tokens, in a shuffled order.
PROBABILITIES = np.array([0.125, 0.5, 0.0625, 0.25, 0.0625])
LOGITS = np.log(PROBABILITIES)[None].repeat(2000, axis=0).astype("float32")  # (B, V)


def _draw(sampler, seed=(7, 0)):
    return np.asarray(sampler(tf.constant(LOGITS), tf.constant(seed, tf.int32)))


def test_greedy_takes_the_most_likely_token():
    assert set(_draw(GreedySampler())) == {1}


def _greedy_in_every_mode(logits):
    """GreedySampler's choices for `logits` (B, V) in eager, in the graph and under XLA."""
    sampler, logits = GreedySampler(), tf.constant(logits)
    return [np.asarray(mode(logits, None)) for mode in
            (sampler, tf.function(sampler.__call__), tf.function(sampler.__call__, jit_compile=True))]


@pytest.mark.parametrize("vocab_size", [4096, 50257])
def test_greedy_is_numpy_s_argmax(vocab_size):
    logits = np.random.default_rng(vocab_size).normal(size=(8, vocab_size)).astype("float32")  # (B, V)
    logits[:, ::3] = -np.inf
    rows = np.arange(8)
    best = logits.argmax(axis=-1)
    after_or_before = np.where(rows % 2 == 0, 1 + rows, -1 - rows)
    logits[rows, (best + after_or_before) % vocab_size] = logits[rows, best]  # a tie for each row's maximum
    for choices in _greedy_in_every_mode(logits):
        np.testing.assert_array_equal(choices, logits.argmax(axis=-1))  # the first of equal maxima


def test_greedy_takes_the_first_of_equal_logits_zeros_of_both_signs_included():
    logits = np.array([[-1.0, -0.0, 0.0, -2.0], [0.0, -0.0, -1.0, 0.0]], "float32")
    for choices in _greedy_in_every_mode(logits):
        np.testing.assert_array_equal(choices, [1, 0])


def test_random_draws_follow_the_distribution():
    counts = np.bincount(_draw(RandomSampler()), minlength=5) / len(LOGITS)
    np.testing.assert_allclose(counts, PROBABILITIES, atol=0.04)


def test_a_draw_never_takes_a_token_of_logit_minus_infinity():
    logits = np.log([[0.0, 0.25, 0.0, 0.75, 0.0]]).repeat(2000, axis=0).astype("float32")  # -inf at both ends
    draws = np.asarray(draw(tf.constant(logits), tf.constant([5, 0])))
    assert set(draws) == {1, 3}
    np.testing.assert_allclose(np.mean(draws == 3), 0.75, atol=0.04)


def test_a_uniform_number_rounded_up_to_the_total_draws_the_last_token_that_may_be_drawn(monkeypatch):
    monkeypatch.setattr(samplers.tf.random, "stateless_uniform", lambda shape, seed, dtype: tf.ones(shape, dtype))
    logits = tf.constant(np.log([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]).astype("float32"))
    np.testing.assert_array_equal(draw(logits, tf.constant([0, 0])), [1, 2])


def test_the_search_by_blocks_draws_the_token_of_one_cumulative_sum_over_the_row():
    # 200 tokens: 3 full blocks of 64 and 8 in the last; the first block and a stretch of the third hold no mass.
    logits = np.random.default_rng(0).normal(size=(64, 200)) * 3
    logits[:, :64] = logits[:, 150:170] = -np.inf
    logits = tf.constant(logits, tf.float32)
    for position in range(5):
        seed = tf.constant([3, position])
        probabilities = np.asarray(tf.nn.softmax(logits), np.float64)  # (B, V)
        uniform = np.asarray(tf.random.stateless_uniform([64, 1], seed=seed, dtype=tf.float64))
        cumulative = np.cumsum(probabilities, axis=-1)
        expected = np.sum(cumulative <= uniform * cumulative[:, -1:], axis=-1)  # the first to pass the draw
        drawn = np.asarray(draw(logits, seed))
        np.testing.assert_array_equal(drawn, expected)
        assert np.all(np.take_along_axis(probabilities, drawn[:, None], axis=1) > 0)


def test_a_draw_is_the_same_in_eager_and_in_the_graph():
    seed = tf.constant([11, 4])
    np.testing.assert_array_equal(draw(tf.constant(LOGITS), seed), tf.function(draw)(tf.constant(LOGITS), seed))


def test_top_k_never_draws_outside_the_k_most_likely():
    draws = _draw(TopKSampler(2))
    assert set(draws) == {1, 3}
    np.testing.assert_allclose(np.mean(draws == 1), 2 / 3, atol=0.04)  # renormalized 0.5 : 0.25


# p never equals a sum of the probabilities: softmax's float32 rounding differs between CPUs (on AMD Zen 3 the 0.5
# comes out just below 0.5, and p=0.5 then needs a second token), so a p on a sum would test the rounding.
@pytest.mark.parametrize("p, nucleus", [(0.45, {1}), (0.7, {1, 3}), (0.8, {1, 3, 0}), (1.0, {0, 1, 2, 3, 4})])
def test_top_p_draws_from_the_smallest_set_reaching_p(p, nucleus):
    assert set(_draw(TopPSampler(p))) == nucleus


def test_low_temperature_sharpens_and_zero_temperature_is_greedy():
    cold = _draw(RandomSampler(temperature=0.1))
    assert np.mean(cold == 1) > 0.99
    assert isinstance(get_sampler("random", temperature=0), GreedySampler)
    for temperature in (0.0, float("inf"), float("nan")):  # greedy, a uniform draw, nothing: a sampler refuses all
        with pytest.raises(ValueError, match=f"temperature={temperature} is invalid: expected a number > 0"):
            RandomSampler(temperature)


@pytest.mark.parametrize("temperature", [1e-10, 1e-38])  # NaNs under XLA; 0 where CPUs flush subnormals
def test_a_temperature_near_zero_draws_the_likeliest_token_in_every_mode(temperature):
    # The logits were divided as they were: under XLA the softmax of values near 1e10 and beyond gave NaNs, which
    # the draw took as token 0 (the padding); from the command line, --temperature 1e-20 wrote nothing.
    logits = tf.constant(np.random.default_rng(0).normal(scale=3.0, size=(8, 259)).astype("float32"))  # (B, V)
    expected = np.argmax(logits.numpy(), axis=-1)
    seed = tf.constant([3, 1], tf.int32)
    for sampler in (RandomSampler(temperature), TopPSampler(0.9, temperature), TopKSampler(5, temperature),
                    RequestSampler(temperature, top_k=5, top_p=0.9)):
        for mode in (sampler.__call__, tf.function(sampler.__call__, jit_compile=True)):
            np.testing.assert_array_equal(mode(logits, seed), expected, err_msg=f"{type(sampler).__name__}")


def test_a_temperature_beyond_float32_draws_as_float32s_largest_without_a_warning():
    # tfllm generate --temperature 1e300 printed NumPy's "overflow encountered in cast".
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        huge, largest = _draw(RandomSampler(1e300)), _draw(RandomSampler(LARGEST_FLOAT32))
    np.testing.assert_array_equal(huge, largest)


def test_the_same_seed_gives_the_same_draws():
    sampler = TopPSampler(0.9)
    np.testing.assert_array_equal(_draw(sampler, (3, 1)), _draw(sampler, (3, 1)))
    assert not np.array_equal(_draw(sampler, (3, 1)), _draw(sampler, (4, 1)))


def test_samplers_resolve_by_name_and_settings():
    assert isinstance(get_sampler(), GreedySampler)
    assert isinstance(get_sampler(top_k=5), TopKSampler) and get_sampler(top_k=5).k == 5
    assert isinstance(get_sampler(top_p=0.9), TopPSampler)
    assert isinstance(get_sampler("random", temperature=0.7), RandomSampler)
    sampler = TopKSampler(3)
    assert get_sampler(sampler) is sampler


def test_a_temperature_above_zero_asks_for_a_draw_as_top_k_and_top_p_do():
    # generate(prompt, temperature=1.5, seed=1) decoded greedily without a word: the default sampler is "greedy", and
    # unlike top_k and top_p a temperature did not change it.
    assert isinstance(get_sampler(temperature=1.5), RandomSampler) and get_sampler(temperature=1.5).temperature == 1.5
    assert isinstance(get_sampler("greedy", temperature=0), GreedySampler)
    assert get_sampler("random").temperature == 1.0 and get_sampler(top_p=0.9).temperature == 1.0  # None: 1
    flat = tf.zeros((64, 4)) + [0.0, 1.0, 0.0, 0.0]  # a huge temperature: a near-uniform draw, not the argmax
    assert np.asarray(get_sampler(temperature=1e9)(flat, tf.constant([1, 2]))).std() > 0


def test_beam_search_names_the_drawing_settings_it_was_given():
    # The message blamed sampler='greedy', the default, whatever the caller had set; a temperature was ignored.
    with pytest.raises(ValueError, match=r"num_beams=2 asks for beam search, which draws nothing: it does not "
                                         r"combine with top_p=0\.9\.$"):
        get_sampler(num_beams=2, top_p=0.9)
    with pytest.raises(ValueError, match=r"combine with sampler='random', temperature=0\.8, top_k=5\.$"):
        get_sampler("random", temperature=0.8, top_k=5, num_beams=2)
    assert get_sampler(num_beams=2, temperature=0).num_beams == 2  # 0 draws nothing either


def test_top_k_and_top_p_together_limit_the_draw_top_k_first_then_top_p():
    # top_p was dropped without a word when top_k was set too.
    logits = tf.constant(np.log([[0.05, 0.5, 0.3, 0.15]] * 256).astype("float32"))  # (B, V)
    both = get_sampler("random", top_k=3, top_p=0.7)
    assert isinstance(both, RequestSampler)
    drawn = set(np.asarray(both(logits, tf.constant([1, 2], tf.int32))).tolist())
    assert drawn == {1, 2}  # top-3 is {1, 2, 3}; renormalized (0.53, 0.32, 0.16), the nucleus of 0.7 is {1, 2}
    assert isinstance(get_sampler("top_p", top_k=3, top_p=0.7, temperature=0), GreedySampler)


def test_top_k_named_with_zero_is_no_limit_and_without_a_k_keeps_40():
    assert type(get_sampler("top_k", top_k=0)) is RandomSampler  # "0 or None: no limit", as the check says
    assert get_sampler("top_k").k == 40


def test_the_setting_of_the_sampler_not_named_still_limits_the_draw():
    # sampler="top_p" with top_k=5 was an unlimited draw (p = 1), and sampler="top_k" with top_p=0.9 a top-40 draw
    # without a nucleus: the other setting was dropped without a word.
    named_top_p = get_sampler("top_p", top_k=5)
    assert type(named_top_p) is TopKSampler and named_top_p.k == 5
    named_top_k = get_sampler("top_k", top_p=0.9)
    assert isinstance(named_top_k, RequestSampler) and int(named_top_k.top_k) == 40
    assert float(named_top_k.top_p) == pytest.approx(0.9)
    assert set(_draw(get_sampler("top_p", top_k=1))) == {1}  # top-1 is greedy, whatever sampler is named
    assert set(_draw(get_sampler("top_k", top_p=1e-6))) == {1}  # so is the smallest nucleus


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"temperature": -1.0}, r"temperature=-1.0 is invalid"),
        ({"temperature": float("inf")}, r"temperature=inf is invalid"),
        ({"top_p": 1.5}, r"top_p=1.5 is invalid"),
        ({"top_p": 0.0}, r"top_p=0.0 is invalid"),
        ({"top_k": -2}, r"top_k=-2 is invalid"),
        ({"top_k": 2.5}, r"top_k=2.5 is invalid"),
        ({"sampler": "beam_me_up"}, r"sampler='beam_me_up' is invalid"),
    ],
)
def test_bad_settings_name_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        get_sampler(**arguments)


def test_top_p_gives_the_same_nucleus_whether_the_first_candidates_cover_it_or_not():
    # A flat distribution over 1000 tokens: p = 0.5 needs 500 of them, more than the 256 candidates looked at first.
    rng = np.random.default_rng(0)
    flat = rng.normal(scale=0.01, size=(4, 1000)).astype("float32")
    peaked = flat.copy()
    peaked[:, 7] = 10.0  # the nucleus of 0.5 is token 7 alone: within the candidates
    for logits, size in ((flat, 500), (peaked, 1)):
        kept = np.isfinite(np.asarray(TopPSampler(0.5).filter(tf.constant(logits))))
        order = np.argsort(-logits, axis=-1)
        probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        for row in range(4):
            mass_before = np.cumsum(probabilities[row, order[row]]) - probabilities[row, order[row]]
            expected = set(order[row, mass_before < 0.5])
            assert set(np.flatnonzero(kept[row])) == expected and abs(len(expected) - size) <= 5
