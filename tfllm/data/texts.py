"""Turning what users pass as text (a Dataset, a list, one string) into a `tf.data.Dataset` of scalar strings."""

import tensorflow as tf


def as_text_dataset(texts):
    """`texts` as a `tf.data.Dataset` of scalar `tf.string`: a Dataset passes through, a str, bytes or list is sliced.

    Raises:
        ValueError: an empty list, or a Dataset whose elements are not scalar strings.
    """
    if isinstance(texts, tf.data.Dataset):
        spec = texts.element_spec
        if not (isinstance(spec, tf.TensorSpec) and spec.dtype == tf.string and spec.shape.rank == 0):
            raise ValueError(f"texts must be a Dataset of scalar tf.string documents, got elements {spec}.")
        return texts
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: expected at least one document.")
    return tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string))
