"""Budgets: masks, push-down expressions, single-candidate checks, rejection sampling."""
import os
import sys

import numpy as np
import pyarrow as pa
import pytest

import nasflops as nf
from nasflops.budget import Budget
from nasflops.search_spaces import BudgetSample, sample_within
from nasflops.storage import scores_table

from tests.chain_space import ChainSpace, hand_macs


def three_nets():
    """Input 3x8x8 (768 bytes fp32) then one conv each:
    A: 4 out, 3x3 pad 1, no bias: MACs 8*8*4*3*9 = 6912, params 108,
       FLOPs 2*6912 - 256 = 13568, peak 768 + 4*64*4 = 1792 bytes
    B: 8 out, 1x1, bias: MACs 64*8*3 = 1536, params 32, FLOPs 3072, peak 768 + 2048 = 2816
    C: 16 out, 3x3 pad 1, bias: MACs 64*16*27 = 27648, params 448, FLOPs 55296, peak 4864
    """
    nets = []
    for k, bias, oc in [(3, False, 4), (1, True, 8), (3, True, 16)]:
        n = nf.Net(3, 8, 8)
        n.conv(n.input, oc, k, padding=k // 2, bias=bias)
        nets.append(n)
    return nets


HAND = {"macs": [6912, 1536, 27648], "params": [108, 32, 448], "ops": [13568, 3072, 55296],
        "peak_act_bytes": [1792, 2816, 4864]}


def test_hand_values_are_what_the_core_gives():
    r = nf.score(three_nets(), convention="flops")
    for k, v in HAND.items():
        assert r[k].tolist() == v


@pytest.mark.parametrize("budget,want", [
    (Budget(), [True, True, True]),
    (Budget(max_macs=6912), [True, True, False]),
    (Budget(max_macs=6911), [False, True, False]),
    (Budget(max_params=108), [True, True, False]),
    (Budget(max_peak_act_bytes=2000), [True, False, False]),
    (Budget(max_flops=13568), [True, True, False]),
    (Budget(max_flops=50_000, max_params=100), [False, True, False]),
    (Budget(max_macs=0), [False, False, False]),
])
def test_mask_by_hand(budget, want):
    r = nf.score(three_nets(), convention="flops")
    assert budget.mask(r).tolist() == want
    # the same on a pyarrow Table (convention from its metadata) and a dict
    t = scores_table(r)
    assert budget.mask(t).tolist() == want
    cols = {k: r[k] for k in ("ops", "macs", "params", "peak_act_bytes", "status")}
    assert budget.mask(cols, convention="flops").tolist() == want
    # and as a push-down expression
    assert t.filter(budget.expression("flops"))["arch_id"].to_pylist() == \
        [i for i, w in enumerate(want) if w]
    for i, net in enumerate(three_nets()):
        assert budget.fits(net) is want[i]
        assert budget.fits(r[i:i + 1]) is want[i]


def test_invalid_rows_never_fit():
    bad = nf.Net(3, 8, 8)
    bad.conv(bad.input, 4, 11)                         # kernel larger than the input
    r = nf.score(three_nets() + [bad], errors="status")
    assert Budget(max_macs=10**12).mask(r).tolist() == [True, True, True, False]
    assert Budget().mask(r).tolist() == [True, True, True, False]
    with pytest.raises(nf.SpecError, match="layer 1"):
        Budget(max_macs=10).fits(bad)


def test_flops_need_matching_convention():
    r_macs = nf.score(three_nets(), convention="macs")
    with pytest.raises(ValueError, match="'flops'.*'macs'"):
        Budget(max_flops=10).mask(r_macs)
    with pytest.raises(ValueError, match="name their convention"):
        Budget(max_flops=10).mask({"ops": np.array([1])})
    r_fma = nf.score(three_nets(), convention="fma2")
    b = Budget(max_flops=2 * 6912, flops_convention="fma2")
    assert b.mask(r_fma).tolist() == [True, True, False]
    assert b.convention == "fma2" and Budget(max_macs=1).convention == "macs"
    assert b.fits(three_nets()[0]) is True and b.fits(three_nets()[2]) is False
    with pytest.raises(ValueError):
        b.expression({"convention": "flops"})


def test_latency_and_argument_errors():
    dev = nf.Device("toy", 1e6, 1e6)
    r = nf.score(three_nets(), device=dev)
    lat = r["latency_s"]
    b = Budget(max_latency=float(np.sort(lat)[1]))
    assert b.mask(r).tolist() == (lat <= np.sort(lat)[1]).tolist()
    assert b.fits(three_nets()[0], device=dev) == bool(lat[0] <= np.sort(lat)[1])
    with pytest.raises(KeyError, match="latency_s.*device"):
        b.mask(nf.score(three_nets()))
    with pytest.raises(ValueError, match="device"):
        b.fits(three_nets()[0])
    with pytest.raises(ValueError, match=">= 0"):
        Budget(max_macs=-1)
    with pytest.raises(ValueError, match="non-negative"):
        Budget(max_latency=float("nan"))
    assert Budget(max_params=2.7).max_params == 2           # counts are integers
    assert str(Budget(max_macs=300_000_000)) == "Budget(max_macs=300,000,000)"
    assert Budget(max_macs=5, max_params=7).limits == {"macs": 5, "params": 7}
    with pytest.raises(TypeError):
        Budget().fits("mobilenet")


def test_fits_on_records_batch_and_row_mapping():
    a = three_nets()[0]
    b = Budget(max_macs=7000, max_peak_act_bytes=1792)
    assert b.fits(a.records) and b.fits(nf.SpecBatch.from_list([a.records]))
    assert not b.fits(a, batch_size=2)                   # 2x the MACs
    assert b.fits(a, act_dtype="fp16")
    assert b.fits({"macs": 6912, "peak_act_bytes": 1792, "status": 0})
    assert not b.fits({"macs": 7001, "peak_act_bytes": 1, "status": 0})
    assert Budget(max_flops=13568).fits({"ops": 13568, "convention": "flops"})
    with pytest.raises(ValueError, match="one architecture"):
        b.fits(nf.SpecBatch.from_list([a.records, a.records]))


# --------------------------------------------------------------- sampling
def _brute_force(space, budget, seed, n_draws, n):
    cols = space.sample_columns(n_draws, seed)
    r = nf.score(space.encode_columns(cols), convention=budget.convention, errors="status")
    ids = np.flatnonzero(budget.mask(r))[:n]
    return ids, cols, r


def test_sample_within_is_first_fitting_of_the_stream():
    space = ChainSpace(invalid=0.05)
    budget = Budget(max_macs=60_000, max_params=3000)
    s = sample_within(space, budget, 25, seed=9)
    assert isinstance(s, BudgetSample) and len(s) == 25
    ids, cols, r = _brute_force(space, budget, 9, 5000, 25)
    assert s.arch_id.tolist() == ids.tolist()
    for k in cols:
        assert np.array_equal(s.columns[k], cols[k][ids])
    assert np.array_equal(np.asarray(s.scores), np.asarray(r)[ids])
    assert s.scores.convention == "macs"
    assert budget.mask(s.scores).all()
    assert np.array_equal(nf.score(s.batch)["macs"], s.scores["macs"])
    assert s.natives[0] == space.from_columns({k: v[ids[:1]] for k, v in cols.items()})[0]
    assert s.draws >= ids[-1] + 1
    assert 0 < s.acceptance <= 1
    # deterministic, and a new seed gives other candidates
    assert sample_within(space, budget, 25, seed=9).arch_id.tolist() == ids.tolist()
    assert sample_within(space, budget, 25, seed=10).arch_id.tolist() != ids.tolist()


def test_sample_within_crosses_sampling_blocks():
    """A budget only the cheapest candidate meets (1 in 3**7 = 2187): the 45
    found lie beyond the first 65536-candidate block."""
    space = ChainSpace()
    cheapest = hand_macs([8, 8, 8], [1, 1, 1], 16)
    budget = Budget(max_macs=cheapest)
    s = sample_within(space, budget, 45, seed=1, n_jobs=2)
    assert s.arch_id[-1] >= 65536
    assert set(s.scores["macs"].tolist()) == {cheapest}
    assert np.all(s.columns["r"] == 16) and np.all(s.columns["k"] == 1)
    ids, _, _ = _brute_force(space, budget, 1, int(s.arch_id[-1]) + 1, 45)
    assert s.arch_id.tolist() == ids.tolist()
    serial = sample_within(space, budget, 45, seed=1, n_jobs=1)
    assert serial.arch_id.tolist() == ids.tolist() and serial.draws == s.draws


def test_unreachable_budget_has_clear_error():
    space = ChainSpace()
    cheapest = hand_macs([8, 8, 8], [1, 1, 1], 16)
    with pytest.raises(ValueError, match=rf"budget unreachable in chain: none of 5,000 .*"
                                         rf"Budget\(max_macs=10\).*smallest seen: macs={cheapest:,}"):
        sample_within(space, Budget(max_macs=10), 1, seed=0, max_draws=5000)
    with pytest.raises(ValueError, match=r"only \d+ of the 100 requested.*raise max_draws"):
        sample_within(space, Budget(max_macs=cheapest), 100, seed=0, max_draws=20_000)
    with pytest.raises(ValueError, match="device"):
        sample_within(space, Budget(max_latency=1.0), 1)
    empty = sample_within(space, Budget(max_macs=10), 0)
    assert len(empty) == 0 and empty.draws == 0


def test_sample_within_flops_and_latency():
    space = ChainSpace()
    dev = nf.Device("toy", 1e8, 1e8)
    s = sample_within(space, Budget(max_flops=200_000, max_latency=3e-3), 10, seed=2, device=dev)
    assert s.scores.convention == "flops" and np.all(s.scores["ops"] <= 200_000)
    assert np.all(s.scores["latency_s"] <= 3e-3)
    assert np.array_equal(nf.score(s.batch, convention="flops")["ops"], s.scores["ops"])


def test_mask_on_pyarrow_with_metadata():
    r = nf.score(three_nets(), convention="flops")
    t = scores_table(r)
    rb = t.to_batches()[0]
    assert Budget(max_flops=13568).mask(rb).tolist() == [True, True, False]
    assert Budget(max_macs=6912).mask(pa.table({"macs": [6912, 6913]})).tolist() == [True, False]
