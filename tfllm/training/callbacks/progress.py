"""`RunProgress`: Keras's progress bar, labelled with the run's global steps, and the time left for the whole run."""

import math
import time

from keras.callbacks import ProgbarLogger
from keras.utils import Progbar


class RunProgress(ProgbarLogger):
    """The Keras progress bar (loss, metrics, tokens/s), with three changes for runs made of several `fit` calls or
    resumed in the middle of an epoch: each epoch is titled by its global steps ("Steps 201-400 of 1000") instead of
    "Epoch 2/5"; the bar's time left is the whole run's, not the epoch's; and each epoch ends with a line giving the
    steps done, the time spent and the time left for the whole run.

    The time left is `seconds_left()`: the steps left times the measured seconds per step, plus the validations
    left times the measured seconds per validation (once one has been timed). A step is timed from the end of the
    previous step of the same epoch, so what the callbacks do between steps (checkpoints, samples) counts, and the
    first step of an epoch (tracing, the validation before it) does not.

    Put it last in the callbacks, so the logs it shows include what the other callbacks add. With it in the
    list, Keras adds no progress bar of its own.

    Args:
        total_steps: the run's steps (a run whose time budget fixes its steps sets `total_steps` again).
        initial_step: the step the run starts from.
        eval_every: steps between validations; None takes the longest epoch seen.
        clock: the time in seconds (tests pass a fake one).

    Example (Keras's calls made by hand, with a fake clock: 0.5 s a step, 3 s a validation):

    >>> now = [0.0]
    >>> progress = RunProgress(total_steps=100, eval_every=10, clock=lambda: now[0])
    >>> progress.verbose = 0  # `fit` sets it; 0: count and time, print nothing
    >>> progress.on_train_begin(); progress.on_epoch_begin(0)
    >>> for step in range(10):  # the first epoch: the first step (tracing) takes 4 s
    ...     now[0] += 4.0 if step == 0 else 0.5
    ...     progress.on_train_batch_end(step)
    >>> progress.on_test_begin(); now[0] += 3.0; progress.on_test_end()
    >>> progress.on_epoch_end(0)
    >>> progress.step, progress.seconds_per_step, progress.seconds_left()  # 90 x 0.5 s + 9 x 3 s
    (10, 0.5, 72.0)
    """

    def __init__(self, total_steps, initial_step=0, eval_every=None, clock=time.perf_counter):
        super().__init__()
        self.total_steps = int(total_steps)
        self.initial_step = self.step = int(initial_step)
        self.eval_every = eval_every
        self.clock = clock
        self._start = None
        self._last_batch = -1
        self._last_batch_time = None
        self._step_seconds, self._steps_timed = 0.0, 0
        self._validation_seconds, self._validations_timed = 0.0, 0
        self._validation_start = None
        self._longest_epoch = 0

    @property
    def seconds_per_step(self):
        """The mean seconds of the steps timed so far (NaN before any)."""
        return self._step_seconds / self._steps_timed if self._steps_timed else math.nan

    def seconds_left(self, step=None):
        """The seconds the run needs after step `step` (default: the current one): its steps left at the measured
        seconds per step, and its validations left at the measured seconds per validation (left out until one was
        timed). NaN before any step was timed."""
        step = self.step + self._last_batch + 1 if step is None else step
        steps_left = max(self.total_steps - step, 0)
        seconds = steps_left * self.seconds_per_step
        if self._validations_timed:
            seconds += self._validations_left(step) * self._validation_seconds / self._validations_timed
        return seconds

    def _validations_left(self, step):
        """Validations after step `step`: one at the end of each epoch, the last one at the last step."""
        every = self.eval_every or self._longest_epoch or self.total_steps
        last = 1 if self.total_steps % every and step < self.total_steps else 0  # a last, shorter epoch
        return self.total_steps // every - step // every + last

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._start is None:
            self._start = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        self._last_batch = -1
        self._last_batch_time = None
        if self.verbose:
            last = min(self.step + (self.target or 0), self.total_steps)
            print(f"Steps {self.step + 1}-{last} of {self.total_steps}")

    def _maybe_init_progbar(self):
        if self.progbar is None:
            self.progbar = _RunProgbar(self, target=self.target, verbose=self.verbose, unit_name="step",
                                       stateless_metrics=set())

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last_batch_time is not None:
            self._step_seconds += now - self._last_batch_time
            self._steps_timed += batch - self._last_batch
        self._last_batch, self._last_batch_time = batch, now
        super().on_train_batch_end(batch, logs)

    def on_test_begin(self, logs=None):
        super().on_test_begin(logs)
        self._validation_start = self.clock()

    def on_test_end(self, logs=None):
        super().on_test_end(logs)
        if self._validation_start is not None:
            self._validation_seconds += self.clock() - self._validation_start
            self._validations_timed += 1
            self._validation_start = None

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.step += self._last_batch + 1
        self._longest_epoch = max(self._longest_epoch, self._last_batch + 1)
        self._last_batch = -1
        if self.verbose:
            elapsed = self.clock() - self._start
            print(
                f"step {self.step}/{self.total_steps} ({100 * self.step / self.total_steps:.0f}%), "
                f"{format_duration(elapsed)} elapsed, about {format_duration(self.seconds_left())} left"
            )


class _RunProgbar(Progbar):
    """Keras's `Progbar`, whose time left ("ETA") is the run's (`RunProgress.seconds_left`), not the epoch's.

    Keras (3.15) computes the ETA inline as `time_per_unit * (target - current)`, from `_estimate_step_duration`,
    and shows `time_per_unit` again as "ms/step": the estimate is scaled so the ETA is the run's, and the shown
    time per step stays the measured one.
    """

    def __init__(self, progress, **kwargs):
        super().__init__(**kwargs)
        self._progress = progress
        self._measured = 0.0

    def _estimate_step_duration(self, current, now):
        self._measured = super()._estimate_step_duration(current, now)
        left = self._progress.seconds_left()
        if not self.target or current >= self.target or not math.isfinite(left):
            return self._measured
        return left / (self.target - current)

    def _format_time(self, time_per_unit, unit_name):
        return super()._format_time(self._measured, unit_name)


def format_duration(seconds):
    """`"1h02m03s"`, `"2m05s"` or `"7s"`.

    >>> format_duration(3723.4), format_duration(125), format_duration(7.2)
    ('1h02m03s', '2m05s', '7s')
    """
    if seconds != seconds:  # NaN
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"
