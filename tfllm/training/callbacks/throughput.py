"""`ThroughputCallback`: training tokens per second and model FLOPs utilization (MFU), in the Keras logs."""

import math
import time

import keras

from tfllm.training.callbacks.peak_flops import measure_peak_flops


class ThroughputCallback(keras.callbacks.Callback):
    """Adds `tokens_per_second` and `mfu` to the Keras logs, so they reach the progress bar, `History`,
    TensorBoard and a run's `metrics.json`.

    Batch logs carry the rate of the current epoch so far (the progress bar shows it); epoch logs carry the rate
    of the whole epoch. Only the training steps are timed (from the start to the end of each batch), not
    validation or other callbacks, and the first batch of every `fit` call is left out because it includes
    tracing the training function.

    MFU = `model.training_flops_per_token(sequence_length)` * tokens/s / peak FLOP/s. The peak is `peak_flops`
    when given; otherwise `measure_peak_flops(dtype)` (a measured matmul speed, not a datasheet number) in the
    dtype the model's products run in (its compute dtype: bfloat16 under mixed_bfloat16), times the number of
    replicas when those are accelerators (the CPU replicas of one worker share its processor; a multi-worker job
    counts each worker's). Models without
    `training_flops_per_token` get no `mfu`.

    A measured peak can read low: a shared machine has slow moments, and one at the start of training would make
    every later MFU read too high, even above 1. So whenever the MFU to be logged exceeds 1, the callback measures
    the peak again (between steps, untimed, at most once every `REMEASURE_SECONDS`) and keeps the faster reading;
    and it never divides by a peak below the FLOP/s the steps themselves reached, which prove the machine at least
    that fast. A measured MFU therefore stays at most 1. A `peak_flops` you pass is used as given.

    Args:
        sequence_length: tokens per sequence, T.
        batch_size: sequences per step across all replicas (the global batch), B.
        peak_flops: the machine's peak FLOP/s, or None to measure it once when training starts.

    Attributes:
        tokens_per_second: over every timed step so far (NaN before any).
        mfu: the same, as a fraction of the peak (NaN when unknown).

    Example (a model that defines `training_flops_per_token`, as every tfllm `CausalLM` does):

    >>> from tfllm.data import lm_dataset
    >>> from tfllm.models import LSTMLM
    >>> from tfllm.tokenizers import ByteTokenizer
    >>> model = LSTMLM(259, hidden_dim=8, tokenizer=ByteTokenizer())
    >>> model.compile()
    >>> batches = lm_dataset(["In the beginning God created the heaven and the earth."] * 4, model.tokenizer,
    ...                      sequence_length=8, batch_size=2, seed=0)
    >>> throughput = ThroughputCallback(sequence_length=8, batch_size=2, peak_flops=1e11)
    >>> history = model.fit(batches, epochs=1, steps_per_epoch=3, callbacks=[throughput], shuffle=False, verbose=0)
    >>> sorted(history.history)  # the epoch logs
    ['loss', 'mfu', 'perplexity', 'tokens_per_second']
    >>> throughput.tokens_per_second > 0, 0 < throughput.mfu < 1
    (True, True)
    """

    REMEASURE_SECONDS = 30.0

    def __init__(self, sequence_length, batch_size, peak_flops=None):
        super().__init__()
        self.tokens_per_step = int(sequence_length) * int(batch_size)
        self.sequence_length = int(sequence_length)
        self.peak_flops = peak_flops
        self._peak_is_measured = peak_flops is None
        self._last_remeasured = -math.inf  # time.monotonic() of the last measurement made to correct the peak
        self.flops_per_token = None
        self._total_tokens = 0
        self._total_seconds = 0.0
        self._first_batch_of_fit = True

    @property
    def tokens_per_second(self):
        return self._total_tokens / self._total_seconds if self._total_seconds else math.nan

    @property
    def mfu(self):
        return self._mfu(self.tokens_per_second)

    def on_train_begin(self, logs=None):
        self._first_batch_of_fit = True
        if self.flops_per_token is None:
            try:
                self.flops_per_token = float(self.model.training_flops_per_token(self.sequence_length))
            except (AttributeError, NotImplementedError):
                self.flops_per_token = math.nan
        if self.peak_flops is None and not math.isnan(self.flops_per_token):
            self.peak_flops = self._measured_peak()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_tokens = 0
        self._epoch_seconds = 0.0
        self._untimed_rate = math.nan  # the rate of a first (tracing) batch, shown until a timed one exists

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        seconds = time.perf_counter() - self._batch_start
        if self._first_batch_of_fit:
            self._first_batch_of_fit = False
            self._untimed_rate = self.tokens_per_step / seconds
        else:
            self._epoch_tokens += self.tokens_per_step
            self._epoch_seconds += seconds
            self._total_tokens += self.tokens_per_step
            self._total_seconds += seconds
        if logs is not None:
            self._log(logs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            self._log(logs)

    def _log(self, logs):
        rate = self._epoch_tokens / self._epoch_seconds if self._epoch_seconds else self._untimed_rate
        logs["tokens_per_second"] = rate
        if not math.isnan(self.flops_per_token):
            if self._peak_is_measured and self._mfu(rate) > 1:
                self._correct_peak(achieved_flops=self.flops_per_token * rate)
            logs["mfu"] = self._mfu(rate)

    def _measured_peak(self, again=False):
        return _peak_flops_of(self.model.distribute_strategy, self.model.dtype_policy.compute_dtype, again=again)

    def _correct_peak(self, achieved_flops):
        """Raises a measured peak that the steps outran: to a new reading (at most once every `REMEASURE_SECONDS`)
        if that is faster, and at least to the FLOP/s the steps achieved."""
        if time.monotonic() - self._last_remeasured >= self.REMEASURE_SECONDS:
            self.peak_flops = max(self.peak_flops, self._measured_peak(again=True))
            self._last_remeasured = time.monotonic()
        self.peak_flops = max(self.peak_flops, achieved_flops)

    def _mfu(self, rate):
        if not self.peak_flops or self.flops_per_token is None or math.isnan(self.flops_per_token):
            return math.nan
        return self.flops_per_token * rate / self.peak_flops


def _peak_flops_of(strategy, dtype, again=False):
    try:
        device = strategy.extended.worker_devices[0]
    except (RuntimeError, AttributeError, IndexError):  # the default strategy: one device, the default one
        return measure_peak_flops(dtype, again=again)
    peak = measure_peak_flops(dtype, device=device, again=again)
    if "CPU" in device.upper():
        # The CPU replicas of one worker (logical devices) share its processor's cores; each worker of a multi-worker
        # job is a machine of its own, whose steps the global tokens per second count.
        return peak * (strategy.num_replicas_in_sync // len(strategy.extended.worker_devices))
    return peak * strategy.num_replicas_in_sync
