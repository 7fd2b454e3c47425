"""A sampler whose settings are tensors, as a serving request brings them: one graph serves every setting."""

import tensorflow as tf
from keras import ops

from tfllm.generation.samplers import Sampler
from tfllm.generation.thresholds import kth_largest_probability, nucleus_threshold


class RequestSampler(Sampler):
    """Greedy, temperature, top-k and top-p sampling chosen by tensor values at run time (`tfllm.export` uses it).

    The other samplers fix their settings in Python, so each setting is a graph of its own; a SavedModel signature
    gets its settings as inputs instead: `temperature` 0 is greedy decoding, `top_k` 0 and `top_p` 1 are off (both
    may be on: top-k first, then top-p). With the same settings and seed it draws exactly what
    `RandomSampler`, `TopKSampler` and `TopPSampler` draw (the same scaled and filtered logits, the same stateless
    draw).

    Args:
        temperature: float32 scalar >= 0.
        top_k: int32 scalar >= 0; None: off (no threshold computed at all).
        top_p: float32 scalar in (0, 1]; None: off, as for `top_k`.

    Example:

    >>> logits = ops.convert_to_tensor([[1.0, 3.0, 2.0]])
    >>> seed = ops.convert_to_tensor([0, 0], "int32")
    >>> int(RequestSampler(0.0)(logits, seed)[0]), int(RequestSampler(1.0, top_k=1, top_p=1.0)(logits, seed)[0])
    (1, 1)
    """

    def __init__(self, temperature, top_k=None, top_p=None):
        self.temperature = ops.cast(temperature, "float32")
        self.top_k = None if top_k is None else ops.cast(top_k, "int32")
        self.top_p = None if top_p is None else ops.cast(top_p, "float32")

    def __call__(self, logits, seed):
        logits = ops.cast(logits, "float32")  # (B, V)

        def greedy():
            return ops.cast(ops.argmax(logits, axis=-1), "int32")  # (B,)

        def draw():
            scaled = logits / ops.maximum(self.temperature, 1e-6)
            return tf.random.stateless_categorical(self._filter(scaled), 1, seed=seed, dtype=tf.int32)[:, 0]  # (B,)

        # Conditionals, so a request pays only for what it asks: greedy decoding draws nothing and cuts nothing.
        return ops.cond(self.temperature > 0, draw, greedy)

    def _filter(self, logits):
        # As `TopKSampler`, then `TopPSampler` on what is left (renormalized): the same thresholds, so the same draws.
        def top_k(logits):
            probabilities = ops.softmax(logits, axis=-1)  # (B, V)
            k = ops.minimum(self.top_k, ops.shape(logits)[-1])
            return ops.where(probabilities < kth_largest_probability(probabilities, k), float("-inf"), logits)

        def top_p(logits):
            probabilities = ops.softmax(logits, axis=-1)
            least_kept = ops.minimum(nucleus_threshold(probabilities, self.top_p),
                                     ops.max(probabilities, -1, keepdims=True))
            return ops.where(probabilities < least_kept, float("-inf"), logits)

        if self.top_k is not None:
            logits = ops.cond(self.top_k > 0, lambda: top_k(logits), lambda: logits)
        if self.top_p is not None:
            logits = ops.cond(self.top_p < 1, lambda: top_p(logits), lambda: logits)
        return logits
