"""`write_scalar` and `write_text`: TensorBoard summaries written with TensorFlow alone.

TensorFlow 2.21 no longer installs the `tensorboard` package, and without it `tf.summary.scalar` and
`tf.summary.text` raise. `tf.summary.write` is TensorFlow's own; given the metadata of TensorBoard's scalar and text
plugins, what it writes is what those functions write, so `tensorboard --logdir` (installed anywhere) shows it in
its Scalars and Text tabs.
"""

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)
# The text plugin's content is a serialized `TextPluginData(version=0)`, which is empty.
_TEXT = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"),
    data_class=summary_pb2.DATA_CLASS_TENSOR,
)


def write_scalar(tag, value, step):
    """Writes the number `value` as the scalar `tag` at `step` to the default summary writer.

    Example (`tfllm.training.callbacks.ScalarLogs` and `SampleCallback` write a run's logs this way):

    >>> import tempfile
    >>> with tf.summary.create_file_writer(tempfile.mkdtemp()).as_default():
    ...     bool(write_scalar("loss", 2.5, step=10)), bool(write_text("samples", ["In the beginning"], step=10))
    (True, True)
    """
    return tf.summary.write(tag, tf.constant(float(value), tf.float32), step=step, metadata=_SCALAR)


def write_text(tag, texts, step):
    """Writes `texts` (a string, or a list of them: a table of one column) as the text summary `tag` at `step`.
    TensorBoard renders each string as Markdown."""
    return tf.summary.write(tag, tf.constant(texts, tf.string), step=step, metadata=_TEXT)
