"""Bad input: every fault names the architecture, the layer and the reason."""
import numpy as np
import pytest

import nasflops as nf
from nasflops.spec import empty_records


def base():
    net = nf.Net(16, 8, 8)
    x = net.conv(net.input, 32, 3, padding=1)
    x = net.bn(x)
    net.act(x, "relu")
    return net.records


def mutate(field_values, layer=1):
    rec = base()
    for f, v in field_values.items():
        rec[layer][f] = v
    return rec


CASES = [
    ("unknown op", mutate({"op": 99}), 1, "bad_op", "unknown op code 99"),
    ("unknown act", mutate({"act": 42}, layer=3), 3, "bad_op", "unknown activation kind 42"),
    ("zero channels", mutate({"out_channels": 0}), 1, "bad_value", "out_channels=0"),
    ("negative kernel", mutate({"kernel_h": -3}), 1, "bad_value", "kernel_h=-3"),
    ("zero stride", mutate({"stride_w": 0}), 1, "bad_value", "stride_w=0"),
    ("groups", mutate({"groups": 3}), 1, "bad_groups", "groups=3 must divide in_channels=16"),
    ("forward ref", mutate({"input0": 2}), 1, "bad_input_ref", "earlier layer (0..0)"),
    ("self ref", mutate({"input0": 2}, layer=2), 2, "bad_input_ref", "inputs [2, -1, -1, -1]"),
    ("gap in slots", mutate({"input1": -1, "input2": 0}, layer=2), 2, "bad_input_ref", "used slots first"),
    ("missing input", mutate({"input0": -1}, layer=2), 2, "bad_input_ref", "takes 1 input"),
    ("kernel too large", mutate({"kernel_h": 11, "pad_h": 1}), 1, "kernel_too_large",
     "kernel 11x3 (dilation 1x1) is larger than its padded input: input 16x8x8"),
    ("no input layer", mutate({"op": int(nf.Op.CONV2D)}, layer=0), 0, "no_input", "layer 0 must be the network input"),
    ("second input", mutate({"op": int(nf.Op.INPUT)}, layer=2), 2, "no_input", "only layer 0"),
]


@pytest.mark.parametrize("what,rec,layer,status,text", CASES, ids=[c[0] for c in CASES])
def test_single_fault_message(what, rec, layer, status, text):
    with pytest.raises(nf.SpecError) as ei:
        nf.score(rec)
    e = ei.value
    assert (e.arch, e.layer, nf.STATUS_NAMES[e.status]) == (0, layer, status)
    assert str(e).startswith(f"architecture 0, layer {layer}: ")
    assert text in str(e)
    with pytest.raises(nf.SpecError, match=f"^layer {layer}: "):
        nf.layer_table(rec)


def test_shape_mismatch_add_concat_mul():
    net = nf.Net(8, 16, 16)
    a = net.conv(net.input, 8, 3, stride=2, padding=1)
    net.add(net.input, a)
    with pytest.raises(nf.SpecError, match=r"layer 2: \(add\) input shapes disagree \(8x16x16 from layer 0, 8x8x8 from layer 1\)"):
        nf.score(net)
    net = nf.Net(8, 16, 16)
    net.concat(net.input, net.maxpool(net.input, 2))
    with pytest.raises(nf.SpecError, match="equal height and width"):
        nf.score(net)
    net = nf.Net(8, 16, 16)
    net.mul(net.input, net.conv(net.global_avgpool(net.input), 4, 1))
    with pytest.raises(nf.SpecError, match="broadcast"):
        nf.score(net)


def test_linear_needs_flat_input_and_pool_padding():
    net = nf.Net(8, 4, 4)
    net.linear(net.input, 10)
    with pytest.raises(nf.SpecError, match=r"linear needs a 1x1 input .* got 8x4x4"):
        nf.score(net)
    net = nf.Net(8, 4, 4)
    net.maxpool(net.input, 3, 1, padding=2)
    with pytest.raises(nf.SpecError, match="more than half the kernel"):
        nf.score(net)


def test_overflow_is_detected_not_wrapped():
    net = nf.Net(2**30, 2**20, 2**20)
    net.conv(net.input, 2**30, 3, padding=1)
    with pytest.raises(nf.SpecError, match="overflows int64"):
        nf.score(net)
    # fits per sample, overflows only with the batch
    net = nf.Net(2**10, 2**10, 2**10)
    net.conv(net.input, 2**10, 1)
    assert int(nf.score(net)["macs"][0]) == 2**40
    with pytest.raises(nf.SpecError, match="overflows"):
        nf.score(net, batch_size=2**24)


def test_empty_architecture():
    b = nf.SpecBatch(base(), np.array([0, 0, 4]))
    with pytest.raises(nf.SpecError, match="architecture 0: the architecture has no layers"):
        nf.score(b)
    r = nf.score(b, errors="status")
    assert [nf.STATUS_NAMES[s] for s in r["status"]] == ["empty", "ok"]


def test_batch_mode_isolates_bad_candidates():
    good = base()
    bad = mutate({"groups": 5})
    recs = [good, bad, good, mutate({"op": 77}, layer=2), good]
    b = nf.SpecBatch.from_list(recs)
    with pytest.raises(nf.SpecError, match="^architecture 1, layer 1: "):
        nf.score(b)
    r = nf.score(b, errors="status", n_jobs=2, chunk_size=1)
    names = [nf.STATUS_NAMES[s] for s in r["status"]]
    assert names == ["ok", "bad_groups", "ok", "bad_op", "ok"]
    assert r["bad_layer"].tolist() == [-1, 1, -1, 2, -1]
    ok = nf.score(good)
    for i in (0, 2, 4):
        assert r[i].tolist() == ok[0].tolist()
    for i in (1, 3):
        assert all(int(r[i][m]) == -1 for m in nf.METRICS)
    assert r.ok.tolist() == [True, False, True, False, True]


def test_huge_adaptive_pool_does_not_hang():
    rec = empty_records(2)
    rec[0]["op"], rec[0]["out_channels"], rec[0]["size_h"], rec[0]["size_w"] = 0, 1, 4, 4
    rec[1]["op"], rec[1]["input0"] = int(nf.Op.ADAPTIVE_AVGPOOL), 0
    rec[1]["size_h"], rec[1]["size_w"] = 2**31 - 1, 2**31 - 1
    with pytest.raises(nf.SpecError, match="overflows"):
        nf.score(rec)
