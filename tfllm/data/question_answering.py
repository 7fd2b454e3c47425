"""A small offline question/answer set for the fine-tuning demos, from the English chatterbot-corpus.

The PyPI package `chatterbot-corpus` (BSD 3-Clause License, by Gunther Cox and contributors) ships short dialogs
as YAML; each turn of a dialog answers the one before it, so every consecutive pair of turns is a question and an
answer. About 2,300 pairs on general topics (science, history, greetings, computers, ...), lowercase and informal.
"""

import functools
import importlib.resources

import yaml

from tfllm.data.splits import check_split, split_of


def question_answer_pairs(split=None, prompt_format="Q: {question}\nA: "):
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
    check_split(split)
    return [
        {"prompt": prompt_format.format(question=question), "completion": answer}
        for question, answer in _english_pairs()
        if split is None or split_of(question) == split
    ]


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

