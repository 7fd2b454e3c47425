import re

import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.tokenizers import common
from tfllm.tokenizers import WordPieceTokenizer
from tfllm.tokenizers.wordpiece import SPECIAL_TOKENS, _fit_to_size

CORPUS = [
    "The cat sat on the mat, and the dog sat on the log.",
    "The cats and the dogs ran to the river; the river ran to the sea!",
    "Singing, dancing and running: the children were happy.",
    "中文 text stays as single characters.",
] * 10
WORDS = sorted(set(re.findall(r"[A-Za-z]+", " ".join(CORPUS))))
LETTERS = sorted(set("".join(WORDS)))
TEXTS = ["The cat sat.", "the dogs ran to the sea!", "Zebra 中文", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer.train(CORPUS, vocab_size=120, verbose=False)


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface(tokenizer, check, tmp_path):
    check(tokenizer, TEXTS, tmp_path)


def test_specials_first_and_frequent_words_are_single_tokens(tokenizer):
    vocabulary = tokenizer.get_vocabulary()
    assert vocabulary[:4] == ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]
    assert tokenizer.unk_id == 3
    the, cat, comma = vocabulary.index("the"), vocabulary.index("cat"), vocabulary.index(",")
    assert tokenizer.tokenize("the cat, the").numpy().tolist() == [the, cat, comma, the]
    assert vocabulary.index("The") != the  # case is preserved
    assert tokenizer.vocab_size == 88 <= 120  # this corpus has no more pieces worth a token


def test_golden_round_trip_normalization(tokenizer):
    texts = ["  The cat,sat\ton\n the\r\nmat!\u3000\xa0", "中文", "Zebra cat", "cat\x07s"]
    assert tokenizer.detokenize(tokenizer.tokenize(texts)).numpy().tolist() == [
        b"The cat , sat on the mat !",  # whitespace runs -> one space, punctuation spaced, ends stripped
        "中 文".encode(),  # CJK ideographs are words of their own
        b"[UNK] cat",  # 'Z' is not in the corpus
        b"[UNK]",  # control characters are kept by the splitter but never learned
    ]
    assert tokenizer.tokenize("cathat").numpy().tolist() != [tokenizer.unk_id]  # spelled with ## pieces


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=30))
def test_round_trip_of_training_words(tokenizer, words):
    text = " ".join(words)
    ids = tokenizer.tokenize(text)
    assert tokenizer.unk_id not in ids.numpy().tolist()
    assert tokenizer.detokenize(ids).numpy().decode("utf-8") == text


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.text(alphabet=st.sampled_from(LETTERS), min_size=1, max_size=20), min_size=1, max_size=10))
def test_round_trip_of_new_words_from_known_letters(tokenizer, words):
    text = " ".join(words)
    assert tokenizer.detokenize(tokenizer.tokenize(text)).numpy().decode("utf-8") == text


@pytest.mark.parametrize("vocab_size", [50, 80])
def test_vocab_size_is_honoured_and_every_kept_character_stays_spellable(vocab_size):
    tokenizer = WordPieceTokenizer.train(CORPUS, vocab_size=vocab_size, verbose=False)
    vocabulary = tokenizer.get_vocabulary()
    assert tokenizer.vocab_size == len(vocabulary) == vocab_size
    singles = [token for token in vocabulary[4:] if len(token) == 1]
    assert all("##" + char in vocabulary for char in singles)
    assert len(singles) <= (vocab_size - 4) // 2


def test_fit_to_size_drops_the_rarest_pieces_but_no_character():
    learned = ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "b", "ab", "ba", "aba", "##a", "##b", "##ab"]
    assert _fit_to_size(learned, 10, SPECIAL_TOKENS) == ["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "b", "ab", "ba", "##a", "##b"]
    assert _fit_to_size(learned, 20, SPECIAL_TOKENS) == learned


def test_trains_from_a_dataset_like_from_a_list(tokenizer):
    dataset = tf.data.Dataset.from_tensor_slices(CORPUS)
    assert WordPieceTokenizer.train(dataset, vocab_size=120, verbose=False).vocabulary == tokenizer.vocabulary


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 5}, "vocab_size=5"),
        ({"vocab_size": 0}, "vocab_size=0"),
        ({"vocab_size": -100}, "vocab_size=-100"),
        ({"vocab_size": "100"}, "vocab_size='100'"),
        ({"vocab_size": 100, "texts": []}, "texts is empty"),
        ({"vocab_size": 100, "texts": [" \n", "\t"]}, "texts holds no words"),
        ({"vocab_size": 100, "min_frequency": 0}, "min_frequency=0"),
    ],
)
def test_bad_training_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WordPieceTokenizer.train(**{"texts": CORPUS, "verbose": False, **kwargs})


@pytest.mark.parametrize(
    "vocabulary, message",
    [(["a", "b"], "expected \\['\\[PAD\\]'"), (["[PAD]", "[BOS]", "[EOS]", "[UNK]", "a", "a"], "repeats"),
     (["[PAD]", "[BOS]", "[EOS]", "[UNK]", "##"], "'##'")],
)
def test_bad_vocabulary_raises(vocabulary, message):
    with pytest.raises(ValueError, match=message):
        WordPieceTokenizer(vocabulary)
