"""Causal language models of three architectures behind one API, and the heads that fine-tune them."""

from tfllm.models.causal_lm import CausalLM
from tfllm.models.fused_adamw import FusedAdamW
from tfllm.models.lstm_lm import LSTMLM
from tfllm.models.metrics import Perplexity
from tfllm.models.schedules import WarmupCosineDecay
from tfllm.models.sequence_classifier import SequenceClassifier
from tfllm.models.simple_rnn_lm import SimpleRNNLM
from tfllm.models.transformer_lm import TransformerLM
