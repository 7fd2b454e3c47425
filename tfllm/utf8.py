"""Texts as users give them (`str` or UTF-8 `bytes`) to the UTF-8 bytes a `tf.string` holds, and back.

Imports nothing of tfllm and no TensorFlow, so every package may use it (tokenizers and layers included).
"""


def utf8_bytes(texts):
    """Each text as UTF-8 `bytes`, ready for `tf.constant(..., tf.string)`: a `str` is encoded, `bytes` (NumPy's
    included) pass as they are. One text gives a list of one.

    Raises:
        ValueError: a text that is neither `str` nor bytes, named by its index.

    >>> utf8_bytes(["é", b"Amen."])
    [b'\\xc3\\xa9', b'Amen.']
    >>> utf8_bytes("In the beginning")
    [b'In the beginning']
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    return [text.encode("utf-8") if isinstance(text, str) else _as_bytes(index, text) for index, text in
            enumerate(texts)]


def utf8_strings(texts):
    """Each text as a `str`, from what a `tf.string` tensor gives back: UTF-8 `bytes` are decoded, each invalid
    byte sequence becoming U+FFFD (a model may generate bytes that are not UTF-8); a `str` passes as it is. One text
    gives a list of one.

    >>> utf8_strings([b"\\xc3\\xa9", b"cut \\xe2\\x82", "Amen."])
    ['é', 'cut \\ufffd', 'Amen.']
    """
    if isinstance(texts, (str, bytes)):
        texts = [texts]
    return [text if isinstance(text, str) else _as_bytes(index, text).decode("utf-8", errors="replace") for
            index, text in enumerate(texts)]


def _as_bytes(index, text):
    if not isinstance(text, (bytes, bytearray, memoryview)):
        raise ValueError(f"texts[{index}] is a {type(text).__name__}: expected a str or UTF-8 bytes.")
    return bytes(text)
