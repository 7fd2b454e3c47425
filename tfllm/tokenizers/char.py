"""Unicode characters (code points) as tokens, with a vocabulary learned from a corpus."""

import keras
import numpy as np
import tensorflow as tf

from tfllm.checks import require_int_at_least
from tfllm.tokenizers.special_tokens import check_special_tokens
from tfllm.tokenizers.tokenizer import Tokenizer
from tfllm.tokenizers.training_texts import text_batches

NUM_CODE_POINTS = 0x110000
REPLACEMENT_CHARACTER = 0xFFFD


@keras.saving.register_keras_serializable(package="tfllm")
class CharTokenizer(Tokenizer):
    """Each Unicode code point of the text is one token; characters outside the vocabulary become `unk_id`.

    Ids: pad 0, bos 1, eos 2, unk 3, then the extra special tokens (if any), then the characters of `vocabulary`
    in order. Text that is not valid UTF-8 has its bad bytes replaced by U+FFFD before lookup, and `unk_id`
    detokenizes to U+FFFD, so `detokenize(tokenize(s)) == s` exactly when every character of `s` is in the
    vocabulary.

    Args:
        vocabulary: the characters, each a one-code-point `str` (what `train` learns).
        special_tokens: extra special tokens, each kept as one id.

    Example:

    >>> tokenizer = CharTokenizer.train(["hello world"], verbose=False)
    >>> tokenizer.get_vocabulary()
    ['<pad>', '<bos>', '<eos>', '<unk>', 'l', 'o', ' ', 'd', 'e', 'h', 'r', 'w']
    >>> ids = tokenizer.tokenize(["hello", "hi!"])  # RaggedTensor (B, None)
    >>> ids.to_list()
    [[9, 8, 4, 4, 5], [9, 3, 3]]
    >>> tokenizer.detokenize(ids).numpy()[1] == "h\\ufffd\\ufffd".encode("utf-8")  # unk renders as U+FFFD
    True
    >>> CharTokenizer.train(["ab"], special_tokens=["<q>"], verbose=False).get_vocabulary()
    ['<pad>', '<bos>', '<eos>', '<unk>', '<q>', 'a', 'b']
    """

    special_token_roles = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}
    num_role_tokens = 4

    def __init__(self, vocabulary, special_tokens=None, **kwargs):
        super().__init__(special_tokens=special_tokens, **kwargs)
        self.vocabulary = _check_vocabulary(vocabulary)
        characters = sorted(set(self.extra_special_tokens) & set(self.vocabulary))
        if characters:  # the character's second id could never be reached
            raise ValueError(f"special_tokens {characters} are characters of the vocabulary too: a special token must "
                             "not be a character the tokenizer knows")
        code_points = [ord(char) for char in self.vocabulary]
        first = self.num_special_tokens
        ids = range(first, first + len(code_points))
        # code point -> id; a tracked resource, so SavedModels carry it.
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(code_points, tf.int32), tf.constant(list(ids), tf.int32)
            ),
            default_value=self.num_role_tokens - 1,  # unk
        )
        # id -> code point; only unk of the special ids reaches it, and it renders as U+FFFD.
        self._code_points = tf.constant([REPLACEMENT_CHARACTER] * first + code_points, tf.int32)

    @property
    def num_special_tokens(self):
        return self.num_role_tokens + len(self.extra_special_tokens)

    @classmethod
    def train(cls, texts, max_vocab_size=None, min_frequency=1, special_tokens=None, verbose=True, vocab_size=None,
              **kwargs):
        """Learns the vocabulary of `texts`: characters seen `min_frequency` times or more, most frequent first.

        Args:
            texts: an iterable of `str` / `bytes` or a `tf.data.Dataset` of scalar strings.
            max_vocab_size: the largest `vocab_size`, counting the 4 special ids; None keeps every character.
            min_frequency: characters seen fewer times are left out (they tokenize to `unk_id`).
            special_tokens: extra special tokens, each kept as one id; no text may contain one.
            verbose: show progress while reading `texts`.
            vocab_size: `max_vocab_size` by the name the other tokenizers' `train` take, so that code which picks a
                tokenizer by name trains any of them with one call; give one of the two.
            **kwargs: passed to the constructor (e.g. `name`).

        Ties in frequency go to the smaller code point, so the same corpus always gives the same ids.

        >>> CharTokenizer.train(["abcab"], vocab_size=6, verbose=False).get_vocabulary()  # 4 special ids, a, b
        ['<pad>', '<bos>', '<eos>', '<unk>', 'a', 'b']
        """
        if vocab_size is not None:
            if max_vocab_size is not None:
                raise ValueError(f"vocab_size={vocab_size} and max_vocab_size={max_vocab_size}: they name one setting, "
                                 "give one")
            max_vocab_size = vocab_size
        special_tokens = check_special_tokens(special_tokens, reserved=cls.special_token_roles.values())
        num_special_tokens = cls.num_role_tokens + len(special_tokens)
        if max_vocab_size is not None:
            require_int_at_least("max_vocab_size", max_vocab_size, num_special_tokens + 1,
                                 f" (the {num_special_tokens} special tokens and at least one character)")
        require_int_at_least("min_frequency", min_frequency)
        counts = np.zeros(NUM_CODE_POINTS, np.int64)
        for batch in text_batches(texts, verbose=verbose, special_tokens=special_tokens):
            code_points = tf.strings.unicode_decode(batch, "UTF-8").flat_values  # (N,) int32, already valid UTF-8
            counts += np.bincount(code_points.numpy(), minlength=NUM_CODE_POINTS)
        order = np.lexsort((np.arange(NUM_CODE_POINTS), -counts))  # by count descending, then code point
        order = order[counts[order] >= min_frequency]
        if max_vocab_size is not None:
            order = order[: max_vocab_size - num_special_tokens]
        if not len(order):
            raise ValueError(f"min_frequency={min_frequency} leaves no character: the most frequent is seen "
                             f"{counts.max()} times")
        return cls([chr(code_point) for code_point in order], special_tokens=special_tokens, **kwargs)

    @property
    def vocab_size(self):
        return self.num_special_tokens + len(self.vocabulary)

    def get_vocabulary(self):
        return ["<pad>", "<bos>", "<eos>", "<unk>", *self.extra_special_tokens, *self.vocabulary]

    def get_config(self):
        return {**super().get_config(), "vocabulary": list(self.vocabulary)}

    def _tokenize(self, texts):
        code_points = tf.strings.unicode_decode(
            texts, "UTF-8", errors="replace", replacement_char=REPLACEMENT_CHARACTER
        )  # (B, None) int32
        return tf.ragged.map_flat_values(self._table.lookup, code_points)  # (B, None) int32

    def _detokenize(self, ids):
        code_points = tf.gather(self._code_points, ids)  # (B, None) int32
        return tf.strings.unicode_encode(code_points, "UTF-8")  # (B,)


def _check_vocabulary(vocabulary):
    if isinstance(vocabulary, str):
        vocabulary = list(vocabulary)
    vocabulary = list(vocabulary)
    for char in vocabulary:
        if not isinstance(char, str) or len(char) != 1 or 0xD800 <= ord(char) <= 0xDFFF:
            raise ValueError(f"vocabulary holds {char!r}: expected one Unicode character (not a surrogate) per entry")
    if len(set(vocabulary)) != len(vocabulary):
        repeated = sorted({char for char in vocabulary if vocabulary.count(char) > 1})
        raise ValueError(f"vocabulary repeats {repeated!r}: expected each character once")
    if not vocabulary:
        raise ValueError("vocabulary=[] is empty: expected at least one character")
    return tuple(vocabulary)
