"""The fused causal attention equals TensorFlow's ops, forward and backward, and CausalSelfAttention takes it only
in training steps it can compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import CausalSelfAttention, causal_self_attention
from tfllm.layers.fused_causal_attention import fused_causal_attention

RNG = np.random.default_rng(0)


def reference_attention(query, key, value):
    """The same attention written with TensorFlow's ops, for TensorFlow to differentiate."""
    length = query.shape[2]
    scores = tf.cast(tf.einsum("bhtk,bhsk->bhts", query, key), tf.float32)
    visible = np.tril(np.ones((length, length), bool))
    probabilities = tf.nn.softmax(tf.where(visible, scores, -1e9), axis=-1)
    return tf.einsum("bhts,bhsk->bthk", tf.cast(probabilities, value.dtype), value)


def values_and_gradients(function, inputs, variables=(), output_gradient=None):
    """`function(*inputs)` and the gradients of `sum(outputs * output_gradient)` for the inputs and `variables`."""
    inputs = [tf.convert_to_tensor(tensor) for tensor in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = function(*inputs)
    weights = output_gradient if output_gradient is not None else tf.ones_like(outputs)
    return outputs, tape.gradient(outputs, [*inputs, *variables], output_gradients=weights)


def heads(shape=(2, 3, 5, 4), dtype="float32"):
    return [tf.constant(RNG.normal(size=shape), dtype) for _ in range(3)]


def test_values_and_gradients_equal_tensorflows():
    inputs = heads()
    weights = tf.constant(RNG.normal(size=(2, 5, 3, 4)).astype("float32"))
    ours, our_gradients = values_and_gradients(fused_causal_attention, inputs, output_gradient=weights)
    theirs, their_gradients = values_and_gradients(reference_attention, inputs, output_gradient=weights)
    assert ours.shape == (2, 5, 3, 4)  # (B, T, H, Dh)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_gradient, their_gradient in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-5)


def test_a_query_sees_no_later_key():
    query, key, value = heads()
    later = tf.concat([value[:, :, :3], value[:, :, 3:] + 100.0], axis=2)  # only positions 3 and 4 change
    first, changed = fused_causal_attention(query, key, value), fused_causal_attention(query, key, later)
    np.testing.assert_array_equal(first[:, :3], changed[:, :3])
    assert not np.allclose(first[:, 3:], changed[:, 3:])


def test_bfloat16_in_and_out_with_a_float32_softmax():
    inputs = heads(dtype="bfloat16")
    outputs, gradients = values_and_gradients(fused_causal_attention, inputs)
    assert outputs.dtype == tf.bfloat16 and all(gradient.dtype == tf.bfloat16 for gradient in gradients)
    np.testing.assert_allclose(tf.cast(outputs, tf.float32), tf.cast(reference_attention(*inputs), tf.float32),
                               atol=2e-2)


def test_gradients_inside_a_step_compiled_by_xla_as_a_whole():
    inputs = heads()

    @tf.function(jit_compile=True)
    def gradients(query, key, value):
        return values_and_gradients(fused_causal_attention, (query, key, value))[1]

    for ours, theirs in zip(gradients(*inputs), values_and_gradients(reference_attention, inputs)[1], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def attention_and_input(**kwargs):
    keras.utils.set_random_seed(0)
    attention = CausalSelfAttention(num_heads=2, **kwargs)
    x = RNG.normal(size=(2, 6, 8)).astype("float32")  # (B, T, D)
    attention(x)
    return attention, x


@pytest.mark.parametrize("rotary", [False, True], ids=["learned", "rotary"])
def test_a_training_call_equals_an_inference_call_values_and_gradients(rotary):
    attention, x = attention_and_input(rotary=rotary)
    variables = attention.trainable_variables
    trained, training_gradients = values_and_gradients(lambda v: attention(v, training=True), [x], variables)
    plain, plain_gradients = values_and_gradients(lambda v: attention(v, training=False), [x], variables)
    np.testing.assert_allclose(trained, plain, atol=1e-5)
    assert len(training_gradients) == 1 + 8  # the input; 4 kernels and 4 biases
    for ours, theirs in zip(training_gradients, plain_gradients, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "layer_arguments, call_arguments, fused",
    [
        ({}, {"training": True}, True),
        ({}, {"training": False}, False),
        ({"dropout": 0.1}, {"training": True}, False),  # dropout acts on the probabilities
        ({}, {"training": True, "padding_mask": np.array([[1] * 6, [0, 0, 1, 1, 1, 1]])}, False),
    ],
    ids=["training", "inference", "dropout", "padding"],
)
def test_the_fused_kernel_runs_only_in_training_calls_it_can_compute(monkeypatch, layer_arguments, call_arguments,
                                                                       fused):
    attention, x = attention_and_input(**layer_arguments)
    calls = []

    def counted(query, key, value):
        calls.append(query.shape)
        return fused_causal_attention(query, key, value)

    monkeypatch.setattr(causal_self_attention, "fused_causal_attention", counted)
    attention(x, **call_arguments)
    assert calls == ([(2, 2, 6, 4)] if fused else [])  # (B, H, T, Dh)
