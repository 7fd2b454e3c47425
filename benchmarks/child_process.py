"""Measurements made in a fresh Python process, for what a process sets once: XLA's flags, AutoGraph's conversions,
the peak resident set.

The child prints its result as JSON on its last line of output; `json_from_child` runs it and reads that line. A child
that fails stops the benchmark, saying which child it was, its exit status (negative: the signal that ended it) and
the end of its output, since a crash is itself a finding.
"""

import json
import subprocess
import sys


def json_from_child(arguments, what, environment=None):
    """The JSON on the last line printed by `python *arguments` (run with `environment`, or this process's), where
    `what` names the child in an error.

    >>> json_from_child(["-c", "print('warming up'); print('{\\"seconds\\": 1.5}')"], "an example")
    {'seconds': 1.5}
    """
    child = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, env=environment)
    if child.returncode != 0:
        raise SystemExit(f"{what} ended with exit status {child.returncode}, after printing "
                         f"{child.stdout.strip()[-300:]!r}; its standard error ends:\n{child.stderr[-2000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])
