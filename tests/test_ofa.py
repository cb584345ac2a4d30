"""ofa-mbv3 against the ``ofa`` package: the subnet OFA builds and its counter.

The reference is OFA's own code: ``OFAMobileNetV3(width_mult=1.2, ks_list=[3,
5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])``, then
``set_active_subnet(ks, e, d)`` and ``get_active_subnet()``, counted with
``ofa.utils.flops_counter.profile`` at input (1, 3, r, r) -- what OFA's
``count_net_flops`` does -- and params as ``sum(p.numel())``.

``profile`` keeps its per-module counts in ``torch.zeros(1)`` buffers, float32
by default, so above 2**24 its totals are rounded (the largest subnet at 224
has 843,101,040 MACs and profile prints 843101056.0).  To compare integers
exactly the test runs the same ``profile`` on the subnet moved to float64 with
float64 as the default dtype: same hooks, same formulas, no rounding.  The
subnet is moved to torch's ``meta`` device too: the hooks read only shapes
(``y.nelement()``, weight sizes), which meta tensors carry without computing,
so the test stays fast.
"""

import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import NativeError, get_space



@pytest.fixture(scope="module")
def ofa(ofa_importable):
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks")
    from ofa.utils.flops_counter import profile
    supernet = networks.OFAMobileNetV3(width_mult=1.2, ks_list=[3, 5, 7],
                                       expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    supernet.eval()
    return supernet, profile


@pytest.fixture(scope="module")
def ofa_w10(ofa):
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    supernet = OFAMobileNetV3(width_mult=1.0, ks_list=[3, 5, 7],
                              expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])
    return supernet.eval(), ofa[1]


def _ofa_counts(ofa, cfg):
    """(ops, params) of OFA's subnet for one native, by OFA's own code."""
    import torch
    supernet, profile = ofa
    supernet.set_active_subnet(ks=cfg["ks"], e=cfg["e"], d=cfg["d"])
    subnet = supernet.get_active_subnet(preserve_weight=False)
    params = sum(p.numel() for p in subnet.parameters())
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ops, _ = profile(subnet.to("meta", torch.float64), (1, 3, cfg["r"], cfg["r"]))
    finally:
        torch.set_default_dtype(old)
    assert ops == int(ops)
    return int(ops), params


@pytest.fixture(scope="module")
def space():
    return get_space("ofa-mbv3")


def test_seeded_sample_matches_ofa(space, ofa):
    # 100 seeded candidates plus the smallest and largest subnets
    natives = space.from_columns(space.sample_columns(100, seed=2026))
    natives += [{"ks": [3] * 20, "e": [3] * 20, "d": [2] * 5, "r": 128},
                {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}]
    res = nf.score(space.encode(natives), convention="ofa")
    assert res.convention == "ofa"
    for i, cfg in enumerate(natives):
        ops, params = _ofa_counts(ofa, cfg)
        assert (int(res["ops"][i]), int(res["params"][i])) == (ops, params), (i, cfg)


def test_width_1_0_matches_ofa(ofa_w10):
    # the other released width (ofa_mbv3_d234_e346_k357_w1.0)
    space = get_space("ofa-mbv3", width_mult=1.0)
    natives = space.from_columns(space.sample_columns(10, seed=10))
    res = nf.score(space.encode(natives), convention="ofa")
    for i, cfg in enumerate(natives):
        assert (int(res["ops"][i]), int(res["params"][i])) == _ofa_counts(ofa_w10, cfg), (i, cfg)


def test_largest_subnet_float32_print(space, ofa):
    # OFA's stock (float32) profile of the largest subnet, as it prints
    supernet, profile = ofa
    supernet.set_max_net()
    flops, _ = profile(supernet.get_active_subnet(preserve_weight=False), (1, 3, 224, 224))
    r = nf.score(space.encode([{"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}]),
                 convention="ofa")
    assert flops == float(np.float32(843101056))
    assert int(r["ops"][0]) == 843101040 and int(r["params"][0]) == 10701632


# ------------------------------------------------------------ natives, columns
GOOD = {"ks": [3, 5, 7, 3] * 5, "e": [3, 4, 6, 6] * 5, "d": [2, 3, 4, 2, 3], "r": 160}


def test_unused_entries_are_ignored(space):
    # stage 0 has depth 2: entries 2 and 3 of ks/e do not reach the network
    other = dict(GOOD, ks=list(GOOD["ks"]), e=list(GOOD["e"]))
    other["ks"][2:4] = [7, 7]
    other["e"][2:4] = [3, 3]
    assert np.array_equal(space.encode([GOOD]).records, space.encode([other]).records)
    deeper = dict(GOOD, d=[3, 3, 4, 2, 3])
    assert len(space.encode([deeper]).records) > len(space.encode([GOOD]).records)


def test_sampling_is_seeded_chunk_independent_and_covers_choices(space):
    cols = space.sample_columns(70000, seed=3)
    part = space.sample_columns(1000, seed=3, start=65000)
    for k in ("ks", "e", "d", "r"):
        np.testing.assert_array_equal(part[k], cols[k][65000:66000])
    assert cols["ks"].dtype == np.int8 and cols["e"].dtype == np.int8
    assert cols["d"].dtype == np.int8 and cols["r"].dtype == np.int16
    assert set(np.unique(cols["ks"])) == {3, 5, 7} and set(np.unique(cols["e"])) == {3, 4, 6}
    assert set(np.unique(cols["d"])) == {2, 3, 4}
    assert set(np.unique(cols["r"])) == set(range(128, 225, 4))
    b = space.encode_columns({k: v[:2000] for k, v in cols.items()})
    assert len(b) == 2000 and (nf.score(b, errors="status")["status"] == 0).all()


def test_natives_round_trip_and_arrow(space):
    pa = pytest.importorskip("pyarrow")
    cols = space.sample_columns(20, seed=5)
    nat = space.from_columns(cols)
    back = space.to_columns(nat)
    for k in cols:
        np.testing.assert_array_equal(back[k], cols[k])
    arrow = space.arrow_columns(cols)
    assert arrow["ks"].to_pylist() == [n["ks"] for n in nat]
    assert pa.types.is_list(arrow["d"].type) and pa.types.is_int16(arrow["r"].type)


@pytest.mark.parametrize("patch,field,text", [
    ({"ks": [3] * 19}, "ks", "list of 20"),
    ({"e": [3] * 21}, "e", "list of 20"),
    ({"d": [2, 3, 4, 2]}, "d", "list of 5"),
    ({"ks": [3] * 7 + [4] + [3] * 12}, "ks", "entry 7 is 4"),
    ({"e": [5] + [3] * 19}, "e", "entry 0 is 5"),
    ({"d": [2, 3, 1, 2, 3]}, "d", "entry 2 is 1"),
    ({"r": 130}, "r", "130"),
    ({"r": 228}, "r", "228"),
    ({"r": 124}, "r", "124"),
    ({"r": 160.0}, "r", "not an int"),
    ({"ks": "777"}, "ks", "list of 20"),
    ({"w": [1]}, "w", "unknown field"),
])
def test_bad_natives_name_candidate_and_field(space, patch, field, text):
    bad = dict(GOOD, **patch)
    with pytest.raises(NativeError) as ei:
        space.encode([GOOD, bad])
    assert ei.value.candidate == 1 and ei.value.field == field
    assert text in str(ei.value) and "candidate 1" in str(ei.value)


def test_missing_field_and_bad_columns(space):
    with pytest.raises(NativeError, match="candidate 0, field 'r'.*missing"):
        space.encode([{k: v for k, v in GOOD.items() if k != "r"}])
    cols = space.sample_columns(10, seed=1)
    cols["ks"] = cols["ks"].copy()
    cols["ks"][6, 11] = 9
    with pytest.raises(NativeError, match=r"candidate 6, field 'ks': entry 11 is 9"):
        space.encode_columns(cols)
    cols = space.sample_columns(10, seed=1)
    cols["d"] = cols["d"][:, :4]
    with pytest.raises(NativeError, match=r"field 'd': expected shape \(10, 5\)"):
        space.encode_columns(cols)


def test_decode_reads_natives_back_from_records():
    space = get_space("ofa-mbv3")
    cols = space.sample_columns(3000, seed=11)
    batch = space.encode_columns(cols)
    dec = space.decode(batch)
    assert np.array_equal(dec["d"], cols["d"]) and np.array_equal(dec["r"], cols["r"])
    # entries of blocks within each stage's depth come back; the others are unused
    used = (np.arange(4)[None, None, :] < cols["d"][:, :, None]).reshape(len(cols["r"]), 20)
    assert np.array_equal(dec["ks"][used], cols["ks"][used])
    assert np.array_equal(dec["e"][used], cols["e"][used])
    assert np.array_equal(space.encode_columns(dec).records, batch.records)
    with pytest.raises(NativeError, match="candidate 0"):
        space.decode(get_space("zoo").encode(["mobilenet_v3_large"]))
    # one foreign candidate among good ones is named
    mixed = nf.SpecBatch.concat([batch[:2], get_space("nb201").sample(1, seed=0), batch[2:3]])
    with pytest.raises(NativeError, match="candidate 2"):
        space.decode(mixed)
