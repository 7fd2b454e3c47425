"""A test run on two workers (`--dist loadfile`, as setup.cfg runs tfllm's) ends when tests crash their worker: a test
that crashes once passes on its new worker, one that crashes every time fails, and every other test runs once.

Without tests/worker_crashes.py, pytest-xdist 3.8 waits forever in both runs below."""

import os
import pathlib
import subprocess
import sys

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
CRASH_ONCE = """
import os, pathlib, signal
def test_crashes_the_first_time():
    marker = pathlib.Path(__file__).with_suffix(".crashed")
    if not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGSEGV)
"""
CRASH_ALWAYS = """
import os, signal
def test_always_crashes():
    os.kill(os.getpid(), signal.SIGSEGV)
def test_after_the_crash():
    pass
"""
PASSING = "def test_one():\n    pass\n\ndef test_two():\n    pass\n"


def _run_on_two_workers(directory, files):
    for name, text in files.items():
        (directory / name).write_text(text)
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY))
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.worker_crashes", "-n", "2",
               "--dist", "loadfile", "-q", *sorted(files)]
    try:
        return subprocess.run(command, cwd=directory, env=environment, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the test run did not end after a worker crashed")


def test_a_test_that_crashes_its_worker_once_runs_again_and_the_run_passes(tmp_path):
    files = {"test_a_first.py": PASSING, "test_b_crash_once.py": CRASH_ONCE, "test_c_last.py": PASSING,
             "test_d_last.py": PASSING}
    run = _run_on_two_workers(tmp_path, files)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "7 passed, 1 rerun" in run.stdout
    assert "'test_b_crash_once.py::test_crashes_the_first_time'; it runs once more on a new worker" in run.stdout
    assert "Fatal Python error: Segmentation fault" in run.stdout + run.stderr  # the crash's stack is shown


def test_a_test_that_crashes_every_worker_fails_once_rerun_and_the_others_run(tmp_path):
    files = {"test_a_crash_always.py": CRASH_ALWAYS, "test_b_passing.py": PASSING, "test_c_passing.py": PASSING}
    run = _run_on_two_workers(tmp_path, files)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 failed, 5 passed, 1 rerun" in run.stdout
    assert "FAILED test_a_crash_always.py::test_always_crashes" in run.stdout
