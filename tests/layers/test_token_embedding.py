import numpy as np
import keras
import pytest

from tests.helpers import assert_compiles, assert_config_round_trip, assert_saving_round_trip, run_under_policy
from tfllm.layers import TokenEmbedding

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
