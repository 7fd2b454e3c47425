"""XLA's CPU code with 512-bit vectors (`XLA_FLAGS=--xla_cpu_prefer_vector_width=512`) against its default, 256.

On a CPU with AVX-512, XLA's CPU compiler still asks LLVM for 256-bit vectors (its kernels' "prefer-vector-width"
attribute, in an `--xla_dump_to` dump of TensorFlow 2.21's) unless the flag says 512. A decode step at batch 1 is
XLA's own code from end to end: its matrix-vector products (XLA emits those below 4,096 rows as loops of its own,
`tfllm.layers.sums_as_products`), the attention over the cache, the layer norms and the sampler's bisection. The flag
is read once per process, when XLA first compiles, and applies to every XLA computation in it, so each measurement
here is a fresh process: the same models and calls, with `XLA_FLAGS` unset ("default") or set to the flag
("512-bit"). Timed, after one warm-up call each:

- `generate` of `tfllm train`'s default Transformer with transformer_generation.py's context (256) and vocabulary
  (4,096), untrained: prompts of 32 random ids, 224 new tokens, greedy and top-p (p = 0.9), batch 1 and 8, under XLA
  (`generate`'s default on a CPU); ms per new token, the whole call;
- `tfllm train`'s default training step (16 x 128, `compile()`'s defaults: the plain graph with XLA-compiled GELU,
  layer norm and cross-entropy kernels), since the flag reaches those kernels too; seconds per step.

Rounds alternate the order of the two settings. The machine's speed drifts between processes (on the 2-core Xeon of
the README, the training step's ratio read 0.94x and 1.11x in two runs of 3 rounds, though the XLA-compiled kernels,
all that the flag reaches there, are about a sixth of its op time), so each figure is the median of the rounds'
ratios, each of two processes run one after the other, with their range; the times are the medians of each setting.
tfllm leaves `XLA_FLAGS` to the user: the flag is process-wide, and changes the rounding of every XLA computation in
the process, the user's own included.

    python benchmarks/xla_vector_width.py              # 8 to 15 minutes on 2 CPU cores
    python benchmarks/xla_vector_width.py --rounds 3   # a smoke run
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FLAG = "--xla_cpu_prefer_vector_width=512"
SETTINGS = {"default": None, "512-bit": FLAG}
PROMPT, NEW_TOKENS, CONTEXT, TOP_P = 32, 224, 256, 0.9
CALLS = [(sampler, batch) for sampler in ("greedy", "top_p") for batch in (1, 8)]
REPEATS = 5  # timed calls of each kind per process (median kept)


def measure():
    """In this process: `{"generate sampler batch B": ms per new token, "training step": s}`, medians of REPEATS."""
    import tensorflow as tf

    from models import seconds_per_step
    from tfllm.training import RunConfig
    from transformer_training import model_config, random_batches, tfllm_lm

    model = tfllm_lm(model_config(CONTEXT), jit_compile="auto")
    calls = {f"generate {sampler} batch {batch}": generate_call(model, sampler, batch) for sampler, batch in CALLS}
    for call in calls.values():
        call()  # traced and compiled
    seconds = {name: [] for name in calls}
    for _ in range(REPEATS):  # the calls in turn, so that a slow moment of the machine slows all alike
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - start)
    results = {name: 1000 * statistics.median(values) / NEW_TOKENS for name, values in seconds.items()}

    train = RunConfig.default("transformer").train
    trained = tfllm_lm(model_config(train.sequence_length), jit_compile="auto")  # `compile()`'s defaults
    batches = tf.data.Dataset.from_tensors(random_batches(train.batch_size, train.sequence_length)).repeat()
    seconds_per_step(trained, batches, 2)  # traced and warmed up
    results["training step"] = statistics.median(seconds_per_step(trained, batches, 4) for _ in range(REPEATS))
    return results


def generate_call(model, sampler, batch):
    """`call()`: one `generate` of `batch` random prompts with `sampler` ("greedy" or "top_p")."""
    import numpy as np

    from transformer_training import VOCAB

    prompts = np.random.default_rng(0).integers(3, VOCAB, (batch, PROMPT), dtype=np.int32)  # (B, PROMPT)
    settings = {"sampler": "top_p", "top_p": TOP_P, "seed": 0} if sampler == "top_p" else {"sampler": "greedy"}
    return lambda: model.generate(prompts, max_new_tokens=NEW_TOKENS, stop_token_ids=[], **settings)


def has_avx512():
    """Whether the CPU reports AVX-512 (the flag changes nothing without it); None where /proc/cpuinfo is missing."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx512f" in line for line in cpuinfo)
    except OSError:
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median kept)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return

    from child_process import json_from_child
    from machine import machine_line
    from summary import record

    heading = machine_line()
    runs = {setting: [] for setting in SETTINGS}
    for round_index in range(args.rounds):
        order = list(SETTINGS) if round_index % 2 == 0 else list(reversed(SETTINGS))
        for setting in order:
            environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
            if SETTINGS[setting]:
                environment["XLA_FLAGS"] = SETTINGS[setting]
            runs[setting].append(json_from_child([__file__, "--child"], f"the {setting} process of round "
                                                 f"{round_index + 1}", environment))

    print(f"XLA's CPU vectors: default (256-bit) against {FLAG}, fresh processes, {args.rounds} alternating rounds "
          f"(medians; ratio: the median of the rounds' ratios, and their range); {heading}; AVX-512: {has_avx512()}")
    print(f"{'measure':<36} {'default':>9} {'512-bit':>9} {'ratio':>7}  range")
    for name in runs["default"][0]:
        default, wide = (statistics.median(run[name] for run in runs[setting]) for setting in SETTINGS)
        # Each round's two processes ran one after the other: their ratio is spared most of the machine's drift.
        ratios = [slow[name] / fast[name] for slow, fast in zip(runs["default"], runs["512-bit"])]
        ratio = statistics.median(ratios)
        unit = "s/step" if name == "training step" else "ms/token"
        print(f"{name + ' (' + unit + ')':<36} {default:>9.3f} {wide:>9.3f} {ratio:>6.2f}x  "
              f"{min(ratios):.2f}-{max(ratios):.2f}x")
        record("xla_vector_width", f"{name}: time, XLA's default vectors / 512-bit", ratio)

if __name__ == "__main__":
    main()
