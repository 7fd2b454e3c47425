"""Keras layers of tfllm: the simple RNN cell, the LSTM, and the Transformer block with its embeddings."""

from tfllm.layers.causal_self_attention import CausalSelfAttention
from tfllm.layers.lstm import LSTM, LSTMCell
from tfllm.layers.position_embedding import PositionEmbedding
from tfllm.layers.rotary_embedding import RotaryEmbedding
from tfllm.layers.simple_rnn import SimpleRNN, SimpleRNNCell
from tfllm.layers.token_embedding import TokenEmbedding
from tfllm.layers.transformer_block import TransformerBlock
