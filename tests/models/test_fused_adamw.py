"""FusedAdamW updates weights and moments as Keras's AdamW does, clipping and weight decay included, takes its fused
kernel exactly where it may, and is the optimizer of `compile()`'s defaults."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfllm.models import FusedAdamW, TransformerLM, WarmupCosineDecay
from tfllm.models import fused_adamw

RNG = np.random.default_rng(0)
SHAPES = {"kernel": (6, 5), "bias": (5,), "embeddings": (7, 6)}


def make_variables():
    return [keras.Variable(RNG.normal(size=shape).astype("float32"), name=name) for name, shape in SHAPES.items()]


def optimizers(**arguments):
    """A Keras AdamW and a FusedAdamW of the same `arguments`, the bias left out of weight decay in both."""
    pair = []
    for kind in (keras.optimizers.AdamW, FusedAdamW):
        optimizer = kind(**arguments)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        pair.append(optimizer)
    return pair


def traced_apply(optimizer, variables):
    return tf.function(lambda gradients: optimizer.apply(gradients, variables))


def train_both(arguments, gradient_scale, steps=4, sparse=False):
    """The weights and moments after `steps` updates by each optimizer from the same weights and gradients."""
    start = make_variables()
    gradients = [[tf.constant(RNG.normal(scale=gradient_scale, size=v.shape), tf.float32) for v in start]
                 for _ in range(steps)]
    results = []
    for optimizer in optimizers(**arguments):
        variables = [keras.Variable(v.numpy(), name=v.name) for v in start]
        optimizer.build(variables)
        apply = traced_apply(optimizer, variables)
        for step_gradients in gradients:
            if sparse:  # the embeddings' gradient as a lookup's: rows 1 and 4
                rows = tf.gather(step_gradients[2], [1, 4])
                step_gradients = [*step_gradients[:2], tf.IndexedSlices(rows, tf.constant([1, 4]), tf.constant((7, 6)))]
            apply(step_gradients)
        moments = [m.numpy() for m in optimizer._momentums + optimizer._velocities]
        results.append(([v.numpy() for v in variables], moments, int(optimizer.iterations)))
    return results


@pytest.mark.parametrize("gradient_scale", [10.0, 1e-3], ids=["clipped", "not-clipped"])
def test_weights_and_moments_equal_keras_adamw(gradient_scale):
    arguments = {"learning_rate": WarmupCosineDecay(1e-2, warmup_steps=2, decay_steps=10), "weight_decay": 0.1,
                 "beta_2": 0.95, "global_clipnorm": 1.0}
    (keras_weights, keras_moments, keras_steps), (weights, moments, steps) = train_both(arguments, gradient_scale)
    assert steps == keras_steps == 4
    for ours, theirs in zip(weights + moments, keras_weights + keras_moments):
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)
    # The update did move the weights, and the bias was not decayed: without gradients it would not have moved.
    assert not np.allclose(weights[0], make_variables()[0])


def test_without_clipping_or_decay_and_with_a_sparse_gradient_it_equals_keras_adamw():
    arguments = {"learning_rate": 1e-2, "weight_decay": 0.0}
    (keras_weights, keras_moments, _), (weights, moments, _) = train_both(arguments, 1.0, sparse=True)
    for ours, theirs in zip(weights + moments, keras_weights + keras_moments):
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


def test_a_non_finite_gradient_makes_the_clipped_weights_nan_as_keras_does():
    for optimizer in optimizers(learning_rate=1e-2, global_clipnorm=1.0):
        variables = make_variables()
        gradients = [tf.fill(v.shape, np.inf if i == 1 else 1.0) for i, v in enumerate(variables)]
        optimizer.apply(gradients, variables)
        assert all(np.isnan(v.numpy()).all() for v in variables)


def test_the_fused_kernel_runs_only_where_it_computes_what_keras_would(monkeypatch):
    calls = []
    update = fused_adamw._adamw_update
    monkeypatch.setattr(fused_adamw, "_adamw_update", lambda *a, **k: calls.append(1) or update(*a, **k))
    float32 = make_variables()

    def fuses(variables=float32, **arguments):
        optimizer = FusedAdamW(learning_rate=1e-2, **arguments)
        calls.clear()
        optimizer.apply([tf.ones(v.shape, v.dtype) for v in variables], variables)
        return bool(calls)

    assert fuses() and fuses(global_clipnorm=1.0)
    assert not fuses(amsgrad=True)
    assert not fuses(clipnorm=1.0) and not fuses(clipvalue=1.0)
    assert not fuses(use_ema=True) and not fuses(gradient_accumulation_steps=2)
    assert not fuses([keras.Variable(np.ones(3), dtype="bfloat16")])
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():  # Keras's update, per variable, as strategies need
        assert not FusedAdamW()._fuses(make_variables())


def test_it_serializes_as_itself_and_compile_defaults_to_it():
    optimizer = FusedAdamW(learning_rate=1e-3, weight_decay=0.05, beta_2=0.95, global_clipnorm=0.5)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is FusedAdamW
    assert restored.get_config() == optimizer.get_config()
    model = TransformerLM(vocab_size=16, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16,
                          max_sequence_length=8)
    model.compile()
    assert type(model.optimizer) is FusedAdamW and model.optimizer.global_clipnorm == 1.0


def test_plain_tensorflow_variables_are_updated_as_keras_updates_them():
    start = RNG.normal(size=(4, 3)).astype("float32")
    gradient = tf.constant(RNG.normal(size=(4, 3)), tf.float32)
    results = []
    for optimizer in optimizers(learning_rate=1e-2, weight_decay=0.1, global_clipnorm=0.5):
        variable = tf.Variable(start, name="kernel")
        optimizer.apply([gradient], [variable])
        results.append(variable.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=2e-6)
    assert not np.allclose(results[1], start)
