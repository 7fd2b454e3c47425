"""The cross-entropy of each position from logits computed in slices of the vocabulary, never joined.

A training step of `TokenEmbedding` computes the (B, T, V) logits as one product per slice of the vocabulary and
joins them (`tfllm.layers.token_embedding`). Joining copies the whole (B, T, V) tensor, its gradient copies every
slice back out of it, and the cross-entropy then reads it again. Here the cross-entropy is computed from the slices
themselves: one XLA-compiled kernel per slice takes its row maxima m_j, its exponentials e_j = exp(l - m_j) (kept,
float32) with their sums, and the target's logit; a few (B, T) ops combine them into `log Z - l_target`, with
`log Z = log sum_v exp(l_v)`; and for the gradient one kernel per slice writes `softmax - one_hot(target)`, scaled
by the position's incoming gradient, from the kept exponentials: softmax = e_j exp(m_j - log Z). One kernel per
slice, rather than one for all, lets each slice's kernel start as soon as its product is done, and lets TensorFlow
run two at once (an XLA kernel runs on one core of the CPU). When nothing else reads the joined logits, TensorFlow
leaves the join out of the step.

Keeping the exponentials spares the backward pass its exponential of every logit, for the memory of one float32
(B, T, V) tensor held from the forward pass to the backward (the logit slices themselves are no longer held for it).
A gradient kernel alone went from 2.0 to 1.0 ms on a (16, 256, 512) float32 slice, and from 2.7 to 1.0 ms on a
bfloat16 one, while the forward kernel's time stayed within 5%. In the training step of where_time_goes.py below,
the step measured 1.02-1.03x as fast in float32 and 1.03-1.07x in mixed_bfloat16 (two runs each, medians of 24-40
single steps alternating with the step that takes the exponentials again; medians and per-pair ratios).

On the 2-core CPU of benchmarks/where_time_goes.py, in the default Transformer's plain-graph training step (16 x
256, vocabulary 4,096 in 8 slices), this took the step from 0.980 to 0.938 s against the joined logits and
TensorFlow's `sparse_softmax_cross_entropy_with_logits` (medians of 7 alternating rounds; 6 of 7 faster). One kernel
for all slices took 0.946 s (4 of 7 faster).

Targets outside the vocabulary give a NaN cross-entropy, as XLA's own op does (TensorFlow's plain-graph op raises).
"""

import tensorflow as tf


def sliced_cross_entropy(targets, slices):
    """Each position's cross-entropy, (B, T) float32, for int `targets` (B, T) and the logits given as `slices`
    [(B, T, V_0), (B, T, V_1), ...], the vocabulary's consecutive slices; the same values and gradients as
    `tf.nn.sparse_softmax_cross_entropy_with_logits(targets, tf.concat(slices, -1))`.

    Example:

    >>> import numpy as np
    >>> logits = tf.constant([[[0.0, 1.0, 2.0, 3.0]]])  # (1, 1, 4)
    >>> ours = sliced_cross_entropy(tf.constant([[2]]), [logits[..., :3], logits[..., 3:]])
    >>> theirs = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.constant([[2]]), logits)
    >>> bool(np.allclose(ours, theirs)), ours.shape
    (True, TensorShape([1, 1]))
    """
    targets = tf.cast(targets, tf.int32)
    slices = [tf.convert_to_tensor(logits) for logits in slices]
    offsets = [sum(logits.shape[-1] for logits in slices[:index]) for index in range(len(slices))]
    vocab_size = offsets[-1] + slices[-1].shape[-1]

    @tf.custom_gradient
    def cross_entropy(*slices):
        # Per slice: row maxima m_j, the exponentials e_j = exp(l - m_j) and their sums s_j, and the target's logit
        # where it is in the slice.
        maxima, exponentials, sums, target_logits = zip(*(
            _slice_statistics(targets - offset, logits) for offset, logits in zip(offsets, slices)
        ))
        maximum = tf.reduce_max(tf.stack(maxima, axis=-1), axis=-1)  # (B, T)
        log_normalizers = maximum + tf.math.log(tf.add_n([
            slice_sum * tf.exp(slice_maximum - maximum) for slice_maximum, slice_sum in zip(maxima, sums)
        ]))
        in_vocabulary = (targets >= 0) & (targets < vocab_size)
        target_logit = tf.where(in_vocabulary, tf.add_n(target_logits), float("nan"))
        dtypes = [logits.dtype for logits in slices]

        def gradient(upstream):
            # softmax = e_j exp(m_j - log Z): each slice's kept exponentials rescaled, no exponential taken again.
            return [_slice_gradient(targets - offset, tf.exp(slice_maximum - log_normalizers), upstream, slice_exp,
                                    dtype)
                    for offset, slice_maximum, slice_exp, dtype in zip(offsets, maxima, exponentials, dtypes)]

        return log_normalizers - target_logit, gradient

    return cross_entropy(*slices)


def _xla(function):
    return tf.function(function, jit_compile=True, autograph=False)


@_xla
def _slice_statistics(local_targets, logits):
    """A slice's row maxima (B, T), its exponentials `exp(logit - maximum)` (B, T, V_j), their sums (B, T), and its
    target logits (0 where the target is in another slice), (B, T); all float32, for targets (B, T) counted from the
    slice's first entry."""
    logits = tf.cast(logits, tf.float32)
    width = logits.shape[-1]
    maxima = tf.reduce_max(logits, axis=-1)
    exponentials = tf.exp(logits - maxima[..., None])
    inside = (local_targets >= 0) & (local_targets < width)
    picked = tf.gather(logits, tf.clip_by_value(local_targets, 0, width - 1), axis=-1,
                       batch_dims=len(local_targets.shape))
    return maxima, exponentials, tf.reduce_sum(exponentials, axis=-1), tf.where(inside, picked, 0.0)


@_xla
def _slice_gradient(local_targets, scales, upstream, exponentials, dtype):
    """A slice's gradient, `(softmax - one_hot(target)) * upstream` in `dtype` (a `tf.DType`, one trace per dtype),
    from its `exponentials` and the `scales` (B, T) that turn them into probabilities."""
    one_hot = tf.one_hot(local_targets, exponentials.shape[-1], dtype=tf.float32)  # zeros when the target is elsewhere
    probabilities = exponentials * scales[..., None]
    return tf.cast((probabilities - one_hot) * upstream[..., None], dtype)
