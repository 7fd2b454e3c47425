"""Decoder-only Transformer block: causal self-attention and a feed-forward network, each with a residual."""

import keras

from tfllm.checks import require_positive_int, require_positive_number, require_rate
from tfllm.layers.activations import gelu_approximate, get_activation
from tfllm.layers.causal_self_attention import CausalSelfAttention
from tfllm.layers.fused_gelu import fused_gelu
from tfllm.layers.fused_layer_norm import layer_norm
from tfllm.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerBlock(keras.layers.Layer):
    """One causal decoder block, (B, T, D) -> (B, T, D).

    Pre-layer-norm (`normalize_first=True`, as in GPT-2), which trains stably without warm-up tricks:

        x = x + Dropout(CausalSelfAttention(LayerNorm(x)))
        x = x + Dropout(Dense(D)(Dense(intermediate_dim, activation)(LayerNorm(x))))

    Post-layer-norm (`normalize_first=False`, the original Transformer) normalizes after each residual sum instead.
    The hidden size D is taken from the input and must be divisible by `num_heads`.

    Args:
        num_heads: positive int, the number of attention heads H.
        intermediate_dim: positive int, the width of the feed-forward hidden layer (commonly 4 * D).
        dropout: rate in [0, 1) used on the attention probabilities and on both residual branches.
        activation: activation of the feed-forward hidden layer, a name (a Keras one, or "gelu_approximate",
            GPT-2's tanh GELU) or a callable.
        layer_norm_epsilon: positive float added to the variance in both layer norms.
        normalize_first: bool, True for pre-layer-norm, False for post-layer-norm.
        rotary: bool, whether the attention applies rotary position embedding to queries and keys.
        kernel_initializer: initializer of every kernel (attention and feed-forward); biases start at zero.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor (B, T, D).
        cache: optional key/value cache, the pair `(keys, values)` of (B H, S_max, Dh) tensors; see
            `CausalSelfAttention` and `initial_cache`.
        cache_index: int or scalar int tensor, the absolute position of the first of the T inputs; required with
            `cache`.
        padding_mask: optional (B, S) tensor, 1 for real tokens and 0 for padding (S = T, or S_max with a cache).
        mask: the (B, T) Keras mask of the inputs (`Embedding(mask_zero=True)` upstream), Keras passes it: read as
            `padding_mask` when none is given and there is no cache, and passed on with the output.
        training: bool, whether dropout is active.

    Returns:
        Without `cache`: the output (B, T, D). With `cache`: a tuple `(output, new_cache)`.

    Example:

    ```python
    import numpy as np
    block = TransformerBlock(num_heads=2, intermediate_dim=32)
    x = np.random.rand(2, 5, 8).astype("float32")  # (B, T, D)
    y = block(x)  # (2, 5, 8)
    cache = block.initial_cache(batch_size=2, max_length=10)  # keys and values, (4, 10, 4) each: (B H, S_max, Dh)
    y_prompt, cache = block(x, cache=cache, cache_index=0)  # (2, 5, 8): positions 0..4 written
    y_next, cache = block(x[:, :1], cache=cache, cache_index=5)  # (2, 1, 8): position 5
    ```
    """

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        normalize_first=True,
        rotary=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)  # (B, T, D): a wrong rank is named before any op
        self.supports_masking = True  # a Keras mask is read as the padding mask and passed on
        self.num_heads = require_positive_int("num_heads", num_heads)
        self.intermediate_dim = require_positive_int("intermediate_dim", intermediate_dim)
        self.dropout = require_rate("dropout", dropout)
        self.activation = get_activation(activation)
        self.layer_norm_epsilon = require_positive_number("layer_norm_epsilon", layer_norm_epsilon)
        self.normalize_first = bool(normalize_first)
        self.rotary = bool(rotary)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        sublayer = {"dtype": self.dtype_policy}
        self.self_attention = CausalSelfAttention(
            self.num_heads,
            dropout=self.dropout,
            rotary=self.rotary,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            name="self_attention",
            **sublayer,
        )
        self.self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="self_attention_layer_norm", **sublayer
        )
        self.self_attention_dropout = keras.layers.Dropout(self.dropout, name="self_attention_dropout", **sublayer)
        self.feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feedforward_layer_norm", **sublayer
        )
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim,  # the activation is applied in `call`, fused in training steps
            kernel_initializer=clone_initializer(self.kernel_initializer),
            name="feedforward_intermediate_dense",
            **sublayer,
        )
        self.feedforward_output_dense = keras.layers.Dense(
            hidden_dim,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            name="feedforward_output_dense",
            **sublayer,
        )
        self.feedforward_dropout = keras.layers.Dropout(self.dropout, name="feedforward_dropout", **sublayer)

        intermediate_shape = (*input_shape[:-1], self.intermediate_dim)
        self.self_attention.build(input_shape)
        self.self_attention_layer_norm.build(input_shape)
        self.feedforward_layer_norm.build(input_shape)
        self.feedforward_intermediate_dense.build(input_shape)
        self.feedforward_output_dense.build(intermediate_shape)
        super().build(input_shape)

    def initial_cache(self, batch_size, max_length, dtype=None):
        """Returns an empty key/value cache: the pair `(keys, values)`, zeros of shape (batch_size H, max_length, Dh)
        each (`CausalSelfAttention.initial_cache`)."""
        if not self.built:
            raise ValueError(
                f"{self.name} does not know its hidden size yet: call it on an input or build it before initial_cache."
            )
        return self.self_attention.initial_cache(batch_size, max_length, dtype=dtype or self.compute_dtype)

    def call(self, inputs, cache=None, cache_index=None, padding_mask=None, training=None, mask=None):
        if padding_mask is None and cache is None and mask is not None:  # Keras's mask of (B, T) inputs
            padding_mask = mask
        residual = inputs
        x = layer_norm(self.self_attention_layer_norm, inputs, training) if self.normalize_first else inputs
        x = self.self_attention(x, cache=cache, cache_index=cache_index, padding_mask=padding_mask, training=training)
        if cache is not None:
            x, cache = x
        x = residual + self.self_attention_dropout(x, training=training)
        if not self.normalize_first:
            x = layer_norm(self.self_attention_layer_norm, x, training)

        residual = x
        if self.normalize_first:
            x = layer_norm(self.feedforward_layer_norm, x, training)
        x = self._activate(self.feedforward_intermediate_dense(x), training)  # (B, T, intermediate_dim)
        x = self.feedforward_output_dense(x)  # (B, T, D)
        x = residual + self.feedforward_dropout(x, training=training)
        if not self.normalize_first:
            x = layer_norm(self.feedforward_layer_norm, x, training)
        return x if cache is None else (x, cache)

    def _activate(self, x, training):
        """The feed-forward activation; a GELU in a training step as one XLA-compiled kernel each way (`fused_gelu`),
        several times faster than TensorFlow's dozen element-wise ops in the plain graph. (It computes in float32, so
        float64 keeps Keras's.)"""
        fusable = self.activation in (keras.activations.gelu, gelu_approximate) and self.compute_dtype != "float64"
        if training and fusable:
            return fused_gelu(x, approximate=self.activation is gelu_approximate)
        return self.activation(x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
            "activation": keras.activations.serialize(self.activation),
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "normalize_first": self.normalize_first,
            "rotary": self.rotary,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
