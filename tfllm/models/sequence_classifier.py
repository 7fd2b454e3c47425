"""A classification head on a causal language model: the representation of a text -> class logits."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from tfllm.checks import require_choice, require_int_at_least, require_positive_int, require_rate
from tfllm.models.build_before_tracing import BuildBeforeTracing
from tfllm.models.causal_lm import CausalLM
from tfllm.models.fused_adamw import FusedAdamW
from tfllm.models.multi_worker import MultiWorkerFit
from tfllm.utf8 import utf8_bytes

POOLINGS = ("last", "mean")


@keras.saving.register_keras_serializable(package="tfllm")
class SequenceClassifier(MultiWorkerFit, BuildBeforeTracing, keras.Model):
    """Classifies token sequences with any tfllm language model as the backbone (GPT-style fine-tuning).

    The backbone reads the tokens (`backbone.hidden_states`, (B, T) -> (B, T, D)), one vector summarizes the text,
    and a dense layer turns it into class logits. With `pooling="last"` the vector is the hidden state at the last
    token that is not padding: in a causal model it is the only position that has read the whole text. With
    `pooling="mean"` it is the mean over the real tokens. Padding is `pad_id` of the backbone's tokenizer (0
    without one) and may only come after the text (as `classification_dataset` pads).

    Args:
        backbone: a `tfllm.models.CausalLM` (`SimpleRNNLM`, `LSTMLM`, `TransformerLM`), usually pretrained; its
            weights are fine-tuned with the head unless `backbone.trainable = False`.
        num_classes: C, at least 2.
        dropout: rate in [0, 1) on the pooled vector.
        pooling: "last" or "mean".
        sequence_length: the tokens `predict_texts` reads per text (the first ones), as in training; None means
            the backbone's `max_sequence_length` (any length for recurrent backbones).

    Call arguments:
        token_ids: int32 (B, T), right-padded with `pad_id`.
        training: whether dropout is active.

    Returns:
        Class logits (B, C), float32.

    Example:

    >>> from tfllm.models import LSTMLM
    >>> classifier = SequenceClassifier(LSTMLM(259, hidden_dim=8), num_classes=3)
    >>> tuple(classifier(keras.ops.ones((2, 5), "int32")).shape)  # (B, T) -> (B, C)
    (2, 3)
    """

    def __init__(self, backbone, num_classes, dropout=0.0, pooling="last", sequence_length=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        if not isinstance(backbone, CausalLM):
            raise ValueError(
                f"backbone={backbone!r} is invalid: expected a tfllm CausalLM (SimpleRNNLM, LSTMLM or TransformerLM)."
            )
        self.backbone = backbone
        self.num_classes = require_int_at_least("num_classes", num_classes, 2, " (a classifier needs two classes)")
        self.dropout = require_rate("dropout", dropout)
        self.pooling = require_choice("pooling", pooling, POOLINGS)
        self.sequence_length = None if sequence_length is None else require_positive_int(
            "sequence_length", sequence_length
        )
        self.head_dropout = keras.layers.Dropout(dropout, name="head_dropout")
        self.head = keras.layers.Dense(self.num_classes, name="head")

    def build(self, input_shape=None):
        # The backbone's hidden size shows once it has read something.
        self.backbone.build_eagerly()
        probe = ops.zeros((1, self._probe_length()), "int32")  # (B, T) token ids
        self.head.build((None, self.backbone.hidden_states(probe).shape[-1]))
        self.built = True

    @property
    def pad_id(self):
        return self.backbone.pad_id

    @property
    def max_sequence_length(self):
        """The backbone's context (None for a recurrent backbone): the longest sequence the classifier reads."""
        return self.backbone.max_sequence_length

    def _probe_target_shape(self):
        return (1,)  # class ids (B,)

    def call(self, token_ids, training=None):
        hidden = self.backbone.hidden_states(token_ids, training=training)  # (B, T, D)
        real = ops.cast(ops.not_equal(token_ids, self.pad_id), hidden.dtype)  # (B, T)
        if self.pooling == "last":
            positions = ops.arange(ops.shape(token_ids)[1], dtype="int32")  # (T,)
            last = ops.max(ops.where(real > 0, positions[None, :], 0), axis=1)  # (B,); 0 for an all-pad row
            weights = ops.one_hot(last, ops.shape(token_ids)[1], dtype=hidden.dtype)  # (B, T)
        else:
            weights = real / ops.maximum(ops.sum(real, axis=1, keepdims=True), 1)  # (B, T)
        pooled = ops.einsum("bt,btd->bd", weights, hidden)  # (B, D)
        pooled = self.head_dropout(pooled, training=training)
        return ops.cast(self.head(pooled), "float32")  # (B, C)

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        metrics="auto",
        learning_rate=1e-3,
        weight_decay=0.01,
        global_clipnorm=1.0,
        **kwargs,
    ):
        """Compiles with defaults for fine-tuning; every one can be overridden.

        Defaults: AdamW (`FusedAdamW`) at a constant `learning_rate` (no weight decay on biases and norms), gradients
        clipped to a global norm of `global_clipnorm`; sparse categorical cross-entropy from logits; accuracy.
        """
        if optimizer == "auto":
            optimizer = FusedAdamW(
                learning_rate=learning_rate, weight_decay=weight_decay, global_clipnorm=global_clipnorm
            )
            optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips models whose compile() is overridden; this one takes the resolved objects Keras saved, so a
        # loaded classifier is compiled as it was, optimizer state included.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def predict_texts(self, texts, batch_size=64):
        """The class id of each text, read with the backbone's tokenizer: a (B,) int array (a scalar for one text).

        Each text is cut to its first `sequence_length` tokens (see the class arguments) and padded, as
        `tfllm.data.classification_dataset` does for training.
        """
        tokenizer = self.backbone.tokenizer
        if tokenizer is None:
            raise ValueError("predict_texts needs the backbone's tokenizer: make the backbone with tokenizer=...")
        single = isinstance(texts, (str, bytes))
        texts = [texts] if single else list(texts)
        if not texts:
            raise ValueError("texts is empty: expected at least one text to classify.")
        limit = self.sequence_length or self.backbone.max_sequence_length
        ids = tokenizer.tokenize(tf.constant(utf8_bytes(texts), tf.string))
        if limit is not None:
            ids = ids[:, :limit]
        token_ids = ids.to_tensor(self.pad_id).numpy()  # (B, T)
        if token_ids.shape[1] == 0:
            token_ids = np.full((len(texts), 1), self.pad_id, np.int32)
        logits = self.predict(token_ids, batch_size=batch_size, verbose=0)  # (B, C)
        classes = np.argmax(logits, axis=-1)
        return classes[0] if single else classes

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "dropout": self.dropout,
            "pooling": self.pooling,
            "sequence_length": self.sequence_length,
        }
