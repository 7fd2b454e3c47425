"""The recurrent language model shared by `SimpleRNNLM` and `LSTMLM`: embedding -> recurrent layers -> logits."""

import keras

from tfllm.checks import require_positive_int, require_rate
from tfllm.layers import TokenEmbedding
from tfllm.models.causal_lm import CausalLM


class RecurrentLM(CausalLM):
    """Token embedding, `num_layers` recurrent layers of `hidden_dim` units, and logits through the embedding.

    The decode state is the recurrent layers' states: `[[h], ...]` for simple RNNs, `[[h, c], ...]` for LSTMs.
    Subclasses set `recurrent_class`.
    """

    recurrent_class = None

    def __init__(self, vocab_size, hidden_dim, num_layers=1, dropout=0.0, tie_weights=True, tokenizer=None, **kwargs):
        super().__init__(vocab_size, tokenizer=tokenizer, **kwargs)
        self.hidden_dim = require_positive_int("hidden_dim", hidden_dim)
        self.num_layers = require_positive_int("num_layers", num_layers)
        self.dropout = require_rate("dropout", dropout)
        self.tie_weights = bool(tie_weights)
        # The tied matrix E starts at std 1/sqrt(D) and the inputs are E * sqrt(D) (Vaswani et al., 2017, 3.4):
        # unit-variance inputs, which Glorot-initialized kernels expect, and logits h E^T of at most unit scale.
        # Keras's default uniform(-0.05, 0.05) left small recurrent models at unigram statistics for hundreds of
        # steps (measured).
        self.embedding = TokenEmbedding(
            vocab_size,
            hidden_dim,
            tie_weights=tie_weights,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
            name="token_embedding",
        )
        self.input_scale = hidden_dim**0.5
        self.recurrent_layers = [
            self.recurrent_class(hidden_dim, return_sequences=True, return_state=True, name=f"recurrent_{index}")
            for index in range(num_layers)
        ]
        self.dropout_layer = keras.layers.Dropout(dropout, name="dropout")

    def hidden_states(self, token_ids, training=None):
        x = self.embedding(token_ids) * self.input_scale  # (B, T, D)
        for layer in self.recurrent_layers:
            x = self.dropout_layer(x, training=training)
            x = layer(x, training=training)[0]  # (B, T, D)
        return self.dropout_layer(x, training=training)

    def logits(self, hidden_states):
        return self.embedding(hidden_states, reverse=True)  # (B, T, V)

    def initial_state(self, batch_size, max_length):
        return [layer.cell.get_initial_state(batch_size) for layer in self.recurrent_layers]

    def decode(self, token_ids, state, index):
        x = self.embedding(token_ids) * self.input_scale  # (B, T_new, D)
        new_state = []
        for layer, layer_state in zip(self.recurrent_layers, state):
            if token_ids.shape[1] == 1:
                # One token: the cell's single step, without the sequence machinery around it.
                output, layer_state = layer.cell(x[:, 0], layer_state)  # (B, D)
                x = output[:, None]
            else:
                x, *layer_state = layer(x, initial_state=layer_state)  # (B, T_new, D)
            new_state.append(list(layer_state))
        return self.logits(x), new_state

    def xla_step_on_cpus(self):
        """True in float32, where the whole step measured as fast or faster under XLA. On the 2-core Intel Xeon
        (oneDNN) of benchmarks/models.py, the default `tfllm train` step (batch 16 x 128, `compile()` defaults) ran
        1.05-1.24x as fast under XLA for the LSTM and 1.00-1.19x for the SimpleRNN (four runs of 5 to 15
        alternating rounds in one process, by median rounds and by per-round ratios), and 1.03x for both with
        oneDNN turned off; under `mixed_bfloat16` it took twice as long under XLA. benchmarks/jit_compile_choice.py
        measures it anew."""
        return self.compute_dtype == "float32"

    def training_flops_per_token(self, sequence_length):
        # Every weight of a matrix product does a multiply-add forward and two backward: 6 FLOPs per weight. Each
        # layer maps D inputs and D states to `gates` * D pre-activations (W and U), counted from the sizes, so that
        # the count is known before the weights are built (Keras builds them at the first batch of `fit`).
        recurrent_weights = sum(
            2 * self.hidden_dim * layer.cell.gates * self.hidden_dim for layer in self.recurrent_layers
        )
        return 6 * (recurrent_weights + self.vocab_size * self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "tie_weights": self.tie_weights,
        }
