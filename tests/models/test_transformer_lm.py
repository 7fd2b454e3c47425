"""TransformerLM's own parts: building a model whose context is one token, and loading weights by name."""

import keras
import numpy as np
import pytest

from tfllm.models import SequenceClassifier, TransformerLM


def _transformer(max_sequence_length):
    return TransformerLM(50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                         max_sequence_length=max_sequence_length)


@pytest.mark.filterwarnings("ignore:You are using a softmax")  # attention over one key, as a context of one means
def test_a_model_with_a_context_of_one_token_builds_trains_and_loads_weights():
    keras.utils.set_random_seed(0)
    model = _transformer(1)
    model.build_eagerly()  # a probe of one token: the usual two would not fit the position table
    assert model.built and model.count_params() > 0
    model.compile(learning_rate=1e-3)
    ids = np.arange(4, dtype="int32").reshape(4, 1)  # (B, T=1)
    history = model.fit(ids, ids, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    copy = _transformer(1)  # unbuilt: load_named_weights builds it first
    copy.load_named_weights({variable.path.split("/", 1)[1]: variable.numpy() for variable in model.weights})
    np.testing.assert_array_equal(copy(ids), model(ids))


def test_load_named_weights_names_what_is_missing_and_unknown_and_what_was_expected():
    model = _transformer(4)
    model.build_eagerly()
    weights = {variable.path.split("/", 1)[1]: variable.numpy() for variable in model.weights}
    weights["block_0/typo/kernel"] = weights.pop("final_norm/gamma")
    with pytest.raises(ValueError) as error:
        model.load_named_weights(weights)
    assert str(error.value) == (
        "the weights do not match the model (its variables not given: 1, e.g. ['final_norm/gamma']; given names of "
        "no variable: 1, e.g. ['block_0/typo/kernel']): expected one array for each variable, named by its path below "
        "the model (`tfllm.checkpoints.gpt2_weight_shapes` lists them)"
    )
    del weights["block_0/typo/kernel"]
    with pytest.raises(ValueError, match=r"^the weights do not match the model \(its variables not given: 1, e\.g\. "
                                         r"\['final_norm/gamma'\]\): expected"):
        model.load_named_weights(weights)


@pytest.mark.filterwarnings("ignore:You are using a softmax")
def test_a_classifier_on_a_backbone_with_a_context_of_one_token_builds():
    classifier = SequenceClassifier(_transformer(1), num_classes=2)
    classifier.build_eagerly()  # probes with one token, as the backbone does
    assert classifier.max_sequence_length == 1
    assert classifier(np.ones((3, 1), "int32")).shape == (3, 2)
