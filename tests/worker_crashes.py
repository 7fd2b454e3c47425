"""The test run's answer to a test that takes its worker process down: it names the test, runs it once more on a new
worker, and always ends.

A worker can die without a Python error: a segmentation fault in TensorFlow's C++ runtime ends the process. pytest-xdist
3.8 (its newest release) then reports the test it was running as failed, starts a new worker and gives it back the dead
worker's files. Under `--dist loadfile`, the tests' setting (setup.cfg), it gives back every file the dead worker had
had, finished ones included. A finished file is sent as an empty list of tests that is never marked done, and the run
can wait for it forever (pytest-xdist issues #784, #1313 and #1378). This happened to tfllm's CI once: one test crashed
its worker at 77% of the run, and the run was cut off at 90 minutes without naming it.

Here, under `--dist loadfile`:
- only the files with tests still to run go back to the queue, at its front, so the run ends;
- the test a worker crashed in runs once more, on the new worker. Its crash is reported as "CRASHED, RE-RUN" with the
  worker's standard error (the native stack that faulthandler printed) above it, and listed at the end of the run. If
  it passes on the new worker, the run can pass: a one-off crash of TensorFlow's runtime is not a verdict on the test.
- a test that crashes a second worker fails, and is not run again.

Other `--dist` modes keep xdist's own behaviour.
"""

import collections

import pytest
from xdist.scheduler import LoadFileScheduling

RUNS_AFTER_A_CRASH = 1
CRASHED_AND_RERUN = "rerun"  # the category of a crash report that is followed by another run of its test


class CrashTolerantLoadFileScheduling(LoadFileScheduling):
    """xdist's `--dist loadfile`, which gives back only the unfinished files of a crashed worker and runs the test it
    crashed in once more (see the module's docstring)."""

    def __init__(self, config, log=None):
        super().__init__(config, log)
        self.crashes = collections.Counter()  # test id -> how many workers it took down

    def remove_node(self, node):
        """Forget `node`, a worker that ended; if it crashed, queue its unfinished files and return its test."""
        unfinished = _unfinished(self.assigned_work.pop(node))
        if not unfinished:
            return None  # a worker that ended its work: xdist calls this at every worker's end too
        crashed = next(test for tests in unfinished.values() for test, done in tests.items() if not done)
        self.crashes[crashed] += 1
        if self.crashes[crashed] > RUNS_AFTER_A_CRASH:
            unfinished[self._split_scope(crashed)][crashed] = True  # not run again: it fails
            unfinished = _unfinished(unfinished)
        for file, tests in reversed(unfinished.items()):
            self.workqueue[file] = tests
            self.workqueue.move_to_end(file, last=False)
        for other in self.assigned_work:
            self._reschedule(other)
        return crashed

    def _reschedule(self, node):
        """xdist's rule (more files for a worker with two tests or fewer left), then files until it has two tests:
        a worker starts a test only once it has the next or is told to end, so a new worker given one file of one
        test would wait forever (pytest-xdist issue #1327)."""
        super()._reschedule(node)
        while not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) < 2:
            self._assign_work_unit(node)


def _unfinished(workload):
    """The files of `workload` ({file: {test id: done}}) that have a test still to run."""
    return {file: tests for file, tests in workload.items() if not all(tests.values())}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadfile":
        return CrashTolerantLoadFileScheduling(config, log)
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_handlecrashitem(crashitem, report, sched):
    if isinstance(sched, CrashTolerantLoadFileScheduling) and sched.crashes[crashitem] <= RUNS_AFTER_A_CRASH:
        report.outcome = CRASHED_AND_RERUN
        report.longrepr = f"{report.longrepr}; it runs once more on a new worker"


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report):
    if report.outcome == CRASHED_AND_RERUN:
        return CRASHED_AND_RERUN, "R", ("CRASHED, RE-RUN", {"yellow": True})
    return None


def pytest_terminal_summary(terminalreporter):
    crashes = terminalreporter.stats.get(CRASHED_AND_RERUN, [])
    if crashes:
        terminalreporter.write_sep("=", "tests that crashed their worker and ran again", yellow=True)
        for report in crashes:
            terminalreporter.write_line(str(report.longrepr))
