"""The interface every tfllm tokenizer implements: text to token ids and back, in graph code."""

import keras
import tensorflow as tf

from tfllm.checks import require_token_ids
from tfllm.tokenizers.special_tokens import (
    check_special_tokens,
    detokenize_with_special_tokens,
    tokenize_around_special_tokens,
)


class Tokenizer(keras.layers.Layer):
    """Base class of the tokenizers: batches of strings <-> ragged batches of int32 ids, inside the graph.

    Special tokens have roles and ids that each tokenizer states: `special_token_roles` maps "pad", "bos", "eos"
    (and "unk" where a vocabulary can miss) to token strings, and `special_tokens` maps every special token string
    to its id, including the extra ones a user names (`special_tokens=["<en>", "<zh>"]` at construction or
    training). `pad_id`, `bos_id`, `eos_id` and `unk_id` are looked up there, so they may be any ids, or None where a
    vocabulary has no such token (GPT-2 has no pad). Nothing else in tfllm assumes which ids they are.

    An extra special token in the text is always its one id (`"<zh>你好"` starts with the `<zh>` id); the role
    tokens (pad, bos, eos, unk) are never read from text: pipelines add them by id. Because tokenizers are Keras
    layers, a model that holds one saves it in its `.keras` file, and the TensorFlow resources it owns are tracked,
    so a SavedModel carries them too.

    Subclasses write `_tokenize` (a 1-D string tensor -> RaggedTensor of ids) and `_detokenize` (a RaggedTensor of
    ids without special tokens -> a 1-D string tensor), `get_vocabulary`, `vocab_size` and `special_token_roles`.

    Args:
        special_tokens: extra special tokens, each a non-empty string kept as one id; the subclass says where
            their ids are.

    Example (ASCII characters after three special ids; a user's extra token `<sep>` gets id 131):

    >>> class AsciiTokenizer(Tokenizer):
    ...     special_token_roles = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>"}
    ...     @property
    ...     def vocab_size(self):
    ...         return 3 + 128 + len(self.extra_special_tokens)
    ...     def get_vocabulary(self):
    ...         return ["<pad>", "<bos>", "<eos>"] + [chr(code) for code in range(128)] + list(self.extra_special_tokens)
    ...     def _tokenize(self, texts):
    ...         return tf.strings.unicode_decode(texts, "UTF-8") + 3  # (B, None)
    ...     def _detokenize(self, ids):
    ...         return tf.strings.unicode_encode(ids - 3, "UTF-8")  # (B,)
    >>> tokenizer = AsciiTokenizer(special_tokens=["<sep>"])
    >>> tokenizer.tokenize(["hi", "a<sep>b"]).to_list()
    [[107, 108], [100, 131, 101]]
    >>> tokenizer.detokenize([[1, 107, 131, 108, 2, 0]]).numpy().tolist()  # special tokens are dropped
    [b'hi']
    >>> tokenizer.detokenize([[1, 107, 131, 108, 2]], skip_special_tokens=False).numpy().tolist()
    [b'<bos>h<sep>i<eos>']
    >>> tokenizer.special_tokens
    {'<pad>': 0, '<bos>': 1, '<eos>': 2, '<sep>': 131}
    >>> (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id)
    (0, 1, 2, None)
    """

    special_token_roles = {}  # role ("pad", "bos", "eos", "unk") -> token string; each subclass states its own

    def __init__(self, special_tokens=None, **kwargs):
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.extra_special_tokens = check_special_tokens(special_tokens, reserved=self.special_token_roles.values())
        self._special_token_ids = None  # token -> id, looked up in the vocabulary on first use
        self.built = True

    @property
    def vocab_size(self):
        raise NotImplementedError

    @property
    def special_tokens(self):
        """Every special token string -> its id: the role tokens first, then the extra ones in their order."""
        if self._special_token_ids is None:
            wanted = [*dict.fromkeys(self.special_token_roles.values()), *self.extra_special_tokens]
            index = {}
            for token_id, token in enumerate(self.get_vocabulary()):
                index.setdefault(token, token_id)
            missing = [token for token in wanted if token not in index]
            if missing:
                raise ValueError(
                    f"special tokens {missing} are not in the vocabulary of this {type(self).__name__}: expected "
                    "each token of `special_token_roles` and each extra special token in `get_vocabulary()`, one id "
                    "each (a tokenizer gives the extra ones their ids, as `CharTokenizer` does after its role tokens)"
                )
            self._special_token_ids = {token: index[token] for token in wanted}
        return dict(self._special_token_ids)

    def _role_id(self, role):
        token = self.special_token_roles.get(role)
        return None if token is None else self.special_tokens[token]

    @property
    def pad_id(self):
        """The id that fills a batch after the end of a shorter row, or None when the vocabulary has no pad."""
        return self._role_id("pad")

    @property
    def bos_id(self):
        """The id that starts every document and prompt."""
        return self._role_id("bos")

    @property
    def eos_id(self):
        """The id that ends a document; generation stops there."""
        return self._role_id("eos")

    @property
    def unk_id(self):
        """The id of text the vocabulary cannot spell, or None when nothing is unknown."""
        return self._role_id("unk")

    @property
    def fill_id(self):
        """The id that fills a batch's rows after their end: pad, or eos for a vocabulary without pad (GPT-2's way).

        Filled positions are never learned from: pipelines give them zero sample weight (and the loss ignores
        `pad_id` targets where there is a pad).
        """
        return self.eos_id if self.pad_id is None else self.pad_id

    @property
    def skipped_ids(self):
        """The ids `detokenize` drops by default: every special token but unk (which stands for real text)."""
        unk = self.special_token_roles.get("unk")
        return sorted({token_id for token, token_id in self.special_tokens.items() if token != unk})

    # Tokenizers are plain graph code with no tensor-dependent Python control flow, so AutoGraph has nothing to
    # convert; running them as written also avoids AutoGraph's cache of converted functions, which was seen to hand
    # back an unrelated function in a long process (a tf.data map then called `get_config` instead of `_tokenize`).
    @tf.autograph.experimental.do_not_convert
    def tokenize(self, texts):
        """Token ids of `texts`: a string gives a 1-D int32 tensor, a batch (B,) a RaggedTensor (B, None)."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank == 0:
            return self.tokenize(tf.reshape(texts, [1]))[0]  # (T,)
        if texts.shape.rank is None:  # a traced input of unknown rank: scalar or batch decides the output's rank
            raise ValueError("texts of unknown rank: expected one string or a vector (B,) of them (a tf.function "
                             "tracing tokenize needs an input_signature of shape [] or [None]).")
        if texts.shape.rank > 1:
            raise ValueError(f"texts of shape {texts.shape}: expected one string or a vector (B,) of them.")
        if not self.extra_special_tokens:
            return self._tokenize(texts)  # (B, None)
        tokens = self.extra_special_tokens
        ids = [self.special_tokens[token] for token in tokens]
        return tokenize_around_special_tokens(texts, tokens, ids, self._tokenize)  # (B, None)

    @tf.autograph.experimental.do_not_convert
    def detokenize(self, ids, skip_special_tokens=True):
        """The text of token ids: (B, None) ragged (or Python lists of any lengths) or (B, T) dense gives (B,)
        strings; (T,) gives one string.

        With `skip_special_tokens` (the default) every special id but unk is dropped and the rest is detokenized as
        one sequence; without it each special id is written as its token string (`<pad>` included), so text with
        extra special tokens comes back as it was tokenized. Ids outside the vocabulary are an error.
        """
        if isinstance(ids, (list, tuple)) and ids and all(isinstance(row, (list, tuple)) for row in ids):
            for row in ids:
                require_token_ids("ids", row, self.vocab_size)  # a float would be cut to an id
            ids = tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1)  # rows of any lengths: a batch's to_list()
        elif not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids, tf.int32 if isinstance(ids, (list, tuple)) and not ids else None)  # []
        if not ids.dtype.is_integer:
            raise ValueError(f"ids of dtype {ids.dtype.name}: expected integer token ids.")
        if ids.shape.rank not in (None, 1, 2):
            raise ValueError(f"ids of shape {ids.shape}: expected (T,) for one text or (B, T) for a batch.")
        # Checked before the cast to int32, which would wrap an int64 id beyond it into the vocabulary.
        wide = tf.cast(ids.flat_values if isinstance(ids, tf.RaggedTensor) else ids, tf.int64)
        checks = [
            tf.debugging.assert_less(wide, tf.constant(self.vocab_size, tf.int64), message="token id >= vocab_size"),
            tf.debugging.assert_non_negative(wide, message="negative token id"),
        ]
        with tf.control_dependencies(checks):
            ids = tf.cast(ids, tf.int32)
        if ids.shape.rank == 1:
            return self.detokenize(ids[tf.newaxis], skip_special_tokens)[0]
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.RaggedTensor.from_tensor(ids)
        skipped = tf.constant(self.skipped_ids, tf.int32)
        with tf.control_dependencies(checks):
            if skip_special_tokens:
                is_text = tf.reduce_all(tf.not_equal(ids.flat_values[:, tf.newaxis], skipped), axis=1)  # (N,)
                return self._detokenize(tf.ragged.boolean_mask(ids, ids.with_flat_values(is_text)))  # (B,)
            strings = [self.get_vocabulary()[token_id] for token_id in self.skipped_ids]
            return detokenize_with_special_tokens(ids, self.skipped_ids, strings, self._detokenize)  # (B,)

    def get_vocabulary(self):
        """The token of every id, as a list of `vocab_size` strings."""
        raise NotImplementedError

    def id_to_token(self, token_id):
        """The token string of one id, e.g. for reading what a model generated token by token."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(f"token_id={token_id} is outside the vocabulary: expected 0 <= id < {self.vocab_size}")
        return self.get_vocabulary()[token_id]

    def get_config(self):
        config = super().get_config()
        if self.extra_special_tokens:
            config["special_tokens"] = list(self.extra_special_tokens)
        return config

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

