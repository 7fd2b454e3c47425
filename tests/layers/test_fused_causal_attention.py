"""The fused causal attention equals TensorFlow's ops, forward and backward, and CausalSelfAttention takes it only
in training steps it can compute."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import CausalSelfAttention, causal_self_attention, kernel_placement
from tfllm.layers.fused_causal_attention import (default_query_blocks, fused_causal_attention, kernel_dtype,
                                                 kernels_in_plain_graph)

RNG = np.random.default_rng(0)


def reference_attention(query, key, value):
    """The same attention written with TensorFlow's ops, for TensorFlow to differentiate."""
    length = query.shape[2]
    scores = tf.cast(tf.einsum("bhtk,bhsk->bhts", query, key), tf.float32)
    visible = np.tril(np.ones((length, length), bool))
    probabilities = tf.nn.softmax(tf.where(visible, scores, -1e9), axis=-1)
    return tf.einsum("bhts,bhsk->bthk", tf.cast(probabilities, value.dtype), value)


def values_and_gradients(function, inputs, variables=(), output_gradient=None):
    """`function(*inputs)` and the gradients of `sum(outputs * output_gradient)` for the inputs and `variables`."""
    inputs = [tf.convert_to_tensor(tensor) for tensor in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        outputs = function(*inputs)
    weights = output_gradient if output_gradient is not None else tf.ones_like(outputs)
    return outputs, tape.gradient(outputs, [*inputs, *variables], output_gradients=weights)


def heads(shape=(2, 3, 5, 4), dtype="float32"):
    return [tf.constant(RNG.normal(size=shape), dtype) for _ in range(3)]


def place_on(monkeypatch, onednn, devices=()):
    """This machine as one with oneDNN on or off and `devices` as its GPUs and TPUs."""
    monkeypatch.setattr(kernel_placement, "products_on_onednn", lambda: onednn)
    monkeypatch.setattr(kernel_placement, "accelerators", lambda: list(devices))


@pytest.fixture(params=["XLA", "plain graph"])
def placement(request, monkeypatch):
    """Each test that takes it runs with the kernels XLA-compiled and with them in the plain graph."""
    place_on(monkeypatch, onednn=request.param == "plain graph")
    assert kernels_in_plain_graph() == (request.param == "plain graph")
    return request.param


@pytest.mark.parametrize("query_blocks", [None, 2, 3, 5])
def test_values_and_gradients_equal_tensorflows(query_blocks, placement):
    inputs = heads()  # T = 5: blocks of 5, of 3 and 2, of 2, 1 and 2, and of 1 query each
    weights = tf.constant(RNG.normal(size=(2, 5, 3, 4)).astype("float32"))

    def attention(query, key, value):
        return fused_causal_attention(query, key, value, query_blocks=query_blocks)

    ours, our_gradients = values_and_gradients(attention, inputs, output_gradient=weights)
    theirs, their_gradients = values_and_gradients(reference_attention, inputs, output_gradient=weights)
    assert ours.shape == (2, 5, 3, 4)  # (B, T, H, Dh)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_gradient, their_gradient in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-5)


@pytest.mark.parametrize("query_blocks", [1, 2])
def test_a_query_sees_no_later_key(query_blocks, placement):
    query, key, value = heads()
    later = tf.concat([value[:, :, :3], value[:, :, 3:] + 100.0], axis=2)  # only positions 3 and 4 change
    first = fused_causal_attention(query, key, value, query_blocks)
    changed = fused_causal_attention(query, key, later, query_blocks)
    np.testing.assert_array_equal(first[:, :3], changed[:, :3])
    assert not np.allclose(first[:, 3:], changed[:, 3:])


def test_default_blocks_follow_the_length():
    assert [default_query_blocks(length) for length in (1, 63, 64, 191, 192, 512, 4096)] == [1, 1, 1, 2, 3, 8, 8]


def test_sequences_of_256_positions_in_4_blocks_equal_tensorflows(placement):
    inputs = heads(shape=(1, 2, 256, 8))
    assert default_query_blocks(256) == 4
    ours, our_gradients = values_and_gradients(fused_causal_attention, inputs)
    theirs, their_gradients = values_and_gradients(reference_attention, inputs)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for our_gradient, their_gradient in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(our_gradient, their_gradient, atol=1e-5)


def test_a_length_unknown_when_traced_takes_one_block(placement):
    inputs = heads()
    signature = [tf.TensorSpec((None, 3, None, 4), tf.float32)] * 3
    traced = tf.function(fused_causal_attention, input_signature=signature)
    np.testing.assert_allclose(traced(*inputs), reference_attention(*inputs), atol=1e-5)
    two_blocks = tf.function(lambda query, key, value: fused_causal_attention(query, key, value, query_blocks=2),
                             input_signature=signature)
    with pytest.raises(ValueError, match=r"query_blocks=2 needs the sequence length .* to be known"):
        two_blocks(*inputs)


@pytest.mark.parametrize("query_blocks", [0, 6])
def test_more_blocks_than_queries_or_none_is_an_error(query_blocks):
    expected = f"query_blocks must be between 1 and the sequence length 5, got {query_blocks}"
    with pytest.raises(ValueError, match=expected):
        fused_causal_attention(*heads(), query_blocks=query_blocks)


@pytest.mark.parametrize("onednn, devices", [(False, []), (True, []), (False, ["a GPU"])],
                         ids=["CPU, XLA", "CPU, oneDNN", "GPU"])
@pytest.mark.parametrize("query_blocks", [1, 2])
def test_bfloat16_in_and_out_with_a_float32_softmax(monkeypatch, query_blocks, onednn, devices):
    place_on(monkeypatch, onednn, devices)
    inputs = heads(dtype="bfloat16")
    outputs, gradients = values_and_gradients(
        lambda query, key, value: fused_causal_attention(query, key, value, query_blocks), inputs)
    assert outputs.dtype == tf.bfloat16 and all(gradient.dtype == tf.bfloat16 for gradient in gradients)
    np.testing.assert_allclose(tf.cast(outputs, tf.float32), tf.cast(reference_attention(*inputs), tf.float32),
                               atol=2e-2)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_kernels_compute_in_float32_under_xla_on_a_cpu(monkeypatch, dtype):
    place_on(monkeypatch, onednn=False)
    assert kernel_dtype(dtype) == tf.float32 and kernel_dtype("float32") == tf.float32
    inputs = heads(dtype=dtype)
    outputs, gradients = values_and_gradients(fused_causal_attention, inputs)
    # The float32 kernels on the same numbers, rounded to the inputs' dtype: exactly what the half inputs get.
    wide_outputs, wide_gradients = values_and_gradients(
        fused_causal_attention, [tf.cast(tensor, tf.float32) for tensor in inputs])
    assert outputs.dtype == dtype and all(gradient.dtype == dtype for gradient in gradients)
    np.testing.assert_array_equal(outputs, tf.cast(wide_outputs, dtype))
    for gradient, wide_gradient in zip(gradients, wide_gradients):
        np.testing.assert_array_equal(gradient, tf.cast(wide_gradient, dtype))


@pytest.mark.parametrize("accelerator", ["GPU", "TPU"])
def test_half_precision_kernels_keep_their_dtype_on_an_accelerator(monkeypatch, accelerator):
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: [f"/device:{kind}:0"] if kind == accelerator else [])
    assert kernel_placement.accelerators() == [f"/device:{accelerator}:0"]
    assert kernel_dtype("bfloat16") == tf.bfloat16 and kernel_dtype("float16") == tf.float16


def test_half_precision_kernels_keep_their_dtype_in_the_plain_graph_but_not_in_a_function_xla_compiles(monkeypatch):
    place_on(monkeypatch, onednn=True)
    assert kernel_dtype("bfloat16") == tf.bfloat16 and kernel_dtype("float16") == tf.float16
    seen = []  # what a call traced for XLA finds
    tf.function(lambda: seen.extend([kernels_in_plain_graph(), kernel_dtype("bfloat16")]), jit_compile=True)()
    assert seen == [False, tf.float32]


def xla_compiled_calls(function, *inputs):
    """For each function call in the graph of `function`'s gradient, whether XLA must compile it."""
    @tf.function(autograph=False)
    def gradients(*inputs):
        return values_and_gradients(function, inputs)[1]

    graph = gradients.get_concrete_function(*inputs).graph
    return [op.node_def.attr["_XlaMustCompile"].b for op in graph.get_operations()
            if op.type in ("PartitionedCall", "StatefulPartitionedCall")]


@pytest.mark.parametrize("onednn, devices, compiled", [(False, [], True), (True, [], False), (True, ["a GPU"], True)],
                         ids=["CPU without oneDNN", "CPU with oneDNN", "GPU"])
def test_the_kernels_are_xla_compiled_unless_the_cpu_runs_products_on_onednn(monkeypatch, onednn, devices, compiled):
    place_on(monkeypatch, onednn, devices)
    assert kernels_in_plain_graph() == (not compiled)
    assert xla_compiled_calls(fused_causal_attention, *heads()) == [compiled, compiled]  # forward, backward


@pytest.mark.parametrize("query_blocks", [1, 3])
def test_gradients_inside_a_step_compiled_by_xla_as_a_whole(query_blocks, placement):
    inputs = heads()

    def attention(query, key, value):
        return fused_causal_attention(query, key, value, query_blocks)

    @tf.function(jit_compile=True)
    def gradients(query, key, value):
        return values_and_gradients(attention, (query, key, value))[1]

    for ours, theirs in zip(gradients(*inputs), values_and_gradients(reference_attention, inputs)[1], strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


def attention_and_input(**kwargs):
    keras.utils.set_random_seed(0)
    attention = CausalSelfAttention(num_heads=2, **kwargs)
    x = RNG.normal(size=(2, 6, 8)).astype("float32")  # (B, T, D)
    attention(x)
    return attention, x


@pytest.mark.parametrize("rotary", [False, True], ids=["learned", "rotary"])
def test_a_training_call_equals_an_inference_call_values_and_gradients(rotary):
    attention, x = attention_and_input(rotary=rotary)
    variables = attention.trainable_variables
    trained, training_gradients = values_and_gradients(lambda v: attention(v, training=True), [x], variables)
    plain, plain_gradients = values_and_gradients(lambda v: attention(v, training=False), [x], variables)
    np.testing.assert_allclose(trained, plain, atol=1e-5)
    assert len(training_gradients) == 1 + 8  # the input; 4 kernels and 4 biases
    for ours, theirs in zip(training_gradients, plain_gradients, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize(
    "layer_arguments, call_arguments, fused",
    [
        ({}, {"training": True}, True),
        ({}, {"training": False}, False),
        ({"dropout": 0.1}, {"training": True}, False),  # dropout acts on the probabilities
        ({}, {"training": True, "padding_mask": np.array([[1] * 6, [0, 0, 1, 1, 1, 1]])}, False),
    ],
    ids=["training", "inference", "dropout", "padding"],
)
def test_the_fused_kernel_runs_only_in_training_calls_it_can_compute(monkeypatch, layer_arguments, call_arguments,
                                                                       fused):
    attention, x = attention_and_input(**layer_arguments)
    calls = []

    def counted(query, key, value):
        calls.append(query.shape)
        return fused_causal_attention(query, key, value)

    monkeypatch.setattr(causal_self_attention, "fused_causal_attention", counted)
    attention(x, **call_arguments)
    assert calls == ([(2, 2, 6, 4)] if fused else [])  # (B, H, T, Dh)
