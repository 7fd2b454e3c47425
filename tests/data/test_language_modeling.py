"""lm_dataset: documents joined with eos, cut into windows, shifted by one; seeded; distributable."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.data.language_modeling import lm_dataset, token_windows
from tfllm.tokenizers import BytePairTokenizer, ByteTokenizer
from tfllm.tokenizers.byte_level import byte_to_code_point

TOKENIZER = ByteTokenizer()


def _stream(texts):
    """The token stream lm_dataset cuts windows from: bos (1), each document's bytes + 3, then eos (2)."""
    return [token for text in texts for token in [1] + [byte + 3 for byte in text.encode()] + [2]]


def _batches(dataset):
    return [tuple(np.asarray(part) for part in batch) for batch in dataset]


def test_windows_follow_the_eos_separated_stream_exactly():
    texts = ["the first document", "a second one", "and a third, longer than the others"]
    stream = _stream(texts)
    batches = _batches(lm_dataset(texts, TOKENIZER, sequence_length=8, batch_size=2, shuffle=False))
    windows = [np.concatenate([x, y[:, -1:]], axis=1) for x, y in batches]  # (B, T + 1) each
    flat = np.concatenate(windows).ravel().tolist()
    assert flat == stream[: len(flat)]
    assert len(stream) - len(flat) < 2 * 9  # only the tail that fills no whole batch of windows is dropped
    for x, y in batches:
        assert x.shape == y.shape == (2, 8) and x.dtype == y.dtype == np.int32
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])


def test_documents_are_batched_for_the_tokenizer_without_changing_the_stream():
    texts = [f"document number {i}" for i in range(50)]
    one_at_a_time = [np.asarray(w) for w in token_windows(tf.data.Dataset.from_tensor_slices(texts), TOKENIZER, 7, 1)]
    many_at_a_time = [np.asarray(w) for w in token_windows(tf.data.Dataset.from_tensor_slices(texts), TOKENIZER, 7, 16)]
    np.testing.assert_array_equal(np.stack(one_at_a_time), np.stack(many_at_a_time))
    assert len(one_at_a_time) == len(_stream(texts)) // 7


def test_shuffling_is_seeded_and_changes_every_epoch():
    texts = [f"text {i} " * 3 for i in range(40)]

    def first_epochs(seed):
        dataset = lm_dataset(texts, TOKENIZER, sequence_length=6, batch_size=4, seed=seed)
        return [np.concatenate([x for x, _ in _batches(dataset)]) for _ in range(2)]

    epoch_1, epoch_2 = first_epochs(seed=7)
    again_1, again_2 = first_epochs(seed=7)
    np.testing.assert_array_equal(epoch_1, again_1)
    np.testing.assert_array_equal(epoch_2, again_2)
    assert not np.array_equal(epoch_1, epoch_2)
    ordered = np.concatenate([x for x, _ in _batches(lm_dataset(texts, TOKENIZER, 6, 4, shuffle=False))])
    assert not np.array_equal(epoch_1, ordered)
    # Documents are shuffled before they are cut, so the windows differ, but not their number.
    assert epoch_1.shape == ordered.shape


def test_accepts_a_dataset_of_strings_and_rejects_other_elements():
    dataset = tf.data.Dataset.from_tensor_slices(["abcdefghij", "klmnopqrst"])
    x, y = next(iter(lm_dataset(dataset, TOKENIZER, sequence_length=4, batch_size=1, shuffle=False)))
    assert TOKENIZER.detokenize(x).numpy().tolist() == [b"abc"]  # <bos> a b c
    with pytest.raises(ValueError, match="scalar tf.string"):
        lm_dataset(tf.data.Dataset.range(3), TOKENIZER, 4, 1)


def _byte_pair_without_end_of_text():
    """A byte-level BPE tokenizer of one merge whose vocabulary has no <|endoftext|>: no bos, no eos."""
    symbols = [chr(code_point) for code_point in byte_to_code_point()]
    vocabulary = {symbol: index for index, symbol in enumerate(symbols)} | {"ab": 256}
    return BytePairTokenizer(vocabulary, ["a b"])


NO_BOS = _byte_pair_without_end_of_text()


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"sequence_length": 0}, r"sequence_length=0 is invalid"),
        ({"batch_size": -2}, r"batch_size=-2 is invalid"),
        ({"texts": []}, r"texts is empty"),
        ({"texts": ["short"], "sequence_length": 64}, r"shorter than one window: .* sequence_length \+ 1 = 65"),
        # One window, but a batch of 2 with drop_remainder: the dataset was empty, without a word.
        ({"texts": ["abc"], "sequence_length": 4}, r"the corpus makes 1 window of sequence_length \+ 1 = 5 tokens, "
                                                   r"fewer than one batch of batch_size=2"),
        # Once TensorFlow's "Batch size must be greater than zero", or an error only when the data was first read.
        ({"documents_per_map": 0}, r"documents_per_map=0 is invalid: expected a positive integer"),
        ({"shuffle_buffer_size": 0}, r"shuffle_buffer_size=0 is invalid: expected a positive integer"),
        # Once "None values not supported", from deep inside.
        ({"tokenizer": NO_BOS}, r"lm_dataset starts each text with bos and ends it with eos, and this "
                                r"BytePairTokenizer has no bos and no eos token"),
    ],
)
def test_bad_input_is_named_before_any_batch_is_made(arguments, message):
    call = {"texts": ["some text " * 20], "tokenizer": TOKENIZER, "sequence_length": 8, "batch_size": 2}
    call.update(arguments)
    with pytest.raises(ValueError, match=message):
        lm_dataset(**call)


def test_a_corpus_shorter_than_a_batch_gives_its_windows_without_drop_remainder():
    batches = _batches(lm_dataset(["abc"], TOKENIZER, sequence_length=4, batch_size=2, drop_remainder=False))
    assert [tuple(x.shape) for x, _ in batches] == [(1, 4)]


def test_global_batches_are_split_among_replicas():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    texts = [f"line {i} of the corpus" for i in range(30)]
    dataset = lm_dataset(texts, TOKENIZER, sequence_length=5, batch_size=4, shuffle=False)
    expected = _batches(dataset)
    distributed = strategy.experimental_distribute_dataset(dataset)
    for (x, y), (want_x, want_y) in zip(distributed, expected):
        parts = strategy.experimental_local_results(x)
        assert [tuple(part.shape) for part in parts] == [(2, 5), (2, 5)]
        np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in parts]), want_x)
        np.testing.assert_array_equal(np.concatenate([np.asarray(p) for p in strategy.experimental_local_results(y)]), want_y)
