"""Exact evaluation of a language model over a whole split: every token predicted once, in nats and bits per byte.

Training reports a loss estimated from random windows; this module gives the number to compare models by. Every
text is read from its start, each of its tokens is predicted exactly once, and the sums run over the whole split:

- Each text is read after a bos, and its eos is predicted too, so a text of n tokens counts n + 1 predictions. The
  eos belongs to the text because `lm_dataset` trains on documents that each end with an eos: a model is trained to
  say where a text stops, and is charged for it here. (`CausalLM.score` leaves the eos out: it scores a string as
  a prefix, not as a whole document.)
- A Transformer reads texts longer than its context through a sliding window: windows of `max_sequence_length`
  tokens that move by `stride` (half a context by default); a window predicts only the tokens that the previous
  one did not, so each token gets at least `max_sequence_length - stride` tokens of left context where the text has
  them. This is the scheme of `CausalLM.score`, so the two agree token for token.
- A recurrent model (or any model without a `max_sequence_length`) reads the whole text with its state carried
  from chunk to chunk through the decode contract, so every token sees everything before it and memory stays
  bounded by the chunk, however long the text.
- Texts are batched (sorted by length, right-padded, the padding masked out of the sums); totals are summed in
  float64.

`bits_per_byte` divides by the UTF-8 bytes of the raw texts, not by tokens, so it compares models whatever their
tokenizers: a tokenizer with longer tokens has a higher loss per token but the same bits per byte for the same
predictions.
"""

import dataclasses
import math
import numbers
import weakref

import numpy as np
import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.data import load_texts


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """A language model's fit to a set of texts.

    Attributes:
        loss: mean negative log-likelihood, in nats per predicted token (eos included).
        perplexity: exp(loss).
        bits_per_byte: total nats / (bytes * ln 2): the compressed size in bits of each UTF-8 byte of the texts;
            comparable across tokenizers. NaN when the texts hold no bytes.
        tokens: predicted tokens (each text's tokens plus its eos).
        bytes: UTF-8 bytes of the texts.
        documents: texts evaluated.
    """

    loss: float
    perplexity: float
    bits_per_byte: float
    tokens: int
    bytes: int
    documents: int

    def __str__(self):
        return (
            f"loss {self.loss:.4f} nats/token, perplexity {self.perplexity:.3f}, {self.bits_per_byte:.4f} bits/byte "
            f"({self.tokens:,} tokens, {self.bytes:,} bytes, {self.documents:,} documents)"
        )


def evaluate_texts(model, texts, batch_size=32, stride=None, chunk_length=256):
    """Evaluates a `CausalLM` exactly on `texts`: every token of every text is predicted once.

    Args:
        model: a `tfllm.models.CausalLM` with a tokenizer attached.
        texts: a list of `str`/`bytes`, one string, or a `tf.data.Dataset` of scalar strings (as `load_corpus`
            gives).
        batch_size: windows (Transformer) or texts (recurrent models) read at once.
        stride: for models with a `max_sequence_length`: how far the window moves, 1 <= stride <=
            max_sequence_length; None means half the context. Smaller strides give more left context and cost more.
        chunk_length: for models without a `max_sequence_length`: tokens read per decode call.

    Returns:
        An `EvaluationResult`.

    Raises:
        ValueError: a model without a tokenizer, no texts, or a bad stride, batch size or chunk length.

    Example (prose, as it takes a trained model): `print(evaluate_texts(model, load_texts("kjv", "validation")))`
    prints "loss 2.0885 nats/token, perplexity 8.073, 3.0139 bits/byte (226,052 tokens, 225,993 bytes, 59
    documents)" for a byte-level Transformer (2 layers, 128 wide, context 128) after 400 training steps.
    """
    batch_size = require_positive_int("batch_size", batch_size)
    chunk_length = require_positive_int("chunk_length", chunk_length)
    texts = _as_bytes_list(texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one text to evaluate.")
    token_lists = text_token_ids(model, texts)
    context = model.max_sequence_length
    if context is None:
        nats = _stream_nats(model, token_lists, batch_size, chunk_length)
    else:
        if stride is None:
            stride = max(context // 2, 1)
        if isinstance(stride, bool) or not isinstance(stride, numbers.Integral) or not 1 <= stride <= context:
            raise ValueError(
                f"stride={stride!r} is invalid: expected an integer in [1, max_sequence_length={context}]."
            )
        nats = _window_nats(model, token_lists, batch_size, int(stride))
    total = float(np.sum(nats))
    tokens = sum(len(ids) - 1 for ids in token_lists)
    size = sum(map(len, texts))
    loss = total / tokens
    return EvaluationResult(
        loss=loss,
        perplexity=math.exp(loss) if loss < 700 else math.inf,  # a diverged model, not an OverflowError
        bits_per_byte=total / (size * math.log(2)) if size else float("nan"),
        tokens=tokens,
        bytes=size,
        documents=len(texts),
    )


def evaluate_corpus(model, name_or_path="kjv", split="validation", **kwargs):
    """`evaluate_texts` on a corpus split read with `tfllm.data.load_texts(name_or_path, split)`.

    Keyword arguments go to `evaluate_texts`. Example (prose): `print(evaluate_corpus(model))` prints the loss,
    perplexity and bits per byte of the KJV validation split (59 chapters, 225,993 bytes).
    """
    return evaluate_texts(model, load_texts(name_or_path, split), **kwargs)


def text_token_ids(model, texts):
    """Each text as an int32 array `[bos, tokens..., eos]`: what `evaluate_texts` reads and predicts."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("evaluation needs a tokenizer: attach one to the model with tokenizer=...")
    token_lists = []
    for start in range(0, len(texts), 256):
        ragged = tokenizer.tokenize(tf.constant(texts[start : start + 256], tf.string))
        for ids in ragged.to_list():
            token_lists.append(np.asarray([tokenizer.bos_id, *ids, tokenizer.eos_id], np.int32))
    return token_lists


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
        stop = min(length, first + stride if first > 1 else context + 1)
        windows.append((max(0, stop - 1 - context), first, stop))
        first = stop
    return windows


def _as_bytes_list(texts):
    if isinstance(texts, tf.data.Dataset):
        return [bytes(text) for text in texts.as_numpy_iterator()]
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    return [text.encode("utf-8") if isinstance(text, str) else bytes(text) for text in texts]


def _window_nats(model, token_lists, batch_size, stride):
    """Per-text total nats, read through sliding windows of the model's context (one forward pass per window)."""
    context = model.max_sequence_length
    rows = [
        (text, begin, first, stop)
        for text, ids in enumerate(token_lists)
        for begin, first, stop in sliding_windows(len(ids), context, stride)
    ]
    rows.sort(key=lambda row: row[3] - row[1], reverse=True)  # similar lengths share a batch: less padding
    window_nats = _compiled(model, "windows", lambda: _make_window_function(model))
    nats = np.zeros(len(token_lists), np.float64)
    pad_id = model.pad_id
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(stop - 1 - begin for _, begin, _, stop in batch)
        x = np.full((len(batch), width), pad_id, np.int32)  # (B, T)
        y = np.full((len(batch), width), pad_id, np.int32)  # (B, T)
        weight = np.zeros((len(batch), width), np.float32)  # (B, T): 1 where a prediction counts
        for row, (text, begin, first, stop) in enumerate(batch):
            ids = token_lists[text]
            x[row, : stop - 1 - begin] = ids[begin : stop - 1]
            y[row, : stop - 1 - begin] = ids[begin + 1 : stop]
            weight[row, first - 1 - begin : stop - 1 - begin] = 1.0
        row_nats = window_nats(tf.constant(x), tf.constant(y), tf.constant(weight)).numpy()
        np.add.at(nats, [text for text, *_ in batch], row_nats.astype(np.float64))
    return nats


def _stream_nats(model, token_lists, batch_size, chunk_length):
    """Per-text total nats, each text read whole with the decode state carried from chunk to chunk."""
    order = sorted(range(len(token_lists)), key=lambda text: len(token_lists[text]), reverse=True)
    rows = min(batch_size, len(order))
    step = _compiled(model, "stream", lambda: _make_stream_function(model))
    nats = np.zeros(len(token_lists), np.float64)
    pad_id = model.pad_id
    for start in range(0, len(order), rows):
        batch = order[start : start + rows]
        longest = max(len(token_lists[text]) - 1 for text in batch)
        width = -(-longest // chunk_length) * chunk_length  # whole chunks, so every call has the same shape
        # Always `rows` rows (the last batch is filled with padding rows) so the step is traced once.
        x = np.full((rows, width), pad_id, np.int32)  # (B, T)
        y = np.full((rows, width), pad_id, np.int32)  # (B, T)
        weight = np.zeros((rows, width), np.float32)  # (B, T)
        for row, text in enumerate(batch):
            ids = token_lists[text]
            x[row, : len(ids) - 1] = ids[:-1]
            y[row, : len(ids) - 1] = ids[1:]
            weight[row, : len(ids) - 1] = 1.0
        state = model.initial_state(rows, width)
        batch_nats = np.zeros(rows, np.float64)
        for begin in range(0, width, chunk_length):
            chunk = slice(begin, begin + chunk_length)
            row_nats, state = step(
                tf.constant(x[:, chunk]), tf.constant(y[:, chunk]), tf.constant(weight[:, chunk]), state,
                tf.constant(begin, tf.int32),
            )
            batch_nats += row_nats.numpy()
        nats[batch] = batch_nats[: len(batch)]
    return nats


def _masked_nats(logits, targets, weight):
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(losses * weight, axis=1)  # (B,)


def _make_window_function(model):
    model_ref = weakref.ref(model)

    @tf.function(
        autograph=False,  # plain graph code: nothing for AutoGraph to convert
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),  # x (B, T)
            tf.TensorSpec([None, None], tf.int32),  # y (B, T)
            tf.TensorSpec([None, None], tf.float32),  # weight (B, T)
        ]
    )
    def window_nats(x, y, weight):
        return _masked_nats(model_ref()(x, training=False), y, weight)

    return window_nats


def _make_stream_function(model):
    model_ref = weakref.ref(model)

    @tf.function(reduce_retracing=True, autograph=False)
    def step(x, y, weight, state, index):
        logits, state = model_ref().decode(x, state, index)  # (B, C, V)
        return _masked_nats(logits, y, weight), state

    return step


# Each model's compiled functions, kept while the model lives, so evaluating again does not trace again. The
# functions hold their model through a weak reference, or the cache would keep every model alive.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model, kind, make):
    functions = _COMPILED.setdefault(model, {})
    if kind not in functions:
        functions[kind] = make()
    return functions[kind]
