"""The `tfllm` command: help, the whole life of a run in subprocesses, nothing lost on a kill, one line on bad input.

Each command runs at least once as the console script in a new process; where a test checks only what a command
writes, it runs `cli.main` in this process (`tfllm_main`) or several commands in one new process (`tfllm_session`),
which spares TensorFlow's start-up per command.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import pty
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

import tfllm
from tests.serving_process import WITHOUT_TFLLM
from tests.training.common import write_kjv_verses
from tfllm import cli
from tfllm.training import load_run
from tfllm.training.config import FinetuneConfig, RunConfig
from tfllm.training.run_directory import RUN_FORMAT

SCRIPT = shutil.which("tfllm") or str(pathlib.Path(sys.executable).with_name("tfllm"))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
TINY = {  # a Transformer that trains in seconds on the verses of three KJV chapters
    "model": {"num_layers": 1, "hidden_dim": 16, "num_heads": 2, "intermediate_dim": 32, "max_sequence_length": 32},
    "data": {"tokenizer": "byte"},
    "train": {"steps": 6, "batch_size": 4, "sequence_length": 16, "warmup_steps": 1, "eval_every": 3,
              "checkpoint_every": 3, "validation_steps": 2, "sample_tokens": 8, "sample_every": None},
}


def tfllm_command(*args, stdin=None, timeout=600):
    return subprocess.run([SCRIPT, *map(str, args)], input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=ENV, stdin=None if stdin is not None else subprocess.DEVNULL)


def tfllm_main(capsys, *args, stdin=None):
    """`tfllm ARGS` as `tfllm_command` runs it, but in this process: for tests of what a command writes.

    Not for `train` or `finetune` runs, whose default strategy would see this session's two logical CPUs."""
    capsys.readouterr()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin) if stdin is not None else saved
    try:
        code = cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        code = exit.code
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


SESSION = r"""
import contextlib, io, json, sys
from tfllm import cli

results = []
for argv in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit:
            code = exit.code
    results.append([code, out.getvalue(), err.getvalue()])
with open(sys.argv[2], "w") as file:
    json.dump(results, file)
"""


def tfllm_session(folder, *commands):
    """Runs each command (a list of `tfllm` arguments) in turn in one new process; returns their completed processes
    (exit status, standard output, standard error), as `tfllm_command` does for one."""
    argvs = [[str(arg) for arg in args] for args in commands]
    results = folder / "session.json"
    process = subprocess.run([sys.executable, "-c", SESSION, json.dumps(argvs), results], capture_output=True,
                             text=True, timeout=900, env=ENV, stdin=subprocess.DEVNULL)
    assert process.returncode == 0, process.stderr[-3000:]
    return [subprocess.CompletedProcess(argv, *result) for argv, result in zip(argvs, json.loads(results.read_text()))]


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfllm {tfllm.__version__}"


def test_console_script_is_installed():
    result = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tfllm {tfllm.__version__}"


def _help(capsys, *command):
    with pytest.raises(SystemExit) as exit:
        cli.main([*command, "--help"])
    assert exit.value.code == 0
    return capsys.readouterr().out


def _commands(parser):
    """`{name: parser}` of the subcommands `parser` was built with."""
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return commands.choices


def test_help_describes_every_command_and_option(capsys):
    commands = _commands(cli.build_parser())
    assert {"train", "evaluate", "generate", "translate", "chat", "finetune", "export", "convert"} <= set(commands)
    shown = _help(capsys)
    for name in commands:  # each listed with its one-line help
        assert re.search(rf"^ +{name} +\S", shown, re.MULTILINE), name
    for name, parser in commands.items():
        shown = _help(capsys, name)
        for action in parser._actions:
            for word in action.option_strings or [action.metavar]:
                assert word in shown, (name, word)
    # What each command is for, beyond its flags' names.
    for name, words in {"train": ["resumes"], "finetune": ["sft", "classify", "continue"],
                        "export": ["measurement"]}.items():
        shown = _help(capsys, name)
        assert all(word in shown for word in words), (name, words)


def test_help_loads_no_tensorflow():
    script = ("import sys\nfrom tfllm import cli\n"
              "for argv in (['--help'], ['train', '--help'], ['finetune', '--help']):\n"
              "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
              "print(sorted({name.split('.')[0] for name in sys.modules} & {'tensorflow', 'keras', 'numpy'}))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=ENV)
    assert result.returncode == 0, result.stderr
    assert "--gradient-accumulation" in result.stdout and "--learning-rate" in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"


def _flags(sections):
    """The command line that sets every key of `sections` (a config's `to_dict()`) by its flag."""
    argv = []
    for section, values in sections.items():
        for key, value in values.items():
            flag = "--" + cli.FLAG_NAMES.get(f"{section}.{key}", key.replace("_", "-"))
            if key == "clean":
                argv.append(flag if value else "--no-clean")
            elif isinstance(value, list):
                argv += [flag, *value]
            else:
                argv += [flag, "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)]
    return argv


def test_every_config_key_has_a_flag():
    config = RunConfig.default("transformer", model={"position_embedding": "rotary"},
                               data={"tokenizer": "char", "vocab_size": None, "clean": True},
                               train={"sample_prompts": ["In the", "And"], "jit_compile": False, "learning_rate": 1e-4,
                                      "validation_steps": None})
    args = cli.build_parser().parse_args(["train", *_flags(config.to_dict())])
    assert RunConfig.from_dict(cli._command_line_values(args, RunConfig.sections())) == config  # no key left out
    finetune = FinetuneConfig("sft", "qa", steps=5, batch_size=2, sequence_length=64, learning_rate=0.01, seed=3)
    args = cli.build_parser().parse_args(["finetune", "runs/x", *_flags({"finetune": finetune.to_dict()})])
    assert FinetuneConfig.from_dict(cli._command_line_values(args, {"finetune": FinetuneConfig})["finetune"]) == \
        finetune
    assert {field.name for field in dataclasses.fields(FinetuneConfig)} == set(finetune.to_dict())


def test_set_takes_any_key_as_yaml_and_names_what_is_wrong():
    parser, sections = cli.build_parser(), RunConfig.sections()
    args = parser.parse_args(["train", "--steps", "7", "--set", "train.learning_rate=1e-3", "--set",
                              "train.sample_prompts=[In the, And]", "--set", "data.vocab_size=null", "--set",
                              "model.dropout=0.1", "--set", "train.jit_compile=auto"])
    assert cli._command_line_values(args, sections) == {
        "train": {"steps": 7, "learning_rate": 0.001, "sample_prompts": ["In the", "And"], "jit_compile": "auto"},
        "data": {"vocab_size": None}, "model": {"dropout": 0.1}}
    for argv, message in [
        (["--set", "steps=7"], "--set steps=7 is invalid: expected SECTION.KEY=VALUE"),
        (["--set", "optimizer.lr=1"], "names the unknown section optimizer: expected model, data, train"),
        (["--steps", "7", "--set", "train.steps=8"], "sets train.steps a second time"),
        (["--set", "train.sample_prompts=[unclosed"], "is not a YAML value"),
    ]:
        with pytest.raises(cli.BadInput, match=message):
            cli._command_line_values(parser.parse_args(["train", *argv]), sections)
    args = parser.parse_args(["finetune", "runs/x", "--task", "sft", "--data", "qa", "--set", "finetune.steps=3"])
    assert cli._command_line_values(args, {"finetune": FinetuneConfig}) == {
        "finetune": {"task": "sft", "data": "qa", "steps": 3}}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder with a tiny corpus, a YAML config, fine-tuning data; and a run trained by `tfllm train` in it."""
    folder = tmp_path_factory.mktemp("cli")
    corpus = write_kjv_verses(folder)
    config = {**TINY, "data": {**TINY["data"], "corpus": corpus}}
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    with open(folder / "pairs.jsonl", "w") as file:
        for index in range(60):
            file.write(json.dumps({"prompt": f"Q: say {index}\nA: ", "completion": f"{index}"}) + "\n")
    with open(folder / "labelled.jsonl", "w") as file:
        for index in range(60):
            text, label = (f"the light of day {index}", "light") if index % 2 else (f"the dark of night {index}", "dark")
            file.write(json.dumps({"text": text, "label": label}) + "\n")
    trained = tfllm_command("train", "--config", folder / "tiny.yaml", "--output-dir", folder / "run", "--quiet")
    return folder, trained


def test_train_writes_a_complete_run_and_prints_its_numbers_and_a_sample(workspace, capsys):
    folder, trained = workspace
    assert trained.returncode == 0, trained.stderr[-3000:]
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 6 and f"{metrics['bits_per_byte']:.3f} bits per byte" in trained.stdout
    assert metrics["samples"][0]["text"] in trained.stdout
    assert f"tfllm generate {folder / 'run'}" in trained.stdout
    assert json.loads((folder / "run" / "run.json").read_text())["kind"] == "pretrain"
    again = tfllm_main(capsys, "train", "--config", folder / "tiny.yaml", "--output-dir", folder / "run", "--quiet")
    assert again.returncode == 2 and "holds a complete run: use overwrite=True (--overwrite)" in again.stderr


def test_evaluate_prints_the_exact_numbers_of_the_run_as_json_and_as_a_table(workspace, capsys):
    folder, _ = workspace
    as_json = tfllm_main(capsys, "evaluate", folder / "run", "--json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    report = json.loads(as_json.stdout)
    metrics = json.loads((folder / "run" / "metrics.json").read_text())
    assert report["bits_per_byte"] == pytest.approx(metrics["bits_per_byte"], rel=1e-6)
    assert report["tokens"] == metrics["validation_tokens"] and report["split"] == "validation"
    table = tfllm_main(capsys, "evaluate", folder / "run", "--split", "train")
    assert "bits per byte" in table.stdout and "(train)" in table.stdout


def test_a_warning_is_one_line_of_tfllm(workspace, tmp_path, capsys):
    folder, _ = workspace
    corpus = tmp_path / "latin1.txt"
    corpus.write_bytes("Moïse said unto the people, fear ye not.\n".encode("latin-1"))
    command = ["evaluate", folder / "run", "--corpus", corpus, "--split", "all"]
    shown = tfllm_main(capsys, *command)  # Python would show two lines: the file and line that warned, then that source
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stderr == (f"tfllm evaluate: warning: {corpus} is not valid UTF-8 (first bad byte at offset 2); its "
                            "bytes are loaded as they are\n")


def test_generate_from_flags_a_file_and_stdin_streaming_or_not(workspace, capsys):
    folder, _ = workspace
    (folder / "prompts.txt").write_text("In the\nAnd\n")
    greedy = ["--temperature", "0", "--max-new-tokens", "6"]
    from_flags = tfllm_main(capsys, "generate", folder / "run", "--prompt", "In the", "--prompt", "And", *greedy)
    assert from_flags.returncode == 0, from_flags.stderr[-3000:]
    lines = from_flags.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("In the") and lines[1].startswith("And")
    assert tfllm_main(capsys, "generate", folder / "run", "--prompts-file", folder / "prompts.txt",
                      *greedy).stdout == from_flags.stdout
    assert tfllm_main(capsys, "generate", folder / "run", *greedy, stdin="In the\nAnd\n").stdout == from_flags.stdout
    assert tfllm_main(capsys, "generate", folder / "run", "--prompt", "In the", "--prompt", "And", "--stream",
                      *greedy).stdout == from_flags.stdout


def test_generate_prints_the_same_text_with_or_without_stream(workspace, capsys):
    # --stream printed the prompt as given, not as the model read it: a prompt longer than the context (32) came out
    # whole, though its beginning was dropped, and a template's text was missing.
    folder, _ = workspace
    long = "And God said, Let there be light: and there was light. " * 2
    flags = ["--prompt", long, "--prompt", "In the", "--max-new-tokens", "8", "--seed", "3"]  # drawn, at 0.8
    plain = tfllm_main(capsys, "generate", folder / "run", *flags)
    streamed = tfllm_main(capsys, "generate", folder / "run", *flags, "--stream")
    assert plain.returncode == streamed.returncode == 0, plain.stderr[-3000:] + streamed.stderr[-3000:]
    assert streamed.stdout == plain.stdout
    assert not plain.stdout.startswith("And God said") and plain.stdout.splitlines()[1].startswith("In the")


def test_generate_refuses_more_new_tokens_than_the_context_holds_by_the_flag(workspace, capsys):
    folder, _ = workspace
    refused = tfllm_main(capsys, "generate", folder / "run", "--prompt", "x", "--max-new-tokens", "32")
    assert refused.returncode == 2 and refused.stderr == (
        "tfllm generate: error: --max-new-tokens 32 leaves no room for a prompt in the model's context of 32 tokens: "
        "expected at most 31\n")
    beams = tfllm_main(capsys, "generate", folder / "run", "--prompt", "x", "--max-new-tokens", "3", "--num-beams", "2")
    assert beams.returncode == 0, beams.stderr[-3000:]  # the default temperature is no setting of beam search's
    directory = tfllm_main(capsys, "generate", folder / "run", "--prompts-file", folder)
    assert directory.returncode == 2 and f"--prompts-file {folder} is a directory, not a file" in directory.stderr


def test_generate_json_prints_one_object_per_prompt_even_when_a_text_holds_line_breaks(workspace, capsys):
    folder, _ = workspace
    prompts, greedy = ["In the\nbeginning", "And"], ["--temperature", "0", "--max-new-tokens", "6"]
    flags = [flag for prompt in prompts for flag in ("--prompt", prompt)]
    plain = tfllm_main(capsys, "generate", folder / "run", *flags, *greedy)
    as_json = tfllm_main(capsys, "generate", folder / "run", *flags, *greedy, "--json")
    assert as_json.returncode == 0, as_json.stderr[-3000:]
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [entry["prompt"] for entry in objects] == prompts
    assert plain.stdout == "".join(entry["text"] + "\n" for entry in objects)
    assert len(plain.stdout.splitlines()) > len(prompts)  # plain lines cannot tell the two texts apart


def test_generate_draws_with_the_top_k_and_seed_it_is_given(workspace, capsys):
    # A command that dropped --top-k, or drew with seed 0 whatever --seed said, printed text all the same.
    folder, _ = workspace
    drawn = tfllm_main(capsys, "generate", folder / "run", "--prompt", "In the", "--max-new-tokens", 8, "--top-k", 5,
                       "--temperature", 0.8, "--top-p", 1, "--seed", 7)
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    model = load_run(folder / "run").model
    settings = {"max_new_tokens": 8, "sampler": "random", "temperature": 0.8, "top_k": 5, "seed": 7}
    assert drawn.stdout == model.generate("In the", **settings) + "\n"
    # Without the top-k or with the default seed, the same call draws other text.
    others = {model.generate("In the", **{**settings, "top_k": None}), model.generate("In the", **{**settings,
                                                                                                 "seed": 0})}
    assert drawn.stdout.rstrip("\n") not in others


def _write_number_pairs(folder, count=240):
    """A TSV of English and Chinese numbers, `tfllm train --task translate`'s format: `english<TAB>chinese<TAB>
    attribution` lines."""
    digits, words = "零一二三四五六七八九", "zero one two three four five six seven eight nine".split()
    path = folder / "numbers.tsv"
    path.write_text("".join(f"{' '.join(words[int(d)] for d in str(n))}\t{''.join(digits[int(d)] for d in str(n))}"
                            f"\tCC-BY 2.0 (France) Attribution: tatoeba.org #{n}\n" for n in range(count)),
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    """A tiny LSTM translation run on English and Chinese numbers, trained in this process: its directory and
    model."""
    from tfllm.training import pretrain

    folder = tmp_path_factory.mktemp("translate")
    config = RunConfig.default(
        "lstm", model={"num_layers": 1, "hidden_dim": 16},
        data={"task": "translate", "tokenizer": "byte", "corpus": _write_number_pairs(folder)},
        train={"steps": 4, "batch_size": 8, "sequence_length": 32, "warmup_steps": 1, "eval_every": 4,
               "checkpoint_every": 4, "time_budget_minutes": None, "sample_tokens": 8, "sample_every": None})
    result = pretrain(config, str(folder / "run"), verbose=0, peak_flops=1e11)
    return result.run_dir, load_run(result.run_dir).model


def test_train_of_a_translation_run_prints_its_report_once_and_what_to_try_next(tmp_path):
    trained = tfllm_command(
        "train", "--task", "translate", "--corpus", _write_number_pairs(tmp_path), "--model", "lstm", "--layers", 1,
        "--hidden-dim", 16, "--tokenizer", "byte", "--steps", 4, "--batch-size", 8, "--sequence-length", 32,
        "--time-budget", "none", "--output-dir", tmp_path / "run", "--set", "train.warmup_steps=1",
        "--set", "train.eval_every=4", "--set", "train.sample_tokens=8")
    assert trained.returncode == 0, trained.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())["translation"]
    assert trained.stdout.count(f"Test split: {report['test_sentences']} sentences; chrF2 / BLEU") == 1
    assert trained.stdout.endswith(f"Next: tfllm translate {tmp_path / 'run'} --to zh \"How is the weather?\"\n")


def test_translate_passes_its_source_beams_and_length_to_the_model(translation_run, capsys):
    run_dir, model = translation_run
    text = "three four five"
    given = tfllm_main(capsys, "translate", run_dir, "--to", "zh", "--from", "en", "--num-beams", 3,
                       "--max-new-tokens", 3, text)
    assert given.returncode == 0, given.stderr[-3000:]
    settings = {"target": "zh", "source": "en", "num_beams": 3, "max_new_tokens": 3}
    translation = model.translate(text, **settings)
    assert given.stdout == " ".join(translation.splitlines()) + "\n"  # one line per text
    # Each flag matters: without it, the model translates otherwise.
    for dropped in ("num_beams", "max_new_tokens"):
        assert model.translate(text, **{key: value for key, value in settings.items() if key != dropped}) != (
            translation), dropped
    # --from is read: zh, not the default en, is refused.
    refused = tfllm_main(capsys, "translate", run_dir, "--to", "zh", "--from", "zh", text)
    assert (refused.returncode, refused.stderr) == (2, "tfllm translate: error: source and target language are both "
                                                       "'zh': nothing to translate\n")


def test_evaluate_of_a_translation_run_scores_the_beams_it_is_given(translation_run, capsys):
    from tfllm.evaluation import translation_scores
    from tfllm.training.translation_task import read_parallel_texts

    run_dir, model = translation_run
    result = tfllm_main(capsys, "evaluate", run_dir, "--num-beams", 2, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    directions = json.loads(result.stdout)["directions"]
    # Beside the run's own report (greedy decoding only), the scores of a beam search with 2 beams: its system is
    # named after them, and scores what model.translate(..., num_beams=2) writes.
    trained = json.loads((pathlib.Path(run_dir) / "metrics.json").read_text())["translation"]["directions"]
    for direction, figures in directions.items():
        beam_systems = {name for name in figures["systems"] if name.startswith("beam")}
        assert beam_systems == {"beam2"}, direction
        without_beams = {name: value for name, value in figures["systems"].items() if name != "beam2"}
        assert {**figures, "systems": without_beams} == trained[direction]
    test_pairs = read_parallel_texts(load_run(run_dir).config.data).test
    beams = model.translate([pair["en"] for pair in test_pairs], target="zh", num_beams=2)
    scores = translation_scores(beams, [pair["zh"] for pair in test_pairs], "zh")
    assert directions["en->zh"]["systems"]["beam2"] == {"chrf": scores.chrf, "bleu": scores.bleu}


def test_finetune_sft_and_classify_make_new_runs_that_record_their_parent(workspace, capsys):
    folder, _ = workspace
    sft, generated, classify, evaluated, refused = tfllm_session(
        folder,
        ["finetune", folder / "run", "--task", "sft", "--data", folder / "pairs.jsonl", "--steps", 4, "--output-dir",
         folder / "sft", "--quiet"],
        ["generate", folder / "sft", "--prompt", "Q: say 3\nA: ", "--max-new-tokens", 3],
        ["finetune", folder / "run", "--task", "classify", "--data", folder / "labelled.jsonl", "--steps", 6,
         "--output-dir", folder / "classify", "--quiet"],
        ["evaluate", folder / "classify", "--json"],
        ["generate", folder / "classify", "--prompt", "x"])
    assert sft.returncode == 0, sft.stderr[-3000:]
    record = json.loads((folder / "sft" / "finetune.json").read_text())
    assert record["parent"] == str(folder / "run") and record["config"]["task"] == "sft"
    assert 0 <= json.loads((folder / "sft" / "metrics.json").read_text())["exact_match"] <= 1
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert not (folder / "sft" / "template.json").exists()  # pairs of a file carry their own prompt format

    assert classify.returncode == 0, classify.stderr[-3000:]
    report = json.loads(evaluated.stdout)
    assert report["label_names"] == ["dark", "light"] and 0 <= report["accuracy"] <= 1
    ignored = tfllm_main(capsys, "evaluate", folder / "classify", "--corpus", "kjv")  # ignored without a word
    assert ignored.returncode == 2 and "a classifier run is evaluated on the held-out records" in ignored.stderr
    assert refused.returncode == 2 and "holds a classifier" in refused.stderr


SERVE = WITHOUT_TFLLM + r"""
served = tf.saved_model.load(sys.argv[1])
rows = {"prompts": ["In the", "And"], "max_new_tokens": [6, 6], "temperature": [0.0, 0.0], "top_k": [0, 0],
        "top_p": [1.0, 1.0], "seed": [0, 0]}
texts = served.signatures["generate"](**{name: tf.constant(value) for name, value in rows.items()})["text"]
print("\n".join(text.decode("utf-8") for text in texts.numpy()))
for body in sys.argv[2:]:  # REST bodies in the row format, each instance's values stacked as TF Serving does
    body = json.loads(body)
    signature = served.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    instances = [row if isinstance(row, dict) else {"prompts": row} for row in body["instances"]]
    inputs = {name: tf.constant([row[name] for row in instances], specs[name].dtype) for name in specs}
    print("\n".join(text.decode("utf-8") for text in signature(**inputs)["text"].numpy()))
"""


def test_export_writes_a_numbered_version_that_a_fresh_process_serves_as_the_printed_requests_ask(workspace, capsys):
    folder, _ = workspace
    exported = tfllm_command("export", folder / "run", folder / "exported")  # under XLA, as tfllm generate
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (folder / "exported" / "1" / "saved_model.pb").exists() and "saved_model_cli show" in exported.stdout
    bodies = [shlex.split(line)[-1] for line in exported.stdout.splitlines() if line.strip().startswith("curl ")]
    assert [json.loads(body).get("signature_name") for body in bodies] == [None, "generate"]
    (folder / "serve.py").write_text(SERVE)
    served = subprocess.run([sys.executable, folder / "serve.py", folder / "exported" / "1", *bodies],
                            capture_output=True, text=True, timeout=300, env=ENV)
    assert served.returncode == 0, served.stderr[-3000:]
    greedy = tfllm_main(capsys, "generate", folder / "run", "--prompt", "In the", "--prompt", "And", "--temperature",
                        0, "--max-new-tokens", 6)
    row = json.loads(bodies[1])["instances"][0]  # the run's sampling settings (TINY: 8 tokens, 0.8, top-p 0.9)
    assert (row["max_new_tokens"], row["temperature"], row["top_p"]) == (8, 0.8, 0.9)
    sampled = tfllm_main(capsys, "generate", folder / "run", "--prompt", row["prompts"], "--temperature", 0.8,
                         "--top-p", 0.9, "--seed", 0, "--max-new-tokens", 8)
    lines = served.stdout.splitlines()
    assert lines[:2] == greedy.stdout.splitlines() and lines[-1] == sampled.stdout.strip()
    assert lines[2].startswith(row["prompts"])  # serving_default: the run's settings, a new seed per request
    again = tfllm_main(capsys, "export", folder / "run", folder / "exported")
    assert again.returncode == 2 and "exported/1 exists and is not empty: choose another --version" in again.stderr


def test_export_keeps_serving_default_within_the_limit_when_the_run_sampled_longer(workspace, tmp_path, capsys):
    # A run whose samples are longer than the export's default limit (half of a 32-token context) failed to export
    # with "max_new_tokens=20 is above max_new_tokens_limit=16", a value the user never gave.
    folder, _ = workspace
    run = tmp_path / "run"
    shutil.copytree(folder / "run", run)
    config = json.loads((run / "config.json").read_text())
    config["train"]["sample_tokens"] = 20
    (run / "config.json").write_text(json.dumps(config))
    exported = tfllm_main(capsys, "export", run, tmp_path / "exported", "--no-xla")
    assert exported.returncode == 0, exported.stderr[-3000:]
    bodies = [shlex.split(line)[-1] for line in exported.stdout.splitlines() if line.strip().startswith("curl ")]
    assert json.loads(bodies[1])["instances"][0]["max_new_tokens"] == 16
    refused = tfllm_main(capsys, "export", run, tmp_path / "again", "--max-new-tokens", 20)
    assert refused.returncode == 2 and refused.stderr == (
        "tfllm export: error: --max-new-tokens=20 is above the default --max-new-tokens-limit, 16: a request may ask "
        "for at most 16 new tokens\n")
    refused = tfllm_main(capsys, "export", run, tmp_path / "again", "--max-new-tokens", 12,
                         "--max-new-tokens-limit", 10)
    assert refused.returncode == 2 and "--max-new-tokens=12 is above --max-new-tokens-limit, 10" in refused.stderr
    huge = tfllm_main(capsys, "export", run, tmp_path / "again", "--max-batch-size", 2**31)
    assert huge.returncode == 2 and huge.stderr == ("tfllm export: error: --max-batch-size=2147483648 is invalid: "
                                                    "expected an integer below 2**31 (an int32).\n")
    assert not (tmp_path / "again").exists()


def test_an_interrupt_outside_training_says_so(monkeypatch, capsys):
    # An interrupt without a message of its own printed "tfllm generate: " and nothing after it.
    def interrupted(args):
        raise KeyboardInterrupt()

    monkeypatch.setattr(cli, "_generate", interrupted)
    code, err = _one_line_error(["generate", "runs/x", "--prompt", "x"], capsys)
    assert code == cli.EXIT_INTERRUPTED and err == "\ntfllm generate: interrupted\n"


@pytest.mark.parametrize("corpus, name", [("docs/*.txt", "docs"), ("/data/**/psalm*.md", "data"), ("*.txt", "corpus"),
                                          ("books/genesis.txt", "genesis"), ("books/", "books"), ("kjv", "kjv")])
def test_a_default_run_directory_is_named_after_the_corpus_without_a_glob_pattern(corpus, name):
    # --corpus "docs/*.txt" made runs/transformer-*, which the printed next command let the shell expand.
    assert cli._corpus_name(corpus) == name


def test_finetune_takes_its_required_keys_by_flag_or_by_set(capsys):
    # --set finetune.task=sft was refused: argparse required --task and --data before --set was read.
    args = cli.build_parser().parse_args(["finetune", "runs/x", "--set", "finetune.task=sft", "--set",
                                          "finetune.data=qa"])
    values = cli._command_line_values(args, {"finetune": cli.FinetuneConfig})["finetune"]
    assert values == {"task": "sft", "data": "qa"}
    code, err = _one_line_error(["finetune", "runs/x", "--set", "finetune.task=sft"], capsys)
    assert code == 2 and err == ("tfllm finetune: error: the following arguments are required: --data (or --set "
                                 "finetune.KEY=VALUE)\n")


def _train_until_checkpoint(config, run, at_least, send):
    """Starts `tfllm train` and sends `send` once its checkpoint reaches `at_least` steps; returns the exit code, the
    output, the error output and the command."""
    command = [SCRIPT, "train", "--config", config, "--output-dir", run, "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if state.exists() and json.loads(state.read_text() or "{}").get("step", 0) >= at_least:
            process.send_signal(send)
            break
        time.sleep(0.02)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err, command


@pytest.mark.slow
def test_a_run_interrupted_then_killed_resumes_each_time_and_ends_at_the_requested_step(tmp_path):
    # Long enough that each signal, sent once a checkpoint 20 steps on is seen, lands well before the end. (A run that
    # ended despite the signal was once Python dropping the KeyboardInterrupt in a finalizer: see CtrlC.)
    STEPS = 200  # noqa: N806
    long = {**TINY, "data": {**TINY["data"], "corpus": write_kjv_verses(tmp_path)},
            "train": {**TINY["train"], "steps": STEPS, "eval_every": STEPS, "checkpoint_every": 10}}
    config = tmp_path / "long.json"
    config.write_text(json.dumps(long))
    run = tmp_path / "run"
    state = run / "checkpoints" / "state.json"

    code, out, err, command = _train_until_checkpoint(config, run, 20, signal.SIGINT)  # Ctrl-C
    assert not (run / "metrics.json").exists(), "the run ended before the signal: make it longer"
    interrupted = json.loads(state.read_text())["step"]
    assert code == 130 and 20 <= interrupted < STEPS
    assert f"the run is saved at step {interrupted} of {STEPS}" in err and "Run the same command again" in err

    code, out, err, _ = _train_until_checkpoint(config, run, interrupted + 20, signal.SIGKILL)
    assert not (run / "metrics.json").exists(), "the run ended before the signal: make it longer"
    killed = json.loads(state.read_text())["step"]
    assert code == -signal.SIGKILL and interrupted + 20 <= killed < STEPS, err[-3000:]

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == STEPS == metrics["optimizer_updates"] and metrics["resumed_from_step"] == killed
    # Every step once: the killed run's steps after its last checkpoint were trained again, not counted twice.
    assert json.loads((run / "history.json").read_text())["steps"] == list(range(1, STEPS + 1))


def _one_line_error(argv, capsys):
    code = cli.main([str(arg) for arg in argv])
    err = capsys.readouterr().err
    return code, err


def test_bad_input_is_one_line_and_exit_status_2(workspace, tmp_path, capsys):
    folder, _ = workspace
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text(yaml.safe_dump({"train": {"stepz": 5}}))
    wrong_type = tmp_path / "wrong.json"
    wrong_type.write_text(json.dumps({"train": {"steps": "10"}}))
    lstm = tmp_path / "lstm.yaml"
    lstm.write_text(yaml.safe_dump({"model": {"architecture": "lstm"}}))
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("train: [unclosed")
    old_run = tmp_path / "old"
    shutil.copytree(folder / "run", old_run)
    marker = json.loads((old_run / "run.json").read_text())
    (old_run / "run.json").write_text(json.dumps({**marker, "format": 99, "tfllm_version": "9.9"}))
    damaged = tmp_path / "damaged"
    shutil.copytree(folder / "run", damaged)
    (damaged / "model.keras").write_bytes(b"not a zip file")
    train_keys = ", ".join(field.name for field in dataclasses.fields(RunConfig.sections()["train"]))
    cases = [  # each the whole line after "tfllm COMMAND: error: "
        (["evaluate", tmp_path / "nowhere"], f"{tmp_path / 'nowhere'} does not exist: expected a run directory "
                                             "(tfllm train --output-dir ...)"),
        (["generate", not_yaml, "--prompt", "x"], f"{not_yaml} is not a directory: expected a run directory (tfllm "
                                                  "train --output-dir ...)"),
        (["evaluate", folder / "run", "--num-beams", 3], "--num-beams is for a translation run, whose evaluation also "
                                                         "scores beam search: drop it"),  # it was ignored
        (["evaluate", old_run], f"{old_run} was written by tfllm 9.9 in run format 99; this tfllm "
                                f"{tfllm.__version__} reads run format {RUN_FORMAT}: use that version, or train it "
                                "again"),
        (["generate", damaged, "--prompt", "x"], f"{damaged / 'model.keras'} cannot be loaded: it is not a .keras "
                                                 "archive (a zip file), so it is damaged or was cut short: train the "
                                                 "run again with overwrite=True (--overwrite)"),
        (["train", "--config", unknown_key], f"unknown key train.stepz in the config: expected keys of train are "
                                             f"{train_keys}"),
        (["train", "--config", wrong_type], "train.steps='10' has the type str: expected int"),
        (["train", "--config", not_yaml], f"--config {not_yaml} cannot be read: while parsing a flow sequence"),
        (["train", "--config", tmp_path / "missing.json"], f"--config {tmp_path / 'missing.json'} does not exist"),
        (["train", "--steps", 0], "train.steps=0 is invalid: expected a positive integer."),
        (["train", "--model", "transformer", "--heads", 3], "model.hidden_dim=256 is not divisible by "
                                                            "model.num_heads=3."),
        (["train", "--set", "train.steps=ten"], "train.steps='ten' has the type str: expected int"),
        (["train", "--set", "train.stepz=1"], f"unknown key train.stepz in the config: expected keys of train are "
                                              f"{train_keys}"),
        (["train", "--model", "transformer", "--config", lstm], "--model transformer disagrees with "
                                                                f"model.architecture='lstm' in {lstm}"),
        (["train", "--set", "train.sample_top_p=2"], "train.sample_top_p=2.0 is invalid: expected a probability in "
                                                     "(0, 1] (1 is off)."),
        (["finetune", folder / "run", "--task", "sft", "--data", "qa", "--set", "finetune.steps=0"],
         "finetune.steps=0 is invalid: expected a positive integer."),
        (["train", "--corpus", tmp_path / "no-such-corpus.txt", "--output-dir", tmp_path / "r"],
         f"the corpus path '{tmp_path / 'no-such-corpus.txt'}' does not exist"),
        (["finetune", folder / "run", "--task", "sft", "--data", tmp_path / "none.jsonl"],
         f"finetune.data='{tmp_path / 'none.jsonl'}' does not exist: expected a JSONL or CSV file (or 'qa', the "
         "embedded question/answer pairs)"),
        (["export", folder / "run", folder, "--version", 0], "version=0 is invalid: expected a positive integer."),
        # A file where a directory is to be written (they failed as FileExistsError, or after the export's tracing).
        (["train", "--output-dir", not_yaml, "--steps", 1], f"the run directory {not_yaml} is a file: expected a "
                                                            "directory."),
        (["train", "--output-dir", not_yaml / "run"], f"the run directory {not_yaml / 'run'} lies under the file "
                                                      f"{not_yaml}: expected a directory."),
        (["finetune", folder / "run", "--task", "sft", "--data", "qa", "--output-dir", not_yaml],
         f"the run directory {not_yaml} is a file: expected a directory."),
        (["export", folder / "run", not_yaml], f"the export directory {not_yaml} is a file: expected a directory."),
    ]
    for argv, message in cases:
        code, err = _one_line_error(argv, capsys)
        assert (code, err) == (2, f"tfllm {argv[0]}: error: {message}\n"), argv
    assert not (tmp_path / "r").exists()  # refused before anything was written

    for argv, message in [(["train", "--stepz", "5"], "unrecognized arguments: --stepz 5"),
                          (["generate", folder / "run", "--top-k", "many"], "invalid int value: 'many'")]:
        with pytest.raises(SystemExit) as exit:
            cli.main([str(arg) for arg in argv])
        err = capsys.readouterr().err
        assert exit.value.code == 2 and err.count("\n") == 1 and message in err


def test_number_flags_out_of_range_are_refused_before_the_run_is_read(tmp_path, capsys):
    nowhere = tmp_path / "nowhere"  # never read: the flag is refused first
    generate = ["generate", nowhere, "--prompt", "x"]
    cases = [
        ([*generate, "--top-p", 1.5], "--top-p=1.5 is invalid: expected a probability in (0, 1]"),
        ([*generate, "--top-p", "nan"], "--top-p=nan is invalid"),
        ([*generate, "--top-k", -3], "--top-k=-3 is invalid: expected an integer >= 0 (0 sets no limit)"),
        ([*generate, "--num-beams", 0], "--num-beams=0 is invalid: expected an integer >= 1"),
        ([*generate, "--temperature", "inf"], "--temperature=inf is invalid"),
        ([*generate, "--max-new-tokens", 0], "--max-new-tokens=0 is invalid"),
        ([*generate, "--seed", 2**31], "--seed=2147483648 is invalid: expected an integer in [-2**31, 2**31)"),
        (["chat", nowhere, "--top-p", 0], "--top-p=0.0 is invalid"),
        (["translate", nowhere, "--to", "zh", "Hello", "--num-beams", 0], "--num-beams=0 is invalid"),
        (["evaluate", nowhere, "--num-beams", -1], "--num-beams=-1 is invalid: expected an integer >= 0 (0 scores"),
        (["export", nowhere, tmp_path / "out", "--max-batch-size", 0], "--max-batch-size=0 is invalid"),
        (["train", "--logical-cpus", 0, "--output-dir", tmp_path / "run"], "--logical-cpus=0 is invalid"),
    ]
    for argv, message in cases:
        code, err = _one_line_error(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "run").exists()


def test_number_flags_out_of_range_are_refused_before_tensorflow_is_imported(tmp_path):
    # They waited for TensorFlow's import, seconds, before their one line.
    code = ("import sys; from tfllm import cli; status = cli.main(['generate', 'nowhere', '--prompt', 'x', '--top-p', "
            "'2']); print(status, 'tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False"], result
    assert result.stderr == ("tfllm generate: error: --top-p=2.0 is invalid: expected a probability in (0, 1] (1 turns "
                             "it off).\n")


def test_text_that_is_not_utf8_is_refused_before_the_run_is_read(tmp_path, capsys, monkeypatch):
    # It failed as a UnicodeDecodeError or UnicodeEncodeError from Python's codecs: exit 1, "failed with ...".
    nowhere = tmp_path / "nowhere"
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"In the \xd0 beginning\n")
    cases = [
        (["generate", nowhere, "--prompts-file", binary], f"--prompts-file {binary}, line 1: not valid UTF-8 (byte "
                                                          "0xd0)"),
        (["generate", nowhere, "--prompts-file", tmp_path / "none.txt"], f"--prompts-file {tmp_path / 'none.txt'} "
                                                                         "does not exist"),
        (["train", "--config", binary, "--output-dir", tmp_path / "run"], f"--config {binary}, line 1: not valid "
                                                                          "UTF-8"),
        # Python keeps the bytes of the command line that are not UTF-8 as lone surrogates.
        (["generate", nowhere, "--prompt", "a\udcff"], "a text on the command line: not valid UTF-8 (byte 0xff at "
                                                       "character 1)"),
    ]
    for argv, message in cases:
        code, err = _one_line_error(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and message in err, (argv, err)
    stdin = io.TextIOWrapper(io.BytesIO(b"\n\xff\nIn the\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr(sys, "stdin", stdin)
    code, err = _one_line_error(["generate", nowhere], capsys)
    assert code == 2 and "line 2 of standard input: not valid UTF-8 (byte 0xff at character 0)" in err, err
    assert not (tmp_path / "run").exists()


def test_standard_input_that_is_not_utf8_is_named_by_line_whatever_the_locale(tmp_path):
    # Under a locale such as en_US.UTF-8, Python decodes standard input strictly: the read failed as a whole, with a
    # UnicodeDecodeError (exit 1, "failed with"), and no line before the bad one was answered.
    strict = {**ENV, "PYTHONIOENCODING": "utf-8:strict"}
    result = subprocess.run([SCRIPT, "translate", tmp_path, "--to", "zh"], input=b"\xff\xfe bad\n", env=strict,
                            capture_output=True, timeout=600)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == ("tfllm translate: error: line 1 of standard input: not valid UTF-8 (byte 0xff "
                                      "at character 0)\n")


def test_translate_checks_its_flags_and_run_directory_before_reading_standard_input(tmp_path, capsys, monkeypatch):
    class Unread(io.StringIO):
        def __iter__(self):
            raise AssertionError("standard input was read")

    monkeypatch.setattr(sys, "stdin", Unread())
    cases = [(["translate", tmp_path, "--to", "zh", "--memory-candidates", "2"], "--memory-candidates is for --memory"),
             (["translate", tmp_path / "nowhere", "--to", "zh"], "nowhere does not exist")]
    for argv, message in cases:
        code, err = _one_line_error(argv, capsys)
        assert code == 2 and message in err, (argv, err)


def test_translate_takes_every_text_after_a_double_dash_even_one_that_starts_with_a_dash():
    parser = cli.build_parser()
    args, extra = parser.parse_known_args(["translate", "run", "--to", "zh", "one", "--", "-5 degrees", "--to"])
    assert cli._texts_after_the_options(args, extra) == []
    assert args.texts == ["one", "-5 degrees", "--to"]
    args, extra = parser.parse_known_args(["translate", "run", "--to", "zh", "--bogus", "x"])
    assert cli._texts_after_the_options(args, extra) == ["--bogus", "x"] and args.texts == []


def test_a_prompts_file_is_read_with_any_line_ending_and_without_its_byte_order_mark(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes("\ufeffIn the\r\n\r\nAnd\rAmen\u2028selah\n".encode())
    args = cli.build_parser().parse_args(["generate", "run", "--prompt", "x", "--prompts-file", str(path)])
    assert list(cli._prompts(args)) == ["x", "In the", "And", "Amen\u2028selah"]


def test_generate_refuses_drawing_flags_beside_beam_search_before_the_run_is_read(tmp_path, capsys):
    # --top-p beside --num-beams was ignored without a word.
    beams = ["generate", tmp_path / "nowhere", "--prompt", "x", "--num-beams", 2]
    for flags, dropped in [(["--top-p", 0.5], "--top-p"), (["--temperature", 0.7, "--top-k", 5], "--temperature, --top-k")]:
        code, err = _one_line_error([*beams, *flags], capsys)
        assert code == 2 and err == (f"tfllm generate: error: --num-beams searches for the likeliest text and draws "
                                     f"nothing: drop {dropped}\n"), err


def test_generate_refuses_json_beside_stream_before_the_run_is_read(tmp_path, capsys):
    code, err = _one_line_error(["generate", tmp_path / "nowhere", "--prompt", "x", "--json", "--stream"], capsys)
    assert code == 2 and err == ("tfllm generate: error: --json prints each text whole, as one JSON object: drop "
                                 "--stream\n")


def test_the_console_script_exits_2_with_one_line_and_debug_shows_the_traceback(tmp_path):
    quiet = tfllm_command("evaluate", tmp_path / "nowhere")
    assert quiet.returncode == 2 and quiet.stderr.strip().count("\n") == 0 and "does not exist" in quiet.stderr
    loud = tfllm_command("evaluate", tmp_path / "nowhere", "--debug")
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_generate_applies_the_runs_template_unless_told_not_to():
    parser = cli.build_parser()
    assert parser.parse_args(["generate", "runs/x", "--prompt", "hi"]).apply_template is True
    assert parser.parse_args(["generate", "runs/x", "--prompt", "hi", "--no-template"]).apply_template is False


def test_generate_answers_each_line_of_standard_input_as_it_arrives(workspace, capsys):
    folder, _ = workspace
    greedy = ["--temperature", "0", "--max-new-tokens", "6"]
    expected = tfllm_main(capsys, "generate", folder / "run", "--prompt", "In the", "--prompt", "And", *greedy).stdout
    process = subprocess.Popen([SCRIPT, "generate", folder / "run", *greedy], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV, bufsize=0)
    try:
        process.stdin.write(b"In the\n")
        process.stdin.flush()
        first = _read_within(process.stdout.fileno(), seconds=300)  # standard input is still open
        assert first.startswith(b"In the")
        process.stdin.write(b"And\n")
        process.stdin.close()
        rest = process.stdout.read()
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    assert (first + rest).decode() == expected


def test_a_reader_that_stops_reading_ends_the_command_quietly(workspace):
    # `tfllm generate RUN < prompts | head -1`: the next answer found no reader. It failed with a BrokenPipeError
    # (exit 1, "failed with", and its traceback written over the run's error.log).
    folder, _ = workspace
    process = subprocess.Popen([SCRIPT, "generate", folder / "run", "--temperature", "0", "--max-new-tokens", "4"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                               bufsize=0)
    try:
        process.stdin.write(b"In the\n")
        process.stdin.flush()
        assert _read_within(process.stdout.fileno(), seconds=300).startswith(b"In the")
        process.stdout.close()  # the reader goes away; the next answer has nowhere to go
        process.stdin.write(b"And\n")
        process.stdin.close()
        assert process.wait(timeout=120) == 141  # 128 + SIGPIPE, as a shell reports `cat` in the same place
        assert process.stderr.read() == b""
    finally:
        process.kill()
    assert not (folder / "run" / "error.log").exists()


def _read_within(descriptor, seconds):
    ready, _, _ = select.select([descriptor], [], [], seconds)
    assert ready, f"no answer within {seconds} s"
    return os.read(descriptor, 1 << 16)


def test_streamed_text_on_a_terminal_shows_only_tfllm_s_lines(workspace, capsys):
    # A SentencePiece run, as by default: its C++ library logged "normalizer.cc(51) LOG(INFO) precompiled_charsmap is
    # empty" in the middle of the text; TensorFlow its oneDNN and CUDA lines. A user's environment: no log level set.
    folder, _ = workspace
    run = folder / "sentencepiece"
    trained = tfllm_command("train", "--config", folder / "tiny.yaml", "--tokenizer", "sentencepiece", "--vocab-size",
                            400, "--output-dir", run, "--quiet")
    assert trained.returncode == 0, trained.stderr[-3000:]
    command = [SCRIPT, "generate", run, "--prompt", "In the", "--prompt", "And", "--temperature", "0",
               "--max-new-tokens", "12"]
    user_env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    terminal, child = pty.openpty()
    process = subprocess.Popen([*command, "--stream"], stdin=child, stdout=child, stderr=child, env=user_env)
    os.close(child)
    screen, deadline = b"", time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            if select.select([terminal], [], [], 1)[0]:
                try:
                    chunk = os.read(terminal, 1 << 16)
                except OSError:  # EIO: the command ended and closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
        assert process.wait(timeout=60) == 0, screen.decode(errors="replace")
    finally:
        process.kill()
        os.close(terminal)
    shown = screen.decode().replace("\r\n", "\n")
    assert not any(noise in shown for noise in ("LOG(", "oneDNN", "I0000", "W0000", "E0000", "WARNING")), shown
    piped = tfllm_main(capsys, *command[1:])
    assert shown == piped.stdout  # every line is the text of a prompt


def test_keras_loads_a_runs_model_after_import_tfllm(workspace):
    folder, _ = workspace
    script = ("model = keras.saving.load_model(sys.argv[1])\n"
              "print(type(model).__name__, model.tokenizer.vocab_size)")
    # tfllm before keras, after it, or before TensorFlow, which looks keras up (importlib.util.find_spec) before
    # importing it.
    for imports in ("sys, tfllm, keras", "sys, keras, tfllm", "sys, tfllm, tensorflow, keras"):
        loaded = subprocess.run([sys.executable, "-c", f"import {imports}\n{script}", folder / "run" / "model.keras"],
                                capture_output=True, text=True, timeout=300, env=ENV)
        assert loaded.returncode == 0, loaded.stderr[-3000:]
        assert loaded.stdout.split() == ["TransformerLM", "259"]


def test_a_failure_that_is_not_bad_input_is_exit_1_with_its_traceback_saved(tmp_path, monkeypatch, capsys):
    import keras

    from tfllm.checks import require_positive_int

    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setattr(cli, "_evaluate", lambda args: keras.layers.Dense(-1))  # a ValueError from inside Keras
    code, err = _one_line_error(["evaluate", run], capsys)
    assert code == 1 and err.count("\n") == 1 and f"the traceback is in {run / 'error.log'}" in err, err
    log = (run / "error.log").read_text()
    assert log.startswith("Traceback") and "keras/src/layers/core/dense.py" in log

    monkeypatch.setattr(cli, "_train", lambda args: keras.layers.Dense(-1))  # no run directory yet: a temporary file
    code, err = _one_line_error(["train"], capsys)
    saved = err.rsplit("the traceback is in ", 1)[1].rstrip(")\n")
    assert code == 1 and os.path.dirname(saved) == tempfile.gettempdir(), err
    assert "Traceback" in pathlib.Path(saved).read_text()
    os.remove(saved)

    monkeypatch.setattr(cli, "_evaluate", lambda args: require_positive_int("train.steps", 0))  # tfllm's own check
    code, err = _one_line_error(["evaluate", run], capsys)
    assert code == 2 and err == "tfllm evaluate: error: train.steps=0 is invalid: expected a positive integer.\n"


@pytest.mark.parametrize("command, again", [("train", "to resume the run from its last checkpoint"),
                                            ("finetune", "with --overwrite (a fine-tuning does not resume)")])
def test_a_lost_worker_is_named_and_a_worker_not_the_chief_writes_no_error_log_into_a_run(command, again, tmp_path,
                                                                                           capsys):
    # A fine-tuning's other worker wrote its traceback into the *parent* run (error_dir None fell back to run_dir),
    # and was told to resume a fine-tuning, which does not resume.
    import tensorflow as tf

    args = argparse.Namespace(command=command, strategy="multiworker", run_dir=str(tmp_path), error_dir=None)
    code = cli._report(args, tf.errors.UnavailableError(None, None, "Graph execution error:\n\nSocket closed"))
    err = capsys.readouterr().err
    assert code == 1 and err.startswith(f"tfllm {command}: failed with UnavailableError: another worker of the job "
                                        f"stopped or cannot be reached (its own output says why): run the same "
                                        f"command again on every worker {again} (the traceback is in ")
    assert not (tmp_path / "error.log").exists() and "tfllm-error-" in err


def test_logical_cpus_beside_a_strategy_that_would_not_use_them_is_refused(tmp_path, capsys):
    # --strategy cpu --logical-cpus 2 trained on one device without a word.
    for command in (["train", "--steps", 0], ["finetune", tmp_path, "--task", "sft", "--data", "qa"]):  # quick failures
        code, err = _one_line_error([*command, "--strategy", "cpu", "--logical-cpus", 2], capsys)
        assert code == 2 and err == (f"tfllm {command[0]}: error: --logical-cpus 2 splits the CPU for --strategy "
                                     "mirrored (or auto), which it would not reach under --strategy cpu: drop it\n")


def test_evaluate_of_a_fine_tuning_whose_parent_learned_from_a_task_s_data_asks_for_a_corpus(tmp_path, monkeypatch,
                                                                                            capsys):
    # An sft fine-tuning of a chat run: "unknown corpus 'chatterbot'", a name the user never typed.
    from tfllm.training import FinetuneConfig, LoadedRun, RunConfig

    parent = LoadedRun("pretrain", "runs/chat", RunConfig.default("transformer", data={"corpus": "chatterbot",
                                                                                       "task": "chat"}))
    run = LoadedRun("finetune", str(tmp_path), FinetuneConfig("sft", "qa"), model=argparse.Namespace(
        prompt_template=None), parent=parent)
    monkeypatch.setattr("tfllm.training.load_run", lambda path: run)
    code, err = _one_line_error(["evaluate", tmp_path], capsys)
    assert code == 2 and err == (f"tfllm evaluate: error: {tmp_path} last learned as a language model from "
                                 "'chatterbot', which evaluate cannot read as a text corpus (unknown corpus "
                                 "'chatterbot': expected one of 'kjv', 'shakespeare' or the path of a .txt/.md/.jsonl "
                                 "file, a folder or a glob): give one with --corpus NAME|PATH (e.g. --corpus kjv)\n")
