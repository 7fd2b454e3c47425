"""The train/validation/test split rule shared by every corpus: a stable hash of a key, 90/5/5.

A document's split depends only on its key (for the KJV, `"Book chapter"`; for files, the document's bytes), never
on the machine, the Python hash seed, the order of the files or how many other documents there are, so the same
document lands in the same split everywhere and adding a file never moves the others.
"""

import hashlib

SPLITS = ("train", "validation", "test")

# Out of 100 buckets: 0..89 train, 90..94 validation, 95..99 test.
_TRAIN_BUCKETS = 90
_VALIDATION_BUCKETS = 5


def split_of(key):
    """The split (`"train"`, `"validation"` or `"test"`) of a document with this key.

    The first 8 bytes of the SHA-256 of the key (a `str` is hashed as UTF-8), read as a big-endian integer, modulo
    100: buckets 0-89 are train, 90-94 validation, 95-99 test. So about 90/5/5, the same on every machine.

    Args:
        key: `str` or `bytes` identifying the document.

    Returns:
        One of `SPLITS`.

    >>> split_of("Genesis 1"), split_of("Exodus 4"), split_of("Exodus 20")
    ('train', 'validation', 'test')
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    bucket = int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100
    if bucket < _TRAIN_BUCKETS:
        return "train"
    if bucket < _TRAIN_BUCKETS + _VALIDATION_BUCKETS:
        return "validation"
    return "test"


def check_split(split):
    """Raises a `ValueError` unless `split` is None (everything) or one of `SPLITS`; returns it."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of None (everything), 'train', 'validation', 'test'")
    return split
