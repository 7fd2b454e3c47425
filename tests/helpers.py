"""Round trips every layer test uses: config, serialization, `.keras` saving, tf.function / XLA, precision policies."""

import inspect

import numpy as np
import keras
import tensorflow as tf
import tensorflow_text as tf_text

from tfllm.tokenizers import Tokenizer


def assert_config_round_trip(layer):
    """`get_config()` names every constructor argument, and `from_config` rebuilds a layer with the same config,
    also through `keras.layers.serialize`."""
    config = layer.get_config()
    # A key dropped from get_config() would still round-trip (the rebuilt layer takes the default and drops it too),
    # so every argument of __init__ is looked for by name.
    missing = [name for name in constructor_arguments(type(layer)) if name not in config
               and not _left_out_when_empty(layer, name)]
    assert not missing, f"{type(layer).__name__}.get_config() lacks {missing}: expected every __init__ argument"
    rebuilt = layer.__class__.from_config(config)
    assert rebuilt.get_config() == config
    revived = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(revived) is type(layer)
    assert revived.get_config() == config


def constructor_arguments(cls):
    """The names of `cls.__init__`'s own arguments, without `self`, `*args` and `**kwargs`."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [parameter.name for parameter in parameters if parameter.name != "self" and parameter.kind not in variadic]


def _left_out_when_empty(layer, argument):
    """Tokenizers write `special_tokens` only when they have some: the config of one without them stays as it was
    before special tokens existed, and `from_config` reads the absent key as none."""
    return argument == "special_tokens" and isinstance(layer, Tokenizer) and not layer.extra_special_tokens


def assert_same_number_of_outputs(expected, actual, what):
    """Outputs are compared pairwise with zip(), which stops at the shorter list: one missing would go unchecked."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} outputs, expected {len(expected)}"


def assert_saving_round_trip(model, inputs, path, atol=1e-6):
    """A model saved to `path` (a `.keras` file) and loaded in safe mode gives the same outputs."""
    expected = model(inputs)
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected, actual = tf.nest.flatten(expected), tf.nest.flatten(loaded(inputs))
    assert_same_number_of_outputs(expected, actual, "the loaded model")
    for want, got in zip(expected, actual):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol)
    return loaded


def assert_compiles(call, *args, atol=1e-5):
    """`call(*args)` gives the same numbers eagerly, in a tf.function graph and under XLA."""
    eager = tf.nest.flatten(call(*args))
    for jit_compile in (False, True):
        compiled = tf.nest.flatten(tf.function(call, jit_compile=jit_compile)(*args))
        assert_same_number_of_outputs(eager, compiled, f"jit_compile={jit_compile}")
        for want, got in zip(eager, compiled):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=atol,
                                       err_msg=f"jit_compile={jit_compile}")


def run_under_policy(policy, make_layer, inputs):
    """Builds a layer under a dtype policy, calls it, and returns the outputs; the policy is restored afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = make_layer()
        return layer, layer(inputs)
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="tfllm_tests")
class OddIdsTokenizer(Tokenizer):
    """UTF-8 bytes after eight ids where bos is 5, eos is 7 and there is no pad: a vocabulary laid out unlike
    tfllm's own tokenizers, as one loaded from elsewhere would be (GPT-2's end token is 50256, and it has no pad)."""

    special_token_roles = {"bos": "<s>", "eos": "</s>"}
    first_byte_id = 8

    @property
    def vocab_size(self):
        return self.first_byte_id + 256 + len(self.extra_special_tokens)

    def get_vocabulary(self):
        unused = [f"<unused{index}>" for index in range(self.first_byte_id)]
        unused[5], unused[7] = "<s>", "</s>"
        return [*unused, *(f"<0x{value:02X}>" for value in range(256)), *self.extra_special_tokens]

    def _tokenize(self, texts):
        return tf.cast(tf_text.ByteSplitter().split(texts), tf.int32) + self.first_byte_id  # (B, None)

    def _detokenize(self, ids):
        # The unused ids write nothing, the bytes themselves.
        pieces = tf.constant([b""] * self.first_byte_id + [bytes([value]) for value in range(256)])
        return tf.strings.reduce_join(tf.gather(pieces, ids), axis=-1)  # (B,)
