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
sums as matrix-vector products (`sums_as_products`): the default Transformer's training step (16 x 256) went
1.02-1.03x as fast in float32 and 1.11-1.16x in mixed_bfloat16 against kernels with XLA's reductions for the row
means, and 1.00-1.01x and 1.04-1.05x with products for the column sums only against XLA's reductions for all four
(medians of 24 and 30 single steps alternating; medians and per-pair ratios). Values and gradients equal
those of `keras.layers.LayerNormalization` up to float32 rounding (tests/layers/test_fused_layer_norm.py).
"""

import keras
import tensorflow as tf

from tfllm.layers.sums_as_products import column_sums, row_means


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
    layer normalizes the last axis with a float32 scale and shift (its defaults, under a float32 or mixed policy).
    (Keras adds a layer's regularization losses and applies its constraints outside its call, so those hold either
    way.)"""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    last_axis_only = [axis % len(x.shape) for axis in axes] == [len(x.shape) - 1]
    plain = layer.built and layer.scale and layer.center and not layer.rms_scaling and last_axis_only
    plain = plain and layer.gamma.dtype == "float32" and layer.beta.dtype == "float32"
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
    mean = row_means(x32)
    centered = x32 - mean
    inverse_deviation = tf.math.rsqrt(row_means(centered * centered) + epsilon)
    return tf.cast(centered * inverse_deviation * gamma + beta, x.dtype), mean, inverse_deviation


@_xla
def _backward(x, gamma, mean, inverse_deviation, y_gradient):
    """The gradients of x (x's shape and dtype), gamma and beta ((D,) float32)."""
    normalized = (tf.cast(x, tf.float32) - mean) * inverse_deviation
    y_gradient = tf.cast(y_gradient, tf.float32)
    gamma_gradient = column_sums(y_gradient * normalized)
    beta_gradient = column_sums(y_gradient)
    scaled = y_gradient * gamma  # the gradient of the normalized input
    x_gradient = inverse_deviation * (scaled - row_means(scaled) - normalized * row_means(scaled * normalized))
    return tf.cast(x_gradient, x.dtype), gamma_gradient, beta_gradient
