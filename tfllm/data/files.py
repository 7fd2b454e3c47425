"""Documents from local files: a `.txt`, `.md` or `.jsonl` file, a folder of them, or a glob.

Rules, decided once for every corpus read from disk:

- A `.txt` or `.md` file in a folder or a glob is one document, its bytes as they are. A file named directly (of
  any name), the only file of a folder or glob (the whole corpus), and a file in a folder larger than
  `LARGE_FILE_BYTES` (1 MiB) are cut into documents at blank lines (a line break followed by lines holding only
  spaces or tabs; a line break is LF, CR LF or a lone CR), so that a single file still has train, validation and
  test documents (its paragraphs); the blank lines themselves are dropped, everything else is kept byte for byte.
- A `.jsonl` file holds one JSON object per line with a string field `"text"`: one document per line (the UTF-8
  bytes of the string). Lines that are empty or only whitespace are skipped.
- A folder is searched recursively for `.txt`, `.md` and `.jsonl` files (case-insensitive suffix), skipping hidden
  files and folders (names starting with ".") and links to nothing; files are read in sorted order of their path
  relative to the folder, compared folder by folder (`a/z.txt` comes before `a.txt`, which comes before `b.txt`),
  each file once (a link to a file read already is skipped).
- A glob (a path with `*`, `?` or `[`; `**` recurses) keeps the `.txt`, `.md` and `.jsonl` files it matches, and
  the files of the folders it matches, in sorted order, each file once (however many paths lead to it: a folder
  and the files in it, links); a match that is not a file (a link to nothing) is skipped, as in a folder.
- Bytes are never decoded or changed: a byte tokenizer must see them as they are. A file that is not valid UTF-8
  gives one `UnicodeWarning` naming the file (and where the first bad byte is) and is loaded anyway.
- Empty documents (no bytes, or only whitespace) are dropped; a corpus left with no document is an error.
"""

import glob
import json
import os
import pathlib
import re
import warnings

from tfllm.checks import json_kind

SUFFIXES = (".txt", ".md", ".jsonl")
LARGE_FILE_BYTES = 1 << 20

_LINE_BREAK = r"(?:\r\n|\r(?!\n)|\n)"  # a CR LF is one line break, never a CR and then an LF
_BLANK_LINES = re.compile(rf"{_LINE_BREAK}(?:[ \t\f\v]*{_LINE_BREAK})+".encode())
_LINE_BREAKS = re.compile(_LINE_BREAK)
_LINE_BREAKS_BYTES = re.compile(_LINE_BREAK.encode())
_GLOB_CHARACTERS = ("*", "?", "[")


def has_glob_pattern(path):
    """Whether `path` holds a glob pattern (`*`, `?` or `[`), as `read_documents` reads one.

    >>> has_glob_pattern("docs/*.txt"), has_glob_pattern("docs/notes.txt")
    (True, False)
    """
    return any(character in os.fspath(path) for character in _GLOB_CHARACTERS)


def names_a_path(value, globs=False):
    """Whether `value`, where a corpus is given by name or by path, is a path: an `os.PathLike`, or a non-empty
    string that exists (`~` expanded), holds a folder separator or ends in a suffix (`.tsv`). Anything else is a
    name, to be refused by the caller when it is not one of its corpora. A glob pattern counts as a path only for
    a caller that reads globs (`globs=True`, as `read_documents` does); elsewhere `"hsk*"` is an unknown name,
    which the caller's error lists the known names and path forms for, rather than a file that does not exist.

    >>> names_a_path("hsk"), names_a_path("pairs.tsv"), names_a_path("data/pairs"), names_a_path("")
    (False, True, True, False)
    >>> names_a_path("chapters*"), names_a_path("chapters*", globs=True)
    (False, True)
    """
    if isinstance(value, os.PathLike):
        return True
    if not isinstance(value, str) or not value:
        return False
    return (
        os.path.exists(os.path.expanduser(value))
        or any(separator in value for separator in ("/", os.sep))
        or os.path.splitext(value)[1] != ""
        or (globs and has_glob_pattern(value))
    )


def read_documents(path):
    """All documents under `path` (a file, a folder or a glob), as a list of `bytes`, in a deterministic order.

    Args:
        path: `str` or `os.PathLike`. `~` is expanded.

    Returns:
        A non-empty list of `bytes`.

    Raises:
        FileNotFoundError: `path` does not exist (or the glob matches nothing).
        ValueError: a folder or glob without `.txt`/`.md`/`.jsonl` files, a corpus with no text, or a JSONL line
            that is not a JSON object with a string `"text"` field (the message names the file and the line).

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "b.txt").write_bytes(b"second")
    >>> _ = (folder / "a.jsonl").write_text('{"text": "first"}\\n{"text": "also first"}\\n')
    >>> read_documents(folder)
    [b'first', b'also first', b'second']
    """
    files = _files(path)
    documents = []
    for file in files:
        documents.extend(document for document in _read_file(file, whole_corpus=len(files) == 1)
                         if _has_text(document))
    if not documents:
        if len(files) == 1:
            raise ValueError(f"the corpus file {os.fspath(files[0])!r} is empty: it holds no text")
        raise ValueError(f"the corpus {os.fspath(path)!r} is empty: its {len(files)} files hold no text")
    return documents


def _files(path):
    text = os.path.expanduser(os.fspath(path))
    if has_glob_pattern(text) and not os.path.exists(text):
        matches = sorted(glob.glob(text, recursive=True))
        if not matches:
            raise FileNotFoundError(f"the glob {text!r} matches no file")
        files = []
        for match in map(pathlib.Path, matches):
            if match.is_dir():
                files.extend(_folder_files(match))
            elif match.suffix.lower() in SUFFIXES and match.is_file():
                files.append(match)
        files = _each_once(files)
        if not files:
            raise ValueError(f"the glob {text!r} matches no {'/'.join(SUFFIXES)} file")
        return files
    path = pathlib.Path(text)
    if path.is_dir():
        files = _each_once(_folder_files(path))
        if not files:
            raise ValueError(f"the folder {text!r} holds no {'/'.join(SUFFIXES)} file (searched recursively)")
        return files
    if not path.exists():
        raise FileNotFoundError(f"the corpus path {text!r} does not exist")
    return [path]


def _each_once(files):
    """`files` without the repeats of a file reached by several paths (a folder and the files in it, links): the
    first path to each real file."""
    first = {}
    for file in files:
        first.setdefault(os.path.realpath(file), file)
    return list(first.values())


def _folder_files(folder):
    found = []
    for file in folder.rglob("*"):
        relative = file.relative_to(folder).parts
        if file.suffix.lower() in SUFFIXES and file.is_file() and not any(part.startswith(".") for part in relative):
            found.append((relative, file))
    return [file for _, file in sorted(found)]


def read_utf8_text(path):
    """The text of a UTF-8 file (a byte order mark dropped), or a `ValueError` naming the line and the first bad byte:
    how the files of records (pairs, dialogs) are read, which must be text.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "bad.txt")
    >>> with open(path, "wb") as file:
    ...     _ = file.write("天气".encode() + bytes([10, 255]))  # a line break, then a byte UTF-8 never has
    >>> read_utf8_text(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...bad.txt, line 2: not valid UTF-8 (byte 0xff)
    """
    with open(path, "rb") as file:
        data = file.read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = len(_LINE_BREAKS_BYTES.split(data[: error.start]))
        raise ValueError(f"{path}, line {line}: not valid UTF-8 (byte {data[error.start]:#04x})") from None


def text_lines(text):
    """The lines of a text, split at every line break (LF, CR LF or a lone CR, as files from any system end their
    lines), without the breaks; a last line break ends the last line rather than starting an empty one.

    >>> text_lines("Hi.\\t嗨。\\r\\nGo.\\t走。\\rThanks.\\n"), text_lines("")
    (['Hi.\\t嗨。', 'Go.\\t走。', 'Thanks.'], [])
    """
    lines = _LINE_BREAKS.split(text)
    return lines[:-1] if lines[-1] == "" else lines


def is_unicode_text(text):
    """Whether a `str` is text that UTF-8 can write: no lone surrogate (half of a UTF-16 pair, which a JSON escape
    such as "\\ud800" can put in a string).

    >>> is_unicode_text("天气 🙂"), is_unicode_text("\\ud800")
    (True, False)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def jsonl_objects(path, text):
    """`(line number, object)` for each non-blank line of `text`, the JSONL file `path` read (`read_utf8_text`); a
    line that is not a JSON object is a `ValueError` naming the file and the line.

    >>> list(jsonl_objects("pairs.jsonl", '{"en": "Hi"}\\n\\n{"en": "Go"}\\n'))
    [(1, {'en': 'Hi'}), (3, {'en': 'Go'})]
    >>> list(jsonl_objects("pairs.jsonl", '["Hi"]'))
    Traceback (most recent call last):
    ...
    ValueError: pairs.jsonl, line 1: a JSON array; expected an object
    """
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: a JSON {json_kind(record)}; expected an object")
        yield number, record


_BYTE_ORDER_MARK = b"\xef\xbb\xbf"  # UTF-8's


def _has_text(document):
    """Whether a document (bytes) holds more than whitespace, Unicode's included (an ideographic space, U+3000)."""
    return bool(document.decode("utf-8", errors="replace").strip())


def _read_file(file, whole_corpus=False):
    data = file.read_bytes()
    if file.suffix.lower() == ".jsonl":
        return _jsonl_documents(file, data)
    _warn_if_not_utf8(file, data)
    data = data.removeprefix(_BYTE_ORDER_MARK)  # an editor's mark, not text: the first document started with U+FEFF
    if whole_corpus or len(data) > LARGE_FILE_BYTES:
        return _BLANK_LINES.split(data)
    return [data]


def _jsonl_documents(file, data):
    _warn_if_not_utf8(file, data)
    data = data.removeprefix(_BYTE_ORDER_MARK)  # not JSON
    documents = []
    for number, line in enumerate(_LINE_BREAKS_BYTES.split(data), start=1):
        if not line.strip():
            continue
        # surrogateescape carries bytes that are not UTF-8 through json and back unchanged.
        try:
            record = json.loads(line.decode("utf-8", errors="surrogateescape"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{file}, line {number}: not valid JSON ({error.msg} at column {error.colno})") from None
        if not isinstance(record, dict) or "text" not in record:
            raise ValueError(f'{file}, line {number}: no "text" field; expected an object like {{"text": "..."}}')
        text = record["text"]
        if not isinstance(text, str):
            raise ValueError(f'{file}, line {number}: "text" is {type(text).__name__}, expected a string')
        try:
            documents.append(text.encode("utf-8", errors="surrogateescape"))
        except UnicodeEncodeError:  # a lone surrogate written as a JSON escape such as "\ud800"
            documents.append(text.encode("utf-8", errors="surrogatepass"))
    return documents


def _warn_if_not_utf8(file, data):
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        warnings.warn(
            f"{file} is not valid UTF-8 (first bad byte at offset {error.start}); its bytes are loaded as they are",
            UnicodeWarning,
            stacklevel=2,
        )
