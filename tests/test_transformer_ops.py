"""Token tensors, attention and matrix products: closed forms of every new op
under the base conventions, memory by hand, and the errors that name what is
wrong.  Per sample: L tokens, C channels, H heads, d = C / H."""
import numpy as np
import pytest

import nasflops as nf

N = 2           # batch size of the per-op checks
L, C, H = 10, 16, 4
D = C // H


def seq(net=None):
    """A net whose layer 1 is a sequence of L tokens of C channels."""
    net = net or nf.Net(C, L, 1)
    return net, net.tokens(net.input, flat=True)


def last(net, convention="macs", **kw):
    return nf.layer_table(net, convention=convention, batch_size=N, **kw)[-1]


def test_tokens_and_back_are_views():
    net = nf.Net(C, 4, 5)
    t = net.tokens(net.input)
    flat = net.tokens(net.input, flat=True)
    back = net.to_image(t)
    tab = nf.layer_table(net)
    assert tab[t][["channels", "height", "width", "layout"]].tolist() == (C, 4, 5, 1)
    assert tab[flat][["channels", "height", "width", "layout"]].tolist() == (C, 20, 1, 1)
    assert tab[back][["channels", "height", "width", "layout"]].tolist() == (C, 4, 5, 0)
    for i in (t, flat, back):
        assert (tab[i]["act_bytes"], tab[i]["read_bytes"], tab[i]["write_bytes"]) == (0, 0, 0)


def test_linear_layernorm_softmax_on_tokens():
    net, x = seq()
    net.linear(x, 24, bias=True)
    r = last(net, "flops")
    assert r["macs"] == N * L * C * 24 and r["params"] == C * 24 + 24
    assert r["ops"] == N * L * 24 * (2 * C - 1) + N * L * 24
    net, x = seq()
    net.layernorm(x)
    r = last(net, "flops")
    assert r["params"] == 2 * C and r["ops"] == N * L * C * 8
    net, x = seq()
    net.softmax(x)
    # thop's softmax: 3C - 1 per position, positions = tokens
    assert last(net, "thop")["ops"] == N * L * (3 * C - 1)


def test_prepend_param_add_and_token_slice():
    net, x = seq()
    y = net.prepend(x, 2)
    z = net.param_add(y, (L + 2) * C)
    s = net.slice(z, 0, 1, tokens=True)
    tab = nf.layer_table(net, convention="flops", batch_size=N)
    assert tab[y][["height", "params"]].tolist() == (L + 2, 2 * C)
    assert tab[y]["write_bytes"] == N * (L + 2) * C * 4
    assert tab[y]["read_bytes"] == N * L * C * 4 + 2 * C * 4
    assert tab[z][["params", "ops"]].tolist() == ((L + 2) * C, N * (L + 2) * C)
    assert tab[s][["channels", "height", "act_bytes"]].tolist() == (C, 1, 0)


def test_matmul_counts_and_broadcast():
    net = nf.Net(1, 6 * 5, 4)                      # 30 x 4 as 6 stacks of 5 x 4
    a = net.view_as(net.input, (6, 5, 4), "matrix")
    b = net.view_as(net.input, (6, 4, 5), "matrix")
    net.matmul(a, b)
    r = last(net, "flops")
    assert r[["groups", "height", "width"]].tolist() == (6, 5, 5)
    assert r["macs"] == N * 6 * 5 * 4 * 5
    assert r["ops"] == 2 * N * 6 * 5 * 4 * 5 - N * 6 * 5 * 5
    # one stack broadcast against six
    net2 = nf.Net(1, 24, 4)
    a = net2.view_as(net2.input, (6, 4, 4), "matrix")
    w = net2.view_as(net2.input, (1, 24, 4), "matrix")
    w = net2.view_as(w, (1, 4, 24), "matrix")
    net2.matmul(a, w)
    assert last(net2)["macs"] == N * 6 * 4 * 4 * 24


def _qkv(heads=H, kv_heads=0, lk=L):
    net = nf.Net(C, L, 1)
    q = net.tokens(net.input, flat=True)
    kv_c = C if not kv_heads else kv_heads * (C // heads)
    k = net.linear(q, kv_c, bias=False) if lk == L else None
    v = net.linear(q, kv_c, bias=False) if lk == L else None
    return net, q, k, v


def test_attention_counts_gqa_and_tools():
    net, q, k, v = _qkv(kv_heads=2)
    net.attention(q, k, v, heads=H, kv_heads=2)
    r = last(net, "flops")
    scores = N * H * L * L
    assert r[["channels", "height"]].tolist() == (H * D, L)
    assert r["macs"] == scores * (D + D)
    assert r["ops"] == 2 * r["macs"] + 2 * scores - N * L * C
    assert last(net, "fma2")["ops"] == 2 * r["macs"]
    for tool in ("thop", "ptflops", "fvcore"):       # SDPA: none of them counts it
        assert last(net, tool)["ops"] == 0


def test_attention_scores_count_in_memory_unless_fused():
    net, q, k, v = _qkv()
    net.attention(q, k, v, heads=H)
    out = N * L * C * 4
    scores = N * H * L * L * 4
    plain, fused = last(net), last(net, fused_attention=True)
    assert plain["act_bytes"] == out + scores and fused["act_bytes"] == out
    assert plain["write_bytes"] - fused["write_bytes"] == scores
    assert plain["read_bytes"] - fused["read_bytes"] == scores
    assert plain["live_bytes"] - fused["live_bytes"] == scores
    a = nf.score(net, batch_size=N)[0]
    b = nf.score(net, batch_size=N, fused_attention=True)[0]
    assert a["peak_act_bytes"] - b["peak_act_bytes"] == scores
    assert a["macs"] == b["macs"] and a["params"] == b["params"]


def test_mha_is_the_module_as_one_record():
    E, heads = 16, 4
    net, x = seq()
    net.mha(x, E, heads)
    r = last(net, "flops")
    proj, attn = N * L * 4 * E * E, N * 2 * L * L * E
    assert r["params"] == 4 * E * E + 4 * E
    assert r["macs"] == proj + attn
    scores = N * heads * L * L
    assert r["ops"] == 2 * (proj + attn) - 5 * N * L * E + 4 * N * L * E + 2 * scores
    # ptflops' MultiheadAttention hook; fvcore's two aten::linear
    assert last(net, "ptflops")["ops"] == proj + attn + 5 * N * L * E + scores
    assert last(net, "fvcore")["ops"] == proj
    assert last(net, "thop")["ops"] == 0
    net2, x2 = seq()
    net2.mha(x2, E, heads, bias=False)
    r2 = last(net2, "ptflops")
    assert r2["params"] == 4 * E * E and r2["ops"] == proj + attn + 2 * N * L * E + scores


def test_patch_merge_pads_odd_sides():
    net = nf.Net(C, 7, 6)
    t = net.tokens(net.input)
    net.patch_merge(t)
    r = last(net)
    assert r[["channels", "height", "width", "layout"]].tolist() == (4 * C, 4, 3, 1)
    assert r["act_bytes"] == N * 4 * C * 4 * 3 * 4


@pytest.mark.parametrize("build,status,text", [
    (lambda n, x: n.conv(x, 8, 3), "bad_shape", "image"),
    (lambda n, x: n.mha(x, C, 3), "bad_groups", "heads"),
    (lambda n, x: n.mha(x, C + 1, 1), "shape_mismatch", ""),
    (lambda n, x: n.view_as(x, (1, 7, C), "matrix"), "shape_mismatch", "elements"),
    (lambda n, x: n.attention(x, x, x, heads=3), "bad_groups", "heads"),
    (lambda n, x: n.attention(x, x, n.linear(x, 12), heads=4, kv_heads=3), "bad_groups", "heads"),
    (lambda n, x: n.matmul(x, x), "bad_shape", "matri"),
    (lambda n, x: n.slice(x, L - 1, 2, tokens=True), "bad_value", "token"),
    (lambda n, x: n.prepend(n.tokens(n.view_as(n.input, (C, 2, 5))), 1), "bad_shape", "sequence"),
])
def test_bad_transformer_specs_name_layer_and_reason(build, status, text):
    net, x = seq()
    build(net, x)
    with pytest.raises(nf.SpecError) as ei:
        nf.score(net)
    e = ei.value
    assert nf.STATUS_NAMES[e.status] == status and e.layer == len(net) - 1
    assert str(e).startswith(f"architecture 0, layer {len(net) - 1}: (")
    assert text in str(e)
