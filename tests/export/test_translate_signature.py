"""The `translate` signature of a translation model's SavedModel, against `CausalLM.translate`; and what
`serving_default` and `generate` are for such a model.

One module fixture exports an LSTM and a Transformer (untrained: greedy decoding is deterministic all the same) and
a model without a template; one subprocess without tfllm (the serving helpers of `test_saved_model`) loads them,
calls the signatures with tensors and with REST request bodies (the printed examples too), and the tests compare
what it returns with the models in this process.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from tests.export.test_saved_model import SERVE
from tfllm.data import TranslationTemplate
from tfllm.export import export_saved_model
from tfllm.export.saved_model import _strip_whitespace, rest_request_examples
from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = TranslationTemplate(("en", "zh"))
# Both directions in one batch. Byte tokens: the Transformer's context of 32 cuts the first (19 tokens) to 13 and
# the last (15) to 13, inside its "？", and keeps the second (6) whole (`translation_budget`); the LSTM's rule gives
# the first 65 new tokens.
ROWS = [("How is the weather?", "zh"), ("你好", "en"), ("Hi", "zh"), ("天气如何？", "en")]
# The export's (max_new_tokens_limit, jit_compile): 28 lets the Transformer write what translate writes.
EXPORTS = {"lstm": (60, True), "transformer": (28, False)}
# (model, row) -> the `model.translate` arguments the export's row equals where it departs from the row's own.
DEPARTURES = {
    ("lstm", 0): ("How is the weather?", "zh", {"max_new_tokens": 60}),  # the export stops at its limit
}
# generate reads a translation model's prompts as written (the same code for every model: one is enough)
TAGGED = {"transformer": ["<en>Hi<zh>", "<zh>你好<en>"]}
REST_BODIES = [  # :predict bodies: the row format, the columnar format, and serving_default (no signature_name)
    json.dumps({"signature_name": "translate", "instances": [
        {"texts": text, "target_language": target} for text, target in ROWS]}, ensure_ascii=False),
    json.dumps({"signature_name": "translate", "inputs": {
        "texts": [text for text, _ in ROWS], "target_language": [target for _, target in ROWS]}}),
    json.dumps({"instances": [{"texts": text, "target_language": target} for text, target in ROWS]}),
]
BAD = [(["Hi"], ["fr"]), (["Hi", "Yo"], ["zh"])]

# test_saved_model's serving process up to its requests (the tfllm blocker, `strings`, `from_rest`, `per_row`), then
# this file's calls.
SCRIPT = SERVE.split("\nrequest = json.load")[0] + r'''
request = json.load(open(sys.argv[1]))
results = {"tfllm_importable": tfllm_importable, "exports": {}}
for name, path in request["exports"].items():
    signatures = tf.saved_model.load(path).signatures
    out = results["exports"][name] = {
        "inputs": {key: sorted(signature.structured_input_signature[1]) for key, signature in signatures.items()},
        "outputs": {key: sorted(signature.structured_outputs) for key, signature in signatures.items()}}
    if "translate" not in signatures:
        continue
    texts, targets = zip(*request["rows"])
    translate = signatures["translate"]
    out["translate"] = strings(name, translate(texts=tf.constant(texts), target_language=tf.constant(targets))[
        "translation"])
    out["rest"] = [strings(name, from_rest(body, signatures)["translation"]) for body in request["rest"][name]]
    if name in request["tagged"]:
        greedy = [(8, 0.0, 0, 1.0, 0)] * len(request["tagged"][name])
        out["generate"] = strings(name, signatures["generate"](**per_row(request["tagged"][name], greedy))[
            "completion"])
    out["errors"] = []
    for texts, targets in request["bad"]:
        try:
            translate(texts=tf.constant(texts), target_language=tf.constant(targets))
            out["errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["errors"].append(error.message)
results["invalid_utf8"] = invalid_utf8
json.dump(results, open(sys.argv[2], "w"))
'''


def _models():
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    return {
        "lstm": LSTMLM(tokenizer.vocab_size, hidden_dim=16, tokenizer=tokenizer, prompt_template=TEMPLATE),
        "transformer": TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=16,
                                     intermediate_dim=32, max_sequence_length=32, tokenizer=tokenizer,
                                     prompt_template=TEMPLATE),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(models, what the serving subprocess returned, what the verbose export printed)."""
    folder = tmp_path_factory.mktemp("translate")
    models = _models()
    printed, paths, rest = io.StringIO(), {}, {}
    for name, model in models.items():
        limit, jit_compile = EXPORTS[name]
        with contextlib.redirect_stdout(printed):
            paths[name] = export_saved_model(model, folder / name, max_new_tokens_limit=limit, jit_compile=jit_compile,
                                             verbose=True)
        examples = rest_request_examples(model, "天气如何？", "en")
        rest[name] = REST_BODIES + [json.dumps(examples["translate"]), json.dumps(examples["serving_default"])]
    paths["plain"] = export_saved_model(LSTMLM(259, hidden_dim=4, tokenizer=ByteTokenizer()), folder / "plain",
                                        jit_compile=False)
    request = {"exports": {name: os.fspath(path) for name, path in paths.items()}, "rows": ROWS, "rest": rest,
               "tagged": TAGGED, "bad": BAD}
    (folder / "request.json").write_text(json.dumps(request))
    (folder / "serve.py").write_text(SCRIPT)
    subprocess.run([sys.executable, folder / "serve.py", folder / "request.json", folder / "results.json"],
                   check=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return models, json.loads((folder / "results.json").read_text()), printed.getvalue()


def _translations(models, name):
    """What `model.translate` gives each row alone (or gives `DEPARTURES`' arguments)."""
    calls = [DEPARTURES.get((name, row), (text, target, {})) for row, (text, target) in enumerate(ROWS)]
    return [models[name].translate(text, target=target, jit_compile=EXPORTS[name][1], **options)
            for text, target, options in calls]


@pytest.fixture(scope="module")
def expected(served):
    """model name -> the translation of each row the export must give."""
    models = served[0]
    with pytest.warns(UserWarning, match="cut to their first tokens"):  # the context cuts the Transformer's rows
        transformer = _translations(models, "transformer")
    return {"lstm": _translations(models, "lstm"), "transformer": transformer}


def test_the_serving_process_cannot_import_tfllm_and_gets_valid_utf8(served):
    assert served[1]["tfllm_importable"] is False
    assert served[1]["invalid_utf8"] == []


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_translate_gives_each_row_what_model_translate_gives_for_its_text(served, expected, name):
    assert served[1]["exports"][name]["translate"] == expected[name]


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_rest_bodies_and_serving_default_translate_as_the_signature_does(served, expected, name):
    row_format, columnar, default, example, default_example = served[1]["exports"][name]["rest"]
    assert row_format == columnar == default == expected[name]
    assert example == default_example == [expected[name][3]]  # "天气如何？" into "en"


def test_verbose_export_prints_a_translate_body_that_tensorflow_serving_takes(served):
    bodies = [json.loads(line.split(": ", 1)[1]) for line in served[2].splitlines()
              if line.startswith("REST request body for translate: ")]
    assert bodies == [{"signature_name": "translate", "instances": [{"texts": "In the beginning",
                                                                     "target_language": "zh"}]}] * 2


def test_signatures_of_a_translation_model_and_of_one_without_a_template(served):
    exports = served[1]["exports"]
    for name in ("lstm", "transformer"):
        assert exports[name]["inputs"] == {
            "translate": ["target_language", "texts"], "serving_default": ["target_language", "texts"],
            "generate": ["max_new_tokens", "prompts", "seed", "temperature", "top_k", "top_p"], "score": ["texts"]}
        assert exports[name]["outputs"]["serving_default"] == exports[name]["outputs"]["translate"] == ["translation"]
    assert exports["plain"]["inputs"] == {
        "serving_default": ["prompts"], "score": ["texts"],
        "generate": ["max_new_tokens", "prompts", "seed", "temperature", "top_k", "top_p"]}


@pytest.mark.parametrize("name", TAGGED)
def test_generate_reads_a_translation_models_prompts_as_written(served, name):
    model = served[0][name]
    assert served[1]["exports"][name]["generate"] == [
        model.generate(prompt, max_new_tokens=8, strip_prompt=True, apply_template=False,
                       jit_compile=EXPORTS[name][1]) for prompt in TAGGED[name]]


def test_an_unknown_target_language_and_a_missing_one_fail(served):
    for name in ("lstm", "transformer"):
        unknown, missing = served[1]["exports"][name]["errors"]
        assert "target language must be one of" in unknown and "fr" in unknown
        assert "target_language must hold one value per text" in missing


def test_whitespace_is_stripped_as_python_strips_it():
    spaces = [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
    texts = [f"{space}x{space}" for space in spaces] + ["\u200bx", " a b "]  # U+200B is not space for Python
    got = [text.decode() for text in _strip_whitespace(tf.constant(texts)).numpy()]
    assert got == [text.strip() for text in texts]
    assert len(spaces) == 29


def test_a_translation_template_of_three_languages_is_refused(tmp_path):
    template = TranslationTemplate(("en", "zh", "fr"))
    model = LSTMLM(262, hidden_dim=4, tokenizer=ByteTokenizer(special_tokens=template.special_tokens),
                   prompt_template=template)
    with pytest.raises(ValueError, match=r"translates between \['en', 'zh', 'fr'\]: .* two-language"):
        export_saved_model(model, tmp_path)
    assert not (tmp_path / "1").exists()
