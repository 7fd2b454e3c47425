"""`ScalarLogs`: TensorBoard scalars of training every N steps and of every validation, by global step, with
TensorFlow alone."""

import math
import os

import tensorflow as tf

from tfllm.training.callbacks.step_callback import StepCallback
from tfllm.training.callbacks.summaries import write_scalar


class ScalarLogs(StepCallback):
    """Writes TensorBoard scalars in `log_dir/train` and `log_dir/validation`, at the global step:

    - every `every` steps, in train/: `step_loss` (the mean training loss of those steps), `step_learning_rate`,
      and, when `ThroughputCallback` (placed before this callback) logs them, `step_tokens_per_second` and
      `step_mfu` (the rates of the current validation window so far);
    - at each epoch end (each validation): the epoch logs and the learning rate as `epoch_<name>` in train/, and the
      validation metrics (`val_<name>`) as `epoch_<name>` in validation/, so TensorBoard draws the training and the
      validation loss in one chart.

    `keras.callbacks.TensorBoard` needs the `tensorboard` package to write scalars (TensorFlow 2.21 no longer
    installs it) and counts its x axis in epochs, which restart meaning when a run resumes mid-epoch. This callback
    writes with TensorFlow alone (`write_scalar`), so `tensorboard --logdir run_dir/logs` (installed anywhere) shows
    the curves, by step.

    Args:
        log_dir: the folder of the event files.
        every: steps between the training points; None writes only at epoch ends.
        history: the run's `LossHistory` (placed before this callback), whose per-step losses `step_loss` averages;
            without it, `step_loss` is Keras's running mean of the epoch.
        initial_step: the step the run starts from.

    Attributes:
        written: `(step, step_loss)` of each training point written.

    Example (Keras's calls made by hand; `model.fit(..., callbacks=[ScalarLogs("run/logs", every=10)])` in
    training):

    >>> import tempfile
    >>> from tfllm.training.callbacks import LossHistory
    >>> log_dir, history = tempfile.mkdtemp(), LossHistory()
    >>> logs = ScalarLogs(log_dir, every=2, history=history)
    >>> for callback in (history, logs):
    ...     callback.on_epoch_begin(0)
    >>> for batch, mean in enumerate([4.0, 3.0, 2.5, 2.0]):  # the step losses are 4, 2, 1.5 and 0.5
    ...     for callback in (history, logs):
    ...         callback.on_train_batch_end(batch, {"loss": mean, "tokens_per_second": 100.0})
    >>> logs.written  # (step, step_loss): the means of steps 1-2 and 3-4
    [(2, 3.0), (4, 1.0)]
    >>> logs.on_train_end()
    >>> sorted(os.listdir(log_dir))
    ['train']
    """

    def __init__(self, log_dir, every=None, history=None, initial_step=0):
        super().__init__(initial_step)
        self.log_dir = os.fspath(log_dir)
        self.every = every
        self.history = history
        self.written = []
        self._writers = {}
        self._previous_step = self.step

    def on_step_end(self, step, logs):
        previous, self._previous_step = self._previous_step, step
        # With `steps_per_execution` > 1 Keras skips steps: write when a multiple of `every` was passed.
        if not self.every or step // self.every == previous // self.every:
            return
        scalars = {
            "step_loss": self._mean_loss(step, logs),
            "step_learning_rate": _learning_rate(self.model),
            "step_tokens_per_second": logs.get("tokens_per_second"),
            "step_mfu": logs.get("mfu"),
        }
        self._write("train", scalars, step)
        self.written.append((step, scalars["step_loss"]))

    def on_epoch_end(self, epoch, logs=None):
        logs = {**(logs or {}), "learning_rate": _learning_rate(self.model)}
        parts = {"train": {}, "validation": {}}
        for name, value in logs.items():
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            parts[part][f"epoch_{tag}"] = value
        for part, scalars in parts.items():
            self._write(part, scalars, self.step)

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _mean_loss(self, step, logs):
        losses = []
        if self.history is not None:
            for loss_step, loss in zip(reversed(self.history.steps), reversed(self.history.losses)):
                if loss_step <= step - self.every:
                    break
                losses.append(loss)
        return sum(losses) / len(losses) if losses else logs.get("loss")

    def _write(self, part, scalars, step):
        scalars = {tag: value for tag, value in scalars.items()
                   if isinstance(value, (int, float)) and math.isfinite(value)}
        if not scalars:
            return
        if part not in self._writers:
            self._writers[part] = tf.summary.create_file_writer(os.path.join(self.log_dir, part))
        with self._writers[part].as_default():
            for tag, value in scalars.items():
                write_scalar(tag, value, step)
        self._writers[part].flush()


def _learning_rate(model):
    learning_rate = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    return None if learning_rate is None else float(learning_rate)
