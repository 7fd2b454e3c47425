"""Learned absolute position embedding."""

import numbers

import keras
import tensorflow as tf
from keras import ops

from tfllm.checks import require_positive_int
from tfllm.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="tfllm")
class PositionEmbedding(keras.layers.Layer):
    """One learned vector per absolute position, as in GPT-2; added to the token embeddings.

    Args:
        max_sequence_length: positive int, the number of positions that have a vector.
        initializer: initializer of the `embeddings` weight (max_sequence_length, D).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor (B, T, D), usually the token embeddings; only its shape is used.
        start_index: int or scalar int tensor, the position of the first of the T tokens: 0 for a full sequence,
            the cache write index when decoding one token at a time.

    Returns:
        The vectors of positions `start_index .. start_index + T - 1`, broadcast to the shape of `inputs` (B, T, D)
        in the compute dtype.

    A static T longer than `max_sequence_length`, or a Python-int `start_index` that runs past the end, raises a
    `ValueError`. A tensor `start_index` cannot be checked while tracing; keep it at most `max_sequence_length - T`.

    Example:

    ```python
    import numpy as np
    positions = PositionEmbedding(max_sequence_length=16)
    tokens = np.zeros((2, 5, 8), "float32")  # (B, T, D) token embeddings
    x = tokens + positions(tokens)  # (2, 5, 8), positions 0..4
    step = positions(tokens[:, :1], start_index=5)  # (2, 1, 8), position 5
    ```
    """

    def __init__(self, max_sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_sequence_length = require_positive_int("max_sequence_length", max_sequence_length)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_sequence_length, input_shape[-1]),
            initializer=clone_initializer(self.initializer),
        )
        super().build(input_shape)

    def call(self, inputs, start_index=0):
        sequence_length = inputs.shape[1]
        if sequence_length is None:
            sequence_length = ops.shape(inputs)[1]
        else:
            self._check_fits(sequence_length, start_index)
        if isinstance(start_index, numbers.Integral):
            positions = ops.slice(self.embeddings, [start_index, 0], [sequence_length, self.embeddings.shape[-1]])
        else:
            # A tensor start is gathered, not sliced: XLA makes a slice's start a compile-time constant when it can,
            # so a compiled one-token decode step taking the position as an argument was compiled anew for every
            # position (1 s each for a small model, and code memory that is never freed).
            rows = ops.cast(start_index, "int32") + ops.arange(sequence_length, dtype="int32")  # (T,)
            positions = ops.take(self.embeddings, rows, axis=0)  # (T, D)
        positions = ops.cast(positions, self.compute_dtype)
        return ops.broadcast_to(positions[None], ops.shape(inputs))  # (B, T, D)

    def _check_fits(self, sequence_length, start_index):
        if sequence_length > self.max_sequence_length:
            raise ValueError(
                f"sequence_length={sequence_length} is longer than max_sequence_length={self.max_sequence_length}."
            )
        start = tf.get_static_value(start_index)  # a Python or NumPy int, or an eager tensor: known now
        if start is not None and start < 0:
            raise ValueError(f"start_index={int(start)} is invalid: expected a position >= 0.")
        if start is not None and start + sequence_length > self.max_sequence_length:
            raise ValueError(
                f"start_index={int(start)} + sequence_length={sequence_length} runs past "
                f"max_sequence_length={self.max_sequence_length}."
            )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_sequence_length": self.max_sequence_length,
            "initializer": keras.initializers.serialize(self.initializer),
        }
