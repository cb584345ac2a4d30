"""The torch bridge on vision transformers and language models: to_torch
builds every token, attention and language-model op (forward pass), the
hook counter counts them without the core, validate compares the two, and
the real tools (thop, ptflops, fvcore, FlopCounterMode) run on the built
models.

Every comparison is exact.  The one documented gap of a real tool: on CPU
``FlopCounterMode`` counts nothing for ``F.scaled_dot_product_attention``
(docs/conventions.md), so its total is the core's ``fma2`` minus twice the
attention's MACs, which the core's per-layer table gives.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nasflops as nf  # noqa: E402
from tests.counting import core, shape_of, n_params  # noqa: E402
from nasflops.scoring import SpecError  # noqa: E402
from nasflops.torch_bridge import (HOOK_CONVENTIONS, count_with_hooks,  # noqa: E402
                                   random_transformer_specs, spellable,
                                   transformer_op_specs, to_torch, validate)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
OPS = transformer_op_specs()
CONVENTIONS = sorted(HOOK_CONVENTIONS)


def out_shape(recs, n):
    """The built model's output shape, from the core's layer table."""
    row = nf.layer_table(recs)[-1]
    g, c, h, w = (int(row[k]) for k in ("groups", "channels", "height", "width"))
    return {0: (n, c, h, w), 1: (n, g, h, w, c), 2: (n, g, h, w)}[int(row["layout"])]


def with_call(recs, call):
    out = recs.copy()
    out["call"][1:] = int(call)
    return out if all(spellable(r) for r in out[1:]) else None


# ------------------------------------------------------------------ to_torch
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_builds_runs_and_counts(name):
    recs = OPS[name]
    model = to_torch(recs)
    assert n_params(model) == core(recs, "macs")["params"]
    with torch.no_grad():
        y = model(torch.randn((2,) + shape_of(recs)))
    assert tuple(y.shape) == out_shape(recs, 2)
    for fused in (False, True):
        hooks = count_with_hooks(model, shape_of(recs), CONVENTIONS, batch_size=2,
                                 fused_attention=fused)
        for conv in CONVENTIONS:
            assert hooks[conv].as_dict() == core(recs, conv, 2, fused_attention=fused), \
                (conv, fused)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_every_call(name):
    spelled = [c for c in nf.Call if with_call(OPS[name], c) is not None]
    assert nf.Call.MODULE in spelled
    for call in spelled:
        recs = with_call(OPS[name], call)
        model = to_torch(recs, device="meta")
        for conv in ("ptflops", "flops", "fvcore"):
            assert count_with_hooks(model, shape_of(recs), conv).as_dict() == core(recs, conv), \
                (call, conv)


def test_attention_modules_and_shapes():
    from nasflops.torch_bridge.modules import Attention, SelfAttention
    model = to_torch(OPS["attention_gqa"])
    att = [m for m in model.modules() if isinstance(m, Attention)]
    assert len(att) == 1 and (att[0].heads, att[0].kv_heads, att[0].causal) == (4, 2, False)
    lin = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    # separate q, k, v and out projections: 16 -> 16, 16 -> 2 heads of 4, twice, 16 -> 16
    assert [(m.in_features, m.out_features) for m in lin] == [(16, 16), (16, 8), (16, 8),
                                                              (16, 16)]
    mha = [m for m in to_torch(OPS["mha"]).modules() if isinstance(m, SelfAttention)][0]
    assert type(mha.attn) is torch.nn.MultiheadAttention and mha.attn.num_heads == 4
    # nn.MultiheadAttention has no other spelling that is one op to the tools
    assert with_call(OPS["mha"], nf.Call.FUNCTION) is None
    # a causal attention of 6 queries over 12 keys: the queries are the last 6
    cross = [m for m in to_torch(OPS["attention_cross"]).modules() if isinstance(m, Attention)][0]
    mask = cross.mask("cpu")
    assert mask.shape == (6, 12) and bool(mask[0, 6]) and not bool(mask[0, 7])
    assert bool(mask[5].all())


def test_learned_tensors_are_parameters():
    from nasflops.torch_bridge.modules import ParamAdd, Prepend
    from search_spaces.vision_transformers import deit_tiny, swin_t
    vit = to_torch(deit_tiny())
    cls = [m for m in vit.modules() if isinstance(m, Prepend)]
    pos = [m for m in vit.modules() if isinstance(m, ParamAdd)]
    assert [tuple(m.token.shape) for m in cls] == [(1, 1, 1, 1, 192)]
    assert [m.weight.numel() for m in pos] == [197 * 192]
    # Swin: each block's relative-position bias table (169 x heads) is a parameter,
    # gathered by an index buffer; a shifted block's mask is a constant
    tables = [m for m in to_torch(swin_t(), device="meta").modules() if isinstance(m, ParamAdd)]
    assert sorted({m.weight.numel() for m in tables if m.weight is not None}) == \
        [169 * 3, 169 * 6, 169 * 12, 169 * 24]
    assert sum(m.weight is None for m in tables) == 1 + 1 + 3 + 0   # the shifted blocks


def test_tied_head_shares_the_embedding_table():
    recs = OPS["embedding_tied_head"]
    for init in (True, False):
        model = to_torch(recs, init=init)
        emb, head = model.layers[0], model.layers[-1]
        assert head.weight is emb.embed.weight
        assert n_params(model) == core(recs, "macs")["params"] == 50 * 16 + 16
    untied = OPS["embedding_head"]
    assert n_params(to_torch(untied)) == core(untied, "macs")["params"] == 2 * 50 * 16 + 16


def test_decode_kv_cache_is_refused_by_name():
    from search_spaces.language_models import build
    recs = build("gpt2", phase="decode", context=8)
    bad = int(np.flatnonzero(recs["op"] == nf.Op.KV_CACHE)[0])
    with pytest.raises(SpecError, match=f"layer {bad}: kv_cache: a key/value cache holding 8 "
                                        r"past tokens \(a decode step\) is not built"):
        to_torch(recs)
    with pytest.raises(SpecError, match="architecture 0, layer"):
        validate("llm", samples=1, device="meta", space_params={"phase": "decode", "context": 8})
    net = nf.Net(8, 4, 4)
    net.rmsnorm(net.input)
    with pytest.raises(SpecError, match="layer 1: rmsnorm: to_torch builds it on token tensors"):
        to_torch(net)


def test_hooks_attention_memory_by_hand():
    # 2 samples, 4 heads, 6 queries x 6 keys: 288 scores of 4 bytes, written
    # once and read once, live while the attention runs
    n, scores = 2, 2 * 4 * 6 * 6
    recs = OPS["attention"]
    model = to_torch(recs, device="meta")
    full = count_with_hooks(model, shape_of(recs), "macs", batch_size=n)
    fused = count_with_hooks(model, shape_of(recs), "macs", batch_size=n, fused_attention=True)
    assert full.act_bytes - fused.act_bytes == scores * 4
    assert full.read_bytes - fused.read_bytes == scores * 4
    att = [r for r in full.by_node if r["kind"] == "attention"][0]
    assert att["macs"] == scores * (4 + 4)            # Q.K^T and A.V, d = dv = 4
    # nn.MultiheadAttention also materialises q, k, v and the heads' output
    recs = OPS["mha"]
    model = to_torch(recs, device="meta")
    full = count_with_hooks(model, shape_of(recs), "macs", batch_size=n)
    fused = count_with_hooks(model, shape_of(recs), "macs", batch_size=n, fused_attention=True)
    mha = [r for r in fused.by_node if r["kind"] == "mha"][0]
    assert mha["act_bytes"] == (n * 6 * 16 + n * 6 * 4 * 16) * 4      # output + scratch
    assert full.act_bytes - fused.act_bytes == scores * 4


# ------------------------------------------------------------------ validate
@pytest.mark.parametrize("convention", CONVENTIONS)
def test_random_transformers_agree(convention):
    r = validate("random-transformer", samples=12, convention=convention, seed=3, batch_size=2)
    assert r.ok, str(r)
    assert r.n == 12


def test_random_transformers_cover_every_op_and_call():
    batch = random_transformer_specs(60, seed=0)
    ops = {int(v) for v in batch.records["op"]}
    want = {nf.Op.TOKENS, nf.Op.TO_IMAGE, nf.Op.PREPEND, nf.Op.PARAM_ADD, nf.Op.VIEW_AS,
            nf.Op.MATMUL, nf.Op.ATTENTION, nf.Op.MHA, nf.Op.PATCH_MERGE, nf.Op.EMBEDDING,
            nf.Op.RMSNORM, nf.Op.ROPE, nf.Op.KV_CACHE, nf.Op.EXPERT_LINEAR, nf.Op.MOE_COMBINE}
    assert want <= ops, want - ops
    assert {int(c) for c in batch.records["call"]} == {int(c) for c in nf.Call}
    flags = np.bitwise_or.reduce(batch.records["flags"])
    assert flags & nf.Flag.CAUSAL and flags & nf.Flag.TIED and flags & nf.Flag.COPY


@pytest.mark.parametrize("model", ["vit_b_16", "vit_b_32", "vit_l_16", "deit_tiny",
                                   "deit_small", "swin_t", "swin_s", "swin_b"])
def test_zoo_transformers_agree(model):
    batch = nf.get_space("zoo").encode([model])
    for conv in ("flops", "ptflops", "fvcore", "thop"):
        r = validate(batch, convention=conv, batch_size=2, device="meta")
        assert r.ok, (conv, str(r))


@pytest.mark.parametrize("space", ["llm", "llm-moe"])
def test_language_model_spaces_agree(space):
    # candidates scored as one forward pass of a 16-token prompt (phase forward)
    for conv, fused in (("flops", False), ("fvcore", True), ("fma2", False)):
        r = validate(space, samples=3, convention=conv, seed=7, batch_size=2, device="meta",
                     space_params={"seq_len": 16}, fused_attention=fused)
        assert r.ok, (conv, str(r))
    # a training space's candidates carry recomputation checkpoints: their
    # forward pass is built all the same
    train = nf.get_space(space, phase="train", seq_len=16).sample(2, seed=7)
    assert np.bitwise_or.reduce(train.records["flags"]) & nf.Flag.CHECKPOINT
    assert validate(train, convention="ptflops", batch_size=2, device="meta").ok


@pytest.mark.parametrize("model", ["gpt2", "qwen2.5-0.5b", "mixtral-8x7b"])
def test_zoo_language_models_agree(model):
    from search_spaces.language_models import build
    recs = build(model, phase="prefill", seq_len=4)
    m = to_torch(recs, device="meta")
    assert n_params(m) == core(recs, "macs")["params"]
    hooks = count_with_hooks(m, shape_of(recs), CONVENTIONS, batch_size=2)
    for conv in CONVENTIONS:
        assert hooks[conv].as_dict() == core(recs, conv, 2), conv


# --------------------------------------------------------------- real tools
def _tools():
    from tests.conftest import import_torchvision
    import_torchvision()    # ptflops imports torchvision as it loads
    pytest.importorskip("thop")
    pytest.importorskip("ptflops")
    pytest.importorskip("fvcore")
    from nasflops.torch_bridge import reference
    return reference


def _sdpa_macs(recs) -> int:
    """MACs, batch 1, that FlopCounterMode does not see on CPU
    (docs/conventions.md): the attention itself (Q.K^T and A.V) of every
    attention record that runs CPU's fused SDPA kernel (a causal attention of
    fewer queries than keys passes an explicit mask, which CPU runs as two
    counted matrix products) and of every mha record; the whole mha record
    where ``nn.MultiheadAttention`` takes its fast path under ``no_grad``
    (an even head count and biases: one ``_native_multi_head_attention``)."""
    t = nf.layer_table(recs)
    total = 0
    for i, row in enumerate(t):
        if row["op"] == "attention":
            q, k = (t[int(recs[i][f])] for f in ("input0", "input1"))
            masked = int(recs[i]["flags"]) & nf.Flag.CAUSAL and \
                int(q["height"]) * int(q["width"]) != int(k["height"]) * int(k["width"])
            total += 0 if masked else int(row["macs"])
        elif row["op"] == "mha" and int(recs[i]["groups"]) % 2 == 0 \
                and int(recs[i]["flags"]) & nf.Flag.BIAS:
            total += int(row["macs"])      # the fast path hides the projections too
        elif row["op"] == "mha":           # minus the four projections
            tokens = int(row["groups"]) * int(row["height"]) * int(row["width"])
            total += int(row["macs"]) - 4 * tokens * int(row["channels"]) ** 2
    return total


def _check_tools(ref, recs):
    s = shape_of(recs)
    model = to_torch(recs)
    ops = {c: core(recs, c)["ops"] for c in ("thop", "ptflops", "fvcore", "fma2")}
    assert ref.thop_count(model, s)[0] == ops["thop"]
    macs, params = ref.ptflops_count(model, s)
    assert (macs, params) == (ops["ptflops"], core(recs, "macs")["params"])
    assert ref.fvcore_count(model, s) == ops["fvcore"]
    assert ref.flop_counter_count(model, s) == ops["fma2"] - 2 * _sdpa_macs(recs)


@pytest.mark.parametrize("name", sorted(OPS))
def test_real_tools_on_every_op(name):
    ref = _tools()
    spelled = [c for c in nf.Call if with_call(OPS[name], c) is not None]
    for call in spelled:
        _check_tools(ref, with_call(OPS[name], call))


def test_real_tools_on_transformers_and_decoders():
    ref = _tools()
    from search_spaces.language_models import LMConfig, build
    from search_spaces.vision_transformers import deit_tiny, swin_t
    tiny_llama = LMConfig("tiny-llama", vocab=64, hidden=32, layers=2, heads=4, kv_heads=2,
                          ffn=48)
    tiny_moe = LMConfig("tiny-moe", vocab=64, hidden=32, layers=2, heads=4, kv_heads=1, ffn=48,
                        experts=4, top_k=2)
    for recs in (deit_tiny(), swin_t(), build("gpt2", phase="prefill", seq_len=8),
                 build(tiny_llama, phase="prefill", seq_len=8),
                 build(tiny_moe, phase="prefill", seq_len=8)):
        _check_tools(ref, recs)
    batch = random_transformer_specs(6, seed=11)
    for i in range(len(batch)):
        _check_tools(ref, batch[i])


class _Products(torch.nn.Module):
    """Matrix products however written: ``@``, ``torch.matmul``, ``x.matmul``,
    ``torch.bmm``."""

    def forward(self, x):
        a = x.flatten(0, 1)
        b = a.transpose(1, 2)
        y = a @ b
        y = torch.matmul(y, a) + a.matmul(b.contiguous()).matmul(a)
        return torch.bmm(y, b)


def test_hooks_count_matrix_products_as_the_tools_see_them():
    ref = _tools()
    model, s = _Products(), (3, 4, 5)
    a = 4 * 5 * 4                            # 3 matrices of 4 x 5: (4 x 5) @ (5 x 4)
    mac = 3 * (a + 4 * 4 * 5 + a + 4 * 4 * 5 + 4 * 5 * 4)
    assert count_with_hooks(model, s, "macs").macs == mac
    # ptflops sees torch.matmul, x.matmul and bmm, not the @ operator
    assert count_with_hooks(model, s, "ptflops").ops == ref.ptflops_count(model, s)[0] \
        == mac - 3 * a
    assert count_with_hooks(model, s, "fvcore").ops == ref.fvcore_count(model, s) == mac
    assert count_with_hooks(model, s, "fma2").ops == ref.flop_counter_count(model, s) == 2 * mac
