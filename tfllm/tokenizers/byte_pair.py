"""GPT-2's byte-level BPE, loaded from a checkpoint's `vocab.json` and `merges.txt`, run in graph."""

import keras
import tensorflow as tf

from tfllm.tokenizers.byte_level import byte_to_code_point, code_point_to_byte, split_words
from tfllm.tokenizers.byte_pair_files import check_merges, check_vocabulary, read_merges, read_vocabulary
from tfllm.tokenizers.byte_pair_merges import apply_merges, merge_table
from tfllm.tokenizers.special_tokens import tokenize_around_special_tokens
from tfllm.tokenizers.tokenizer import Tokenizer

END_OF_TEXT = "<|endoftext|>"


@keras.saving.register_keras_serializable(package="tfllm")
class BytePairTokenizer(Tokenizer):
    """GPT-2's byte-level BPE: its pre-tokenization regex, byte-to-unicode alphabet and ranked merges, in graph.

    Text is cut into words by GPT-2's regex (contractions, letter runs, digit runs, punctuation runs, each with at
    most one leading space, and whitespace), each word's UTF-8 bytes are written in GPT-2's byte alphabet, and the
    merges join neighbouring symbols, lowest rank first, until none applies. The ids equal Hugging Face's GPT-2
    tokenizer's on every input; bytes that are not UTF-8 are read as U+FFFD first.

    `<|endoftext|>`, when the vocabulary has it (GPT-2: id 50256), is both bos and eos, and text that contains it gets
    its one id, as both reference tokenizers do; there is no pad (`fill_id` is eos) and no unk (every byte has a
    symbol). Extra `special_tokens` keep the vocabulary's id when they are in it, and otherwise get the ids after it,
    in order (as Hugging Face's `add_special_tokens` does); `vocab_size` counts them.

    `detokenize(tokenize(s)) == s` for every valid UTF-8 `s`. Ids that end inside a character (a generation cut
    short) come back with U+FFFD for the broken bytes, as Python's `bytes.decode("utf-8", errors="replace")`.

    Args:
        vocabulary: token -> id for ids 0 .. n-1 (GPT-2's `vocab.json`, KerasHub's `vocabulary.json`).
        merges: the merges, lowest rank first, each "left right" (the lines of `merges.txt` after `#version`).
        special_tokens: extra special tokens, each kept as one id.

    Example (a toy vocabulary: the 256 byte symbols, then the merges' results):

    >>> alphabet = [chr(code_point) for code_point in byte_to_code_point()]
    >>> merges = ["Ġ t", "h e", "Ġt he", "Ġ c", "a t", "Ġc at"]
    >>> tokens = alphabet + ["Ġt", "he", "Ġthe", "Ġc", "at", "Ġcat", "<|endoftext|>"]
    >>> tokenizer = BytePairTokenizer({token: i for i, token in enumerate(tokens)}, merges)
    >>> ids = tokenizer.tokenize([" the cat", "the cat<|endoftext|>"])  # RaggedTensor (B, None)
    >>> [[tokenizer.id_to_token(i) for i in row] for row in ids.to_list()]
    [['Ġthe', 'Ġcat'], ['t', 'he', 'Ġcat', '<|endoftext|>']]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b' the cat', b'the cat']
    >>> tokenizer.special_tokens, tokenizer.vocab_size
    ({'<|endoftext|>': 262}, 263)
    """

    def __init__(self, vocabulary, merges, special_tokens=None, **kwargs):
        tokens = check_vocabulary(vocabulary)
        # Set before the base class checks the extra special tokens against them.
        self.special_token_roles = {"bos": END_OF_TEXT, "eos": END_OF_TEXT} if END_OF_TEXT in vocabulary else {}
        super().__init__(special_tokens=special_tokens, **kwargs)
        self.vocabulary = dict(vocabulary)
        self.merges = check_merges(merges, self.vocabulary)
        self._tokens = tokens + [token for token in self.extra_special_tokens if token not in self.vocabulary]
        # Tracked resources, so a SavedModel carries them: token <-> id and the merge ranks.
        self._token_ids = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens), tf.range(len(tokens), dtype=tf.int32)),
            default_value=-1,
        )
        self._id_tokens = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.range(len(self._tokens), dtype=tf.int32), tf.constant(self._tokens)),
            default_value="",
        )
        self._merge_ranks = merge_table(self.merges)
        # Eager calls run the merge loop as one graph instead of op by op (~50x faster after a ~1 s trace); inside a
        # tf.function, tf.data map or SavedModel it is a nested function call.
        self._tokenize_text = tf.function(
            self._tokenize_text_graph, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False
        )

    @classmethod
    def from_files(cls, vocabulary_path, merges_path, special_tokens=None, **kwargs):
        """Loads GPT-2's `vocab.json` + `merges.txt` (Hugging Face) or `vocabulary.json` + `merges.txt` (KerasHub).

        Errors name the file, and the line of a bad merge.
        """
        vocabulary = read_vocabulary(vocabulary_path)
        merges, places = read_merges(merges_path)
        check_vocabulary(vocabulary)
        check_merges(merges, vocabulary, places)
        return cls(vocabulary, merges, special_tokens=special_tokens, **kwargs)

    @property
    def vocab_size(self):
        return len(self._tokens)

    def get_vocabulary(self):
        return list(self._tokens)

    def get_config(self):
        return {**super().get_config(), "vocabulary": dict(self.vocabulary), "merges": list(self.merges)}

    def _tokenize(self, texts):
        texts = tf.strings.unicode_transcode(texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
        if END_OF_TEXT not in self.vocabulary:
            return self._tokenize_text(texts)
        return tokenize_around_special_tokens(texts, [END_OF_TEXT], [self.vocabulary[END_OF_TEXT]],
                                              self._tokenize_text)  # (B, None)

    def _tokenize_text_graph(self, texts):
        words = split_words(texts)  # (B, W)
        unique_words, word_index = tf.unique(words.flat_values)  # (U,), (N,): each distinct word is merged once
        byte_values = tf.strings.unicode_decode(unique_words, "ISO-8859-1")  # (U, None) the bytes, as 0 .. 255
        code_points = tf.gather(tf.constant(byte_to_code_point()), byte_values)  # (U, None)
        symbols = tf.strings.unicode_encode(code_points[..., tf.newaxis], "UTF-8")  # (U, None) one character each
        tokens = apply_merges(symbols, self._merge_ranks)  # (U, None)
        ids = tf.ragged.map_flat_values(self._token_ids.lookup, tokens)  # (U, None)
        return words.with_flat_values(tf.gather(ids, word_index)).merge_dims(1, 2)  # (B, None)

    def _detokenize(self, ids):
        text = tf.strings.reduce_join(tf.ragged.map_flat_values(self._id_tokens.lookup, ids), axis=1)  # (B,)
        code_points = tf.strings.unicode_decode(text, "UTF-8")  # (B, None) characters of the byte alphabet
        # Characters that stand for no byte (only in tokens no text gives) become 0xFF, so U+FFFD below.
        to_byte = [*code_point_to_byte(), 0xFF]
        byte_values = tf.gather(tf.constant(to_byte), tf.minimum(code_points, len(to_byte) - 1))  # (B, None)
        byte_strings = tf.constant([bytes([byte]) for byte in range(256)])
        utf8 = tf.strings.reduce_join(tf.gather(byte_strings, byte_values), axis=1)  # (B,)
        return tf.strings.unicode_transcode(utf8, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
