"""A byte-level BPE's two files: the vocabulary (`vocab.json`: token -> id) and the ranked merges (`merges.txt`).

Hugging Face's GPT-2 files and KerasHub's `vocabulary.json` + `merges.txt` have these formats. GPT-2's files promise
what the checks below ask: ids 0 .. n-1, every byte's symbol in the vocabulary, each merge once, and both parts and
the result of every merge in the vocabulary (each merge made one new token of the 50,257).
"""

import json
import os

from tfllm.checks import json_kind
from tfllm.tokenizers.byte_level import byte_to_code_point

VERSION_HEADER = "#version"


def read_vocabulary(path):
    """The token -> id dict of a `vocab.json` / `vocabulary.json` file."""
    text = _read_text(path, "vocabulary")
    try:
        vocabulary = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"vocabulary file {path} is not valid JSON: line {error.lineno} column {error.colno}: "
                         f"{error.msg}") from None
    if not isinstance(vocabulary, dict):
        raise ValueError(f"vocabulary file {path} holds a JSON {json_kind(vocabulary)}: expected an object "
                         "mapping each token to its id")
    return vocabulary


def read_merges(path):
    """The merges of a `merges.txt` file, and where each was read ("merges.txt line 2"), without the `#version`
    header line and blank lines.

    Only the first line may be the header: a later line starting with "#" is a merge of "#" symbols."""
    merges, places = [], []
    for number, line in enumerate(_read_text(path, "merges").split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip() or (number == 1 and line.startswith(VERSION_HEADER)):
            continue
        merges.append(line)
        places.append(f"merges file {path} line {number}")
    return merges, places


def check_vocabulary(vocabulary):
    """`vocabulary` (token -> id) as its list of tokens in id order, after checking what GPT-2's files guarantee."""
    if not isinstance(vocabulary, dict):
        raise ValueError(f"vocabulary is a {type(vocabulary).__name__}: expected a dict token -> id")
    for token, token_id in vocabulary.items():
        if not isinstance(token, str) or not token:
            raise ValueError(f"vocabulary holds the token {token!r}: expected non-empty strings")
        if not isinstance(token_id, int) or isinstance(token_id, bool) or not 0 <= token_id < len(vocabulary):
            raise ValueError(f"vocabulary gives {token!r} the id {token_id!r}: expected ids 0 .. {len(vocabulary) - 1}")
    tokens = [None] * len(vocabulary)
    for token, token_id in vocabulary.items():
        if tokens[token_id] is not None:
            raise ValueError(f"vocabulary gives the id {token_id} to both {tokens[token_id]!r} and {token!r}: "
                             "expected each id once")
        tokens[token_id] = token
    missing = [chr(code_point) for code_point in byte_to_code_point() if chr(code_point) not in vocabulary]
    if missing:
        raise ValueError(f"vocabulary lacks {len(missing)} byte symbols, e.g. {missing[:5]}: a byte-level BPE "
                         "vocabulary holds all 256")
    return tokens


def check_merges(merges, vocabulary, places=None):
    """The merges as a tuple of "left right" strings, checked against `vocabulary`; `places` name each merge in
    errors (default "merges[i]")."""
    if isinstance(merges, str):
        raise ValueError("merges is one string: expected a list of 'left right' strings")
    merges = tuple(merges)
    places = places or [f"merges[{index}]" for index in range(len(merges))]
    first_place = {}
    for merge, place in zip(merges, places):
        parts = merge.split(" ") if isinstance(merge, str) else None
        if parts is None or len(parts) != 2 or not all(parts):
            raise ValueError(f"{place} is {merge!r}: expected two symbols separated by one space, e.g. 'Ġ t'")
        outside = [token for token in (*parts, "".join(parts)) if token not in vocabulary]
        if outside:
            raise ValueError(f"{place} is {merge!r}, but {outside[0]!r} is not in the vocabulary: expected both parts "
                             "and their merge to be tokens")
        if merge in first_place:
            raise ValueError(f"{place} repeats the merge {merge!r} of {first_place[merge]}: expected each merge once")
        first_place[merge] = place
    return merges


def _read_text(path, what):
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} file {path} does not exist")
    with open(path, encoding="utf-8") as file:
        try:
            return file.read()
        except UnicodeDecodeError as error:
            raise ValueError(f"{what} file {path} is not UTF-8 text: {error.reason} at byte {error.start}") from None
