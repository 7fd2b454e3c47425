"""Golden numbers for the LSTM: the gate equations in NumPy, and the forget gate's bias."""

import numpy as np
import pytest

from tfllm.layers import LSTM, LSTMCell


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_lstm(x, W, U, b):
    """The LSTM equations with gates stacked i, f, c, o; returns every h_t and the final carry."""
    units = U.shape[0]
    h = np.zeros((x.shape[0], units))
    c = np.zeros((x.shape[0], units))
    outputs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ W + h @ U + b
        i, f, g, o = (z[:, k * units : (k + 1) * units] for k in range(4))
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1), c


def test_outputs_equal_the_gate_equations_in_numpy():
    rng = np.random.RandomState(3)
    x = rng.randn(2, 6, 3).astype("float32")
    layer = LSTM(4, return_sequences=True, return_state=True)
    layer.build(x.shape)
    weights = [rng.randn(*w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights([w.astype("float32") for w in weights])
    outputs, h, c = layer(x)
    expected_outputs, expected_c = numpy_lstm(x.astype("float64"), *weights)
    np.testing.assert_allclose(np.asarray(outputs), expected_outputs, atol=1e-5)
    np.testing.assert_allclose(np.asarray(h), expected_outputs[:, -1], atol=1e-5)
    np.testing.assert_allclose(np.asarray(c), expected_c, atol=1e-5)


@pytest.mark.parametrize("unit_forget_bias, forget_bias", [(True, 1.0), (False, 0.0)])
def test_unit_forget_bias_starts_only_the_forget_gate_at_one(unit_forget_bias, forget_bias):
    cell = LSTMCell(3, unit_forget_bias=unit_forget_bias)
    cell.build((None, 2))
    bias = np.asarray(cell.bias)
    np.testing.assert_array_equal(bias[3:6], forget_bias)
    np.testing.assert_array_equal(np.concatenate([bias[:3], bias[6:]]), 0.0)


def test_cell_returns_hidden_state_and_carry():
    cell = LSTMCell(2)
    h, [h_again, c] = cell(np.ones((1, 3), "float32"), cell.get_initial_state(batch_size=1))
    np.testing.assert_array_equal(np.asarray(h), np.asarray(h_again))
    assert not np.allclose(np.asarray(h), np.asarray(c))
