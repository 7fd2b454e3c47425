"""A time budget (`train.time_budget_minutes`): the step count it fixes, records and keeps on resuming; the time
left for the whole run that the progress bar shows; bad budgets."""

import importlib
import json
import math
import re

import numpy as np
import pytest

from tests.training.common import PEAK_FLOPS, InterruptAfter, tiny_config, trained_only, write_kjv_verses
from tfllm import cli
from tfllm.training import RunConfig, RunDirectory, pretrain
from tfllm.training.callbacks.progress import RunProgress
from tfllm.training.pretrain import MEASURED_STEPS, RunInterrupted

# The module (`from tfllm.training import pretrain` is the function of the same name).
pretrain_module = importlib.import_module("tfllm.training.pretrain")


@pytest.fixture(scope="module")
def verses(tmp_path_factory):
    return write_kjv_verses(tmp_path_factory.mktemp("corpus"))


def _budget_config(verses, **train):
    # The warmup covers the timed steps, where the learning rate does not depend on the step count.
    return tiny_config(verses, "lstm", **{"steps": 30, "eval_every": 10, "checkpoint_every": 5, "warmup_steps": 20,
                                          "time_budget_minutes": 60.0, **train})


def test_a_spent_budget_stops_the_run_after_the_timed_steps(verses, tmp_path):
    config = _budget_config(verses, time_budget_minutes=1e-4)  # 6 ms: spent before the timing ends
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    budget = json.loads((tmp_path / "run/run.json").read_text())["time_budget"]
    assert (budget["steps"], budget["configured_steps"], budget["measured_steps"]) == (MEASURED_STEPS, 30, 20)
    assert budget["seconds_per_step"] > 0 and budget["seconds_per_validation"] > 0
    metrics = result.metrics
    assert (metrics["steps"], metrics["configured_steps"], metrics["optimizer_updates"]) == (20, 30, 20)
    assert metrics["time_budget"] == budget and metrics["tokens_seen"] == 20 * 4 * 16
    assert result.history["steps"] == list(range(1, 21))


def test_a_budget_that_fits_every_step_keeps_them(verses, tmp_path):
    result = pretrain(_budget_config(verses), tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    assert result.metrics["steps"] == 30 == result.metrics["time_budget"]["steps"]
    assert [entry["step"] for entry in result.history["epochs"]] == [10, 20, 30]  # a validation ends the timing


def test_the_fixed_count_is_recorded_kept_on_resuming_and_trains_as_if_configured(verses, tmp_path, monkeypatch):
    config = _budget_config(verses, steps=40)
    # The same run configured for 30 steps; its training phase is all that is compared.
    reference = trained_only(tiny_config(verses, "lstm", steps=30, eval_every=10, checkpoint_every=5, warmup_steps=20),
                             tmp_path / "reference")

    # As if the machine were slow: 10 more steps fit after the 20 timed ones.
    monkeypatch.setattr(pretrain_module, "steps_within_budget", lambda *args: 10)
    with pytest.raises(RunInterrupted, match="saved at step 23 of 30"):
        pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS, callbacks=[InterruptAfter(23)])
    assert RunDirectory(tmp_path / "run").recorded("time_budget")["steps"] == 30

    def timed_again(*args):
        raise AssertionError("a resumed run timed its steps again")

    monkeypatch.setattr(pretrain_module, "steps_within_budget", timed_again)
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)  # steps 24-30
    assert result.resumed_from_step == 23 and result.history["steps"] == list(range(1, 31))
    assert (result.metrics["steps"], result.metrics["optimizer_updates"], result.metrics["time_budget"]["steps"]) == (
        30, 30, 30)
    # The cosine decayed over 30 steps: at step 30 the learning rate is the schedule's floor, 0.1 x the peak.
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.1 * config.train.learning_rate)
    np.testing.assert_allclose(result.history["losses"], reference.state.history.losses, rtol=1e-5)
    for got, want in zip(result.model.get_weights(), reference.model.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_progress_bar_shows_the_time_left_for_the_whole_run(capsys):
    now = [0.0]
    progress = RunProgress(total_steps=100, initial_step=20, eval_every=10, clock=lambda: now[0])
    progress.set_params({"verbose": 1, "epochs": 10, "steps": 10})
    progress.on_train_begin()
    progress.on_epoch_begin(2)
    progress.progbar.interval = 0  # show every step, however fast the test runs
    for batch in range(4):  # steps 21-24: 6 s to trace the first, then 0.25 s each
        now[0] += 6.0 if batch == 0 else 0.25
        progress.on_train_batch_end(batch, {"loss": 2.0})
    assert (progress.seconds_per_step, progress.seconds_left()) == (0.25, 76 * 0.25)  # no validation timed yet
    bar = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out.split("\r")[-1])  # without the colours
    assert bar.startswith(" 4/10 ") and " 19s " in bar  # the bar's time left: the run's 19 s, not the epoch's 1.5 s
    for batch in range(4, 10):
        now[0] += 0.25
        progress.on_train_batch_end(batch, {"loss": 2.0})
    progress.on_test_begin()
    now[0] += 2.0
    progress.on_test_end()
    progress.on_epoch_end(2, {"loss": 2.0})
    # 70 steps of 0.25 s and 7 validations (steps 40, ..., 100) of 2 s.
    assert progress.step == 30 and progress.seconds_left() == 70 * 0.25 + 7 * 2.0 == 31.5
    assert "step 30/100 (30%), 10s elapsed, about 32s left" in capsys.readouterr().out


@pytest.mark.parametrize("budget", [-1, 0, math.inf])
def test_a_budget_that_is_not_a_positive_number_is_refused(budget, verses):
    with pytest.raises(ValueError, match=r"train\.time_budget_minutes=.* is invalid: expected a number > 0"):
        _budget_config(verses, time_budget_minutes=budget).validate()


def test_the_command_line_takes_minutes_or_none(verses, tmp_path, capsys):
    code = cli.main(["train", "--corpus", str(verses), "--time-budget", "-5", "--output-dir", str(tmp_path / "run")])
    assert code == 2 and "train.time_budget_minutes=-5.0 is invalid: expected a number > 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    for flag, minutes in (("none", None), ("9", 9.0)):
        args = cli.build_parser().parse_args(["train", "--time-budget", flag])
        values = cli._command_line_values(args, RunConfig.sections())
        assert RunConfig.default(train=values["train"]).train.time_budget_minutes == minutes
