import os

import pytest

from tfllm.training.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_writes_replace_the_file_and_leave_no_temporary_files(tmp_path):
    target = tmp_path / "deep" / "metrics.json"
    atomic_write_text(target, "first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "model.keras"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as file:
                file.write("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.keras"]


def test_the_temporary_file_keeps_the_suffix_keras_chooses_formats_by(tmp_path):
    with atomic_path(tmp_path / "step-1.weights.h5") as temporary:
        assert temporary.endswith(".weights.h5") and os.path.dirname(temporary) == str(tmp_path)
        open(temporary, "w").close()
    with atomic_path(tmp_path / "model.keras") as temporary:
        assert temporary.endswith(".keras") and not temporary.endswith("model.keras")
        open(temporary, "w").close()
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "step-1.weights.h5"]


def test_a_written_file_has_the_permissions_of_a_file_opened_for_writing(tmp_path):
    # Every file was 0600, as tempfile makes them: on shared storage, the other workers of a job (another user) could
    # not read the chief's tokenizer, nor TensorBoard or a server the run's files.
    atomic_write_text(tmp_path / "config.json", "{}")
    with open(tmp_path / "plain.json", "w") as file:
        file.write("{}")
    assert os.stat(tmp_path / "config.json").st_mode & 0o777 == os.stat(tmp_path / "plain.json").st_mode & 0o777
