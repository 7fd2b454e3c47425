"""The offline question/answer set: size, format, a split that is stable and keeps questions on one side."""

import pytest

from tfllm.data.question_answering import question_answer_pairs


def test_pairs_are_formatted_prompts_and_answers():
    pairs = question_answer_pairs()
    assert len(pairs) == 2306
    assert all(p["prompt"].startswith("Q: ") and p["prompt"].endswith("\nA: ") and p["completion"] for p in pairs)
    custom = question_answer_pairs(prompt_format="Question: {question} Answer:")[0]["prompt"]
    assert custom.startswith("Question: ") and custom.endswith(" Answer:")


def test_splits_partition_the_pairs_and_never_share_a_question():
    splits = {name: question_answer_pairs(name) for name in ("train", "validation", "test")}
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [2183, 79, 44]
    questions = {name: {p["prompt"] for p in pairs} for name, pairs in splits.items()}
    assert not questions["train"] & questions["test"]
    assert not questions["train"] & questions["validation"]
    assert splits["test"] == question_answer_pairs("test")


def test_unknown_split_is_named():
    with pytest.raises(ValueError, match=r"split='dev' is not one of"):
        question_answer_pairs("dev")
