"""A small offline question/answer set for the fine-tuning demos, from the English chatterbot-corpus.

The PyPI package `chatterbot-corpus` (BSD 3-Clause License, by Gunther Cox and contributors) ships short dialogs
as YAML; each turn of a dialog answers the one before it, so every consecutive pair of turns is a question and an
answer. About 2,300 pairs on general topics (science, history, greetings, computers, ...), lowercase and informal.
"""

import functools
import importlib.resources

import yaml

from tfllm.data.splits import check_split, split_of
from tfllm.data.templates import PromptTemplate

# How the fine-tuning recipe (`tfllm finetune --task sft --data qa`) asks, saved with the model it trains.
QUESTION_ANSWER_TEMPLATE = PromptTemplate("Q: {question}\nA: ", "{answer}")


def question_answer_records(split=None):
    """The English chatterbot-corpus dialogs as `{"question", "answer"}` dicts, for `QUESTION_ANSWER_TEMPLATE`.

    The split is tfllm's split rule (`split_of`) applied to the question's text, so a question asked in several
    dialogs never lands on both sides, and every machine gets the same split.

    >>> record = question_answer_records("train")[0]
    >>> sorted(record), QUESTION_ANSWER_TEMPLATE.format_prompt(record).startswith("Q: ")
    (['answer', 'question'], True)
    """
    check_split(split)
    return [{"question": question, "answer": answer} for question, answer in _english_pairs()
            if split is None or split_of(question) == split]


def question_answer_pairs(split=None, prompt_format=QUESTION_ANSWER_TEMPLATE.prompt):
    """The English chatterbot-corpus dialogs as `{"prompt", "completion"}` dicts, ready for `sft_dataset`.

    The split is tfllm's split rule (`split_of`) applied to the question's text, so a question asked in several
    dialogs never lands on both sides, and every machine gets the same split.

    Args:
        split: None (all pairs), "train", "validation" or "test".
        prompt_format: How a question becomes a prompt; `{question}` is replaced by it.

    Example:

    >>> pairs = question_answer_pairs("train")
    >>> sorted(pairs[0])
    ['completion', 'prompt']
    >>> len(pairs) > 2000
    True
    """
    return [{"prompt": prompt_format.format(question=record["question"]), "completion": record["answer"]}
            for record in question_answer_records(split)]


@functools.lru_cache(maxsize=1)
def _english_pairs():
    english = importlib.resources.files("chatterbot_corpus") / "data" / "english"
    pairs = []
    for path in sorted(english.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yml"):
            continue
        for dialog in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
            if not isinstance(dialog, list):
                continue  # a few entries are a bare string, not a dialog
            turns = [str(turn).strip() for turn in dialog]
            pairs.extend((question, answer) for question, answer in zip(turns, turns[1:]) if question and answer)
    return tuple(pairs)

