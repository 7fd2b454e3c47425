"""`LossHistory`: the training loss of every step and the logs of every epoch, by global step."""

from tfllm.training.callbacks.step_callback import StepCallback


class LossHistory(StepCallback):
    """Records the loss of each training step and the logs (validation included) at the end of each epoch.

    Keras reports at each batch the mean loss of the epoch so far; the loss of step n of an epoch is recovered as
    n * mean_n - (n - 1) * mean_(n-1). (This assumes `steps_per_execution=1`.)

    Args:
        initial_step: the step the run starts from.
        records: a `to_dict()` of an earlier history to continue (entries after `initial_step` are dropped: a
            resumed run trains those steps again).

    Attributes:
        steps, losses: the step numbers and their training losses.
        epochs: one dict per epoch end: `{"step": ..., "loss": ..., "val_loss": ..., ...}`.

    Use it as `model.fit(..., callbacks=[history])`; here Keras's calls are made by hand, to show the arithmetic.

    Example:

    >>> history = LossHistory()
    >>> history.on_epoch_begin(0)
    >>> for batch, mean in enumerate([4.0, 3.0, 2.5]):  # Keras logs the mean loss of the epoch so far
    ...     history.on_train_batch_end(batch, {"loss": mean})
    >>> history.steps, history.losses  # 2 * 3.0 - 4.0 = 2.0, 3 * 2.5 - 2 * 3.0 = 1.5
    ([1, 2, 3], [4.0, 2.0, 1.5])
    >>> history.on_epoch_end(0, {"loss": 2.5, "val_loss": 2.75})
    >>> history.epochs
    [{'step': 3, 'loss': 2.5, 'val_loss': 2.75}]
    >>> LossHistory(initial_step=2, records=history.to_dict()).losses  # resumed at step 2: step 3 is trained again
    [4.0, 2.0]
    """

    def __init__(self, initial_step=0, records=None):
        super().__init__(initial_step)
        records = records or {}
        kept = [index for index, step in enumerate(records.get("steps", [])) if step <= initial_step]
        self.steps = [records["steps"][index] for index in kept]
        self.losses = [records["losses"][index] for index in kept]
        self.epochs = [entry for entry in records.get("epochs", []) if entry["step"] <= initial_step]
        self._previous_mean = None

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._previous_mean = None

    def on_step_end(self, step, logs):
        mean = logs.get("loss")
        if mean is None:
            return
        count = step - self._epoch_start_step
        loss = mean if self._previous_mean is None else count * mean - (count - 1) * self._previous_mean
        self._previous_mean = mean
        self.steps.append(step)
        self.losses.append(float(loss))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({"step": self.step, **{key: float(value) for key, value in (logs or {}).items()}})

    def to_dict(self):
        """The records as a JSON-ready dict (`LossHistory(records=...)` continues from it)."""
        return {"steps": list(self.steps), "losses": list(self.losses), "epochs": list(self.epochs)}
