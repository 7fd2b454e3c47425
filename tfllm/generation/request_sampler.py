"""A sampler whose settings are tensors, as a serving request brings them: one graph serves every setting."""

import tensorflow as tf
from keras import ops

from tfllm.generation.samplers import Sampler, draw, scale_logits, top_k_filter, top_p_filter


class RequestSampler(Sampler):
    """Greedy, temperature, top-k and top-p sampling chosen by tensor values at run time (`tfllm.export` uses it).

    The other samplers fix their settings in Python, so each setting is a graph of its own; a SavedModel signature
    gets its settings as inputs instead: `temperature` 0 is greedy decoding, `top_k` 0 and `top_p` 1 are off (both
    may be on: top-k first, then top-p). Each setting is a scalar for the whole batch or a vector (B,) of one value
    per row, as TensorFlow Serving's row format sends them. With the same settings and seed it draws exactly what
    `RandomSampler`, `TopKSampler` and `TopPSampler` draw: the same `scale_logits`, `top_k_filter`, `top_p_filter`
    and stateless `draw`.

    Args:
        temperature: float32 >= 0, scalar or (B,).
        top_k: int32 >= 0, scalar or (B,); None: off (no threshold computed at all).
        top_p: float32 in (0, 1], scalar or (B,); None: off, as for `top_k`.
        seeds: None: every row draws from the generation's seed, in one draw for the batch (as `RandomSampler`).
            Or int32 (B,): each row draws with its own seed as if it were alone in the batch, so a row's text does
            not depend on the rows batched with it (row i draws what `model.generate(prompts[i], seed=seeds[i])`
            draws); the generation's seed then gives only the position.

    Example:

    >>> logits = ops.convert_to_tensor([[1.0, 3.0, 2.0], [5.0, 0.0, 0.0]])
    >>> seed = ops.convert_to_tensor([0, 0], "int32")  # (seed, position)
    >>> ops.convert_to_numpy(RequestSampler(0.0)(logits, seed)).tolist()
    [1, 0]
    >>> per_row = RequestSampler([0.0, 1.0], top_k=[0, 1], top_p=[1.0, 1.0], seeds=[3, 4])  # greedy; top-1 draw
    >>> ops.convert_to_numpy(per_row(logits, seed)).tolist()
    [1, 0]
    """

    def __init__(self, temperature, top_k=None, top_p=None, seeds=None):
        self.temperature = ops.cast(temperature, "float32")
        self.top_k = None if top_k is None else ops.cast(top_k, "int32")
        self.top_p = None if top_p is None else ops.cast(top_p, "float32")
        self.seeds = None if seeds is None else ops.cast(seeds, "int32")

    def __call__(self, logits, seed):
        logits = ops.cast(logits, "float32")  # (B, V)
        greedy = ops.cast(ops.argmax(logits, axis=-1), "int32")  # (B,)
        temperature = self._per_row(self.temperature, logits)  # (B,)

        def draw_or_greedy():
            scaled = scale_logits(logits, ops.where(temperature > 0, temperature, 1.0)[:, None])  # greedy rows: any
            return ops.where(temperature > 0, self._draw(self._filter(scaled), seed), greedy)  # (B,)

        # Conditionals, so a request pays only for what it asks: greedy decoding draws nothing and cuts nothing.
        return ops.cond(ops.any(temperature > 0), draw_or_greedy, lambda: greedy)

    def _draw(self, logits, seed):
        if self.seeds is None:
            return draw(logits, seed)  # (B,)

        def alone(row):  # a batch of one row: the draw `generate` makes for that prompt alone
            row_logits, row_seed = row
            return draw(row_logits[None], ops.stack([row_seed, seed[1]]))[0]

        return tf.map_fn(alone, (logits, self._per_row(self.seeds, logits)), fn_output_signature=tf.int32)  # (B,)

    def _filter(self, logits):
        # Top-k, then top-p on what is left (renormalized), each skipped when no row asks for it.
        if self.top_k is not None:
            k = self._per_row(self.top_k, logits)  # (B,)
            logits = ops.cond(ops.any(k > 0), lambda: top_k_filter(logits, k), lambda: logits)
        if self.top_p is not None:
            p = self._per_row(self.top_p, logits)  # (B,)
            logits = ops.cond(ops.any(p < 1), lambda: top_p_filter(logits, p), lambda: logits)
        return logits

    @staticmethod
    def _per_row(setting, logits):
        return ops.broadcast_to(setting, ops.shape(logits)[:1])  # a scalar or (B,) -> (B,)
