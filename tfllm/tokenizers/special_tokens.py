"""Special tokens a user names (`<en>`, `<user>`, ...): checked once, and kept as one id each inside the graph."""

import re

import tensorflow as tf

from tfllm.tokenizers.regex_split import regex_split


def check_special_tokens(tokens, reserved=()):
    """The extra special tokens as a tuple of distinct non-empty strings, none of them one of `reserved`.

    >>> check_special_tokens(["<en>", "<zh>"], reserved=["<pad>"])
    ('<en>', '<zh>')
    >>> check_special_tokens(["<en>", "<en>"])
    Traceback (most recent call last):
    ...
    ValueError: special_tokens repeats '<en>': expected each special token once
    """
    if tokens is None:
        return ()
    if isinstance(tokens, (str, bytes)):
        raise ValueError(f"special_tokens={tokens!r} is one string: expected a list of tokens, e.g. [{tokens!r}]")
    tokens = tuple(tokens)
    seen = set()
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"special_tokens holds {token!r}: expected non-empty strings")
        if token in reserved:
            raise ValueError(f"special_tokens holds {token!r}, which is already this tokenizer's own special token "
                             f"(its reserved tokens are {list(reserved)})")
        if token in seen:
            raise ValueError(f"special_tokens repeats {token!r}: expected each special token once")
        seen.add(token)
    return tokens


def split_pattern(tokens):
    """An RE2 pattern matching any of `tokens`, longest first (so `<|a|>` wins over a shorter prefix)."""
    return "|".join(re.escape(token) for token in sorted(tokens, key=len, reverse=True))


def tokenize_around_special_tokens(texts, tokens, token_ids, tokenize_text):
    """Ids of `texts` (B,) where each of `tokens` in the text is its one id and the rest goes to `tokenize_text`.

    Args:
        texts: (B,) tf.string.
        tokens: the special token strings (non-empty).
        token_ids: their ids, in the same order.
        tokenize_text: a 1-D string tensor (N,) -> RaggedTensor (N, None) of ids, for the text between them.

    Returns:
        RaggedTensor (B, None) int32.
    """
    pattern = split_pattern(tokens)
    pieces = regex_split(texts, pattern)  # (B, P); NUL characters kept, unlike tf_text.regex_split
    flat = pieces.flat_values  # (N,)
    matches = tf.equal(flat[:, tf.newaxis], tf.constant(tokens)[tf.newaxis, :])  # (N, K)
    is_special = tf.reduce_any(matches, axis=1)  # (N,)
    special_id = tf.gather(tf.constant(token_ids, tf.int32), tf.argmax(tf.cast(matches, tf.int32), axis=1))  # (N,)
    text_ids = tokenize_text(tf.where(is_special, tf.constant(""), flat))  # (N, None); "" gives no ids
    special_ids = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(special_id, is_special), tf.cast(is_special, tf.int64)
    )  # (N, 0 or 1)
    ids_per_piece = tf.concat([text_ids, tf.cast(special_ids, text_ids.dtype)], axis=1)  # (N, None)
    return pieces.with_flat_values(ids_per_piece).merge_dims(1, 2)  # (B, None)


def detokenize_with_special_tokens(ids, special_ids, special_strings, detokenize_text):
    """The text of `ids` (B, None) with each special id written as its token string.

    The ids between two special tokens are detokenized as one run, so `tokenize_around_special_tokens` followed by
    this gives each run of text back as `detokenize_text` would on its own.

    Args:
        ids: RaggedTensor (B, None) int32.
        special_ids: (K,) the ids written as strings.
        special_strings: (K,) their strings.
        detokenize_text: a RaggedTensor (N, None) of ids -> (N,) strings.

    Returns:
        (B,) tf.string.
    """
    flat = ids.flat_values  # (M,)
    matches = tf.equal(flat[:, tf.newaxis], tf.constant(special_ids, tf.int32)[tf.newaxis, :])  # (M, K)
    is_special = tf.reduce_any(matches, axis=1)  # (M,)
    rows = ids.value_rowids()  # (M,)
    # A run starts at each row's first token, at each special token and right after one.
    previous_special = tf.concat([[True], is_special[:-1]], axis=0)
    previous_row = tf.concat([[-1], rows[:-1]], axis=0)
    starts = is_special | previous_special | tf.not_equal(rows, previous_row)  # (M,)
    run_of_token = tf.cumsum(tf.cast(starts, tf.int64)) - 1  # (M,)
    runs = tf.RaggedTensor.from_value_rowids(flat, run_of_token)  # (R, None)
    run_rows = tf.boolean_mask(rows, starts)  # (R,)
    run_is_special = tf.boolean_mask(is_special, starts)  # (R,)
    text_only = runs.with_flat_values(tf.logical_not(tf.gather(run_is_special, runs.value_rowids())))
    text = detokenize_text(tf.ragged.boolean_mask(runs, text_only))  # (R,); "" for a special token's run
    special_index = tf.argmax(tf.cast(tf.boolean_mask(matches, starts), tf.int32), axis=1)  # (R,)
    special_text = tf.gather(tf.constant(special_strings, tf.string), special_index)  # (R,)
    pieces = tf.where(run_is_special, special_text, text)  # (R,)
    per_row = tf.RaggedTensor.from_value_rowids(pieces, run_rows, nrows=ids.nrows())  # (B, None)
    return tf.strings.reduce_join(per_row, axis=1)  # (B,)
