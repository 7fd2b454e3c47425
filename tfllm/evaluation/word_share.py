"""Does generated text read as the corpus does? The share of its words that the corpus uses."""

import re

from tfllm.utf8 import utf8_strings

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


def corpus_words(texts):
    """The set of lowercase words (letters, with an inner apostrophe) in `texts` (str or UTF-8 bytes).

    >>> sorted(corpus_words(["And God said,", b"Lord's day 7"]))
    ['and', 'day', 'god', "lord's", 'said']
    """
    words = set()
    for text in utf8_strings(texts):
        words.update(word.lower() for word in _WORD.findall(text))
    return words


def known_word_share(generated, vocabulary):
    """The share of the words of `generated` texts that are in `vocabulary` (a set from `corpus_words`).

    A crude but honest test of a small model's English: invented words ("beginnd", "Lorf") count against it,
    while the grammar is not judged. Texts with no words give NaN.

    Args:
        generated: a list of texts, each a `str` or UTF-8 `bytes` (as `corpus_words` reads them). One bare text is
            refused: wrap it as `[text]`.
        vocabulary: the set of words the corpus uses.

    >>> vocabulary = corpus_words(["In the beginning God created the heaven and the earth."])
    >>> known_word_share(["In the beginnd God", b"the earth"], vocabulary)
    0.8333333333333334
    """
    if isinstance(generated, (str, bytes)):
        kind = "string" if isinstance(generated, str) else "bytes string"
        raise ValueError(f"generated is one {kind}: expected a list of texts (wrap a single one as [generated]).")
    words = [word.lower() for text in utf8_strings(generated) for word in _WORD.findall(text)]
    if not words:
        return float("nan")
    return sum(word in vocabulary for word in words) / len(words)
