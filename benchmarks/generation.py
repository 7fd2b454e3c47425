"""Generation speed: tfllm's compiled, cached decode loop against the loops people usually write.

For each architecture at the default size of `tfllm train` (untrained weights: speed does not depend on them), a
batch of 8 prompts of 32 tokens is continued by 224 new tokens (no stop token, so every loop makes all of them),
with greedy decoding and with top-p sampling, by:

- `model.generate`: prefill, then one token per step on the RNN states or the key/value caches, the whole loop in
  one compiled `tf.function`, in the plain graph and under XLA (`jit_compile=False` / `True`; the row that
  `jit_compile="auto"` picks on this machine is marked);
- the naive loop: a full forward pass over the whole sequence for every new token, the forward pass compiled
  (`tf.function`, relaxed shapes), the loop in Python: what a Transformer costs without a cache;
- the per-token loop: a prefill of the prompt, then the step of the decode contract (one token in, fixed (B, 1)
  signature, so an RNN runs its one-cell path as `generate` does) and the draw in a `tf.function` called from
  Python once per token with the state handed back and forth (the way TensorFlow's text-generation tutorial does it
  for RNNs), the step in the plain graph and under XLA.

Every loop is warmed up (traced) first; the timings alternate between the loops (A, B, C, A, B, C, ...) and the
median of `--rounds` is kept, so a busy machine slows all of them alike. New tokens per second are printed, and
the figures recorded for run_all.py:

- Transformer: the cache's gain, `generate` / the naive loop, both in the plain graph (goal >= 10x), and XLA's gain,
  `generate` under XLA / in the plain graph (no goal), apart, so that neither is credited with the other's;
- LSTM, SimpleRNN: `generate` (the mode `jit_compile="auto"` picks) / the faster of the two per-token loops
  (goal >= 5x).

    python benchmarks/generation.py                          # ~6 minutes on 2 CPU cores
    python benchmarks/generation.py --architectures transformer --rounds 3
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.generation import get_sampler  # noqa: E402
from tfllm.generation.text_generation import use_xla  # noqa: E402
from tfllm.training import DEFAULTS  # noqa: E402
from tfllm.training.builders import build_model  # noqa: E402
from tfllm.training.config import ModelConfig  # noqa: E402
from machine import load_average, machine_line  # noqa: E402
from summary import record  # noqa: E402

BATCH, PROMPT, NEW = 8, 32, 224
ARCHITECTURES = ("transformer", "lstm", "rnn")
SAMPLERS = {"greedy": {}, "top_p": {"sampler": "top_p", "top_p": 0.9}}


def default_model(architecture):
    """The default model of `architecture` (a Transformer gets the context the benchmark needs), no tokenizer."""
    config = ModelConfig.default(architecture)
    if config.max_sequence_length is not None and config.max_sequence_length < PROMPT + NEW:
        config = ModelConfig(**{**config.to_dict(), "max_sequence_length": PROMPT + NEW})
    model = build_model(config, vocab_size=DEFAULTS["vocab_size"][DEFAULTS["data"]["tokenizer"]])
    model(np.zeros((1, 2), np.int32))
    return model, config


def prompts(vocab_size, seed=0):
    return np.random.default_rng(seed).integers(3, vocab_size, size=(BATCH, PROMPT), dtype=np.int32)


def cached(model, settings, jit_compile):
    def run(ids):
        return model.generate(ids, max_new_tokens=NEW, stop_token_ids=[], seed=0, jit_compile=jit_compile, **settings)

    return run


def naive(model, settings):
    """A full forward pass per new token (compiled), the loop and the sampler outside."""
    forward = tf.function(lambda ids: model(ids)[:, -1, :], input_signature=[tf.TensorSpec([None, None], tf.int32)])
    sampler = tf.function(get_sampler(**settings).__call__)

    def run(ids):
        ids = tf.constant(ids)
        for position in range(NEW):
            chosen = sampler(forward(ids), tf.constant([0, PROMPT + position], tf.int32))  # (B,): as generate draws
            ids = tf.concat([ids, tf.cast(chosen, tf.int32)[:, None]], axis=1)
        return ids.numpy()

    return run


def per_token_calls(model, settings, jit_compile):
    """The way TensorFlow's text-generation tutorial generates with an RNN, made as fast as that way goes: a prefill
    of the prompt, then one decode step and its draw per `tf.function` call from Python, the state handed back and
    forth. The step's signature is fixed at one token, (B, 1), so it traces once and runs the model's one-token path
    (an RNN's single cell step, not its sequence layer); `jit_compile` compiles the step with XLA. The prefill is the
    plain graph in both, as `generate`'s."""
    sampler = get_sampler(**settings)
    initial_state = model.initial_state(BATCH, PROMPT + NEW)
    state_spec = tf.nest.map_structure(lambda tensor: tf.TensorSpec(tensor.shape, tensor.dtype), initial_state)
    index_spec = tf.TensorSpec([], tf.int32)

    def draw(ids, state, index):
        logits, state = model.decode(ids, state, index)  # (B, T, V)
        chosen = sampler(logits[:, -1, :], tf.stack([0, index + tf.shape(ids)[1]]))  # (B,): as generate draws
        return tf.cast(chosen, tf.int32)[:, None], state  # (B, 1)

    prefill = tf.function(draw, input_signature=[tf.TensorSpec([BATCH, PROMPT], tf.int32), state_spec, index_spec])
    step = tf.function(draw, input_signature=[tf.TensorSpec([BATCH, 1], tf.int32), state_spec, index_spec],
                       jit_compile=jit_compile)

    def run(ids):
        token, state = prefill(tf.constant(ids), initial_state, tf.constant(0))
        tokens = [token]
        for offset in range(NEW - 1):
            token, state = step(token, state, tf.constant(PROMPT + offset))
            tokens.append(token)
        return np.concatenate([ids, np.concatenate([t.numpy() for t in tokens], axis=1)], axis=1)

    return run


def loops_of(architecture, model, settings):
    """`{name: run(ids) -> ids}`: generate in both modes, the per-token loop in both, and for a Transformer the
    naive loop."""
    loops = {"generate, graph": cached(model, settings, False), "generate, XLA": cached(model, settings, True),
             "per-token, graph": per_token_calls(model, settings, False),
             "per-token, XLA": per_token_calls(model, settings, True)}
    if architecture == "transformer":
        loops["naive full pass"] = naive(model, settings)
    return loops


def time_loops(loops, ids, rounds):
    """`({name: new tokens/s (median)}, {name: new ids of the warm-up run})`, the loops timed in alternating rounds."""
    outputs = {name: np.asarray(run(ids))[:, PROMPT:] for name, run in loops.items()}  # trace, warm up
    seconds = {name: [] for name in loops}
    for _ in range(rounds):
        for name, run in loops.items():
            start = time.perf_counter()
            run(ids)
            seconds[name].append(time.perf_counter() - start)
    return {name: BATCH * NEW / statistics.median(times) for name, times in seconds.items()}, outputs


def baseline_of(architecture, rates):
    """The loop a figure is measured against: the naive loop for a Transformer, else the faster per-token loop."""
    if architecture == "transformer":
        return "naive full pass"
    return max(("per-token, graph", "per-token, XLA"), key=rates.get)


def report(architecture, sampler, rates, outputs, auto):
    """Prints a row per loop and records the headline figures of `architecture` with `sampler`."""
    baseline = baseline_of(architecture, rates)
    for name, rate in rates.items():
        # The share of new tokens equal to the graph generate's: all loops draw with the same seeds per position,
        # so near 100% also for top-p, but for XLA, whose random numbers differ (float rounding can also flip a
        # near tie, and a row differs from there on).
        same = np.mean(outputs[name] == outputs["generate, graph"])
        marks = (" <- auto" if name == f"generate, {auto}" else "") + (" <- baseline" if name == baseline else "")
        print(f"{architecture:<12} {sampler:<7} {name:<17} {rate:>12,.0f} {rate / rates[baseline]:>9.2f}x "
              f"{same:>11.1%}{marks}", flush=True)
    if architecture == "transformer":
        cache_gain = rates["generate, graph"] / rates["naive full pass"]
        xla_gain = rates["generate, XLA"] / rates["generate, graph"]
        print(f"  cache's gain (generate / naive, both graph) {cache_gain:.2f}x (goal >= 10x); "
              f"XLA's gain (generate XLA / graph) {xla_gain:.2f}x")
        record("generation", f"transformer {sampler}: cache's gain, generate / naive full pass (both graph)",
               cache_gain, goal=10)
        record("generation", f"transformer {sampler}: XLA's gain, generate XLA / generate graph", xla_gain)
    else:
        gain = rates[f"generate, {auto}"] / rates[baseline]
        print(f"  generate ({auto}, auto) / best per-token loop ({baseline}) {gain:.2f}x (goal >= 5x)")
        record("generation", f"{architecture} {sampler}: generate ({auto}) / best per-token loop", gain, goal=5)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per loop (median kept)")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--samplers", nargs="+", choices=tuple(SAMPLERS), default=list(SAMPLERS))
    args = parser.parse_args()

    print(f"{machine_line()}; batch {BATCH}, prompts of {PROMPT} tokens, {NEW} new tokens")
    print(f"{'architecture':<12} {'sampler':<7} {'loop':<17} {'new tokens/s':>12} {'x baseline':>10} "
          f"{'same tokens':>11}")
    for architecture in args.architectures:
        keras.utils.set_random_seed(0)
        model, config = default_model(architecture)
        ids = prompts(model.vocab_size)
        for sampler in args.samplers:
            settings = SAMPLERS[sampler]
            auto = "XLA" if use_xla("auto", get_sampler(**settings)) else "graph"
            rates, outputs = time_loops(loops_of(architecture, model, settings), ids, args.rounds)
            report(architecture, sampler, rates, outputs, auto)
        print(f"  ({architecture}: {model.count_params():,} parameters, {config.num_layers} layers, "
              f"hidden {config.hidden_dim})")
    print(f"load average after: {load_average():.1f}")


if __name__ == "__main__":
    main()
