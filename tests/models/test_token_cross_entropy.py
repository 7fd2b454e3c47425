"""The default loss and the Perplexity metric share one cross-entropy, and give what Keras's loss and metric give."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.models import Perplexity, TransformerLM
from tfllm.models.token_cross_entropy import SharedCrossEntropy, token_cross_entropy

VOCAB = 40


def small_model():
    keras.utils.set_random_seed(0)
    model = TransformerLM(VOCAB, num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=16)
    model(np.zeros((1, 4), np.int32))
    return model


def batch():
    rng = np.random.default_rng(0)
    inputs = rng.integers(1, VOCAB, (8, 12)).astype("int32")
    targets = rng.integers(1, VOCAB, (8, 12)).astype("int32")
    targets[:, -3:] = 0  # padding, the model's ignored target id
    return inputs, targets, rng.random((8, 12)).astype("float32")


def keras_computed(model):
    """`model` compiled as `compile()` would, but with the loss and the metric each computing its own cross-entropy."""
    model.compile()
    model._shared_cross_entropy = None  # Keras's loss; the metric, handed nothing, computes its own
    return model


def cross_entropy_ops(model, inputs, targets):
    """How many softmax cross-entropy ops one traced train step holds."""
    step = tf.function(model.train_step).get_concrete_function((tf.constant(inputs), tf.constant(targets)))
    graph_def = step.graph.as_graph_def()
    nodes = list(graph_def.node) + [node for function in graph_def.library.function for node in function.node_def]
    return sum(node.op == "SparseSoftmaxCrossEntropyWithLogits" for node in nodes)


def test_token_cross_entropy_leaves_ignored_targets_out():
    logits = tf.constant([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    losses, weights = token_cross_entropy([[1, 0]], logits, ignored_id=0, sample_weight=[[0.5, 1.0]])
    expected = -tf.nn.log_softmax(logits[0, 0])[1]
    np.testing.assert_allclose(losses[0, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(weights, [[0.5, 0.0]])


@pytest.mark.parametrize("per_token_weights", [False, True])
def test_default_loss_and_metric_equal_keras_computing_them_apart(per_token_weights):
    inputs, targets, weights = batch()
    sample_weight = weights if per_token_weights else None
    shared, apart = small_model(), keras_computed(small_model())
    shared.compile()
    assert shared._shared_cross_entropy is not None
    histories = [model.fit(inputs, targets, sample_weight=sample_weight, batch_size=4, epochs=2, shuffle=False,
                           verbose=0).history for model in (shared, apart)]
    np.testing.assert_allclose(histories[0]["perplexity"], histories[1]["perplexity"], rtol=1e-6)
    for ours, theirs in zip(shared.get_weights(), apart.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    results = [model.evaluate(inputs, targets, sample_weight=sample_weight, verbose=0, return_dict=True)
               for model in (shared, apart)]
    np.testing.assert_allclose(results[0]["perplexity"], results[1]["perplexity"], rtol=1e-6)
    # The logged loss is the mean per token (TokenWeightedLoss), the log of the perplexity; Keras's own tracker
    # weighs batches by rows, which gives the same only where every batch counts as many tokens.
    np.testing.assert_allclose(histories[0]["loss"], np.log(histories[0]["perplexity"]), rtol=1e-5)
    np.testing.assert_allclose(results[0]["loss"], np.log(results[0]["perplexity"]), rtol=1e-5)
    if not per_token_weights:
        np.testing.assert_allclose(histories[0]["loss"], histories[1]["loss"], rtol=1e-6)
        np.testing.assert_allclose(results[0]["loss"], results[1]["loss"], rtol=1e-6)


def test_the_logged_loss_is_a_mean_per_token_whatever_the_batch_size():
    # Keras's loss tracker weighs each batch's mean by its rows: a fine-tuning's validation loss changed with the
    # batch size (3.89 at 4, 12.15 at 2 in one audit) and disagreed with the perplexity beside it.
    inputs, targets, _ = batch()
    targets[:4, 1:] = 0  # four rows of one counted token each, four of nine
    model = small_model()
    model.compile()
    results = [model.evaluate(inputs, targets, batch_size=batch_size, verbose=0, return_dict=True)
               for batch_size in (8, 4, 1)]
    losses, weights = token_cross_entropy(targets, model(inputs), ignored_id=0)
    per_token = float(tf.reduce_sum(losses * weights) / tf.reduce_sum(weights))
    for result in results:
        np.testing.assert_allclose([result["loss"], np.log(result["perplexity"])], per_token, rtol=1e-5)


def test_one_cross_entropy_per_train_step_with_the_defaults():
    inputs, targets, _ = batch()
    shared, apart = small_model(), keras_computed(small_model())
    shared.compile()
    assert cross_entropy_ops(shared, inputs, targets) == 1
    assert cross_entropy_ops(apart, inputs, targets) == 2


def test_per_sequence_weights_take_keras_s_loss_and_its_error():
    inputs, targets, _ = batch()
    model = small_model()
    model.compile()
    per_sequence = np.linspace(0.5, 1.0, len(inputs)).astype("float32")  # (B,), not (B, T)
    assert not SharedCrossEntropy.applies_to(targets, per_sequence)
    with pytest.raises(ValueError, match="compile_loss/sparse_categorical_crossentropy"):  # Keras's loss, as before
        model.evaluate(inputs, targets, sample_weight=per_sequence, batch_size=8, verbose=0)


def test_a_loss_of_the_user_s_own_leaves_the_metric_computing_itself():
    inputs, targets, _ = batch()
    model = small_model()
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert model._shared_cross_entropy is None
    metric = Perplexity(pad_id=0)
    metric.update_state(targets, model(inputs))
    result = model.evaluate(inputs, targets, batch_size=8, verbose=0, return_dict=True)
    np.testing.assert_allclose(result["perplexity"], metric.result(), rtol=1e-5)
