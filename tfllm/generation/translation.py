"""Translation with a causal language model: the source in the model's translation template, the target generated.

A model trained on `<en>source<zh>` -> target (`tfllm.data.TranslationTemplate`) translates by generating after
the prompt. A source longer than the model's context loses its end, not its language tags: the source's tokens are
cut to fit the context with room for the translation, with a warning.
"""

import warnings

import numpy as np
import tensorflow as tf

from tfllm.checks import require_positive_int, require_texts
from tfllm.generation.text_generation import python_prompts
from tfllm.utf8 import utf8_bytes

# With no `max_new_tokens`, a translation gets this many tokens per source token, plus `_EXTRA_TOKENS`: enough for
# English of a Chinese sentence (more, shorter pieces) and the reverse.
_TOKENS_PER_SOURCE_TOKEN = 3
_EXTRA_TOKENS = 8
_TAG_TOKENS = 3  # bos, the source's language tag, the target's


def translation_texts(texts):
    """`(single, texts)`: the texts to translate as a list of `str` (from a text, UTF-8 bytes, a list of them, or a
    string tensor), and whether one text was given; anything else is a `ValueError` naming it.

    >>> translation_texts(b"\\xe5\\xa4\\xa9\\xe6\\xb0\\x94"), translation_texts(["Hi", b"Go"])
    ((True, ['天气']), (False, ['Hi', 'Go']))
    """
    texts = python_prompts(texts, name="texts")
    single = isinstance(texts, str)
    texts = require_texts("texts", [texts] if single else texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one text to translate")
    return single, texts


def translate(model, template, texts, target, source=None, max_new_tokens=None, **generate_arguments):
    """`CausalLM.translate` for a model with a translation template (the arguments are documented there)."""
    source = template.source_language(target, source)
    single, texts = translation_texts(texts)
    token_lists = model.tokenizer.tokenize(tf.constant(utf8_bytes(texts), tf.string)).to_list()
    longest, limit = max(len(ids) for ids in token_lists), model.max_sequence_length
    if max_new_tokens is None:  # the rule of the SavedModel's translate signature, for the longest text
        max_new_tokens = int(translation_budget(np.array([longest]), limit, longest + _TAG_TOKENS)[0][0])
    elif limit is not None and require_positive_int("max_new_tokens", max_new_tokens) + _TAG_TOKENS >= limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a text in the model's context of {limit} "
                         f"tokens (a translation's prompt holds the bos and {_TAG_TOKENS - 1} language tags): "
                         f"expected at most {limit - _TAG_TOKENS - 1}, or None to fit each text.")
    if limit is not None:
        room = limit - max_new_tokens - _TAG_TOKENS
        if longest > room:
            warnings.warn(f"texts longer than {room} tokens (the model's context of {limit} less {max_new_tokens} "
                          "tokens for the translation) are cut to their first tokens", stacklevel=3)
            texts = [text if len(ids) <= room else _text_of(model, ids[:room])
                     for text, ids in zip(texts, token_lists)]
    prompts = [template.format_prompt({"source": text, "source_language": source, "target_language": target})
               for text in texts]
    outputs = model.generate(prompts, max_new_tokens=max_new_tokens, strip_prompt=True, apply_template=False,
                             **generate_arguments)
    outputs = [output.strip() for output in outputs]
    return outputs[0] if single else outputs


def _text_of(model, ids):
    # A cut inside a character drops its bytes (a U+FFFD in their place would be longer, in tokens, than the cut).
    return model.tokenizer.detokenize(tf.ragged.constant([ids], tf.int32)).numpy()[0].decode("utf-8", "ignore")


def translation_budget(source_lengths, context, max_prompt_tokens, xp=np):
    """The length rule of a translation, for each text alone: `(max_new_tokens, room)`, the new tokens it may write
    and the source tokens its prompt keeps, from its number of source tokens, the model's `context` (None for RNNs)
    and the most prompt tokens allowed. `xp` is NumPy, or `keras.ops` in graph code (the SavedModel's `translate`).

    >>> translation_budget(np.array([2, 5, 40]), context=32, max_prompt_tokens=31)  # 3 per token + 8; long: half
    (array([14, 23, 16]), array([15,  6, 13]))
    >>> translation_budget(np.array([23, 60]), context=96, max_prompt_tokens=95)  # the source first, up to half
    (array([70, 48]), array([23, 45]))
    >>> translation_budget(np.array([2, 40]), context=None, max_prompt_tokens=1024)
    (array([ 14, 128]), array([1021, 1021]))
    """
    max_new_tokens = _TOKENS_PER_SOURCE_TOKEN * source_lengths + _EXTRA_TOKENS
    room = xp.full_like(source_lengths, max_prompt_tokens)
    if context is not None:
        # When both do not fit, the source keeps its tokens and the translation gets the rest of the context, or
        # half of it when the source is longer than that.
        fits = source_lengths + max_new_tokens + _TAG_TOKENS <= context
        max_new_tokens = xp.where(fits, max_new_tokens,
                                  xp.maximum(context - _TAG_TOKENS - source_lengths, context // 2))
        room = xp.minimum(room, context - max_new_tokens)
    return max_new_tokens, xp.maximum(room - _TAG_TOKENS, 0)
