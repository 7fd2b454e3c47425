"""Dialogs: the chatterbot-corpus in English and Chinese, the user's JSONL and CSV files, one split rule, errors."""

import json
import re

import pytest

from tfllm.data.cleaning import clean_text
from tfllm.data.dialogs import detect_language, dialog_exchanges, dialog_texts, first_user_turn, load_dialogs
from tfllm.data.splits import SPLITS, split_of
from tfllm.evaluation import reply_language


def _roles(dialog):
    return [message["role"] for message in dialog["messages"]]


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(tmp_path, *records, name="dialogs.jsonl"):
    return _write(tmp_path / name, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def _chat(*contents, **fields):
    roles = ("user", "assistant") * len(contents)
    return {"messages": [{"role": role, "content": content} for role, content in zip(roles, contents)], **fields}


def test_chatterbot_counts_languages_and_alternation():
    english, chinese = load_dialogs(languages=("en",)), load_dialogs(languages="zh")
    assert (len(english), len(chinese)) == (2025, 467)
    assert {d["language"] for d in english} == {"en"} and {d["language"] for d in chinese} == {"zh"}
    both = load_dialogs()
    assert both == english + chinese
    assert load_dialogs(languages=("zh", "en")) == chinese + english
    for dialog in both:
        roles = _roles(dialog)
        assert len(roles) >= 2 and roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
        assert all(m["content"] == m["content"].strip() and m["content"] for m in dialog["messages"])
    # Multi-turn conversations are kept whole, and every Chinese dialog holds Chinese characters.
    assert max(len(d["messages"]) for d in both) == 26
    assert all(re.search("[\u4e00-\u9fff]", first_user_turn(d) + d["messages"][1]["content"]) for d in chinese)


def test_chatterbot_results_are_fresh_copies():
    first = load_dialogs(languages="en")
    first[0]["messages"][0]["content"] = "changed"
    first[0]["messages"].append({"role": "user", "content": "more"})
    first.clear()
    again = load_dialogs(languages="en")
    assert again[0]["messages"][0]["content"] != "changed" and len(again) == 2025


def test_splits_partition_the_dialogs_by_first_user_turn():
    everything = load_dialogs()
    splits = {name: load_dialogs(split=name) for name in SPLITS}
    assert [len(splits[name]) for name in SPLITS] == [2363, 79, 50]
    assert sum(len(dialogs) for dialogs in splits.values()) == len(everything)
    firsts = {name: {first_user_turn(d) for d in dialogs} for name, dialogs in splits.items()}
    assert not firsts["train"] & firsts["validation"] and not firsts["train"] & firsts["test"]
    assert not firsts["validation"] & firsts["test"]
    assert all(split_of(first_user_turn(d)) == "test" for d in splits["test"])
    assert {d["language"] for d in splits["test"]} == {"en", "zh"}


def test_jsonl_messages_round_trip_with_system_and_detected_language(tmp_path):
    records = [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": " Hi "},
                      {"role": "assistant", "content": "Hello!"}], "language": "en"},
        _chat("天气如何？", "今天天气很好。", "谢谢！"),
        _chat("How do you say 谢谢?", "Thank you."),  # English, asking about a Chinese word
        _chat("What is 2+2?", "4"),
    ]
    path = _jsonl(tmp_path, *records)
    dialogs = load_dialogs(path)
    assert dialogs[0]["messages"][1] == {"role": "user", "content": "Hi"}
    assert _roles(dialogs[0]) == ["system", "user", "assistant"]
    assert dialogs[1] == {"messages": records[1]["messages"], "language": "zh"}
    assert [d["language"] for d in dialogs] == ["en", "zh", "en", "en"]
    assert load_dialogs(str(path), languages="en") == [dialogs[0], dialogs[2], dialogs[3]]
    kept = {d["messages"][1]["content"] for name in SPLITS for d in _or_empty(path, name)}
    assert kept == {d["messages"][1]["content"] for d in dialogs}


def test_a_dialog_is_labelled_with_the_language_the_metric_reads_in_its_user_turns(tmp_path):
    # Any ideograph made a dialog Chinese, so the reference replies of "What does 你好 mean?" were scored as replies
    # in the wrong language by chat_scores, whose reply_language goes by the majority.
    questions = ["What does 你好 mean?", "我用 Python", "今天天气很好", "OK 好", "42"]
    dialogs = load_dialogs(_jsonl(tmp_path, *[_chat(question, "Answer.") for question in questions]))
    assert [d["language"] for d in dialogs] == ["en", "zh", "zh", "zh", "en"]
    assert [reply_language(question) for question in questions[:3]] == ["en", "zh", "zh"]
    assert detect_language("OK 好") == "zh" and reply_language("OK 好") is None  # an even mix: any ideograph


def test_dialogs_that_share_any_user_turn_land_in_one_split(tmp_path):
    # Only the first user turns were kept apart: a question asked second in a test dialog could open a training one.
    follow_up = "How are you?"
    openings = [f"Question {index}" for index in range(40)]
    by_own_hash = {split: [q for q in openings if split_of(q) == split] for split in SPLITS}
    held_out = (by_own_hash["validation"] + by_own_hash["test"])[0]
    trained = by_own_hash["train"][0]
    records = [_chat(opening, "Fine.") for opening in openings] + [
        _chat(held_out, "Hello.", follow_up, "Fine."), _chat(follow_up, "Good, thanks."), _chat(trained, "Yes.")]
    path = _jsonl(tmp_path, *records)
    splits = {split: _or_empty(path, split) for split in SPLITS}
    questions = {split: {m["content"] for d in dialogs for m in d["messages"] if m["role"] == "user"}
                 for split, dialogs in splits.items()}
    assert not questions["train"] & (questions["validation"] | questions["test"])
    assert not questions["validation"] & questions["test"]
    assert sum(map(len, splits.values())) == len(records)
    # The group's split is that of its smallest first user turn ("How are you?" < "Question ..."), not held_out's own.
    assert split_of(held_out) != split_of(follow_up) and {held_out, follow_up} <= questions[split_of(follow_up)]
    assert trained in questions["train"]  # a dialog that shares nothing keeps the split of its first turn
    # The split of every dialog is the same whatever the languages asked and the order of the lines.
    assert _or_empty(_jsonl(tmp_path, *records[::-1], name="reversed.jsonl"), "train")[::-1] == splits["train"]


def test_a_lone_surrogate_is_named_with_its_file_and_line(tmp_path):
    # A JSON escape "\ud800" is half a character, which no UTF-8 text holds: the split's hash failed on it with a
    # UnicodeEncodeError naming neither.
    path = _write(tmp_path / "dialogs.jsonl", json.dumps(_chat("a", "b")) + "\n" + json.dumps(_chat("Hi \ud800", "b")))
    with pytest.raises(ValueError, match=r"dialogs\.jsonl, line 2: message 0 \(user\) holds a lone surrogate"):
        load_dialogs(path, split="train")


def _or_empty(path, split):
    try:
        return load_dialogs(path, split=split)
    except ValueError as error:
        assert "no dialogs" in str(error)
        return []


def test_question_answer_files_become_two_turn_dialogs(tmp_path):
    expected = [_chat("天气如何", "今天天气很好", language="zh"), _chat("Who are you?", "A bot, \"tfllm\".", language="en")]
    csv_path = _write(tmp_path / "qa.csv", 'question,answer\n天气如何,今天天气很好\nWho are you?,"A bot, ""tfllm""."\n')
    jsonl_path = _jsonl(tmp_path, {"question": "天气如何", "answer": "今天天气很好"},
                        {"prompt": "Who are you?", "completion": "A bot, \"tfllm\"."})
    prompt_csv = _write(tmp_path / "pc.csv", "language,prompt,completion\nzh,天气如何,今天天气很好\n,Who are you?,"
                        '"A bot, ""tfllm""."\n')
    for path in (csv_path, jsonl_path, prompt_csv):
        assert load_dialogs(path) == expected


@pytest.mark.parametrize("line, match", [
    ("{not json", r"dialogs\.jsonl, line 3: not valid JSON"),
    ('{"messages": [{"role": "bot", "content": "hi"}]}', r", line 3: message 0 has the unknown role 'bot'"),
    ('{"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]}',
     r", line 3: message 0 \(user\) has an empty content"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}',
     r", line 3: the roles \['user', 'user'\] do not alternate"),
    ('{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}',
     r", line 3: the roles \['assistant', 'user'\] do not alternate"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}',
     r", line 3: the roles \['user', 'system'\] do not alternate"),
    ('{"messages": [{"role": "user", "content": "a"}]}', r", line 3: .* with at least one assistant turn"),
    ('{"messages": [{"role": "user", "content": 7}, {"role": "assistant", "content": "a"}]}',
     r", line 3: message 0 \(user\) has content of type int; expected a string"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "language": "fr"}',
     r", line 3: the language 'fr' is not one of \('en', 'zh'\)"),
    ('{"question": "a"}', r", line 3: the fields are \['question'\]; expected 'messages'"),
    ('{"question": "a", "answer": ""}', r", line 3: the answer is ''; expected a non-empty string"),
    ('["a", "b"]', r", line 3: a JSON array; expected an object"),
])
def test_jsonl_errors_name_the_file_and_line(tmp_path, line, match):
    path = _write(tmp_path / "dialogs.jsonl", json.dumps(_chat("a", "b")) + "\n\n" + line + "\n")
    with pytest.raises(ValueError, match=match):
        load_dialogs(path)


def test_csv_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"qa\.csv, line 1: the columns are \['q', 'a'\]; expected 'question'"):
        load_dialogs(_write(tmp_path / "qa.csv", "q,a\nhi,hello\n"))
    with pytest.raises(ValueError, match=r"qa\.csv, line 3: the answer is ''"):
        load_dialogs(_write(tmp_path / "qa.csv", "question,answer\nhi,hello\nbye,\n"))
    with pytest.raises(ValueError, match=r"qa\.csv, line 2: the language 'english' is not one of"):
        load_dialogs(_write(tmp_path / "qa.csv", "question,answer,language\nhi,hello,english\n"))


def test_bad_sources_and_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dialog corpus 'chaterbot'"):
        load_dialogs("chaterbot")
    with pytest.raises(FileNotFoundError, match=r"missing\.jsonl"):
        load_dialogs(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match=r"the suffix '\.txt'"):
        load_dialogs(_write(tmp_path / "dialogs.txt", "hi\n"))
    with pytest.raises(ValueError, match=r"empty\.jsonl' is empty"):
        load_dialogs(_write(tmp_path / "empty.jsonl", "\n"))
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2: not valid UTF-8"):
        (tmp_path / "bad.jsonl").write_bytes(b'{"question": "a", "answer": "b"}\n\xff\n')
        load_dialogs(tmp_path / "bad.jsonl")
    for languages in ((), ("en", "fr"), "english", None):
        with pytest.raises(ValueError, match=r"languages=.* is invalid: expected a non-empty subset of"):
            load_dialogs(languages=languages)
    with pytest.raises(ValueError, match=r"split='dev' is not one of"):
        load_dialogs(split="dev")
    with pytest.raises(ValueError, match=r"no dialogs of .* in the languages \('zh',\)"):
        load_dialogs(_jsonl(tmp_path, _chat("hi", "hello")), languages="zh")


def test_texts_and_exchanges():
    dialogs = [
        {"messages": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}],
         "language": "en"},
        _chat("天气如何", "今天天气很好", language="zh"),
    ]
    assert dialog_texts(dialogs) == ["Be kind.\nHi\nHello!\nBye", "天气如何\n今天天气很好"]
    exchanges = dialog_exchanges(dialogs)
    assert exchanges == [
        {"context": dialogs[0]["messages"][:2], "reply": "Hello!", "language": "en"},
        {"context": [{"role": "user", "content": "天气如何"}], "reply": "今天天气很好", "language": "zh"},
    ]
    exchanges[0]["context"][0]["content"] = "changed"
    assert dialogs[0]["messages"][0]["content"] == "Be kind."
    everything = load_dialogs()
    assert len(dialog_exchanges(everything)) == sum(_roles(d).count("assistant") for d in everything)


def test_chinese_text_survives_loading_and_cleaning(tmp_path):
    text = "今天天气很好。你好，世界！「引号」——《书名》　全角空格"
    dialog = load_dialogs(_jsonl(tmp_path, _chat("天气如何？", text)))[0]
    assert dialog["messages"][1]["content"] == text
    chinese = dialog_texts(load_dialogs(languages="zh"))
    cleaned = [t.decode("utf-8") for t in clean_text(chinese).numpy()]
    assert cleaned == [" ".join(t.split("\u3000")) for t in chinese]  # only the ideographic space (U+3000) is folded
    assert clean_text(text).numpy().decode("utf-8") == text.replace("\u3000", " ")
