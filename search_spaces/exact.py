"""Dynamic programs over a :class:`~.tables.Trellis`: exact distributions,
extremes, Pareto fronts and the unranking of paths.

Within one group (an input resolution), a candidate is a path of edges and
its metric value the sum of its edges' values (the peak: their maximum).
The distribution over candidates is therefore built step by step: the
distribution of each state of boundary ``k + 1`` is the union, over the
edges into it, of the previous state's distribution shifted by the edge's
value and scaled by its multiplicity (:func:`~.dists.combine`).  Counts are
exact (128-bit).

When the whole distribution is too wide to hold (OFA's MACs at 224 px take
tens of millions of distinct values), it is kept as two exact halves whose
sum it is: every count ``#{l + r <= B}`` is still exact
(:func:`~.dists.pair_cdf`), only the list of every value is not kept.
Where the trellis has boundaries of one state (:func:`cuts`: OFA's stage
ends), the segments between them are independent, so the halves are two
*sets* of segments, in any order (:func:`_segment_halves`: the partition
and the order that a size model finds cheapest, one pair of halves);
otherwise (or to unrank paths) the program runs from both ends and stops
where they meet: a :class:`GroupDist` then keeps, per state of that
boundary, the exact distribution of the prefix (``left``) and of the suffix
(``right``).

:func:`unrank` walks a path back from a rank: the engine of exact uniform
sampling within a budget (``profiles.py``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional, Sequence

import numpy as np

from . import _dist
from .dists import (DENSE_LIMIT, Dist, Lean, NotLean, Scratch, TooLarge, combine, combine_lean,
                    pair_cdf)
from .tables import Trellis

__all__ = ["Edges", "edges_of", "GroupDist", "group_dist", "extreme", "pareto", "unrank", "span",
           "held_whole", "cuts"]


@dataclass
class Edges:
    """One step's edges for one group and one question: the value the program
    adds up (or maximises) and the multiplicity (0: the edge is absent)."""

    vals: np.ndarray
    mult: np.ndarray


def edges_of(trellis: Trellis, g: int, value: Callable, mode: str,
             keep: Optional[Callable] = None) -> list:
    """Per step, the edges of group ``g``: ``value(step, g)`` their values,
    multiplicities in ``mode``, and only where ``keep(step, g)`` is True."""
    out = []
    for step in trellis.steps:
        mult = step.mode_mult(mode).copy()
        if keep is not None:
            mult[~keep(step, g)] = 0
        out.append(Edges(np.ascontiguousarray(value(step, g), dtype=np.int64), mult))
    return out


# ----------------------------------------------------------------- programs
def _combine(parts: list, how: str, what: str, scratch: Optional[Scratch]):
    """:func:`~.dists.combine` of the parts, or :func:`~.dists.combine_lean`
    where they are :class:`~.dists.Lean` (sums only): every step of a
    program combines through here."""
    if any(isinstance(d, Lean) for d, _, _ in parts):
        return combine_lean(parts, what=what, scratch=scratch)
    return combine(parts, how, what=what, scratch=scratch)


def _truncate(d, cap):
    """``d`` (a Dist or a Lean) without the values above ``cap`` (None: no
    cap; False: nothing can fit)."""
    if d is None or cap is None:
        return d
    if cap is False:
        return None
    if isinstance(d, Lean):
        return d.upto(cap)
    n = int(np.searchsorted(d.values, cap, side="right"))
    return d if n == len(d) else (d.prefix(n) if n else None)


def _forward(trellis: Trellis, edges: list, how: str, start: list, k0: int, k1: int,
             what: str, keep_all: bool, caps=None, scratch: Optional[Scratch] = None) -> list:
    """Boundaries ``k0 .. k1`` from the distributions at ``k0`` (lean steps
    from :class:`~.dists.Lean` ones); ``caps[k][s]`` drops values that
    cannot end within a budget; ``scratch``: the memory the steps write
    into (:class:`~.dists.Scratch`)."""
    out = [start]
    cur = start
    for k in range(k0, k1):
        step, e = trellis.steps[k], edges[k]
        nxt = []
        for t in range(step.n_out):
            idx = np.flatnonzero((step.dst == t) & (e.mult > 0))
            d = _combine([(cur[step.src[i]], e.vals[i], e.mult[i]) for i in idx], how, what,
                         scratch)
            nxt.append(_truncate(d, caps[k + 1][t] if caps else None))
        cur = nxt
        out.append(nxt if keep_all or k + 1 == k1 else None)
    return out


def _backward(trellis: Trellis, edges: list, how: str, end: list, k1: int, k0: int,
              what: str, keep_all: bool, caps=None, scratch: Optional[Scratch] = None) -> list:
    """Boundaries ``k0 .. k1`` (suffix distributions) from those at ``k1``."""
    out = [end]
    cur = end
    for k in range(k1 - 1, k0 - 1, -1):
        step, e = trellis.steps[k], edges[k]
        prv = []
        for s in range(step.n_in):
            idx = np.flatnonzero((step.src == s) & (e.mult > 0))
            d = _combine([(cur[step.dst[i]], e.vals[i], e.mult[i]) for i in idx], how, what,
                         scratch)
            prv.append(_truncate(d, caps[k][s] if caps else None))
        cur = prv
        out.append(prv if keep_all or k == k0 else None)
    return out[::-1]


def _reach(trellis: Trellis, edges: list, backward: bool) -> list:
    """Per boundary and state: the smallest prefix (or suffix) sum, None if unreachable."""
    K = len(trellis.steps)
    out = [None] * (K + 1)
    cur = [0]
    out[K if backward else 0] = cur
    for k in (range(K - 1, -1, -1) if backward else range(K)):
        step, e = trellis.steps[k], edges[k]
        n = step.n_in if backward else step.n_out
        nxt = [None] * n
        for i in np.flatnonzero(e.mult > 0):
            a, b = (step.dst[i], step.src[i]) if backward else (step.src[i], step.dst[i])
            if cur[a] is not None:
                v = cur[a] + int(e.vals[i])
                nxt[b] = v if nxt[b] is None else min(nxt[b], v)
        cur = nxt
        out[k if backward else k + 1] = cur
    return out


def _caps(trellis: Trellis, edges: list, bound: int) -> tuple[list, list]:
    """Forward and backward caps for values within ``bound``: a prefix at
    ``(k, s)`` fits only if it is at most ``bound`` minus the smallest suffix
    from there (False: the state cannot fit at all)."""
    pre, suf = _reach(trellis, edges, False), _reach(trellis, edges, True)

    def cap(other):
        return [[False if o is None or bound - o < 0 else bound - o for o in row] for row in other]
    return cap(suf), cap(pre)


def span(trellis: Trellis, edges: list, cap: Optional[int] = None) -> int:
    """An upper bound on the lattice points a group's distribution spans."""
    lo, hi = extreme(trellis, edges, "sum", "min")[0], extreme(trellis, edges, "sum", "max")[0]
    if lo is None:
        return 1
    if cap is not None:
        hi = max(lo, min(hi, cap))
    g = 0
    for e in edges:
        v = e.vals[e.mult > 0]
        if v.size:
            g = math.gcd(g, int(np.gcd.reduce(v - v.min())))
    return (hi - lo) // g + 1 if g else 1


@dataclass
class GroupDist:
    """The exact distribution of one group: whole (``full``) or as prefix and
    suffix distributions per state of the boundary ``split`` (sum only);
    ``split=-1``: one pair of halves, each the sum of a set of independent
    segments (:func:`_segment_halves`), not a prefix and a suffix.

    ``forward``/``backward`` keep every boundary's distributions when asked
    (to unrank paths).
    """

    full: Optional[Dist]
    left: list = field(default_factory=list)
    right: list = field(default_factory=list)
    split: int = -1
    forward: list = field(default_factory=list, repr=False)
    backward: list = field(default_factory=list, repr=False)

    @property
    def total(self) -> int:
        if self.full is not None:
            return self.full.total
        return sum(a.total * b.total for a, b in self.pairs())

    def pairs(self):
        """(prefix, suffix) distributions per state of the split boundary."""
        return [(a, b) for a, b in zip(self.left, self.right)
                if a is not None and b is not None and len(a) and len(b)]

    def cdf(self, points: Sequence[int]) -> list:
        """Exact counts of candidates with value ``<= p``, per point."""
        if self.full is not None:
            return self.full.cdf(points)
        tot = [0] * len(points)
        for a, b in self.pairs():
            for i, c in enumerate(pair_cdf(a, b, points)):
                tot[i] += c
        return tot

    @property
    def bounds(self) -> tuple[int, int]:
        """(smallest, largest) value with mass."""
        if self.full is not None:
            return self.full.first, self.full.last
        ps = self.pairs()
        return (min(a.first + b.first for a, b in ps), max(a.last + b.last for a, b in ps))

    @property
    def nbytes(self) -> int:
        ds = [self.full] if self.full is not None else self.left + self.right
        return sum(d.nbytes for d in ds if d is not None)


def held_whole(trellis: Trellis, edges: list, how: str = "sum") -> bool:
    """Whether :func:`group_dist` (``whole=True``) builds this group's
    distribution whole rather than as halves (decided from its span)."""
    return how == "max" or span(trellis, edges) <= DENSE_LIMIT


#: lattice points up to which a distribution is built whole when asked for
#: few values (a budget's count): beyond, from both ends, which costs less
FULL_LIMIT = 1 << 20


def group_dist(trellis: Trellis, edges: list, how: str = "sum", what: str = "profile",
               keep: bool = False, dense: bool = True, cap: Optional[int] = None,
               whole: bool = True, scratch: Optional[Scratch] = None) -> GroupDist:
    """The exact distribution of one group (see :class:`GroupDist`).

    ``dense=False`` (composite keys) never splits: the distribution is built
    whole or :class:`~.dists.TooLarge` is raised.  With ``keep`` every
    boundary's distributions are kept, for :func:`unrank`.  With ``cap``
    (sums only) only the paths with a value ``<= cap`` are counted: values
    that cannot end within it are dropped as they appear, so a budget in the
    tail costs little.  ``whole``: build it whole up to :data:`DENSE_LIMIT`
    lattice points (many queries follow), else only up to
    :data:`FULL_LIMIT` (a count or two: the halves cost less to build).
    ``scratch``: memory to reuse for the halves and their steps (kept over
    a pass of groups, shared by its threads: :class:`~.dists.Scratch`).
    """
    K = len(trellis.steps)
    one = [Dist.point(0)]
    fcaps = bcaps = None
    if cap is not None and how == "sum":
        fcaps, bcaps = _caps(trellis, edges, cap)
    width = span(trellis, edges, cap) if how == "sum" and dense else 0
    if how == "max" or not dense or width <= (DENSE_LIMIT if whole else FULL_LIMIT):
        if how == "sum" and not keep and cap is None:
            built = _try_segments(trellis, edges, what, many=whole, one_half=True,
                                  scratch=scratch)
            if built is not None:
                return GroupDist(built[0], split=K)
        fwd = _forward(trellis, edges, how, one, 0, K, what, keep, fcaps)
        return GroupDist(fwd[-1][0], split=K, forward=fwd if keep else [],
                         backward=[one] if keep else [])
    if not keep and cap is None:
        halves = _try_segments(trellis, edges, what, many=whole, scratch=scratch)
        if halves is not None:
            return GroupDist(None, left=[halves[0]], right=[halves[1]], split=-1)
    # only the frontiers stay: the steps behind them write into reused memory,
    # lean (with ``keep`` every boundary stays, held for sampling: fresh memory)
    sc = None if keep else (scratch if scratch is not None else Scratch())
    start = [Lean.of(one[0])] if sc is not None and how == "sum" else one
    fwd, bwd = {0: start}, {K: start}
    kf, kb = 0, K

    def size(ds):
        return sum(len(d) for d in ds if d is not None)

    while kf < kb:
        order = ("f", "b") if size(fwd[kf]) <= size(bwd[kb]) else ("b", "f")
        for side in order:
            try:
                if side == "f":
                    fwd[kf + 1] = _frontier_step(trellis, edges, how, fwd[kf], kf, True, what,
                                                 fcaps, sc)
                    kf += 1
                else:
                    bwd[kb - 1] = _frontier_step(trellis, edges, how, bwd[kb], kb - 1, False,
                                                 what, bcaps, sc)
                    kb -= 1
                break
            except TooLarge:
                if side == order[-1]:
                    raise
        if not keep:  # only the frontier is needed
            fwd = {kf: fwd[kf]}
            bwd = {kb: bwd[kb]}
    gd = GroupDist(None, left=_dists(fwd[kf]), right=_dists(bwd[kb]), split=kf)
    if keep:
        gd.forward = [fwd[k] for k in range(kf + 1)]
        gd.backward = [bwd[k] for k in range(kb, K + 1)]
    return gd


def _frontier_step(trellis: Trellis, edges: list, how: str, cur: list, k: int, forward: bool,
                   what: str, caps, scratch: Optional[Scratch]) -> list:
    """Step ``k`` of the programs from both ends, from the distributions
    ``cur`` (forward: of boundary ``k``, else of ``k + 1``): lean while they
    are :class:`~.dists.Lean` and every total stays below 2**64, as
    distributions from the step where one may not."""
    def step(ds: list) -> list:
        if forward:
            return _forward(trellis, edges, how, ds, k, k + 1, what, True, caps, scratch)[-1]
        return _backward(trellis, edges, how, ds, k + 1, k, what, True, caps, scratch)[0]
    try:
        return step(cur)
    except NotLean:
        return step(_dists(cur))


def _dists(ds: list) -> list:
    """Distributions, a :class:`~.dists.Lean` made a :class:`~.dists.Dist`."""
    return [d.dist() if isinstance(d, Lean) else d for d in ds]


# ------------------------------------------------------------ segments
def cuts(trellis: Trellis) -> list:
    """The boundaries of one state, first and last included: every path
    passes through them, so the segments between consecutive ones are
    independent (a path is any choice of a path per segment)."""
    return [0] + [k + 1 for k, step in enumerate(trellis.steps) if step.n_out == 1]


#: segments a partition search tries every subset of (more: contiguous splits)
SUBSET_SEARCH = 8
#: weight of a value of the smaller half against a value built (queries follow)
QUERY_WEIGHT = 4


@dataclass(frozen=True)
class _Shape:
    """What the size model knows of a distribution: an upper bound on its
    length, its smallest and largest value, its lattice step (0: one value)."""

    n: int
    lo: int
    hi: int
    g: int

    @classmethod
    def of(cls, d: Dist) -> "_Shape":
        return cls(len(d), d.first, d.last, d.step)

    def __add__(self, o: "_Shape") -> "_Shape":
        g = math.gcd(self.g, o.g)
        lo, hi = self.lo + o.lo, self.hi + o.hi
        return _Shape(min(self.n * o.n, (hi - lo) // g + 1 if g else 1), lo, hi, g)


@dataclass
class _Segment:
    """One independent segment: steps ``k0 .. k1 - 1``, its distribution, and
    per step the shapes of the prefix distributions its edges read."""

    k0: int
    k1: int
    dist: Dist
    reads: dict        # shape of a source distribution read by live edges -> how many edges

    def cost(self, front: _Shape) -> int:
        """Values the dynamic program reads to add this segment to ``front``."""
        return sum((front + r).n * c for r, c in self.reads.items())


def _segments(trellis: Trellis, edges: list, what: str) -> Optional[list]:
    """The independent segments of a group (:func:`cuts`), each built whole;
    None when there are fewer than two with more than one value, a segment
    is too wide to build whole, or one has no path."""
    ks = cuts(trellis)
    out = []
    for k0, k1 in zip(ks, ks[1:]):
        if _n_values(trellis, edges, k0, k1) > FULL_LIMIT:
            return None
        fwd = _forward(trellis, edges, "sum", [Dist.point(0)], k0, k1, what, True)
        if fwd[-1][0] is None:
            return None
        reads: dict = {}
        for k in range(k0, k1):
            step, e = trellis.steps[k], edges[k]
            src = fwd[k - k0]
            for i in np.flatnonzero(e.mult > 0):
                if src[step.src[i]] is not None:
                    r = _Shape.of(src[step.src[i]])
                    reads[r] = reads.get(r, 0) + 1
        out.append(_Segment(k0, k1, fwd[-1][0], reads))
    if sum(len(s.dist) > 1 for s in out) < 2:
        return None
    return out


@dataclass
class _Fused:
    """Consecutive steps as one: every path through them is an edge (values
    added, multiplicities multiplied), ending at boundary ``k1``."""

    src: np.ndarray
    dst: np.ndarray
    vals: list
    mult: list
    n_out: int
    k1: int


def _fused(trellis: Trellis, edges: list, k0: int, k1: int) -> list:
    """Steps ``k0 .. k1 - 1`` of a group, a step merged into the previous one
    when that adds no more edges than it has (a stage's closing step, a
    fixed stem or head): one boundary fewer to write and read."""
    out = []
    for k in range(k0, k1):
        step, e = trellis.steps[k], edges[k]
        live = np.flatnonzero(e.mult > 0)
        cur = _Fused(step.src[live], step.dst[live], [int(v) for v in e.vals[live]],
                     [int(m) for m in e.mult[live]], step.n_out, k + 1)
        if out:
            prev = out[-1]
            pairs = [(i, j) for i in range(len(prev.src))
                     for j in np.flatnonzero(cur.src == prev.dst[i])]
            vals = [prev.vals[i] + cur.vals[j] for i, j in pairs]
            mult = [prev.mult[i] * cur.mult[j] for i, j in pairs]
            if len(pairs) <= len(prev.src) + len(cur.src) and max(mult, default=0) < 1 << 63 \
                    and all(-(1 << 63) <= v < 1 << 63 for v in vals):
                ii = np.array([i for i, _ in pairs], dtype=np.int64)
                jj = np.array([j for _, j in pairs], dtype=np.int64)
                out[-1] = _Fused(prev.src[ii], cur.dst[jj], vals, mult, cur.n_out, k + 1)
                continue
        out.append(cur)
    return out


def _run(steps: list, start, what: str, scratch: Optional[Scratch] = None):
    """The distribution at the end of (fused) steps from one state holding
    ``start``, a :class:`~.dists.Dist` or a :class:`~.dists.Lean` (then
    every step is lean), written into ``scratch``: each step's buffers are
    reused once the step after next has dropped them."""
    cur = [start]
    for st in steps:
        parts = [[(cur[st.src[i]], st.vals[i], st.mult[i]) for i in np.flatnonzero(st.dst == t)]
                 for t in range(st.n_out)]
        cur = [_combine(p, "sum", what, scratch) for p in parts]
    return cur[0]


def _try_segments(*args, **kw) -> Optional[tuple]:
    """:func:`_segment_halves`, None (the programs from both ends instead)
    where a half would exceed the limits."""
    try:
        return _segment_halves(*args, **kw)
    except TooLarge:
        return None


def _n_values(trellis: Trellis, edges: list, k0: int, k1: int) -> int:
    """An upper bound on the distinct values of segment ``k0 .. k1``: its
    lattice span, or its number of edge paths when fewer."""
    paths = [1]
    for k in range(k0, k1):
        step, e = trellis.steps[k], edges[k]
        nxt = [0] * step.n_out
        for i in np.flatnonzero(e.mult > 0):
            nxt[step.dst[i]] += paths[step.src[i]]
        paths = nxt
    return min(paths[0], span(SimpleNamespace(steps=trellis.steps[k0:k1]), edges[k0:k1]))


def _plan(segs: list, start: _Shape) -> tuple[list, int, _Shape]:
    """A cheap order to add ``segs`` to ``start`` (greedy: the cheapest
    next), its modelled cost and the resulting shape."""
    order, left, cur, cost = [], list(segs), start, 0
    while left:
        nxt = min(left, key=lambda s: s.cost(cur))
        cost += nxt.cost(cur)
        cur = cur + _Shape.of(nxt.dist)
        order.append(nxt)
        left.remove(nxt)
    return order, cost, cur


def _segment_halves(trellis: Trellis, edges: list, what: str, many: bool,
                    one_half: bool = False, scratch: Optional[Scratch] = None) -> Optional[tuple]:
    """The group's distribution as two exact halves, each the sum of a set
    of independent segments (None: no such decomposition, see
    :func:`_segments`); with ``one_half`` the whole distribution (and a
    point), the segments added in the size model's cheapest order.

    The partition minimises the size model's cost of building both halves
    plus (``many``: many queries follow) :data:`QUERY_WEIGHT` times the
    smaller half (a query reads it once).  (A budget's count prunes at
    every boundary instead: :func:`group_dist` builds it from both ends.)
    Every step writes into ``scratch`` (a new one when not given).
    """
    segs = _segments(trellis, edges, what)
    if segs is None:
        return None
    fixed = [s for s in segs if len(s.dist) == 1]
    free = [s for s in segs if len(s.dist) > 1]
    one = _Shape(1, 0, 0, 0)
    start = one
    for s in fixed:
        start = start + _Shape.of(s.dist)
    if len(free) <= SUBSET_SEARCH:
        splits = [[free[0], *c] for r in range(len(free) - 1)
                  for c in itertools.combinations(free[1:], r)]
    else:
        splits = [free[:i] for i in range(1, len(free))]
    best = (0, fixed + _plan(free, start)[0], []) if one_half else None
    for a in ([] if one_half else splits):
        b = [s for s in free if not any(s is x for x in a)]
        pa, pb = _plan(a, start), _plan(b, one)
        cost = pa[1] + pb[1] + (QUERY_WEIGHT if many else 1) * min(pa[2].n, pb[2].n)
        if best is None or cost < best[0]:
            best = (cost, fixed + pa[0], pb[0])
    scratch = Scratch() if scratch is None else scratch
    return tuple(_build_half(trellis, edges, order, what, scratch) for order in best[1:])


def _build_half(trellis: Trellis, edges: list, order: list, what: str, scratch: Scratch) -> Dist:
    """The sum of the segments ``order``, added one after the other: lean
    (:class:`~.dists.Lean`, 64-bit counts) while the totals stay below
    2**64, as :class:`~.dists.Dist` from the segment where they may not (a
    whole group of OFA at 128 px: its last segment passes 2**64)."""
    d = Lean.of(Dist.point(0))
    for s in order:
        steps = _fused(trellis, edges, s.k0, s.k1)
        if isinstance(d, Lean):
            if d.total * s.dist.total < 1 << 64:
                try:
                    d = _run(steps, d, what, scratch)
                    continue
                except NotLean:         # a state within the segment beyond 64 bits
                    pass
            d = d.dist()
        d = _run(steps, d, what, scratch)
    return d.dist() if isinstance(d, Lean) else d


# ------------------------------------------------------------ extremes
def extreme(trellis: Trellis, edges: list, how: str, which: str) -> tuple:
    """``(value, edges)``: the smallest (``which="min"``) or largest path value
    and one path achieving it (edge index per step), ``(None, None)`` if no path."""
    sign = 1 if which == "min" else -1
    best = np.array([0], dtype=object)
    ok = np.array([True])
    back = []
    for step, e in zip(trellis.steps, edges):
        live = (e.mult > 0) & ok[step.src]
        cand = np.full(len(step.src), None, dtype=object)
        for i in np.flatnonzero(live):
            v, w = best[step.src[i]], int(e.vals[i])
            cand[i] = v + w if how == "sum" else max(v, w)
        nb = np.full(step.n_out, None, dtype=object)
        bk = np.full(step.n_out, -1, dtype=np.int64)
        for i in np.flatnonzero(live):
            t = step.dst[i]
            if nb[t] is None or sign * cand[i] < sign * nb[t]:
                nb[t], bk[t] = cand[i], i
        best, ok = nb, bk >= 0
        back.append(bk)
    if not ok[0]:
        return None, None
    path = np.empty(len(back), dtype=np.int64)
    t = 0
    for k in range(len(back) - 1, -1, -1):
        path[k] = back[k][t]
        t = trellis.steps[k].src[path[k]]
    return int(best[0]), path


def pareto(trellis: Trellis, ex: list, ey: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Pareto front of (x, y) sums, both minimised, over every path of a group.

    Returns ``(x, y, paths)``: the front's points by increasing x (strictly
    decreasing y) and one path per point (edge index per step).
    """
    fx, fy = [np.zeros(1, dtype=np.int64)], [np.zeros(1, dtype=np.int64)]
    backs = []
    for k, step in enumerate(trellis.steps):
        nx, ny, nb = [], [], []
        live = (ex[k].mult > 0) & (ey[k].mult > 0)
        for t in range(step.n_out):
            xs, ys, be, bj = [], [], [], []
            for i in np.flatnonzero(live & (step.dst == t)):
                s = step.src[i]
                if fx[s].size:
                    xs.append(fx[s] + ex[k].vals[i])
                    ys.append(fy[s] + ey[k].vals[i])
                    be.append(np.full(fx[s].size, i))
                    bj.append(np.arange(fx[s].size))
            if not xs:
                nx.append(np.zeros(0, np.int64)), ny.append(np.zeros(0, np.int64))
                nb.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            x, y, e, j = (np.concatenate(a) for a in (xs, ys, be, bj))
            keep = _front(x, y)
            nx.append(x[keep]), ny.append(y[keep]), nb.append((e[keep], j[keep]))
        fx, fy = nx, ny
        backs.append(nb)
    paths = np.empty((fx[0].size, len(backs)), dtype=np.int64)
    j = np.arange(fx[0].size)
    t = np.zeros(fx[0].size, dtype=np.int64)
    for k in range(len(backs) - 1, -1, -1):
        e = np.array([backs[k][tt][0][jj] for tt, jj in zip(t, j)], dtype=np.int64)
        j = np.array([backs[k][tt][1][jj] for tt, jj in zip(t, j)], dtype=np.int64)
        paths[:, k] = e
        t = trellis.steps[k].src[e] if e.size else t
    return fx[0], fy[0], paths


def _front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point weakly dominates (one per tie), by x."""
    order = np.lexsort((y, x))
    ys = y[order]
    best = np.minimum.accumulate(ys)
    first = np.ones(len(ys), dtype=bool)
    first[1:] = ys[1:] < best[:-1]
    return order[first]


# ----------------------------------------------------------- unranking
def _csr(n_states: int, key: np.ndarray, active: np.ndarray):
    idx = np.flatnonzero(active)
    order = idx[np.argsort(key[idx], kind="stable")]
    ptr = np.zeros(n_states + 1, dtype=np.int64)
    np.cumsum(np.bincount(key[order], minlength=n_states), out=ptr[1:])
    return order, ptr


def _packed(dists: list):
    vals = [d.values if d is not None else np.zeros(0, np.int64) for d in dists]
    cnts = [d.counts if d is not None else np.zeros((0, 2), np.uint64) for d in dists]
    ptr = np.zeros(len(dists) + 1, dtype=np.int64)
    np.cumsum([len(v) for v in vals], out=ptr[1:])
    return ptr, np.concatenate(vals), np.ascontiguousarray(np.concatenate(cnts))


def unrank(trellis: Trellis, edges: list, gd: GroupDist, k_from: int, k_to: int,
           state: np.ndarray, value: np.ndarray, rank: np.ndarray, path: np.ndarray,
           subs: np.ndarray) -> None:
    """Fill ``path``/``subs`` columns ``k_to .. k_from - 1`` (backwards, from
    boundary ``k_from`` down to ``k_to``, ``k_to < k_from``) or ``k_from ..
    k_to - 1`` (forwards), for samples at ``state`` with path value ``value``
    and ``rank`` (``(n, 2)`` uint64) among the paths with that value."""
    state = np.ascontiguousarray(state, dtype=np.int64)
    value = np.ascontiguousarray(value, dtype=np.int64)
    rank = np.ascontiguousarray(rank, dtype=np.uint64)
    n = len(state)
    back = k_to < k_from
    ks = range(k_from - 1, k_to - 1, -1) if back else range(k_from, k_to)
    for k in ks:
        step, e = trellis.steps[k], edges[k]
        key, other = (step.dst, step.src) if back else (step.src, step.dst)
        order, ptr = _csr(step.n_out if back else step.n_in, key, e.mult > 0)
        dists = gd.forward[k] if back else gd.backward[k + 1 - gd.split]
        d_ptr, d_val, d_cnt = _packed(dists)
        edge = np.empty(n, np.int64)
        sub = np.empty(n, np.uint64)
        ns, nv, nr = np.empty(n, np.int64), np.empty(n, np.int64), np.empty((n, 2), np.uint64)
        bad = _dist.unrank(state, value, rank, ptr, np.ascontiguousarray(other[order]),
                           np.ascontiguousarray(e.vals[order]),
                           np.ascontiguousarray(e.mult[order]), d_ptr, d_val, d_cnt,
                           edge, sub, ns, nv, nr)
        if bad >= 0:
            raise AssertionError(f"unranking failed at step {step.name!r}")  # pragma: no cover
        path[:, k] = order[edge]
        subs[:, k] = sub
        state, value, rank = ns, nv, nr
