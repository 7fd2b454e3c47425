"""Runs every benchmark, each in a fresh process, and prints one table of their headline figures.

    python benchmarks/run_all.py            # all eight, at their default settings: about 50 minutes on 2 CPU cores
    python benchmarks/run_all.py --quick    # fewer rounds and a shorter architecture comparison: about 15 minutes
    python benchmarks/run_all.py --only generation export

Each benchmark's own output (its detailed table) goes to `--log` as it runs; the summary at the end lists every
figure the benchmarks recorded (`summary.record`) with its goal and whether it was met. The figures are ratios
measured in one process against a baseline timed alternately with it, so a busy machine slows both alike; the load
average is printed with the table.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import summary

HERE = os.path.dirname(os.path.abspath(__file__))
BENCHMARKS = {  # name: (arguments by default, arguments with --quick)
    "recurrent_layers": ([], ["--rounds", "3"]),
    "input_pipeline": ([], []),
    "models": ([], ["--rounds", "3"]),
    "compare_architectures": ([], ["--seconds", "30", "--eval-every", "100"]),
    "generation": ([], ["--rounds", "2"]),
    "export": ([], ["--rounds", "3"]),
    "gpt2_generation": ([], ["--rounds", "2"]),
    "lora_finetuning": ([], ["--rounds", "2"]),
}


def run(name, arguments, summary_path, log):
    """Runs one benchmark script; returns its exit status and seconds."""
    command = [sys.executable, os.path.join(HERE, f"{name}.py"), *arguments]
    log.write(f"\n$ {' '.join(command)}\n")
    log.flush()
    started = time.monotonic()
    env = {**os.environ, summary.SUMMARY_FILE_VARIABLE: summary_path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir()).returncode
    return status, time.monotonic() - started


def table(figures):
    """The summary as aligned text rows."""
    width = max([len(figure["measure"]) for figure in figures] + [10])
    rows = [f"{'benchmark':<22} {'measure':<{width}} {'value':>9} {'goal':>8}  met", "-" * (width + 48)]
    for figure in figures:
        unit, goal = figure["unit"], figure["goal"]
        value = f"{figure['value']:.1%}" if unit == "MFU" else f"{figure['value']:.2f}{'x' if unit == 'x' else ''}"
        goal_text = "" if goal is None else f">= {goal:g}{'x' if unit == 'x' else ''}"
        met = "" if goal is None else ("yes" if figure["value"] >= goal else "NO")
        rows.append(f"{figure['benchmark']:<22} {figure['measure']:<{width}} {value:>9} {goal_text:>8}  {met}")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a 30-second architecture comparison")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "tfllm-benchmarks.log"),
                        help="where the benchmarks' own output goes")
    args = parser.parse_args()

    handle, summary_path = tempfile.mkstemp(prefix="tfllm-benchmarks-", suffix=".jsonl")
    os.close(handle)
    failed = []
    with open(args.log, "w", encoding="utf-8") as log:
        for name in args.only:
            arguments = BENCHMARKS[name][1 if args.quick else 0]
            print(f"{name} ...", end=" ", flush=True)
            status, seconds = run(name, arguments, summary_path, log)
            print(f"{seconds:.0f} s" + ("" if status == 0 else f", FAILED (exit status {status})"), flush=True)
            if status != 0:
                failed.append(name)
    figures = summary.read(summary_path)
    print(f"\n{table(figures)}\n")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; the benchmarks' own tables: {args.log}")
    if failed:
        print(f"failed: {', '.join(failed)} (see the log)")
        sys.exit(1)


if __name__ == "__main__":
    main()
