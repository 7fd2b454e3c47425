"""`NaNGuard`: stops training at the first step whose loss is NaN or infinite, as a failure, not a success."""

import math

from tfllm.training.callbacks.step_callback import StepCallback


class TrainingDivergedError(RuntimeError):
    """Training stopped because the loss became NaN or infinite.

    Attributes:
        step: the global step whose loss was not finite.
        loss: that loss.
        checkpoint_step: the step of the last good checkpoint, kept on disk (None when there is none).

    Example (`NaNGuard` raises it; Keras's calls are made by hand here):

    >>> import os, tempfile
    >>> from tfllm.training import StepCheckpoint
    >>> guard = NaNGuard(StepCheckpoint(os.path.join(tempfile.mkdtemp(), "checkpoints"), every=100))
    >>> try:
    ...     guard.on_train_batch_end(0, {"loss": float("inf")})
    ... except TrainingDivergedError as error:
    ...     print(error)
    ...     print(error.step, error.loss, error.checkpoint_step)
    the training loss is inf at step 1: training stopped. No checkpoint was written before it.
    1 inf None
    """

    def __init__(self, message, step, loss, checkpoint_step=None):
        super().__init__(message)
        self.step = step
        self.loss = loss
        self.checkpoint_step = checkpoint_step


class NaNGuard(StepCallback):
    """Raises `TrainingDivergedError` after the first step whose loss is NaN or infinite.

    Raising (rather than setting `model.stop_training`, as `keras.callbacks.TerminateOnNaN` does) ends `fit`
    without `on_train_end`, so nothing treats the run as finished: no callback cleans up its checkpoint and no
    final model is written. Put it before the checkpoint callback, so that the failing step is never saved.

    Args:
        checkpoint: a `StepCheckpoint`, to name the last good checkpoint in the message.
        initial_step: the step the run starts from.

    Use it as `model.fit(..., callbacks=[NaNGuard(checkpoint), checkpoint])`; here Keras's calls are made by hand.

    Example:

    >>> guard = NaNGuard()
    >>> guard.on_epoch_begin(0)
    >>> guard.on_train_batch_end(0, {"loss": 2.3})  # step 1: finite, nothing happens
    >>> try:
    ...     guard.on_train_batch_end(1, {"loss": float("nan")})
    ... except TrainingDivergedError as error:
    ...     print(type(error).__name__, error.step, error.loss)
    TrainingDivergedError 2 nan
    """

    def __init__(self, checkpoint=None, initial_step=0):
        super().__init__(initial_step)
        self.checkpoint = checkpoint

    def on_step_end(self, step, logs):
        loss = logs.get("loss")
        if loss is None or math.isfinite(loss):
            return
        saved = None if self.checkpoint is None else self.checkpoint.saved_step
        if self.checkpoint is None:
            kept = ""
        elif saved is None:
            kept = " No checkpoint was written before it."
        else:
            kept = (
                f" The last good checkpoint, of step {saved}, is kept in {self.checkpoint.directory}: running the "
                "same command again resumes from it; a lower learning rate (or more warmup steps) may avoid the "
                "divergence."
            )
        raise TrainingDivergedError(
            f"the training loss is {loss} at step {step}: training stopped.{kept}", step, loss, saved
        )
