"""The cross-entropy of each predicted token, computed once for the default loss and the `Perplexity` metric.

`CausalLM.compile()`'s defaults are a loss (the mean cross-entropy per predicted token) and a metric (exp of the
same mean over an epoch). Computed apart, as Keras computes a compiled loss and a compiled metric, the softmax over
the whole vocabulary for every position, the step's largest non-matmul op, runs twice. `SharedCrossEntropy` computes
it once in the loss and hands the per-token values to the metric. When the logits are a training step's, joined from
slices of the vocabulary (`TokenEmbedding`), the cross-entropy is computed from the slices
(`tfllm.models.sliced_cross_entropy`), and the joined logits are left for whatever else reads them.
"""

import threading

import tensorflow as tf
from keras import ops

from tfllm.layers.token_embedding import logit_slices_of
from tfllm.models.sliced_cross_entropy import sliced_cross_entropy


def token_cross_entropy(targets, logits, ignored_id=None, sample_weight=None):
    """`(losses, weights)`, both (B, T) float32: each position's cross-entropy from `logits` (B, T, V) for `targets`
    (B, T), and its weight (0 where the target is `ignored_id`, times `sample_weight` (B, T) when given).

    The ignored positions are given target 0 before the softmax and weight 0 after it, so they add nothing to a
    weighted sum nor to its gradient.

    >>> losses, weights = token_cross_entropy([[1, 0]], [[[0.0, 0.0], [5.0, 0.0]]], ignored_id=0)
    >>> [round(float(value), 4) for value in losses[0]], [float(value) for value in weights[0]]
    ([0.6931, 0.0067], [1.0, 0.0])
    """
    targets = ops.cast(targets, "int32")
    if ignored_id is None:
        weights = ops.ones(ops.shape(targets), "float32")
    else:
        counted = ops.not_equal(targets, ignored_id)
        targets = ops.where(counted, targets, 0)
        weights = ops.cast(counted, "float32")
    if sample_weight is not None:
        weights = weights * ops.cast(sample_weight, "float32")
    slices = logit_slices_of(logits)
    if slices is not None:  # logits joined from slices of the vocabulary, a training step's (TokenEmbedding)
        losses = sliced_cross_entropy(targets, slices)  # (B, T)
    else:
        losses = ops.sparse_categorical_crossentropy(targets, ops.cast(logits, "float32"), from_logits=True)
    return losses, weights


class SharedCrossEntropy:
    """The default loss of `CausalLM.compile()`, which hands its per-token cross-entropies to the `Perplexity` metric.

    `loss(...)` returns what Keras's `SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignored_id,
    reduction="mean_with_sample_weight")` returns for per-token targets and weights, and keeps the per-token values;
    the metric `take()`s them in the same traced train or test step (Keras computes the loss, then the metrics)
    instead of computing them again. Under a `tf.distribute` strategy, each replica returns its share of the global
    batch's mean: its sum over the tokens all replicas count, which Keras then sums (Keras's own loss would give the
    mean of the replicas' means).
    A plain object, so that Keras tracks nothing in it.
    """

    def __init__(self, ignored_id):
        self.ignored_id = ignored_id
        # What `loss` kept, per thread: a `MirroredStrategy` traces each replica's step in a thread of its own, and
        # each replica's metrics must take its own cross-entropies.
        self._kept = {}

    @staticmethod
    def applies_to(targets, sample_weight):
        """Whether the weights are per token (or absent), the case whose mean `loss` computes as Keras does."""
        return sample_weight is None or len(ops.shape(sample_weight)) == len(ops.shape(targets))

    def loss(self, targets, logits, sample_weight=None):
        losses, weights = token_cross_entropy(targets, logits, self.ignored_id, sample_weight)  # (B, T) each
        self._kept[threading.get_ident()] = (losses, weights)
        total, tokens = ops.sum(losses * weights), ops.sum(weights)
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            # Keras sums the replicas' losses, and their gradients: each replica divides its sum by the tokens of the
            # whole global batch, so that the sum is the global batch's mean per token, one device's loss, however
            # the counted tokens (a fine-tuning's completions) fall among the replicas.
            tokens = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(tokens))
        return ops.divide_no_nan(total, tokens)

    def take(self):
        """The last `loss` call's `(losses, weights)` if it was made in the graph being traced now (once), else None."""
        kept = self.peek()
        self._kept.pop(threading.get_ident(), None)
        return kept

    def peek(self):
        """What `take` returns, left for `take`: for the loss tracker, which reads the weights before the metric."""
        kept = self._kept.get(threading.get_ident())
        if kept is not None and getattr(kept[0], "graph", None) is not tf.compat.v1.get_default_graph():
            if hasattr(kept[0], "graph"):  # a symbolic tensor of another trace: not this step's
                return None
        return kept
