"""Search-space throughput: sample+encode, sample+encode+score, the core alone,
and scoring from the block tables.

Usage::

    python benchmarks/bench_spaces.py                 # 200,000 candidates per space
    python benchmarks/bench_spaces.py -n 20000        # quick look
    python benchmarks/bench_spaces.py --spaces nb201
    python benchmarks/bench_spaces.py -n 1000000 --spaces autoformer-t autoformer-s autoformer-b
    python benchmarks/bench_spaces.py --whole-chunks  # encode 4,096 candidates at a time

For each space, in one run and on one thread, after a one-time set-up
(template pools) that is timed apart, candidates are sampled ``--chunk`` at
a time (4,096, as ``score_space`` does) and each chunk is:

* encoded and scored by the record core in the engine's blocks, as the
  pipeline and sampling do (``nasflops.engine.encode_step``: at most
  ``RECORD_BUDGET`` bytes of records), or whole with ``--whole-chunks``:
  candidates/s to encode (``encode_per_s``, sampling timed apart), to encode
  and score, and to score the already-encoded blocks (core only);
* scored whole from the block tables (``search_spaces/tables.py``):
  template ids and table sums, every metric checked equal to the core's on
  every chunk; and the table sums alone on precomputed template ids.

With sampling included: sample, encode and score
(``sample_encode_score_per_s``), and sample and score from the tables
(``sample_table_per_s``, what ``score_space`` does for a decomposable
space).  A language-model space is measured in each of its phases
(``--lm-phases``: prefill of 2,048 tokens, decode after 4,096, training on
2,048), scored in that phase.  The last line is a JSON object (keys in
benchmarks/README.md).
"""
import argparse
import json
import time

import numpy as np

import nasflops as nf
from nasflops.engine import ENCODE_BLOCK, encode_step
from nasflops.options import ScoringOptions
from nasflops.search_spaces import NotDecomposable
from nasflops.search_spaces.columns import take_columns
from nasflops.search_spaces.tables import score_slots


def bench_space(name: str, n: int, chunk: int, convention: str, seed: int = 0,
                phase: str = None, whole_chunks: bool = False) -> dict:
    """One space's rates, ``chunk`` candidates sampled at a time.  Each chunk
    is encoded and scored in the engine's blocks, as the pipeline does, or
    whole (``whole_chunks``); the tables score it whole, as the pipeline does."""
    space = nf.get_space(name) if phase is None else nf.get_space(name, phase=phase)
    # one-time set-up (template pools, e.g. NB201's 140 MB cell library) is
    # not part of the rate; it is reported apart
    t0 = time.perf_counter()
    nf.score(space.sample(1, seed=seed + 1))
    setup_s = time.perf_counter() - t0
    opts = ScoringOptions.make(convention)
    try:
        table = space.block_table(opts)
    except NotDecomposable:
        table = None
    t_enc = t_core = t_tab = t_sum = t_smp = 0.0
    layers = longest = step = 0
    done = 0
    while done < n:
        m = min(chunk, n - done)
        t0 = time.perf_counter()
        cols = space.sample_columns(m, seed=seed, start=done)
        t_smp += time.perf_counter() - t0
        ref = {c: [] for c in nf.METRICS}
        lo = 0
        while lo < m:
            step = m if whole_chunks else encode_step(step, longest)
            hi = min(lo + step, m)
            sub = cols if (lo, hi) == (0, m) else take_columns(cols, slice(lo, hi))
            t0 = time.perf_counter()
            batch = space.encode_columns(sub)
            t1 = time.perf_counter()
            scores = nf.score(batch, convention=convention, phase=space.phase)
            t2 = time.perf_counter()
            t_enc += t1 - t0
            t_core += t2 - t1
            layers += batch.n_layers
            longest = max(longest, int(batch.lengths.max()))
            for c in nf.METRICS:
                ref[c].append(scores[c])
            lo = hi
        done += m
        if table is not None:
            t0 = time.perf_counter()
            raw = space.score_columns_raw(cols, opts)     # template ids + table sums
            t1 = time.perf_counter()
            tids, groups = space._slot_ids(cols)
            t2 = time.perf_counter()
            score_slots(table, tids, groups)               # table sums alone
            t3 = time.perf_counter()
            t_tab += t1 - t0
            t_sum += t3 - t2
            assert all((raw.metrics[:, k] == np.concatenate(ref[c])).all()
                       for k, c in enumerate(nf.METRICS))
    tables = {}
    if table is not None:
        tables = {"table_per_s": round(n / t_tab), "table_over_core": round(t_core / t_tab, 2),
                  "sample_table_per_s": round(n / (t_smp + t_tab)),
                  "table_over_encode_score": round((t_enc + t_core) / t_tab, 2),
                  "table_sums_per_s": round(n / t_sum), "table_sums_over_core": round(t_core / t_sum, 2)}
    return {
        "space": name,
        "phase": space.phase,
        "candidates": n,
        "chunk": chunk,
        "encode_blocks": "whole chunks" if whole_chunks else "engine",
        "setup_s": round(setup_s, 3),
        "layers_per_candidate": round(layers / n, 1),
        "encode_per_s": round(n / t_enc),
        "encode_score_per_s": round(n / (t_enc + t_core)),
        "sample_encode_score_per_s": round(n / (t_smp + t_enc + t_core)),
        "core_per_s": round(n / t_core),
        "encode_over_core": round(t_core / t_enc, 3),  # > 1: encoding is faster than scoring
        **tables,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200_000, help="candidates per space")
    ap.add_argument("--chunk", type=int, default=ENCODE_BLOCK,
                    help="candidates sampled at a time (default: the pipeline's, %(default)s)")
    ap.add_argument("--whole-chunks", action="store_true",
                    help="encode and score each chunk whole, not in the engine's blocks")
    ap.add_argument("--spaces", nargs="+", default=None, help="spaces (default: all but the zoo)")
    ap.add_argument("--convention", default="macs")
    ap.add_argument("--lm-phases", nargs="+", default=["prefill", "decode", "train"],
                    help="phases a language-model space is measured in")
    args = ap.parse_args(argv)
    spaces = nf.list_spaces()
    names = args.spaces or [s["name"] for s in spaces if s["name"] != "zoo"]
    phased = {s["name"] for s in spaces if s.get("phase", "forward") != "forward"}
    rows = [bench_space(name, args.n, args.chunk, args.convention, phase=phase,
                        whole_chunks=args.whole_chunks)
            for name in names for phase in (args.lm_phases if name in phased else [None])]
    print(f"{'space':<22}{'phase':>8}{'layers/cand':>12}{'encode/s':>12}{'enc+score/s':>13}"
          f"{'core/s':>11}{'enc speed / core':>18}{'tables/s':>12}{'tables / core':>15}")
    for r in rows:
        print(f"{r['space']:<22}{r['phase']:>8}{r['layers_per_candidate']:>12}"
              f"{r['encode_per_s']:>12,}{r['encode_score_per_s']:>13,}{r['core_per_s']:>11,}"
              f"{r['encode_over_core']:>18}{r.get('table_per_s', 0):>12,}"
              f"{r.get('table_over_core', '-'):>15}")
    print(json.dumps({"convention": args.convention, "spaces": rows}))


if __name__ == "__main__":
    main()
