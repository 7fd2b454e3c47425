"""Byte-pair merging in graph: words split into symbols are merged by rank, all words of a batch at once."""

import tensorflow as tf

NO_MERGE = tf.int32.max  # the rank of a pair that no merge joins


def merge_table(merges):
    """A lookup table "left right" -> rank (the merge's index in `merges`); pairs not in it get `NO_MERGE`.

    No merges is a valid BPE (every byte stays a token), but a table cannot be built empty: it then holds only "",
    which no pair spells (a pair has a space), ranked `NO_MERGE`.

    >>> merge_table([]).lookup(tf.constant(["a b", ""])).numpy().tolist() == [NO_MERGE, NO_MERGE]
    True
    """
    keys, ranks = (list(merges), list(range(len(merges)))) if merges else ([""], [NO_MERGE])
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(ranks, tf.int32)),
        default_value=NO_MERGE,
    )


def apply_merges(symbols, ranks):
    """Merges the symbols of each word until no pair of neighbours has a merge, as GPT-2's encoder does.

    Each step merges, in every word, the pair with the lowest rank: all its non-overlapping occurrences, from left to
    right. The words are merged together in one `tf.while_loop`, which runs as many steps as the word that needs
    the most.

    Args:
        symbols: RaggedTensor (N, None) tf.string: each word's symbols (characters of the byte alphabet).
        ranks: a lookup table "left right" -> rank, e.g. `merge_table(merges)`.

    Returns:
        RaggedTensor (N, None) tf.string: the merged symbols (the BPE tokens of each word).

    >>> table = merge_table(["a b", "ab c", "b b"])
    >>> apply_merges(tf.ragged.constant([list("abcab"), list("bbbb"), []]), table).to_list()
    [[b'abc', b'ab'], [b'bb', b'bb'], []]
    """

    def merging(values, row_splits, done):
        return tf.logical_not(done)

    def step(values, row_splits, done):
        values, row_splits, merged = _merge_best_pairs(values, row_splits, ranks)
        return values, row_splits, tf.logical_not(merged)

    values, row_splits, _ = tf.while_loop(
        merging,
        step,
        (symbols.flat_values, symbols.row_splits, tf.constant(False)),
        shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([])),
    )
    return tf.RaggedTensor.from_row_splits(values, row_splits, validate=False)


def _merge_best_pairs(values, row_splits, ranks):
    """One merge step on the flat symbols (S,) of words delimited by `row_splits`; says whether anything merged."""
    num_words = tf.shape(row_splits, out_type=tf.int64)[0] - 1
    rows = tf.RaggedTensor.from_row_splits(values, row_splits, validate=False).value_rowids()  # (S,)
    next_values = tf.concat([values, [""]], axis=0)[1:]  # (S,) the symbol after each one
    next_rows = tf.concat([rows, [-1]], axis=0)[1:]  # (S,)
    has_next = tf.equal(next_rows, rows)  # the pair (i, i + 1) lies inside one word
    pair_ranks = tf.where(has_next, ranks.lookup(values + " " + next_values), NO_MERGE)  # (S,) rank of pair (i, i + 1)
    best_ranks = tf.math.unsorted_segment_min(pair_ranks, rows, num_words)  # (N,)
    is_best = tf.equal(pair_ranks, tf.gather(best_ranks, rows)) & tf.not_equal(pair_ranks, NO_MERGE)  # (S,)
    # In a run of overlapping best pairs ("a a a" for "a a"), merge the 1st, 3rd, ...: left to right, no overlap.
    previous_is_best = tf.concat([[False], is_best], axis=0)[:-1]  # (S,)
    run_starts = is_best & tf.logical_not(previous_is_best)  # (S,)
    positions = tf.range(tf.shape(values, out_type=tf.int64)[0])  # (S,)
    start_positions = tf.concat([tf.boolean_mask(positions, run_starts), [0]], axis=0)  # (R + 1,); never empty
    run_of_position = tf.maximum(tf.cumsum(tf.cast(run_starts, tf.int64)) - 1, 0)  # (S,)
    merges_here = is_best & tf.equal((positions - tf.gather(start_positions, run_of_position)) % 2, 0)  # (S,)
    absorbed = tf.concat([[False], merges_here], axis=0)[:-1]  # (S,) the right symbol of a merged pair
    merged_values = tf.where(merges_here, values + next_values, values)  # (S,)
    kept = tf.logical_not(absorbed)
    new_lengths = tf.math.unsorted_segment_sum(tf.cast(kept, tf.int64), rows, num_words)  # (N,)
    new_row_splits = tf.concat([[0], tf.cumsum(new_lengths)], axis=0)  # (N + 1,)
    return tf.boolean_mask(merged_values, kept), new_row_splits, tf.reduce_any(merges_here)
