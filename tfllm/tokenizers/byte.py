"""UTF-8 bytes as tokens: a vocabulary that needs no training and loses nothing."""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from tfllm.checks import require_int_at_least
from tfllm.tokenizers.tokenizer import Tokenizer
from tfllm.tokenizers.training_texts import text_batches


@keras.saving.register_keras_serializable(package="tfllm")
class ByteTokenizer(Tokenizer):
    """Each byte of the UTF-8 text is one token: id = byte + 3, after pad (0), bos (1) and eos (2).

    Lossless for every input, including text that is not valid UTF-8: `detokenize(tokenize(s)) == s` byte for byte
    (for text without extra special tokens). The vocabulary has 259 ids and needs no training, which makes it the
    default of the small models; extra special tokens take the ids after it (259, 260, ...).

    Args:
        special_tokens: extra special tokens, each kept as one id (e.g. `["<en>", "<zh>"]`).

    Example:

    >>> tokenizer = ByteTokenizer()
    >>> ids = tokenizer.tokenize(["hi", "é"])  # RaggedTensor (B, None)
    >>> ids.to_list()
    [[107, 108], [198, 172]]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'hi', b'\\xc3\\xa9']
    >>> ByteTokenizer(special_tokens=["<zh>"]).tokenize("<zh>hi").numpy().tolist()
    [259, 107, 108]
    """

    special_token_roles = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>"}
    num_byte_ids = 256
    first_byte_id = 3

    @classmethod
    def train(cls, texts=(), vocab_size=None, special_tokens=None, verbose=True, **kwargs):
        """A ByteTokenizer (bytes need no learning), checking that `texts` do not already hold `special_tokens`.

        The same call as the other tokenizers' `train`, so code that picks a tokenizer by name trains any of them.
        `vocab_size` must be None or at least 259 + the number of special tokens.
        """
        tokenizer = cls(special_tokens=special_tokens, **kwargs)
        if vocab_size is not None:
            require_int_at_least("vocab_size", vocab_size, tokenizer.vocab_size, " (bytes and special tokens)")
        for _ in text_batches(texts, verbose=verbose, special_tokens=tokenizer.extra_special_tokens,
                              allow_empty=True):
            pass
        return tokenizer

    @property
    def vocab_size(self):
        return self.first_byte_id + self.num_byte_ids + len(self.extra_special_tokens)

    def get_vocabulary(self):
        byte_tokens = [f"<0x{value:02X}>" for value in range(self.num_byte_ids)]
        return ["<pad>", "<bos>", "<eos>", *byte_tokens, *self.extra_special_tokens]

    def _tokenize(self, texts):
        byte_values = tf_text.ByteSplitter().split(texts)  # (B, None) uint8
        return tf.cast(byte_values, tf.int32) + self.first_byte_id

    def _detokenize(self, ids):
        single_bytes = tf.constant([bytes([value]) for value in range(self.num_byte_ids)])  # (256,) one-byte strings
        pieces = tf.gather(single_bytes, ids - self.first_byte_id)  # (B, None) strings
        return tf.strings.reduce_join(pieces, axis=-1)  # (B,)
