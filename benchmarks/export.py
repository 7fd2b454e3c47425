"""Generation through the exported SavedModel against `model.generate` in Python, same settings, same process.

For each architecture at the default size of `tfllm train` (untrained weights, the default SentencePiece
vocabulary learned from the KJV), 8 KJV prompts are continued by 64 new tokens with greedy decoding and with top-p
sampling, by `model.generate` and by the `generate` signature of `tfllm.export.export_saved_model` loaded back with
`tf.saved_model.load`. Both make the same number of tokens (greedily the same tokens, checked; a sampling export
draws each row with its own seed, as `model.generate` draws for that prompt alone), so the ratio of their times is
the ratio of their speeds; timings alternate between the two, and the median of `--rounds` is kept. Goal: the
SavedModel at least 0.9x `model.generate`.

`--xla` compares two exports instead, the decode loop under XLA and in the plain graph (`export_saved_model`'s
`jit_compile`, whose default this measurement chose).

    python benchmarks/export.py                  # ~3 minutes on 2 CPU cores
    python benchmarks/export.py --architectures transformer --rounds 3
    python benchmarks/export.py --xla            # SavedModel under XLA / SavedModel in the plain graph
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.data import load_texts  # noqa: E402
from tfllm.export import export_saved_model  # noqa: E402
from tfllm.training import RunConfig  # noqa: E402
from tfllm.training.builders import build_model, build_tokenizer  # noqa: E402
from summary import record  # noqa: E402

BATCH, NEW = 8, 64
ARCHITECTURES = ("transformer", "lstm", "rnn")
SETTINGS = {"greedy": (0.0, 0, 1.0), "top_p": (1.0, 0, 0.9)}  # temperature, top_k, top_p


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median kept)")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--xla", action="store_true", help="time the export under XLA against the plain graph")
    args = parser.parse_args()

    texts = load_texts("kjv", split="train")
    tokenizer = build_tokenizer(RunConfig.default().data, texts)
    prompts = [text.decode("utf-8")[:60].rsplit(" ", 1)[0] for text in texts[:: len(texts) // BATCH][:BATCH]]
    print(f"{BATCH} prompts of about 60 characters, {NEW} new tokens, vocabulary {tokenizer.vocab_size}; "
          f"{os.cpu_count()} CPUs")
    if args.xla:
        compare_xla(args, tokenizer, prompts)
        return
    print(f"{'architecture':<12} {'sampler':<7} {'model.generate':>15} {'SavedModel':>11} {'ratio':>6}  (tokens/s)")
    for architecture in args.architectures:
        model = _model(architecture, tokenizer)
        served = _export(model, jit_compile=True)
        for name, (temperature, top_k, top_p) in SETTINGS.items():
            sampler = {"sampler": "random", "temperature": temperature, "top_p": top_p if top_p < 1 else None}
            if temperature == 0:
                sampler = {}

            def in_python():
                return model.generate(prompts, max_new_tokens=NEW, seed=0, jit_compile=True, **sampler)

            def in_saved_model():
                return _call(served, prompts, temperature, top_k, top_p)

            in_python_texts, saved_model_texts = in_python(), in_saved_model()  # each compiled before the timing
            if temperature == 0:
                assert in_python_texts == saved_model_texts, "the SavedModel and model.generate disagree"
            new_tokens = sum(len(ids) for ids in model.generate(
                [[tokenizer.bos_id] + ids for ids in tokenizer.tokenize(prompts).to_list()], max_new_tokens=NEW,
                seed=0, strip_prompt=True, **sampler))
            seconds = {"python": [], "saved_model": []}
            for _ in range(args.rounds):
                for key, run in (("python", in_python), ("saved_model", in_saved_model)):
                    start = time.perf_counter()
                    run()
                    seconds[key].append(time.perf_counter() - start)
            python_rate = new_tokens / statistics.median(seconds["python"])
            saved_rate = new_tokens / statistics.median(seconds["saved_model"])
            print(f"{architecture:<12} {name:<7} {python_rate:>15,.0f} {saved_rate:>11,.0f} "
                  f"{saved_rate / python_rate:>5.2f}x", flush=True)
            record("export", f"{architecture} {name}: SavedModel generate / model.generate", saved_rate / python_rate,
                   goal=0.9)
    print("goal: SavedModel >= 0.9x model.generate")


def compare_xla(args, tokenizer, prompts):
    print(f"{'architecture':<12} {'sampler':<7} {'XLA':>9} {'plain':>9} {'ratio':>6}  (SavedModel tokens/s)")
    for architecture in args.architectures:
        model = _model(architecture, tokenizer)
        exports = {"xla": _export(model, jit_compile=True), "plain": _export(model, jit_compile=False)}
        for name, (temperature, top_k, top_p) in SETTINGS.items():
            seconds = {key: [] for key in exports}
            tokens = {key: 0 for key in exports}
            for _ in range(args.rounds + 1):  # the first round compiles
                for key, served in exports.items():
                    start = time.perf_counter()
                    out = _call(served, prompts, temperature, top_k, top_p)
                    seconds[key].append(time.perf_counter() - start)
                    tokens[key] = int(tf.size(tokenizer.tokenize(tf.constant(out)).flat_values)
                                      - tf.size(tokenizer.tokenize(tf.constant(prompts)).flat_values))
            rates = {key: tokens[key] / statistics.median(seconds[key][1:]) for key in exports}
            print(f"{architecture:<12} {name:<7} {rates['xla']:>9,.0f} {rates['plain']:>9,.0f} "
                  f"{rates['xla'] / rates['plain']:>5.2f}x", flush=True)
            record("export", f"{architecture} {name}: SavedModel under XLA / plain graph",
                   rates["xla"] / rates["plain"])


def _model(architecture, tokenizer):
    keras.utils.set_random_seed(0)
    model = build_model(RunConfig.default(architecture).model, tokenizer)
    model(np.zeros((1, 2), np.int32))
    return model


def _export(model, jit_compile):
    path = export_saved_model(model, tempfile.mkdtemp(), jit_compile=jit_compile)
    return tf.saved_model.load(path).signatures["generate"]


def _call(served, prompts, temperature, top_k, top_p):
    """The texts of one `generate` request: every prompt with the same settings, one value per row."""
    rows = len(prompts)
    out = served(prompts=tf.constant(prompts), max_new_tokens=tf.fill([rows], NEW),
                 temperature=tf.fill([rows], temperature), top_k=tf.fill([rows], top_k),
                 top_p=tf.fill([rows], top_p), seed=tf.range(rows))
    return [text.decode("utf-8") for text in out["text"].numpy()]


if __name__ == "__main__":
    main()
