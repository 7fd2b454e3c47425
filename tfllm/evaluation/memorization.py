"""Does the model recite its training data? Verbatim continuation of sampled windows, on training vs held-out text.

A low validation loss can hide a model that has learnt its training text by heart (and a validation split that
leaked into training shows up as a held-out text the model recites). The check follows Carlini et al.,
"Extracting Training Data from Large Language Models" (2021): take a window of `prefix_tokens` tokens from a text,
let the model continue it greedily, and count the window as memorized when the next `continuation_tokens` tokens
come out verbatim. Compare the rate on training text with the rate on held-out text: a model that generalizes
has similar, low rates; a model that memorized has a high training rate and a low held-out rate.
"""

import dataclasses

import numpy as np

from tfllm.checks import require_positive_int
from tfllm.utf8 import utf8_bytes


@dataclasses.dataclass(frozen=True)
class MemorizationReport:
    """Memorization rates on training and held-out text (shares of windows continued verbatim, in [0, 1]).

    Example:

    >>> report = MemorizationReport(train_rate=0.25, heldout_rate=0.0, samples=8, prefix_tokens=16,
    ...                             continuation_tokens=16)
    >>> report.gap
    0.25
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    memorized 25.0% of training windows vs 0.0% of held-out windows (8 windows each, 16-token prefix,
    16-token continuation)
    """

    train_rate: float
    heldout_rate: float
    samples: int
    prefix_tokens: int
    continuation_tokens: int

    @property
    def gap(self):
        """train_rate - heldout_rate: how much more the model recites what it was trained on."""
        return self.train_rate - self.heldout_rate

    def __str__(self):
        return (
            f"memorized {self.train_rate:.1%} of training windows vs {self.heldout_rate:.1%} of held-out windows "
            f"({self.samples} windows each, {self.prefix_tokens}-token prefix, {self.continuation_tokens}-token "
            "continuation)"
        )


def memorization_rate(model, texts, prefix_tokens=32, continuation_tokens=32, samples=100, seed=0, batch_size=128):
    """The share of sampled windows of `texts` whose greedy continuation reproduces the text verbatim.

    Windows of `prefix_tokens + continuation_tokens` tokens are drawn uniformly (with the seed) among all the
    windows that fit inside one text. The prefix is given to `model.generate` as token ids, without a bos (a window
    may start anywhere in a text, as a training window does); greedy decoding with no stop token produces
    `continuation_tokens` tokens, and the window counts when they all equal the text's next tokens.

    Args:
        model: a `tfllm.models.CausalLM` with a tokenizer.
        texts: a list of `str`/`bytes` (or one string).
        prefix_tokens: tokens of the prompt.
        continuation_tokens: tokens that must come out verbatim.
        samples: windows drawn (with replacement, when the texts hold fewer).
        seed: seed of the draw; the same seed gives the same windows.
        batch_size: prompts generated at once.

    Returns:
        A float in [0, 1].

    Raises:
        ValueError: a window longer than the model's context, or no text long enough for one window.

    `memorization_rate(model, load_texts("kjv", "train"))` is close to 0 for a small model trained briefly on the
    KJV, and close to 1 for a model overfit on a few chapters.

    Example:

    >>> import keras
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())  # untrained: it recites nothing
    >>> texts = ["In the beginning God created the heaven and the earth."]
    >>> memorization_rate(model, texts, prefix_tokens=8, continuation_tokens=8, samples=4)
    0.0
    >>> memorization_rate(model, ["Amen."], prefix_tokens=8, continuation_tokens=8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: no text has prefix_tokens + continuation_tokens = 16 tokens (the longest has 5): use longer ...
    """
    prefix_tokens = require_positive_int("prefix_tokens", prefix_tokens)
    continuation_tokens = require_positive_int("continuation_tokens", continuation_tokens)
    samples = require_positive_int("samples", samples)
    batch_size = require_positive_int("batch_size", batch_size)
    window = prefix_tokens + continuation_tokens
    context = model.max_sequence_length
    if context is not None and window > context:
        raise ValueError(
            f"prefix_tokens + continuation_tokens = {window} is longer than the model's max_sequence_length="
            f"{context}: the model could not read the whole window."
        )
    if model.tokenizer is None:
        raise ValueError("memorization_rate needs a tokenizer: attach one to the model with tokenizer=...")
    windows = _sample_windows(model.tokenizer, texts, window, samples, seed)  # (samples, window)
    matches = 0
    for start in range(0, samples, batch_size):
        batch = windows[start : start + batch_size]
        continuations = model.generate(
            batch[:, :prefix_tokens],
            max_new_tokens=continuation_tokens,
            sampler="greedy",
            stop_token_ids=[],
            strip_prompt=True,
        )
        matches += sum(list(got) == want.tolist() for got, want in zip(continuations, batch[:, prefix_tokens:]))
    return matches / samples


def memorization_report(model, train_texts, heldout_texts, prefix_tokens=32, continuation_tokens=32, samples=100,
                        seed=0):
    """`memorization_rate` on training texts and on held-out texts, side by side, as a `MemorizationReport`.

    After pretraining, `print(memorization_report(model, load_texts("kjv", "train"), load_texts("kjv",
    "validation")))` prints e.g. "memorized 2.0% of training windows vs 0.0% of held-out windows (...)".

    Example:

    >>> import keras
    >>> from tfllm.data import load_texts
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())  # untrained
    >>> report = memorization_report(model, load_texts("kjv", "train")[:3], load_texts("kjv", "validation")[:3],
    ...                              prefix_tokens=8, continuation_tokens=8, samples=8)
    >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
    memorized 0.0% of training windows vs 0.0% of held-out windows (8 windows each, 8-token prefix,
    8-token continuation)
    """
    rates = [
        memorization_rate(model, texts, prefix_tokens, continuation_tokens, samples, seed)
        for texts in (train_texts, heldout_texts)
    ]
    return MemorizationReport(rates[0], rates[1], samples, prefix_tokens, continuation_tokens)


def _sample_windows(tokenizer, texts, window, samples, seed):
    texts = utf8_bytes(texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one text.")
    token_lists = [np.asarray(ids, np.int32) for ids in tokenizer.tokenize(texts).to_list()]
    starts = np.asarray([max(len(ids) - window + 1, 0) for ids in token_lists])  # windows that fit in each text
    if starts.sum() == 0:
        longest = max(map(len, token_lists))
        raise ValueError(
            f"no text has prefix_tokens + continuation_tokens = {window} tokens (the longest has {longest}): use "
            "longer texts or shorter windows."
        )
    # A uniform draw over all windows of all texts: pick a global window number, then find its text.
    picks = np.random.default_rng(seed).integers(0, starts.sum(), size=samples)
    bounds = np.cumsum(starts)
    text_of = np.searchsorted(bounds, picks, side="right")
    offsets = picks - (bounds[text_of] - starts[text_of])
    return np.stack([token_lists[text][offset : offset + window] for text, offset in zip(text_of, offsets)])
