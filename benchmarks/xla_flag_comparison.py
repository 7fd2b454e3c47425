"""The measurement shared by the benchmarks of one XLA flag (`xla_vector_width.py`, `xla_ynn_fusions.py`): the same
calls timed in fresh processes, with `XLA_FLAGS` unset ("default") or set to the flag, in alternating rounds.

XLA reads its flags once per process, when it first compiles, and applies them to every XLA computation in it, so the
flag cannot be switched within one process. Each process times, after one warm-up call each:

- `generate` of `tfllm train`'s default Transformer with transformer_generation.py's context (256) and vocabulary
  (4,096), untrained: prompts of 32 random ids, 224 new tokens, greedy and top-p (p = 0.9), batch 1 and 8, under XLA
  (`generate`'s default on a CPU); ms per new token, the whole call;
- `tfllm train`'s default training step (16 x 128, `compile()`'s defaults: the plain graph with XLA-compiled GELU,
  layer norm and cross-entropy kernels), since the flag reaches those kernels too; seconds per step.

Rounds alternate the order of the two settings. The machine's speed drifts between processes (on the 2-core Xeon of
the README, the training step's ratio read 0.94x and 1.11x in two runs of 3 rounds, though the XLA-compiled kernels
are about a sixth of its op time there), so each figure is the median of the rounds' ratios, each of two processes
run one after the other, with their range; the times are the medians of each setting.
"""

import argparse
import json
import os
import statistics
import time

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


def main(description, script, flag, label, benchmark, measure_name, subject):
    """The command line of a flag's benchmark: `script --rounds N` compares, in fresh processes of `script`, the
    default against `XLA_FLAGS=flag` (named `label`), printing a table headed by `subject` and the machine, and
    records each call's ratio, time with the default / time with the flag, as `benchmark`'s
    "NAME: time, MEASURE_NAME"; `script --child` is one such process."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (median kept)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return

    from child_process import json_from_child
    from machine import machine_line
    from summary import record

    heading = f"{subject}; {machine_line()}"
    settings = {"default": None, label: flag}
    runs = {setting: [] for setting in settings}
    for round_index in range(args.rounds):
        order = list(settings) if round_index % 2 == 0 else list(reversed(settings))
        for setting in order:
            environment = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
            if settings[setting]:
                environment["XLA_FLAGS"] = settings[setting]
            runs[setting].append(json_from_child([script, "--child"], f"the {setting} process of round "
                                                 f"{round_index + 1}", environment))

    print(f"{heading}; fresh processes, {args.rounds} alternating rounds (medians; ratio: the median of the rounds' "
          "ratios, and their range)")
    print(f"{'measure':<36} {'default':>9} {label:>9} {'ratio':>7}  range")
    for name in runs["default"][0]:
        default, flagged = (statistics.median(run[name] for run in runs[setting]) for setting in settings)
        # Each round's two processes ran one after the other: their ratio is spared most of the machine's drift.
        ratios = [slow[name] / fast[name] for slow, fast in zip(runs["default"], runs[label])]
        ratio = statistics.median(ratios)
        unit = "s/step" if name == "training step" else "ms/token"
        print(f"{name + ' (' + unit + ')':<36} {default:>9.3f} {flagged:>9.3f} {ratio:>6.2f}x  "
              f"{min(ratios):.2f}-{max(ratios):.2f}x")
        record(benchmark, f"{name}: time, {measure_name}", ratio)
