"""The LSTM's time loop with a hand-written backward pass, for the common case: no mask, no recurrent dropout.

TensorFlow differentiates a `while_loop` by recording every intermediate of every step and replaying the loop
backwards op by op, with one small (units, B) x (B, 4 units) product per step for the gradient of U. Written by
hand, the backward loop keeps only the four gates and the carry of each step, does one (B, 4 units) x (4 units,
units) product per step, and forms the gradient of U after the loop as one large product over all timesteps:
the same arithmetic, in fewer and larger pieces.

The forward equations are those of `LSTMCell.recur` with `sigmoid` and `tanh`:

    z_t = p_t + h_{t-1} U                  p_t = x_t W + b, computed before the loop
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_c)
    c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t)
"""

import tensorflow as tf


def lstm_over_time(projected, h0, c0, recurrent_kernel):
    """Runs the LSTM over time-major projected inputs `projected` (T, B, 4 units) from the states `h0`, `c0`.

    `recurrent_kernel` is U (units, 4 units), a tensor or a variable. Differentiable in all four inputs; the
    gradient is computed by `_backward`, not by replaying the loop.

    Returns:
        `(outputs, h_T, c_T)`: every h_t (T, B, units), then the final hidden state and carry (B, units) each.

    Example:

    >>> projected = tf.zeros((3, 2, 8))  # (T, B, 4 units)
    >>> outputs, h, c = lstm_over_time(projected, tf.zeros((2, 2)), tf.zeros((2, 2)), tf.zeros((2, 8)))
    >>> tuple(outputs.shape), tuple(c.shape)  # (T, B, units), (B, units)
    ((3, 2, 2), (2, 2))
    """
    # A tensor, not the variable: `custom_gradient` must see no variable read inside the function it wraps.
    return _lstm_over_time(projected, h0, c0, tf.convert_to_tensor(recurrent_kernel))


@tf.custom_gradient
def _lstm_over_time(projected, h0, c0, recurrent_kernel):
    num_steps = tf.shape(projected)[0] if projected.shape[0] is None else projected.shape[0]
    units = recurrent_kernel.shape[0]
    projected_ta = tf.TensorArray(projected.dtype, size=num_steps).unstack(projected)
    gates_ta = tf.TensorArray(projected.dtype, size=num_steps)  # (i, f, g, o) after their nonlinearities
    carry_ta = tf.TensorArray(projected.dtype, size=num_steps)  # c_t
    outputs_ta = tf.TensorArray(projected.dtype, size=num_steps)  # h_t

    def step(t, h, c, gates_ta, carry_ta, outputs_ta):
        z = projected_ta.read(t) + tf.matmul(h, recurrent_kernel)  # (B, 4 units)
        i, f, g, o = _activate(z, units)
        c = f * c + i * g
        h = o * tf.tanh(c)
        gates = tf.concat([i, f, g, o], axis=-1)  # (B, 4 units)
        return t + 1, h, c, gates_ta.write(t, gates), carry_ta.write(t, c), outputs_ta.write(t, h)

    _, h, c, gates_ta, carry_ta, outputs_ta = tf.while_loop(
        lambda t, *_: t < num_steps,
        step,
        (tf.constant(0), h0, c0, gates_ta, carry_ta, outputs_ta),
        maximum_iterations=num_steps,
    )
    outputs = outputs_ta.stack()  # (T, B, units)
    gates, carries = gates_ta.stack(), carry_ta.stack()  # (T, B, 4 units), (T, B, units)

    def gradient(d_outputs, d_h, d_c):
        return _backward(d_outputs, d_h, d_c, gates, carries, outputs, h0, c0, recurrent_kernel)

    return (outputs, h, c), gradient


def _activate(z, units):
    """The gate nonlinearities on z (B, 4 units): sigmoid for i, f and o, tanh for the candidate g."""
    i_and_f = tf.sigmoid(z[:, : 2 * units])
    return i_and_f[:, :units], i_and_f[:, units:], tf.tanh(z[:, 2 * units : 3 * units]), tf.sigmoid(z[:, 3 * units :])


def _backward(d_outputs, d_h, d_c, gates, carries, outputs, h0, c0, recurrent_kernel):
    """Gradients of (projected, h0, c0, recurrent_kernel) from those of (outputs, h_T, c_T), last step first."""
    num_steps = tf.shape(gates)[0]
    d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
    d_h = tf.zeros_like(h0) if d_h is None else d_h
    d_c = tf.zeros_like(c0) if d_c is None else d_c
    previous_carries = tf.concat([c0[None], carries[:-1]], axis=0)  # c_{t-1}: (T, B, units)
    kernel_transposed = tf.transpose(recurrent_kernel)  # (4 units, units)
    d_z_ta = tf.TensorArray(gates.dtype, size=num_steps)

    def step(t, d_h, d_c, d_z_ta):
        i, f, g, o = tf.split(gates[t], 4, axis=-1)
        tanh_c = tf.tanh(carries[t])
        d_h = d_h + d_outputs[t]
        d_c = d_c + d_h * o * (1 - tanh_c * tanh_c)
        # Through the nonlinearities: sigmoid' = s (1 - s), tanh' = 1 - tanh^2.
        d_i = d_c * g * i * (1 - i)
        d_f = d_c * previous_carries[t] * f * (1 - f)
        d_g = d_c * i * (1 - g * g)
        d_o = d_h * tanh_c * o * (1 - o)
        d_z = tf.concat([d_i, d_f, d_g, d_o], axis=-1)  # (B, 4 units)
        return t - 1, tf.matmul(d_z, kernel_transposed), d_c * f, d_z_ta.write(t, d_z)

    _, d_h0, d_c0, d_z_ta = tf.while_loop(
        lambda t, *_: t >= 0,
        step,
        (num_steps - 1, d_h, d_c, d_z_ta),
        maximum_iterations=num_steps,
    )
    d_z = d_z_ta.stack()  # (T, B, 4 units): also the gradient of the projected inputs
    previous_outputs = tf.concat([h0[None], outputs[:-1]], axis=0)  # h_{t-1}: (T, B, units)
    units = recurrent_kernel.shape[0]
    # dL/dU = sum over t of h_{t-1}^T dz_t, as one product over all timesteps.
    every_previous_output = tf.reshape(previous_outputs, (-1, units))  # (T B, units)
    every_d_z = tf.reshape(d_z, (-1, 4 * units))  # (T B, 4 units)
    d_kernel = tf.matmul(every_previous_output, every_d_z, transpose_a=True)  # (units, 4 units), as U
    return d_z, d_h0, d_c0, d_kernel
