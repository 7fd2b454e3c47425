"""`measure_peak_flops`: the matrix-multiply speed of this machine in a dtype, the denominator of MFU.

One definition for `tfllm train`'s MFU and for every benchmark's (benchmarks/machine.py uses `matmul_flops`): the
FLOP/s of a square `PEAK_SIZE` x `PEAK_SIZE` matrix product (`2 * n**3` FLOPs) in `dtype`, in a `tf.function` (the
plain graph), on all the cores TensorFlow uses, after one warm-up call: the fastest of `PEAK_CALLS` calls, each
timed alone to its result. The fastest, not the mean: a shared machine slows down in spells, and the fastest call is
the one they touched least. MFU divides by the peak of the dtype a model's products run in, its compute dtype:
float32 for float32, bfloat16 under mixed_bfloat16, whose products some CPUs (AMX) and every recent accelerator
run several times faster. `ThroughputCallback` measures it again when training outruns it (`again=True`): a
reading taken in a slow moment can only be raised.

This is a *measured* peak, not a datasheet one: the speed TensorFlow reaches on this machine, here and now. Until
2026-12 `tfllm train` averaged 1024 x 1024 float32 products over 0.3 s instead, a slower measure than the
benchmarks' (on an Intel Xeon, 230-250 against 300-305 GFLOP/s in the same minutes), so its MFU read higher than
theirs for the same step, and above 1 under mixed_bfloat16.
"""

import contextlib
import time

import tensorflow as tf

PEAK_SIZE = 2048
PEAK_CALLS = 10

_MEASURED = {}


def matmul_flops(dtype="float32", size=PEAK_SIZE, calls=PEAK_CALLS):
    """The FLOP/s of the fastest of `calls` `size` x `size` products in `dtype` on the current device, measured now.

    >>> matmul_flops("float32", size=64, calls=2) > 0
    True
    """
    a = tf.cast(tf.random.stateless_normal((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((size, size), seed=(3, 4)), dtype)
    product = tf.function(tf.matmul)
    product(a, b).numpy()  # trace and warm up
    fastest = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        product(a, b).numpy()
        fastest = min(fastest, time.perf_counter() - start)
    return 2 * size**3 / fastest


def measure_peak_flops(dtype="float32", device=None, size=PEAK_SIZE, calls=PEAK_CALLS, again=False):
    """The peak FLOP/s of `dtype` products on one device (`matmul_flops`), measured once per process: later calls
    with the same arguments reuse it, unless `again` measures anew and keeps the faster of the two readings.

    A datasheet peak (e.g. tensor-core bfloat16) is usually higher; pass it as `peak_flops` where MFU must be
    comparable across machines.

    Args:
        dtype: the dtype the model's products run in ("float32", "bfloat16", "float16").
        device: a TensorFlow device name such as "/GPU:0"; None uses the default device.
        size: the matrices' side.
        calls: how many products to time; the fastest counts.
        again: measure even when a reading exists, and keep the faster one (a slow moment of a shared machine
            under-reads the peak; a later reading can only raise it).

    Returns:
        FLOP/s as a float.

    >>> first = measure_peak_flops(size=64, calls=2)
    >>> measure_peak_flops(size=64, calls=2) == first  # measured once
    True
    >>> measure_peak_flops(size=64, calls=2, again=True) >= first  # measured again, the faster kept
    True
    """
    key = (tf.as_dtype(dtype).name, device, size, calls)
    if again or key not in _MEASURED:
        with tf.device(device) if device else contextlib.nullcontext():
            _MEASURED[key] = max(_MEASURED.get(key, 0.0), matmul_flops(dtype, size, calls))
    return _MEASURED[key]
