"""`StepCallback`: a Keras callback that knows the global training step, across epochs, `fit` calls and resumes."""

import keras


class StepCallback(keras.callbacks.Callback):
    """Counts training steps (batches) from `initial_step`, whatever the epoch boundaries; subclasses get
    `on_step_end(step, logs)` after every step, with `step` counted from 1.

    Keras numbers batches within an epoch, so a run resumed in the middle of an epoch, or split over several
    `fit` calls, cannot tell the global step from `(epoch, batch)`; this class counts it. It also handles
    `steps_per_execution` > 1 (Keras then reports the last batch of each execution).

    Args:
        initial_step: the steps already done before this callback's first batch (a resumed run's step).
    """

    def __init__(self, initial_step=0):
        super().__init__()
        self.step = int(initial_step)
        self._epoch_start_step = self.step

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start_step + batch + 1
        self.on_step_end(self.step, logs if logs is not None else {})

    def on_step_end(self, step, logs):
        """Called after training step `step` (1-based, global) with the batch's logs."""
