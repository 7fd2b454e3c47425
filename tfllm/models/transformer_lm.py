"""A decoder-only Transformer language model (GPT): embeddings -> causal blocks -> final norm -> tied logits."""

import os

import keras

from tfllm.checks import (
    require_choice,
    require_divisible,
    require_even_rotary_heads,
    require_positive_int,
    require_rate,
)
from tfllm.checkpoints import read_gpt2_checkpoint
from tfllm.choices import POSITION_EMBEDDINGS
from tfllm.layers import PositionEmbedding, TokenEmbedding, TransformerBlock
from tfllm.layers.activations import get_activation
from tfllm.layers.fused_layer_norm import layer_norm
from tfllm.models.causal_lm import CausalLM


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerLM(CausalLM):
    """A GPT-style language model of pre-layer-norm causal Transformer blocks.

    The decode state is one key/value cache per block, keys and values of (B H, max_length, Dh) each (row b H + h is
    head h of sequence b, see `CausalSelfAttention`); `decode` writes the new positions into the caches, so
    generating a token costs one position's work instead of a pass over the whole sequence.

    Args:
        vocab_size: V.
        num_layers: Transformer blocks.
        num_heads: attention heads; must divide `hidden_dim`.
        hidden_dim: D.
        intermediate_dim: width of each block's MLP (usually 4 D).
        max_sequence_length: the longest context the model reads.
        dropout: rate in [0, 1) on embeddings, attention and residual branches.
        position_embedding: "learned" (absolute, GPT-2) or "rotary" (RoPE: relative, no position weights).
        tie_weights: compute the logits with the token embedding matrix.
        activation: the name of the blocks' MLP activation: "gelu" (exact) or "gelu_approximate" (the tanh
            approximation GPT-2 uses), or any Keras activation name.
        layer_norm_epsilon: positive float added to the variance in every layer norm.
        tokenizer: an optional tfllm tokenizer, saved with the model.

    `TransformerLM.from_pretrained(path)` converts a GPT-2 checkpoint (a KerasHub preset or a Hugging Face
    directory, see `tfllm.checkpoints`).

    Example:

    >>> model = TransformerLM(259, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
    ...                       max_sequence_length=8)
    >>> tuple(model(keras.ops.ones((2, 8), "int32")).shape)  # (B, T) -> (B, T, V)
    (2, 8, 259)
    """

    def __init__(
        self,
        vocab_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_sequence_length,
        dropout=0.0,
        position_embedding="learned",
        tie_weights=True,
        activation="gelu",
        layer_norm_epsilon=1e-5,
        tokenizer=None,
        **kwargs,
    ):
        super().__init__(vocab_size, tokenizer=tokenizer, **kwargs)
        self.num_layers = require_positive_int("num_layers", num_layers)
        self.num_heads = require_positive_int("num_heads", num_heads)
        self.hidden_dim = require_positive_int("hidden_dim", hidden_dim)
        require_divisible("hidden_dim", hidden_dim, "num_heads", num_heads)
        self.intermediate_dim = require_positive_int("intermediate_dim", intermediate_dim)
        self._max_sequence_length = require_positive_int("max_sequence_length", max_sequence_length)
        self.dropout = require_rate("dropout", dropout)
        self.position_embedding = require_choice("position_embedding", position_embedding, POSITION_EMBEDDINGS)
        require_even_rotary_heads(position_embedding, hidden_dim, num_heads)
        self.tie_weights = bool(tie_weights)
        get_activation(activation)  # an unknown name fails here, before any layer is made
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        rotary = position_embedding == "rotary"
        self.token_embedding = TokenEmbedding(vocab_size, hidden_dim, tie_weights=tie_weights, name="token_embedding")
        self.positions = None if rotary else PositionEmbedding(max_sequence_length, name="position_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.blocks = [
            TransformerBlock(num_heads, intermediate_dim, dropout=dropout, activation=activation,
                             layer_norm_epsilon=layer_norm_epsilon, rotary=rotary, name=f"block_{index}")
            for index in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, name="final_norm")

    @classmethod
    def from_pretrained(cls, path):
        """The GPT-2 checkpoint in the local directory `path` (a KerasHub preset, or a Hugging Face model
        directory), as a `TransformerLM` with the checkpoint's `BytePairTokenizer` attached.

        The GELU of GPT-2 (the tanh approximation), its layer-norm epsilon and its context length come from the
        checkpoint's config. A directory of another format or architecture, a missing file or tensor, a tensor of
        the wrong shape or a vocabulary that does not fit the weights raises a one-line `ValueError` naming it
        (`tfllm.checkpoints.CheckpointError`), before the model is built.

        Example (with a preset KerasHub wrote by `GPT2CausalLM.from_preset("gpt2_base_en")`, see the README):

        ```python
        model = TransformerLM.from_pretrained("~/.cache/kagglehub/models/keras/gpt2/keras/gpt2_base_en/3")
        model.generate(["The meaning of life is"], max_new_tokens=20, sampler="greedy")
        ```
        """
        checkpoint = read_gpt2_checkpoint(os.path.expanduser(os.fspath(path)))
        model = cls(**checkpoint.model_arguments, tokenizer=checkpoint.tokenizer())
        model.load_named_weights(checkpoint.weights)
        return model

    def load_named_weights(self, weights):
        """Assigns `weights`, `{name: array}` named by each variable's path below the model
        (`block_0/self_attention/query/kernel`, as `tfllm.checkpoints.gpt2_weight_shapes` lists them); every
        variable must be given, with its shape."""
        self.build_eagerly()
        variables = {variable.path.split("/", 1)[1]: variable for variable in self.weights}
        missing, unknown = sorted(set(variables) - set(weights)), sorted(set(weights) - set(variables))
        if missing or unknown:
            problems = [f"{what}: {len(names)}, e.g. {names[:3]}" for what, names in
                        (("its variables not given", missing), ("given names of no variable", unknown)) if names]
            raise ValueError(
                f"the weights do not match the model ({'; '.join(problems)}): expected one array for each variable, "
                "named by its path below the model (`tfllm.checkpoints.gpt2_weight_shapes` lists them)"
            )
        for name, variable in variables.items():
            if tuple(weights[name].shape) != tuple(variable.shape):
                raise ValueError(f"the weight {name} has the shape {tuple(weights[name].shape)}: expected "
                                 f"{tuple(variable.shape)}")
            variable.assign(weights[name])

    @property
    def max_sequence_length(self):
        return self._max_sequence_length

    def _embed(self, token_ids, start_index, training=None):
        x = self.token_embedding(token_ids)  # (B, T, D)
        if self.positions is not None:
            x = x + self.positions(x, start_index=start_index)
        return self.embedding_dropout(x, training=training)

    def hidden_states(self, token_ids, training=None):
        length = token_ids.shape[1]
        if length is not None and length > self.max_sequence_length:
            raise ValueError(
                f"the sequence length {length} is longer than max_sequence_length={self.max_sequence_length}."
            )
        x = self._embed(token_ids, 0, training=training)
        for block in self.blocks:
            x = block(x, training=training)  # (B, T, D)
        return layer_norm(self.final_norm, x, training)

    def logits(self, hidden_states):
        return self.token_embedding(hidden_states, reverse=True)  # (B, T, V)

    def initial_state(self, batch_size, max_length):
        self.build_eagerly()
        return [block.initial_cache(batch_size, max_length) for block in self.blocks]

    def decode(self, token_ids, state, index):
        x = self._embed(token_ids, index)  # (B, T_new, D)
        new_state = []
        for block, cache in zip(self.blocks, state):
            x, cache = block(x, cache=cache, cache_index=index)  # (B, T_new, D), keys and values (B H, S, Dh)
            new_state.append(cache)
        return self.logits(self.final_norm(x)), new_state

    def training_flops_per_token(self, sequence_length):
        # 6 FLOPs per weight of a matrix product, plus attention's scores and mixing: 12 * layers * D * T
        # (the PaLM paper's count, Appendix B).
        block_weights = self.num_layers * (4 * self.hidden_dim**2 + 2 * self.hidden_dim * self.intermediate_dim)
        output_weights = self.vocab_size * self.hidden_dim
        attention = 12 * self.num_layers * self.hidden_dim * sequence_length
        return 6 * (block_weights + output_weights) + attention

    def get_config(self):
        return {
            **super().get_config(),
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "hidden_dim": self.hidden_dim,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "dropout": self.dropout,
            "position_embedding": self.position_embedding,
            "tie_weights": self.tie_weights,
            "activation": self.activation,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }

