"""`tfllm train --task translate` end to end on a tiny parallel file: the run, its report, `translate`, the CLI."""

import json
import os

import pytest

from tests.test_cli import tfllm_command, tfllm_main
from tfllm.data import TranslationTemplate
from tfllm.training import RunConfig, load_run, pretrain
from tfllm.training.config import DEFAULTS
from tfllm.training.translation_task import LANGUAGES

DIGITS = "零一二三四五六七八九"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def write_pairs(folder, count=240):
    """A TSV of `english<TAB>chinese<TAB>attribution` lines: numbers spelled out in both languages."""
    path = os.path.join(folder, "numbers.tsv")
    with open(path, "w", encoding="utf-8") as file:
        for number in range(count):
            digits = [int(digit) for digit in str(number)]
            english = " ".join(WORDS[d] for d in digits)
            chinese = "".join(DIGITS[d] for d in digits)
            file.write(f"{english}\t{chinese}\tCC-BY 2.0 (France) Attribution: tatoeba.org #{number}\n")
    return path


TINY = {
    "model": {"num_layers": 1, "hidden_dim": 16},
    "data": {"task": "translate", "tokenizer": "byte"},
    "train": {"steps": 8, "batch_size": 8, "sequence_length": 32, "warmup_steps": 1, "eval_every": 4,
              "checkpoint_every": 4, "time_budget_minutes": None, "sample_tokens": 8, "sample_every": None},
}


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("translate")
    config = RunConfig.default("lstm", data={**TINY["data"], "corpus": write_pairs(folder)}, model=TINY["model"],
                               train=TINY["train"])
    return pretrain(config, str(folder / "run"), verbose=0, peak_flops=1e11)


def test_the_task_changes_the_defaults_and_a_byte_tokenizer_keeps_its_own():
    config = RunConfig.default(data={"task": "translate"})
    translate = DEFAULTS["task"]["translate"]
    assert config.data.corpus == "hsk" and config.data.vocab_size == translate["data"]["vocab_size"]
    assert config.model.dropout == translate["model"]["transformer"]["dropout"]
    assert config.train.time_budget_minutes == translate["train"]["time_budget_minutes"]
    assert RunConfig.default(data={"task": "translate", "tokenizer": "byte"}).data.vocab_size is None
    assert RunConfig.default().data.task == "lm"  # and configs written before the key load as language modeling
    old = RunConfig.default().to_dict()
    del old["data"]["task"], old["data"]["train_pairs"]
    assert RunConfig.from_dict(old).data.task == "lm" and RunConfig.from_dict(old).data.train_pairs is None
    assert RunConfig.default(data={"task": "translate", "train_pairs": 1000}).data.train_pairs == 1000
    with pytest.raises(ValueError, match="data.train_pairs=1000 is for data.task='translate'"):
        RunConfig.default(data={"train_pairs": 1000})


def test_the_run_keeps_its_best_validation_and_reports_both_directions_against_baselines(translation_run):
    metrics, run_dir = translation_run.metrics, translation_run.run_dir
    best = json.load(open(os.path.join(run_dir, "checkpoints", "best.json")))
    assert best["weights"] == f"best-step-{best['step']:09d}.weights.h5"  # named in best.json, the commit point
    assert [name for name in os.listdir(os.path.join(run_dir, "checkpoints")) if name.startswith("best-")] == [
        best["weights"]]
    assert metrics["best_step"] == best["step"] in (4, 8) and metrics["validation_loss"] == best["val_loss"]
    report = metrics["translation"]
    assert report["test_sentences"] > 0 and set(report["directions"]) == {"en->zh", "zh->en"}
    for direction in report["directions"].values():
        systems = direction["systems"]
        assert {"greedy", "memory", "most_common", "retrieval"} == set(systems)
        assert all(0 <= systems[name]["chrf"] <= 100 for name in ("greedy", "most_common", "retrieval"))
    assert "tok:zh" in report["directions"]["en->zh"]["signatures"]["bleu"]
    assert [example["source"] for example in report["examples"]][:2] == ["天气如何？", "今天天气很好。"]


def test_the_saved_model_translates_with_its_template(translation_run):
    loaded = load_run(translation_run.run_dir)
    assert loaded.model.prompt_template == TranslationTemplate(LANGUAGES)
    assert loaded.model.tokenizer.special_tokens["<zh>"] != loaded.model.tokenizer.special_tokens["<en>"]
    text = loaded.model.translate("one two", target="zh", max_new_tokens=4)
    assert text == translation_run.model.translate("one two", target="zh", max_new_tokens=4)


def test_the_command_line_translates_arguments_and_standard_input(translation_run, capsys):
    run_dir = translation_run.run_dir
    expected = [" ".join(translation_run.model.translate(text, target="zh").replace("\r", "\n").split("\n"))
                for text in ("one two", "three")]  # one at a time, as the command translates: one line each
    given = tfllm_command("translate", run_dir, "--to", "zh", "one two", "three")
    assert given.returncode == 0, given.stderr
    assert given.stdout.split("\n") == [*expected, ""]
    piped = tfllm_main(capsys, "translate", run_dir, "--to", "zh", stdin="one two\nthree\n")
    assert piped.stdout.split("\n") == [*expected, ""]
    # A line ending of Windows, a byte order mark and spaces around a text are not part of it; a blank line gets a
    # blank line, so that the lines out stay beside the lines in.
    piped = tfllm_main(capsys, "translate", run_dir, "--to", "zh", stdin="\ufeffone two\r\n \n  three \n")
    assert piped.stdout.split("\n") == [expected[0], "", expected[1], ""]


def test_the_command_line_translates_with_the_runs_training_pairs_as_memory(translation_run, capsys):
    from tfllm.data import load_parallel_corpus
    from tfllm.evaluation import TranslationMemory

    memory = TranslationMemory(load_parallel_corpus(translation_run.config.data.corpus, "train"), k=2)
    texts = ["one two", "three"]
    expected = [translation_run.model.translate(text, target="zh", memory=memory) for text in texts]
    assert all(choice in memory.retrieval("en", "zh").targets for choice in expected)
    given = tfllm_main(capsys, "translate", translation_run.run_dir, "--to", "zh", "--memory", "--memory-candidates",
                       "2", *texts)
    assert given.returncode == 0, given.stderr
    assert given.stdout.split("\n") == [*expected, ""]


@pytest.mark.parametrize("args, message", [
    (["translate", "{run}", "--to", "fr", "hello"], "target language 'fr'"),
    (["translate", "{run}", "--to", "zh", "--memory", "--memory-candidates", "0", "one"], "--memory-candidates 0"),
    (["translate", "{run}", "--to", "zh", "--memory-candidates", "2", "one"], "--memory-candidates is for --memory"),
    (["translate", "{run}", "--to", "zh", "--memory", "--num-beams", "2", "one"], "generates nothing"),
    (["generate", "{run}", "--prompt", "hello"], "holds a translation model: use tfllm translate"),
])
def test_bad_requests_are_one_line_and_exit_2(translation_run, args, message, capsys):
    result = tfllm_main(capsys, *[arg.format(run=translation_run.run_dir) for arg in args])
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_export_prints_translate_requests_for_a_translation_run(translation_run, tmp_path, capsys):
    result = tfllm_main(capsys, "export", translation_run.run_dir, tmp_path / "served", "--no-xla")
    assert result.returncode == 0, result.stderr
    assert '{"signature_name": "translate", "instances": [{"texts": "天气如何？", "target_language": "en"}]}' in (
        result.stdout)
    # generate reads a translation prompt as written: its example has the tags (it had the bare text, continued).
    assert '{"signature_name": "generate", "instances": [{"prompts": "<zh>天气如何？<en>"' in result.stdout
    assert 'served.signatures["translate"](texts=' in result.stdout
