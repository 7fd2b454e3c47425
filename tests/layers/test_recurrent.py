"""SimpleRNN and LSTM against Keras's own layers: same weights in, same outputs, states and gradients out."""

import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import LSTM, LSTMCell, SimpleRNN, SimpleRNNCell

PAIRS = [
    pytest.param(SimpleRNN, keras.layers.SimpleRNN, id="simple_rnn"),
    pytest.param(LSTM, keras.layers.LSTM, id="lstm"),
]
UNITS = 4
BATCH, TIME, FEATURES = 3, 7, 5
# Row 0 is complete, row 1 ends in padding, row 2 has a gap inside.
MASK = np.array([[1] * 7, [1] * 4 + [0] * 3, [1, 1, 0, 0, 1, 1, 1]], dtype=bool)


def _inputs(seed=0):
    return np.random.RandomState(seed).randn(BATCH, TIME, FEATURES).astype("float32")


def _twins(ours_class, keras_class, **kwargs):
    """A tfllm layer and a Keras layer of the same configuration sharing the Keras layer's random weights."""
    theirs = keras_class(UNITS, **kwargs)
    theirs.build((BATCH, TIME, FEATURES))
    ours = ours_class(UNITS, **kwargs)
    ours.build((BATCH, TIME, FEATURES))
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _assert_same(actual, expected, atol=1e-6):
    actual, expected = tf.nest.flatten(actual), tf.nest.flatten(expected)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol)


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"return_sequences": True},
        {"return_state": True},
        {"return_sequences": True, "return_state": True, "go_backwards": True},
        {"return_sequences": True, "unroll": True},
        {"activation": "relu", "use_bias": False},
    ],
    ids=["last", "sequences", "state", "backwards", "unrolled", "relu_no_bias"],
)
def test_outputs_and_states_equal_keras(ours_class, keras_class, options):
    ours, theirs = _twins(ours_class, keras_class, **options)
    x = _inputs()
    _assert_same(ours(x), theirs(x))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masking_equals_keras(ours_class, keras_class, zero_output_for_mask, go_backwards):
    options = dict(
        return_sequences=True,
        return_state=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    ours, theirs = _twins(ours_class, keras_class, **options)
    x = _inputs()
    _assert_same(ours(x, mask=MASK), theirs(x, mask=MASK))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_mask_from_an_embedding_reaches_the_layer(ours_class, keras_class):
    token_ids = np.array([[3, 1, 4, 0, 0], [2, 7, 1, 8, 2]], dtype="int32")
    models = []
    for layer_class in (ours_class, keras_class):
        inputs = keras.Input((None,), dtype="int32")
        hidden = keras.layers.Embedding(10, FEATURES, mask_zero=True)(inputs)
        models.append(keras.Model(inputs, layer_class(UNITS)(hidden)))
    ours, theirs = models
    ours.set_weights(theirs.get_weights())
    _assert_same(ours(token_ids), theirs(token_ids))
    # Padding after the last token leaves the final output as it was after that token.
    _assert_same(ours(token_ids[:1]), ours(token_ids[:1, :3]))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_initial_state_and_stateful_batches_equal_keras(ours_class, keras_class):
    x = _inputs()
    ours, theirs = _twins(ours_class, keras_class, return_state=True)
    num_states = 2 if ours_class is LSTM else 1
    initial = [np.random.RandomState(i).randn(BATCH, UNITS).astype("float32") for i in range(num_states)]
    _assert_same(ours(x, initial_state=initial), theirs(x, initial_state=initial))

    ours, theirs = _twins(ours_class, keras_class, stateful=True)
    for chunk in (x[:, :3], x[:, 3:]):  # the second call starts from the state the first one left
        _assert_same(ours(chunk), theirs(chunk))
    ours.reset_state()
    theirs.reset_state()
    _assert_same(ours(x[:, 3:]), theirs(x[:, 3:]))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_gradients_equal_keras(ours_class, keras_class):
    ours, theirs = _twins(ours_class, keras_class, return_sequences=True)
    x = tf.constant(_inputs())
    gradients = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x, mask=MASK)))
        gradients.append(tape.gradient(loss, [x] + layer.trainable_variables))
    _assert_same(gradients[0], gradients[1], atol=1e-5)


@pytest.mark.parametrize(
    "cell_class, keras_class",
    [(SimpleRNNCell, keras.layers.SimpleRNN), (LSTMCell, keras.layers.LSTM)],
    ids=["simple_rnn", "lstm"],
)
def test_cell_runs_inside_keras_rnn(cell_class, keras_class):
    theirs = keras_class(UNITS, return_sequences=True)
    theirs.build((BATCH, TIME, FEATURES))
    wrapped = keras.layers.RNN(cell_class(UNITS), return_sequences=True)
    wrapped.build((BATCH, TIME, FEATURES))
    wrapped.set_weights(theirs.get_weights())
    x = _inputs()
    _assert_same(wrapped(x), theirs(x))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_weights_have_keras_names_and_shapes(ours_class, keras_class):
    ours, theirs = _twins(ours_class, keras_class)
    assert [w.path.split("/")[-1] for w in ours.weights] == ["kernel", "recurrent_kernel", "bias"]
    assert [tuple(w.shape) for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]


def test_input_dropout_mask_is_the_same_at_every_step():
    # With U = 0 and the same input at every step, every h_t is equal exactly when the input mask is.
    # (The mask is drawn in `Recurrent.inner_loop`, which LSTM shares.)
    layer = SimpleRNN(16, return_sequences=True, dropout=0.5, recurrent_initializer="zeros", seed=3)
    x = np.ones((2, 6, 8), dtype="float32")
    trained = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(trained, np.repeat(trained[:, :1], 6, axis=1), atol=1e-6)
    assert not np.allclose(trained, np.asarray(layer(x, training=False)))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_dropout_is_off_at_inference(ours_class, keras_class):
    x = _inputs()
    with_dropout = ours_class(16, return_sequences=True, dropout=0.5, recurrent_dropout=0.5)
    without = ours_class(16, return_sequences=True)
    with_dropout.build(x.shape)
    without.build(x.shape)
    without.set_weights(with_dropout.get_weights())
    _assert_same(with_dropout(x), without(x))
    assert not np.allclose(np.asarray(with_dropout(x, training=True)), np.asarray(without(x)))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_recurrent_dropout_changes_training_outputs(ours_class, keras_class):
    layer = ours_class(16, return_sequences=True, recurrent_dropout=0.5, seed=5)
    x = _inputs()
    assert not np.allclose(np.asarray(layer(x, training=True)), np.asarray(layer(x, training=False)))


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_config_and_saving_round_trips(ours_class, keras_class, tmp_path):
    layer = ours_class(UNITS, return_sequences=True, go_backwards=True, dropout=0.25, activation="relu", seed=2)
    assert_config_round_trip(layer)
    assert_config_round_trip(layer.cell)
    inputs = keras.Input((TIME, FEATURES))
    model = keras.Model(inputs, keras.layers.Dense(2)(layer(inputs)))
    loaded = assert_saving_round_trip(model, _inputs(), tmp_path / "model.keras")
    revived = loaded.layers[1]
    assert type(revived) is ours_class and revived.go_backwards and revived.cell.dropout == 0.25


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_graph_and_xla_give_eager_numbers(ours_class, keras_class):
    layer = ours_class(UNITS, return_sequences=True, return_state=True)
    x = tf.constant(_inputs())
    layer(x)
    assert_compiles(lambda inputs: layer(inputs), x)
    assert_compiles(lambda inputs: layer(inputs, mask=tf.constant(MASK)), x)


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
@pytest.mark.parametrize("policy, dtype", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision(ours_class, keras_class, policy, dtype):
    x = _inputs()
    layer, outputs = run_under_policy(policy, lambda: ours_class(UNITS, return_sequences=True), x)
    assert outputs.dtype == dtype
    assert layer.cell.kernel.dtype == "float32"
    full = ours_class(UNITS, return_sequences=True)
    full.build(x.shape)
    full.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(outputs, dtype="float32"), np.asarray(full(x)), atol=0.05)


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_a_tiny_model_learns_to_continue_a_sequence(ours_class, keras_class):
    # Each row counts up modulo 8 from a random start: the next token is always the current one plus one.
    starts = np.random.RandomState(0).randint(0, 8, size=(256, 1))
    tokens = (starts + np.arange(13)) % 8
    x, y = tokens[:, :-1], tokens[:, 1:]
    model = keras.Sequential(
        [keras.Input((12,), dtype="int32"), keras.layers.Embedding(8, 16), ours_class(32, return_sequences=True), keras.layers.Dense(8)]
    )
    model.compile(keras.optimizers.Adam(0.02), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0).history["loss"]
    # Chance is ln 8 = 2.08; the rule is learned when the loss falls twenty-fold.
    assert history[-1] < history[0] / 20


@pytest.mark.parametrize("layer_class", [SimpleRNN, LSTM, SimpleRNNCell, LSTMCell])
@pytest.mark.parametrize(
    "options, message",
    [
        ({"units": 0}, r"units=0 is invalid: expected a positive integer"),
        ({"units": -3}, r"units=-3 is invalid"),
        ({"units": 2.5}, r"units=2.5 is invalid"),
        ({"units": 4, "dropout": 1.0}, r"dropout=1.0 is invalid: expected a rate in \[0, 1\)"),
        ({"units": 4, "recurrent_dropout": -0.1}, r"recurrent_dropout=-0.1 is invalid"),
    ],
)
def test_bad_arguments_name_the_argument(layer_class, options, message):
    with pytest.raises(ValueError, match=message):
        layer_class(**options)


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_input_without_a_feature_axis_is_refused_as_keras_refuses_it(ours_class, keras_class):
    ids = np.zeros((2, 5), "float32")  # (B, T): token ids not yet embedded
    for layer_class in (keras_class, ours_class):
        with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
            layer_class(UNITS)(ids)
