"""Runs every benchmark, each in a fresh process, and writes one summary of their headline figures.

    python benchmarks/run_all.py                       # every benchmark, default settings: over an hour on 2 cores
    python benchmarks/run_all.py --quick               # fewer rounds, a 30-second architecture comparison
    python benchmarks/run_all.py --only generation export
    python benchmarks/run_all.py --only models --keep-others --readme README.md   # rerun one, keep the others' rows
    python benchmarks/run_all.py --readme README.md    # also puts the summary into the README

Each benchmark's own output (its detailed table) goes to `--log` as it runs. The summary lists every figure the
benchmarks recorded (`summary.record`) with its goal and whether it was met, under the facts of the run: the date,
the CPU model and core count, the matmul peak (`machine.py`'s one definition), the load average before and after,
the versions, quick or full settings, and each script's seconds and status (a script that is missing or fails is
reported as failed; the others still run). It is written to benchmarks/results/summary.md and summary.json.

With `--keep-others`, the scripts left out of `--only` keep their rows and figures from the last summary.json, and
the summary says which run each row comes from: for rerunning the benchmarks a change touches without the hour the
others take. It refuses to mix quick and full settings, or rows measured on another CPU model or core count.

`--readme PATH` replaces the text between `<!-- run_all.py table: begin -->` and `<!-- run_all.py table: end -->`
in that file with summary.md, and, for each detailed table of `README_INCLUDES` that the README marks, the text
between `<!-- results/NAME.md: begin -->` and `<!-- results/NAME.md: end -->` with benchmarks/results/NAME.md, so
the README's figures are literally the files the benchmarks wrote. The figures are ratios measured in one process
against a baseline timed alternately with it, so a busy machine slows both alike.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import summary

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
# name: (script, arguments by default, arguments with --quick). Quick runs keep at least 3 alternating rounds: the
# median of 2 is their mean, which one round in a slow spell of a shared machine moves. The two scripts behind the
# training goals keep 5: with 3, two runs 25 minutes apart on the same machine read tfllm / KerasHub in float32 at
# 1.16x and 0.83x (where_time_goes), and 1.10x and 1.42x (transformer_training, 1 step a round).
BENCHMARKS = {
    "recurrent_layers": ("recurrent_layers", [], ["--rounds", "3"]),
    "input_pipeline": ("input_pipeline", [], []),
    "models": ("models", [], ["--rounds", "3"]),
    "jit_compile_choice": ("jit_compile_choice", [], ["--rounds", "5"]),
    "transformer_training": ("transformer_training", [], ["--rounds", "5", "--steps", "2"]),
    "compare_architectures": ("compare_architectures", [], ["--seconds", "30", "--eval-every", "100"]),
    "generation": ("generation", [], ["--rounds", "3"]),
    "transformer_generation": ("transformer_generation", [], ["--rounds", "3"]),
    "export": ("export", [], ["--rounds", "3"]),
    "export_xla": ("export", ["--xla"], ["--xla", "--rounds", "3"]),  # the measurement behind export's XLA default
    "export_writing": ("export_writing", [], ["--rounds", "3"]),
    "optimizer_update": ("optimizer_update", [], ["--rounds", "3"]),  # the measurement behind FusedAdamW
    "first_generate": ("first_generate", [], ["--rounds", "3"]),
    "xla_vector_width": ("xla_vector_width", [], ["--rounds", "7"]),  # fresh processes drift: 3 rounds were noise
    # the cost of the XLA setting of the tfllm command and the test run
    "xla_ynn_fusions": ("xla_ynn_fusions", [], ["--rounds", "7"]),
    "gpt2_generation": ("gpt2_generation", [], ["--rounds", "3"]),
    "lora_finetuning": ("lora_finetuning", [], ["--rounds", "3"]),
    "where_time_goes": ("where_time_goes", [], ["--rounds", "5"]),  # the bounds behind the goals not met
}
TABLE_MARKERS = ("<!-- run_all.py table: begin -->", "<!-- run_all.py table: end -->")
# Detailed tables the README may show below the summary, each between its markers.
README_INCLUDES = ("transformer_training.md", "transformer_generation.md", "gpt2_generation.md", "lora_finetuning.md",
                   "where_time_goes.md")


def run(name, arguments, figures_path, log):
    """Runs the script of benchmark `name` with `arguments`: `{"name", "script", "arguments", "status", "seconds"}`,
    status "ok" or why it failed."""
    script = os.path.join(HERE, f"{BENCHMARKS[name][0]}.py")
    entry = {"name": name, "script": os.path.basename(script), "arguments": arguments}
    if not os.path.exists(script):
        return {**entry, "status": f"FAILED: no {entry['script']}", "seconds": 0.0}
    command = [sys.executable, script, *arguments]
    log.write(f"\n$ {' '.join(command)}\n")
    log.flush()
    started = time.monotonic()
    env = {**os.environ, summary.SUMMARY_FILE_VARIABLE: figures_path, "TF_CPP_MIN_LOG_LEVEL": "2"}
    code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir()).returncode
    status = "ok" if code == 0 else f"FAILED: exit status {code}"
    return {**entry, "status": status, "seconds": time.monotonic() - started}


def machine_facts():
    """`machine.py`'s facts with the matmul peaks, measured in a subprocess so that this process stays free of
    TensorFlow while the benchmarks run."""
    output = subprocess.run([sys.executable, os.path.join(HERE, "machine.py")], capture_output=True, text=True,
                            check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    return json.loads(output)


def check_can_keep(parser, args, path, machine):
    """Stops, before any benchmark runs, when `--keep-others` has nothing to keep or would mix quick and full runs,
    or runs on different CPUs (`machine`: this run's `machine_facts()`)."""
    if len(set(args.only)) == len(BENCHMARKS):
        parser.error("--keep-others needs --only: with every script rerun there is nothing to keep")
    if not os.path.exists(path):
        parser.error(f"--keep-others: there is no {path} to keep rows from")
    with open(path, encoding="utf-8") as file:
        last = json.load(file)
    last_quick = last["quick"]
    if last_quick != args.quick:
        parser.error(f"--keep-others: the last run used {'quick' if last_quick else 'full'} settings; rerun with"
                     f"{'' if last_quick else 'out'} --quick, so that one table does not mix the two")
    here = (machine["cpu"], machine["cores"])
    there = (last["machine"]["cpu"], last["machine"]["cores"])
    if here != there:
        parser.error(f"--keep-others: the last run was on {there[0]} with {there[1]} cores, this machine is "
                     f"{here[0]} with {here[1]}; rerun every script (without --only), so that one table does not "
                     "mix two kinds of machine")


def kept_from_last_run(report, path):
    """`report` with the entries and figures of the last summary.json at `path` whose scripts it did not rerun, each
    entry dated by the run it comes from, in BENCHMARKS' order."""
    with open(path, encoding="utf-8") as file:
        last = json.load(file)
    rerun = {entry["name"] for entry in report["benchmarks"]}
    entries = {entry["name"]: {"date": last["machine"]["date"], **entry} for entry in last["benchmarks"]}
    entries.update({entry["name"]: entry for entry in report["benchmarks"]})
    figures = [figure for figure in last["figures"] if _run_of(figure) not in rerun] + report["figures"]
    order = list(BENCHMARKS)
    dates = {entry.get("date") for entry in entries.values()}
    earlier = [*last.get("kept_from", []), {"date": last["machine"]["date"], "command": last["command"]}]
    return {**report, "kept_from": [run for run in earlier if run["date"] in dates],
            "benchmarks": sorted(entries.values(), key=lambda entry: order.index(entry["name"])),
            "figures": sorted(figures, key=lambda figure: order.index(_run_of(figure)))}


def _run_of(figure):
    """The BENCHMARKS name of the run that recorded `figure` (older summaries recorded only the script's name)."""
    return figure.get("run", figure["benchmark"])


def summary_markdown(report):
    """summary.md: the run's facts, a row per script, and the table of every recorded figure."""
    facts, peaks = report["machine"], report["machine"]["matmul_peak_gflops"]
    kept = report.get("kept_from")
    lines = [
        f"Run {facts['date']}: `{report['command']}` ({'quick' if report['quick'] else 'full'} settings).",
        *(["The rows of the scripts it did not rerun are kept from earlier runs, "
           + "; ".join(f"{run['date']} (`{run['command']}`)" for run in kept)
           + ": the table's last column says which run each comes from."] if kept else []),
        "",
        f"Machine: {facts['cpu']}, {facts['cores']} cores ({facts['usable_cores']} usable); matmul peak "
        f"float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s "
        f"({facts['matmul_peak_definition']}); load average {report['load_average_before']:.1f} before, "
        f"{report['load_average_after']:.1f} after; Python {facts['python']}, TensorFlow {facts['tensorflow']}, "
        f"Keras {facts['keras']}.",
        "",
        "| script | arguments | seconds | status |" + (" run |" if kept else ""),
        "|---|---|---:|---|" + ("---|" if kept else ""),
    ]
    for entry in report["benchmarks"]:
        arguments = f"`{' '.join(entry['arguments'])}`" if entry["arguments"] else "(defaults)"
        lines.append(f"| `{entry['script']}` | {arguments} | {entry['seconds']:.0f} | {entry['status']} |"
                     + (f" {entry.get('date', facts['date'])} |" if kept else ""))
    return "\n".join([*lines, "", summary.markdown_table(report["figures"])]) + "\n"


def write_summary(report):
    """Writes benchmarks/results/summary.{json,md}; returns the markdown."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "summary.json"), "w", encoding="utf-8") as file:
        json.dump(report, file, indent=2)
    markdown = summary_markdown(report)
    with open(os.path.join(RESULTS, "summary.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    return markdown


def replace_between(text, markers, content, where):
    """`text` with what lies between the two `markers` replaced by `content`."""
    begin, end = markers
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"{where} has no '{begin}' ... '{end}' markers")
    return text[: start + len(begin)] + "\n" + content.rstrip("\n") + "\n" + text[stop:]


def refresh_readme(path, markdown):
    """Puts summary.md between its markers in the README at `path` (which must have them), and each file of
    README_INCLUDES between its own markers where the README has them."""
    with open(path, encoding="utf-8") as file:
        text = replace_between(file.read(), TABLE_MARKERS, markdown, path)
    for name in README_INCLUDES:
        markers = (f"<!-- results/{name}: begin -->", f"<!-- results/{name}: end -->")
        if markers[0] in text:
            with open(os.path.join(RESULTS, name), encoding="utf-8") as file:
                text = replace_between(text, markers, file.read(), path)
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, a 30-second architecture comparison")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS))
    parser.add_argument("--log", default=os.path.join(tempfile.gettempdir(), "tfllm-benchmarks.log"),
                        help="where the benchmarks' own output goes")
    parser.add_argument("--readme", help="a README whose marked benchmark section to replace with the summary")
    parser.add_argument("--keep-others", action="store_true",
                        help="keep the rows of the scripts not in --only from the last summary.json")
    args = parser.parse_args()
    load_average_before, machine = os.getloadavg()[0], machine_facts()
    if args.keep_others:
        check_can_keep(parser, args, os.path.join(RESULTS, "summary.json"), machine)

    report = {"command": "python benchmarks/run_all.py " + " ".join(sys.argv[1:]), "quick": args.quick,
              "load_average_before": load_average_before, "machine": machine, "benchmarks": [], "figures": []}
    handle, figures_path = tempfile.mkstemp(prefix="tfllm-benchmarks-", suffix=".jsonl")
    os.close(handle)
    with open(args.log, "w", encoding="utf-8") as log:
        for name in args.only:
            print(f"{name} ...", end=" ", flush=True)
            entry = run(name, BENCHMARKS[name][2 if args.quick else 1], figures_path, log)
            recorded = summary.read(figures_path)
            report["figures"] += [{**figure, "run": name} for figure in recorded[len(report["figures"]):]]
            print(f"{entry['seconds']:.0f} s, {entry['status']}", flush=True)
            report["benchmarks"].append(entry)
    report["load_average_after"] = os.getloadavg()[0]
    os.remove(figures_path)
    if args.keep_others:
        report = kept_from_last_run(report, os.path.join(RESULTS, "summary.json"))
    markdown = write_summary(report)
    print(f"\n{markdown}\nwritten to {RESULTS}/summary.md and .json; the benchmarks' own tables: {args.log}")
    if args.readme:
        refresh_readme(args.readme, markdown)
        print(f"{args.readme}: benchmark tables replaced")
    if any(entry["status"] != "ok" for entry in report["benchmarks"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
