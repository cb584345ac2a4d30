"""The synthetic :class:`ChainSpace` the pipeline, storage, budget, analytics
and cluster tests share: a chain of three conv stages with sampled widths,
kernels and resolution, independent of the real spaces, with a closed form
for its MACs (:func:`hand_macs`)."""
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nasflops.search_spaces import NativeError, SearchSpace
from nasflops.spec import Act, Flag, Op, SpecBatch, empty_records

WIDTHS = np.array([8, 16, 24])
KERNELS = np.array([1, 3, 5])
RES = np.array([16, 24, 32])
STAGES = 3
LAYERS = 1 + 3 * STAGES + 3        # input, (conv, bn, relu) x 3, pool, flatten, linear


class ChainSpace(SearchSpace):
    """Toy space: input r x r, three (conv k x k stride 2 -> bn -> relu) stages
    of widths w, global pool, linear to 10 classes.

    ``invalid`` marks candidates whose resolution is 0 (status ``bad_value``)
    with that probability; ``delay`` sleeps in every ``encode_columns`` call
    (to make a run slow enough to kill).
    """

    name = "chain"
    reference = "synthetic test space"
    native_columns = {"w": "stage widths", "k": "stage kernels", "r": "resolution"}
    native_example = "{'w': [8, 16, 24], 'k': [3, 3, 5], 'r': 32}"

    def __init__(self, invalid: float = 0.0, delay: float = 0.0):
        self.invalid = float(invalid)
        self.delay = float(delay)

    @property
    def params(self):
        return {"invalid": self.invalid}

    @property
    def size(self):
        return len(WIDTHS) ** STAGES * len(KERNELS) ** STAGES * len(RES)

    def _sample_block(self, rng, n):
        w = WIDTHS[rng.integers(0, 3, size=(n, STAGES))]
        k = KERNELS[rng.integers(0, 3, size=(n, STAGES))]
        r = RES[rng.integers(0, 3, size=n)]
        if self.invalid:
            r = np.where(rng.random(n) < self.invalid, 0, r)
        return {"w": w.astype(np.int32), "k": k.astype(np.int32), "r": r.astype(np.int32)}

    def _enumerate_block(self, start, stop):
        idx = np.arange(start, stop, dtype=np.int64)
        digits = []
        for _ in range(2 * STAGES + 1):
            digits.append(idx % 3)
            idx //= 3
        d = np.stack(digits, axis=1)
        return {"w": WIDTHS[d[:, :STAGES]].astype(np.int32),
                "k": KERNELS[d[:, STAGES:2 * STAGES]].astype(np.int32),
                "r": RES[d[:, 2 * STAGES]].astype(np.int32)}

    def encode_columns(self, cols):
        if self.delay:
            time.sleep(self.delay)
        w, k, r = np.asarray(cols["w"]), np.asarray(cols["k"]), np.asarray(cols["r"])
        n = len(r)
        rec = empty_records(n * LAYERS).reshape(n, LAYERS)
        rec[:, 0]["op"] = Op.INPUT
        rec[:, 0]["out_channels"] = 3
        rec[:, 0]["size_h"] = r
        rec[:, 0]["size_w"] = r
        for s in range(STAGES):
            c, b, a = 1 + 3 * s, 2 + 3 * s, 3 + 3 * s
            rec[:, c]["op"] = Op.CONV2D
            rec[:, c]["out_channels"] = w[:, s]
            for f in ("kernel_h", "kernel_w"):
                rec[:, c][f] = k[:, s]
            for f in ("pad_h", "pad_w"):
                rec[:, c][f] = k[:, s] // 2
            for f in ("stride_h", "stride_w", "dilation_h", "dilation_w"):
                rec[:, c][f] = 2 if f.startswith("stride") else 1
            rec[:, c]["groups"] = 1
            rec[:, c]["input0"] = c - 1
            rec[:, b]["op"] = Op.BATCHNORM
            rec[:, b]["flags"] = Flag.AFFINE
            rec[:, b]["input0"] = c
            rec[:, a]["op"] = Op.ACT
            rec[:, a]["act"] = Act.RELU
            rec[:, a]["flags"] = Flag.INPLACE
            rec[:, a]["input0"] = b
        p, f, li = LAYERS - 3, LAYERS - 2, LAYERS - 1
        rec[:, p]["op"] = Op.ADAPTIVE_AVGPOOL
        rec[:, p]["size_h"] = rec[:, p]["size_w"] = 1
        rec[:, p]["input0"] = p - 1
        rec[:, f]["op"] = Op.FLATTEN
        rec[:, f]["input0"] = p
        rec[:, li]["op"] = Op.LINEAR
        rec[:, li]["out_channels"] = 10
        rec[:, li]["flags"] = Flag.BIAS
        rec[:, li]["input0"] = f
        return SpecBatch(rec.reshape(-1), np.arange(n + 1, dtype=np.int64) * LAYERS)

    def to_columns(self, natives):
        for i, d in enumerate(natives):
            if set(d) != {"w", "k", "r"}:
                raise NativeError(self.name, i, "keys", f"expected w, k, r; got {sorted(d)}")
        return {"w": np.array([d["w"] for d in natives], dtype=np.int32).reshape(-1, STAGES),
                "k": np.array([d["k"] for d in natives], dtype=np.int32).reshape(-1, STAGES),
                "r": np.array([d["r"] for d in natives], dtype=np.int32)}

    def from_columns(self, cols):
        return [{"w": w.tolist(), "k": k.tolist(), "r": int(r)}
                for w, k, r in zip(cols["w"], cols["k"], cols["r"])]

    def arrow_columns(self, cols):
        def lists(a):
            a = np.ascontiguousarray(a, dtype=np.int32)
            return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])
        return {"w": lists(cols["w"]), "k": lists(cols["k"]),
                "r": pa.array(np.asarray(cols["r"], dtype=np.int32))}


def hand_macs(w, k, r):
    """MACs of one ChainSpace candidate, by the closed formula (out = ceil(in / 2))."""
    cin, h, macs = 3, r, 0
    for s in range(STAGES):
        h = (h + 2 * (k[s] // 2) - k[s]) // 2 + 1
        macs += h * h * w[s] * cin * k[s] * k[s]
        cin = w[s]
    return macs + cin * 10


def sorted_table(t):
    return t.take(pc.sort_indices(t, sort_keys=[("arch_id", "ascending")]))


def assert_tables_equal(a, b):
    a, b = sorted_table(a), sorted_table(b)
    assert a.schema.remove_metadata() == b.schema.remove_metadata()
    assert a.num_rows == b.num_rows
    for name in a.column_names:
        assert a.column(name).combine_chunks().equals(b.column(name).combine_chunks()), name
