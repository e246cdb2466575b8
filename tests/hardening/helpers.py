"""Running hostile cases in a child process: a crash (abort, SIGSEGV) or a blow-up there fails one test, not the run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `mark()` then `peak_mb()`: how far the child's peak RSS grew in between. From /proc/self/status (VmHWM, reset by
# writing 5 to /proc/self/clear_refs), not getrusage: ru_maxrss survives fork + exec, so a child of a large pytest
# process (torch imported) would start with the parent's peak and hide any growth below it.
_PRELUDE = """
import json, resource, sys
import numpy as np
def _status_mb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024
def _rss_mb():
    return _status_mb("VmHWM")
def limit_address_space(extra_mb):
    # The current address space plus extra_mb: allocations past it fail (std::bad_alloc / MemoryError).
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = vm + extra_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
_base = [0.0]
def mark():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak restarts from the current RSS
    except OSError:
        pass
    _base[0] = min(_rss_mb(), _status_mb("VmRSS"))
def peak_mb():
    return _rss_mb() - _base[0]
def report(**values):
    print("RESULT " + json.dumps(values), flush=True)
"""


def run_child(code, timeout=120, env=None):
    """Run `code` in a fresh Python, after a prelude that imports numpy and defines report(**values), mark(),
    peak_mb() and limit_address_space(extra_mb).

    Returns (returncode, {key: value} from its `report(...)` calls, stderr).
    """
    script = _PRELUDE + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            results.update(json.loads(line[len("RESULT "):]))
    return proc.returncode, results, proc.stderr
