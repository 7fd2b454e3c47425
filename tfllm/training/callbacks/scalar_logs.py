"""`ScalarLogs`: TensorBoard scalars of every validation window, by global step, with TensorFlow alone."""

import math
import os

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfllm.training.callbacks.step_callback import StepCallback

# What the `tensorboard` package's scalar summary writes; TensorBoard shows these in its Scalars tab.
_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


class ScalarLogs(StepCallback):
    """Writes the epoch logs (loss, perplexity, tokens/s, MFU, and the validation metrics) and the learning rate as
    TensorBoard scalars in `log_dir/train` and `log_dir/validation`, at the global step.

    `keras.callbacks.TensorBoard` needs the `tensorboard` package to write scalars (TensorFlow 2.21 no longer
    installs it) and counts its x axis in epochs, which restart meaning when a run resumes mid-epoch. This callback
    uses `tf.summary.write` from TensorFlow itself, with the metadata of TensorBoard's scalar plugin, so
    `tensorboard --logdir run_dir/logs` (installed anywhere) shows the curves, by step.

    Args:
        log_dir: the folder of the event files.
        initial_step: the step the run starts from.

    Example:

        model.fit(batches, epochs=5, validation_data=validation, callbacks=[ScalarLogs("run/logs")])
    """

    def __init__(self, log_dir, initial_step=0):
        super().__init__(initial_step)
        self.log_dir = os.fspath(log_dir)
        self._writers = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        learning_rate = getattr(getattr(self.model, "optimizer", None), "learning_rate", None)
        if learning_rate is not None:
            logs["learning_rate"] = float(learning_rate)
        for name, value in logs.items():
            part, tag = ("validation", name[4:]) if name.startswith("val_") else ("train", name)
            if isinstance(value, (int, float)) and math.isfinite(value):
                with self._writer(part).as_default():
                    tf.summary.write(f"epoch_{tag}", tf.constant(float(value)), step=self.step, metadata=_SCALAR)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def _writer(self, part):
        if part not in self._writers:
            self._writers[part] = tf.summary.create_file_writer(os.path.join(self.log_dir, part))
        return self._writers[part]
