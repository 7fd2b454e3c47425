"""The first `generate` in a fresh process: tfllm's decode functions traced without AutoGraph, and with it.

`tf.function` converts the Python it traces with AutoGraph unless told `autograph=False`, which a TensorFlow user
gets by default. tfllm's decode functions (the prefill, the loop, the streaming steps) are plain graph code
(`ops.cond`, `ops.while_loop`), so it turns AutoGraph off; what that saves is paid once per process, on the first
call, which is the whole of a one-shot `tfllm generate` or the samples at the end of `tfllm train`. Each measurement
is a fresh process (AutoGraph keeps what it converted for the life of a process): the same model and calls, with
tfllm's decode functions made as they are ("off") or with AutoGraph turned back on ("on"). Timed: the first call
(top-p, as `tfllm train`'s samples: 4 prompts, 64 new tokens) and the next one with a new sampler (greedy, 64 rows
of 32 tokens, as its memorization check), under `generate`'s defaults (XLA on a CPU). Models: `tfllm train`'s default
Transformer and LSTM, untrained, byte tokenizer. Rounds alternate the order of the two settings; medians are kept.
The second call gains little: with AutoGraph on, the first call already converted the code both calls trace. Its
ratio, 0.9x-1.1x, moves with where Python's garbage collector happens to run a full collection during the tracing:
with the collector off in both settings, the LSTM's second call read 0.53 s off against 0.59-0.67 s on.

    python benchmarks/first_generate.py              # ~2 minutes on 2 CPU cores
    python benchmarks/first_generate.py --rounds 5
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ARCHITECTURES = {"transformer": "Transformer", "lstm": "LSTM"}
SETTINGS = ("on", "off")  # AutoGraph on tfllm's decode functions
CALLS = ("first generate (top-p)", "then greedy (a new sampler)")


def measure(architecture, autograph):
    """In this process: builds the model, then times the two calls; `{call: seconds}`."""
    import numpy as np
    import tensorflow as tf

    from tfllm.generation import text_generation
    from tfllm.tokenizers import ByteTokenizer
    from tfllm.training import RunConfig
    from tfllm.training.builders import build_model

    if autograph == "on":
        text_generation.tf = _WithAutograph(tf)  # the module's tf.function, with AutoGraph as tf.function's default
    model = build_model(RunConfig.default(architecture).model, ByteTokenizer())
    model(np.zeros((1, 2), np.int32))
    prompts = list(RunConfig.default(architecture).train.sample_prompts)
    windows = np.random.default_rng(0).integers(3, 256, size=(64, 32)).tolist()  # (64, 32) token ids
    calls = {
        CALLS[0]: lambda: model.generate(prompts, max_new_tokens=64, temperature=0.8, top_p=0.9, seed=0),
        CALLS[1]: lambda: model.generate(windows, max_new_tokens=32, sampler="greedy", stop_token_ids=[]),
    }
    seconds = {}
    for name, call in calls.items():
        start = time.perf_counter()
        call()
        seconds[name] = time.perf_counter() - start
    return seconds


class _WithAutograph:
    """`tf` but for `tf.function`, whose `autograph` is forced on."""

    def __init__(self, tf):
        self._tf = tf

    def __getattr__(self, name):
        return getattr(self._tf, name)

    def function(self, *args, **kwargs):
        return self._tf.function(*args, **{**kwargs, "autograph": True})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median kept)")
    parser.add_argument("--child", nargs=2, metavar=("ARCHITECTURE", "AUTOGRAPH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child)))
        return

    from child_process import json_from_child
    from summary import record

    seconds = {(architecture, setting): [] for architecture in ARCHITECTURES for setting in SETTINGS}
    for round_index in range(args.rounds):
        order = SETTINGS if round_index % 2 == 0 else tuple(reversed(SETTINGS))
        for architecture in ARCHITECTURES:
            for setting in order:
                what = f"the {architecture} process with AutoGraph {setting}"
                seconds[(architecture, setting)].append(json_from_child([__file__, "--child", architecture, setting],
                                                                        what))

    print(f"The first generate calls in a fresh process, seconds (median of {args.rounds} alternating rounds), "
          f"{os.cpu_count()} CPUs; AutoGraph on tfllm's decode functions, as tf.function's default, or off")
    print(f"{'model':<12} {'call':<30} {'AutoGraph on':>12} {'off':>6} {'ratio':>6}")
    for architecture, label in ARCHITECTURES.items():
        for call in CALLS:
            on, off = (statistics.median(run[call] for run in seconds[(architecture, setting)]) for setting in SETTINGS)
            print(f"{label:<12} {call:<30} {on:>12.2f} {off:>6.2f} {on / off:>5.2f}x")
            record("first_generate", f"{label}, {call}: seconds, AutoGraph on / off", on / off)


if __name__ == "__main__":
    main()
