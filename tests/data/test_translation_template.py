"""The translation template: one model for every direction, the loss on the target only, the tags in graph code."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.data import TranslationTemplate, sft_dataset, template_from_config
from tfllm.tokenizers import ByteTokenizer

TEMPLATE = TranslationTemplate(("en", "zh"))
TOKENIZER = ByteTokenizer(special_tokens=TEMPLATE.special_tokens)
PAIRS = [{"en": "How is the weather?", "zh": "天气如何？", "ref": "a"}, {"en": "Hello.", "zh": "你好。", "ref": "b"}]


def test_each_pair_gives_one_record_per_direction():
    records = TEMPLATE.directed(PAIRS)
    assert [(r["source_language"], r["target_language"], r["target"]) for r in records] == [
        ("en", "zh", "天气如何？"), ("zh", "en", "How is the weather?"), ("en", "zh", "你好。"), ("zh", "en", "Hello.")]
    assert TEMPLATE.directed(PAIRS, directions=[("zh", "en")])[1]["source"] == "你好。"


def test_the_loss_falls_on_the_target_and_eos_only():
    record = TEMPLATE.directed(PAIRS[1:], directions=[("zh", "en")])
    x, y, weight = [np.asarray(t)[0] for t in next(iter(sft_dataset(record, TOKENIZER, 24, 1, shuffle=False,
                                                                      template=TEMPLATE)))]
    zh_tag, en_tag = TOKENIZER.special_tokens["<zh>"], TOKENIZER.special_tokens["<en>"]
    source = list("你好。".encode())
    source_ids = [byte + 3 for byte in source]  # the byte tokenizer's ids are bytes + 3
    prompt = [TOKENIZER.bos_id, zh_tag, *source_ids, en_tag]
    target = [byte + 3 for byte in b"Hello."] + [TOKENIZER.eos_id]
    assert x[: len(prompt)].tolist() == prompt
    learned = y[weight > 0].tolist()
    assert learned == target  # the English and eos, nothing of the tags or the Chinese
    assert weight.sum() == len(target)


def test_graph_prompts_equal_python_prompts_and_infer_the_source():
    texts, targets = ["Hello.", "你好。"], ["zh", "en"]
    graph = TEMPLATE.format_prompt_tensor(tf.constant(texts), tf.constant(targets)).numpy()
    python = [TEMPLATE.format_prompt({"source": text, "target_language": target}) for text, target in zip(texts, targets)]
    assert [prompt.decode() for prompt in graph] == python == ["<en>Hello.<zh>", "<zh>你好。<en>"]


def test_an_unknown_target_language_fails_in_graph_code_too():
    with pytest.raises(tf.errors.InvalidArgumentError, match="target language must be one of"):
        TEMPLATE.format_prompt_tensor(tf.constant(["Bonjour"]), tf.constant(["fr"]))


def test_given_source_languages_are_checked_in_graph_code_as_in_python():
    # They were not: "<fr>hi<zh>" and "<zh>hi<zh>" went to the model (the SavedModel's translate takes sources).
    three = TranslationTemplate(["en", "zh", "fr"])
    texts, targets = tf.constant(["hi", "hi"]), tf.constant(["zh", "zh"])
    assert three.format_prompt_tensor(texts, targets, tf.constant(["en", "fr"])).numpy().tolist() == [
        b"<en>hi<zh>", b"<fr>hi<zh>"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="source language must be one of"):
        TEMPLATE.format_prompt_tensor(texts, targets, tf.constant(["fr", "en"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a source language equals its target: nothing to "
                                                             "translate"):
        TEMPLATE.format_prompt_tensor(texts, targets, tf.constant(["en", "zh"]))


def test_the_config_round_trips_and_three_languages_need_a_source():
    assert template_from_config(TEMPLATE.get_config()) == TEMPLATE
    three = TranslationTemplate(["en", "zh", "fr"])
    assert three.languages == ("en", "zh", "fr")
    assert three.format_prompt({"source": "Hi", "source_language": "en", "target_language": "fr"}) == "<en>Hi<fr>"
    with pytest.raises(ValueError, match="name the source language too"):
        three.format_prompt({"source": "Hi", "target_language": "fr"})


@pytest.mark.parametrize("make, message", [
    (lambda: TranslationTemplate(("en",)), "two or more distinct codes"),
    (lambda: TranslationTemplate("en"), "two or more distinct codes"),
    (lambda: TranslationTemplate(("en", "en")), "two or more distinct codes"),
    (lambda: TEMPLATE.format_prompt("Hello"), "needs a dict with 'source' text"),
    (lambda: TEMPLATE.format_prompt({"source": "Hi", "target_language": "fr"}), "target language 'fr'"),
    (lambda: TEMPLATE.format_prompt({"source": "Hi", "source_language": "zh", "target_language": "zh"}),
     "both 'zh'"),
    (lambda: TEMPLATE.directed([{"en": "Hi"}]), "has no 'en' or no 'zh'"),
    (lambda: TEMPLATE.segments({"en": "Hi", "zh": "你好"}), "TranslationTemplate.directed"),
])
def test_errors_name_the_problem(make, message):
    with pytest.raises(ValueError, match=message):
        make()
