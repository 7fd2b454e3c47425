"""Prompt and chat templates: rendering, loss segments, config round trips and the errors that name a bad field."""

import numpy as np
import pytest

from tests.helpers import OddIdsTokenizer
from tfllm.data import ChatTemplate, PromptTemplate, sft_dataset, template_from_config
from tfllm.tokenizers import ByteTokenizer, CharTokenizer

TOKENIZER = ByteTokenizer(special_tokens=["<en>", "<zh>", "<user>", "<assistant>"])
TRANSLATE = PromptTemplate("<en>{en}<zh>", "{zh}")
PAIRS = [{"en": "How is the weather?", "zh": "天气如何？"}, {"en": "Hello.", "zh": "你好。"}]


def batches(dataset):
    return [[np.asarray(tensor) for tensor in batch] for batch in dataset]


def test_template_batches_equal_preformatted_pairs():
    preformatted = [(f"<en>{pair['en']}<zh>", pair["zh"]) for pair in PAIRS]
    templated = sft_dataset(PAIRS, TOKENIZER, 40, 2, shuffle=False, template=TRANSLATE)
    plain = sft_dataset(preformatted, TOKENIZER, 40, 2, shuffle=False)
    for got, want in zip(batches(templated), batches(plain), strict=True):
        for got_tensor, want_tensor in zip(got, want, strict=True):
            np.testing.assert_array_equal(got_tensor, want_tensor)


def test_special_tokens_in_templates_are_single_ids_and_unlearned():
    x, y, weight = batches(sft_dataset(PAIRS[1:], TOKENIZER, 30, 1, shuffle=False, template=TRANSLATE))[0]
    en, zh = TOKENIZER.special_tokens["<en>"], TOKENIZER.special_tokens["<zh>"]
    assert x[0, :2].tolist() == [TOKENIZER.bos_id, en]
    completion = np.flatnonzero(weight[0])
    assert y[0, completion[0] - 1] == zh  # the last prompt token is <zh>, not learned
    assert TOKENIZER.detokenize(y[0, completion]).numpy().decode() == "你好。"  # then the answer and eos
    assert y[0, completion[-1]] == TOKENIZER.eos_id


def test_chat_learns_every_assistant_turn_only():
    template = ChatTemplate("<user>{content}", "<assistant>{content}")
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
                    {"role": "user", "content": "ok?"}, {"role": "assistant", "content": "ok"}]
    for records in ([{"messages": conversation}], [conversation]):
        x, y, weight = batches(sft_dataset(records, TOKENIZER, 20, 1, shuffle=False, template=template))[0]
        learned = TOKENIZER.detokenize(np.where(weight[0] > 0, y[0], TOKENIZER.pad_id)).numpy()
        assert learned == b"yook"  # both answers and the final eos (dropped when written), never the questions
    assert template.format_prompt(conversation[:3]) == "<user>hi<assistant>yo<user>ok?<assistant>"


def test_configs_round_trip():
    chat = ChatTemplate("Q: {content}\n", "A: {content}\n", "{content}\n")
    for template in (TRANSLATE, chat, PromptTemplate()):
        assert template_from_config(template.get_config()) == template
    assert template_from_config(None) is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: PromptTemplate("no fields", "{b}"), "names no field"),
        (lambda: PromptTemplate("{a:>3}", "{b}"), "without format specs"),
        (lambda: PromptTemplate("{a", "{b}"), "not a valid format string"),
        (lambda: ChatTemplate(user="<user>"), "exactly one field, {content}"),
        (lambda: template_from_config({"kind": "poem"}), "expected a dict with kind"),
        (lambda: template_from_config({"kind": "fields", "prompt": "{a}", "shape": 1}), "unknown keys \\['shape'\\]"),
        (lambda: TRANSLATE.format_prompt({"fr": "Bonjour"}), "no field 'en' that the template's prompt"),
        (lambda: PromptTemplate("{a}{b}", "{c}").format_prompt("x"), "a plain string cannot fill"),
        (lambda: ChatTemplate().format_prompt([{"role": "robot", "content": "x"}]), "message 0"),
        (lambda: sft_dataset([{"en": "x"}], TOKENIZER, 8, 1, template=TRANSLATE), "the field 'zh' is missing"),
        (lambda: sft_dataset([{"en": "x", "zh": 3}], TOKENIZER, 8, 1, template=TRANSLATE), "'zh' is 3"),
    ],
)
def test_errors_name_the_problem(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_rows_are_filled_with_pad_or_with_eos_when_there_is_no_pad():
    for tokenizer in (CharTokenizer.train(["abc"], verbose=False), OddIdsTokenizer()):
        x, y, weight = batches(sft_dataset([("a", "b")], tokenizer, 6, 1, shuffle=False))[0]
        assert x[0, 0] == tokenizer.bos_id
        assert x[0, -1] == y[0, -1] == tokenizer.fill_id
        assert y[0, 2] == tokenizer.eos_id
        assert weight[0].tolist() == [0, 1, 1, 0, 0, 0]
    assert (OddIdsTokenizer().pad_id, OddIdsTokenizer().fill_id) == (None, 7)


def test_graph_formatting_equals_python_formatting():
    import tensorflow as tf

    texts = ["How is the weather?", "{braces} stay"]
    template = PromptTemplate("<en>{{{en}}}<zh>", "{zh}")  # literal braces around the field
    chat = ChatTemplate("<user>{content}", "<assistant>{content}")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def both(batch):
        return template.format_prompt_tensor(batch), chat.format_prompt_tensor(batch)

    fields, conversation = both(tf.constant(texts))
    assert [text.decode() for text in fields.numpy()] == [template.format_prompt(text) for text in texts]
    assert [text.decode() for text in conversation.numpy()] == [chat.format_prompt(text) for text in texts]
    with pytest.raises(ValueError, match="only a prompt with one field"):
        PromptTemplate("{a}{b}", "{c}").format_prompt_tensor(tf.constant(["x"]))
