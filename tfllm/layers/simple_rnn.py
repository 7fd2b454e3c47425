"""The simple recurrent cell of the textbook, `h_t = tanh(W x_t + U h_{t-1} + b)`, and the layer that runs it."""

import keras
from keras import ops

from tfllm.layers.recurrent import Recurrent, RecurrentCell
from tfllm.layers.simple_rnn_loop import simple_rnn_over_time


@keras.saving.register_keras_serializable(package="tfllm")
class SimpleRNNCell(RecurrentCell):
    """One step of the simple recurrent network: `h_t = activation(W x_t + U h_{t-1} + b)`.

    Interchangeable with `keras.layers.SimpleRNNCell`: the same weights (`kernel` = W of shape (input_dim, units),
    `recurrent_kernel` = U of shape (units, units), `bias` = b of shape (units,)) give the same outputs.

    Args:
        units: Size of the hidden state h.
        activation: The nonlinearity; `"tanh"` as in the equation.
        use_bias: Whether to add b.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers of W, U and b.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Optional regularizers of W, U and b.
        kernel_constraint, recurrent_constraint, bias_constraint: Optional constraints on W, U and b.
        dropout: Rate in [0, 1) of dropout on the inputs x_t.
        recurrent_dropout: Rate in [0, 1) of dropout on the previous state h_{t-1}.
        seed: Seed of the dropout masks.

    Call arguments:
        inputs: x_t, shape (B, input_dim).
        states: `[h_{t-1}]`, shape (B, units).
        training: Whether dropout is active.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> cell = SimpleRNNCell(4)
    >>> h, [state] = cell(keras.ops.ones((2, 3)), [keras.ops.zeros((2, 4))])  # (B, input_dim), [(B, units)]
    >>> tuple(h.shape)  # (B, units)
    (2, 4)
    """

    gates = 1

    def recur(self, projected, states, recurrent_mask=None):
        h = projected + self.recurrent_product(states[0], recurrent_mask)  # W x_t + b + U h_{t-1}: (B, units)
        if self.activation is not None:
            h = self.activation(h)
        return h, [h]

    @property
    def runs_whole_loop(self):
        return self.activation in (keras.activations.tanh, ops.tanh)

    def recur_over_time(self, projected, states):
        outputs, h = simple_rnn_over_time(projected, states[0], self.recurrent_kernel)
        return outputs, [h]  # (T, B, units), [h_T]


@keras.saving.register_keras_serializable(package="tfllm")
class SimpleRNN(Recurrent):
    """The simple recurrent cell run over a sequence: `h_t = tanh(W x_t + U h_{t-1} + b)` for t = 1..T.

    A drop-in for `keras.layers.SimpleRNN`: the same arguments and config, the same weights (copy them with
    `set_weights(keras_layer.get_weights())`) and the same outputs, computed faster because `W x_t + b` is formed for
    all timesteps in one matrix product before the time loop.

    Args:
        units: Size of the hidden state.
        activation, use_bias, initializers, regularizers, constraints, dropout, recurrent_dropout, seed: The cell's
            arguments, see `SimpleRNNCell`.
        activity_regularizer: Optional regularizer of the layer's output.
        return_sequences: Return every h_t (B, T, units) instead of the last one (B, units).
        return_state: Also return the final state h_T.
        go_backwards: Read the sequence from the end; outputs come in the order they were computed.
        stateful: Carry the final state of one batch over as the initial state of the next.
        unroll: Unroll the time loop in Python (short, fixed-length sequences only).
        **kwargs: The base layer's (`name`, `dtype`, ...) and `zero_output_for_mask`: emit zeros at masked
            timesteps instead of repeating the previous output.

    Call arguments:
        sequences: (B, T, input_dim).
        initial_state: Optional `[h_0]`, (B, units); zeros if omitted.
        mask: Optional boolean (B, T); masked timesteps keep the previous state.
        training: Whether dropout is active.

    Returns:
        (B, units), or (B, T, units) with `return_sequences`; followed by h_T with `return_state`.

    Example:

    >>> layer = SimpleRNN(8, return_sequences=True, return_state=True)
    >>> outputs, final_state = layer(keras.ops.ones((2, 5, 3)))  # (B, T, input_dim)
    >>> tuple(outputs.shape), tuple(final_state.shape)  # (B, T, units), (B, units)
    ((2, 5, 8), (2, 8))
    """

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        **kwargs,
    ):
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
