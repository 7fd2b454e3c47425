"""The translation recipe measured: what more training pairs buy (a learning curve), and other variants.

Each variant is one `tfllm train --task translate` run, in its own process, with the default recipe changed only by
the variant's flags. Then the run's model is evaluated here as `tfllm evaluate` does (`translation_report`, with the
code of today, also for a run trained before): chrF2 / BLEU (sacrebleu) on the 199 test pairs of the HSK corpus in
each direction, for the model alone (greedy decoding), the model with its translation memory (`memory`: the target
of one of the 8 nearest training pairs, the one the model reads the source back from best, weighed with the
similarity), and the two baselines, most common target and nearest-neighbour retrieval, computed from the same
training pairs as the model (so they move with the learning curve too).

    python benchmarks/translation.py                       # the learning curve: 1,000, 2,000 and all 3,853 pairs
    python benchmarks/translation.py --variants all-pairs  # the default recipe alone (`tfllm train --task translate`)
    python benchmarks/translation.py --variants all-pairs vocab-4500   # the default against a variant
    python benchmarks/translation.py --steps 569           # a fixed number of steps instead of the time budget
    python benchmarks/translation.py --runs-dir runs/mt    # keep the runs; a finished run is read again, not retrained

Each run takes the default's 10-minute training budget plus its evaluation: about 13 minutes on 2 CPU cores. With
the time budget, a run on a busier or slower machine trains fewer steps, and scores lower: the table shows the steps.
The script prints one Markdown table (the README's) and the translations of the textbook's examples.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfllm.training import load_run  # noqa: E402
from tfllm.training.translation_task import read_parallel_texts, translation_report  # noqa: E402
import summary  # noqa: E402

VARIANTS = {  # name: the flags of `tfllm train --task translate`
    "1000-pairs": ["--train-pairs", "1000"],
    "2000-pairs": ["--train-pairs", "2000"],
    "all-pairs": [],
    "vocab-4500": ["--vocab-size", "4500"],  # English words split into fewer pieces, each step dearer
}
LEARNING_CURVE = ("1000-pairs", "2000-pairs", "all-pairs")
SYSTEMS = ("greedy", "memory", "most_common", "retrieval")
DIRECTIONS = ("en->zh", "zh->en")


def train(name, flags, runs_dir, steps):
    """Trains the variant into `runs_dir/name` (or reads the run that is there) and returns its metrics, with the
    test split's report of today's code as "translation"."""
    run_dir = os.path.join(runs_dir, name)
    metrics_path = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        command = [os.path.join(os.path.dirname(sys.executable), "tfllm"), "train", "--task", "translate",
                   "--output-dir", run_dir, "--quiet", *flags]
        if steps is not None:
            command += ["--steps", str(steps), "--time-budget", "none"]
        print("$", " ".join(command), flush=True)
        started = time.monotonic()
        subprocess.run(command, check=True)
        print(f"{name}: {(time.monotonic() - started) / 60:.1f} minutes end to end", flush=True)
    with open(metrics_path, encoding="utf-8") as file:
        metrics = json.load(file)
    run = load_run(run_dir)
    metrics["translation"] = translation_report(run.model, read_parallel_texts(run.config.data))
    return metrics


def table(results):
    """The Markdown table of the runs: pairs, steps, run time (`metrics.json`'s wall time: from the start of the
    run to its report, all but the process's start), best validation loss, then chrF2 / BLEU per system."""
    header = ["run", "training pairs", "parameters", "steps", "run time", "best validation loss"]
    header += [f"{direction} {system}" for direction in DIRECTIONS for system in SYSTEMS]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for name, metrics in results.items():
        row = [name, f"{metrics['train_sentence_pairs']:,}", f"{metrics['parameters'] / 1e6:.1f}M",
               f"{metrics['steps']:,}", f"{metrics['wall_time_seconds'] / 60:.1f} min",
               f"{metrics['validation_loss']:.3f}"]
        for direction in DIRECTIONS:
            systems = metrics["translation"]["directions"][direction]["systems"]
            row += [f"{systems[system]['chrf']:.1f} / {systems[system]['bleu']:.1f}" for system in SYSTEMS]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(LEARNING_CURVE))
    parser.add_argument("--steps", type=int, default=None, help="train this many steps (default: the time budget)")
    parser.add_argument("--runs-dir", default=None, help="where the runs go (default: a temporary directory)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        runs_dir = arguments.runs_dir or scratch
        results = {name: train(name, VARIANTS[name], runs_dir, arguments.steps) for name in arguments.variants}
    print(f"\nchrF2 / BLEU on the test split (sacrebleu; {len(results)} runs; load average "
          f"{os.getloadavg()[0]:.1f} at the end)\n")
    print(table(results))
    for name, metrics in results.items():
        report = metrics["translation"]
        print(f"\n{name}: " + "; ".join(f"{example['source']} -> {example['translation']} (with the memory: "
                                        f"{example['with_memory']})" for example in report["examples"]))
        for direction in DIRECTIONS:
            systems = report["directions"][direction]["systems"]
            for system in ("greedy", "memory"):
                summary.record("translation", f"{name} {direction} {system} chrF2 - retrieval chrF2",
                               systems[system]["chrf"] - systems["retrieval"]["chrf"], unit="chrF")


if __name__ == "__main__":
    main()
