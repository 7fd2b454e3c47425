"""Golden numbers: SimpleRNN is exactly h_t = tanh(W x_t + U h_{t-1} + b)."""

import numpy as np
import keras
import pytest

from tfllm.layers import SimpleRNN, SimpleRNNCell


def numpy_simple_rnn(x, W, U, b, h0=None, activation=np.tanh):
    """The textbook loop, one timestep at a time; returns every h_t, (B, T, units)."""
    h = np.zeros((x.shape[0], U.shape[0]), x.dtype) if h0 is None else h0
    outputs = []
    for t in range(x.shape[1]):
        h = activation(x[:, t] @ W + h @ U + b)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def test_outputs_equal_the_equation_in_numpy():
    rng = np.random.RandomState(42)
    x = rng.randn(2, 9, 3).astype("float32")
    W, U, b = rng.randn(3, 5) * 0.5, rng.randn(5, 5) * 0.5, rng.randn(5)
    layer = SimpleRNN(5, return_sequences=True, return_state=True)
    layer.build(x.shape)
    layer.set_weights([W.astype("float32"), U.astype("float32"), b.astype("float32")])
    outputs, final_state = layer(x)
    expected = numpy_simple_rnn(x.astype("float64"), W, U, b)
    np.testing.assert_allclose(np.asarray(outputs), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(final_state), expected[:, -1], atol=1e-5)


def test_constant_weights_give_hand_computed_numbers():
    # One input, one unit: W = 0.5, U = 0.25, b = 0.1 and x = (1, 2):
    # h_1 = tanh(0.5 + 0.1) = 0.537050, h_2 = tanh(1.0 + 0.25 * 0.537050 + 0.1) = 0.843811.
    layer = SimpleRNN(
        1,
        return_sequences=True,
        kernel_initializer=keras.initializers.Constant(0.5),
        recurrent_initializer=keras.initializers.Constant(0.25),
        bias_initializer=keras.initializers.Constant(0.1),
    )
    outputs = layer(np.array([[[1.0], [2.0]]], dtype="float32"))
    np.testing.assert_allclose(np.asarray(outputs).ravel(), [0.537050, 0.843811], atol=1e-6)


def test_cell_is_one_step_of_the_equation():
    rng = np.random.RandomState(0)
    cell = SimpleRNNCell(3, activation="relu")
    x, h = rng.randn(4, 2).astype("float32"), rng.randn(4, 3).astype("float32")
    output, [state] = cell(x, [h])
    W, U, b = (np.asarray(w) for w in cell.get_weights())
    expected = np.maximum(x @ W + h @ U + b, 0)
    np.testing.assert_allclose(np.asarray(output), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state), expected, atol=1e-6)


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_activation_is_configurable(activation):
    functions = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "linear": lambda z: z}
    rng = np.random.RandomState(1)
    x = rng.randn(2, 4, 3).astype("float32")
    layer = SimpleRNN(2, activation=activation, return_sequences=True)
    layer.build(x.shape)
    W, U, b = (np.asarray(w, dtype="float64") for w in layer.get_weights())
    expected = numpy_simple_rnn(x.astype("float64"), W, U, b, activation=functions[activation])
    np.testing.assert_allclose(np.asarray(layer(x)), expected, atol=1e-5)
