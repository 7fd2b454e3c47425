import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import RotaryEmbedding


def numpy_rope(x, start_index=0, max_wavelength=10000):
    """Reference written as complex rotation: pair (x_i, x_{i+Dh/2}) is the number x_i + 1j x_{i+Dh/2}."""
    half = x.shape[-1] // 2
    pairs = x[..., :half] + 1j * x[..., half:]  # (B, T, H, Dh/2)
    positions = start_index + np.arange(x.shape[1])
    theta = positions[:, None] * max_wavelength ** (-2.0 * np.arange(half) / x.shape[-1])  # (T, Dh/2)
    rotated = pairs * np.exp(1j * theta)[None, :, None, :]
    return np.concatenate([rotated.real, rotated.imag], axis=-1)


def random_heads(shape=(2, 5, 3, 8), seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")  # (B, T, H, Dh)


def test_golden_numbers_for_one_pair():
    # Dh=2: position p rotates (1, 0) by p radians.
    x = np.tile(np.array([1.0, 0.0], "float32"), (1, 3, 1, 1))  # (1, 3, 1, 2)
    got = np.asarray(RotaryEmbedding()(x))
    want = np.array([[1.0, 0.0], [np.cos(1.0), np.sin(1.0)], [np.cos(2.0), np.sin(2.0)]])
    np.testing.assert_allclose(got[0, :, 0], want, atol=1e-6)


@pytest.mark.parametrize("start_index", [0, 7])
@pytest.mark.parametrize("max_wavelength", [10000, 100])
def test_matches_numpy_reference(start_index, max_wavelength):
    x = random_heads()
    got = RotaryEmbedding(max_wavelength=max_wavelength)(x, start_index=start_index)
    np.testing.assert_allclose(np.asarray(got), numpy_rope(x, start_index, max_wavelength), atol=1e-5)


def test_float64_inputs_keep_float64_precision():
    # The angles were float32 for every dtype: 1.1e-5 from the reference at positions 1000-1049.
    x = random_heads((2, 50, 3, 8)).astype("float64")
    got = RotaryEmbedding(dtype="float64")(x, start_index=1000)
    np.testing.assert_allclose(np.asarray(got), numpy_rope(x, 1000), rtol=0, atol=1e-10)


def test_start_index_continues_the_sequence():
    x = random_heads()
    rope = RotaryEmbedding()
    full = np.asarray(rope(x))
    for t in range(x.shape[1]):
        step = rope(x[:, t : t + 1], start_index=tf.constant(t))
        np.testing.assert_allclose(np.asarray(step), full[:, t : t + 1], atol=1e-5)


def test_scores_depend_only_on_relative_position():
    rope = RotaryEmbedding()
    q = random_heads((1, 1, 1, 8), seed=1)
    k = random_heads((1, 1, 1, 8), seed=2)

    def score(query_position, key_position):
        rotated_q = np.asarray(rope(q, start_index=query_position))
        rotated_k = np.asarray(rope(k, start_index=key_position))
        return float(np.sum(rotated_q * rotated_k))

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


def test_compiles_with_tensor_start_index():
    rope = RotaryEmbedding()
    assert_compiles(lambda x, start: rope(x, start_index=start), random_heads(), tf.constant(3))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_keeps_input_dtype(policy):
    x = random_heads()
    _, got = run_under_policy(policy, RotaryEmbedding, x)
    compute_dtype = keras.mixed_precision.Policy(policy).compute_dtype
    assert keras.backend.standardize_dtype(got.dtype) == compute_dtype
    # Angles are computed in float32, so only the final rounding to the compute dtype differs.
    np.testing.assert_allclose(np.asarray(tf.cast(got, "float32")), numpy_rope(x), atol=0.05)


def test_config_and_saving_round_trip(tmp_path):
    rope = RotaryEmbedding(max_wavelength=500)
    assert_config_round_trip(rope)
    inputs = keras.Input((5, 3, 8))
    model = keras.Model(inputs, RotaryEmbedding(max_wavelength=500)(inputs))
    loaded = assert_saving_round_trip(model, random_heads(), str(tmp_path / "rope.keras"))
    assert loaded.layers[-1].max_wavelength == 500


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="max_wavelength=0"):
        RotaryEmbedding(max_wavelength=0)
    with pytest.raises(ValueError, match="head_dim=7"):
        RotaryEmbedding()(np.ones((1, 2, 1, 7), "float32"))
