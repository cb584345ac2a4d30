"""Language-model ops and phases by hand: closed forms of every new op under
every convention that counts it, memory and KV-cache bytes written out,
causal counting, training (forward + backward, gradients, Adam, activations
kept with and without recomputation), and the errors that name what is
wrong.  Per sample: L tokens of C channels; N is the batch."""
import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import language_models as lm

N = 2
L, C = 6, 16
TOOLS = ("thop", "ptflops", "fvcore")


def seq(channels=C, tokens=L):
    net = nf.Net(channels, tokens, 1)
    return net, net.tokens(net.input, flat=True)


def last(net, convention="macs", **kw):
    return nf.layer_table(net, convention=convention, batch_size=N, **kw)[-1]


def ops(net, convention, **kw):
    return int(last(net, convention, **kw)["ops"])


# ---------------------------------------------------------------- the ops
def test_embedding_looks_rows_up():
    V = 50
    net = nf.Net(1, L, 1)                          # L token ids
    net.embedding(net.input, V, C)
    r = last(net, "flops")
    assert r[["channels", "height", "width", "layout", "params"]].tolist() == (C, L, 1, 1, V * C)
    for conv in ("macs", "flops", "fma2") + TOOLS:
        assert ops(net, conv) == 0
    # reads the ids and the N x L rows it looks up, never the whole table
    assert int(r["read_bytes"]) == N * L * 4 + N * L * C * 4
    assert int(r["write_bytes"]) == int(r["act_bytes"]) == N * L * C * 4


@pytest.mark.parametrize("affine", [True, False])
def test_rmsnorm(affine):
    net, x = seq()
    net.rmsnorm(x, affine=affine)
    r = last(net, "flops")
    assert int(r["params"]) == (C if affine else 0)
    # square and accumulate 2, scale by the reciprocal root 1, the weight 1
    assert int(r["ops"]) == N * L * C * (4 if affine else 3)
    for conv in ("macs", "fma2") + TOOLS:
        assert ops(net, conv) == 0


def test_rope_rotates_pairs_for_free_in_flop_counter_mode():
    net, x = seq()
    net.rope(x, 4)
    r = last(net, "flops")
    assert int(r["params"]) == 0 and r[["channels", "height"]].tolist() == (C, L)
    assert int(r["ops"]) == 3 * N * L * C             # (x cos - y sin, x sin + y cos) per pair
    for conv in ("macs", "fma2") + TOOLS:
        assert ops(net, conv) == 0


def test_kv_cache_appends_and_attention_reads_all():
    past, H, Hkv, d = 9, 4, 2, 4
    net, x = seq()
    q = net.linear(x, H * d, bias=False)
    k = net.kv_cache(net.linear(x, Hkv * d, bias=False), past)
    v = net.kv_cache(net.linear(x, Hkv * d, bias=False), past)
    net.attention(q, k, v, heads=H, kv_heads=Hkv, causal=True)
    t = nf.layer_table(net, batch_size=N, act_dtype="bf16", phase="decode")
    kv_row = t[k]
    assert kv_row[["height", "channels", "act_bytes"]].tolist() == (past + L, Hkv * d, 0)
    assert int(kv_row["write_bytes"]) == int(kv_row["read_bytes"]) == N * L * Hkv * d * 2
    cache = N * (past + L) * Hkv * d * 2
    assert int(kv_row["kv_cache_bytes"]) == cache
    attn = t[-1]
    scores = N * H * L * (past + L)
    assert int(attn["macs"]) == scores * 2 * d
    assert int(attn["read_bytes"]) == N * L * H * d * 2 + 2 * cache + scores * 2
    r = nf.score(net, batch_size=N, act_dtype="bf16", phase="decode")[0]
    assert int(r["kv_cache_bytes"]) == 2 * cache
    # the cache is state, not an activation: no peak, no act_bytes
    assert int(r["peak_act_bytes"]) == int(nf.score(net, batch_size=N, act_dtype="bf16")["peak_act_bytes"][0])


@pytest.mark.parametrize("bias", [False, True])
def test_expert_linear_and_combine(bias):
    E, k, O = 8, 2, 12
    net, x = seq()
    probs = net.softmax(net.linear(x, E, bias=False))
    up = net.expert_linear(x, O, E, k, bias=bias)
    down = net.expert_linear(up, C, E, k, bias=bias)
    net.moe_combine(down, probs)
    t = nf.layer_table(net, convention="flops", batch_size=N)
    per_up, per_down = C * O + (O if bias else 0), O * C + (C if bias else 0)
    assert t[up][["groups", "height", "channels"]].tolist() == (k, L, O)
    assert int(t[up]["params"]) == E * per_up and int(t[up]["active_params"]) == k * per_up
    assert int(t[up]["macs"]) == N * k * L * C * O
    out = N * k * L * O
    assert int(t[up]["ops"]) == 2 * N * k * L * C * O - out + (out if bias else 0)
    # the experts a pass can hit: every one for N x L x k >= E slots
    assert int(t[up]["read_bytes"]) == 4 * (N * L * C + E * per_up)
    assert t[-1][["groups", "height", "channels"]].tolist() == (1, L, C)
    assert int(t[-1]["ops"]) == 2 * N * k * L * C - N * L * C     # k weights, k - 1 adds
    fv = nf.layer_table(net, convention="fvcore", batch_size=N)
    assert int(fv[up]["ops"]) == N * k * L * C * O
    for conv in ("thop", "ptflops"):
        assert int(nf.layer_table(net, convention=conv, batch_size=N)[up]["ops"]) == 0
    r = nf.score(net, phase="prefill")[0]
    assert int(r["params"]) - int(r["active_params"]) == (E - k) * (per_up + per_down)


def test_one_decoded_token_reads_its_top_k_experts_only():
    E, k, O = 8, 2, 12
    net = nf.Net(C, 1, 1)
    x = net.tokens(net.input)
    net.expert_linear(x, O, E, k)
    r = nf.layer_table(net)[-1]                      # batch 1, one token: k experts hit
    assert int(r["read_bytes"]) == 4 * (C + k * C * O)
    r = nf.layer_table(net, batch_size=3)[-1]        # 6 slots: at most 6 of the 8 experts
    assert int(r["read_bytes"]) == 4 * (3 * C + 6 * C * O)


def test_tied_head_reads_the_table_without_parameters():
    V = 40
    net = nf.Net(1, L, 1)
    x = net.embedding(net.input, V, C)
    net.linear(x, V, bias=False, tied=True)
    t = nf.layer_table(net, convention="fma2", batch_size=N)
    assert int(t[-1]["params"]) == 0 and int(nf.score(net)["params"][0]) == V * C
    assert int(t[-1]["ops"]) == 2 * N * L * C * V
    assert int(t[-1]["read_bytes"]) == 4 * (N * L * C + C * V)


# ----------------------------------------------------------- causal counting
@pytest.mark.parametrize("lq,past", [(L, 0), (1, 11), (5, 7)])
def test_causal_half_counts_the_keys_each_query_sees(lq, past):
    H, d = 4, 4
    net, x = seq(tokens=lq)
    q = net.linear(x, H * d, bias=False)
    k, v = (net.kv_cache(net.linear(x, H * d, bias=False), past) for _ in range(2))
    net.attention(q, k, v, heads=H, causal=True)
    lk = past + lq
    full, half = last(net, "fma2"), last(net, "fma2", causal="half")
    seen = sum(past + i + 1 for i in range(lq))      # query i sees the past and i + 1 new keys
    assert int(full["macs"]) == N * H * lq * lk * 2 * d
    assert int(half["macs"]) == N * H * seen * 2 * d
    assert int(half["ops"]) == 2 * int(half["macs"])
    # memory: eager attention still materialises the whole rectangle
    assert int(half["write_bytes"]) == int(full["write_bytes"])


def test_causal_attention_needs_a_key_per_query():
    net, x = seq()
    k = net.slice(x, 0, 3, tokens=True)
    net.attention(x, k, k, heads=4, causal=True)
    with pytest.raises(nf.SpecError, match="at least as many keys as queries"):
        nf.score(net)


# -------------------------------------------------------------- training
def train_net():
    net = nf.Net(4, L, 1)
    x = net.checkpoint(net.tokens(net.input, flat=True))     # a view: keeps nothing
    a = net.checkpoint(net.linear(x, 8))
    b = net.act(a, "gelu")
    c = net.linear(b, 4)
    d = net.checkpoint(net.add(c, x))
    net.linear(net.act(d, "relu"), 3)
    return net


def test_train_counts_forward_and_twice_it_backward():
    net = train_net()
    dev = nf.Device("d", 1e9, 1e9)
    for conv in ("macs", "flops", "fma2"):
        f = nf.score(net, convention=conv, batch_size=N, device=dev)[0]
        t = nf.score(net, convention=conv, batch_size=N, device=dev, phase="train")[0]
        for m in ("ops", "macs", "read_bytes", "write_bytes"):
            assert int(t[m]) == 3 * int(f[m]), m
        assert float(t["latency_s"]) == pytest.approx(3 * float(f["latency_s"]))
        for m in ("params", "act_bytes", "peak_act_bytes"):
            assert int(t[m]) == int(f[m])


@pytest.mark.parametrize("wdt,extra", [("fp32", 8), ("bf16", 12), ("fp16", 12), ("fp64", 8)])
def test_train_memory(wdt, extra):
    net = train_net()
    t = nf.score(net, batch_size=N, weight_dtype=wdt, phase="train")[0]
    p = 4 * 8 + 8 + 8 * 4 + 4 + 4 * 3 + 3
    w = nf.DTYPE_SIZES[wdt]
    assert int(t["params"]) == p and int(t["grad_bytes"]) == p * w
    assert int(t["optimizer_bytes"]) == p * extra      # Adam's moments (+ fp32 master weights)
    e = N * L * 4                                      # bytes per channel of activations
    inp, a, b, c, d, r, out = 4 * e, 8 * e, 8 * e, 4 * e, 4 * e, 4 * e, 3 * e
    assert int(t["saved_act_bytes"]) == inp + a + b + c + d + r + out
    # checkpoints: a and d kept; segments [input], [b, c], [relu, out]
    assert int(t["recompute_act_bytes"]) == (a + d) + max(inp, b + c, r + out)
    assert "grad_bytes" not in nf.score(net, phase="prefill").dtype.names


def test_phase_columns_and_names():
    net = train_net()
    assert nf.score(net).dtype.names[:8] == nf.METRICS and "active_params" not in nf.score(net).dtype.names
    for phase, cols in nf.options.PHASE_METRICS.items():
        r = nf.score(net, phase=phase)
        assert r.phase == phase and r.causal == "full"
        assert [c for c in r.dtype.names if c in nf.engine.CORE_METRICS] == list(nf.METRICS + cols)
    with pytest.raises(ValueError, match="unknown phase"):
        nf.score(net, phase="inference")
    with pytest.raises(ValueError, match="causal"):
        nf.score(net, causal="quarter")


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize("build,status,text", [
    (lambda n, x: n.rope(x, 3), "bad_groups", "even size"),
    (lambda n, x: n.rope(x, 16), "bad_groups", "even size"),
    (lambda n, x: n.embedding(x, 10, 8), "bad_shape", "token ids"),
    (lambda n, x: n.expert_linear(x, 8, 2, 3), "bad_value", "top_k (size_h)=3 exceeds the experts"),
    (lambda n, x: n.expert_linear(n.expert_linear(x, 8, 4, 2), 8, 4, 3), "shape_mismatch", "top_k=3"),
    (lambda n, x: n.moe_combine(x, n.slice(x, 0, 2, tokens=True)), "shape_mismatch", "routing"),
    (lambda n, x: n.kv_cache(n.tokens(n.view_as(x, (C, 2, 3))), 4), "bad_shape", "one sequence"),
    (lambda n, x: n.kv_cache(x, -1), "bad_value", "size_h=-1"),
    (lambda n, x: n.embedding(n.slice(x, 0, 1), 0, 8), "bad_value", "extra=0"),
])
def test_bad_language_model_records_name_layer_and_reason(build, status, text):
    net, x = seq()
    build(net, x)
    with pytest.raises(nf.SpecError) as ei:
        nf.score(net)
    e = ei.value
    assert nf.STATUS_NAMES[e.status] == status and e.layer == len(net) - 1
    assert str(e).startswith(f"architecture 0, layer {len(net) - 1}: (") and text in str(e)


@pytest.mark.parametrize("kw,text", [
    (dict(heads=6), "heads=6: must divide hidden=64"),
    (dict(kv_heads=3), "kv_heads=3: must divide heads=4"),
    (dict(experts=2, top_k=3), "top_k=3: must be in 1..experts=2"),
    (dict(top_k=1), "top_k=1: needs experts"),
    (dict(ffn=(128, 128, 128)), "3 per-layer sizes for 2 layers"),
    (dict(ffn=(128, 0)), "layer 1: ffn must be an integer"),
    (dict(head_dim=7), "head_dim=7: must be even"),
    (dict(family="t5"), "family='t5'"),
    (dict(heads=40000), "heads must be an integer in 1..32,767"),
    (dict(hidden=0), "hidden must be"),
])
def test_bad_configs_name_model_field_and_reason(kw, text):
    base = dict(vocab=100, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128)
    with pytest.raises(ValueError) as ei:
        lm.LMConfig("m", **{**base, **kw})
    assert "'m'" in str(ei.value) and text in str(ei.value)


def test_learned_positions_bound_the_context():
    with pytest.raises(ValueError, match="gpt2.*1025 positions.*1024 learned"):
        lm.build("gpt2", phase="decode", context=1024)
    assert len(lm.build("gpt2", phase="decode", context=1023)) > 0
    with pytest.raises(ValueError, match="decode needs a context"):
        lm.build("llama-2-7b", phase="decode")
    with pytest.raises(ValueError, match="unknown language model"):
        lm.build("llama-9", seq_len=8)
