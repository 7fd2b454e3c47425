"""SavedModel export: every signature, loaded in a fresh process where tfllm cannot be imported, against the model.

One module fixture exports a Transformer for each of the four tokenizers and the recurrent models (byte tokenizer),
each architecture under XLA, the Transformer and the LSTM in the plain graph; one subprocess (tensorflow and
tensorflow-text only: tfllm is blocked, and the subprocess proves it) loads them all, calls every signature with
tensors and with REST request bodies (JSON, turned into tensors as TensorFlow Serving turns them), and the tests
compare what it returns with the model in this process. Every string it gets back must decode as strict UTF-8.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import OddIdsTokenizer
from tests.serving_process import WITHOUT_TFLLM
from tfllm.data import PromptTemplate
from tfllm.export import export_saved_model, saved_model
from tfllm.generation import RequestSampler
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer, WordPieceTokenizer

CORPUS = ["In the beginning God created the heaven and the earth.", "And God said, Let there be light: and "
          "there was light.", "And the evening and the morning were the first day."] * 10
PROMPTS = ["In the beginning", "And God said, Let there"]  # of different lengths
SCORED = ["And the evening", "", "In the beginning God created the heaven and the earth. " * 3]  # the last > context
SETTINGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
REQUESTS = [  # one (max_new_tokens, temperature, top_k, top_p, seed) per prompt, for each request
    [(12, 0.0, 0, 1.0, 0)] * 2,  # greedy
    [(12, 1.0, 5, 1.0, 7), (12, 1.0, 5, 1.0, 7)],  # top-k, one seed
    [(12, 0.8, 0, 0.9, 3), (9, 0.8, 0, 0.9, 4)],  # top-p, a seed and a length per row
    [(6, 1.2, 20, 0.8, 1), (12, 0.0, 0, 1.0, 0)],  # both cut-offs beside greedy
    [(16, 3.0, 0, 1.0, 11), (16, 3.0, 0, 1.0, 12)],  # hot: random bytes, many of them not UTF-8
]
SERVING_DEFAULTS = {"max_new_tokens": 10, "temperature": 0.8, "top_k": 0, "top_p": 0.9, "seed": 5}
BAD_REQUESTS = [  # (max_new_tokens, temperature, top_k, top_p, the error the SavedModel must give)
    (-1, 0.0, 0, 1.0, "max_new_tokens must be at least 1"),
    (40, 0.0, 0, 1.0, "max_new_tokens is above max_new_tokens_limit=16, the limit of this export"),
    (4, 0.0, 0, 1.5, "top_p must be in (0, 1]"),
    (4, -1.0, 0, 1.0, "temperature must be >= 0"),
    (4, 0.0, -3, 1.0, "top_k must be >= 0"),
]
# REST request bodies for TensorFlow Serving's :predict, as a client sends them: the row format ("instances", one
# dict of values per row) and the columnar format ("inputs", one list per input).
ROW_BODY = json.dumps({"signature_name": "generate", "instances": [
    dict(zip(["prompts", *SETTINGS], [prompt, *settings])) for prompt, settings in zip(PROMPTS, REQUESTS[3])]})
COLUMNAR_BODY = json.dumps({"signature_name": "generate", "inputs": {
    "prompts": PROMPTS, **{name: [row[i] for row in REQUESTS[2]] for i, name in enumerate(SETTINGS)}}})
DEFAULT_BODIES = [json.dumps({"instances": PROMPTS}), json.dumps({"instances": [{"prompts": p} for p in PROMPTS]}),
                  json.dumps({"inputs": {"prompts": PROMPTS}})]

SERVE = WITHOUT_TFLLM + r'''
SETTINGS = ("max_new_tokens", "temperature", "top_k", "top_p", "seed")
invalid_utf8 = []


def strings(name, tensor):
    """The strings of an output, decoded strictly: an invalid one is recorded (and shown replaced)."""
    texts = []
    for text in tensor.numpy():
        try:
            texts.append(text.decode("utf-8"))
        except UnicodeDecodeError:
            invalid_utf8.append([name, repr(text)])
            texts.append(text.decode("utf-8", "replace"))
    return texts


def from_rest(body, signatures):
    """A :predict request body as TensorFlow Serving reads it: "instances" rows stacked along a new batch axis, or
    "inputs" columns; a lone input may be given without its name. Returns the signature's outputs."""
    body = json.loads(body)
    signature = signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]  # name -> TensorSpec
    if "instances" in body:
        rows = [row if isinstance(row, dict) else {next(iter(specs)): row} for row in body["instances"]]
        columns = {name: [row[name] for row in rows] for name in specs}
    else:
        columns = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(specs)): body["inputs"]}
    return signature(**{name: tf.constant(value, dtype=specs[name].dtype) for name, value in columns.items()})


def per_row(prompts, rows):
    columns = list(zip(*rows))
    return dict(prompts=tf.constant(prompts), max_new_tokens=tf.constant(columns[0], tf.int32),
                temperature=tf.constant(columns[1], tf.float32), top_k=tf.constant(columns[2], tf.int32),
                top_p=tf.constant(columns[3], tf.float32), seed=tf.constant(columns[4], tf.int32))


request = json.load(open(sys.argv[1]))
results = {"tfllm_importable": tfllm_importable, "exports": {}}
for name, path in request["exports"].items():
    served = tf.saved_model.load(path)
    signatures = served.signatures
    out = {"generate": [], "errors": [], "rest": [], "default": []}
    for rows in request["requests"]:
        texts = signatures["generate"](**per_row(request["prompts"], rows))
        out["generate"].append({key: strings(name, value) for key, value in texts.items()})
    for body in request["rest"]:
        out["rest"].append(strings(name, from_rest(body, signatures)["text"]))
    for body in request["default_bodies"]:
        out["default"].append(strings(name, from_rest(body, signatures)["text"]))
    scores = signatures["score"](texts=tf.constant(request["scored"]))
    out["score"] = {key: value.numpy().tolist() for key, value in scores.items()}
    out["limits"] = {key: int(getattr(served, key)) for key in
                     ("max_new_tokens_limit", "max_prompt_tokens", "max_score_tokens", "max_batch_size")}
    calls = [lambda row=row: signatures["generate"](**per_row(["In"], [row[:4] + [0]])) for row in request["bad"]]
    calls += [lambda: signatures["score"](texts=tf.constant(["and " * 5000])),
              lambda: signatures["generate"](**per_row(["In"] * 65, [(2, 0.0, 0, 1.0, 0)] * 65)),
              lambda: signatures["generate"](**{**per_row(["In", "And"], [(2, 0.0, 0, 1.0, 0)] * 2),
                                                "top_k": tf.constant([0])}),
              lambda: signatures["generate"](prompts=tf.constant([], tf.string), **{
                  name: tf.constant([], dtype) for name, dtype in zip(SETTINGS, ("int32", "float32", "int32",
                                                                                 "float32", "int32"))}),
              lambda: signatures["score"](texts=tf.constant([], tf.string))]
    for call in calls:
        try:
            call()
            out["errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["errors"].append(error.message)
    results["exports"][name] = out
results["invalid_utf8"] = invalid_utf8
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


NAMES = ["transformer_byte", "transformer_char", "transformer_wordpiece", "transformer_sentencepiece", "lstm_byte",
         "rnn_byte", "lstm_template", "lstm_odd_ids"]
# (model, jit_compile): each architecture's decode loop under XLA, and the Transformer's and the LSTM's in the plain
# graph too. The tokenizers, the template and the odd ids act outside the loop: their exports use the plain graph,
# which loads and runs without compiling.
XLA = {"transformer_byte", "lstm_byte", "rnn_byte"}
EXPORTS = {name: (name, name in XLA) for name in NAMES} | {"lstm_byte_no_xla": ("lstm_byte", False)}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(models, what the serving subprocess returned, the version directories), after exporting every model."""
    folder = tmp_path_factory.mktemp("exports")
    models = _models()
    paths = {}
    for name, (model_name, jit_compile) in EXPORTS.items():
        models[model_name](np.zeros((1, 2), np.int32))
        paths[name] = export_saved_model(models[model_name], folder / name, max_new_tokens_limit=16,
                                         jit_compile=jit_compile, **SERVING_DEFAULTS)
    request = {"exports": {name: os.fspath(path) for name, path in paths.items()}, "prompts": PROMPTS,
               "scored": SCORED, "requests": REQUESTS, "bad": BAD_REQUESTS, "rest": [ROW_BODY, COLUMNAR_BODY],
               "default_bodies": DEFAULT_BODIES}
    (folder / "request.json").write_text(json.dumps(request))
    (folder / "serve.py").write_text(SERVE)
    subprocess.run([sys.executable, folder / "serve.py", folder / "request.json", folder / "results.json"],
                   check=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return models, json.loads((folder / "results.json").read_text()), paths


_GENERATED = {}  # (export, prompt, row, options) -> text: the REST tests ask again for rows the tensor tests asked


def _generate(models, name, prompt, row, **options):
    """What `model.generate` gives for one prompt alone, with the settings of one row of a request."""
    key = (name, prompt, tuple(row), tuple(sorted(options.items())))
    if key not in _GENERATED:
        _GENERATED[key] = _generate_now(models, name, prompt, row, **options)
    return _GENERATED[key]


def _generate_now(models, name, prompt, row, **options):
    new, temperature, top_k, top_p, seed = row
    if top_k and top_p < 1:  # both at once: model.generate takes that as a sampler object
        settings = {"sampler": RequestSampler(temperature, top_k, top_p)}
    else:
        settings = {"sampler": "random" if temperature > 0 else "greedy", "temperature": temperature,
                    "top_k": top_k or None, "top_p": top_p if top_p < 1 else None}
    model_name, jit_compile = EXPORTS[name]
    return models[model_name].generate(prompt, max_new_tokens=new, seed=seed, jit_compile=jit_compile, **settings,
                                       **options)


def test_the_serving_process_cannot_import_tfllm(served):
    assert served[1]["tfllm_importable"] is False


def test_every_returned_string_is_valid_utf8(served):
    _, results, _ = served
    assert results["invalid_utf8"] == []
    for name in ("transformer_byte", "lstm_byte", "rnn_byte", "lstm_byte_no_xla"):  # random bytes were replaced
        hot = results["exports"][name]["generate"][-1]
        assert any("\ufffd" in text for text in hot["text"]), (name, hot)


@pytest.mark.filterwarnings("ignore:prompts longer than")  # the long prompt loses its beginning in both, alike
@pytest.mark.parametrize("name", EXPORTS)
def test_generate_gives_each_row_what_model_generate_gives_for_its_prompt(served, name):
    models, out = served[0], served[1]["exports"][name]
    for rows, got in zip(REQUESTS, out["generate"]):
        for prompt, row, text, completion in zip(PROMPTS, rows, got["text"], got["completion"]):
            assert text == _generate(models, name, prompt, row), (prompt, row)
            assert completion == _generate(models, name, prompt, row, strip_prompt=True), (prompt, row)


@pytest.mark.filterwarnings("ignore:prompts longer than")
@pytest.mark.parametrize("name", EXPORTS)
def test_rest_request_bodies_give_what_model_generate_gives(served, name):
    models, out = served[0], served[1]["exports"][name]
    row_format, columnar = out["rest"]
    assert row_format == [_generate(models, name, prompt, row) for prompt, row in zip(PROMPTS, REQUESTS[3])]
    assert columnar == [_generate(models, name, prompt, row) for prompt, row in zip(PROMPTS, REQUESTS[2])]
    defaults = tuple(SERVING_DEFAULTS[key] for key in SETTINGS)
    expected = [_generate(models, name, prompt, defaults) for prompt in PROMPTS]
    assert out["default"] == [expected] * len(DEFAULT_BODIES)


@pytest.mark.parametrize("name", NAMES)
def test_score_matches_the_model(served, name):
    models, results, _ = served
    model, out = models[name], results["exports"][name]
    log_likelihood, num_tokens = model.score(SCORED)
    assert out["score"]["num_tokens"] == num_tokens.tolist()
    np.testing.assert_allclose(out["score"]["log_likelihood"], log_likelihood, rtol=1e-4, atol=1e-4)


def test_limits_are_recorded_and_bad_requests_are_refused_with_a_clear_error(served):
    _, results, _ = served
    for name in EXPORTS:
        out = results["exports"][name]
        expected_prompt = 31 if name.startswith("transformer") else 1024
        assert out["limits"] == {"max_new_tokens_limit": 16, "max_prompt_tokens": expected_prompt,
                                 "max_score_tokens": 4096, "max_batch_size": 64}
        messages = [message for *_, message in BAD_REQUESTS] + [
            "a text is longer than max_score_tokens=4096, the limit of this export",
            "prompts holds more texts than max_batch_size=64, the limit of this export",
            "top_k must hold one value per prompt",
            "prompts is empty: expected at least one text",  # they failed in a Pad op of a width of -2**31
            "texts is empty: expected at least one text"]
        assert len(out["errors"]) == len(messages)
        for message, error in zip(messages, out["errors"]):
            assert error is not None and message in error, (name, message, error)


def test_saved_model_cli_lists_the_three_signatures_with_their_types(served):
    _, _, paths = served
    assert pathlib.Path(paths["lstm_byte"]).name == "1"  # a numbered version, as TensorFlow Serving expects
    cli = pathlib.Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", paths["lstm_byte"], "--all"], capture_output=True, text=True,
                           check=True, timeout=300).stdout
    signatures = {block.split("'")[0]: block for block in shown.split("signature_def['")[1:]}
    assert {"generate", "score", "serving_default"} <= set(signatures)
    for name, dtype in [("prompts", "DT_STRING"), ("max_new_tokens", "DT_INT32"), ("temperature", "DT_FLOAT"),
                        ("top_k", "DT_INT32"), ("top_p", "DT_FLOAT"), ("seed", "DT_INT32")]:
        assert f"inputs['{name}'] tensor_info:\n        dtype: {dtype}\n        shape: (-1)" in signatures["generate"]
    for name in ("generate", "serving_default"):
        assert "outputs['text'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in signatures[name]
    assert "inputs['prompts'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in signatures[
        "serving_default"]
    assert signatures["serving_default"].count("inputs['") == 1
    assert "inputs['texts'] tensor_info:\n        dtype: DT_STRING" in signatures["score"]
    assert "outputs['log_likelihood'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1)" in signatures["score"]
    assert "outputs['num_tokens'] tensor_info:\n        dtype: DT_INT32" in signatures["score"]


def test_bad_export_arguments_are_refused_before_writing(tmp_path):
    model = _transformer(ByteTokenizer())
    with pytest.raises(ValueError, match="no tokenizer"):
        export_saved_model(TransformerLM(10, 1, 1, 4, 8, 8), tmp_path / "a")
    with pytest.raises(ValueError, match=r"max_new_tokens_limit=32 leaves no room .* max_sequence_length=32"):
        export_saved_model(model, tmp_path / "b", max_new_tokens_limit=32)
    with pytest.raises(ValueError, match=r"max_new_tokens=20 is above max_new_tokens_limit=16"):
        export_saved_model(model, tmp_path / "b", max_new_tokens=20)  # a 32-token context: the limit is 16
    with pytest.raises(ValueError, match=r"top_p=1.5 is invalid"):
        export_saved_model(model, tmp_path / "b", max_new_tokens=8, top_p=1.5)
    with pytest.raises(ValueError, match=r"version=0 is invalid"):
        export_saved_model(model, tmp_path / "b", version=0)
    # Limits beyond int32 failed inside TensorFlow, after the tracing.
    with pytest.raises(ValueError, match=r"max_batch_size=2147483648 is invalid: expected an integer below "
                                         r"2\*\*31 \(an int32\)"):
        export_saved_model(model, tmp_path / "b", max_new_tokens=8, max_batch_size=2**31)
    # A file where the version directory goes failed inside tf.saved_model.save.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1").write_text("mine")
    with pytest.raises(ValueError, match=r"d/1 is a file: the version directory must not exist or be empty"):
        export_saved_model(model, tmp_path / "d", max_new_tokens=8)
    assert (tmp_path / "d" / "1").read_text() == "mine"
    (tmp_path / "c" / "1").mkdir(parents=True)
    (tmp_path / "c" / "1" / "x").write_text("mine")
    with pytest.raises(ValueError, match=r"c/1 exists and is not empty: choose another --version"):
        export_saved_model(model, tmp_path / "c", max_new_tokens=8)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert (tmp_path / "c" / "1" / "x").read_text() == "mine"


def test_a_version_appears_only_when_whole(tmp_path, monkeypatch):
    # The export was written in place: TensorFlow Serving could load it half-written, and a killed export left a
    # version directory that neither loaded nor let the export run again.
    model = _transformer(ByteTokenizer())
    written = []

    def killed_half_way(path, *args, **kwargs):
        written.append(os.path.basename(path))
        os.makedirs(os.path.join(path, "variables"))
        raise KeyboardInterrupt

    monkeypatch.setattr(saved_model, "write_signatures", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        export_saved_model(model, tmp_path, max_new_tokens=4, jit_compile=False)
    assert written == [f".1.partial-{os.getpid()}"] and os.listdir(tmp_path) == []  # no number: no version
    monkeypatch.undo()
    (tmp_path / ".1.partial-12345" / "variables").mkdir(parents=True)  # what an export killed by SIGKILL leaves
    (tmp_path / "1").mkdir()  # an empty version directory is taken
    path = export_saved_model(model, tmp_path, max_new_tokens=4, jit_compile=False)
    assert sorted(os.listdir(tmp_path)) == ["1"] and path == os.path.join(tmp_path, "1")
    assert "serving_default" in tf.saved_model.load(path).signatures


def test_serving_default_without_a_seed_draws_each_row_apart(tmp_path):
    # Every row of a request took the request's one drawn seed: equal prompts got equal texts, which
    # `model.generate(..., seed=None)` does not give.
    keras.utils.set_random_seed(0)
    model = SimpleRNNLM(259, hidden_dim=16, tokenizer=ByteTokenizer())
    path = export_saved_model(model, tmp_path / "exported", jit_compile=False, max_new_tokens=12, temperature=1.0)
    serve = tf.saved_model.load(os.fspath(path)).signatures["serving_default"]
    texts = serve(prompts=tf.constant(["In the"] * 4))["text"].numpy().tolist()
    assert len(set(texts)) == 4 and all(text.startswith(b"In the") for text in texts)
