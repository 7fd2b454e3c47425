"""Which kernel the LSTM runs: cuDNN through Keras's backend exactly where Keras's LSTM takes it, tfllm's loop
elsewhere.

There is no GPU here, so a GPU is simulated: `gpu_available` is passed in or patched, and Keras's backend function
`lstm` is replaced by a stand-in that applies Keras's own test (`cudnn_ok` with a GPU present) and records what it
receives. Keras's layer and tfllm's then meet the same stand-in.
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src import backend as keras_backend

from tfllm.layers import LSTM, lstm_kernel
from tfllm.layers.lstm_kernel import CUDNN, OWN_LOOP, choose_lstm_kernel, cudnn_obstacles

# The module, which `keras.src.backend.tensorflow` shadows with its function `rnn`.
keras_tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")
tanh, sigmoid, relu = keras.activations.tanh, keras.activations.sigmoid, keras.activations.relu
UNITS, BATCH, TIME, FEATURES = 4, 3, 5, 2


@pytest.mark.parametrize(
    "arguments, gpu, expected",
    [
        (dict(), True, []),
        (dict(), False, ["no GPU is visible"]),
        (dict(activation=relu), True, ["the activations are not tanh and sigmoid"]),
        (dict(recurrent_activation=keras.activations.hard_sigmoid), True, ["the activations are not tanh and sigmoid"]),
        (dict(activation=tf.tanh, recurrent_activation=tf.sigmoid), True, []),
        (dict(use_bias=False), True, ["use_bias=False"]),
        (dict(unroll=True), True, ["unroll=True"]),
        (dict(recurrent_dropout=0.2), True, ["recurrent_dropout=0.2"]),
        (dict(unroll=True, use_bias=False), False, ["use_bias=False", "unroll=True", "no GPU is visible"]),
    ],
)
def test_cudnn_obstacles_name_every_reason(arguments, gpu, expected):
    full = dict(activation=tanh, recurrent_activation=sigmoid, use_bias=True, unroll=False, recurrent_dropout=0.0)
    assert cudnn_obstacles(**{**full, **arguments}, gpu_available=gpu) == expected


@pytest.mark.parametrize(
    "use_cudnn, obstacles, expected",
    [
        ("auto", [], CUDNN),
        (True, [], CUDNN),
        (False, [], OWN_LOOP),
        ("auto", ["no GPU is visible"], OWN_LOOP),
        (False, ["no GPU is visible"], OWN_LOOP),
    ],
)
def test_choose_lstm_kernel_table(use_cudnn, obstacles, expected):
    assert choose_lstm_kernel(use_cudnn, obstacles) == expected


def test_use_cudnn_true_without_cudnn_names_the_reasons():
    with pytest.raises(ValueError, match=r"use_cudnn=True but cuDNN cannot run this LSTM: unroll=True, no GPU"):
        choose_lstm_kernel(True, ["unroll=True", "no GPU is visible"])


def test_input_dropout_per_gate_keeps_the_own_loop_on_a_gpu():
    # cuDNN takes one input sequence, so implementation 1's four input masks cannot run there (Keras's layer fails).
    per_gate = LSTM(UNITS, dropout=0.25, implementation=1)
    assert per_gate.cudnn_obstacles(gpu_available=True) == ["implementation=1 with dropout=0.25 (a dropout mask per gate)"]
    assert per_gate.kernel_choice(gpu_available=True) == OWN_LOOP
    assert LSTM(UNITS, dropout=0.25).kernel_choice(gpu_available=True) == CUDNN
    assert LSTM(UNITS, implementation=1).kernel_choice(gpu_available=True) == CUDNN


@pytest.mark.parametrize("layer_class", [LSTM, keras.layers.LSTM])
def test_use_cudnn_must_be_auto_true_or_false(layer_class):
    with pytest.raises(ValueError, match="use_cudnn"):
        layer_class(UNITS, use_cudnn="yes")


@pytest.mark.parametrize(
    "activation, recurrent_activation, unroll, use_bias",
    [
        (tanh, sigmoid, False, True),
        (tf.tanh, tf.sigmoid, False, True),
        (keras.ops.tanh, keras.ops.sigmoid, False, True),
        (relu, sigmoid, False, True),
        (tanh, keras.activations.hard_sigmoid, False, True),
        (tanh, sigmoid, True, True),
        (tanh, sigmoid, False, False),
    ],
)
@pytest.mark.parametrize("gpu", [True, False])
def test_obstacles_agree_with_keras_cudnn_ok(monkeypatch, activation, recurrent_activation, unroll, use_bias, gpu):
    monkeypatch.setattr(keras_tf_rnn, "_is_gpu_available", lambda: gpu)
    keras_says = keras_tf_rnn.cudnn_ok(activation, recurrent_activation, unroll, use_bias)
    assert keras_says == (not cudnn_obstacles(activation, recurrent_activation, use_bias, unroll, 0.0, gpu))


class FakeCudnnBackend:
    """Stands in for `keras.src.backend.lstm` on a machine with a GPU: Keras's own `cudnn_ok` decides, as there."""

    def __init__(self):
        self.calls = []

    def __call__(self, inputs, initial_state_h, initial_state_c, mask, **arguments):
        gpu_here = keras_tf_rnn._is_gpu_available
        keras_tf_rnn._is_gpu_available = lambda: True
        try:
            supported = keras_tf_rnn.cudnn_ok(
                arguments["activation"],
                arguments["recurrent_activation"],
                arguments["unroll"],
                use_bias=arguments["bias"] is not None,
            )
        finally:
            keras_tf_rnn._is_gpu_available = gpu_here
        if not supported:
            raise NotImplementedError
        self.calls.append(dict(arguments, inputs=inputs, mask=mask, h=initial_state_h, c=initial_state_c))
        h = tf.fill(tf.shape(initial_state_h), 0.5)  # a recognisable answer: 0.5 everywhere
        outputs = tf.fill((tf.shape(inputs)[0], tf.shape(inputs)[1], UNITS), 0.5)
        return h, outputs if arguments["return_sequences"] else h[:, None], [h, h]


@pytest.fixture
def simulated_gpu(monkeypatch):
    """A GPU for tfllm's check, and Keras's backend `lstm` replaced by the recording stand-in."""
    fake = FakeCudnnBackend()
    monkeypatch.setattr(lstm_kernel, "gpu_available", lambda: True)
    monkeypatch.setattr(keras_backend, "lstm", fake)
    return fake


ARGUMENT_TABLE = [
    pytest.param({}, True, id="defaults"),
    pytest.param({"use_cudnn": True}, True, id="use_cudnn_true"),
    pytest.param({"use_cudnn": False}, False, id="use_cudnn_false"),
    pytest.param({"dropout": 0.3}, True, id="input_dropout"),
    pytest.param({"recurrent_dropout": 0.3}, False, id="recurrent_dropout"),
    pytest.param({"activation": "relu"}, False, id="relu"),
    pytest.param({"recurrent_activation": "hard_sigmoid"}, False, id="hard_sigmoid"),
    pytest.param({"use_bias": False}, False, id="no_bias"),
    pytest.param({"unroll": True}, False, id="unrolled"),
    pytest.param({"go_backwards": True, "return_sequences": True}, True, id="backwards"),
    pytest.param({"stateful": True}, True, id="stateful"),
]


@pytest.mark.parametrize("arguments, takes_cudnn", ARGUMENT_TABLE)
def test_on_a_gpu_cudnn_is_taken_exactly_where_keras_takes_it(simulated_gpu, arguments, takes_cudnn):
    x = np.random.RandomState(0).randn(BATCH, TIME, FEATURES).astype("float32")
    for layer_class in (keras.layers.LSTM, LSTM):
        before = len(simulated_gpu.calls)
        layer_class(UNITS, **arguments)(x, training=True)
        assert len(simulated_gpu.calls) - before == int(takes_cudnn), layer_class
    if takes_cudnn:
        assert LSTM(UNITS, **arguments).kernel_choice() == CUDNN


def test_on_a_gpu_the_backend_receives_keras_arguments_and_its_answer_is_returned(simulated_gpu):
    layer = LSTM(UNITS, return_sequences=True, return_state=True, go_backwards=True)
    x = np.random.RandomState(0).randn(BATCH, TIME, FEATURES).astype("float32")
    mask = np.array([[1] * 5, [1] * 3 + [0] * 2, [1] * 1 + [0] * 4], dtype=bool)  # right-padded
    outputs, h, c = layer(x, mask=mask)
    [call] = simulated_gpu.calls
    cell = layer.cell
    assert call["kernel"] is cell.kernel and tuple(call["kernel"].shape) == (FEATURES, 4 * UNITS)
    assert call["recurrent_kernel"] is cell.recurrent_kernel
    assert tuple(call["recurrent_kernel"].shape) == (UNITS, 4 * UNITS)
    assert call["bias"] is cell.bias and tuple(call["bias"].shape) == (4 * UNITS,)
    assert call["activation"] is cell.activation and call["recurrent_activation"] is cell.recurrent_activation
    assert (call["return_sequences"], call["go_backwards"], call["unroll"]) == (True, True, False)
    np.testing.assert_array_equal(np.asarray(call["inputs"]), x)  # batch-major, no dropout at inference
    np.testing.assert_array_equal(np.asarray(call["mask"]), mask)
    np.testing.assert_array_equal(np.asarray(call["h"]), 0.0)
    np.testing.assert_array_equal(np.asarray(outputs), 0.5)
    np.testing.assert_array_equal(np.asarray(c), 0.5)
    assert not layer.supports_jit  # cuDNN has no XLA kernel, as for Keras's layer


def test_on_a_gpu_input_dropout_reaches_the_backend_as_one_mask_per_sequence(simulated_gpu):
    layer = LSTM(UNITS, dropout=0.5, seed=1)
    layer(np.ones((BATCH, TIME, 16), "float32"), training=True)
    inputs = np.asarray(simulated_gpu.calls[0]["inputs"])
    np.testing.assert_array_equal(inputs, np.repeat(inputs[:, :1], TIME, axis=1))
    assert set(np.unique(inputs)) == {0.0, 2.0}


def test_on_this_cpu_the_own_loop_runs_and_use_cudnn_true_raises_as_in_keras(monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the cuDNN path was taken on a machine without a GPU")

    monkeypatch.setattr(lstm_kernel, "gpu_available", lambda: False)
    x = np.random.RandomState(0).randn(BATCH, TIME, FEATURES).astype("float32")
    theirs = keras.layers.LSTM(UNITS)
    expected = theirs(x)  # Keras's backend finds no GPU and runs Keras's loop
    ours = LSTM(UNITS)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    assert ours.kernel_choice() == OWN_LOOP and ours.supports_jit
    monkeypatch.setattr(keras_backend, "lstm", never)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(expected), atol=1e-6)
    monkeypatch.undo()
    for layer_class in (keras.layers.LSTM, LSTM):
        with pytest.raises(ValueError, match="use_cudnn=True"):
            layer_class(UNITS, use_cudnn=True)(x)
