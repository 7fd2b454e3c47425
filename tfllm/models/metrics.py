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
