"""The fused GELU equals Keras's, forward and backward, and a Transformer block trains with it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import TransformerBlock
from tfllm.layers.activations import gelu_approximate
from tfllm.layers.fused_gelu import fused_gelu

RNG = np.random.default_rng(0)


def values_and_gradients(function, inputs, variables=(), output_gradient=None):
    """`function(inputs)`, and the gradients of `sum(outputs * output_gradient)` for the inputs and `variables`."""
    inputs = tf.convert_to_tensor(inputs)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = function(inputs)
    weights = output_gradient if output_gradient is not None else tf.ones_like(outputs)
    return outputs, tape.gradient(outputs, [inputs, *variables], output_gradients=weights)


@pytest.mark.parametrize("approximate", [False, True], ids=["exact", "tanh"])
def test_gelu_and_its_gradient_equal_keras(approximate):
    x = RNG.normal(scale=3.0, size=(4, 5, 16)).astype("float32")
    weights = tf.constant(RNG.normal(size=x.shape).astype("float32"))
    ours, (our_gradient,) = values_and_gradients(lambda v: fused_gelu(v, approximate), x, output_gradient=weights)
    keras_gelu = gelu_approximate if approximate else keras.activations.gelu
    theirs, (their_gradient,) = values_and_gradients(keras_gelu, x, output_gradient=weights)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-5)


def test_exact_gelu_goes_to_zero_in_the_far_negative_tail_as_keras_does():
    # By erf, without the cut below -5.5, x Phi(x) would stay near -1e-7 x: -6e-6 at x = -60.
    x = np.linspace(-60.0, 0.0, 6001).astype("float32")
    ours, (our_gradient,) = values_and_gradients(fused_gelu, x)
    theirs, (their_gradient,) = values_and_gradients(keras.activations.gelu, x)
    np.testing.assert_allclose(ours, theirs, atol=7e-7)
    np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-6)
    assert not np.any(ours.numpy()[x < -5.5])


def test_gelu_keeps_bfloat16_and_computes_in_float32():
    x = tf.constant(RNG.normal(size=(3, 8)), tf.bfloat16)
    outputs, (gradient,) = values_and_gradients(fused_gelu, x)
    assert outputs.dtype == gradient.dtype == tf.bfloat16
    exact = keras.activations.gelu(tf.cast(x, tf.float32))
    np.testing.assert_array_equal(tf.cast(outputs, tf.float32), tf.cast(tf.cast(exact, tf.bfloat16), tf.float32))


@pytest.mark.parametrize("activation", ["gelu", "gelu_approximate", "relu"])
def test_a_block_has_the_same_outputs_and_gradients_in_training_as_outside(activation):
    keras.utils.set_random_seed(0)
    block = TransformerBlock(num_heads=2, intermediate_dim=24, activation=activation)
    x = RNG.normal(size=(2, 6, 8)).astype("float32")
    block(x)
    trained, training_gradients = values_and_gradients(lambda v: block(v, training=True), x,
                                                       block.trainable_variables)
    plain, plain_gradients = values_and_gradients(lambda v: block(v, training=False), x, block.trainable_variables)
    np.testing.assert_allclose(trained, plain, atol=1e-5)
    assert len(training_gradients) == len(plain_gradients) == 1 + 16  # the input; 4 projections, 2 norms, 2 denses
    for ours, theirs in zip(training_gradients, plain_gradients):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("activation", ["gelu", "gelu_approximate"])
def test_a_training_step_runs_the_gelu_as_compiled_kernels_and_inference_runs_tensorflow_ops(activation):
    block = TransformerBlock(num_heads=2, intermediate_dim=16, activation=activation)
    x = tf.constant(RNG.normal(size=(1, 4, 8)).astype("float32"))

    def traced(training):
        @tf.function
        def step(inputs):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = block(inputs, training=training)
            return tape.gradient(outputs, inputs)

        return step.get_concrete_function(x).graph

    kernel = "_gelu_exact" if activation == "gelu" else "_gelu_tanh"
    assert _compiled_calls(traced(True)) == {f"{kernel}_forward", f"{kernel}_backward"}
    assert _compiled_calls(traced(False)) == set()
    element_wise = {"Erfc"} if activation == "gelu" else {"Tanh"}
    assert element_wise & _op_types(traced(False)) and not element_wise & _op_types(traced(True))


def _op_types(graph):
    return {op.type for op in graph.get_operations()}


def _compiled_calls(graph):
    """The kernels of this module that the graph calls as XLA-compiled functions."""
    names = set()
    for op in graph.get_operations():
        if op.type in ("StatefulPartitionedCall", "PartitionedCall") and _must_compile(op):
            name = op.get_attr("f").name
            names |= {kernel for kernel in KERNELS if f"_{kernel}_" in name}
    return names


KERNELS = ("_gelu_exact_forward", "_gelu_exact_backward", "_gelu_tanh_forward", "_gelu_tanh_backward")


def _must_compile(op):
    try:
        return op.get_attr("_XlaMustCompile")
    except ValueError:
        return False
