"""The cross-entropy from logit slices equals TensorFlow's from the joined logits, values and gradients, and a
training step whose logits come in slices takes it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.layers import TokenEmbedding
from tfllm.layers.token_embedding import logit_slices_of
from tfllm.models import TransformerLM, token_cross_entropy
from tfllm.models.sliced_cross_entropy import sliced_cross_entropy

RNG = np.random.default_rng(0)


def logits_and_targets(shape=(3, 5), widths=(4, 7, 2), dtype="float32"):
    logits = tf.constant(RNG.normal(scale=3.0, size=(*shape, sum(widths))), dtype)
    targets = tf.constant(RNG.integers(0, sum(widths), size=shape), tf.int32)
    boundaries = np.cumsum(widths)[:-1].tolist()
    return logits, tf.split(logits, widths, axis=-1), targets, boundaries


def values_and_gradients(function, tensors, output_gradient):
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = function(*tensors)
    return outputs, tape.gradient(outputs, tensors, output_gradients=output_gradient)


@pytest.mark.parametrize("widths", [(4, 7, 2), (13,)], ids=["three-slices", "one-slice"])
def test_values_and_gradients_equal_tensorflows_from_the_joined_logits(widths):
    logits, slices, targets, _ = logits_and_targets(widths=widths)
    weights = tf.constant(RNG.normal(size=targets.shape), tf.float32)
    ours, our_gradients = values_and_gradients(lambda *parts: sliced_cross_entropy(targets, parts), slices, weights)
    theirs, (their_gradient,) = values_and_gradients(
        lambda joined: tf.nn.sparse_softmax_cross_entropy_with_logits(targets, joined), [logits], weights)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    np.testing.assert_allclose(tf.concat(our_gradients, axis=-1), their_gradient, atol=1e-6)


def test_every_target_counts_in_its_own_slice():
    _, slices, _, _ = logits_and_targets(shape=(13,))
    targets = tf.range(13)  # each entry of the vocabulary once: the first, last and middle ones of every slice
    joined = tf.concat(slices, axis=-1)
    expected = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, joined)
    np.testing.assert_allclose(sliced_cross_entropy(targets, slices), expected, rtol=1e-5)


def test_a_target_outside_the_vocabulary_gives_nan():
    _, slices, _, _ = logits_and_targets(shape=(3,))
    losses = sliced_cross_entropy(tf.constant([0, 13, -1]), slices)
    assert np.isfinite(losses[0]) and np.isnan(losses[1]) and np.isnan(losses[2])


def test_bfloat16_slices_get_bfloat16_gradients_and_a_float32_cross_entropy():
    logits, slices, targets, _ = logits_and_targets(dtype="bfloat16")
    losses, gradients = values_and_gradients(lambda *parts: sliced_cross_entropy(targets, parts), slices,
                                             tf.ones(targets.shape))
    assert losses.dtype == tf.float32 and all(gradient.dtype == tf.bfloat16 for gradient in gradients)
    expected, (expected_gradient,) = values_and_gradients(
        lambda joined: tf.nn.sparse_softmax_cross_entropy_with_logits(targets, joined), [tf.cast(logits, tf.float32)],
        tf.ones(targets.shape))
    np.testing.assert_allclose(losses, expected, rtol=1e-5)
    gradient = tf.cast(tf.concat(gradients, axis=-1), tf.float32)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-2, atol=1e-3)  # bfloat16's rounding


def test_a_training_call_of_token_embedding_hands_over_its_slices():
    embedding = TokenEmbedding(vocab_size=1100, embedding_dim=4)
    embedding.build()
    hidden = tf.constant(RNG.normal(size=(2, 256, 4)), tf.float32)  # 512 rows, 3 slices of the vocabulary
    logits = embedding(hidden, reverse=True, training=True)
    slices = logit_slices_of(logits)
    assert [part.shape[-1] for part in slices] == [512, 512, 76]
    np.testing.assert_array_equal(tf.concat(slices, axis=-1), logits)
    assert logit_slices_of(embedding(hidden, reverse=True, training=False)) is None
    assert logit_slices_of(embedding(hidden[:, :8], reverse=True, training=True)) is None  # 16 rows: one product


def sliced_model():
    """A Transformer whose training step computes its 1,100 logits in 3 slices (4 x 128 rows)."""
    keras.utils.set_random_seed(0)
    model = TransformerLM(1100, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=128)
    model(np.zeros((1, 4), np.int32))
    return model


def test_a_training_step_with_sliced_logits_takes_the_sliced_cross_entropy(monkeypatch):
    inputs, targets = (RNG.integers(1, 1100, size=(4, 128)).astype("int32") for _ in range(2))
    targets[:, -5:] = 0  # ignored, as padding
    calls = []

    def counted(*arguments):
        calls.append(len(arguments[1]))
        return sliced_cross_entropy(*arguments)

    monkeypatch.setattr(token_cross_entropy, "sliced_cross_entropy", counted)
    sliced = sliced_model()
    sliced.compile()
    sliced_history = sliced.fit(inputs, targets, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    assert calls == [3]  # traced once, with 3 slices
    monkeypatch.setattr(token_cross_entropy, "logit_slices_of", lambda logits: None)
    joined = sliced_model()
    joined.compile()
    joined_history = joined.fit(inputs, targets, batch_size=4, epochs=2, shuffle=False, verbose=0).history
    assert calls == [3]
    for name in ("loss", "perplexity"):
        np.testing.assert_allclose(sliced_history[name], joined_history[name], rtol=1e-5)
    for ours, theirs in zip(sliced.get_weights(), joined.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
