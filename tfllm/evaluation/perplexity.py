"""Exact evaluation of a language model over a whole split: every token predicted once, in nats and bits per byte.

Training reports a loss estimated from random windows; this module gives the number to compare models by. Every
text is read from its start, each of its tokens is predicted exactly once, and the sums run over the whole split:

- Each text is read after a bos, and its eos is predicted too, so a text of n tokens counts n + 1 predictions. The
  eos belongs to the text because `lm_dataset` trains on documents that each end with an eos: a model is trained to
  say where a text stops, and is charged for it here. (`CausalLM.score` leaves the eos out: it scores a string as
  a prefix, not as a whole document.)
- Every token is read and predicted by `tfllm.evaluation.scoring` (sliding windows for the Transformer, the state
  carried from chunk to chunk for RNNs), which `CausalLM.score` uses too, so the two agree token for token.
- Totals are summed in float64.

`bits_per_byte` divides by the UTF-8 bytes of the raw texts, not by tokens, so it compares models whatever their
tokenizers: a tokenizer with longer tokens has a higher loss per token but the same bits per byte for the same
predictions.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tfllm.data import load_texts
from tfllm.evaluation.scoring import CHUNK_LENGTH, text_token_ids, token_log_likelihoods
from tfllm.utf8 import utf8_bytes


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    """A language model's fit to a set of texts.

    Attributes:
        loss: mean negative log-likelihood, in nats per predicted token (eos included).
        perplexity: exp(loss).
        bits_per_byte: total nats / (bytes * ln 2): the compressed size in bits of each UTF-8 byte of the texts;
            comparable across tokenizers. NaN when the texts hold no bytes.
        tokens: predicted tokens (each text's tokens plus its eos).
        bytes: UTF-8 bytes of the texts.
        documents: texts evaluated.

    Example:

    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> result = evaluate_texts(LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer()), ["Amen.", "In the beginning"])
    >>> result.tokens, result.bytes, result.documents  # a token per byte, and an eos per text
    (23, 21, 2)
    >>> math.isclose(result.perplexity, math.exp(result.loss))
    True
    >>> math.isclose(result.bits_per_byte, result.loss * result.tokens / (result.bytes * math.log(2)))
    True
    """

    loss: float
    perplexity: float
    bits_per_byte: float
    tokens: int
    bytes: int
    documents: int

    def __str__(self):
        return (
            f"loss {self.loss:.4f} nats/token, perplexity {self.perplexity:.3f}, {self.bits_per_byte:.4f} bits/byte "
            f"({self.tokens:,} tokens, {self.bytes:,} bytes, {self.documents:,} documents)"
        )


def evaluate_texts(model, texts, batch_size=32, stride=None, chunk_length=CHUNK_LENGTH):
    """Evaluates a `CausalLM` exactly on `texts`: every token of every text is predicted once.

    Args:
        model: a `tfllm.models.CausalLM` with a tokenizer attached.
        texts: a list of `str`/`bytes`, one string, or a `tf.data.Dataset` of scalar strings (as `load_corpus`
            gives).
        batch_size: windows (Transformer) or texts (recurrent models) read at once.
        stride: for models with a `max_sequence_length`: how far the window moves, 1 <= stride <=
            max_sequence_length; None means half the context. Smaller strides give more left context and cost more.
        chunk_length: for models without a `max_sequence_length`: tokens read per decode call.

    Returns:
        An `EvaluationResult`.

    Raises:
        ValueError: a model without a tokenizer, no texts, or a bad stride, batch size or chunk length.

    For scale: on `load_texts("kjv", "validation")` a byte-level Transformer (2 layers, 128 wide, context 128)
    trained for 400 steps scores "loss 2.0885 nats/token, perplexity 8.073, 3.0139 bits/byte (226,052 tokens,
    225,993 bytes, 59 documents)".

    Example:

    >>> import keras
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> keras.utils.set_random_seed(0)
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())  # untrained
    >>> print(evaluate_texts(model, ["Amen.", "In the beginning"]))  # doctest: +ELLIPSIS
    loss 5.5... nats/token, perplexity ..., ... bits/byte (23 tokens, 21 bytes, 2 documents)
    """
    texts = _as_bytes_list(texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one text to evaluate.")
    if model.tokenizer is None:
        raise ValueError("evaluation needs a tokenizer: attach one to the model with tokenizer=...")
    token_lists = text_token_ids(model, texts)
    log_likelihoods = token_log_likelihoods(model, token_lists, batch_size, stride, chunk_length)
    total = -sum(float(np.sum(values)) for values in log_likelihoods)  # nats
    tokens = sum(len(ids) - 1 for ids in token_lists)
    size = sum(map(len, texts))
    loss = total / tokens
    return EvaluationResult(
        loss=loss,
        perplexity=math.exp(loss) if loss < 700 else math.inf,  # a diverged model, not an OverflowError
        bits_per_byte=total / (size * math.log(2)) if size else float("nan"),
        tokens=tokens,
        bytes=size,
        documents=len(texts),
    )


def evaluate_corpus(model, name_or_path="kjv", split="validation", **kwargs):
    """`evaluate_texts` on a corpus split read with `tfllm.data.load_texts(name_or_path, split)`.

    Keyword arguments go to `evaluate_texts`. By default: the KJV validation split (59 chapters, 225,993 bytes).

    Example:

    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> result = evaluate_corpus(LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer()), "kjv", "validation")
    >>> result.documents, result.bytes, result.tokens
    (59, 225993, 226052)
    """
    return evaluate_texts(model, load_texts(name_or_path, split), **kwargs)


def _as_bytes_list(texts):
    if isinstance(texts, tf.data.Dataset):
        texts = texts.as_numpy_iterator()  # scalar strings come out as bytes
    return utf8_bytes(texts)
