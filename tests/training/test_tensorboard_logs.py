"""A run's TensorBoard logs, read back from the event files with TensorFlow alone: the training curves every
`train.log_every` steps, the validations, and the samples as text."""

import os

import pytest
import tensorflow as tf

from tests.training.common import PEAK_FLOPS, tiny_config, write_kjv_verses
from tfllm import cli
from tfllm.choices import ARCHITECTURES
from tfllm.training import RunConfig, pretrain

STEP_TAGS = ("step_loss", "step_learning_rate", "step_tokens_per_second", "step_mfu")


def _events(folder):
    """Every value of the event files in `folder`, as {tag: {step: value}}; scalars as floats, texts as lists."""
    values = {}
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "text":
                    values.setdefault(value.tag, {})[event.step] = [text.decode("utf-8") for text in array.ravel()]
                else:
                    values.setdefault(value.tag, {})[event.step] = float(array)
    return values


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_a_default_run_of_all_its_steps_gets_at_least_200_points_per_curve(architecture):
    train = RunConfig.default(architecture).train
    assert train.steps // train.log_every >= 200  # fewer when the time budget keeps fewer steps


def test_log_every_has_a_described_flag_and_is_checked(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--log-every N steps between TensorBoard points of the training loss" in help_text
    with pytest.raises(ValueError, match=r"train\.log_every=0 is invalid"):
        RunConfig.default("lstm", train={"log_every": 0}).validate()


def test_a_tiny_run_logs_every_n_steps_its_validations_and_its_samples(tmp_path):
    config = tiny_config(write_kjv_verses(tmp_path), "lstm", steps=12, eval_every=6, log_every=2, sample_every=5)
    result = pretrain(config, tmp_path / "run", verbose=0, peak_flops=PEAK_FLOPS)
    logs = tmp_path / "run" / "logs"
    assert sorted(os.listdir(logs)) == ["samples", "train", "validation"]

    train = _events(logs / "train")
    for tag in STEP_TAGS:
        assert sorted(train[tag]) == [2, 4, 6, 8, 10, 12], tag  # steps // log_every points, by global step
    losses = dict(zip(result.history["steps"], result.history["losses"]))
    for step, value in train["step_loss"].items():
        assert value == pytest.approx((losses[step - 1] + losses[step]) / 2)  # the mean of the two steps
    rates = [train["step_learning_rate"][step] for step in sorted(train["step_learning_rate"])]
    assert 0 < rates[-1] < rates[0] <= config.train.learning_rate  # warmup of 1 step, then the cosine decay
    assert all(value > 0 for value in train["step_tokens_per_second"].values())
    assert all(0 < value < 1 for value in train["step_mfu"].values())
    assert sorted(train["epoch_loss"]) == [6, 12]

    validation = _events(logs / "validation")
    assert sorted(validation["epoch_loss"]) == [6, 12]
    assert validation["epoch_loss"][12] == pytest.approx(result.history["epochs"][-1]["val_loss"])

    samples = _events(logs / "samples")["samples"]
    assert sorted(samples) == [5, 10, 12]  # every 5 steps, and the final sample, made after training
    final = {sample["prompt"]: sample["text"] for sample in result.metrics["samples"]}
    assert samples[12] == ["\n".join("    " + line for line in final[prompt].splitlines())
                           for prompt in config.train.sample_prompts]
