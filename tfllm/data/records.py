"""Reading labelled records (JSONL, CSV, Python lists) with errors that name the file, the line and the field."""

import csv
import io
import os

from tfllm.data.files import jsonl_objects, read_utf8_text


def read_records(source, fields, name):
    """Rows of `fields` from a JSONL or CSV path, or from a list of dicts or tuples; returns one list per field.

    Args:
        source: A path (`.jsonl` / `.json` lines or `.csv` with a header row), or a list of dicts with `fields` as
            keys, or a list of tuples in the order of `fields`.
        fields: The names of the fields, e.g. `("prompt", "completion")`.
        name: What the records are, for error messages (e.g. "prompt/completion pairs").

    Raises:
        FileNotFoundError: a path that does not exist.
        ValueError: an empty source, a line that is not JSON, a record without a field, a field that is not text.
    """
    if isinstance(source, (str, os.PathLike)):
        rows = list(_rows_from_file(os.fspath(source), fields))
        where = os.fspath(source)
    else:
        rows = [(f"record {index}", _fields_of(record, fields)) for index, record in enumerate(source)]
        where = "the list"
    if not rows:
        raise ValueError(f"{where} holds no {name}: expected at least one record with fields {', '.join(fields)}.")
    columns = [[] for _ in fields]
    for place, values in rows:
        for field, value, column in zip(fields, values, columns):
            if value is None:
                raise ValueError(f"{where}, {place}: the field {field!r} is missing.")
            column.append(value)
    return columns


def _fields_of(record, fields):
    if isinstance(record, dict):
        return [record.get(field) for field in fields]
    values = list(record)
    return values + [None] * (len(fields) - len(values))


def _rows_from_file(path, fields):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist (or is not a file).")
    text = read_utf8_text(path)  # a file that is not UTF-8 is refused with its line
    if path.endswith(".csv"):
        for line, row in enumerate(csv.DictReader(io.StringIO(text, newline="")), start=2):
            yield f"line {line}", [row.get(field) for field in fields]
        return
    for line, record in jsonl_objects(path, text):
        yield f"line {line}", [record.get(field) for field in fields]
