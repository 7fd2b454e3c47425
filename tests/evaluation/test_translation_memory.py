"""The translation memory: candidates scored by the model both ways, and the best one chosen."""

import keras
import numpy as np
import pytest

from tfllm.data import TranslationTemplate
from tfllm.evaluation import (NearestNeighbourRetrieval, TranslationMemory, candidate_log_likelihoods,
                              memory_translations, translation_memory)
from tfllm.models import LSTMLM
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = TranslationTemplate(("en", "zh"))
PAIRS = [{"en": "one", "zh": "一"}, {"en": "two", "zh": "二"}, {"en": "ten", "zh": "十"}]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    return LSTMLM(tokenizer.vocab_size, hidden_dim=8, tokenizer=tokenizer, prompt_template=TEMPLATE)


def mean_log_probability(model, prompt, text):
    """The mean log p of `text`'s tokens and eos after `<bos> prompt`, from one call of the model on the sequence."""
    tokenizer = model.tokenizer
    prompt_ids = tokenizer.tokenize([prompt]).to_list()[0]
    ids = [tokenizer.bos_id, *prompt_ids, *tokenizer.tokenize([text]).to_list()[0], tokenizer.eos_id]
    logits = model(np.asarray([ids[:-1]], np.int32))[0].numpy().astype(np.float64)  # (T, V)
    log_probabilities = logits - np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1,
                                               keepdims=True)) - logits.max(-1, keepdims=True)
    predicted = log_probabilities[np.arange(len(ids) - 1), ids[1:]]
    return float(np.mean(predicted[len(prompt_ids):]))


def test_both_directions_match_the_models_own_probabilities(model):
    forward, backward = candidate_log_likelihoods(model, ["two", "ten"], [["二", "十"], ["十", ""]], target="zh")
    assert forward.shape == backward.shape == (2, 2)
    for row, (source, candidates) in enumerate(zip(["two", "ten"], [["二", "十"], ["十", ""]])):
        for column, candidate in enumerate(candidates):
            there = TEMPLATE.format_prompt({"source": source, "target_language": "zh"})
            back = TEMPLATE.format_prompt({"source": candidate, "source_language": "zh", "target_language": "en"})
            assert forward[row, column] == pytest.approx(mean_log_probability(model, there, candidate), abs=1e-5)
            assert backward[row, column] == pytest.approx(mean_log_probability(model, back, source), abs=1e-5)


@pytest.mark.parametrize("similarity_weight, forward_weight, expected", [
    (0.0, 0.0, "十"),  # the model reads "twe" back best from 十
    (0.0, 1.0, "二"),  # ... but writes 二 far more readily
    (10.0, 0.0, "二"),  # 二's source "two" is the more similar
])
def test_the_best_candidate_is_chosen_by_the_backward_likelihood_the_similarity_and_the_forward_one(
        monkeypatch, model, similarity_weight, forward_weight, expected):
    retrieval = NearestNeighbourRetrieval(PAIRS, "en", "zh")
    seen = []

    def scores(model, sources, candidates, target, source):
        seen.append((sources, candidates, target, source))
        forward, backward = {"二": -0.2, "十": -3.0}, {"二": -1.0, "十": -0.5}
        return (np.array([[forward[text] for text in row] for row in candidates]),
                np.array([[backward[text] for text in row] for row in candidates]))

    monkeypatch.setattr(translation_memory, "candidate_log_likelihoods", scores)
    chosen = memory_translations(model, retrieval, ["twe"], k=2, similarity_weight=similarity_weight,
                                 forward_weight=forward_weight)
    assert chosen == [expected]
    assert seen == [(["twe"], [["二", "十"]], "zh", "en")]  # "twe" shares t, w, tw with "two"; t, e with "ten"


def test_a_text_sharing_nothing_with_the_memory_gets_its_most_common_target(model):
    retrieval = NearestNeighbourRetrieval([*PAIRS, {"en": "one more", "zh": "一"}], "en", "zh")
    assert memory_translations(model, retrieval, ["zzz"], k=2) == ["一"]


def test_candidates_must_be_as_many_for_each_source(model):
    with pytest.raises(ValueError, match="same number of candidate translations for each source"):
        candidate_log_likelihoods(model, ["one", "two"], [["一"], ["二", "十"]], target="zh")


def test_a_model_that_does_not_translate_is_refused_as_translate_refuses_it():
    plain = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())  # no prompt template
    retrieval = NearestNeighbourRetrieval(PAIRS, "en", "zh")
    with pytest.raises(ValueError, match=r"^translate needs a model trained to translate \(a TranslationTemplate as "
                                         r"its prompt_template, as `tfllm train --task translate` makes\); this one "
                                         r"has None$"):
        plain.translate(["one"], target="zh")
    with pytest.raises(ValueError, match=r"^memory_translations needs a model trained to translate \(a "
                                         r"TranslationTemplate as its prompt_template.*this one has None$"):
        memory_translations(plain, retrieval, ["one"])
    with pytest.raises(ValueError, match=r"^candidate_log_likelihoods needs a model trained to translate.*this one "
                                         r"has None$"):
        candidate_log_likelihoods(plain, ["one"], [["一"]], target="zh")


def test_a_memory_keeps_one_index_per_direction_and_refuses_nothing_to_remember():
    memory = TranslationMemory(PAIRS, k=2)
    assert memory.retrieval("en", "zh") is memory.retrieval("en", "zh")
    assert memory.retrieval("zh", "en").targets == ("one", "two", "ten")
    with pytest.raises(ValueError, match="at least one pair"):
        TranslationMemory([])
    with pytest.raises(ValueError, match="k"):
        TranslationMemory(PAIRS, k=0)


def test_translate_with_a_memory_returns_what_memory_translations_chooses(model):
    memory = TranslationMemory(PAIRS, k=2)
    chosen = model.translate(["two", "ten"], target="zh", memory=memory)
    assert chosen == memory_translations(model, NearestNeighbourRetrieval(PAIRS, "en", "zh"), ["two", "ten"], k=2)
    assert model.translate("two", target="zh", memory=memory) == chosen[0]
    assert model.translate([b"two"], target="zh", memory=memory) == chosen[:1]
    assert model.translate(["二"], target="en", memory=memory)[0] in ("one", "two", "ten")
    with pytest.raises(ValueError, match="texts is empty"):
        model.translate([], target="zh", memory=memory)
    with pytest.raises(ValueError, match="generates nothing: drop max_new_tokens, sampler, num_beams"):
        model.translate(["two"], target="zh", memory=memory, num_beams=2)
