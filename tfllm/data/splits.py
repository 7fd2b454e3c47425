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


def linked_splits(keys, links):
    """The split of each item of a corpus whose items can share texts: items that share a link (directly or through a
    chain of such items) form one group, and the whole group takes the split of its smallest key, so no shared text
    is on two sides of a split. Where no two items share a link, each item's split is `split_of` its own key.

    Args:
        keys: Each item's key (`str`; the smallest of a group, by code point, is hashed).
        links: Each item's texts that must stay on one side (any hashable values), one iterable per item.

    Returns:
        A list of `SPLITS` values, one per item.

    >>> linked_splits(["Genesis 1", "Exodus 4"], [["a"], ["b"]])
    ['train', 'validation']
    >>> linked_splits(["Genesis 1", "Exodus 4"], [["a"], ["b", "a"]])  # linked by "a": one group, "Exodus 4" smallest
    ['validation', 'validation']
    """
    parent = list(range(len(keys)))

    def root(index):
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with = {}
    for index, item_links in enumerate(links):
        for link in item_links:
            parent[root(index)] = root(first_with.setdefault(link, index))
    smallest = {}
    for index, key in enumerate(keys):
        group = root(index)
        smallest[group] = min(smallest.get(group, key), key)
    group_splits = {group: split_of(key) for group, key in smallest.items()}
    return [group_splits[root(index)] for index in range(len(keys))]
