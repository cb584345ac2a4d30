"""The compiled core of two versions, call by call in one process.

``bench_versions.py`` runs each version in a process of its own, so a
machine whose speed drifts between runs (other tenants, frequency changes)
moves one column and not the other.  This script loads the baseline's
compiled ``_core`` and this tree's side by side in one process and times
them alternately on the same architectures, call after call, so that every
pair of calls sees the same machine.

Each version builds its own records for the same synthetic architectures
(its own ``benchmarks/bench_core.py``, same seed) in a child process that
imports that tree's nasflops alone (``_trees.run_in_tree``), and hands them
over as ``.npy`` files.  Both cores must agree on every metric they share before anything
is timed.

Usage::

    git worktree add /tmp/base <rev> && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/bench_core_pair.py --baseline /tmp/base
    python benchmarks/bench_core_pair.py --baseline /tmp/base --archs 10000 --pairs 11   # quick look

The last line is JSON: ``baseline`` (path and ``git describe``), ``archs``,
``records``, ``pairs``, per version ``*_records_per_s`` (median over its
calls), and ``ratio_median`` with ``ratio_quartiles``: per pair of calls,
the baseline's time over this tree's (above 1: this tree is faster).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _trees import add_baseline_argument, describe, run_in_tree

ROOT = Path(__file__).resolve().parent.parent

# Run in a child with one tree first on the module path: that tree's
# records, convention table and compiled core, written to a folder.
EXPORT = r"""
import sys, json, numpy as np
tree, folder, archs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sys.path.insert(0, tree + "/benchmarks")          # that tree's bench_core
import nasflops as nf
from nasflops import _core
from bench_core import synthetic_batch
batch = synthetic_batch(archs, np.random.default_rng(seed))
conv = nf.get_convention("flops")
table = conv.weights if hasattr(conv, "weights") else conv.table   # named "table" before 0.2
np.save(folder + "/records.npy", batch.records)
np.save(folder + "/offsets.npy", batch.offsets)
np.save(folder + "/table.npy", table)
print(json.dumps({"core": _core.__file__, "metrics": list(_core.METRICS)}))
"""


class Version:
    """One tree's compiled core and its records of the shared architectures."""

    def __init__(self, name: str, tree: Path, folder: Path, archs: int, seed: int):
        folder.mkdir()
        script = folder / "export.py"
        script.write_text(EXPORT)
        run = run_in_tree(tree, [str(script), str(tree), str(folder), str(archs), str(seed)])
        if run.returncode != 0:
            sys.exit(f"exporting records from {tree} failed:\n{run.stderr[-3000:]}")
        info = json.loads(run.stdout.strip().splitlines()[-1])
        spec = importlib.util.spec_from_file_location(f"{name}._core", info["core"])
        self.core = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.core)
        self.metric_names = info["metrics"]
        self.records = np.load(folder / "records.npy")
        self.offsets = np.load(folder / "offsets.npy")
        self.table = np.load(folder / "table.npy")
        self.n = len(self.offsets) - 1
        self.metrics = np.empty((self.n, len(self.metric_names)), dtype=np.int64)
        self.status = np.empty(self.n, dtype=np.int64)
        self.bad = np.empty(self.n, dtype=np.int64)

    def call(self) -> float:
        """Seconds for one call of the core over every architecture (one thread)."""
        t0 = time.perf_counter()
        self.core.score_range(self.records, self.offsets, 0, self.n, self.table, 1, 4, 4,
                              self.metrics, self.status, self.bad)
        return time.perf_counter() - t0


def check_agree(base: Version, cur: Version) -> list[str]:
    """The metrics both versions compute, after checking they are equal on every architecture."""
    if base.n != cur.n or base.records.size != cur.records.size:
        sys.exit("the two versions built different architectures")
    for v in (base, cur):
        if v.status.any():
            sys.exit("synthetic architectures must be valid")
    shared = [m for m in base.metric_names if m in cur.metric_names]
    for m in shared:
        a = base.metrics[:, base.metric_names.index(m)]
        b = cur.metrics[:, cur.metric_names.index(m)]
        if not np.array_equal(a, b):
            sys.exit(f"the versions disagree on {m}")
    return shared


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_baseline_argument(p)
    p.add_argument("--archs", type=int, default=30_000, help="architectures per call (default: 30000)")
    p.add_argument("--pairs", type=int, default=41, help="timed pairs of calls (default: 41)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Version("baseline", a.baseline.resolve(), Path(tmp) / "baseline", a.archs, a.seed)
        cur = Version("current", ROOT, Path(tmp) / "current", a.archs, a.seed)
    base.call()                                          # warm-up, and the outputs to compare
    cur.call()
    shared = check_agree(base, cur)
    times: dict[str, list[float]] = {"baseline": [], "current": []}
    ratios = []
    for i in range(a.pairs):                             # the order alternates pair by pair
        order = (("baseline", base), ("current", cur)) if i % 2 == 0 else (("current", cur), ("baseline", base))
        t = {name: v.call() for name, v in order}
        for name in t:
            times[name].append(t[name])
        ratios.append(t["baseline"] / t["current"])
    n_records = int(cur.offsets[-1])
    q = statistics.quantiles(ratios, n=4)
    out = {
        "baseline": {"path": str(a.baseline.resolve()), "describe": describe(a.baseline)},
        "current": describe(ROOT),
        "archs": cur.n, "records": n_records, "pairs": a.pairs,
        "metrics_checked_equal": shared,
        "baseline_records_per_s": round(n_records / statistics.median(times["baseline"])),
        "current_records_per_s": round(n_records / statistics.median(times["current"])),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_quartiles": [round(q[0], 3), round(q[2], 3)],
    }
    print(f"{cur.n:,} architectures ({n_records:,} records), {a.pairs} alternating pairs of calls")
    print(f"  baseline {out['baseline']['describe']}: {out['baseline_records_per_s'] / 1e6:.1f} M records/s")
    print(f"  this tree {out['current']}: {out['current_records_per_s'] / 1e6:.1f} M records/s")
    print(f"  baseline time / this tree's, per pair: median {out['ratio_median']}, "
          f"quartiles {out['ratio_quartiles'][0]}-{out['ratio_quartiles'][1]}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
