"""Transformer, LSTM and simple RNN language models trained on the same budget: which learns the KJV best?

The three architectures are built at about the same parameter count (the Transformer at the default size of
`tfllm train`, the LSTM and the SimpleRNN with 2 layers and the hidden size that matches its parameter count), share
one tokenizer, and each trains for the same wall-clock time (or, with `--steps`, the same number of steps) on the
KJV train split with `CausalLM.compile()`'s optimizer (AdamW, warmup then cosine decay to the last step).
Every few steps each is evaluated on the first batches of the validation split (windows of the training length); at
the end on all of it with `tfllm.training.evaluation.evaluate_texts` (every token predicted once, Transformers through
a sliding window). Losses are in bits per byte (total validation nats / (validation UTF-8 bytes * ln 2)), which
compares models whatever their tokenizer. The script prints a table and saves a plot of validation loss against steps and against training
seconds.

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
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM  # noqa: E402
from tfllm.tokenizers import ByteTokenizer, SentencePieceTokenizer  # noqa: E402
from tfllm.training.evaluation import evaluate_texts  # noqa: E402

# The default model and data of `tfllm train`.
VOCAB_SIZE, LAYERS, HEADS, HIDDEN, INTERMEDIATE, SEQUENCE, BATCH = 2048, 4, 4, 256, 1024, 128, 16
RECURRENT_LAYERS = 2
LEARNING_RATES = {"transformer": 3e-3, "lstm": 3e-3, "rnn": 1e-3}
WARMUP_STEPS = 50


def make_tokenizer(kind, texts):
    if kind == "byte":
        return ByteTokenizer()
    return SentencePieceTokenizer.train(texts, vocab_size=VOCAB_SIZE, model_type="bpe", verbose=False)


def make_model(architecture, vocab_size, hidden_dims, tokenizer=None):
    if architecture == "transformer":
        return TransformerLM(
            vocab_size, LAYERS, HEADS, HIDDEN, INTERMEDIATE, max_sequence_length=SEQUENCE, tokenizer=tokenizer
        )
    model_class = LSTMLM if architecture == "lstm" else SimpleRNNLM
    return model_class(
        vocab_size, hidden_dim=hidden_dims[architecture], num_layers=RECURRENT_LAYERS, tokenizer=tokenizer
    )


def equal_parameter_hidden_dims(vocab_size, target_parameters):
    """Hidden sizes (multiples of 16) whose 2-layer LSTM and SimpleRNN come closest to the target parameter count."""
    dims = {}
    for architecture, gates in (("lstm", 4), ("rnn", 1)):
        counts = {d: vocab_size * d + RECURRENT_LAYERS * gates * (2 * d * d + d) for d in range(16, 4096, 16)}
        dims[architecture] = min(counts, key=lambda d: abs(counts[d] - target_parameters))
    return dims


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
    learning_rate = LEARNING_RATES[architecture]
    if args.steps:
        model.compile(learning_rate=learning_rate, warmup_steps=WARMUP_STEPS, decay_steps=args.steps, metrics=[])
        curve = Curve(evaluate, args.eval_every)
        model.fit(train_batches, steps_per_epoch=args.steps, epochs=1, verbose=0, callbacks=[curve])
        return curve.points, args.steps, curve.seconds
    # Calibration: the first steps, still in warmup, tell how many steps fit the budget.
    calibration = args.calibration_steps
    model.compile(learning_rate=learning_rate, warmup_steps=WARMUP_STEPS, decay_steps=WARMUP_STEPS + 1, metrics=[])
    timing = Curve(evaluate, 0)
    model.fit(train_batches, steps_per_epoch=calibration, epochs=1, verbose=0, callbacks=[timing])
    step_seconds = statistics.median(timing.step_seconds[1:])
    remaining = max(int((args.seconds - timing.seconds) / step_seconds), WARMUP_STEPS + 1)
    # Compiled again: a fresh AdamW whose schedule ends at the last step of the budget (it warms up anew).
    model.compile(learning_rate=learning_rate, warmup_steps=WARMUP_STEPS, decay_steps=remaining, metrics=[])
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
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"), default="auto",
                        help="auto: mixed_bfloat16 on CPUs with native bfloat16, else float32")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation points")
    parser.add_argument("--eval-batches", type=int, default=8, help="validation batches per curve point")
    parser.add_argument("--calibration-steps", type=int, default=8)
    parser.add_argument("--architectures", nargs="+", choices=("transformer", "lstm", "rnn"),
                        default=["transformer", "lstm", "rnn"])
    parser.add_argument("--output", default="compare_architectures.png", help="where to save the plot")
    args = parser.parse_args()
    precision = args.precision if args.precision != "auto" else ("mixed_bfloat16" if bf16_supported() else "float32")

    train_texts, validation_texts = load_texts("kjv", split="train"), load_texts("kjv", split="validation")
    tokenizer = make_tokenizer(args.tokenizer, train_texts)
    validation_bytes = sum(map(len, validation_texts))
    # lm_dataset frames every document as <bos> tokens <eos>.
    validation_tokens = sum(len(ids) + 2 for ids in tokenizer.tokenize(validation_texts).to_list())
    bits_per_byte = validation_tokens / (validation_bytes * math.log(2))  # nats per token -> bits per byte
    validation = lm_dataset(validation_texts, tokenizer, SEQUENCE, BATCH, shuffle=False)
    curve_batches = list(validation.take(args.eval_batches))

    keras.config.set_dtype_policy(precision)
    probe = TransformerLM(tokenizer.vocab_size, LAYERS, HEADS, HIDDEN, INTERMEDIATE, max_sequence_length=SEQUENCE)
    probe(np.zeros((1, SEQUENCE), np.int32))
    hidden_dims = equal_parameter_hidden_dims(tokenizer.vocab_size, probe.count_params())

    results = {}
    for architecture in args.architectures:
        keras.utils.set_random_seed(0)
        model = make_model(architecture, tokenizer.vocab_size, hidden_dims, tokenizer)
        model(np.zeros((1, SEQUENCE), np.int32))
        evaluate = ValidationNats(model)
        train_batches = lm_dataset(train_texts, tokenizer, SEQUENCE, BATCH, seed=0).repeat()
        curve, steps, seconds = train(
            architecture, model, train_batches, lambda evaluate=evaluate: evaluate(curve_batches) * bits_per_byte, args
        )
        if not curve or curve[-1][0] != steps:
            curve.append((steps, seconds, evaluate(curve_batches) * bits_per_byte))
        final = evaluate_texts(model, validation_texts).bits_per_byte
        results[architecture] = {"curve": curve, "steps": steps, "seconds": seconds, "bits": final,
                                 "parameters": model.count_params(),
                                 "tokens_per_second": steps * BATCH * SEQUENCE / seconds}
        print(f"{architecture}: {steps} steps in {seconds:.0f} s, validation {final:.3f} bits/byte", flush=True)
    keras.config.set_dtype_policy("float32")

    budget = f"{args.steps} steps" if args.steps else f"{args.seconds:.0f} s"
    print(f"\nKJV, {args.tokenizer} tokenizer (vocab {tokenizer.vocab_size}, {validation_bytes / validation_tokens:.2f} "
          f"bytes/token), batch {BATCH} x {SEQUENCE}, {precision}, budget {budget} per model; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'architecture':<12} {'params':>10} {'hidden':>7} {'steps':>6} {'seconds':>8} {'tokens/s':>9} "
          f"{'curve end':>10} {'val bits/byte':>14}")
    for architecture, result in results.items():
        hidden = HIDDEN if architecture == "transformer" else hidden_dims[architecture]
        print(f"{architecture:<12} {result['parameters']:>10,} {hidden:>7} {result['steps']:>6} "
              f"{result['seconds']:>8.0f} {result['tokens_per_second']:>9,.0f} {result['curve'][-1][2]:>10.3f} "
              f"{result['bits']:>14.3f}")
    print(f"curve end: bits/byte on the first {args.eval_batches} validation batches (the plotted curve); val bits/byte: "
          "all of the validation split, every token once (evaluate_texts)")
    plot(results, args.output, f"KJV validation loss, {budget} per model ({precision}, {args.tokenizer})")
    print(f"plot: {os.path.abspath(args.output)}")


if __name__ == "__main__":
    main()
