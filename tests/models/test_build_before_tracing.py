"""BuildBeforeTracing: a new model's first `fit` and `evaluate` trace their step once, with its state made before,
and its first `generate` creates no weights while its functions trace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.models import LSTMLM, SequenceClassifier, TransformerLM


def _language_model(name):
    if name == "lstm":
        return LSTMLM(50, hidden_dim=8)
    return TransformerLM(50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8)


def _watched(function, calls, created):
    """`function`, appending to `calls` each time it runs in Python (once per trace when it is traced) and the name
    of every variable created while it runs to `created`."""

    def creator(next_creator, **kwargs):
        created.append(kwargs.get("name"))
        return next_creator(**kwargs)

    def watched(*args, **kwargs):
        calls.append(1)
        with tf.variable_creator_scope(creator):
            return function(*args, **kwargs)

    return watched


def _counting_traces(model, step_name):
    """Replaces `model.<step_name>` by a watched one; returns its (traces, created variables) lists."""
    traces, created = [], []
    setattr(model, step_name, _watched(getattr(model, step_name), traces, created))
    return traces, created


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_the_first_fit_and_evaluate_of_a_new_model_trace_their_step_once(name):
    keras.utils.set_random_seed(0)
    model = _language_model(name)
    model.compile(learning_rate=1e-3)
    assert not model.built
    ids = np.random.default_rng(0).integers(0, 50, (4, 8)).astype("int32")  # (B, T)
    train_traces, created_in_training = _counting_traces(model, "train_step")
    model.fit(ids, ids, batch_size=4, epochs=1, verbose=0)
    assert (len(train_traces), created_in_training) == (1, [])
    assert model.optimizer.built and int(model.optimizer.iterations) == 1

    fresh = _language_model(name)
    fresh.compile(learning_rate=1e-3)
    test_traces, created_in_evaluation = _counting_traces(fresh, "test_step")
    fresh.evaluate(ids, ids, batch_size=4, verbose=0)
    assert (len(test_traces), created_in_evaluation) == (1, [])


def test_a_new_classifier_with_accuracy_traces_its_step_once():
    keras.utils.set_random_seed(0)
    classifier = SequenceClassifier(_language_model("transformer"), num_classes=3)
    classifier.compile(metrics=["accuracy"])
    traces, created = _counting_traces(classifier, "train_step")
    ids = np.random.default_rng(0).integers(0, 50, (4, 8)).astype("int32")  # (B, T)
    history = classifier.fit(ids, np.array([0, 1, 2, 1]), batch_size=4, verbose=0)
    assert (len(traces), created) == (1, [])
    assert sorted(history.history) == ["accuracy", "loss"]


def test_building_first_gives_the_weights_a_traced_build_gives():
    """The eager build draws the same initial weights as Keras's build inside the trace (which a model under
    `keras.Model.fit` without the mixin gets): training from them is the same."""
    ids = np.random.default_rng(1).integers(0, 50, (4, 8)).astype("int32")
    weights = []
    for build_first in (True, False):
        keras.utils.set_random_seed(0)
        model = _language_model("transformer")
        model.compile(learning_rate=1e-3)
        if not build_first:  # Keras's way: the first traced call builds
            model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
        model.fit(ids, ids, batch_size=4, verbose=0)
        weights.append([w.numpy() for w in model.weights])
    assert len(weights[0]) == len(weights[1])
    for built_first, built_in_the_trace in zip(*weights):
        np.testing.assert_array_equal(built_first, built_in_the_trace)


@pytest.mark.parametrize("name", ["transformer", "lstm"])
def test_a_new_model_s_first_generate_creates_no_weights_while_tracing(name):
    keras.utils.set_random_seed(0)
    model = _language_model(name)
    created = []
    model.decode = _watched(model.decode, [], created)  # runs while the generation functions trace
    ids = model.generate([[1, 2, 3]], max_new_tokens=4, stop_token_ids=[], jit_compile=False)
    assert created == [] and model.built and len(ids[0]) == 7
