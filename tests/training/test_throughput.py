"""`ThroughputCallback`: tokens per second and model FLOPs utilization, also for models Keras builds inside `fit`."""

import math
import time
import types

import keras
import numpy as np
import pytest

from tfllm.data import lm_dataset
from tfllm.models import LSTMLM, SimpleRNNLM, TransformerLM
from tfllm.tokenizers import ByteTokenizer
from tfllm.training import ThroughputCallback
from tfllm.training.callbacks import throughput

TEXTS = ["In the beginning God created the heaven and the earth."] * 8


def _model(architecture):
    tokenizer = ByteTokenizer()
    if architecture == "lstm":
        return LSTMLM(259, hidden_dim=12, num_layers=2, tokenizer=tokenizer)
    if architecture == "rnn":
        return SimpleRNNLM(259, hidden_dim=12, num_layers=2, tokenizer=tokenizer)
    return TransformerLM(259, num_layers=1, num_heads=2, hidden_dim=12, intermediate_dim=24, max_sequence_length=16,
                         tokenizer=tokenizer)


@pytest.mark.parametrize("architecture", ["lstm", "rnn"])
def test_recurrent_flops_are_six_per_matmul_weight_before_and_after_building(architecture):
    model = _model(architecture)
    before = model.training_flops_per_token(16)  # no weights yet
    model(np.zeros((1, 4), "int32"))
    matmul_weights = sum(int(np.prod(layer.cell.kernel.shape)) + int(np.prod(layer.cell.recurrent_kernel.shape))
                         for layer in model.recurrent_layers) + 259 * 12
    assert before == model.training_flops_per_token(16) == 6 * matmul_weights


class SteppingClock:
    """A stand-in for `time.perf_counter` in the callback's module: each training batch (a call at its start, one at
    its end) lasts the next of `durations` seconds, whatever the machine does."""

    def __init__(self, durations):
        self._durations = iter(durations)
        self._now = 0.0
        self._batch_running = False

    def perf_counter(self):
        if self._batch_running:
            self._now += next(self._durations)
        self._batch_running = not self._batch_running
        return self._now


def test_the_transformer_flops_per_token_are_the_palm_count():
    # 6 per weight of a matrix product: the block's 4 D^2 + 2 D F and the tied output's V D; attention's scores and
    # mixing add 12 L D T. D=12, F=24, V=259, L=1, T=8: 6 (576 + 576 + 3108) + 12 * 12 * 8.
    assert _model("transformer").training_flops_per_token(8) == 6 * (576 + 576 + 3108) + 1152 == 26712


@pytest.mark.parametrize("architecture", ["lstm", "rnn", "transformer"])
def test_an_unbuilt_model_gets_tokens_per_second_and_mfu_logged(monkeypatch, architecture):
    # The first batch (10 s here) traces the training function and is left out: 3 batches of 2 x 8 tokens in 1.5 s.
    clock = SteppingClock([10.0, 0.5, 0.5, 0.5])
    monkeypatch.setattr(throughput, "time", types.SimpleNamespace(perf_counter=clock.perf_counter,
                                                                  monotonic=time.monotonic))
    model = _model(architecture)
    model.compile()
    batches = lm_dataset(TEXTS, model.tokenizer, sequence_length=8, batch_size=2, seed=0)
    callback = ThroughputCallback(sequence_length=8, batch_size=2, peak_flops=1e11)
    history = model.fit(batches, epochs=1, steps_per_epoch=4, callbacks=[callback], shuffle=False, verbose=0)
    assert callback.tokens_per_second == history.history["tokens_per_second"][0] == 3 * 16 / 1.5
    expected_mfu = model.training_flops_per_token(8) * 32.0 / 1e11  # the counts are pinned by the tests around
    assert callback.mfu == pytest.approx(expected_mfu) and history.history["mfu"][0] == pytest.approx(expected_mfu)


def test_a_model_without_a_flops_count_gets_no_mfu():
    model = keras.Sequential([keras.layers.Embedding(259, 4), keras.layers.Dense(259)])
    model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = np.ones((4, 8), "int32")
    throughput = ThroughputCallback(sequence_length=8, batch_size=2, peak_flops=1e11)
    history = model.fit(ids, ids, batch_size=2, epochs=1, callbacks=[throughput], verbose=0)
    assert "mfu" not in history.history and math.isnan(throughput.mfu) and throughput.tokens_per_second > 0


@pytest.mark.parametrize("policy, peak_dtype", [("float32", "float32"), ("mixed_bfloat16", "bfloat16")])
def test_mfu_divides_by_the_peak_of_the_dtype_the_model_multiplies_in(monkeypatch, policy, peak_dtype):
    from tfllm.training.callbacks import throughput as throughput_module

    asked = []
    monkeypatch.setattr(throughput_module, "measure_peak_flops",
                        lambda dtype, device=None, again=False: asked.append(dtype) or 2e11)
    model = LSTMLM(259, hidden_dim=12, tokenizer=ByteTokenizer(), dtype=policy)
    model.compile()
    batches = lm_dataset(TEXTS, model.tokenizer, sequence_length=8, batch_size=2, seed=0)
    throughput = ThroughputCallback(sequence_length=8, batch_size=2)
    model.fit(batches, epochs=1, steps_per_epoch=3, callbacks=[throughput], shuffle=False, verbose=0)
    assert asked == [peak_dtype] and throughput.peak_flops == 2e11
    assert throughput.mfu == pytest.approx(model.training_flops_per_token(8) * throughput.tokens_per_second / 2e11)


def _fit_with_peak_readings(monkeypatch, readings, steps=6, **callback_args):
    """Fits a tiny LSTM with `measure_peak_flops` replaced by `readings`; returns the calls' `again` flags, the
    callback and the MFU of every batch's logs."""
    from tfllm.training.callbacks import throughput as throughput_module

    agains = []

    def measure(dtype, device=None, again=False):
        agains.append(again)
        return readings[len(agains) - 1]

    monkeypatch.setattr(throughput_module, "measure_peak_flops", measure)
    model = LSTMLM(259, hidden_dim=12, tokenizer=ByteTokenizer())
    model.compile()
    batches = lm_dataset(TEXTS, model.tokenizer, sequence_length=8, batch_size=2, seed=0)
    throughput = ThroughputCallback(sequence_length=8, batch_size=2, **callback_args)
    batch_mfus = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batch_mfus.append(logs["mfu"]))
    model.fit(batches, epochs=1, steps_per_epoch=steps, callbacks=[throughput, record], shuffle=False, verbose=0)
    return agains, throughput, batch_mfus


def test_a_peak_read_in_a_slow_moment_is_measured_again_when_the_steps_outrun_it(monkeypatch):
    agains, throughput, batch_mfus = _fit_with_peak_readings(monkeypatch, readings=[1e3, 1e15])
    assert agains == [False, True]  # once at the start, once more when the MFU read above 1
    assert throughput.peak_flops == 1e15 and 0 < throughput.mfu < 1e-3
    assert max(batch_mfus) < 1e-3  # the first figure logged already divides by the new reading


def test_a_measured_mfu_stays_at_most_one_when_the_new_reading_is_slow_too(monkeypatch):
    agains, throughput, batch_mfus = _fit_with_peak_readings(monkeypatch, readings=[1e3, 2e3])
    assert agains == [False, True]  # measured again at most once every REMEASURE_SECONDS
    assert max(batch_mfus) <= 1 and throughput.mfu <= 1
    assert throughput.peak_flops >= throughput.flops_per_token * throughput.tokens_per_second > 2e3


def test_a_peak_given_by_the_user_is_never_measured(monkeypatch):
    agains, throughput, batch_mfus = _fit_with_peak_readings(monkeypatch, readings=[], peak_flops=1e3)
    assert agains == [] and throughput.peak_flops == 1e3 and min(batch_mfus) > 1  # the user's figure, as given


def test_the_measured_peak_is_the_fastest_of_its_timed_products_and_is_kept_per_dtype(monkeypatch):
    from tfllm.training.callbacks import peak_flops

    clock = iter([0.0, 0.5, 1.0, 1.25, 2.0, 2.75])  # three products timed: 0.5 s, 0.25 s, 0.75 s
    monkeypatch.setattr(peak_flops.time, "perf_counter", lambda: next(clock))
    assert peak_flops.matmul_flops("float32", size=8, calls=3) == 2 * 8**3 / 0.25
    monkeypatch.undo()
    float32 = peak_flops.measure_peak_flops("float32", size=16, calls=2)
    assert peak_flops.measure_peak_flops("float32", size=16, calls=2) == float32  # measured once
    assert ("bfloat16", None, 16, 2) not in peak_flops._MEASURED
    peak_flops.measure_peak_flops("bfloat16", size=16, calls=2)
    assert ("bfloat16", None, 16, 2) in peak_flops._MEASURED
    monkeypatch.setattr(peak_flops, "matmul_flops", lambda dtype, size, calls: float32 / 2)  # a slow moment
    assert peak_flops.measure_peak_flops("float32", size=16, calls=2, again=True) == float32  # the faster kept
    monkeypatch.setattr(peak_flops, "matmul_flops", lambda dtype, size, calls: float32 * 2)
    assert peak_flops.measure_peak_flops("float32", size=16, calls=2, again=True) == float32 * 2


@pytest.mark.parametrize("devices, replicas, expected", [
    (["/job:localhost/replica:0/task:0/device:CPU:0", "/job:localhost/replica:0/task:0/device:CPU:1"], 2, 1.0),
    (["/job:worker/replica:0/task:1/device:CPU:0"], 3, 3.0),  # three workers, a machine each
    (["/job:localhost/replica:0/task:0/device:GPU:0", "/job:localhost/replica:0/task:0/device:GPU:1"], 2, 2.0),
])
def test_the_peak_of_a_strategy_counts_each_machine_once(monkeypatch, devices, replicas, expected):
    # A multi-worker job on CPUs was divided by one worker's peak while its tokens per second counted every
    # worker's: its MFU read as many times too high as it had workers.
    monkeypatch.setattr(throughput, "measure_peak_flops", lambda dtype, device=None, again=False: 1.0)
    strategy = types.SimpleNamespace(extended=types.SimpleNamespace(worker_devices=devices),
                                     num_replicas_in_sync=replicas)
    assert throughput._peak_flops_of(strategy, "float32") == expected
