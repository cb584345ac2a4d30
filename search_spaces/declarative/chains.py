"""The trellis of a declarative space: its choices as a layered graph.

A candidate of a declarative space is, per input resolution (the *group*),
a path through these steps (see :class:`~..tables.Trellis`):

``stem``
    one edge, the stem template.
``stage s, block i`` (one step per position of the stage)
    states ``(width, phase)``, phase *active* or *ended*.  At block 0 the
    edges go from the previous stage's width (the input width) to every
    width of the stage, one per block type (never skip), kernel and
    expansion: the position's template.  At block ``i > 0``, from *active*:
    a block (same width), a skip (encodings only: its kernel and expansion
    entries are unused but encoded), or *end* -- the stage stops at depth
    ``i``, and the entries of the positions left (``(types x kernels x
    expansions) ** (max depth - i)`` encodings) are unused; from *ended*:
    nothing more.
``stage s, close``
    back to the width alone (depth = the largest choice when still active).
``head``
    from the last stage's width, the head template.

As distinct networks (``size``), a network is its sequence of non-skip
blocks: skip edges are absent, the stage may end at any length its depths
(padded with skips) allow, and choices that write identical blocks (a
conv's unused expansion; two expansions rounded to one width) are one
network.  As native encodings (``n_encodings``), every
entry of every column counts.  Each edge's values are the block table's
row of its template (``TemplatePool.slot_table``), so every metric of a path
is the record core's (tested).
"""
from __future__ import annotations

import numpy as np

from typing import Optional

from nasflops.engine import METRICS
from nasflops.options import ScoringOptions
from ..tables import SlotTable, Step, Trellis

__all__ = ["build_trellis", "BLOCK", "SKIP", "END", "PASS", "CLOSE", "HEAD", "STEM"]

# edge kinds (label column 0)
STEM, BLOCK, SKIP, END, PASS, CLOSE, HEAD = range(7)
_M = len(METRICS)


class _Edges:
    """Edges of one step, collected one by one (values from the block table,
    zeros without one: the structure alone, for counting)."""

    def __init__(self, table: Optional[SlotTable], n_groups: int):
        self.table = table
        self.G = n_groups
        self.rows: list = []

    def add(self, src: int, dst: int, tid, net: int, enc: int, label) -> None:
        self.rows.append((src, dst, tid, net, enc, tuple(label) + (0,) * (7 - len(label))))

    def step(self, n_in: int, n_out: int, name: str) -> Step:
        rows = [r for r in self.rows if r[3] or r[4]]
        src = np.array([r[0] for r in rows], dtype=np.int64)
        dst = np.array([r[1] for r in rows], dtype=np.int64)
        values = np.zeros((len(rows), self.G, _M), dtype=np.int64)
        for i, r in enumerate(rows):
            if r[2] is not None and self.table is not None:
                values[i] = self.table.values[r[2]]
        mult = np.array([[r[3], r[4]] for r in rows], dtype=np.uint64).reshape(-1, 2)
        label = np.array([r[5] for r in rows], dtype=np.int64).reshape(-1, 7)
        return Step(n_in, n_out, src, dst, values, mult, label, name)


def _content_keys(space) -> list:
    """Per template, its records and patches as bytes: equal keys, same network."""
    pool = space._pool
    out = []
    for t in range(len(pool.lengths)):
        rec = pool.records[pool.starts[t]:pool.starts[t] + pool.lengths[t]]
        out.append(rec.tobytes() + pool.patch_local[t].tobytes() + pool.patch_val[t].tobytes())
    return out


def _stage_steps(space, table: Optional[SlotTable], s: int, n_prev: int, keys: list) -> list:
    """The steps of stage ``s``: one per position, then the close."""
    sd = space.spec["stages"][s]
    types, nk, ne, nw = sd["types"], len(sd["kernels"]), len(sd["expands"]), len(sd["widths"])
    depths, m = sd["depths"], max(sd["depths"])
    skip = types.index("skip") if "skip" in types else -1
    lengths = set(range(1, m + 1)) if skip >= 0 else set(depths)
    per_pos = len(types) * nk * ne
    steps = []
    for i in range(m):
        p = int(space._stage_pos[s]) + i
        nt_, nk_, ne_, nwin, nw_ = space._radix[p]
        ed = _Edges(table, len(space.resolutions))
        ins = range(n_prev) if i == 0 else range(nw)
        for a in ins:
            w_from = None if i == 0 else a
            for w in (range(nw) if i == 0 else [w_from]):
                src = a if i == 0 else 2 * a
                seen = set()       # one network per distinct block (e.g. a conv's unused expansion)
                for t in range(len(types)):
                    for k in range(nk):
                        for e in range(ne):
                            win = a if (i == 0 and nwin > 1) else 0
                            tid = int(space._base[p]) + (((t * nk_ + k) * ne_ + e) * nwin + win) * nw_ + w
                            if t == skip:
                                if i > 0:
                                    ed.add(src, 2 * w, None, 0, 1, (SKIP, p, t, k, e, w))
                                continue
                            canon = int(keys[tid] not in seen)
                            seen.add(keys[tid])
                            ed.add(src, 2 * w, tid, canon, 1, (BLOCK, p, t, k, e, w))
                if i > 0:
                    enc = per_pos ** (m - i) if i in depths else 0
                    ed.add(2 * w, 2 * w + 1, None, int(i in lengths), enc, (END, s, i, 0, 0, w))
                    ed.add(2 * w + 1, 2 * w + 1, None, 1, 1, (PASS,))
        steps.append(ed.step(n_prev if i == 0 else 2 * nw, 2 * nw, f"stage {s}, block {i}"))
    ed = _Edges(table, len(space.resolutions))
    for w in range(nw):
        ed.add(2 * w, w, None, 1, 1, (CLOSE, s, m, 0, 0, w))
        ed.add(2 * w + 1, w, None, 1, 1, (PASS,))
    steps.append(ed.step(2 * nw, nw, f"stage {s}, close"))
    return steps


def build_trellis(space, table: Optional[SlotTable]) -> Trellis:
    """The trellis of a :class:`~.space.DeclarativeSpace` over its block table
    (None: the structure alone, every value zero, for counting paths)."""
    keys = _content_keys(space)
    G = len(space.resolutions)
    ed = _Edges(table, G)
    ed.add(0, 0, space._stem_tid, 1, 1, (STEM,))
    steps = [ed.step(1, 1, "stem")]
    n_prev = 1
    for s in range(space.n_stages):
        steps += _stage_steps(space, table, s, n_prev, keys)
        n_prev = len(space.spec["stages"][s]["widths"])
    ed = _Edges(table, G)
    for w in range(n_prev):
        ed.add(w, 0, space._head_base + w, 1, 1, (HEAD, w))
    steps.append(ed.step(n_prev, 1, "head"))
    exact = frozenset() if table is None else frozenset(
        m for m in METRICS if m != "peak_act_bytes" or table.peak_exact)
    return Trellis(steps, "r", space.resolutions.copy(), exact,
                   lambda path, subs, groups: decode_paths(space, steps, path, subs, groups),
                   table.options if table is not None else ScoringOptions.make())


def decode_paths(space, steps: list, path: np.ndarray, subs: np.ndarray,
                 groups: np.ndarray) -> dict:
    """Native columns of trellis paths (positions a path leaves unused take
    their first choices, or the choices its encoding sub-index names)."""
    n, P, S = len(groups), space.n_positions, space.n_stages
    idx = {c: np.zeros((n, P), dtype=np.int64) for c in ("op", "ks", "e")}
    idx.update({c: np.zeros((n, S), dtype=np.int64) for c in ("d", "w")})
    rows = np.arange(n)
    for k, step in enumerate(steps):
        lab = step.label[path[:, k]]
        kind = lab[:, 0]
        for sel in (kind == BLOCK, kind == SKIP):
            p = lab[sel, 1]
            for c, j in (("op", 2), ("ks", 3), ("e", 4)):
                idx[c][rows[sel], p] = lab[sel, j]
            idx["w"][rows[sel], space._pos_stage[p]] = lab[sel, 5]
        for kd in (END, CLOSE):
            sel = np.flatnonzero(kind == kd)
            if sel.size:
                _decode_end(space, idx, sel, lab[sel], subs[sel, k])
    return space.columns_from_indices(idx, groups)


def _decode_end(space, idx: dict, sel: np.ndarray, lab: np.ndarray, sub: np.ndarray) -> None:
    """A stage that ends at depth ``i``: its depth choice, skips up to the
    smallest depth choice covering ``i``, and the unused entries beyond it
    (mixed radix of the encoding sub-index)."""
    for s in np.unique(lab[:, 1]):
        here = lab[:, 1] == s
        sd = space.spec["stages"][s]
        depths = np.asarray(sd["depths"])
        ii = lab[here, 2]
        order = np.argsort(depths)
        d = depths[order][np.searchsorted(depths[order], ii)]
        rows = sel[here]
        idx["d"][rows, s] = order[np.searchsorted(depths[order], d)]
        base = int(space._stage_pos[s])
        types = sd["types"]
        nt, nk, ne = len(types), len(sd["kernels"]), len(sd["expands"])
        rest = sub[here].astype(object)
        for q in range(max(depths)):
            pad = (q >= ii) & (q < d)
            if "skip" in types:
                idx["op"][rows[pad], base + q] = types.index("skip")
            free = q >= d
            if free.any():
                v = np.array([int(x) % (nt * nk * ne) for x in rest[free]], dtype=np.int64)
                rest[free] = rest[free] // (nt * nk * ne)
                idx["op"][rows[free], base + q] = v // (nk * ne)
                idx["ks"][rows[free], base + q] = (v // ne) % nk
                idx["e"][rows[free], base + q] = v % ne
