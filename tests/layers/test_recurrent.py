"""SimpleRNN and LSTM against Keras's own layers: same arguments and configs, same weights in, same outputs out."""

import inspect

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
@pytest.mark.parametrize(
    "options, mask",
    [
        ({"return_sequences": True}, MASK),
        ({"return_sequences": True}, None),  # the LSTM's hand-written backward pass
        ({"return_sequences": True, "go_backwards": True}, None),
        ({"return_state": True}, None),  # gradients reach the loop through h_T and c_T only
    ],
    ids=["masked", "sequences", "backwards", "final_states"],
)
def test_gradients_equal_keras(ours_class, keras_class, options, mask):
    ours, theirs = _twins(ours_class, keras_class, **options)
    x = tf.constant(_inputs())
    initial = [tf.constant(np.random.RandomState(i).randn(BATCH, UNITS).astype("float32")) for i in range(2)]
    initial = initial[: 2 if ours_class is LSTM else 1]
    gradients = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch([x, *initial])
            outputs = tf.nest.flatten(layer(x, mask=mask, initial_state=initial))
            loss = sum(tf.reduce_sum(tf.square(output) * (k + 1)) for k, output in enumerate(outputs))
        gradients.append(tape.gradient(loss, [x, *initial] + layer.trainable_variables))
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


DROPOUTS = [
    pytest.param({"dropout": 0.3}, id="input"),
    pytest.param({"dropout": 0.3, "recurrent_dropout": 0.3}, id="input_and_recurrent"),
    pytest.param({"dropout": 0.3, "implementation": 1}, id="input_implementation_1"),
]


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
@pytest.mark.parametrize("dropouts", DROPOUTS)
def test_training_with_dropout_draws_keras_masks_from_the_same_seed(ours_class, keras_class, dropouts):
    # The same seed draws the same masks as Keras's layer: one per sequence; for an LSTM with recurrent dropout or
    # implementation 1, one per gate (input and recurrent), not one shared by the four gates.
    if ours_class is SimpleRNN:
        dropouts = {key: value for key, value in dropouts.items() if key != "implementation"}
    extra = {"use_cudnn": False} if ours_class is LSTM else {}
    ours, theirs = _twins(ours_class, keras_class, return_sequences=True, seed=5, **dropouts, **extra)
    x = _inputs()
    _assert_same(ours(x, training=True), theirs(x, training=True), atol=1e-5)


@pytest.mark.parametrize("ours_cell, keras_cell", [(SimpleRNNCell, keras.layers.SimpleRNNCell),
                                                   (LSTMCell, keras.layers.LSTMCell)], ids=["simple_rnn", "lstm"])
def test_cells_in_keras_rnn_keep_one_dropout_mask_per_sequence_as_keras_cells_do(ours_cell, keras_cell):
    # Inside keras.layers.RNN, a cell drew new masks at every step; Keras caches one per sequence.
    x = _inputs()
    ours = keras.layers.RNN(ours_cell(UNITS, dropout=0.4, recurrent_dropout=0.4, seed=7), return_sequences=True)
    theirs = keras.layers.RNN(keras_cell(UNITS, dropout=0.4, recurrent_dropout=0.4, seed=7), return_sequences=True)
    theirs.build(x.shape)
    ours.build(x.shape)
    ours.set_weights(theirs.get_weights())
    _assert_same(ours(x, training=True), theirs(x, training=True), atol=1e-5)
    _assert_same(ours(x, training=True), theirs(x, training=True), atol=1e-5)  # the next sequence: new masks, alike


@pytest.mark.parametrize("layer_class, count, expected", [(SimpleRNN, 3, "SimpleRNN takes 1 initial state, each"),
                                                          (LSTM, 1, "LSTM takes 2 initial states, each")])
def test_a_wrong_number_of_initial_states_is_named(layer_class, count, expected):
    # SimpleRNN ran on the first of three states without a word; Keras's layers fail deep in their loops.
    states = [np.zeros((BATCH, UNITS), "float32")] * count
    with pytest.raises(ValueError, match=rf"{expected} \(batch, {UNITS}\); initial_state holds {count}\."):
        layer_class(UNITS)(_inputs(), initial_state=states)


def test_a_cell_returns_its_states_in_the_structure_given_as_keras_does():
    cell = SimpleRNNCell(UNITS)
    x, h = np.ones((2, FEATURES), "float32"), np.zeros((2, UNITS), "float32")
    output, state = cell(x, h)  # a bare tensor in, a bare tensor out (was a list)
    assert tuple(state.shape) == (2, UNITS)
    _assert_same(state, output)
    output, states = cell(x, [h])
    assert isinstance(states, list) and len(states) == 1


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


@pytest.mark.parametrize(
    "ours_class, keras_class",
    [
        (SimpleRNN, keras.layers.SimpleRNN),
        (LSTM, keras.layers.LSTM),
        (SimpleRNNCell, keras.layers.SimpleRNNCell),
        (LSTMCell, keras.layers.LSTMCell),
    ],
)
def test_constructor_signature_is_keras_s(ours_class, keras_class):
    def parameters(layer_class):
        return [(p.name, p.default, p.kind) for p in inspect.signature(layer_class.__init__).parameters.values()]

    assert parameters(ours_class) == parameters(keras_class)


# Every argument away from its default, so that a dropped or renamed one shows.
CONFIGURED = {
    "activation": "relu",
    "use_bias": True,
    "kernel_initializer": "he_normal",
    "recurrent_initializer": "identity",
    "bias_initializer": "ones",
    "kernel_regularizer": "l2",
    "recurrent_regularizer": "l1",
    "bias_regularizer": "l1",
    "activity_regularizer": "l2",
    "kernel_constraint": "non_neg",
    "recurrent_constraint": "unit_norm",
    "bias_constraint": "max_norm",
    "dropout": 0.25,
    "recurrent_dropout": 0.125,
    "seed": 7,
    "return_sequences": True,
    "return_state": True,
    "go_backwards": True,
    "stateful": False,
    "unroll": True,
    "zero_output_for_mask": True,
    "name": "twin",
}
LSTM_ONLY = {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False, "use_cudnn": False}
# Arguments Keras's layers take but leave out of their config; tfllm keeps them, and Keras's layers accept them back.
KEPT_BY_TFLLM_ONLY = {SimpleRNN: {"seed"}, LSTM: {"use_cudnn"}}


def _configured(layer_class):
    return {**CONFIGURED, **(LSTM_ONLY if layer_class in (LSTM, keras.layers.LSTM) else {})}


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_config_equals_keras_config(ours_class, keras_class):
    ours, theirs = ours_class(UNITS, **_configured(ours_class)), keras_class(UNITS, **_configured(keras_class))
    mine, keras_config = ours.get_config(), theirs.get_config()
    assert set(mine) == set(keras_config) | KEPT_BY_TFLLM_ONLY[ours_class]
    if ours_class is SimpleRNN:
        # Keras's SimpleRNN takes `activity_regularizer` but never hands it to the layer (its config says None);
        # tfllm's applies and keeps it.
        assert keras_config.pop("activity_regularizer") is None
        assert mine.pop("activity_regularizer")["class_name"] == "L2"
    assert {key: mine[key] for key in keras_config} == keras_config


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
@pytest.mark.parametrize("options", [{}, {"return_sequences": True, "go_backwards": True, "activation": "relu"}])
def test_configs_load_both_ways_and_give_the_same_outputs(ours_class, keras_class, options):
    x = _inputs()
    for source_class, target_class in ((keras_class, ours_class), (ours_class, keras_class)):
        source = source_class(UNITS, **options)
        source.build(x.shape)
        target = target_class.from_config(source.get_config())
        assert type(target) is target_class
        target.build(x.shape)
        target.set_weights(source.get_weights())
        _assert_same(target(x), source(x))
        keras_side = target if target_class is keras_class else source
        assert {k: v for k, v in target.get_config().items() if k in keras_side.get_config()} == keras_side.get_config()


def test_keras_lstm_config_with_every_argument_loads_into_tfllm():
    config = keras.layers.LSTM(UNITS, **_configured(keras.layers.LSTM)).get_config()
    layer = LSTM.from_config(config)
    assert layer.use_cudnn == "auto"  # Keras's config does not carry it
    assert (layer.recurrent_dropout, layer.cell.seed, layer.unroll) == (0.125, 7, True)
    assert layer.zero_output_for_mask
    assert layer.recurrent_activation is keras.activations.hard_sigmoid and layer.activation is keras.activations.relu
    assert isinstance(layer.activity_regularizer, keras.regularizers.L2)
    assert not layer.unit_forget_bias and isinstance(layer.bias_constraint, keras.constraints.MaxNorm)


@pytest.mark.parametrize("implementation", [1, 2])
def test_lstm_accepts_implementation_and_computes_the_same(implementation):
    ours, theirs = _twins(LSTM, keras.layers.LSTM, implementation=implementation, return_sequences=True)
    assert ours.cell.implementation == theirs.cell.implementation == implementation
    assert "implementation" not in ours.get_config()  # as in Keras's config
    _assert_same(ours(_inputs()), theirs(_inputs()))
    assert LSTMCell(UNITS, implementation=implementation).implementation == implementation


@pytest.mark.parametrize(
    "ours_class, keras_class, argument",
    [
        (LSTM, keras.layers.LSTM, {"bogus": 1}),
        (LSTMCell, keras.layers.LSTMCell, {"bogus": 1}),
        (SimpleRNN, keras.layers.SimpleRNN, {"implementation": 2}),  # only Keras's LSTM takes it
        (SimpleRNNCell, keras.layers.SimpleRNNCell, {"use_cudnn": True}),
    ],
)
def test_unknown_arguments_are_refused_as_keras_refuses_them(ours_class, keras_class, argument):
    for layer_class in (keras_class, ours_class):
        with pytest.raises(ValueError, match=f"Unrecognized keyword arguments.*{next(iter(argument))}"):
            layer_class(UNITS, **argument)


@pytest.mark.parametrize("ours_class, keras_class", PAIRS)
def test_layer_exposes_its_cell_arguments_as_keras_does(ours_class, keras_class):
    ours, theirs = ours_class(UNITS, **_configured(ours_class)), keras_class(UNITS, **_configured(keras_class))
    names = ["units", "activation", "use_bias", "dropout", "recurrent_dropout", "kernel_initializer", "bias_constraint"]
    if ours_class is LSTM:
        names += ["recurrent_activation", "unit_forget_bias"]
    for name in names:
        assert type(getattr(ours, name)) is type(getattr(theirs, name)), name
        assert getattr(ours, name) is getattr(ours.cell, name)
