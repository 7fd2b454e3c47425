"""Fine-tuning input for classification heads: labelled texts -> padded token ids and integer labels."""

import numbers
import re

import tensorflow as tf

from tfllm.checks import require_positive_int
from tfllm.data.records import read_records


def classification_dataset(
    examples,
    tokenizer,
    sequence_length,
    batch_size,
    label_names=None,
    shuffle=True,
    seed=None,
    drop_remainder=False,
):
    """Batches of `(x, label)` from labelled texts, and the names of the labels.

    Each text becomes its first `sequence_length` tokens, padded with `pad_id` at the end; a classifier reads the
    representation of the last real token. Labels are the positions of the label names in `label_names` (sorted
    unique labels of the data when not given, in numeric order when every label is an integer, so the same data
    always gives the same numbering).

    Args:
        examples: A list of `(text, label)` tuples or of dicts with `text` and `label`, or the path of a JSONL or
            CSV file with those fields. A label is a class's name, a string or an integer (1 and "1" name one class).
        tokenizer: A tfllm tokenizer.
        sequence_length: T, tokens per text.
        batch_size: B.
        label_names: The labels in class order; every label of the data must be one of them.
        shuffle, seed: Shuffle the examples, anew each epoch, reproducibly with a seed (which every worker of a
            multi-worker strategy needs, as `lm_dataset`'s does).
        drop_remainder: Drop a last batch smaller than `batch_size`.

    Returns:
        `(dataset, label_names)`: a `tf.data.Dataset` of `(x, label)`, int32 (B, T) and int32 (B,), and the list of
        label names.

    Raises:
        ValueError: a label that is not in `label_names`, a label named twice there, fewer than two classes, or
            unreadable records.

    Example:

    >>> from tfllm.tokenizers import ByteTokenizer
    >>> data, names = classification_dataset(
    ...     [("good", "pos"), ("bad", "neg")], ByteTokenizer(), sequence_length=5, batch_size=2, shuffle=False)
    >>> names
    ['neg', 'pos']
    >>> x, label = next(iter(data))
    >>> x.numpy().tolist(), label.numpy().tolist()  # (B, T), (B,)
    ([[106, 114, 114, 103, 0], [101, 100, 103, 0, 0]], [1, 0])
    """
    sequence_length = require_positive_int("sequence_length", sequence_length)
    batch_size = require_positive_int("batch_size", batch_size)
    texts, labels = read_records(examples, ("text", "label"), "labelled texts", text_fields=("text",))
    for position, label in enumerate(labels):  # a class's name: 1.0, True or [1] beside 1 made classes of their own
        if isinstance(label, bool) or not isinstance(label, (str, numbers.Integral)):
            raise ValueError(f"the labelled texts, record {position}: the label {label!r:.40} is a "
                             f"{type(label).__name__}: expected a class's name, a string or an integer.")
        if isinstance(label, str) and not label.strip():  # an empty CSV cell made the class ''
            raise ValueError(f"the labelled texts, record {position}: the label is empty: expected a class's name.")
    labels = [str(label) for label in labels]
    if label_names is None:
        label_names = sorted_labels(labels)
    label_names = [str(name) for name in label_names]
    repeated = sorted({name for name in label_names if label_names.count(name) > 1})
    if repeated:
        raise ValueError(f"label_names={label_names} names {repeated} more than once: expected each class once.")
    unknown = sorted(set(labels) - set(label_names))
    if unknown:
        raise ValueError(f"labels {unknown} are not in label_names={label_names}.")
    if len(label_names) < 2:
        raise ValueError(f"label_names={label_names} has fewer than two classes: nothing to classify.")
    index = {name: position for position, name in enumerate(label_names)}
    label_ids = tf.constant([index[label] for label in labels], tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((tf.constant(texts), label_ids))
    if shuffle:
        dataset = dataset.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)

    @tf.autograph.experimental.do_not_convert  # plain graph code; see Tokenizer.tokenize
    def encode(batch_texts, batch_labels):
        ids = tokenizer.tokenize(batch_texts)[:, :sequence_length]  # (B, <= T)
        return ids.to_tensor(tokenizer.fill_id, shape=[None, sequence_length]), batch_labels  # (B, T), (B,)

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE), label_names


def sorted_labels(labels):
    """The unique labels (strings) in class order: numeric order when every one is an integer, else text order.

    >>> sorted_labels(["10", "2", "1", "2"]), sorted_labels(["pos", "neg"])
    (['1', '2', '10'], ['neg', 'pos'])
    """
    unique = set(labels)
    if all(re.fullmatch(r"-?[0-9]+", label) for label in unique):  # "10" after "9", not after "1"
        return sorted(unique, key=int)
    return sorted(unique)
