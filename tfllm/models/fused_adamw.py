"""Keras's AdamW with its whole update, clipping and weight decay included, in one XLA-compiled kernel."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfllm")
class FusedAdamW(keras.optimizers.AdamW):
    """`keras.optimizers.AdamW`, the same arguments and arithmetic, that updates every variable in one pass.

    Keras's AdamW updates a variable in a dozen element-wise ops, each a pass over the variable's memory: the
    gradient scaled by the global-norm clipping, the weight decay, the two moments, the step. Here one XLA-compiled
    kernel reads each gradient, variable and moment once and writes them once, for all the variables together, and
    the global norm is summed by TensorFlow's `L2Loss` kernels, one pass per gradient.

    `benchmarks/optimizer_update.py` times one update against Keras's AdamW, in the plain graph and under XLA
    (which fuses Keras's element-wise ops too), for the default Transformer of `tfllm train` and for GPT-2 small's
    124M parameters; the README's Benchmarks table has its figures.

    The fused kernel runs outside `tf.distribute` strategies, for float32 variables (mixed precision's included)
    and without `amsgrad`, `clipnorm`, `clipvalue`, EMA or gradient accumulation; otherwise Keras's own update
    runs. Results equal Keras's to float32 rounding (`tests/models/test_fused_adamw.py`).

    >>> import numpy as np
    >>> variable = keras.Variable(np.ones((2, 3), "float32"))
    >>> optimizer = FusedAdamW(learning_rate=0.1, weight_decay=0.5, global_clipnorm=1.0)
    >>> optimizer.apply([tf.fill((2, 3), 10.0)], [variable])
    >>> print(variable.numpy().round(4))  # 1 - 0.1 * 0.5 * 1 (decay) - 0.1 (Adam's first step)
    [[0.85 0.85 0.85]
     [0.85 0.85 0.85]]
    """

    def _backend_apply_gradients(self, grads, trainable_variables):
        if not self._fuses(trainable_variables):
            return super()._backend_apply_gradients(grads, trainable_variables)
        grads = [tf.cast(tf.convert_to_tensor(gradient), "float32") for gradient in grads]  # sparse ones made dense
        scale = tf.constant(1.0)
        if self.global_clipnorm:
            scale = _global_clipping_scale(grads, self.global_clipnorm)
        indices = [self._get_variable_index(variable) for variable in trainable_variables]
        step = tf.cast(self.iterations + 1, "float32")
        _adamw_update(
            [_tf_variable(variable) for variable in trainable_variables],
            [_tf_variable(self._momentums[index]) for index in indices],
            [_tf_variable(self._velocities[index]) for index in indices],
            grads,
            scale=scale,
            learning_rate=tf.cast(self.learning_rate, "float32"),
            weight_decays=[self.weight_decay if self._use_weight_decay(v) else 0.0 for v in trainable_variables],
            beta_1_power=tf.pow(tf.constant(self.beta_1, "float32"), step),
            beta_2_power=tf.pow(tf.constant(self.beta_2, "float32"), step),
            hyperparameters=(1 - self.beta_1, 1 - self.beta_2, self.epsilon),
        )

    def _fuses(self, trainable_variables):
        """Whether this update can run as the fused kernel (see the class docstring)."""
        extras = (self.amsgrad, self.clipnorm, self.clipvalue, self.use_ema, self.gradient_accumulation_steps)
        return (not any(extras) and not tf.distribute.has_strategy()
                and all(variable.dtype == "float32" for variable in trainable_variables))


def _tf_variable(variable):
    """The `tf.Variable` of a Keras variable, or `variable` itself when it is one already."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _global_clipping_scale(grads, clip_norm):
    """The factor that scales `grads` to a global norm of at most `clip_norm`, as Keras's `clip_by_global_norm`
    computes it (NaN when the norm is not finite)."""
    norm = tf.sqrt(2.0 * tf.add_n([tf.nn.l2_loss(gradient) for gradient in grads]))  # l2_loss = sum(x ** 2) / 2
    return clip_norm * tf.minimum(1.0 / norm, 1.0 / clip_norm) + (norm - norm)


@tf.function(jit_compile=True, autograph=False)
def _adamw_update(variables, momentums, velocities, grads, scale, learning_rate, weight_decays, beta_1_power,
                  beta_2_power, hyperparameters):
    """Keras's AdamW step for every variable: decay the weights, then move them by Adam's step from the clipped
    gradients, each element read and written once. `hyperparameters` are (1 - beta_1, 1 - beta_2, epsilon)."""
    one_minus_beta_1, one_minus_beta_2, epsilon = hyperparameters
    alpha = learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    for variable, momentum, velocity, gradient, weight_decay in zip(
        variables, momentums, velocities, grads, weight_decays
    ):
        gradient = gradient * scale
        new_momentum = momentum + (gradient - momentum) * one_minus_beta_1
        new_velocity = velocity + (tf.square(gradient) - velocity) * one_minus_beta_2
        decayed = variable - variable * weight_decay * learning_rate if weight_decay else variable
        variable.assign(decayed - new_momentum * alpha / (tf.sqrt(new_velocity) + epsilon))
        momentum.assign(new_momentum)
        velocity.assign(new_velocity)
