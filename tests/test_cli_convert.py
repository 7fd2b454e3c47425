"""`tfllm convert`: a GPT-2 checkpoint into a run directory that `generate` and `evaluate --corpus` read; bad input
is one line and exit status 2. In this process (`cli.main`), except the console script's help."""

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess

import pytest

from tests.gpt2_checkpoints import reference_checkpoints
from tests.test_cli import SCRIPT, ENV, tfllm_main
from tests.training.common import write_kjv_verses
from tfllm import cli
from tfllm.data import load_texts
from tfllm.evaluation import evaluate_texts
from tfllm.training import load_run


@pytest.fixture(scope="module")
def references():
    return reference_checkpoints()


@pytest.fixture(scope="module")
def converted(references, tmp_path_factory):
    """The Hugging Face reference converted by `tfllm convert`: `(run directory, its stdout)`."""
    run_dir = tmp_path_factory.mktemp("runs") / "gpt2"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # capsys is per test
        assert cli.main(["convert", references.hugging_face, str(run_dir)]) == 0
    return run_dir, out.getvalue()


def test_convert_writes_a_run_directory_and_says_what_it_converted(references, converted):
    run_dir, out = converted
    assert out.splitlines() == [
        f"Converted the GPT-2 Hugging Face model {references.hugging_face}: 2 layers, width 32, 2 heads, vocabulary "
        "1,000, context 64, 59,520 parameters.",
        f"Run directory: {run_dir}. Next: tfllm generate {run_dir} --prompt \"The meaning of life is\"",
    ]
    assert sorted(os.listdir(run_dir)) == ["convert.json", "metrics.json", "model.keras", "run.json"]
    record = json.loads((run_dir / "convert.json").read_text())
    assert (record["source"], record["format"], record["sequence_length"]) == (references.hugging_face,
                                                                               "hugging_face", 64)
    assert record["checkpoint_config"]["model_type"] == "gpt2"
    assert json.loads((run_dir / "run.json").read_text())["kind"] == "convert"
    run = load_run(run_dir)  # what generate, evaluate, finetune and export read
    assert (run.kind, run.precision, run.corpus, run.sequence_length, run.is_classifier) == (
        "convert", "float32", None, 64, False)
    assert run.model.tokenizer.eos_id == 999 and run.metrics["parameters"] == run.model.count_params() == 59520


def test_generate_and_evaluate_read_the_converted_run(references, converted, capsys, tmp_path):
    run_dir, _ = converted
    result = tfllm_main(capsys, "generate", run_dir, "--prompt", "In the beginning", "--temperature", "0",
                        "--max-new-tokens", "12")
    assert result.returncode == 0, result.stderr
    reference = references.keras_hub_model  # the same weights; its max_length counts <|endoftext|> and 7 prompt ids
    reference.compile(sampler="greedy", jit_compile=False)
    assert result.stdout == reference.generate("In the beginning", max_length=1 + 7 + 12) + "\n"

    corpus = write_kjv_verses(tmp_path)
    result = tfllm_main(capsys, "evaluate", run_dir, "--corpus", corpus, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    expected = evaluate_texts(load_run(run_dir).model, load_texts(corpus, "validation"))
    assert (report["corpus"], report["split"], report["tokens"], report["bytes"], report["documents"]) == (
        corpus, "validation", expected.tokens, expected.bytes, expected.documents) and expected.documents == 3
    assert report["loss"] == pytest.approx(expected.loss, rel=1e-6)
    assert report["bits_per_byte"] == pytest.approx(expected.bits_per_byte, rel=1e-6)


def test_the_printed_requests_of_a_converted_runs_export_are_within_its_limit(converted, capsys, tmp_path):
    # A converted run has no sampling settings of its own: the printed generate request asked for 32 new tokens,
    # whatever the export's limit, and the export refused it.
    run_dir, _ = converted
    exported = tfllm_main(capsys, "export", run_dir, tmp_path / "served", "--no-xla", "--max-new-tokens-limit", 10)
    assert exported.returncode == 0, exported.stderr
    bodies = [json.loads(shlex.split(line)[-1]) for line in exported.stdout.splitlines()
              if line.strip().startswith("curl ")]
    assert bodies[1]["signature_name"] == "generate" and bodies[1]["instances"][0]["max_new_tokens"] == 10


@pytest.mark.parametrize("command, message", [
    (["evaluate"], "{run} learned from no corpus tfllm knows (a converted checkpoint, or a fine-tuning of one): give "
                   "one with --corpus NAME|PATH (e.g. --corpus kjv)"),
    (["chat"], "{run} holds a language model without a chat template, not a chat model: use tfllm generate {run} "
               "--prompt TEXT (tfllm train --task chat trains a chat model)"),
])
def test_what_a_converted_run_cannot_do_is_one_line(converted, capsys, command, message):
    run_dir, _ = converted
    result = tfllm_main(capsys, *command, run_dir)
    assert result.returncode == 2
    assert result.stderr == f"tfllm {command[0]}: error: {message.format(run=run_dir)}\n"


def test_convert_refuses_bad_input_in_one_line(references, converted, capsys, tmp_path):
    run_dir, _ = converted

    def refused(*args):
        result = tfllm_main(capsys, "convert", *args)
        assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, result
        return result.stderr.removeprefix("tfllm convert: error: ").rstrip("\n")

    assert refused(tmp_path / "missing", tmp_path / "out") == (
        f"{tmp_path / 'missing'} does not exist: expected a KerasHub GPT-2 preset or a Hugging Face GPT-2 model "
        "directory")
    assert refused(tmp_path, tmp_path / "out").startswith(f"{tmp_path} has no config.json: expected a KerasHub preset")
    llama = shutil.copytree(references.hugging_face, tmp_path / "llama")
    config = json.loads((llama / "config.json").read_text())
    (llama / "config.json").write_text(json.dumps({**config, "model_type": "llama"}))
    assert refused(llama, tmp_path / "out") == (f"{llama} holds a Hugging Face llama model: only GPT-2 (model_type "
                                                "\"gpt2\") converts")
    assert refused(references.hugging_face, run_dir).startswith(f"{run_dir} holds a complete run: use overwrite=True")
    assert not (tmp_path / "out").exists()


def test_convert_a_keras_hub_preset_over_a_run_with_overwrite(references, capsys, tmp_path):
    run_dir = tmp_path / "run"
    assert tfllm_main(capsys, "convert", references.hugging_face, run_dir).returncode == 0
    result = tfllm_main(capsys, "convert", references.preset, run_dir, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Converted the GPT-2 KerasHub preset {references.preset}: 2 layers, width 32")
    assert json.loads((run_dir / "convert.json").read_text())["format"] == "keras_hub"


def test_the_console_script_lists_convert():
    result = subprocess.run([SCRIPT, "convert", "--help"], capture_output=True, text=True, env=ENV, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: tfllm convert [-h] [--overwrite] [--debug] SRC OUT_RUN_DIR")
