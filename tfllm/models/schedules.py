"""The learning-rate schedule of the default `compile()`: linear warmup, then cosine decay."""

import math

import keras
from keras import ops

from tfllm.checks import require_int_at_least


@keras.saving.register_keras_serializable(package="tfllm")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Rises linearly from 0 to `peak_learning_rate` over `warmup_steps`, then follows a cosine down to
    `final_fraction * peak_learning_rate` at `decay_steps` (counted from the start), and stays there.

    Warmup keeps Adam's first, badly estimated steps small; the cosine spends most steps at a high rate and
    anneals at the end (Loshchilov & Hutter, 2017).

    >>> schedule = WarmupCosineDecay(1e-3, warmup_steps=10, decay_steps=110)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 60, 110, 500)]
    [0.0, 0.0005, 0.001, 0.00055, 0.0001, 0.0001]
    """

    def __init__(self, peak_learning_rate, warmup_steps, decay_steps, final_fraction=0.1):
        if not peak_learning_rate > 0:
            raise ValueError(f"peak_learning_rate={peak_learning_rate!r} is invalid: expected a number > 0.")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = require_int_at_least("warmup_steps", warmup_steps, 0)
        self.decay_steps = require_int_at_least("decay_steps", decay_steps, self.warmup_steps + 1)
        if not 0 <= final_fraction <= 1:
            raise ValueError(f"final_fraction={final_fraction!r} is invalid: expected a fraction in [0, 1].")
        self.final_fraction = float(final_fraction)
        # Read by `__call__` from a variable, so that `set_decay_steps` reaches train steps already traced.
        self._decay_steps = keras.Variable(float(self.decay_steps), trainable=False, name="decay_steps")

    def set_decay_steps(self, decay_steps):
        """Moves the end of the cosine to `decay_steps`, in train steps already traced too (no new trace, no new
        XLA compilation). A run with a time budget fixes its step count this way after timing its first steps.

        >>> schedule = WarmupCosineDecay(1e-3, warmup_steps=10, decay_steps=110)
        >>> schedule.set_decay_steps(210)
        >>> round(float(schedule(110)), 6), schedule.get_config()["decay_steps"]
        (0.00055, 210)
        """
        self.decay_steps = require_int_at_least("decay_steps", decay_steps, self.warmup_steps + 1)
        self._decay_steps.assign(float(self.decay_steps))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = step / max(self.warmup_steps, 1)
        progress = ops.clip((step - self.warmup_steps) / (self._decay_steps - self.warmup_steps), 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = self.final_fraction + (1.0 - self.final_fraction) * cosine
        return self.peak_learning_rate * ops.where(step < self.warmup_steps, warmup, decayed)

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "final_fraction": self.final_fraction,
        }
