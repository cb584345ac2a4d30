"""Exact answers about a whole decomposable space, without sampling.

Everything here is a dynamic program over the space's
:class:`~.tables.Trellis` (``exact.py``), per group (input resolution):

* :func:`profile` -- the exact distribution of one metric (:class:`Profile`:
  counts within any bound, CDF, histogram with exact bin counts, exact
  quantiles, mean, minimum and maximum with a witness architecture);
* :func:`count_within` -- the exact number of candidates within a
  :class:`~nasflops.Budget` (one additive metric, any peak bound; two or
  more additive metrics through their joint table where it stays small);
* :func:`pareto_front` -- the exact (MACs, params) front with witnesses;
* :func:`sample_exact` -- uniform draws among the candidates within a
  budget, by unranking: no rejection, seeded, reproducible.

What is counted is ``over="networks"`` (distinct networks, the space's
``size``) or ``over="encodings"`` (native encodings: entries a network does
not use multiply encodings, not networks).
"""
from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional, Sequence

import numpy as np

from nasflops.budget import Budget
from .columns import SAMPLE_BLOCK
from .dists import Dist, Scratch, TooLarge, as_int, as_ints, combine, from_ints
from .exact import GroupDist, edges_of, extreme, group_dist, held_whole, pareto, unrank
from .tables import COUNT_MODES, PEAK, NotDecomposable, Trellis, metric_column
from . import _dist

__all__ = ["Profile", "Witness", "Within", "profile", "count_within", "pareto_front",
           "sample_exact", "path_counts", "budget_metrics", "bin_counts"]

_PEAK_COL = metric_column(PEAK)


@dataclass(frozen=True)
class Witness:
    """One architecture achieving a value: ``native`` (the space's Python
    native), its ``group`` (e.g. the resolution) and the ``value``."""

    value: int
    group: Any
    native: Any


def bin_counts(cum: Sequence[int]) -> list:
    """Exact counts per bin from the counts at each edge minus one (what
    ``cdf(edges - 1)`` gives): bin ``j`` holds ``cum[j + 1] - cum[j]``.

    >>> bin_counts([0, 3, 3, 10])
    [3, 0, 7]
    """
    return [b - a for a, b in zip(cum, cum[1:])]


def _rank(q, total: int) -> int:
    """How many candidates the ``q`` quantile must cover: ``ceil(q * total)``
    (at least 1), with a float ``q`` read as the decimal it prints as (0.9 is 9/10)."""
    f = q if isinstance(q, Fraction) else Fraction(str(float(q)))
    if not 0 <= f <= 1:
        raise ValueError(f"a quantile is in [0, 1], got {q!r}")
    return max(1, math.ceil(f * total))


def _mode(over: str) -> str:
    if over not in COUNT_MODES:
        raise ValueError(f"over must be one of {', '.join(COUNT_MODES)}, got {over!r}")
    return over


def _col_value(col: int):
    return lambda step, g: step.values[:, g, col]


def _zero_value(step, g):
    return np.zeros(len(step.src), dtype=np.int64)


def _witness(space, trellis: Trellis, path, g: int, value) -> Witness:
    cols = trellis.decode(path[None, :], np.zeros((1, len(path)), dtype=np.uint64),
                          np.array([g]))
    gv = trellis.group_values[g].item() if trellis.group_name else None
    return Witness(int(value), gv, space.from_columns(cols)[0])


def path_counts(trellis: Trellis, mode: str, keep=None, groups=None) -> list:
    """Exact number of paths (candidates) per group (or of ``groups``), as Python ints."""
    out = []
    for g in (range(trellis.n_groups) if groups is None else groups):
        cur = [1]
        for step in trellis.steps:
            m = step.mode_mult(mode)
            ok = m > 0 if keep is None else (m > 0) & keep(step, g)
            nxt = [0] * step.n_out
            for i in np.flatnonzero(ok):
                nxt[step.dst[i]] += cur[step.src[i]] * int(m[i])
            cur = nxt
        out.append(cur[0])
    return out


def _edges_key(edges: list) -> bytes:
    """A group's edges as bytes: groups with equal keys have one distribution."""
    return b"".join(e.vals.tobytes() + e.mult.tobytes() for e in edges)


def _group_counts(trellis: Trellis, q: "_Question", over: str, what: str) -> list:
    """Exact number of candidates within the question's bounds, per group.

    Each group's distribution is built into one :class:`~.dists.Scratch`
    and dropped once counted, so the next group reuses its memory (fresh
    memory costs the kernel's zeroing of every page).  Groups with
    identical edges are built once: within a bound the count is the
    distribution's alone, so the count is kept, not the distribution."""
    counts, seen, scratch = [], {}, Scratch()
    for g in range(trellis.n_groups):
        edges = edges_of(trellis, g, q.value, over, q.keep)
        key = _edges_key(edges)
        if key not in seen:
            gd = group_dist(trellis, edges, "sum", what, dense=q.dense, cap=q.bound, whole=False,
                            scratch=scratch)
            seen[key] = _group_count(gd, q, g) if q.bound is not None else gd
            del gd                      # its memory free before the next group is built
        hit = seen[key]
        counts.append(hit if q.bound is not None else _group_count(hit, q, g))
    return counts


# ------------------------------------------------------------------ profile
#: bytes of group distributions a :class:`Profile` keeps between queries
PROFILE_CACHE = 256 << 20


class Profile:
    """The exact distribution of one metric over a whole space.

    Counts are Python ints (exact beyond int64).  Per group (``by``, e.g.
    the input resolution) and pooled.  Distributions are built on demand,
    one group at a time, and kept up to :data:`PROFILE_CACHE` bytes (a
    group about to be built counts, at its size when last built or else at
    the largest yet, so groups kept never hold memory a build needs); a
    group too wide to list (OFA's MACs at 132 px and above: 10^7 distinct
    values and more) is held as exact prefix and suffix halves
    (``exact.py``): counts, CDF, histograms and quantiles stay exact, but
    cost a pass over the halves per question, and :meth:`dist` refuses.

    Attributes
    ----------
    space, metric, convention, unit, over, by : str
        What was profiled and how it is counted.
    group_name : str or None
        The native field of the groups (``"r"``), whatever ``by`` is.
    group_values : list
        Its value per group.
    totals : list of int
        Candidates per group.
    total : int
        Candidates in the space (as ``over`` counts them).
    min, max : Witness
        The extremes, with one architecture each.
    group_min, group_max : list of Witness
        The same per group.
    """

    def __init__(self, space, trellis: Trellis, metric: str, over: str, by: Optional[str],
                 n_jobs: int = 1, cache_bytes: int = PROFILE_CACHE):
        self.space, self.metric, self.over, self.by = space.name, metric, over, by
        conv = trellis.options.convention
        self.convention = conv.name
        self.unit = conv.unit if metric == "ops" else {"macs": "MACs"}.get(metric, "")
        self.group_name = trellis.group_name
        self.group_values = [v.item() for v in trellis.group_values]
        self._trellis, self._n_jobs, self._cache_bytes = trellis, n_jobs, cache_bytes
        self._how = "max" if metric == PEAK else "sum"
        self._value = _col_value(metric_column(metric))
        self._edges, self._rep, seen = [], [], {}
        for g in range(trellis.n_groups):
            edges = edges_of(trellis, g, self._value, over)
            self._rep.append(seen.setdefault(_edges_key(edges), g))
            self._edges.append(edges)
        self._cache: dict = {}             # group -> its distribution, least recent first
        self._sizes: dict = {}             # group -> bytes of its distribution, once built
        self._lock = threading.Lock()
        self.totals = path_counts(trellis, over)
        self.total = sum(self.totals)
        ext = {}
        for which in ("min", "max"):
            ws = []
            for g in range(trellis.n_groups):
                v, path = extreme(trellis, self._edges[g], self._how, which)
                ws.append(_witness(space, trellis, path, g, v))
            ext[which] = ws
        self.group_min, self.group_max = ext["min"], ext["max"]
        self.min = min(self.group_min, key=lambda w: w.value)
        self.max = max(self.group_max, key=lambda w: w.value)

    def __repr__(self) -> str:
        return (f"Profile({self.space}: {self.metric}, {self.total:,} {self.over}, "
                f"{self.min.value:,}..{self.max.value:,})")

    # ----------------------------------------------------------- groups
    def _sel(self, group) -> list:
        if group is None:
            return list(range(len(self.group_values)))
        if group not in self.group_values:
            raise ValueError(f"no group {self.group_name}={group!r}; groups: {self.group_values}")
        return [self.group_values.index(group)]

    def _group(self, g: int, scratch: Optional[Scratch] = None) -> GroupDist:
        r = self._rep[g]
        with self._lock:
            gd = self._cache.pop(r, None)
            if gd is None:
                # make room first: a group kept holds its memory, so building
                # beside it would take fresh pages (the kernel zeroes each)
                self._evict(self._cache_bytes - self._sizes.get(r, max(self._sizes.values(),
                                                                       default=0)))
        if gd is None:
            gd = group_dist(self._trellis, self._edges[r], self._how,
                            f"{self.space}: exact profile of {self.metric}", scratch=scratch)
        with self._lock:
            self._sizes[r] = gd.nbytes
            self._cache[r] = gd            # most recent last
            self._evict(self._cache_bytes, keep=1)
        return gd

    def _evict(self, limit: int, keep: int = 0) -> None:
        """Drop kept groups, the least recently used first, until they hold
        at most ``limit`` bytes or ``keep`` remain (under the lock)."""
        while sum(x.nbytes for x in self._cache.values()) > max(limit, 0) and len(self._cache) > keep:
            self._cache.pop(next(iter(self._cache)))

    def _each(self, sel: list, fn) -> list:
        """``fn(group distribution)`` for each group of ``sel``, one
        distribution at a time (``n_jobs`` threads: kernels release the GIL).
        Every group builds into one :class:`~.dists.Scratch`, kept for the
        pass: a group reuses the memory the previous ones dropped.  The
        widest groups (the longest to build) go first."""
        reps = list(dict.fromkeys(self._rep[g] for g in sel))
        # the widest groups first: the buffers are made big enough at once,
        # and no thread is left with a wide one at the end
        reps.sort(key=lambda r: self.group_min[r].value - self.group_max[r].value)
        scratch = Scratch()
        if self._n_jobs == 1 or len(reps) < 2:
            done = {r: fn(self._group(r, scratch)) for r in reps}
        else:
            from joblib import Parallel, delayed
            out = Parallel(n_jobs=self._n_jobs, prefer="threads")(
                delayed(lambda r: fn(self._group(r, scratch)))(r) for r in reps)
            done = dict(zip(reps, out))
        return [done[self._rep[g]] for g in sel]

    @property
    def materialized(self) -> bool:
        """Whether every group's distribution is held whole (values listed);
        decided from the groups' spans, before building any."""
        return all(held_whole(self._trellis, self._edges[self._rep[g]], self._how)
                   for g in self._sel(None))

    def dist(self, group=None) -> Dist:
        """The distribution as a :class:`~.dists.Dist` (pooled, or one group).

        Raises :class:`~.dists.TooLarge` when a group is held as halves (too
        many distinct values to list).
        """
        fulls = self._each(self._sel(group), lambda gd: gd.full)
        if any(f is None for f in fulls):
            raise TooLarge(f"{self.space}: the {self.metric} distribution has too many distinct "
                           "values to list (it is held as exact halves); ask for counts, cdf, "
                           "histogram or quantiles instead")
        return combine([(f, 0, 1) for f in fulls], "sum") if len(fulls) > 1 else fulls[0]

    @property
    def values(self) -> np.ndarray:
        """The distinct values (pooled), ascending."""
        return self.dist().values

    @property
    def counts(self) -> np.ndarray:
        """Their exact counts: int64, or Python ints beyond int64."""
        return as_ints(self.dist().counts)

    # ------------------------------------------------------------ queries
    def cdf(self, points: Sequence[int], group=None) -> list:
        """Exact counts of candidates with a value ``<= p``, per point (one
        pass over the groups for every point)."""
        pts = [int(p) for p in points]
        tot = [0] * len(pts)
        for part in self._each(self._sel(group), lambda gd: gd.cdf(pts)):
            tot = [a + b for a, b in zip(tot, part)]
        return tot

    def count(self, max_value: int, group=None) -> int:
        """Exact number of candidates with a value ``<= max_value``."""
        return self.cdf([max_value], group)[0]

    def fraction(self, max_value: int, group=None) -> Fraction:
        """Exact fraction of candidates with a value ``<= max_value``."""
        total = sum(self.totals[g] for g in self._sel(group))
        return Fraction(self.count(max_value, group), total)

    def edges(self, bins: int = 40, range: Optional[tuple] = None, group=None) -> np.ndarray:
        """Integer bin edges over ``range`` (default: the minimum to the maximum);
        bin ``j`` is ``[edges[j], edges[j+1])``, the last one ends after the maximum."""
        sel = self._sel(group)
        lo, hi = range if range is not None else (
            min(self.group_min[g].value for g in sel), max(self.group_max[g].value for g in sel))
        return np.unique(np.linspace(lo, hi + 1, bins + 1).round().astype(np.int64))

    def histogram(self, bins: int = 40, range: Optional[tuple] = None, group=None):
        """``(counts, edges)``: exact candidates per bin (Python ints) and the
        integer edges (:meth:`edges`)."""
        edges = self.edges(bins, range, group)
        return bin_counts(self.cdf((edges - 1).tolist(), group)), edges

    def group_cdfs(self, points: Sequence[int]) -> list:
        """Per group, the exact counts of candidates with a value ``<= p`` for
        each point: one pass over the groups for all the points (a group held
        as halves answers every point in one pass over its shorter half)."""
        pts = [int(p) for p in points]
        return self._each(self._sel(None), lambda gd: gd.cdf(pts))

    def group_histograms(self, edges: np.ndarray) -> list:
        """Exact candidates per bin of ``edges`` for every group (one pass over
        the groups: what a plot per group and per-group brackets need)."""
        cums = self.group_cdfs((np.asarray(edges, dtype=np.int64) - 1).tolist())
        return [bin_counts(c) for c in cums]

    def quantiles(self, qs: Sequence[float], group=None) -> list:
        """Exact quantiles: for each ``q``, the smallest value ``v`` with
        ``count(v) >= q * total`` (``q = 0``: the minimum).

        Where a group is held as halves this bisects on the value, a pass
        over the groups per step (tens of passes): see
        :meth:`quantile_brackets` for a one-pass answer.
        """
        sel = self._sel(group)
        total = sum(self.totals[g] for g in sel)
        need = [_rank(q, total) for q in qs]
        try:
            d = self.dist(group)
        except TooLarge:
            d = None
        if d is not None:
            cum = as_ints(d.cumulative())
            return [int(d.values[np.searchsorted(cum, k, side="left")]) for k in need]
        lo = [min(self.group_min[g].value for g in sel)] * len(qs)
        hi = [max(self.group_max[g].value for g in sel)] * len(qs)
        while any(a < b for a, b in zip(lo, hi)):      # exact bisection, all quantiles at once
            mid = [(a + b) // 2 for a, b in zip(lo, hi)]
            c = self.cdf(mid, group)
            for i in np.arange(len(qs)):
                if lo[i] < hi[i]:
                    lo[i], hi[i] = (lo[i], mid[i]) if c[i] >= need[i] else (mid[i] + 1, hi[i])
        return lo

    def quantile_brackets(self, qs: Sequence[float], bins: int = 256, group=None) -> list:
        """For each ``q``, ``(a, b)`` with the exact quantile in ``[a, b)``:
        the bin of an exact ``bins``-bin histogram that holds it (one pass)."""
        sel = self._sel(group)
        total = sum(self.totals[g] for g in sel)
        counts, edges = self.histogram(bins, group=group)
        cum = np.cumsum(np.array(counts, dtype=object))
        out = []
        for q in qs:
            need = _rank(q, total)
            j = int(np.searchsorted(cum, need, side="left"))
            out.append((int(edges[j]), int(edges[j + 1])))
        return out

    @property
    def mean(self) -> Fraction:
        """The exact mean value."""
        def num(gd):
            if gd.full is not None:
                return int(np.dot(gd.full.values.astype(object), as_ints(gd.full.counts)))
            out = 0
            for a, b in gd.pairs():
                sa = int(np.dot(a.values.astype(object), as_ints(a.counts)))
                sb = int(np.dot(b.values.astype(object), as_ints(b.counts)))
                out += sa * b.total + sb * a.total
            return out
        return Fraction(sum(self._each(self._sel(None), num)), self.total)


def profile(space, trellis: Trellis, metric: str = "macs", over: str = "networks",
            by: Optional[str] = None, n_jobs: int = 1) -> Profile:
    """The exact :class:`Profile` of ``metric`` over ``space`` (see the module)."""
    over = _mode(over)
    trellis.check([metric])
    if by is not None and by != trellis.group_name:
        raise ValueError(f"{space.name}: profiles group by {trellis.group_name or 'nothing'}, "
                         f"not {by!r}")
    return Profile(space, trellis, metric, over, by, n_jobs=n_jobs)


# --------------------------------------------------------------- budgets
@dataclass
class _Question:
    """A budget as dynamic-program parts: which edges remain, what is summed,
    and which summed values fit."""

    keep: Any
    value: Any
    dense: bool
    fits: Any               # fits(values, g) -> bool mask
    bound: Optional[int]    # the single bound (one additive metric), else None


def budget_metrics(budget: Budget) -> tuple:
    """The metrics a budget bounds, for exact answers (``max_latency`` has none)."""
    if "latency_s" in budget.limits:
        raise NotDecomposable("max_latency has no exact block decomposition (a roofline per "
                              "layer, in floating point); use method='rejection'")
    return tuple(budget.limits)


def _question(space, trellis: Trellis, budget: Budget) -> _Question:
    """A budget as dynamic-program parts: a peak bound prunes edges, one
    additive bound is the summed value, two or more a joint key."""
    limits = budget.limits
    trellis.check(budget_metrics(budget))
    keep = None
    if PEAK in limits:
        cap = limits[PEAK]
        keep = lambda step, g: step.values[:, g, _PEAK_COL] <= cap  # noqa: E731
    add = [(metric_column(c), v) for c, v in limits.items() if c != PEAK]
    if not add:
        return _Question(keep, _zero_value, True, lambda v, g: v <= 0, 0)
    if len(add) == 1:
        col, bound = add[0]
        return _Question(keep, _col_value(col), True, lambda v, g: v <= bound, bound)
    return _joint_question(space, trellis, keep, add)


def _joint_question(space, trellis: Trellis, keep, add: list) -> _Question:
    """Two or more additive bounds: one composite key per path, ``sum_j
    (x_j / g_j) * R_j`` in mixed radix, so the sum of keys is the key of the
    sums; its distribution must stay small (``TooLarge`` otherwise)."""
    scale = []
    for g in range(trellis.n_groups):
        per = []
        for col, _ in add:
            edges = edges_of(trellis, g, _col_value(col), "encodings", keep)
            top = extreme(trellis, edges, "sum", "max")[0] or 0
            div = 0
            for st in trellis.steps:
                div = math.gcd(div, int(np.gcd.reduce(st.values[:, g, col])) if len(st.src) else 0)
            per.append((max(div, 1), top // max(div, 1) + 1))
        radix, span = [1] * len(add), 1
        for j in range(len(add) - 1, -1, -1):
            radix[j] = span
            span *= per[j][1]
        if span >= 1 << 62:
            raise TooLarge(f"{space.name}: the joint table of {len(add)} metrics does not fit int64")
        scale.append((per, radix))

    def value(step, g):
        per, radix = scale[g]
        out = np.zeros(len(step.src), dtype=np.int64)
        for (col, _), (div, _), rad in zip(add, per, radix):
            out += step.values[:, g, col] // div * rad
        return out

    def fits(v, g):
        per, radix = scale[g]
        ok = np.ones(len(v), dtype=bool)
        for (col, bound), (div, size), rad in zip(add, per, radix):
            ok &= (v // rad) % size * div <= bound
        return ok

    return _Question(keep, value, False, fits, None)


def _joint(q: _Question) -> str:
    return "" if q.dense else (" (the joint table of its metrics; an exact answer needs it "
                               "small, else bound one additive metric)")


@dataclass
class Within:
    """The exact number of candidates within a budget.

    ``count`` and ``total`` are Python ints (pooled), ``fraction`` exact,
    ``by_group`` the counts per group value.
    """

    budget: Budget
    over: str
    count: int
    total: int
    by_group: dict

    @property
    def fraction(self) -> Fraction:
        """``count / total``, exact."""
        return Fraction(self.count, self.total) if self.total else Fraction(0)


def _group_count(gd: GroupDist, q: _Question, g: int) -> int:
    """Exact number of a group's candidates within the question's bounds."""
    if q.bound is not None:
        return gd.cdf([q.bound])[0]
    d = gd.full
    ok = q.fits(d.values, g)
    return sum(as_ints(d.counts[ok]).tolist()) if ok.any() else 0


def count_within(space, trellis: Trellis, budget: Budget, over: str = "networks") -> Within:
    """Exact count of the candidates of ``space`` within ``budget`` (see :class:`Within`)."""
    over = _mode(over)
    q = _question(space, trellis, budget)
    per = _group_counts(trellis, q, over, f"{space.name}: exact count within {budget}{_joint(q)}")
    counts = {(trellis.group_values[g].item() if trellis.group_name else None): c
              for g, c in enumerate(per)}
    return Within(budget, over, sum(counts.values()), sum(path_counts(trellis, over)), counts)


# ------------------------------------------------------------ Pareto front
def pareto_front(space, trellis: Trellis, x: str = "macs", y: str = "params",
                 over: str = "networks") -> list:
    """The exact Pareto front of ``(x, y)`` (both minimised) over the whole
    space: a list of :class:`Witness`-like dicts ``{x, y, group, native}``
    by increasing ``x``."""
    over = _mode(over)
    trellis.check([x, y])
    if PEAK in (x, y):
        raise NotDecomposable("the Pareto front needs two additive metrics")
    pts = []
    for g in range(trellis.n_groups):
        ex = edges_of(trellis, g, _col_value(metric_column(x)), over)
        ey = edges_of(trellis, g, _col_value(metric_column(y)), over)
        fx, fy, paths = pareto(trellis, ex, ey)
        pts += [(int(a), int(b), g, p) for a, b, p in zip(fx, fy, paths)]
    pts.sort(key=lambda t: (t[0], t[1]))
    front, best = [], None
    for a, b, g, p in pts:
        if best is None or b < best:
            front.append((a, b, g, p))
            best = b
    if not front:
        return []
    paths = np.array([p for *_, p in front])
    gs = np.array([g for _, _, g, _ in front])
    natives = space.from_columns(trellis.decode(paths, np.zeros(paths.shape, np.uint64), gs))
    return [{x: a, y: b, "group": trellis.group_values[g].item() if trellis.group_name else None,
             "native": nat}
            for (a, b, g, _), nat in zip(front, natives)]


# ------------------------------------------------------------- sampling
def _uniform_ranks(seed: int, block: int, m: int, total: int) -> np.ndarray:
    """The first ``m`` uniform ranks in ``[0, total)`` of sampling block
    ``block`` (``(m, 2)`` uint64), prefix-consistent and reproducible."""
    bits = np.random.default_rng([seed, block]).bit_generator.random_raw(2 * m)
    raw = np.ascontiguousarray(np.asarray(bits, dtype=np.uint64).reshape(m, 2))
    out = np.zeros((m, 2), dtype=np.uint64)
    lo, hi = from_ints([total])[0]
    redo = _dist.uniform_below(raw, lo, hi, out)
    for i in redo:   # probability below total / 2**128 each: a per-index stream
        rng = np.random.default_rng([seed, block, int(i)])
        while True:
            r = int(rng.integers(0, 1 << 64, dtype=np.uint64)) | (
                int(rng.integers(0, 1 << 64, dtype=np.uint64)) << 64)
            if r < (1 << 128) - (1 << 128) % total:
                out[i] = from_ints([r % total])[0]
                break
    return out


def _pick_full(gd: GroupDist, q: _Question, g: int, ranks: list):
    """Values and residual ranks for a group held whole."""
    d = gd.full
    ok = np.flatnonzero(q.fits(d.values, g))
    cum = np.empty((len(ok), 2), dtype=np.uint64)
    _dist.cumsum(np.ascontiguousarray(d.counts[ok]), cum)
    idx = np.empty(len(ranks), dtype=np.int64)
    _dist.search(cum, from_ints(ranks), idx)
    res = [r - (as_int(cum[i - 1]) if i else 0) for r, i in zip(ranks, idx.tolist())]
    return d.values[ok[idx]], res


def _pick_split(trellis, gd: GroupDist, bound: int, ranks: list, edges, path, subs):
    """Unrank samples of a group held as halves: pick the (state, prefix,
    suffix) triple by rank, then walk both halves from the split."""
    K = len(trellis.steps)
    st_w = []
    for a, b in zip(gd.left, gd.right):
        if a is None or b is None or not len(a) or not len(b):
            st_w.append(None)
            continue
        w = np.empty((len(a), 2), dtype=np.uint64)
        _dist.pair_weights(a.values, a.counts, b.values, b.cumulative(), bound, w)
        st_w.append((a, b, w))
    totals = [as_int(x[2][-1]) if x is not None else 0 for x in st_w]
    n = len(ranks)
    st = np.empty(n, np.int64)
    val = {side: np.empty(n, np.int64) for side in "lr"}
    rnk = {side: np.empty((n, 2), np.uint64) for side in "lr"}
    for i, r in enumerate(ranks):
        s = 0
        while r >= totals[s]:
            r -= totals[s]
            s += 1
        a, b, w = st_w[s]
        j = _search1(w, r)
        r -= as_int(w[j - 1]) if j else 0
        bcum = b.cumulative()
        top = int(np.searchsorted(b.values, bound - int(a.values[j]), side="right")) - 1
        r_a, r_b = divmod(r, as_int(bcum[top]))
        k = _search1(bcum, r_b)
        r_b -= as_int(bcum[k - 1]) if k else 0
        st[i] = s
        val["l"][i], rnk["l"][i] = a.values[j], from_ints([r_a])[0]
        val["r"][i], rnk["r"][i] = b.values[k], from_ints([r_b])[0]
    unrank(trellis, edges, gd, gd.split, 0, st, val["l"], rnk["l"], path, subs)
    unrank(trellis, edges, gd, gd.split, K, st, val["r"], rnk["r"], path, subs)


def _search1(cum: np.ndarray, rank: int) -> int:
    out = np.empty(1, dtype=np.int64)
    _dist.search(cum, from_ints([rank]), out)
    return int(out[0])


def sample_exact(space, trellis: Trellis, budget: Budget, n: int, seed: int, over: str,
                 start: int = 0) -> tuple[dict, int]:
    """Candidates ``start .. start + n - 1`` of the seeded stream of uniform
    draws (with replacement) among the candidates within ``budget``.

    Block ``b`` of the stream (``SAMPLE_BLOCK`` draws) comes from its own
    generator seeded by ``(seed, b)``, as :meth:`SearchSpace.sample_columns`
    does.  Returns ``(native columns, number of candidates within budget)``.
    """
    over = _mode(over)
    q = _question(space, trellis, budget)
    what = f"{space.name}: exact sampling within {budget}{_joint(q)}"
    key = (str(budget), budget.flops_convention, over)

    counts = trellis.memo(key + ("counts",), lambda: _group_counts(trellis, q, over, what))
    total = sum(counts)
    if total == 0:
        raise ValueError(f"budget unreachable in {space.name}: no candidate fits {budget} "
                         f"(exact count over every {over})")
    ranks = []
    for b in range(start // SAMPLE_BLOCK, (start + max(n, 1) - 1) // SAMPLE_BLOCK + 1):
        lo = max(start - b * SAMPLE_BLOCK, 0)
        hi = min(start + n - b * SAMPLE_BLOCK, SAMPLE_BLOCK)
        ranks += as_ints(_uniform_ranks(seed, b, hi, total)[lo:hi]).tolist() if hi > lo else []
    K = len(trellis.steps)
    path = np.zeros((n, K), dtype=np.int64)
    subs = np.zeros((n, K), dtype=np.uint64)
    grp = np.zeros(n, dtype=np.int64)
    bounds = [0]
    for c in counts:
        bounds.append(bounds[-1] + c)
    owner = [bisect.bisect_right(bounds, int(r)) - 1 for r in ranks]
    for g in sorted(set(owner)):
        idx = np.array([i for i, o in enumerate(owner) if o == g], dtype=np.int64)
        rs = [int(ranks[i]) - bounds[g] for i in idx]
        edges = edges_of(trellis, g, q.value, over, q.keep)
        gd = trellis.memo(key + (g,), lambda: group_dist(
            trellis, edges, "sum", what, keep=True, dense=q.dense, cap=q.bound, whole=False),
            nbytes=lambda gd: sum(d.nbytes for ds in gd.forward + gd.backward for d in ds
                                  if d is not None))
        p = np.zeros((len(idx), K), dtype=np.int64)
        sb = np.zeros((len(idx), K), dtype=np.uint64)
        if gd.full is not None:
            vals, res = _pick_full(gd, q, g, rs)
            unrank(trellis, edges, gd, K, 0, np.zeros(len(idx), np.int64), vals,
                   from_ints(res), p, sb)
        else:
            _pick_split(trellis, gd, q.bound, rs, edges, p, sb)
        path[idx], subs[idx], grp[idx] = p, sb, g
    return trellis.decode(path, subs, grp), total

