import json
import os

import pytest

import tfllm
from tfllm.training import RunConfig
from tfllm.training.run_directory import FINAL_FILES, RunDirectory, RunDirectoryError, load_run


def _complete_run(path, config):
    run = RunDirectory(path)
    run.start(config, "new")
    for name in FINAL_FILES[1:]:
        (path / name).write_bytes(b"not really")
    return run


def test_plan_new_resume_and_refusals(tmp_path):
    config = RunConfig.default("lstm", model={"hidden_dim": 512}, train={"steps": 2000})
    run = RunDirectory(tmp_path / "run")
    assert run.plan(config) == "new"
    run.start(config, "new")
    assert RunConfig.from_json(run.config_path) == config  # config.json is written first
    assert run.plan(config) == "resume"
    other = config.replace(train={"steps": 5}, model={"hidden_dim": 8})
    with pytest.raises(RunDirectoryError, match=r"another config \(model\.hidden_dim: 512 in the run, 8 now; "
                                                r"train\.steps: 2000 in the run, 5 now\)"):
        run.plan(other)
    assert run.plan(other, overwrite=True) == "overwrite"
    run.start(other, "overwrite")
    assert run.read_config() == other


def test_plan_refuses_a_complete_run_unless_overwrite(tmp_path):
    config = RunConfig.default("rnn")
    run = _complete_run(tmp_path, config)
    assert run.is_complete()
    with pytest.raises(RunDirectoryError, match="holds a complete run: use overwrite=True"):
        run.plan(config)
    assert run.plan(config, overwrite=True) == "overwrite"
    run.start(config, "overwrite")
    assert sorted(os.listdir(tmp_path)) == ["config.json", "run.json"]


def test_plan_never_takes_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(RunDirectoryError, match="exists and is not a run directory"):
            RunDirectory(tmp_path).plan(RunConfig.default(), overwrite=overwrite)
    assert (tmp_path / "thesis.tex").exists()


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(RunDirectoryError, match="does not exist"):
        load_run(tmp_path / "nothing")
    with pytest.raises(RunDirectoryError, match="is not a run directory: it has no run.json or config.json"):
        load_run(tmp_path)
    RunDirectory(tmp_path).start(RunConfig.default(), "new")
    (tmp_path / "model.keras").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match=r"unfinished run: loss_curve\.png, history\.json, samples\.txt, "
                                                r"metrics\.json missing"):
        load_run(tmp_path)


def test_load_run_refuses_a_damaged_model(tmp_path):
    _complete_run(tmp_path, RunConfig.default())
    with pytest.raises(RunDirectoryError, match=r"model\.keras cannot be loaded .*damaged"):
        load_run(tmp_path)


def test_write_json_turns_nan_into_null(tmp_path):
    run = RunDirectory(tmp_path)
    run.write_json("metrics.json", {"mfu": float("nan"), "loss": [1.5, float("inf")]})
    assert run.read_json("metrics.json") == {"mfu": None, "loss": [1.5, None]}


def test_a_run_of_another_run_format_or_without_its_marker_is_refused_naming_the_versions(tmp_path):
    run = RunDirectory(tmp_path)
    run.start(RunConfig.default(), "new")
    marker = json.loads((tmp_path / "run.json").read_text())
    assert marker == {"kind": "pretrain", "format": 1, "tfllm_version": tfllm.__version__}
    (tmp_path / "run.json").write_text(json.dumps({**marker, "format": 7, "tfllm_version": "9.0.0"}))
    for attempt in (lambda: load_run(tmp_path), lambda: run.plan(RunConfig.default())):
        with pytest.raises(RunDirectoryError, match=r"written by tfllm 9\.0\.0 in run format 7; this tfllm .* reads "
                                                    r"run format 1"):
            attempt()
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunDirectoryError, match="has no run.json: it was written by an older tfllm"):
        load_run(tmp_path)
