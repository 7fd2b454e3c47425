"""Sums over the rows or the columns of an activation, taken as products with a vector of ones on CPUs.

A Transformer's training step sums its (B, T, N) activations along one axis many times: a layer norm takes two row means
forward and two backward, and the column sums of its gamma's and beta's gradients; every bias's gradient is a column
sum. On CPUs, TensorFlow's and XLA's reductions run these sums slower than a matrix-vector product does the same
arithmetic: XLA compiles a reduction into a loop of its own, and TensorFlow's plain-graph `Sum` over the first axes of a
(B, T, N) tensor is its slowest case. So on a machine without GPUs or TPUs (`kernel_placement.sums_as_products`) these
functions multiply by a column of ones or by rows of ones (two below 4,096 rows, where XLA's vector-matrix product is
slow: see `column_sums`), and elsewhere they reduce: a float32 product on a GPU may round its inputs to TensorFloat-32,
on a TPU to bfloat16 (by default), too coarse for a layer norm's statistics.

Measured on the 2-core Xeon of the benchmarks (medians of alternating rounds in one process):

- the column sums of a (16, 256, 768) gradient in the plain graph: `Sum` 2.6 ms, `BiasAddGrad` 1.0 ms, the product
  0.9 ms in float32; 1.0, 1.4 and 0.8 ms in bfloat16. At width 1024: 2.4, 0.9 and 0.75 ms; 1.3, 1.8 and 1.0 ms.
- a layer norm's XLA-compiled kernels on a (16, 256, 256) input (`fused_layer_norm`): forward 1.6 ms with XLA's
  reductions and 1.2 ms with products, backward 3.2-3.3 ms and 2.2 ms, in float32; 1.6 and 1.0 ms forward, 4.5
  and 1.9 ms backward in bfloat16.
"""

import tensorflow as tf

from tfllm.layers import kernel_placement


def row_means(values):
    """The means over the last axis of `values` (..., N), shaped (..., 1).

    >>> row_means(tf.constant([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]])).numpy().tolist()
    [[3.0], [1.0]]
    """
    if not kernel_placement.sums_as_products():
        return tf.reduce_mean(values, axis=-1, keepdims=True)
    width = values.shape[-1]
    rows = tf.reshape(values, (-1, width))  # (rows, N)
    means = tf.matmul(rows, tf.fill((width, 1), tf.constant(1 / width, values.dtype)))  # (rows, 1)
    return tf.reshape(means, tf.concat([tf.shape(values)[:-1], [1]], axis=0))


def column_sums(values):
    """The sums over every axis but the last of `values` (..., N), shaped (N,).

    >>> column_sums(tf.ones((2, 3, 4))).numpy().tolist()
    [6.0, 6.0, 6.0, 6.0]
    """
    if not kernel_placement.sums_as_products():
        return tf.reduce_sum(values, axis=list(range(len(values.shape) - 1)))
    width = values.shape[-1]
    rows = tf.reshape(values, (-1, width))  # (rows, N)
    # XLA's CPU compiler emits a vector-matrix product over fewer than 4,096 rows as a loop of its own, several
    # times slower than its matrix library: the layer norm's backward kernel at (16, 128, 256) took 3.7-4.5 ms with
    # one row of ones and 1.5-1.6 ms with two, whose product goes to the library at every size. From 4,096 rows
    # one row goes there too and is the faster (1.9 against 2.1 ms at (16, 256, 256)). The plain graph's products
    # take the same time either way.
    ones_rows = 1 if (rows.shape[0] or 0) >= 4096 else 2
    return tf.matmul(tf.ones((ones_rows, tf.shape(rows)[0]), values.dtype), rows)[0]  # (ones_rows, N) -> (N,)


def add_bias(outputs, bias):
    """`outputs + bias` for outputs (..., N) and a bias (N,) of their dtype, the bias's gradient summed by
    `column_sums`.

    >>> add_bias(tf.zeros((2, 3)), tf.constant([1.0, 2.0, 3.0])).numpy().tolist()
    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]
    """

    @tf.custom_gradient
    def biased(outputs, bias):
        def gradient(upstream):
            return upstream, column_sums(upstream)

        return tf.nn.bias_add(outputs, bias), gradient

    return biased(outputs, bias)
