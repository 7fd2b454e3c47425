"""GELU for training steps: its forward pass and its hand-written backward pass, each one XLA-compiled kernel.

In TensorFlow's plain graph every element-wise op is a kernel of its own that reads and writes the whole tensor.
TensorFlow's GELU is 4 such ops forward and about 10 backward (the gradients of erfc, the squares and products)
over the (B, T, intermediate_dim) activations, the largest tensors of a Transformer block: on the 2-core CPU of
benchmarks/where_time_goes.py they took about a tenth of a training step, while the matrix products ran near the
machine's peak. Here the forward pass and the backward pass are each one `tf.function(jit_compile=True)`, which XLA
compiles into one loop over the tensor, while the matrix products around them stay TensorFlow's (oneDNN's on CPUs).
Measured alone on that CPU (16 x 256 x 1024, forward and backward): about 3-4x faster than TensorFlow's ops.

Inside a step that is compiled with XLA as a whole, the two kernels are inlined like any other function, and the
backward pass computes Phi(x) again rather than keeping it (one tensor less in memory, a few elementwise ops more).

The functions compute in float32 whatever the input's dtype, and return the input's dtype. Their values equal
`keras.activations.gelu`'s up to float32 rounding (the exact GELU's within 7e-7, `_normal_cdf`), their gradients
those TensorFlow derives (tests/layers/test_fused_gelu.py). The exact GELU by erf rather than erfc took the default
Transformer's training step (16 x 256) 1.02-1.03x as fast in float32 and 1.06x in mixed_bfloat16 (medians of 24
and 30 single steps alternating; medians and per-pair ratios).
"""

import math

import tensorflow as tf

_SQRT_HALF = 1 / math.sqrt(2.0)
_INVERSE_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_CUBIC = 0.044715  # the tanh approximation's x^3 coefficient
_CDF_ZERO_BELOW = -5.5  # see _normal_cdf


def fused_gelu(x, approximate=False):
    """GELU, `x Phi(x)`, exact (`approximate=False`, by erf, see `_normal_cdf`) or by GPT-2's tanh approximation, as
    `keras.activations.gelu(x, approximate)` computes it; forward and backward each one XLA-compiled kernel.

    Args:
        x: float tensor of any shape.
        approximate: bool, the tanh approximation `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))`.

    Returns:
        A tensor of `x`'s shape and dtype.

    Example:

    >>> import numpy as np
    >>> x = tf.constant([-1.0, 0.0, 2.0])
    >>> np.round(fused_gelu(x).numpy(), 4), np.round(fused_gelu(x, approximate=True).numpy(), 4)
    (array([-0.1587,  0.    ,  1.9545], dtype=float32), array([-0.1588,  0.    ,  1.9546], dtype=float32))
    """
    return (_gelu_tanh if approximate else _gelu_exact)(tf.convert_to_tensor(x))


def _xla(function):
    return tf.function(function, jit_compile=True, autograph=False, reduce_retracing=True)


def _differentiable(forward, backward):
    """`forward(x)` with `backward(x, dy)` as its gradient."""

    @tf.custom_gradient
    def function(x):
        def gradient(dy):
            return backward(x, dy)

        return forward(x), gradient

    return function


@_xla
def _gelu_exact_forward(x):
    x32 = tf.cast(x, tf.float32)
    return tf.cast(x32 * _normal_cdf(x32), x.dtype)


@_xla
def _gelu_exact_backward(x, dy):
    x32 = tf.cast(x, tf.float32)
    cdf = _normal_cdf(x32)  # Phi(x)
    density = tf.exp(-0.5 * x32 * x32) * _INVERSE_SQRT_2PI  # phi(x)
    return tf.cast(tf.cast(dy, tf.float32) * (cdf + x32 * density), dy.dtype)  # d(x Phi)/dx = Phi + x phi


def _normal_cdf(x):
    """Phi(x) = (1 + erf(x / sqrt(2))) / 2, the form of PyTorch's and JAX's exact GELU, and 0 below x = -5.5.

    TensorFlow's GELU takes erfc(-x / sqrt(2)) / 2, precise in the far negative tail, which XLA computes far slower
    on CPUs: on a (16, 256, 1024) float32 input on the 2-core Xeon of the benchmarks, the forward kernel took 3.9 ms
    with erfc and 1.5 ms with erf, against 1.1 ms for a copy. XLA's float32 erf stops about 1e-7 short of -1, so
    the erf form would leave x Phi(x) at about 1e-7 x for very negative x instead of 0: below -5.5, where
    |x Phi(x)| < 1.1e-7, Phi is taken as 0. The GELU then differs from TensorFlow's by less than 7e-7 (at x near -5).
    """
    return tf.where(x < _CDF_ZERO_BELOW, 0.0, 0.5 + 0.5 * tf.math.erf(x * _SQRT_HALF))


@_xla
def _gelu_tanh_forward(x):
    x32 = tf.cast(x, tf.float32)
    return tf.cast(0.5 * x32 * (1.0 + tf.tanh(_SQRT_2_OVER_PI * (x32 + _CUBIC * x32 * x32 * x32))), x.dtype)


@_xla
def _gelu_tanh_backward(x, dy):
    x32 = tf.cast(x, tf.float32)
    squared = x32 * x32
    tanh = tf.tanh(_SQRT_2_OVER_PI * x32 * (1.0 + _CUBIC * squared))
    inner_slope = _SQRT_2_OVER_PI * (1.0 + 3.0 * _CUBIC * squared)
    slope = 0.5 * (1.0 + tanh) + 0.5 * x32 * (1.0 - tanh * tanh) * inner_slope
    return tf.cast(tf.cast(dy, tf.float32) * slope, dy.dtype)


_gelu_exact = _differentiable(_gelu_exact_forward, _gelu_exact_backward)
_gelu_tanh = _differentiable(_gelu_tanh_forward, _gelu_tanh_backward)
