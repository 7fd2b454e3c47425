"""Fine-tuning GPT-2 small: LoRA (rank 8) against full fine-tuning, step time and peak memory.

The model is tfllm's `TransformerLM` at GPT-2-small shapes (12 layers, 768 wide, 12 heads, MLP 3,072, vocabulary
50,257, context 1,024; float32, random weights), compiled with `model.compile()` (AdamW, masked cross-entropy,
perplexity; the plain graph on a CPU). Two variants train on the same random batches (4 x 256 tokens):

- full: every weight trains (AdamW keeps two moments of each);
- LoRA: `model.enable_lora(8)`: the attention and MLP projections get rank-8 adapters (Keras's own
  `Dense/EinsumDense.enable_lora`) and only those train; AdamW keeps moments of the adapters alone.

Step time: both models live in one process and take `train_on_batch` steps in alternating rounds (full, LoRA,
full, ...) after one warm-up step each (tracing); the median step is kept. Peak memory: each variant runs in
a fresh subprocess (a process's resident set never shrinks, and `tf.config.experimental.get_memory_info` reports
zeros on CPUs) that builds the model, takes `--memory-steps` steps and reports its peak resident set size
(Linux's VmHWM), next to the peak after building alone (before any step).

    python benchmarks/lora_finetuning.py                   # ~10 minutes on 2 busy CPU cores
    python benchmarks/lora_finetuning.py --rounds 5 --batch-size 2 --sequence-length 128
    python benchmarks/lora_finetuning.py --quick           # tiny shapes, a smoke run (~1 minute)
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfllm.models import TransformerLM  # noqa: E402
from child_process import json_from_child  # noqa: E402
from machine import machine_line  # noqa: E402
from summary import record  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
GPT2_SMALL = {"vocab_size": 50257, "num_layers": 12, "num_heads": 12, "hidden_dim": 768, "intermediate_dim": 3072,
              "max_sequence_length": 1024}
TINY = {"vocab_size": 1000, "num_layers": 2, "num_heads": 2, "hidden_dim": 64, "intermediate_dim": 256,
        "max_sequence_length": 128}
VARIANTS = ("full", "lora")
RANK = 8


def build(variant, shape, rank=RANK):
    """A `TransformerLM` at `shape`, compiled with `model.compile()`; for "lora" with `model.enable_lora(rank)`."""
    keras.utils.set_random_seed(0)
    model = TransformerLM(**shape)
    model(np.zeros((1, 2), np.int32))
    if variant == "lora":
        model.enable_lora(rank)
    model.compile()
    return model


def batches(shape, batch_size, sequence_length, count, seed=0):
    """`count` random (x, y) batches of int32 (B, T)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, shape["vocab_size"], size=(count, batch_size, sequence_length + 1), dtype=np.int32)
    return [(row[:, :-1], row[:, 1:]) for row in ids]


def trainable_count(model):
    return sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)


def step_times(models, data, rounds, steps):
    """Each model's median step seconds: `rounds` alternating rounds of `steps` `train_on_batch` calls each."""
    times = {name: [] for name in models}
    for round_index in range(rounds):
        for name, model in models.items():
            for step in range(steps):
                x, y = data[(round_index * steps + step) % len(data)]
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory(variant, shape, batch_size, sequence_length, steps):
    """Runs in a subprocess: the peak resident set (bytes) after building `variant`, and after `steps` steps."""
    model = build(variant, shape)
    built = peak_resident_bytes()
    for x, y in batches(shape, batch_size, sequence_length, steps):
        model.train_on_batch(x, y)
    return {"built": built, "trained": peak_resident_bytes()}


def peak_resident_bytes():
    """This process's peak resident set: Linux's VmHWM. (Not `ru_maxrss`, which a subprocess inherits from the
    process that started it.)"""
    with open("/proc/self/status") as status:
        kilobytes = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return kilobytes * 1024


def measure_in_subprocess(args, variant):
    arguments = [os.path.abspath(__file__), "--memory-of", variant, "--batch-size", str(args.batch_size),
                 "--sequence-length", str(args.sequence_length), "--memory-steps",
                 str(args.memory_steps)] + (["--quick"] if args.quick else [])
    return json_from_child(arguments, f"the {variant} memory process")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median step kept)")
    parser.add_argument("--steps", type=int, default=2, help="train steps per model per round")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--memory-steps", type=int, default=2, help="steps of each memory subprocess")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run")
    parser.add_argument("--memory-of", choices=VARIANTS, help=argparse.SUPPRESS)  # the memory subprocess
    args = parser.parse_args()
    shape = TINY if args.quick else GPT2_SMALL
    if args.quick and args.sequence_length > shape["max_sequence_length"]:
        args.sequence_length = 64
    if args.memory_of:
        print(json.dumps(peak_memory(args.memory_of, shape, args.batch_size, args.sequence_length,
                                     args.memory_steps)))
        return

    models = {variant: build(variant, shape) for variant in VARIANTS}
    data = batches(shape, args.batch_size, args.sequence_length, 4)
    for model in models.values():
        model.train_on_batch(*data[0])  # trace: warm-up
    seconds = step_times(models, data, args.rounds, args.steps)
    memory = {variant: measure_in_subprocess(args, variant) for variant in VARIANTS}
    tokens = args.batch_size * args.sequence_length
    print(f"{machine_line()}; TransformerLM {'(quick: tiny)' if args.quick else 'at GPT-2-small shapes'}, float32, "
          f"{models['full'].count_params():,} parameters; batch {args.batch_size} x {args.sequence_length} tokens; "
          f"model.compile() defaults; median of {args.rounds} alternating rounds x {args.steps} steps; "
          f"LoRA rank {RANK}")
    header = (f"{'variant':<8} {'trainable':>12} {'step s':>8} {'tokens/s':>9} {'x full':>7} "
              f"{'peak RSS built':>14} {'peak RSS trained':>16}")
    print(header)
    rows = []
    for variant, model in models.items():
        row = {"variant": variant, "trainable_parameters": trainable_count(model), "step_seconds": seconds[variant],
               "tokens_per_second": tokens / seconds[variant], "speedup_over_full": seconds["full"] / seconds[variant],
               "peak_rss_built_bytes": memory[variant]["built"], "peak_rss_trained_bytes": memory[variant]["trained"]}
        rows.append(row)
        print(f"{variant:<8} {row['trainable_parameters']:>12,} {row['step_seconds']:>8.2f} "
              f"{row['tokens_per_second']:>9,.0f} {row['speedup_over_full']:>6.2f}x "
              f"{row['peak_rss_built_bytes'] / 2**20:>11,.0f} MB {row['peak_rss_trained_bytes'] / 2**20:>13,.0f} MB",
              flush=True)
    record("lora_finetuning", "GPT-2 small step: full / LoRA rank 8", seconds["full"] / seconds["lora"])
    write_results(args, rows)


def write_results(args, rows):
    """Writes the run's figures to benchmarks/results/lora_finetuning[_quick].{json,md}."""
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, "lora_finetuning" + ("_quick" if args.quick else ""))
    facts = {"machine": machine_line(), "batch_size": args.batch_size, "sequence_length": args.sequence_length,
             "rounds": args.rounds, "steps": args.steps, "rank": RANK,
             "tensorflow": tf.__version__, "keras": keras.__version__}
    with open(stem + ".json", "w", encoding="utf-8") as file:
        json.dump({**facts, "rows": rows}, file, indent=2)
    model = "TransformerLM (quick: tiny)" if args.quick else "GPT-2 small"
    lines = [f"{model} fine-tuning step, float32, batch {args.batch_size} x {args.sequence_length}, "
             f"{facts['machine']}, {args.rounds} rounds x {args.steps} steps "
             f"(`python benchmarks/lora_finetuning.py{' --quick' if args.quick else ''}`)", "",
             "| variant | trainable parameters | step (s) | tokens/s | x full | peak RSS, built | peak RSS, trained |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        built, trained = row["peak_rss_built_bytes"] / 2**20, row["peak_rss_trained_bytes"] / 2**20
        lines.append(f"| {row['variant']} | {row['trainable_parameters']:,} | {row['step_seconds']:.2f} | "
                     f"{row['tokens_per_second']:,.0f} | {row['speedup_over_full']:.2f}x | {built:,.0f} MB | "
                     f"{trained:,.0f} MB |")
    with open(stem + ".md", "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
