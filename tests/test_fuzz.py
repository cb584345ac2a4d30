"""The fuzz of the scoring boundary (``tests/fuzz_core.py``), in a subprocess.

A crash of the compiled core would kill the process running it: here that
process is a child, so a segfault fails this test (its exit status is the
negative signal number) instead of the test runner, and a hang hits the
timeout.  The previous main segfaults within the first rounds (a caller's
offsets buffer changed after the batch was built):

    PYTHONPATH=/path/to/old/build python tests/fuzz_core.py    # exit -11 (SIGSEGV)
"""
import os
import subprocess
import sys

import pytest

FUZZ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz_core.py")


@pytest.mark.parametrize("seed", [0, 1])
def test_fuzz_records_offsets_dtypes_options(seed):
    p = subprocess.run([sys.executable, FUZZ, "--seed", str(seed), "--rounds", "600"],
                       capture_output=True, text=True, timeout=300)
    report = f"exit {p.returncode}\n{p.stdout[-5000:]}\n{p.stderr[-5000:]}"
    assert p.returncode == 0, report
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith(f"fuzz: seed {seed}, ") and " 0 violations" in last, report
    assert int(last.split(", ")[1].split()[0]) > 5000, report   # the calls really ran
