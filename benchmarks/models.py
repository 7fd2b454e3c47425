"""Training throughput and MFU of tfllm's three language models against Keras built-in models of the same size.

For each architecture (Transformer, LSTM, SimpleRNN) and each precision (float32, mixed_bfloat16) this trains the
tfllm model and a twin made of Keras's own layers on the same random token batches, alternating rounds of a few
steps between all the models in one process (A, B, C, ..., A, B, C, ...) and keeping the median round, so that a
busy machine slows every model alike. A round's figure is the median time of its steps, each timed from the start
of its batch to its end, the first step of each `fit` call left out (it also pays for `fit`'s set-up). It prints
parameters, tokens/s, MFU and the ratios tfllm / Keras and mixed_bfloat16 / float32.

- Transformer: `TransformerLM` at the default size of `tfllm train` (tied embeddings, learned positions) against a
  `keras.Model` of `Embedding` (tokens and positions), pre-layer-norm blocks of `LayerNormalization`,
  `MultiHeadAttention(use_causal_mask=True)` and two `Dense`, a final `LayerNormalization`, and logits through the
  token `Embedding`'s matrix transposed (tied, as tfllm's).
- LSTM and SimpleRNN: `LSTMLM` / `SimpleRNNLM` at the default sizes of `tfllm train --model lstm|rnn` (which have
  about the Transformer's parameter count) against `Embedding` (scaled by sqrt(D), as tfllm's) ->
  `keras.layers.LSTM` / `SimpleRNN` layers -> logits through the `Embedding`'s matrix transposed (tied, as tfllm's).

Each twin has exactly its tfllm model's parameter count (printed; the script stops if they differ), so both sides
do the same arithmetic and the optimizer updates the same number of weights.

The sizes (vocabulary, layers, widths, batch and sequence length) are read from `tfllm.training.DEFAULTS`, so this
measures what `tfllm train` trains.

Both sides of a pair compile the same way: Keras's AdamW with the settings of `CausalLM.compile()` (which builds tfllm's
`FusedAdamW`, the same update in one kernel), sparse cross-entropy from logits, no metrics, and `jit_compile="auto"`,
each library's own default. On a CPU-only machine that is the plain graph for the Keras twins (Keras's rule; their
recurrent layers also measured slower under XLA in recurrent_layers.py) and for tfllm's Transformer, and XLA for tfllm's
recurrent models in float32 (`CausalLM.compile`; jit_compile_choice.py times each tfllm model in both modes,
transformer_training.py the Transformers under XLA). One more row trains the Transformer with `CausalLM.compile()`'s
full defaults, which add the `Perplexity` metric, to show what that metric costs.

MFU (model FLOPs utilization) = `model.training_flops_per_token(T)` * tokens/s / peak, where the peak is
`machine.matmul_peak` of the dtype the matmuls run in (float32 for float32, bfloat16 for mixed_bfloat16): the one
definition every benchmark uses (see benchmarks/machine.py), measured in every round and its median kept
(`machine.RoundPeaks`). The twins share the arithmetic, so they share the FLOP count.

    python benchmarks/models.py                      # everything, ~6 minutes on 2 CPU cores
    python benchmarks/models.py --rounds 3 --steps 2 --architectures transformer --precisions float32
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM  # noqa: E402
from tfllm.training import DEFAULTS, RunConfig  # noqa: E402
from machine import RoundPeaks, load_average, machine_line  # noqa: E402
from summary import record  # noqa: E402

# The default model of `tfllm train`: its vocabulary size, Transformer and batch.
VOCAB = DEFAULTS["vocab_size"][DEFAULTS["data"]["tokenizer"]]
_TRANSFORMER, _TRAIN = RunConfig.default("transformer").model, RunConfig.default("transformer").train
LAYERS, HEADS, HIDDEN, INTERMEDIATE = (_TRANSFORMER.num_layers, _TRANSFORMER.num_heads, _TRANSFORMER.hidden_dim,
                                       _TRANSFORMER.intermediate_dim)
SEQUENCE, BATCH = _TRAIN.sequence_length, _TRAIN.batch_size
ARCHITECTURES = ("transformer", "lstm", "rnn")
PRECISIONS = ("float32", "mixed_bfloat16")
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16"}  # the dtype the matmuls run in


def optimizer():
    # CausalLM.compile()'s AdamW settings, with a constant learning rate (the schedule costs nothing measurable).
    adamw = keras.optimizers.AdamW(1e-3, weight_decay=0.1, beta_2=0.95, global_clipnorm=1.0)
    adamw.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return adamw


def compile_default(model):
    """`model` compiled with AdamW and sparse cross-entropy from logits, in the compile mode its library picks."""
    model.compile(optimizer(), keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile="auto")
    return model


def transformer_lm():
    return TransformerLM(VOCAB, LAYERS, HEADS, HIDDEN, INTERMEDIATE, max_sequence_length=SEQUENCE)


def recurrent_sizes(architecture):
    """(layers, hidden size) of the default recurrent model of `architecture`."""
    config = RunConfig.default(architecture).model
    return config.num_layers, config.hidden_dim


def recurrent_lm(architecture):
    model_class = LSTMLM if architecture == "lstm" else SimpleRNNLM
    layers, hidden = recurrent_sizes(architecture)
    return model_class(VOCAB, hidden_dim=hidden, num_layers=layers)


def built(model):
    model(np.zeros((1, SEQUENCE), np.int32))
    return model


def tied_logits(hidden, embedding):
    """`hidden @ E^T` with the `keras.layers.Embedding`'s matrix E, in float32: what tfllm's
    `TokenEmbedding(..., reverse=True)` computes, so a twin has no output layer of its own."""
    matrix = keras.ops.cast(embedding.embeddings, hidden.dtype)  # (V, D)
    return keras.ops.cast(keras.ops.matmul(hidden, keras.ops.transpose(matrix)), "float32")  # (B, T, V)


class KerasTransformer(keras.Model):
    """The Transformer of `transformer_lm()` made of Keras's built-in layers, logits tied to the token embedding."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = keras.layers.Embedding(VOCAB, HIDDEN)
        self.position_embedding = keras.layers.Embedding(SEQUENCE, HIDDEN)
        self.blocks = [
            (
                keras.layers.LayerNormalization(epsilon=1e-5),
                keras.layers.MultiHeadAttention(HEADS, key_dim=HIDDEN // HEADS),
                keras.layers.LayerNormalization(epsilon=1e-5),
                keras.layers.Dense(INTERMEDIATE, activation="gelu"),
                keras.layers.Dense(HIDDEN),
            )
            for _ in range(LAYERS)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5)

    def call(self, token_ids):
        length = keras.ops.shape(token_ids)[1]
        x = self.token_embedding(token_ids) + self.position_embedding(keras.ops.arange(length)[None])  # (B, T, D)
        for attention_norm, attention, mlp_norm, mlp_in, mlp_out in self.blocks:
            normalized = attention_norm(x)
            x = x + attention(normalized, normalized, use_causal_mask=True)
            x = x + mlp_out(mlp_in(mlp_norm(x)))
        return tied_logits(self.final_norm(x), self.token_embedding)  # (B, T, V)


class KerasRecurrent(keras.Model):
    """The recurrent model of `recurrent_lm(architecture)` made of Keras's `Embedding` and `LSTM` / `SimpleRNN`
    layers, the embedding scaled by sqrt(D) and the logits tied to it, as tfllm's `RecurrentLM`."""

    def __init__(self, architecture, **kwargs):
        super().__init__(**kwargs)
        layer_class = keras.layers.LSTM if architecture == "lstm" else keras.layers.SimpleRNN
        layers, hidden_dim = recurrent_sizes(architecture)
        self.embedding = keras.layers.Embedding(VOCAB, hidden_dim)
        self.input_scale = hidden_dim**0.5
        self.recurrent_layers = [layer_class(hidden_dim, return_sequences=True) for _ in range(layers)]

    def call(self, token_ids):
        x = self.embedding(token_ids) * self.input_scale  # (B, T, D)
        for layer in self.recurrent_layers:
            x = layer(x)  # (B, T, D)
        return tied_logits(x, self.embedding)  # (B, T, V)


def twins(architecture):
    """(tfllm model, Keras twin) of `architecture`, built; raises if their parameter counts differ."""
    if architecture == "transformer":
        ours, theirs = built(transformer_lm()), built(KerasTransformer())
    else:
        ours, theirs = built(recurrent_lm(architecture)), built(KerasRecurrent(architecture))
    if ours.count_params() != theirs.count_params():
        raise ValueError(f"the {architecture} twins differ in size: tfllm {ours.count_params():,} parameters, "
                         f"Keras {theirs.count_params():,}")
    return ours, theirs


def make_models(architectures, precisions):
    """(name, architecture, precision, model, FLOPs per token) for every model to time, compiled."""
    models = []
    for precision in precisions:
        keras.config.set_dtype_policy(precision)
        keras.utils.set_random_seed(0)
        for architecture in architectures:
            ours, theirs = twins(architecture)
            flops = ours.training_flops_per_token(SEQUENCE)
            models.append(("tfllm", architecture, precision, compile_default(ours), flops))
            models.append(("keras", architecture, precision, compile_default(theirs), flops))
            if architecture == "transformer":
                with_metric = built(transformer_lm())
                with_metric.compile()  # CausalLM.compile() defaults: adds the Perplexity metric
                models.append(("tfllm+ppl", architecture, precision, with_metric, flops))
        keras.config.set_dtype_policy("float32")
    return models


def random_batches(seed=0):
    tokens = np.random.default_rng(seed).integers(3, VOCAB, size=(BATCH, SEQUENCE + 1), dtype=np.int32)
    return tf.data.Dataset.from_tensors((tokens[:, :-1], tokens[:, 1:])).repeat()


class _StepTimes(keras.callbacks.Callback):
    """The seconds of each training step, from the start of its batch to its end."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def seconds_per_step(model, batches, steps):
    """The median seconds of a training step over `steps` + 1 steps of one `fit` call, leaving out the first (which
    also pays for `fit`'s set-up: at a few steps per round that cost would swamp the steps themselves)."""
    times = _StepTimes()
    model.fit(batches, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=[times])
    return statistics.median(times.seconds[1:])


def time_rounds(models, rounds, steps, peaks):
    """Per model, the seconds per step of each of `rounds` alternating rounds (after a warm-up of each); the
    matmul `peaks` (`RoundPeaks`) are measured in every round."""
    batches = random_batches()
    for _, _, _, model, _ in models:  # trace and warm up
        seconds_per_step(model, batches, 2)
    times = [[] for _ in models]
    for _ in range(rounds):
        for index, (_, _, _, model, _) in enumerate(models):
            times[index].append(seconds_per_step(model, batches, steps))
        peaks.measure()
    return times


def print_rates(models, times, peaks):
    """Prints a row per model (parameters, tokens/s, MFU); returns `{(name, architecture, precision): tokens/s}`."""
    print(f"{'model':<10} {'arch':<12} {'precision':<15} {'params':>10} {'tokens/s':>9} {'min-round':>9} {'MFU':>6}")
    rates = {}
    for (name, architecture, precision, model, flops), seconds in zip(models, times):
        rate = BATCH * SEQUENCE / statistics.median(seconds)
        rates[name, architecture, precision] = rate
        print(f"{name:<10} {architecture:<12} {precision:<15} {model.count_params():>10,} {rate:>9,.0f} "
              f"{BATCH * SEQUENCE / min(seconds):>9,.0f} {flops * rate / peaks[PEAK_DTYPE[precision]]:>6.1%}")
    return rates


def report_ratios(models, rates, peaks, architectures, precisions):
    """Prints and records tfllm / Keras, the Perplexity metric's cost, MFU and mixed_bfloat16 / float32."""
    print("ratios (median tokens/s):")
    for architecture in architectures:
        for precision in precisions:
            ours, theirs = rates["tfllm", architecture, precision], rates["keras", architecture, precision]
            print(f"  {architecture:<12} {precision:<15} tfllm / keras = {ours / theirs:.2f}x  (goal >= 1.0x)")
            record("models", f"{architecture} {precision} training tokens/s: tfllm / Keras twin (tied, same size)",
                   ours / theirs, goal=1.0)
            flops = next(entry[4] for entry in models if entry[:3] == ("tfllm", architecture, precision))
            mfu = flops * ours / peaks[PEAK_DTYPE[precision]]
            record("models", f"{architecture} {precision} tfllm MFU (vs {PEAK_DTYPE[precision]} matmul peak)", mfu,
                   unit="MFU")
            if ("tfllm+ppl", architecture, precision) in rates:
                cost = rates["tfllm+ppl", architecture, precision] / ours
                print(f"  {architecture:<12} {precision:<15} with the default Perplexity metric / without = "
                      f"{cost:.2f}x")
        if set(PRECISIONS) <= set(precisions):
            for name in ("tfllm", "keras"):
                gain = rates[name, architecture, "mixed_bfloat16"] / rates[name, architecture, "float32"]
                print(f"  {architecture:<12} {name:<15} mixed_bfloat16 / float32 = {gain:.2f}x  (goal >= 1.3x)")
                if name == "tfllm":
                    record("models", f"{architecture} tokens/s: mixed_bfloat16 / float32", gain, goal=1.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per model (median kept)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per model per round")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    args = parser.parse_args()

    models = make_models(args.architectures, args.precisions)
    print(machine_line())
    print(f"batch {BATCH} x {SEQUENCE} tokens, vocab {VOCAB}; Transformer {LAYERS} layers, hidden {HIDDEN}, "
          f"{HEADS} heads, MLP {INTERMEDIATE}; LSTM {recurrent_sizes('lstm')} and SimpleRNN {recurrent_sizes('rnn')} "
          f"(layers, hidden); every Keras twin tied and of its tfllm model's parameter count")
    round_peaks = RoundPeaks(sorted({PEAK_DTYPE[precision] for precision in args.precisions}))
    times = time_rounds(models, args.rounds, args.steps, round_peaks)
    peaks = round_peaks.median()
    print("matmul peak (machine.py, median of the rounds): "
          + ", ".join(f"{dtype} {peak / 1e9:.0f} GFLOP/s" for dtype, peak in peaks.items()))
    rates = print_rates(models, times, peaks)
    report_ratios(models, rates, peaks, args.architectures, args.precisions)
    print(f"load average after the rounds: {load_average():.1f}")


if __name__ == "__main__":
    main()
