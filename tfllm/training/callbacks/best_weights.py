"""`BestWeights`: keeps the weights of the best validation so far, so a run that overfits ends with its best model.

Early stopping the way a small data set needs it: training runs its planned steps, and whenever a validation
improves on the best one so far, the weights are written (atomically) to `best-step-<N>.weights.h5` and then
`best.json` (the step, the monitored value and the weights file's name) replaces the one before: `best.json` is the
commit point, so a process killed between the two writes leaves the previous best whole and labelled as it was. A
resumed run reads `best.json` back, so the best of every session counts. `restore(model)` loads the best weights
at the end.
"""

import glob
import json
import math
import os

from tfllm.training.atomic import atomic_path, atomic_write_text
from tfllm.training.callbacks.step_callback import StepCallback

WEIGHTS = "best.weights.h5"  # the weights file of runs written before the file was named by its step
STATE = "best.json"


class BestWeights(StepCallback):
    """Saves the weights at each validation that lowers `monitor` below its best so far.

    Args:
        directory: where `best.weights.h5` and `best.json` go (a run's `checkpoints/`).
        monitor: the validation log to minimize, e.g. "val_loss".
        initial_step: the steps done before the first batch (a resumed run's).
        write: False on the processes of a multi-worker job that do not write.

    Example (Keras's calls made by hand; `fit(..., callbacks=[best])` in training):

    >>> import tempfile, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> best = BestWeights(tempfile.mkdtemp(), monitor="val_loss")
    >>> best.set_model(model)
    >>> for step, val_loss in [(1, 2.0), (2, 1.5), (3, 1.7)]:
    ...     best.on_train_batch_end(0, {}); best.on_epoch_end(step, {"val_loss": val_loss})
    ...     best.on_epoch_begin(step)
    >>> best.best
    {'step': 2, 'val_loss': 1.5}
    """

    def __init__(self, directory, monitor="val_loss", initial_step=0, write=True):
        super().__init__(initial_step)
        self.directory, self.monitor, self.write = directory, monitor, write
        self.best = read_best(directory)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):
            return
        if self.best is not None and value >= self.best[self.monitor]:
            return
        self.best = {"step": self.step, self.monitor: float(value)}
        if self.write:
            os.makedirs(self.directory, exist_ok=True)
            name = f"best-step-{self.step:09d}.weights.h5"
            with atomic_path(os.path.join(self.directory, name)) as temporary:
                self.model.save_weights(temporary)
            atomic_write_text(os.path.join(self.directory, STATE), json.dumps({**self.best, "weights": name}) + "\n")
            for path in glob.glob(os.path.join(self.directory, "best-step-*.weights.h5")):
                if os.path.basename(path) != name:
                    os.remove(path)

    def restore(self, model):
        """Loads the best weights saved into `model`; returns what `best.json` says of them (None: none saved)."""
        best = read_best(self.directory)
        if best is not None:
            model.load_weights(os.path.join(self.directory, best["weights"]))
        return best


def read_best(directory):
    """The `best.json` of `directory` (`{"step": ..., monitor: ..., "weights": file name}`), or None when no
    validation was saved."""
    path = os.path.join(directory, STATE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        best = json.load(file)
    best.setdefault("weights", WEIGHTS)
    return best if os.path.exists(os.path.join(directory, best["weights"])) else None
