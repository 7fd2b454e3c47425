"""known_word_share: the share of generated words that the corpus uses."""

import math

import pytest

from tfllm.evaluation import corpus_words, known_word_share


def test_words_are_lowercase_letters_with_inner_apostrophes():
    assert corpus_words(["And God said, Let there be light: and there was light.", b"Lord's day 7"]) == {
        "and", "god", "said", "let", "there", "be", "light", "was", "lord's", "day"
    }


def test_invented_words_count_against_the_share_and_no_words_give_nan():
    vocabulary = corpus_words(["the heaven and the earth"])
    assert known_word_share(["The heaven and the eartth", "and"], vocabulary) == 5 / 6
    assert math.isnan(known_word_share(["1:1 --", ""], vocabulary))


def test_generated_texts_may_be_utf8_bytes_but_not_one_bare_text():
    vocabulary = corpus_words(["the cat sat"])
    assert known_word_share([b"the cat", "the dgo"], vocabulary) == 3 / 4
    assert known_word_share(["caf\u00e9".encode()], corpus_words(["caf\u00e9"])) == 1.0  # decoded, not a byte string
    for text, kind in (("the cat", "string"), (b"the cat", "bytes string")):
        with pytest.raises(ValueError, match=rf"^generated is one {kind}: expected a list of texts \(wrap a "
                                             r"single one as \[generated\]\)\.$"):
            known_word_share(text, vocabulary)
