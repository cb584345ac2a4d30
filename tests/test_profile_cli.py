"""Exact profiles from the command line and in the pipeline: ``nasflops
profile``, ``nasflops score --max-*`` and ``score_space(within=...)``, and
the pipeline's block-table scoring (equal to the record core)."""
import json

import numpy as np

import nasflops as nf
from nasflops.budget import Budget
from nasflops.units import format_count

from tests.test_cli import assert_user_error, run


def test_profile_prints_exact_count_quantiles_witnesses_and_plots(tmp_path):
    space = nf.get_space("nb201")
    scores = nf.score(space.enumerate())
    png = tmp_path / "nb201.png"
    p = run("profile", "nb201", "--metric", "params", "--max-params", "500k", "--plot", png)
    fits = int((scores["params"] <= 500_000).sum())
    assert f"{fits:,} of 15,625 networks" in p.stdout
    params = np.sort(scores["params"])
    assert format_count(int(params[(len(params) + 1) // 2 - 1])) in p.stdout     # exact median
    assert format_count(int(params[0])) in p.stdout and format_count(int(params[-1])) in p.stdout
    assert "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|" in p.stdout          # min witness
    assert "histogram (40 bins, exact counts)" in p.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_profile_by_group_with_a_sampled_overlay(tmp_path):
    out = tmp_path / "ofa.parquet"
    run("score", "ofa-mbv3", "-n", "3000", "-o", out, "--no-progress")
    png = tmp_path / "ofa.png"
    p = run("profile", "ofa-mbv3", "--metric", "params", "--by", "r", "--over", "encodings",
            "--plot", png, "--results", out)
    space = nf.get_space("ofa-mbv3")
    assert f"{space.n_encodings:,}" in p.stdout and "params by r (exact)" in p.stdout
    assert png.stat().st_size > 10_000


def test_profile_refuses_what_it_cannot_answer():
    assert_user_error(run("profile", "zoo", check=False), "zoo", "not a sum of independent")
    assert_user_error(run("profile", "nb201", "--metric", "latency", check=False), "unknown metric")
    assert_user_error(run("profile", "proxylessnas-mobile", "--by", "d", check=False),
                      "group by r, not 'd'")


def test_score_within_budget_draws_exactly(tmp_path):
    out = tmp_path / "small.parquet"
    p = run("score", "ofa-mbv3", "-n", "200", "--max-macs", "80M", "-o", out, "--no-progress",
            "--chunk-size", "128", "--over", "networks")
    t = nf.read_results(out).sort_by("arch_id")
    assert t.num_rows == 200 and max(t["macs"].to_pylist()) <= 80_000_000
    meta = nf.read_metadata(out)
    assert meta["mode"] == "within" and meta["within"]["limits"] == {"macs": 80_000_000}
    space = nf.get_space("ofa-mbv3")
    s = space.sample_within(Budget(max_macs=80_000_000), 200, seed=0, method="exact",
                            over="networks")
    assert t["r"].to_pylist() == s.columns["r"].tolist()
    assert t["macs"].to_pylist() == s.scores["macs"].tolist()
    assert "200 candidates" in p.stdout
    assert_user_error(run("score", "zoo", "-n", "3", "--max-macs", "1G", "-o", tmp_path / "z",
                          check=False), "zoo")
    assert_user_error(run("score", "nb201", "--all", "--max-macs", "1G", "-o", tmp_path / "a",
                          check=False), "--all")


def test_pipeline_scores_from_tables_like_the_core(tmp_path):
    for name in ("ofa-mbv3", "proxylessnas-mobile", "nb201"):
        space = nf.get_space(name)
        run_ = nf.score_space(space, n=3000, seed=4, out=tmp_path / name, convention="flops",
                              batch_size=2, progress=False, chunk_size=1024, n_jobs=2)
        t = run_.read().sort_by("arch_id")
        ref = nf.score(space.sample(3000, seed=4), convention="flops", batch_size=2)
        for m in nf.METRICS:
            assert t[m].to_pylist() == ref[m].tolist(), (name, m)


def test_profile_json_natives_round_trip():
    p = run("profile", "proxylessnas-mobile", "--metric", "params")
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("min "))
    native = json.loads(line[line.index("{"):])
    space = nf.get_space("proxylessnas-mobile")
    assert int(nf.score(space.encode([native]))["params"][0]) == space.profile("params").min.value
