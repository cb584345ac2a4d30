"""Reading the natives of a declarative space back from layer records.

A candidate's records are its templates, slot after slot.  Templates are
position independent (inputs relative to each record), so after rewriting a
batch's inputs the same way, "does template t sit at record o of this
candidate" is an equality of record runs.  Runs are compared through a
polynomial hash over 64-bit record hashes (prefix sums, mod 2**64): one
vectorised comparison per slot and template, for the whole batch.  Slots are
read greedily left to right (a non-empty template before an empty one), the
template ids are turned back into choices, and the result is verified by
re-encoding, so a hash collision or a foreign candidate can only end in a
:class:`NativeError`, never in a wrong answer.
"""
from __future__ import annotations

import numpy as np

from nasflops.spec import INPUT_FIELDS, LAYER_DTYPE, SpecBatch
from ..columns import NativeError
from ..templates import UNUSED

__all__ = ["decode_batch"]

_WORDS = LAYER_DTYPE.itemsize // 8
assert LAYER_DTYPE.itemsize % 8 == 0 or LAYER_DTYPE.itemsize % 4 == 0
_P = np.uint64(0x9E3779B97F4A7C15)          # odd: invertible mod 2**64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
_MIX = np.array([0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93,
                 0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3,
                 0x589965CC75374CC3, 0x1D8E4E27C47D124F], dtype=np.uint64)


def _record_hashes(records: np.ndarray) -> np.ndarray:
    """A 64-bit hash of every record (all fields, as stored)."""
    raw = np.ascontiguousarray(records).view(np.uint8).reshape(len(records), -1)
    pad = (-raw.shape[1]) % 8
    if pad:
        raw = np.concatenate([raw, np.zeros((len(records), pad), np.uint8)], axis=1)
    words = raw.view(np.uint64)
    with np.errstate(over="ignore"):
        h = (words * _MIX[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
        h ^= h >> np.uint64(31)
        h *= _MIX[0]
        h ^= h >> np.uint64(29)
    return h


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(over="ignore"):
        p = np.full(n + 1, _P, dtype=np.uint64)
        p[0] = 1
        p = np.cumprod(p, dtype=np.uint64)
        q = np.full(n + 1, _P_INV, dtype=np.uint64)
        q[0] = 1
        q = np.cumprod(q, dtype=np.uint64)
    return p, q


class _RunHashes:
    """Hash of any run ``records[o : o + L]``, as if the run started at 0."""

    def __init__(self, h: np.ndarray):
        self.pw, self.inv = _powers(len(h))
        with np.errstate(over="ignore"):
            self.prefix = np.zeros(len(h) + 1, dtype=np.uint64)
            np.cumsum(h * self.pw[:-1], out=self.prefix[1:], dtype=np.uint64)

    def __call__(self, start: np.ndarray, length) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (self.prefix[start + length] - self.prefix[start]) * self.inv[start]


def _relative(batch: SpecBatch) -> np.ndarray:
    """The batch's records with inputs relative to each record (as templates store them)."""
    rec = batch.records.copy()
    arch = np.repeat(np.arange(len(batch)), batch.lengths)
    local = np.arange(len(rec)) - batch.offsets[:-1][arch]
    for f in INPUT_FIELDS:
        used = rec[f] >= 0
        rec[f] = np.where(used, rec[f] - local, UNUSED)
    return rec


def _template_hashes(space) -> np.ndarray:
    """``(n_templates, n_res)`` hash of every template with its patches applied."""
    pool = space._pool
    n_res = len(space.resolutions)
    runs = _RunHashes(_record_hashes(pool.records))
    base = runs(pool.starts, pool.lengths)
    out = np.repeat(base[:, None], n_res, axis=1)
    # resolution-dependent fields: the stem's input size, and the patches
    patched = [(int(space._stem_tid), 0, "input")] + [
        (int(t), int(p), "patch") for t, p in zip(*np.nonzero(pool.patch_local >= 0))]
    for t, p, kind in patched:
        local = 0 if kind == "input" else int(pool.patch_local[t, p])
        at = int(pool.starts[t]) + local
        for ri in range(n_res):
            rec = pool.records[at:at + 1].copy()
            if kind == "input":
                rec["size_h"] = rec["size_w"] = space.resolutions[ri]
            else:
                rec["size_h"] = pool.patch_val[t, p, ri]
            with np.errstate(over="ignore"):
                delta = (_record_hashes(rec)[0] - _record_hashes(pool.records[at:at + 1])[0]) \
                    * runs.pw[local]
                out[t, ri] += delta
    return out


def _read_slots(space, batch: SpecBatch, r_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Template id of every slot of every candidate, and whether the parse
    consumed each candidate exactly."""
    pool = space._pool
    n = len(batch)
    runs = _RunHashes(_record_hashes(_relative(batch)))
    th = _template_hashes(space)
    end = batch.offsets[1:]
    pos = batch.offsets[:-1].copy()
    ok = np.ones(n, dtype=bool)
    tids = np.empty((n, space.n_positions + 2), dtype=np.int64)

    def take(slot: int, candidates: np.ndarray, allow_empty: bool) -> None:
        nonlocal pos
        chosen = np.full(n, -1, dtype=np.int64)
        for t in candidates:
            L = int(pool.lengths[t])
            if L == 0:
                continue
            fits = (chosen < 0) & (pos + L <= end)
            at = np.where(fits, pos, 0)
            hit = fits & (runs(at, L) == th[t, r_idx])
            chosen[hit] = t
        if allow_empty:
            chosen[chosen < 0] = space._empty_tid
        ok[chosen < 0] = False
        chosen[chosen < 0] = space._empty_tid
        tids[:, slot] = chosen
        pos = pos + pool.lengths[chosen]

    take(0, np.array([space._stem_tid]), False)
    for p in range(space.n_positions):
        size = int(np.prod(space._radix[p]))
        take(1 + p, space._base[p] + np.arange(size), True)
    heads = space._head_base + np.arange(len(space.spec["stages"][-1]["widths"]))
    take(space.n_positions + 1, heads, False)
    return tids, ok & (pos == end)


def _choices_of(space, tids: np.ndarray) -> dict[str, np.ndarray]:
    """Choice indices of every column from template ids (the encoder's mixed
    radix, read backwards); unused positions get the first choice."""
    n, P = tids.shape[0], space.n_positions
    block = tids[:, 1:-1]
    used = block != space._empty_tid
    local = np.where(used, block - space._base, 0)
    w_out = local % space._nw
    local //= space._nw
    local //= space._nwin
    e_i = local % space._ne
    local //= space._ne
    k_i = local % space._nk
    t_i = local // space._nk
    pos_stage, pos_in = space._pos_stage, space._pos_in_stage
    # a stage's depth: the smallest choice covering its last used position
    last = np.zeros((n, space.n_stages), dtype=np.int64)
    np.maximum.at(last, (np.nonzero(used)[0], pos_stage[np.nonzero(used)[1]]),
                  pos_in[np.nonzero(used)[1]] + 1)
    d_i = np.zeros((n, space.n_stages), dtype=np.int64)
    w_i = np.zeros((n, space.n_stages), dtype=np.int64)
    for s, depths in enumerate(space._depths):
        order = np.argsort(depths)
        k = np.searchsorted(depths[order], last[:, s])
        d_i[:, s] = order[np.minimum(k, len(depths) - 1)]
        first = int(space._stage_pos[s])
        w_i[:, s] = w_out[:, first]
    skip = space.block_types.index("skip") if "skip" in space.block_types else -1
    # empty positions inside the depth are skips (their kernel/expand: first choices)
    inside = pos_in[None, :] < np.asarray([d[d_i[:, s]] for s, d in enumerate(space._depths)]).T[:, pos_stage]
    t_local = np.where(used, t_i, 0)
    if skip >= 0:
        skip_local = np.array([sd["types"].index("skip") if "skip" in sd["types"] else 0
                               for sd in space.spec["stages"]])[pos_stage]
        t_local = np.where(~used & inside, skip_local[None, :], t_local)
    return {"op": t_local, "ks": np.where(used, k_i, 0), "e": np.where(used, e_i, 0),
            "d": d_i, "w": w_i}


def decode_batch(space, batch: SpecBatch) -> dict[str, np.ndarray]:
    """Native columns of ``space`` read back from ``batch`` (see the module docstring)."""
    n = len(batch)
    if n == 0:
        return space._sample_block(np.random.default_rng(0), 0)
    if (batch.lengths == 0).any():
        raise NativeError(space.name, int(np.argmax(batch.lengths == 0)), "records",
                          "empty architecture")
    res = batch.records["size_h"][batch.offsets[:-1]].astype(np.int64)
    r_idx = np.clip(np.searchsorted(space.resolutions, res), 0, len(space.resolutions) - 1)
    ok = space.resolutions[r_idx] == res
    tids, parsed = _read_slots(space, batch, r_idx)
    ok &= parsed
    if not ok.all():
        raise NativeError(space.name, int(np.argmax(~ok)), "records",
                          f"not an architecture of {space!r}: its records are not this space's "
                          "templates")
    idx = _choices_of(space, tids)
    cols = space.columns_from_indices(idx, r_idx)
    return space._verify_decoded(batch, cols)
