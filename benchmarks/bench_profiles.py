"""Exact whole-space answers against what the record core needs to answer by sampling.

Usage::

    python benchmarks/bench_profiles.py                   # default sizes
    python benchmarks/bench_profiles.py --quick           # smaller, for a look
    python benchmarks/bench_profiles.py --ofa-macs-all    # + every OFA resolution's exact MACs histogram (minutes)

Measured in one run, one process (``--jobs`` threads where stated):

* NB201: the exact profile of every metric (six-edge convolution; the peak
  from the 15,625 cells) against enumerating and scoring all 15,625 cells
  with the record core;
* OFA-MBv3 params over all 25 resolutions (5.4e20 networks): the exact
  profile with its histogram and exact quantiles, against the record core's
  rate (how many candidates it scores in that time);
* OFA-MBv3 MACs: exact counts within budgets (tail and middle), the exact
  histogram of the 128 px group, and exact uniform draws within 78 M MACs
  (a 1e-6 tail of the encodings space.sample draws) against rejection sampling at the record core's rate (the
  expected time rejection needs is ``draws / (fraction within * core rate)``);
* with ``--ofa-macs-all``: every resolution's exact MACs distribution built
  (whole or as exact halves), the pooled exact histogram over all of them,
  and each resolution's own exact histogram.

The last line is a JSON object (keys in benchmarks/README.md).
"""
import argparse
import json
import time

import nasflops as nf
from nasflops.budget import Budget


def core_rate(space, n: int) -> float:
    """The record core's candidates/s on pre-encoded candidates (one thread, best of 3)."""
    batch = space.sample(n, seed=9)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        nf.score(batch)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_nb201() -> dict:
    space = nf.get_space("nb201")
    space.block_table()                                   # one-time set-up (cell library)
    _, t_enum = timed(lambda: nf.score(space.enumerate()))
    profs, t_prof = timed(lambda: [space.profile(m) for m in nf.METRICS])
    for p in profs:                                       # each answer is exact: equal to the enumeration
        p.counts
    return {"enumerate_score_s": round(t_enum, 3), "profile_all_metrics_s": round(t_prof, 3),
            "profile_over_enumerate": round(t_enum / t_prof, 2)}


def bench_ofa(jobs: int, core: float, draws: int) -> dict:
    space = nf.get_space("ofa-mbv3")
    out = {"core_per_s": round(core)}
    p, t = timed(lambda: space.profile("params", n_jobs=jobs))
    (hist, qs), t2 = timed(lambda: (p.histogram(60), p.quantiles([0.05, 0.5, 0.95])))
    out["params_profile_s"] = round(t + t2, 2)
    out["params_core_candidates_in_that_time"] = round((t + t2) * core)
    out["params_total"] = str(p.total)
    m, t = timed(lambda: space.profile("macs", by="r", n_jobs=jobs))
    out["macs_extremes_s"] = round(t, 2)                  # min and max with witnesses, every resolution
    (h, _), t = timed(lambda: m.histogram(60, group=128))
    out["macs_r128_histogram_s"] = round(t, 2)
    counts = {}
    for b in (m.min.value + 2_000_000, 100_000_000, 120_000_000, 150_000_000):
        w, t = timed(lambda: space.count_within(Budget(max_macs=b)))
        counts[str(b)] = {"count": str(w.count), "fraction": float(w.fraction), "seconds": round(t, 2)}
    out["macs_count_within"] = counts
    tail = Budget(max_macs=78_000_000)                   # ~1e-6 of the encodings (the sampler's)
    s, t = timed(lambda: space.sample_within(tail, draws, seed=0, method="exact", over="encodings"))
    frac = float(s.within) / float(space.n_encodings)
    rejection_s = draws / (frac * core)                   # draws the core would have to score
    out["tail_sampling"] = {"budget": tail.max_macs, "fraction": frac, "draws": draws,
                            "exact_s": round(t, 2), "rejection_expected_s": round(rejection_s),
                            "exact_over_rejection": round(rejection_s / t)}
    return out


def bench_ofa_macs_all(jobs: int, core: float) -> dict:
    """Every resolution's exact MACs distribution: built (whole or as halves),
    the pooled 60-bin histogram of all of them, and each resolution's own."""
    space = nf.get_space("ofa-mbv3")
    m = space.profile("macs", by="r", n_jobs=jobs)
    _, t = timed(lambda: m.group_cdfs([]))                # builds every group's distribution
    out = {"ofa_macs_build_all_s": round(t, 2),
           "build_all_core_candidates_in_that_time": round(t * core)}
    m = space.profile("macs", by="r", n_jobs=jobs)        # nothing kept from the build above
    (h, _), t = timed(lambda: m.histogram(60))
    out["macs_all_pooled_histogram_s"] = round(t, 2)
    out["pooled_histogram_total"] = str(sum(h))
    t0 = time.perf_counter()
    per = {}
    for r in m.group_values:
        t1 = time.perf_counter()
        m.histogram(60, group=r)
        per[r] = round(time.perf_counter() - t1, 2)
        m._cache.clear()
    out["macs_all_histograms_s"] = round(time.perf_counter() - t0, 1)
    out["per_resolution_s"] = per
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer draws and core candidates")
    ap.add_argument("--jobs", type=int, default=1, help="threads building distributions")
    ap.add_argument("--ofa-macs-all", action="store_true",
                    help="also every OFA resolution's exact MACs histogram (minutes)")
    args = ap.parse_args(argv)
    result = {"jobs": args.jobs, "nb201": bench_nb201()}
    print("nb201:", result["nb201"], flush=True)
    ofa = nf.get_space("ofa-mbv3")
    core = core_rate(ofa, 20_000 if args.quick else 100_000)
    result["ofa"] = bench_ofa(args.jobs, core, 200 if args.quick else 1000)
    print("ofa-mbv3:", result["ofa"], flush=True)
    if args.ofa_macs_all:
        result["ofa_macs_all"] = bench_ofa_macs_all(args.jobs, result["ofa"]["core_per_s"])
        print("ofa-mbv3 MACs, every resolution:", result["ofa_macs_all"], flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
