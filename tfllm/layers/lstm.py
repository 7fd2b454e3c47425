"""Long short-term memory: a gated cell whose carry c_t lets gradients travel far back in time."""

import keras
from keras import ops

from tfllm.layers.recurrent import Recurrent, RecurrentCell


@keras.saving.register_keras_serializable(package="tfllm")
class LSTMCell(RecurrentCell):
    """One step of the LSTM (Hochreiter & Schmidhuber, 1997, with the forget gate of Gers et al., 2000).

        z = W x_t + U h_{t-1} + b, split into the gates (i, f, c, o)
        i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o)
        c_t = f * c_{t-1} + i * tanh(z_c)
        h_t = o * tanh(c_t)

    Interchangeable with `keras.layers.LSTMCell`: `kernel` (input_dim, 4 units), `recurrent_kernel` (units, 4 units),
    `bias` (4 units,), gates stacked in the order i, f, c, o.

    Args:
        units: Size of the hidden state h and the carry c.
        activation: Applied to the candidate and the carry; `"tanh"`.
        recurrent_activation: Applied to the gates i, f, o; `"sigmoid"`.
        unit_forget_bias: Start the forget gate's bias at 1 so that the cell remembers by default
            (Jozefowicz et al., 2015).
        **kwargs: As for `SimpleRNNCell` (`use_bias`, initializers, regularizers, constraints, `dropout`,
            `recurrent_dropout`, `seed`) and the base layer's.

    Call arguments:
        inputs: x_t, (B, input_dim).
        states: `[h_{t-1}, c_{t-1}]`, each (B, units).
        training: Whether dropout is active.

    Returns:
        `(h_t, [h_t, c_t])`.

    Example:

    >>> cell = LSTMCell(4)
    >>> h, (h_again, c) = cell(keras.ops.ones((2, 3)), cell.get_initial_state(batch_size=2))
    >>> tuple(h.shape), tuple(c.shape)  # (B, units), (B, units)
    ((2, 4), (2, 4))
    """

    gates = 4
    arguments = RecurrentCell.arguments + ("recurrent_activation", "unit_forget_bias")

    def __init__(self, units, recurrent_activation="sigmoid", unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias

    @property
    def state_size(self):
        return [self.units, self.units]

    def initial_bias(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        units = self.units
        return ops.concatenate(
            [
                self.bias_initializer((units,), dtype=dtype),  # i
                ops.ones((units,), dtype=dtype),  # f
                self.bias_initializer((2 * units,), dtype=dtype),  # c, o
            ]
        )

    def recur(self, projected, states, recurrent_mask=None):
        h_previous, c_previous = states  # (B, units) each
        if recurrent_mask is not None:
            h_previous = h_previous * recurrent_mask
        z = projected + ops.matmul(h_previous, self.recurrent_kernel)  # (B, 4 units)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)  # 4 x (B, units)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        o = self.recurrent_activation(z_o)
        c = f * c_previous + i * self.activation(z_c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        config = {
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="tfllm")
class LSTM(Recurrent):
    """The LSTM cell run over a sequence; a drop-in for `keras.layers.LSTM` on the same weights.

    Args:
        units: Size of the hidden state and the carry.
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask: As for `SimpleRNN`.
        **kwargs: The cell's arguments (see `LSTMCell`: `activation`, `recurrent_activation`, `unit_forget_bias`,
            `use_bias`, initializers, regularizers, constraints, `dropout`, `recurrent_dropout`, `seed`) and the base
            layer's (`name`, `dtype`).

    Call arguments:
        sequences: (B, T, input_dim).
        initial_state: Optional `[h_0, c_0]`, each (B, units); zeros if omitted.
        mask: Optional boolean (B, T); masked timesteps keep the previous states.
        training: Whether dropout is active.

    Returns:
        (B, units), or (B, T, units) with `return_sequences`; followed by h_T and c_T with `return_state`.

    Example:

    >>> layer = LSTM(8, return_state=True)
    >>> last, h, c = layer(keras.ops.ones((2, 5, 3)))  # (B, T, input_dim)
    >>> tuple(last.shape), tuple(c.shape)  # (B, units), (B, units)
    ((2, 8), (2, 8))
    """

    cell_class = LSTMCell
