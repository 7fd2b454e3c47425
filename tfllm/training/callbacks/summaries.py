"""`write_scalar` and `write_text`: TensorBoard summaries written with TensorFlow alone; `drop_events`, to take
back what a killed run logged after its last checkpoint.

TensorFlow 2.21 no longer installs the `tensorboard` package, and without it `tf.summary.scalar` and
`tf.summary.text` raise. `tf.summary.write` is TensorFlow's own; given the metadata of TensorBoard's scalar and text
plugins, what it writes is what those functions write, so `tensorboard --logdir` (installed anywhere) shows it in
its Scalars and Text tabs.
"""

import os

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from tfllm.training.atomic import atomic_path

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


def drop_events(log_dir, dropped):
    """Rewrites the event files under `log_dir` without the summaries for which `dropped(folder, step, tag)` is true
    (`folder`: the file's folder under `log_dir`, such as "train"), each file replaced atomically; a last record cut
    short by a kill is dropped too. Returns how many summaries were dropped.

    A run killed after its last checkpoint had logged the steps after it, which the resumed run logs again:
    TensorBoard would draw both (`tfllm.training.pretrain` drops the first).

    >>> import tempfile
    >>> log_dir = tempfile.mkdtemp()
    >>> with tf.summary.create_file_writer(os.path.join(log_dir, "train")).as_default():
    ...     for step in (5, 10, 15):
    ...         _ = write_scalar("step_loss", 1.0 / step, step)
    >>> drop_events(log_dir, lambda folder, step, tag: step > 10)
    1
    >>> [event.step for name in os.listdir(os.path.join(log_dir, "train")) for event in
    ...  tf.compat.v1.train.summary_iterator(os.path.join(log_dir, "train", name)) if event.summary.value]
    [5, 10]
    """
    count = 0
    for root, _, names in os.walk(log_dir):
        folder = os.path.relpath(root, log_dir)
        for name in sorted(names):
            if not name.startswith("events.out.tfevents"):
                continue
            path, kept, changed = os.path.join(root, name), [], False
            try:
                for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                    event = tf.compat.v1.Event.FromString(record)
                    if any(dropped(folder, event.step, value.tag) for value in event.summary.value):
                        count, changed = count + 1, True
                    else:
                        kept.append(record)
            except tf.errors.DataLossError:  # a record cut short: the end of what was written
                changed = True
            if changed:
                with atomic_path(path) as temporary:
                    with tf.io.TFRecordWriter(temporary) as writer:
                        for record in kept:
                            writer.write(record)
    return count
