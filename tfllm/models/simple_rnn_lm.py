"""The textbook's language model: `h_t = tanh(W x_t + U h_{t-1} + b)` over token embeddings, logits from h_t."""

import keras

from tfllm.layers import SimpleRNN
from tfllm.models.recurrent_lm import RecurrentLM


@keras.saving.register_keras_serializable(package="tfllm")
class SimpleRNNLM(RecurrentLM):
    """A simple recurrent network language model.

    Args:
        vocab_size: V, the number of token ids.
        hidden_dim: D, the size of the embeddings and of each hidden state.
        num_layers: stacked `SimpleRNN` layers.
        dropout: rate in [0, 1) between layers.
        tie_weights: compute the logits with the embedding matrix (fewer weights, usually better).
        tokenizer: an optional tfllm tokenizer, saved with the model and used by `generate` and `score`.

    Example:

    >>> model = SimpleRNNLM(vocab_size=259, hidden_dim=32)
    >>> logits = model(keras.ops.ones((2, 5), "int32"))  # (B, T) -> (B, T, V)
    >>> tuple(logits.shape)
    (2, 5, 259)
    """

    recurrent_class = SimpleRNN
