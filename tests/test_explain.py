"""Error messages are computed with the options the architecture was scored with.

These networks hold ~4.6e18 activation elements: valid in int8 (one byte an
element), an int64 overflow in fp32.  Scored in int8, each fails later for
another reason; its message must name the shapes that were really inferred
-- explaining it with fp32 and batch 1 (as the previous main did) overflows
at layer 0 and gives ``? (CxHxW)`` and ``in_channels=None``.
"""
import numpy as np
import pytest

import nasflops as nf

H = W = 2**31 - 1
INT8 = dict(weight_dtype="int8", act_dtype="int8")


def _add():
    net = nf.Net(1, H, W)
    net.add(net.input, net.maxpool(net.input, 2))
    return net


def _groups():
    net = nf.Net(1, H, W)
    net.conv(net.input, 4, 1, groups=3)
    return net


def _kernel():
    net = nf.Net(2**31 - 1, 32000, 67108)
    net.conv(net.input, 1, (32001, 1))
    return net


CASES = {
    "add": (_add, "architecture 0, layer 2: (add) input shapes disagree (1x2147483647x2147483647 "
                  "from layer 0, 1x1073741823x1073741823 from layer 1); it needs identical shapes"),
    "groups": (_groups, "architecture 0, layer 1: (conv2d) groups=3 must divide in_channels=1 "
                        "and out_channels=4"),
    "kernel": (_kernel, "architecture 0, layer 1: (conv2d) kernel 32001x1 (dilation 1x1) is larger "
                        "than its padded input: input 2147483647x32000x67108 (CxHxW), padding 0x0"),
}


@pytest.mark.parametrize("name", CASES)
def test_message_uses_the_scoring_options(name):
    build, message = CASES[name]
    records = build().records
    with pytest.raises(nf.SpecError) as e:
        nf.score(records, **INT8)
    assert str(e.value) == message
    # in fp32 the same network overflows first, at the input: a different fault
    with pytest.raises(nf.SpecError, match="layer 0: .*overflows int64"):
        nf.score(records)


@pytest.mark.parametrize("name", CASES)
def test_batch_rows_and_layer_table_say_the_same(name):
    build, message = CASES[name]
    records = build().records
    r = nf.score(nf.SpecBatch.from_list([records, records]), errors="status", **INT8)
    assert r["status"].tolist() != [0, 0] and (r["macs"] == -1).all()
    with pytest.raises(nf.SpecError) as e:
        nf.layer_table(records, **INT8)
    assert message.split(": ", 1)[1] in str(e.value)
    for bad in ("?", "None", "out of range"):
        assert bad not in str(e.value)


def test_net_refuses_values_its_records_cannot_hold():
    net = nf.Net(3, 8, 8)
    with pytest.raises(ValueError, match=r"layer 1 \(conv2d\): kernel_h=70000 does not fit"):
        net.conv(net.input, 4, 70000)
    with pytest.raises(ValueError, match="out_channels=1099511627776 does not fit"):
        net.conv(net.input, 2**40, 3)
    with pytest.raises(TypeError, match="out_channels must be an integer, got 4.5"):
        net.conv(net.input, 4.5, 3)
    assert len(net.records) == 1 and np.all(net.records["op"] == nf.Op.INPUT)
