"""The chat baselines (most common reply, retrieval) and the chat memory: candidates scored by the model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import ChatTemplate
from tfllm.evaluation import ChatMemory, MostCommonReply, RetrievalReply, chat_memory, reply_log_likelihoods
from tfllm.models import TransformerLM
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = ChatTemplate(assistant="<assistant>{content}<end>")


def dialog(language, *turns):
    messages = [{"role": ("user", "assistant")[index % 2], "content": text} for index, text in enumerate(turns)]
    return {"messages": messages, "language": language}


DIALOGS = [
    dialog("en", "Good night", "Sleep well."),
    dialog("en", "Thank you", "My pleasure."),
    dialog("en", "Thanks a lot", "You are welcome."),
    dialog("en", "Good evening", "Sleep well."),
    dialog("zh", "谢谢你", "不客气。"),
    dialog("zh", "晚安", "好梦。", "谢谢", "不用谢。"),
]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    return TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=1, hidden_dim=16, intermediate_dim=16,
                         max_sequence_length=64, tokenizer=tokenizer, prompt_template=TEMPLATE)


def test_most_common_reply_answers_in_the_questions_language():
    baseline = MostCommonReply(DIALOGS)
    assert baseline.answers == {"en": "Sleep well.", "zh": "不客气。"}  # zh: three replies once each, the first wins
    assert baseline.language == "en"  # 4 English dialogs, 2 Chinese
    assert baseline.replies(["Hello", "你好", "42", dialog("zh", "Hi", "…", "再见")["messages"][:3]]) == [
        "Sleep well.", "不客气。", "Sleep well.", "不客气。"]  # "42": no language, the majority's
    chinese_only = MostCommonReply(DIALOGS[4:])
    assert chinese_only.replies(["Hello"]) == ["不客气。"]  # no English dialog: the majority language's reply


def test_most_common_reply_ties_go_to_the_first_in_corpus_order():
    assert MostCommonReply([dialog("en", "a", "B."), dialog("en", "c", "A.")]).answers["en"] == "B."
    assert MostCommonReply([dialog("en", "a", "B."), dialog("zh", "c", "好。")]).language == "en"
    assert MostCommonReply([dialog("zh", "c", "好。"), dialog("en", "a", "B.")]).language == "zh"
    with pytest.raises(ValueError, match="has the language None: expected a language code"):
        MostCommonReply([{"messages": DIALOGS[0]["messages"]}])


def test_retrieval_answers_the_reply_to_the_most_similar_last_user_message():
    baseline = RetrievalReply(DIALOGS)
    assert len(baseline.exchanges) == 7
    history = dialog("zh", "晚安", "好梦。", "谢谢啦")["messages"]  # the last user message decides: 谢谢, not 晚安
    assert baseline.replies(["thanks a lot!", "good nite", "谢谢你", history]) == [
        "You are welcome.", "Sleep well.", "不客气。", "不用谢。"]
    assert baseline.replies(["zzz", "龙"]) == ["Sleep well.", "不客气。"]  # nothing shared: the language's commonest
    indices, similarities = baseline.nearest(["Good night"], k=2)
    assert indices[0, 0] == 0 and similarities[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="conversations is one conversation"):
        baseline.replies(DIALOGS[0]["messages"][:1])


def mean_log_probability(model, prompt, reply_text):
    """The mean log p of `reply_text`'s tokens after `<bos> prompt`, from one call of the model on the sequence."""
    tokenizer = model.tokenizer
    prompt_ids = tokenizer.tokenize([prompt]).to_list()[0]
    ids = [tokenizer.bos_id, *prompt_ids, *tokenizer.tokenize([reply_text]).to_list()[0]]
    log_probabilities = tf.nn.log_softmax(model(np.asarray([ids[:-1]], np.int32))[0]).numpy()  # (T, V)
    predicted = log_probabilities[np.arange(len(ids) - 1), ids[1:]].astype(np.float64)
    return float(np.mean(predicted[len(prompt_ids):]))


def test_reply_likelihoods_match_the_models_own_probabilities_with_the_stop_token(model):
    conversations = ["Thank you", dialog("zh", "晚安", "好梦。", "谢谢")["messages"]]
    candidates = [["My pleasure.", "", "You are welcome."], ["不用谢。"]]
    values = reply_log_likelihoods(model, conversations, candidates)
    assert [row.shape for row in values] == [(3,), (1,)]
    assert TEMPLATE.format_prompt(conversations[1]) == "<user>晚安<assistant>好梦。<end><user>谢谢<assistant>"
    for conversation, row, row_values in zip(conversations, candidates, values):
        prompt = TEMPLATE.format_prompt(conversation)
        for candidate, value in zip(row, row_values):
            assert value == pytest.approx(mean_log_probability(model, prompt, candidate + "<end>"), abs=1e-5)


def test_a_history_too_long_for_the_context_loses_its_oldest_exchange_as_in_chat(model):
    conversation = dialog("en", "x" * 40, "y" * 20, "Thanks")["messages"]  # 71 prompt tokens; 64 in the context
    value = reply_log_likelihoods(model, [conversation], [["My pleasure."]])[0][0]
    assert value == pytest.approx(mean_log_probability(model, "<user>Thanks<assistant>", "My pleasure.<end>"),
                                  abs=1e-5)


def test_chat_with_a_memory_replies_with_its_choice(model):
    memory = ChatMemory(DIALOGS, k=4)
    conversation = dialog("en", "Good night", "Sleep well.", "thanks!")["messages"][:3]
    assert model.chat(conversation, memory=memory) == memory.replies(model, [conversation])[0]
    assert model.chat("谢谢", memory=memory) in ("不用谢。", "不客气。")


def test_without_a_stop_marker_the_reply_ends_with_eos(model):
    plain = TransformerLM.from_config({**model.get_config(), "prompt_template": ChatTemplate().get_config()})
    plain(np.zeros((1, 2), np.int32))  # builds it
    plain.set_weights(model.get_weights())
    value = reply_log_likelihoods(plain, ["Thank you"], [["My pleasure."]])[0][0]
    tokenizer = model.tokenizer
    prompt = ChatTemplate().format_prompt("Thank you")
    prompt_ids = tokenizer.tokenize([prompt]).to_list()[0]
    ids = [tokenizer.bos_id, *prompt_ids, *tokenizer.tokenize(["My pleasure."]).to_list()[0], tokenizer.eos_id]
    log_probabilities = tf.nn.log_softmax(model(np.asarray([ids[:-1]], np.int32))[0]).numpy()
    want = np.mean(log_probabilities[np.arange(len(ids) - 1), ids[1:]][len(prompt_ids):])
    assert value == pytest.approx(want, abs=1e-5)


def test_the_memory_chooses_the_argmax_of_the_score_computed_from_model_score(model):
    conversations = ["Good", "thanks", "谢谢啊"]
    for weight in (0.0, 1.0):
        memory = ChatMemory(DIALOGS, k=8, similarity_weight=weight)
        candidates, similarities = memory.candidates(conversations)
        assert all(len(row) > 1 for row in candidates)
        expected = []
        for conversation, row, row_similarities in zip(conversations, candidates, similarities):
            prompt = TEMPLATE.format_prompt(conversation)
            _, prompt_tokens = model.score(prompt)
            _, _, per_token = model.score([prompt + candidate + "<end>" for candidate in row], per_token=True)
            scores = [np.mean(values[prompt_tokens[0]:]) + weight * np.log(similarity)
                      for values, similarity in zip(per_token, row_similarities)]
            assert np.sort(scores)[-1] - np.sort(scores)[-2] > 1e-4  # a clear winner, whatever the float rounding
            expected.append(row[int(np.argmax(scores))])
        assert memory.replies(model, conversations) == expected


def test_candidates_are_the_distinct_replies_of_the_nearest_exchanges_that_share_an_ngram():
    memory = ChatMemory(DIALOGS, k=3)
    candidates, similarities = memory.candidates(["Good night!", "谢谢啊"])  # neither asked word for word
    retrieval = RetrievalReply(DIALOGS)
    indices, nearest = retrieval.nearest(["Good night!"], k=3)
    assert [retrieval.exchanges[index]["reply"] for index in indices[0]] == ["Sleep well.", "Sleep well.",
                                                                             "You are welcome."]
    assert candidates[0] == ["Sleep well.", "You are welcome."]  # the repeat removed, with its nearest similarity
    np.testing.assert_array_equal(similarities[0], nearest[0, [0, 2]])
    assert candidates[1] == ["不用谢。", "不客气。"]  # only two exchanges share a character with 谢谢啊
    assert np.all(similarities[1] > 0)
    known, _ = memory.candidates(["Good night", "谢谢"])  # asked word for word: only what they were taught
    assert known == [["Sleep well."], ["不用谢。"]]


def test_a_huge_similarity_weight_makes_the_memory_retrieval(model):
    conversations = ["Good", "thank you!", "Thanks", "谢谢", "晚安啦", "zzz", "龙"]
    memory = ChatMemory(DIALOGS, similarity_weight=1e6)
    assert memory.replies(model, conversations) == RetrievalReply(DIALOGS).replies(conversations)


def test_a_conversation_without_candidates_or_with_one_is_not_scored(model, monkeypatch):
    seen = []

    def scores(model, conversations, candidates):
        seen.append(candidates)
        return [np.zeros(len(row)) for row in candidates]

    monkeypatch.setattr(chat_memory, "reply_log_likelihoods", scores)
    memory = ChatMemory(DIALOGS, k=1)
    assert memory.replies(model, ["zzz", "龙", "Good night"]) == ["Sleep well.", "不客气。", "Sleep well."]
    assert seen == [[]]


def test_errors_name_what_was_wrong(model):
    with pytest.raises(ValueError, match="k=0 is invalid"):
        ChatMemory(DIALOGS, k=0)
    with pytest.raises(ValueError, match="candidates has 1 lists but conversations has 2"):
        reply_log_likelihoods(model, ["Hi", "Bye"], [["Hello."]])
    with pytest.raises(ValueError, match="message 1 is the last and has the role 'assistant'"):
        reply_log_likelihoods(model, [DIALOGS[0]["messages"]], [["Hello."]])
    plain = TransformerLM(model.vocab_size, num_layers=1, num_heads=1, hidden_dim=8, intermediate_dim=8,
                          max_sequence_length=8, tokenizer=model.tokenizer)
    with pytest.raises(ValueError, match="the chat memory needs a model trained to chat"):
        reply_log_likelihoods(plain, ["Hi"], [["Hello."]])


def test_a_known_question_gets_a_reply_it_was_taught_whatever_the_model_prefers(model):
    dialogs = [dialog("en", "Thank you", "My pleasure."), dialog("en", "Thank you!", "Whatever."),
               dialog("en", "Thank you", "Any time.")]
    memory = ChatMemory(dialogs, similarity_weight=0.0)  # the model alone would choose among all three
    assert memory.candidates(["Thank you"])[0] == [["My pleasure.", "Any time."]]
    assert memory.replies(model, ["Thank you"])[0] in ("My pleasure.", "Any time.")
    assert set(memory.candidates(["Thank you!!"])[0][0]) == {"Whatever.", "My pleasure.", "Any time."}
