"""The cut-offs of top-k and top-p sampling found by bisection, without sorting the vocabulary.

Sorting 4,096 logits per row per step is the slowest part of a sampling step on a CPU, and XLA's sort and top-k are
slower still there. Both cut-offs are thresholds on the probabilities instead:

- top-k keeps the tokens whose probability is at least the k-th largest;
- top-p keeps the tokens whose probability is at least the smallest one of the nucleus, which is the largest
  threshold t such that the tokens of probability >= t hold a mass of at least p.

Positive float32 numbers order like the int32 numbers of their bits, so a bisection over those bits finds either
threshold exactly in 31 steps of elementwise work and a sum over the vocabulary: no sort, and a loop XLA fuses.
"""

import tensorflow as tf
from keras import ops

_STEPS = 31  # bits of a non-negative int32: after them the bisection interval holds one number


def kth_largest_probability(probabilities, k):
    """The k-th largest probability of each row (B, 1) of `probabilities` (B, V) >= 0; `k` an int >= 1, for every row
    or one per row (B,)."""
    k = ops.cast(k, "float32")
    return _largest_threshold(probabilities, lambda kept: ops.sum(ops.cast(kept, "float32"), axis=-1) >= k)


def nucleus_threshold(probabilities, p):
    """The smallest probability of each row's nucleus (B, 1): the fewest most likely tokens holding a mass >= p (a
    number for every row, or one per row (B,))."""
    return _largest_threshold(
        probabilities, lambda kept: ops.sum(ops.where(kept, probabilities, 0.0), axis=-1) >= ops.cast(p, "float32")
    )


def _largest_threshold(probabilities, holds):
    """The largest t among the row's probabilities such that `holds(probabilities >= t)`, by bisection on bits.

    `holds` must be true for t = 0 (all kept; t stays 0 if it is not) and monotonic: true below some t, false above.
    """
    bits = tf.bitcast(ops.cast(probabilities, "float32"), tf.int32)  # (B, V), ordered as the probabilities
    low = ops.zeros(ops.shape(bits)[:1], "int32")  # holds(bits >= low)
    high = ops.max(bits, axis=-1) + 1  # not holds(bits >= high): nothing is kept

    def step(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        ok = holds(bits >= middle[:, None])  # (B,)
        return ops.where(ok, middle, low), ops.where(ok, high, middle)

    low, _ = ops.fori_loop(0, _STEPS, step, (low, high))
    return tf.bitcast(low, tf.float32)[:, None]  # (B, 1)
