"""Analytics over results: values computed by hand on a small table, then the same
functions on a dataset written by score_space checked against plain numpy."""
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import nasflops as nf
from nasflops import analytics as A
from nasflops.analytics import _front_mask
from nasflops.budget import Budget
from nasflops.pipeline import score_space

from tests.chain_space import ChainSpace


@pytest.fixture
def small():
    # row 6 is invalid (status 3, metrics -1) and must be ignored everywhere
    return pa.table({
        "arch_id": pa.array(range(8), pa.int64()),
        "r": pa.array([160, 160, 192, 192, 224, 224, 224, 160], pa.int32()),
        "macs": pa.array([10, 20, 30, 40, 50, 60, -1, 25], pa.int64()),
        "params": pa.array([9, 7, 8, 3, 3, 1, -1, 7], pa.int64()),
        "status": pa.array([0, 0, 0, 0, 0, 0, 3, 0], pa.int8()),
    })


def test_filter_by_budget_and_predicate(small):
    assert A.filter_results(small)["arch_id"].to_pylist() == [0, 1, 2, 3, 4, 5, 7]
    t = A.filter_results(small, Budget(max_macs=30, max_params=8))
    assert t["arch_id"].to_pylist() == [1, 2, 7]
    t = A.filter_results(small, Budget(max_macs=45), where=pc.field("r") >= 192, columns=["arch_id"])
    assert t.column_names == ["arch_id"] and t["arch_id"].to_pylist() == [2, 3]


def test_quantiles_by_hand(small):
    # valid macs sorted: 10 20 25 30 40 50 60 (7 values, linear interpolation)
    q = A.quantiles(small, ["macs", "params"], q=[0, 0.25, 0.5, 0.75, 1])
    assert q["quantile"].to_pylist() == [0, 0.25, 0.5, 0.75, 1]
    assert q["macs"].to_pylist() == [10.0, 22.5, 30.0, 45.0, 60.0]
    # params sorted: 1 3 3 7 7 8 9
    assert q["params"].to_pylist() == [1.0, 3.0, 7.0, 7.5, 9.0]
    q = A.quantiles(small, "macs", q=[0.5], budget=Budget(max_macs=25))
    assert q["macs"].to_pylist() == [20.0]                  # of 10 20 25
    assert np.isnan(A.quantiles(small, "macs", q=[0.5], budget=Budget(max_macs=1))["macs"][0].as_py())
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        A.quantiles(small, "macs", q=[50])
    with pytest.raises(KeyError, match="nope"):
        A.quantiles(small, "nope")


def test_histogram_by_hand(small):
    counts, edges = A.histogram(small, "macs", bins=5)
    assert edges.tolist() == [10, 20, 30, 40, 50, 60]
    assert counts.tolist() == [1, 2, 1, 1, 2]            # 10 | 20 25 | 30 | 40 | 50 60
    counts, edges = A.histogram(small, "macs", bins=2, range=(0, 100))
    assert counts.tolist() == [5, 2] and edges.tolist() == [0, 50, 100]
    counts, edges = A.histogram(small, "params", bins=2, log=True)
    assert np.allclose(edges, [1, 3, 9])                   # geometric: 1 | 3 3 7 7 8 9
    assert counts.tolist() == [1, 6]
    counts, _ = A.histogram(small, "macs", bins=3, budget=Budget(max_macs=0))
    assert counts.tolist() == [0, 0, 0]


def test_pareto_front_by_hand(small):
    # (macs, params): (10,9) (20,7) (30,8) (40,3) (50,3) (60,1) (25,7)
    # (25,7) is beaten by (20,7); (30,8) by (20,7); (50,3) by (40,3)
    f = A.pareto_front(small, "macs", "params")
    assert f["arch_id"].to_pylist() == [0, 1, 3, 5]
    assert f["macs"].to_pylist() == [10, 20, 40, 60]
    # maximising params: (10, 9) dominates every other row
    assert A.pareto_front(small, "macs", "params", maximize=["params"])["arch_id"].to_pylist() == [0]
    # exact duplicates are all on the front
    dup = pa.concat_tables([small, pa.table({
        "arch_id": pa.array([8], pa.int64()), "r": pa.array([160], pa.int32()),
        "macs": pa.array([20], pa.int64()), "params": pa.array([7], pa.int64()),
        "status": pa.array([0], pa.int8())})])
    assert A.pareto_front(dup, "macs", "params", columns=["arch_id"])["arch_id"].to_pylist() == [0, 1, 8, 3, 5]
    assert A.pareto_front(small, "macs", "params", budget=Budget(max_macs=15)).num_rows == 1
    with pytest.raises(ValueError, match="maximize"):
        A.pareto_front(small, "macs", "params", maximize=["r"])


def test_front_mask_against_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 200))
        x, y = rng.integers(0, 12, n), rng.integers(0, 12, n)
        dominated = [(np.any((x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i])))) for i in range(n)]
        assert _front_mask(x, y).tolist() == [not d for d in dominated]


def test_group_by_by_hand(small):
    g = A.group_by(small, "r", "macs", stats=("count", "min", "median", "max", "mean", "sum", "q90"))
    assert g["r"].to_pylist() == [160, 192, 224]
    assert g["macs_count"].to_pylist() == [3, 2, 2]          # row 6 (invalid) excluded
    assert g["macs_min"].to_pylist() == [10, 30, 50]
    assert g["macs_median"].to_pylist() == [20.0, 35.0, 55.0]
    assert g["macs_max"].to_pylist() == [25, 40, 60]
    assert g["macs_sum"].to_pylist() == [55, 70, 110]
    assert g["macs_mean"].to_pylist() == pytest.approx([55 / 3, 35.0, 55.0], rel=0, abs=1e-12)
    # q90 of 10 20 25: position 0.9 * 2 = 1.8 -> 20 + 0.8 * 5
    assert g["macs_q90"].to_pylist() == pytest.approx([24.0, 39.0, 59.0], rel=0, abs=1e-12)
    g = A.group_by(small, "r", "macs", stats=("median",), budget=Budget(max_macs=45))
    assert g.to_pydict() == {"r": [160, 192], "macs_median": [20.0, 35.0]}
    # two keys: (160, 7) holds rows 1 and 7 (macs 20, 25)
    g = A.group_by(small, ["r", "params"], "macs", stats=("count", "median"))
    assert g["r"].to_pylist() == [160, 160, 192, 192, 224, 224]
    assert g["params"].to_pylist() == [7, 9, 3, 8, 1, 3]
    assert g["macs_count"].to_pylist() == [2, 1, 1, 1, 1, 1]
    assert g["macs_median"].to_pylist() == [22.5, 10.0, 40.0, 30.0, 60.0, 50.0]
    with pytest.raises(ValueError, match="unknown statistic"):
        A.group_by(small, "r", "macs", stats=("mode",))


# ------------------------------------------------------- on a stored dataset
@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("an") / "run"
    score_space(ChainSpace(invalid=0.03), n=5000, seed=2, out=out, chunk_size=1200, progress=False)
    from nasflops.storage import read_results
    return out, read_results(out)


def test_dataset_functions_agree_with_numpy(stored):
    path, full = stored
    ok = full["status"].to_numpy() == 0
    macs, params, r = (full[c].to_numpy()[ok] for c in ("macs", "params", "r"))
    q = A.quantiles(path, "macs", q=[0.1, 0.5, 0.9])["macs"].to_numpy()
    assert np.array_equal(q, np.quantile(macs, [0.1, 0.5, 0.9]))
    counts, edges = A.histogram(path, "params", bins=17)
    assert np.array_equal(counts, np.histogram(params, bins=17, range=(params.min(), params.max()))[0])
    g = A.group_by(path, "r", "macs", stats=("count", "median"))
    for key, cnt, med in zip(g["r"].to_pylist(), g["macs_count"].to_pylist(), g["macs_median"].to_pylist()):
        assert cnt == int(np.sum(r == key)) and med == float(np.median(macs[r == key]))
    f = A.pareto_front(path, "macs", "peak_act_bytes")
    x, y = full["macs"].to_numpy()[ok], full["peak_act_bytes"].to_numpy()[ok]
    ids = full["arch_id"].to_numpy()[ok][_front_mask(x, y)]
    assert sorted(f["arch_id"].to_pylist()) == sorted(ids.tolist())
    b = Budget(max_macs=int(np.median(macs)), max_peak_act_bytes=int(np.quantile(y, 0.7)))
    t = A.filter_results(path, b)
    assert t["arch_id"].to_pylist() == full["arch_id"].to_numpy()[b.mask(full)].tolist()


def test_sql_with_duckdb(stored):
    pytest.importorskip("duckdb")
    path, full = stored
    t = A.sql(path, "SELECT r, count(*) AS n, median(macs) AS m FROM results "
                    "WHERE status = 0 GROUP BY r ORDER BY r")
    g = A.group_by(path, "r", "macs", stats=("count", "median"))
    assert t["r"].to_pylist() == g["r"].to_pylist()
    assert t["n"].to_pylist() == g["macs_count"].to_pylist()
    assert [float(v) for v in t["m"].to_pylist()] == g["macs_median"].to_pylist()
    small = A.sql(full, "SELECT count(*) AS n FROM results WHERE status <> 0")
    assert small["n"][0].as_py() == int(np.count_nonzero(full["status"].to_numpy()))


def test_sql_without_duckdb_says_how_to_install(stored, monkeypatch):
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ImportError, match=r"pip install 'nasflops\[sql\]'"):
        A.sql(stored[0], "SELECT 1")


def test_group_by_list_column(stored):
    path, full = stored
    g = A.group_by(path, ["w", "r"], "macs", stats=("count", "median"))
    ok = full["status"].to_numpy() == 0
    w = np.stack(full["w"].to_numpy(zero_copy_only=False))[ok]
    r, macs = full["r"].to_numpy()[ok], full["macs"].to_numpy()[ok]
    assert g.num_rows == len({(tuple(a), b) for a, b in zip(w.tolist(), r.tolist())}) == 27 * 3
    assert g["w"].type == pa.string()
    for key, rr, cnt, med in zip(*(g[c].to_pylist() for c in ("w", "r", "macs_count", "macs_median"))):
        sel = np.all(w == np.array([int(v) for v in key.split(",")]), axis=1) & (r == rr)
        assert cnt == int(sel.sum()) and med == float(np.median(macs[sel]))


def test_scores_input():
    r = nf.score(ChainSpace().sample(40, seed=1))
    q = A.quantiles(r, "macs", q=[0.5])["macs"][0].as_py()
    assert q == float(np.median(r["macs"]))
