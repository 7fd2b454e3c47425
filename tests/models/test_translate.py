"""`CausalLM.translate`: the template's prompt, the direction's tags, long sources cut at their end, clear errors."""

import keras
import numpy as np
import pytest

from tfllm.data import PromptTemplate, TranslationTemplate
from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = TranslationTemplate(("en", "zh"))


def _model(context=None):
    tokenizer = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
    if context is None:
        return LSTMLM(tokenizer.vocab_size, hidden_dim=8, tokenizer=tokenizer, prompt_template=TEMPLATE)
    return TransformerLM(tokenizer.vocab_size, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                         max_sequence_length=context, tokenizer=tokenizer, prompt_template=TEMPLATE)


def test_translate_generates_after_the_tagged_prompt_in_either_direction():
    model = _model()
    for text, target, prompt in [("How is the weather?", "zh", "<en>How is the weather?<zh>"),
                                 ("天气如何？", "en", "<zh>天气如何？<en>")]:
        expected = model.generate(prompt, max_new_tokens=6, strip_prompt=True, apply_template=False).strip()
        assert model.translate(text, target=target, max_new_tokens=6) == expected
    assert model.translate(["a", "b"], target="zh", max_new_tokens=3) == [
        model.translate("a", target="zh", max_new_tokens=3), model.translate("b", target="zh", max_new_tokens=3)]


def _generated_after_the_tags(model, texts, target, source, **settings):
    """What `translate` must give: each text between its language tags, continued by `generate`, stripped."""
    return [model.generate(f"<{source}>{text}<{target}>", strip_prompt=True, apply_template=False, **settings).strip()
            for text in texts]


def test_beam_search_and_sampling_pass_through():
    keras.utils.set_random_seed(0)  # an untrained model whose beams and draws differ from its greedy text
    model = _model()
    texts = ["Hello", "Good night"]
    greedy = model.translate(texts, target="zh", max_new_tokens=6)
    beams = model.translate(texts, target="zh", max_new_tokens=6, num_beams=3)
    assert beams == _generated_after_the_tags(model, texts, "zh", "en", max_new_tokens=6, num_beams=3)
    assert beams != greedy
    drawn = {seed: model.translate("Hello", target="zh", max_new_tokens=6, sampler="top_p", top_p=0.9, seed=seed)
             for seed in (3, 4)}
    for seed, text in drawn.items():
        assert [text] == _generated_after_the_tags(model, ["Hello"], "zh", "en", max_new_tokens=6, sampler="top_p",
                                                   top_p=0.9, seed=seed)
    assert len({drawn[3], drawn[4], greedy[0]}) == 3  # the seed matters, and a draw is not the greedy text


def test_a_source_longer_than_the_context_loses_its_end_not_its_tags():
    model = _model(context=32)
    long_text = "x" * 100
    with pytest.warns(UserWarning, match="cut to their first tokens"):
        cut = model.translate(long_text, target="zh", max_new_tokens=8)
    room = 32 - 8 - 3
    expected = model.generate("<en>" + "x" * room + "<zh>", max_new_tokens=8, strip_prompt=True,
                              apply_template=False).strip()
    assert cut == expected


@pytest.mark.parametrize("template, message", [
    (None, "needs a model trained to translate"),
    (PromptTemplate("Q: {question}\nA: ", "{answer}"), "needs a model trained to translate"),
])
def test_a_model_that_does_not_translate_says_so(template, message):
    model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer(), prompt_template=template)
    with pytest.raises(ValueError, match=message):
        model.translate("Hello", target="zh")


def test_an_unknown_language_and_empty_input_are_named():
    model = _model()
    with pytest.raises(ValueError, match="target language 'fr'"):
        model.translate("Hello", target="fr")
    with pytest.raises(ValueError, match="source language 'de'"):
        model.translate("Hello", target="zh", source="de")
    with pytest.raises(ValueError, match="texts is empty"):
        model.translate([], target="zh")
    np.testing.assert_equal(TEMPLATE.languages, ("en", "zh"))


def test_texts_as_utf8_bytes_translate_as_their_text_and_what_is_not_text_is_named():
    # Bytes were formatted into the prompt as they were: "a translation prompt needs a dict with 'source' text ...
    # use model.translate", said to a caller of model.translate; None was "'NoneType' object is not iterable".
    model = _model()
    text = model.translate("天气如何？", target="en", max_new_tokens=4)
    assert model.translate("天气如何？".encode(), target="en", max_new_tokens=4) == text
    assert model.translate([b"Hi", "天气如何？".encode()], target="en", max_new_tokens=4)[1] == text
    with pytest.raises(ValueError, match=r"^texts is None: expected a list of texts"):
        model.translate(None, target="zh")
    with pytest.raises(ValueError, match=r"texts\[1\] is not UTF-8 text: byte 0xff"):
        model.translate([b"Hi", b"\xff"], target="zh")


def test_a_max_new_tokens_that_leaves_no_room_for_the_text_is_refused():
    # Asking for more than fits gave fewer without a word: 45 new tokens of a 48-token context became 24.
    model = _model(context=48)
    with pytest.raises(ValueError, match=r"max_new_tokens=45 leaves no room for a text in the model's context of 48 "
                                         r"tokens .*: expected at most 44, or None to fit each text"):
        model.translate("Hello", target="zh", max_new_tokens=45)
    with pytest.warns(UserWarning, match="cut to their first tokens"):  # the largest that fits keeps a token
        assert isinstance(model.translate("Hello", target="zh", max_new_tokens=44), str)
