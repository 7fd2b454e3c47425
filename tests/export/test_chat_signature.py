"""The `chat` signature of a chat model's SavedModel, against `model.chat`; and what its `serving_default` does.

One module fixture trains a tiny Transformer for a few dozen steps on three dialogs (so its greedy replies are known
strings that end with `<end>`), exports it in the plain graph (the XLA loop is the same `decode_loop`, exported and
checked under XLA by `test_saved_model`; XLA would compile anew for each request's shape here), and one subprocess
without tfllm (the serving helpers of `test_saved_model`) calls the signatures with tensors and REST request bodies.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import keras
import pytest

from tests.export.test_saved_model import SERVE
from tfllm.data import ChatTemplate, sft_dataset
from tfllm.export import export_saved_model
from tfllm.export.saved_model import rest_request_examples
from tfllm.generation import chat_stop_token_ids
from tfllm.models import TransformerLM
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = ChatTemplate(assistant="<assistant>{content}<end>")
ANSWERS = {"天气如何": "今天天气很好", "How is the weather?": "Fine.", "Hi": "Hello!"}
# The context of 64 gives the export max_new_tokens_limit=32, so serving_default's (and chat's) max_new_tokens is
# 32, and a message keeps at most 64 - 32 - 3 = 29 tokens (bos, <user> and <assistant> take 3).
MAX_NEW_TOKENS = 32
LONG = "天气如何" * 5  # 60 bytes: cut to 29, inside the tenth character, which goes: "天气如何天气如何天"
REQUESTS = {  # name -> the messages of one call of the chat signature
    "batch": ["天气如何", "How is the weather?"],  # Chinese beside English
    "long": [LONG, "Hi"],  # an over-long message beside a short one
    "untaught": ["天气", " Hello "],  # the model's noise (a byte model's need not be UTF-8)
}
REST_BODIES = [  # :predict bodies for chat: the row format and the columnar format
    json.dumps({"signature_name": "chat", "instances": [{"messages": text} for text in REQUESTS["batch"]]}),
    json.dumps({"signature_name": "chat", "inputs": {"messages": REQUESTS["batch"]}}),
]
BAD = [["Hi", ""], [" \n"]]

SCRIPT = SERVE.split("\nrequest = json.load")[0] + r'''
request = json.load(open(sys.argv[1]))
results = {"tfllm_importable": tfllm_importable, "exports": {}}
for name, path in request["exports"].items():
    signatures = tf.saved_model.load(path).signatures
    out = results["exports"][name] = {
        "inputs": {key: sorted(signature.structured_input_signature[1]) for key, signature in signatures.items()},
        "outputs": {key: sorted(signature.structured_outputs) for key, signature in signatures.items()}}
    if "chat" not in signatures:
        continue
    chat = signatures["chat"]
    out["chat"] = {key: strings(key, chat(messages=tf.constant(messages))["replies"])
                   for key, messages in request["requests"].items()}
    out["rest"] = [strings(name, from_rest(body, signatures)["replies"]) for body in request["rest"]]
    out["default"] = strings(name, from_rest(request["default"], signatures)["replies"])
    out["generated"] = strings(name, signatures["generate"](
        prompts=tf.constant(["天气如何"]), max_new_tokens=tf.constant([32]), temperature=tf.constant([0.0]),
        top_k=tf.constant([0]), top_p=tf.constant([1.0]), seed=tf.constant([0]))["text"])
    out["errors"], out["generate_errors"] = [], []
    for messages in request["bad"]:
        try:
            chat(messages=tf.constant(messages))
            out["errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["errors"].append(error.message)
        rows = len(messages)
        try:
            signatures["generate"](prompts=tf.constant(messages), max_new_tokens=tf.constant([4] * rows),
                                   temperature=tf.constant([0.0] * rows), top_k=tf.constant([0] * rows),
                                   top_p=tf.constant([1.0] * rows), seed=tf.constant([0] * rows))
            out["generate_errors"].append(None)
        except tf.errors.InvalidArgumentError as error:
            out["generate_errors"].append(error.message)
results["invalid_utf8"] = invalid_utf8
json.dump(results, open(sys.argv[2], "w"))
'''


def _trained_chat_model():
    keras.utils.set_random_seed(0)
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    model = TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=32, intermediate_dim=64,
                          max_sequence_length=64, tokenizer=tokenizer, prompt_template=TEMPLATE)
    dialogs = [{"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}
               for question, answer in ANSWERS.items()]
    model.compile(learning_rate=1e-2, warmup_steps=5, decay_steps=300)
    # 40 tokens hold the longest dialog whole (bos <user> 19 <assistant> 5 <end> eos): a shorter window would cut
    # its prompt, and the model would learn a prompt it never gets.
    model.fit(sft_dataset(dialogs, tokenizer, 40, 3, seed=0, template=TEMPLATE).repeat(), steps_per_epoch=60,
              epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(the chat model, what the serving subprocess returned, what the verbose export printed)."""
    folder = tmp_path_factory.mktemp("chat")
    model = _trained_chat_model()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        path = export_saved_model(model, folder / "chat", temperature=0.0, jit_compile=False, verbose=True)
    examples = rest_request_examples(model, "天气如何")
    request = {"exports": {"chat": os.fspath(path)}, "requests": REQUESTS,
               "rest": REST_BODIES + [json.dumps(examples["chat"])], "default": json.dumps(examples["serving_default"]),
               "bad": BAD}
    (folder / "request.json").write_text(json.dumps(request))
    (folder / "serve.py").write_text(SCRIPT)
    subprocess.run([sys.executable, folder / "serve.py", folder / "request.json", folder / "results.json"],
                   check=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return model, json.loads((folder / "results.json").read_text()), printed.getvalue()


def _chat(model, message):
    return model.chat(message, max_new_tokens=MAX_NEW_TOKENS, jit_compile=False)


def test_the_serving_process_cannot_import_tfllm_and_gets_valid_utf8(served):
    assert served[1]["tfllm_importable"] is False
    assert served[1]["invalid_utf8"] == []


def test_chat_replies_to_a_chinese_and_an_english_message_as_model_chat(served):
    model, results, _ = served
    replies = results["exports"]["chat"]["chat"]["batch"]
    assert replies == ["今天天气很好", "Fine."]
    assert replies == [_chat(model, message) for message in REQUESTS["batch"]]
    tokenizer = model.tokenizer  # the model ends each reply with <end>, which the reply does not show
    prompts = [[tokenizer.bos_id] + ids for ids in tokenizer.tokenize([TEMPLATE.format_prompt(message) for message
                                                                       in REQUESTS["batch"]]).to_list()]
    ends = [ids[len(tokenizer.tokenize(reply).numpy())] for ids, reply in zip(
        model.generate(prompts, max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=[], strip_prompt=True,
                       jit_compile=False), replies)]
    assert ends == [tokenizer.special_tokens["<end>"]] * 2


def test_an_over_long_message_keeps_its_first_tokens_as_model_chat_keeps_them(served):
    model, results, _ = served
    with pytest.warns(UserWarning, match="keeps its first 29 tokens"):
        expected = _chat(model, LONG)
    assert results["exports"]["chat"]["chat"]["long"] == [expected, "Hello!"]
    end = model.tokenizer.special_tokens["<end>"]  # the cut message as a prompt of its own gives the same reply
    assert expected == model.generate("天气如何天气如何天", max_new_tokens=MAX_NEW_TOKENS, strip_prompt=True,
                                      stop_token_ids=[model.tokenizer.eos_id, end], jit_compile=False).strip()


def test_noise_is_replied_as_model_chat_replies_it(served):
    model, results, _ = served
    assert results["exports"]["chat"]["chat"]["untaught"] == [_chat(model, text) for text in REQUESTS["untaught"]]


def test_rest_bodies_and_the_printed_examples_work_through_the_signature(served):
    _, results, printed = served
    row_format, columnar, example = results["exports"]["chat"]["rest"]
    assert row_format == columnar == ["今天天气很好", "Fine."]
    assert example == ["今天天气很好"]
    bodies = [json.loads(line.split(": ", 1)[1]) for line in printed.splitlines()
              if line.startswith("REST request body for chat: ")]
    assert bodies == [{"signature_name": "chat", "instances": [{"messages": "In the beginning"}]}]


def test_serving_default_is_chat_and_generate_reads_a_prompt_as_a_user_message_and_stops_at_end(served):
    model, results, _ = served  # its printed example, {"instances": [{"messages": "天气如何"}]}
    assert results["exports"]["chat"]["default"] == [_chat(model, "天气如何")] == ["今天天气很好"]
    expected = model.generate("天气如何", max_new_tokens=MAX_NEW_TOKENS, stop_token_ids=chat_stop_token_ids(model),
                              jit_compile=False)
    assert results["exports"]["chat"]["generated"] == [expected] == ["天气如何今天天气很好"]


def test_a_chat_model_has_the_chat_signature_beside_the_others(served):
    exported = served[1]["exports"]["chat"]  # a model without a chat template has none (test_translate_signature)
    assert exported["inputs"] == {
        "serving_default": ["messages"], "generate": ["max_new_tokens", "prompts", "seed", "temperature", "top_k",
                                                      "top_p"],
        "score": ["texts"], "chat": ["messages"]}
    assert exported["outputs"]["chat"] == ["replies"] == exported["outputs"]["serving_default"]


def test_an_empty_message_fails(served):
    # In generate too, which reads each prompt as a user message: it answered an empty one, which model.generate
    # refuses.
    for errors in (served[1]["exports"]["chat"]["errors"], served[1]["exports"]["chat"]["generate_errors"]):
        assert [error and "a message is empty or only whitespace" in error for error in errors] == [True, True]


def test_an_export_that_leaves_no_room_for_a_message_is_refused(tmp_path):
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    model = TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                          max_sequence_length=8, tokenizer=tokenizer, prompt_template=TEMPLATE)
    with pytest.raises(ValueError, match=r"at most 3 tokens .* no room for a message after the bos and the chat "
                                         r"template's 2 tokens"):
        export_saved_model(model, tmp_path, max_new_tokens=4, max_new_tokens_limit=4, max_prompt_tokens=3)
    assert not (tmp_path / "1").exists()
