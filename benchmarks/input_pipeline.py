"""Tokenize-and-window throughput of `lm_dataset` on the default corpus, for each tokenizer.

The input pipeline must never be what a training step waits for. This script reads one shuffled epoch of the KJV
training split through `lm_dataset` for every tokenizer and compares its tokens/second with the training
throughput of a reference Transformer language model measured in the same process (goal: at least 20x).

    python benchmarks/input_pipeline.py
    python benchmarks/input_pipeline.py --reference-tokens-per-second 12000   # skip measuring the model

The reference model is a 4-block Transformer (hidden 256, 4 heads, MLP 1024, context 256, batch 16) made of tfllm
layers: the size of tfllm's default model.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm import layers, tokenizers  # noqa: E402
from tfllm.data import lm_dataset, load_texts  # noqa: E402
from summary import record  # noqa: E402

SEQUENCE, BATCH = 256, 16


def trained_tokenizers(texts):
    """Each tokenizer and the seconds its vocabulary took to learn."""
    made = {"byte": (tokenizers.ByteTokenizer(), 0.0)}
    trainers = {
        "char": lambda: tokenizers.CharTokenizer.train(texts, verbose=False),
        "wordpiece": lambda: tokenizers.WordPieceTokenizer.train(texts, vocab_size=4000, verbose=False),
        "sentencepiece": lambda: tokenizers.SentencePieceTokenizer.train(texts, vocab_size=4000, verbose=False),
    }
    for name, train in trainers.items():
        start = time.perf_counter()
        made[name] = (train(), time.perf_counter() - start)
    return made


def pipeline_tokens_per_second(texts, tokenizer):
    dataset = lm_dataset(texts, tokenizer, SEQUENCE, BATCH, seed=0)
    start = time.perf_counter()
    tokens = sum(int(tf.size(x)) for x, _ in dataset)
    return tokens / (time.perf_counter() - start), tokens


def reference_model_tokens_per_second(steps=10):
    keras.utils.set_random_seed(0)
    token_ids = keras.Input((SEQUENCE,), batch_size=BATCH, dtype="int32")
    embedding = layers.TokenEmbedding(259, 256)
    hidden = embedding(token_ids)
    hidden = hidden + layers.PositionEmbedding(SEQUENCE)(hidden)
    for _ in range(4):
        hidden = layers.TransformerBlock(num_heads=4, intermediate_dim=1024)(hidden)
    hidden = keras.layers.LayerNormalization()(hidden)
    model = keras.Model(token_ids, embedding(hidden, reverse=True))
    model.compile(keras.optimizers.AdamW(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    batch = np.random.default_rng(0).integers(0, 259, size=(BATCH, SEQUENCE + 1), dtype=np.int32)
    batches = tf.data.Dataset.from_tensors((batch[:, :-1], batch[:, 1:])).repeat()
    model.fit(batches, steps_per_epoch=2, verbose=0)
    start = time.perf_counter()
    model.fit(batches, steps_per_epoch=steps, verbose=0)
    return steps * BATCH * SEQUENCE / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference-tokens-per-second", type=float, help="training throughput to compare with")
    args = parser.parse_args()

    texts = load_texts("kjv", split="train")
    print(f"KJV train split: {len(texts)} documents, {sum(map(len, texts)):,} bytes")
    reference = args.reference_tokens_per_second or reference_model_tokens_per_second()
    print(f"reference model training: {reference:,.0f} tokens/s")
    print(f"{'tokenizer':<14} {'vocab':>6} {'train s':>8} {'tokens':>10} {'tokens/s':>12} {'x model':>8}")
    for name, (tokenizer, train_seconds) in trained_tokenizers(texts).items():
        rate, tokens = pipeline_tokens_per_second(texts, tokenizer)
        print(
            f"{name:<14} {tokenizer.vocab_size:>6} {train_seconds:>8.1f} {tokens:>10,} {rate:>12,.0f} "
            f"{rate / reference:>7.1f}x",
            flush=True,
        )
        record("input_pipeline", f"{name} lm_dataset tokens/s / model training tokens/s", rate / reference, goal=20)


if __name__ == "__main__":
    main()
