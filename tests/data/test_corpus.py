"""`load_corpus` / `load_texts`: the KJV, local files, folders, globs, JSONL, splits, raw bytes and bad input."""

import json
import re
import warnings

import pytest
import tensorflow as tf

from tfllm.data import files
from tfllm.data.corpus import CorpusStats, corpus_stats, load_corpus, load_texts
from tfllm.data.kjv import kjv_chapters
from tfllm.data.splits import SPLITS, split_of


def _documents(dataset):
    return list(dataset.as_numpy_iterator())


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# The KJV, the default.


def test_default_is_the_kjv_one_scalar_string_per_chapter():
    dataset = load_corpus()
    assert dataset.element_spec == tf.TensorSpec((), tf.string)
    documents = _documents(dataset)
    assert len(documents) == 1189
    assert documents[0].startswith(b"In the beginning God created the heavens and the earth.\nAnd the earth")
    assert documents[-1] == kjv_chapters()[-1].text.encode("utf-8")


def test_kjv_splits_match_the_chapter_splits():
    for split in SPLITS:
        assert load_texts("kjv", split) == [c.text.encode("utf-8") for c in kjv_chapters(split)]


def test_corpus_stats_of_the_kjv():
    assert corpus_stats(load_corpus("kjv")) == CorpusStats(documents=1189, bytes=4136544)
    sizes = {split: corpus_stats(load_corpus("kjv", split)) for split in SPLITS}
    assert sizes == {
        "train": CorpusStats(1063, 3698361),
        "validation": CorpusStats(59, 225993),
        "test": CorpusStats(67, 212190),
    }
    assert str(sizes["validation"]) == "59 documents, 225,993 bytes"


def test_corpus_stats_of_python_texts_counts_utf8_bytes():
    assert corpus_stats(["\u00e9t\u00e9", b"ab", ""]) == CorpusStats(3, 7)


def test_load_texts_returns_a_fresh_list():
    texts = load_texts()
    texts.clear()
    assert len(load_texts()) == 1189


# Files, folders, globs, JSONL.


def test_txt_file_in_a_folder_is_one_document_with_its_bytes_unchanged(tmp_path):
    data = b"  First line.\r\n\r\n\tSecond paragraph, caf\xc3\xa9.\n\n\n"
    _write(tmp_path / "notes" / "notes.txt", data)
    _write(tmp_path / "notes" / "other.txt", "Another note.")
    assert _documents(load_corpus(str(tmp_path / "notes"))) == [data, b"Another note."]
    assert _documents(load_corpus(tmp_path / "notes")) == [data, b"Another note."]  # a pathlib.Path works too


def test_the_only_file_of_a_folder_or_glob_is_the_whole_corpus_and_is_cut_into_its_paragraphs(tmp_path):
    # It was one document, so its validation split was empty, and the error's advice (a file is cut at blank
    # lines) was false for it.
    _write(tmp_path / "notes" / "notes.txt", "First paragraph.\n\nSecond paragraph.\n")
    expected = [b"First paragraph.", b"Second paragraph.\n"]
    assert load_texts(tmp_path / "notes") == expected
    assert load_texts(str(tmp_path / "notes" / "*.txt")) == expected


def test_a_byte_order_mark_is_not_text(tmp_path):
    # A .txt saved by Notepad trained U+FEFF at the start of its first document; a .jsonl's mark was dropped.
    data = b"\xef\xbb\xbfFirst paragraph.\r\n\r\nSecond paragraph.\r\n"
    assert load_texts(_write(tmp_path / "notes.txt", data)) == [b"First paragraph.", b"Second paragraph.\r\n"]
    _write(tmp_path / "notes" / "a.md", data)
    _write(tmp_path / "notes" / "b.md", "Another note.")
    assert _documents(load_corpus(tmp_path / "notes")) == [data[3:], b"Another note."]


def test_lines_may_end_in_cr_lf_or_a_lone_cr(tmp_path):
    # A file of lone CRs (classic Mac OS) was one paragraph: blank lines were found only between LFs.
    for name, newline in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        data = newline.join(["One.", "Still one.", "", "Two.", " \t", "", "Three."])
        assert load_texts(_write(tmp_path / f"{name}.txt", data)) == [
            f"One.{newline}Still one.".encode(), b"Two.", b"Three."], name
        jsonl = newline.join(['{"text": "a"}', '{"text": "b"}', "", '{"text": "c"}'])
        assert load_texts(_write(tmp_path / f"{name}.jsonl", jsonl)) == [b"a", b"b", b"c"], name


def test_a_glob_reads_each_file_once_and_skips_links_to_nothing(tmp_path):
    # `notes/**` matched the folders and the files in them: each file was read twice or more, and a link to a
    # missing file failed with a bare FileNotFoundError.
    _write(tmp_path / "notes" / "a.txt", "A doc")
    _write(tmp_path / "notes" / "deep" / "b.txt", "B doc")
    (tmp_path / "notes" / "link.txt").symlink_to(tmp_path / "notes" / "a.txt")
    (tmp_path / "notes" / "gone.txt").symlink_to(tmp_path / "missing.txt")
    assert load_texts(str(tmp_path / "notes" / "**")) == [b"A doc", b"B doc"]
    assert load_texts(str(tmp_path / "notes" / "*.txt")) == [b"A doc"]
    assert load_texts(tmp_path / "notes") == [b"A doc", b"B doc"]  # a folder skips the link to nothing too


def test_a_file_named_as_the_corpus_is_cut_into_its_paragraphs_so_it_splits(tmp_path):
    # A 25 KB notes.txt was one document: its validation split was always empty, so `tfllm train --corpus notes.txt`
    # could not run on any file under 1 MiB.
    data = b"  First line.\r\n\r\n\tSecond paragraph, caf\xc3\xa9.\n\n\n"
    assert load_texts(_write(tmp_path / "notes.txt", data)) == [b"  First line.", b"\tSecond paragraph, caf\xc3\xa9."]
    paragraphs = [f"Paragraph {index}: the quick brown fox.".encode() for index in range(400)]
    path = _write(tmp_path / "essay.md", b"\n\n".join(paragraphs))
    splits = {split: load_texts(path, split) for split in ("train", "validation", "test")}
    assert all(splits.values()) and sorted(sum(splits.values(), [])) == sorted(paragraphs)


def test_file_above_1_mib_is_cut_at_blank_lines(tmp_path):
    paragraphs = [f"Speaker {index}:\nLine {index}, with  two spaces.".encode() for index in range(40000)]
    data = b"\n\n".join(paragraphs[:20000]) + b"\r\n \t\r\n\n" + b"\n\n".join(paragraphs[20000:]) + b"\n"
    assert len(data) > files.LARGE_FILE_BYTES
    documents = load_texts(_write(tmp_path / "big.txt", data))
    assert documents[:2] == paragraphs[:2]
    assert documents[20000] == paragraphs[20000]
    assert documents[-1] == paragraphs[-1] + b"\n"
    assert len(documents) == 40000


def test_file_in_a_folder_of_exactly_1_mib_stays_one_document_one_byte_more_is_cut(tmp_path):
    data = (b"x" * 1022 + b"\n\n") * 1024
    assert len(data) == files.LARGE_FILE_BYTES
    _write(tmp_path / "folder" / "edge.txt", data)
    _write(tmp_path / "folder" / "other.txt", "other")  # not alone: the only file is cut whatever its size
    assert load_texts(tmp_path / "folder") == [data, b"other"]
    _write(tmp_path / "folder" / "edge.txt", data + b"y")
    assert load_texts(tmp_path / "folder") == [b"x" * 1022] * 1024 + [b"y", b"other"]


def test_folder_is_read_recursively_in_sorted_order(tmp_path):
    _write(tmp_path / "b.txt", "b")
    _write(tmp_path / "a.txt", "a")
    _write(tmp_path / "a" / "z.md", "a/z")
    _write(tmp_path / "a" / "sub" / "y.jsonl", '{"text": "a/sub/y 1"}\n{"text": "a/sub/y 2"}\n')
    _write(tmp_path / "C.TXT", "C upper case suffix")
    _write(tmp_path / ".hidden" / "x.txt", "hidden folder")
    _write(tmp_path / ".secret.txt", "hidden file")
    _write(tmp_path / "table.csv", "not a text file")
    _write(tmp_path / "README", "no suffix")
    expected = [b"C upper case suffix", b"a/sub/y 1", b"a/sub/y 2", b"a/z", b"a", b"b"]
    assert load_texts(tmp_path) == expected
    assert _documents(load_corpus(str(tmp_path))) == expected


def test_glob_keeps_matching_text_files_in_sorted_order(tmp_path):
    _write(tmp_path / "data" / "2.txt", "two")
    _write(tmp_path / "data" / "1.txt", "one")
    _write(tmp_path / "data" / "3.md", "three")
    _write(tmp_path / "data" / "deep" / "4.txt", "four")
    assert load_texts(str(tmp_path / "data" / "*.txt")) == [b"one", b"two"]
    assert load_texts(str(tmp_path / "data" / "**" / "*.txt")) == [b"one", b"two", b"four"]
    assert load_texts(str(tmp_path / "data" / "*")) == [b"one", b"two", b"three", b"four"]  # a folder: its files


def test_jsonl_is_one_document_per_line(tmp_path):
    lines = [
        json.dumps({"text": "caf\u00e9", "id": 1}),
        "",
        "   ",
        json.dumps({"text": "line two\nhas a newline"}, ensure_ascii=False),
        json.dumps({"text": ""}),
    ]
    path = _write(tmp_path / "d.jsonl", "\ufeff" + "\n".join(lines) + "\n")
    assert load_texts(path) == [b"caf\xc3\xa9", b"line two\nhas a newline"]


def test_a_file_named_directly_may_have_any_suffix(tmp_path):
    assert load_texts(_write(tmp_path / "notes.text", "plain")) == [b"plain"]


def test_names_win_over_paths_and_dot_slash_reaches_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "kjv", "a local file called kjv")
    assert len(load_texts("kjv")) == 1189
    assert load_texts("./kjv") == [b"a local file called kjv"]


# Splits of files.


def test_file_splits_are_disjoint_cover_everything_and_follow_the_hash(tmp_path):
    for index in range(300):
        _write(tmp_path / f"{index:03d}.txt", f"document number {index}")
    everything = load_texts(tmp_path)
    parts = {split: load_texts(tmp_path, split) for split in SPLITS}
    assert all(parts[split] for split in SPLITS)
    assert sorted(sum(parts.values(), [])) == sorted(everything)
    assert {split: len(parts[split]) for split in SPLITS} == {
        split: sum(split_of(document) == split for document in everything) for split in SPLITS
    }
    assert all(split_of(document) == split for split in SPLITS for document in parts[split])
    assert parts == {split: load_texts(tmp_path, split) for split in SPLITS}  # identical between calls


def test_file_split_does_not_depend_on_file_names_or_order(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for index in range(100):
        _write(first / f"{index:03d}.txt", f"text {index}")
        _write(second / f"{999 - index:03d}" / "renamed.md", f"text {index}")
    for split in SPLITS:
        assert sorted(load_texts(first, split)) == sorted(load_texts(second, split))


def test_empty_split_of_a_small_corpus_is_an_error(tmp_path):
    path = _write(tmp_path / "one.txt", "a single document")
    (own_split,) = [split for split in SPLITS if split_of(b"a single document") == split]
    other = next(split for split in SPLITS if split != own_split)
    assert load_texts(path, own_split) == [b"a single document"]
    with pytest.raises(ValueError, match=rf"the '{other}' split of the corpus '.*one\.txt' is empty.*named alone is "
                                         r"split at its blank lines into paragraphs; in a folder or a pattern, each "
                                         r"file is one document\)"):
        load_corpus(path, other)


# Bytes that are not UTF-8.


def test_non_utf8_file_is_kept_byte_for_byte_with_one_warning_naming_it(tmp_path):
    data = b"caf\xe9 \xff\xfe and \xc3\x28 more\n"
    path = _write(tmp_path / "latin1.txt", data)
    _write(tmp_path / "fine.txt", "fine")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        documents = _documents(load_corpus(tmp_path))
    assert documents == [b"fine", data]
    messages = [str(w.message) for w in caught if issubclass(w.category, UnicodeWarning)]
    assert len(messages) == 1
    assert str(path) in messages[0] and "offset 3" in messages[0]


def test_non_utf8_jsonl_text_is_kept_byte_for_byte(tmp_path):
    path = _write(tmp_path / "raw.jsonl", b'{"text": "caf\xe9"}\n{"text": "ok"}\n')
    with pytest.warns(UnicodeWarning, match=re.escape(str(path))):
        assert load_texts(path) == [b"caf\xe9", b"ok"]


# Bad input: a clear error naming the path (or line) and the problem, raised by the call itself.


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere" / "corpus.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_corpus(str(missing))


def test_unknown_name_lists_the_known_names():
    with pytest.raises(ValueError, match=r"unknown corpus 'kvj': expected one of 'kjv', 'shakespeare' or the path"):
        load_corpus("kvj")


def test_unknown_split():
    with pytest.raises(ValueError, match="split='dev' is not one of"):
        load_corpus("kjv", split="dev")


def test_folder_without_text_files(tmp_path):
    _write(tmp_path / "data.csv", "a,b")
    _write(tmp_path / ".hidden" / "x.txt", "hidden")
    with pytest.raises(ValueError, match=rf"the folder '{re.escape(str(tmp_path))}' holds no \.txt/\.md/\.jsonl file"):
        load_corpus(tmp_path)


def test_glob_matching_nothing_or_no_text_files(tmp_path):
    _write(tmp_path / "data.csv", "a,b")
    with pytest.raises(FileNotFoundError, match=re.escape(f"the glob '{tmp_path}/*.txt' matches no file")):
        load_corpus(f"{tmp_path}/*.txt")
    with pytest.raises(ValueError, match=re.escape(f"the glob '{tmp_path}/*.csv' matches no .txt/.md/.jsonl file")):
        load_corpus(f"{tmp_path}/*.csv")


# The last was kept as a document: only ASCII whitespace was stripped.
@pytest.mark.parametrize("content", [b"", b" \n\t\r\n", "\u3000\n\u00a0".encode()],
                         ids=["empty", "whitespace", "unicode-whitespace"])
def test_empty_file(tmp_path, content):
    path = _write(tmp_path / "empty.txt", content)
    with pytest.raises(ValueError, match=rf"the corpus file '{re.escape(str(path))}' is empty"):
        load_corpus(path)


def test_folder_of_empty_files(tmp_path):
    _write(tmp_path / "a.txt", "")
    _write(tmp_path / "b.jsonl", '{"text": ""}\n')
    with pytest.raises(ValueError, match=rf"the corpus '{re.escape(str(tmp_path))}' is empty: its 2 files"):
        load_corpus(tmp_path)


def test_empty_files_in_a_folder_are_skipped(tmp_path):
    _write(tmp_path / "a.txt", "")
    _write(tmp_path / "b.txt", "text")
    assert load_texts(tmp_path) == [b"text"]


@pytest.mark.parametrize(
    "line, problem",
    [
        ('{"text": "unterminated}', r"not valid JSON \(Unterminated string"),
        ("not json at all", r"not valid JSON \(Expecting value at column 1\)"),
        ('{"content": "no text field"}', r'no "text" field'),
        ('["a", "list"]', r'no "text" field'),
        ('{"text": 42}', r'"text" is int, expected a string'),
        ('{"text": null}', r'"text" is NoneType, expected a string'),
    ],
)
def test_bad_jsonl_line_names_the_file_and_the_line(tmp_path, line, problem):
    path = _write(tmp_path / "bad.jsonl", '{"text": "good"}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}, line 3: {problem}"):
        load_corpus(path)
