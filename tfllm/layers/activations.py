"""Activations that Keras does not name: GPT-2's GELU, the tanh approximation."""

import keras


@keras.saving.register_keras_serializable(package="tfllm")
def gelu_approximate(x):
    """GELU by its tanh approximation, as GPT-2 computes it (Hugging Face's "gelu_new"):

        0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))

    Registered, so a layer made with it saves and loads; `get_activation("gelu_approximate")` returns it.

    Example:

    >>> import numpy as np
    >>> x = np.array([-1.0, 0.0, 1.0, 3.0], "float32")
    >>> np.round(keras.ops.convert_to_numpy(gelu_approximate(x)), 4)
    array([-0.1588,  0.    ,  0.8412,  2.9964], dtype=float32)
    >>> np.round(keras.ops.convert_to_numpy(keras.activations.gelu(x)), 4)  # the exact GELU differs slightly
    array([-0.1587,  0.    ,  0.8413,  2.996 ], dtype=float32)
    """
    return keras.activations.gelu(x, approximate=True)


ACTIVATIONS = {"gelu_approximate": gelu_approximate}


def get_activation(identifier):
    """The activation function of `identifier`: tfllm's names (`ACTIVATIONS`), then whatever
    `keras.activations.get` reads (a Keras name such as "gelu" or "relu", a serialized function, a callable).

    Example:

    >>> get_activation("gelu_approximate") is gelu_approximate, get_activation("relu") is keras.activations.relu
    (True, True)
    """
    if isinstance(identifier, str) and identifier in ACTIVATIONS:
        return ACTIVATIONS[identifier]
    try:
        return keras.activations.get(identifier)
    except ValueError:
        raise ValueError(
            f"activation={identifier!r} is unknown: expected a Keras activation name (e.g. 'gelu', 'relu') or one of "
            f"{', '.join(map(repr, ACTIVATIONS))}"
        ) from None
