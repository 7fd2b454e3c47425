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

    Example:

        history = LossHistory()
        model.fit(batches, epochs=3, steps_per_epoch=100, validation_data=validation, callbacks=[history])
        history.losses[-1], history.epochs[-1]["val_loss"]
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
