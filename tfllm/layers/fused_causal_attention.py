"""Causal attention for training steps: scores, masked softmax and mixing, forward and backward, each one
XLA-compiled kernel.

The products of attention are many small ones, a (T, Dh) by (Dh, S) product for every sequence and head, which
TensorFlow's plain graph runs as batched matrix products. On the 2-core CPU of benchmarks/where_time_goes.py, the
three batched products of a block's attention scores (forward, and the two of its gradient) at 16 x 4 heads x 256 x
64 took about 60 ms in the plain graph and about 30 ms compiled by XLA, while the block's wide products ran at about
the same speed either way. Here the forward pass and the backward pass of `softmax(Q K^T + causal mask) V` are each
one `tf.function(jit_compile=True)`; the projections around them stay TensorFlow's. In the plain-graph training step
of transformer_training.py's model (4 blocks of 256) this took the step from 1.58 to 1.51 s (median of 7 alternating
rounds; every round faster).

The backward pass keeps the softmax probabilities of the forward pass (as TensorFlow's own gradient does) and uses
`dS = P * (dP - sum_s(dP * P))`. Inside a step compiled by XLA as a whole, both kernels are inlined like any other
function. The scores and the softmax are float32 whatever the inputs' dtype; the products run in the inputs' dtype.
Values and gradients equal those of the same ops left to TensorFlow, up to float32 rounding
(tests/layers/test_fused_causal_attention.py).
"""

import tensorflow as tf

# Added to the scores of hidden keys. Finite, so a query whose keys are all hidden gets a uniform softmax, not NaN.
HIDDEN_SCORE = -1e9


def fused_causal_attention(query, key, value):
    """`softmax(Q K^T + mask) V` per sequence and head, where query t sees keys 0..t; forward and backward each one
    XLA-compiled kernel.

    Args:
        query: float tensor (B, H, T, Dh), already scaled (by `1 / sqrt(Dh)` for the usual attention).
        key: tensor (B, H, T, Dh) of the query's dtype.
        value: tensor (B, H, T, Dh) of the query's dtype.

    Returns:
        The context (B, T, H, Dh), token-major as the output projection reads it, in the inputs' dtype.

    Example:

    >>> import numpy as np
    >>> query = key = value = tf.constant(np.arange(8, dtype="float32").reshape(1, 1, 4, 2) / 8)
    >>> context = fused_causal_attention(query, key, value)  # (1, 4, 1, 2)
    >>> np.round(context[0, :, 0, 0].numpy(), 3)  # position 0 sees only itself
    array([0.   , 0.135, 0.296, 0.496], dtype=float32)
    """
    return _attention(tf.convert_to_tensor(query), tf.convert_to_tensor(key), tf.convert_to_tensor(value))


def _xla(function):
    return tf.function(function, jit_compile=True, autograph=False, reduce_retracing=True)


@tf.custom_gradient
def _attention(query, key, value):
    context, probabilities = _forward(query, key, value)

    def gradient(context_gradient):
        return _backward(query, key, value, probabilities, context_gradient)

    return context, gradient


@_xla
def _forward(query, key, value):
    """The context (B, T, H, Dh) and the probabilities (B, H, T, S), float32, for the backward pass."""
    scores = tf.cast(tf.einsum("bhtk,bhsk->bhts", query, key), tf.float32)  # (B, H, T, S)
    length = tf.shape(scores)[-1]
    visible = tf.range(length)[None, :] <= tf.range(length)[:, None]  # (T, S): key s <= query t
    probabilities = tf.nn.softmax(tf.where(visible, scores, HIDDEN_SCORE), axis=-1)
    context = tf.einsum("bhts,bhsk->bthk", tf.cast(probabilities, value.dtype), value)  # (B, T, H, Dh)
    return context, probabilities


@_xla
def _backward(query, key, value, probabilities, context_gradient):
    """The gradients of Q, K and V, each (B, H, T, Dh), from the context's (B, T, H, Dh)."""
    value_gradient = tf.einsum("bhts,bthk->bhsk", tf.cast(probabilities, value.dtype), context_gradient)
    probabilities_gradient = tf.cast(tf.einsum("bthk,bhsk->bhts", context_gradient, value), tf.float32)
    # Softmax's gradient; hidden keys have probability 0, so their scores get none.
    row_sums = tf.reduce_sum(probabilities_gradient * probabilities, axis=-1, keepdims=True)  # (B, H, T, 1)
    scores_gradient = tf.cast(probabilities * (probabilities_gradient - row_sums), query.dtype)  # (B, H, T, S)
    query_gradient = tf.einsum("bhts,bhsk->bhtk", scores_gradient, key)
    key_gradient = tf.einsum("bhts,bhtk->bhsk", scores_gradient, query)
    return query_gradient, key_gradient, value_gradient
