import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import CausalSelfAttention

B, T, D, H = 2, 5, 8, 2


def inputs(length=T, seed=0):
    return np.random.default_rng(seed).normal(size=(B, length, D)).astype("float32")  # (B, T, D)


def attention_with_fixed_weights(**kwargs):
    layer = CausalSelfAttention(num_heads=H, **kwargs)
    layer.build((None, None, D))
    rng = np.random.default_rng(42)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in layer.weights])
    return layer


def numpy_causal_attention(x, weights, num_heads, padding_mask=None):
    """softmax(Q K^T / sqrt(Dh)) V per head over keys s <= t, written with explicit loops over heads."""
    wq, bq, wk, bk, wv, bv, wo, bo = weights
    length, head_dim = x.shape[1], wq.shape[-1]
    allowed = np.tril(np.ones((length, length), bool))[None]  # (1, T, S)
    if padding_mask is not None:
        allowed = allowed & padding_mask.astype(bool)[:, None, :]  # (B, T, S)
    output = np.zeros_like(x) + bo
    for h in range(num_heads):
        q, k, v = (x @ w[:, h] + b[h] for w, b in ((wq, bq), (wk, bk), (wv, bv)))  # (B, T, Dh)
        scores = np.where(allowed, q @ k.transpose(0, 2, 1) / np.sqrt(head_dim), -np.inf)  # (B, T, S)
        probabilities = np.exp(scores - scores.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        output += (probabilities @ v) @ wo[h]
    return output


def test_matches_numpy_reference():
    layer = attention_with_fixed_weights()
    x = inputs()
    want = numpy_causal_attention(x, layer.get_weights(), H)
    np.testing.assert_allclose(np.asarray(layer(x)), want, atol=1e-5)


def test_matches_numpy_reference_with_padding_mask():
    layer = attention_with_fixed_weights()
    x = inputs()
    # Padding in the middle, so every query still has a real key to attend to.
    padding_mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 0, 1]])
    want = numpy_causal_attention(x, layer.get_weights(), H, padding_mask)
    np.testing.assert_allclose(np.asarray(layer(x, padding_mask=padding_mask)), want, atol=1e-5)


def test_weights_interchange_with_keras_multi_head_attention():
    x = inputs()
    keras_attention = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D // H)
    keras_attention(x, x)
    ours = CausalSelfAttention(num_heads=H)
    ours.build(x.shape)
    assert [w.shape for w in ours.weights] == [w.shape for w in keras_attention.weights]
    ours.set_weights(keras_attention.get_weights())
    want = keras_attention(x, x, use_causal_mask=True)
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(want), atol=1e-5)
    padding_mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0]])
    want = keras_attention(x, x, attention_mask=padding_mask[:, None, :].astype(bool), use_causal_mask=True)
    np.testing.assert_allclose(np.asarray(ours(x, padding_mask=padding_mask)), np.asarray(want), atol=1e-5)


def test_a_keras_mask_from_upstream_is_the_padding_mask_as_for_multi_head_attention():
    # It was dropped ("does not support masking"), as was the TransformerBlock's: padding reached real tokens.
    token_ids = np.array([[5, 6, 7, 8, 9], [3, 0, 4, 0, 2]])  # 0: padding
    embedding = keras.layers.Embedding(10, D, mask_zero=True)
    keras_attention = keras.layers.MultiHeadAttention(num_heads=H, key_dim=D // H)
    ours = CausalSelfAttention(num_heads=H)
    masked = embedding(token_ids)  # carries the Keras mask (which MultiHeadAttention's call takes off its inputs)
    keras_attention(masked, masked)
    ours.build(masked.shape)
    ours.set_weights(keras_attention.get_weights())
    real = token_ids != 0
    masked = embedding(token_ids)
    theirs = np.asarray(keras_attention(masked, masked, use_causal_mask=True))
    explicit = np.asarray(ours(masked, padding_mask=real))
    np.testing.assert_allclose(np.asarray(ours(embedding(token_ids)))[real], theirs[real], atol=1e-5)
    np.testing.assert_allclose(np.asarray(ours(embedding(token_ids)))[real], explicit[real], atol=1e-6)
    assert np.abs(np.asarray(ours(masked.numpy()))[real] - explicit[real]).max() > 1e-3  # the mask matters here
    token = keras.Input((None,), dtype="int32")
    model = keras.Model(token, ours(embedding(token)))  # a functional model passes the mask on its own
    np.testing.assert_allclose(np.asarray(model(token_ids))[real], explicit[real], atol=1e-6)


def test_float64_keeps_float64_precision():
    # The softmax ran in float32 under every policy: 1.3e-7 from a float64 reference, against Keras's 3e-16.
    layer = CausalSelfAttention(num_heads=H, dtype="float64")
    layer.build((None, None, D))
    rng = np.random.default_rng(42)
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.weights])
    x = inputs().astype("float64")
    want = numpy_causal_attention(x, layer.get_weights(), H)
    np.testing.assert_allclose(np.asarray(layer(x)), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rotary", [False, True])
def test_is_causal(rotary):
    layer = CausalSelfAttention(num_heads=H, rotary=rotary)
    x = inputs()
    changed = x.copy()
    changed[:, 3:] += 1.0  # change positions 3 and 4 only
    before, after = np.asarray(layer(x)), np.asarray(layer(changed))
    np.testing.assert_allclose(after[:, :3], before[:, :3], atol=1e-6)
    assert np.abs(after[:, 3:] - before[:, 3:]).min() > 1e-4


def test_padded_keys_are_ignored():
    layer = CausalSelfAttention(num_heads=H)
    x = inputs()
    padding_mask = np.array([[0, 0, 1, 1, 1]] * B)  # left padding
    changed = x.copy()
    changed[:, :2] = 7.0
    before = np.asarray(layer(x, padding_mask=padding_mask))
    after = np.asarray(layer(changed, padding_mask=padding_mask))
    np.testing.assert_allclose(after[:, 2:], before[:, 2:], atol=1e-6)
    # Without the mask the padded positions do reach the real ones, so the check above is not vacuous.
    assert not np.allclose(np.asarray(layer(changed))[:, 2:], np.asarray(layer(x))[:, 2:], atol=1e-4)
    assert np.isfinite(after).all()


@pytest.mark.parametrize("rotary", [False, True])
def test_cached_decoding_equals_full_pass(rotary):
    layer = CausalSelfAttention(num_heads=H, rotary=rotary)
    x = inputs(length=6)
    full = np.asarray(layer(x))
    cache = layer.initial_cache(batch_size=B, max_length=8)  # two slots stay empty
    assert [tensor.shape for tensor in cache] == [(B * H, 8, D // H)] * 2  # keys and values, a row per head
    prompt, cache = layer(x[:, :3], cache=cache, cache_index=0)
    steps = [prompt]
    for t in range(3, 6):
        step, cache = layer(x[:, t : t + 1], cache=cache, cache_index=tf.constant(t))
        steps.append(step)
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(cache)[:, :, 6:], 0.0)
    if not rotary:
        for dense, cached in zip((layer.key_dense, layer.value_dense), cache, strict=True):
            heads = np.asarray(dense(x)).transpose(0, 2, 1, 3).reshape(B * H, 6, D // H)  # row b * H + h: head h of b
            np.testing.assert_allclose(np.asarray(cached)[:, :6], heads, atol=1e-6)


def test_cached_prefill_respects_padding_mask():
    layer = CausalSelfAttention(num_heads=H)
    x = inputs()
    padding_mask = np.array([[0, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    want = np.asarray(layer(x, padding_mask=padding_mask))
    cache_mask = np.concatenate([padding_mask, np.ones((B, 3), "int32")], axis=1)  # (B, S_max)
    got, _ = layer(x, cache=layer.initial_cache(B, 8), cache_index=0, padding_mask=cache_mask)
    # Outputs at padded query positions are unspecified; compare the real ones.
    np.testing.assert_allclose(np.asarray(got)[:, 2:], want[:, 2:], atol=1e-5)
    np.testing.assert_allclose(np.asarray(got)[0, 1], want[0, 1], atol=1e-5)


@pytest.mark.parametrize("rotary", [False, True])
def test_compiles_with_and_without_cache(rotary):
    layer = CausalSelfAttention(num_heads=H, rotary=rotary)
    x = inputs()
    assert_compiles(lambda x: layer(x), x)
    cache = [np.asarray(tensor) for tensor in layer(x[:, :4], cache=layer.initial_cache(B, 6), cache_index=0)[1]]
    step = lambda x_t, cache, index: layer(x_t, cache=cache, cache_index=index)  # noqa: E731
    assert_compiles(step, x[:, 4:5], cache, tf.constant(4))


def test_dropout_only_in_training():
    layer = CausalSelfAttention(num_heads=H, dropout=0.5)
    x = inputs()
    np.testing.assert_array_equal(np.asarray(layer(x)), np.asarray(layer(x, training=False)))
    assert not np.allclose(np.asarray(layer(x, training=True)), np.asarray(layer(x)))


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision(policy):
    x = inputs()
    layer, got = run_under_policy(policy, lambda: CausalSelfAttention(num_heads=H), x)
    assert keras.backend.standardize_dtype(got.dtype) == layer.compute_dtype
    assert layer.query_dense.kernel.dtype == "float32"
    want = numpy_causal_attention(x, layer.get_weights(), H)
    np.testing.assert_allclose(np.asarray(tf.cast(got, "float32")), want, atol=0.1)
    cache = layer.initial_cache(B, 6)
    assert [keras.backend.standardize_dtype(tensor.dtype) for tensor in cache] == [layer.compute_dtype] * 2
    step, cache = layer(x[:, :1], cache=cache, cache_index=0)
    assert np.isfinite(np.asarray(tf.cast(step, "float32"))).all()


def test_explicit_key_dim_need_not_divide_hidden_size():
    layer = CausalSelfAttention(num_heads=4, key_dim=3)
    x = np.ones((1, 2, 10), "float32")
    assert layer(x).shape == (1, 2, 10)
    assert layer.query_dense.kernel.shape == (10, 4, 3)


def test_config_and_saving_round_trip(tmp_path):
    assert_config_round_trip(CausalSelfAttention(num_heads=H, key_dim=3, dropout=0.1, use_bias=False, rotary=True))
    x = keras.Input((T, D))
    model = keras.Model(x, CausalSelfAttention(num_heads=H, rotary=True)(x))
    assert_saving_round_trip(model, inputs(), str(tmp_path / "attention.keras"))


def test_writing_past_the_end_of_the_cache_is_refused():
    # The update moved the start back without a word: slot 8 took the key of position 9, and position 9's output was
    # wrong. A write that fits still runs.
    attention = CausalSelfAttention(num_heads=2)
    x = np.random.default_rng(0).normal(size=(1, 11, 8)).astype("float32")
    attention(x[:, :1])  # builds it
    cache = attention.initial_cache(batch_size=1, max_length=10)
    _, cache = attention(x[:, :9], cache=cache, cache_index=0)
    with pytest.raises(ValueError, match=r"cache_index=9 with 2 new positions does not fit the cache of 10 slots: "
                                         r"expected 0 <= cache_index <= 8\."):
        attention(x[:, 9:11], cache=cache, cache_index=9)
    with pytest.raises(ValueError, match=r"cache_index=-1 with 1 new position does not fit"):
        attention(x[:, 9:10], cache=cache, cache_index=tf.constant(-1))
    output, _ = attention(x[:, 9:10], cache=cache, cache_index=9)
    np.testing.assert_allclose(np.asarray(output[:, 0]), np.asarray(attention(x[:, :10])[:, 9]), atol=1e-5)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="num_heads=0"):
        CausalSelfAttention(num_heads=0)
    with pytest.raises(ValueError, match="dropout=1.5"):
        CausalSelfAttention(num_heads=2, dropout=1.5)
    with pytest.raises(ValueError, match="key_dim=0"):
        CausalSelfAttention(num_heads=2, key_dim=0)
    with pytest.raises(ValueError, match="hidden_dim=10 is not divisible by num_heads=4"):
        CausalSelfAttention(num_heads=4)(np.ones((1, 2, 10), "float32"))
    layer = CausalSelfAttention(num_heads=2)
    with pytest.raises(ValueError, match="initial_cache"):
        layer.initial_cache(1, 4)
    layer(inputs())
    with pytest.raises(ValueError, match="cache_index is required"):
        layer(inputs(), cache=layer.initial_cache(B, 8))
    with pytest.raises(ValueError, match=r"cache must be the pair \(keys, values\) that initial_cache returns"):
        layer(inputs(), cache=np.zeros((B, 2, 2, 8, 4), "float32"), cache_index=0)  # the layout before 2026-12
    # Padding masks of the wrong shape failed inside TensorFlow's ops ("Incompatible shapes ... [Op:LogicalAnd]").
    for mask, length in (((B, T + 2), T), ((B + 1, T), T), ((B, T, T), T)):
        with pytest.raises(ValueError, match=rf"padding_mask of shape \({', '.join(map(str, mask))}\): expected \(B, "
                                             rf"S\) = \({B}, {length}\), one value per position of the inputs"):
            layer(inputs(), padding_mask=np.ones(mask))
    with pytest.raises(ValueError, match=rf"padding_mask of shape \({B}, 1\): expected \(B, S\) = \({B}, 8\), one "
                                         r"value per slot of the cache"):
        layer(inputs(1), cache=layer.initial_cache(B, 8), cache_index=0, padding_mask=np.ones((B, 1)))
    one_row = np.asarray(layer(inputs(), padding_mask=np.ones((1, T))))  # one row broadcasts, as before
    np.testing.assert_allclose(one_row, np.asarray(layer(inputs())), atol=1e-6)


def test_a_cache_of_another_shape_is_refused():
    # A cache made for another batch size or another layer's heads failed inside TensorFlow's ops (a reshape or an
    # einsum); layer is 2 heads of 4.
    layer = CausalSelfAttention(num_heads=2)
    layer(inputs())
    for keys_shape, values_shape in (((B + 1) * 2, 8, 4), (B * 2, 8, 4)), ((B * 2, 8, 4), (B * 2, 8, 8)), \
                                    ((B * 2, 8), (B * 2, 8, 4)):
        bad = keys_shape if keys_shape != (B * 2, 8, 4) else values_shape
        name = "keys" if bad is keys_shape else "values"
        slots = 8 if len(keys_shape) == 3 else "S_max"
        with pytest.raises(ValueError, match=rf"cache {name} of shape \({', '.join(map(str, bad))}\): expected "
                                             rf"\(B \* num_heads, S_max, head size\) = \({B} \* 2, {slots}, 4\), as "
                                             rf"{layer.name}.initial_cache\(batch_size={B}, max_length\) makes it\."):
            layer(inputs(1), cache=(np.zeros(keys_shape, "float32"), np.zeros(values_shape, "float32")),
                  cache_index=0)
    output, _ = layer(inputs(1), cache=layer.initial_cache(B, 8), cache_index=0)  # the right shape still runs
    assert output.shape == (B, 1, 8)


@pytest.mark.parametrize("concatenated", [True, False], ids=["joined", "apart"])
@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("rows", [1, 3], ids=["one_row", "three_rows"])
def test_fused_projections_equal_the_projection_layers(lora, rows, concatenated):
    # Q, K and V come from one product with the three kernels side by side (or, for decoding in the plain graph,
    # three plain products), and Wo from one plain product, not from calling the EinsumDense layers; one row is a
    # decode step of one sequence.
    attention = CausalSelfAttention(num_heads=2)
    x = np.random.default_rng(0).normal(size=(1, rows, 8)).astype("float32")  # (B=1, T, D)
    attention(x)
    denses = (attention.query_dense, attention.key_dense, attention.value_dense, attention.output_dense)
    if lora:
        for dense in denses:
            dense.enable_lora(2)
            dense.lora_kernel_b.assign(np.full(dense.lora_kernel_b.shape, 0.5, "float32"))
    want = [np.asarray(dense(x)) for dense in denses[:3]]  # 3 x (1, T, H, Dh)
    heads = np.random.default_rng(1).normal(size=(1, rows, 2, 4)).astype("float32")  # (B, T, H, Dh)
    want.append(np.asarray(attention.output_dense(heads)))  # (1, T, D)

    def fused(x, heads):
        return (*attention._query_key_value(x, concatenated), attention._attention_output(heads))

    for got in (fused(x, heads), tf.function(fused, jit_compile=True)(x, heads)):
        for got_part, want_part in zip(got, want):
            np.testing.assert_allclose(np.asarray(got_part), want_part, atol=1e-5)


def test_a_decode_step_joins_the_kernels_only_under_xla():
    # In the plain graph the kernels joined for Q, K and V would be copied at every token; XLA joins them once,
    # before its decode loop, and its joined product is the faster.
    attention = CausalSelfAttention(num_heads=2)
    x = np.ones((1, 1, 8), "float32")  # (B, T, D): one token
    attention(x)
    cache = attention.initial_cache(1, 4)

    def joins_kernels(jit_compile):
        step = tf.function(lambda x, keys, values: attention(x, cache=(keys, values), cache_index=0)[0],
                           jit_compile=jit_compile)
        graph = step.get_concrete_function(x, *cache).graph
        return any(op.type == "ConcatV2" for op in graph.get_operations())

    assert joins_kernels(jit_compile=True)
    assert not joins_kernels(jit_compile=False)
