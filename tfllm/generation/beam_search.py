"""Beam search: keep the `num_beams` most likely continuations of each prompt, not just the most likely next token."""

from keras import ops
from keras import tree

from tfllm.checks import require_int_at_least
from tfllm.generation.decode_loop import row_limits
from tfllm.generation.samplers import Sampler

# The score of an impossible continuation. Finite, unlike -inf, so that sums and comparisons stay well defined.
_IMPOSSIBLE = -1e9


class BeamSampler(Sampler):
    """Beam search: the continuation with the highest total log-probability among `num_beams` kept at each step.

    Greedy decoding keeps one candidate and can miss a sequence whose first token is less likely but whose whole is
    more likely; beam search keeps the `num_beams` best partial sequences of each prompt, extends each by every
    token, and keeps the best `num_beams` of those. It is deterministic (the seed is not used) and, unlike the
    other samplers, needs the whole loop: it reorders the model's state (RNN states or key/value caches) as beams
    are kept or dropped, which works for any state whose tensors hold the batch on axis 0: one entry per row, or
    equal blocks of entries in the rows' order (a Transformer's key/value cache holds a block of one entry per head).

    A beam that emits a stop token is finished: it keeps its score and competes with the others as it is. At the
    end each prompt gets its best beam by score / (new tokens ** length_penalty): 0 compares raw log-probabilities
    (which favours short texts), 1 compares the mean log-probability per token.

    Args:
        num_beams: beams per prompt (1 is greedy decoding).
        length_penalty: the exponent above.

    Example:

    >>> import numpy as np
    >>> from tfllm.generation import BeamSampler, GreedySampler
    >>> # A bigram model: row i holds p(next | i). Greedy takes 0 -> 1 (0.6), then 1 -> 0 (1/3): 0.2 in all;
    >>> # beam search finds 0 -> 2 (0.4) -> 2 (1.0): 0.4.
    >>> table = np.log(np.array([[0.0, 0.6, 0.4], [1/3, 1/3, 1/3], [0.0, 0.0, 1.0]]) + 1e-9).astype("float32")
    >>> def step(token_ids, state, index):  # the decode contract: (B, 1) ids -> (B, 1, V) logits
    ...     return ops.take(ops.convert_to_tensor(table), token_ids, axis=0), state
    >>> prompt = ops.convert_to_tensor([[0, 0, 0]], "int32")  # a prompt of one token, room for two more
    >>> lengths = ops.ones((1,), "int32")
    >>> greedy, _ = GreedySampler().run(step, prompt, lengths, (), 1, 0, max_new_tokens=2)
    >>> beam, _ = BeamSampler(num_beams=2).run(step, prompt, lengths, (), 1, 0, max_new_tokens=2)
    >>> ops.convert_to_numpy(greedy).tolist(), ops.convert_to_numpy(beam).tolist()
    ([[0, 1, 0]], [[0, 2, 2]])
    """

    def __init__(self, num_beams=4, length_penalty=1.0):
        self.num_beams = require_int_at_least("num_beams", num_beams, 1)
        if not length_penalty >= 0:
            raise ValueError(f"length_penalty={length_penalty!r} is invalid: expected a number >= 0.")
        self.length_penalty = float(length_penalty)

    def __call__(self, logits, seed):
        raise TypeError("BeamSampler chooses whole sequences, not one token per row: use BeamSampler.run.")

    def run(self, step, token_ids, prompt_lengths, state, start, seed, max_new_tokens, stop_token_ids=(), pad_id=0):
        batch_size, length = ops.shape(token_ids)
        beams = self.num_beams
        stops = ops.convert_to_tensor(list(stop_token_ids) or [-1], dtype="int32")  # (N,)

        # Every row becomes `beams` rows, beam-major within a row: row r, beam k is row r * beams + k.
        def expand(tensor):
            return ops.repeat(tensor, beams, axis=0)

        copies = expand(ops.arange(batch_size, dtype="int32"))  # (B*K,): the row each new row copies
        token_ids, prompt_lengths = expand(token_ids), expand(prompt_lengths)  # (B*K, S), (B*K,)
        state = tree.map_structure(lambda tensor: take_rows(tensor, copies, batch_size), state)
        end = row_limits(token_ids, prompt_lengths, max_new_tokens)  # (B*K,)
        # Only the first copy of each prompt is alive at first, so the first choice takes k different tokens.
        first_beam = ops.arange(beams) == 0
        scores = ops.tile(ops.where(first_beam, 0.0, _IMPOSSIBLE)[None], [batch_size, 1])  # (B, K)
        row_start = ops.repeat(ops.arange(batch_size, dtype="int32") * beams, beams)  # (B*K,)

        def body(index, token_ids, state, end, scores):
            previous = ops.slice(token_ids, [0, index - 1], [batch_size * beams, 1])  # (B*K, 1)
            logits, state = step(previous, state, index - 1)
            log_probs = ops.log_softmax(ops.cast(logits[:, -1, :], "float32"), axis=-1)  # (B*K, V)
            vocab_size = ops.shape(log_probs)[-1]
            in_prompt = index < prompt_lengths  # (B*K,)
            stopped = index >= end  # (B*K,)
            # A beam in its prompt or finished has one continuation, at no cost: its prompt token, or padding.
            forced = ops.where(stopped, pad_id, ops.slice(token_ids, [0, index], [batch_size * beams, 1])[:, 0])
            only_forced = ops.where(ops.arange(vocab_size)[None] == forced[:, None], 0.0, _IMPOSSIBLE)  # (B*K, V)
            log_probs = ops.where((in_prompt | stopped)[:, None], only_forced, log_probs)

            candidates = scores[:, :, None] + ops.reshape(log_probs, (batch_size, beams, vocab_size))  # (B, K, V)
            scores, flat = ops.top_k(ops.reshape(candidates, (batch_size, beams * vocab_size)), beams)  # (B, K)
            flat = ops.reshape(ops.cast(flat, "int32"), (-1,))  # (B*K,)
            source = row_start + flat // vocab_size  # (B*K,): the beam each new beam extends
            chosen = flat % vocab_size  # (B*K,)

            token_ids, end, state = (
                ops.take(token_ids, source, axis=0),
                ops.take(end, source, axis=0),
                tree.map_structure(lambda tensor: take_rows(tensor, source, batch_size * beams), state),
            )
            # In a prompt every beam of a row holds the same tokens, and which copy was kept does not matter.
            stopped = index >= end
            prompt_token = ops.slice(token_ids, [0, index], [batch_size * beams, 1])[:, 0]
            chosen = ops.where(in_prompt, prompt_token, ops.where(stopped, pad_id, chosen))
            token_ids = ops.slice_update(token_ids, [0, index], ops.cast(chosen[:, None], token_ids.dtype))
            is_stop = ops.any(ops.equal(chosen[:, None], stops[None, :]), axis=-1)
            end = ops.where(ops.logical_not(stopped) & ops.logical_not(in_prompt) & is_stop, index + 1, end)
            return index + 1, token_ids, state, end, scores

        def not_done(index, token_ids, state, end, scores):
            return ops.logical_and(index < length, ops.any(index < end))

        _, token_ids, _, end, scores = ops.while_loop(
            not_done, body, (ops.convert_to_tensor(start, "int32"), token_ids, state, end, scores)
        )
        new_tokens = ops.reshape(ops.maximum(end - prompt_lengths, 1), (batch_size, beams))  # (B, K)
        normalized = scores / ops.power(ops.cast(new_tokens, "float32"), self.length_penalty)
        best = row_start[::beams] + ops.cast(ops.argmax(normalized, axis=-1), "int32")  # (B,)
        return ops.take(token_ids, best, axis=0), ops.take(end, best, axis=0)


def take_rows(tensor, rows, batch_size):
    """The entries of `rows` (N,) of a state tensor whose axis 0 holds `batch_size` rows, each one entry or an equal
    block of entries: (batch_size n, ...) -> (N n, ...).

    >>> cache = ops.convert_to_tensor([[0], [1], [10], [11]])  # 2 rows, a block of 2 entries (heads) each
    >>> ops.convert_to_numpy(take_rows(cache, ops.convert_to_tensor([1, 1, 0]), batch_size=2))[:, 0].tolist()
    [10, 11, 10, 11, 0, 1]
    """
    block = ops.shape(tensor)[0] // batch_size  # entries per row
    entries = ops.reshape(rows[:, None] * block + ops.arange(block, dtype=rows.dtype)[None, :], (-1,))  # (N n,)
    return ops.take(tensor, entries, axis=0)
