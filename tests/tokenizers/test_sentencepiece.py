import io
import os
import random
import subprocess
import sys

import pytest
import sentencepiece as spm
import tensorflow as tf
from hypothesis import given, settings, strategies as st
from sentencepiece import sentencepiece_model_pb2

from tests.tokenizers import common
from tfllm.tokenizers import SentencePieceTokenizer
from tfllm.tokenizers.sentencepiece import _pieces_of_at_most

WORDS = "the a cat dog sat ran on to river sea and children were happy singing dancing log mat".split()
_rng = random.Random(0)
CORPUS = [
    " ".join(_rng.choice(WORDS) for _ in range(_rng.randint(3, 12))).capitalize() + _rng.choice(".!?,;")
    for _ in range(300)
]
TEXTS = ["The cat sat on the mat.", "  two  spaces\tand 中文 😀", b"bad \xff byte", ""]
# Spaces (leading and repeated), U+2581, controls, CJK, emoji, combining marks: byte fallback spells them all.
HARD_PIECES = list("  \t\n\r\x00▁中文😀👍🏽e\u0301xyzZ.") + WORDS
TEXT = st.one_of(st.text(max_size=200), st.lists(st.sampled_from(HARD_PIECES), max_size=100).map("".join))


def expected_round_trip(text):
    """The documented normalization: U+2581 reads as a space, and leading spaces are dropped."""
    return text.replace("\u2581", " ").lstrip(" ")


@pytest.fixture(scope="module", params=["unigram", "bpe"])
def tokenizer(request):
    return SentencePieceTokenizer.train(CORPUS, vocab_size=400, model_type=request.param, verbose=False)


@pytest.mark.parametrize("check", common.INTERFACE_CHECKS, ids=lambda check: check.__name__)
def test_interface(tokenizer, check, tmp_path):
    check(tokenizer, TEXTS, tmp_path)


def test_specials_first_and_frequent_words_are_single_tokens(tokenizer):
    vocabulary = tokenizer.get_vocabulary()
    assert vocabulary[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert vocabulary[4:6] == ["<0x00>", "<0x01>"]  # byte fallback pieces follow
    assert tokenizer.unk_id == 3
    assert [tokenizer.id_to_token(i) for i in tokenizer.tokenize("the cat sat")] == ["▁the", "▁cat", "▁sat"]
    assert tokenizer.vocab_size <= 400


def test_bpe_fills_the_requested_vocab_size():
    assert SentencePieceTokenizer.train(CORPUS, vocab_size=330, model_type="bpe", verbose=False).vocab_size == 330


def test_golden_round_trip_normalization(tokenizer):
    texts = ["  lead and trail  ", "a\u2581b", "tab\tnew\nline", b"bad \xff byte", "Zebra 😀"]
    assert tokenizer.detokenize(tokenizer.tokenize(texts)).numpy().tolist() == [
        b"lead and trail  ",
        b"a b",
        b"tab\tnew\nline",
        "bad \ufffd byte".encode(),
        "Zebra 😀".encode(),
    ]
    assert tokenizer.unk_id not in tokenizer.tokenize("Zebra 😀").numpy().tolist()  # bytes, not <unk>


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=30))
def test_round_trip_of_training_words(tokenizer, words):
    text = " ".join(words)
    assert tokenizer.detokenize(tokenizer.tokenize(text)).numpy().decode("utf-8") == text


@settings(max_examples=40, deadline=None)
@given(text=TEXT)
def test_round_trip_of_any_text_up_to_documented_normalization(tokenizer, text):
    ids = tokenizer.tokenize(text)
    assert tokenizer.unk_id not in ids.numpy().tolist()
    assert tokenizer.detokenize(ids).numpy().decode("utf-8") == expected_round_trip(text)


def test_trains_from_a_dataset_like_from_a_list():
    dataset = tf.data.Dataset.from_tensor_slices(CORPUS)
    from_dataset = SentencePieceTokenizer.train(dataset, vocab_size=330, model_type="bpe", verbose=False)
    from_list = SentencePieceTokenizer.train(CORPUS, vocab_size=330, model_type="bpe", verbose=False)
    assert from_dataset.proto == from_list.proto


@settings(max_examples=50, deadline=None)
@given(text=st.lists(st.sampled_from(["ab", "\n", "é", "中文", "😀", "x" * 9]), max_size=30).map("".join),
       max_bytes=st.integers(4, 12))
def test_long_texts_are_cut_into_valid_pieces_for_the_trainer(text, max_bytes):
    pieces = _pieces_of_at_most(text.encode("utf-8"), max_bytes)
    assert "".join(pieces) == text
    assert all(len(piece.encode("utf-8")) <= max_bytes for piece in pieces)


def test_documents_longer_than_the_trainer_limit_still_count():
    documents = ["\n".join(CORPUS)] * 2  # two ~10 kB documents, each over a 4 kB limit
    tokenizer = SentencePieceTokenizer.train(  # without cutting them, SentencePiece would find no sentence at all
        documents, vocab_size=400, model_type="bpe", verbose=False, trainer_options={"max_sentence_length": 4096}
    )
    assert tokenizer.vocab_size == 400
    assert {"▁cat", "▁children", "▁dancing"} <= set(tokenizer.get_vocabulary())


def test_config_holds_the_model_as_base64(tokenizer):
    config = tokenizer.get_config()
    assert isinstance(config["proto"], str)
    assert SentencePieceTokenizer(config["proto"]).proto == tokenizer.proto


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"vocab_size": 4}, "vocab_size=4"),
        ({"vocab_size": 0}, "vocab_size=0"),
        ({"vocab_size": 100}, "vocab_size=100"),  # fewer than the 4 specials, 256 bytes and the characters
        ({"model_type": "wordpiece"}, "model_type='wordpiece'"),
        ({"texts": []}, "texts is empty"),
        ({"character_coverage": 0.0}, "character_coverage=0.0"),
        ({"trainer_options": {"pad_id": 5}}, "trainer_options sets \\['pad_id'\\]"),
    ],
)
def test_bad_training_input_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SentencePieceTokenizer.train(**{"texts": CORPUS, "vocab_size": 400, "verbose": False, **kwargs})


def test_bad_proto_raises():
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        SentencePieceTokenizer(b"garbage")
    with pytest.raises(ValueError, match="not base64"):
        SentencePieceTokenizer("not base64!")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=60, minloglevel=2,
                                   bos_id=-1)
    with pytest.raises(ValueError, match="proto has no bos piece"):
        SentencePieceTokenizer(model.getvalue())
    with pytest.raises(ValueError, match=r"special_tokens \['<x>'\] are not pieces"):
        SentencePieceTokenizer(SentencePieceTokenizer.train(CORPUS, 400, verbose=False).proto, special_tokens=["<x>"])


def test_a_model_made_elsewhere_keeps_its_own_ids():
    model = io.BytesIO()  # sentencepiece's default ids: unk 0, bos 1, eos 2, no pad
    spm.SentencePieceTrainer.train(sentence_iterator=iter(CORPUS), model_writer=model, vocab_size=60, minloglevel=2)
    tokenizer = SentencePieceTokenizer(model.getvalue())
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (None, 1, 2, 0)
    assert tokenizer.special_tokens == {"<s>": 1, "</s>": 2, "<unk>": 0}
    ids = tokenizer.tokenize("the cat").numpy().tolist()
    assert tokenizer.detokenize([1, *ids, 2]).numpy() == b"the cat"


def _without_normalization_rule(proto):
    """`proto` as tfllm's `train` made it before it wrote the identity rule (the runs of earlier versions)."""
    model = sentencepiece_model_pb2.ModelProto.FromString(proto)
    model.normalizer_spec.precompiled_charsmap = b""
    return model.SerializeToString()


@settings(max_examples=60, deadline=None)
@given(text=st.one_of(TEXT, st.lists(st.sampled_from([" ", "\u2581", "a", "\ufffd", "中"]), max_size=20).map("".join)))
def test_identity_rule_keeps_every_id_of_an_earlier_model(tokenizer, text):
    earlier = _without_normalization_rule(tokenizer.proto)
    assert sentencepiece_model_pb2.ModelProto.FromString(tokenizer.proto).normalizer_spec.precompiled_charsmap
    assert SentencePieceTokenizer(earlier).proto == tokenizer.proto  # an earlier run's model gets the rule on loading
    assert tokenizer.tokenize(text).numpy().tolist() == spm.SentencePieceProcessor(model_proto=earlier).encode(text)


def test_loading_and_tokenizing_print_nothing(tokenizer, tmp_path):
    # SentencePiece used to log "normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty" at every load and call.
    (tmp_path / "proto").write_bytes(_without_normalization_rule(tokenizer.proto))
    script = f"""
import os, sys
import tensorflow as tf
from tfllm.tokenizers import SentencePieceTokenizer
tf.config.list_physical_devices()  # TensorFlow's own start-up lines (CUDA probing) come before the marker
sys.stderr.flush()
os.write(2, b"--imported--\\n")
tokenizer = SentencePieceTokenizer(open({str(tmp_path / "proto")!r}, "rb").read())
ids = tokenizer.tokenize(["the cat sat", "a\\u2581b"])
print(tokenizer.detokenize(ids).numpy().tolist(), tokenizer.tokenize("the").numpy().tolist(), flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert done.stderr.split("--imported--\n", 1)[1] == ""
    assert done.stdout == f"[b'the cat sat', b'a b'] {tokenizer.tokenize('the').numpy().tolist()}\n"
