"""Transformer, LSTM and simple RNN language models trained on the same budget: which learns the KJV best?

The three architectures are the models of `tfllm train --model transformer|lstm|rnn` at their default sizes, which
are chosen at about the same parameter count (2-layer LSTM and SimpleRNN as wide as the Transformer's parameter count
allows; a test holds them within 5% of it). They share one tokenizer, and each trains for the same wall-clock time
(or, with `--steps`, the same number of steps) on the KJV train split with `CausalLM.compile()`'s optimizer (AdamW, warmup then cosine decay to the last step).
Every few steps each is evaluated on the first batches of the validation split (windows of the training length); at
the end on all of it with `tfllm.evaluation.evaluate_texts` (every token predicted once, Transformers through
a sliding window). Losses are in bits per byte (total validation nats / (validation UTF-8 bytes * ln 2)), which
compares models whatever their tokenizer. The script prints a table and saves a plot of validation loss against
steps and against training seconds.

With a time budget, the number of steps is set from the model's own speed: the first `--calibration-steps` steps run
at warmup learning rates and are timed, then the model is compiled again (a fresh AdamW) with a schedule whose cosine
ends exactly at the last step that fits the rest of the budget.

    python benchmarks/compare_architectures.py                   # ~5 minutes: 75 s of training per model
    python benchmarks/compare_architectures.py --seconds 480     # the full default budget of `tfllm train`
    python benchmarks/compare_architectures.py --steps 300       # the same number of steps for all three

Training seconds exclude tracing and evaluation. Other programs running on the machine slow every model; the load
average is printed with the table.
"""

import argparse
import math
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.data import lm_dataset, load_texts  # noqa: E402
from tfllm.evaluation import evaluate_texts  # noqa: E402
from tfllm.tokenizers import ByteTokenizer  # noqa: E402
from tfllm.training.builders import build_model, build_tokenizer  # noqa: E402
from tfllm.training.config import ModelConfig, RunConfig  # noqa: E402
from summary import record  # noqa: E402

ARCHITECTURES = ("transformer", "lstm", "rnn")


def make_tokenizer(kind, texts):
    """The tokenizer of `tfllm train` (its default SentencePiece vocabulary), or bytes."""
    if kind == "byte":
        return ByteTokenizer()
    return build_tokenizer(RunConfig.default().data, texts)


def make_model(architecture, tokenizer):
    """The model of `tfllm train --model ARCHITECTURE`; the recurrent defaults are sized to the Transformer's
    parameter count."""
    return build_model(ModelConfig.default(architecture), tokenizer)


def bf16_supported():
    """Whether this CPU multiplies bfloat16 natively (AVX512_BF16 or AMX), where mixed_bfloat16 trains faster."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class ValidationNats:
    """Mean validation nats per token of a model over a fixed list of batches."""

    def __init__(self, model):
        @tf.function(reduce_retracing=True)
        def batch_nats(x, y):
            logits = model(x, training=False)  # (B, T, V) float32
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits)  # (B, T)
            return tf.reduce_sum(losses), tf.cast(tf.size(y), tf.float32)

        self.batch_nats = batch_nats

    def __call__(self, batches):
        total = count = 0.0
        for x, y in batches:
            nats, tokens = self.batch_nats(x, y)
            total, count = total + float(nats), count + float(tokens)
        return total / count


class Curve(keras.callbacks.Callback):
    """Times every step (the first, which traces, counts as the median step) and calls `evaluate` every `every` steps.

    `points` collects `(step, training seconds, evaluate())`; steps and seconds start at the offsets.
    """

    def __init__(self, evaluate, every, step_offset=0, seconds_offset=0.0, max_seconds=None):
        super().__init__()
        self.evaluate, self.every = evaluate, every
        self.step_offset, self.seconds_offset, self.max_seconds = step_offset, seconds_offset, max_seconds
        self.step_seconds, self.points = [], []

    def on_train_begin(self, logs=None):
        self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self.step_seconds.append(now - self.last)
        steps = self.step_offset + batch + 1
        if self.every and steps % self.every == 0:
            self.points.append((steps, self.seconds, self.evaluate()))
        if self.max_seconds is not None and self.seconds > self.max_seconds:
            self.model.stop_training = True  # the machine got much slower than calibrated: stop at the hard limit
        self.last = time.perf_counter()  # evaluation time is not training time

    @property
    def seconds(self):
        if not self.step_seconds:
            return self.seconds_offset
        typical = statistics.median(self.step_seconds[1:] or self.step_seconds)
        return self.seconds_offset + typical + sum(self.step_seconds[1:])


def train(architecture, model, train_batches, evaluate, args):
    """Trains for the budget; returns the curve [(step, seconds, evaluate())], the steps and the training seconds."""
    defaults = RunConfig.default(architecture).train
    learning_rate, warmup = defaults.learning_rate, defaults.warmup_steps
    if args.steps:
        model.compile(learning_rate=learning_rate, warmup_steps=warmup, decay_steps=args.steps, metrics=[])
        curve = Curve(evaluate, args.eval_every)
        model.fit(train_batches, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[curve])
        return curve.points, args.steps, curve.seconds
    # Calibration: the first steps, still in warmup, tell how many steps fit the budget.
    calibration = args.calibration_steps
    model.compile(learning_rate=learning_rate, warmup_steps=warmup, decay_steps=warmup + 1, metrics=[])
    timing = Curve(evaluate, 0)
    model.fit(train_batches, steps_per_epoch=calibration, epochs=1, verbose=0, callbacks=[timing])
    step_seconds = statistics.median(timing.step_seconds[1:])
    remaining = max(int((args.seconds - timing.seconds) / step_seconds), warmup + 1)
    # Compiled again: a fresh AdamW whose schedule ends at the last step of the budget (it warms up anew).
    model.compile(learning_rate=learning_rate, warmup_steps=warmup, decay_steps=remaining, metrics=[])
    curve = Curve(evaluate, args.eval_every, calibration, timing.seconds, max_seconds=1.5 * args.seconds)
    model.fit(train_batches, steps_per_epoch=remaining, epochs=1, verbose=0, callbacks=[curve])
    return curve.points, calibration + len(curve.step_seconds), curve.seconds


def plot(results, path, title):
    figure, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for architecture, result in results.items():
        steps, seconds, bits = zip(*result["curve"])
        label = f"{architecture} ({result['parameters'] / 1e6:.2f}M)"
        by_step.plot(steps, bits, marker=".", label=label)
        by_time.plot(seconds, bits, marker=".", label=label)
    by_step.set_xlabel("training step")
    by_time.set_xlabel("training seconds")
    for axes in (by_step, by_time):
        axes.set_ylabel("validation bits per byte")
        axes.grid(alpha=0.3)
        axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=75.0, help="training seconds per architecture")
    parser.add_argument("--steps", type=int, help="train each architecture this many steps instead of --seconds")
    parser.add_argument("--tokenizer", choices=("sentencepiece", "byte"), default="sentencepiece")
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="float32",
                        help="float32 (the default of tfllm train); auto: mixed_bfloat16 on CPUs with native bfloat16")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation points")
    parser.add_argument("--eval-batches", type=int, default=8, help="validation batches per curve point")
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--output", default="compare_architectures.png", help="where to save the plot")
    args = parser.parse_args()
    precision = args.precision if args.precision != "auto" else ("mixed_bfloat16" if bf16_supported() else "float32")
    defaults = RunConfig.default().train
    sequence, batch = defaults.sequence_length, defaults.batch_size

    train_texts, validation_texts = load_texts("kjv", split="train"), load_texts("kjv", split="validation")
    tokenizer = make_tokenizer(args.tokenizer, train_texts)
    validation_bytes = sum(map(len, validation_texts))
    # lm_dataset frames every document as <bos> tokens <eos>.
    validation_tokens = sum(len(ids) + 2 for ids in tokenizer.tokenize(validation_texts).to_list())
    bits_per_byte = validation_tokens / (validation_bytes * math.log(2))  # nats per token -> bits per byte
    validation = lm_dataset(validation_texts, tokenizer, sequence, batch, shuffle=False)
    curve_batches = list(validation.take(args.eval_batches))

    keras.config.set_dtype_policy(precision)
    results = {}
    for architecture in args.architectures:
        keras.utils.set_random_seed(0)
        model = make_model(architecture, tokenizer)
        model(np.zeros((1, sequence), np.int32))
        evaluate = ValidationNats(model)
        train_batches = lm_dataset(train_texts, tokenizer, sequence, batch, seed=0).repeat()
        curve, steps, seconds = train(
            architecture, model, train_batches, lambda evaluate=evaluate: evaluate(curve_batches) * bits_per_byte, args
        )
        if not curve or curve[-1][0] != steps:
            curve.append((steps, seconds, evaluate(curve_batches) * bits_per_byte))
        final = evaluate_texts(model, validation_texts).bits_per_byte
        results[architecture] = {"curve": curve, "steps": steps, "seconds": seconds, "bits": final,
                                 "parameters": model.count_params(), "hidden": model.hidden_dim,
                                 "layers": model.num_layers, "tokens_per_second": steps * batch * sequence / seconds}
        print(f"{architecture}: {steps} steps in {seconds:.0f} s, validation {final:.3f} bits/byte", flush=True)
    keras.config.set_dtype_policy("float32")

    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:.0f} s"
    print(f"\nKJV, {args.tokenizer} tokenizer (vocab {tokenizer.vocab_size}, {validation_bytes / validation_tokens:.2f} "
          f"bytes/token), batch {batch} x {sequence}, {precision}, budget {budget} per model; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'architecture':<12} {'params':>10} {'layers':>6} {'hidden':>7} {'steps':>6} {'seconds':>8} "
          f"{'tokens/s':>9} {'curve end':>10} {'val bits/byte':>14}")
    for architecture, result in results.items():
        print(f"{architecture:<12} {result['parameters']:>10,} {result['layers']:>6} {result['hidden']:>7} "
              f"{result['steps']:>6} {result['seconds']:>8.0f} {result['tokens_per_second']:>9,.0f} "
              f"{result['curve'][-1][2]:>10.3f} {result['bits']:>14.3f}")
    print(f"curve end: bits/byte on the first {args.eval_batches} validation batches (the plotted curve); val bits/byte: "
          "all of the validation split, every token once (evaluate_texts)")
    for architecture, result in results.items():
        record("compare_architectures", f"{architecture}: validation bits/byte after {budget}", result["bits"],
               unit="bits/byte")
    plot(results, args.output, f"KJV validation loss, {budget} per model ({precision}, {args.tokenizer})")
    print(f"plot: {os.path.abspath(args.output)}")


if __name__ == "__main__":
    main()
