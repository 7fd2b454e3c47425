"""Perplexity, the metric of the default `compile()`: exp of the mean cross-entropy per predicted token."""

import keras
from keras import ops


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
        self.total_loss = self.add_variable((), initializer="zeros", name="total_loss")
        self.tokens = self.add_variable((), initializer="zeros", name="tokens")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        losses = keras.losses.sparse_categorical_crossentropy(y_true, ops.cast(y_pred, "float32"), from_logits=True)
        weight = ops.ones_like(losses) if self.pad_id is None else ops.cast(ops.not_equal(y_true, self.pad_id), "float32")
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, "float32")
        self.total_loss.assign_add(ops.sum(losses * weight))
        self.tokens.assign_add(ops.sum(weight))

    def result(self):
        return ops.exp(self.total_loss / ops.maximum(self.tokens, 1.0))

    def reset_state(self):
        self.total_loss.assign(0.0)
        self.tokens.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
