import tempfile

import pytest


@pytest.fixture(autouse=True)
def _temporary_files_in_a_folder_of_the_test(tmp_path_factory, monkeypatch):
    """`tempfile` in this process, and in the subprocesses a test starts (through TMPDIR), writes into a folder of
    this test's own, which pytest deletes with its old runs: what asks `tempfile` for a folder or a file and leaves it
    there (a README example, an error log) would otherwise stay in /tmp after every run."""
    folder = tmp_path_factory.mktemp("tempfile")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder
