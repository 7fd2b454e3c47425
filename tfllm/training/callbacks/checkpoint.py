"""`StepCheckpoint`: the resumable training state (weights, optimizer state, step), saved every N steps, atomically.

Why not `keras.callbacks.BackupAndRestore` (Keras 3.15):

- it restores only the epoch: the batch it writes into its metadata is never read back, so a checkpoint taken in
  the middle of an epoch resumes at the start of that epoch, with weights (and optimizer iterations) from the
  middle of it, and the run trains more steps than it was asked to;
- after a resume its epoch counter starts at 0 until the first epoch ends, so a mid-epoch checkpoint in the
  resumed epoch is recorded as epoch 0, and a second interruption restarts from the first epoch;
- it writes the weights file in place, so a process killed while writing leaves a damaged file;
- it deletes its backup in `on_train_end`, which also runs when training was stopped by `TerminateOnNaN`, and it
  saves whatever the weights are, NaN included.

This callback writes `step-<N>.weights.h5` (the model's weights and the optimizer's variables, its iteration
count included: `model.save_weights`) and then `state.json` (the step, the weights file's name, the state of the
model's random seed generators, which `save_weights` leaves out, and any extra state) each through a temporary file
and an atomic rename. The seed generators draw the dropout masks, so a resumed run with dropout draws the masks of
an uninterrupted one. `state.json` is the commit point, so a crash at any moment leaves the previous checkpoint
intact. It refuses to save a state whose loss or weights are not finite.
"""

import glob
import json
import math
import os
import warnings

from keras import ops

from tfllm.training.atomic import TEMPORARY_PREFIX, atomic_path, atomic_write_text
from tfllm.training.callbacks.step_callback import StepCallback

STATE_FILE = "state.json"
SEEDS = "seed_generators"  # the key of the seed generators' states in `state.json`


class StepCheckpoint(StepCallback):
    """Saves the training state every `every` steps (and at step `total_steps`) into `directory`.

    Args:
        directory: the folder of the checkpoint; it holds one checkpoint, the latest.
        every: steps between checkpoints.
        total_steps: the run's last step, always saved (None: no final save).
        initial_step: the step the run starts from (the restored step when resuming).
        extra_state: a function returning a JSON-ready dict saved with each checkpoint (e.g. the loss history), so
            that it always matches the weights.
        write: False on the workers of a multi-worker job other than the chief: they restore the chief's
            checkpoint (on storage all workers share) and never write one.

    Attributes:
        saved_step: the step of the checkpoint on disk (None if there is none yet).

    In training: `model.fit(..., callbacks=[StepCheckpoint(directory, every=100, total_steps=1000)])`; when
    resuming, `restore` first and train the remaining steps.

    Example (saving by hand, then restoring into another model; both built, compiled, with their optimizer built):

    >>> import os, tempfile
    >>> import numpy as np
    >>> from tfllm.models import LSTMLM
    >>> def built_model():
    ...     model = LSTMLM(259, hidden_dim=8)
    ...     model.compile()
    ...     model(ops.zeros((1, 8), "int32"))
    ...     model.optimizer.build(model.trainable_variables)
    ...     return model
    >>> model = built_model()
    >>> checkpoint = StepCheckpoint(os.path.join(tempfile.mkdtemp(), "checkpoints"), every=100)
    >>> checkpoint.set_model(model)  # `fit` does this
    >>> checkpoint.save(step=100)
    True
    >>> sorted(os.listdir(checkpoint.directory))
    ['state.json', 'step-000000100.weights.h5']
    >>> other = built_model()
    >>> state = StepCheckpoint(checkpoint.directory, every=100).restore(other)
    >>> state["step"], state["weights"]
    (100, 'step-000000100.weights.h5')
    >>> all(np.array_equal(a, b) for a, b in zip(other.get_weights(), model.get_weights()))
    True
    """

    def __init__(self, directory, every, total_steps=None, initial_step=0, extra_state=None, write=True):
        super().__init__(initial_step)
        self.write = bool(write)
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.total_steps = total_steps
        self.extra_state = extra_state
        state = read_checkpoint_state(self.directory)
        self.saved_step = None if state is None else state["step"]

    def on_step_end(self, step, logs):
        if self.write and (step % self.every == 0 or step == self.total_steps):
            self.save(step, logs.get("loss"))

    def save(self, step=None, loss=None):
        """Saves the current state as step `step` (default: the current step); returns False (with a warning) and
        keeps the previous checkpoint when `loss` or a weight is NaN or infinite."""
        step = self.step if step is None else int(step)
        if (loss is not None and not math.isfinite(loss)) or not _weights_finite(self.model):
            warnings.warn(
                f"step {step}: the loss or the weights are not finite; the checkpoint of step {self.saved_step} is "
                "kept instead of saving this state",
                RuntimeWarning,
                stacklevel=2,
            )
            return False
        name = f"step-{step:09d}.weights.h5"
        with atomic_path(os.path.join(self.directory, name)) as temporary:
            self.model.save_weights(temporary)
        state = {"step": step, "weights": name, SEEDS: [ops.convert_to_numpy(variable).tolist()
                                                         for variable in seed_states(self.model)],
                 **(self.extra_state() if self.extra_state else {})}
        atomic_write_text(os.path.join(self.directory, STATE_FILE), json.dumps(state) + "\n")
        self.saved_step = step
        for path in glob.glob(os.path.join(self.directory, "step-*.weights.h5")):
            if os.path.basename(path) != name:
                os.remove(path)
        for path in glob.glob(os.path.join(self.directory, TEMPORARY_PREFIX + "*")):
            os.remove(path)  # left by a process killed while writing
        return True

    def restore(self, model):
        """Loads the latest checkpoint into `model` (built, compiled, with its optimizer built) and returns its
        state dict (`{"step": ..., ...}`), or None when there is no checkpoint."""
        state = read_checkpoint_state(self.directory)
        if state is None:
            return None
        path = os.path.join(self.directory, state["weights"])
        try:
            model.load_weights(path)
        except Exception as error:  # h5py and Keras raise many kinds for a missing or damaged file
            raise ValueError(
                f"the checkpoint {path} (step {state['step']}) cannot be loaded: {error}. It does not match this "
                "model, or it is damaged: start the run again with overwrite=True (--overwrite)"
            ) from error
        seeds, variables = state.get(SEEDS), seed_states(model)
        if seeds is not None and len(seeds) == len(variables):  # checkpoints before they were saved have none
            for variable, value in zip(variables, seeds):
                variable.assign(value)
        self.step = self._epoch_start_step = self.saved_step = state["step"]
        return state


def read_checkpoint_state(directory):
    """The `state.json` of the checkpoint in `directory` as a dict, or None when there is no checkpoint."""
    path = os.path.join(os.fspath(directory), STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as file:
        try:
            state = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is damaged ({error}): start the run again with overwrite=True "
                             "(--overwrite)") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int) or "weights" not in state:
        raise ValueError(f"{path} is not a checkpoint state (expected step and weights): {state!r:.200}")
    return state


def seed_states(model):
    """The state variables of the model's random seed generators (its dropout layers' and cells'), in the model's
    order: Keras keeps them in `model.variables` but not in `model.weights`, so `save_weights` does not save them."""
    weights = {id(weight) for weight in model.weights}
    return [variable for variable in model.variables
            if id(variable) not in weights and variable.name == "seed_generator_state"]


def _weights_finite(model):
    checks = [ops.all(ops.isfinite(weight)) for weight in model.trainable_weights]
    return bool(ops.all(ops.stack(checks))) if checks else True
