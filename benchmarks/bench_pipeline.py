"""End-to-end throughput of the streaming pipeline: sample + encode + score +
write Parquet, against the core alone measured in the same run.

Usage::

    python benchmarks/bench_pipeline.py                       # 10M OFA-MBv3, 2M NB201
    python benchmarks/bench_pipeline.py --n-ofa 200000 --n-nb201 100000 --core-n 20000   # quick look

For each space and each ``n_jobs`` (1 and 2), :func:`nasflops.score_space`
runs in a fresh child process (so its peak RSS is its own) and writes a
Parquet dataset to a temporary directory.  The core-only rate scores
already-encoded candidates of the same space with ``nasflops.score`` at the
same ``n_jobs``; the encode-only rate times ``sample_columns`` +
``encode_columns`` in the blocks the pipeline streams records in.  The
Budget section measures the per-call overhead of a single-candidate check
from a Python loop.  The last line is a JSON object
(keys in benchmarks/README.md).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), MB.

    Not ``getrusage``: its ``ru_maxrss`` survives fork + exec, so a child
    would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    """One end-to-end run; prints a JSON line with rate and own peak RSS."""
    from nasflops.pipeline import score_space
    from nasflops.search_spaces import get_space
    from nasflops.storage import read_results

    import joblib

    space = get_space(args.space)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    with joblib.parallel_config(backend=args.backend):
        run = score_space(space, n=args.n, seed=0, out=args.out, n_jobs=args.jobs,
                          chunk_size=args.chunk_size, progress=False, overwrite=True)
    dt = time.perf_counter() - t0
    rows = read_results(args.out, columns=["arch_id"]).num_rows
    assert rows == args.n, (rows, args.n)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(json.dumps({"seconds": dt, "rate": args.n / dt, "parts": run.n_parts,
                      "peak_rss_mb": peak_rss_mb(), "rss_before_run_mb": rss0, "bytes": size}))


def core_rate(space, n: int, jobs: int, repeats: int = 3) -> tuple[float, float]:
    """(encode-only rate, core-only rate) in candidates/s: best of ``repeats``.

    Sampling and encoding: encoded block by block as the pipeline streams
    records (``nasflops.engine.encode_step``), each block dropped before the
    next.  The core scores the whole batch, encoded beforehand, at ``n_jobs``."""
    import nasflops as nf
    from nasflops.engine import encode_step
    from nasflops.search_spaces.columns import take_columns

    batch = space.encode_columns(space.sample_columns(n, seed=1))
    best_enc = best_core = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        cols = space.sample_columns(n, seed=1)
        lo = step = longest = 0
        while lo < n:
            step = encode_step(step, longest)
            block = space.encode_columns(take_columns(cols, slice(lo, lo + step)))
            longest = max(longest, int(block.lengths.max()))
            lo += step
            del block
        t1 = time.perf_counter()
        nf.score(batch, convention="macs", n_jobs=jobs, errors="status")
        t2 = time.perf_counter()
        best_enc = max(best_enc, n / (t1 - t0))
        best_core = max(best_core, n / (t2 - t1))
    return best_enc, best_core


def budget_overhead(space) -> dict:
    """Per-call cost of single-candidate budget checks from a Python loop, microseconds."""
    import nasflops as nf
    from nasflops.budget import Budget
    from nasflops.search_spaces import sample_within

    batch = space.sample(200, seed=3)
    archs = [batch[i] for i in range(len(batch))]
    median_macs = int(np.median(nf.score(batch)["macs"]))
    b = Budget(max_macs=median_macs, max_params=10**9)
    out = {}

    def per_call(fn, items, reps=3):
        best = np.inf
        for _ in range(reps):
            t0 = time.perf_counter()
            for a in items:
                fn(a)
            best = min(best, (time.perf_counter() - t0) / len(items))
        return round(best * 1e6, 2)

    out["fits_us"] = per_call(b.fits, archs)
    out["score_one_us"] = per_call(lambda a: nf.score(a), archs)
    out["score_then_mask_us"] = per_call(lambda a: b.mask(nf.score(a)), archs)
    rows = nf.score(batch)
    out["fits_row_us"] = per_call(b.fits, [rows[i:i + 1] for i in range(len(rows))])
    core_one = per_call(lambda a: nf._core.score_range(
        a, np.array([0, len(a)], np.int64), 0, 1, nf.get_convention("macs").weights, 1, 4, 4,
        np.empty((1, len(nf._core.METRICS)), np.int64), np.empty(1, np.int64), np.empty(1, np.int64)), archs)
    out["core_one_us"] = core_one
    out["fits_overhead_us"] = round(out["fits_us"] - core_one, 2)
    seeds = list(range(20))
    out["sample_within_n1_us"] = per_call(lambda s: sample_within(space, b, 1, seed=s,
                                                                 method="rejection"), seeds, reps=1)
    s = sample_within(space, b, 20_000, seed=0, n_jobs=2, method="rejection")
    t0 = time.perf_counter()
    s = sample_within(space, b, 20_000, seed=1, n_jobs=2, method="rejection")
    dt = time.perf_counter() - t0
    out["sample_within_draws_per_s"] = round(s.draws / dt)
    out["sample_within_acceptance"] = round(s.acceptance, 4)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-ofa", type=int, default=10_000_000, help="OFA-MBv3 candidates per end-to-end run")
    ap.add_argument("--n-nb201", type=int, default=2_000_000, help="NB201 candidates per end-to-end run")
    ap.add_argument("--jobs", default="1,2", help="comma-separated n_jobs values")
    ap.add_argument("--core-n", type=int, default=100_000, help="candidates for the core-only rate")
    ap.add_argument("--chunk-size", type=int, default=None, help="candidates per part (default: pipeline's)")
    ap.add_argument("--dir", default=None, help="where datasets are written (default: a temp dir, removed)")
    ap.add_argument("--backend", default="threading",
                    help="joblib backend of the end-to-end runs (threading, loky; peak RSS is then "
                         "the parent's only)")
    ap.add_argument("--no-budget", action="store_true", help="skip the budget overhead section")
    # internal: one end-to-end run in a child process
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--space", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        args.jobs = int(args.jobs)
        return child(args)

    import nasflops as nf
    from nasflops.search_spaces import get_space

    jobs_list = [int(j) for j in args.jobs.split(",")]
    base = args.dir or tempfile.mkdtemp(prefix="nasflops-bench-")
    result = {"version": nf.__version__, "cpus": os.cpu_count(), "jobs": jobs_list,
              "backend": args.backend, "spaces": {}}
    try:
        for name, n in (("ofa-mbv3", args.n_ofa), ("nb201", args.n_nb201)):
            if n <= 0:
                continue
            try:
                space = get_space(name)
            except ValueError as e:  # space not available in this checkout
                print(f"skipping {name}: {e}", file=sys.stderr)
                continue
            entry = {"n": n}
            for jobs in jobs_list:
                enc, core = core_rate(space, min(args.core_n, n), jobs)
                out = os.path.join(base, f"{name}-j{jobs}.parquet")
                cmd = [sys.executable, os.path.abspath(__file__), "--_child", "--space", name,
                       "--n", str(n), "--jobs", str(jobs), "--out", out, "--backend", args.backend]
                if args.chunk_size:
                    cmd += ["--chunk-size", str(args.chunk_size)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    raise RuntimeError(f"end-to-end run failed:\n{proc.stderr}")
                e2e = json.loads(proc.stdout.strip().splitlines()[-1])
                shutil.rmtree(out, ignore_errors=True)
                entry[f"j{jobs}"] = {
                    "e2e_seconds": round(e2e["seconds"], 2),
                    "e2e_per_s": round(e2e["rate"]),
                    "core_per_s": round(core),
                    "encode_per_s": round(enc),
                    "e2e_over_core": round(e2e["rate"] / core, 3),
                    "peak_rss_mb": round(e2e["peak_rss_mb"]),
                    "bytes_per_candidate": round(e2e["bytes"] / n, 2),
                    "parts": e2e["parts"],
                }
                print(f"{name:9s} n_jobs={jobs}: end-to-end {e2e['rate']:>10,.0f} cand/s "
                      f"({e2e['seconds']:.1f} s for {n:,}), core {core:>10,.0f}/s, encode {enc:>10,.0f}/s, "
                      f"ratio {e2e['rate'] / core:.2f}, peak RSS {e2e['peak_rss_mb']:.0f} MB", flush=True)
            result["spaces"][name] = entry
            if not args.no_budget and name == "ofa-mbv3":
                result["budget"] = budget_overhead(space)
                print("budget single-candidate overheads (us/call):", result["budget"], flush=True)
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    ofa = result["spaces"].get("ofa-mbv3", {})
    if ofa:
        # the aim: 10M OFA-MBv3 candidates in under 2 minutes
        fastest = min(v["e2e_seconds"] for k, v in ofa.items() if k.startswith("j"))
        result["ofa_10M_seconds"] = round(fastest * 10_000_000 / ofa["n"], 1)
        result["ofa_10M_seconds_is_projection"] = ofa["n"] != 10_000_000
    print(json.dumps(result))


if __name__ == "__main__":
    main()
