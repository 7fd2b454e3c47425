"""The log-likelihood of every token of a text under a `CausalLM`, each token predicted once, in batches.

This is the engine of `CausalLM.score` and of exact evaluation (`tfllm.evaluation.evaluate_texts`), so the two agree
token for token; the SavedModel's `score` signature (`tfllm.export`) runs the same rules in its graph
(`window_bounds`, `window_log_likelihoods`, `decode_log_likelihoods`). A model is seen through its decode contract
(`tokenizer`, `pad_id`, `max_sequence_length`, `initial_state`, `decode`, and calling it on token ids):

- A model with a `max_sequence_length` (the Transformer) reads a text longer than its context through a sliding
  window: windows of `max_sequence_length` tokens that move by `stride` (half a context by default); a window
  counts only the tokens that the previous one did not predict, so each token gets at least
  `max_sequence_length - stride` tokens of left context where the text has them.
- A model without one (the RNNs) reads the whole text with its decode state carried from chunk to chunk
  (`CHUNK_LENGTH` tokens by default), so every token sees everything before it and memory stays bounded by the
  chunk, however long the text.
- Texts are batched (sorted by length, right-padded, the padding masked out) and each batch goes through one
  compiled function, traced once per model.
"""

import weakref

import numpy as np
import tensorflow as tf

from tfllm.checks import require_int_in_range, require_positive_int
from tfllm.utf8 import utf8_bytes

CHUNK_LENGTH = 256  # tokens a recurrent model reads per decode call


def text_token_ids(model, texts, batch_size=256):
    """Each text (`str` or UTF-8 `bytes`) as an int32 array `[bos, tokens..., eos]`, tokenized by the model's
    tokenizer."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("scoring text needs a tokenizer: attach one to the model with tokenizer=...")
    texts = utf8_bytes(texts)
    token_lists = []
    for start in range(0, len(texts), batch_size):
        ragged = tokenizer.tokenize(tf.constant(texts[start : start + batch_size], tf.string))
        for ids in ragged.to_list():
            token_lists.append(np.asarray([tokenizer.bos_id, *ids, tokenizer.eos_id], np.int32))
    return token_lists


def token_log_likelihoods(model, token_lists, batch_size=32, stride=None, chunk_length=CHUNK_LENGTH):
    """log p(ids[i] | ids[:i]) for i = 1 .. len(ids) - 1 of each sequence: a list of float64 arrays.

    Args:
        model: a `tfllm.models.CausalLM`.
        token_lists: int sequences (each at least one token: the first is only read, never predicted).
        batch_size: windows (models with a context) or sequences (recurrent models) read at once.
        stride: for models with a `max_sequence_length`: how far the window moves, 1 <= stride <=
            max_sequence_length; None means half the context. Smaller strides give more left context and cost more.
        chunk_length: for models without a `max_sequence_length`: tokens read per decode call.

    Example:

    >>> from tfllm.models import LSTMLM
    >>> [values.shape for values in token_log_likelihoods(LSTMLM(10, hidden_dim=4), [[1, 5, 6, 2], [1, 2]])]
    [(3,), (1,)]
    """
    batch_size = require_positive_int("batch_size", batch_size)
    chunk_length = require_positive_int("chunk_length", chunk_length)
    token_lists = [np.asarray(ids, np.int32) for ids in token_lists]
    if any(len(ids) < 1 for ids in token_lists):
        raise ValueError("a token sequence is empty: each needs at least the token that starts it (a bos).")
    context = model.max_sequence_length
    if context is None:
        return _streamed(model, token_lists, batch_size, chunk_length)
    if stride is None:
        stride = default_stride(context)
    stride = require_int_in_range("stride", stride, 1, context, " (at most the model's max_sequence_length)")
    return _windowed(model, token_lists, batch_size, stride)


def sliding_windows(length, context, stride):
    """The windows that predict positions 1 .. length - 1 of a sequence once each: `(begin, first, stop)` triples.

    A window reads positions `begin .. stop - 2` (at most `context` of them) and counts its predictions of positions
    `first .. stop - 1`. The first window reads from the start; each later one predicts the next `stride` positions
    and ends right before the last of them, so it reads a full context when the text has one.

    >>> sliding_windows(length=10, context=4, stride=2)
    [(0, 1, 5), (2, 5, 7), (4, 7, 9), (5, 9, 10)]
    """
    windows = []
    first = 1
    while first < length:
        begin, stop = (int(value) for value in window_bounds(first, length, context, stride))
        windows.append((begin, first, stop))
        first = stop
    return windows


def window_bounds(first, length, context, stride, xp=np):
    """The rule of `sliding_windows`, one window at a time: `(begin, stop)` of the window whose first counted
    prediction is position `first` of a sequence of `length` tokens.

    The one source of the rule for the Python windows here and the graph loop of the SavedModel's `score`:
    `xp` is the array namespace, NumPy for numbers (the default) or `keras.ops` for tensors (then `first` and
    `length` may be (B,) tensors, a window per row).

    >>> [int(value) for value in window_bounds(first=1, length=10, context=4, stride=2)]  # the first window
    [0, 5]
    >>> [int(value) for value in window_bounds(first=9, length=10, context=4, stride=2)]  # the last one
    [5, 10]
    """
    stop = xp.where(first > 1, xp.minimum(first + stride, length), xp.minimum(context + 1, length))
    return xp.maximum(stop - 1 - context, 0), stop


def default_stride(context):
    """How far a window moves when the caller does not say: half the context, so each prediction reads at least
    half a context of left context where the text has it.

    >>> default_stride(128), default_stride(1)
    (64, 1)
    """
    return max(context // 2, 1)


def next_token_log_likelihoods(logits, targets):
    """log p(targets[b, t] | what the logits read), (B, T) float32, from logits (B, T, V) of any float dtype.

    >>> import numpy as np
    >>> logits = np.log(np.asarray([[[0.5, 0.25, 0.25]]], np.float32))  # (B, T, V)
    >>> np.round(np.exp(next_token_log_likelihoods(logits, np.asarray([[1]], np.int32)).numpy()), 6)
    array([[0.25]], dtype=float32)
    """
    return -tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))


def window_log_likelihoods(model, token_ids, targets):
    """log p(targets | token_ids) (B, T) of a window read in one forward pass: `targets` are `token_ids` moved by
    one (the same rule in `token_log_likelihoods` and in the SavedModel's graph)."""
    return next_token_log_likelihoods(model(token_ids, training=False), targets)  # (B, T)


def decode_log_likelihoods(model, token_ids, targets, state, index):
    """log p(targets | ...) (B, C) of a chunk read with `model.decode` from position `index` on the carried
    `state`, and the new state (the rule for models without a context, here and in the SavedModel's graph)."""
    logits, state = model.decode(token_ids, state, index)  # (B, C, V)
    return next_token_log_likelihoods(logits, targets), state


def _windowed(model, token_lists, batch_size, stride):
    """Per-token log-likelihoods, read through sliding windows of the model's context (one forward pass each)."""
    context = model.max_sequence_length
    rows = [
        (text, begin, first, stop)
        for text, ids in enumerate(token_lists)
        for begin, first, stop in sliding_windows(len(ids), context, stride)
    ]
    rows.sort(key=lambda row: row[3] - row[1], reverse=True)  # similar lengths share a batch: less padding
    window_function = _compiled(model, "windows", lambda: _make_window_function(model))
    results = [np.zeros(len(ids) - 1, np.float64) for ids in token_lists]
    pad_id = model.pad_id
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(stop - 1 - begin for _, begin, _, stop in batch)
        x = np.full((len(batch), width), pad_id, np.int32)  # (B, T)
        y = np.full((len(batch), width), pad_id, np.int32)  # (B, T)
        for row, (text, begin, _, stop) in enumerate(batch):
            ids = token_lists[text]
            x[row, : stop - 1 - begin] = ids[begin : stop - 1]
            y[row, : stop - 1 - begin] = ids[begin + 1 : stop]
        values = window_function(tf.constant(x), tf.constant(y)).numpy()  # (B, T)
        for row, (text, begin, first, stop) in enumerate(batch):
            # Column j predicts position begin + 1 + j; this window counts positions first .. stop - 1.
            results[text][first - 1 : stop - 1] = values[row, first - 1 - begin : stop - 1 - begin]
    return results


def _streamed(model, token_lists, batch_size, chunk_length):
    """Per-token log-likelihoods, each sequence read whole with the decode state carried from chunk to chunk."""
    order = sorted(range(len(token_lists)), key=lambda text: len(token_lists[text]), reverse=True)
    rows = min(batch_size, len(order))
    step = _compiled(model, "stream", lambda: _make_stream_function(model))
    results = [None] * len(token_lists)
    pad_id = model.pad_id
    for start in range(0, len(order), rows):
        batch = order[start : start + rows]
        longest = max(len(token_lists[text]) - 1 for text in batch)
        width = max(-(-longest // chunk_length), 1) * chunk_length  # whole chunks: every call has the same shape
        # Always `rows` rows (the last batch is filled with padding rows) so the step is traced once.
        x = np.full((rows, width), pad_id, np.int32)  # (B, T)
        y = np.full((rows, width), pad_id, np.int32)  # (B, T)
        for row, text in enumerate(batch):
            ids = token_lists[text]
            x[row, : len(ids) - 1] = ids[:-1]
            y[row, : len(ids) - 1] = ids[1:]
        state = model.initial_state(rows, width)
        chunks = []
        for begin in range(0, width, chunk_length):
            chunk = slice(begin, begin + chunk_length)
            values, state = step(tf.constant(x[:, chunk]), tf.constant(y[:, chunk]), state, tf.constant(begin, tf.int32))
            chunks.append(values.numpy())
        values = np.concatenate(chunks, axis=1)  # (B, T)
        for row, text in enumerate(batch):
            results[text] = values[row, : len(token_lists[text]) - 1].astype(np.float64)
    return results


def _make_window_function(model):
    model_ref = weakref.ref(model)

    @tf.function(
        autograph=False,  # plain graph code: nothing for AutoGraph to convert
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)],  # x, y (B, T)
    )
    def window_function(x, y):
        return window_log_likelihoods(model_ref(), x, y)  # (B, T)

    return window_function


def _make_stream_function(model):
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y, state, index):
        return decode_log_likelihoods(model_ref(), x, y, state, index)

    return step


# Each model's compiled functions, kept while the model lives, so scoring again does not trace again. The
# functions hold their model through a weak reference, or the cache would keep every model alive.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, kind, make):
    functions = _COMPILED.setdefault(model, {})
    if kind not in functions:
        model.build_eagerly()  # weights made inside a tf.function would make it trace twice
        functions[kind] = make()
    return functions[kind]
