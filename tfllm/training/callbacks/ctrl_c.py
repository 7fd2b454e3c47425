"""Ctrl-C during `fit`, raised where Python cannot lose it: at the end of the batch it arrived in."""

import contextlib
import signal
import threading

import keras


class CtrlC(keras.callbacks.Callback):
    """Turns Ctrl-C (SIGINT) into a `KeyboardInterrupt` raised at the end of the current batch, while `installed()`.

    Python raises `KeyboardInterrupt` wherever its main thread is when it handles the signal. When that is a
    finalizer (a `__del__` of one of TensorFlow's objects, run by the garbage collector), the exception is printed
    as "Exception ignored" and dropped, and training goes on as if no key had been pressed. This callback's signal
    handler only records the press; the next batch end (of training or of a validation) raises it, from callback
    code that `fit` propagates. A second Ctrl-C raises at once, for a batch that never ends.

    Outside the main thread (where Python cannot set signal handlers) `installed()` changes nothing.

    Example:

    >>> ctrl_c = CtrlC()
    >>> with ctrl_c.installed():
    ...     signal.raise_signal(signal.SIGINT)  # recorded, not raised
    ...     try:
    ...         ctrl_c.on_train_batch_end(0)
    ...     except KeyboardInterrupt:
    ...         print("raised at the batch end")
    raised at the batch end
    """

    def __init__(self):
        super().__init__()
        self.pressed = False

    @contextlib.contextmanager
    def installed(self):
        """Handles SIGINT with this callback inside the `with` block; the previous handler comes back after it."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._on_signal)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_signal(self, number, frame):
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def raise_if_pressed(self):
        """Raises `KeyboardInterrupt` if Ctrl-C was pressed (and not raised yet)."""
        if self.pressed:
            self.pressed = False
            raise KeyboardInterrupt

    def on_train_batch_end(self, batch, logs=None):
        self.raise_if_pressed()

    def on_test_batch_end(self, batch, logs=None):
        self.raise_if_pressed()
