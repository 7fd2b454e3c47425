"""Where a layer's products run fastest: the questions tfllm's layers and models ask about the machine and about
the trace, in one module so that each placement rule reads from one place.

- `accelerators()`: the machine's logical GPUs and TPUs (from TensorFlow's public `tf.config`).
- `products_on_onednn()`: whether TensorFlow's plain graph runs its matrix products on oneDNN, Intel's library.
  TensorFlow's Linux x86 packages turn oneDNN on by themselves on CPUs with the instructions it is built for
  (AVX-512 VNNI, AVX-512 BF16, AMX) and leave it off on others; `TF_ENABLE_ONEDNN_OPTS=0` or `=1` overrides them.
  With oneDNN, the plain graph's batched products were faster than XLA's on the Intel Xeon (AMX) of
  benchmarks/where_time_goes.py, and slower without it (`fused_causal_attention`).
- `sums_as_products()`: whether tfllm's kernels take their sums over rows or columns as products with a vector of
  ones, faster on CPUs than TensorFlow's and XLA's reductions (`sums_as_products`).
- `compiled_by_xla()`: whether the function being traced is compiled by XLA (`tf.function(jit_compile=True)`, or
  called inside one), where every op, a nested function's included, is compiled with it.

No public TensorFlow API answers the other two: their answers come from TensorFlow's private modules. If a
TensorFlow release moves them, importing this module fails at once, by name, rather than a layer silently taking a
slower path.
"""

import tensorflow as tf
from tensorflow.python.ops import control_flow_util
from tensorflow.python.util import _pywrap_util_port


def accelerators():
    """The logical GPUs and TPUs of this machine (an empty list on a CPU-only machine)."""
    return tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")


def products_on_onednn():
    """Whether TensorFlow's plain graph runs matrix products on oneDNN on this machine (decided when TensorFlow
    starts, from the CPU and `TF_ENABLE_ONEDNN_OPTS`).

    >>> isinstance(products_on_onednn(), bool)
    True
    """
    return bool(_pywrap_util_port.IsMklEnabled())


def sums_as_products():
    """Whether tfllm's kernels take their sums over rows or columns as products with a vector of ones
    (`sums_as_products`): on a machine without GPUs or TPUs, where TensorFlow's and XLA's reductions run slower
    than a matrix-vector product and a float32 product computes in float32. Not on GPUs and TPUs, whose float32
    products may round their inputs (TensorFloat-32 on recent NVIDIA GPUs, bfloat16 passes on TPUs by default),
    too coarse for a layer norm's statistics.
    """
    return not accelerators()


def compiled_by_xla():
    """Whether the function being traced is compiled by XLA (`tf.function(jit_compile=True)`, or inside one).

    >>> traced = []
    >>> tf.function(lambda: traced.append(compiled_by_xla()), jit_compile=True)()
    >>> tf.function(lambda: traced.append(compiled_by_xla()))()
    >>> traced
    [True, False]
    """
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())
