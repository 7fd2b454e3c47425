"""tf.distribute: strategies by name, MirroredStrategy on two logical CPUs against one device, and a real
MultiWorkerMirroredStrategy job of two worker processes on 127.0.0.1 (trained through Keras's `fit`)."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.training.common import PEAK_FLOPS, files_under, tiny_config, trained_only, write_kjv_verses
from tfllm.models.multi_worker import FIXED_KERAS_VERSIONS
from tfllm.training import get_strategy, is_chief, pretrain, resolve_jit_compile
from tfllm.training.strategies import read_tf_config


@pytest.fixture(scope="module")
def verses(tmp_path_factory):
    return write_kjv_verses(tmp_path_factory.mktemp("corpus"))


def test_strategies_by_name():
    assert isinstance(get_strategy("cpu"), tf.distribute.OneDeviceStrategy)
    mirrored = get_strategy("mirrored")  # the test session's CPU is split in two (conftest.py)
    assert isinstance(mirrored, tf.distribute.MirroredStrategy) and mirrored.num_replicas_in_sync == 2
    assert get_strategy("auto").num_replicas_in_sync == 2 and is_chief(mirrored)
    assert resolve_jit_compile(True, mirrored) is False and resolve_jit_compile(True, get_strategy("cpu")) is True
    with pytest.raises(ValueError, match="strategy='gpu' is invalid"):
        get_strategy("gpu")
    with pytest.raises(ValueError, match="logical_cpus=4 is too late"):
        get_strategy("mirrored", logical_cpus=4)


def test_tpu_and_multiworker_without_their_hardware_or_config_fail_at_once(monkeypatch):
    for name in ("TPU_NAME", "TPU_ACCELERATOR_TYPE", "TF_CONFIG"):
        monkeypatch.delenv(name, raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("no TPU here: looking for one must not ask the network (it would wait for a timeout)")

    # TPUClusterResolver asks a metadata server, and a name lookup or a connection without network can hang.
    monkeypatch.setattr(tf.distribute.cluster_resolver, "TPUClusterResolver", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(ValueError, match="this machine has no TPU"):
        get_strategy("tpu")
    with pytest.raises(ValueError, match="needs TF_CONFIG"):
        get_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 3}}')
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid multi-worker configuration"):
        get_strategy("multiworker")


@pytest.mark.parametrize("cluster, task, message", [
    # A string for the list failed inside TensorFlow (TypeError), and an index of 0.5 was read as 0.
    ({"worker": "127.0.0.1:1"}, {"type": "worker", "index": 0}, r"cluster.worker is '127.0.0.1:1', expected a list "
                                                                 r"of \"host:port\" strings"),
    ({"worker": ["127.0.0.1:1"]}, {"type": "worker", "index": 0.5}, r"task .* is not in the cluster \{'worker': 1\}: "
                                                                    r"expected a type of the cluster and an int index"),
    ({"worker": ["127.0.0.1:1"]}, {"type": "worker", "index": True}, r"task .* is not in the cluster"),
    ({"worker": []}, {"type": "worker", "index": 0}, r"the cluster lists no workers"),  # once unreachable
    ({"worker": ["127.0.0.1:1"]}, None, r"task is None, expected \{\"type\": \"worker\", \"index\": N\}"),
])
def test_a_bad_tf_config_is_named(monkeypatch, cluster, task, message):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    with pytest.raises(ValueError, match="TF_CONFIG is not a valid multi-worker configuration: " + message):
        read_tf_config()


def test_a_chief_alone_is_a_cluster_and_auto_refuses_a_cluster_of_several_tasks(monkeypatch):
    # A chief-only cluster, valid for TensorFlow, was refused; with TF_CONFIG naming two workers and no --strategy,
    # each process trained alone into the same run directory.
    chief_only = {"cluster": {"chief": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(chief_only))
    assert read_tf_config() == chief_only
    assert not isinstance(get_strategy("auto"), tf.distribute.MultiWorkerMirroredStrategy)  # as without TF_CONFIG
    two = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    with pytest.raises(ValueError, match=r"TF_CONFIG names a cluster of 2 tasks, and strategy='auto' trains in this "
                                         r"process alone: give strategy='multiworker' \(--strategy multiworker\)"):
        get_strategy("auto")


def _weights(model):
    return [keras.ops.convert_to_numpy(weight) for weight in model.weights]


@pytest.mark.parametrize("architecture", ["transformer", "lstm", "rnn"])
def test_mirrored_training_matches_one_device_with_the_same_global_batch(architecture, verses, tmp_path):
    config = tiny_config(verses, architecture, steps=4, eval_every=4, checkpoint_every=4)
    alone = trained_only(config, tmp_path / "alone")
    mirrored = pretrain(config, tmp_path / "mirrored", strategy=get_strategy("mirrored"), verbose=0,
                        peak_flops=PEAK_FLOPS)
    assert mirrored.metrics["num_replicas"] == 2
    # Each replica takes half of the same batches and the gradients are averaged: the same updates, to float error.
    # The first loss shows the same weights and data; Adam divides each update by the gradient's own scale, so a
    # rounding difference in a near-zero gradient can move that weight by up to the learning rate (3e-3) per step.
    assert mirrored.history["losses"][0] == pytest.approx(alone.state.history.losses[0], rel=1e-6)
    np.testing.assert_allclose(mirrored.history["losses"], alone.state.history.losses, rtol=1e-4)
    for want, got in zip(_weights(alone.model), _weights(mirrored.model)):
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert np.median(np.abs(got - want)) < 1e-4  # typically 1e-5: rounding, amplified a little by Adam


WORKER = r'''
import hashlib, json, os, signal, sys
import keras
from tfllm.training import RunConfig, get_strategy, pretrain

config, run_dir, kill_at = RunConfig.from_json(sys.argv[1]), sys.argv[2], int(sys.argv[3])

class KillAt(keras.callbacks.Callback):  # a worker dying mid-run, as a machine may
    def on_train_batch_end(self, batch, logs=None):
        if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

strategy = get_strategy("multiworker")
result = pretrain(config, run_dir, strategy=strategy, verbose=0, peak_flops=1e11,
                  callbacks=[KillAt()] if kill_at else None)
digest = hashlib.sha256(b"".join(keras.ops.convert_to_numpy(w).tobytes() for w in result.model.weights)).hexdigest()
print(json.dumps({"digest": digest, "metrics": bool(result.metrics), "resumed": result.resumed_from_step,
                  "replicas": strategy.num_replicas_in_sync}))
'''


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for server in sockets:
        server.bind(("127.0.0.1", 0))
    ports = [server.getsockname()[1] for server in sockets]
    for server in sockets:
        server.close()
    return ports


def _run_workers(script, config_path, run_dir, kill_at=(0, 0), timeout=300):
    """Starts the two workers of a job on free local ports, with one config file or a pair of them (worker 0's,
    worker 1's); returns their (return code, stdout, stderr)."""
    config_paths = config_path if isinstance(config_path, (list, tuple)) else (config_path, config_path)
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen([sys.executable, script, config_paths[index], run_dir, str(kill_at[index])],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    deadline = time.monotonic() + timeout
    results = [None, None]
    try:
        while None in results and time.monotonic() < deadline:
            for index, process in enumerate(processes):
                if results[index] is None and process.poll() is not None:
                    results[index] = (process.returncode, *process.communicate())
                    if process.returncode != 0:  # a dead worker: the other one waits for it forever
                        for other in processes:
                            if other.poll() is None:
                                other.send_signal(signal.SIGKILL)
            time.sleep(0.2)
    finally:
        for index, process in enumerate(processes):
            if process.poll() is None:
                process.kill()
            if results[index] is None:
                results[index] = (process.wait(), *process.communicate())
    return results


@pytest.mark.slow
def test_two_workers_train_through_fit_to_the_same_weights_and_only_the_chief_writes(verses, tmp_path):
    assert ".".join(keras.__version__.split(".")[:2]) in FIXED_KERAS_VERSIONS  # else: check the fix still holds
    config = tiny_config(verses, "lstm", steps=6, eval_every=3, checkpoint_every=2, batch_size=4)
    config_path = tmp_path / "config.json"
    config.to_json(config_path)
    (tmp_path / "worker.py").write_text(WORKER)
    run = tmp_path / "run"

    # A job whose second worker dies at step 5: the run keeps its checkpoint of step 4, and is unfinished.
    killed = _run_workers(tmp_path / "worker.py", config_path, run, kill_at=(0, 5))
    assert killed[1][0] == -signal.SIGKILL, killed[1][2][-3000:]
    assert json.loads((run / "checkpoints" / "state.json").read_text())["step"] == 4
    assert not (run / "metrics.json").exists()

    # The job started again resumes from it on both workers and ends with the same weights on both.
    results = _run_workers(tmp_path / "worker.py", config_path, run)
    for code, out, err in results:
        assert code == 0, err[-3000:]
    chief, worker = (json.loads(out.strip().splitlines()[-1]) for _, out, _ in results)
    assert chief["digest"] == worker["digest"] and chief["replicas"] == worker["replicas"] == 2
    assert chief["resumed"] == worker["resumed"] == 4
    assert chief["metrics"] and not worker["metrics"]  # the other worker reports nothing and wrote nothing
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 6 == metrics["optimizer_updates"] and metrics["num_replicas"] == 2
    assert {"config.json", "run.json", "model.keras", "metrics.json", "history.json", "loss_curve.png",
            "samples.txt", "checkpoints/state.json", "checkpoints/tokenizer.json"} <= set(files_under(run))
    assert not [name for name in files_under(run) if ".tmp-" in name]

    # Two workers of batch 2 each train as one process with the global batch of 4.
    alone = trained_only(config, tmp_path / "alone")
    loaded = keras.saving.load_model(run / "model.keras")
    for want, got in zip(_weights(alone.model), _weights(loaded)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_worker_whose_config_is_not_the_chief_s_is_refused(verses, tmp_path):
    # Both workers trained, the job ended with exit status 0, and config.json recorded the chief's learning rate.
    config = tiny_config(verses, "lstm", steps=2, eval_every=2, checkpoint_every=2, batch_size=4)
    config.to_json(tmp_path / "chief.json")
    dataclasses.replace(config, train=dataclasses.replace(config.train, learning_rate=0.03)).to_json(
        tmp_path / "other.json")
    (tmp_path / "worker.py").write_text(WORKER)
    chief, other = _run_workers(tmp_path / "worker.py", (tmp_path / "chief.json", tmp_path / "other.json"),
                                tmp_path / "run")
    assert other[0] == 1 and "RunDirectoryError: this worker's config is not the chief's in " in other[2]
    assert f"(train.learning_rate: {config.train.learning_rate!r} in the run, 0.03 now): every worker of a " \
           "multi-worker job runs the same command" in other[2]
    assert chief[0] != 0 and not (tmp_path / "run" / "metrics.json").exists()


def test_mirrored_fine_tuning_makes_one_device_s_update_however_the_counted_tokens_fall():
    # Each replica divided its loss by its own counted tokens: with completions of other lengths on the two replicas,
    # the update followed a mean of the replicas' means, not one device's mean per token, and the logged loss was
    # not the log of the logged perplexity (an audit: 8.2742 against log(3982.4) = 8.2896).
    from tfllm.models import LSTMLM

    rng = np.random.default_rng(0)
    x = rng.integers(3, 259, size=(4, 8)).astype("int32")
    y = np.roll(x, -1, axis=1)
    y[:2, :1] = y[2:, :7] = 0  # replica 0's rows count 7 tokens each, replica 1's 1 each (0: ignored, as padding)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)

    def trained(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = LSTMLM(259, hidden_dim=16)
            model.compile(jit_compile=False)
            history = model.fit(batches, epochs=2, verbose=0).history
        return model, history

    alone, alone_history = trained(get_strategy("cpu"))
    pair, pair_history = trained(get_strategy("mirrored"))
    assert pair.distribute_strategy.num_replicas_in_sync == 2 and alone.ignored_target_id == 0
    np.testing.assert_allclose(pair_history["loss"], alone_history["loss"], rtol=1e-5)
    np.testing.assert_allclose(np.log(pair_history["perplexity"]), pair_history["loss"], rtol=1e-5)
    for want, got in zip(_weights(alone), _weights(pair)):
        np.testing.assert_allclose(got, want, atol=1e-5)
