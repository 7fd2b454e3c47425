"""Chat metrics: the reply language, per-language scores with sacrebleu's chrF, exact matches against the replies
taught for the same context."""

import pytest
from sacrebleu.metrics import CHRF

from tfllm.evaluation import accepted_replies, chat_scores, exact_match, reply_language
from tfllm.evaluation.chat_exchanges import conversation_list, last_user_message, training_exchanges


def messages(*turns):
    return [{"role": ("user", "assistant")[index % 2], "content": text} for index, text in enumerate(turns)]


@pytest.mark.parametrize("text, language", [
    ("Hello, how are you?", "en"),
    ("你好，你好吗？", "zh"),
    ("Python是创建聊天机器人的最佳语言。", "zh"),  # 13 ideographs, 1 Latin word
    ("我经常使用 Python, Java 和 C++ .", "zh"),  # 6 ideographs, 3 words: more Latin letters, still Chinese
    ("I like 中国菜 a lot", "en"),  # 4 words, 3 ideographs
    ("Ok 好", None),  # an even mix
    ("Café déjà vu", "en"),  # Latin letters with accents
    ("Привет", None),  # letters of another script
    ("42 + 7 = 49!", None),
    ("", None),
    ("   ", None),
    ("！？。", None),
])
def test_reply_language_counts_ideographs_against_latin_words(text, language):
    assert reply_language(text) == language


def test_reply_language_refuses_what_is_not_text():
    with pytest.raises(ValueError, match="text=None is invalid: expected a str"):
        reply_language(None)


REPLIES = ["Hello there.", "", "I am fine", "晚安。", "谢谢", "Thanks"]
REFERENCES = ["Hello.", "Good night.", "I am fine, thanks.", "晚安。", "不客气。", "不用谢。"]
LANGUAGES = ["en", "en", "en", "zh", "zh", "zh"]
FINISHED = [True, False, False, True, True, False]


def test_chat_scores_per_language_and_over_all():
    scores = chat_scores(REPLIES, REFERENCES, LANGUAGES, finished=FINISHED)
    assert list(scores) == ["en", "zh", "all"]
    assert {name: group["count"] for name, group in scores.items()} == {"en": 3, "zh": 3, "all": 6}
    # The empty reply is in no language; "Thanks" answers a Chinese question in English.
    assert scores["en"]["language_right"] == pytest.approx(2 / 3)
    assert scores["zh"]["language_right"] == pytest.approx(2 / 3)
    assert scores["all"]["language_right"] == pytest.approx(4 / 6)
    # Well formed: of the non-empty replies, those that finished (en: 1 of 2; zh: 2 of 3).
    assert scores["en"]["well_formed"] == pytest.approx(1 / 2)
    assert scores["zh"]["well_formed"] == pytest.approx(2 / 3)
    assert scores["all"]["well_formed"] == pytest.approx(3 / 5)
    assert (scores["en"]["empty"], scores["zh"]["empty"], scores["all"]["empty"]) == (pytest.approx(1 / 3), 0.0,
                                                                                      pytest.approx(1 / 6))


def test_chrf_is_sacrebleus_corpus_score_of_each_group():
    scores = chat_scores(REPLIES, REFERENCES, LANGUAGES)
    for name, rows in (("en", slice(0, 3)), ("zh", slice(3, 6)), ("all", slice(0, 6))):
        direct = CHRF().corpus_score(REPLIES[rows], [REFERENCES[rows]]).score
        assert scores[name]["chrf"] == direct
    assert scores["zh"]["chrf"] == pytest.approx(18.068181818181817, abs=1e-9)  # golden (sacrebleu 2.6.0)
    assert {"nc:6", "nw:0", "nrefs:1"} <= set(scores["all"]["chrf_signature"].split("|"))
    assert all(group["well_formed"] is None for group in scores.values())  # no `finished` given


def test_a_language_without_questions_gets_no_group_and_well_formed_needs_a_non_empty_reply():
    scores = chat_scores(["", " "], ["晚安。", "谢谢。"], ["zh", "zh"], finished=[False, True])
    assert list(scores) == ["zh", "all"]
    assert scores["zh"]["empty"] == 1.0 and scores["zh"]["language_right"] == 0.0
    assert scores["zh"]["well_formed"] is None
    assert scores["zh"]["chrf"] == 0.0


def test_chat_scores_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="references has 1 items but replies has 2"):
        chat_scores(["a", "b"], ["a"], ["en", "en"])
    with pytest.raises(ValueError, match="finished has 1 items but replies has 2"):
        chat_scores(["a", "b"], ["a", "b"], ["en", "en"], finished=[True])
    with pytest.raises(ValueError, match=r"languages\[1\]='fr' is invalid: expected one of \['en', 'zh'\]"):
        chat_scores(["a", "b"], ["a", "b"], ["en", "fr"])
    with pytest.raises(ValueError, match="replies is empty"):
        chat_scores([], [], [])
    with pytest.raises(ValueError, match="replies is one string"):
        chat_scores("a", ["a"], ["en"])
    with pytest.raises(ValueError, match=r"references\[0\] is a NoneType: expected a str"):
        chat_scores(["a"], [None], ["en"])
    # These were TypeErrors from deep inside ("'NoneType' object is not iterable").
    for languages in (None, "en"):
        with pytest.raises(ValueError, match=r"languages is .*: expected the language of each question, a list of"):
            chat_scores(["a"], ["a"], languages)
    with pytest.raises(ValueError, match=r"^references is None: expected a list of texts"):
        chat_scores(["a"], None, ["en"])


def test_exact_match_normalizes_whitespace_and_accepts_any_taught_answer():
    replies = ["Good   night.", "Sleep well.", "good night.", "晚安。", ""]
    accepted = [["Good night."], ["Good night.", " Sleep  well. "], ["Good night."], ["晚安。"], []]
    assert exact_match(replies, accepted) == pytest.approx(3 / 5)  # case counts: "good night." is not a match
    with pytest.raises(ValueError, match="accepted has 1 lists but replies has 2"):
        exact_match(["a", "b"], [["a"]])


def test_exact_match_refuses_a_bare_string_for_a_list_of_accepted_answers():
    with pytest.raises(ValueError, match=r"^accepted\[0\] is one string: expected a list of texts \(wrap a single one "
                                         r"as \[accepted\[0\]\]\)\.$"):
        exact_match(["b"], ["abc"])  # not the characters "a", "b", "c"
    with pytest.raises(ValueError, match=r"^accepted is one string: expected one list of accepted answers per reply"):
        exact_match(["b"], "b")
    with pytest.raises(ValueError, match=r"^replies is one string"):
        exact_match("b", [["b"]])
    with pytest.raises(ValueError, match=r"^accepted\[0\] is None: expected a list of texts"):
        exact_match(["b"], [None])
    assert exact_match(["b"], [["abc"]]) == 0.0 and exact_match(["abc"], [("abc",)]) == 1.0


def test_accepted_replies_are_those_taught_for_the_same_context():
    train = [
        {"messages": messages("Hi", "Hello.", "How are you?", "Fine."), "language": "en"},
        {"messages": messages("Hi", "Hey!"), "language": "en"},
        {"messages": messages("How are you?", "Great."), "language": "en"},
        {"messages": messages("Hi", "Hello."), "language": "en"},
    ]
    conversations = ["Hi", messages(" Hi ", "Hello.", "How are  you?"), "How are you?", "Bye"]
    assert accepted_replies(train, conversations) == [["Hello.", "Hey!"], ["Fine."], ["Great."], []]


def test_training_exchanges_are_one_per_assistant_turn_with_the_messages_before_it():
    system = {"role": "system", "content": "Be brief."}
    dialog = {"messages": [system, *messages("Hi", "Hello.", "Bye", "Bye!")], "language": "en"}
    exchanges = training_exchanges([dialog])
    assert [exchange["reply"] for exchange in exchanges] == ["Hello.", "Bye!"]
    assert exchanges[0]["context"] == [system, *messages("Hi")]
    assert exchanges[1]["context"] == dialog["messages"][:4]
    assert {exchange["language"] for exchange in exchanges} == {"en"}
    with pytest.raises(ValueError, match="the dialogs hold no assistant reply"):
        training_exchanges([{"messages": messages("Hi"), "language": "en"}])
    with pytest.raises(ValueError, match=r"dialogs\[0\]=.* is invalid: expected a dict with a 'messages' list"):
        training_exchanges([messages("Hi", "Hello.")])
    with pytest.raises(ValueError, match=r"dialogs\[1\] has the language None: expected a language code"):
        training_exchanges([dialog, {"messages": dialog["messages"]}])


def test_a_conversation_must_end_with_the_user_message_to_reply_to():
    assert last_user_message("Hi") == "Hi"
    assert last_user_message([{"role": "system", "content": "Be brief."}, *messages("Hi", "Hello.", "Bye")]) == "Bye"
    with pytest.raises(ValueError, match="message 1 is the last and has the role 'assistant'"):
        last_user_message(messages("Hi", "Hello."))
    with pytest.raises(ValueError, match="messages is empty"):
        last_user_message([])
    with pytest.raises(ValueError, match="conversations is one conversation"):
        conversation_list(messages("Hi"))
    with pytest.raises(ValueError, match="conversations is one conversation"):
        accepted_replies([{"messages": messages("Hi", "Hello."), "language": "en"}], "Hi")
