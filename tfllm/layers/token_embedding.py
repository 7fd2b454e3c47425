"""Token embedding that also produces the output logits (tied or separate output weights)."""

import itertools
import math

import keras
from keras import ops

from tfllm.checks import require_positive_int
from tfllm.layers.initializers import clone_initializer

# The logits of many rows are computed slice by slice of the vocabulary (TokenEmbedding._logits): this many entries
# per slice, for vocabularies of at most this many slices.
LOGITS_SLICE, LOGITS_MAX_SLICES = 512, 32


@keras.saving.register_keras_serializable(package="tfllm")
class TokenEmbedding(keras.layers.Layer):
    """Maps token ids to vectors and, called with `reverse=True`, hidden vectors back to vocabulary logits.

    With `tie_weights=True` (the default, as in GPT-2) the logits use the transposed embedding matrix, so the model
    stores one (V, D) matrix for both ends. With `tie_weights=False` the layer owns a separate `output_kernel` (D, V),
    laid out like the kernel of `keras.layers.Dense(V, use_bias=False)`. The `embeddings` weight has the name and
    layout of `keras.layers.Embedding(V, D)`, so `set_weights(keras_embedding.get_weights())` works both ways
    (tied case).

    The logits are always float32: the matmul runs in the compute dtype and the result is cast, so a softmax or
    cross-entropy on them stays accurate under `mixed_float16` and `mixed_bfloat16`.

    Args:
        vocab_size: positive int, V.
        embedding_dim: positive int, D.
        tie_weights: bool; if True the logits are `hidden @ embeddings.T`, else `hidden @ output_kernel`.
        embeddings_initializer: initializer of `embeddings` (and of `output_kernel` when untied).
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: int token ids (B, T) when `reverse=False`; hidden vectors (B, T, D) when `reverse=True`.
        reverse: bool, False to embed ids, True to produce logits.
        training: bool, whether this is a training step (the logits of many rows are then computed slice by slice
            of the vocabulary, faster on CPUs; the values are the same).

    Returns:
        `reverse=False`: embeddings (B, T, D) in the compute dtype. `reverse=True`: logits (B, T, V) in float32.

    Example:

    ```python
    import numpy as np
    embedding = TokenEmbedding(vocab_size=100, embedding_dim=8)
    ids = np.array([[1, 2, 3]])  # (B, T)
    hidden = embedding(ids)  # (1, 3, 8)
    logits = embedding(hidden, reverse=True)  # (1, 3, 100), float32
    ```
    """

    def __init__(self, vocab_size, embedding_dim, tie_weights=True, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = require_positive_int("vocab_size", vocab_size)
        self.embedding_dim = require_positive_int("embedding_dim", embedding_dim)
        self.tie_weights = bool(tie_weights)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, input_shape=None):
        # Not autocast: gathering rows first and casting only those is cheaper than casting the whole table.
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.vocab_size, self.embedding_dim),
            initializer=clone_initializer(self.embeddings_initializer),
            autocast=False,
        )
        if not self.tie_weights:
            self.output_kernel = self.add_weight(
                name="output_kernel",
                shape=(self.embedding_dim, self.vocab_size),
                initializer=clone_initializer(self.embeddings_initializer),
                autocast=False,
            )
        super().build(input_shape)

    def call(self, inputs, reverse=False, training=None):
        if reverse:
            return self._logits(inputs, training)
        vectors = ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)  # (B, T, D)
        return ops.cast(vectors, self.compute_dtype)

    def _logits(self, hidden, training):
        """(B, T, D) -> (B, T, V) float32 logits, as one product or, in a training step, one per slice of the
        vocabulary.

        On CPUs TensorFlow computes the (B T, D) x (D, V) product of a training batch and its two gradient products
        faster in slices of `LOGITS_SLICE` vocabulary entries, joined afterwards. On the 2-core CPU of
        benchmarks/where_time_goes.py (forward and backward, medians of 7 alternating rounds) that was 1.08-1.26x
        faster for vocabularies of 4,096 to 16,384 entries, widths of 128 to 768 and 1,024 to 4,096 rows, and it took
        the default Transformer's plain-graph training step (batch 16 x 256, vocabulary 4,096) from 1.65 to 1.51 s.
        For GPT-2's 50,257 entries (99 slices) it was 4% slower, so vocabularies above `LOGITS_MAX_SLICES` slices
        keep one product, as do batches of fewer rows than a slice has entries. Under XLA the slices neither help nor
        hurt. Outside training (a decode step's few rows, whose count a traced loop may not know) it is one product.
        """
        rows = None if None in hidden.shape[:-1] else math.prod(hidden.shape[:-1])
        sizes = logit_slices(self.vocab_size, rows) if training else [self.vocab_size]
        if len(sizes) == 1:
            kernel = ops.transpose(self.embeddings) if self.tie_weights else self.output_kernel  # (D, V)
            return ops.cast(ops.matmul(hidden, ops.cast(kernel, self.compute_dtype)), "float32")
        boundaries = list(itertools.accumulate(sizes))[:-1]
        if self.tie_weights:
            kernels = [ops.transpose(part) for part in ops.split(self.embeddings, boundaries, axis=0)]
        else:
            kernels = ops.split(self.output_kernel, boundaries, axis=1)
        # (D, slice) kernels -> (B, T, slice) logits each.
        slices = [ops.matmul(hidden, ops.cast(kernel, self.compute_dtype)) for kernel in kernels]
        logits = ops.cast(ops.concatenate(slices, axis=-1), "float32")  # (B, T, V)
        logits._tfllm_logit_slices = slices  # for a cross-entropy that need not join them: logit_slices_of
        return logits

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_dim": self.embedding_dim,
            "tie_weights": self.tie_weights,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


def logit_slices_of(logits):
    """The slices [(B, T, V_0), (B, T, V_1), ...] (in the compute dtype) that a training call of `TokenEmbedding`
    joined into `logits` (B, T, V), or None for any other tensor. A cross-entropy computed from them
    (`tfllm.models.sliced_cross_entropy`) spares the step the join, which TensorFlow then leaves out when nothing
    else reads the joined logits."""
    return getattr(logits, "_tfllm_logit_slices", None)


def logit_slices(vocab_size, rows):
    """The widths of the vocabulary slices in which a training step computes the logits of `rows` rows (None when
    unknown): `LOGITS_SLICE` entries each, the last one the rest; `[vocab_size]`, one product, for fewer rows than a
    slice has entries or a vocabulary of one slice or of more than `LOGITS_MAX_SLICES` (TokenEmbedding._logits).

    >>> logit_slices(1300, rows=2048), logit_slices(1300, rows=8), logit_slices(50257, rows=None)
    ([512, 512, 276], [1300], [50257])
    """
    slices = -(-vocab_size // LOGITS_SLICE)
    if (rows is not None and rows < LOGITS_SLICE) or not 1 < slices <= LOGITS_MAX_SLICES:
        return [vocab_size]
    return [LOGITS_SLICE] * (slices - 1) + [vocab_size - LOGITS_SLICE * (slices - 1)]
