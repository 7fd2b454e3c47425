"""`RunProgress`: Keras's progress bar, labelled with the run's global steps, and the time left for the whole run."""

import time

from keras.callbacks import ProgbarLogger


class RunProgress(ProgbarLogger):
    """The Keras progress bar (loss, metrics, tokens/s and the epoch's time left), with two changes for runs made
    of several `fit` calls or resumed in the middle of an epoch: each epoch is titled by its global steps
    ("Steps 201-400 of 1000") instead of "Epoch 2/5", and each epoch ends with a line giving the steps done,
    the time spent and the time left for the whole run.

    Put it last in the callbacks, so the logs it shows include what the other callbacks add. With it in the
    list, Keras adds no progress bar of its own.

    Args:
        total_steps: the run's steps.
        initial_step: the step the run starts from.
    """

    def __init__(self, total_steps, initial_step=0):
        super().__init__()
        self.total_steps = int(total_steps)
        self.initial_step = self.step = int(initial_step)
        self._start = None
        self._last_batch = -1

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._start is None:
            self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset_progbar()
        self._maybe_init_progbar()
        self._last_batch = -1
        if self.verbose:
            last = min(self.step + (self.target or 0), self.total_steps)
            print(f"Steps {self.step + 1}-{last} of {self.total_steps}")

    def on_train_batch_end(self, batch, logs=None):
        self._last_batch = batch
        super().on_train_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.step += self._last_batch + 1
        if self.verbose:
            elapsed = time.perf_counter() - self._start
            done = self.step - self.initial_step
            left = elapsed / done * (self.total_steps - self.step) if done else float("nan")
            print(
                f"step {self.step}/{self.total_steps} ({100 * self.step / self.total_steps:.0f}%), "
                f"{format_duration(elapsed)} elapsed, about {format_duration(left)} left"
            )


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
