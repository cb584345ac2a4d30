"""One benchmark, two versions of nasflops, side by side in one run.

Runs a benchmark script alternately in a baseline checkout (built in
place: ``python setup.py build_ext --inplace``) and in this tree, each
version running its own copy of the script against its own package and
search spaces (``_trees.run_in_tree``), ``--rounds`` times each,
interleaved so that both see the same machine load, and reports per rate
(every ``*_per_s`` key of the script's final JSON, nested lists of spaces
included) the median of each version and their ratio, this tree over the
baseline.  For the compiled core alone, ``bench_core_pair.py`` times both
versions in one process, which resolves far smaller differences.

Usage::

    git worktree add /tmp/base v0.1.0 && (cd /tmp/base && python setup.py build_ext --inplace)
    python benchmarks/bench_versions.py --baseline /tmp/base --rounds 5 -- \\
        bench_core.py --archs 200000 --pyloop 0
    python benchmarks/bench_versions.py --baseline /tmp/base -- bench_spaces.py -n 100000

The last line is JSON: ``script``, ``args``, ``rounds``, ``baseline``
(path and ``git describe``), and ``rates``: per key the two medians and
``ratio`` (above 1: this tree is faster).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _trees import add_baseline_argument, describe, run_in_tree

ROOT = Path(__file__).resolve().parent.parent


def run_once(script: str, args: list[str], tree: Path) -> dict:
    """The final JSON line of ``tree``'s copy of the script, run against
    ``tree``'s nasflops alone (``_trees.run_in_tree``)."""
    run = run_in_tree(tree, [str(tree / "benchmarks" / script), *args])
    if run.returncode != 0:
        sys.exit(f"{script} failed in {tree}:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def rates(result, prefix: str = "") -> dict[str, float]:
    """Every ``*_per_s`` number in a result, keyed by its path (lists of
    dicts are keyed by their ``space``, ``model`` or index)."""
    found = {}
    if isinstance(result, dict):
        for k, v in result.items():
            if isinstance(v, (int, float)) and k.endswith("_per_s"):
                found[prefix + k] = float(v)
            elif isinstance(v, (dict, list)):
                found.update(rates(v, prefix + k + "."))
    elif isinstance(result, list):
        for i, item in enumerate(result):
            tag = item.get("space", item.get("model", i)) if isinstance(item, dict) else i
            found.update(rates(item, f"{prefix}{tag}."))
    return found


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_baseline_argument(p)
    p.add_argument("--rounds", type=int, default=3, help="runs of each version (default: 3)")
    p.add_argument("script", help="benchmark script in benchmarks/, e.g. bench_core.py")
    p.add_argument("args", nargs=argparse.REMAINDER, help="its arguments (after --)")
    a = p.parse_args(argv)
    args = [x for x in a.args if x != "--"]
    versions = {"baseline": a.baseline.resolve(), "current": ROOT}
    samples: dict[str, dict[str, list[float]]] = {"baseline": {}, "current": {}}
    for r in range(a.rounds):
        for name, path in (versions.items() if r % 2 == 0 else reversed(versions.items())):
            for key, value in rates(run_once(a.script, args, path)).items():
                samples[name].setdefault(key, []).append(value)
        print(f"round {r + 1}/{a.rounds} done", flush=True)
    table = {}
    for key in sorted(set(samples["baseline"]) & set(samples["current"])):
        base = statistics.median(samples["baseline"][key])
        cur = statistics.median(samples["current"][key])
        table[key] = {"baseline": base, "current": cur, "ratio": cur / base if base else None}
        print(f"{key:55s} {base:14,.0f} {cur:14,.0f}  x{table[key]['ratio']:.3f}")
    print(json.dumps({"script": a.script, "args": args, "rounds": a.rounds,
                      "baseline": {"path": str(versions["baseline"]),
                                   "version": describe(versions["baseline"])},
                      "rates": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
