"""The fused layer norm equals keras.layers.LayerNormalization, forward and backward, and the Transformer takes it
only in training calls of layers it can compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import TransformerBlock, fused_layer_norm as fused_layer_norm_module, kernel_placement
from tfllm.layers.fused_layer_norm import fused_layer_norm, layer_norm
from tfllm.models import TransformerLM

RNG = np.random.default_rng(0)


def keras_layer_norm(shape=(4, 16), epsilon=1e-5, **kwargs):
    """A Keras layer norm built for `shape`, with a scale and shift far from their initial ones and zeros."""
    layer = keras.layers.LayerNormalization(epsilon=epsilon, **kwargs)
    layer.build(shape)
    if layer.scale:
        layer.gamma.assign(RNG.normal(size=layer.gamma.shape).astype("float32"))
    if layer.center:
        layer.beta.assign(RNG.normal(size=layer.beta.shape).astype("float32"))
    return layer


def values_and_gradients(function, x, variables):
    """`function(x)` and the gradients of `sum(outputs * weights)` for x and the variables, fixed random weights."""
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = function(x)
    weights = tf.constant(np.random.default_rng(1).normal(size=outputs.shape), outputs.dtype)
    return outputs, tape.gradient(outputs, [x, *variables], output_gradients=weights)


@pytest.mark.parametrize("shape", [(4, 16), (2, 3, 16)])
def test_values_and_gradients_equal_keras(shape):
    layer = keras_layer_norm()
    x = RNG.normal(loc=2.0, scale=3.0, size=shape).astype("float32")
    variables = [layer.gamma, layer.beta]

    def fused(inputs):
        return fused_layer_norm(inputs, layer.gamma, layer.beta, layer.epsilon)

    ours, our_gradients = values_and_gradients(fused, x, variables)
    theirs, their_gradients = values_and_gradients(layer, x, variables)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_gradient, their_gradient in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-4)


@pytest.mark.parametrize("devices", [[], ["/device:GPU:0"]], ids=["cpu-only: products", "accelerator: reductions"])
def test_sums_as_products_or_as_reductions_give_keras_values_and_gradients(monkeypatch, devices):
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: list(devices))
    assert kernel_placement.sums_as_products() == (not devices)
    layer = keras_layer_norm(shape=(3, 24))
    x = RNG.normal(loc=-1.0, scale=2.0, size=(2, 3, 24)).astype("float32")
    variables = [layer.gamma, layer.beta]
    # The kernels' own functions, traced for this rule alone (the module's kernels keep the traces they have).
    forward = tf.function(fused_layer_norm_module._forward.python_function, jit_compile=True)
    backward = tf.function(fused_layer_norm_module._backward.python_function, jit_compile=True)
    monkeypatch.setattr(fused_layer_norm_module, "_forward", forward)
    monkeypatch.setattr(fused_layer_norm_module, "_backward", backward)
    ours, our_gradients = values_and_gradients(
        lambda inputs: fused_layer_norm(inputs, layer.gamma, layer.beta, layer.epsilon), x, variables)
    theirs, their_gradients = values_and_gradients(layer, x, variables)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_gradient, their_gradient in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-4)
    graph = forward.get_concrete_function(tf.constant(x), layer.gamma.value, layer.beta.value, layer.epsilon).graph
    products = [op.type for op in graph.get_operations() if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3")]
    assert bool(products) == (not devices)


def test_the_epsilon_counts():
    x = tf.constant([[0.0, 1e-3]])
    small, large = (fused_layer_norm(x, tf.ones(2), tf.zeros(2), epsilon) for epsilon in (1e-9, 1.0))
    for outputs, epsilon in ((small, 1e-9), (large, 1.0)):  # the variance is (5e-4)^2
        expected = 5e-4 / np.sqrt(2.5e-7 + epsilon)
        np.testing.assert_allclose(outputs, [[-expected, expected]], rtol=1e-4)


def test_bfloat16_in_and_out_computed_in_float32():
    layer = keras_layer_norm()
    x = tf.constant(RNG.normal(size=(4, 16)), tf.bfloat16)
    outputs, gradients = values_and_gradients(lambda v: fused_layer_norm(v, layer.gamma, layer.beta, 1e-5), x,
                                              [layer.gamma, layer.beta])
    assert outputs.dtype == gradients[0].dtype == tf.bfloat16
    assert gradients[1].dtype == gradients[2].dtype == tf.float32
    np.testing.assert_allclose(tf.cast(outputs, tf.float32), tf.cast(layer(x), tf.float32), atol=1e-2)


@pytest.fixture
def fused_calls(monkeypatch):
    """The input shapes of the calls to fused_layer_norm from here on, counted."""
    shapes = []

    def counted(*arguments):
        shapes.append(arguments[0].shape)
        return fused_layer_norm(*arguments)

    monkeypatch.setattr(fused_layer_norm_module, "fused_layer_norm", counted)
    return shapes


@pytest.mark.parametrize(
    "layer_arguments, training, fused",
    [
        ({}, True, True),
        ({}, False, False),
        ({}, None, False),
        ({"axis": [-1]}, True, True),
        ({"axis": 0}, True, False),
        ({"center": False}, True, False),
        ({"scale": False}, True, False),
        ({"gamma_regularizer": "l2"}, True, True),  # Keras adds its loss outside the call
    ],
    ids=["training", "inference", "unknown", "last-axis-list", "first-axis", "no-shift", "no-scale", "regularized"],
)
def test_layer_norm_fuses_only_the_training_calls_of_plain_layers(fused_calls, layer_arguments, training, fused):
    layer = keras_layer_norm(**layer_arguments)
    x = RNG.normal(size=(4, 16)).astype("float32")
    np.testing.assert_allclose(layer_norm(layer, x, training), layer(x), atol=1e-5)
    assert fused_calls == ([(4, 16)] if fused else [])


@pytest.mark.parametrize("normalize_first", [True, False], ids=["pre-norm", "post-norm"])
def test_a_block_normalizes_by_the_fused_kernel_in_training(fused_calls, normalize_first):
    keras.utils.set_random_seed(0)
    block = TransformerBlock(num_heads=2, intermediate_dim=24, normalize_first=normalize_first)
    x = RNG.normal(size=(2, 6, 8)).astype("float32")
    block(x)
    trained, training_gradients = values_and_gradients(lambda v: block(v, training=True), x,
                                                       block.trainable_variables)
    assert fused_calls == [(2, 6, 8)] * 2
    plain, plain_gradients = values_and_gradients(lambda v: block(v, training=False), x, block.trainable_variables)
    assert len(fused_calls) == 2
    np.testing.assert_allclose(trained, plain, atol=1e-5)
    for ours, theirs in zip(training_gradients, plain_gradients, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_a_transformer_lm_normalizes_its_last_hidden_states_by_the_fused_kernel_in_training(fused_calls):
    keras.utils.set_random_seed(0)
    model = TransformerLM(vocab_size=11, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                          max_sequence_length=6)
    token_ids = RNG.integers(0, 11, size=(2, 6))
    model(token_ids)
    trained = model(token_ids, training=True)
    assert len(fused_calls) == 3  # the block's two and the final one
    np.testing.assert_allclose(trained, model(token_ids, training=False), atol=1e-5)
