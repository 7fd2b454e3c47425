"""translation_scores: sacrebleu's corpus chrF2 and BLEU, with the BLEU tokenizer of the target language."""

import pytest
from sacrebleu.metrics import BLEU, CHRF

from tfllm.evaluation import translation_scores

ENGLISH_HYPOTHESES = ["The cat sat on the mat.", "It is raining today."]
ENGLISH_REFERENCES = ["The cat sat on a mat.", "It rains today."]
CHINESE_HYPOTHESES = ["天气很好。", "我喜欢喝茶。"]
CHINESE_REFERENCES = ["天气很好。", "我爱喝茶。"]


def test_english_scores_are_sacrebleus_with_the_13a_tokenizer():
    scores = translation_scores(ENGLISH_HYPOTHESES, ENGLISH_REFERENCES, "en")
    assert scores.chrf == CHRF().corpus_score(ENGLISH_HYPOTHESES, [ENGLISH_REFERENCES]).score
    assert scores.bleu == BLEU(tokenize="13a").corpus_score(ENGLISH_HYPOTHESES, [ENGLISH_REFERENCES]).score
    # Golden numbers (sacrebleu 2.6.0): a change of metric or tokenizer shows here.
    assert scores.chrf == pytest.approx(60.762869555494305, abs=1e-9)
    assert scores.bleu == pytest.approx(35.355339059327385, abs=1e-9)
    assert scores.sentences == 2
    assert scores.target_language == "en"
    assert "tok:13a" in scores.bleu_signature.split("|")
    assert {"nc:6", "nw:0", "nrefs:1"} <= set(scores.chrf_signature.split("|"))


def test_chinese_bleu_counts_characters_where_13a_sees_one_word_per_clause():
    scores = translation_scores(CHINESE_HYPOTHESES, CHINESE_REFERENCES, "zh")
    assert scores.bleu == BLEU(tokenize="zh").corpus_score(CHINESE_HYPOTHESES, [CHINESE_REFERENCES]).score
    assert scores.chrf == CHRF().corpus_score(CHINESE_HYPOTHESES, [CHINESE_REFERENCES]).score
    assert scores.bleu == pytest.approx(59.421707464688346, abs=1e-9)
    assert scores.chrf == pytest.approx(63.91805607476636, abs=1e-9)
    assert "tok:zh" in scores.bleu_signature.split("|")
    # 13a leaves "我喜欢喝茶" as one token, so one differing character zeroes every n-gram match above unigrams.
    assert BLEU(tokenize="13a").corpus_score(CHINESE_HYPOTHESES, [CHINESE_REFERENCES]).score == 0.0


def test_a_perfect_translation_scores_100_and_the_report_names_what_was_measured():
    scores = translation_scores(CHINESE_REFERENCES, CHINESE_REFERENCES, "zh")
    assert (scores.chrf, scores.bleu) == (pytest.approx(100.0), pytest.approx(100.0))
    assert str(scores).startswith("chrF2 100.00, BLEU 100.00 on 2 sentences into zh (chrF2 nrefs:1|")


def test_errors_name_what_was_wrong():
    with pytest.raises(ValueError, match="hypotheses has 2 sentences but references has 1"):
        translation_scores(ENGLISH_HYPOTHESES, ENGLISH_REFERENCES[:1], "en")
    with pytest.raises(ValueError, match="hypotheses and references are empty"):
        translation_scores([], [], "en")
    with pytest.raises(ValueError, match=r"target_language='fr' is invalid: expected one of 'en', 'zh'"):
        translation_scores(ENGLISH_HYPOTHESES, ENGLISH_REFERENCES, "fr")
    with pytest.raises(ValueError, match=r"target_language=\['zh'\] is invalid"):  # was "unhashable type: 'list'"
        translation_scores(ENGLISH_HYPOTHESES, ENGLISH_REFERENCES, ["zh"])
    with pytest.raises(ValueError, match="references is one string"):
        translation_scores(["Hello."], "Hello.", "en")
    with pytest.raises(ValueError, match=r"hypotheses\[1\] is a NoneType: expected a str"):
        translation_scores(["Hello.", None], ["Hello.", "Hi."], "en")
