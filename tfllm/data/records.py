"""Reading labelled records (JSONL, CSV, Python lists) with errors that name the file, the line and the field."""

import csv
import io
import os
from collections.abc import Iterable

from tfllm.data.files import jsonl_objects, read_utf8_text


def read_records(source, fields, name, text_fields=None):
    """Rows of `fields` from a JSONL or CSV path, or from a list of dicts or tuples; returns one list per field.

    Args:
        source: A path (`.jsonl` / `.json` lines or `.csv` with a header row), or a list of dicts with `fields` as
            keys, or a list of tuples in the order of `fields`.
        fields: The names of the fields, e.g. `("prompt", "completion")`.
        name: What the records are, for error messages (e.g. "prompt/completion pairs").
        text_fields: The fields whose values must be text (`str`); all of `fields` when None.

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an empty source, a line that is not JSON, a record without a field, a field that is not text.
    """
    text_fields = fields if text_fields is None else text_fields
    if isinstance(source, dict):
        raise ValueError(f"the {name} are one dict: expected a list of records ([record] for one), or a file's path.")
    if isinstance(source, (str, os.PathLike)):
        rows = list(_rows_from_file(os.fspath(source), fields))
        where = os.fspath(source)
    else:
        rows = [(f"record {index}", _fields_of(record, fields, f"record {index}", name))
                for index, record in enumerate(source)]
        where = "the list"
    if not rows:
        raise ValueError(f"{where} holds no {name}: expected at least one record with fields {', '.join(fields)}.")
    columns = [[] for _ in fields]
    for place, values in rows:
        for field, value, column in zip(fields, values, columns):
            if value is None:
                raise ValueError(f"{where}, {place}: the field {field!r} is missing.")
            if field in text_fields and not isinstance(value, str):
                raise ValueError(f"{where}, {place}: the field {field!r} is {value!r:.40}, not text: expected a string.")
            column.append(value)
    return columns


def _fields_of(record, fields, place, name):
    """The values of `fields` in one record of a list: a dict's by name, a tuple's by position (None for one that is
    missing); a text, or a tuple of more values than fields, is refused (a list of texts is not a list of records)."""
    if isinstance(record, dict):
        return [record.get(field) for field in fields]
    expected = f"expected a dict with the keys {', '.join(fields)}, or a tuple of them in that order"
    if isinstance(record, (str, bytes)) or not isinstance(record, Iterable):
        raise ValueError(f"the list of {name}, {place}: {record!r:.60} is not a record: {expected}.")
    values = list(record)
    if len(values) > len(fields):
        raise ValueError(f"the list of {name}, {place}: {len(values)} values for {len(fields)} fields: {expected}.")
    return values + [None] * (len(fields) - len(values))


def _rows_from_file(path, fields):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist (or is not a file).")
    text = read_utf8_text(path)  # a file that is not UTF-8 is refused with its line
    if path.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for row in reader:  # the reader skips blank lines; a quoted cell may hold line breaks
            yield f"line {reader.line_num}", [row.get(field) for field in fields]
        return
    for line, record in jsonl_objects(path, text):
        yield f"line {line}", [record.get(field) for field in fields]
