"""Does generated text read as the corpus does? The share of its words that the corpus uses."""

import re

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def corpus_words(texts):
    """The set of lowercase words (letters, with an inner apostrophe) in `texts` (str or UTF-8 bytes)."""
    words = set()
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        words.update(word.lower() for word in _WORD.findall(text))
    return words


def known_word_share(generated, vocabulary):
    """The share of the words of `generated` texts that are in `vocabulary` (a set from `corpus_words`).

    A crude but honest test of a small model's English: invented words ("beginnd", "Lorf") count against it,
    while the grammar is not judged. Texts with no words give NaN.

    >>> vocabulary = corpus_words(["In the beginning God created the heaven and the earth."])
    >>> known_word_share(["In the beginnd God"], vocabulary)
    0.75
    """
    words = [word.lower() for text in generated for word in _WORD.findall(text)]
    if not words:
        return float("nan")
    return sum(word in vocabulary for word in words) / len(words)
