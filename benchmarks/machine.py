"""The machine a benchmark runs on: the one owner of its facts and of the matmul peak that MFU is measured against.

Every benchmark that prints a machine line or a model FLOPs utilization (MFU) asks this module, so that all of
them describe the machine alike and divide by a peak measured the same way, the way `tfllm train` measures its own
MFU's (`tfllm.training.callbacks.peak_flops`, whose `matmul_flops` this module calls).

The matmul peak (one definition for every benchmark): FLOP/s of a square `MATMUL_SIZE` x `MATMUL_SIZE` matrix
product (`2 * n**3` FLOPs) in a `tf.function` (the plain graph), on all the cores TensorFlow uses by default, after
one warm-up call: the FASTEST of `PEAK_CALLS` calls, each timed alone to its result. The fastest call, not the
median, because a peak is what the machine can do; on a busy machine the other calls are the ones slowed, so the
peak moves less than a median would (the load average is reported next to it). MFU is then the model's FLOPs per
second over the peak of the dtype its matmuls run in: float32 for float32, bfloat16 for mixed_bfloat16.

A benchmark that reports MFU measures the peak in each of its alternating rounds, beside the steps it divides, and
divides the steps' median by the median of those peaks (`RoundPeaks`). Shared machines change speed over seconds:
on the Intel Xeon of 2026-12, a peak measured once before the rounds read 157 GFLOP/s where the same machine's
fast spells reached 375, and an MFU divided by it read above 100%.

Example:

    from machine import RoundPeaks, machine_facts, machine_line, matmul_peak

    print(machine_line())                      # "AMD EPYC (CPU family 25, model 17), 2 cores (2 usable), load 1.4"
    peak = matmul_peak("float32")              # FLOP/s, now
    peaks = RoundPeaks(["float32"])
    for _ in range(rounds):
        ...                                    # time each contender once
        peaks.measure()                        # and the peak in the same round
    mfu = flops_per_token * tokens_per_second / peaks.median()["float32"]
    facts = machine_facts(peaks=True)          # a dict for a results file: CPU, cores, load, date, versions, peaks

    python benchmarks/machine.py               # those facts as JSON (run_all.py runs this first)
"""

import datetime
import json
import os
import platform
import statistics
import time

import keras
import tensorflow as tf

from tfllm.training.callbacks.peak_flops import PEAK_CALLS, PEAK_SIZE, matmul_flops

MATMUL_SIZE = PEAK_SIZE
PEAK_DTYPES = ("float32", "bfloat16")


def cpu_model():
    """The CPU's model name with its family and model numbers, from /proc/cpuinfo (a name such as "AMD EPYC" alone
    does not tell a Zen 4 from a Zen 5), else `platform.processor()`."""
    if not os.path.exists("/proc/cpuinfo"):
        return platform.processor() or "unknown CPU"
    fields = {}
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first processor's
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (CPU family {fields['cpu family']}, model {fields['model']})"
    return name


def usable_cores():
    """The cores this process may run on (its affinity set), or all of them where that is not known."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def load_average():
    """The 1-minute load average (None where the system does not report one)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine_line():
    """One line for a table's heading: CPU model, cores and the load average now."""
    load = load_now()
    return f"{cpu_model()}, {os.cpu_count()} cores ({usable_cores()} usable)" + (f", {load}" if load else "")


def load_now():
    """"load 1.4", the load average now ("" where the system does not tell): a heading's "after" figure."""
    load = load_average()
    return "" if load is None else f"load {load:.1f}"


def matmul_peak(dtype="float32", size=MATMUL_SIZE, calls=PEAK_CALLS):
    """FLOP/s of the fastest of `calls` `size` x `size` matmuls in `dtype` (the module docstring's definition, which
    is `tfllm train`'s: `tfllm.training.callbacks.peak_flops`)."""
    return matmul_flops(dtype, size, calls)


class RoundPeaks:
    """The matmul peak of each dtype measured once per round of a benchmark's alternating rounds: `measure()` in
    every round, `median()` the median over the rounds, `{dtype: FLOP/s}`.

    >>> peaks = RoundPeaks(["float32"], size=64)
    >>> peaks.measure(); peaks.measure(); peaks.measure()
    >>> len(peaks.samples["float32"]), peaks.median()["float32"] > 0
    (3, True)
    """

    def __init__(self, dtypes, size=MATMUL_SIZE):
        self.size = size
        self.samples = {dtype: [] for dtype in dtypes}  # dtype: [FLOP/s of each round]

    def measure(self):
        for dtype, samples in self.samples.items():
            samples.append(matmul_peak(dtype, self.size))

    def median(self):
        if not all(self.samples.values()):
            raise ValueError("RoundPeaks.median() before any measure(): measure the peak in every round")
        return {dtype: statistics.median(samples) for dtype, samples in self.samples.items()}


def matmul_peaks():
    """`{dtype: FLOP/s}` of `matmul_peak` for float32 and bfloat16."""
    return {dtype: matmul_peak(dtype) for dtype in PEAK_DTYPES}


def read_bandwidth(gigabytes=1.0, repeats=5):
    """Bytes per second read by a multi-threaded sum of a float32 tensor of `gigabytes` (median of `repeats`)."""
    values = tf.ones([int(gigabytes * 2**30 / 4)], tf.float32)
    total = tf.function(lambda x: tf.reduce_sum(x))
    total(values)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        total(values).numpy()
        times.append(time.perf_counter() - start)
    return values.shape[0] * 4 / statistics.median(times)


def machine_facts(peaks=False):
    """The machine's facts as a JSON-ready dict; with `peaks`, also `matmul_peaks()` in GFLOP/s (a few seconds)."""
    facts = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    if peaks:
        facts["matmul_peak_gflops"] = {dtype: peak / 1e9 for dtype, peak in matmul_peaks().items()}
        facts["matmul_peak_definition"] = (f"fastest of {PEAK_CALLS} calls of a {MATMUL_SIZE} x {MATMUL_SIZE} matmul "
                                           "in a tf.function, all cores")
    return facts


if __name__ == "__main__":
    print(json.dumps(machine_facts(peaks=True), indent=2))
