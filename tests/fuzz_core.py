"""A seeded, bounded fuzz of the scoring boundary: records, offsets, dtypes, options.

Run as a script, in a subprocess, by ``tests/test_fuzz.py``: a crash (a
segfault in the compiled core) then fails that test instead of killing
pytest, and a hang hits its timeout.  Exit status 0 when every invariant
held, 1 with one line per violation, a negative signal number on a crash.

Only the public API that every nasflops since the first release shares is
used (``SpecBatch``, ``score``, ``layer_table``, ``Device``, ``Net``,
``get_space``), so the same script checks any build::

    python tests/fuzz_core.py --seed 0 --rounds 300
    PYTHONPATH=/path/to/another/build python tests/fuzz_core.py   # e.g. an old main

The invariants, for every input drawn:

* the call returns, or raises ``ValueError``/``TypeError`` (``SpecError`` is
  a ``ValueError``) -- never another exception, a crash or a hang;
* inputs the contract refuses are refused: float offsets, non-integer batch
  sizes, devices with non-positive or non-finite rates;
* a valid row is exact: it equals the architecture scored alone from a
  private copy of its records (so a caller's buffer changed after the batch
  was built changes nothing, and no row reads another's records), its
  metrics are non-negative, and at batch size N its MACs are N times the
  per-sample MACs;
* an invalid row holds -1 in every metric.
"""
from __future__ import annotations

import argparse
import faulthandler
import math
import sys

import numpy as np

import nasflops as nf

INT64_MAX = (1 << 63) - 1
ALLOWED = (ValueError, TypeError)
METRICS = ("ops", "macs", "params", "weight_bytes", "act_bytes", "peak_act_bytes", "read_bytes",
           "write_bytes")


class Fuzz:
    """Holds the seeded generator, the pristine architectures and the violations."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.violations: list[str] = []
        self.checked = 0
        self.archs = _pristine_archs()
        self.ref = [self.alone(a) for a in self.archs]

    # ------------------------------------------------------------- helpers
    def fail(self, case: str, why: str) -> None:
        self.violations.append(f"{case}: {why}")

    def alone(self, records, **opts):
        """One architecture scored from a private copy, as a dict of ints (or None)."""
        r = nf.score(nf.SpecBatch.from_list([np.array(records, copy=True)]), errors="status",
                     **opts)[0]
        return {m: int(r[m]) for m in METRICS} if int(r["status"]) == 0 else None

    def batch_of(self, idx):
        """Records and int64 offsets of the pristine architectures ``idx``."""
        parts = [self.archs[i] for i in idx]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        np.cumsum([len(p) for p in parts], out=offsets[1:])
        return np.concatenate(parts), offsets

    def call(self, case: str, fn, *, must_fail: bool = False):
        """``fn()``; an allowed error is ``None``, anything else a violation."""
        self.checked += 1
        try:
            out = fn()
        except ALLOWED:
            return None
        except Exception as e:  # noqa: BLE001 -- the point is to see every kind
            self.fail(case, f"raised {type(e).__name__}: {e}")
            return None
        if must_fail:
            self.fail(case, "accepted an input the contract refuses")
            return None
        return out

    def check_rows(self, case: str, r, expect: list, batch: int = 1, exact: bool = True) -> None:
        """Rows of ``r`` against the expected per-architecture results (all
        metrics with ``exact``, else MACs and params, other options applying)."""
        for i, want in enumerate(expect):
            row = r[i]
            got = {m: int(row[m]) for m in METRICS}
            if int(row["status"]) != 0:
                if any(v != -1 for v in got.values()):
                    self.fail(case, f"row {i}: invalid (status {int(row['status'])}) but metrics {got}")
                elif want is not None and batch * 8 * max(want.values()) <= INT64_MAX:
                    self.fail(case, f"row {i}: a valid architecture reported invalid "
                                    f"(status {int(row['status'])})")
                continue
            if want is None:
                self.fail(case, f"row {i}: status 0 for an architecture that is invalid alone")
            elif min(got.values()) < 0:
                self.fail(case, f"row {i}: negative metric with status 0: {got}")
            elif exact and got != want:
                self.fail(case, f"row {i}: {got} != alone {want}")
            elif got["macs"] != batch * want["macs"] or got["params"] != want["params"]:
                self.fail(case, f"row {i}: batch {batch} gives macs {got['macs']}, expected "
                                f"{batch} x {want['macs']}")

    def some(self, k_max: int = 6) -> list:
        return list(self.rng.integers(0, len(self.archs), size=int(self.rng.integers(1, k_max))))

    # ---------------------------------------------------------------- cases
    def reused_buffers(self) -> None:
        """The caller changes its offsets (or the batch's) after building a batch."""
        idx = self.some()
        records, offsets = self.batch_of(idx)
        mine = offsets.copy()
        b = self.call("SpecBatch(valid)", lambda: nf.SpecBatch(records, mine))
        if b is None:
            self.fail("SpecBatch(valid)", "refused a valid batch")
            return
        j = int(self.rng.integers(0, len(mine)))
        mine[j] = self.wild_offset(len(records))
        try:                           # the batch's own offsets: read-only, or a private copy
            b.offsets[int(self.rng.integers(0, len(b.offsets)))] = self.wild_offset(len(records))
        except ALLOWED:
            pass
        case = f"offsets reused (archs {idx}, offsets[{j}] = {mine[j]})"
        r = self.call(case, lambda: nf.score(b, errors="status"))
        if r is not None:
            self.check_rows(case, r, [self.ref[i] for i in idx])

    def wild_offset(self, n: int) -> int:
        return int(self.rng.choice([-3_000_000, -1, 0, 1, n - 1, n, n + 1, 1 << 40, -(1 << 62),
                                    int(self.rng.integers(0, n + 1))]))

    def swapped_arrays(self) -> None:
        """The batch's arrays replaced (a smaller or foreign record array, other offsets)."""
        idx = self.some()
        records, offsets = self.batch_of(idx)
        b = nf.SpecBatch(records, offsets)
        k = int(self.rng.integers(0, len(records)))
        kind = int(self.rng.integers(0, 3))
        try:
            if kind == 0:
                b.records = records[:k].copy()
            elif kind == 1:
                b.offsets = np.sort(self.rng.integers(-5, len(records) + 50, size=len(offsets)))
            else:
                b.records = np.zeros(k, dtype=nf.LAYER_DTYPE)
        except (AttributeError,) + ALLOWED:
            return                      # immutable batches are fine too
        case = f"arrays swapped (kind {kind}, k {k})"
        r = self.call(case, lambda: nf.score(b, errors="status"))
        if r is None:
            return
        recs, offs = np.array(b.records), np.array(b.offsets)
        expect = [self.alone(recs[offs[i]:offs[i + 1]]) if 0 <= offs[i] <= offs[i + 1] <= len(recs)
                  else "x" for i in range(len(offs) - 1)]
        if "x" in expect:
            self.fail(case, f"scored offsets {offs.tolist()} outside {len(recs)} records")
        else:
            self.check_rows(case, r, expect)

    def offsets_dtypes(self) -> None:
        """Offsets of every dtype and shape at construction."""
        idx = self.some()
        records, offsets = self.batch_of(idx)
        variants = {
            "float64": (offsets.astype(np.float64), True),
            "float32+0.5": (offsets.astype(np.float32) + 0.5, True),
            "int32": (offsets.astype(np.int32), False),
            "uint64": (offsets.astype(np.uint64), False),
            "int8": (offsets.astype(np.int8), False),
            "bool": (offsets.astype(bool), False),
            "object": (offsets.astype(object), False),
            "2-D": (offsets[None, :], False),
            "strided": (np.repeat(offsets, 2)[::2], False),
            "list": (offsets.tolist(), False),
            "empty": (np.zeros(0, dtype=np.int64), False),
            "random": (self.rng.integers(-10, len(records) + 10, size=len(offsets)), False),
        }
        name = list(variants)[int(self.rng.integers(0, len(variants)))]
        offs, must_fail = variants[name]
        case = f"offsets {name}"
        b = self.call(case, lambda: nf.SpecBatch(records, offs), must_fail=must_fail)
        if b is None:
            return
        r = self.call(case, lambda: nf.score(b, errors="status"))
        if r is not None:
            self.check_rows(case, r, [self.alone(b[i]) for i in range(len(b))])

    def records_dtypes(self) -> None:
        """Record arrays of other dtypes, layouts and byte orders."""
        idx = self.some(3)
        records, offsets = self.batch_of(idx)
        names = list(records.dtype.names)
        shuffled = np.dtype([(n, records.dtype[n]) for n in self.rng.permutation(names)])
        swapped = records.dtype.newbyteorder(">")
        variants = {
            "reordered fields": lambda: records.astype(shuffled),
            "big-endian": lambda: records.astype(swapped),
            "strided": lambda: np.repeat(records, 2)[::2],
            "bytes": lambda: records.view(np.uint8),
            "int64 matrix": lambda: np.zeros((len(records), 8), dtype=np.int64),
            "fortran 2-D": lambda: np.asfortranarray(np.stack([records, records], axis=1)),
        }
        name = list(variants)[int(self.rng.integers(0, len(variants)))]
        case = f"records {name}"
        recs = variants[name]()
        b = self.call(case, lambda: nf.SpecBatch(recs, offsets))
        if b is None:
            return
        r = self.call(case, lambda: nf.score(b, errors="status"))
        if r is not None:
            self.check_rows(case, r, [self.ref[i] for i in idx])

    def corrupt_fields(self) -> None:
        """One field of one layer set to an extreme value; the other rows untouched."""
        idx = self.some()
        records, offsets = self.batch_of(idx)
        a = int(self.rng.integers(0, len(idx)))
        layer = int(self.rng.integers(offsets[a], offsets[a + 1]))
        field = str(self.rng.choice(records.dtype.names))
        info = np.iinfo(records.dtype[field])
        value = int(self.rng.choice([0, -1, 1, 2, 3, 7, info.max, info.min, info.max // 2,
                                     int(self.rng.integers(info.min, info.max, endpoint=True))]))
        records[field][layer] = max(info.min, min(info.max, value))
        case = f"arch {a} layer {layer - offsets[a]} {field}={records[field][layer]}"
        expect = [self.ref[i] for i in idx]
        expect[a] = self.alone(records[offsets[a]:offsets[a + 1]])
        r = self.call(case, lambda: nf.score(nf.SpecBatch(records, offsets), errors="status"))
        if r is not None:
            self.check_rows(case, r, expect)
        table = self.call(case + " (layer_table)",
                          lambda: nf.layer_table(records[offsets[a]:offsets[a + 1]]))
        if table is not None and expect[a] is None:
            self.fail(case, "layer_table accepted an architecture that score refuses")

    def options(self) -> None:
        """Batch sizes, element types, conventions, devices, jobs and chunks."""
        rng = self.rng
        idx = self.some()
        records, offsets = self.batch_of(idx)
        bs = [1, 2, 7, 1 << 20, 1 << 31, (1 << 31) + 1, 0, -1, 1.5, 2.0, "3", True, np.int64(4),
              1 << 63, float("nan")][int(rng.integers(0, 15))]
        wd = ["fp32", "fp16", "bf16", "int8", "fp64", "fp13", None, 3][int(rng.integers(0, 8))]
        conv = ["macs", "flops", "fma2", "thop", "ptflops", "fvcore", "nb201", "ofa", "gflops",
                None][int(rng.integers(0, 10))]
        good_bs = isinstance(bs, (int, np.integer)) and not isinstance(bs, bool) and bs >= 1
        case = f"options batch_size={bs!r} dtype={wd!r} convention={conv!r}"
        must_fail = not isinstance(bs, (int, np.integer)) or isinstance(bs, bool) \
            or (isinstance(bs, float) and not bs.is_integer())
        kw = dict(batch_size=bs, weight_dtype=wd, act_dtype=wd, convention=conv,
                  n_jobs=int(rng.integers(1, 3)), chunk_size=[None, 1, 3][int(rng.integers(0, 3))])
        r = self.call(case, lambda: nf.score(nf.SpecBatch(records, offsets), errors="status", **kw),
                      must_fail=must_fail)
        if r is not None and good_bs:
            self.check_rows(case, r, [self.ref[i] for i in idx], batch=int(bs), exact=False)
        peak, bw = (float(rng.choice([1e9, 0.0, -1.0, math.nan, math.inf, 1e-300])) for _ in "pb")
        bad = not (math.isfinite(peak) and math.isfinite(bw) and peak > 0 and bw > 0)
        dev = self.call(f"Device({peak}, {bw})", lambda: nf.Device("d", peak, bw), must_fail=bad)
        if dev is not None:
            r = self.call(f"device {peak} {bw}",
                          lambda: nf.score(nf.SpecBatch(records, offsets), device=dev))
            if r is not None and not np.all(np.isfinite(r["latency_s"]) & (r["latency_s"] > 0)):
                self.fail(f"device {peak} {bw}", f"latency {r['latency_s'].tolist()}")


def _pristine_archs() -> list:
    """A few valid architectures: NAS-Bench-201 cells and hand-built DAGs."""
    archs = list(nf.get_space("nb201").sample(4, seed=0))
    net = nf.Net(3, 16, 16)
    x = net.act(net.bn(net.conv(net.input, 8, 3, padding=1)), "relu")
    y = net.bn(net.conv(x, 8, 3, padding=1))
    x = net.add(x, y)
    g = net.act(net.conv(net.global_avgpool(x), 8, 1, bias=True), "sigmoid")
    x = net.concat(net.mul(x, g), x)
    x = net.maxpool(x, 2)
    net.linear(net.flatten(net.global_avgpool(x)), 10)
    archs.append(net.records)
    small = nf.Net(1, 4, 4)
    small.avgpool(small.conv(small.input, 2, 1, groups=1), 2)
    archs.append(small.records)
    return [np.array(a, copy=True) for a in archs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=300, help="rounds of each case")
    args = p.parse_args(argv)
    faulthandler.enable()          # a crash prints where it happened
    fz = Fuzz(args.seed)
    cases = [fz.reused_buffers, fz.swapped_arrays, fz.offsets_dtypes, fz.records_dtypes,
             fz.corrupt_fields, fz.options]
    for _ in range(args.rounds):
        for case in cases:
            case()
    for v in fz.violations[:50]:
        print(v)
    print(f"fuzz: seed {args.seed}, {fz.checked} calls, {len(fz.violations)} violations "
          f"(nasflops at {nf.__file__})")
    return 1 if fz.violations else 0


if __name__ == "__main__":
    sys.exit(main())
