"""Argument checks shared across tfllm: each error names the argument, the value and what was expected."""

import math
import numbers
import os
from collections.abc import Iterable


def require_positive_int(name, value, why=""):
    """Returns `value` if it is an integer > 0, else raises a `ValueError` naming `name` (and `why`).

    >>> require_positive_int("num_layers", 0)
    Traceback (most recent call last):
    ...
    ValueError: num_layers=0 is invalid: expected a positive integer.
    """
    return _require_integer(name, value, lambda integer: integer > 0, "a positive integer", why)


def require_int_at_least(name, value, minimum=1, why=""):
    """Returns `value` if it is an integer >= `minimum`, else raises a `ValueError` naming `name` (and `why`).

    >>> require_int_at_least("top_k", -1, 0, " (0: no limit)")
    Traceback (most recent call last):
    ...
    ValueError: top_k=-1 is invalid: expected an integer >= 0 (0: no limit).
    """
    return _require_integer(name, value, lambda integer: integer >= minimum, f"an integer >= {minimum}", why)


def require_int_in_range(name, value, minimum, maximum, why=""):
    """Returns `value` if it is an integer in [`minimum`, `maximum`], else raises a `ValueError` naming `name`.

    >>> require_int_in_range("stride", 65, 1, 64, " (at most max_sequence_length)")
    Traceback (most recent call last):
    ...
    ValueError: stride=65 is invalid: expected an integer in [1, 64] (at most max_sequence_length).
    """
    return _require_integer(
        name, value, lambda integer: minimum <= integer <= maximum, f"an integer in [{minimum}, {maximum}]", why)


def require_int32_at_least(name, value, minimum=1, why=""):
    """Returns `value` if it is an integer >= `minimum` that int32 holds (a count or limit a graph holds as int32),
    else raises a `ValueError` naming `name` (and `why`).

    >>> require_int32_at_least("max_batch_size", 2**31)
    Traceback (most recent call last):
    ...
    ValueError: max_batch_size=2147483648 is invalid: expected an integer below 2**31 (an int32).
    """
    value = require_int_at_least(name, value, minimum, why)
    if value >= 2**31:
        raise ValueError(f"{name}={value!r} is invalid: expected an integer below 2**31 (an int32).")
    return value


def require_int32(name, value):
    """Returns `value` as an int if it is an integer that int32 holds (a seed of a compiled loop), else raises a
    `ValueError` naming `name`."""
    return _require_integer(name, value, lambda integer: -(2**31) <= integer < 2**31,
                            "an integer in [-2**31, 2**31), an int32")


def require_seed(name, value):
    """Returns a run's seed if it is an integer in [0, 2**31): the seeds of the weights (Keras takes below 2**32),
    of the data order and of generation (an int32), so a seed that one of them refuses stops the run before any
    work, not after its training.

    >>> require_seed("train.seed", 2**31)
    Traceback (most recent call last):
    ...
    ValueError: train.seed=2147483648 is invalid: expected an integer in [0, 2**31), as generation seeds are int32.
    """
    return _require_integer(name, value, lambda integer: 0 <= integer < 2**31,
                            "an integer in [0, 2**31), as generation seeds are int32")


def require_token_ids(name, ids, vocab_size):
    """Returns `ids` as a list of ints if each is a token id of a vocabulary of `vocab_size`, else raises a
    `ValueError` naming `name` and the first that is not. (An id outside the vocabulary would read past an embedding
    table, which a GPU does without an error, or never match as a stop token.)

    >>> require_token_ids("stop_token_ids", [2, 0], vocab_size=10)
    [2, 0]
    >>> require_token_ids("a prompt", [1, 10], vocab_size=10)
    Traceback (most recent call last):
    ...
    ValueError: a prompt holds 10, which is not a token id of this model: expected integers in [0, 10).
    """
    if callable(getattr(ids, "numpy", None)):  # an eager tensor: its values (its items are tensors, not integers)
        ids = ids.numpy()
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        one = f" ([{ids!r}] for one)" if isinstance(ids, numbers.Integral) else ""
        raise ValueError(f"{name}={ids!r} is invalid: expected a list of token ids{one}.")
    for token in ids:
        if isinstance(token, bool) or not isinstance(token, numbers.Integral) or not 0 <= token < vocab_size:
            raise ValueError(f"{name} holds {token!r}, which is not a token id of this model: expected integers in "
                             f"[0, {vocab_size}).")
    return [int(token) for token in ids]


def require_bos_and_eos(tokenizer, what):
    """Returns `tokenizer` if it has bos and eos ids, which `what` writes around each text; else a `ValueError`."""
    missing = [role for role in ("bos", "eos") if getattr(tokenizer, f"{role}_id") is None]
    if missing:
        raise ValueError(f"{what} starts each text with bos and ends it with eos, and this {type(tokenizer).__name__} "
                         f"has no {' and no '.join(missing)} token: give it one (its special_token_roles).")
    return tokenizer


def is_chat_message(item):
    """Whether `item` is a chat message, `{"role": ..., "content": ...}` (what generation refuses as a prompt and a
    chat template formats)."""
    return isinstance(item, dict) and "role" in item


def require_rate(name, value):
    """Returns `value` as a float if it is a rate in [0, 1), else raises a `ValueError` naming `name`."""
    return _require_real(name, value, lambda number: 0.0 <= number < 1.0, "a rate in [0, 1)")


def require_positive_number(name, value, why=""):
    """Returns `value` as a float if it is a finite number > 0, else raises a `ValueError` naming `name` (and `why`).

    >>> require_positive_number("temperature", True)
    Traceback (most recent call last):
    ...
    ValueError: temperature=True is invalid: expected a number > 0.
    """
    return _require_real(name, value, lambda number: math.isfinite(number) and number > 0, "a number > 0", why)


def require_number_at_least(name, value, minimum, why=""):
    """Returns `value` as a float if it is a finite number >= `minimum`, else raises a `ValueError` naming `name`."""
    return _require_real(
        name, value, lambda number: math.isfinite(number) and number >= minimum, f"a number >= {minimum}", why)


def require_probability(name, value, why=""):
    """Returns `value` as a float if it is a probability in (0, 1], else raises a `ValueError` naming `name`."""
    return _require_real(name, value, lambda number: 0.0 < number <= 1.0, "a probability in (0, 1]", why)


def require_text(name, value, expected):
    """Returns `value` if it is a non-empty string, else raises a `ValueError` naming `name` and what was
    `expected`."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}.")
    return value


def require_texts(name, values):
    """Returns `values` as a list if it is a list (or other iterable) of strings, else raises a `ValueError` naming
    `name`, or the first item that is not a string.

    >>> require_texts("replies", ("Hi", "你好"))
    ['Hi', '你好']
    >>> require_texts("replies", "Hi")
    Traceback (most recent call last):
    ...
    ValueError: replies is one string: expected a list of texts (wrap a single one as [replies]).
    """
    if isinstance(values, str):
        raise ValueError(f"{name} is one string: expected a list of texts (wrap a single one as [{name}]).")
    if not isinstance(values, Iterable):
        raise ValueError(f"{name} is {values!r:.40}: expected a list of texts.")
    values = list(values)
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise ValueError(f"{name}[{index}] is a {type(value).__name__}: expected a str.")
    return values


def require_divisible(name, value, divisor_name, divisor):
    """Raises a `ValueError` unless `value` is a multiple of `divisor`."""
    if value % divisor:
        raise ValueError(f"{name}={value} is not divisible by {divisor_name}={divisor}.")
    return value


def require_choice(name, value, choices):
    """Returns `value` if it is one of `choices`, else raises a `ValueError` listing them."""
    if value not in choices:
        raise ValueError(f"{name}={value!r} is invalid: expected one of {', '.join(map(repr, choices))}.")
    return value


def require_directory_path(what, path):
    """Returns `path` if it is a directory, or one can be made there: refuses with a `ValueError` naming `what` a
    path that is a file, lies under a file, or lies in a directory that cannot be written.

    >>> import tempfile
    >>> file = tempfile.NamedTemporaryFile()
    >>> require_directory_path("the run directory", file.name + "/run")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the run directory .../run lies under the file ...: expected a directory.
    """
    path = os.fspath(path)
    existing = os.path.abspath(path)
    while not os.path.exists(existing):  # the nearest part of the path that exists; "/" always does
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        where = "is a file" if existing == os.path.abspath(path) else f"lies under the file {existing}"
        raise ValueError(f"{what} {path} {where}: expected a directory.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} cannot be written: {existing} is not writable.")
    return path


def json_kind(value):
    """The JSON name of a value `json.loads` gave, for errors about a file's content: "object", "array", "string",
    "number", "boolean" or "null".

    >>> [json_kind(value) for value in ({}, [], "", 1, 1.5, True, None)]
    ['object', 'array', 'string', 'number', 'number', 'boolean', 'null']
    """
    kinds = ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string"), (numbers.Number, "number"))
    return "null" if value is None else next(kind for python_type, kind in kinds if isinstance(value, python_type))


def require_even_rotary_heads(position_embedding, hidden_dim, num_heads, prefix=""):
    """Raises a `ValueError` when rotary position embeddings get heads of an odd width (they turn pairs of a head's
    dimensions), before any layer is made; `prefix` is the names' config section ("model.").

    >>> require_even_rotary_heads("rotary", hidden_dim=6, num_heads=2)
    Traceback (most recent call last):
    ...
    ValueError: hidden_dim=6 over num_heads=2 gives heads of width 3: rotary position embeddings turn pairs of a head's dimensions, so the width must be even.
    """
    if position_embedding == "rotary" and hidden_dim // num_heads % 2:
        raise ValueError(f"{prefix}hidden_dim={hidden_dim} over {prefix}num_heads={num_heads} gives heads of width "
                         f"{hidden_dim // num_heads}: rotary position embeddings turn pairs of a head's dimensions, so "
                         "the width must be even.")


def _require_integer(name, value, fits, expected, why=""):
    """`value` as an int if it is an integer (a bool is not) that `fits`, else a `ValueError` naming `name`, the value
    and what was `expected` (and `why`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not fits(value):
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}{why}.")
    return int(value)


def _require_real(name, value, fits, expected, why=""):
    """`value` as a float if it is a real number (a bool is not) that `fits` (NaN fits no comparison), else a
    `ValueError` naming `name`, the value and what was `expected` (and `why`)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not fits(value):
        raise ValueError(f"{name}={value!r} is invalid: expected {expected}{why}.")
    return float(value)
