"""The decode loop shared by every model: one token per step, on whatever state the model keeps between steps."""

from keras import ops


def decode_loop(
    step, token_ids, prompt_lengths, state, start, sampler, seed, max_new_tokens, stop_token_ids=(), pad_id=0
):
    """Fills `token_ids` (B, S) after each row's prompt, one position per step, from `start` on.

    `token_ids` holds the prompts, right-padded, and room for the new tokens. Positions below a row's prompt length
    keep the prompt's token (so prompts of different lengths share one loop); the others get the sampler's choice.
    A row ends after `max_new_tokens` new tokens or after a stop token (later positions get `pad_id`), and the loop
    ends when every row has.

    Args:
        step: `step(token_ids (B, 1), state, index) -> (logits (B, 1, V), state)`, the model's decode contract:
            the logits for position index + 1 after reading the token at `index`.
        token_ids: int32 (B, S), the prompts and room for the new tokens.
        prompt_lengths: int32 (B,), each row's prompt length (at least `start`).
        state: the model's state after reading positions 0 .. start - 2.
        start: the first position to fill (the shortest prompt's length).
        sampler: a `tfllm.generation.Sampler`.
        seed: int32 scalar tensor; each step draws with the seed (seed, position).
        max_new_tokens: int32 scalar, the most tokens a row gets after its prompt.
        stop_token_ids: ids that end a row.
        pad_id: what fills a row after it has stopped.

    Returns:
        `(token_ids, end)`: the filled (B, S) ids, and each row's end (B,): the position after its last token (a
        stop token, if it stopped on one).

    Example:

    >>> from tfllm.generation import GreedySampler
    >>> def step(token_ids, state, index):  # a toy model without state: the next token is always token + 1 (mod 5)
    ...     return ops.one_hot((token_ids + 1) % 5, 5) * 10.0, state  # (B, 1) -> (B, 1, V)
    >>> token_ids = ops.convert_to_tensor([[1, 0, 0, 0, 0, 0], [4, 4, 0, 0, 0, 0]], "int32")  # prompts [1], [4, 4]
    >>> lengths = ops.convert_to_tensor([1, 2], "int32")
    >>> ids, end = decode_loop(step, token_ids, lengths, (), 1, GreedySampler(), 0, max_new_tokens=3,
    ...                        stop_token_ids=[3])
    >>> ops.convert_to_numpy(ids).tolist(), ops.convert_to_numpy(end).tolist()  # row 0 stops on 3, row 1 at 3 new
    ([[1, 2, 3, 0, 0, 0], [4, 4, 0, 1, 2, 0]], [3, 5])
    """
    end = row_limits(token_ids, prompt_lengths, max_new_tokens)
    length = ops.shape(token_ids)[1]
    token_ids, _, _, end = decode_steps(
        step, token_ids, prompt_lengths, state, start, end, sampler, seed, length, stop_token_ids, pad_id
    )
    return token_ids, end


def row_limits(token_ids, prompt_lengths, max_new_tokens):
    """Where each row ends at the latest (B,): after `max_new_tokens` new tokens, or at the end of `token_ids`.

    Example:

    >>> token_ids = ops.zeros((2, 6), "int32")  # (B, S)
    >>> ops.convert_to_numpy(row_limits(token_ids, ops.convert_to_tensor([1, 4]), max_new_tokens=3)).tolist()
    [4, 6]
    """
    return ops.minimum(prompt_lengths + ops.cast(max_new_tokens, "int32"), ops.shape(token_ids)[1])


def decode_steps(
    step, token_ids, prompt_lengths, state, index, end, sampler, seed, max_steps, stop_token_ids=(), pad_id=0
):
    """Runs `decode_loop` for at most `max_steps` positions from `index`, so generation can pause and go on.

    Streaming calls this repeatedly, handing back what it returned. `end` (B,) starts as `row_limits(...)`; a row
    has ended when its position reaches its end.

    Returns:
        `(token_ids, state, index, end)`: the ids, the model's state and the next position to fill, and the ends.

    Example (the toy model and prompts of `decode_loop`'s example, two positions at a time):

    >>> from tfllm.generation import GreedySampler
    >>> def step(token_ids, state, index):  # the next token is always token + 1 (mod 5)
    ...     return ops.one_hot((token_ids + 1) % 5, 5) * 10.0, state
    >>> token_ids = ops.convert_to_tensor([[1, 0, 0, 0, 0, 0], [4, 4, 0, 0, 0, 0]], "int32")
    >>> lengths = ops.convert_to_tensor([1, 2], "int32")
    >>> end = row_limits(token_ids, lengths, max_new_tokens=3)
    >>> ids, state, index, end = decode_steps(step, token_ids, lengths, (), 1, end, GreedySampler(), 0, max_steps=2,
    ...                                       stop_token_ids=[3])
    >>> int(index), ops.convert_to_numpy(ids).tolist()  # positions 1 and 2 filled
    (3, [[1, 2, 3, 0, 0, 0], [4, 4, 0, 0, 0, 0]])
    >>> ids, state, index, end = decode_steps(step, ids, lengths, state, index, end, GreedySampler(), 0,
    ...                                       max_steps=2, stop_token_ids=[3])
    >>> int(index), ops.convert_to_numpy(ids).tolist(), ops.convert_to_numpy(end).tolist()  # as decode_loop's
    (5, [[1, 2, 3, 0, 0, 0], [4, 4, 0, 1, 2, 0]], [3, 5])
    """
    batch_size, length = ops.shape(token_ids)
    stops = ops.convert_to_tensor(list(stop_token_ids) or [-1], dtype="int32")  # (K,)
    stop_at = ops.minimum(ops.convert_to_tensor(index, "int32") + ops.cast(max_steps, "int32"), length)

    def is_stop(ids):
        return ops.any(ops.equal(ids[:, None], stops[None, :]), axis=-1)  # (B,)

    def body(index, token_ids, state, end):
        previous = ops.slice(token_ids, [0, index - 1], [batch_size, 1])  # (B, 1)
        logits, state = step(previous, state, index - 1)
        draw_seed = ops.stack([ops.cast(seed, "int32"), ops.cast(index, "int32")])
        chosen = sampler(logits[:, -1, :], draw_seed)  # (B,)
        in_prompt = index < prompt_lengths  # (B,)
        chosen = ops.where(in_prompt, ops.slice(token_ids, [0, index], [batch_size, 1])[:, 0], chosen)
        stopped = index >= end  # (B,): rows that have ended
        chosen = ops.where(stopped, pad_id, chosen)
        token_ids = ops.slice_update(token_ids, [0, index], ops.cast(chosen[:, None], token_ids.dtype))
        ends_here = ops.logical_not(stopped) & ops.logical_not(in_prompt) & is_stop(chosen)
        end = ops.where(ends_here, index + 1, end)
        return index + 1, token_ids, state, end

    def not_done(index, token_ids, state, end):
        return ops.logical_and(index < stop_at, ops.any(index < end))

    index, token_ids, state, end = ops.while_loop(
        not_done, body, (ops.convert_to_tensor(index, "int32"), token_ids, state, end)
    )
    return token_ids, state, index, end
