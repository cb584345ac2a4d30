"""What verifying a dataset costs: reading with and without checksum checks.

Builds an OFA-MBv3 results dataset of ``--rows`` rows (default 10,000,000):
one chunk of real candidates is scored once, then written as every part of
the dataset with its own ``arch_id`` range, through the same
``commit_part``/``RunWriter`` path as ``score_space`` (so parts have the
real size, compression, page checksums and recorded hashes).  Then, side by
side and alternating (best of ``--repeat``), it times:

* ``read_results(path)`` -- the whole table -- with ``verify=False`` and with
  ``verify=True`` (every part's XXH3 hash checked, pages' CRCs checked);
* ``read_results(path, columns=["macs"])`` likewise (a projection decodes a
  fraction of the file, but the hash still reads all of it);
* ``verify_parts(path)`` alone (hash throughput, GB/s);
* a ``stats``-like summary: one ``open_dataset`` and exact quantiles of four
  metrics.

The files are read from the page cache (they were just written), which is
the worst case for the relative overhead: from a cold disk, reading the
bytes dominates both.

    python benchmarks/bench_verify.py                    # 10,000,000 rows
    python benchmarks/bench_verify.py --rows 1000000     # quick look

Last line: a JSON object (keys in benchmarks/README.md).
"""
import argparse
import json
import os
import shutil
import tempfile
import time

import numpy as np
import pyarrow as pa

import nasflops as nf
from nasflops import analytics
from nasflops.pipeline import DEFAULT_CHUNK_SIZE, _run_metadata
from nasflops.options import ScoringOptions
from nasflops.storage import RunWriter, commit_part, open_dataset, read_results, scores_table, \
    verify_parts


def build(path: str, rows: int, chunk: int) -> dict:
    """The dataset, written part by part from one scored chunk."""
    space = nf.get_space("ofa-mbv3")
    opts = ScoringOptions.make("macs")
    meta = _run_metadata(space, opts, "sample", rows, 0, chunk)
    cols = space.sample_columns(chunk, seed=0)
    r = nf.score(space.encode_columns(cols), errors="status", n_jobs=2)
    writer = RunWriter(path, meta, rows, chunk)
    t0 = time.perf_counter()
    try:
        base = scores_table(r, native=space.arrow_columns(cols), metadata=writer.metadata_bytes)
        for k in writer.todo():
            start, stop = writer.rows_of(k)
            t = base.slice(0, stop - start)
            t = t.set_column(0, "arch_id", pa.array(np.arange(start, stop, dtype=np.int64)))
            _, rec = commit_part(path, k, t, token=writer.token)
            writer.record(k, rec)
    finally:
        writer.close()
    size = sum(os.path.getsize(os.path.join(path, f)) for f in os.listdir(path))
    return {"write_s": time.perf_counter() - t0, "bytes": size, "parts": writer.n_parts}


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def stats_like(path: str, verify: bool) -> None:
    data = open_dataset(path, verify=verify)
    analytics.quantiles(data, ["ops", "macs", "params", "peak_act_bytes"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK_SIZE)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = p.parse_args()
    base = args.dir or tempfile.mkdtemp(prefix="nasflops-verify-")
    path = os.path.join(base, "ofa.parquet")
    try:
        info = build(path, args.rows, args.chunk)
        print(f"{args.rows:,} rows, {info['parts']} parts, {info['bytes'] / 1e6:,.1f} MB written in "
              f"{info['write_s']:.1f} s", flush=True)
        pairs = {
            "read_all": lambda v: read_results(path, verify=v),
            "read_macs": lambda v: read_results(path, columns=["macs"], verify=v),
            "stats": lambda v: stats_like(path, v),
        }
        best = {f"{k}_{v}": float("inf") for k in pairs for v in ("plain", "verified")}
        best["hash_only"] = float("inf")
        for _ in range(args.repeat):          # alternate, so drift hits both sides alike
            for k, fn in pairs.items():
                best[f"{k}_plain"] = min(best[f"{k}_plain"], timed(lambda: fn(False)))
                best[f"{k}_verified"] = min(best[f"{k}_verified"], timed(lambda: fn(True)))
            best["hash_only"] = min(best["hash_only"], timed(lambda: verify_parts(path)))
        result = {"rows": args.rows, "parts": info["parts"], "bytes": info["bytes"],
                  "hash_s": round(best["hash_only"], 4),
                  "hash_gb_per_s": round(info["bytes"] / best["hash_only"] / 1e9, 2)}
        for k in pairs:
            plain, ver = best[f"{k}_plain"], best[f"{k}_verified"]
            result[f"{k}_plain_s"], result[f"{k}_verified_s"] = round(plain, 4), round(ver, 4)
            result[f"{k}_overhead"] = round(ver / plain, 3)
            print(f"{k:10s} plain {plain:8.3f} s   verified {ver:8.3f} s   ratio {ver / plain:.3f}",
                  flush=True)
        print(f"hashing alone: {best['hash_only']:.3f} s ({result['hash_gb_per_s']} GB/s)")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
