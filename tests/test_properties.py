"""Property tests: random valid DAGs score exactly as the plain-Python
definitions say; random corruptions never crash and fail with the same
status at the same layer as the definitions."""
import numpy as np
import pytest
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


@SETTINGS
@given(valid_nets(), st.data(), st.sampled_from(["torchstat-madd", "torchstat-flops", "flops", "thop"]),
       st.sampled_from(["nasflops", "torchstat"]), st.integers(1, 4),
       st.sampled_from(["fp32", "fp16"]), st.sampled_from(["fp32", "int8"]))
def test_call_kinds_repeats_and_memory_semantics_match_definitions(rec, data, convention, memory,
                                                                   batch, wdt, adt):
    # every record may be any call kind and an earlier call of a module called again
    n = len(rec)
    rec["call"] = data.draw(st.lists(st.integers(0, len(nf.Call) - 1), min_size=n, max_size=n))
    again = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    rec["flags"][again] |= int(nf.Flag.CALLED_AGAIN)
    r = nf.score(rec, convention=convention, batch_size=batch, weight_dtype=wdt, act_dtype=adt,
                 memory=memory)[0]
    conv = nf.get_convention(convention)
    ref = _pyref.score_one(rec, conv.weights, batch, nf.DTYPE_SIZES[wdt], nf.DTYPE_SIZES[adt],
                           memory=memory, last_call_only=conv.last_call_only)
    assert {m: int(r[m]) for m in nf.METRICS} == {m: ref[m] for m in nf.METRICS}
    t = nf.layer_table(rec, convention=convention, batch_size=batch, weight_dtype=wdt,
                       act_dtype=adt, memory=memory)
    for m in ("ops", "params", "act_bytes", "read_bytes", "write_bytes"):
        assert int(t[m].sum()) == int(r[m])
    # the peak is the live buffers under either semantics
    assert int(r["peak_act_bytes"]) == int(nf.score(rec, batch_size=batch, act_dtype=adt,
                                                    weight_dtype=wdt)["peak_act_bytes"][0])


# ------------------------------------------------ token tensors and attention
@st.composite
def token_nets(draw):
    """A random DAG of token ops: sequences and grids, projections, attention
    (fused and as matrix products), views, prepended tokens, patch merging."""
    heads = draw(st.sampled_from([1, 2, 4]))
    c0 = heads * draw(st.integers(1, 4))
    h0, w0 = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    net = nf.Net(c0, h0, w0)
    grid = net.tokens(net.input)
    seq_ = net.tokens(net.input, flat=True)
    seqs = [(seq_, c0, h0 * w0)]            # (layer, channels, tokens) of flat sequences
    for _ in range(draw(st.integers(1, 10))):
        x, c, n = draw(st.sampled_from(seqs))
        kind = draw(st.sampled_from(["linear", "ln", "act", "add", "mha", "attn", "matmul",
                                     "prepend", "param", "slice", "softmax"]))
        if kind == "linear":
            c2 = heads * draw(st.integers(1, 4))
            seqs.append((net.linear(x, c2, bias=draw(st.booleans())), c2, n))
        elif kind == "ln":
            seqs.append((net.layernorm(x, affine=draw(st.booleans())), c, n))
        elif kind == "act":
            seqs.append((net.act(x, draw(st.sampled_from(ACTS)), inplace=draw(st.booleans())), c, n))
        elif kind == "add":
            same = [s for s in seqs if s[1:] == (c, n)]
            seqs.append((net.add(x, draw(st.sampled_from(same))[0]), c, n))
        elif kind == "mha" and c % heads == 0:
            seqs.append((net.mha(x, c, heads, bias=draw(st.booleans())), c, n))
        elif kind == "attn":
            kvh = draw(st.sampled_from([h for h in (1, heads) if heads % h == 0]))
            d = c // heads if c % heads == 0 else None
            if d:
                k = net.linear(x, kvh * d, bias=False)
                v = net.linear(x, kvh * draw(st.integers(1, 3)), bias=False)
                o = net.attention(x, k, v, heads=heads, kv_heads=kvh if kvh != heads else 0,
                                  causal=draw(st.booleans()))
                seqs.append((o, heads * (int(nf.layer_table(net.records)[v]["channels"]) // kvh), n))
        elif kind == "matmul":
            a = net.view_as(x, (1, n, c), "matrix", copy=draw(st.booleans()))
            b = net.view_as(x, (1, c, n), "matrix")
            s = net.softmax(net.matmul(a, b))
            m = net.matmul(s, a)
            seqs.append((net.view_as(m, (1, n, 1, c), "tokens"), c, n))
        elif kind == "prepend":
            k = draw(st.integers(1, 2))
            y = net.param_add(net.prepend(x, k), draw(st.integers(0, 50)))
            seqs.append((y, c, n + k))
        elif kind == "slice":
            start = draw(st.integers(0, n - 1))
            cnt = draw(st.integers(1, n - start))
            seqs.append((net.slice(x, start, cnt, tokens=True), c, cnt))
        elif kind == "softmax":
            seqs.append((net.softmax(x), c, n))
    if draw(st.booleans()):
        net.to_image(net.patch_merge(grid))
    return net.records


@SETTINGS
@given(token_nets(), st.sampled_from(["macs", "flops", "fma2", "thop", "ptflops", "fvcore"]),
       st.integers(1, 4), st.booleans())
def test_token_graphs_match_definitions(rec, convention, batch, fused):
    r = nf.score(rec, convention=convention, batch_size=batch, fused_attention=fused)[0]
    ref = _pyref.score_one(rec, nf.get_convention(convention).weights, batch, 4, 4,
                           fused_attention=fused)
    assert {m: int(r[m]) for m in nf.METRICS} == {m: ref[m] for m in nf.METRICS}


@SETTINGS
@given(token_nets(), st.data())
def test_corrupted_token_graphs_fail_like_definitions(rec, data):
    layer = data.draw(st.integers(0, len(rec) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    info = np.iinfo(nf.LAYER_DTYPE[field])
    rec[layer][field] = data.draw(st.one_of(st.integers(max(-3, int(info.min)), 40),
                                            st.integers(int(info.min), int(info.max))))
    try:
        ref = reference(rec, "flops", 1, 4, 4)
        ref_status, ref_layer = "ok", -1
    except _pyref.RefError as e:
        ref_status, ref_layer = e.status, e.layer
    r = nf.score(rec, convention="flops", errors="status")[0]
    assert (STATUS_NAMES[int(r["status"])], int(r["bad_layer"])) == (ref_status, ref_layer)
    if ref_status == "ok":
        assert {m: int(r[m]) for m in nf.METRICS} == {m: ref[m] for m in nf.METRICS}
    else:
        with pytest.raises(nf.SpecError) as ei:
            nf.score(rec)
        assert ei.value.layer == ref_layer


# ------------------------------------------------------------ language models
@st.composite
def lm_records(draw):
    """A random small decoder (either family, GQA, head size, biases, tied
    head, experts, per-layer FFN) in a random phase: its records and phase."""
    from nasflops.search_spaces import language_models as lm
    family = draw(st.sampled_from(["llama", "gpt2"]))
    heads = draw(st.sampled_from([1, 2, 4]))
    d = 2 * draw(st.integers(1, 3))
    layers = draw(st.integers(1, 3))
    ffn = tuple(draw(st.integers(1, 20)) for _ in range(layers))
    kw = dict(vocab=draw(st.integers(1, 40)), hidden=heads * d, layers=layers, heads=heads,
              ffn=ffn, tied=draw(st.booleans()))
    if family == "gpt2":
        kw.update(family="gpt2", act="gelu", gated=False, qkv_bias=True, o_bias=True,
                  mlp_bias=True, positions=40)
    else:
        experts = draw(st.sampled_from([0, 0, 2, 3]))
        kw.update(kv_heads=draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0])),
                  head_dim=draw(st.sampled_from([None, 2, 4])), experts=experts,
                  top_k=draw(st.integers(1, experts)) if experts else 0,
                  gated=draw(st.booleans()), qkv_bias=draw(st.booleans()),
                  mlp_bias=draw(st.booleans()), window=draw(st.sampled_from([None, 3])))
    cfg = lm.LMConfig("random", **kw)
    phase = draw(st.sampled_from(["prefill", "decode", "train"]))
    if phase == "decode":
        return lm.build(cfg, phase, context=draw(st.integers(0, 12))), phase
    logits = "all" if phase == "train" else draw(st.sampled_from(["all", "last"]))
    return lm.build(cfg, phase, seq_len=draw(st.integers(1, 12)), logits=logits), phase


@SETTINGS
@given(lm_records(), st.sampled_from(["macs", "flops", "fma2", "fvcore", "ptflops"]),
       st.integers(1, 4), st.sampled_from(["fp32", "bf16"]), st.booleans(), st.booleans())
def test_language_models_match_definitions(rec_phase, convention, batch, dtype, half, fused):
    rec, phase = rec_phase
    r = nf.score(rec, convention=convention, batch_size=batch, weight_dtype=dtype, act_dtype=dtype,
                 fused_attention=fused, phase=phase, causal="half" if half else "full")[0]
    ref = _pyref.score_one(rec, nf.get_convention(convention).weights, batch, nf.DTYPE_SIZES[dtype],
                           nf.DTYPE_SIZES[dtype], fused_attention=fused, train=phase == "train",
                           causal_half=half)
    cols = [m for m in r.dtype.names if m in ref]
    assert len(cols) == len(nf.METRICS + nf.options.PHASE_METRICS[phase])
    assert {m: int(r[m]) for m in cols} == {m: ref[m] for m in cols}
    t = nf.layer_table(rec, convention=convention, batch_size=batch, phase=phase,
                       causal="half" if half else "full", weight_dtype=dtype, act_dtype=dtype,
                       fused_attention=fused)
    for m in ("ops", "params", "active_params", "kv_cache_bytes", "read_bytes", "write_bytes"):
        assert int(t[m].sum()) == int(r[m])


@SETTINGS
@given(lm_records(), st.data(), st.booleans())
def test_corrupted_language_models_fail_like_definitions(rec_phase, data, half):
    rec, phase = rec_phase
    layer = data.draw(st.integers(0, len(rec) - 1))
    field = data.draw(st.sampled_from(FIELDS))
    info = np.iinfo(nf.LAYER_DTYPE[field])
    rec[layer][field] = data.draw(st.one_of(st.integers(max(-3, int(info.min)), 40),
                                            st.integers(int(info.min), int(info.max))))
    train = phase == "train"
    try:
        ref = _pyref.score_one(rec, nf.get_convention("flops").weights, 3, 2, 2, train=train,
                               causal_half=half)
        ref_status, ref_layer = "ok", -1
    except _pyref.RefError as e:
        ref_status, ref_layer = e.status, e.layer
    r = nf.score(rec, convention="flops", batch_size=3, weight_dtype="bf16", act_dtype="bf16",
                 errors="status", phase=phase, causal="half" if half else "full")[0]
    assert (STATUS_NAMES[int(r["status"])], int(r["bad_layer"])) == (ref_status, ref_layer)
    if ref_status == "ok":
        assert {m: int(r[m]) for m in r.dtype.names if m in ref} == \
            {m: ref[m] for m in r.dtype.names if m in ref}
