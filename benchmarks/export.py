"""Generation through the exported SavedModel against `model.generate` in Python, same settings, same process.

For each architecture at the default size of `tfllm train` (untrained weights, the default SentencePiece
vocabulary learned from the KJV), 8 KJV prompts are continued by 64 new tokens with greedy decoding and with top-p
sampling, by `model.generate` and by the `generate` signature of `tfllm.export.export_saved_model` loaded back with
`tf.saved_model.load`. Both make the same tokens (checked), so the ratio of their times is the ratio of their
speeds; timings alternate between the two, and the median of `--rounds` is kept. Goal: the SavedModel at least 0.9x
`model.generate`.

    python benchmarks/export.py                  # ~3 minutes on 2 CPU cores
    python benchmarks/export.py --architectures transformer --rounds 3
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
    args = parser.parse_args()

    texts = load_texts("kjv", split="train")
    tokenizer = build_tokenizer(RunConfig.default().data, texts)
    prompts = [text.decode("utf-8")[:60].rsplit(" ", 1)[0] for text in texts[:: len(texts) // BATCH][:BATCH]]
    print(f"{BATCH} prompts of about 60 characters, {NEW} new tokens, vocabulary {tokenizer.vocab_size}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'architecture':<12} {'sampler':<7} {'model.generate':>15} {'SavedModel':>11} {'ratio':>6}  (tokens/s)")
    for architecture in args.architectures:
        keras.utils.set_random_seed(0)
        model = build_model(RunConfig.default(architecture).model, tokenizer)
        model(np.zeros((1, 2), np.int32))
        path = export_saved_model(model, os.path.join(tempfile.mkdtemp(), "exported"))
        served = tf.saved_model.load(path).signatures["generate"]
        for name, (temperature, top_k, top_p) in SETTINGS.items():
            sampler = {"sampler": "random", "temperature": temperature, "top_p": top_p if top_p < 1 else None}
            if temperature == 0:
                sampler = {}

            def in_python():
                return model.generate(prompts, max_new_tokens=NEW, seed=0, **sampler)

            def in_saved_model():
                out = served(prompts=tf.constant(prompts), max_new_tokens=tf.constant(NEW),
                             temperature=tf.constant(temperature), top_k=tf.constant(top_k),
                             top_p=tf.constant(top_p), seed=tf.constant(0))
                return [text.decode("utf-8") for text in out["text"].numpy()]

            assert in_python() == in_saved_model(), "the SavedModel and model.generate disagree"
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


if __name__ == "__main__":
    main()
