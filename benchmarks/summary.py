"""Headline figures of the benchmarks, collected for `run_all.py`'s table.

Each benchmark prints its own detailed table and also calls `record(...)` for the few figures that matter (ratios
against a baseline measured in the same process, with the goal they are held to). When `run_all.py` starts a
benchmark it sets `TFLLM_BENCHMARK_SUMMARY` to a file, and `record` appends one JSON line to it; run by hand, a
benchmark records nothing.
"""

import json
import os

SUMMARY_FILE_VARIABLE = "TFLLM_BENCHMARK_SUMMARY"


def record(benchmark, measure, value, unit="x", goal=None):
    """Adds one headline figure: e.g. `record("generation", "transformer greedy: generate / naive", 17.4, goal=10)`.

    `goal` is the least acceptable value (None: a figure reported without a goal).
    """
    path = os.environ.get(SUMMARY_FILE_VARIABLE)
    if not path:
        return
    line = {"benchmark": benchmark, "measure": measure, "value": float(value), "unit": unit,
            "goal": None if goal is None else float(goal)}
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(line) + "\n")


def read(path):
    """The figures recorded in `path`, in order."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
