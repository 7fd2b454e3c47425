"""Row means, column sums and a bias's gradient: the same numbers as products with ones (CPU-only machines) and as
reductions (machines with GPUs or TPUs), each rule taking its own ops."""

import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import kernel_placement
from tfllm.layers.sums_as_products import add_bias, column_sums, row_means

RNG = np.random.default_rng(0)
RULES = pytest.mark.parametrize(
    "devices", [[], ["/device:GPU:0"]], ids=["cpu-only: products", "accelerator: reductions"]
)


def op_types(function, *arguments):
    return {op.type for op in tf.function(function).get_concrete_function(*arguments).graph.get_operations()}


@RULES
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_sums_equal_numpy_by_either_rule(monkeypatch, devices, dtype):
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: list(devices))
    values = tf.constant(RNG.normal(loc=1.0, size=(2, 3, 8)), dtype)
    exact = values.numpy().astype("float64")
    tolerance = 1e-6 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(tf.cast(row_means(values), tf.float64), exact.mean(-1, keepdims=True), rtol=tolerance,
                               atol=tolerance)
    np.testing.assert_allclose(tf.cast(column_sums(values), tf.float64), exact.sum((0, 1)), rtol=tolerance,
                               atol=tolerance)
    assert row_means(values).dtype == column_sums(values).dtype == values.dtype


@RULES
def test_each_rule_takes_its_own_ops(monkeypatch, devices):
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: list(devices))
    values = tf.ones((2, 3, 8))
    for function in (row_means, column_sums):
        types = op_types(function, values)
        assert ("MatMul" in types) == (not devices) and bool({"Mean", "Sum"} & types) == bool(devices)


@RULES
def test_add_bias_adds_and_its_bias_gradient_is_the_column_sum(monkeypatch, devices):
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: list(devices))
    outputs = tf.constant(RNG.normal(size=(2, 3, 4)), tf.float32)
    bias = tf.constant(RNG.normal(size=(4,)), tf.float32)
    upstream = tf.constant(RNG.normal(size=(2, 3, 4)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([outputs, bias])
        biased = add_bias(outputs, bias)
    output_gradient, bias_gradient = tape.gradient(biased, [outputs, bias], output_gradients=upstream)
    np.testing.assert_allclose(biased, outputs.numpy() + bias.numpy(), rtol=1e-6)
    np.testing.assert_allclose(output_gradient, upstream)
    np.testing.assert_allclose(bias_gradient, upstream.numpy().sum((0, 1)), rtol=1e-5)


@pytest.mark.parametrize("rows", [6, 4096], ids=["two-rows-of-ones", "one-row-of-ones"])
def test_column_sums_of_few_and_many_rows_equal_numpy_in_xla_kernels(monkeypatch, rows):
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: [])
    values = tf.constant(RNG.normal(size=(rows, 8)), tf.float32)
    sums = tf.function(column_sums, jit_compile=True)(values)
    np.testing.assert_allclose(sums, values.numpy().astype("float64").sum(0), rtol=1e-4, atol=1e-4)
    assert sums.shape == (8,)
