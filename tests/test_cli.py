"""The installed `tfllm` console script."""

import pathlib
import shutil
import subprocess
import sys

import pytest

import tfllm
from tfllm import cli


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfllm {tfllm.__version__}"


def test_console_script_is_installed():
    script = shutil.which("tfllm") or str(pathlib.Path(sys.executable).with_name("tfllm"))
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tfllm {tfllm.__version__}"
