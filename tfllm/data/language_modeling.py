"""Pretraining input: documents -> token stream -> windows -> `(x, y)` batches shifted by one token."""

import tensorflow as tf

from tfllm.checks import require_bos_and_eos, require_positive_int
from tfllm.data.texts import as_text_dataset


def lm_dataset(
    texts,
    tokenizer,
    sequence_length,
    batch_size,
    shuffle=True,
    seed=None,
    shuffle_buffer_size=10_000,
    documents_per_map=64,
    drop_remainder=True,
    reshuffle_each_iteration=True,
):
    """Batches of `(x, y)` int32 (B, T) for next-token prediction, made in the graph.

    Documents are tokenized in batches (`documents_per_map` at a time); each starts with the tokenizer's bos, as
    prompts and scored texts do, and ends with its eos, so the model learns how texts begin and where they stop;
    and the token stream is cut into windows of `sequence_length + 1` tokens that run on across document
    boundaries; `x` is a window without its last token and `y` without its first. The tail
    shorter than a window is dropped. With `shuffle`, documents and then windows are shuffled (seeded, anew each
    epoch); without it the batches follow the corpus order, for evaluation.

    File-less pipelines like this one are sharded by data under `tf.distribute` (auto-shard policy DATA), so
    `strategy.experimental_distribute_dataset` splits every global batch among the replicas.

    Args:
        texts: A `tf.data.Dataset` of scalar strings (as `load_corpus` gives), a list of strings, or one string.
        tokenizer: A tfllm tokenizer.
        sequence_length: T, tokens per example.
        batch_size: B, examples per batch (the global batch under a distribution strategy).
        shuffle: Shuffle documents and windows.
        seed: Seed of the shuffles; the same seed gives the same batches. Under a multi-worker strategy every
            worker must shuffle alike, so give one (or call `keras.utils.set_random_seed` with the same seed on
            every worker): unseeded, each worker draws its own order, and sharding by data then trains some
            windows twice and others never.
        shuffle_buffer_size: Windows held in the shuffle buffer.
        documents_per_map: Documents tokenized per call of the tokenizer.
        drop_remainder: Drop a last batch smaller than `batch_size` (static shapes, as XLA and TPUs want).
        reshuffle_each_iteration: With `shuffle`, draw a new order for every iteration (every epoch of a
            `repeat()`); False gives the seed's order to every iteration.

    Returns:
        A `tf.data.Dataset` of `(x, y)`, each int32 (B, T).

    Raises:
        ValueError: a non-positive size, or a corpus too short for one window, or (with `drop_remainder`) for one
            batch: checked before returning, so before any training starts.

    Example:

    >>> from tfllm.tokenizers import ByteTokenizer
    >>> batches = lm_dataset(["abcdefgh", "ijkl"], ByteTokenizer(), sequence_length=4, batch_size=2, shuffle=False)
    >>> x, y = next(iter(batches))  # (B, T) each
    >>> x.numpy()[1].tolist()  # e f g h: the second window; the first was <bos> a b c (d)
    [104, 105, 106, 107]
    >>> ByteTokenizer().detokenize(x).numpy().tolist(), ByteTokenizer().detokenize(y).numpy().tolist()
    ([b'abc', b'efgh'], [b'abcd', b'fgh'])
    """
    sequence_length = require_positive_int("sequence_length", sequence_length)
    batch_size = require_positive_int("batch_size", batch_size)
    documents_per_map = require_positive_int("documents_per_map", documents_per_map)
    shuffle_buffer_size = require_positive_int("shuffle_buffer_size", shuffle_buffer_size)
    require_bos_and_eos(tokenizer, "lm_dataset")
    documents = as_text_dataset(texts)
    if shuffle:
        documents = documents.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
    windows = token_windows(documents, tokenizer, sequence_length + 1, documents_per_map)
    _require_windows(windows, sequence_length, batch_size if drop_remainder else 1)
    if shuffle:
        windows = windows.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
    batches = windows.batch(batch_size, drop_remainder=drop_remainder)
    batches = batches.map(lambda w: (w[:, :-1], w[:, 1:]), num_parallel_calls=tf.data.AUTOTUNE)  # (B, T) each
    return batches.with_options(_sharded_by_data()).prefetch(tf.data.AUTOTUNE)


def token_windows(documents, tokenizer, window_length, documents_per_map=64):
    """A Dataset of int32 windows (window_length,) cut from the token stream `<bos> doc <eos> <bos> doc <eos> ...`.

    The windows run on across document boundaries; the tail shorter than a window is dropped. `lm_dataset` cuts
    windows of `sequence_length + 1` tokens with it.

    Example:

    >>> from tfllm.tokenizers import ByteTokenizer
    >>> documents = tf.data.Dataset.from_tensor_slices(["ab", "cde"])
    >>> windows = token_windows(documents, ByteTokenizer(), window_length=4)
    >>> [window.tolist() for window in windows.as_numpy_iterator()]  # bos = 1, eos = 2, a = 100; the tail is dropped
    [[1, 100, 101, 2], [1, 102, 103, 104]]
    """

    @tf.autograph.experimental.do_not_convert  # plain graph code; see Tokenizer.tokenize
    def tokens_with_boundaries(texts):
        ids = tokenizer.tokenize(texts)  # (n, None)
        bos = tf.fill([ids.nrows(), 1], tf.constant(tokenizer.bos_id, tf.int32))
        eos = tf.fill([ids.nrows(), 1], tf.constant(tokenizer.eos_id, tf.int32))
        return tf.concat([bos, ids, eos], axis=1).merge_dims(0, 1)  # (tokens,)

    @tf.autograph.experimental.do_not_convert  # plain graph code; see Tokenizer.tokenize
    def cut(leftover, tokens):
        # The tokens that do not fill a window wait for the next batch of documents.
        tokens = tf.concat([leftover, tokens], axis=0)
        count = tf.shape(tokens)[0] // window_length
        used = count * window_length
        return tokens[used:], tf.reshape(tokens[:used], [count, window_length])  # (count, window_length)

    streams = documents.batch(documents_per_map).map(tokens_with_boundaries, num_parallel_calls=tf.data.AUTOTUNE)
    return streams.scan(tf.zeros([0], tf.int32), cut).unbatch()


def _require_windows(windows, sequence_length, needed):
    """Refuses a corpus of fewer than `needed` windows: one, or a batch's worth where an incomplete batch is dropped
    (the dataset would be empty, and `fit` would train nothing with only Keras's "ran out of data" warning)."""
    count = int(windows.take(needed).reduce(0, lambda count, _: count + 1))
    if count == 0:
        raise ValueError(
            f"the corpus is shorter than one window: it has fewer than sequence_length + 1 = {sequence_length + 1} "
            "tokens. Use more text or a smaller sequence_length."
        )
    if count < needed:
        raise ValueError(
            f"the corpus makes {count} window{'s' * (count > 1)} of sequence_length + 1 = {sequence_length + 1} "
            f"tokens, fewer than one batch of batch_size={needed}, and drop_remainder=True drops an incomplete "
            "batch. Use more text, a smaller batch_size or sequence_length, or drop_remainder=False."
        )


def _sharded_by_data():
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return options
