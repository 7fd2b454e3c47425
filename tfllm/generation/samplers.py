"""Samplers: how the next token is chosen from the model's logits. They never see the model, only logits."""

import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.checks import require_int_at_least, require_positive_number, require_probability
from tfllm.generation.decode_loop import decode_loop
from tfllm.generation.thresholds import kth_largest_probability, nucleus_threshold

# Tokens per block of `draw`'s search: 16 to 256 were within 10% of each other, at vocabularies of 4,096 (batch 8)
# and 50,257 (batch 1).
DRAW_BLOCK = 64


class Sampler:
    """Chooses one token per row from logits (B, V); `seed` is an int32 tensor (2,) for reproducible draws.

    `run` is the whole generation: by default `decode_loop`, which calls the sampler once per step; a sampler that
    needs more than one token per row at a time (`BeamSampler`) overrides it.

    Example:

    >>> class LeastLikely(Sampler):  # a sampler is one method: logits (B, V) -> token ids (B,)
    ...     def __call__(self, logits, seed):
    ...         return ops.cast(ops.argmin(logits, axis=-1), "int32")
    >>> ops.convert_to_numpy(LeastLikely()(ops.convert_to_tensor([[0.1, 2.0, -1.0], [3.0, 0.0, 1.0]]), seed=None))
    array([2, 1], dtype=int32)
    >>> from tfllm.generation import get_sampler
    >>> sampler = LeastLikely()
    >>> get_sampler(sampler) is sampler  # so `model.generate(..., sampler=LeastLikely())` uses it
    True
    """

    def __call__(self, logits, seed):
        raise NotImplementedError

    def run(self, step, token_ids, prompt_lengths, state, start, seed, max_new_tokens, stop_token_ids=(), pad_id=0):
        """Fills `token_ids` after the prompts through the decode contract `step`; see `decode_loop`, whose
        arguments and results these are."""
        return decode_loop(
            step, token_ids, prompt_lengths, state, start, self, seed, max_new_tokens, stop_token_ids, pad_id
        )


class GreedySampler(Sampler):
    """The most likely token: deterministic, the same text every time.

    >>> int(GreedySampler()(ops.convert_to_tensor([[0.1, 2.0, 0.3]]), seed=None)[0])
    1

    TensorFlow's `tf.math.argmax`, not `keras.ops.argmax`: for float inputs Keras first replaces -0.0 by the
    smallest negative float, so that -0.0 ranks below 0.0 as in NumPy, and XLA fuses that select into the argmax's
    reduction. Which of two equal logits wins does not matter to a sampler; the select's cost does. In `generate`
    under XLA (benchmarks/transformer_generation.py's model, vocabulary 4,096, 32 + 224 tokens, an AMD EPYC),
    TensorFlow's profiler timed the argmax at about 100 us per token at batch 8 with the select and 25 us without,
    and whole runs (15 alternating rounds, the same tokens) took 1.06x as long with it at batch 1 (range 1.00-1.11x)
    and 1.02x at batch 8 (0.91-1.28x).
    """

    def __call__(self, logits, seed):
        return tf.math.argmax(logits, axis=-1, output_type=tf.int32)  # (B,)


class RandomSampler(Sampler):
    """A draw from softmax(logits / temperature): below 1 sharper, above 1 flatter than the model's distribution.

    The logits are divided after their row's largest is taken off (`scale_logits`), so a temperature near 0 draws the
    likeliest token, as greedy decoding does, instead of overflowing.

    Example:

    >>> logits = ops.log(ops.convert_to_tensor([[0.7, 0.3, 0.0]]))  # token 2 has probability 0
    >>> sampler = RandomSampler(temperature=0.5)
    >>> seed = ops.convert_to_tensor([0, 7], "int32")  # (seed, position) in generation
    >>> int(sampler(logits, seed)[0]) == int(sampler(logits, seed)[0])  # the same seed, the same draw
    True
    >>> sorted({int(sampler(logits, ops.convert_to_tensor([0, i], "int32"))[0]) for i in range(20)})
    [0, 1]
    >>> RandomSampler(temperature=0)
    Traceback (most recent call last):
    ...
    ValueError: temperature=0 is invalid: expected a number > 0 (0 means greedy).
    """

    def __init__(self, temperature=1.0):
        self.temperature = require_positive_number("temperature", temperature, " (0 means greedy)")

    def filter(self, logits):
        """Logits of the tokens that may be drawn; the others are set to -inf."""
        return logits

    def __call__(self, logits, seed):
        return draw(self.filter(scale_logits(logits, self.temperature)), seed)


def scale_logits(logits, temperature):
    """`logits` (B, V) as float32 over `temperature` (a number, or (B, 1)), less their row's largest first: the same
    distribution, with the largest at 0, so no temperature > 0 overflows (one below float32's smallest normal number
    counts as that number). Divided as they were (1e9 and more for a temperature of 1e-10), XLA's softmax on CPUs
    gave NaNs, which the draw took as token 0, the padding.

    >>> ops.convert_to_numpy(scale_logits(ops.convert_to_tensor([[1.0, 3.0, 2.0]]), 0.5)).tolist()
    [[-4.0, 0.0, -2.0]]
    """
    logits = ops.cast(logits, "float32")
    if isinstance(temperature, (int, float)):  # one above float32's largest number is that number, not a cast's warning
        temperature = min(temperature, LARGEST_FLOAT32)
    # A temperature below float32's smallest normal number is 0 on CPUs that flush those to zero, and 0/0 is NaN.
    temperature = ops.maximum(ops.cast(temperature, "float32"), SMALLEST_NORMAL_FLOAT32)
    return (logits - ops.max(logits, axis=-1, keepdims=True)) / temperature


SMALLEST_NORMAL_FLOAT32 = float(np.finfo(np.float32).tiny)
LARGEST_FLOAT32 = float(np.finfo(np.float32).max)


class TopKSampler(RandomSampler):
    """A draw among the k most likely tokens only (Fan et al., 2018).

    Example:

    >>> logits = ops.convert_to_tensor([[1.0, 3.0, 2.0, 0.5]])
    >>> ops.convert_to_numpy(TopKSampler(2).filter(logits)).tolist()  # all but the 2 most likely are cut
    [[-inf, 3.0, 2.0, -inf]]
    >>> sorted({int(TopKSampler(2)(logits, ops.convert_to_tensor([0, i], "int32"))[0]) for i in range(20)})
    [1, 2]
    """

    def __init__(self, k, temperature=1.0):
        super().__init__(temperature)
        self.k = require_int_at_least("top_k", k, 1)

    def filter(self, logits):
        return top_k_filter(logits, self.k)


class TopPSampler(RandomSampler):
    """A draw from the nucleus: the fewest most likely tokens whose probabilities sum to at least p (Holtzman et al.).

    Example:

    >>> logits = ops.log(ops.convert_to_tensor([[0.5, 0.3, 0.15, 0.05]]))
    >>> ops.convert_to_numpy(ops.isfinite(TopPSampler(0.75).filter(logits))).tolist()  # 0.5 + 0.3 >= 0.75
    [[True, True, False, False]]
    >>> sorted({int(TopPSampler(0.75)(logits, ops.convert_to_tensor([0, i], "int32"))[0]) for i in range(20)})
    [0, 1]
    """

    def __init__(self, p, temperature=1.0):
        super().__init__(temperature)
        self.p = require_probability("top_p", p)

    def filter(self, logits):
        return top_p_filter(logits, self.p)


def top_k_filter(logits, k):
    """`logits` (B, V) with all but each row's `k` most likely tokens set to -inf: what `TopKSampler` draws from.

    `k` is an int for every row or an int tensor (B,) of one per row (as `RequestSampler` gets them), where 0 leaves
    that row as it is; a `k` above the vocabulary keeps every token.

    >>> logits = ops.convert_to_tensor([[1.0, 3.0, 2.0, 0.5], [1.0, 3.0, 2.0, 0.5]])
    >>> ops.convert_to_numpy(top_k_filter(logits, ops.convert_to_tensor([1, 0]))).tolist()
    [[-inf, 3.0, -inf, -inf], [1.0, 3.0, 2.0, 0.5]]
    """
    probabilities = ops.softmax(logits, axis=-1)  # (B, V)
    k = ops.minimum(k, ops.shape(logits)[-1])  # () or (B,)
    cut = probabilities < kth_largest_probability(probabilities, k)  # (B, V)
    return ops.where(cut & _per_row_mask(k > 0), float("-inf"), logits)


def top_p_filter(logits, p):
    """`logits` (B, V) with all but each row's nucleus set to -inf: the fewest most likely tokens whose probabilities
    sum to at least `p` (the most likely token always stays). What `TopPSampler` draws from.

    `p` is a number in (0, 1] for every row or a float tensor (B,) of one per row (as `RequestSampler` gets them),
    where 1 leaves that row as it is.

    >>> logits = ops.log(ops.convert_to_tensor([[0.5, 0.3, 0.15, 0.05], [0.5, 0.3, 0.15, 0.05]]))
    >>> ops.convert_to_numpy(ops.isfinite(top_p_filter(logits, ops.convert_to_tensor([0.75, 1.0])))).tolist()
    [[True, True, False, False], [True, True, True, True]]
    """
    probabilities = ops.softmax(logits, axis=-1)  # (B, V)
    # The least likely token of the nucleus; the most likely token is always in it.
    least_kept = ops.minimum(nucleus_threshold(probabilities, p), ops.max(probabilities, -1, keepdims=True))  # (B, 1)
    cut = probabilities < least_kept  # (B, V)
    return ops.where(cut & _per_row_mask(ops.convert_to_tensor(p) < 1), float("-inf"), logits)


def _per_row_mask(rows):
    """A test of a setting, () for every row or (B,) for each, as a mask (1, 1) or (B, 1) over logits (B, V)."""
    return ops.reshape(rows, (-1, 1))


def draw(logits, seed):
    """One token per row (B,) int32, drawn from softmax(logits) (B, V), by inverting the cumulative distribution
    with one uniform number per row; tokens of logit -inf are never drawn.

    A stateless draw: the same `seed` (an int32 tensor (2,), in generation (seed, position)) gives the same token
    each time in eager, in the graph and in a SavedModel; XLA's random numbers are not the plain graph's. The
    probabilities are summed in float64, so that 50,257 of them add up without losing the small ones.

    `tf.random.stateless_categorical` draws one random number per token of the vocabulary instead, and XLA makes
    random numbers slowly on CPUs: in the top-p `generate` of benchmarks/transformer_generation.py's model (vocabulary
    4,096, under XLA, 128 new tokens, medians of 5 alternating rounds), a step took 2.17 ms at batch 1 and 8.02 ms at
    batch 8 with it, 1.87 ms and 6.99 ms this way, against 1.74 ms and 6.43 ms for greedy.

    The search runs in two levels, blocks of `DRAW_BLOCK` tokens and then the tokens of the chosen block, because
    XLA's cumulative sum over a whole row is slow on CPUs. Under XLA (224 draws in a compiled loop, medians of 11
    alternating rounds, the softmax included), one draw with a cumulative sum over the row took 34 us at batch 1 and
    169 us at batch 8 for a vocabulary of 4,096, and 1,135 us at batch 1 for GPT-2's 50,257; this way 11 us, 61 us
    and 121 us, drawing the same tokens.

    >>> logits = ops.log(ops.convert_to_tensor([[0.5, 0.0, 0.5]]))
    >>> sorted({int(draw(logits, ops.convert_to_tensor([0, i], "int32"))[0]) for i in range(20)})
    [0, 2]
    """
    probabilities = ops.cast(ops.softmax(logits, axis=-1), "float64")  # (B, V)
    vocab_size = ops.shape(probabilities)[-1]
    blocks = (vocab_size + DRAW_BLOCK - 1) // DRAW_BLOCK
    padded = ops.pad(probabilities, [[0, 0], [0, blocks * DRAW_BLOCK - vocab_size]])  # zeros are never drawn
    per_block = ops.reshape(padded, (-1, blocks, DRAW_BLOCK))  # (B, blocks, DRAW_BLOCK)
    block_masses = ops.sum(per_block, axis=-1)  # (B, blocks)
    block_ends = ops.cumsum(block_masses, axis=-1)  # (B, blocks): the mass up to each block's end
    total = block_ends[:, -1:]  # (B, 1), 1 up to rounding
    uniform = tf.random.stateless_uniform(ops.shape(total), seed=seed, dtype=tf.float64) * total  # in [0, total)
    block = _first_passing(block_ends, uniform, block_masses)  # (B,)
    block_start = ops.take_along_axis(block_ends - block_masses, block[:, None], axis=1)  # (B, 1)
    masses = ops.take_along_axis(per_block, block[:, None, None], axis=1)[:, 0]  # (B, DRAW_BLOCK)
    token = _first_passing(block_start + ops.cumsum(masses, axis=-1), uniform, masses)  # (B,)
    return block * DRAW_BLOCK + token


def _first_passing(cumulative, uniform, masses):
    """The first position (B,) int32 whose `cumulative` (B, N) sum passes `uniform` (B, 1): the count of those that
    do not. Should the uniform number round up to the last sum, the count would be N: the last position of positive
    `masses` (B, N) is taken instead."""
    count = ops.sum(ops.cast(cumulative <= uniform, "int32"), axis=-1)  # (B,)
    size = ops.shape(masses)[-1]
    last_positive = size - 1 - ops.argmax(ops.flip(ops.cast(masses > 0, "int32"), axis=-1), axis=-1)
    return ops.minimum(count, ops.cast(last_positive, "int32"))
