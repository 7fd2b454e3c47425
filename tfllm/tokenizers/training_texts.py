"""Reading the corpus a tokenizer learns from: batches of valid UTF-8, with progress and clear errors."""

import collections.abc
import warnings

import keras
import tensorflow as tf

from tfllm.tokenizers.special_tokens import split_pattern


def text_batches(texts, batch_size=1024, verbose=True, special_tokens=(), allow_empty=False):
    """Yields the training texts as (B,) `tf.string` tensors of valid UTF-8, B <= `batch_size`.

    Args:
        texts: an iterable of Python `str` / `bytes`, or a `tf.data.Dataset` of scalar (or already batched (B,))
            `tf.string` elements.
        batch_size: texts per yielded batch.
        verbose: show a `keras.utils.Progbar` counting the texts read.
        special_tokens: strings no text may contain: a tokenizer keeps them as single ids, so a corpus that
            already spells one as normal text would lose it (`ValueError` naming the token and the text).
        allow_empty: accept a corpus without any text (a tokenizer that learns nothing from it).

    Bytes that are not valid UTF-8 are replaced by U+FFFD (as the tokenizers' graph code does at run time), and a
    `UnicodeWarning` says how many texts were affected once the corpus has been read. A corpus without any text
    raises `ValueError` as soon as that is known.

    Example:

    >>> [batch.numpy().tolist() for batch in text_batches(["a", b"b", "c"], batch_size=2, verbose=False)]
    [[b'a', b'b'], [b'c']]
    """
    if isinstance(texts, (str, bytes)):
        raise ValueError(f"texts={texts[:40]!r} is a single string: expected an iterable of texts, e.g. [text]")
    target = len(texts) if isinstance(texts, collections.abc.Sized) else None
    progbar = keras.utils.Progbar(target, unit_name="text") if verbose else None
    num_texts = num_replaced = num_chars = 0
    for batch in _raw_batches(texts, batch_size):
        valid = tf.strings.unicode_transcode(batch, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        num_replaced += int(tf.reduce_sum(tf.cast(valid != batch, tf.int32)))
        num_chars += int(tf.reduce_sum(tf.strings.length(valid)))
        num_texts += int(tf.size(valid))
        if special_tokens:
            _refuse_special_tokens(valid, special_tokens, num_texts - int(tf.size(valid)))
        if progbar is not None:
            progbar.update(num_texts)
        yield valid
    if num_chars == 0 and not allow_empty:
        raise ValueError(f"texts is empty ({num_texts} texts, 0 characters): expected at least one non-empty text")
    if num_replaced:
        warnings.warn(
            f"{num_replaced} of {num_texts} training texts are not valid UTF-8; their invalid bytes were replaced by "
            "U+FFFD",
            UnicodeWarning,
            stacklevel=3,
        )


def _refuse_special_tokens(batch, special_tokens, first_index):
    for token in special_tokens:
        found = tf.strings.regex_full_match(batch, f"(?s).*(?:{split_pattern([token])}).*")  # (B,) bool
        if bool(tf.reduce_any(found)):
            index = int(tf.argmax(tf.cast(found, tf.int32)))
            text = batch[index].numpy().decode("utf-8")
            at = text.index(token)
            raise ValueError(
                f"special token {token!r} already appears as normal text in training text #{first_index + index} "
                f"(...{text[max(0, at - 30): at + len(token) + 30]!r}...): it would be read as the special token. "
                "Pick a special token string that the corpus never contains."
            )


def _raw_batches(texts, batch_size):
    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if not isinstance(spec, tf.TensorSpec) or spec.dtype != tf.string or spec.shape.rank not in (0, 1):
            raise ValueError(f"texts is a tf.data.Dataset of {spec}: expected scalar tf.string elements")
        if spec.shape.rank == 0:
            texts = texts.batch(batch_size)
        yield from texts  # (B,) tf.string
        return
    batch = []
    for text in texts:
        if isinstance(text, str):
            batch.append(text.encode("utf-8", errors="surrogatepass"))  # lone surrogates: invalid, then replaced
        elif isinstance(text, bytes):
            batch.append(text)
        else:
            raise TypeError(f"texts holds a {type(text).__name__} ({text!r:.40}): expected str or bytes")
        if len(batch) == batch_size:
            yield tf.constant(batch, tf.string)
            batch = []
    if batch:
        yield tf.constant(batch, tf.string)
