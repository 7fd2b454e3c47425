"""End-to-end pretraining runs of tiny models on a few KB of text: files, numbers, resuming, divergence, precision,
gradient accumulation and distribution."""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

from tests.training.common import (
    PEAK_FLOPS, InterruptAfter, files_under, tiny_config, trained_only, write_kjv_verses, write_repetitive_corpus,
)
from tfllm.data import load_texts
from tfllm.training import (
    RunConfig,
    RunDirectory,
    RunDirectoryError,
    TrainingDivergedError,
    get_strategy,
    load_run,
    pretrain,
)
from tfllm.training.pretrain import build_run, open_run, train_run, write_results

METRICS = {
    "steps", "optimizer_updates", "tokens_seen", "train_loss", "validation_loss", "validation_perplexity",
    "bits_per_byte", "validation_tokens_per_byte", "tokens_per_second", "mfu", "peak_flops", "wall_time_seconds",
    "resumed_from_step", "parameters", "vocab_size", "num_replicas", "precision", "samples",
}
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def verses(tmp_path_factory):
    return write_kjv_verses(tmp_path_factory.mktemp("corpus"))


def _weights(model):
    return [keras.ops.convert_to_numpy(weight) for weight in model.weights]


def _scalars(log_dir):
    values = {}
    for name in os.listdir(log_dir):
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                values.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return values


@pytest.mark.parametrize("architecture", ["transformer", "lstm", "rnn"])
def test_a_tiny_run_writes_every_file_with_sane_contents(architecture, verses, tmp_path, capsys):
    config = tiny_config(verses, architecture, sample_every=3)
    verbose = 1 if architecture == "transformer" else 0
    result = pretrain(config, tmp_path / "run", verbose=verbose, peak_flops=PEAK_FLOPS)
    run = tmp_path / "run"

    assert {"config.json", "model.keras", "metrics.json", "loss_curve.png", "samples.txt", "history.json",
            "checkpoints/state.json", "checkpoints/step-000000006.weights.h5", "checkpoints/tokenizer.json"} <= set(
        files_under(run))
    assert not [name for name in files_under(run) if ".tmp-" in name]
    assert RunConfig.from_json(run / "config.json") == config

    metrics = json.loads((run / "metrics.json").read_text())
    assert METRICS <= set(metrics)
    assert (metrics["steps"], metrics["optimizer_updates"], metrics["resumed_from_step"]) == (6, 6, 0)
    assert metrics["tokens_seen"] == 6 * 4 * 16 and metrics["num_replicas"] == 1
    # Near ln(259) = 5.56 nats (a uniform guess) after 6 steps; the simple RNN starts higher (its tied embeddings
    # have a standard deviation of 1, so its first logits are large).
    assert 0 < metrics["validation_loss"] < 2 * math.log(259) and 0 < metrics["train_loss"] < 2 * math.log(259)
    assert metrics["validation_perplexity"] == pytest.approx(math.exp(metrics["validation_loss"]))
    assert metrics["bits_per_byte"] == pytest.approx(
        metrics["validation_loss"] * metrics["validation_tokens_per_byte"] / math.log(2))
    assert 1.0 < metrics["validation_tokens_per_byte"] < 1.1  # bytes, plus the eos of each verse
    # Exact: every validation token predicted once (evaluate_texts), so the counts are the split's.
    assert metrics["validation_bytes"] == sum(len(text) for text in load_texts(config.data.corpus, "validation"))
    assert metrics["validation_tokens"] == metrics["validation_bytes"] + metrics["validation_documents"]
    assert metrics["tokens_per_second"] > 0 and 0 < metrics["mfu"] < 1
    assert metrics["parameters"] == result.model.count_params()
    assert metrics["vocab_size"] == result.model.vocab_size == result.model.tokenizer.vocab_size
    assert [sample["prompt"] for sample in metrics["samples"]] == list(config.train.sample_prompts)
    assert math.isnan(metrics["known_word_share"]) or 0 <= metrics["known_word_share"] <= 1
    assert "memoriz" in metrics["memorization"]["summary"]
    assert all(sample["text"].startswith(sample["prompt"]) and sample["step"] == 6 for sample in metrics["samples"])
    assert result.metrics["validation_loss"] == metrics["validation_loss"]

    assert (run / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (run / "samples.txt").read_text()
    assert samples.startswith("=== step 3 ===") and "=== step 6 ===" in samples
    assert samples.count("--- prompt: 'In the beginning'") == 2
    history = json.loads((run / "history.json").read_text())
    assert history["steps"] == [1, 2, 3, 4, 5, 6]
    assert [entry["step"] for entry in history["epochs"]] == [3, 6]
    assert {"loss", "val_loss", "tokens_per_second", "mfu"} <= set(history["epochs"][-1])

    loaded = load_run(run)
    assert (loaded.kind, loaded.config, loaded.parent, loaded.metrics) == ("pretrain", config, None, metrics)
    model = loaded.model
    assert type(model) is type(result.model)
    for want, got in zip(_weights(result.model), _weights(model)):
        np.testing.assert_array_equal(got, want)
    assert model.generate("In the", max_new_tokens=4, seed=0).startswith("In the")

    if architecture == "transformer":
        train_scalars, validation_scalars = _scalars(run / "logs" / "train"), _scalars(run / "logs" / "validation")
        assert set(train_scalars["epoch_loss"]) == {3, 6}  # by global step
        assert {"epoch_tokens_per_second", "epoch_mfu", "epoch_learning_rate"} <= set(train_scalars)
        assert validation_scalars["epoch_loss"][6] == pytest.approx(metrics["validation_loss_estimate"])
        printed = capsys.readouterr().out
        for expected in ('architecture: "transformer"', "Steps 1-3 of 6", "Steps 4-6 of 6", "tokens_per_second",
                         "val_loss", "step 6/6 (100%)", "Samples at step 6:", "bits per byte"):
            assert expected in printed


def test_the_four_phases_run_one_by_one(verses, tmp_path):
    config = tiny_config(verses, "lstm", steps=4, eval_every=2, checkpoint_every=2)
    with pytest.raises(ValueError, match=r"train\.steps=0 is invalid"):
        open_run(config.replace(train={"steps": 0}), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()  # checked before anything is written

    opened = open_run(config, tmp_path / "run", verbose=0)
    assert (opened.resume, opened.writer, opened.strategy.num_replicas_in_sync) == (False, True, 1)
    assert files_under(tmp_path / "run") == ["config.json", "run.json"] and len(opened.texts.validation) == 3
    built = build_run(opened)
    assert built.start_step == 0 and built.state.history.steps == [] and built.model.optimizer.built
    assert built.validation.steps == 2 and "checkpoints/tokenizer.json" in files_under(tmp_path / "run")
    trained = train_run(opened, built, peak_flops=PEAK_FLOPS)
    assert built.state.history.steps == [1, 2, 3, 4] and [entry["step"] for entry in built.state.history.epochs] == [
        2, 4]
    assert trained.final["val_loss"] == built.state.history.epochs[-1]["val_loss"]
    state = json.loads((tmp_path / "run/checkpoints/state.json").read_text())
    assert state["step"] == 4 and state["history"]["steps"] == [1, 2, 3, 4] and state["elapsed_seconds"] > 0
    assert not RunDirectory(tmp_path / "run").is_complete()  # trained, but no results yet

    reopened = open_run(config, tmp_path / "run", verbose=0)  # what a second start would see now
    rebuilt = build_run(reopened)
    assert reopened.resume and rebuilt.start_step == 4 and rebuilt.state.history.steps == [1, 2, 3, 4]
    assert rebuilt.state.elapsed_before == state["elapsed_seconds"]
    for want, got in zip(_weights(built.model), _weights(rebuilt.model)):
        np.testing.assert_array_equal(got, want)

    metrics = write_results(opened, built, trained)
    assert RunDirectory(tmp_path / "run").is_complete()
    assert metrics["validation_loss_estimate"] == trained.final["val_loss"] and metrics["steps"] == 4
    assert json.loads((tmp_path / "run/metrics.json").read_text())["validation_loss"] == metrics["validation_loss"]


def test_input_found_bad_after_the_directory_is_started_leaves_no_run_behind(verses, tmp_path):
    # A validation split too short for one batch is known once the tokenizer is made, after run.json and
    # config.json were written: the directory then held an unfinished run of that config, which refused the
    # corrected command ("an unfinished run of another config").
    too_big = tiny_config(verses, "lstm", steps=2, batch_size=64)
    for run_dir in (tmp_path / "new", tmp_path / "empty"):
        if run_dir.name == "empty":
            run_dir.mkdir()
        with pytest.raises(ValueError, match=r"the validation split is too short for one batch of "
                                             r"train\.batch_size=64"):
            pretrain(too_big, run_dir, verbose=0)
        assert (run_dir.exists(), files_under(run_dir) if run_dir.exists() else []) == (run_dir.name == "empty", [])
        assert RunDirectory(run_dir).plan(tiny_config(verses, "lstm", steps=2)) == "new"


def test_the_loss_goes_down_on_a_repetitive_corpus(tmp_path):
    config = tiny_config(write_repetitive_corpus(tmp_path), model={"hidden_dim": 32, "intermediate_dim": 64},
                         steps=40, batch_size=8, sequence_length=32, learning_rate=1e-2, warmup_steps=5,
                         eval_every=40, checkpoint_every=40)
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    losses = result.history["losses"]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:3])
    assert result.metrics["validation_loss"] < 0.6 * math.log(259)


@pytest.fixture(scope="module")
def uninterrupted(verses, tmp_path_factory):
    """An 8-step run without interruption (its training phase), to compare resumed runs with. With dropout: a
    resumed run draws the dropout masks of an uninterrupted one (the checkpoint holds the seed generators' states,
    which `save_weights` leaves out; without them, the resumed steps drew the first steps' masks again)."""
    config = tiny_config(verses, "lstm", steps=8, model={"dropout": 0.2})
    built = trained_only(config, tmp_path_factory.mktemp("uninterrupted") / "run")
    return config, built.state.history.to_dict(), _weights(built.model)


def _assert_same_training(result, uninterrupted):
    _, history, weights = uninterrupted
    assert result.history["steps"] == list(range(1, 9))
    np.testing.assert_allclose(result.history["losses"], history["losses"], rtol=1e-5)
    for want, got in zip(weights, _weights(result.model)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_interrupted_run_resumes_mid_epoch_and_ends_at_the_requested_step(uninterrupted, tmp_path):
    config = uninterrupted[0]
    with pytest.raises(KeyboardInterrupt):
        pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS, callbacks=[InterruptAfter(5)])
    with pytest.raises(RunDirectoryError, match="unfinished run"):
        load_run(tmp_path / "run")
    # Ctrl-C saves the step it stopped at (5), not only the last periodic checkpoint (4).
    assert json.loads((tmp_path / "run/checkpoints/state.json").read_text())["step"] == 5

    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)  # step 6, then 7-8
    assert result.resumed_from_step == 5 and result.metrics["resumed_from_step"] == 5
    assert int(result.model.optimizer.iterations) == 8 == result.metrics["optimizer_updates"]
    assert [entry["step"] for entry in result.history["epochs"]] == [3, 6, 8]
    _assert_same_training(result, uninterrupted)  # the same batches and updates as without the interruption
    with pytest.raises(RunDirectoryError, match="complete run"):
        pretrain(config, tmp_path / "run", verbose=0)

    # Killed after the last checkpoint, before the final files: the next start only finishes the files.
    (tmp_path / "run/metrics.json").unlink()
    (tmp_path / "run/.tmp-killed-while-saving.keras").write_bytes(b"half")
    finished = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    assert finished.resumed_from_step == 8 and finished.metrics["optimizer_updates"] == 8
    assert finished.metrics["validation_loss"] == pytest.approx(result.metrics["validation_loss"], rel=1e-5)
    assert [entry["step"] for entry in finished.history["epochs"]] == [3, 6, 8]
    # It trains no step: its speed is that of the session that trained the last ones (it was NaN, null in JSON).
    for key in ("tokens_per_second", "mfu", "peak_flops"):
        assert finished.metrics[key] == pytest.approx(result.metrics[key]) and finished.metrics[key] > 0, key
    assert not (tmp_path / "run/.tmp-killed-while-saving.keras").exists()
    assert load_run(tmp_path / "run").config == config


class _InterruptTheFirstValidation(keras.callbacks.Callback):
    def on_test_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt


def test_a_run_interrupted_during_a_validation_runs_it_when_it_resumes(uninterrupted, tmp_path):
    # The checkpoint of an epoch's last step is saved before its validation, and a resumed run starts with the next
    # epoch: the validation of step 3 was never run, so the history (and a task's best weights) went without it.
    config, history, _ = uninterrupted
    with pytest.raises(KeyboardInterrupt):
        pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS, callbacks=[_InterruptTheFirstValidation()])
    assert json.loads((tmp_path / "run/checkpoints/state.json").read_text())["step"] == 3
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    assert [entry["step"] for entry in result.history["epochs"]] == [entry["step"] for entry in history["epochs"]]
    for got, want in zip(result.history["epochs"], history["epochs"]):
        assert got["val_loss"] == pytest.approx(want["val_loss"], rel=1e-5), got["step"]
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-5), got["step"]  # the epoch's mean training loss
    _assert_same_training(result, uninterrupted)


_KILLED_RUN = """
import os, signal, sys
import keras
from tfllm.data import load_texts
from tfllm.training import RunConfig, pretrain

class KillAtStep(keras.callbacks.Callback):
    seen = 0
    def on_train_batch_end(self, batch, logs=None):
        KillAtStep.seen += 1
        if KillAtStep.seen == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)

pretrain(RunConfig.from_json(sys.argv[1]), sys.argv[2], verbose=0, callbacks=[KillAtStep()], peak_flops=1e11)
"""


def test_a_run_killed_with_sigkill_resumes_from_its_last_checkpoint(uninterrupted, tmp_path):
    config = uninterrupted[0]
    config.to_json(tmp_path / "config.json")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_RUN, str(tmp_path / "config.json"), str(tmp_path / "run"), "7"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert json.loads((tmp_path / "run/checkpoints/state.json").read_text())["step"] == 6

    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)  # steps 7-8
    assert result.resumed_from_step == 6
    assert result.metrics["optimizer_updates"] == 8 == result.metrics["steps"]
    _assert_same_training(result, uninterrupted)
    # TensorBoard draws each point once: the killed run's validation of step 6, which the resumed run ran again (its
    # checkpoint is saved before it), was taken out of the logs.
    logs = tmp_path / "run/logs"
    assert _logged_steps(logs / "validation", "epoch_loss") == [3, 6, 8] == _logged_steps(logs / "train", "epoch_loss")
    assert _logged_steps(logs / "train", "step_loss") == [5]


def _logged_steps(folder, tag):
    """The steps of every summary `tag` in the event files of `folder`, in the order they were written."""
    return [event.step for name in sorted(os.listdir(folder))
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name))
            for value in event.summary.value if value.tag == tag]


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(verses, tmp_path):
    class PoisonAfter(InterruptAfter):
        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen == self.steps:
                kernel = self.model.trainable_weights[0]
                kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    config = tiny_config(verses, "rnn", steps=8, eval_every=8)
    diverged = r"loss is nan at step 6: .* checkpoint, of step 4, is kept"
    with pytest.raises(TrainingDivergedError, match=diverged) as error:
        pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS, callbacks=[PoisonAfter(5)])
    assert (error.value.step, error.value.checkpoint_step) == (6, 4)
    state = json.loads((tmp_path / "run/checkpoints/state.json").read_text())
    assert state["step"] == 4 and state["history"]["steps"] == [1, 2, 3, 4]
    with h5py.File(tmp_path / "run/checkpoints" / state["weights"]) as weights:
        arrays = []
        weights.visititems(lambda name, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    assert arrays and all(np.all(np.isfinite(array)) for array in arrays)
    assert not (tmp_path / "run/metrics.json").exists() and not (tmp_path / "run/model.keras").exists()


def test_mixed_bfloat16_trains_and_restores_the_global_policy(verses, tmp_path):
    config = tiny_config(verses, "rnn", precision="mixed_bfloat16", eval_every=6)
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    assert keras.config.dtype_policy().name == "float32"
    assert result.model.dtype_policy.name == "mixed_bfloat16"
    assert result.model.trainable_weights[0].dtype == "float32"  # variables stay float32
    assert 0 < result.metrics["validation_loss"] < 2 * math.log(259)
    assert load_run(tmp_path / "run").model.dtype_policy.name == "mixed_bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_gradient_accumulation_applies_one_update_per_two_steps(verses, tmp_path, monkeypatch):
    # The corpus is named relative to the working directory, as a user in its folder would name it: the run records
    # its absolute path, so that `tfllm evaluate` finds it from anywhere (it recorded "verses.jsonl").
    monkeypatch.chdir(os.path.dirname(verses))
    config = tiny_config(os.path.basename(verses), "rnn", gradient_accumulation_steps=2, eval_every=6)
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    assert result.metrics["steps"] == 6 and result.history["steps"] == [1, 2, 3, 4, 5, 6]
    assert int(result.model.optimizer.iterations) == 3 == result.metrics["optimizer_updates"]
    assert RunConfig.from_json(tmp_path / "run" / "config.json").data.corpus == os.fspath(verses)


def test_mirrored_strategy_splits_the_global_batch_over_two_replicas(verses, tmp_path):
    strategy = get_strategy("mirrored")  # one per process: see tfllm.training.strategies
    with pytest.raises(ValueError, match=r"train\.batch_size=3 is not divisible by the number of replicas \(2\)"):
        pretrain(tiny_config(verses, "rnn", batch_size=3), tmp_path / "refused", strategy=strategy, verbose=0)
    assert not (tmp_path / "refused").exists()  # refused before anything was written

    result = pretrain(tiny_config(verses, "rnn", eval_every=6), tmp_path / "run", strategy=strategy, verbose=0,
                      peak_flops=PEAK_FLOPS)
    assert result.metrics["num_replicas"] == 2 and result.model.distribute_strategy is strategy
    assert result.metrics["optimizer_updates"] == 6 and 0 < result.metrics["validation_loss"] < 2 * math.log(259)
    assert isinstance(result.model.trainable_weights[0].value, tf.distribute.DistributedValues)


def test_the_same_seed_and_config_give_the_same_numbers(verses, tmp_path):
    config = tiny_config(verses, "transformer", steps=4, eval_every=2)
    first = pretrain(config, tmp_path / "first", verbose=0, peak_flops=PEAK_FLOPS)
    second = pretrain(config, tmp_path / "second", verbose=0, peak_flops=PEAK_FLOPS)
    assert first.history["losses"] == second.history["losses"]
    for key in ("validation_loss", "bits_per_byte", "train_loss", "known_word_share"):
        assert first.metrics[key] == second.metrics[key] or (math.isnan(first.metrics[key]) and math.isnan(
            second.metrics[key])), key
    assert [sample["text"] for sample in first.metrics["samples"]] == [
        sample["text"] for sample in second.metrics["samples"]]
    # Another seed trains differently (its training phase is enough to show it).
    other = trained_only(config.replace(train={"seed": 1}), tmp_path / "other")
    assert len(other.state.history.losses) == 4 and other.state.history.losses != first.history["losses"]
