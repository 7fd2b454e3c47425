"""`model.chat` and `tfllm.generation.chat`: the history fitted to the context, replies that end at the learned
`<end>`, streaming that adds up to the reply, and the errors of bad conversations and of models that do not chat."""

import warnings

import keras
import pytest

from tfllm.data import TranslationTemplate, sft_dataset
from tfllm.data.templates import CHAT_TEMPLATE, ChatTemplate
from tfllm.generation.chat import (ChatReply, _stripped, chat_max_new_tokens, chat_prompt, chat_replies,
                                   chat_stop_token_ids)
from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer

# <system> 259, <user> 260, <assistant> 261, <end> 262
TOKENIZER = ByteTokenizer(special_tokens=CHAT_TEMPLATE.special_tokens)
SYSTEM = {"role": "system", "content": "Be brief."}  # <system> + 9 bytes
PLAIN = {"jit_compile": False}  # XLA compilations would cost more than these few tokens


def user(content):
    return {"role": "user", "content": content}


def assistant(content):
    return {"role": "assistant", "content": content}


def _transformer(**kwargs):
    return TransformerLM(TOKENIZER.vocab_size, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                         max_sequence_length=32, tokenizer=TOKENIZER, **kwargs)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return _transformer(prompt_template=CHAT_TEMPLATE)  # untrained


DIALOG = [user("How are you?"), assistant("fine")]


@pytest.fixture(scope="module")
def trained():
    """A model that learned one answer, and to end it with <end>."""
    keras.utils.set_random_seed(0)
    model = _transformer(prompt_template=CHAT_TEMPLATE)
    model.compile(learning_rate=3e-2, warmup_steps=0, decay_steps=1000)
    batches = sft_dataset([DIALOG] * 8, TOKENIZER, 24, 8, shuffle=False, template=CHAT_TEMPLATE).repeat()
    model.fit(batches, steps_per_epoch=30, epochs=1, verbose=0, shuffle=False)
    return model


def test_the_oldest_exchanges_go_first_and_the_system_message_stays(model):
    # Tokens: system 10, <user>one 4, <assistant>1<end> 3, <user>two 4, <assistant>2<end> 3, <user>three 6,
    # <assistant> 1: 31, with the bos 32.
    conversation = [SYSTEM, user("one"), assistant("1"), user("two"), assistant("2"), user("three")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dropping whole exchanges is no cause for a warning
        assert chat_prompt(model, conversation, max_new_tokens=4) == (  # 24 of 27 tokens: one exchange goes
            "<system>Be brief.<user>two<assistant>2<end><user>three<assistant>")
        assert chat_prompt(model, conversation, max_new_tokens=12) == "<system>Be brief.<user>three<assistant>"
        assert chat_prompt(model, conversation[1:], max_new_tokens=10) == (  # 21 of 21 tokens
            "<user>one<assistant>1<end><user>two<assistant>2<end><user>three<assistant>")
        assert chat_prompt(model, conversation[1:], max_new_tokens=11) == (
            "<user>two<assistant>2<end><user>three<assistant>")
    recurrent = LSTMLM(TOKENIZER.vocab_size, hidden_dim=8, tokenizer=TOKENIZER, prompt_template=CHAT_TEMPLATE)
    long = [SYSTEM] + [user("one"), assistant("1")] * 20 + [user("three")]
    assert chat_prompt(recurrent, long, max_new_tokens=64) == CHAT_TEMPLATE.format_prompt(long)  # no context limit


def test_a_message_too_long_alone_keeps_its_beginning_with_a_warning(model):
    question = "abcdefghij" * 5
    cut = "the last message has 50 tokens, more than a prompt of 23 tokens holds: it keeps its first 21 tokens$"
    with pytest.warns(UserWarning, match=cut):
        prompt = chat_prompt(model, [user("old"), assistant("reply"), user(question)], max_new_tokens=8)
    assert prompt == f"<user>{question[:21]}<assistant>"  # bos, 23 tokens and 8 new ones: 32
    with pytest.warns(UserWarning, match="keeps its first 11 tokens$"):
        assert chat_prompt(model, [SYSTEM, user(question)], 8) == f"<system>Be brief.<user>{question[:11]}<assistant>"
    with pytest.warns(UserWarning, match="keeps its first 21 tokens, and the system message is left out"):
        assert chat_prompt(model, [{"role": "system", "content": "x" * 30}, user(question)], 8) == (
            f"<user>{question[:21]}<assistant>")
    with pytest.warns(UserWarning, match="the last message has 120 tokens.* keeps its first 20 tokens"):
        assert chat_prompt(model, "天气如何" * 10, 9) == "<user>天气如何天气<assistant>"  # a cut character goes
    with pytest.warns(UserWarning, match="keeps its first 13 tokens"):  # the default budget: half the context
        reply = model.chat(question, **PLAIN)
    assert isinstance(reply, str)


@pytest.mark.parametrize(
    "messages, message",
    [
        ([], "messages is empty"),
        ([{"role": "robot", "content": "Hi"}], "message 0 .* the role 'robot'"),
        ([user("Hi"), assistant("  ")], "message 1 has the content '  ': expected a non-empty string"),
        ("", "message 0 has the content ''"),
        ([user("Hi"), user("Hi?")], "message 1 has the role 'user' where 'assistant' was expected"),
        ([SYSTEM, assistant("Hi")], "message 1 has the role 'assistant' where 'user' was expected"),
        ([user("Hi"), assistant("Hello")], "message 1 is the last and has the role 'assistant'"),
        ([[user("Hi")]], "message 0 .* the role None"),  # a batch of conversations: chat takes one
    ],
)
def test_bad_conversations_are_refused(model, messages, message):
    with pytest.raises(ValueError, match=message):
        model.chat(messages)
    with pytest.raises(ValueError, match=message):
        model.chat(messages, stream=True)  # at the call, not at the first piece


def test_budgets(model):
    assert chat_max_new_tokens(model, ["Hi"]) == 27  # bos <user> H i <assistant>: 5 of 32 positions
    assert chat_max_new_tokens(model, ["Hi", "x" * 20]) == 16  # the longest prompt: no less than half the context
    assert chat_max_new_tokens(LSTMLM(263, hidden_dim=8, tokenizer=TOKENIZER, prompt_template=CHAT_TEMPLATE),
                               ["Hi"]) == 64
    with pytest.raises(ValueError, match="max_new_tokens=31 leaves no room for a prompt in max_sequence_length=32"):
        model.chat("Hi", max_new_tokens=31)
    # The most a prompt of bos <user> ? <assistant> leaves; 30, which the error once named as the most, failed in
    # the template ("cannot hold the chat template's tokens").
    with pytest.warns(UserWarning, match="it keeps its first 1 tokens"):  # of "Hi"
        assert isinstance(model.chat("Hi", max_new_tokens=28), str)
    with pytest.raises(ValueError, match=r"max_new_tokens=29 .* the shortest chat prompt takes 4 tokens .*, so "
                                         r"expected at most 28$"):
        model.chat("Hi", max_new_tokens=29)
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        model.chat("Hi", max_new_tokens=0)


def test_chat_is_the_first_of_the_batched_replies_and_streams_them(model):
    history = [user("天气如何"), assistant("今天天气很好"), user("明天呢")]
    reply = model.chat(history, max_new_tokens=6, **PLAIN)
    assert isinstance(reply, str) and reply == chat_replies(model, [history], max_new_tokens=6, **PLAIN)[0].text
    assert "".join(model.chat(history, max_new_tokens=6, stream=True, chunk_tokens=2, **PLAIN)) == reply
    english = model.chat("How is the weather?", max_new_tokens=6, **PLAIN)
    batch = chat_replies(model, [history, "How is the weather?"], max_new_tokens=6, **PLAIN)
    assert [r.text for r in batch] == [reply, english]  # padding in a batch changes nothing
    # A drawn reply: generate's text after the fitted prompt, up to a stop token; the seed chooses it.
    prompt, stop_ids = chat_prompt(model, history, max_new_tokens=6), chat_stop_token_ids(model)
    drawn = {}
    for seed in (4, 5):
        sampled = dict(sampler="top_p", top_p=0.9, seed=seed, max_new_tokens=6, **PLAIN)
        drawn[seed] = model.chat(history, **sampled)
        assert drawn[seed] == model.generate(prompt, strip_prompt=True, apply_template=False, stop_token_ids=stop_ids,
                                             **sampled).strip()
    assert len({drawn[4], drawn[5], reply}) == 3


def test_finished_is_false_when_the_budget_cuts_the_reply(model):
    replies = chat_replies(model, ["Hi", "天气如何"], max_new_tokens=2, **PLAIN)  # no <end> or eos in 2 tokens
    assert [reply.finished for reply in replies] == [False, False]
    assert all(isinstance(reply, ChatReply) for reply in replies)


def test_a_trained_model_ends_its_answer_at_end(trained):
    assert chat_stop_token_ids(trained) == [TOKENIZER.eos_id, 262]
    assert chat_replies(trained, [DIALOG[:1]], max_new_tokens=8, **PLAIN) == [ChatReply("fine", True)]
    assert trained.chat("How are you?", **PLAIN) == "fine"
    assert "".join(trained.chat(DIALOG[:1], stream=True, chunk_tokens=1, **PLAIN)) == "fine"


def test_stream_holds_whitespace_until_text_follows():
    assert list(_stripped(["", " \n", " a", "b ", " ", "c\n", " "])) == ["a", "b", "  c"]
    assert list(_stripped([" ", ""])) == []


class Memory:
    """A stand-in for `tfllm.evaluation.ChatMemory`: records what it was asked."""

    def __init__(self):
        self.asked = []

    def replies(self, model, conversations):
        self.asked.append(conversations)
        return ["remembered"] * len(conversations)


def test_memory_chooses_and_refuses_generation_settings(model):
    memory = Memory()
    assert model.chat("天气如何", memory=memory) == "remembered"
    assert memory.asked == [[[user("天气如何")]]]
    for settings in ({"sampler": "random"}, {"max_new_tokens": 4}, {"stream": True}, {"temperature": 0.5}):
        with pytest.raises(ValueError, match="memory chooses among the answers"):
            model.chat("Hi", memory=memory, **settings)
    with pytest.raises(ValueError, match="message 0 has the content ''"):
        model.chat("", memory=memory)


def test_models_that_do_not_chat_say_what_fits():
    with pytest.raises(ValueError, match="chat needs a model trained to chat .* use model.generate"):
        _transformer().chat("Hi")
    translation = TranslationTemplate(("en", "zh"))
    translator = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=translation.special_tokens),
                        prompt_template=translation)
    with pytest.raises(ValueError, match="it translates: use model.translate"):
        translator.chat("Hi")
    no_end = LSTMLM(261, hidden_dim=8, tokenizer=ByteTokenizer(special_tokens=["<user>", "<assistant>"]),
                    prompt_template=CHAT_TEMPLATE)
    with pytest.raises(ValueError, match=r"stop tokens \['<end>'\] are not special tokens"):
        no_end.chat("Hi")
    plain = ChatTemplate("Q: {content}\n", "A: {content}\n", "{content}\n")
    assert chat_stop_token_ids(LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer(), prompt_template=plain)) == [2]
