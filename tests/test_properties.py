"""Property tests: random valid DAGs score exactly as the plain-Python
definitions say; random corruptions never crash and fail with the same
status at the same layer as the definitions."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import nasflops as nf
from nasflops import _pyref
from nasflops.scoring import STATUS_NAMES

CONVENTIONS = ["macs", "flops", "fma2"]
ACTS = [a.name.lower() for a in nf.Act]


@st.composite
def valid_nets(draw):
    """A random DAG using every op, built with shapes tracked so it is valid."""
    c0 = draw(st.integers(1, 8))
    h0, w0 = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    net = nf.Net(c0, h0, w0)
    shapes = [(c0, h0, w0)]

    def pick():
        return draw(st.integers(0, len(shapes) - 1))

    for _ in range(draw(st.integers(0, 14))):
        x = pick()
        c, h, w = shapes[x]
        kind = draw(st.sampled_from([
            "conv", "conv", "bn", "ln", "act", "pool", "apool", "add", "mul", "concat", "flatten",
            "id", "zero", "shuffle", "dropout", "softmax", "slice", "scale", "linear", "copy",
            "log_softmax",
            "pad", "crop", "sub", "div", "mean", "cat_hw"]))
        if kind == "conv":
            k = draw(st.integers(1, 5))
            d = draw(st.integers(1, 2))
            p = draw(st.integers(0, 2))
            if h + 2 * p < d * (k - 1) + 1 or w + 2 * p < d * (k - 1) + 1:
                continue
            g = draw(st.sampled_from([g for g in (1, 2, 4, c) if c % g == 0]))
            out = g * draw(st.integers(1, 4))
            s = draw(st.integers(1, 3))
            net.conv(x, out, k, stride=s, padding=p, dilation=d, groups=g, bias=draw(st.booleans()))
            shapes.append((out, (h + 2 * p - d * (k - 1) - 1) // s + 1, (w + 2 * p - d * (k - 1) - 1) // s + 1))
            continue
        if kind == "pool":
            k = draw(st.integers(1, 3))
            p = draw(st.integers(0, k // 2))
            if h + 2 * p < k or w + 2 * p < k:
                continue
            s = draw(st.integers(1, 3))
            ceil = draw(st.booleans())
            i = (net.maxpool if draw(st.booleans()) else net.avgpool)(x, k, s, p, ceil_mode=ceil)
            shapes.append(tuple(int(v) for v in nf.layer_table(net.records)[i][["channels", "height", "width"]].tolist()))
            continue
        if kind == "apool":
            oh, ow = draw(st.integers(1, 6)), draw(st.integers(1, 6))
            net.adaptive_avgpool(x, (oh, ow))
            shapes.append((c, oh, ow))
        elif kind in ("add", "concat"):
            same = [j for j, s in enumerate(shapes)
                    if (s == shapes[x] if kind == "add" else s[1:] == (h, w))]
            others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=6))
            if kind == "add":
                net.add(x, *others, inplace=draw(st.booleans()))
                shapes.append((c, h, w))
            else:
                net.concat(x, *others)
                shapes.append((c + sum(shapes[j][0] for j in others), h, w))
            # chained records for >4 inputs: take every new record's shape
            if len(shapes) < len(net):
                t = nf.layer_table(net.records)
                shapes = [tuple(int(v) for v in r[["channels", "height", "width"]].tolist()) for r in t]
        elif kind in ("mul", "sub", "div"):
            gates = [j for j, s in enumerate(shapes) if s in ((c, h, w), (c, 1, 1), (1, h, w), (1, 1, 1))]
            getattr(net, kind)(x, draw(st.sampled_from(gates)), inplace=draw(st.booleans()))
            shapes.append((c, h, w))
        elif kind == "cat_hw":
            axis = draw(st.sampled_from([1, 2]))
            same = [j for j, s in enumerate(shapes) if all(a == b for k, (a, b) in
                                                         enumerate(zip(s, (c, h, w))) if k != axis)]
            others = draw(st.lists(st.sampled_from(same), min_size=1, max_size=5))
            net.concat(x, *others, axis=axis)
            t = nf.layer_table(net.records)
            shapes = [tuple(int(v) for v in r[["channels", "height", "width"]].tolist()) for r in t]
        elif kind == "pad":
            off = (draw(st.integers(0, 2)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
            out = tuple(v + o + draw(st.integers(0, 2)) for v, o in zip((c, h, w), off))
            net.pad(x, out, off)
            shapes.append(out)
        elif kind == "crop":
            st_h, st_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            a, b = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
            zh = draw(st.integers(1, (h - 1 - a) // st_h + 1))
            zw = draw(st.integers(1, (w - 1 - b) // st_w + 1))
            net.crop(x, (a, b), (zh, zw), (st_h, st_w))
            shapes.append((c, zh, zw))
        elif kind == "mean":
            axes = draw(st.lists(st.booleans(), min_size=3, max_size=3).filter(any))
            net.mean(x, *axes)
            shapes.append(tuple(1 if r else v for r, v in zip(axes, (c, h, w))))
        elif kind == "flatten":
            net.flatten(x)
            shapes.append((c * h * w, 1, 1))
        elif kind == "linear":
            if (h, w) != (1, 1):
                continue
            o = draw(st.integers(1, 16))
            net.linear(x, o, bias=draw(st.booleans()))
            shapes.append((o, 1, 1))
        elif kind == "shuffle":
            net.channel_shuffle(x, draw(st.sampled_from([g for g in (1, 2, 3, 4) if c % g == 0])))
            shapes.append((c, h, w))
        elif kind == "slice":
            start = draw(st.integers(0, c - 1))
            step = draw(st.integers(1, 3))
            n = draw(st.integers(1, (c - 1 - start) // step + 1))
            net.slice(x, start, n, step)
            shapes.append((n, h, w))
        else:
            {"bn": lambda: net.bn(x, affine=draw(st.booleans())),
             "ln": lambda: net.layernorm(x, affine=draw(st.booleans())),
             "act": lambda: net.act(x, draw(st.sampled_from(ACTS)), inplace=draw(st.booleans())),
             "id": lambda: net.identity(x), "zero": lambda: net.zero(x),
             "copy": lambda: net.copy(x), "log_softmax": lambda: net.log_softmax(x),
             "dropout": lambda: net.dropout(x), "softmax": lambda: net.softmax(x),
             "scale": lambda: net.scale(x, bias=draw(st.booleans()))}[kind]()
            shapes.append((c, h, w))
    return net.records


def reference(records, convention, batch, wsize, asize):
    table = nf.get_convention(convention).weights
    return _pyref.score_one(records, table, batch, wsize, asize)


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(valid_nets(), st.sampled_from(CONVENTIONS), st.integers(1, 8),
       st.sampled_from(["fp32", "fp16", "int8"]), st.sampled_from(["fp32", "bf16", "int8"]))
def test_valid_specs_match_definitions(rec, convention, batch, wdt, adt):
    r = nf.score(rec, convention=convention, batch_size=batch, weight_dtype=wdt, act_dtype=adt)[0]
    ref = reference(rec, convention, batch, nf.DTYPE_SIZES[wdt], nf.DTYPE_SIZES[adt])
    assert {m: int(r[m]) for m in nf.METRICS} == {m: ref[m] for m in nf.METRICS}
    assert int(r["status"]) == 0
    t = nf.layer_table(rec, convention=convention, batch_size=batch, weight_dtype=wdt, act_dtype=adt)
    assert int(t["ops"].sum()) == int(r["ops"]) and int(t["live_bytes"].max()) == int(r["peak_act_bytes"])


FIELDS = [f for f in nf.LAYER_DTYPE.names]


@SETTINGS
@given(valid_nets(), st.data())
def test_corrupted_specs_fail_like_definitions(rec, data):
    layer = data.draw(st.integers(0, len(rec) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    info = np.iinfo(nf.LAYER_DTYPE[field])
    value = data.draw(st.one_of(st.integers(max(-3, int(info.min)), 40),
                                st.integers(int(info.min), int(info.max))))
    rec[layer][field] = value
    try:
        ref = reference(rec, "flops", 1, 4, 4)
        ref_status, ref_layer = "ok", -1
    except _pyref.RefError as e:
        ref_status, ref_layer = e.status, e.layer
    r = nf.score(rec, convention="flops", errors="status")[0]
    # the definitions check every intermediate the core checks: overflows too
    # are reported with the same status at the same layer
    assert (STATUS_NAMES[int(r["status"])], int(r["bad_layer"])) == (ref_status, ref_layer)
    if ref_status == "ok":
        assert {m: int(r[m]) for m in nf.METRICS} == {m: ref[m] for m in nf.METRICS}
    else:
        try:
            nf.score(rec)
        except nf.SpecError as e:
            assert e.layer == ref_layer and str(e).startswith(f"architecture 0, layer {ref_layer}: ")
        else:
            raise AssertionError("invalid spec scored without error")
