"""The XLA setting of the test run (conftest.py) and of the `tfllm` command (tfllm/xla_flags.py): XLA's CPU reductions
without YNNPACK, whose fusions can crash a process that first runs a computation on two threads at once."""

import os
import subprocess
import sys

import tensorflow as tf

from tfllm import cli
from tfllm.xla_flags import YNNPACK_FUSIONS


def _ynnpack_fusions(flags, before=""):
    """How many YNNPACK fusions XLA makes of a softmax, in a fresh process whose XLA_FLAGS are `flags` (None: not
    set) and which runs the Python lines `before` first."""
    program = (
        "import tensorflow as tf\n"
        f"{before}"
        "softmax = tf.function(lambda x: tf.nn.softmax(x * 2.0, axis=-1), jit_compile=True)\n"
        "print(softmax.experimental_get_compiler_ir(tf.ones([8, 4, 64, 64]))(stage='optimized_hlo')"
        ".count('__ynn_fusion'))\n"
    )
    environment = {name: value for name, value in os.environ.items() if name != "XLA_FLAGS"}
    if flags is not None:
        environment["XLA_FLAGS"] = flags
    finished = subprocess.run([sys.executable, "-c", program], env=environment, capture_output=True, text=True,
                              check=True, timeout=120)
    return int(finished.stdout.split()[-1])


def test_the_test_run_compiles_reductions_without_ynnpack():
    softmax = tf.function(lambda x: tf.nn.softmax(x * 2.0, axis=-1), jit_compile=True)
    hlo = softmax.experimental_get_compiler_ir(tf.ones([8, 4, 64, 64]))(stage="optimized_hlo")
    assert "__ynn_fusion" not in hlo
    assert f"{YNNPACK_FUSIONS}=" in os.environ["XLA_FLAGS"].split()  # so subprocesses inherit it


def test_the_flag_is_what_keeps_ynnpack_out():
    # TensorFlow's default, which the test run changes: the same softmax gives YNNPACK fusions.
    assert _ynnpack_fusions("") > 0
    assert _ynnpack_fusions(f"{YNNPACK_FUSIONS}=") == 0


def test_the_tfllm_command_turns_the_fusions_off_before_its_first_computation():
    # `tfllm` with no command prints its help and stops; TensorFlow was imported before, as a user's import of
    # tfllm.cli may do. XLA reads its flags at its first computation, after the command set them.
    assert _ynnpack_fusions(None, before="import tfllm.cli\ntfllm.cli.main([])\n") == 0


def test_the_tfllm_command_keeps_the_users_other_flags_and_their_own_choice(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_prefer_vector_width=512")
    cli.main([])
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_prefer_vector_width=512 {YNNPACK_FUSIONS}="
    monkeypatch.setenv("XLA_FLAGS", f"{YNNPACK_FUSIONS}=reduce")
    cli.main([])
    assert os.environ["XLA_FLAGS"] == f"{YNNPACK_FUSIONS}=reduce"
    assert _ynnpack_fusions(f"{YNNPACK_FUSIONS}=reduce") > 0  # a choice XLA takes: YNNPACK's reductions are back
