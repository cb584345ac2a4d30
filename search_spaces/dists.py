"""Exact distributions: distinct integer values, each with an exact count.

A :class:`Dist` holds ascending int64 ``values`` and their ``counts`` as
unsigned 128-bit integers (an ``(n, 2)`` uint64 array: low word, high word),
so a count over ~5e20 OFA networks is exact; :func:`as_ints` turns counts
into Python ints.  :func:`combine` is the step of every dynamic program in
``exact.py``: the union of shifted, scaled distributions, by sum (additive
metrics) or by maximum (the peak), accumulated on a dense lattice when its
span is small and merged by sorting otherwise.  Sizes beyond
:data:`DENSE_LIMIT` / :data:`SPARSE_LIMIT` raise :class:`TooLarge` rather
than exhaust memory; every count is checked for 128-bit overflow.
"""
from __future__ import annotations

import math
from typing import Iterable, Optional, Sequence

import numpy as np

from . import _dist
from .tables import NotDecomposable

__all__ = ["Dist", "combine", "TooLarge", "as_ints", "as_int", "from_ints", "DENSE_LIMIT",
           "SPARSE_LIMIT", "pair_cdf"]

#: lattice points a dense accumulator may span (16 bytes each)
DENSE_LIMIT = 1 << 24
#: entries a sparse (sorting) merge may hold
SPARSE_LIMIT = 1 << 24
_I64 = (-(1 << 63), (1 << 63) - 1)


class TooLarge(NotDecomposable):
    """A distribution with more distinct values than the limits allow."""


def as_int(c) -> int:
    """One 128-bit count (``[low, high]``) as a Python int.

    >>> as_int(np.array([5, 1], dtype=np.uint64)) == 5 + 2**64
    True
    """
    return int(c[0]) | (int(c[1]) << 64)


def as_ints(counts: np.ndarray) -> np.ndarray:
    """128-bit counts as an int64 array when they fit, else Python ints (object).

    >>> as_ints(np.array([[3, 0], [0, 1]], dtype=np.uint64)).tolist() == [3, 2**64]
    True
    """
    counts = np.asarray(counts, dtype=np.uint64).reshape(-1, 2)
    if not counts[:, 1].any() and (counts[:, 0] < (1 << 63)).all():
        return counts[:, 0].astype(np.int64)
    return counts[:, 0].astype(object) + (counts[:, 1].astype(object) << 64)


def from_ints(values: Iterable[int]) -> np.ndarray:
    """Python ints (0 .. 2**128 - 1) as an ``(n, 2)`` uint64 count array."""
    vals = [int(v) for v in values]
    if any(v < 0 or v >> 128 for v in vals):
        raise OverflowError("counts must lie in 0 .. 2**128 - 1")
    out = np.empty((len(vals), 2), dtype=np.uint64)
    out[:, 0] = [v & ((1 << 64) - 1) for v in vals]
    out[:, 1] = [v >> 64 for v in vals]
    return out


class Dist:
    """An exact distribution: ascending distinct ``values`` with 128-bit ``counts``.

    Examples
    --------
    >>> a = Dist(np.array([0, 10]), from_ints([1, 2]))
    >>> b = combine([(a, 5, 3), (a, 0, 1)])            # 3 copies shifted by 5, plus a
    >>> b.values.tolist(), as_ints(b.counts).tolist(), b.total
    ([0, 5, 10, 15], [1, 3, 2, 6], 12)
    >>> b.cdf([4, 10]), b.count_le(100)
    ([1, 6], 12)
    """

    __slots__ = ("values", "counts", "_g", "_cum")

    def __init__(self, values: np.ndarray, counts: np.ndarray):
        self.values = np.ascontiguousarray(values, dtype=np.int64)
        self.counts = np.ascontiguousarray(counts, dtype=np.uint64).reshape(-1, 2)
        self._g: Optional[int] = None
        self._cum: Optional[np.ndarray] = None

    @classmethod
    def point(cls, value: int = 0, count: int = 1) -> "Dist":
        """All mass on one value."""
        return cls(np.array([value], dtype=np.int64), from_ints([count]))

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        if not len(self):
            return "Dist(empty)"
        return f"Dist({len(self):,} values in {self.values[0]}..{self.values[-1]}, total {self.total:,})"

    @property
    def nbytes(self) -> int:
        """Memory held, bytes."""
        return self.values.nbytes + self.counts.nbytes

    @property
    def step(self) -> int:
        """The largest lattice step: gcd of the differences between values (1 alone)."""
        if self._g is None:
            d = np.diff(self.values)
            self._g = int(np.gcd.reduce(d)) if d.size else 0
        return self._g

    def cumulative(self) -> np.ndarray:
        """Inclusive cumulative counts, ``(n, 2)`` uint64."""
        if self._cum is None:
            cum = np.empty_like(self.counts)
            if _dist.cumsum(self.counts, cum):
                raise OverflowError("a total count exceeds 2**128")
            self._cum = cum
        return self._cum

    @property
    def total(self) -> int:
        """The number of candidates (a Python int)."""
        return as_int(self.cumulative()[-1]) if len(self) else 0

    def cdf(self, points: Sequence[int]) -> list:
        """Exact counts of values ``<= p`` for each point, as Python ints."""
        if not len(self):
            return [0] * len(points)
        idx = np.searchsorted(self.values, np.asarray(points, dtype=np.int64), side="right") - 1
        cum = self.cumulative()
        return [as_int(cum[i]) if i >= 0 else 0 for i in idx.tolist()]

    def count_le(self, bound: int) -> int:
        """Exact count of values ``<= bound``."""
        return self.cdf([min(int(bound), _I64[1])])[0]

    def take(self, keep: np.ndarray) -> "Dist":
        """The values selected by a mask or indices, with their counts."""
        return Dist(self.values[keep], self.counts[keep])


def _scaled(counts: np.ndarray, mult: int) -> np.ndarray:
    out = np.zeros_like(counts)
    n = len(counts)
    if _dist.accumulate(np.arange(n, dtype=np.int64), counts, 1, 0, np.uint64(mult), out):
        raise OverflowError("a count exceeds 2**128")
    return out


def _merge_sorted(keys: np.ndarray, counts: np.ndarray) -> Dist:
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], np.ascontiguousarray(counts[order])
    out_k = np.empty_like(keys)
    out_c = np.empty_like(counts)
    m = _dist.sum_runs(keys, counts, out_k, out_c)
    if m < 0:
        raise OverflowError("a count exceeds 2**128")
    return Dist(out_k[:m], out_c[:m])


def _check_range(lo: int, hi: int) -> None:
    if lo < _I64[0] or hi > _I64[1]:
        raise OverflowError("a metric total exceeds int64")


def _combine_sum(parts, limit: int, what: str) -> Dist:
    lo = min(int(d.values[0]) + s for d, s, _ in parts)
    hi = max(int(d.values[-1]) + s for d, s, _ in parts)
    _check_range(lo, hi)
    g = 0
    for d, s, _ in parts:
        g = math.gcd(g, d.step, int(d.values[0]) + s - lo)
    span = (hi - lo) // g + 1 if g else 1
    if span <= limit:
        acc = np.zeros((span, 2), dtype=np.uint64)
        for d, s, m in parts:
            gd = d.step or g or 1
            k = (d.values - d.values[0]) // gd if d.step else np.zeros(len(d), dtype=np.int64)
            a, b = (gd // g if g else 0), ((int(d.values[0]) + s - lo) // g if g else 0)
            if _dist.accumulate(k, d.counts, a, b, np.uint64(m), acc):
                raise OverflowError("a count exceeds 2**128")
        nz = np.flatnonzero(acc[:, 0] | acc[:, 1])
        return Dist(lo + nz * g, acc[nz])
    n = sum(len(d) for d, _, _ in parts)
    if n > SPARSE_LIMIT:
        raise TooLarge(f"{what}: a distribution spanning {span:,} values in steps of {g:,} "
                       f"({n:,} entries to merge) exceeds the exact profile's limits "
                       f"({limit:,} lattice points, {SPARSE_LIMIT:,} entries)")
    keys = np.concatenate([d.values + s for d, s, _ in parts])
    counts = np.concatenate([_scaled(d.counts, m) for d, _, m in parts])
    return _merge_sorted(keys, counts)


def _combine_max(parts) -> Dist:
    keys, counts = [], []
    for d, s, m in parts:
        i = int(np.searchsorted(d.values, s, side="left"))
        c = _scaled(d.counts, m)
        if i:
            cum = np.empty_like(c[:i])
            if _dist.cumsum(c[:i], cum):
                raise OverflowError("a count exceeds 2**128")
            keys.append(np.array([s], dtype=np.int64))
            counts.append(cum[-1:])
        keys.append(d.values[i:])
        counts.append(c[i:])
    return _merge_sorted(np.concatenate(keys), np.concatenate(counts))


def combine(parts: Sequence, how: str = "sum", limit: int = DENSE_LIMIT,
            what: str = "profile") -> Optional[Dist]:
    """The union of ``(dist, shift, mult)`` parts: every value ``v`` of
    ``dist`` becomes ``v + shift`` (``how="sum"``) or ``max(v, shift)``
    (``how="max"``), its count times ``mult``; equal values add up.

    Returns None when no part has mass.  Raises :class:`TooLarge` when the
    result would exceed the limits (``what`` names the question in the
    message).
    """
    parts = [(d, int(s), int(m)) for d, s, m in parts if d is not None and len(d) and m]
    if not parts:
        return None
    if how == "max":
        return _combine_max(parts)
    return _combine_sum(parts, limit, what)


def pair_cdf(left: Dist, right: Dist, points: Sequence[int]) -> list:
    """Exact counts of pairs with ``l + r <= p`` for each point (Python ints).

    ``right`` is laid out as a dense cumulative on its lattice, so it must
    span at most :data:`DENSE_LIMIT` lattice points; ``left`` is swept once
    per point.

    >>> pair_cdf(Dist(np.array([0, 1]), from_ints([1, 1])), Dist(np.array([0, 2]), from_ints([1, 1])), [0, 2, 3])
    [1, 3, 4]
    """
    if not len(left) or not len(right):
        return [0] * len(points)
    lo, rcum, g = dense_cumulative(right)
    out = np.zeros((len(points), 2), dtype=np.uint64)
    if _dist.pair_cdf(left.values, left.counts, rcum, lo, g, np.asarray(points, dtype=np.int64), out):
        raise OverflowError("a count exceeds 2**128")
    return [as_int(c) for c in out]


def dense_cumulative(d: Dist) -> tuple[int, np.ndarray, int]:
    """``(lo, cum, g)``: the cumulative counts of ``d`` at every lattice point
    ``lo + j * g`` (``cum[j]``: count of values ``<= lo + j * g``)."""
    g = d.step or 1
    span = (int(d.values[-1]) - int(d.values[0])) // g + 1
    if span > DENSE_LIMIT:
        raise TooLarge(f"a distribution spanning {span:,} lattice points exceeds {DENSE_LIMIT:,}")
    idx = (d.values - d.values[0]) // g
    cum = d.cumulative()
    take = np.searchsorted(idx, np.arange(span), side="right") - 1
    return int(d.values[0]), np.ascontiguousarray(cum[take]), g
