import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from tests.tokenizers import common
from tfllm.tokenizers import ByteTokenizer

TEXTS = ["hello", "é中😀", b"\xff\x00raw", ""]
# Emoji (with skin tones and ZWJ sequences), CJK, combining marks, NUL and other controls, plain ASCII.
HARD_CHARACTERS = list("😀👍🏽👩‍👩‍👧中文字日本語한국어e\u0301\u0308\u200d\x00\x07\t\n\r aZ\ufffd\U0010ffff")
TEXT = st.one_of(
    st.text(max_size=200),  # any code point but surrogates
    st.text(alphabet=st.sampled_from(HARD_CHARACTERS), max_size=3000),
)


@pytest.fixture(scope="module")
def tokenizer():
    return ByteTokenizer()


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface(tokenizer, check, tmp_path):
    check(tokenizer, TEXTS, tmp_path)


def test_golden_ids(tokenizer):
    assert tokenizer.vocab_size == 259
    assert tokenizer.unk_id is None
    assert tokenizer.tokenize("Hi é\x00").numpy().tolist() == [72 + 3, 105 + 3, 32 + 3, 0xC3 + 3, 0xA9 + 3, 0 + 3]
    assert tokenizer.get_vocabulary()[:4] == ["<pad>", "<bos>", "<eos>", "<0x00>"]
    assert tokenizer.id_to_token(258) == "<0xFF>"


@settings(max_examples=60, deadline=None)
@given(text=TEXT)
def test_round_trip_is_utf8_exact(tokenizer, text):
    ids = tokenizer.tokenize(text)
    assert ids.shape == (len(text.encode("utf-8")),)
    assert tokenizer.detokenize(ids).numpy() == text.encode("utf-8")


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=300))
def test_raw_bytes_kept_exactly(tokenizer, data):
    assert tokenizer.detokenize(tokenizer.tokenize(data)).numpy() == data


@settings(max_examples=20, deadline=None)
@given(texts=st.lists(TEXT, min_size=1, max_size=5))
def test_batch_round_trip(tokenizer, texts):
    ids = tokenizer.tokenize(texts)
    assert ids.row_lengths().numpy().tolist() == [len(text.encode("utf-8")) for text in texts]
    assert tokenizer.detokenize(ids).numpy().tolist() == [text.encode("utf-8") for text in texts]


def test_out_of_range_ids_raise(tokenizer):
    # tfllm's line first, then TensorFlow's account of the check, which names the id.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"^token id >= vocab_size\nCondition x < y did not hold"
                                                             r"\.\nFirst 1 elements of x:\n\[259\]\n"):
        tokenizer.detokenize([259])
    with pytest.raises(ValueError, match="token_id=259"):
        tokenizer.id_to_token(259)
    # int64 ids beyond int32 were wrapped into the vocabulary by the cast: 2**32 + 100 came back as "a" (id 100).
    for ids in (tf.constant([[2**32 + 100]], tf.int64), [2**32 + 100], np.array([-2**32 + 100], np.int64)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="token id >= vocab_size|negative token id"):
            tokenizer.detokenize(ids)
