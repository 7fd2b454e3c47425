"""Prompt and chat templates: rendering, loss segments, config round trips and the errors that name a bad field."""

import numpy as np
import pytest

from tests.helpers import OddIdsTokenizer
from tfllm.data import ChatTemplate, PromptTemplate, sft_dataset, template_from_config
from tfllm.data.templates import CHAT_TEMPLATE
from tfllm.tokenizers import ByteTokenizer, CharTokenizer, SentencePieceTokenizer

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
        (lambda: ChatTemplate().format_prompt([{"role": "robot", "content": "x"}]), "message 0 .* the role 'robot'"),
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


HI, YO = {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}
SYSTEM = {"role": "system", "content": "Be brief."}


def test_special_and_stop_tokens_are_the_markers_of_the_formats():
    assert CHAT_TEMPLATE.special_tokens == ["<system>", "<user>", "<assistant>", "<end>"]
    assert CHAT_TEMPLATE.stop_tokens == ["<end>"]
    assert CHAT_TEMPLATE.format_prompt([SYSTEM, HI, YO, HI]) == (
        "<system>Be brief.<user>hi<assistant>yo<end><user>hi<assistant>")
    plain = ChatTemplate("Q: {content}\n", "A: {content}\n", "{content}\n")
    assert plain.special_tokens == plain.stop_tokens == []
    marked = ChatTemplate("<|user|>{content}", "<|assistant|>{{{content}}}<|end|><end>", "<|user|>{content}")
    assert marked.special_tokens == ["<|user|>", "<|assistant|>", "<|end|>", "<end>"]
    assert marked.stop_tokens == ["<|end|>", "<end>"]
    assert marked.segments([HI, YO])[-2:] == [("<|assistant|>{", False), ("yo}<|end|><end>", True)]


@pytest.mark.parametrize(
    "messages, last_role, message",
    [
        ([], "user", "messages is empty"),
        ({"role": "user", "content": "hi"}, "user", "expected a list of"),
        ([HI, {"role": "robot", "content": "x"}], None, "message 1 .* the role 'robot'"),
        (["hi"], None, "message 0 .* the role None"),
        ([HI, {"role": "assistant", "content": 3}], None, "message 1 has the content 3: expected a non-empty string"),
        ([HI, {"role": "assistant"}], None, "message 1 has the content None"),
        ([{"role": "user", "content": " \n"}], None, "message 0 has the content ' "),
        ("", None, "message 0 has the content ''"),
        ([YO], None, "message 0 has the role 'assistant' where 'user' was expected"),
        ([SYSTEM, YO], None, "message 1 has the role 'assistant' where 'user' was expected"),
        ([HI, HI], None, "message 1 has the role 'user' where 'assistant' was expected"),
        ([HI, YO, YO], None, "message 2 has the role 'assistant' where 'user'"),
        ([HI, SYSTEM], None, "message 1 has the role 'system' where 'assistant'"),
        ([HI, YO], "user", "message 1 is the last and has the role 'assistant': a prompt ends with a user message"),
        ([SYSTEM], "user", "message 0 is the last and has the role 'system'"),
        ([HI], "assistant", "message 0 is the last and has the role 'user': a training conversation ends with"),
    ],
)
def test_conversation_errors_name_the_message_and_the_problem(messages, last_role, message):
    with pytest.raises(ValueError, match=message):
        ChatTemplate.check_conversation(messages, last_role=last_role)


def test_prompts_and_training_check_the_conversation():
    assert ChatTemplate.check_conversation([SYSTEM, HI, YO], last_role="assistant") == [SYSTEM, HI, YO]
    with pytest.raises(ValueError, match="message 1 is the last"):
        CHAT_TEMPLATE.format_prompt([HI, YO])
    with pytest.raises(ValueError, match="message 0 is the last"):
        CHAT_TEMPLATE.segments({"messages": [HI]})
    with pytest.raises(ValueError, match="message 1 has the role 'user'"):
        sft_dataset([[HI, HI, YO]], TOKENIZER, 8, 1, template=CHAT_TEMPLATE)


def _expected_weights(y, tokenizer):
    """1 from the token after each <assistant> through its <end>, and on the final eos: the rule, read off the ids."""
    ids = tokenizer.special_tokens
    weights, answering = [], False
    for token in y:
        learned = answering or token == tokenizer.eos_id
        answering = (answering and token != ids["<end>"]) or token == ids["<assistant>"]
        weights.append(float(learned))
    return weights


CHAT_DIALOG = [SYSTEM, {"role": "user", "content": "天气如何"}, {"role": "assistant", "content": "今天天气很好"},
               {"role": "user", "content": "How about tomorrow?"}, {"role": "assistant", "content": "Rain, I think."}]


def test_chat_template_learns_each_answer_and_its_end_byte_tokenizer():
    tokenizer = ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)  # <system> 259 <user> 260 ... <end> 262
    x, y, weight = batches(sft_dataset([[HI, YO, HI, YO]], tokenizer, 15, 1, shuffle=False, template=CHAT_TEMPLATE))[0]
    #                        <u>  h    i    <a>  y    o    <end> <u> h    i    <a>  y    o    <end> eos
    assert y[0].tolist() == [260, 107, 108, 261, 124, 114, 262, 260, 107, 108, 261, 124, 114, 262, 2]
    assert weight[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]
    assert x[0].tolist() == [tokenizer.bos_id] + y[0, :-1].tolist()
    x, y, weight = batches(sft_dataset([CHAT_DIALOG], tokenizer, 80, 1, shuffle=False, template=CHAT_TEMPLATE))[0]
    assert weight[0].tolist() == _expected_weights(y[0], tokenizer)
    assert tokenizer.detokenize(y[0][weight[0] > 0]).numpy().decode() == "今天天气很好Rain, I think."
    assert (y[0][weight[0] > 0] == 262).sum() == 2  # each answer's <end> is learned


@pytest.fixture(scope="module")
def sentencepiece():
    lines = [message["content"] for message in CHAT_DIALOG] * 4 + ["The weather is fine today.", "明天下雨。"] * 4
    return SentencePieceTokenizer.train(lines, vocab_size=340, special_tokens=CHAT_TEMPLATE.special_tokens,
                                        verbose=False)


def test_chat_template_learns_each_answer_and_its_end_sentencepiece(sentencepiece):
    tokenizer = sentencepiece
    x, y, weight = batches(sft_dataset([CHAT_DIALOG], tokenizer, 64, 1, shuffle=False, template=CHAT_TEMPLATE))[0]
    length = int(np.flatnonzero(y[0] == tokenizer.eos_id)[0]) + 1
    assert length < 64 and weight[0, length:].sum() == 0  # padding is not learned
    assert weight[0, :length].tolist() == _expected_weights(y[0, :length], tokenizer)
    assert (y[0][weight[0] > 0] == tokenizer.special_tokens["<end>"]).sum() == 2
    learned = tokenizer.detokenize(np.where(weight[0] > 0, y[0], tokenizer.pad_id)).numpy().decode()
    assert learned.replace(" ", "") == "今天天气很好Rain,Ithink."


def test_fit_prompt_tokenizes_only_the_exchanges_that_fit_however_long_the_history():
    # It tokenized every suffix of the conversation: a chat of n messages cost the tokenizer n^2 / 4 messages' text
    # per reply, and `tfllm chat` slowed down line after line (0.06 s a reply at line 10, 0.82 s at line 400).
    tokenizer = ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)
    tokenized = []
    counting = type("Counting", (), {"tokenize": lambda self, texts: tokenized.extend(texts.numpy()) or
                                     tokenizer.tokenize(texts)})()
    exchanges = [turn for index in range(200) for turn in ({"role": "user", "content": f"question {index}"},
                                                           {"role": "assistant", "content": f"answer {index}"})]
    conversation = [SYSTEM, *exchanges, {"role": "user", "content": "and now?"}]
    prompt = CHAT_TEMPLATE.fit_prompt(conversation, counting, 120)
    fits = [start for start in range(1, len(conversation), 2)  # the longest prompt that fits, as it was chosen
            if len(tokenizer.tokenize(CHAT_TEMPLATE.format_prompt([SYSTEM, *conversation[start:]])).numpy()) <= 120]
    assert prompt == CHAT_TEMPLATE.format_prompt([SYSTEM, *conversation[fits[0]:]])
    assert 0 < fits[0] < len(exchanges) and prompt.endswith("<user>and now?<assistant>")  # some exchanges, not all
    assert len(tokenized) == (len(conversation) - fits[0]) // 2 + 2  # each that fits, and the first that does not


def test_fit_prompt_cuts_a_long_question_to_its_first_tokens_whatever_the_tokenizer(sentencepiece):
    question = "How about tomorrow? The weather is fine today. " * 4
    conversation = [SYSTEM, HI, YO, {"role": "user", "content": question}]
    for tokenizer in (sentencepiece, ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)):
        whole = CHAT_TEMPLATE.fit_prompt(conversation, tokenizer, 400)
        assert whole == CHAT_TEMPLATE.format_prompt(conversation)  # it fits: nothing is left out
        with pytest.warns(UserWarning, match="the last message has .* tokens, more than a prompt of 16 tokens holds"):
            prompt = CHAT_TEMPLATE.fit_prompt(conversation, tokenizer, 16)
        assert len(tokenizer.tokenize(prompt).numpy()) <= 16
        assert prompt.startswith("<system>Be brief.<user>How") and prompt.endswith("<assistant>")
        assert question.startswith(prompt[len("<system>Be brief.<user>") : -len("<assistant>")])
    with pytest.raises(ValueError, match="a prompt of max_tokens=2 tokens cannot hold the chat template's tokens"):
        CHAT_TEMPLATE.fit_prompt("Hi", tokenizer, 2)
