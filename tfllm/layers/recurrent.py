"""The sequence wrapper shared by `SimpleRNN` and `LSTM`: a Keras `RNN` whose input projection leaves the time loop.

Every recurrent cell here computes `x_t W + b` and then mixes in the previous state through `h_{t-1} U`. The first
part does not depend on the previous step, so `Recurrent` computes it for all timesteps in one large matrix product
before the loop; each step then does only the recurrent product. That is the same arithmetic Keras does, in a better
order: one (B*T, D) x (D, G*units) product instead of T small ones.

A cell that wants this treatment provides three methods besides the usual `call(inputs, states)`:

- `project_inputs(inputs, input_mask)`: `x W + b` for inputs of any leading shape;
- `recur(projected, states, recurrent_mask)`: one step from the projected input and the previous states;
- `dropout_masks(step_inputs, state, training)`: the input and recurrent dropout masks for one sequence.

A dropout mask is one tensor for every gate, or a list of one per gate when the cell sets `dropout_mask_count` (as
Keras's `LSTMCell` does in its implementation 1). The cells are Keras's `DropoutRNNCell`s, so `keras.layers.RNN` and
the layers here draw their masks once per sequence and share them across its timesteps.

A cell may also run the whole loop itself (`recur_over_time`) when the sequence has no mask and no recurrent
dropout: `LSTMCell` and `SimpleRNNCell` (tanh) do, with hand-written backward passes (`lstm_loop.py`,
`simple_rnn_loop.py`).

The general time loop is TensorFlow's `while_loop` over `TensorArray`s with a fixed iteration count, which is what
both the plain graph and XLA compile well (and what XLA needs to differentiate a loop); it is the one piece of the
layers that is written against TensorFlow rather than `keras.ops`.
"""

import keras
import tensorflow as tf
from keras import ops, tree
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell  # what `keras.layers.RNN` caches masks for

from tfllm.checks import require_positive_int, require_rate


def cell_attribute(name):
    """A read-only layer property that reads the cell's attribute `name`, as Keras's `LSTM` has for each argument."""
    return property(lambda layer: getattr(layer.cell, name), doc=f"The cell's `{name}`.")


class Recurrent(keras.layers.RNN):
    """Base class of `SimpleRNN` and `LSTM`: Keras's `RNN` with the input projection hoisted out of the time loop.

    Everything but the loop (initial and stateful states, `return_sequences`, `return_state`, masking, shapes) is
    inherited from `keras.layers.RNN`, so the subclasses behave exactly like Keras's own layers. Like Keras's
    `SimpleRNN` and `LSTM`, a subclass takes its cell's arguments itself, builds the cell and passes it here, and its
    config is one flat dict: the cell's arguments next to the sequence layer's.

    When the sequence has no mask, there is no recurrent dropout and the loop is not unrolled, a cell may run the
    whole loop itself (`recur_over_time`), as `LSTMCell` and `SimpleRNNCell` do with a hand-written backward pass.
    """

    units = cell_attribute("units")
    activation = cell_attribute("activation")
    use_bias = cell_attribute("use_bias")
    kernel_initializer = cell_attribute("kernel_initializer")
    recurrent_initializer = cell_attribute("recurrent_initializer")
    bias_initializer = cell_attribute("bias_initializer")
    kernel_regularizer = cell_attribute("kernel_regularizer")
    recurrent_regularizer = cell_attribute("recurrent_regularizer")
    bias_regularizer = cell_attribute("bias_regularizer")
    kernel_constraint = cell_attribute("kernel_constraint")
    recurrent_constraint = cell_attribute("recurrent_constraint")
    bias_constraint = cell_attribute("bias_constraint")
    dropout = cell_attribute("dropout")
    recurrent_dropout = cell_attribute("recurrent_dropout")

    def __init__(self, cell, **kwargs):
        super().__init__(cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)  # (B, T, features), checked as Keras's layers check it

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is not None:
            given = len(tree.flatten(initial_state))
            expected = len(tree.flatten(self.cell.state_size))
            if given != expected:  # Keras's layers fail in the loop ("Too few leaves for PyTreeSpec"), or run
                raise ValueError(f"{type(self).__name__} takes {expected} initial state{'s' * (expected > 1)}, each "
                                 f"(batch, {self.units}); initial_state holds {given}.")
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        config["activity_regularizer"] = keras.regularizers.serialize(self.activity_regularizer)
        return {**config, **{name: cell_config[name] for name in self.cell.arguments}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        cell = self.cell
        # One mask per sequence, the same at every timestep (variational dropout, as Keras does it).
        input_mask, recurrent_mask = cell.dropout_masks(sequences[:, 0, :], initial_state[0], training)
        # Transposing the inputs rather than the projection moves D instead of G*units numbers per token.
        time_major = ops.transpose(sequences, (1, 0, 2))  # (T, B, D)
        projected = cell.project_inputs(time_major, input_mask)  # (T, B, G*units): x_t W + b for every t at once

        if mask is None and recurrent_mask is None and not self.unroll and cell.runs_whole_loop:
            return self.whole_loop(projected, list(initial_state))

        def step(projected_t, states):
            return cell.recur(projected_t, states, recurrent_mask)

        return run_over_time(
            step,
            projected,
            list(initial_state),
            mask=mask,
            go_backwards=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            return_sequences=self.return_sequences,
            unroll=self.unroll,
        )

    def whole_loop(self, projected, initial_state):
        """The loop run by the cell in one piece over `projected` (T, B, G*units), for `inner_loop`."""
        if self.go_backwards:
            projected = ops.flip(projected, axis=0)  # outputs stay in the order they are computed, as in Keras
        outputs, final_states = self.cell.recur_over_time(projected, initial_state)  # (T, B, units), states
        last_output = final_states[0]
        if not self.return_sequences:
            return last_output, last_output, final_states
        return last_output, ops.transpose(outputs, (1, 0, 2)), final_states  # (B, T, units)


def run_over_time(
    step,
    inputs,
    initial_states,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    return_sequences=True,
    unroll=False,
):
    """Runs `step(inputs_t, states) -> (output_t, new_states)` over the time-major `inputs` (T, B, ...).

    Masked timesteps (`mask[:, t]` false) keep the previous states and emit the previous output, or zeros when
    `zero_output_for_mask` is set. With `go_backwards` the sequence is read from the end and the outputs are
    returned in the order they were computed, as `keras.layers.RNN` does.

    Returns:
        `(last_output, outputs, final_states)`: outputs are (B, T, units) when `return_sequences`, else the last
        output stands in for them.
    """
    time_major = inputs
    time_mask = None if mask is None else tf.transpose(tf.cast(mask, tf.bool), [1, 0])  # (T, B)
    if go_backwards:
        time_major = tf.reverse(time_major, [0])
        time_mask = None if time_mask is None else tf.reverse(time_mask, [0])
    masked_step = _masked(step, zero_output_for_mask)
    run = _run_unrolled if unroll else _run_in_while_loop
    last_output, outputs, final_states = run(masked_step, time_major, time_mask, initial_states, return_sequences)
    return last_output, (outputs if return_sequences else last_output), final_states


def _masked(step, zero_output_for_mask):
    """`step` as `masked_step(inputs_t, mask_t, previous_output, states) -> (output, states)`: where `mask_t` (B,)
    is false, the previous states are kept and the previous output (or zeros) emitted; a None mask masks nothing."""

    def masked_step(inputs_t, mask_t, previous_output, states):
        output, new_states = step(inputs_t, states)
        if mask_t is None:
            return output, new_states
        keep = mask_t[:, None]  # (B, 1)
        new_states = [tf.where(keep, new, old) for new, old in zip(new_states, states)]
        fallback = tf.zeros_like(output) if zero_output_for_mask else previous_output
        return tf.where(keep, output, fallback), new_states

    return masked_step


def _first_previous_output(initial_states):
    # The cells here emit their first state (h_t) as output, so it also gives the output's shape and dtype.
    return tf.zeros_like(initial_states[0])


def _run_unrolled(masked_step, time_major, time_mask, initial_states, return_sequences):
    """`run_over_time`'s loop as Python code, one copy of the step per timestep (a static T): `(last_output,
    outputs (B, T, units) or None, final_states)`."""
    previous_output, states, outputs = _first_previous_output(initial_states), initial_states, []
    for t in range(time_major.shape[0]):
        mask_t = None if time_mask is None else time_mask[t]
        previous_output, states = masked_step(time_major[t], mask_t, previous_output, states)
        outputs.append(previous_output)
    return previous_output, (tf.stack(outputs, axis=1) if return_sequences else None), states  # (B, T, units)


def _run_in_while_loop(masked_step, time_major, time_mask, initial_states, return_sequences):
    """`run_over_time`'s loop as a `tf.while_loop` (T may be dynamic): `(last_output, outputs (B, T, units) or None,
    final_states)`."""
    num_steps = time_major.shape[0]
    if num_steps is None:
        num_steps = tf.shape(time_major)[0]
    previous_output = _first_previous_output(initial_states)
    inputs_ta = tf.TensorArray(time_major.dtype, size=num_steps).unstack(time_major)
    mask_ta = None if time_mask is None else tf.TensorArray(tf.bool, size=num_steps).unstack(time_mask)
    # Without return_sequences nothing but the last output is kept, so no TensorArray of outputs is carried.
    outputs_ta = [tf.TensorArray(previous_output.dtype, size=num_steps)] if return_sequences else []

    def body(t, previous_output, states, outputs_ta):
        mask_t = None if mask_ta is None else mask_ta.read(t)
        output, new_states = masked_step(inputs_ta.read(t), mask_t, previous_output, states)
        return t + 1, output, new_states, [ta.write(t, output) for ta in outputs_ta]

    _, last_output, final_states, outputs_ta = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), previous_output, initial_states, outputs_ta),
        maximum_iterations=num_steps,
        parallel_iterations=32,
        swap_memory=True,  # on a GPU, long sequences keep their activations in host memory for the backward pass
    )
    if not return_sequences:
        return last_output, None, final_states
    return last_output, tf.transpose(outputs_ta[0].stack(), [1, 0, 2]), final_states  # (B, T, units)


def masked_product(x, kernel, mask=None):
    """`(x * mask) kernel` for x (..., n) and a kernel (n, gates * units) -> (..., gates * units): with one mask (or
    None) for every gate, or a list of one mask per gate, each gate's columns then taking x under its own mask."""
    if not isinstance(mask, (list, tuple)):
        return ops.matmul(x if mask is None else x * mask, kernel)
    kernels = ops.split(kernel, len(mask), axis=-1)  # each (n, units)
    return ops.concatenate([ops.matmul(x * gate_mask, gate_kernel) for gate_mask, gate_kernel in zip(mask, kernels)],
                           axis=-1)


class RecurrentCell(keras.layers.Layer, DropoutRNNCell):
    """Base class of `SimpleRNNCell` and `LSTMCell`: the weights `W`, `U`, `b` of `gates` stacked gates and dropout.

    Weights (named as in Keras, so `get_weights` / `set_weights` interchange with Keras's cells):
    `kernel` W (input_dim, gates * units), `recurrent_kernel` U (units, gates * units), `bias` b (gates * units,).
    Subclasses set `gates` and write `recur`, the step from a projected input.

    Dropout masks are Keras's `DropoutRNNCell`'s: drawn at a cell's first step and kept until
    `reset_dropout_mask()` and `reset_recurrent_dropout_mask()`, which `keras.layers.RNN`, `SimpleRNN` and `LSTM`
    call after each sequence, so every timestep of a sequence drops the same units, as with Keras's cells.
    """

    gates = 1
    # The constructor arguments a sequence layer (`SimpleRNN`, `LSTM`) passes on to its cell.
    arguments = (
        "units",
        "activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "recurrent_regularizer",
        "bias_regularizer",
        "kernel_constraint",
        "recurrent_constraint",
        "bias_constraint",
        "dropout",
        "recurrent_dropout",
        "seed",
    )

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = require_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = require_rate("dropout", dropout)
        self.recurrent_dropout = require_rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def state_size(self):
        return self.units

    @property
    def output_size(self):
        return self.units

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(width,),
                name="bias",
                initializer=self.initial_bias,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def initial_bias(self, shape, dtype=None):
        return self.bias_initializer(shape, dtype=dtype)

    def project_inputs(self, inputs, input_mask=None):
        """`x W + b` for inputs (..., input_dim) -> (..., gates * units), the input dropout mask (B, input_dim)
        applied to x first: one mask for every gate, or a list of one per gate."""
        projected = masked_product(inputs, self.kernel, input_mask)
        return projected if self.bias is None else projected + self.bias

    def recurrent_product(self, previous, recurrent_mask=None):
        """`h_{t-1} U` for the previous output (B, units) -> (B, gates * units), the recurrent dropout mask (B, units)
        applied to h_{t-1} first: one mask for every gate, or a list of one per gate."""
        return masked_product(previous, self.recurrent_kernel, recurrent_mask)

    def recur(self, projected, states, recurrent_mask=None):
        """One step from `projected` = x_t W + b (B, gates * units) and the previous `states`."""
        raise NotImplementedError

    @property
    def runs_whole_loop(self):
        """Whether `recur_over_time` runs this cell's loop (without mask or recurrent dropout) in one piece."""
        return False

    def recur_over_time(self, projected, states):
        """Every step from `projected` (T, B, gates * units); returns `(outputs (T, B, units), final_states)`."""
        raise NotImplementedError(f"{type(self).__name__} runs its loop one `recur` step at a time")

    def dropout_masks(self, step_inputs, state, training):
        """The input and recurrent dropout masks (or None) of the current sequence: 1/(1-rate) where kept, 0 where
        dropped; drawn by the first call and cached (`DropoutRNNCell`), in the order Keras's cells draw them."""
        if not training:
            return None, None
        return self.get_dropout_mask(step_inputs), self.get_recurrent_dropout_mask(state)

    def call(self, inputs, states, training=False):
        nested = isinstance(states, (list, tuple))
        states = list(states) if nested else [states]
        input_mask, recurrent_mask = self.dropout_masks(inputs, states[0], training)
        output, new_states = self.recur(self.project_inputs(inputs, input_mask), states, recurrent_mask)
        return output, (new_states if nested else new_states[0])  # the states' structure as given, as in Keras

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}
