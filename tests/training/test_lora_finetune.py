"""`tfllm finetune --lora-rank`: a run that stores only its adapter and a pointer to its parent, reads back as the
model it trained, fine-tunes further, and refuses what it cannot do with one line."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
from keras import ops

from tests.training.common import write_kjv_verses
from tfllm import cli
from tfllm.data import load_texts
from tfllm.data.templates import PromptTemplate
from tfllm.evaluation import evaluate_texts
from tfllm.models import LSTMLM, TransformerLM
from tfllm.models.lora import adapter_weights, lora_settings
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import FinetuneConfig, RunConfig, RunDirectory, RunDirectoryError, finetune_run, load_run

VOCAB = 259


def _pretrained_run(path, model):
    """A complete pretraining run of `model`, made by hand."""
    run = RunDirectory(path)
    run.start(RunConfig.default("transformer", data={"tokenizer": "byte"}, train={"sequence_length": 32}), "new")
    run.save_model(model)
    for name in run.missing_files():
        run.write_text(name, "{}")
    return run.path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A pretrained parent, its LoRA "continue" fine-tuning (and that run's result), and the verses corpus."""
    folder = tmp_path_factory.mktemp("lora")
    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCAB, num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=256,
                          max_sequence_length=32, tokenizer=ByteTokenizer())
    model(np.zeros((1, 2), "int32"))
    parent = _pretrained_run(folder / "parent", model)
    corpus = write_kjv_verses(folder)
    config = FinetuneConfig("continue", corpus, steps=4, batch_size=4, lora_rank=2, lora_alpha=4)
    result = finetune_run(parent, config, folder / "lora", verbose=0)
    return folder, parent, result, corpus


def _token_ids():
    return np.random.default_rng(1).integers(3, VOCAB, size=(2, 32)).astype("int32")


def _base_weights(model):
    return {weight.path.split("/", 1)[1]: ops.convert_to_numpy(weight) for weight in model.weights
            if "lora_kernel" not in weight.path}


def test_a_lora_run_stores_only_its_adapter_and_counts_what_trained(runs):
    folder, parent, result, _ = runs
    run_dir = result.run_dir
    assert sorted(os.listdir(run_dir)) == ["adapter.weights.h5", "finetune.json", "history.json", "metrics.json",
                                           "run.json"]
    adapter = os.path.getsize(os.path.join(run_dir, "adapter.weights.h5"))
    assert adapter < os.path.getsize(os.path.join(parent, "model.keras")) / 10
    metrics = result.metrics
    # Per block: query/key/value A (64, 2, 2) and B (2, 32), output A (2, 32, 2) and B (2, 64), MLP A (64, 2) and
    # B (2, 256), then A (256, 2) and B (2, 64).
    per_block = 3 * (64 * 2 * 2 + 2 * 32) + (2 * 32 * 2 + 2 * 64) + (64 * 2 + 2 * 256) + (256 * 2 + 2 * 64)
    base = 259 * 64 + 32 * 64 + 2 * (4 * 64 * 64 + 4 * 64 + 2 * 64 * 256 + 256 + 64 + 4 * 64) + 2 * 64
    assert (metrics["trainable_parameters"], metrics["total_parameters"]) == (2 * per_block, base + 2 * per_block)
    assert metrics["adapter_bytes"] == adapter
    assert json.loads(open(os.path.join(run_dir, "finetune.json")).read())["config"]["lora_rank"] == 2


def test_load_run_rebuilds_the_model_from_the_parent_and_the_adapter(runs):
    _, parent, result, corpus = runs
    loaded = load_run(result.run_dir)
    assert loaded.is_lora and (loaded.kind, loaded.parent.path, loaded.corpus) == ("finetune", parent, corpus)
    assert lora_settings(loaded.model) == {"rank": 2, "alpha": 4.0}
    token_ids = _token_ids()
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.model(token_ids)),
                               ops.convert_to_numpy(result.model(token_ids)), atol=1e-6)
    # The base weights are the parent's, bit for bit: only the adapter trained.
    parent_weights = _base_weights(load_run(parent).model)
    loaded_weights = _base_weights(loaded.model)
    assert sorted(loaded_weights) == sorted(parent_weights)
    for key, value in parent_weights.items():
        np.testing.assert_array_equal(loaded_weights[key], value, err_msg=key)
    assert any(np.any(ops.convert_to_numpy(weight)) for key, weight in adapter_weights(loaded.model).items()
               if key.endswith("lora_kernel_b"))


def test_a_moved_or_retrained_parent_is_named_in_one_line(runs, tmp_path):
    folder, parent, result, _ = runs
    child = shutil.copytree(result.run_dir, tmp_path / "child")
    finetune_json = json.loads((child / "finetune.json").read_text())
    finetune_json["parent"] = os.fspath(tmp_path / "moved-away")
    (child / "finetune.json").write_text(json.dumps(finetune_json))
    with pytest.raises(RunDirectoryError) as error:
        load_run(child)
    message = str(error.value)
    assert "\n" not in message and message == (
        f"{child} stores only a LoRA adapter, and its parent run {tmp_path / 'moved-away'} (whose model it adapts) "
        "does not exist: put the parent back there, or fine-tune again")

    moved = shutil.copytree(parent, tmp_path / "moved-parent")  # a parent moved with its run: found where it went
    finetune_json["parent"] = os.fspath(moved)
    (child / "finetune.json").write_text(json.dumps(finetune_json))
    token_ids = _token_ids()
    np.testing.assert_allclose(ops.convert_to_numpy(load_run(child).model(token_ids)),
                               ops.convert_to_numpy(result.model(token_ids)), atol=1e-6)
    retrained = keras.saving.load_model(moved / "model.keras")  # the parent trained again: the adapter no longer fits
    retrained.token_embedding.embeddings.assign(retrained.token_embedding.embeddings * 2)
    retrained.save(moved / "model.keras")
    with pytest.raises(RunDirectoryError, match=f"^{moved}, the parent run of {child}, holds another model than the "
                                                "one the LoRA adapter was trained on"):
        load_run(child)
    (child / "adapter.weights.h5").unlink()
    with pytest.raises(RunDirectoryError, match="holds an unfinished run: adapter.weights.h5 missing"):
        load_run(child)


def test_the_command_line_fine_tunes_a_lora_run_again_and_generates_and_evaluates_it(runs, capsys):
    folder, _, result, corpus = runs
    output = folder / "cli-lora-on-lora"
    code = cli.main(["finetune", result.run_dir, "--task", "continue", "--data", corpus, "--lora-rank", "1",
                     "--steps", "2", "--batch-size", "4", "--strategy", "cpu", "--quiet", "--output-dir",
                     os.fspath(output)])
    out = capsys.readouterr().out
    assert code == 0 and "LoRA adapter of rank 1: 2,496 of 121,216 parameters trained" in out, out
    assert f"Run directory: {output} (parent: {result.run_dir})" in out
    assert sorted(os.listdir(output)) == sorted(os.listdir(result.run_dir))  # its own adapter, no model.keras
    loaded = load_run(output)  # the parent's adapter merged into its parent's model, then this run's adapter
    assert lora_settings(loaded.model) == {"rank": 1, "alpha": 1.0}
    assert (loaded.parent.path, loaded.parent.parent.kind) == (result.run_dir, "pretrain")
    assert cli.main(["generate", os.fspath(output), "--prompt", "In the beginning", "--max-new-tokens", "4",
                     "--temperature", "0"]) == 0
    assert capsys.readouterr().out == loaded.model.generate("In the beginning", max_new_tokens=4) + "\n"
    assert cli.main(["evaluate", os.fspath(output), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The numbers of the model with both adapters: without this run's, they are other numbers.
    texts = load_texts(corpus, "validation")
    expected = evaluate_texts(loaded.model, texts)
    assert (report["corpus"], report["split"], report["tokens"], report["bytes"], report["documents"]) == (
        corpus, "validation", expected.tokens, expected.bytes, expected.documents)
    assert report["loss"] == pytest.approx(expected.loss, rel=1e-6)
    assert report["bits_per_byte"] == pytest.approx(expected.bits_per_byte, rel=1e-6)
    assert evaluate_texts(load_run(result.run_dir).model, texts).loss != pytest.approx(expected.loss, rel=1e-6)


def test_bad_lora_input_is_one_line_and_exit_status_2(runs, tmp_path, capsys):
    folder, parent, _, corpus = runs
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": f"text {index}", "label": "a"}) + "\n" for index in range(30)))
    keras.utils.set_random_seed(0)
    lstm = LSTMLM(VOCAB, hidden_dim=8, tokenizer=ByteTokenizer())
    lstm(np.zeros((1, 2), "int32"))
    lstm_parent = _pretrained_run(tmp_path / "lstm", lstm)
    output = tmp_path / "out"
    common = ["--steps", "2", "--batch-size", "4", "--strategy", "cpu", "--output-dir", os.fspath(output)]
    cases = [
        (["finetune", parent, "--task", "continue", "--data", corpus, "--lora-rank", "0"],
         "finetune.lora_rank=0 is invalid: expected a positive integer or None (full fine-tuning)."),
        (["finetune", parent, "--task", "continue", "--data", corpus, "--lora-rank", "-3"],
         "finetune.lora_rank=-3 is invalid"),
        (["finetune", parent, "--task", "continue", "--data", corpus, "--lora-rank", "2", "--lora-alpha", "0"],
         "finetune.lora_alpha=0.0 is invalid: expected a number > 0."),
        (["finetune", parent, "--task", "continue", "--data", corpus, "--lora-alpha", "8"],
         "finetune.lora_alpha=8.0 is set without finetune.lora_rank"),
        (["finetune", parent, "--task", "continue", "--data", corpus, "--lora-rank", "two"],
         "finetune.lora_rank='two' has the type str: expected int or null"),
        (["finetune", parent, "--task", "classify", "--data", labelled, "--lora-rank", "2"],
         "a 'classify' run trains a new head, so drop --lora-rank"),
        (["finetune", lstm_parent, "--task", "continue", "--data", corpus, "--lora-rank", "2"],
         "LoRA adapts the attention and MLP projections of Transformer blocks: LSTMLM has none"),
    ]
    for argv, message in cases:
        code = cli.main([str(arg) for arg in argv + common])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, (argv, err)
    assert not output.exists()  # refused before anything was written


def test_a_lora_run_reads_back_with_its_own_prompt_template_not_its_parent_s(runs, tmp_path):
    # The adapted model was rebuilt from the parent's model.keras, template included: a LoRA fine-tuning on "qa" (Q/A
    # template) generated from raw prompts, or as a chat model, like its parent, while its template.json said Q/A.
    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCAB, num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                          max_sequence_length=64, tokenizer=ByteTokenizer(),
                          prompt_template=PromptTemplate("<<{prompt}>>", "{completion}"))
    model(np.zeros((1, 2), "int32"))
    parent = _pretrained_run(tmp_path / "parent", model)
    qa = finetune_run(parent, FinetuneConfig("sft", "qa", steps=1, batch_size=4, sequence_length=64, lora_rank=2),
                      tmp_path / "qa", verbose=0)
    loaded = load_run(qa.run_dir)
    assert loaded.template is not None and loaded.template.get_config() != model.prompt_template.get_config()
    assert loaded.model.prompt_template.get_config() == loaded.template.get_config()  # the run's own: Q/A
    assert loaded.model.prompt_template.format_prompt("Why?") == "Q: Why?\nA: "
