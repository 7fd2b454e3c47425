"""Tiny Shakespeare (karpathy/char-rnn's `input.txt`, 1,115,394 bytes): fetched once into the Keras cache.

The only corpus that needs the network, and only the first time: once the file is in the cache with the right
SHA-256 it is read from there. Without network and without the cached file, `fetch_shakespeare` fails at once,
within a couple of seconds, instead of hanging in a download.
"""

import hashlib
import os
import pathlib
import socket
import tempfile
import threading

import keras

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILENAME = "tinyshakespeare.txt"

# How long the "is there a network?" probe may take, name lookup included.
_PROBE_SECONDS = 2.0


def fetch_shakespeare(cache_dir=None):
    """The path of tiny Shakespeare in the Keras cache, downloading it first if it is not there.

    The file is `<cache_dir>/datasets/tinyshakespeare.txt`, `cache_dir` being `$KERAS_HOME` or `~/.keras` by default
    (as for `keras.utils.get_file`). A cached file is used only if its SHA-256 is `SHAKESPEARE_SHA256`; a download is
    checked against the same hash.

    Args:
        cache_dir: The Keras cache folder; None for `$KERAS_HOME` or `~/.keras`.

    Returns:
        A `pathlib.Path` to the verified file.

    Raises:
        ConnectionError: at once (within about 2 seconds) when the file is not cached and the host cannot be reached;
            the message names the offline alternatives (`"kjv"` and local files).

    Example (skipped by the tests: it needs the network the first time, and the tests run offline):

    >>> path = fetch_shakespeare()  # doctest: +SKIP
    >>> path.name, len(path.read_bytes())  # doctest: +SKIP
    ('tinyshakespeare.txt', 1115394)
    >>> path.read_text()[:30]  # doctest: +SKIP
    'First Citizen:\\nBefore we proce'
    """
    cache_dir = _cache_dir(cache_dir)
    cached = cache_dir / "datasets" / SHAKESPEARE_FILENAME
    if cached.is_file() and _sha256(cached) == SHAKESPEARE_SHA256:
        return cached
    host = SHAKESPEARE_URL.split("/")[2]
    if not _reachable(host):
        raise ConnectionError(
            f"the corpus 'shakespeare' is not in the Keras cache ({cache_dir / 'datasets'}) and downloading it needs "
            f"the network, but {host} cannot be reached. Use the embedded corpus 'kjv' (the default) or a local "
            "path instead: a .txt, .md or .jsonl file, a folder, or a glob such as 'data/*.txt'."
        )
    return pathlib.Path(
        keras.utils.get_file(
            fname=SHAKESPEARE_FILENAME, origin=SHAKESPEARE_URL, file_hash=SHAKESPEARE_SHA256, cache_dir=str(cache_dir)
        )
    )


def _cache_dir(cache_dir):
    """The folder `keras.utils.get_file` would use: `/tmp/.keras` when the chosen one is not writable."""
    if cache_dir is None:
        cache_dir = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    cache_dir = pathlib.Path(cache_dir).expanduser()
    if not os.access(cache_dir, os.W_OK):
        cache_dir = pathlib.Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return cache_dir


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reachable(host, port=443, timeout=_PROBE_SECONDS):
    """Whether a TCP connection to `host` opens within `timeout` seconds, name lookup included.

    `socket.create_connection`'s own timeout does not cover the name lookup, which can hang for long without a
    network, so the probe runs in a daemon thread that is abandoned after `timeout`.
    """
    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
