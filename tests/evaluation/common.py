"""Tiny models and texts shared by the evaluation tests, and the reference they are checked against: one full
forward pass."""

import keras
import numpy as np
import tensorflow as tf

from tfllm.models import LSTMLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer

VOCAB = 259  # the byte tokenizer's
TEXTS = ["In the beginning", "", "é!", "And God said, Let there be light: and there was light."]


def transformer(context=32, position_embedding="learned", seed=0):
    keras.utils.set_random_seed(seed)
    return TransformerLM(
        VOCAB, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=context,
        position_embedding=position_embedding, tokenizer=ByteTokenizer(),
    )


def lstm(seed=0):
    keras.utils.set_random_seed(seed)
    return LSTMLM(VOCAB, hidden_dim=16, tokenizer=ByteTokenizer())


def byte_ids(text):
    return [1, *(byte + 3 for byte in text.encode("utf-8")), 2]  # bos, bytes, eos


def direct_nats(model, ids):
    """-log p of ids[1:] from one forward pass over ids[:-1] (the reference; needs the text to fit the model)."""
    ids = np.asarray(ids, np.int32)
    log_probs = np.asarray(tf.nn.log_softmax(model(ids[None, :-1]))[0], np.float64)  # (T, V)
    return -float(np.sum(log_probs[np.arange(len(ids) - 1), ids[1:]]))


def total_nats(result):
    return result.loss * result.tokens
