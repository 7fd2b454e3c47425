"""Whether `compile(jit_compile="auto")` picks the faster mode for each of tfllm's models on this machine.

`CausalLM.compile` resolves `jit_compile="auto"` to XLA on machines with a GPU or TPU (Keras's rule) and, on
CPU-only machines, to XLA for the models whose `xla_step_on_cpus()` is true (the recurrent models in float32) and to
the plain graph for the others. This script checks that rule where it runs: each default model of `tfllm train`
(Transformer, LSTM, SimpleRNN, at the sizes of `tfllm.training.DEFAULTS`) in float32 and mixed_bfloat16, compiled
with `CausalLM.compile()`'s defaults once with `jit_compile=False` and once with `jit_compile=True`, trains on the same
random token batches in alternating rounds in one process (A, B, C, ..., A, B, C, ...). A round's figure is the
median time of its steps after the first of each `fit` call (benchmarks/models.py's timing); the median round is
kept, and each mode's ratio is also given as the median of its per-round ratios, which pairs the two modes of a model
in time.

It prints, per model and precision, tokens/s in each mode, XLA / plain graph, and which mode "auto" picks here; it
records "auto's pick / the faster mode": 1.00x where auto picked the faster mode, and below where it did not. The
goal, 0.97x, lets a pick stand where the two modes are within the rounds' noise of each other.

    python benchmarks/jit_compile_choice.py                 # ~6 minutes on 2 CPU cores
    python benchmarks/jit_compile_choice.py --rounds 3 --architectures lstm --precisions float32
"""

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from machine import load_average, machine_line  # noqa: E402
from models import (ARCHITECTURES, BATCH, PRECISIONS, SEQUENCE, built, random_batches, recurrent_lm,  # noqa: E402
                    seconds_per_step, transformer_lm)
from summary import record  # noqa: E402

MODES = {"graph": False, "XLA": True}
GOAL = 0.97  # auto's pick / the faster mode


def make_models(architectures, precisions):
    """`{(architecture, precision, mode): model}`, each compiled with `CausalLM.compile()`'s defaults, and
    `{(architecture, precision): the mode "auto" picks}`."""
    models, picks = {}, {}
    for precision in precisions:
        keras.config.set_dtype_policy(precision)
        try:
            for architecture in architectures:
                for mode, jit_compile in {**MODES, "auto": "auto"}.items():
                    keras.utils.set_random_seed(0)
                    model = built(transformer_lm() if architecture == "transformer" else recurrent_lm(architecture))
                    model.compile(jit_compile=jit_compile)
                    if mode == "auto":
                        picks[architecture, precision] = "XLA" if model.jit_compile else "graph"
                    else:
                        models[architecture, precision, mode] = model
        finally:
            keras.config.set_dtype_policy("float32")
    return models, picks


def time_rounds(models, rounds, steps):
    """`{key: [seconds per step of each round]}` over `rounds` alternating rounds, after a warm-up of each."""
    batches = random_batches()
    for model in models.values():
        seconds_per_step(model, batches, 2)
    times = {key: [] for key in models}
    for _ in range(rounds):
        for key, model in models.items():
            times[key].append(seconds_per_step(model, batches, steps))
    return times


def report(times, picks, architectures, precisions):
    """The table's lines (markdown); records XLA / graph and auto's pick / the faster mode."""
    tokens = BATCH * SEQUENCE
    lines = ["| model | precision | graph tokens/s | XLA tokens/s | XLA / graph | per-round | auto picks "
                       "| auto / faster |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for precision in precisions:
        for architecture in architectures:
            graph, xla = times[architecture, precision, "graph"], times[architecture, precision, "XLA"]
            rates = {"graph": tokens / statistics.median(graph), "XLA": tokens / statistics.median(xla)}
            ratio = rates["XLA"] / rates["graph"]
            paired = statistics.median(g / x for g, x in zip(graph, xla))  # XLA / graph, round by round
            pick = picks[architecture, precision]
            of_faster = rates[pick] / max(rates.values())
            lines.append(f"| {architecture} | {precision} | {rates['graph']:,.0f} | {rates['XLA']:,.0f} | "
                         f"{ratio:.2f}x | {paired:.2f}x | {pick} | {of_faster:.2f}x |")
            record("jit_compile_choice", f"{architecture} {precision}: XLA / plain graph training tokens/s", ratio)
            record("jit_compile_choice", f"{architecture} {precision}: tokens/s of auto's pick ({pick}) / the faster "
                   "mode", of_faster, goal=GOAL)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds per model and mode (median kept)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per model per round")
    parser.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=list(ARCHITECTURES))
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    args = parser.parse_args()

    models, picks = make_models(args.architectures, args.precisions)
    print(f"Training step of each default model, `CausalLM.compile()` defaults, batch {BATCH} x {SEQUENCE}; "
          f"{machine_line()}; median of {args.rounds} alternating rounds of {args.steps} steps")
    times = time_rounds(models, args.rounds, args.steps)
    print("\n".join(report(times, picks, args.architectures, args.precisions)))
    print(f"load average after the rounds: {load_average():.1f}")


if __name__ == "__main__":
    main()
