"""The fast paths of exact profiles against the plain ones, count for count.

* pair counts ``#{l + r <= q}``: the all-points kernels (rank index,
  per-point pointers) equal the one-pass-per-point kernel and a brute-force
  double sum, with counts and sums beyond 2**64;
* accumulation: the 64-bit loop equals the 128-bit one and a brute-force
  convolution, its step and total too; 128-bit counts stay exact; the
  bitmap form (lean steps) equals brute force, sources as bits or points;
* halves made of independent segments equal the enumeration of small
  spaces (profile, count within a budget through the CLI's shared pass),
  and on OFA-MBv3 at 224 px the halves from both ends, point for point
  (counts above 2**64).
"""
import io
import itertools
import json
from collections import Counter

import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import _dist, dists, exact, get_space
from nasflops.search_spaces.dists import Dist, as_int, as_ints, combine, from_ints, pair_cdf

from tests.test_profiles import RESNETS, SMALL, all_columns

BIG = 1 << 64


def _rand_dist(rng, n, step, lo, counts_hi):
    """n distinct values on a lattice of ``step`` from ``lo``, counts below ``counts_hi``."""
    k = np.sort(rng.choice(np.arange(n * 4), size=n, replace=False))
    counts = [int(rng.integers(1, 1 << 62)) * int(rng.integers(1, max(counts_hi >> 62, 2)))
              % counts_hi or 1 for _ in range(n)]
    return Dist(lo + k * step, from_ints(counts))


def _brute(a: Dist, b: Dist, points) -> list:
    ca, cb = as_ints(a.counts).tolist(), as_ints(b.counts).tolist()
    av, bv = a.values.tolist(), b.values.tolist()
    return [sum(int(x) * int(y) for l, x in zip(av, ca) for r, y in zip(bv, cb) if l + r <= q)
            for q in points]


def _per_point(a: Dist, b: Dist, points) -> list:
    """The one-pass-per-point kernel (the path before the all-points ones)."""
    out = np.zeros((len(points), 2), dtype=np.uint64)
    assert not _dist.pair_cdf(a.values, a.counts, b.values, b.cumulative(),
                              np.asarray(points, dtype=np.int64), out)
    return [as_int(c) for c in out]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("counts_hi", [1 << 20, 1 << 40, 1 << 70], ids=["small", "2^40", "2^70"])
def test_pair_counts_every_path_equals_brute_force(seed, counts_hi, monkeypatch):
    rng = np.random.default_rng(seed)
    steps = [(1, 1), (8, 64), (64, 8), (6, 4), (5, 7)][seed % 5]
    a = _rand_dist(rng, int(rng.integers(1, 40)), steps[0], int(rng.integers(-50, 50)), counts_hi)
    b = _rand_dist(rng, int(rng.integers(1, 60)), steps[1], int(rng.integers(-50, 50)),
                   min(counts_hi, 1 << 40))                  # pair totals stay below 2**128
    lo = int(a.values[0] + b.values[0])
    hi = int(a.values[-1] + b.values[-1])
    pts = [int(x) for x in rng.integers(lo - 20, hi + 20, size=25)]      # unsorted, repeats
    pts += [lo - 1, lo, hi, hi + 1, pts[3], -(1 << 63), (1 << 63) - 1]
    want = _brute(a, b, pts)
    assert _per_point(a, b, pts) == want
    assert pair_cdf(a, b, pts) == want and pair_cdf(b, a, pts) == want
    old = _dist.use_popcnt(0)                          # the portable popcount too
    try:
        assert pair_cdf(a, b, pts) == want
    finally:
        _dist.use_popcnt(old)
    indexed = dists._index_step(a, b) is not None and dists._index_step(b, a) is not None
    assert indexed == (counts_hi <= 1 << 40)           # the rank index is read when it may
    for region in (64, 128, 1 << 20):                  # the index read in one or many regions
        monkeypatch.setattr(dists, "RANK_REGION", region)
        assert pair_cdf(a, b, pts) == want and pair_cdf(b, a, pts) == want
    monkeypatch.setattr(dists, "RANK_LIMIT", 0)        # the pointer walk instead
    assert pair_cdf(a, b, pts) == want and pair_cdf(b, a, pts) == want
    if counts_hi == 1 << 40:
        assert max(want) >= BIG                        # sums beyond 64 bits were exercised


def test_pair_counts_kernels_refuse_unsorted_points():
    d = Dist(np.array([0, 1]), from_ints([1, 1]))
    out = np.zeros((2, 2), dtype=np.uint64)
    with pytest.raises(ValueError, match="ascending"):
        _dist.pair_cdf_many(d.values, d.counts, d.values, d.cumulative(),
                            np.array([3, 1], dtype=np.int64), out)
    bits, before = np.zeros(1, dtype=np.uint64), np.zeros(1, dtype=np.int64)
    _dist.rank_index(np.array([0, 1], dtype=np.int64), bits, before)
    with pytest.raises(ValueError, match="ascending"):
        _dist.pair_cdf_rank(np.array([0, 1], dtype=np.int64), d.low_counts(), bits, before,
                            np.array([1, 2], dtype=np.uint64), np.array([3, 1], dtype=np.int64),
                            out)
    with pytest.raises(ValueError, match="ascending and distinct"):
        _dist.rank_index(np.array([1, 1], dtype=np.int64), bits, before)


def _convolve_brute(parts) -> dict:
    acc = Counter()
    for d, s, m in parts:
        for v, c in zip(d.values.tolist(), as_ints(d.counts).tolist()):
            acc[v + s] += int(c) * m
    return dict(sorted(acc.items()))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("avx512", [-1, 0], ids=["cpu", "portable"])
def test_accumulation_64_bit_loop_equals_128_bit_and_brute_force(seed, avx512):
    """The 64-bit loop (its points packed eight at a time with AVX-512 where
    the CPU has it, or the portable loop) writes what the 128-bit loop and
    a brute-force sum do, into outputs of exactly the capacity it asks for."""
    rng = np.random.default_rng(40 + seed)
    srcs = [_rand_dist(rng, int(rng.integers(2, 300)), 4, 0, 1 << 30) for _ in range(2)]
    parts = [(srcs[i % 2], int(rng.integers(0, 200)) * 4, int(rng.integers(1, 9)))
             for i in range(int(rng.integers(2, 12)))]
    want = _convolve_brute(parts)
    got = combine(parts)
    assert got.values.tolist() == list(want) and as_ints(got.counts).tolist() == list(want.values())
    assert got.total == sum(want.values()) and got.step == int(np.gcd.reduce(np.diff(got.values)))
    assert np.array_equal(got.lattice_index(), (got.values - got.values[0]) // got.step)
    # the kernel's 64-bit loop (taken above) and its 128-bit loop, on the same input
    lo = min(int(d.values[0]) + s for d, s, _ in parts)
    span = (max(int(d.values[-1]) + s for d, s, _ in parts) - lo) // 4 + 1
    cap = min(span, sum(len(d) for d, _, _ in parts) + 1)
    outs = []
    old = _dist.use_avx512(avx512)
    try:
        for fits64 in (True, False):
            ov, oc = np.empty(cap, np.int64), np.empty((cap, 2), np.uint64)
            ok, info = np.empty(cap, np.int64), np.zeros(4, np.int64)
            m = _dist.accumulate_windows(
                [d.lattice_index() for d in srcs], [d.counts for d in srcs],
                np.array([0 if d is srcs[0] else 1 for d, _, _ in parts]),
                np.ones(len(parts), np.int64),
                np.array([(int(d.values[0]) + s - lo) // 4 for d, s, _ in parts]),
                np.array([x for _, _, x in parts], dtype=np.uint64), span, lo, 4, 64, ov, oc, ok,
                info, fits64)
            outs.append((ov[:m].tolist(), oc[:m].tolist(), ok[:m].tolist(), info.tolist()))
    finally:
        _dist.use_avx512(old)
    assert outs[0] == outs[1]
    assert outs[0][0] == list(want)
    assert [lo_ + (hi << 64) for lo_, hi in outs[0][1]] == list(want.values())
    assert as_int(np.array(outs[0][3][2:]).astype(np.uint64)) == sum(want.values())


@pytest.mark.parametrize("seed", range(6))
def test_step_total_and_prefix_equal_the_plain_computation(seed):
    """A distribution's step and total come from one compiled pass (the gcd
    no longer computed once it reaches a step known to divide it): they equal numpy's gcd of the
    differences and the sum of the counts, beyond 2**64 too; a prefix (a
    count within a budget truncates every state to one) views its arrays and
    has its own step, total, lattice points and cumulative counts."""
    rng = np.random.default_rng(130 + seed)
    step = [1, 3, 8][seed % 3]
    d = _rand_dist(rng, int(rng.integers(2, 300)), step, int(rng.integers(-50, 50)),
                   [1 << 20, 1 << 70][seed % 2])
    ints = as_ints(d.counts).tolist()
    assert d.step == int(np.gcd.reduce(np.diff(d.values))) and d.total == sum(ints)
    bare = Dist(d.values, d.counts)
    assert bare.total == sum(ints)            # its total known, no cumulative counts
    d.lattice_index()
    d.cumulative()
    for n, whole in itertools.product((1, 2, int(rng.integers(2, len(d) + 1)), len(d) - 1,
                                       len(d)), (d, bare)):
        p = whole.prefix(n)
        assert np.shares_memory(p.values, d.values) and p.values.tolist() == d.values[:n].tolist()
        assert p.step == (int(np.gcd.reduce(np.diff(d.values[:n]))) if n > 1 else 0)
        assert p.total == sum(ints[:n])
        assert np.array_equal(p.lattice_index(), (p.values - p.values[0]) // (p.step or 1))
        cum = np.cumsum(np.array(ints[:n], dtype=object)).tolist()
        assert as_ints(p.cumulative()).tolist() == cum
    even = Dist(np.array([0, 4, 8, 9]), from_ints([1, 1, 1, 1]))
    assert even.step == 1 and even.prefix(3).step == 4          # a coarser prefix
    with pytest.raises(OverflowError):
        Dist(np.array([0, 1]), from_ints([(1 << 128) - 1, 1])).total


def test_accumulation_beyond_64_bits_stays_exact():
    d = Dist(np.array([0, 3, 6]), from_ints([BIG - 1, 2**100 + 7, 5]))
    parts = [(d, 0, 3), (d, 3, 2**20), (d, 9, 1)]
    got = combine(parts)
    want = _convolve_brute(parts)
    assert got.values.tolist() == list(want)
    assert [int(c) for c in as_ints(got.counts)] == list(want.values())
    assert got.total == sum(want.values()) > BIG
    with pytest.raises(OverflowError):
        combine([(Dist(np.array([0]), from_ints([2**127])), 0, 2)])


# ---------------------------------------------------------- halves of segments
# SMALL with one width per stage: the stage ends are boundaries of one state
# (independent segments, as in OFA-MBv3), three stages
SEGMENTED = {**SMALL, "name": "segmented", "stages": [
    {**SMALL["stages"][0], "width": 8},
    {**SMALL["stages"][1], "width": 16, "depth": [1, 2]},
    {**SMALL["stages"][0], "width": 16, "stride": 1, "depth": [1, 2]}]}


@pytest.fixture(scope="module", params=[SEGMENTED, RESNETS], ids=["segmented", "resnets"])
def brute(request):
    space = nf.search_spaces.declarative.compile_space(request.param)
    cols = all_columns(space)
    scores = nf.score(space.encode_columns(cols))
    return request.param, space, cols, scores


def test_segment_halves_equal_enumeration(brute, monkeypatch):
    """Forced to halves (a tiny DENSE_LIMIT), each group is one pair of
    halves made of independent segments; every count equals enumeration."""
    monkeypatch.setattr(exact, "DENSE_LIMIT", 40)
    _, space, cols, scores = brute
    p = space.profile("macs", over="encodings", by="r")
    for g, r in enumerate(space.resolutions):
        gd = p._group(g)
        segmented = exact._segments(p._trellis, p._edges[g], "profile") is not None
        assert segmented or space.name != "segmented"
        assert gd.full is None and (gd.split == -1) == segmented
        assert len(gd.pairs()) == 1 or not segmented
        v = np.sort(scores["macs"][cols["r"] == r] if "r" in cols else scores["macs"])
        pts = sorted(set(v.tolist()) | {int(v[0]) - 1, int(v[-1]) + 1})
        assert gd.cdf(pts) == [int(np.searchsorted(v, x, side="right")) for x in pts]
        assert gd.total == len(v) and gd.bounds == (int(v[0]), int(v[-1]))
    h, edges = p.histogram(bins=9)
    assert h == np.histogram(scores["macs"], bins=edges)[0].tolist()


def test_cli_count_shares_the_profile_pass(brute, tmp_path, monkeypatch, capsys):
    """``profile --max-macs`` counts from the histogram's own pass over the
    groups (halves forced): the same count as enumeration and count_within."""
    from nasflops import cli
    schema, space, cols, scores = brute
    path = tmp_path / "space.json"
    path.write_text(json.dumps(schema))
    monkeypatch.setattr(exact, "DENSE_LIMIT", 40)
    monkeypatch.setenv("COLUMNS", "250")
    bound = int(np.median(scores["macs"]))
    by = ["--by", "r"] if "r" in cols else []
    assert cli.main(["profile", f"yaml:{path}", "--metric", "macs", *by, "--over",
                     "encodings", "--max-macs", str(bound)]) == 0
    text = capsys.readouterr().out
    fits = int((scores["macs"] <= bound).sum())
    assert f"{fits:,} of {len(scores['macs']):,} encodings" in text
    w = space.count_within(nf.Budget(max_macs=bound), over="encodings")
    assert w.count == fits
    for r, c in w.by_group.items():
        assert f"r={r}: {c:,}" in text or not by


def test_ofa_224_segment_halves_equal_halves_from_both_ends(monkeypatch):
    """OFA-MBv3 at 224 px (about 2e19 networks: counts beyond 2**64): the
    halves of independent segments, read by the all-points kernel, equal the
    halves from both ends read one point at a time."""
    space = get_space("ofa-mbv3")
    p = space.profile("macs", by="r")
    g = p.group_values.index(224)
    new = p._group(g)
    assert new.split == -1 and len(new.pairs()) == 1
    monkeypatch.setattr(exact, "_segment_halves", lambda *a, **k: None)
    old = exact.group_dist(p._trellis, p._edges[g], "sum", "old")
    assert old.split > 0 and len(old.pairs()) == 2
    pts = (p.edges(12, group=224) - 1).tolist() + [p.group_min[g].value, 150_000_000]
    want = [sum(c) for c in zip(*(_per_point(a, b, pts) for a, b in old.pairs()))]
    assert new.cdf(pts) == want == old.cdf(pts)
    assert want[-3] == p.totals[g] > BIG


def test_segment_halves_too_large_fall_back_to_both_ends(brute, monkeypatch):
    """A half over the limits: the programs from both ends answer instead, exactly."""
    monkeypatch.setattr(exact, "DENSE_LIMIT", 40)
    _, space, cols, scores = brute

    def too_large(*a, **k):
        raise dists.TooLarge("a half over the limits")
    monkeypatch.setattr(exact, "_segment_halves", too_large)
    p = space.profile("macs", over="encodings")
    assert all(p._group(g).split > 0 for g in range(len(p.group_values)))
    v = np.sort(scores["macs"])
    pts = v[:: max(1, len(v) // 9)].tolist()
    assert p.cdf(pts) == [int(np.searchsorted(v, x, side="right")) for x in pts]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_scratch_memory_never_overwrites_a_live_distribution(brute, monkeypatch, n_jobs):
    """Every group built into one Scratch (as a pass over the groups does),
    each group's halves (of segments, or the frontiers of the programs from
    both ends) kept alive while the next are built into the same memory:
    all still equal enumeration, and buffers were reused.  Through a
    profile's pass (``n_jobs`` threads sharing a Scratch) the same holds."""
    monkeypatch.setattr(exact, "DENSE_LIMIT", 40)
    _, space, cols, scores = brute
    p = space.profile("macs", over="encodings", by="r", n_jobs=n_jobs)
    takes = []                                               # buffers asked for
    words = dists.Scratch.words
    monkeypatch.setattr(dists.Scratch, "words",
                        lambda self, *sizes: takes.extend(sizes) or words(self, *sizes))
    scratch = dists.Scratch()
    built = [exact.group_dist(p._trellis, p._edges[g], "sum", "test", scratch=scratch)
             for g in range(len(p.group_values))]
    assert takes and len(scratch) < len(takes)             # some buffers served twice
    pts_of, want_of = [], []
    for g, gd in enumerate(built):
        v = np.sort(scores["macs"][cols["r"] == space.resolutions[g]] if "r" in cols
                    else scores["macs"])
        pts = sorted(set(v.tolist()) | {int(v[0]) - 1})
        want = [int(np.searchsorted(v, x, side="right")) for x in pts]
        assert gd.cdf(pts) == want
        pts_of.append(pts)
        want_of.append(want)
    union = sorted(set().union(*pts_of))
    for g, got in enumerate(p.group_cdfs(union)):
        assert [got[union.index(x)] for x in pts_of[g]] == want_of[g]


# ---------------------------------------------------------- lean steps
@pytest.mark.parametrize("seed", range(8))
def test_lean_steps_equal_distributions(seed):
    """combine_lean (64-bit counts, no values between steps) equals combine,
    value for value and count for count, on lattices of any step (a result
    on a coarser lattice than its parts', a sparse lattice merged instead,
    one value); its distribution carries the same step and lattice points."""
    rng = np.random.default_rng(70 + seed)
    step = [1, 4, 6, 8][seed % 4]
    srcs = [_rand_dist(rng, int(rng.integers(1, 200)), step * int(rng.integers(1, 4)),
                       int(rng.integers(-100, 100)) * step, 1 << 30) for _ in range(3)]
    spread = 10 ** int(rng.integers(2, 7)) if seed % 3 == 0 else 300   # sparse or dense lattice
    parts = [(srcs[int(rng.integers(0, 3))], int(rng.integers(0, spread)) * step,
              int(rng.integers(1, 9))) for _ in range(int(rng.integers(1, 12)))]
    want = combine(parts)
    got = dists.combine_lean([(dists.Lean.of(d), s, m) for d, s, m in parts])
    d = got.dist()
    assert d._values is None                   # nothing written out yet
    assert (len(d), d.first, d.last) == (len(want), int(want.values[0]), int(want.values[-1]))
    assert d.values.tolist() == want.values.tolist()
    assert as_ints(d.counts).tolist() == as_ints(want.counts).tolist()
    assert got.total == want.total == d.total and d.step == want.step
    assert np.array_equal(d.lattice_index(), want.lattice_index())
    one = dists.combine_lean([(dists.Lean.of(Dist.point(7, 3)), 5, 2)]).dist()
    assert one.values.tolist() == [12] and as_ints(one.counts).tolist() == [6] and one.step == 0


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("avx512", [-1, 0], ids=["cpu", "portable"])
def test_lean_sweep_equals_the_two_word_sweep(seed, avx512):
    """The lean form's sweep (one 64-bit word a count, no values: packed
    eight points at a time, with AVX-512 where the CPU has it, or the
    portable loop) writes the same points, counts, step and total as the
    two-word sweep and a brute-force sum: over windows of 64 points, sparse
    or dense, with outputs of exactly the capacity the kernel asks for, and
    on a lattice whose points stay two apart (the gcd never reaches 1)."""
    rng = np.random.default_rng(150 + seed)
    density = [0.02, 0.3, 0.9, 1.0][seed % 4]
    spread = 2 if seed >= 6 else 1                  # every point even: the step stays 2
    srcs = []
    for _ in range(int(rng.integers(1, 4))):
        n_pts = int(rng.integers(20, 600))
        k = np.flatnonzero(rng.random(n_pts) < density).astype(np.int64) * spread
        if not len(k):
            k = np.array([0], dtype=np.int64)
        srcs.append((k, rng.integers(1, 1 << 40, size=len(k)).astype(np.uint64)))
    n_parts = int(rng.integers(1, 12))
    part_src = rng.integers(0, len(srcs), size=n_parts).astype(np.int64)
    part_a = np.ones(n_parts, dtype=np.int64)
    part_b = rng.integers(0, 400, size=n_parts).astype(np.int64) * spread
    part_mult = rng.integers(1, 9, size=n_parts).astype(np.uint64)
    want = Counter()
    for s, b, x in zip(part_src, part_b, part_mult):
        for k, c in zip(*srcs[s]):
            want[int(k) + int(b)] += int(c) * int(x)
    span = max(int(srcs[s][0][-1]) + int(b) for s, b in zip(part_src, part_b)) + 1
    cap = min(span, sum(len(srcs[s][0]) for s in part_src) + 1)
    outs = []
    old = _dist.use_avx512(avx512)
    try:
        for lean in (True, False):
            cnt = [c if lean else np.stack([c, np.zeros_like(c)], axis=1) for _, c in srcs]
            ov = np.empty(0 if lean else cap, np.int64)
            oc = np.empty((cap,) if lean else (cap, 2), np.uint64)
            ok, info = np.empty(cap, np.int64), np.zeros(4, np.int64)
            m = _dist.accumulate_windows([k for k, _ in srcs], cnt, part_src, part_a, part_b,
                                         part_mult, span, 0, 1, 64, ov, oc, ok, info, True,
                                         1 if lean else 2)
            counts = oc[:m] if lean else oc[:m, 0]
            outs.append((ok[:m].tolist(), counts.tolist(), info.tolist()))
    finally:
        _dist.use_avx512(old)
    assert outs[0] == outs[1]
    points, counts, info = outs[0]
    assert dict(zip(points, counts)) == dict(sorted(want.items()))
    assert info[0] == (int(np.gcd.reduce(np.diff(points))) if len(points) > 1 else 0)
    if spread == 2:                 # the step never reached 1: the tracking loop took every point
        assert info[0] % 2 == 0
    assert as_int(np.array(info[2:]).astype(np.uint64)) == sum(want.values())


def _bits_of(k: np.ndarray, span: int) -> np.ndarray:
    bits = np.zeros((span + 63) // 64, dtype=np.uint64)
    for x in k.tolist():
        bits[x >> 6] |= np.uint64(1 << (x & 63))
    return bits


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("avx512", [-1, 0], ids=["cpu", "portable"])
def test_bitmap_accumulation_equals_brute_force(seed, avx512):
    """accumulate_bits (the bitmap form of the lean steps) writes the bits,
    counts, step, last point and total of a brute-force sum: sources as
    bitmaps or as points, sparse to full (words of one point, of eight, of
    64), parts of stride 0 (one point), 1 and 3, multiplicities 1 or more,
    windows of 64 and 128 points and beyond the span, outputs of exactly
    the capacity it asks for; the portable loops equal the AVX-512 ones.  A
    lattice whose points stay two apart keeps its step 2."""
    rng = np.random.default_rng(300 + seed)
    density = [0.01, 0.12, 0.5, 1.0][seed % 4]
    spread = 2 if seed in (5, 11) else 1            # every point even: the step stays 2
    srcs = []
    for i in range(int(rng.integers(1, 4))):
        n_pts = int(rng.integers(1, 700)) if i or seed % 3 else 1    # a one-point source
        k = np.flatnonzero(rng.random(n_pts) < density).astype(np.int64) * spread
        k = k if len(k) else np.array([0], dtype=np.int64)
        c = rng.integers(1, 1 << 40, size=len(k)).astype(np.uint64)
        srcs.append((k, c, int(k[-1]) + 1, bool(rng.integers(0, 2))))   # as points or as bits
    n_parts = int(rng.integers(1, 12))
    part_src = rng.integers(0, len(srcs), size=n_parts).astype(np.int64)
    part_a = np.array([0 if srcs[s][2] == 1 else (1 if seed % 2 or spread == 2 else
                                                  int(rng.choice([1, 3]))) for s in part_src],
                      dtype=np.int64)
    part_b = rng.integers(0, 300, size=n_parts).astype(np.int64) * spread
    part_mult = (np.ones(n_parts) if seed % 4 == 1 else
                 rng.integers(1, 9, size=n_parts)).astype(np.uint64)
    want = Counter()
    for s, a, b, x in zip(part_src, part_a, part_b, part_mult):
        for k, c in zip(*srcs[s][:2]):
            want[int(k) * int(a) + int(b)] += int(c) * int(x)
    want = dict(sorted(want.items()))
    span = max(want) + 1
    n_entries = sum(len(srcs[s][0]) for s in part_src)
    cap = min(span, n_entries + 1)
    outs = []
    old = _dist.use_avx512(avx512)
    try:
        for window in (64, 128, 1 << 16):
            bits, cnt = np.empty((span + 63) // 64, np.uint64), np.empty(cap, np.uint64)
            info = np.zeros(4, np.int64)
            m = _dist.accumulate_bits(
                [_bits_of(k, n) if as_bits else None for k, _, n, as_bits in srcs],
                [k for k, *_ in srcs], [c for _, c, *_ in srcs],
                np.array([n for _, _, n, _ in srcs], np.int64), part_src, part_a, part_b,
                part_mult, span, window, bits, cnt, info)
            outs.append((bits.tolist(), cnt[:m].tolist(), info.tolist()))
    finally:
        _dist.use_avx512(old)
    assert outs[0] == outs[1] == outs[2]
    bits, counts, info = outs[0]
    assert bits == _bits_of(np.array(list(want), dtype=np.int64), span).tolist()
    assert counts == list(want.values())
    points = list(want)
    assert info[0] == (int(np.gcd.reduce(np.diff(points))) if len(points) > 1 else 0)
    if spread == 2:
        assert info[0] % 2 == 0
    assert info[1] == points[-1] and info[2] == sum(want.values()) and info[3] == 0


def test_bitmap_kernels_refuse_what_they_cannot_read():
    """The bitmap kernels name what disagrees instead of reading out of bounds."""
    k, c = np.array([0, 5, 70], np.int64), np.ones(3, np.uint64)
    bits = _bits_of(k, 71)
    out_k = np.empty(3, np.int64)
    _dist.bits_points(bits, out_k)
    assert out_k.tolist() == k.tolist()
    with pytest.raises(ValueError, match="exactly the set bits"):
        _dist.bits_points(bits, np.empty(2, np.int64))
    with pytest.raises(ValueError, match="outside the bits"):
        _dist.points_bits(np.array([0, 200], np.int64), np.empty(2, np.uint64))
    with pytest.raises(ValueError, match="ascending and distinct"):
        _dist.points_bits(np.array([5, 5], np.int64), np.empty(2, np.uint64))
    with pytest.raises(ValueError, match="shapes disagree"):
        _dist.bits_values(bits, np.ones(2, np.uint64), 0, 1, np.empty(3, np.int64),
                          np.empty((3, 2), np.uint64))
    with pytest.raises(ValueError, match="shapes disagree"):
        _dist.bits_rank(bits, np.empty(1, np.int64), c, np.empty(3, np.uint64))
    args = dict(part_src=np.zeros(1, np.int64), part_a=np.ones(1, np.int64),
                part_mult=np.ones(1, np.uint64), window=64, out_bits=np.empty(2, np.uint64),
                out_cnt=np.empty(4, np.uint64), out_info=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="fall outside the span"):
        _dist.accumulate_bits([bits], [None], [c], np.array([71]), part_b=np.array([1]),
                              span=71, **args)
    with pytest.raises(ValueError, match="bits, span and counts disagree"):
        _dist.accumulate_bits([bits], [None], [c], np.array([200]), part_b=np.array([0]),
                              span=71, **args)
    with pytest.raises(ValueError, match="points, span and counts disagree"):
        _dist.accumulate_bits([None], [k], [c], np.array([70]), part_b=np.array([0]),
                              span=71, **args)
    with pytest.raises(ValueError, match="multiple of 64"):
        _dist.accumulate_bits([bits], [None], [c], np.array([71]), part_b=np.array([0]),
                              span=71, **{**args, "window": 100})


@pytest.mark.parametrize("seed", range(6))
def test_lean_forms_hold_the_same_distribution(seed):
    """A Lean's bitmap and points forms hold the same values, counts, rank
    index and lattice points; each form is chosen by the share of the
    lattice its points take (BITS_DENSITY), and combining parts of either
    form gives the same distribution."""
    rng = np.random.default_rng(400 + seed)
    step = [1, 4, 6][seed % 3]
    spread = [2, 40, 4000][seed % 3]              # dense, at the threshold, sparse
    k = np.unique(rng.integers(0, spread * 50, size=50)).astype(np.int64)
    d = Dist(-7 + k * step, from_ints(rng.integers(1, 1 << 30, size=len(k)).tolist()))
    lean = dists.Lean.of(d)
    g = d.step
    pts = d.lattice_index()
    span = int(pts[-1]) + 1
    as_bits = dists.Lean(_bits_of(pts, span), None, lean.c, lean.lo, g, lean.total, span)
    as_k = dists.Lean(None, pts, lean.c, lean.lo, g, lean.total, span)
    assert (lean.bits is None) == (span > dists.BITS_DENSITY * len(d))
    for form in (as_bits, as_k):
        e = form.dist()
        assert e.values.tolist() == d.values.tolist()
        assert as_ints(e.counts).tolist() == as_ints(d.counts).tolist()
        assert form.points().tolist() == pts.tolist() and e.step == g
        bits, before, cum = form.dist().rank_index(g)
        assert bits.tolist() == _bits_of(pts, span).tolist()
        assert before.tolist() == [int(np.sum(pts < 64 * w)) for w in range(len(bits))]
        assert cum.tolist() == np.cumsum(lean.c).tolist()
    parts = [(as_bits, 0, 2), (as_k, 3 * g, 1), (as_bits, 5 * g, 3)]
    want = combine([(d, 0, 2), (d, 3 * g, 1), (d, 5 * g, 3)])
    got = dists.combine_lean(parts).dist()
    assert got.values.tolist() == want.values.tolist()
    assert as_ints(got.counts).tolist() == as_ints(want.counts).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_pair_counts_leave_lean_halves_unwritten(seed):
    """A pair query reads the longer half, made of a Lean, through its
    lattice points and 64-bit counts, and the shorter through its lattice
    points and 64-bit counts too: the counts equal brute force and neither
    half's values and 128-bit counts are written out (the memory the widest
    OFA halves no longer take)."""
    rng = np.random.default_rng(90 + seed)
    step = [1, 3, 8][seed % 3]
    finer = seed % 2            # the pair's lattice finer than the longer half's
    short = _rand_dist(rng, int(rng.integers(2, 40)), step * (3 if finer else 1),
                       int(rng.integers(-50, 50)) * step, 1 << 20)
    long_ = _rand_dist(rng, int(rng.integers(60, 400)), step * (2 if finer else 1),
                       int(rng.integers(-50, 50)) * step, 1 << 20)
    lazy = dists.Lean.of(long_).dist()
    span = int(long_.lattice_index()[-1]) + 1          # its bits, and a 64-bit count a value
    assert lazy._values is None and lazy.nbytes == 8 * ((span + 63) // 64) + 8 * len(long_)
    pts = sorted(int(x) for x in rng.integers(long_.values[0] + short.values[0] - 5,
                                              long_.values[-1] + short.values[-1] + 5, 25))
    want = _brute(short, long_, pts)
    assert dists.pair_cdf(short, lazy, pts) == want == dists.pair_cdf(lazy, short, pts)
    assert lazy._values is None and lazy._counts is None
    lazy_short = dists.Lean.of(short).dist()       # the shorter half read through its lean form
    assert dists.pair_cdf(lazy_short, lazy, pts) == want == dists.pair_cdf(lazy, lazy_short, pts)
    assert lazy_short._values is None and lazy._values is None
    assert (lazy._rank[0] < lazy.step) == bool(finer)    # its lattice points spread out
    assert as_ints(lazy.counts).tolist() == as_ints(long_.counts).tolist()   # written on demand


def test_ofa_profile_keeps_its_halves_lean():
    """OFA-MBv3 at 204 px: CDF and histogram queries leave both halves (the
    longer about 2e7 values) in their lean form, and agree with the
    written-out ones."""
    space = get_space("ofa-mbv3")
    p = space.profile("macs", by="r")
    g = p.group_values.index(204)
    gd = p._group(g)
    (a, b), = gd.pairs()
    longer = max(a, b, key=len)
    assert len(longer) > 10**7
    pts = (p.edges(8, group=204) - 1).tolist()
    got = gd.cdf(pts)
    assert all(h._values is None and h._counts is None for h in (a, b))
    eager = exact.GroupDist(None, left=[Dist(a.values, a.counts)], right=[Dist(b.values, b.counts)])
    assert eager.cdf(pts) == got and got[-1] == p.totals[g]


def test_lean_steps_stop_at_64_bits(monkeypatch):
    """A lean step whose total reaches 2**64 raises NotLean, and a half whose
    steps do is built as distributions instead: the same counts.  A half
    whose total passes 2**64 (OFA's whole group at 128 px) runs lean up to
    the segment where it may, then as distributions."""
    big = dists.Lean.of(Dist(np.array([0, 1]), from_ints([1 << 62, 1 << 62])))
    with pytest.raises(dists.NotLean):
        dists.combine_lean([(big, 0, 2), (big, 3, 1)])
    with pytest.raises(OverflowError):
        dists.Lean.of(Dist(np.array([0]), from_ints([1 << 64])))
    space = get_space("ofa-mbv3")
    p = space.profile("macs", by="r")
    g = p.group_values.index(128)
    want = exact._segment_halves(p._trellis, p._edges[g], "t", many=True)
    # the whole group (2.2e19 networks): lean segments, then the last as Dist
    lean_steps = []
    combine_lean = dists.combine_lean
    monkeypatch.setattr(exact, "combine_lean",
                        lambda *a, **k: lean_steps.append(1) or combine_lean(*a, **k))
    whole, _ = exact._segment_halves(p._trellis, p._edges[g], "t", many=True, one_half=True)
    assert lean_steps and whole.total == p.totals[g] > 1 << 64
    calls = []

    def refuse(*a, **k):                  # as if every lean step overflowed
        calls.append(1)
        raise dists.NotLean("test")
    monkeypatch.setattr(exact, "combine_lean", refuse)
    got = exact._segment_halves(p._trellis, p._edges[g], "t", many=True)
    assert calls
    got_whole, _ = exact._segment_halves(p._trellis, p._edges[g], "t", many=True, one_half=True)
    for a, b in zip(want + (whole,), got + (got_whole,)):
        assert a.values.tolist() == b.values.tolist()
        assert as_ints(a.counts).tolist() == as_ints(b.counts).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_lean_truncation_equals_the_distribution_prefix(seed):
    """Lean.upto (a budget's truncation of a lean state) keeps exactly the
    values and counts Dist.prefix keeps, in either form, at any bound."""
    rng = np.random.default_rng(500 + seed)
    step, spread = [1, 4, 6][seed % 3], [2, 4000][seed % 2]     # a bitmap, or points
    k = np.unique(rng.integers(0, spread * 60, size=60)).astype(np.int64)
    d = Dist(11 + k * step, from_ints(rng.integers(1, 1 << 30, size=len(k)).tolist()))
    lean = dists.Lean.of(d)
    assert (lean.bits is None) == bool(seed % 2)
    at = d.values[rng.integers(0, len(d), size=6)].tolist() + [int(d.values[0])]
    for bound in [10, *at, *(x - 1 for x in at), *(x + 1 for x in at),
                  *rng.integers(11, int(d.values[-1]) + 10, size=12).tolist()]:
        got = lean.upto(int(bound))
        n = int(np.searchsorted(d.values, bound, side="right"))
        if not n:
            assert got is None
            continue
        want = d.prefix(n)
        e = got.dist()
        assert e.values.tolist() == want.values.tolist()
        assert as_ints(e.counts).tolist() == as_ints(want.counts).tolist()
        assert got.total == want.total and e.last == int(want.values[-1])
        assert e.step in (0, d.step) and (e.step == 0) == (n == 1)


def test_budget_counts_from_lean_frontiers_equal_the_distribution_steps(monkeypatch):
    """A count within a budget built from both ends on lean frontiers (OFA
    at 160 px, within 150 M MACs) equals the same program on distributions
    (every lean step refused), and one that turns to distributions midway
    (a lean step refused as if its total reached 2**64), at every point."""
    space = get_space("ofa-mbv3")
    p = space.profile("macs", by="r")
    g = p.group_values.index(160)
    trellis, edges = p._trellis, p._edges[g]
    bound = 150_000_000
    pts = [bound - 30_000_000, bound - 7_000_000, bound - 1, bound]
    calls = []
    combine_lean = dists.combine_lean

    def counted(*a, **k):
        calls.append(1)
        return combine_lean(*a, **k)
    monkeypatch.setattr(exact, "combine_lean", counted)
    lean = exact.group_dist(trellis, edges, "sum", "t", cap=bound, whole=False)
    assert calls and lean.split > 0 and lean.total > 0
    got = lean.cdf(pts)
    for refuse_after in (0, len(calls) // 2):
        n_calls = []

        def refuse(*a, _after=refuse_after, **k):
            n_calls.append(1)
            if len(n_calls) > _after:
                raise dists.NotLean("test")
            return combine_lean(*a, **k)
        monkeypatch.setattr(exact, "combine_lean", refuse)
        plain = exact.group_dist(trellis, edges, "sum", "t", cap=bound, whole=False)
        assert plain.cdf(pts) == got
    assert got[-1] == p.count(bound, group=160) > 0
