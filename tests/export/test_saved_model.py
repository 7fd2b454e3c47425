"""SavedModel export: every signature, loaded in a fresh process where tfllm cannot be imported, against the model.

One module fixture exports a Transformer for each of the four tokenizers and the two recurrent models (byte
tokenizer); one subprocess (tensorflow and tensorflow-text only: tfllm is blocked, and the subprocess proves it)
loads all six and calls every signature, and the tests compare what it returns with the model in this process.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import OddIdsTokenizer
from tfllm.data import PromptTemplate
from tfllm.export import export_saved_model
from tfllm.generation import RequestSampler
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer, WordPieceTokenizer

CORPUS = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light: and "
          "there was light.", "And the evening and the morning were the first day."] * 10
PROMPTS = ["In the beginning", "And God said, Let there"]  # of different lengths
SCORED = ["And the evening", "", "In the beginning God created the heaven and the earth. " * 3]  # the last > context
SAMPLING = [  # (max_new_tokens, temperature, top_k, top_p, seed): greedy, top-k, top-p, both
    (12, 0.0, 0, 1.0, 0), (12, 1.0, 5, 1.0, 7), (12, 0.8, 0, 0.9, 3), (6, 1.2, 20, 0.8, 1)]
BAD_REQUESTS = [  # (max_new_tokens, temperature, top_k, top_p, the error the SavedModel must give)
    (-1, 0.0, 0, 1.0, "max_new_tokens must be at least 1"),
    (40, 0.0, 0, 1.0, "max_new_tokens is above max_new_tokens_limit=16, the limit of this export"),
    (4, 0.0, 0, 1.5, "top_p must be in (0, 1]"),
    (4, -1.0, 0, 1.0, "temperature must be >= 0"),
    (4, 0.0, -3, 1.0, "top_k must be >= 0"),
]

SERVE = r'''
import json, sys

class _NoTfllm:  # the serving process has tensorflow and tensorflow-text, not tfllm
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tfllm":
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")

sys.meta_path.insert(0, _NoTfllm())
try:
    import tfllm  # noqa: F401
    tfllm_importable = True
except ModuleNotFoundError:
    tfllm_importable = False
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

request = json.load(open(sys.argv[1]))
results = {"tfllm_importable": tfllm_importable, "exports": {}}
for name, path in request["exports"].items():
    served = tf.saved_model.load(path)
    generate, score = served.signatures["generate"], served.signatures["score"]
    out = {"generate": [], "errors": []}
    for new, temperature, top_k, top_p, seed in request["sampling"]:
        texts = generate(prompts=tf.constant(request["prompts"]), max_new_tokens=tf.constant(new),
                         temperature=tf.constant(temperature), top_k=tf.constant(top_k), top_p=tf.constant(top_p),
                         seed=tf.constant(seed))
        out["generate"].append({key: [text.decode("utf-8", "replace") for text in value.numpy()]
                                for key, value in texts.items()})
    scores = score(texts=tf.constant(request["scored"]))
    out["score"] = {key: value.numpy().tolist() for key, value in scores.items()}
    out["logits"] = served.signatures["serving_default"](token_ids=tf.constant([[1, 5, 6, 7]]))["logits"].numpy().tolist()
    out["limits"] = {key: int(getattr(served, key)) for key in
                     ("max_new_tokens_limit", "max_prompt_tokens", "max_score_tokens", "max_batch_size")}
    for new, temperature, top_k, top_p, _ in request["bad"]:
        try:
            generate(prompts=tf.constant(["In"]), max_new_tokens=tf.constant(new), temperature=tf.constant(temperature),
                     top_k=tf.constant(top_k), top_p=tf.constant(top_p), seed=tf.constant(0))
            out["errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["errors"].append(error.message)
    for call in (lambda: score(texts=tf.constant(["and " * 5000])),
                 lambda: generate(prompts=tf.constant(["In"] * 65), max_new_tokens=tf.constant(2),
                                  temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0),
                                  seed=tf.constant(0))):
        try:
            call()
            out["errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["errors"].append(error.message)
    results["exports"][name] = out
json.dump(results, open(sys.argv[2], "w"))
'''


def _transformer(tokenizer):
    return TransformerLM(tokenizer.vocab_size, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                         max_sequence_length=32, tokenizer=tokenizer)


def _models():
    keras.utils.set_random_seed(0)
    return {
        "transformer_byte": _transformer(ByteTokenizer()),
        "transformer_char": _transformer(CharTokenizer.train(CORPUS, verbose=False)),
        "transformer_wordpiece": _transformer(WordPieceTokenizer.train(CORPUS, 120, verbose=False)),
        "transformer_sentencepiece": _transformer(SentencePieceTokenizer.train(CORPUS, 320, model_type="bpe",
                                                                               verbose=False)),
        "lstm_byte": LSTMLM(259, hidden_dim=16, num_layers=2, tokenizer=ByteTokenizer()),
        "rnn_byte": SimpleRNNLM(259, hidden_dim=16, tokenizer=ByteTokenizer()),
        # Extra special tokens and a template the export applies to every prompt, as `model.generate` does.
        "lstm_template": LSTMLM(261, hidden_dim=16, tokenizer=ByteTokenizer(special_tokens=["<q>", "<a>"]),
                                prompt_template=PromptTemplate("<q>{question}<a>", "{answer}")),
        "lstm_odd_ids": LSTMLM(OddIdsTokenizer().vocab_size, hidden_dim=16, tokenizer=OddIdsTokenizer()),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(models, what the serving subprocess returned), after exporting every model."""
    folder = tmp_path_factory.mktemp("exports")
    models = _models()
    paths = {}
    for name, model in models.items():
        model(np.zeros((1, 2), np.int32))
        paths[name] = export_saved_model(model, folder / name, max_new_tokens_limit=16)
    request = {"exports": {name: os.fspath(path) for name, path in paths.items()}, "prompts": PROMPTS,
               "scored": SCORED, "sampling": SAMPLING, "bad": BAD_REQUESTS}
    (folder / "request.json").write_text(json.dumps(request))
    (folder / "serve.py").write_text(SERVE)
    subprocess.run([sys.executable, folder / "serve.py", folder / "request.json", folder / "results.json"],
                   check=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return models, json.loads((folder / "results.json").read_text()), paths


NAMES = ["transformer_byte", "transformer_char", "transformer_wordpiece", "transformer_sentencepiece", "lstm_byte",
         "rnn_byte", "lstm_template", "lstm_odd_ids"]


def test_the_serving_process_cannot_import_tfllm(served):
    assert served[1]["tfllm_importable"] is False


@pytest.mark.filterwarnings("ignore:prompts longer than")  # the long prompt loses its beginning in both, alike
@pytest.mark.parametrize("name", NAMES)
def test_generate_gives_what_model_generate_gives(served, name):
    models, results, _ = served
    model, out = models[name], results["exports"][name]
    for (new, temperature, top_k, top_p, seed), got in zip(SAMPLING, out["generate"]):
        if top_k and top_p < 1:  # both at once: model.generate takes that as a sampler object
            settings = {"sampler": RequestSampler(temperature, top_k, top_p)}
        else:
            settings = {"sampler": "random" if temperature > 0 else "greedy", "temperature": temperature,
                        "top_k": top_k or None, "top_p": top_p if top_p < 1 else None}
        settings.update(max_new_tokens=new, seed=seed)
        assert got["text"] == model.generate(PROMPTS, **settings), settings
        assert got["completion"] == model.generate(PROMPTS, strip_prompt=True, **settings), settings


@pytest.mark.parametrize("name", NAMES)
def test_score_and_logits_match_the_model(served, name):
    models, results, _ = served
    model, out = models[name], results["exports"][name]
    log_likelihood, num_tokens = model.score(SCORED)
    assert out["score"]["num_tokens"] == num_tokens.tolist()
    np.testing.assert_allclose(out["score"]["log_likelihood"], log_likelihood, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["logits"], np.asarray(model(np.array([[1, 5, 6, 7]], np.int32))), atol=1e-5)


def test_limits_are_recorded_and_bad_requests_are_refused_with_a_clear_error(served):
    _, results, _ = served
    for name in NAMES:
        out = results["exports"][name]
        expected_prompt = 31 if name.startswith("transformer") else 1024
        assert out["limits"] == {"max_new_tokens_limit": 16, "max_prompt_tokens": expected_prompt,
                                 "max_score_tokens": 4096, "max_batch_size": 64}
        messages = [message for *_, message in BAD_REQUESTS] + [
            "a text is longer than max_score_tokens=4096, the limit of this export",
            "prompts holds more texts than max_batch_size=64, the limit of this export"]
        assert len(out["errors"]) == len(messages)
        for message, error in zip(messages, out["errors"]):
            assert error is not None and message in error, (name, message, error)


def test_saved_model_cli_lists_the_three_signatures_with_their_types(served):
    _, _, paths = served
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", paths["lstm_byte"], "--all"], capture_output=True, text=True,
                           check=True, timeout=300).stdout
    signatures = {block.split("'")[0]: block for block in shown.split("signature_def['")[1:]}
    assert {"generate", "score", "serving_default"} <= set(signatures)
    for name, dtype, shape in [("prompts", "DT_STRING", "(-1)"), ("max_new_tokens", "DT_INT32", "()"),
                               ("temperature", "DT_FLOAT", "()"), ("top_k", "DT_INT32", "()"),
                               ("top_p", "DT_FLOAT", "()"), ("seed", "DT_INT32", "()")]:
        assert f"inputs['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: {shape}" in signatures["generate"]
    assert "outputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in signatures["generate"]
    assert "inputs['texts'] tensor_info:\n        dtype: DT_STRING" in signatures["score"]
    assert "outputs['log_likelihood'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)" in signatures["score"]
    assert "outputs['num_tokens'] tensor_info:\n        dtype: DT_INT32" in signatures["score"]
    assert "inputs['token_ids'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1, -1)" in signatures[
        "serving_default"]
    assert "outputs['logits'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, -1, 259)" in signatures[
        "serving_default"]


def test_bad_export_arguments_are_refused_before_writing(tmp_path):
    model = _transformer(ByteTokenizer())
    with pytest.raises(ValueError, match="no tokenizer"):
        export_saved_model(TransformerLM(10, 1, 1, 4, 8, 8), tmp_path / "a")
    with pytest.raises(ValueError, match=r"max_new_tokens_limit=32 leaves no room .* max_sequence_length=32"):
        export_saved_model(model, tmp_path / "b", max_new_tokens_limit=32)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_saved_model(model, tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
