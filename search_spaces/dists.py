"""Exact distributions: distinct integer values, each with an exact count.

A :class:`Dist` holds ascending int64 ``values`` and their ``counts`` as
unsigned 128-bit integers (an ``(n, 2)`` uint64 array: low word, high word),
so a count over ~5e20 OFA networks is exact; :func:`as_ints` turns counts
into Python ints (a distribution made of a :class:`Lean` writes its values
and 128-bit counts out only when first read).  :func:`combine` is the step
of every dynamic program in ``exact.py``: the union of shifted, scaled
distributions, by sum (additive metrics) or by maximum (the peak),
accumulated on a dense lattice when its span is small and merged by
sorting otherwise.  Sizes beyond
:data:`DENSE_LIMIT` / :data:`SPARSE_LIMIT` raise :class:`TooLarge` rather
than exhaust memory; every count is checked for 128-bit overflow.
"""
from __future__ import annotations

import math
import sys
import threading
from typing import Iterable, Optional, Sequence

import numpy as np

from . import _dist
from .tables import NotDecomposable

__all__ = ["Dist", "combine", "TooLarge", "as_ints", "as_int", "from_ints", "DENSE_LIMIT",
           "SPARSE_LIMIT", "pair_cdf", "RANK_LIMIT", "Scratch", "Lean", "NotLean", "combine_lean"]

#: lattice points a dense accumulator may span (16 bytes each)
DENSE_LIMIT = 1 << 24
#: entries a sparse (sorting) merge may hold
SPARSE_LIMIT = 1 << 25
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

    __slots__ = ("_values", "_counts", "_lean", "_g", "_cum", "_k", "_tot", "_rank")

    def __init__(self, values: np.ndarray, counts: np.ndarray):
        self._values = np.ascontiguousarray(values, dtype=np.int64)
        self._counts = np.ascontiguousarray(counts, dtype=np.uint64).reshape(-1, 2)
        self._lean: Optional[Lean] = None
        self._g: Optional[int] = None
        self._cum: Optional[np.ndarray] = None
        self._k: Optional[np.ndarray] = None
        self._tot: Optional[int] = None
        self._rank: Optional[tuple] = None

    @classmethod
    def of_lean(cls, lean: "Lean") -> "Dist":
        """The distribution a :class:`Lean` holds, its values and 128-bit
        counts written out only when first read: a pair query reads the
        longer half through its lattice points and 64-bit cumulative counts
        alone (:meth:`rank_index`), so the widest halves never need them."""
        d = cls.__new__(cls)
        d._values = d._counts = d._cum = d._rank = d._k = None
        d._lean = lean
        d._g, d._tot = (lean.g if len(lean) > 1 else 0), lean.total
        return d

    def _write_out(self) -> None:
        lean = self._lean
        if lean is None:            # another thread wrote them out
            return
        v, c = np.empty(len(lean), np.int64), np.empty((len(lean), 2), np.uint64)
        if lean.bits is not None:
            _dist.bits_values(lean.bits, lean.c, lean.lo, lean.g, v, c)
        else:
            _dist.lean_values(lean.k, lean.c, lean.lo, lean.g, v, c)
        # in this order: whoever sees the Lean gone finds both written
        self._counts = c
        self._values = v
        self._lean = None

    @property
    def values(self) -> np.ndarray:
        """Ascending distinct values, int64."""
        if self._values is None:
            self._write_out()
        return self._values

    @property
    def counts(self) -> np.ndarray:
        """Their counts, ``(n, 2)`` uint64 (low word, high word)."""
        if self._counts is None:
            self._write_out()
        return self._counts

    @property
    def first(self) -> int:
        """The smallest value (of a non-empty distribution)."""
        lean = self._lean
        return lean.lo if lean is not None else int(self._values[0])

    @property
    def last(self) -> int:
        """The largest value (of a non-empty distribution)."""
        lean = self._lean
        return lean.lo + (lean.span - 1) * lean.g if lean is not None else int(self._values[-1])

    @classmethod
    def point(cls, value: int = 0, count: int = 1) -> "Dist":
        """All mass on one value."""
        d = cls(np.array([value], dtype=np.int64), from_ints([count]))
        d._tot = int(count)
        return d

    def __len__(self) -> int:
        lean = self._lean
        return len(lean) if lean is not None else len(self._values)

    def __repr__(self) -> str:
        if not len(self):
            return "Dist(empty)"
        return f"Dist({len(self):,} values in {self.first}..{self.last}, total {self.total:,})"

    @property
    def nbytes(self) -> int:
        """Memory of its values and counts, bytes (or of the lattice points
        and 64-bit counts of the :class:`Lean` it was made of, until they
        are written out; in a :class:`Scratch` buffer, it keeps that
        buffer's touched pages)."""
        lean = self._lean
        if lean is not None:
            return lean.nbytes
        return self._values.nbytes + self._counts.nbytes

    @property
    def step(self) -> int:
        """The largest lattice step: gcd of the differences between values (0 alone)."""
        if self._g is None:
            self._find_step_and_total()
        return self._g

    def _find_step_and_total(self) -> None:
        """Its step and total, in one compiled pass (no temporary arrays)."""
        self._g, self._tot = _step_and_total(self.values, self.counts)

    def lattice_index(self) -> np.ndarray:
        """``(values - values[0]) // step``: each value's point on its lattice
        (of a :class:`Lean`: its set bits)."""
        if self._k is None and self._lean is not None:
            self._k = self._lean.points()
        if self._k is None:
            g = self.step
            self._k = (self.values - self.values[0]) // g if g else np.zeros(len(self), np.int64)
        return self._k

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
        if self._tot is None:
            if self._cum is not None:
                self._tot = as_int(self._cum[-1]) if len(self) else 0
            else:
                self._find_step_and_total()
        return self._tot

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

    def points_on(self, h: int) -> np.ndarray:
        """Each value's point on the lattice of step ``h`` from the first:
        its own lattice points, spread out where ``h`` divides a coarser
        step (no values written out), else computed from the values."""
        g = self.step
        if h == g or not g:
            return self.lattice_index()
        if g % h == 0:
            return self.lattice_index() * (g // h)
        return (self.values - self.first) // h

    def low_counts(self) -> np.ndarray:
        """The counts' low words (the counts themselves when the total is
        below 2**64): the :class:`Lean`'s own, else a strided view."""
        lean = self._lean
        return lean.c if lean is not None else self._counts[:, 0]

    def rank_index(self, h: int) -> tuple:
        """``(bits, before, cum)``: a rank index of the values on the lattice
        of step ``h`` from the first (a bit per lattice point, the values
        below each 64-point word) and 64-bit cumulative counts (the total
        must be below 2**64); kept for the last ``h`` asked (pair queries)."""
        rank = self._rank
        lean = self._lean
        if (rank is None or rank[0] != h) and lean is not None and lean.bits is not None \
                and (h == lean.g or len(lean) < 2):
            before = np.empty(len(lean.bits), dtype=np.int64)    # its bits are the index's
            cum = np.empty(len(lean), dtype=np.uint64)
            _dist.bits_rank(lean.bits, before, lean.c, cum)
            rank = self._rank = (h, lean.bits, before, cum)
        if rank is None or rank[0] != h:
            k = self.points_on(h)
            n_words = int(k[-1]) // 64 + 1
            bits = np.empty(n_words, dtype=np.uint64)
            before = np.empty(n_words, dtype=np.int64)
            cum = np.empty(len(k), dtype=np.uint64)
            _dist.rank_index(np.ascontiguousarray(k), bits, before, self.low_counts(), cum)
            rank = self._rank = (h, bits, before, cum)
        return rank[1:]

    def take(self, keep: np.ndarray) -> "Dist":
        """The values selected by a mask or indices, with their counts."""
        return Dist(self.values[keep], self.counts[keep])

    def prefix(self, n: int) -> "Dist":
        """Its ``n`` smallest values with their counts, viewing its arrays
        (and its cumulative counts and lattice points, where the step is
        the same)."""
        out = Dist(self.values[:n], self.counts[:n])
        if self._cum is not None:
            out._cum = self._cum[:n]
        elif self._tot is not None and 2 * n > len(self):   # fewer counts dropped than kept
            out._g = _step_and_total(out._values, out._counts, total=False,
                                     floor=self.step)[0]
            out._tot = self._tot - _step_and_total(self.values[n:], self.counts[n:])[1]
        if self._k is not None and out.step == self.step:
            out._k = self._k[:n]
        return out


def _step_and_total(values: np.ndarray, counts: np.ndarray, total: bool = True,
                    floor: int = 1) -> tuple:
    """``(step, total)`` of ascending values and their counts
    (:func:`~._dist.step_and_total`: ``floor`` a step the values are known to lie
    on; the total None when not asked for)."""
    info = np.zeros(3, dtype=np.int64)
    if _dist.step_and_total(values, counts, info, total, max(floor, 1)):
        raise OverflowError("a total count exceeds 2**128")
    return int(info[0]), (as_int(info[1:].view(np.uint64)) if total else None)


def _check_range(lo: int, hi: int) -> None:
    if lo < _I64[0] or hi > _I64[1]:
        raise OverflowError("a metric total exceeds int64")


class Scratch:
    """Memory that one build reuses for the distributions it writes and drops.

    Fresh memory is not free: the kernel zeroes every page on its first
    touch, and building OFA's MACs halves spent up to 40 % of its time
    there.  A dynamic program writes new distributions at every step and
    drops the previous ones, so :func:`combine` given a ``Scratch`` writes
    into a buffer that no live array views any more instead of a fresh one.
    Whether one does is read from the buffer's reference count (every view
    of it holds one), against the count of a buffer with no views, measured
    the same way at import (CPython's reference counts).  Scoped to one
    pass over a profile's groups, shared by its threads (a lock guards the
    choice): once it is dropped, the buffers of distributions still alive
    stay with them, the rest are freed.

    Examples
    --------
    >>> s = Scratch()
    >>> v, c, k = s.take(4)                  # values, counts, lattice points
    >>> v2, c2, k2 = s.take(4)               # v, c and k still view theirs: three more
    >>> len(s)
    6
    >>> del v, c, k
    >>> v3 = s.take(4)[0]
    >>> any(v3.base is r for r in s._raws[:3]), len(s)   # a buffer v, c or k left
    (True, 6)
    """

    #: buffers kept (idle ones beyond it are freed, the smallest first)
    MAX_BUFFERS = 128

    def __init__(self):
        self._raws: list = []
        self._top = 0          # the largest buffer asked for so far, bytes
        self._lock = threading.Lock()   # threads may share one
        self._touched: dict = {}        # id of a buffer -> bytes written into it so far

    def __len__(self) -> int:
        return len(self._raws)

    @staticmethod
    def _refs(raws: list) -> list:
        return [sys.getrefcount(r) for r in raws]

    def take(self, cap: int) -> tuple:
        """``(values, counts, lattice points)`` buffers of ``cap`` entries
        (int64, ``(cap, 2)`` uint64, int64), each at the start of memory no
        live array uses (:meth:`words`)."""
        n = max(int(cap), 1)
        c, v, k = self.words(2 * n, n, n)
        return v.view(np.int64), c.reshape(n, 2), k.view(np.int64)

    def words(self, *sizes: int) -> list:
        """uint64 buffers of these lengths, each at the start of memory no
        live array uses (the pages a previous step touched are touched
        again, not fresh ones): the smallest such buffer that fits, so the
        big ones stay free for the big steps.  A step's capacity bounds what
        it writes and is often far above it, so a new buffer is twice the
        largest asked for yet: only its touched pages are memory, and the
        steps that follow still fit."""
        with self._lock:
            return self._words([8 * max(int(x), 1) for x in sizes])

    def _words(self, needs: list) -> list:
        self._top = max(self._top, *needs)
        idle = [r for r, refs in zip(self._raws, self._refs(self._raws)) if refs == _IDLE_REFS]
        got = []
        for need in sorted(range(len(needs)), key=lambda i: -needs[i]):   # the largest first
            fits = [r for r in idle if r.nbytes >= needs[need]]
            # the least-touched buffer already touched this far, else the most touched
            warm = [r for r in fits if self._touched[id(r)] >= needs[need]]
            if warm:
                raw = min(warm, key=lambda r: self._touched[id(r)])
            elif fits:
                raw = max(fits, key=lambda r: self._touched[id(r)])
            else:
                raw = np.empty(2 * self._top, dtype=np.uint8)
                self._raws.append(raw)
                self._touched[id(raw)] = 0
            idle = [r for r in idle if r is not raw]
            self._touched[id(raw)] = max(self._touched[id(raw)], needs[need])
            got.append((need, raw[:needs[need]].view(np.uint64)))
        while len(self._raws) > self.MAX_BUFFERS and idle:   # the least touched idle go first
            drop = min(idle, key=lambda r: self._touched[id(r)])
            idle = [r for r in idle if r is not drop]
            self._raws = [r for r in self._raws if r is not drop]
            del self._touched[id(drop)]
        return [buf for _, buf in sorted(got, key=lambda x: x[0])]


#: the reference count :meth:`Scratch._refs` reads for a buffer no array views
_IDLE_REFS = Scratch._refs([np.empty(8, dtype=np.uint8)])[0]


def _buffers(scratch: Optional[Scratch], n: int, k: bool) -> tuple:
    """Output buffers for ``n`` entries: from ``scratch`` when given, else
    fresh (values, counts and, with ``k``, lattice points)."""
    if scratch is not None:
        return scratch.take(n)
    return (np.empty(n, dtype=np.int64), np.empty((n, 2), dtype=np.uint64),
            np.empty(n, dtype=np.int64) if k else None)


def _merge(parts, how: str, what: str, scratch: Optional[Scratch] = None) -> Dist:
    """k-way merge of the shifted parts (any span), by the compiled heap merge."""
    srcs, src_of, ptr = _sources(parts)
    n = sum(len(srcs[i]) for i in src_of)
    if n > SPARSE_LIMIT:
        raise TooLarge(f"{what}: merging {n:,} entries exceeds the exact profile's limit of "
                       f"{SPARSE_LIMIT:,}")
    vals = np.concatenate([d.values for d in srcs])
    cnts = np.ascontiguousarray(np.concatenate([d.counts for d in srcs]))
    out_v, out_c, _ = _buffers(scratch, n, False)
    m = _dist.merge_shifted(ptr, vals, cnts, src_of,
                            np.array([s for _, s, _ in parts], dtype=np.int64),
                            np.array([k for _, _, k in parts], dtype=np.uint64), how == "max",
                            out_v, out_c)
    if m < 0:
        raise OverflowError("a count exceeds 2**128")
    out = Dist(_shrunk(out_v, m), _shrunk(out_c, m))
    if all(d._tot is not None for d in srcs):    # every count moves, none is lost
        out._tot = sum(d._tot * k for d, _, k in parts)
    return out


#: lattice points accumulated at a time (16 bytes each)
WINDOW = 1 << 16


def _sources(parts):
    """Distinct source distributions of the parts, and each part's source."""
    srcs, src_of, seen = [], [], {}
    for d, _, _ in parts:
        if id(d) not in seen:
            seen[id(d)] = len(srcs)
            srcs.append(d)
        src_of.append(seen[id(d)])
    ptr = np.zeros(len(srcs) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in srcs], out=ptr[1:])
    return srcs, np.asarray(src_of, dtype=np.int64), ptr


class _Lattice:
    """The lattice ``lo + j * g`` (``span`` points) that shifted parts sum
    on: per part ``(first value + shift, last value + shift, step, length)``.
    ``sparse``: far more points than entries, so the entries are merged
    instead of accumulated; otherwise :class:`TooLarge` where the result
    could exceed ``limit`` distinct values."""

    def __init__(self, bounds: list, limit: int, what: str):
        self.lo = min(f for f, _, _, _ in bounds)
        hi = max(last for _, last, _, _ in bounds)
        _check_range(self.lo, hi)
        g = 0
        for f, _, step, _ in bounds:
            g = math.gcd(g, step, f - self.lo)
        self.g = g
        self.span = (hi - self.lo) // g + 1 if g else 1
        self.n = sum(n for _, _, _, n in bounds)
        self.sparse = self.span > 64 * self.n + WINDOW
        if not self.sparse and min(self.span, self.n) > 4 * limit:
            raise TooLarge(f"{what}: a distribution of up to {min(self.span, self.n):,} distinct "
                           f"values exceeds the exact profile's limit of {limit:,}")
        # the kernel's sweep writes one slot past its last entry
        self.cap = min(self.span, self.n + 1)
        self.a = np.array([step // g if g else 0 for _, _, step, _ in bounds], dtype=np.int64)
        self.b = np.array([(f - self.lo) // g if g else 0 for f, _, _, _ in bounds],
                          dtype=np.int64)

    @staticmethod
    def check_found(m: int, limit: int, what: str) -> None:
        """:class:`TooLarge` when the ``m`` distinct values found exceed ``limit``."""
        if m > limit:
            raise TooLarge(f"{what}: a distribution of {m:,} distinct values exceeds the exact "
                           f"profile's limit of {limit:,}")


def _combine_sum(parts, limit: int, what: str, scratch: Optional[Scratch] = None) -> Dist:
    lat = _Lattice([(d.first + s, d.last + s, d.step, len(d))
                    for d, s, _ in parts], limit, what)
    if lat.sparse:                   # a sparse lattice: merge the entries instead
        return _merge(parts, "sum", what, scratch)
    srcs, src_of, _ = _sources(parts)
    lo, g, cap = lat.lo, lat.g, lat.cap
    out_v, out_c, out_k = _buffers(scratch, cap, True)
    info = np.zeros(4, dtype=np.int64)
    # below 2**64 together, no sum can overflow (a total not yet known: one pass)
    fits64 = sum(d.total * x for d, _, x in parts) < 1 << 64
    m = _dist.accumulate_windows([d.lattice_index() for d in srcs],
                                 [np.ascontiguousarray(d.counts) for d in srcs], src_of, lat.a,
                                 lat.b, np.array([x for _, _, x in parts], dtype=np.uint64),
                                 lat.span, lo, max(g, 1), WINDOW, out_v, out_c, out_k, info,
                                 fits64)
    if m < 0:
        raise OverflowError("a count exceeds 2**128")
    _Lattice.check_found(m, limit, what)
    out = Dist(_shrunk(out_v, m), _shrunk(out_c, m))
    h = int(info[0])                  # the output's step, in lattice points
    out._g = h * max(g, 1) if m > 1 else 0
    out._tot = as_int(info[2:].view(np.uint64))
    if h == 1:                        # its own lattice: the points, from the first
        k = _shrunk(out_k, m)
        k -= k[0]
        out._k = k
    return out


def _shrunk(a: np.ndarray, m: int) -> np.ndarray:
    """The first ``m`` rows of a buffer this module just allocated, without
    copying them: the buffer is shrunk in place (only its touched pages
    were ever memory), or sliced when it views a :class:`Scratch` buffer."""
    if m == len(a):
        return a
    if a.base is not None:
        return a[:m]
    try:
        a.resize((m,) + a.shape[1:], refcheck=False)
        return a
    except ValueError:          # pragma: no cover - a buffer numpy does not own
        return a[:m].copy()


class Lean:
    """A distribution between the steps of a dynamic program whose counts
    all fit 64 bits: its values ``lo + k * g`` (``k`` from 0 to ``span - 1``
    on the lattice of step ``g``, 0 for one value) and their 64-bit counts
    ``c``, the points ``k`` held in one of two forms:

    - ``bits`` (``k`` None): bit ``t`` of word ``t >> 6`` set when ``t`` is
      a point, where one lattice point in :data:`BITS_DENSITY` or more is
      taken: about 8 bytes an entry (a Dist's values, lattice points and
      128-bit counts take 32), what each step of the program writes and the
      next reads;
    - ``k`` (``bits`` None): the points, ascending int64, where fewer are
      (a bitmap would be mostly empty words).

    Steps combine them with :func:`combine_lean`; :meth:`dist` makes the
    :class:`Dist` at the end.

    Examples
    --------
    >>> a = Lean.of(Dist(np.array([0, 10]), from_ints([1, 2])))
    >>> a.bits.tolist(), a.k, a.c.tolist(), a.span
    ([3], None, [1, 2], 2)
    >>> b = combine_lean([(a, 5, 3), (a, 0, 1)])
    >>> d = b.dist()
    >>> d.values.tolist(), as_ints(d.counts).tolist(), d.total == b.total == 12
    ([0, 5, 10, 15], [1, 3, 2, 6], True)
    >>> Lean.of(Dist(np.array([0, 3, 1000]), from_ints([1, 1, 1]))).k.tolist()   # sparse
    [0, 3, 1000]
    """

    __slots__ = ("bits", "k", "c", "lo", "g", "total", "span")

    def __init__(self, bits: Optional[np.ndarray], k: Optional[np.ndarray], c: np.ndarray,
                 lo: int, g: int, total: int, span: int):
        self.bits, self.k, self.c, self.lo, self.g = bits, k, c, int(lo), int(g)
        self.total, self.span = int(total), int(span)

    @classmethod
    def of_points(cls, k: np.ndarray, c: np.ndarray, lo: int, g: int, total: int) -> "Lean":
        """From points ``k`` (from 0): as a bitmap where they are dense enough."""
        span = int(k[-1]) + 1 if len(k) else 0
        if span > len(k) * BITS_DENSITY:
            return cls(None, k, c, lo, g, total, span)
        bits = np.empty((span + 63) // 64, dtype=np.uint64)
        _dist.points_bits(np.ascontiguousarray(k), bits)
        return cls(bits, None, c, lo, g, total, span)

    @classmethod
    def of_bits(cls, bits: np.ndarray, c: np.ndarray, lo: int, g: int, total: int,
                span: int) -> "Lean":
        """From a bitmap: as points where they are too sparse for one."""
        bits = bits[:(span + 63) // 64]
        if span > len(c) * BITS_DENSITY:
            return cls(None, _bits_points(bits, len(c)), c, lo, g, total, span)
        return cls(bits, None, c, lo, g, total, span)

    def __len__(self) -> int:
        return len(self.c)

    @property
    def nbytes(self) -> int:
        return (self.bits if self.k is None else self.k).nbytes + self.c.nbytes

    @classmethod
    def of(cls, d: Dist) -> "Lean":
        """``d`` in the lean form (its total must be below 2**64)."""
        if d.total >= 1 << 64:
            raise OverflowError("a lean distribution's total must be below 2**64")
        return cls.of_points(d.lattice_index(), np.ascontiguousarray(d.counts[:, 0]), d.first,
                             d.step, d.total)

    def upto(self, bound: int) -> Optional["Lean"]:
        """Its values ``<= bound`` with their counts (None: none), on the same
        step (a common one, not always the largest of the values kept), the
        counts viewed, not copied.

        >>> a = Lean.of(Dist(np.array([0, 10, 20]), from_ints([1, 2, 3])))
        >>> b = a.upto(15)
        >>> b.dist().values.tolist(), b.c.tolist(), b.total, a.upto(-1)
        ([0, 10], [1, 2], 3, None)
        """
        if bound < self.lo:
            return None
        kb = (bound - self.lo) // self.g if self.g else 0
        if kb >= self.span - 1:
            return self
        if self.k is not None:
            n = int(np.searchsorted(self.k, kb, side="right"))
            bits, k, span = None, self.k[:n], int(self.k[n - 1]) + 1
        else:
            bits, k = np.empty(kb // 64 + 1, dtype=np.uint64), None
            n, last = _dist.bits_upto(self.bits, kb, bits)
            span = last + 1
        c = self.c[:n]
        total = int(c.sum(dtype=np.uint64))     # below 2**64, as its own
        g = self.g if n > 1 else 0
        return Lean.of_bits(bits, c, self.lo, g, total, span) if k is None else \
            Lean(None, k, c, self.lo, g, total, span)

    def points(self) -> np.ndarray:
        """Its lattice points, int64, ascending (of a bitmap: decoded)."""
        return self.k if self.k is not None else _bits_points(self.bits, len(self))

    def dist(self) -> Dist:
        """The :class:`Dist` (:meth:`Dist.of_lean`: its values and 128-bit
        counts written out when first read)."""
        return Dist.of_lean(self)


def _bits_points(bits: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` set bits of ``bits``, ascending int64 (new memory)."""
    k = np.empty(n, dtype=np.int64)
    _dist.bits_points(bits, k)
    return k


def _words(scratch: Optional[Scratch], *sizes: int) -> list:
    """uint64 buffers of these lengths: from ``scratch`` when given, else new."""
    if scratch is not None:
        return scratch.words(*sizes)
    return [np.empty(max(int(n), 1), dtype=np.uint64) for n in sizes]


#: the share of its lattice a :class:`Lean`'s points take, 1 in this many,
#: from which they are held as a bitmap (a word per 64 points) rather than
#: as int64 points: a bitmap's words cost more to scan than its points to
#: read below it
BITS_DENSITY = 16


class NotLean(ArithmeticError):
    """A lean step whose total would reach 2**64 (build it as :class:`Dist`)."""


def combine_lean(parts: Sequence, limit: int = SPARSE_LIMIT, what: str = "profile",
                 scratch: Optional[Scratch] = None) -> Optional[Lean]:
    """:func:`combine` (by sum) of lean ``(dist, shift, mult)`` parts, into a
    :class:`Lean`: the windowed accumulation reads and writes one 64-bit word
    per count and no values, the points as bits
    (:func:`~._dist.accumulate_bits`, parts of either form) unless the result
    is bound to be sparser than :data:`BITS_DENSITY` (then as int64 points,
    :func:`~._dist.accumulate_windows`).  Raises :class:`NotLean` when the
    result's total would reach 2**64; a sparse lattice is merged as
    :class:`Dist` instead."""
    parts = [(d, int(s), int(m)) for d, s, m in parts if d is not None and len(d) and m]
    if not parts:
        return None
    if len(parts) == 1 and parts[0][1] == 0 and parts[0][2] == 1:
        return parts[0][0]          # unchanged: share it (read-only)
    if sum(d.total * m for d, _, m in parts) >= 1 << 64:
        raise NotLean(f"{what}: a step's total reaches 2**64")
    lat = _Lattice([(d.lo + s, d.lo + (d.span - 1) * d.g + s, d.g, len(d)) for d, s, _ in parts],
                   limit, what)
    if lat.sparse:                   # a sparse lattice: merged as distributions
        return Lean.of(_merge([(d.dist(), s, m) for d, s, m in parts], "sum", what))
    srcs, src_of, _ = _sources(parts)
    mult = np.array([x for _, _, x in parts], dtype=np.uint64)
    n_acc = (min(WINDOW, lat.span) + 63) // 64 * 64
    info = np.zeros(4, dtype=np.int64)
    # the result's points take under 1 / BITS_DENSITY of its lattice even if
    # all are distinct: written as points, from its parts' points
    as_points = lat.span > BITS_DENSITY * lat.n
    if as_points:
        out_k, out_c, acc = _words(scratch, lat.cap, lat.cap, 2 * n_acc)
        out_k = out_k.view(np.int64)
        m = _dist.accumulate_windows(
            [d.points() for d in srcs], [d.c for d in srcs], src_of, lat.a, lat.b, mult,
            lat.span, lat.lo, max(lat.g, 1), WINDOW, np.empty(0, dtype=np.int64), out_c, out_k,
            info, True, 1, acc)
    else:
        out_bits, out_c, acc = _words(scratch, (lat.span + 63) // 64, lat.cap, n_acc)
        m = _dist.accumulate_bits(
            [d.bits for d in srcs], [d.k for d in srcs], [d.c for d in srcs],
            np.array([d.span for d in srcs], np.int64), src_of, lat.a, lat.b, mult, lat.span,
            WINDOW, out_bits, out_c, info, acc)
    del acc                           # back to the scratch
    _Lattice.check_found(m, limit, what)
    h, total, c = int(info[0]), int(info[2:].view(np.uint64)[0]), out_c[:m]
    g = h * max(lat.g, 1) if m > 1 else 0
    if as_points or h > 1:            # h > 1: a coarser lattice than the parts', its own
        k = out_k[:m] if as_points else _bits_points(out_bits[:(int(info[1]) + 64) // 64], m)
        return Lean.of_points(k // h if h > 1 else k, c, lat.lo, g, total)
    return Lean.of_bits(out_bits, c, lat.lo, g, total, int(info[1]) + 1)


def combine(parts: Sequence, how: str = "sum", limit: int = SPARSE_LIMIT,
            what: str = "profile", scratch: Optional[Scratch] = None) -> Optional[Dist]:
    """The union of ``(dist, shift, mult)`` parts: every value ``v`` of
    ``dist`` becomes ``v + shift`` (``how="sum"``) or ``max(v, shift)``
    (``how="max"``), its count times ``mult``; equal values add up.

    Returns None when no part has mass.  Raises :class:`TooLarge` when the
    result would exceed the limits (``what`` names the question in the
    message).  With ``scratch`` the result is written into its memory
    (:class:`Scratch`).
    """
    parts = [(d, int(s), int(m)) for d, s, m in parts if d is not None and len(d) and m]
    if not parts:
        return None
    if len(parts) == 1 and parts[0][2] == 1 and (parts[0][1] == 0 if how == "sum"
                                                 else parts[0][1] <= parts[0][0].first):
        return parts[0][0]          # unchanged: share it (distributions are read-only)
    if how == "max":
        return _merge(parts, "max", what, scratch)
    return _combine_sum(parts, limit, what, scratch)


#: lattice points a rank index (a bit each) of a pair query may cover
RANK_LIMIT = 1 << 31
#: lattice points of a rank index a pair query reads at a time, for every
#: point (its bits, word counts and cumulative counts stay in cache)
RANK_REGION = 1 << 17


def pair_cdf(left: Dist, right: Dist, points: Sequence[int]) -> list:
    """Exact counts of pairs with ``l + r <= p`` for each point (Python ints),
    all the points in one pass over the shorter side.

    Where every count fits 64 bits, the longer side is read through a rank
    index of its values on the lattice both sides lie on (a bit per lattice
    point, up to :data:`RANK_LIMIT`) and its cumulative counts
    (:func:`~._dist.pair_cdf_rank`: a lookup per value of the shorter side
    and point, the index read one region of :data:`RANK_REGION` lattice
    points at a time for every point); otherwise one pointer per point walks
    the longer side's cumulative counts (:func:`~._dist.pair_cdf_many`).

    >>> pair_cdf(Dist(np.array([0, 1]), from_ints([1, 1])), Dist(np.array([0, 2]), from_ints([1, 1])), [0, 2, 3])
    [1, 3, 4]
    """
    if not len(left) or not len(right) or not len(points):
        return [0] * len(points)
    a, b = (left, right) if len(left) <= len(right) else (right, left)
    pts = np.asarray(points, dtype=np.int64)
    order = np.argsort(pts, kind="stable")
    q = np.ascontiguousarray(pts[order])
    out = np.zeros((len(pts), 2), dtype=np.uint64)
    h = _index_step(a, b)
    if h is not None:
        a0, b0 = a.first, b.first
        bits, before, cum = b.rank_index(h)   # b's total is below 2**64 (checked)
        # q - l - b0 = (q - a0 - b0) - (l - a0), the second term a multiple
        # of h: the lattice point is floor((q - a0 - b0) / h) - (l - a0) / h
        off = a.points_on(h)                # h divides a's step: no values written out
        top = 64 * len(bits) + int(off[-1])   # from there on every pair is within
        base = np.array([min(max((x - a0 - b0) // h, -1), top) for x in q.tolist()],
                        dtype=np.int64)
        # a's 64-bit counts (its total is below 2**64): a lean half is not written out
        _dist.pair_cdf_rank(np.ascontiguousarray(off), a.low_counts(), bits, before, cum, base,
                            out, RANK_REGION)
    elif _dist.pair_cdf_many(a.values, a.counts, b.values, b.cumulative(), q, out):
        raise OverflowError("a count exceeds 2**128")
    res = [0] * len(pts)
    for i, c in zip(order.tolist(), out):
        res[i] = as_int(c)
    return res


def _index_step(a: Dist, b: Dist) -> Optional[int]:
    """The lattice step of the rank index of ``b`` that :func:`pair_cdf` may
    read for the values of ``a`` (the gcd of both steps), or None: the index
    would be too long, or a count or the ``b`` total could exceed 64 bits,
    or a sum 128 bits."""
    h = math.gcd(a.step, b.step) or 1
    if (b.last - b.first) // h + 1 > RANK_LIMIT:
        return None
    if a.total >= 1 << 64 or b.total >= 1 << 64 or a.total * b.total >= 1 << 128:
        return None
    if a.last - a.first >= 1 << 62:
        return None
    return h
