"""Instructions the compiled core executes per record, per version of nasflops.

Wall-clock rates on a shared machine move with its load; the number of
instructions the core retires does not.  For each checkout given (built in
place, ``python setup.py build_ext --inplace``) and each space, this script
samples ``-n`` candidates with that checkout's own nasflops, then runs one
``nasflops.score`` under valgrind's callgrind, counting only inside the
core's ``score_range`` (instrumentation switched on just before the call),
and reports instructions per record.  Needs valgrind.

Usage::

    python benchmarks/bench_instructions.py --trees /tmp/base . -- nb201 ofa-mbv3

The last line is JSON: per space, per tree, ``records`` and
``instructions_per_record``, and each tree's ratio to the first tree.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _trees import run_in_tree

# runs inside the checkout under test: sample, warm up, switch callgrind on, score
_CHILD = """
import os, subprocess, sys
import nasflops as nf
b = nf.get_space(sys.argv[1]).sample(int(sys.argv[2]), seed=0)
nf.score(b[:2], convention="macs")
subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True)
nf.score(b, convention="macs")
print("records", len(b.records))
"""


def count(tree: Path, space: str, n: int) -> tuple[int, int]:
    """(records, instructions inside score_range) of one scoring run."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(_CHILD)
        run = run_in_tree(tree, [str(script), space, str(n)], launcher=(
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--toggle-collect=*score_range*",
            f"--callgrind-out-file={tmp}/cg.out"), cwd=Path.cwd())
    got = re.search(r"Collected : (\d+)", run.stderr)
    recs = re.search(r"records (\d+)", run.stdout)
    if run.returncode != 0 or not got or not recs:
        sys.exit(f"callgrind run failed in {tree} on {space}:\n{run.stderr[-2000:]}")
    return int(recs.group(1)), int(got.group(1))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trees", nargs="+", required=True, help="checkouts, the first is the baseline")
    ap.add_argument("-n", type=int, default=2000, help="candidates scored per space")
    ap.add_argument("spaces", nargs="+")
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("bench_instructions.py needs valgrind")
    trees = [Path(t).resolve() for t in args.trees]
    out = {}
    for space in args.spaces:
        per = {}
        for tree in trees:
            recs, instr = count(tree, space, args.n)
            per[str(tree)] = {"records": recs, "instructions_per_record": round(instr / recs, 1)}
        base = per[str(trees[0])]["instructions_per_record"]
        for tree in trees:
            p = per[str(tree)]
            p["ratio_to_first"] = round(p["instructions_per_record"] / base, 3)
            print(f"{space:20s} {str(tree):40s} {p['records']:>9,} records "
                  f"{p['instructions_per_record']:8.1f} instr/record  x{p['ratio_to_first']:.3f}")
        out[space] = per
    print(json.dumps({"n": args.n, "spaces": out}))


if __name__ == "__main__":
    main()
