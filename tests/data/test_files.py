"""`names_a_path`: the one rule by which `load_corpus`, `load_parallel_corpus` and `load_dialogs` tell a path from a
corpus name."""

import pathlib

import pytest

from tfllm.data import load_corpus, load_dialogs, load_parallel_corpus
from tfllm.data.files import names_a_path


@pytest.mark.parametrize("value, is_path", [
    ("hsk", False), ("", False), (None, False), (3, False),
    (pathlib.Path("hsk"), True),  # a path object is a path, whatever its name
    ("pairs.tsv", True), ("data/pairs", True), ("~/pairs", True), ("./hsk", True),
    ("hsk*", False), ("chapters?", False), ("[ab]", False),  # a glob only where globs are read
])
def test_a_path_is_a_path_object_or_a_text_with_a_separator_or_a_suffix(value, is_path):
    assert names_a_path(value) is is_path


def test_a_glob_pattern_is_a_path_where_globs_are_read():
    assert [names_a_path(value, globs=True) for value in ("kjv*", "chapters?", "[ab]", "kjv")] == [True] * 3 + [False]


def test_a_name_that_exists_as_a_file_here_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not names_a_path("pairs")
    (tmp_path / "pairs").write_text("Hello.\t你好。\n")
    assert names_a_path("pairs")


def test_each_corpus_loader_reads_a_glob_only_if_it_reads_globs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # load_corpus reads globs: "kjv*" is one, matching nothing here.
    with pytest.raises(FileNotFoundError, match=r"the glob 'kjv\*' matches no file"):
        load_corpus("kjv*")
    # The other two read single files: "hsk*" is an unknown name, and the error lists the names and the paths taken.
    with pytest.raises(ValueError, match=r"unknown parallel corpus 'hsk\*': expected one of 'hsk', the path of"):
        load_parallel_corpus("hsk*")
    with pytest.raises(ValueError, match=r"unknown dialog corpus 'chatterbot\?': expected one of 'chatterbot' or "
                                         r"the path of"):
        load_dialogs("chatterbot?")


def test_each_corpus_loader_takes_a_path_object_as_a_path(tmp_path):
    for load, name in ((load_corpus, "kjv"), (load_parallel_corpus, "hsk"), (load_dialogs, "chatterbot")):
        with pytest.raises(FileNotFoundError, match=name):  # named like a corpus, and still looked for on disk
            load(tmp_path / name)
