"""Atomic file writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

Each write goes to a temporary file in the same folder (so the rename stays on one file system), is flushed to disk,
given the permissions of a file opened for writing (0666 less the process's umask: `tempfile` makes its files
readable by their owner alone, which other users of shared storage, the other workers of a job, TensorBoard or a
server, then cannot read), and then replaces the target with `os.replace`, which is atomic on POSIX and Windows. A
crash can leave a temporary file behind (its name starts with `.tmp-`), never a damaged target.
"""

import contextlib
import os
import tempfile

TEMPORARY_PREFIX = ".tmp-"


def _file_mode():
    """0666 less the umask: the mode `open(path, "w")` gives a new file. (The umask is read by setting it, so once,
    when the module is imported.)"""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path next to `path` to write to; on success it replaces `path`, on error it is removed.

    The temporary name keeps the suffix of `path` (Keras chooses the format of `model.save` and `save_weights` by
    the suffix: `.keras`, `.weights.h5`).

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_path(target) as temporary:
    ...     with open(temporary, "w") as file:
    ...         _ = file.write("written in one go")
    >>> open(target).read(), os.listdir(os.path.dirname(target))
    ('written in one go', ['notes.txt'])
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    suffix = _full_suffix(name)
    descriptor, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=suffix, dir=folder)
    os.close(descriptor)
    try:
        yield temporary
        _fsync(temporary)
        os.chmod(temporary, _FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def atomic_write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            file.write(data)


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically, as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _full_suffix(name):
    # "model.keras" -> ".keras", "latest.weights.h5" -> ".weights.h5": everything from the first dot on.
    stem, dot, rest = name.partition(".")
    return dot + rest if stem else os.path.splitext(name)[1]


def _fsync(path):
    # Without a sync, a power cut after the rename can leave an empty file under the new name.
    with open(path, "rb") as file:
        os.fsync(file.fileno())
