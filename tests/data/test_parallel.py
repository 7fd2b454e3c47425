"""English-Chinese pairs: the HSK counts, a split that keeps both sides of validation and test out of training, the
glosses of training words, the user's TSV/JSONL/line-aligned files, and a clear message for each bad input."""

import collections
import json
import re
import sys

import pytest

from tfllm.data import PARALLEL_CORPUS_NAMES, load_parallel_corpus, parallel_texts
from tfllm.data.parallel import GLOSS_PREFIX, is_gloss
from tfllm.data.hsk import hsk_placeholders, hsk_sentences

SPLITS = ("train", "validation", "test")


def _splits(source="hsk", **kwargs):
    return {split: load_parallel_corpus(source, split=split, **kwargs) for split in SPLITS}


def _write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_hsk_keeps_every_sentence_with_a_real_translation():
    pairs = load_parallel_corpus("hsk")
    assert PARALLEL_CORPUS_NAMES == ("hsk",)
    assert len(pairs) == 4354 - 80 == 4274
    dropped = hsk_placeholders()
    assert len(dropped) == 80
    assert collections.Counter(s.en for s in dropped)["placeholder"] == 65
    assert all(re.fullmatch(r"placeholder(-[pq]\d+)?", s.en) for s in dropped)
    assert not any("placeholder" in pair["en"] for pair in pairs)
    assert len({pair["ref"] for pair in pairs}) == len(pairs)
    assert {"en": "The weather is very nice today.", "zh": "今天天气很好。", "ref": "hsk1-0141"} in pairs
    assert pairs[0] == {"en": "Hello, teacher!", "zh": "老师，您好！", "ref": "hsk1-0001"}
    assert [s.ref for s in hsk_sentences()] == [pair["ref"] for pair in pairs]


def test_hsk_splits_are_90_5_5_and_share_no_text_on_either_side():
    splits = _splits()
    assert [len(splits[split]) for split in SPLITS] == [3853, 222, 199]
    refs = [pair["ref"] for split in SPLITS for pair in splits[split]]
    assert sorted(refs) == sorted(pair["ref"] for pair in load_parallel_corpus("hsk"))
    for side in ("en", "zh"):
        texts = {split: set(parallel_texts(splits[split], side)) for split in SPLITS}
        assert not texts["train"] & texts["validation"]
        assert not texts["train"] & texts["test"]
        assert not texts["validation"] & texts["test"]
    assert splits == _splits()  # stable


def test_sentences_sharing_a_text_land_in_one_split():
    split_of_ref = {pair["ref"]: split for split, pairs in _splits().items() for pair in pairs}
    shared_english = ("hsk4-0705", "hsk6-1027")  # "这是一场误会。" twice, "This is a misunderstanding." three times
    misunderstanding = [p["ref"] for p in load_parallel_corpus() if p["en"] == "This is a misunderstanding."]
    assert len(misunderstanding) == 3 and set(shared_english) <= set(misunderstanding)
    assert len({split_of_ref[ref] for ref in misunderstanding}) == 1
    assert split_of_ref["hsk2-0390"] == split_of_ref["hsk6-0226"]  # "这条路不通。": closed / blocked


def test_groups_are_transitive_and_independent_of_line_order(tmp_path):
    # Chain i: (a_i, x_i) - (a_i, y_i) - (b_i, y_i): the first and last pair share no text, only the middle one.
    lines = []
    for i in range(300):
        lines += [f"a{i}\t甲{i}", f"a{i}\t乙{i}", f"b{i}\t乙{i}"]
    forward = _write_lines(tmp_path / "forward.tsv", lines)
    backward = _write_lines(tmp_path / "backward.tsv", lines[::-1])
    by_text = {}
    for path in (forward, backward):
        chains = {}
        for split, pairs in _splits(path).items():
            for pair in pairs:
                chains.setdefault(int(pair["en"][1:]), set()).add(split)
                by_text.setdefault((pair["en"], pair["zh"]), set()).add(split)
        assert all(len(splits) == 1 for splits in chains.values())
        assert {split for splits in chains.values() for split in splits} == set(SPLITS)
    assert all(len(splits) == 1 for splits in by_text.values())  # the same split in both orders


def test_glosses_come_from_training_words_only():
    train = load_parallel_corpus("hsk", split="train", include_glosses=True)
    glosses = [pair for pair in train if pair["ref"].startswith("gloss:")]
    assert len(glosses) == 4603
    assert train[: len(train) - len(glosses)] == load_parallel_corpus("hsk", split="train")
    assert all(pair["ref"] == f"gloss:{pair['zh']}" for pair in glosses)
    assert len({(pair["en"], pair["zh"]) for pair in glosses}) == len(glosses)
    training_refs = {pair["ref"] for pair in train}
    training_words = {word for s in hsk_sentences() if s.ref in training_refs for word, _ in s.words}
    assert {pair["zh"] for pair in glosses} <= training_words
    held_out = _splits()
    held_out_texts = {p[side] for split in ("validation", "test") for p in held_out[split] for side in ("en", "zh")}
    assert not {text for pair in glosses for text in (pair["en"], pair["zh"])} & held_out_texts
    assert {"en": "weather", "zh": "天气", "ref": "gloss:天气"} in glosses
    assert not any(pair["zh"] in ("了", "坐", "血") for pair in glosses)  # a particle, a surname, a cross-reference
    everything = load_parallel_corpus("hsk", include_glosses=True)
    assert [pair for pair in everything if pair["ref"].startswith("gloss:")] == glosses
    for split in ("validation", "test"):
        assert load_parallel_corpus("hsk", split=split, include_glosses=True) == held_out[split]


def test_is_gloss_tells_the_added_glosses_from_the_sentence_pairs(tmp_path):
    train = load_parallel_corpus("hsk", split="train", include_glosses=True)
    glosses = [pair for pair in train if is_gloss(pair)]
    assert [pair for pair in train if not is_gloss(pair)] == load_parallel_corpus("hsk", split="train")
    assert len(glosses) == 4603 and all(pair["ref"] == GLOSS_PREFIX + pair["zh"] for pair in glosses)
    table = tmp_path / "pairs.tsv"
    table.write_text("Hello.\t你好。\n", encoding="utf-8")
    assert not any(map(is_gloss, load_parallel_corpus(table)))


def test_a_smaller_training_sample_is_nested_and_brings_only_its_own_glosses():
    full = load_parallel_corpus("hsk", split="train")
    samples = {count: load_parallel_corpus("hsk", split="train", train_pairs=count) for count in (1000, 2000)}
    assert [len(sample) for sample in samples.values()] == [1000, 2000]
    assert {p["ref"] for p in samples[1000]} < {p["ref"] for p in samples[2000]} < {p["ref"] for p in full}
    assert [p for p in full if p in samples[1000]] == samples[1000]  # in the corpus's order
    assert load_parallel_corpus("hsk", split="train", train_pairs=len(full)) == full
    for split in ("validation", "test"):  # unchanged
        assert load_parallel_corpus("hsk", split=split, train_pairs=1000) == load_parallel_corpus("hsk", split=split)
    glosses = [p for p in load_parallel_corpus("hsk", "train", include_glosses=True, train_pairs=1000)
               if p["ref"].startswith("gloss:")]
    kept = {p["ref"] for p in samples[1000]}
    words = {word for s in hsk_sentences() if s.ref in kept for word, _ in s.words}
    assert 0 < len(glosses) < 4603 and {p["zh"] for p in glosses} <= words
    with pytest.raises(ValueError, match="train_pairs=3854 is more than the 3853 pairs of the training split"):
        load_parallel_corpus("hsk", split="train", train_pairs=3854)
    with pytest.raises(ValueError, match="train_pairs"):
        load_parallel_corpus("hsk", train_pairs=0)


def test_a_tatoeba_tsv_with_an_attribution_column(tmp_path):
    path = tmp_path / "cmn.txt"
    path.write_bytes(
        "\ufeffHi.\t嗨。\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #891077 (Martha)\r\n"
        "\n"
        "  Run!  \t\u3000你用跑的。 \tCC-BY 2.0 (France) Attribution: tatoeba.org #4008918 (JSakuragi)\n".encode()
    )
    assert load_parallel_corpus(path) == [
        {"en": "Hi.", "zh": "嗨。", "ref": f"{path}:1"},
        {"en": "Run!", "zh": "你用跑的。", "ref": f"{path}:3"},
    ]


def test_a_jsonl_file_with_its_own_field_names(tmp_path):
    path = tmp_path / "pairs.jsonl"
    records = [{"english": "Thank you.", "chinese": "谢谢。", "id": 7}, {"english": " Good night. ", "chinese": "晚安。"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n", encoding="utf-8")
    pairs = load_parallel_corpus(str(path), fields=("english", "chinese"))
    assert pairs == [
        {"en": "Thank you.", "zh": "谢谢。", "ref": f"{path}:1"},
        {"en": "Good night.", "zh": "晚安。", "ref": f"{path}:2"},
    ]
    assert parallel_texts(pairs, "en") == ["Thank you.", "Good night."]


def test_a_pair_of_line_aligned_files(tmp_path):
    english = _write_lines(tmp_path / "train.en", ["I am a student.", "", "He is here."])
    chinese = _write_lines(tmp_path / "train.zh", ["我是学生。", "", "他在这儿。"])
    assert load_parallel_corpus((english, chinese)) == [
        {"en": "I am a student.", "zh": "我是学生。", "ref": f"{english}:1"},
        {"en": "He is here.", "zh": "他在这儿。", "ref": f"{english}:3"},
    ]
    assert parallel_texts(load_parallel_corpus([str(english), str(chinese)]), "zh") == ["我是学生。", "他在这儿。"]


def test_lines_may_end_in_cr_lf_or_a_lone_cr(tmp_path):
    # Lone CRs were not line breaks: three pairs of a TSV became one ("嗨。\rGo." on the Chinese side), silently.
    for name, newline in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        table = tmp_path / f"{name}.tsv"
        table.write_bytes(newline.join(["Hi.\t嗨。", "Go.\t走。", "", "Thanks.\t谢谢。", ""]).encode())
        assert [(p["en"], p["zh"], p["ref"]) for p in load_parallel_corpus(table)] == [
            ("Hi.", "嗨。", f"{table}:1"), ("Go.", "走。", f"{table}:2"), ("Thanks.", "谢谢。", f"{table}:4")], name
        english, chinese = tmp_path / f"{name}.en", tmp_path / f"{name}.zh"
        english.write_bytes(newline.join(["Hi.", "Go."]).encode())
        chinese.write_bytes(newline.join(["嗨。", "走。", ""]).encode())
        assert parallel_texts(load_parallel_corpus((english, chinese)), "zh") == ["嗨。", "走。"], name


def _bad_inputs(tmp_path):
    """(call arguments, exception, message pattern) for each kind of bad input."""
    good = _write_lines(tmp_path / "good.tsv", ["Hi.\t嗨。"])
    empty = _write_lines(tmp_path / "empty.tsv", ["", "  "])
    one_side = _write_lines(tmp_path / "one_side.tsv", ["Hi.\t嗨。", "Run!"])
    empty_side = _write_lines(tmp_path / "empty_side.tsv", ["Hi.\t嗨。", "Hi.\t嗨。", "Run!\t  \tCC-BY"])
    not_json = _write_lines(tmp_path / "not_json.jsonl", ['{"en": "Hi.", "zh": "嗨。"}', '{"en": "Run!"'])
    no_field = _write_lines(tmp_path / "no_field.jsonl", ['{"en": "Hi.", "zh": "嗨。"}', '{"en": "Run!"}'])
    english = _write_lines(tmp_path / "a.en", ["Hi.", "Run!", "Wait."])
    chinese = _write_lines(tmp_path / "a.zh", ["嗨。", "跑！"])
    gap = _write_lines(tmp_path / "gap.zh", ["嗨。", "", "等等。"])
    surrogate = _write_lines(tmp_path / "surrogate.jsonl",
                             ['{"en": "Hi.", "zh": "嗨。"}', '{"en": "Hi \\ud800", "zh": "嗨"}'])  # a JSON escape
    not_utf8 = tmp_path / "latin1.tsv"
    not_utf8.write_bytes("Hi.\t嗨。\n".encode() + b"Caf\xe9\t\xe5\x92\x96\n")  # a Latin-1 "é" on line 2
    esc = re.escape
    return [
        (("wmt",), ValueError, r"unknown parallel corpus 'wmt': expected one of 'hsk'"),
        ((tmp_path / "missing.tsv",), FileNotFoundError, r"missing\.tsv' does not exist"),
        ((empty,), ValueError, rf"{esc(str(empty))}' is empty: it holds no pairs"),
        ((one_side,), ValueError, rf"{esc(str(one_side))}, line 2: one column; expected english<TAB>chinese"),
        ((empty_side,), ValueError, rf"{esc(str(empty_side))}, line 3: the Chinese side is empty"),
        ((not_json,), ValueError, rf"{esc(str(not_json))}, line 2: not valid JSON"),
        ((no_field,), ValueError, rf"{esc(str(no_field))}, line 2: no 'zh' field"),
        (((english, chinese),), ValueError, r"a\.en' has 3 lines, '.*a\.zh' has 2"),
        (((english, gap),), ValueError, rf"{esc(str(gap))}, line 2: empty, but line 2 of .*a\.en is not"),
        ((not_utf8,), ValueError, rf"{esc(str(not_utf8))}, line 2: not valid UTF-8"),
        ((surrogate,), ValueError, rf"{esc(str(surrogate))}, line 2: the English side holds a lone surrogate"),
        ((tmp_path,), ValueError, r"is a folder"),
        ((good,), ValueError, r"split='dev' is not one of", {"split": "dev"}),
        ((good,), ValueError, r"include_glosses=True needs the corpus 'hsk'", {"include_glosses": True}),
        ((good,), ValueError, r"fields=\('english', 'chinese'\) names the fields of a \.jsonl file",
         {"fields": ("english", "chinese")}),
        ((good,), ValueError, r"the 'test' split of the parallel corpus .* is empty", {"split": "test"}),
    ]


def test_each_bad_input_is_named(tmp_path):
    for args, error, pattern, *kwargs in _bad_inputs(tmp_path):
        with pytest.raises(error, match=pattern):
            load_parallel_corpus(*args, **(kwargs[0] if kwargs else {}))
    with pytest.raises(ValueError, match=r"^language='fr' is invalid: expected one of 'en', 'zh'\.$"):
        parallel_texts([], "fr")


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "hsk_sentences_audio", None)  # makes `import hsk_sentences_audio` fail
    with pytest.raises(ModuleNotFoundError, match=r"`pip install hsk-sentences-audio`"):
        load_parallel_corpus("hsk")
