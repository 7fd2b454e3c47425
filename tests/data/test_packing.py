"""Packing several sequences into a row: nothing learned changes but the padding."""

import numpy as np
import pytest

from tfllm.data import pack_sequences


def test_packed_rows_hold_every_weighted_target_once_in_order():
    rng = np.random.RandomState(0)
    sequences, weights = [], []
    for _ in range(50):
        length = rng.randint(3, 12)
        sequences.append([1, *rng.randint(5, 50, size=length - 2).tolist(), 2])
        prompt = rng.randint(1, length - 1)
        weights.append([0.0] * prompt + [1.0] * (length - prompt))
    x, y, w = pack_sequences(sequences, weights, sequence_length=16, fill_id=0)
    assert x.shape == y.shape == w.shape and x.shape[1] == 16
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    learned = [int(token) for row, row_weight in zip(y, w) for token, weight in zip(row, row_weight) if weight]
    expected = [token for tokens, token_weights in zip(sequences, weights)
                for token, weight in zip(tokens[1:], token_weights[1:]) if weight]
    assert learned == expected
    assert len(x) <= 0.6 * len(sequences)  # about 7 tokens each: mostly two to a row of 17


def test_a_sequence_longer_than_a_row_keeps_its_end_and_bad_weights_are_named():
    x, y, w = pack_sequences([list(range(1, 21))], [[1.0] * 20], sequence_length=7, fill_id=0)
    assert x.tolist() == [list(range(13, 20))] and y.tolist() == [list(range(14, 21))]
    assert w.tolist() == [[1.0] * 7]  # the first kept token is not predicted; every one after it is
    with pytest.raises(ValueError, match="3 tokens has 2 weights"):
        pack_sequences([[1, 5, 2]], [[0.0, 1.0]], sequence_length=8, fill_id=0)
    for length in (0, -3):  # rows of no token, or NumPy's "negative dimensions are not allowed"
        with pytest.raises(ValueError, match=f"sequence_length={length} is invalid: expected a positive integer"):
            pack_sequences([[1, 5, 2]], [[0.0, 1.0, 1.0]], sequence_length=length, fill_id=0)


def test_an_empty_sequence_is_refused_by_its_index():
    # It gave a weight without a token, so every later weight of its row moved one token on (weight 1 on the fill).
    with pytest.raises(ValueError, match=r"sequences\[1\] is empty: expected a whole sequence, \[bos, ..., eos\]"):
        pack_sequences([[1, 5, 2], [], [1, 7, 8, 2]], [[0, 1, 1], [], [0, 1, 1, 1]], 7, 0)
