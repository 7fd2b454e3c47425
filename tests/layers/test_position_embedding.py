import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import PositionEmbedding


def token_vectors(batch=2, length=5, dim=4):
    return np.random.default_rng(0).normal(size=(batch, length, dim)).astype("float32")  # (B, T, D)


def test_returns_the_rows_of_the_requested_positions():
    layer = PositionEmbedding(max_sequence_length=8)
    x = token_vectors()
    full = np.asarray(layer(x))
    table = layer.embeddings.numpy()  # (8, D)
    assert full.shape == (2, 5, 4)
    np.testing.assert_array_equal(full, np.broadcast_to(table[:5], (2, 5, 4)))
    shifted = np.asarray(layer(x[:, :2], start_index=6))  # positions 6, 7: the last two rows
    np.testing.assert_array_equal(shifted, np.broadcast_to(table[6:8], (2, 2, 4)))


def test_constant_initializer():
    layer = PositionEmbedding(max_sequence_length=3, initializer="ones")
    np.testing.assert_array_equal(np.asarray(layer(token_vectors(length=3))), np.ones((2, 3, 4)))


def test_compiles_with_tensor_start_index():
    layer = PositionEmbedding(max_sequence_length=8)
    assert_compiles(lambda x, start: layer(x, start_index=start), token_vectors(length=1), tf.constant(4))
    got = tf.function(lambda x, start: layer(x, start_index=start), jit_compile=True)(token_vectors(length=1), 4)
    np.testing.assert_array_equal(np.asarray(got)[0, 0], layer.embeddings.numpy()[4])


def test_a_tensor_start_index_is_not_compiled_in():
    # A compiled one-token decode step takes the position as an argument; compiled into the program (as XLA does
    # with a slice's start), every position would cost a compilation of its own.
    layer = PositionEmbedding(max_sequence_length=8)
    step = tf.function(lambda x, start: layer(x, start_index=start), jit_compile=True,
                       input_signature=[tf.TensorSpec([2, 1, 4]), tf.TensorSpec([], tf.int32)])
    x = token_vectors(length=1)
    programs = {step.experimental_get_compiler_ir(x, tf.constant(start))(stage="hlo") for start in (3, 5)}
    assert len(programs) == 1
    np.testing.assert_array_equal(np.asarray(step(x, tf.constant(5)))[1, 0], layer.embeddings.numpy()[5])


@pytest.mark.parametrize("policy, rtol", [("mixed_bfloat16", 2**-8), ("mixed_float16", 2**-11)],  # half an ulp
                         ids=["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_gives_the_float32_rows_rounded_also_from_a_start_index(policy, rtol):
    layer, got = run_under_policy(policy, lambda: PositionEmbedding(8), token_vectors())
    assert keras.backend.standardize_dtype(got.dtype) == layer.compute_dtype
    assert layer.embeddings.dtype == "float32"
    twin = PositionEmbedding(8)  # float32, the same table
    twin(token_vectors())
    twin.set_weights(layer.get_weights())
    want = np.asarray(twin(token_vectors()))  # (B, 5, D)
    np.testing.assert_allclose(np.asarray(tf.cast(got, "float32")), want, rtol=rtol)
    step = layer(token_vectors(length=1), start_index=3)  # one decode step at position 3
    assert keras.backend.standardize_dtype(step.dtype) == layer.compute_dtype
    np.testing.assert_array_equal(np.asarray(tf.cast(step, "float32")), np.asarray(tf.cast(got, "float32"))[:, 3:4])


def test_config_and_saving_round_trip(tmp_path):
    assert_config_round_trip(PositionEmbedding(max_sequence_length=8, initializer="ones"))
    inputs = keras.Input((5, 4))
    model = keras.Model(inputs, inputs + PositionEmbedding(max_sequence_length=8)(inputs))
    assert_saving_round_trip(model, token_vectors(), str(tmp_path / "positions.keras"))


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="max_sequence_length=0"):
        PositionEmbedding(max_sequence_length=0)
    with pytest.raises(ValueError, match="sequence_length=5 is longer than max_sequence_length=4"):
        PositionEmbedding(max_sequence_length=4)(token_vectors(length=5))
    layer = PositionEmbedding(max_sequence_length=4)
    with pytest.raises(ValueError, match="start_index=3 .* runs past max_sequence_length=4"):
        layer(token_vectors(length=2), start_index=3)
    # A NumPy int or an eager tensor failed inside a gather, and -1 inside a slice.
    for start in (np.int64(3), tf.constant(3)):
        with pytest.raises(ValueError, match="start_index=3 .* runs past max_sequence_length=4"):
            layer(token_vectors(length=2), start_index=start)
    with pytest.raises(ValueError, match="start_index=-1 is invalid: expected a position >= 0"):
        layer(token_vectors(length=2), start_index=-1)
