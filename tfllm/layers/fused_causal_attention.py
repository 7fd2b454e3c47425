"""Causal attention for training steps: scores, masked softmax and mixing, forward and backward, each one kernel
with a hand-written gradient that skips the scores no query may see.

Causal attention hides the upper half of the (T, T) scores, and computing them only to hide them is half of the
work. The queries are therefore taken in blocks of consecutive positions (`default_query_blocks`): the block of queries
`lo..hi-1` is scored against keys `0..hi-1` only, so n blocks compute (n + 1) / 2n of the scores, probabilities and
their gradients. For the forward and backward pass of one Transformer block's attention at 16 x 4 heads x 256 x 64
(alternating rounds, medians of 9, float32, XLA-compiled, on an AMD EPYC), one block took 63 ms, 2 blocks 38 ms and 4
blocks 36 ms; at 8 x 4 x 512 x 64, 142 ms for one block and 79 ms for 8. Blocks of fewer than 64 queries were slower
than one block of 64 (`QUERY_BLOCK_ROWS`), and more than 8 blocks (`MAX_QUERY_BLOCKS`) no faster at 1,024 positions.

The backward pass keeps the softmax probabilities of the forward pass (as TensorFlow's own gradient does) and uses
`dS = P * (dP - sum_s(dP * P))`. The scores and the softmax are float32 whatever the inputs' dtype. Values and
gradients equal those of the same ops left to TensorFlow, up to float32 rounding
(tests/layers/test_fused_causal_attention.py).

Where the kernels run (`kernels_in_plain_graph`). The products of attention are many small ones, a (T, Dh) by
(Dh, S) product for every sequence and head. Which of TensorFlow's two ways runs them faster depends on the CPU:

- Compiled by XLA, the forward pass and the backward pass are each one `tf.function(jit_compile=True)`. That is the
  choice on GPUs and TPUs, and on CPUs whose TensorFlow runs its plain graph's products with its own kernels (Eigen):
  on an AMD EPYC, the three batched products of a block's attention scores took about 60 ms in the plain graph and
  about 30 ms compiled by XLA.
- In the plain graph, where the machine has no GPU or TPU and TensorFlow runs the plain graph's products on oneDNN
  (`kernel_placement.products_on_onednn`), the same two functions are traced without XLA, and their products are
  oneDNN's. On the Intel Xeon (AMX) of benchmarks/where_time_goes.py, for one block's forward and backward pass at
  16 x 4 heads x 256 x 64 (alternating rounds in one process, medians of 15), the plain graph took 24.4 ms against
  XLA's 27.1 ms in float32, and 19.1 ms in bfloat16 against XLA's 27.9 ms (float32 behind casts, XLA's fastest);
  with oneDNN turned off (`TF_ENABLE_ONEDNN_OPTS=0`), the plain graph took 42.6 ms and XLA 25.4 ms. The default
  Transformer's training step (16 x 256, 11 alternating rounds) went from 0.840 to 0.748 s in float32 and from 0.394
  to 0.340 s in mixed_bfloat16.

Inside a step compiled by XLA as a whole, both kernels are compiled with it, like any other function.

Half-precision inputs (a mixed_bfloat16 or mixed_float16 policy) go to XLA's kernels on a machine with no GPU or TPU
cast to float32 (`kernel_dtype`), and the results are cast back: CPUs without half-precision matrix units run XLA's
bfloat16 products far slower than its float32 ones. For one block's forward and backward pass at 16 x 4 heads x 256
x 64 on an AMD EPYC (alternating rounds, medians of 9), bfloat16 kernels took 68 ms, float32 kernels behind the
casts 41 ms and float32 inputs 37 ms. Casting inside the kernels instead took 57 ms: XLA then fuses the casts into
its products. The kernels in the plain graph, and on GPUs and TPUs, compute in the inputs' dtype.
"""

import tensorflow as tf

from tfllm.layers import kernel_placement

# Added to the scores of hidden keys. Finite, so a query whose keys are all hidden gets a uniform softmax, not NaN.
HIDDEN_SCORE = -1e9
# The queries of a sequence are split into at most MAX_QUERY_BLOCKS blocks of at least QUERY_BLOCK_ROWS positions.
QUERY_BLOCK_ROWS, MAX_QUERY_BLOCKS = 64, 8


def fused_causal_attention(query, key, value, query_blocks=None):
    """`softmax(Q K^T + mask) V` per sequence and head, where query t sees keys 0..t; forward and backward each one
    kernel, XLA-compiled or in the plain graph (`kernels_in_plain_graph`).

    Args:
        query: float tensor (B, H, T, Dh), already scaled (by `1 / sqrt(Dh)` for the usual attention).
        key: tensor (B, H, T, Dh) of the query's dtype.
        value: tensor (B, H, T, Dh) of the query's dtype.
        query_blocks: how many blocks of consecutive queries to score apart, each against the keys up to its last
            position; default `default_query_blocks(T)`, and 1 when T is not known when the function is traced.

    Returns:
        The context (B, T, H, Dh), token-major as the output projection reads it, in the inputs' dtype. The kernels
        compute in `kernel_dtype(query.dtype)`.

    Example:

    >>> import numpy as np
    >>> query = key = value = tf.constant(np.arange(8, dtype="float32").reshape(1, 1, 4, 2) / 8)
    >>> context = fused_causal_attention(query, key, value)  # (1, 4, 1, 2)
    >>> np.round(context[0, :, 0, 0].numpy(), 3)  # position 0 sees only itself
    array([0.   , 0.135, 0.296, 0.496], dtype=float32)
    >>> blocked = fused_causal_attention(query, key, value, query_blocks=2)  # queries 0-1 and 2-3
    >>> bool(np.allclose(blocked, context))
    True
    """
    query, key, value = (tf.convert_to_tensor(tensor) for tensor in (query, key, value))
    length = query.shape[2]
    if query_blocks is None:
        query_blocks = 1 if length is None else default_query_blocks(length)
    elif length is None and query_blocks != 1:
        raise ValueError(f"query_blocks={query_blocks} needs the sequence length (the query's axis 2) to be known when "
                         "the function is traced; it is not, so only 1 block can be used.")
    elif length is not None and not 1 <= query_blocks <= length:
        raise ValueError(f"query_blocks must be between 1 and the sequence length {length}, got {query_blocks}.")
    xla = not kernels_in_plain_graph()
    dtype = kernel_dtype(query.dtype)
    if dtype == query.dtype:
        return _attention(query, key, value, int(query_blocks), xla)
    kernel_inputs = (tf.cast(tensor, dtype) for tensor in (query, key, value))
    return tf.cast(_attention(*kernel_inputs, int(query_blocks), xla), query.dtype)


def kernels_in_plain_graph():
    """Whether the kernels of a call traced now run in TensorFlow's plain graph rather than compiled by XLA: on a
    machine with no GPU or TPU whose TensorFlow runs the plain graph's products on oneDNN, unless the call is inside
    a function XLA compiles as a whole."""
    return (not kernel_placement.accelerators() and kernel_placement.products_on_onednn()
            and not kernel_placement.compiled_by_xla())


def kernel_dtype(dtype):
    """The dtype the attention kernels compute in for inputs of `dtype` in a call traced now: float32 for
    half-precision inputs to XLA's kernels on a machine with no GPU or TPU, whose CPU runs XLA's half-precision
    products slowly, and `dtype` otherwise.

    >>> kernel_dtype(tf.float32).name
    'float32'
    """
    dtype = tf.as_dtype(dtype)
    if dtype in (tf.bfloat16, tf.float16) and not kernel_placement.accelerators() and not kernels_in_plain_graph():
        return tf.float32
    return dtype


def default_query_blocks(length):
    """How many blocks of queries `fused_causal_attention` scores apart for sequences of `length` positions:
    one per `QUERY_BLOCK_ROWS` positions, at most `MAX_QUERY_BLOCKS`.

    >>> [default_query_blocks(length) for length in (32, 128, 256, 1024)]
    [1, 2, 4, 8]
    """
    return max(1, min(MAX_QUERY_BLOCKS, length // QUERY_BLOCK_ROWS))


def _block_boundaries(length, blocks):
    """`[0, ..., length]`: block i holds the queries boundaries[i] .. boundaries[i + 1] - 1. With one block the
    length may be a scalar tensor."""
    if blocks == 1:
        return [0, length]
    return [round(index * length / blocks) for index in range(blocks + 1)]


def _attention(query, key, value, blocks, xla):
    forward, backward = _KERNELS[xla]

    @tf.custom_gradient
    def attention(query, key, value):
        context, probabilities = forward(query, key, value, blocks)

        def gradient(context_gradient):
            return backward(query, key, value, probabilities, context_gradient, blocks)

        return context, gradient

    return attention(query, key, value)


def _forward(query, key, value, blocks):
    """The context (B, T, H, Dh) and, for the backward pass, each block's probabilities (B, H, rows, hi), float32."""
    boundaries = _block_boundaries(tf.shape(query)[2] if blocks == 1 else query.shape[2], blocks)
    contexts, probabilities = [], []
    for low, high in zip(boundaries[:-1], boundaries[1:]):
        # Queries low..high-1 against keys 0..high-1: (B, H, rows, high) scores.
        scores = tf.cast(tf.matmul(query[:, :, low:high], key[:, :, :high], transpose_b=True), tf.float32)
        visible = tf.range(high)[None, :] <= tf.range(low, high)[:, None]  # key s <= query t
        block_probabilities = tf.nn.softmax(tf.where(visible, scores, HIDDEN_SCORE), axis=-1)
        contexts.append(tf.matmul(tf.cast(block_probabilities, value.dtype), value[:, :, :high]))  # (B, H, rows, Dh)
        probabilities.append(block_probabilities)
    return tf.transpose(tf.concat(contexts, axis=2), (0, 2, 1, 3)), probabilities


def _backward(query, key, value, probabilities, context_gradient, blocks):
    """The gradients of Q, K and V, each (B, H, T, Dh), from the context's (B, T, H, Dh)."""
    length = tf.shape(query)[2] if blocks == 1 else query.shape[2]
    boundaries = _block_boundaries(length, blocks)
    context_gradient = tf.transpose(context_gradient, (0, 2, 1, 3))  # (B, H, T, Dh)
    query_gradients, key_gradient, value_gradient = [], 0, 0
    for low, high, block_probabilities in zip(boundaries[:-1], boundaries[1:], probabilities):
        rows_gradient = context_gradient[:, :, low:high]  # (B, H, rows, Dh)
        keys, values = key[:, :, :high], value[:, :, :high]  # (B, H, high, Dh)
        # Keys and values high..T-1 get nothing from this block: its gradients are padded to T positions.
        after = [[0, 0], [0, 0], [0, length - high], [0, 0]]
        mixed_gradient = tf.matmul(tf.cast(block_probabilities, value.dtype), rows_gradient, transpose_a=True)
        value_gradient += tf.pad(mixed_gradient, after)
        probabilities_gradient = tf.cast(tf.matmul(rows_gradient, values, transpose_b=True), tf.float32)
        # Softmax's gradient; hidden keys have probability 0, so their scores get none.
        row_sums = tf.reduce_sum(probabilities_gradient * block_probabilities, axis=-1, keepdims=True)
        scores_gradient = tf.cast(block_probabilities * (probabilities_gradient - row_sums), query.dtype)
        query_gradients.append(tf.matmul(scores_gradient, keys))  # (B, H, rows, Dh)
        key_gradient += tf.pad(tf.matmul(scores_gradient, query[:, :, low:high], transpose_a=True), after)
    return tf.concat(query_gradients, axis=2), key_gradient, value_gradient


# The forward and backward kernels, XLA-compiled (True) or traced for the plain graph (False).
_KERNELS = {xla: (tf.function(_forward, jit_compile=xla, autograph=False),
                  tf.function(_backward, jit_compile=xla, autograph=False)) for xla in (True, False)}
