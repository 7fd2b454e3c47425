"""Which kernel runs an LSTM: cuDNN's fused one (through Keras's backend) or tfllm's own loop, by Keras's rules.

`keras.layers.LSTM` (Keras 3.15, TensorFlow backend) hands its sequence to `keras.src.backend.lstm`, cuDNN's fused
kernel, when all of these hold, and runs its own loop otherwise:

- `use_cudnn` is `"auto"` or `True`;
- the activation is tanh and the recurrent activation sigmoid, the layer has a bias and is not unrolled;
- there is no recurrent dropout (input dropout is applied to the sequence before the kernel);
- TensorFlow sees a GPU.

`use_cudnn=True` where one of these fails is an error, raised when the layer is called. A mask is not part of the
choice: with cuDNN, Keras's backend asserts at run time that every mask is right-padded (no gaps, not empty).
tfllm's `LSTM` follows the same rules through these functions, whose inputs are explicit so that every branch can
be tested on a machine without a GPU.
"""

import tensorflow as tf
from keras import activations, ops

CUDNN = "cudnn"
OWN_LOOP = "own_loop"
USE_CUDNN_VALUES = ("auto", True, False)


def gpu_available():
    """Whether TensorFlow sees a GPU: the check Keras's backend makes before it uses cuDNN."""
    return bool(tf.config.list_logical_devices("GPU"))


def has_standard_activations(activation, recurrent_activation):
    """Whether the LSTM's nonlinearities are tanh and sigmoid, the only ones cuDNN's kernel computes."""
    return activation in (activations.tanh, tf.tanh, ops.tanh) and recurrent_activation in (
        activations.sigmoid,
        tf.sigmoid,
        ops.sigmoid,
    )


def cudnn_obstacles(activation, recurrent_activation, use_bias, unroll, recurrent_dropout, gpu_available):
    """The reasons cuDNN cannot run an LSTM of these arguments on this machine; empty when it can.

    >>> cudnn_obstacles(activations.tanh, activations.sigmoid, True, False, 0.0, gpu_available=False)
    ['no GPU is visible']
    """
    reasons = []
    if not has_standard_activations(activation, recurrent_activation):
        reasons.append("the activations are not tanh and sigmoid")
    if not use_bias:
        reasons.append("use_bias=False")
    if unroll:
        reasons.append("unroll=True")
    if recurrent_dropout:
        reasons.append(f"recurrent_dropout={recurrent_dropout}")
    if not gpu_available:
        reasons.append("no GPU is visible")
    return reasons


def choose_lstm_kernel(use_cudnn, obstacles):
    """`CUDNN` or `OWN_LOOP` for a layer's `use_cudnn` and the `cudnn_obstacles` of its arguments.

    Raises:
        ValueError: `use_cudnn=True` but cuDNN cannot run the layer (Keras raises the same error type).

    >>> choose_lstm_kernel("auto", []), choose_lstm_kernel("auto", ["no GPU is visible"])
    ('cudnn', 'own_loop')
    >>> choose_lstm_kernel(False, [])
    'own_loop'
    """
    require_use_cudnn(use_cudnn)
    if use_cudnn in ("auto", True) and not obstacles:
        return CUDNN
    if use_cudnn is True:
        raise cudnn_unavailable(obstacles)
    return OWN_LOOP


def require_use_cudnn(use_cudnn):
    """Returns `use_cudnn` if it is one of `"auto"`, `True`, `False`; raises `ValueError` otherwise."""
    if use_cudnn not in USE_CUDNN_VALUES:
        raise ValueError(f"use_cudnn={use_cudnn!r} is invalid: expected 'auto', True or False")
    return use_cudnn


def cudnn_unavailable(obstacles):
    """The error for `use_cudnn=True` where cuDNN cannot run the layer, naming the `obstacles`."""
    return ValueError(
        f"use_cudnn=True but cuDNN cannot run this LSTM: {', '.join(obstacles)}; "
        "pass use_cudnn='auto' to fall back to the standard loop"
    )
