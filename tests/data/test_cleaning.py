"""`clean_text`: golden input/output pairs for every step, the same in eager, tf.function and Dataset.map."""

import hypothesis
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import strategies as st

from tfllm.data.cleaning import clean_text

OFF = dict(normalization=None, remove_control_characters=False, fold_whitespace=False, lowercase=False)

GOLDEN = [
    # (options that differ from OFF, input, expected output)
    (dict(normalization="NFC"), "e\u0301 A\u030a", "\u00e9 \u00c5"),
    (dict(normalization="NFC"), "\ufb01 \u2460", "\ufb01 \u2460"),  # NFC keeps compatibility characters
    (dict(normalization="NFKC"), "\ufb01ne \u2460 x\u00b2 \uff21 e\u0301", "fine 1 x2 A \u00e9"),
    (dict(normalization="NFKC"), "a\u00a0b\u3000c", "a b c"),
    (dict(normalization="NFD"), "\u00e9", "e\u0301"),
    (dict(normalization="NFKD"), "\ufb01\u00e9", "fie\u0301"),
    (dict(), "e\u0301\x07", "e\u0301\x07"),  # everything off: unchanged
    (dict(remove_control_characters=True), "a\x00b\x07c\x1bd\x7fe\x85f\x9fg", "abcdefg"),
    (dict(remove_control_characters=True), "tab\tnew\nline\r\nold mac\rend", "tab\tnew\nline\nold mac\nend"),
    (dict(remove_control_characters=True), "zero\u200bwidth\ufeffbom\u00adsoft", "zero\u200bwidth\ufeffbom\u00adsoft"),
    (dict(fold_whitespace=True), "  a \t\t b\u00a0\u2003c  \n  d  ", "a b c\nd"),
    (dict(fold_whitespace=True), "\n\n\npara one\n\n\n\n\npara two\n \n \nthree\n\n", "para one\n\npara two\n\nthree"),
    (dict(fold_whitespace=True), "line\r\nnext\x0bx\x0cy", "line\nnext x y"),
    (dict(lowercase=True), "\u00c0\u00c9 STRASSE \u0130 Hello", "\u00e0\u00e9 strasse i\u0307 hello"),
    (dict(normalization="NFKC", lowercase=True), "\uff28\uff29", "hi"),
]


def _clean(text, **options):
    return clean_text(text, **{**OFF, **options}).numpy().decode("utf-8")


@pytest.mark.parametrize("options, text, expected", GOLDEN)
def test_golden_pairs(options, text, expected):
    assert _clean(text, **options) == expected


def test_defaults_are_nfc_control_characters_out_whitespace_folded_case_kept():
    text = "  Caf" + "e\u0301\x00 \t and \ufb01\r\n\r\n\r\n\r\nEnd  "
    assert clean_text(text).numpy().decode() == "Caf\u00e9 and \ufb01\n\nEnd"


def test_invalid_utf8_becomes_replacement_characters_always():
    raw = b"caf\xe9 \xff\xfe ok \xc3"
    assert clean_text(raw, **OFF).numpy() == "caf\ufffd \ufffd\ufffd ok \ufffd".encode()
    assert clean_text(raw).numpy() == "caf\ufffd \ufffd\ufffd ok \ufffd".encode()


def test_keeps_the_shape_of_scalars_and_batches():
    assert clean_text("a  b").shape == ()
    batch = clean_text(tf.constant([["a  b", " c"], ["D", "e\u0301"]]), lowercase=True)
    assert batch.shape == (2, 2)
    np.testing.assert_array_equal(batch.numpy(), [[b"a b", b"c"], [b"d", "\u00e9".encode()]])


def test_graph_equals_eager():
    texts = tf.constant([text for _, text, _ in GOLDEN] + ["\ufb01  \x07X\r\n\r\n\r\n"])
    option_sets = [dict(), dict(normalization="NFKC", lowercase=True), dict(normalization=None, fold_whitespace=False)]
    for options in option_sets:
        eager = clean_text(texts, **options)
        graph = tf.function(lambda t: clean_text(t, **options))(texts)
        np.testing.assert_array_equal(graph.numpy(), eager.numpy())


def test_inside_dataset_map():
    texts = ["  A\u030a  b ", "\uff21\x07\n\n\n\nz"]
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(lambda t: clean_text(t, normalization="NFKC"))
    assert list(dataset.as_numpy_iterator()) == ["\u00c5 b".encode(), b"A\n\nz"]
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(2).map(clean_text)
    (batch,) = list(batched.as_numpy_iterator())
    np.testing.assert_array_equal(batch, ["\u00c5 b".encode(), "\uff21\n\nz".encode()])


def test_unknown_normalization():
    with pytest.raises(ValueError, match="normalization='NFX' is not one of None, 'NFC', 'NFKC', 'NFD', 'NFKD'"):
        clean_text("a", normalization="NFX")


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
    raw=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda text: text.encode("utf-8"))),
    normalization=st.sampled_from([None, "NFC", "NFKC", "NFD", "NFKD"]),
)
def test_output_is_valid_utf8_and_cleaning_is_idempotent(raw, normalization):
    once = clean_text(raw, normalization=normalization)
    once.numpy().decode("utf-8")  # raises if not valid UTF-8
    assert clean_text(once, normalization=normalization).numpy() == once.numpy()
