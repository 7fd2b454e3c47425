"""Tiny Shakespeare without the network: the cached file is used, a missing one fails at once, downloads are checked."""

import hashlib
import socket
import threading

import keras
import pytest

from tfllm.data import shakespeare
from tfllm.data.corpus import load_corpus, load_texts

# A stand-in for input.txt: above 1 MiB like the real file, so it is cut into speeches at blank lines.
SPEECHES = [
    f"Citizen {index}:\nBefore we proceed any further, hear me speak {index}.".encode() for index in range(25000)
]
FAKE_FILE = b"\n\n".join(SPEECHES) + b"\n"


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_download(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("keras.utils.get_file must not be called")

    monkeypatch.setattr(keras.utils, "get_file", fail)


class HangingConnections:
    """A `socket.create_connection` that hangs (like a name lookup without network) until `release()`: it records
    every attempt, and how many the caller left hanging rather than waited out."""

    def __init__(self):
        self.attempts = []
        self.returned = 0
        self._released = threading.Event()

    def create_connection(self, address, timeout=None, *args, **kwargs):
        self.attempts.append(address)
        self._released.wait(60)
        self.returned += 1
        raise OSError("network unreachable")

    @property
    def hanging(self):
        return len(self.attempts) - self.returned

    def release(self):
        self._released.set()


@pytest.fixture
def hanging_network(monkeypatch):
    network = HangingConnections()
    monkeypatch.setattr(socket, "create_connection", network.create_connection)
    yield network
    network.release()


def _cache(keras_home, data, monkeypatch, matching=True):
    path = keras_home / "datasets" / shakespeare.SHAKESPEARE_FILENAME
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    if matching:
        monkeypatch.setattr(shakespeare, "SHAKESPEARE_SHA256", hashlib.sha256(data).hexdigest())
    return path


def test_offline_failure_is_immediate_and_names_the_alternatives(keras_home, no_download, hanging_network):
    with pytest.raises(ConnectionError, match="needs the network") as raised:
        load_corpus("shakespeare")
    assert hanging_network.attempts == [("raw.githubusercontent.com", 443)]
    assert hanging_network.hanging == 1  # given up after the probe's time, not waited out
    message = str(raised.value)
    assert "'kjv'" in message and "local path" in message and str(keras_home / "datasets") in message


def test_offline_failure_when_the_connection_is_refused(keras_home, no_download, monkeypatch):
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(ConnectionError, match="cannot be reached. Use the embedded corpus 'kjv'"):
        shakespeare.fetch_shakespeare()
    assert attempts == [("raw.githubusercontent.com", 443)]  # one probe, no retries


def test_cached_file_with_the_right_hash_is_used_without_network(keras_home, no_download, hanging_network, monkeypatch):
    path = _cache(keras_home, FAKE_FILE, monkeypatch)
    assert shakespeare.fetch_shakespeare() == path
    documents = load_texts("shakespeare")
    assert documents[:2] == SPEECHES[:2] and documents[-1] == SPEECHES[-1] + b"\n"
    assert len(documents) == len(SPEECHES)
    validation = load_texts("shakespeare", "validation")
    assert 0 < len(validation) < len(documents) // 10
    assert hanging_network.attempts == []  # no connection was even attempted


def test_cached_file_with_a_wrong_hash_is_not_trusted(keras_home, no_download, monkeypatch):
    _cache(keras_home, b"First Citizen:\nnot the real file\n", monkeypatch, matching=False)
    monkeypatch.setattr(shakespeare, "_reachable", lambda host: False)
    with pytest.raises(ConnectionError, match="not in the Keras cache"):
        load_corpus("shakespeare")


def test_download_goes_through_get_file_with_the_hash(keras_home, monkeypatch):
    calls = []

    def fake_get_file(**kwargs):
        calls.append(kwargs)
        return _cache(keras_home, FAKE_FILE, monkeypatch, matching=False)

    monkeypatch.setattr(shakespeare, "_reachable", lambda host: True)
    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert shakespeare.fetch_shakespeare() == keras_home / "datasets" / "tinyshakespeare.txt"
    assert calls == [
        {
            "fname": "tinyshakespeare.txt",
            "origin": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "file_hash": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            "cache_dir": str(keras_home),
        }
    ]


def test_reachable_is_true_when_a_connection_opens(monkeypatch):
    class Connection:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda address, timeout: Connection())
    assert shakespeare._reachable("example.org") is True
