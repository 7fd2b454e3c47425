"""Samplers: how the next token is chosen from the model's logits. They never see the model, only logits."""

import tensorflow as tf
from keras import ops

from tfllm.checks import require_choice, require_int_at_least


class Sampler:
    """Chooses one token per row from logits (B, V); `seed` is an int32 tensor (2,) for reproducible draws."""

    def __call__(self, logits, seed):
        raise NotImplementedError


class GreedySampler(Sampler):
    """The most likely token: deterministic, the same text every time.

    >>> int(GreedySampler()(ops.convert_to_tensor([[0.1, 2.0, 0.3]]), seed=None)[0])
    1
    """

    def __call__(self, logits, seed):
        return ops.cast(ops.argmax(logits, axis=-1), "int32")  # (B,)


class RandomSampler(Sampler):
    """A draw from softmax(logits / temperature): below 1 sharper, above 1 flatter than the model's distribution."""

    def __init__(self, temperature=1.0):
        if not temperature > 0:
            raise ValueError(f"temperature={temperature!r} is invalid: expected a number > 0 (0 means greedy).")
        self.temperature = temperature

    def filter(self, logits):
        """Logits of the tokens that may be drawn; the others are set to -inf."""
        return logits

    def __call__(self, logits, seed):
        logits = self.filter(ops.cast(logits, "float32") / self.temperature)
        # A stateless draw: the same (seed, position) gives the same token in eager, graph, XLA and a SavedModel.
        # (keras.random takes no tensor seeds on the TensorFlow backend, hence tf here.)
        return tf.random.stateless_categorical(logits, 1, seed=seed, dtype=tf.int32)[:, 0]  # (B,)


class TopKSampler(RandomSampler):
    """A draw among the k most likely tokens only (Fan et al., 2018)."""

    def __init__(self, k, temperature=1.0):
        super().__init__(temperature)
        self.k = require_int_at_least("top_k", k, 1)

    def filter(self, logits):
        kth_largest = ops.top_k(logits, k=min(self.k, logits.shape[-1]))[0][:, -1:]  # (B, 1)
        return ops.where(logits < kth_largest, float("-inf"), logits)


class TopPSampler(RandomSampler):
    """A draw from the nucleus: the fewest most likely tokens whose probabilities sum to at least p (Holtzman et al.)."""

    def __init__(self, p, temperature=1.0):
        super().__init__(temperature)
        if not 0 < p <= 1:
            raise ValueError(f"top_p={p!r} is invalid: expected a probability in (0, 1].")
        self.p = p

    def filter(self, logits):
        sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)  # (B, V), most likely first
        probabilities = ops.softmax(sorted_logits, axis=-1)
        mass_before = ops.cumsum(probabilities, axis=-1) - probabilities  # (B, V)
        # A token is kept while the mass of the tokens before it is below p; the most likely is always kept.
        kept = ops.where(mass_before < self.p, sorted_logits, float("inf"))
        threshold = ops.min(kept, axis=-1, keepdims=True)  # (B, 1): the least likely kept logit
        return ops.where(logits < threshold, float("-inf"), logits)


SAMPLERS = ("greedy", "random", "top_k", "top_p")


def get_sampler(sampler="greedy", temperature=1.0, top_k=None, top_p=None):
    """A sampler by name or settings: "greedy" (or temperature 0), "random", "top_k" / top_k, "top_p" / top_p.

    Setting `top_k` or `top_p` (below 1) chooses that sampler when `sampler` is "greedy" or "random" (a random
    draw limited to the top k, or to the nucleus); a temperature of 0 is greedy whatever the rest; a `Sampler`
    passes through.

    >>> type(get_sampler("random", temperature=0.8, top_p=0.9)).__name__, type(get_sampler(temperature=0)).__name__
    ('TopPSampler', 'GreedySampler')
    """
    if isinstance(sampler, Sampler):
        return sampler
    require_choice("sampler", sampler, SAMPLERS)
    if temperature is None or temperature < 0:
        raise ValueError(f"temperature={temperature!r} is invalid: expected a number >= 0 (0 means greedy).")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k={top_k!r} is invalid: expected a positive integer (or None for no limit).")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p={top_p!r} is invalid: expected a probability in (0, 1].")
    if sampler in ("greedy", "random") and top_k:
        sampler = "top_k"
    if sampler in ("greedy", "random") and top_p is not None and top_p < 1:
        sampler = "top_p"
    if sampler == "greedy" or temperature == 0:
        return GreedySampler()
    if sampler == "top_k":
        return TopKSampler(top_k or 40, temperature)
    if sampler == "top_p":
        return TopPSampler(1.0 if top_p is None else top_p, temperature)
    return RandomSampler(temperature)
