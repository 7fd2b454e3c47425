import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import PositionEmbedding, TokenEmbedding, TransformerBlock

B, T, D, H = 2, 6, 8, 2


def inputs(length=T, seed=0):
    return np.random.default_rng(seed).normal(size=(B, length, D)).astype("float32")  # (B, T, D)


class TinyLM(keras.Model):
    """Token embedding (+ learned positions unless rotary) -> one block -> tied logits."""

    def __init__(self, vocab_size=11, hidden_dim=D, max_length=32, rotary=False):
        super().__init__()
        self.token_embedding = TokenEmbedding(vocab_size, hidden_dim)
        self.position_embedding = None if rotary else PositionEmbedding(max_length)
        self.block = TransformerBlock(num_heads=H, intermediate_dim=4 * hidden_dim, rotary=rotary)
        self.final_norm = keras.layers.LayerNormalization()

    def call(self, token_ids, cache=None, cache_index=None):
        x = self.token_embedding(token_ids)  # (B, T, D)
        if self.position_embedding is not None:
            x = x + self.position_embedding(x, start_index=0 if cache is None else cache_index)
        x = self.block(x, cache=cache, cache_index=cache_index)
        if cache is not None:
            x, cache = x
        logits = self.token_embedding(self.final_norm(x), reverse=True)  # (B, T, V)
        return logits if cache is None else (logits, cache)


def token_ids(length=T, vocab_size=11, seed=0):
    return np.random.default_rng(seed).integers(0, vocab_size, size=(B, length)).astype("int32")


@pytest.mark.parametrize("normalize_first", [True, False])
def test_wiring_matches_the_equations(normalize_first):
    block = TransformerBlock(num_heads=H, intermediate_dim=16, normalize_first=normalize_first)
    x = inputs()
    got = np.asarray(block(x))
    attention = block.self_attention
    first_norm, second_norm = block.self_attention_layer_norm, block.feedforward_layer_norm

    def feedforward(h):
        return block.feedforward_output_dense(block.activation(block.feedforward_intermediate_dense(h)))

    if normalize_first:
        h = x + attention(first_norm(x))
        want = h + feedforward(second_norm(h))
    else:
        h = first_norm(x + attention(x))
        want = second_norm(h + feedforward(h))
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


def test_pre_norm_block_with_zero_output_kernels_is_identity():
    block = TransformerBlock(num_heads=H, intermediate_dim=16)
    x = inputs()
    block(x)
    for dense in (block.self_attention.output_dense, block.feedforward_output_dense):
        dense.kernel.assign(np.zeros(dense.kernel.shape, "float32"))
    np.testing.assert_allclose(np.asarray(block(x)), x, atol=1e-6)


@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("normalize_first", [True, False])
def test_is_causal(rotary, normalize_first):
    block = TransformerBlock(num_heads=H, intermediate_dim=16, rotary=rotary, normalize_first=normalize_first)
    x = inputs()
    changed = x.copy()
    changed[:, 4:] = -x[:, 4:]
    before, after = np.asarray(block(x)), np.asarray(block(changed))
    np.testing.assert_allclose(after[:, :4], before[:, :4], atol=1e-6)
    assert np.abs(after[:, 4:] - before[:, 4:]).max() > 1e-3


def test_padded_positions_do_not_reach_real_ones():
    block = TransformerBlock(num_heads=H, intermediate_dim=16)
    x = inputs()
    padding_mask = np.array([[0, 0, 0, 1, 1, 1], [0, 1, 1, 1, 1, 1]])
    changed = x.copy()
    changed[padding_mask == 0] = 5.0
    before = np.asarray(block(x, padding_mask=padding_mask))
    after = np.asarray(block(changed, padding_mask=padding_mask))
    np.testing.assert_allclose(after[:, 3:], before[:, 3:], atol=1e-6)
    assert not np.allclose(np.asarray(block(changed))[:, 3:], np.asarray(block(x))[:, 3:], atol=1e-4)


def test_a_keras_mask_from_upstream_is_the_padding_mask():
    # It was dropped ("does not support masking"): padding reached the real tokens after it.
    token_ids = np.array([[0, 0, 0, 4, 5, 6], [0, 7, 8, 9, 1, 2]])  # 0: padding, on the left
    embedding = keras.layers.Embedding(11, D, mask_zero=True)
    block = TransformerBlock(num_heads=H, intermediate_dim=16)
    explicit = np.asarray(block(embedding(token_ids), padding_mask=token_ids != 0))
    token = keras.Input((None,), dtype="int32")
    model = keras.Model(token, block(embedding(token)))
    for ours in (np.asarray(block(embedding(token_ids))), np.asarray(model(token_ids))):
        np.testing.assert_allclose(ours[token_ids != 0], explicit[token_ids != 0], atol=1e-6)


def decode_step_by_step(model, ids, prompt_length, max_length, compiled=False):
    """Prefills `prompt_length` tokens, then feeds one token at a time; returns the logits of every position."""
    prefill = lambda ids, cache, index: model(ids, cache=cache, cache_index=index)  # noqa: E731
    step = prefill
    if compiled:
        prefill = tf.function(prefill, jit_compile=True)
        step = tf.function(step, jit_compile=True)
    cache = model.block.initial_cache(batch_size=ids.shape[0], max_length=max_length)
    logits, cache = prefill(ids[:, :prompt_length], cache, tf.constant(0))
    all_logits = [logits]
    for t in range(prompt_length, ids.shape[1]):
        logits, cache = step(ids[:, t : t + 1], cache, tf.constant(t))
        all_logits.append(logits)
    if compiled:
        # Static shapes: one trace serves every step, whatever the cache index.
        assert step.experimental_get_tracing_count() == 1
    return np.concatenate(all_logits, axis=1), cache


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("rotary", [False, True], ids=["learned_positions", "rotary"])
def test_cached_decoding_equals_full_pass(rotary, compiled):
    model = TinyLM(rotary=rotary)
    ids = token_ids(length=7)
    full = np.asarray(model(ids))  # (B, 7, V)
    stepped, cache = decode_step_by_step(model, ids, prompt_length=3, max_length=10, compiled=compiled)
    assert stepped.dtype == np.float32 and stepped.shape == full.shape
    np.testing.assert_allclose(stepped, full, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(cache)[:, :, 7:], 0.0)  # keys and values, (B H, S_max, Dh) each


def test_initial_cache():
    block = TransformerBlock(num_heads=H, intermediate_dim=16)
    with pytest.raises(ValueError, match="initial_cache"):
        block.initial_cache(2, 4)
    block(inputs())
    cache = block.initial_cache(batch_size=3, max_length=9)
    assert [tensor.shape for tensor in cache] == [(3 * H, 9, D // H)] * 2
    assert [keras.backend.standardize_dtype(tensor.dtype) for tensor in cache] == ["float32"] * 2
    bfloat16_cache = block.initial_cache(1, 2, dtype="bfloat16")
    assert [keras.backend.standardize_dtype(tensor.dtype) for tensor in bfloat16_cache] == ["bfloat16"] * 2


@pytest.mark.parametrize("rotary", [False, True])
def test_compiles(rotary):
    block = TransformerBlock(num_heads=H, intermediate_dim=16, rotary=rotary)
    assert_compiles(lambda x: block(x), inputs())


# Outputs of a few units, through a few products each rounded to 8 (bfloat16) or 11 (float16) significant bits:
# measured 0.018 and 0.0026 from the float32 numbers.
MIXED_PRECISION_ATOL = {"mixed_bfloat16": 0.05, "mixed_float16": 0.01}


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_gives_the_float32_numbers_full_and_cached(policy):
    x = inputs()
    block, got = run_under_policy(policy, lambda: TransformerBlock(num_heads=H, intermediate_dim=16), x)
    assert keras.backend.standardize_dtype(got.dtype) == block.compute_dtype
    assert all(w.dtype == "float32" for w in block.weights)
    twin = TransformerBlock(num_heads=H, intermediate_dim=16)  # float32, the same weights
    twin(x)
    twin.set_weights(block.get_weights())
    want = np.asarray(twin(x))  # (B, T, D)
    atol = MIXED_PRECISION_ATOL[policy]
    np.testing.assert_allclose(np.asarray(tf.cast(got, "float32")), want, atol=atol)
    # Cached: three positions at once, then one at a time.
    cache = block.initial_cache(B, T)
    assert [keras.backend.standardize_dtype(tensor.dtype) for tensor in cache] == [block.compute_dtype] * 2
    steps = []
    for begin, stop in [(0, 3), *((t, t + 1) for t in range(3, T))]:
        step, cache = block(x[:, begin:stop], cache=cache, cache_index=begin)
        assert keras.backend.standardize_dtype(step.dtype) == block.compute_dtype
        steps.append(np.asarray(tf.cast(step, "float32")))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), want, atol=atol)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_tiny_lm_logits_are_float32_under_mixed_precision(policy):
    _, logits = run_under_policy(policy, TinyLM, token_ids())
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.isfinite(np.asarray(logits)).all()


def test_config_and_saving_round_trip(tmp_path):
    assert_config_round_trip(
        TransformerBlock(
            num_heads=4, intermediate_dim=32, dropout=0.1, activation="relu", layer_norm_epsilon=1e-6,
            normalize_first=False, rotary=True, kernel_initializer="he_normal",
        )
    )
    ids = keras.Input((T,), dtype="int32")
    embedding = TokenEmbedding(11, D)
    x = embedding(ids)
    x = x + PositionEmbedding(16)(x)
    x = TransformerBlock(num_heads=H, intermediate_dim=16, dropout=0.1)(x)
    model = keras.Model(ids, embedding(x, reverse=True))
    assert_saving_round_trip(model, token_ids(), str(tmp_path / "lm.keras"), atol=1e-5)


def repeating_patterns(count, length, period, vocab_size, seed=0):
    """Sequences that repeat a random pattern: each token after the first period is the one `period` steps back."""
    patterns = np.random.default_rng(seed).integers(0, vocab_size, size=(count, period))
    return np.tile(patterns, (1, length // period + 1))[:, : length + 1].astype("int32")  # (N, length + 1)


def test_tiny_lm_learns_to_continue_a_repeating_pattern():
    keras.utils.set_random_seed(0)
    sequences = repeating_patterns(count=512, length=16, period=4, vocab_size=8)
    x, y = sequences[:, :-1], sequences[:, 1:]
    model = TinyLM(vocab_size=8, hidden_dim=32, max_length=16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    initial_loss = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    final_loss = history.history["loss"][-1]
    # Only the 3 tokens before the pattern has been seen are unpredictable: the floor is 3/16 * ln 8 ~ 0.39,
    # against ln 8 ~ 2.08 before training.
    assert final_loss < initial_loss / 4, (initial_loss, history.history["loss"])


@pytest.mark.parametrize("dtype, atol", [("float64", 1e-12), ("float16", 2e-2), ("bfloat16", 1e-1)])
def test_trains_with_variables_of_any_float_dtype(dtype, atol):
    # A training call failed in the fused layer norm, which took the float64 / float16 / bfloat16 scale as float32.
    block = TransformerBlock(num_heads=H, intermediate_dim=16, dtype=dtype)
    x = tf.constant(inputs(), dtype)
    with tf.GradientTape() as tape:
        trained = block(x, training=True)  # dropout 0: training computes what inference does
        loss = tf.reduce_sum(tf.cast(trained, "float32") ** 2)
    gradients = tape.gradient(loss, block.trainable_variables)
    assert all(gradient is not None and gradient.dtype == dtype for gradient in gradients)
    np.testing.assert_allclose(np.asarray(tf.cast(trained, "float64")), np.asarray(tf.cast(block(x), "float64")),
                               atol=atol)


@pytest.mark.parametrize("shape", [(B, D), (B, T, H, D)])
def test_an_input_of_another_rank_is_named(shape):
    # A rank-2 input failed with "IndexError: tuple index out of range", a rank-4 one deep in a bias add.
    with pytest.raises(ValueError, match=rf"expected ndim=3, found ndim={len(shape)}"):
        TransformerBlock(num_heads=H, intermediate_dim=16)(np.ones(shape, "float32"))


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="num_heads=0"):
        TransformerBlock(num_heads=0, intermediate_dim=16)
    with pytest.raises(ValueError, match="intermediate_dim=-1"):
        TransformerBlock(num_heads=2, intermediate_dim=-1)
    with pytest.raises(ValueError, match="dropout=1.5"):
        TransformerBlock(num_heads=2, intermediate_dim=16, dropout=1.5)
    with pytest.raises(ValueError, match="layer_norm_epsilon=0"):
        TransformerBlock(num_heads=2, intermediate_dim=16, layer_norm_epsilon=0)
    with pytest.raises(ValueError, match="not_an_activation"):
        TransformerBlock(num_heads=2, intermediate_dim=16, activation="not_an_activation")
    with pytest.raises(ValueError, match="hidden_dim=250 is not divisible by num_heads=4"):
        TransformerBlock(num_heads=4, intermediate_dim=16)(np.ones((1, 2, 250), "float32"))
