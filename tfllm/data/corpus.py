"""Corpora by name or path, as a `tf.data.Dataset` of documents: the embedded KJV, tiny Shakespeare, local files.

Every source is read completely when `load_corpus` is called, so a missing file, a broken JSONL line or an empty
corpus is reported before any training starts; the documents are then held in memory (fine for corpora up to a few
hundred megabytes, which is what a laptop trains on).
"""

import dataclasses
import os

import tensorflow as tf

from tfllm.data.files import SUFFIXES, names_a_path, read_documents
from tfllm.data.kjv import kjv_chapters
from tfllm.data.shakespeare import fetch_shakespeare
from tfllm.data.splits import check_split, split_of
from tfllm.utf8 import utf8_bytes

CORPUS_NAMES = ("kjv", "shakespeare")


def load_corpus(name_or_path="kjv", split=None):
    """A corpus as a `tf.data.Dataset` of scalar `tf.string` documents, in a fixed order.

    Args:
        name_or_path: A corpus name or a path.
            - `"kjv"` (the default): the King James Bible, embedded and offline, one document per chapter (1,189),
              verses a line each (see `tfllm.data.kjv`).
            - `"shakespeare"`: tiny Shakespeare, downloaded once into the Keras cache (see
              `tfllm.data.shakespeare`); split into documents at blank lines (one speech each).
            - A path: a `.txt`/`.md` file (one document per blank-line-separated block), a `.jsonl` file (one
              document per line, its `"text"` field), a folder (its `.txt`, `.md` and `.jsonl` files, recursively,
              in sorted order, each one document, or one per block above 1 MiB) or a glob such as `"data/*.txt"`.
              See `tfllm.data.files`.
              Names win over paths: write `"./kjv"` for a local file called `kjv`.
        split: None for everything, or `"train"`, `"validation"` or `"test"`: about 90/5/5 by a stable hash of each
            document's key (`"Book chapter"` for the KJV, the document's bytes otherwise; see
            `tfllm.data.splits.split_of`), the same on every machine and in every order of files.

    Returns:
        A `tf.data.Dataset` with element spec `tf.TensorSpec((), tf.string)`. Bytes are as in the source (a file that
        is not valid UTF-8 warns and is kept as it is), so a byte tokenizer sees them unchanged.

    Raises:
        ValueError: an unknown corpus name (the message lists the known ones), an unknown split, an empty corpus or
            split, a folder or glob without text files, a bad JSONL line (naming the file and line).
        FileNotFoundError: a path that does not exist.
        ConnectionError: `"shakespeare"` is not cached and there is no network (raised at once).

    ```python
    validation = load_corpus("kjv", split="validation")
    print(validation.element_spec)  # TensorSpec(shape=(), dtype=tf.string, name=None)
    print(corpus_stats(validation))  # 59 documents, 225,993 bytes
    ```
    """
    return tf.data.Dataset.from_tensor_slices(tf.constant(load_texts(name_or_path, split), dtype=tf.string))


def load_texts(name_or_path="kjv", split=None):
    """The documents of `load_corpus(name_or_path, split)` as a Python list of `bytes`, for tokenizer training.

    >>> texts = load_texts("kjv", split="test")
    >>> len(texts), texts[0][:30]
    (67, b'Then again Abraham took a wife')
    """
    check_split(split)
    if isinstance(name_or_path, str) and name_or_path in CORPUS_NAMES:
        label = name_or_path
        if name_or_path == "kjv":
            texts = [chapter.text.encode("utf-8") for chapter in kjv_chapters(split)]
            return _non_empty(texts, label, split)
        documents = read_documents(fetch_shakespeare())
    elif names_a_path(name_or_path, globs=True):
        label = os.fspath(name_or_path)
        documents = read_documents(name_or_path)
    else:
        raise ValueError(
            f"unknown corpus {name_or_path!r}: expected one of {', '.join(map(repr, CORPUS_NAMES))} or the path "
            f"of a {'/'.join(SUFFIXES)} file, a folder or a glob"
        )
    if split is not None:
        documents = [document for document in documents if split_of(document) == split]
    return _non_empty(documents, label, split)


@dataclasses.dataclass(frozen=True)
class CorpusStats:
    """How big a corpus is: `documents` and `bytes` (UTF-8 bytes for `str` documents).

    Example:

    >>> stats = corpus_stats(load_texts("kjv", split="validation"))
    >>> stats.documents, stats.bytes
    (59, 225993)
    >>> print(stats)
    59 documents, 225,993 bytes
    """

    documents: int
    bytes: int

    def __str__(self):
        return f"{self.documents:,} documents, {self.bytes:,} bytes"


def corpus_stats(corpus):
    """Counts the documents and bytes of a corpus: a `tf.data.Dataset` of scalar strings or a list of `bytes`/`str`.

    >>> corpus_stats([b"abc", "d\\u00e9"])
    CorpusStats(documents=2, bytes=6)
    >>> str(corpus_stats(load_corpus("kjv")))
    '1,189 documents, 4,136,544 bytes'
    """
    if isinstance(corpus, tf.data.Dataset):
        documents, size = corpus.reduce(
            (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
            lambda state, text: (state[0] + 1, state[1] + tf.cast(tf.strings.length(text, unit="BYTE"), tf.int64)),
        )
        return CorpusStats(int(documents), int(size))
    texts = utf8_bytes(list(corpus))
    return CorpusStats(len(texts), sum(map(len, texts)))


def _non_empty(texts, label, split):
    if not texts:
        raise ValueError(
            f"the {split!r} split of the corpus {label!r} is empty; it has too few documents for a 90/5/5 split by "
            "hash: use more (or smaller) documents (a text file named alone is split at its blank lines into "
            "paragraphs; in a folder or a pattern, each file is one document), or, in Python, split=None"
        )
    return texts
