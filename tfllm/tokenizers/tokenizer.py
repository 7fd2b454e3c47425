"""The interface every tfllm tokenizer implements: text to token ids and back, in graph code."""

import keras
import tensorflow as tf


class Tokenizer(keras.layers.Layer):
    """Base class of the tokenizers: batches of strings <-> ragged batches of int32 ids, inside the graph.

    Every tokenizer reserves the same first ids for its special tokens: `pad_id` = 0, `bos_id` = 1, `eos_id` = 2
    (and, where a vocabulary can miss, `unk_id` = 3). The rest of the vocabulary follows. Because tokenizers are
    Keras layers, a model that holds one saves it in its `.keras` file, and the TensorFlow resources it owns are
    tracked, so a SavedModel carries them too.

    Subclasses write `_tokenize` (a 1-D string tensor -> RaggedTensor of ids) and `_detokenize` (a RaggedTensor of
    ids without pad, bos and eos -> a 1-D string tensor), `get_vocabulary`, and set `vocab_size`.

    Example (a tokenizer of ASCII characters, one id per character after the three special ids):

    >>> class AsciiTokenizer(Tokenizer):
    ...     vocab_size = 3 + 128
    ...     def get_vocabulary(self):
    ...         return ["<pad>", "<bos>", "<eos>"] + [chr(code) for code in range(128)]
    ...     def _tokenize(self, texts):
    ...         return tf.strings.unicode_decode(texts, "UTF-8") + 3  # (B, None)
    ...     def _detokenize(self, ids):
    ...         return tf.strings.unicode_encode(ids - 3, "UTF-8")  # (B,)
    >>> tokenizer = AsciiTokenizer()
    >>> tokenizer.tokenize(["hi", "a"]).to_list(), tokenizer.tokenize("hi").numpy().tolist()
    ([[107, 108], [100]], [107, 108])
    >>> tokenizer.detokenize([[1, 107, 108, 2, 0]]).numpy().tolist()  # bos, eos and padding are dropped
    [b'hi']
    >>> tokenizer.id_to_token(107), (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    ('h', (0, 1, 2))
    """

    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = None  # 3 in the tokenizers whose vocabulary can miss a piece of text; None when nothing is unknown.

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.built = True

    @property
    def vocab_size(self):
        raise NotImplementedError

    # Tokenizers are plain graph code with no tensor-dependent Python control flow, so AutoGraph has nothing to
    # convert; running them as written also avoids AutoGraph's cache of converted functions, which was seen to hand
    # back an unrelated function in a long process (a tf.data map then called `get_config` instead of `_tokenize`).
    @tf.autograph.experimental.do_not_convert
    def tokenize(self, texts):
        """Token ids of `texts`: a string gives a 1-D int32 tensor, a batch (B,) a RaggedTensor (B, None)."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank == 0:
            return self._tokenize(tf.reshape(texts, [1]))[0]  # (T,)
        return self._tokenize(texts)  # (B, None)

    @tf.autograph.experimental.do_not_convert
    def detokenize(self, ids):
        """The text of token ids: (B, None) ragged or (B, T) dense gives (B,) strings; (T,) gives one string.

        Padding, bos and eos ids are dropped; ids outside the vocabulary are an error.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        ids = tf.cast(ids, tf.int32)
        if ids.shape.rank == 1:
            return self.detokenize(ids[tf.newaxis])[0]
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        checks = [
            tf.debugging.assert_less(ids.flat_values, self.vocab_size, message="token id >= vocab_size"),
            tf.debugging.assert_non_negative(ids.flat_values, message="negative token id"),
        ]
        with tf.control_dependencies(checks):
            content = tf.ragged.boolean_mask(ids, ids > self.eos_id)
        return self._detokenize(content)

    def get_vocabulary(self):
        """The token of every id, as a list of `vocab_size` strings (special tokens first)."""
        raise NotImplementedError

    def id_to_token(self, token_id):
        """The token string of one id, e.g. for reading what a model generated token by token."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token_id={token_id} is outside the vocabulary: expected 0 <= id < {self.vocab_size}")
        return self.get_vocabulary()[token_id]

    def __call__(self, texts, *args, **kwargs):
        if isinstance(texts, (str, bytes, list, tuple)):  # Keras takes only tensors as positional inputs
            texts = tf.convert_to_tensor(texts, dtype=tf.string)
        return super().__call__(texts, *args, **kwargs)

    def call(self, texts):
        return self.tokenize(texts)

    def _tokenize(self, texts):
        raise NotImplementedError

    def _detokenize(self, ids):
        raise NotImplementedError
