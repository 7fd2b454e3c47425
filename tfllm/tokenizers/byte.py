"""UTF-8 bytes as tokens: a vocabulary that needs no training and loses nothing."""

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from tfllm.tokenizers.tokenizer import Tokenizer


@keras.saving.register_keras_serializable(package="tfllm")
class ByteTokenizer(Tokenizer):
    """Each byte of the UTF-8 text is one token: id = byte + 3, after pad (0), bos (1) and eos (2).

    Lossless for every input, including text that is not valid UTF-8: `detokenize(tokenize(s)) == s` byte for byte.
    The vocabulary has 259 ids and needs no training, which makes it the default of the small models.

    Example:

    >>> tokenizer = ByteTokenizer()
    >>> ids = tokenizer.tokenize(["hi", "é"])  # RaggedTensor (B, None)
    >>> ids.to_list()
    [[107, 108], [198, 172]]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'hi', b'\\xc3\\xa9']
    """

    num_special_tokens = 3

    @property
    def vocab_size(self):
        return 256 + self.num_special_tokens

    def get_vocabulary(self):
        return ["<pad>", "<bos>", "<eos>"] + [f"<0x{value:02X}>" for value in range(256)]

    def _tokenize(self, texts):
        byte_values = tf_text.ByteSplitter().split(texts)  # (B, None) uint8
        return tf.cast(byte_values, tf.int32) + self.num_special_tokens

    def _detokenize(self, ids):
        single_bytes = tf.constant([bytes([value]) for value in range(256)])  # (256,) one-byte strings
        pieces = tf.gather(single_bytes, ids - self.num_special_tokens)  # (B, None) strings
        return tf.strings.reduce_join(pieces, axis=-1)  # (B,)
