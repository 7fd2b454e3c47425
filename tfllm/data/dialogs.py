"""Dialogs for chat and question answering, in English and Simplified Chinese: chatterbot-corpus or the user's files.

A dialog is a dict `{"messages": [{"role": ..., "content": ...}, ...], "language": "en" or "zh"}` whose messages
alternate `"user"` and `"assistant"`, starting with a user turn, after an optional first `"system"` message.

The built-in corpus is the PyPI package `chatterbot-corpus` (BSD 3-Clause License, by Gunther Cox and contributors):
short conversations on general topics, 2,025 in English and 467 in Simplified Chinese. Each conversation is one
dialog, kept whole however many turns it has; its turns alternate user and assistant, starting with the user.

Every source follows one split rule: dialogs that share a user turn, directly or through a chain of such dialogs, form
one group, and the group takes the split of its smallest first user turn (`tfllm.data.splits.linked_splits`). So no
question is on both sides of a split, and every machine gets the same split.
"""

import csv
import functools
import importlib.resources
import io
import os

import yaml

from tfllm.data.files import is_unicode_text, jsonl_objects, names_a_path, read_utf8_text
from tfllm.data.languages import detect_language
from tfllm.data.parallel import LANGUAGES
from tfllm.data.splits import check_split, linked_splits

DIALOG_CORPUS_NAMES = ("chatterbot",)
ROLES = ("system", "user", "assistant")
DIALOG_SUFFIXES = (".jsonl", ".csv")
# The two fields of a question/answer pair, in the names each format uses for them.
QUESTION_ANSWER_FIELDS = (("question", "answer"), ("prompt", "completion"))

_CHATTERBOT_FOLDERS = {"en": "english", "zh": "chinese"}


def load_dialogs(name_or_path="chatterbot", languages=LANGUAGES, split=None):
    """Dialogs as a list of `{"messages": [...], "language": ...}` dicts, in the order of the source.

    Message contents are stripped of surrounding whitespace and otherwise kept as they are (no change to the
    script, punctuation or case). Each call returns new lists and dicts: changing them changes nothing else.

    Args:
        name_or_path: A corpus name or the path of the user's dialogs.
            - `"chatterbot"` (the default): the chatterbot-corpus conversations, folder `english` for `"en"` (2,025)
              and `chinese` for `"zh"` (467, Simplified), each file's conversations in order, files by name.
            - A `.jsonl` file, one JSON object a line: `{"messages": [{"role", "content"}, ...]}` (the common chat
              format, with an optional `"language"`), or a question/answer pair `{"question", "answer"}` (or
              `{"prompt", "completion"}`), which becomes a dialog of one user and one assistant turn.
            - A `.csv` file of question/answer pairs: a header row with `question` and `answer` (or `prompt` and
              `completion`) columns and an optional `language` column.
            A file's dialog without a `"language"` is that of its user turns (`tfllm.data.languages.detect_language`:
            mostly Chinese ideographs or mostly words of Latin letters).
        languages: The languages to keep, a non-empty subset of `("en", "zh")` (or one of them as a string); the
            dialogs come in the order of the source, and for `"chatterbot"` language after language in this order.
        split: None for everything, or `"train"`, `"validation"` or `"test"`: about 90/5/5 by the hash of each
            dialog's first user turn, dialogs that share a user turn kept together (see the module docstring).

    Returns:
        A non-empty list of dialogs.

    Raises:
        ValueError: an unknown corpus name, split or language, an unsupported suffix, an empty source or selection,
            and, naming the file and line: bad JSON or UTF-8, an unknown role, an empty or non-string content, turns
            that do not alternate user/assistant (user first, after an optional system message) or hold no
            assistant turn, a missing field or column, a `"language"` other than `"en"` and `"zh"`.
        FileNotFoundError: a path that does not exist.

    >>> dialogs = load_dialogs()
    >>> len(dialogs), len(load_dialogs(languages="en")), len(load_dialogs(languages=("zh",)))
    (2492, 2025, 467)
    >>> dialogs[-1]["language"], [message["role"] for message in dialogs[-1]["messages"]]
    ('zh', ['user', 'assistant'])
    >>> [len(load_dialogs(split=split)) for split in ("train", "validation", "test")]
    [2363, 79, 50]
    """
    check_split(split)
    languages = _check_languages(languages)
    if _is_name(name_or_path):
        dialogs = [_dialog(turns, language) for language in LANGUAGES for turns in _chatterbot_conversations(language)]
        order = [(language,) for language in languages]  # language after language
    else:
        dialogs = _read_dialogs(name_or_path)
        order = (languages,)  # the file's order
    # The split of every dialog of the source, whatever the languages asked: a group may hold both.
    splits = linked_splits([first_user_turn(dialog) for dialog in dialogs],
                           [[m["content"] for m in dialog["messages"] if m["role"] == "user"] for dialog in dialogs])
    chosen = [dialog for kept in order for dialog, dialog_split in zip(dialogs, splits)
              if dialog["language"] in kept and split in (None, dialog_split)]
    if not chosen:
        raise ValueError(
            f"no dialogs of {name_or_path!r} in the languages {languages} and the split {split!r}: use split=None, "
            "other languages, or more dialogs"
        )
    return chosen


def dialog_texts(dialogs):
    """One plain text per dialog, its turns joined by line breaks: for pretraining and for training a tokenizer.

    >>> dialogs = [{"messages": [{"role": "user", "content": "天气如何"}, {"role": "assistant", "content": "今天天气很好"}],
    ...             "language": "zh"}]
    >>> dialog_texts(dialogs)
    ['天气如何\\n今天天气很好']
    """
    return ["\n".join(message["content"] for message in dialog["messages"]) for dialog in dialogs]


def dialog_exchanges(dialogs):
    """One `{"context", "reply", "language"}` dict per assistant turn of `dialogs`, in order.

    `context` is a new list of (copies of) the messages before the reply, ending with a user turn; `reply` is the
    assistant turn's content. For fine-tuning on every reply of a multi-turn dialog, or retrieving replies.

    >>> dialog = {"language": "en", "messages": [
    ...     {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
    ...     {"role": "user", "content": "How are you?"}, {"role": "assistant", "content": "Fine."}]}
    >>> [(len(exchange["context"]), exchange["reply"]) for exchange in dialog_exchanges([dialog])]
    [(1, 'Hello!'), (3, 'Fine.')]
    """
    exchanges = []
    for dialog in dialogs:
        messages = dialog["messages"]
        for index, message in enumerate(messages):
            if message["role"] == "assistant":
                exchanges.append({"context": [dict(before) for before in messages[:index]],
                                  "reply": message["content"], "language": dialog["language"]})
    return exchanges


def _check_languages(languages):
    chosen = (languages,) if isinstance(languages, str) else languages
    if not isinstance(chosen, (tuple, list)) or not chosen or not set(chosen) <= set(LANGUAGES):
        raise ValueError(f"languages={languages!r} is invalid: expected a non-empty subset of {LANGUAGES}")
    return tuple(dict.fromkeys(chosen))


def _dialog(turns, language):
    roles = ("user", "assistant") * len(turns)
    return {"messages": [{"role": role, "content": turn} for role, turn in zip(roles, turns)], "language": language}


def first_user_turn(dialog):
    """The content of a dialog's first user message (after its system message, if it has one): its question.

    >>> first_user_turn({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
    ...                               {"role": "assistant", "content": "Hello!"}], "language": "en"})
    'Hi'
    """
    return next(message["content"] for message in dialog["messages"] if message["role"] == "user")


@functools.lru_cache(maxsize=None)
def _chatterbot_conversations(language):
    """The non-empty turns of each conversation of one language of the chatterbot-corpus, as tuples of strings."""
    folder = importlib.resources.files("chatterbot_corpus") / "data" / _CHATTERBOT_FOLDERS[language]
    conversations = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yml"):
            continue
        for conversation in yaml.safe_load(path.read_text(encoding="utf-8")).get("conversations", []):
            if not isinstance(conversation, list):
                continue  # a few entries are a bare string, not a conversation
            turns = tuple(text for text in (str(turn).strip() for turn in conversation) if text)
            if len(turns) >= 2:
                conversations.append(turns)
    return tuple(conversations)


def _is_name(name_or_path):
    if isinstance(name_or_path, str) and name_or_path in DIALOG_CORPUS_NAMES:
        return True
    if names_a_path(name_or_path):
        return False
    raise ValueError(
        f"unknown dialog corpus {name_or_path!r}: expected one of {', '.join(map(repr, DIALOG_CORPUS_NAMES))} or "
        f"the path of a {'/'.join(DIALOG_SUFFIXES)} file"
    )


def _read_dialogs(source):
    path = os.path.expanduser(os.fspath(source))
    if not os.path.exists(path):
        raise FileNotFoundError(f"the dialog file {path!r} does not exist")
    suffix = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or suffix not in DIALOG_SUFFIXES:
        what = "a folder" if os.path.isdir(path) else f"the suffix {suffix or '(none)'!r}"
        raise ValueError(
            f"{path!r}: unsupported, {what}; dialogs are a .jsonl file of chat messages or question/answer pairs, "
            "or a .csv file of question/answer pairs"
        )
    text = read_utf8_text(path)
    dialogs = _jsonl_dialogs(path, text) if suffix == ".jsonl" else _csv_dialogs(path, text)
    if not dialogs:
        raise ValueError(f"the dialog file {path!r} is empty: it holds no dialogs")
    return dialogs


def _jsonl_dialogs(path, text):
    dialogs = []
    for number, record in jsonl_objects(path, text):
        try:
            messages = _record_messages(record)
            dialogs.append({"messages": messages, "language": _record_language(record, messages)})
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return dialogs


def _csv_dialogs(path, text):
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    if not any(set(fields) <= set(columns) for fields in QUESTION_ANSWER_FIELDS):
        raise ValueError(
            f"{path}, line 1: the columns are {columns}; expected 'question' and 'answer' (or 'prompt' and "
            "'completion')"
        )
    dialogs = []
    for row in reader:
        # A short row gives None for its missing cells, a long one a None column: both are left out, as is a
        # blank language cell (the language is then detected).
        values = {column: value for column, value in row.items() if column is not None and value is not None
                  and not (column == "language" and not value.strip())}
        if not any(value.strip() for value in values.values()):
            continue
        try:
            messages = _record_messages(values)
            dialogs.append({"messages": messages, "language": _record_language(values, messages)})
        except ValueError as error:
            raise ValueError(f"{path}, line {reader.line_num}: {error}") from None
    return dialogs


def _record_messages(record):
    """The checked, stripped messages of a JSONL/CSV record: its `"messages"`, or its question and answer."""
    if "messages" in record:
        return _check_messages(record["messages"])
    for fields in QUESTION_ANSWER_FIELDS:
        if set(fields) <= set(record):
            for field in fields:
                if not isinstance(record[field], str) or not record[field].strip():
                    raise ValueError(f"the {field} is {record[field]!r}; expected a non-empty string")
            question, answer = (record[field] for field in fields)
            return _check_messages([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
    raise ValueError(
        f"the fields are {sorted(record)}; expected 'messages', or 'question' and 'answer' (or 'prompt' and "
        "'completion')"
    )


def _check_messages(messages):
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"'messages' is {messages!r}; expected a non-empty list of {{'role', 'content'}} objects")
    checked = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise ValueError(f"message {index} is {message!r}; expected an object with 'role' and 'content'")
        role, content = message["role"], message["content"]
        if role not in ROLES:
            raise ValueError(f"message {index} has the unknown role {role!r}; expected one of {ROLES}")
        if not isinstance(content, str):
            kind = type(content).__name__
            raise ValueError(f"message {index} ({role}) has content of type {kind}; expected a string")
        if not content.strip():
            raise ValueError(f"message {index} ({role}) has an empty content")
        if not is_unicode_text(content):
            raise ValueError(f"message {index} ({role}) holds a lone surrogate (half of a UTF-16 pair, as a JSON escape "
                             "such as \\ud800 writes it), which is not text")
        checked.append({"role": role, "content": content.strip()})
    roles = [message["role"] for message in checked]
    turns = roles[1:] if roles[0] == "system" else roles
    expected = ["user", "assistant"] * len(turns)
    if turns != expected[: len(turns)] or "assistant" not in turns:
        raise ValueError(
            f"the roles {roles} do not alternate user, assistant, user, ... (after an optional first system message) "
            "with at least one assistant turn"
        )
    return checked


def _record_language(record, messages):
    if "language" not in record:
        return detect_language("\n".join(message["content"] for message in messages if message["role"] == "user"))
    if record["language"] not in LANGUAGES:
        raise ValueError(f"the language {record['language']!r} is not one of {LANGUAGES}")
    return record["language"]
