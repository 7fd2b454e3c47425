"""Causal multi-head self-attention with an optional key/value cache for incremental decoding."""

import math

import keras
import tensorflow as tf
from keras import ops

from tfllm.checks import require_divisible, require_positive_int, require_rate
from tfllm.layers.fused_causal_attention import HIDDEN_SCORE, fused_causal_attention
from tfllm.layers.initializers import clone_initializer
from tfllm.layers.kernel_placement import compiled_by_xla
from tfllm.layers.rotary_embedding import RotaryEmbedding
from tfllm.layers.sums_as_products import add_bias


@keras.saving.register_keras_serializable(package="tfllm")
class CausalSelfAttention(keras.layers.Layer):
    """Multi-head self-attention in which each position sees only itself and earlier positions.

    `softmax(Q K^T / sqrt(Dh) + mask) V` per head, with Q = x Wq, K = x Wk, V = x Wv and the heads joined by Wo.
    The projection weights have the layout of `keras.layers.MultiHeadAttention`: kernels `query`, `key`, `value`
    (D, H, Dh) with biases (H, Dh), and `attention_output` kernel (H, Dh, D) with bias (D,), in that order, so
    `set_weights(keras_mha.get_weights())` gives the same outputs as `keras_mha(x, x, use_causal_mask=True)`.
    The softmax runs in float32 under mixed precision, where float16 scores overflow and bfloat16 rounds small
    probabilities away (in float64 under a float64 policy). A training call without a cache, padding or dropout
    computes the same attention as one kernel each way that skips the scores no query may see
    (`fused_causal_attention`).

    The weights, not the constructor, are `MultiHeadAttention`'s: it takes the arguments above, not
    `MultiHeadAttention`'s others (`value_dim`, `output_shape`, `attention_axes`, regularizers, ...), nor its config.

    For generation, a key/value cache `(keys, values)` holds the keys and values of every position written so far,
    each (B H, S_max, Dh): row `b * H + h` is head h of sequence b, one contiguous (S_max, Dh) block, the layout the
    score and mixing products read as a batch of B H matrices. A call with `cache` and `cache_index` writes the keys
    and values of its T new positions at `cache_index .. cache_index + T - 1` and attends over all S_max slots,
    hiding slots after each query's own position, so unfilled slots are never seen. All shapes stay static, which is
    what `tf.function(jit_compile=True)` needs. `initial_cache` builds an empty cache.

    Why two tensors of B H rows: in a decode loop compiled by XLA, the products read the loop's own cache tensors in
    place only if they are the products' operands as they are. Keys and values stacked in one tensor (B, 2, H,
    S_max, Dh), as KerasHub keeps them, are sliced apart, and XLA copies both slices every step; (B, H, S_max, Dh)
    tensors of one sequence are reshaped around a dimension of 1, and XLA then copies the whole cache every step.
    In `generate` under XLA (benchmarks/transformer_generation.py's model, prompt 32 + 224 new tokens, medians of 7
    alternating rounds at batch 1 and 5 at batch 8, ms per new token), the stacked cache took 0.86 (greedy) and 0.92
    (top-p) at batch 1 and 3.63 and 3.79 at batch 8; this one 0.77 and 0.80, and 3.04 and 3.60, the same tokens.

    Args:
        num_heads: positive int, H.
        key_dim: positive int, the size Dh of each head; default `hidden_dim // num_heads`, which then requires
            the hidden size D to be divisible by `num_heads`.
        dropout: rate in [0, 1) of dropout on the attention probabilities during training.
        use_bias: bool, whether the four projections have biases.
        rotary: bool, whether to apply `RotaryEmbedding` to queries and keys (positions are then relative, and the
            model needs no learned position embedding).
        kernel_initializer: initializer of the four projection kernels; biases start at zero.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: float tensor (B, T, D).
        cache: optional pair `(keys, values)` of float tensors (B H, S_max, Dh), the keys and values of earlier
            positions (`initial_cache`).
        cache_index: int or scalar int tensor, the absolute position of the first of the T inputs; required with
            `cache`. Positions past the cache's end are refused when the index is known as the call is traced or
            run; a traced index (a compiled decode loop's) is not checked, and the caller keeps it within the cache
            (a write past the end would overwrite earlier slots).
        padding_mask: optional (B, S) tensor, 1/True for real tokens and 0/False for padding, with S = T without a
            cache and S = S_max with one. Padded positions are never attended to; the outputs at padded query
            positions are unspecified.
        mask: the (B, T) Keras mask of the inputs (`Embedding(mask_zero=True)` upstream), Keras passes it: read as
            `padding_mask` when none is given and there is no cache, as `keras.layers.MultiHeadAttention` reads it.
        training: bool, whether dropout is active.

    Returns:
        Without `cache`: the output (B, T, D). With `cache`: a tuple `(output, new_cache)`, where `new_cache` is a
        pair of the shapes of `cache` and holds the new keys and values too.

    Example:

    ```python
    import numpy as np
    attention = CausalSelfAttention(num_heads=2)
    x = np.random.rand(1, 4, 8).astype("float32")  # (B, T, D)
    y = attention(x)  # (1, 4, 8)
    # The same numbers, one position at a time through a cache of 6 slots.
    cache = attention.initial_cache(batch_size=1, max_length=6)  # keys and values, each (2, 6, 4): (B H, S_max, Dh)
    for t in range(4):
        y_t, cache = attention(x[:, t : t + 1], cache=cache, cache_index=t)  # (1, 1, 8)
    ```
    """

    def __init__(
        self,
        num_heads,
        key_dim=None,
        dropout=0.0,
        use_bias=True,
        rotary=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)  # (B, T, D): a wrong rank is named before any op
        self.supports_masking = True  # a Keras mask is read as the padding mask and passed on
        self.num_heads = require_positive_int("num_heads", num_heads)
        self.key_dim = None if key_dim is None else require_positive_int("key_dim", key_dim)
        self.dropout = require_rate("dropout", dropout)
        self.use_bias = bool(use_bias)
        self.rotary = bool(rotary)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._head_dim = self.key_dim

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if self.key_dim is None:
            require_divisible("hidden_dim", hidden_dim, "num_heads", self.num_heads)
            self._head_dim = hidden_dim // self.num_heads
        heads_shape = (*input_shape[:-1], self.num_heads, self._head_dim)
        # Wq, Wk, Wv: (D, H, Dh), named like keras.layers.MultiHeadAttention's sublayers.
        per_head = (None, self.num_heads, self._head_dim)
        self.query_dense = self._projection("btd,dhk->bthk", per_head, "hk", "query")
        self.key_dense = self._projection("btd,dhk->bthk", per_head, "hk", "key")
        self.value_dense = self._projection("btd,dhk->bthk", per_head, "hk", "value")
        # Wo: (H, Dh, D), joins the heads back into the hidden size.
        self.output_dense = self._projection("bthk,hkd->btd", (None, hidden_dim), "d", "attention_output")
        for dense in (self.query_dense, self.key_dense, self.value_dense):
            dense.build(input_shape)
        self.output_dense.build(heads_shape)
        if self.rotary:
            self.rotary_embedding = RotaryEmbedding(dtype=self.dtype_policy, name="rotary_embedding")
            self.rotary_embedding.build(heads_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="attention_dropout")
        super().build(input_shape)

    def _projection(self, equation, output_shape, bias_axes, name):
        return keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=clone_initializer(self.kernel_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def initial_cache(self, batch_size, max_length, dtype=None):
        """Returns an empty key/value cache: the pair `(keys, values)`, zeros of shape (batch_size H, max_length,
        Dh) each."""
        if self._head_dim is None:
            raise ValueError(
                f"{self.name} does not know its head size yet: call it on an input or build it before initial_cache."
            )
        shape = (batch_size * self.num_heads, max_length, self._head_dim)
        dtype = dtype or self.compute_dtype
        return ops.zeros(shape, dtype=dtype), ops.zeros(shape, dtype=dtype)

    def call(self, inputs, cache=None, cache_index=None, padding_mask=None, training=None, mask=None):
        if padding_mask is None and cache is None and mask is not None:  # Keras's mask of (B, T) inputs
            padding_mask = mask
        if cache is not None and cache_index is None:
            raise ValueError("cache_index is required when a cache is given: the position of the first new token.")
        if cache is not None and not (isinstance(cache, (tuple, list)) and len(cache) == 2):
            raise ValueError(
                "cache must be the pair (keys, values) that initial_cache returns, each (B * num_heads, S_max, "
                f"head size); got {type(cache).__name__} {getattr(cache, 'shape', '')}."
            )
        if cache is not None:
            self._require_cache_shape(cache, inputs)
            self._require_room_in_cache(cache, cache_index, inputs.shape[1])
        if padding_mask is not None:
            self._require_mask_shape(padding_mask, inputs, cache)
        start_index = 0 if cache is None else ops.cast(cache_index, "int32")
        # Decoding in the plain graph, three products: joining the kernels would copy them at every step. XLA
        # joins them once before its decode loop, and runs the joined product faster.
        concatenated = cache is None or compiled_by_xla()
        query, key, value = self._query_key_value(inputs, concatenated)  # 3 x (B, T, H, Dh)
        if self.rotary:
            query = self.rotary_embedding(query, start_index=start_index)
            key = self.rotary_embedding(key, start_index=start_index)
        if cache is not None:
            context, cache = self._attention_over_cache(query, key, value, cache, start_index, padding_mask, training)
            return self._attention_output(context), cache  # (B, T, D), the new cache

        # Heads-major (B, H, T, Dh), the layout of the batched products over each head.
        query, key, value = (ops.transpose(heads, (0, 2, 1, 3)) for heads in (query, key, value))
        query = self._scaled(query)
        if training and padding_mask is None and self.dropout == 0 and self.compute_dtype != "float64":
            # A training step's attention as one kernel each way that skips the scores no query may see (its scores
            # are float32, so float64 keeps the ops below).
            context = fused_causal_attention(query, key, value)  # (B, T, H, Dh)
        else:
            scores = ops.einsum("bhtk,bhsk->bhts", query, key)  # (B, H, T, T)
            probabilities = self._probabilities(scores, 0, padding_mask, training)  # (B, H, T, T)
            context = ops.einsum("bhts,bhsk->bthk", probabilities, value)  # (B, T, H, Dh)
        return self._attention_output(context)  # (B, T, D)

    def _require_cache_shape(self, cache, inputs):
        """Refuses keys or values that are not (B H, S_max, Dh) for these inputs and this layer, where the sizes are
        known when the call is traced or run: a cache of another batch size or head size failed inside TensorFlow's
        ops."""
        batch_size = inputs.shape[0]
        shapes = [ops.convert_to_tensor(tensor).shape for tensor in cache]
        slots = shapes[0][1] if shapes[0].rank == 3 else None
        expected = (None if batch_size is None else batch_size * self.num_heads, slots, self._head_dim)
        for name, shape in zip(("keys", "values"), shapes):
            if shape.rank is None:
                continue
            if shape.rank != 3 or any(size is not None and want is not None and size != want
                                      for size, want in zip(shape, expected)):
                raise ValueError(
                    f"cache {name} of shape {tuple(shape)}: expected (B * num_heads, S_max, head size) = "
                    f"({batch_size} * {self.num_heads}, {'S_max' if slots is None else slots}, {self._head_dim}), "
                    f"as {self.name}.initial_cache(batch_size={batch_size}, max_length) makes it."
                )

    @staticmethod
    def _require_room_in_cache(cache, cache_index, length):
        """Refuses `length` new positions written from `cache_index` past the cache's end, where both are known
        when the call is traced or run: the update would move the start back and overwrite earlier slots."""
        slots, index = cache[0].shape[1], tf.get_static_value(cache_index)
        if slots is None or length is None or index is None:
            return
        if not 0 <= int(index) <= slots - length:
            raise ValueError(f"cache_index={int(index)} with {length} new position{'s' * (length > 1)} does not fit "
                             f"the cache of {slots} slots: expected 0 <= cache_index <= {slots - length}.")

    @staticmethod
    def _require_mask_shape(padding_mask, inputs, cache):
        """Refuses a padding mask that is not (B, S), S = T without a cache and S_max with one, where the sizes are
        known when the call is traced or run: it failed inside TensorFlow's ops, in a broadcast or an einsum."""
        shape = ops.convert_to_tensor(padding_mask).shape
        if shape.rank is None:  # a traced mask of unknown rank: nothing to check yet
            return
        shape = tuple(shape)
        length, what = (inputs.shape[1], "position of the inputs") if cache is None else (cache[0].shape[1],
                                                                                          "slot of the cache")
        batch_size = None if shape[:1] == (1,) else inputs.shape[0]  # one row of mask broadcasts to the batch
        wrong = len(shape) != 2 or any(size is not None and want is not None and size != want
                                       for size, want in zip(shape, (batch_size, length)))
        if wrong:
            raise ValueError(f"padding_mask of shape {shape}: expected (B, S) = ({inputs.shape[0]}, {length}), one "
                             f"value per {what}.")

    def _attention_over_cache(self, query, key, value, cache, start_index, padding_mask, training=None):
        """Writes the T new keys and values into the cache at `start_index` and attends over all its slots:
        (B, T, H, Dh) queries, keys and values -> the context (B, T, H, Dh) and the new cache."""
        batch_size, length = ops.shape(query)[0], ops.shape(query)[1]

        def rows(heads):  # (B, T, H, Dh) -> (B H, T, Dh), the cache's layout
            return ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (-1, length, self._head_dim))

        keys, values = cache
        keys = ops.slice_update(keys, [0, start_index, 0], rows(key))  # (B H, S_max, Dh)
        values = ops.slice_update(values, [0, start_index, 0], rows(value))
        slots = ops.shape(keys)[1]
        scores = ops.einsum("ntk,nsk->nts", self._scaled(rows(query)), keys)  # (B H, T, S_max)
        scores = ops.reshape(scores, (batch_size, self.num_heads, length, slots))  # (B, H, T, S_max)
        probabilities = self._probabilities(scores, start_index, padding_mask, training)  # (B, H, T, S_max)
        context = ops.einsum("nts,nsk->ntk", ops.reshape(probabilities, (-1, length, slots)), values)  # (B H, T, Dh)
        context = ops.reshape(context, (batch_size, self.num_heads, length, self._head_dim))  # (B, H, T, Dh)
        return ops.transpose(context, (0, 2, 1, 3)), (keys, values)  # (B, T, H, Dh)

    def _scaled(self, query):
        """The queries times 1 / sqrt(Dh): scaling them before the product keeps float16 scores in range."""
        return query * ops.cast(1.0 / math.sqrt(self._head_dim), query.dtype)

    def _probabilities(self, scores, start_index, padding_mask, training):
        """The attention probabilities (B, H, T, S) from the scores (B, H, T, S): the hidden keys masked, the softmax
        in float32, dropout in training."""
        mask = self._attention_mask(ops.shape(scores)[2], ops.shape(scores)[3], start_index, padding_mask)
        softmax_dtype = "float64" if self.compute_dtype == "float64" else "float32"
        scores = ops.where(mask, ops.cast(scores, softmax_dtype), HIDDEN_SCORE)
        probabilities = ops.cast(ops.softmax(scores, axis=-1), self.compute_dtype)
        return self.dropout_layer(probabilities, training=training)

    def _query_key_value(self, inputs, concatenated=True):
        """Q, K and V, (B, T, D) -> 3 x (B, T, H, Dh), from one matrix product with the three kernels side by side
        (D, 3 H Dh): a plain product of that width runs about twice as fast on CPUs as three (D, H, Dh) einsums
        (and their gradients), which TensorFlow runs as batched products. The weights stay three variables.

        With `concatenated=False`, three plain products instead, and no copy of the kernels: for decoding in the
        plain graph, where the copy would be made at every token. At batch 1 and 8 (alternating rounds, the same
        tokens, ms per new token) GPT-2 small decoded in 43.9 and 92.3 ms with the joined kernels and 38.5 and 83.7
        without; under XLA, which joins them once before the loop, three products were slower at batch 1 (58.8
        against 45.2 ms; benchmarks/transformer_generation.py's model 1.92 against 0.88)."""
        denses = (self.query_dense, self.key_dense, self.value_dense)
        if any(dense.quantization_mode is not None for dense in denses):
            return tuple(dense(inputs) for dense in denses)
        hidden_dim = inputs.shape[-1]
        # `dense.kernel` includes the LoRA change when LoRA is enabled.
        if not concatenated:
            head_shape = (*ops.shape(inputs)[:-1], self.num_heads, self._head_dim)  # (B, T, H, Dh)
            return tuple(
                ops.reshape(_dense(inputs, ops.reshape(dense.kernel, (hidden_dim, -1)),
                                   None if dense.bias is None else ops.reshape(dense.bias, (-1,))), head_shape)
                for dense in denses
            )
        kernels = [ops.reshape(dense.kernel, (hidden_dim, -1)) for dense in denses]  # Wq, Wk, Wv: 3 x (D, H Dh)
        kernel = ops.concatenate(kernels, axis=-1)  # (D, 3 H Dh), side by side
        bias = None
        if self.use_bias:
            bias = ops.concatenate([ops.reshape(dense.bias, (-1,)) for dense in denses], axis=-1)  # (3 H Dh,)
        heads = _dense(inputs, kernel, bias)  # (B, T, 3 H Dh)
        heads = ops.reshape(heads, (*ops.shape(inputs)[:-1], 3, self.num_heads, self._head_dim))  # (B, T, 3, H, Dh)
        return ops.unstack(heads, 3, axis=2)

    def _attention_output(self, context):
        """Wo joins the heads, (B, T, H, Dh) -> (B, T, D), as one plain product with the kernel read as (H Dh, D)."""
        dense = self.output_dense
        if dense.quantization_mode is not None:
            return dense(context)
        kernel = dense.kernel  # (H, Dh, D), with the LoRA change when enabled
        joined = ops.reshape(context, (*ops.shape(context)[:-2], self.num_heads * self._head_dim))  # (B, T, H Dh)
        return _dense(joined, ops.reshape(kernel, (-1, kernel.shape[-1])), dense.bias)

    def _attention_mask(self, query_length, key_length, start_index, padding_mask):
        """True where query t may see key s: s <= start_index + t, and key s is not padding. (B or 1, 1, T, S)."""
        query_positions = ops.arange(query_length) + start_index  # (T,)
        key_positions = ops.arange(key_length)  # (S,)
        mask = ops.less_equal(key_positions[None, :], query_positions[:, None])[None, None]  # (1, 1, T, S)
        if padding_mask is not None:
            real_keys = ops.cast(padding_mask, "bool")[:, None, None, :]  # (B, 1, 1, S)
            mask = ops.logical_and(mask, real_keys)  # (B, 1, T, S)
        return mask

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "rotary": self.rotary,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def _dense(inputs, kernel, bias):
    """`inputs @ kernel + bias`, (B, T, N) -> (B, T, M) for a kernel (N, M), in the inputs' dtype.

    One plain product for every shape, a decode step of one sequence included. Until 2026-12 that step (B = T = 1)
    was computed as a multiply and a sum over N, once measured faster under XLA on CPUs; with the caches read in
    place it was slower: `generate` on benchmarks/transformer_generation.py's model at batch 1 took 0.73-0.79 ms
    per new token with it and 0.54-0.57 ms without, GPT-2 small 28.6 against 25.5 ms (alternating rounds, one
    process, the same tokens).

    The bias's gradient is summed by `sums_as_products.add_bias`: for the joined query, key and value bias of the
    default Transformer at 16 x 256, TensorFlow's `Sum` took 2.6 ms and the product 0.9 ms (float32)."""
    kernel = ops.cast(kernel, inputs.dtype)
    outputs = ops.matmul(inputs, kernel)  # (B, T, M)
    return outputs if bias is None else add_bias(outputs, ops.cast(bias, inputs.dtype))
