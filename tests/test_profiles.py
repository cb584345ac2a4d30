"""Block tables and exact whole-space profiles, against the record core.

* table scoring equals the record core on every metric, every space, under
  several conventions, batch sizes and element types (random samples);
* on small declarative spaces, brute-force enumeration of every native
  encoding (and of every distinct network) equals the exact profiles value
  for value and count for count, every metric, both count modes; counts
  within budgets, extremes with witnesses and Pareto fronts likewise;
* NB201's profiles equal the enumeration of all 15,625 cells;
* exact draws within a budget all fit, cover the region uniformly
  (fixed-seed chi-square) and are reproducible;
* OFA-MBv3: a 1,000,000-sample Monte-Carlo histogram agrees with the exact
  distribution (fixed-seed chi-square, generous threshold);
* spaces without a decomposition (the zoo) say so.
"""
import math
from collections import Counter

import numpy as np
import pytest

import nasflops as nf
from nasflops.budget import Budget
from nasflops.options import ScoringOptions
from nasflops.search_spaces import NotDecomposable, get_space
from nasflops.search_spaces.declarative import compile_space
from nasflops.search_spaces.dists import TooLarge
from nasflops.search_spaces.tables import score_slots

from tests.test_declarative import _random_schema

# a small space with every feature of the trellis: skips (networks collapse
# them), a conv type whose expansion is unused, two widths per stage (the
# next stage's input), depth choices, SE with per-resolution pools, two
# resolutions
SMALL = {
    "name": "small", "input": {"resolution": [32, 48]},
    "options": {"global_pool": "mean_wh"},
    "stem": [{"type": "conv", "out": 8, "kernel": 3, "stride": 2, "act": "relu"}],
    "stages": [{"width": [8, 16], "depth": [1, 2], "stride": 2,
                "block": {"type": ["mbconv", "skip"], "kernel": [3, 5], "expand": [3, 6],
                          "act": "relu", "se": True}},
               {"width": [16, 24], "depth": [1, 3], "stride": 1,
                "block": {"type": ["conv", "mbconv"], "kernel": [3], "expand": [2, 4],
                          "act": "hardswish"}}],
    "head": [{"type": "conv", "out": 32, "kernel": 1, "act": "hardswish"},
             {"type": "global_pool"}, {"type": "flatten"}, {"type": "linear", "out": 10}],
}
# one stage with skips only reachable by padding (depth 3 only), resnet blocks
RESNETS = {
    "name": "resnets", "input": {"resolution": 32},
    "stem": [{"type": "conv", "out": 8, "kernel": 3, "stride": 1, "act": "relu"}],
    "stages": [{"width": [8, 16], "depth": [3], "stride": 2,
                "block": {"type": ["resnet_basic", "skip"], "kernel": [1, 3]}},
               {"width": 16, "depth": [1, 2], "stride": 2,
                "block": {"type": ["resnet_bottleneck"], "kernel": [3], "expand": [0.25, 0.5]}}],
    "head": [{"type": "global_pool"}, {"type": "linear", "out": 10}],
}
METRICS = nf.METRICS


def all_columns(space):
    """Every native encoding of a declarative space, as columns."""
    per = []
    for col in space.columns:
        if col == "r":
            per.append(("r", 0, list(range(len(space.resolutions)))))
            continue
        for sl, choices in space._choice_sets(col):
            for q in range(sl.start, sl.stop):
                ch = list(range(len(choices)))
                if col == "op" and q in space._stage_pos[:-1]:
                    ch = [int(c) for c in space._allowed_op[q]]
                per.append((col, q, ch))
    sizes = [len(c) for *_, c in per]
    idx = np.indices(sizes).reshape(len(sizes), -1).T
    n = len(idx)
    cols = {c: np.zeros((n, space._width(c)), np.int64) for c in space.columns if c != "r"}
    r_idx = np.zeros(n, np.int64)
    for j, (col, q, ch) in enumerate(per):
        v = np.asarray(ch)[idx[:, j]]
        if col == "r":
            r_idx = v
        else:
            cols[col][:, q] = v
    return space.columns_from_indices(cols, r_idx)


@pytest.fixture(scope="module", params=[SMALL, RESNETS], ids=["small", "resnets"])
def brute(request):
    """A small space, every encoding scored by the core, and one row per network."""
    space = compile_space(request.param)
    cols = all_columns(space)
    batch = space.encode_columns(cols)
    scores = nf.score(batch, convention="flops")
    first = {}
    for i in range(len(batch)):
        first.setdefault(batch[i].tobytes(), i)
    rows = {"encodings": np.arange(len(batch)), "networks": np.array(sorted(first.values()))}
    return space, cols, batch, scores, rows


# ------------------------------------------------------------ table scoring
def _table_equals_core(space, cols, opts):
    raw = space.score_columns_raw(cols, opts)
    assert score_slots(space.block_table(opts), *space._slot_ids(cols)) is not None  # tables used
    ref = nf.score(space.encode_columns(cols), convention=opts.convention, batch_size=opts.batch_size,
                   weight_dtype=opts.weight_dtype, act_dtype=opts.act_dtype)
    for k, m in enumerate(METRICS):
        assert np.array_equal(raw.metrics[:, k], ref[m]), (space.name, opts.convention.name, m)


@pytest.mark.parametrize("name, params", [
    ("ofa-mbv3", {}), ("ofa-mbv3", {"width_mult": 1.0}), ("proxylessnas-mobile", {}),
    ("proxylessnas-gpu", {}), ("proxylessnas-cpu", {}), ("nb201", {}),
    ("nb201", {"dataset": "ImageNet16-120"})])
def test_table_scoring_equals_core_on_shipped_spaces(name, params):
    space = get_space(name, **params)
    rng = np.random.default_rng(3)
    for i, conv in enumerate(["macs", "flops", "thop", "ptflops", "fvcore", "fma2", "nb201", "ofa"]):
        opts = ScoringOptions.make(conv, batch_size=int(rng.integers(1, 5)),
                                   weight_dtype=["fp32", "fp16", "int8"][i % 3],
                                   act_dtype=["fp32", "bf16", "int8"][(i + 1) % 3])
        if name == "nb201" and i % 3:       # its table scores 46,875 cells: a few options
            continue
        _table_equals_core(space, space.sample_columns(300, seed=i), opts)


@pytest.mark.parametrize("seed", range(12))
def test_table_scoring_equals_core_on_random_spaces(seed):
    rng = np.random.default_rng(100 + seed)
    space = compile_space(_random_schema(rng))
    conv = ["macs", "flops", "thop", "ptflops", "fvcore"][seed % 5]
    _table_equals_core(space, space.sample_columns(400, seed=seed),
                       ScoringOptions.make(conv, batch_size=1 + seed % 3))


# -------------------------------------------------------- brute-force spaces
def test_totals_are_size_and_encodings(brute):
    space, cols, batch, scores, rows = brute
    assert len(rows["networks"]) == space.size          # distinct records = the space's size
    assert len(rows["encodings"]) == space.n_encodings
    for over in ("networks", "encodings"):
        assert space.profile("params", over=over).total == len(rows[over])


@pytest.mark.parametrize("metric", METRICS)
def test_profile_equals_enumeration(brute, metric):
    space, cols, batch, scores, rows = brute
    for over, idx in rows.items():
        p = space.profile(metric, convention="flops", over=over)
        values, counts = np.unique(scores[metric][idx], return_counts=True)
        assert p.values.tolist() == values.tolist() and p.counts.tolist() == counts.tolist()
        # per resolution too
        for g, r in enumerate(space.resolutions):
            sel = idx[cols["r"][idx] == r] if "r" in cols else idx
            v, c = np.unique(scores[metric][sel], return_counts=True)
            d = p.dist(group=int(r))
            assert d.values.tolist() == v.tolist() and p.cdf([int(v[-1])], group=int(r)) == [len(sel)]
        # extremes, and their witnesses score what they claim
        for w, want in ((p.min, values[0]), (p.max, values[-1])):
            assert w.value == want
            wr = nf.score(space.encode([w.native]), convention="flops")
            assert int(wr[metric][0]) == want
        qs = p.quantiles([0, 0.25, 0.5, 0.9, 1])
        cum = np.cumsum(counts)
        assert qs == [int(values[np.searchsorted(cum, max(1, -(-int(cum[-1]) * a // b)))])
                      for a, b in ((0, 1), (1, 4), (1, 2), (9, 10), (1, 1))]
        h, edges = p.histogram(bins=7)
        assert sum(h) == len(idx)
        assert h == np.histogram(scores[metric][idx], bins=edges)[0].tolist()


def test_counts_within_budgets(brute):
    space, cols, batch, scores, rows = brute
    med = {m: int(np.median(scores[m])) for m in METRICS}
    low = {m: int(np.quantile(scores[m], 0.02)) for m in METRICS}
    budgets = [Budget(max_macs=med["macs"]), Budget(max_macs=low["macs"]),
               Budget(max_flops=med["ops"]), Budget(max_params=low["params"]),
               Budget(max_peak_act_bytes=med["peak_act_bytes"]),
               Budget(max_macs=med["macs"], max_peak_act_bytes=med["peak_act_bytes"]),
               Budget(max_macs=med["macs"], max_params=med["params"]),
               Budget(max_flops=low["ops"], max_params=med["params"], max_macs=med["macs"]),
               Budget(max_macs=1)]
    for b in budgets:
        for over, idx in rows.items():
            w = space.count_within(b, over=over)
            assert w.count == int(b.mask(scores[idx], convention="flops").sum()), (b, over)
            assert w.total == len(idx) and sum(w.by_group.values()) == w.count


def test_pareto_front_equals_brute_force(brute):
    space, cols, batch, scores, rows = brute
    front = space.pareto_front("macs", "params")
    pts = sorted(set(zip(scores["macs"].tolist(), scores["params"].tolist())))
    want, best = [], None
    for x, y in pts:
        if best is None or y < best:
            want.append((x, y))
            best = y
    assert [(p["macs"], p["params"]) for p in front] == want
    r = nf.score(space.encode([p["native"] for p in front]))
    assert r["macs"].tolist() == [x for x, _ in want] and r["params"].tolist() == [y for _, y in want]


def test_exact_samples_fit_and_are_uniform(brute):
    space, cols, batch, scores, rows = brute
    budget = Budget(max_macs=int(np.quantile(scores["macs"], 0.05)))
    fits = budget.mask(scores)
    key_of = {}
    for i in np.flatnonzero(fits):
        key_of[tuple(np.concatenate([np.ravel(cols[c][i]) for c in space.columns]).tolist())] = i
    for over in ("encodings", "networks"):
        n = 6000
        s = space.sample_within(budget, n, seed=5, method="exact", over=over)
        assert s.method == "exact" and len(s) == n and budget.mask(s.scores).all()
        assert np.array_equal(nf.score(s.batch)["macs"], s.scores["macs"])
        if over == "encodings":
            assert s.within == int(fits.sum())
            keys = [tuple(np.concatenate([np.ravel(s.columns[c][i]) for c in space.columns]).tolist())
                    for i in range(n)]
            assert all(k in key_of for k in keys)
        else:
            assert s.within == int(budget.mask(scores[rows["networks"]]).sum())
            keys = [s.batch[i].tobytes() for i in range(n)]
        counts = np.array(list(Counter(keys).values()) + [0] * (s.within - len(set(keys))))
        expected = n / s.within
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        df = s.within - 1
        assert chi2 < df + 6 * math.sqrt(2 * df) + 10, (over, chi2, df)   # fixed seed, generous


def test_exact_sampling_is_a_reproducible_stream():
    space = compile_space(SMALL)
    b = Budget(max_params=20_000)
    a = space.sample_within(b, 300, seed=11, method="exact")
    again = space.sample_within(b, 300, seed=11, method="exact")
    head = space.sample_within(b, 40, seed=11, method="exact")
    tail = space.sample_within(b, 60, seed=11, method="exact", start=240)
    other = space.sample_within(b, 300, seed=12, method="exact")
    for c in space.columns:
        assert np.array_equal(a.columns[c], again.columns[c])
        assert np.array_equal(a.columns[c][:40], head.columns[c])
        assert np.array_equal(a.columns[c][240:], tail.columns[c])
    assert any(not np.array_equal(a.columns[c], other.columns[c]) for c in space.columns)
    assert tail.arch_id.tolist() == list(range(240, 300))


# ---------------------------------------------------------------- NB201
@pytest.mark.parametrize("metric", METRICS)
def test_nb201_profile_equals_all_cells(metric):
    space = get_space("nb201")
    scores = nf.score(space.enumerate(), convention="nb201")
    p = space.profile(metric, convention="nb201")
    values, counts = np.unique(scores[metric], return_counts=True)
    assert p.values.tolist() == values.tolist() and p.counts.tolist() == counts.tolist()
    assert p.min.value == values[0] and p.max.value == values[-1]
    opts = ScoringOptions.make("nb201")
    steps = len(space.trellis(opts, (metric,)).steps)
    assert steps == (1 if metric == "peak_act_bytes" else 7)   # six edges + the rest, or the cells


def test_nb201_count_and_sampling_within_budget():
    space = get_space("nb201")
    scores = nf.score(space.enumerate(), convention="nb201")
    b = Budget(max_flops=int(np.quantile(scores["ops"], 0.01)), flops_convention="nb201",
               max_peak_act_bytes=int(np.median(scores["peak_act_bytes"])))
    assert space.count_within(b).count == int(b.mask(scores).sum())
    s = space.sample_within(b, 500, seed=0)
    assert s.method == "exact" and b.mask(s.scores).all()


# ------------------------------------------------------------------ OFA
def _chi2(observed, probs, n):
    keep = probs * n >= 5
    exp = probs[keep] * n
    return float(((np.asarray(observed)[keep] - exp) ** 2 / exp).sum()), int(keep.sum()) - 1


def test_ofa_monte_carlo_agrees_with_exact_distribution():
    """1,000,000 sampled candidates (the space's own sampler: uniform over
    encodings) against the exact distribution over encodings: params over
    the whole space, MACs within the 128 px group (whose distribution is
    held whole)."""
    space = get_space("ofa-mbv3")
    n = 1_000_000
    cols = space.sample_columns(n, seed=2024)
    raw = space.score_columns_raw(cols, ScoringOptions.make())
    params, macs = raw.metrics[:, 2], raw.metrics[:, 1]
    p = space.profile("params", over="encodings")
    h, edges = p.histogram(bins=40)
    probs = np.array([float(x) for x in h]) / float(p.total)
    stat, df = _chi2(np.histogram(params, bins=edges)[0], probs, n)
    assert stat < df + 8 * math.sqrt(2 * df), (stat, df)
    pm = space.profile("macs", over="encodings", by="r")
    sel = cols["r"] == 128
    h, edges = pm.histogram(bins=30, group=128)
    probs = np.array([float(x) for x in h]) / float(pm.totals[0])
    stat, df = _chi2(np.histogram(macs[sel], bins=edges)[0], probs, int(sel.sum()))
    assert stat < df + 8 * math.sqrt(2 * df), (stat, df)
    assert pm.min.value == int(macs.min()) or pm.min.value < int(macs.min())


def test_ofa_tail_budget_exact_count_and_samples():
    """A budget a millionth of the space fits: rejection would need ~10^6 draws
    per candidate; exact sampling draws them directly."""
    space = get_space("ofa-mbv3")
    pm = space.profile("macs")
    cut = pm.min.value + 2_000_000
    w = space.count_within(Budget(max_macs=cut))
    assert 0 < w.fraction < 1e-5
    assert set(w.by_group) == set(int(r) for r in space.resolutions)
    s = space.sample_within(Budget(max_macs=cut), 200, seed=1, over="networks")
    assert s.method == "exact" and (s.scores["macs"] <= cut).all()
    assert s.within == w.count
    assert np.array_equal(nf.score(s.batch)["macs"], s.scores["macs"])
    assert pm.min.group == 128 and nf.score(space.encode([pm.min.native]))["macs"][0] == pm.min.value


def test_ofa_extremes_and_front():
    space = get_space("ofa-mbv3")
    p = space.profile("params")
    # the largest network: every block k7 e6, depth 4 (the YAML's published figure)
    assert p.max.value == 10_701_632 and p.total == space.size
    front = space.pareto_front("macs", "params")
    assert front[0]["macs"] == space.profile("macs").min.value
    assert all(a["macs"] < b["macs"] and a["params"] > b["params"] for a, b in zip(front, front[1:]))
    r = nf.score(space.encode([front[-1]["native"], front[0]["native"]]))
    assert r["macs"].tolist() == [front[-1]["macs"], front[0]["macs"]]


# ------------------------------------------------------------- refusals
def test_zoo_is_not_decomposable():
    zoo = get_space("zoo")
    with pytest.raises(NotDecomposable, match="zoo: .*not a sum of independent per-block choices"):
        zoo.profile("macs")
    with pytest.raises(NotDecomposable, match="zoo"):
        zoo.count_within(Budget(max_macs=10**9))
    with pytest.raises(NotDecomposable, match="zoo"):
        zoo.sample_within(Budget(max_macs=10**9), 2, method="exact")
    s = zoo.sample_within(Budget(max_macs=10**9), 2, seed=0)      # auto: rejection
    assert s.method == "rejection" and (s.scores["macs"] <= 10**9).all()


def test_bad_questions_have_clear_errors():
    space = compile_space(SMALL)
    with pytest.raises(ValueError, match="over must be one of networks, encodings"):
        space.profile("macs", over="subnets")
    with pytest.raises(ValueError, match="unknown metric 'latency'"):
        space.profile("latency")
    with pytest.raises(ValueError, match="group by r, not 'd'"):
        space.profile("macs", by="d")
    with pytest.raises(ValueError, match="method must be one of auto, exact, rejection"):
        space.sample_within(Budget(max_macs=10**9), 1, method="mcmc")
    with pytest.raises(NotDecomposable, match="max_latency"):
        space.count_within(Budget(max_latency=1.0))
    with pytest.raises(ValueError, match="budget unreachable in small: no candidate fits"):
        space.sample_within(Budget(max_macs=1), 1, method="exact")


def test_split_distributions_answer_exactly(brute, monkeypatch):
    """Distributions too wide to hold are kept as prefix and suffix halves:
    forced here on a small space, every answer still equals enumeration."""
    from nasflops.search_spaces import exact
    monkeypatch.setattr(exact, "DENSE_LIMIT", 40)
    space, cols, batch, scores, rows = brute
    for over, idx in rows.items():
        p = space.profile("macs", over=over)
        assert not p.materialized
        with pytest.raises(TooLarge, match="too many distinct values"):
            p.dist()
        v = np.sort(scores["macs"][idx])
        pts = np.unique(np.quantile(v, np.linspace(0, 1, 9)).astype(np.int64)).tolist()
        assert p.cdf(pts) == [int(np.searchsorted(v, x, side="right")) for x in pts]
        assert p.quantiles([0.5, 0.9]) == [int(v[-(-len(v) // 2) - 1]), int(v[-(-len(v) * 9 // 10) - 1])]
        (a, b), = p.quantile_brackets([0.5], bins=16)
        assert a <= p.quantiles([0.5])[0] < b
        assert p.mean == sum(int(x) for x in v) / __import__("fractions").Fraction(len(v))
        budget = Budget(max_macs=int(np.median(v)))
        assert space.count_within(budget, over=over).count == int((v <= budget.max_macs).sum())
        s = space.sample_within(budget, 400, seed=3, method="exact", over=over)
        assert budget.mask(s.scores).all()


def test_profile_makes_room_before_building_a_group(monkeypatch):
    """A group kept between queries holds its memory: when it will not fit
    beside the next one, it is dropped before the next is built (not after,
    which would make the build take fresh memory); groups that fit together
    stay, and every answer is the same either way."""
    from nasflops.search_spaces import profiles
    space = compile_space(SMALL)
    kept_during_builds = []
    real = profiles.group_dist

    def spy(*args, **kw):
        kept_during_builds.append(list(prof._cache))
        return real(*args, **kw)

    monkeypatch.setattr(profiles, "group_dist", spy)
    prof = space.profile("macs", by="r")
    a, b = prof.group_values
    limit = int(prof.max.value)
    answers = [prof.count(limit // 2, group=g) for g in (a, b, a)]
    assert len(kept_during_builds) == 2                     # both fit the default cache
    assert kept_during_builds[1] == [prof._rep[0]]          # a stayed while b was built
    one_group = max(prof._sizes.values())
    assert one_group < sum(prof._sizes.values()) <= profiles.PROFILE_CACHE

    kept_during_builds.clear()
    prof = space.profile("macs", by="r")
    prof._cache_bytes = one_group                           # room for one group at a time
    assert [prof.count(limit // 2, group=g) for g in (a, b, a)] == answers
    assert kept_during_builds == [[], [], []]               # each built with nothing kept
    assert len(prof._cache) == 1
