import json
import os
import pathlib
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfllm
from tfllm.data import PromptTemplate
from tfllm.models import LSTMLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import FinetuneConfig, LoadedRun, RunConfig
from tfllm.training.run_directory import KINDS, RunDirectory, RunDirectoryError, load_model_file, load_run


def _complete_run(path, config):
    run = RunDirectory(path)
    run.start(config, "new")
    for name in KINDS["pretrain"].final_files[1:]:
        (path / name).write_bytes(b"{}" if name == "metrics.json" else b"not really")
    return run


def _finish(run, model, metrics=None):
    """Writes the final files of `run` as a run of its kind would, `model` saved for real."""
    run.save_model(model)
    for name in run.missing_files():
        if name != "metrics.json":
            run.write_text(name, "written")
    run.write_json("metrics.json", metrics or {"steps": 1})


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
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(RunDirectoryError, match="notes.txt is not a directory: expected a run directory"):
        load_run(tmp_path / "notes.txt")
    with pytest.raises(RunDirectoryError, match="is not a run directory: it has no run.json or config.json"):
        load_run(tmp_path)
    RunDirectory(tmp_path).start(RunConfig.default(), "new")
    (tmp_path / "model.keras").write_bytes(b"x")
    with pytest.raises(RunDirectoryError, match=r"unfinished run: loss_curve\.png, history\.json, samples\.txt, "
                                                r"metrics\.json missing"):
        load_run(tmp_path)


def test_load_run_refuses_a_damaged_model(tmp_path):
    _complete_run(tmp_path, RunConfig.default())
    with pytest.raises(RunDirectoryError, match=r"model\.keras cannot be loaded: it is not a \.keras archive \(a zip "
                                                r"file\), so it is damaged or was cut short: .*\(--overwrite\)"):
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


def _tiny_model():
    keras.utils.set_random_seed(0)
    model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    model(np.zeros((1, 4), "int32"))
    return model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pretraining run, its "continue" fine-tuning and that one's "sft" fine-tuning, each complete, with a tiny
    real model (the training itself is `pretrain`'s and `finetune_run`'s to test)."""
    folder = tmp_path_factory.mktemp("runs")
    model = _tiny_model()
    pretrained = RunDirectory(folder / "pretrain")
    pretrained.start(RunConfig.default("lstm", data={"tokenizer": "byte"}, train={"sequence_length": 64,
                                                                                  "precision": "mixed_bfloat16"}),
                     "new")
    _finish(pretrained, model)
    continued = RunDirectory(folder / "continue", "finetune")
    continued.start(FinetuneConfig("continue", "shakespeare"), "new", parent=load_run(pretrained.path))
    _finish(continued, model)
    answered = RunDirectory(folder / "sft", "finetune")
    answered.start(FinetuneConfig("sft", "qa", sequence_length=32), "new", parent=load_run(continued.path))
    _finish(answered, model)
    return pretrained, continued, answered


def test_load_run_reads_every_kind_with_its_parents(runs):
    pretrained, continued, answered = (load_run(run.path) for run in runs)
    assert isinstance(pretrained, LoadedRun) and pretrained.kind == "pretrain" and pretrained.parent is None
    assert pretrained.config == RunDirectory(runs[0].path).read_config() and type(pretrained.model) is LSTMLM
    assert (pretrained.template, pretrained.metrics) == (None, {"steps": 1})
    assert pretrained.model.compiled and pretrained.precision == "mixed_bfloat16"

    assert continued.kind == "finetune" and continued.config == FinetuneConfig("continue", "shakespeare")
    assert continued.parent.kind == "pretrain" and continued.parent.path == os.path.abspath(runs[0].path)
    assert continued.parent.config == pretrained.config and continued.parent.model is None
    assert answered.parent.config == continued.config and answered.parent.parent.config == pretrained.config
    # What the command line asks, answered from the kind and the config, through the parents.
    assert [run.is_classifier for run in (pretrained, continued, answered)] == [False, False, False]
    assert [run.corpus for run in (pretrained, continued, answered)] == ["kjv", "shakespeare", "shakespeare"]
    assert [run.sequence_length for run in (pretrained, continued, answered)] == [64, 64, 32]
    assert answered.precision == "mixed_bfloat16"  # the model loads in its root's precision
    record = json.loads(pathlib.Path(runs[2].file("finetune.json")).read_text())
    assert record["parent_kind"] == "finetune" and record["parent_config"]["parent_config"] == pretrained.config.to_dict()


def test_a_classifier_run_says_so_and_a_template_is_read_when_present(runs, tmp_path):
    parent = load_run(runs[0].path)
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "a", "label": "x"}\n')
    run = RunDirectory(tmp_path / "classify", "finetune")
    run.start(FinetuneConfig("classify", str(labelled)), "new", parent=parent)
    _finish(run, _tiny_model())
    assert load_run(run.path).is_classifier and load_run(run.path).template is None
    template = pathlib.Path(run.template_path)
    template.write_text('{"kind": "fields", "prompt": "<en>{source}<zh>", "completion": "{target}"}')
    assert load_run(run.path).template == PromptTemplate("<en>{source}<zh>", "{target}")
    template.write_text("[1, 2]")
    with pytest.raises(RunDirectoryError, match=r"template\.json is damaged: template config \[1, 2\] is invalid.* "
                                                r"\(restore the file, or train the run again with overwrite=True, "
                                                r"--overwrite\)$"):
        load_run(run.path)


def test_finetune_json_is_type_checked_when_read_back(runs, tmp_path):
    run = tmp_path / "copy"
    os.makedirs(run)
    for name in ("run.json", "finetune.json", "history.json", "metrics.json"):
        (run / name).write_bytes(pathlib.Path(runs[1].file(name)).read_bytes())
    (run / "model.keras").write_bytes(b"checked after the config")
    record = json.loads((run / "finetune.json").read_text())
    for config, message in [({**record["config"], "steps": "10"}, r"finetune\.steps='10' has the type str: expected int"),
                            ({**record["config"], "stepz": 10}, r"unknown key finetune\.stepz"),
                            ({"data": "qa"}, r"the config has no finetune\.task")]:
        (run / "finetune.json").write_text(json.dumps({**record, "config": config}))
        with pytest.raises(RunDirectoryError, match=r"finetune\.json is damaged: " + message + r".* \(restore the file"):
            load_run(run)
    (run / "finetune.json").write_text(json.dumps({"config": record["config"]}))
    with pytest.raises(RunDirectoryError, match="expected a JSON object with the keys config, parent, parent_config"):
        load_run(run)


def test_one_planner_for_every_kind(runs, tmp_path):
    parent = load_run(runs[0].path)
    config = FinetuneConfig("sft", "qa")
    run = RunDirectory(tmp_path / "sft", "finetune")
    assert run.plan(config) == "new"
    with pytest.raises(ValueError, match="starts from a parent run"):
        run.start(config, "new")
    run.start(config, "new", parent=parent)
    with pytest.raises(RunDirectoryError, match="holds an unfinished finetune run, which does not resume"):
        run.plan(config)
    with pytest.raises(RunDirectoryError, match=r"holds an unfinished run: model\.keras, history\.json, "
                                                r"metrics\.json missing\. A finetune run does not resume"):
        load_run(run.path)
    assert run.plan(config, overwrite=True) == "overwrite"
    with pytest.raises(RunDirectoryError, match="holds a finetune run, not a pretrain run"):
        RunDirectory(run.path).plan(RunConfig.default())
    with pytest.raises(RunDirectoryError, match="holds a complete run"):
        RunDirectory(runs[1].path, "finetune").plan(config)


def test_a_failure_of_tensorflow_s_runtime_while_loading_is_not_called_a_damaged_file(tmp_path, monkeypatch):
    # On a worker of a multi-worker fine-tuning whose other worker stopped, the collective ops of the model's loading
    # failed: the message called the parent's model.keras damaged and advised training that run again.
    path = tmp_path / "model.keras"
    path.write_bytes(b"")  # any file: load_model is replaced below

    def lost_worker(*args, **kwargs):
        raise tf.errors.UnavailableError(None, None, "Collective ops is aborted by: Socket closed")

    monkeypatch.setattr(zipfile, "is_zipfile", lambda _: True)
    monkeypatch.setattr(keras.saving, "load_model", lost_worker)
    with pytest.raises(tf.errors.UnavailableError, match="Socket closed"):
        load_model_file(str(path), "float32")
