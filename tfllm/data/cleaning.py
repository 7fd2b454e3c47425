"""The textbook's "remove useless characters" step, as graph code that runs in tf.data, tf.function and SavedModels."""

import tensorflow as tf
import tensorflow_text as tf_text

NORMALIZATIONS = ("NFC", "NFKC", "NFD", "NFKD")

# \p{Cc} is U+0000-U+001F and U+007F-U+009F; this is that set without \t (U+0009) and \n (U+000A).
_CONTROL_EXCEPT_TAB_AND_NEWLINE = r"[\x00-\x08\x0b-\x1f\x7f-\x{9f}]"
# Horizontal whitespace: tab, vertical tab, form feed, carriage return and every Unicode space separator (\p{Zs}:
# the space, no-break space U+00A0, the en/em/thin spaces U+2000-U+200A, ideographic space U+3000, ...).
_HORIZONTAL_SPACE = r"[\t\x0b\x0c\r\p{Zs}]+"


def clean_text(texts, normalization="NFC", remove_control_characters=True, fold_whitespace=True, lowercase=False):
    """Cleans UTF-8 text: Unicode normalization, control characters out, whitespace folded, optionally lowercased.

    Graph code only (tensorflow-text's `normalize_utf8` and RE2 `tf.strings.regex_replace`), so it runs eagerly,
    inside `tf.function` and inside `tf.data.Dataset.map`, on a scalar or a batch of strings of any shape.

    The steps, in this order:

    0. Invalid UTF-8 becomes U+FFFD "�" (each maximal invalid subsequence, e.g. `b"\\xff\\xfe"` gives two), always:
       the later steps need valid text. (`normalize_utf8` alone does not fail on invalid UTF-8; it passes the bad
       bytes through, so without this step the output would not be valid UTF-8 either.)
    1. `remove_control_characters`: first "\\r\\n" and a lone "\\r" become "\\n" (a line break stays a line break),
       then every other control character, `\\p{Cc}` except "\\t" and "\\n" (NUL, the bell, escape, DEL, U+0080-U+009F
       ...), is deleted. Format characters (`\\p{Cf}`: zero-width space, byte order mark, soft hyphen, zero-width
       joiner) are kept.
    2. `normalization`: `"NFC"` composes ("e" + U+0301 becomes "é"), `"NFKC"` also replaces compatibility characters
       ("ﬁ" becomes "fi", "①" becomes "1", "²" becomes "2", full-width "Ａ" becomes "A", U+00A0 becomes a space);
       `"NFD"` and `"NFKD"` decompose; None skips the step.
    3. `fold_whitespace`: every run of horizontal whitespace (tab, vertical tab, form feed, "\\r", and `\\p{Zs}`:
       space, no-break space, ideographic space, ...) becomes one space; spaces at the start and end of every line
       are removed; three or more line breaks in a row become two (at most one blank line); line breaks at the
       start and end of the text are removed. Line breaks are otherwise kept.
    4. `lowercase`: Unicode lowercasing (`tf.strings.lower(..., encoding="utf-8")`: "ÀÉ" becomes "àé").

    Cleaning twice gives the same text as cleaning once (without `lowercase`).

    Cleaning is off by default for the byte tokenizer, which must stay lossless (every byte of the input comes back
    from `detokenize`); use it with tokenizers that learn a vocabulary (WordPiece, SentencePiece, characters).

    Args:
        texts: A `tf.string` tensor (or anything `tf.convert_to_tensor` turns into one), any shape, UTF-8.
        normalization: `"NFC"` (the default), `"NFKC"`, `"NFD"`, `"NFKD"` or None (step 2).
        remove_control_characters: Whether to run step 1.
        fold_whitespace: Whether to run step 3.
        lowercase: Whether to run step 4.

    Returns:
        A `tf.string` tensor of the shape of `texts`, valid UTF-8.

    >>> clean_text("  \\ufb01ne\\u00a0 \\t day\\x07 \\r\\n\\n\\n\\nBye ", normalization="NFKC").numpy()
    b'fine day\\n\\nBye'
    >>> dataset = tf.data.Dataset.from_tensor_slices(["A\\u0301  B", "C\\u3000D"]).map(clean_text)
    >>> [text.decode() for text in dataset.as_numpy_iterator()]
    ['\\xc1 B', 'C D']
    """
    if normalization is not None and normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of None, {', '.join(map(repr, NORMALIZATIONS))}")
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    texts = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
    )
    # Control characters go before normalization: deleting one later could leave text that is no longer normalized
    # ("e", BEL, U+0301 would become "e" + U+0301, which NFC composes).
    if remove_control_characters:
        texts = tf.strings.regex_replace(texts, r"\r\n?", "\n")
        texts = tf.strings.regex_replace(texts, _CONTROL_EXCEPT_TAB_AND_NEWLINE, "")
    if normalization is not None:
        texts = tf_text.normalize_utf8(texts, normalization)
    if fold_whitespace:
        texts = tf.strings.regex_replace(texts, _HORIZONTAL_SPACE, " ")
        texts = tf.strings.regex_replace(texts, r"(?m)^ | $", "")
        texts = tf.strings.regex_replace(texts, r"\n{3,}", "\n\n")
        texts = tf.strings.regex_replace(texts, r"\A\n+|\n+\z", "")
    if lowercase:
        texts = tf.strings.lower(texts, encoding="utf-8")
    return texts
