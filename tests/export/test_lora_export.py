"""A GPT-2 read from a Hugging Face directory, LoRA-fine-tuned (only the adapter trains) and exported by `tfllm
export` from a LoRA run directory (`export_saved_model` of its adapted model): the export merges the adapter, has no
adapter variables, and serves what the adapted model generates and scores, its byte-level BPE tokenizer inside, in a
process where neither tfllm nor keras_hub nor transformers can be imported."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.gpt2_checkpoints import reference_checkpoints
from tests.serving_process import WITHOUT_TFLLM
from tfllm import cli
from tfllm.models import TransformerLM
from tfllm.models.lora import adapter_weights, lora_settings
from tfllm.training.finetune import continue_pretraining
from tfllm.training import FinetuneConfig, RunConfig, RunDirectory, load_run

PROMPTS = ["In the beginning", "And God said"]
SCORED = ["And the evening and the morning", "Let there be light"]

SERVE = WITHOUT_TFLLM + r'''
request = json.load(open(sys.argv[1]))
results = {"tfllm_importable": tfllm_importable, "exports": {}}
for name, path in request["exports"].items():
    served = tf.saved_model.load(path)
    rows = len(request["prompts"])
    text = served.signatures["generate"](
        prompts=tf.constant(request["prompts"]), max_new_tokens=tf.fill([rows], 8),
        temperature=tf.zeros([rows]), top_k=tf.zeros([rows], tf.int32), top_p=tf.ones([rows]),
        seed=tf.zeros([rows], tf.int32))["text"]
    scores = served.signatures["score"](texts=tf.constant(request["scored"]))
    results["exports"][name] = {
        "text": [value.decode("utf-8") for value in text.numpy()],
        "log_likelihood": scores["log_likelihood"].numpy().tolist(),
        "variables": sorted(variable.name for variable in served.variables),
    }
json.dump(results, open(sys.argv[2], "w"))
'''


def _lora_gpt2():
    """A tiny random GPT-2 read from a Hugging Face directory, LoRA-fine-tuned a few steps: `(the model, its losses,
    the base weights before and after training)`."""
    keras.utils.set_random_seed(0)
    model = TransformerLM.from_pretrained(reference_checkpoints().hugging_face)
    before = {weight.path: keras.ops.convert_to_numpy(weight) for weight in model.weights}
    model.enable_lora(rank=2, alpha=4)
    history = continue_pretraining(model, ["In the beginning God created the heaven and the earth."] * 32, steps=6,
                                   sequence_length=16, batch_size=4, learning_rate=1e-2, seed=0, log_every=3)
    after = {weight.path: keras.ops.convert_to_numpy(weight) for weight in model.weights if weight.path in before}
    return model, history.history["loss"], (before, after)


def _lora_run(folder, model):
    """A pretraining parent holding the checkpoint's model and a LoRA fine-tuning of it holding `model`'s adapter,
    made by hand."""
    parent = RunDirectory(folder / "parent")
    parent.start(RunConfig.default("transformer"), "new")
    parent.save_model(TransformerLM.from_pretrained(reference_checkpoints().hugging_face))
    for name in parent.missing_files():
        parent.write_text(name, "{}")
    run = RunDirectory(folder / "lora", "finetune")
    run.start(FinetuneConfig("continue", "kjv", lora_rank=2, lora_alpha=4), "new", parent=load_run(parent.path))
    run.save_adapter(model, parent.path)
    run.write_json("history.json", {"loss": [1.0]})
    run.write_json("metrics.json", {"task": "continue"})
    return run.path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the adapted GPT-2, its losses and base weights, what the export of its run served in a process without
    tfllm, the LoRA run directory); the decode loop in the plain graph, which exports and loads faster than XLA."""
    folder = tmp_path_factory.mktemp("lora-export")
    model, losses, base = _lora_gpt2()
    run_dir = _lora_run(folder, model)
    assert cli.main(["export", run_dir, os.fspath(folder / "export"), "--max-new-tokens", "8", "--no-xla"]) == 0
    request = {"exports": {"gpt2": os.fspath(folder / "export" / "1")}, "prompts": PROMPTS, "scored": SCORED}
    (folder / "request.json").write_text(json.dumps(request))
    (folder / "serve.py").write_text(SERVE)
    subprocess.run([sys.executable, folder / "serve.py", folder / "request.json", folder / "results.json"],
                   check=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    results = json.loads((folder / "results.json").read_text())
    return model, (losses, base), results, run_dir


def test_lora_fine_tuning_of_a_converted_gpt2_trains_only_the_adapter(served):
    model, (losses, (before, after)), _, _ = served
    assert losses[-1] < losses[0], losses
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)  # the checkpoint's weights, untouched
    assert all(np.any(keras.ops.convert_to_numpy(weight)) for weight in adapter_weights(model).values())


def test_the_export_has_no_adapter_variables_and_the_process_has_no_tfllm(served):
    model, _, results, _ = served
    assert results["tfllm_importable"] is False
    variables = results["exports"]["gpt2"]["variables"]
    assert variables and not [variable for variable in variables if "lora" in variable]
    assert lora_settings(model) == {"rank": 2, "alpha": 4.0}  # exporting left the model itself adapted


def test_the_merged_export_serves_what_the_adapted_model_generates_and_scores(served):
    model, _, results, _ = served
    export = results["exports"]["gpt2"]
    assert export["text"] == model.generate(PROMPTS, max_new_tokens=8, jit_compile=False)
    np.testing.assert_allclose(export["log_likelihood"], model.score(SCORED)[0], rtol=1e-5, atol=1e-3)


def test_the_adapter_changes_what_is_served(served):
    _, _, results, run_dir = served
    parent = load_run(load_run(run_dir).parent.path).model  # the checkpoint's model, without the adapter
    assert parent.score(SCORED)[0].tolist() != pytest.approx(results["exports"]["gpt2"]["log_likelihood"], abs=1e-3)
