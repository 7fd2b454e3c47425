import os
import tempfile

# Quiet TensorFlow's C++ start-up logs; tests are read by people.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# XLA's CPU compiler in TensorFlow 2.21 hands reductions to YNNPACK, whose fusions can crash a process that first runs
# a computation on two threads at once (tfllm/xla_flags.py). The test run, with the subprocesses and notebook kernels
# it starts, has them off, as the `tfllm` command has, unless XLA_FLAGS already chooses them.
from tfllm.xla_flags import turn_off_ynnpack_fusions  # noqa: E402  (loads no TensorFlow)

turn_off_ynnpack_fusions()

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# A test that crashes its worker process runs once more on a new one, and the run ends (tests/worker_crashes.py).
pytest_plugins = ["tests.worker_crashes"]

# Two logical CPUs, so that tf.distribute runs with two replicas on one CPU. This must happen before TensorFlow
# starts its runtime, which is why it is done here, at the very start of the test session.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with float32, a fixed seed and fresh layer names, whatever the test before it set."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
    # Fresh layer names and Keras state; Python's own collection is left to run as it does (a full gc.collect()
    # after every test cost about a second each).
    keras.backend.clear_session(free_memory=False)


@pytest.fixture(autouse=True)
def _temporary_files_in_a_folder_of_the_test(tmp_path_factory, monkeypatch):
    """`tempfile` in this process, and in the subprocesses a test starts (through TMPDIR), writes into a folder of
    this test's own (a doctest's too), which pytest deletes with its old runs: what asks `tempfile` for a folder or a
    file and leaves it there (a README example, an error log) would otherwise stay in /tmp after every run."""
    folder = tmp_path_factory.mktemp("tempfile")
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder
