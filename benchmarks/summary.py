"""Headline figures of the benchmarks, collected for `run_all.py`'s table.

Each benchmark prints its own detailed table and also calls `record(...)` for the few figures that matter (ratios
against a baseline measured in the same process, with the goal they are held to). When `run_all.py` starts a
benchmark it sets `TFLLM_BENCHMARK_SUMMARY` to a file, and `record` appends one JSON line to it; run by hand, a
benchmark records nothing. `markdown_table` is how run_all.py shows them in benchmarks/results/summary.md.
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


def met(figure):
    """"met" or "NOT met" against the figure's goal ("" when it has none)."""
    if figure["goal"] is None:
        return ""
    return "met" if figure["value"] >= figure["goal"] else "NOT met"


def formatted(value, unit, digits=".2f"):
    """A figure as the table shows it: `17.40x`, `12.3%` for an MFU, else the number and its unit."""
    if unit == "MFU":
        return f"{value:.1%}"
    return f"{value:{digits}}x" if unit == "x" else f"{value:{digits}} {unit}"


def shown(figure):
    """The figure's value as the table shows it: one more digit where rounding would show a missed goal as reached.

    >>> shown({"value": 1.247, "unit": "x", "goal": 1.25}), shown({"value": 0.6996, "unit": "MFU", "goal": 0.7})
    ('1.247x', '69.960%')
    >>> shown({"value": 1.2449, "unit": "x", "goal": 1.2})
    '1.24x'
    """
    value, unit, goal = figure["value"], figure["unit"], figure["goal"]
    text = formatted(value, unit)
    if goal is not None and value < goal and text == formatted(goal, unit):
        return f"{value:.3%}" if unit == "MFU" else formatted(value, unit, digits=".3f")
    return text


def markdown_table(figures):
    """The figures as a markdown table: benchmark, measure, value, goal, met.

    >>> print(markdown_table([{"benchmark": "generation", "measure": "cache's gain", "value": 12.0, "unit": "x",
    ...                        "goal": 10.0}]))
    | benchmark | measure | value | goal | met |
    |---|---|---:|---:|---|
    | generation | cache's gain | 12.00x | >= 10x | met |
    """
    rows = ["| benchmark | measure | value | goal | met |", "|---|---|---:|---:|---|"]
    for figure in figures:
        goal = "" if figure["goal"] is None else ">= " + formatted(figure["goal"], figure["unit"], digits="g")
        rows.append(f"| {figure['benchmark']} | {figure['measure']} | {shown(figure)} | "
                    f"{goal} | {met(figure)} |")
    return "\n".join(rows)


RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def write_results(name, quick, data, lines):
    """Writes a benchmark's figures to benchmarks/results/NAME.json (`data`) and NAME.md (`lines`, markdown); with
    `quick`, to NAME_quick.* instead, so a smoke run never replaces a full one."""
    os.makedirs(RESULTS, exist_ok=True)
    stem = os.path.join(RESULTS, name + ("_quick" if quick else ""))
    with open(stem + ".json", "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
    with open(stem + ".md", "w", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")
