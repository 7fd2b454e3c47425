"""A decoder-only Transformer language model (GPT): embeddings -> causal blocks -> final norm -> tied logits."""

import keras
from keras import ops

from tfllm.checks import require_choice, require_divisible, require_positive_int, require_rate
from tfllm.layers import PositionEmbedding, TokenEmbedding, TransformerBlock
from tfllm.models.causal_lm import CausalLM

POSITION_EMBEDDINGS = ("learned", "rotary")


@keras.saving.register_keras_serializable(package="tfllm")
class TransformerLM(CausalLM):
    """A GPT-style language model of pre-layer-norm causal Transformer blocks.

    The decode state is one key/value cache (B, 2, max_length, H, Dh) per block; `decode` writes the new positions
    into the caches, so generating a token costs one position's work instead of a pass over the whole sequence.

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
        tokenizer: an optional tfllm tokenizer, saved with the model.

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
        self.tie_weights = bool(tie_weights)
        rotary = position_embedding == "rotary"
        self.token_embedding = TokenEmbedding(vocab_size, hidden_dim, tie_weights=tie_weights, name="token_embedding")
        self.positions = None if rotary else PositionEmbedding(max_sequence_length, name="position_embedding")
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        self.blocks = [
            TransformerBlock(num_heads, intermediate_dim, dropout=dropout, rotary=rotary, name=f"block_{index}")
            for index in range(num_layers)
        ]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")

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
        return self.final_norm(x)

    def logits(self, hidden_states):
        return self.token_embedding(hidden_states, reverse=True)  # (B, T, V)

    def initial_state(self, batch_size, max_length):
        if not self.built:
            # Two positions: over one, Keras warns that a softmax of one element is always 1.
            self(ops.zeros((1, min(2, self.max_sequence_length)), "int32"))
        return [block.initial_cache(batch_size, max_length) for block in self.blocks]

    def decode(self, token_ids, state, index):
        x = self._embed(token_ids, index)  # (B, T_new, D)
        new_state = []
        for block, cache in zip(self.blocks, state):
            x, cache = block(x, cache=cache, cache_index=index)  # (B, T_new, D), (B, 2, S, H, Dh)
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
        }
