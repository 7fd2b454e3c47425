"""The shared split rule: a stable SHA-256 bucket of a key, 90/5/5."""

import collections

import pytest

from tfllm.data.splits import SPLITS, check_split, split_of


def test_golden_keys():
    assert [split_of(key) for key in ("Genesis 1", "Exodus 4", "Exodus 20")] == ["train", "validation", "test"]


def test_str_is_hashed_as_utf8():
    assert split_of("caf\u00e9 42") == split_of("caf\u00e9 42".encode("utf-8"))


def test_proportions_are_about_90_5_5():
    counts = collections.Counter(split_of(f"document {index}") for index in range(20000))
    assert set(counts) == set(SPLITS)
    assert abs(counts["train"] / 20000 - 0.90) < 0.01
    assert abs(counts["validation"] / 20000 - 0.05) < 0.01
    assert abs(counts["test"] / 20000 - 0.05) < 0.01


def test_check_split():
    assert check_split(None) is None and check_split("test") == "test"
    with pytest.raises(ValueError, match="split='dev' is not one of None .*'train', 'validation', 'test'"):
        check_split("dev")
