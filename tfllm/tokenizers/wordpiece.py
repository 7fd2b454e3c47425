"""WordPiece subwords (BERT's scheme), learned by tensorflow-text's vocabulary tools, run by FastWordpieceTokenizer."""

import collections

import keras
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer
from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as learner

from tfllm.checks import require_int_at_least
from tfllm.tokenizers.special_tokens import check_special_tokens
from tfllm.tokenizers.tokenizer import Tokenizer
from tfllm.tokenizers.training_texts import text_batches

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")
SUFFIX_INDICATOR = "##"
MAX_BYTES_PER_WORD = 100


@keras.saving.register_keras_serializable(package="tfllm")
class WordPieceTokenizer(Tokenizer):
    """Words split into the longest vocabulary pieces; a piece inside a word is spelled with a leading `##`.

    Ids 0..3 are `[PAD]`, `[BOS]`, `[EOS]`, `[UNK]`, then the extra special tokens. Text is first split into words at whitespace, and every
    punctuation or symbol character (BERT's definition: ASCII non-alphanumerics and Unicode P* categories) and
    every CJK ideograph becomes a word of its own. Case is preserved and no Unicode normalization is applied.

    What `detokenize(tokenize(s))` gives back, compared with `s`:

    - words are joined by one space: runs of whitespace (Unicode White_Space: space, tab, newlines, no-break and
      ideographic spaces, ...) become one space, leading and trailing whitespace disappears, and punctuation,
      symbols and CJK ideographs come back with a space on each side (`"Hello, world!"` -> `"Hello , world !"`).
      (A no-break or ideographic space is kept where the corpus taught it as part of a word: the trainer's word
      splitter does not split there);
    - a word that cannot be spelled with the vocabulary (a character the corpus never had, e.g. control
      characters and NUL, which the trainer's word splitter drops) or longer than 100 UTF-8 bytes becomes `[UNK]`;
    - bytes that are not valid UTF-8 become U+FFFD first (as at training time).

    Words of the vocabulary joined by single spaces round-trip exactly.

    Args:
        vocabulary: all tokens in id order, starting with the 4 special tokens (what `train` learns).
        special_tokens: extra special tokens, each kept as one id; each must be in `vocabulary`.

    Example:

    >>> corpus = ["The cat sat on the mat, the cats sat."] * 5
    >>> tokenizer = WordPieceTokenizer.train(corpus, vocab_size=40, verbose=False)
    >>> ids = tokenizer.tokenize(["The cats,sat  on\\nthe hat!"])  # RaggedTensor (B, None)
    >>> [tokenizer.id_to_token(i) for i in ids[0]]
    ['The', 'cats', ',', 'sat', 'on', 'the', 'h', '##a', '##t', '[UNK]']
    >>> tokenizer.detokenize(ids).numpy()[0]
    b'The cats , sat on the hat [UNK]'
    >>> tagged = WordPieceTokenizer.train(corpus, vocab_size=40, special_tokens=["<q>"], verbose=False)
    >>> tagged.tokenize("<q>The cat").numpy().tolist(), tagged.special_tokens["<q>"]
    ([4, 19, 20], 4)
    """

    special_token_roles = dict(zip(("pad", "bos", "eos", "unk"), SPECIAL_TOKENS))

    def __init__(self, vocabulary, special_tokens=None, **kwargs):
        super().__init__(special_tokens=special_tokens, **kwargs)
        self.vocabulary = _check_vocabulary(vocabulary)
        missing = [token for token in self.extra_special_tokens if token not in self.vocabulary]
        if missing:
            raise ValueError(f"special_tokens {missing} are not in the vocabulary: expected each special token to be "
                             "one of its tokens (as `train` makes them)")
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            list(self.vocabulary),
            suffix_indicator=SUFFIX_INDICATOR,
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            token_out_type=tf.int32,
            unknown_token=self.special_token_roles["unk"],
            no_pretokenization=False,  # split on whitespace and punctuation in the same op
            support_detokenization=True,
        )

    @classmethod
    def train(cls, texts, vocab_size, min_frequency=1, max_unique_chars=1000, special_tokens=None, verbose=True,
              **kwargs):
        """Learns a vocabulary of at most `vocab_size` tokens from `texts` (specials included).

        Words are counted with BERT's basic splitter (case kept) and the vocabulary is learned by
        `tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib.learn`; it always holds every kept
        character alone and with `##`, then the most frequent longer pieces.

        Args:
            texts: an iterable of `str` / `bytes` or a `tf.data.Dataset` of scalar strings.
            vocab_size: the largest vocabulary, counting the 4 special tokens; a small corpus may give fewer.
            min_frequency: the lowest count the learner may accept for a piece.
            max_unique_chars: the most distinct characters kept; words with rarer characters are not learned
                (they tokenize to `[UNK]`). Capped so that the characters and their `##` forms fit `vocab_size`.
            special_tokens: extra special tokens (ids 4, 5, ...), each kept as one id; no text may contain one.
            verbose: show progress while reading `texts`.
            **kwargs: passed to the constructor (e.g. `name`).
        """
        special_tokens = check_special_tokens(special_tokens, reserved=SPECIAL_TOKENS)
        reserved = [*SPECIAL_TOKENS, *special_tokens]
        require_int_at_least("vocab_size", vocab_size, len(reserved) + 2,
                             f" (the {len(reserved)} special tokens and one character alone and with '##')")
        require_int_at_least("min_frequency", min_frequency)
        require_int_at_least("max_unique_chars", max_unique_chars)
        splitter = BasicTokenizer(lower_case=False)
        counts = collections.Counter()
        for batch in text_batches(texts, verbose=verbose, special_tokens=special_tokens):
            words = splitter.tokenize(batch)  # (B, None) strings
            counts.update(words.flat_values.numpy().tolist())
        word_counts = {word.decode("utf-8"): count for word, count in counts.items() if b"\0" not in word}
        if not word_counts:
            raise ValueError("texts holds no words: expected text with at least one non-space character")
        if verbose:
            print(f"Learning a WordPiece vocabulary of {vocab_size} tokens from {len(word_counts)} distinct words")
        max_unique_chars = min(max_unique_chars, (vocab_size - len(reserved)) // 2)
        vocabulary = learner.learn(
            word_counts,
            vocab_size,
            reserved,
            lower_thresh=min_frequency,
            max_unique_chars=max_unique_chars,
            joiner=SUFFIX_INDICATOR,
        )
        return cls(_fit_to_size(vocabulary, vocab_size, reserved), special_tokens=special_tokens, **kwargs)

    @property
    def vocab_size(self):
        return len(self.vocabulary)

    def get_vocabulary(self):
        return list(self.vocabulary)

    def get_config(self):
        return {**super().get_config(), "vocabulary": list(self.vocabulary)}

    def _tokenize(self, texts):
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        return self._wordpiece.tokenize(texts)  # (B, None) int32

    def _detokenize(self, ids):
        return self._wordpiece.detokenize(ids)  # (B,)


def _fit_to_size(vocabulary, vocab_size, reserved):
    """The learner can overshoot `vocab_size`; drop its rarest pieces, never a character or its `##` form."""
    if len(vocabulary) <= vocab_size:
        return vocabulary
    chars = {token for token in vocabulary if len(token.removeprefix(SUFFIX_INDICATOR)) == 1}
    required = [token for token in vocabulary if token in reserved or token in chars]
    others = [token for token in vocabulary if token not in reserved and token not in chars]  # frequent first
    kept = set(required + others[: vocab_size - len(required)])
    return [token for token in vocabulary if token in kept]


def _check_vocabulary(vocabulary):
    vocabulary = tuple(vocabulary)
    if vocabulary[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
        raise ValueError(f"vocabulary starts with {list(vocabulary[:4])}: expected {list(SPECIAL_TOKENS)}")
    for token in vocabulary:
        if not isinstance(token, str) or not token.removeprefix(SUFFIX_INDICATOR) or "\0" in token:
            raise ValueError(f"vocabulary holds {token!r}: expected non-empty strings without NUL")
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError("vocabulary repeats tokens: expected each token once")
    return vocabulary
