"""The test run's XLA setting (conftest.py): XLA's CPU reductions without YNNPACK, whose fusions can crash a process
that first runs a computation on two threads at once."""

import os
import subprocess
import sys

import tensorflow as tf

import conftest


def _ynnpack_fusions(flags):
    """How many YNNPACK fusions XLA makes of a softmax, in a fresh process whose XLA_FLAGS are `flags`."""
    program = (
        "import tensorflow as tf\n"
        "softmax = tf.function(lambda x: tf.nn.softmax(x * 2.0, axis=-1), jit_compile=True)\n"
        "print(softmax.experimental_get_compiler_ir(tf.ones([8, 4, 64, 64]))(stage='optimized_hlo')"
        ".count('__ynn_fusion'))\n"
    )
    environment = {**os.environ, "XLA_FLAGS": flags}
    finished = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                              check=True, timeout=120)
    return int(finished.stdout.split()[-1])


def test_the_test_run_compiles_reductions_without_ynnpack():
    softmax = tf.function(lambda x: tf.nn.softmax(x * 2.0, axis=-1), jit_compile=True)
    hlo = softmax.experimental_get_compiler_ir(tf.ones([8, 4, 64, 64]))(stage="optimized_hlo")
    assert "__ynn_fusion" not in hlo
    assert f"{conftest.YNNPACK_FUSIONS}=" in os.environ["XLA_FLAGS"].split()  # so subprocesses inherit it


def test_the_flag_is_what_keeps_ynnpack_out():
    # TensorFlow's default, which the test run changes: the same softmax gives YNNPACK fusions.
    assert _ynnpack_fusions("") > 0
    assert _ynnpack_fusions(f"{conftest.YNNPACK_FUSIONS}=") == 0
