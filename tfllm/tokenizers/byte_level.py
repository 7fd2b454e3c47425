"""GPT-2's byte-level text handling, in graph: the byte <-> unicode alphabet and the pre-tokenization into words.

GPT-2's BPE works on strings of printable characters, one per byte: bytes that are printable Latin-1 characters stand
for themselves, the other 68 (controls, space, no-break space, soft hyphen...) become U+0100, U+0101, ... in byte order.
So a space is "Ġ" (U+0120) and a newline "Ċ" (U+010A), and every byte sequence has a spelling.
"""

import numpy as np
import tensorflow as tf

from tfllm.tokenizers.regex_split import regex_split

# Unicode White_Space, the `\s` of GPT-2's regex in Hugging Face's tokenizers; RE2's `\s` is ASCII only.
_SPACE = r"\t\n\x0B\f\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}"
# Letters and digits that Unicode 16 added: Hugging Face's tokenizers (Oniguruma) knows them, RE2's tables do not yet.
_UNICODE_16_LETTERS = (
    r"\x{1C89}-\x{1C8A}\x{A7CB}-\x{A7CD}\x{A7DA}-\x{A7DC}\x{105C0}-\x{105F3}\x{10D4A}-\x{10D65}\x{10D6F}-\x{10D85}"
    r"\x{10EC2}-\x{10EC4}\x{11380}-\x{11389}\x{1138B}\x{1138E}\x{11390}-\x{113B5}\x{113B7}\x{113D1}\x{113D3}"
    r"\x{11BC0}-\x{11BE0}\x{13460}-\x{143FA}\x{16100}-\x{1611D}\x{16D40}-\x{16D6C}\x{18CFF}\x{1E5D0}-\x{1E5ED}"
    r"\x{1E5F0}\x{2EBF0}-\x{2EE5D}"
)
_UNICODE_16_DIGITS = (
    r"\x{10D40}-\x{10D49}\x{116D0}-\x{116E3}\x{11BF0}-\x{11BF9}\x{16130}-\x{16139}\x{16D70}-\x{16D79}"
    r"\x{1CCF0}-\x{1CCF9}\x{1E5F1}-\x{1E5FA}"
)
_LETTER = rf"[\p{{L}}{_UNICODE_16_LETTERS}]"
_NUMBER = rf"[\p{{N}}{_UNICODE_16_DIGITS}]"
_OTHER = rf"[^{_SPACE}\p{{L}}{_UNICODE_16_LETTERS}\p{{N}}{_UNICODE_16_DIGITS}]"
SPACE_RUN = rf"[{_SPACE}]+"
# GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` without the lookahead, which
# RE2 lacks: `split_words` cuts the text where the lookahead would end a match first.
WORD = rf"'s|'t|'re|'ve|'m|'ll|'d| ?{_LETTER}+| ?{_NUMBER}+| ?{_OTHER}+|{SPACE_RUN}"


def byte_to_code_point():
    """The code point GPT-2 writes for each byte, as a (256,) int32 array.

    >>> mapping = byte_to_code_point()
    >>> "".join(chr(mapping[byte]) for byte in b"Hi there\\n")
    'HiĠthereĊ'
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = np.zeros(256, np.int32)
    mapping[printable] = printable
    others = [byte for byte in range(256) if byte not in set(printable)]
    mapping[others] = 256 + np.arange(len(others))
    return mapping


def code_point_to_byte():
    """The inverse of `byte_to_code_point`, as an int32 array indexed by code point (0 .. 323).

    Code points that stand for no byte (the space, controls...) give 0xFF, a byte that is never valid UTF-8.
    """
    mapping = byte_to_code_point()
    inverse = np.full(mapping.max() + 1, 0xFF, np.int32)
    inverse[mapping] = np.arange(256)
    return inverse


def split_words(texts):
    """GPT-2's pre-tokenization of `texts` (B,) tf.string into words (B, None), exactly as its regex splits them.

    The regex's `\\s+(?!\\S)` makes a run of whitespace that is followed by more text give up its last character to
    the next word (`"a  b"` -> `"a", " ", " b"`). RE2 has no lookahead, so the text is first cut in front of that last
    character, and each piece is split by the regex without the lookahead: the match the lookahead would stop now
    stops at the end of its piece, and the next piece starts where GPT-2's next match starts.

    >>> split_words(tf.constant(["it's  'sup\\n\\n x", "a\\t\\tb  "])).to_list()
    [[b'it', b"'s", b' ', b" '", b'sup', b'\\n\\n', b' x'], [b'a', b'\\t', b'\\t', b'b', b'  ']]
    """
    runs = regex_split(texts, SPACE_RUN)  # (B, P): space runs and the text between them
    flat = runs.flat_values  # (P,)
    rows = runs.value_rowids()  # (P,)
    num_chars = tf.strings.length(flat, unit="UTF8_CHAR")  # (P,)
    previous_rows = tf.concat([[-1], rows], axis=0)[:-1]  # (P,); slicing keeps P = 0 working
    next_rows = tf.concat([rows, [-1]], axis=0)[1:]  # (P,)
    followed = tf.equal(next_rows, rows)  # another piece of the same text comes after
    cut = tf.strings.regex_full_match(flat, SPACE_RUN) & followed & (num_chars >= 2)  # (P,)
    all_but_last = tf.strings.substr(flat, tf.zeros_like(num_chars), num_chars - 1, unit="UTF8_CHAR")  # (P,)
    head = tf.where(cut, all_but_last, flat)  # (P,)
    last = tf.strings.substr(flat, num_chars - 1, tf.ones_like(num_chars), unit="UTF8_CHAR")  # (P,)
    # Each piece becomes its head, then its last character where it is cut; a cut and each text's start open a chunk.
    parts = tf.reshape(tf.stack([head, last], axis=1), [-1])  # (2P,)
    is_part = tf.reshape(tf.stack([tf.ones_like(cut), cut], axis=1), [-1])  # (2P,)
    first_of_text = tf.not_equal(previous_rows, rows)  # (P,)
    opens = tf.reshape(tf.stack([first_of_text, cut], axis=1), [-1])  # (2P,)
    parts, opens = tf.boolean_mask(parts, is_part), tf.boolean_mask(opens, is_part)  # (Q,)
    part_rows = tf.boolean_mask(tf.repeat(rows, 2), is_part)  # (Q,)
    chunk_of_part = tf.cumsum(tf.cast(opens, tf.int64)) - 1  # (Q,)
    parts_of_chunks = tf.RaggedTensor.from_value_rowids(parts, chunk_of_part, validate=False)  # (C, None)
    chunks = tf.strings.reduce_join(parts_of_chunks, axis=1)  # (C,)
    words = regex_split(chunks, WORD)  # (C, None)
    chunk_rows = tf.boolean_mask(part_rows, opens)  # (C,)
    words_of_texts = tf.RaggedTensor.from_value_rowids(words, chunk_rows, nrows=runs.nrows(), validate=False)
    return words_of_texts.merge_dims(1, 2)  # (B, None)

