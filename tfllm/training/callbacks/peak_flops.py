"""`measure_peak_flops`: the float32 matrix-multiply speed of this machine, the denominator of MFU."""

import contextlib
import time

import tensorflow as tf

_MEASURED = {}


def measure_peak_flops(size=1024, seconds=0.3, device=None):
    """Measures the float32 FLOP/s of large matrix products on one device, once per process (later calls reuse it).

    This is a *measured* peak, not a datasheet one: the speed TensorFlow reaches on `size` x `size` float32
    `tf.matmul`s here and now, so MFU (model FLOPs utilization) against it says how much of the machine's real
    matrix speed a model's training uses. A datasheet peak (e.g. tensor-core bfloat16) is usually higher; pass it
    as `peak_flops` where MFU must be comparable across machines.

    Args:
        size: the matrices' side; 1024 is large enough to saturate a CPU.
        seconds: how long to keep multiplying (after one warmup call).
        device: a TensorFlow device name such as "/GPU:0"; None uses the default device.

    Returns:
        FLOP/s as a float (2 * size**3 FLOPs per product).

    >>> measure_peak_flops(size=64, seconds=0.01) > 0
    True
    """
    key = (size, device)
    if key not in _MEASURED:
        with tf.device(device) if device else contextlib.nullcontext():
            _MEASURED[key] = _benchmark(size, seconds)
    return _MEASURED[key]


def _benchmark(size, seconds, products_per_call=4):
    a = tf.random.uniform((size, size), dtype=tf.float32)
    b = tf.random.uniform((size, size), dtype=tf.float32)

    @tf.function
    def products(a, b):
        total = tf.constant(0.0)
        for index in tf.range(products_per_call):
            # Shifting `a` by the loop index keeps the product inside the loop (it is not loop-invariant).
            total += tf.reduce_sum(tf.matmul(a + tf.cast(index, tf.float32), b))
        return total

    float(products(a, b))  # trace and warm up
    calls = 0
    start = time.perf_counter()
    while True:
        float(products(a, b))
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
    return 2.0 * size**3 * products_per_call * calls / elapsed

