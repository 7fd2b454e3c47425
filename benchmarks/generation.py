"""Generation speed: tfllm's compiled, cached decode loop against the loops people usually write.

For each architecture at the default size of `tfllm train` (untrained weights: speed does not depend on them), a
batch of 8 prompts of 32 tokens is continued by 224 new tokens (no stop token, so every loop makes all of them),
with greedy decoding and with top-p sampling, by:

- `model.generate`: prefill, then one token per step on the RNN states or the key/value caches, the whole loop in
  one compiled `tf.function`, in the plain graph and under XLA (`jit_compile=False` / `True`; the row that
  `jit_compile="auto"` picks on this machine is marked);
- the naive loop: a full forward pass over the whole sequence for every new token, the forward pass compiled
  (`tf.function`, relaxed shapes), the loop in Python: what a Transformer costs without a cache;
- the per-token call loop: the step of the decode contract in a `tf.function` called from Python once per token
  with the state handed back and forth (the way TensorFlow's text-generation tutorial does it for RNNs).

Every loop is warmed up (traced) first; the timings alternate between the loops (A, B, C, A, B, C, ...) and the
median of `--rounds` is kept, so a busy machine slows all of them alike. New tokens per second are printed, and
the ratios against the baselines (goals: Transformer cached >= 10x naive; RNNs cached >= 5x the per-token loop).

    python benchmarks/generation.py                          # ~4 minutes on 2 CPU cores
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


def per_token_calls(model, settings):
    """The decode step and the draw in one `tf.function`, called from Python once per token, the state handed back."""
    sampler = get_sampler(**settings)

    @tf.function(reduce_retracing=True)
    def one_step(ids, state, index):
        logits, state = model.decode(ids, state, index)  # (B, T, V)
        chosen = sampler(logits[:, -1, :], tf.stack([0, index + tf.shape(ids)[1]]))  # (B,): as generate draws
        return tf.cast(chosen, tf.int32)[:, None], state

    def run(ids):
        state = model.initial_state(BATCH, PROMPT + NEW)
        token, state = one_step(tf.constant(ids), state, tf.constant(0))  # prefill: the whole prompt
        tokens = [token]
        for offset in range(NEW - 1):
            token, state = one_step(token, state, tf.constant(PROMPT + offset))
            tokens.append(token)
        return np.concatenate([ids, np.concatenate([t.numpy() for t in tokens], axis=1)], axis=1)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per loop (median kept)")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--samplers", nargs="+", choices=tuple(SAMPLERS), default=list(SAMPLERS))
    args = parser.parse_args()

    print(f"batch {BATCH}, prompts of {PROMPT} tokens, {NEW} new tokens; {os.cpu_count()} CPUs")
    print(f"{'architecture':<12} {'sampler':<7} {'loop':<17} {'new tokens/s':>12} {'x baseline':>10} "
          f"{'same tokens':>11}")
    for architecture in args.architectures:
        keras.utils.set_random_seed(0)
        model, config = default_model(architecture)
        ids = prompts(model.vocab_size)
        for sampler in args.samplers:
            settings = SAMPLERS[sampler]
            auto = "XLA" if use_xla("auto", get_sampler(**settings)) else "graph"
            loops = {"generate, graph": cached(model, settings, False), "generate, XLA": cached(model, settings, True),
                     "per-token calls": per_token_calls(model, settings)}
            if architecture == "transformer":
                loops["naive full pass"] = naive(model, settings)
            outputs = {name: np.asarray(run(ids))[:, PROMPT:] for name, run in loops.items()}  # trace, warm up
            seconds = {name: [] for name in loops}
            for _ in range(args.rounds):
                for name, run in loops.items():
                    start = time.perf_counter()
                    run(ids)
                    seconds[name].append(time.perf_counter() - start)
            baseline = "naive full pass" if architecture == "transformer" else "per-token calls"
            base_rate = BATCH * NEW / statistics.median(seconds[baseline])
            for name, times in seconds.items():
                rate = BATCH * NEW / statistics.median(times)
                # The share of new tokens equal to the graph generate's: all loops draw with the same seeds per
                # position, so near 100% also for top-p, but for XLA, whose random numbers differ (float rounding
                # can also flip a near tie, and a row differs from there on).
                same = np.mean(outputs[name] == outputs["generate, graph"])
                chosen = " <- auto" if name == f"generate, {auto}" else ""
                print(f"{architecture:<12} {sampler:<7} {name:<17} {rate:>12,.0f} {rate / base_rate:>9.2f}x "
                      f"{same:>11.1%}{chosen}", flush=True)
                if chosen:
                    record("generation", f"{architecture} {sampler}: generate ({auto}) / {baseline}", rate / base_rate,
                           goal=10 if architecture == "transformer" else 5)
        print(f"  ({architecture}: {model.count_params():,} parameters, {config.num_layers} layers, "
              f"hidden {config.hidden_dim}; baseline: {baseline}; goal >= "
              f"{10 if architecture == 'transformer' else 5}x)")


if __name__ == "__main__":
    main()
