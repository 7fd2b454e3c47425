import warnings

import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.tokenizers import common
from tfllm.tokenizers import CharTokenizer

CORPUS = [
    "In the beginning God created the heaven and the earth.",
    "naïve café, 中文字 and e\u0301 (combining) 😀👍🏽",
    "tabs\tnewlines\nand a NUL \x00 too",
]
TEXTS = ["the heaven 😀", "中文 and \x00", "unknown: Zß", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.train(CORPUS, verbose=False)


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface(tokenizer, check, tmp_path):
    check(tokenizer, TEXTS, tmp_path)


def test_golden_vocabulary_most_frequent_first_ties_by_code_point():
    tokenizer = CharTokenizer.train(["abracadabra", b"cab"], verbose=False)
    # a: 6, b: 3, c: 2, r: 2 (tie: 'c' < 'r'), d: 1
    assert tokenizer.get_vocabulary() == ["<pad>", "<bos>", "<eos>", "<unk>", "a", "b", "c", "r", "d"]
    assert tokenizer.vocab_size == 9
    assert tokenizer.tokenize("bard!").numpy().tolist() == [5, 4, 7, 8, 3]
    reordered = CharTokenizer.train(["cab", "abracadabra"], verbose=False)
    assert reordered.get_vocabulary() == tokenizer.get_vocabulary()


def test_max_vocab_size_and_min_frequency_keep_the_most_frequent():
    assert CharTokenizer.train(["abracadabra"], max_vocab_size=6, verbose=False).vocabulary == ("a", "b")
    assert CharTokenizer.train(["abracadabra"], min_frequency=2, verbose=False).vocabulary == ("a", "b", "r")


def test_trains_from_a_dataset_like_from_a_list():
    from_list = CharTokenizer.train(CORPUS, verbose=False).vocabulary
    scalars = tf.data.Dataset.from_tensor_slices(CORPUS)
    assert CharTokenizer.train(scalars, verbose=False).vocabulary == from_list
    assert CharTokenizer.train(scalars.batch(2), verbose=False).vocabulary == from_list
    assert CharTokenizer.train(iter(CORPUS), verbose=False).vocabulary == from_list  # any iterable, even unsized


def test_texts_that_are_not_strings_raise_type_error():
    with pytest.raises(TypeError, match="texts holds a int"):
        CharTokenizer.train(["ok", 3], verbose=False)


@settings(max_examples=40, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(sorted(set("".join(CORPUS)))), max_size=500))
def test_round_trip_in_vocabulary(tokenizer, text):
    ids = tokenizer.tokenize(text)
    assert ids.shape == (len(text),)
    assert tokenizer.unk_id not in ids.numpy().tolist()
    assert tokenizer.detokenize(ids).numpy().decode("utf-8") == text


def test_unknown_characters_become_unk_and_replacement_character(tokenizer):
    ids = tokenizer.tokenize(["Zaß", b"a\xffa"]).to_list()
    a = tokenizer.get_vocabulary().index("a")
    assert ids == [[3, a, 3], [a, 3, a]]  # U+FFFD is not in the vocabulary: the bad byte is unknown too
    texts = tokenizer.detokenize(tf.ragged.constant(ids)).numpy().tolist()
    assert texts == ["\ufffda\ufffd".encode(), "a\ufffda".encode()]


def test_invalid_utf8_is_replaced_with_a_warning_at_train_time():
    with pytest.warns(UnicodeWarning, match="2 of 3 training texts are not valid UTF-8"):
        tokenizer = CharTokenizer.train([b"ok", b"bad\xff", "lone \ud800 surrogate"], verbose=False)
    assert "\ufffd" in tokenizer.vocabulary
    ids = tokenizer.tokenize(b"\xfe")  # graph side: replaced, no warning
    assert ids.numpy().tolist() == [tokenizer.get_vocabulary().index("\ufffd")]


def test_valid_corpus_trains_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CharTokenizer.train(CORPUS, verbose=False)


def test_verbose_training_shows_progress(capsys):
    CharTokenizer.train(CORPUS, verbose=True)
    assert "3/3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"texts": []}, "texts is empty"),
        ({"texts": ["", ""]}, "texts is empty"),
        ({"texts": tf.data.Dataset.from_tensor_slices(tf.constant([], tf.string))}, "texts is empty"),
        ({"texts": "abc"}, "single string"),
        ({"texts": tf.data.Dataset.range(3)}, "tf.string"),
        ({"texts": ["abc"], "max_vocab_size": 4}, "max_vocab_size=4"),
        ({"texts": ["abc"], "max_vocab_size": -1}, "max_vocab_size=-1"),
        ({"texts": ["abc"], "min_frequency": 0}, "min_frequency=0"),
        ({"texts": ["abc"], "min_frequency": 2}, "min_frequency=2"),
        ({"texts": ["abc"], "max_vocab_size": 6, "vocab_size": 6}, "they name one setting, give one"),
    ],
)
def test_bad_training_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer.train(verbose=False, **kwargs)


@pytest.mark.parametrize(
    "vocabulary, message", [([], "empty"), (["ab"], "'ab'"), (["a", "a"], "repeats"), (["\ud800"], "surrogate")]
)
def test_bad_vocabulary_raises(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        CharTokenizer(vocabulary)


def test_a_special_token_that_is_a_character_of_the_vocabulary_is_refused():
    # It was taken: "a" had two ids, and the second could never be reached.
    with pytest.raises(ValueError, match=r"special_tokens \['a'\] are characters of the vocabulary too"):
        CharTokenizer(["a", "b"], special_tokens=["a"])
