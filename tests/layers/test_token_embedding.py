import numpy as np
import keras
import pytest
import tensorflow as tf

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import TokenEmbedding
from tfllm.layers.token_embedding import LOGITS_MAX_SLICES, LOGITS_SLICE

IDS = np.array([[1, 4, 0], [9, 9, 2]], "int32")  # (B, T)


def test_lookup_and_tied_logits_golden():
    layer = TokenEmbedding(vocab_size=10, embedding_dim=3)
    table = np.arange(30, dtype="float32").reshape(10, 3) / 30.0  # (V, D)
    layer.build()
    layer.set_weights([table])
    np.testing.assert_array_equal(np.asarray(layer(IDS)), table[IDS])
    hidden = np.random.default_rng(0).normal(size=(2, 3, 3)).astype("float32")  # (B, T, D)
    logits = layer(hidden, reverse=True)
    assert logits.shape == (2, 3, 10)
    np.testing.assert_allclose(np.asarray(logits), hidden @ table.T, rtol=1e-6)


def test_untied_logits_use_their_own_kernel():
    layer = TokenEmbedding(vocab_size=10, embedding_dim=3, tie_weights=False)
    layer.build()
    assert [w.name for w in layer.weights] == ["embeddings", "output_kernel"]
    assert layer.output_kernel.shape == (3, 10)
    hidden = np.random.default_rng(0).normal(size=(2, 3, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(layer(hidden, reverse=True)), hidden @ layer.output_kernel.numpy(), rtol=1e-5)
    assert not np.allclose(layer.output_kernel.numpy(), layer.embeddings.numpy().T)


def logit_products(layer, hidden, training):
    """The logits of `layer` for `hidden`, their gradients for `hidden` and the weights, and the graph's MatMuls."""
    weights = tf.constant(np.random.default_rng(1).normal(size=(*hidden.shape[:-1], layer.vocab_size)), "float32")

    @tf.function
    def logits_and_gradients(hidden):
        with tf.GradientTape() as tape:
            tape.watch(hidden)
            logits = layer(hidden, reverse=True, training=training)
        return logits, tape.gradient(logits, [hidden, *layer.weights[-1:]], output_gradients=weights)

    graph = logits_and_gradients.get_concrete_function(hidden).graph
    forward_products = sum(op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3") for op in graph.get_operations()
                           if "gradient" not in op.name)
    return (*logits_and_gradients(hidden), forward_products)


@pytest.mark.parametrize("tie_weights", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize(
    "vocab_size, rows, training, products",
    [(1300, 2 * LOGITS_SLICE, True, 3), (1300, 2 * LOGITS_SLICE, False, 1), (1300, LOGITS_SLICE - 1, True, 1),
     (LOGITS_SLICE, 2 * LOGITS_SLICE, True, 1), (LOGITS_SLICE * LOGITS_MAX_SLICES + 1, LOGITS_SLICE, True, 1)],
    ids=["sliced", "not_training", "few_rows", "one_slice", "vocabulary_too_large"],
)
def test_logits_slice_by_slice_equal_one_product_values_and_gradients(tie_weights, vocab_size, rows, training,
                                                                       products):
    layer = TokenEmbedding(vocab_size, 8, tie_weights=tie_weights)
    layer.build()
    hidden = tf.constant(np.random.default_rng(0).normal(size=(1, rows, 8)), "float32")  # (B, T, D)
    logits, (hidden_gradient, kernel_gradient), forward_products = logit_products(layer, hidden, training)
    kernel = layer.embeddings.numpy().T if tie_weights else layer.output_kernel.numpy()  # (D, V)
    weights = np.random.default_rng(1).normal(size=(1, rows, vocab_size)).astype("float32")
    assert forward_products == products  # 1,300 entries: slices of 512, 512 and 276
    np.testing.assert_allclose(logits, hidden.numpy() @ kernel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hidden_gradient, weights @ kernel.T, rtol=1e-4, atol=1e-4)
    expected = hidden.numpy()[0].T @ weights[0]  # (D, V)
    np.testing.assert_allclose(kernel_gradient, expected.T if tie_weights else expected, rtol=1e-4, atol=1e-4)


def test_weights_interchange_with_keras_embedding():
    theirs = keras.layers.Embedding(10, 4)
    theirs.build((None, 3))
    ours = TokenEmbedding(vocab_size=10, embedding_dim=4)
    ours.build()
    ours.set_weights(theirs.get_weights())
    np.testing.assert_array_equal(np.asarray(ours(IDS)), np.asarray(theirs(IDS)))
    other = TokenEmbedding(vocab_size=10, embedding_dim=4)
    other.build()
    theirs.set_weights(other.get_weights())
    np.testing.assert_array_equal(np.asarray(theirs(IDS)), np.asarray(other(IDS)))


def test_compiles():
    layer = TokenEmbedding(vocab_size=10, embedding_dim=4)
    assert_compiles(lambda ids: layer(layer(ids), reverse=True), IDS)


@pytest.mark.parametrize("tie_weights", [True, False])
@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_logits_are_float32(policy, tie_weights):
    layer, vectors = run_under_policy(policy, lambda: TokenEmbedding(10, 4, tie_weights=tie_weights), IDS)
    assert keras.backend.standardize_dtype(vectors.dtype) == layer.compute_dtype
    logits = layer(vectors, reverse=True)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert layer.embeddings.dtype == "float32"
    assert np.isfinite(np.asarray(logits)).all()


@pytest.mark.parametrize("tie_weights", [True, False])
def test_config_and_saving_round_trip(tmp_path, tie_weights):
    assert_config_round_trip(TokenEmbedding(10, 4, tie_weights=tie_weights, embeddings_initializer="ones"))
    embedding = TokenEmbedding(10, 4, tie_weights=tie_weights)
    ids = keras.Input((3,), dtype="int32")
    model = keras.Model(ids, embedding(embedding(ids), reverse=True))
    loaded = assert_saving_round_trip(model, IDS, str(tmp_path / "embedding.keras"))
    assert len(loaded.weights) == (1 if tie_weights else 2)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="vocab_size=0"):
        TokenEmbedding(vocab_size=0, embedding_dim=4)
    with pytest.raises(ValueError, match="embedding_dim=-1"):
        TokenEmbedding(vocab_size=10, embedding_dim=-1)
    with pytest.raises(ValueError, match="embedding_dim=2.5"):
        TokenEmbedding(vocab_size=10, embedding_dim=2.5)
