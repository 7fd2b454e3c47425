"""Long short-term memory: a gated cell whose carry c_t lets gradients travel far back in time."""

import keras
from keras import ops
from keras.src import backend as keras_backend  # `lstm`: Keras's own cuDNN path, as `keras.layers.LSTM` calls it

from tfllm.layers import lstm_kernel
from tfllm.layers.lstm_loop import lstm_over_time
from tfllm.layers.recurrent import Recurrent, RecurrentCell, cell_attribute


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
        use_bias, initializers, regularizers, constraints, dropout, recurrent_dropout, seed: As for `SimpleRNNCell`.
        **kwargs: The base layer's (`name`, `dtype`, ...) and `implementation` (1 or 2), as in Keras 3: without
            dropout both compute the same function; with it, implementation 1 draws a dropout mask per gate (four
            input masks, four recurrent masks) and 2 one mask for all gates. Recurrent dropout takes implementation 1,
            as in Keras.

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

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        implementation = kwargs.pop("implementation", 2)
        super().__init__(
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
            **kwargs,
        )
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = unit_forget_bias
        # Keras's rule: recurrent dropout takes implementation 1, which draws a dropout mask per gate.
        self.implementation = 1 if self.recurrent_dropout else implementation
        if self.implementation == 1:
            self.dropout_mask_count = 4  # read by `DropoutRNNCell`

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
        z = projected + self.recurrent_product(h_previous, recurrent_mask)  # (B, 4 units)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)  # 4 x (B, units)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        o = self.recurrent_activation(z_o)
        c = f * c_previous + i * self.activation(z_c)
        h = o * self.activation(c)
        return h, [h, c]

    @property
    def runs_whole_loop(self):
        return lstm_kernel.has_standard_activations(self.activation, self.recurrent_activation)

    def recur_over_time(self, projected, states):
        h, c = states  # (B, units) each
        outputs, h, c = lstm_over_time(projected, h, c, self.recurrent_kernel)
        return outputs, [h, c]  # (T, B, units), [h_T, c_T]

    def get_config(self):
        config = {
            "recurrent_activation": keras.activations.serialize(self.recurrent_activation),
            "unit_forget_bias": self.unit_forget_bias,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package="tfllm")
class LSTM(Recurrent):
    """The LSTM cell run over a sequence; a drop-in for `keras.layers.LSTM`: same arguments, config and weights.

    On a GPU it runs cuDNN's fused kernel exactly where Keras's layer does (`use_cudnn="auto"` or `True`, tanh and
    sigmoid, a bias, no recurrent dropout, not unrolled; see `lstm_kernel.py`), through the same Keras backend
    function. Elsewhere it runs tfllm's own loop: `x W + b` for all timesteps before the loop, and, without a mask
    or recurrent dropout, a hand-written backward pass (`lstm_loop.py`).

    Args:
        units: Size of the hidden state and the carry.
        activation, recurrent_activation, use_bias, initializers, unit_forget_bias, regularizers, constraints,
            dropout, recurrent_dropout, seed: The cell's arguments, see `LSTMCell`.
        activity_regularizer: Optional regularizer of the layer's output.
        return_sequences, return_state, go_backwards, stateful, unroll: As for `SimpleRNN`.
        use_cudnn: `"auto"` (cuDNN where it can run), `True` (cuDNN or a `ValueError` when the layer is called) or
            `False` (never cuDNN).
        **kwargs: The base layer's (`name`, `dtype`, ...), `zero_output_for_mask` (as for `SimpleRNN`) and
            `implementation` (see `LSTMCell`).

    Call arguments:
        sequences: (B, T, input_dim).
        initial_state: Optional `[h_0, c_0]`, each (B, units); zeros if omitted.
        mask: Optional boolean (B, T); masked timesteps keep the previous states. With cuDNN (as in Keras), masks
            must be right-padded.
        training: Whether dropout is active.

    Returns:
        (B, units), or (B, T, units) with `return_sequences`; followed by h_T and c_T with `return_state`.

    Example:

    >>> layer = LSTM(8, return_state=True)
    >>> last, h, c = layer(keras.ops.ones((2, 5, 3)))  # (B, T, input_dim)
    >>> tuple(last.shape), tuple(c.shape)  # (B, units), (B, units)
    ((2, 8), (2, 8))
    """

    recurrent_activation = cell_attribute("recurrent_activation")
    unit_forget_bias = cell_attribute("unit_forget_bias")

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            implementation=kwargs.pop("implementation", 2),
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
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
        self.use_cudnn = lstm_kernel.require_use_cudnn(use_cudnn)
        if use_cudnn in ("auto", True) and not self.cudnn_obstacles():
            self.supports_jit = False  # cuDNN's op has no XLA kernel, so `jit_compile="auto"` must not pick XLA

    def cudnn_obstacles(self, gpu_available=None):
        """Why cuDNN cannot run this layer on a machine with or without a GPU (by default, this one); [] if it can."""
        cell = self.cell
        reasons = lstm_kernel.cudnn_obstacles(
            cell.activation,
            cell.recurrent_activation,
            cell.use_bias,
            self.unroll,
            cell.recurrent_dropout,
            lstm_kernel.gpu_available() if gpu_available is None else gpu_available,
        )
        if cell.implementation == 1 and cell.dropout:  # cuDNN takes one input (Keras's layer fails here)
            reasons.append(f"implementation=1 with dropout={cell.dropout} (a dropout mask per gate)")
        return reasons

    def kernel_choice(self, gpu_available=None):
        """`"cudnn"` or `"own_loop"`: the kernel this layer runs on a machine with or without a GPU (by default,
        this one); `ValueError` for `use_cudnn=True` where cuDNN cannot run, as Keras's LSTM raises when called."""
        return lstm_kernel.choose_lstm_kernel(self.use_cudnn, self.cudnn_obstacles(gpu_available))

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if self.kernel_choice() == lstm_kernel.CUDNN:
            try:
                return self.cudnn_loop(sequences, initial_state, mask, training)
            except NotImplementedError:  # Keras's backend found no cuDNN op for this device after all
                if self.use_cudnn is True:
                    raise lstm_kernel.cudnn_unavailable(["the backend has no cuDNN kernel here"]) from None
        return super().inner_loop(sequences, initial_state, mask, training=training)

    def cudnn_loop(self, sequences, initial_state, mask, training):
        """The whole sequence through `keras.src.backend.lstm`, Keras's cuDNN path, with Keras's arguments."""
        if keras.tree.is_nested(mask):
            mask = mask[0]
        input_mask, _ = self.cell.dropout_masks(sequences[:, 0, :], initial_state[0], training)
        if input_mask is not None:
            sequences = sequences * ops.expand_dims(input_mask, 1)  # the same mask at every timestep
        return keras_backend.lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel=self.cell.kernel,
            recurrent_kernel=self.cell.recurrent_kernel,
            bias=self.cell.bias,
            activation=self.cell.activation,
            recurrent_activation=self.cell.recurrent_activation,
            return_sequences=self.return_sequences,
            go_backwards=self.go_backwards,
            unroll=self.unroll,
        )

    def get_config(self):
        # Keras's LSTM leaves `use_cudnn` out of its config; tfllm keeps it, and Keras's LSTM accepts it back.
        return {**super().get_config(), "use_cudnn": self.use_cudnn}
