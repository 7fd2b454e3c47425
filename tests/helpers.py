"""Round trips every layer test uses: config, serialization, `.keras` saving, tf.function / XLA, precision policies."""

import numpy as np
import keras
import tensorflow as tf


def assert_config_round_trip(layer):
    """`from_config(get_config())` rebuilds a layer with the same config, also through `keras.layers.serialize`."""
    config = layer.get_config()
    rebuilt = layer.__class__.from_config(config)
    assert rebuilt.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config


def assert_saving_round_trip(model, inputs, path, atol=1e-6):
    """A model saved to `path` (a `.keras` file) and loaded in safe mode gives the same outputs."""
    expected = model(inputs)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    actual = loaded(inputs)
    for want, got in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol)
    return loaded


def assert_compiles(call, *args, atol=1e-5):
    """`call(*args)` gives the same numbers eagerly, in a tf.function graph and under XLA."""
    eager = tf.nest.flatten(call(*args))
    for jit_compile in (False, True):
        compiled = tf.nest.flatten(tf.function(call, jit_compile=jit_compile)(*args))
        for want, got in zip(eager, compiled):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol, err_msg=f"jit_compile={jit_compile}")


def run_under_policy(policy, make_layer, inputs):
    """Builds a layer under a dtype policy, calls it, and returns the outputs; the policy is restored afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = make_layer()
        return layer, layer(inputs)
    finally:
        keras.config.set_dtype_policy(previous)
