"""Tokenizers on tensorflow-text ops: usable in tf.data, tf.function and SavedModels, saved inside `.keras` files."""

from tfllm.tokenizers.byte import ByteTokenizer
from tfllm.tokenizers.byte_pair import BytePairTokenizer
from tfllm.tokenizers.char import CharTokenizer
from tfllm.tokenizers.sentencepiece import SentencePieceTokenizer
from tfllm.tokenizers.tokenizer import Tokenizer
from tfllm.tokenizers.wordpiece import WordPieceTokenizer
