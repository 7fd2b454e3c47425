"""An LSTM language model: the gated recurrent network that held the state of the art before Transformers."""

import keras

from tfllm.layers import LSTM
from tfllm.models.recurrent_lm import RecurrentLM


@keras.saving.register_keras_serializable(package="tfllm")
class LSTMLM(RecurrentLM):
    """An LSTM language model; the arguments are those of `SimpleRNNLM`.

    Example:

    >>> model = LSTMLM(vocab_size=259, hidden_dim=32, num_layers=2)
    >>> tuple(model(keras.ops.ones((2, 5), "int32")).shape)  # (B, T, V)
    (2, 5, 259)
    """

    recurrent_class = LSTM
