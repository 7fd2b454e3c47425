"""Choosing a `tf.distribute` strategy by name: one `model.fit` from one CPU to many GPUs, many hosts and TPUs.

`get_strategy(spec)` returns a strategy, and everything tfllm trains is made in its scope by the recipes
(`pretrain`, `finetune_run`): the model, its optimizer and its metrics. Datasets are sharded by data (each worker
reads every n-th batch of the same stream, so all workers must use the same seed), and `train.batch_size` is the
global batch: each of the R replicas gets `batch_size / R` of it.

| spec | strategy | for |
| --- | --- | --- |
| "auto" | a TPU if this is a TPU VM (or `TPU_NAME` is set), else `MirroredStrategy` over the GPUs (or the logical CPUs) if there are several, else the one GPU or the CPU | the default |
| "cpu" | `OneDeviceStrategy("/cpu:0")` | forcing the CPU on a machine with accelerators |
| "mirrored" | `MirroredStrategy` over every GPU (or every logical CPU) | many GPUs in one host |
| "multiworker" | `MultiWorkerMirroredStrategy` from `TF_CONFIG` | many hosts, each with its GPUs or CPU |
| "tpu" | `TPUStrategy` through `TPUClusterResolver` | Cloud TPU VMs and pods |

XLA and mixed precision per strategy: `jit_compile="auto"` is Keras's rule for the train step: XLA on a machine with
an accelerator and no strategy; the plain graph on CPU-only machines (where it measures faster, but for the
recurrent models in float32, which `CausalLM.compile` gives XLA there) and under `tf.distribute` strategies (pass
`jit_compile=True` to try XLA there: TPUStrategy always compiles with XLA anyway).
XLA with `MirroredStrategy` over logical CPU devices fails inside TensorFlow ("Trying to access resource ... located
in device CPU:1 from device CPU:0"), so `resolve_jit_compile` turns an explicit `True` off there, with a log line.
`mixed_bfloat16` suits TPUs and recent CPUs and GPUs; `mixed_float16` (with loss scaling) suits older GPUs.
"""

import json
import logging
import os

import tensorflow as tf

from tfllm.checks import require_choice, require_positive_int
from tfllm.choices import STRATEGIES

log = logging.getLogger("tfllm")


def get_strategy(spec="auto", logical_cpus=None):
    """The `tf.distribute.Strategy` named by `spec` (see the module's table).

    Args:
        spec: "auto", "cpu", "mirrored", "multiworker" or "tpu".
        logical_cpus: split the CPU into this many logical devices first (for trying MirroredStrategy on one
            machine without accelerators); must be called before TensorFlow has started its runtime (before any
            op ran), as TensorFlow fixes its devices then.

    Raises:
        ValueError: an unknown spec; "multiworker" without a valid `TF_CONFIG`; "tpu" where there is no TPU (at
            once, not after a timeout); `logical_cpus` after the runtime started.

    Example:

    >>> get_strategy("cpu").num_replicas_in_sync
    1
    """
    require_choice("strategy", spec, STRATEGIES)
    if spec == "auto":
        _refuse_a_cluster()
    if logical_cpus is not None:
        split_cpu(require_positive_int("logical_cpus", logical_cpus))
    if spec not in _MADE:
        # One strategy per kind and process: the collective ops of two MirroredStrategy objects in one process can
        # take each other's instance keys, and their all-reduces then fail with shape mismatches (seen when a
        # notebook or a test suite makes a second one).
        _MADE[spec] = _make_strategy(spec)
    return _MADE[spec]


_MADE = {}


def _make_strategy(spec):
    if spec == "auto":
        if _tpu_hint():
            return _tpu_strategy()
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        if len(gpus) == 1:
            return tf.distribute.OneDeviceStrategy("/gpu:0")
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            return tf.distribute.MirroredStrategy([cpu.name for cpu in cpus])
        return tf.distribute.get_strategy()  # the default strategy: no distribution machinery at all
    if spec == "cpu":
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    if spec == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if spec == "multiworker":
        cluster = read_tf_config()
        log.info("MultiWorkerMirroredStrategy: %s %d of a cluster of %s", cluster["task"]["type"],
                 cluster["task"]["index"], {name: len(hosts) for name, hosts in cluster["cluster"].items()})
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy()


def _refuse_a_cluster():
    """Refuses "auto" in a process whose `TF_CONFIG` names a cluster of several tasks: every task would train alone,
    all of them into the same run directory."""
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        tasks = _cluster_size(config) if _tf_config_problem(config) is None else 0
    except json.JSONDecodeError:
        return
    if tasks > 1:
        raise ValueError(f"TF_CONFIG names a cluster of {tasks} tasks, and strategy='auto' trains in this process "
                         "alone: give strategy='multiworker' (--strategy multiworker) on every task, or unset "
                         "TF_CONFIG")


def split_cpu(count):
    """Splits the physical CPU into `count` logical devices (for MirroredStrategy on one CPU), once per process."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    if existing is not None and len(existing) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise ValueError(
            f"logical_cpus={count} is too late: TensorFlow's runtime already started with "
            f"{len(tf.config.list_logical_devices('CPU'))} CPU device(s). Split the CPU before anything else runs "
            "(tfllm train --logical-cpus N does)"
        ) from None


def read_tf_config():
    """The parsed `TF_CONFIG` of a multi-worker job; a `ValueError` says what is missing or wrong.

    The cluster maps task types to lists of "host:port" and holds workers, a chief, or both; the task names its type
    and its index (an int) in that type's list.
    """
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise ValueError(
            'strategy="multiworker" needs TF_CONFIG: set it on every worker to {"cluster": {"worker": ["host1:port", '
            '"host2:port"]}, "task": {"type": "worker", "index": N}}'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not JSON ({error}): {text[:200]}") from None
    problem = _tf_config_problem(config)
    if problem:
        raise ValueError(f"TF_CONFIG is not a valid multi-worker configuration: {problem}")
    return config


def _tf_config_problem(config):
    """What is wrong with a parsed `TF_CONFIG`, or None."""
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        return 'expected an object with "cluster" and "task"'
    cluster, task = config["cluster"], config.get("task")
    for name, hosts in cluster.items():
        if not (isinstance(hosts, list) and all(isinstance(host, str) for host in hosts)):
            return f'cluster.{name} is {hosts!r:.60}, expected a list of "host:port" strings'
    if not cluster.get("worker") and not cluster.get("chief"):
        return 'the cluster lists no workers: expected cluster.worker (or cluster.chief) to hold "host:port" strings'
    if not isinstance(task, dict) or not isinstance(task.get("type"), str):
        return f'task is {task!r:.60}, expected {{"type": "worker", "index": N}}'
    index = task.get("index")
    if task["type"] not in cluster or isinstance(index, bool) or not isinstance(index, int) or not (
            0 <= index < len(cluster[task["type"]])):
        sizes = {name: len(hosts) for name, hosts in cluster.items()}
        return f"task {task} is not in the cluster {sizes}: expected a type of the cluster and an int index in it"
    return None


def _cluster_size(config):
    """The number of tasks a parsed `TF_CONFIG`'s cluster lists (chief, workers and any others)."""
    return sum(len(hosts) for hosts in config["cluster"].values())


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on the workers of a multi-worker job other than
    the chief (worker 0, or the task of type "chief").

    Example:

    >>> is_chief(tf.distribute.get_strategy()), is_chief(get_strategy("cpu"))  # one process: it writes
    (True, True)
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type in (None, "worker") and resolver.task_id == 0 and not has_chief


def barrier(strategy):
    """Returns once every worker of a multi-worker job has reached it (an all-reduce of one number); at once under
    any other strategy. The recipes call it between looking at the run directory and writing to it, so that no
    worker reads the chief's half-written directory."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return

    @tf.function(autograph=False)  # eagerly, TensorFlow warns of the overhead on every call
    def all_reduce_one():
        ones = strategy.run(lambda: tf.constant(1.0))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)

    all_reduce_one()


def resolve_jit_compile(jit_compile, strategy):
    """`jit_compile` for `model.compile` under `strategy`: False where XLA cannot run the train step.

    That is under a `MirroredStrategy` over logical CPU devices (`get_strategy("mirrored", logical_cpus=2)`);
    elsewhere `jit_compile` is kept.

    Example:

    >>> resolve_jit_compile("auto", tf.distribute.get_strategy()), resolve_jit_compile(True, get_strategy("cpu"))
    ('auto', True)
    """
    if jit_compile is False:
        return False
    try:
        devices = strategy.extended.worker_devices
    except (AttributeError, RuntimeError, NotImplementedError):  # the default strategy: one device
        return jit_compile
    on_logical_cpus = len(devices) > 1 and all("CPU" in device.upper() for device in devices)
    if on_logical_cpus:
        if jit_compile is True:
            log.warning("XLA is off: under MirroredStrategy on logical CPU devices TensorFlow's XLA cannot reach the "
                        "variables of the other devices")
        return False
    return jit_compile


def _tpu_hint():
    """Whether this looks like a TPU host, checked without any network call."""
    return bool(os.environ.get("TPU_NAME") or os.environ.get("TPU_ACCELERATOR_TYPE")) or os.path.exists("/dev/accel0")


def _tpu_strategy():
    if not _tpu_hint():
        raise ValueError(
            'strategy="tpu" but this machine has no TPU: no /dev/accel0 and neither TPU_NAME nor '
            "TPU_ACCELERATOR_TYPE is set. Run on a Cloud TPU VM, or choose auto, cpu, mirrored or multiworker"
        )
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ.get("TPU_NAME", "local"))
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
