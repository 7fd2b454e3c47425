"""The simple RNN's time loop with a hand-written backward pass, for the common case: tanh, no mask, no recurrent
dropout. The reasons are those of `lstm_loop.py`: the backward loop does one (B, units) x (units, units) product per
step, and the gradient of U is one product over all timesteps after the loop.

    h_t = tanh(p_t + h_{t-1} U)            p_t = x_t W + b, computed before the loop
"""

import tensorflow as tf


def simple_rnn_over_time(projected, h0, recurrent_kernel):
    """Runs `h_t = tanh(p_t + h_{t-1} U)` over time-major `projected` (T, B, units) from `h0` (B, units).

    `recurrent_kernel` is U (units, units), a tensor or a variable. Differentiable in all three inputs.

    Returns:
        `(outputs, h_T)`: every h_t (T, B, units) and the final state (B, units).

    Example:

    >>> outputs, h = simple_rnn_over_time(tf.ones((3, 2, 4)), tf.zeros((2, 4)), tf.zeros((4, 4)))
    >>> tuple(outputs.shape), round(float(h[0, 0]), 4)  # (T, B, units), tanh(1)
    ((3, 2, 4), 0.7616)
    """
    # A tensor, not the variable: `custom_gradient` must see no variable read inside the function it wraps.
    return _simple_rnn_over_time(projected, h0, tf.convert_to_tensor(recurrent_kernel))


@tf.custom_gradient
def _simple_rnn_over_time(projected, h0, recurrent_kernel):
    num_steps = tf.shape(projected)[0] if projected.shape[0] is None else projected.shape[0]
    projected_ta = tf.TensorArray(projected.dtype, size=num_steps).unstack(projected)
    outputs_ta = tf.TensorArray(projected.dtype, size=num_steps)

    def step(t, h, outputs_ta):
        h = tf.tanh(projected_ta.read(t) + tf.matmul(h, recurrent_kernel))  # (B, units)
        return t + 1, h, outputs_ta.write(t, h)

    _, h, outputs_ta = tf.while_loop(
        lambda t, *_: t < num_steps, step, (tf.constant(0), h0, outputs_ta), maximum_iterations=num_steps
    )
    outputs = outputs_ta.stack()  # (T, B, units)

    def gradient(d_outputs, d_h):
        return _backward(d_outputs, d_h, outputs, h0, recurrent_kernel)

    return (outputs, h), gradient


def _backward(d_outputs, d_h, outputs, h0, recurrent_kernel):
    """Gradients of (projected, h0, recurrent_kernel) from those of (outputs, h_T), last step first."""
    num_steps = tf.shape(outputs)[0]
    d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
    d_h = tf.zeros_like(h0) if d_h is None else d_h
    kernel_transposed = tf.transpose(recurrent_kernel)
    d_z_ta = tf.TensorArray(outputs.dtype, size=num_steps)

    def step(t, d_h, d_z_ta):
        h = outputs[t]
        d_z = (d_h + d_outputs[t]) * (1 - h * h)  # tanh' = 1 - tanh^2: (B, units)
        return t - 1, tf.matmul(d_z, kernel_transposed), d_z_ta.write(t, d_z)

    _, d_h0, d_z_ta = tf.while_loop(
        lambda t, *_: t >= 0, step, (num_steps - 1, d_h, d_z_ta), maximum_iterations=num_steps
    )
    d_z = d_z_ta.stack()  # (T, B, units): also the gradient of the projected inputs
    previous_outputs = tf.concat([h0[None], outputs[:-1]], axis=0)  # h_{t-1}: (T, B, units)
    units = recurrent_kernel.shape[0]
    # dL/dU = sum over t of h_{t-1}^T dz_t, as one product over all timesteps.
    every_previous_output = tf.reshape(previous_outputs, (-1, units))  # (T B, units)
    every_d_z = tf.reshape(d_z, (-1, units))  # (T B, units)
    d_kernel = tf.matmul(every_previous_output, every_d_z, transpose_a=True)  # (units, units), as U
    return d_z, d_h0, d_kernel
