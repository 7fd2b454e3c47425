"""GPT-2's GELU (the tanh approximation): its numbers, and a block and a model that use it saving and loading."""

import math

import keras
import numpy as np
import pytest

from tests.helpers import assert_config_round_trip, assert_saving_round_trip
from tfllm.layers import TransformerBlock
from tfllm.layers.activations import gelu_approximate, get_activation
from tfllm.models import TransformerLM


def test_gelu_approximate_is_the_tanh_formula():
    x = np.linspace(-4, 4, 17).astype("float32")
    want = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))) for v in x.tolist()]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(gelu_approximate(x)), want, atol=1e-6)
    exact = keras.ops.convert_to_numpy(keras.activations.gelu(x))
    assert 1e-4 < np.abs(exact - np.asarray(want)).max() < 1e-2  # near the exact GELU, not equal to it


def test_get_activation_names():
    assert get_activation("gelu_approximate") is gelu_approximate
    assert get_activation("gelu") is keras.activations.gelu
    with pytest.raises(ValueError, match=r"^activation='gelu_newest' is unknown: expected a Keras activation name"):
        get_activation("gelu_newest")


def test_a_block_with_gelu_approximate_round_trips():
    block = TransformerBlock(num_heads=2, intermediate_dim=16, activation="gelu_approximate", layer_norm_epsilon=1e-3)
    block(np.zeros((1, 3, 8), "float32"))
    assert_config_round_trip(block)
    assert TransformerBlock.from_config(block.get_config()).activation is gelu_approximate


def test_a_model_keeps_its_activation_and_epsilon_through_a_keras_file(tmp_path):
    keras.utils.set_random_seed(0)
    model = TransformerLM(50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8,
                          activation="gelu_approximate", layer_norm_epsilon=1e-3)
    ids = np.array([[1, 2, 3, 4]], "int32")
    loaded = assert_saving_round_trip(model, ids, tmp_path / "model.keras")
    assert (loaded.activation, loaded.layer_norm_epsilon) == ("gelu_approximate", 1e-3)
    assert loaded.blocks[0].activation is gelu_approximate and loaded.final_norm.epsilon == 1e-3
    # Another activation gives other numbers: the setting is used, not only stored.
    other = TransformerLM.from_config({**model.get_config(), "activation": "gelu"})
    other(ids)
    other.set_weights(model.get_weights())
    assert not np.allclose(other(ids), model(ids), atol=1e-6)


def test_a_config_written_before_these_settings_loads_with_the_old_defaults():
    model = TransformerLM(50, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8)
    config = model.get_config()
    old = {key: value for key, value in config.items() if key not in ("activation", "layer_norm_epsilon")}
    rebuilt = TransformerLM.from_config(old)
    assert (rebuilt.activation, rebuilt.layer_norm_epsilon) == ("gelu", 1e-5)
    with pytest.raises(ValueError, match="^activation='nope' is unknown"):
        TransformerLM.from_config({**config, "activation": "nope"})
