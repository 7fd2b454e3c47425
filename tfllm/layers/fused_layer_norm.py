"""Layer normalization for training steps: its forward pass and its hand-written backward pass, each one
XLA-compiled kernel.

`keras.layers.LayerNormalization` runs in TensorFlow's plain graph as about 8 element-wise ops and reductions forward
(the mean, the squared differences, their mean, the reciprocal square root, the scale and shift) and about 15 for
the gradient, each a kernel of its own that reads and writes the whole (B, T, D) tensor. A Transformer step has
two of them per block and a final one. On the 2-core CPU of benchmarks/where_time_goes.py, replacing them by the
identity took the default Transformer's plain-graph training step (16 x 256, 4 blocks of 256) from 1.10 to 1.03 s;
with these two kernels instead of Keras's ops, the step went from 1.08 to 1.05 s (medians of 5 alternating rounds).

The backward pass recomputes the normalized input from the input and the two per-row statistics the forward pass
keeps (its mean and the reciprocal of its standard deviation, (B, T, 1) each), and uses
`dx = r * (g - mean(g) - x_hat * mean(g * x_hat))` with `g = dy * gamma` and `r` that reciprocal. Both compute in
float32 whatever the input's dtype, as Keras's layer does, and return the input's dtype. On CPUs they take their
sums as matrix-vector products (`_row_means`, `_column_sums`). Values and gradients equal
those of `keras.layers.LayerNormalization` up to float32 rounding (tests/layers/test_fused_layer_norm.py).
"""

import keras
import tensorflow as tf

from tfllm.layers import kernel_placement


def fused_layer_norm(x, gamma, beta, epsilon):
    """`(x - mean) / sqrt(variance + epsilon) * gamma + beta` over the last axis, as
    `keras.layers.LayerNormalization(epsilon=epsilon)` computes it; forward and backward each one XLA-compiled kernel.

    Args:
        x: float tensor (..., D).
        gamma: float32 tensor (D,), the scale.
        beta: float32 tensor (D,), the shift.
        epsilon: positive float added to the variance.

    Returns:
        A tensor of `x`'s shape and dtype.

    Example:

    >>> import numpy as np
    >>> x = tf.constant([[1.0, 2.0, 3.0]])
    >>> np.round(fused_layer_norm(x, tf.ones(3), tf.zeros(3), epsilon=1e-5).numpy(), 4)
    array([[-1.2247,  0.    ,  1.2247]], dtype=float32)
    """
    x = tf.convert_to_tensor(x)
    gamma = tf.convert_to_tensor(gamma, tf.float32)
    beta = tf.convert_to_tensor(beta, tf.float32)
    epsilon = float(epsilon)

    @tf.custom_gradient
    def normalized(x, gamma, beta):
        y, mean, inverse_deviation = _forward(x, gamma, beta, epsilon)

        def gradient(y_gradient):
            return _backward(x, gamma, mean, inverse_deviation, y_gradient)

        return y, gradient

    return normalized(x, gamma, beta)


def layer_norm(layer, x, training):
    """`layer(x)` for a `keras.layers.LayerNormalization`, computed by `fused_layer_norm` in a training step when the
    layer normalizes the last axis with a scale and a shift (its defaults). (Keras adds a layer's regularization
    losses and applies its constraints outside its call, so those hold either way.)"""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    last_axis_only = [axis % len(x.shape) for axis in axes] == [len(x.shape) - 1]
    plain = layer.built and layer.scale and layer.center and not layer.rms_scaling and last_axis_only
    if not (training and plain):
        return layer(x)
    outputs = fused_layer_norm(x, layer.gamma.value, layer.beta.value, layer.epsilon)
    return keras.ops.cast(outputs, layer.compute_dtype)


def _xla(function):
    return tf.function(function, jit_compile=True, autograph=False)


@_xla
def _forward(x, gamma, beta, epsilon):
    """The output, and each row's mean and 1 / sqrt(variance + epsilon), (..., 1) float32."""
    x32 = tf.cast(x, tf.float32)
    mean = _row_means(x32)
    centered = x32 - mean
    inverse_deviation = tf.math.rsqrt(_row_means(centered * centered) + epsilon)
    return tf.cast(centered * inverse_deviation * gamma + beta, x.dtype), mean, inverse_deviation


@_xla
def _backward(x, gamma, mean, inverse_deviation, y_gradient):
    """The gradients of x (x's shape and dtype), gamma and beta ((D,) float32)."""
    normalized = (tf.cast(x, tf.float32) - mean) * inverse_deviation
    y_gradient = tf.cast(y_gradient, tf.float32)
    gamma_gradient = _column_sums(y_gradient * normalized)
    beta_gradient = _column_sums(y_gradient)
    scaled = y_gradient * gamma  # the gradient of the normalized input
    x_gradient = inverse_deviation * (
        scaled
        - _row_means(scaled)
        - normalized * _row_means(scaled * normalized)
    )
    return tf.cast(x_gradient, x.dtype), gamma_gradient, beta_gradient



# On CPUs (`kernel_placement.sums_as_products`), both kernels take their sums as products with a row or a column of
# ones: XLA's CPU backend compiles a reduction into a loop of its own, slower than its matrix-vector kernel. On the
# 2-core Xeon of the benchmarks, for a (16, 256, 256) float32 input, the forward pass took 1.6 ms with XLA's
# reductions and 1.2 ms with the products; the backward pass 3.2-3.3 ms, 2.3 ms with products for the column sums
# (gamma's and beta's gradients) and 2.2 ms with products for all four sums. In bfloat16: 1.6 and 1.0 ms forward,
# 4.5 and 1.9 ms backward. The default Transformer's training step (16 x 256) went 1.02-1.03x as fast in float32
# and 1.11-1.16x in mixed_bfloat16 against the kernels with products for the column sums only (medians of 24 and
# 30 single steps alternating; medians and per-pair ratios).


def _row_means(values):
    """The means over the last axis of `values` (..., D), (..., 1)."""
    if not kernel_placement.sums_as_products():
        return tf.reduce_mean(values, axis=-1, keepdims=True)
    width = values.shape[-1]
    rows = tf.reshape(values, (-1, width))  # (N, D)
    means = tf.matmul(rows, tf.fill((width, 1), tf.constant(1 / width, values.dtype)))  # (N, 1)
    return tf.reshape(means, tf.concat([tf.shape(values)[:-1], [1]], axis=0))


def _column_sums(values):
    """The sums over every axis but the last of `values` (..., D), (D,)."""
    if not kernel_placement.sums_as_products():
        return tf.reduce_sum(values, axis=list(range(len(values.shape) - 1)))
    width = values.shape[-1]
    rows = tf.reshape(values, (-1, width))  # (N, D)
    return tf.reshape(tf.matmul(tf.ones((1, tf.shape(rows)[0]), values.dtype), rows), (width,))
