"""Core throughput: records/s and architectures/s on one thread, against the
time to merely stream the same bytes and against a plain-Python loop.

Usage::

    python benchmarks/bench_core.py              # 1,000,000 architectures
    python benchmarks/bench_core.py --archs 20000 --chunk 10000   # quick look

Synthetic architectures of 50-300 layers are generated vectorised, chunk by
chunk (so memory stays around 1 GB): residual blocks conv -> bn -> act -> add
with random channels (8-64), resolution (8-64), kernels {1, 3, 5} and
depthwise or dense convolutions.  The last line is a JSON object (keys in
benchmarks/README.md).
"""
import argparse
import json
import time

import numpy as np

import nasflops as nf
from nasflops import _core, _pyref
from nasflops.spec import empty_records


def synthetic_batch(n: int, rng: np.random.Generator) -> nf.SpecBatch:
    """``n`` random valid residual chains of 50-300 layers, with no Python loop per architecture."""
    lengths = rng.integers(50, 301, size=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    arch = np.repeat(np.arange(n), lengths)
    j = np.arange(total) - offsets[:-1][arch]          # layer index within its architecture
    chans = rng.integers(1, 9, size=n)[arch] * 8
    rec = empty_records(total)
    phase = (j - 1) % 4
    is_input = j == 0
    conv = (phase == 0) & ~is_input
    rec["op"] = np.select([is_input, conv, phase == 1, phase == 2],
                          [nf.Op.INPUT, nf.Op.CONV2D, nf.Op.BATCHNORM, nf.Op.ACT], nf.Op.ADD)
    rec["out_channels"] = np.where(is_input | conv, chans, 0)
    res = rng.integers(8, 65, size=n)[arch]
    rec["size_h"] = np.where(is_input, res, 0)
    rec["size_w"] = np.where(is_input, res, 0)
    k = rng.choice(np.array([1, 3, 5], dtype=np.int16), size=total)
    rec["kernel_h"] = rec["kernel_w"] = np.where(conv, k, 0)
    rec["pad_h"] = rec["pad_w"] = np.where(conv, k // 2, 0)
    rec["stride_h"] = rec["stride_w"] = rec["dilation_h"] = rec["dilation_w"] = np.where(conv, 1, 0)
    rec["groups"] = np.where(conv, np.where(rng.random(total) < 0.3, chans, 1), 0)
    rec["flags"] = np.where(phase == 1, int(nf.Flag.AFFINE), 0)
    rec["act"] = np.where(phase == 2, rng.integers(0, len(nf.Act), size=total), 0)
    rec["input0"] = np.where(is_input, -1, j - 1)
    rec["input1"] = np.where((phase == 3) & ~is_input, j - 4, -1)  # residual from the block input
    return nf.SpecBatch(rec, offsets)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=1_000_000, help="architectures scored in all")
    ap.add_argument("--chunk", type=int, default=100_000, help="architectures generated at a time")
    ap.add_argument("--pyloop", type=int, default=200, help="architectures for the plain-Python loop")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    table = nf.get_convention("flops").weights
    t_core = t_stream = t_par = 0.0
    n_rec = n_arch = 0
    checksum = 0
    sample = None
    while n_arch < args.archs:
        m = min(args.chunk, args.archs - n_arch)
        batch = synthetic_batch(m, rng)
        if sample is None:
            sample = batch[: args.pyloop]
        metrics = np.empty((m, len(_core.METRICS)), dtype=np.int64)
        status = np.empty(m, dtype=np.int64)
        bad = np.empty(m, dtype=np.int64)
        words = batch.records.view(np.int64)     # 56-byte records = 7 int64 words
        # interleave the two measurements so both see the same machine state
        t0 = time.perf_counter()
        checksum ^= int(words.sum())
        t1 = time.perf_counter()
        _core.score_range(batch.records, batch.offsets, 0, m, table, 1, 4, 4, metrics, status, bad)
        t2 = time.perf_counter()
        par = nf.score(batch, convention="flops", n_jobs=2)
        t3 = time.perf_counter()
        assert not status.any(), "synthetic architectures must be valid"
        assert np.array_equal(par["ops"], metrics[:, 0])
        t_stream += t1 - t0
        t_core += t2 - t1
        t_par += t3 - t2
        n_rec += batch.n_layers
        n_arch += m

    t0 = time.perf_counter()
    ref = [_pyref.score_one(a, table) for a in sample]
    t_py = time.perf_counter() - t0
    core_sample = nf.score(sample, convention="flops")
    assert [r["ops"] for r in ref] == core_sample["ops"].tolist()

    out = {
        "archs": n_arch,
        "records": n_rec,
        "core_s": round(t_core, 4),
        "core_records_per_s": round(n_rec / t_core),
        "core_archs_per_s": round(n_arch / t_core),
        "stream_s": round(t_stream, 4),
        "core_over_stream": round(t_core / t_stream, 3),
        "parallel2_archs_per_s": round(n_arch / t_par),
        "parallel2_speedup": round(t_core / t_par, 3),
        "pyloop_archs": len(sample),
        "pyloop_archs_per_s": round(len(sample) / t_py, 2),
        "speedup_vs_pyloop": round((n_arch / t_core) / (len(sample) / t_py), 1),
    }
    print(f"scored {n_arch:,} architectures ({n_rec:,} layer records) on one thread in {t_core:.2f} s")
    print(f"  core:            {out['core_records_per_s'] / 1e6:8.1f} M records/s   "
          f"{out['core_archs_per_s']:>12,} archs/s")
    print(f"  stream same bytes (numpy int64 sum): {t_stream:.3f} s -> core/stream = {out['core_over_stream']}")
    print(f"  n_jobs=2 (joblib threads): {out['parallel2_archs_per_s']:,} archs/s "
          f"({out['parallel2_speedup']}x one thread)")
    print(f"  plain-Python loop: {out['pyloop_archs_per_s']} archs/s -> core is "
          f"{out['speedup_vs_pyloop']:,}x faster")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
