"""Perplexity, the metric of the default `compile()`: exp of the mean cross-entropy per predicted token."""

import keras
from keras import ops

from tfllm.models.token_cross_entropy import token_cross_entropy


@keras.saving.register_keras_serializable(package="tfllm")
class Perplexity(keras.metrics.Metric):
    """exp(total cross-entropy / tokens) over everything seen since the last reset, padding excluded.

    Token-weighted: a batch with more real tokens counts for more, so the result is the perplexity of the whole
    epoch, not a mean of per-batch perplexities. Targets equal to `pad_id` (None: no id is padding) and positions
    with zero `sample_weight` are left out.

    >>> metric = Perplexity(pad_id=0)
    >>> metric.update_state([[1, 0]], [[[0.0, 0.0], [5.0, 0.0]]])  # a uniform guess over 2 tokens, then padding
    >>> round(float(metric.result()), 4)
    2.0
    """

    def __init__(self, pad_id=0, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pad_id = pad_id
        # Set by `CausalLM.compile()` to its default loss, which computes the same cross-entropies (a
        # `tfllm.models.token_cross_entropy.SharedCrossEntropy`): taken from it rather than computed twice.
        self.shared_cross_entropy = None
        self.total_loss = self.add_variable((), initializer="zeros", name="total_loss")
        self.tokens = self.add_variable((), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        shared = self.shared_cross_entropy.take() if self.shared_cross_entropy is not None else None
        self.add_token_losses(*(shared or token_cross_entropy(y_true, y_pred, self.pad_id, sample_weight)))

    def add_token_losses(self, losses, weights):
        """Adds cross-entropies already computed, (B, T) each with their weights (what the default loss shares)."""
        self.total_loss.assign_add(ops.sum(losses * weights))
        self.tokens.assign_add(ops.sum(weights))

    def result(self):
        return ops.exp(self.total_loss / ops.maximum(self.tokens, 1.0))

    def reset_state(self):
        self.total_loss.assign(0.0)
        self.tokens.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


class TokenWeightedLoss(keras.metrics.Mean):
    """The mean loss over an epoch, each batch weighted by its predicted tokens: the "loss" of the logs and of
    `evaluate` for `CausalLM.compile()`'s default loss, which is the mean cross-entropy per predicted token.

    Keras's own loss tracker weighs each batch's loss by its rows. Where batches hold different numbers of counted
    tokens (a fine-tuning's completions, the last, shorter batch), the mean of per-batch means is then no
    per-token mean: it changed with the batch size, and disagreed with `Perplexity` (whose log it now is). Each
    step's mean and its weight come from the cross-entropies the default loss computed for this step (and this
    replica: `tfllm.models.token_cross_entropy.SharedCrossEntropy`); without them (another loss), the loss Keras
    passes, weighted by the rows, as Keras.

    >>> from tfllm.models.token_cross_entropy import SharedCrossEntropy
    >>> shared = SharedCrossEntropy(ignored_id=0)
    >>> tracker = TokenWeightedLoss(shared)
    >>> batches = [([[1, 1, 1]], [[[0.0, 0.0]] * 3]),  # 3 tokens guessed uniformly: log 2 = 0.6931 each
    ...            ([[1, 0, 0]], [[[0.0, 5.0]] * 3])]  # 1 token guessed well, 0.0067 (and 2 of padding)
    >>> for targets, logits in batches:
    ...     tracker.update_state(shared.loss(targets, logits), sample_weight=1)  # Keras gives the rows: 1
    >>> round(float(tracker.result()), 4)  # (3 x 0.6931 + 0.0067) / 4, where Keras's tracker gave 0.3499
    0.5215
    """

    def __init__(self, shared_cross_entropy, name="loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.shared_cross_entropy = shared_cross_entropy

    def update_state(self, values, sample_weight=None):
        shared = self.shared_cross_entropy.peek()
        if shared is not None:
            # This step's mean per token, weighted by its counted tokens (of this replica, under a strategy: the
            # loss itself is then this replica's share of the global batch's mean).
            losses, weights = shared
            sample_weight = ops.sum(weights)
            values = ops.divide_no_nan(ops.sum(losses * weights), sample_weight)
        return super().update_state(values, sample_weight=sample_weight)
