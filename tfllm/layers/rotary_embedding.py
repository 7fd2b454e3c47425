"""Rotary position embedding (RoPE, Su et al. 2021), rotate-half convention."""

import keras
from keras import ops

from tfllm.checks import require_positive_int


@keras.saving.register_keras_serializable(package="tfllm")
class RotaryEmbedding(keras.layers.Layer):
    """Rotates query or key vectors by angles proportional to their absolute position.

    Feature `i` of the first half of each head is paired with feature `i` of the second half ("rotate half", as in
    GPT-NeoX and Llama), and the pair is rotated by `position * max_wavelength ** (-2i / head_dim)`. The dot product
    of a rotated query and a rotated key then depends only on their relative distance. The angles are computed in
    float32 (float64 for float64 inputs) and cast to the input dtype, so positions stay exact under mixed precision.
    The layer has no weights.

    Args:
        max_wavelength: positive int, the longest wavelength of the rotations (the "base", 10000 in the paper).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor (B, T, H, Dh) of queries or keys; Dh must be even.
        start_index: int or scalar int tensor, the absolute position of the first of the T tokens. It is 0 for a full
            sequence and the cache write index when decoding with a key/value cache.

    Returns:
        A tensor of the same shape and dtype as `inputs`.

    Example:

    ```python
    import numpy as np
    rope = RotaryEmbedding()
    queries = np.ones((2, 5, 4, 8), "float32")  # (B, T, H, Dh)
    rotated = rope(queries)  # (2, 5, 4, 8), positions 0..4
    step = rope(queries[:, :1], start_index=5)  # (2, 1, 4, 8), position 5
    ```
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = require_positive_int("max_wavelength", max_wavelength)

    def build(self, input_shape):
        head_dim = input_shape[-1]
        if head_dim is not None and head_dim % 2:
            raise ValueError(f"head_dim={head_dim} is invalid: RotaryEmbedding needs an even last axis.")
        super().build(input_shape)

    def call(self, inputs, start_index=0):
        head_dim = inputs.shape[-1]
        angle_dtype = "float64" if keras.backend.standardize_dtype(inputs.dtype) == "float64" else "float32"
        positions = ops.cast(ops.arange(ops.shape(inputs)[1]), angle_dtype) + ops.cast(start_index, angle_dtype)  # (T,)
        exponents = ops.arange(0, head_dim, 2, dtype=angle_dtype) / head_dim  # (Dh/2,)
        inverse_frequencies = ops.power(float(self.max_wavelength), -exponents)
        angles = ops.einsum("t,f->tf", positions, inverse_frequencies)  # (T, Dh/2)
        # Both halves of a pair share an angle, matching the rotate-half split below.
        angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]  # (1, T, 1, Dh)
        cos = ops.cast(ops.cos(angles), inputs.dtype)
        sin = ops.cast(ops.sin(angles), inputs.dtype)
        first, second = ops.split(inputs, 2, axis=-1)  # 2 x (B, T, H, Dh/2)
        rotated_half = ops.concatenate([-second, first], axis=-1)  # (B, T, H, Dh)
        return inputs * cos + rotated_half * sin

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}
