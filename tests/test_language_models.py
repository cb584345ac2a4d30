"""Language models against Hugging Face transformers (5.24, on torch 2.13).

* Parameters: every zoo model equals ``sum(p.numel())`` of the transformers
  model built from its config class on the meta device, and its published
  count; Mixtral's active parameters equal the total less the experts a token
  does not use, read off the model's expert tensors.
* FLOPs: ``fma2`` equals ``torch.utils.flop_counter.FlopCounterMode`` on small
  eager models of every family (Llama, Mistral, Qwen2, Mixtral, GPT-2),
  random ones included, for prefill, one decode step against a
  ``DynamicCache`` (sliding window too), and forward + backward; and on
  full-size models on the meta device.
* KV cache: ``kv_cache_bytes`` equals the bytes of ``DynamicCache``'s tensors.
* Kaplan et al.'s closed form, written out here, is a documented approximation:
  its difference to the exact count is exactly the second attention matmul
  and the LM head.

The configurations below are typed from each model's ``config.json`` on the
hub, independently of ``language_models.MODELS``.
"""
import random

import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import language_models as lm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def hf():
    """transformers, imported once for the module (about 17 s)."""
    pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    tf.logging.set_verbosity_error()
    return tf


def gpt2(n_embd, n_layer, n_head):
    return ("GPT2", dict(vocab_size=50257, n_positions=1024, n_embd=n_embd, n_layer=n_layer,
                         n_head=n_head, n_inner=None, activation_function="gelu_new",
                         tie_word_embeddings=True))


def llama(cls, V, h, n, nh, nkv, I, **kw):
    return (cls, dict(vocab_size=V, hidden_size=h, num_hidden_layers=n, num_attention_heads=nh,
                      num_key_value_heads=nkv, intermediate_size=I, hidden_act="silu", **kw))


HF_CONFIGS = {
    "gpt2": gpt2(768, 12, 12), "gpt2-medium": gpt2(1024, 24, 16),
    "gpt2-large": gpt2(1280, 36, 20), "gpt2-xl": gpt2(1600, 48, 25),
    "llama-2-7b": llama("Llama", 32000, 4096, 32, 32, 32, 11008, tie_word_embeddings=False),
    "llama-2-13b": llama("Llama", 32000, 5120, 40, 40, 40, 13824, tie_word_embeddings=False),
    "llama-3-8b": llama("Llama", 128256, 4096, 32, 32, 8, 14336, tie_word_embeddings=False),
    "mistral-7b": llama("Mistral", 32000, 4096, 32, 32, 8, 14336, sliding_window=4096,
                        tie_word_embeddings=False),
    "mixtral-8x7b": llama("Mixtral", 32000, 4096, 32, 32, 8, 14336, num_local_experts=8,
                          num_experts_per_tok=2, sliding_window=None, tie_word_embeddings=False),
    "qwen2.5-0.5b": llama("Qwen2", 151936, 896, 24, 14, 2, 4864, tie_word_embeddings=True,
                          use_sliding_window=False),
    "qwen2.5-7b": llama("Qwen2", 152064, 3584, 28, 28, 4, 18944, tie_word_embeddings=False,
                        use_sliding_window=False),
}
MODEL_CLASS = {"GPT2": "GPT2LMHeadModel", "Llama": "LlamaForCausalLM",
               "Mistral": "MistralForCausalLM", "Mixtral": "MixtralForCausalLM",
               "Qwen2": "Qwen2ForCausalLM"}


def hf_config(hf, kind, kw, attn="eager"):
    cfg = getattr(hf, f"{kind}Config")(**kw)
    cfg._attn_implementation = attn
    return cfg


def meta_model(hf, kind, kw):
    import torch
    cfg = hf_config(hf, kind, kw)
    with torch.device("meta"):
        m = getattr(hf, MODEL_CLASS[kind])(cfg)
    if kind == "Mixtral":     # the eager expert loop needs real data; batched_mm counts the same
        m.set_experts_implementation("batched_mm")
    return m


def lm_config(kind, cfg) -> lm.LMConfig:
    """Our configuration of a transformers config (the mapping under test)."""
    if kind == "GPT2":
        h = cfg.n_embd
        return lm.LMConfig("hf-gpt2", family="gpt2", vocab=cfg.vocab_size, hidden=h,
                           layers=cfg.n_layer, heads=cfg.n_head, ffn=cfg.n_inner or 4 * h, act="gelu",
                           gated=False, qkv_bias=True, o_bias=True, mlp_bias=True,
                           tied=cfg.tie_word_embeddings, positions=cfg.n_positions)
    kw = dict(vocab=cfg.vocab_size, hidden=cfg.hidden_size, layers=cfg.num_hidden_layers,
              heads=cfg.num_attention_heads, kv_heads=cfg.num_key_value_heads,
              head_dim=getattr(cfg, "head_dim", None), ffn=cfg.intermediate_size,
              tied=cfg.tie_word_embeddings)
    if kind == "Llama":
        kw.update(qkv_bias=cfg.attention_bias, o_bias=cfg.attention_bias, mlp_bias=cfg.mlp_bias)
    if kind == "Qwen2":
        kw.update(qkv_bias=True)
    if kind in ("Mistral", "Mixtral"):
        kw.update(window=cfg.sliding_window)
    if kind == "Mixtral":
        kw.update(experts=cfg.num_local_experts, top_k=cfg.num_experts_per_tok)
    return lm.LMConfig(f"hf-{kind.lower()}", **kw)


def fma2(records, batch=1, phase="prefill", **kw):
    return int(nf.score(records, convention="fma2", batch_size=batch, phase=phase, **kw)["ops"][0])


def run(model, ids, cache, **kw):
    """A forward with a cache, under the keyword of this transformers version
    (``cache`` in 5.x; ``past_key_values`` before, deprecated after)."""
    import inspect
    key = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    return model(ids, use_cache=True, **{key: cache}, **kw)


def flop_count(fn):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        out = fn()
    return fc.get_total_flops(), out


# ------------------------------------------------------------- parameters
def test_zoo_is_the_issue_list():
    assert set(lm.MODELS) == set(HF_CONFIGS) == set(lm.PUBLISHED)


@pytest.mark.parametrize("name", list(HF_CONFIGS))
def test_zoo_params_equal_transformers_on_meta(hf, name):
    kind, kw = HF_CONFIGS[name]
    model = meta_model(hf, kind, kw)
    total = sum(p.numel() for p in model.parameters())
    r = nf.score(lm.build(name, seq_len=8), phase="prefill")[0]
    assert int(r["params"]) == total
    published = lm.PUBLISHED[name][1]
    assert total == (published[0] if isinstance(published, tuple) else published)
    if kind == "Mixtral":
        # a token uses top_k of the experts' tensors ([E, 2I, h] and [E, h, I] per layer)
        experts = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
        E, k = kw["num_local_experts"], kw["num_experts_per_tok"]
        active = total - experts * (E - k) // E
        assert int(r["active_params"]) == active == published[1]
    else:
        assert int(r["active_params"]) == total
    assert (model.lm_head.weight is model.get_input_embeddings().weight) == lm.MODELS[name].tied


def test_full_size_flops_on_meta(hf):
    """FlopCounterMode runs on meta tensors: prefill at 1024 (every logit),
    one decode step after 4100 tokens (Mistral's window keeps 4095) and the
    backward of a training step."""
    import torch
    L = 1024
    for name in ("llama-2-7b", "mixtral-8x7b", "qwen2.5-0.5b"):
        model = meta_model(hf, *HF_CONFIGS[name]).eval()
        ids = torch.zeros((1, L), dtype=torch.long, device="meta")
        with torch.no_grad():
            got, _ = flop_count(lambda: model(ids))
        assert got == fma2(lm.build(name, seq_len=L)), name
    for name in ("llama-2-7b", "mistral-7b"):
        model = meta_model(hf, *HF_CONFIGS[name]).eval()
        with torch.no_grad():
            cache = hf.DynamicCache(config=model.config)
            run(model, torch.zeros((1, 4100), dtype=torch.long, device="meta"), cache)
            got, _ = flop_count(lambda: run(model, torch.zeros((1, 1), dtype=torch.long,
                                                               device="meta"), cache))
        assert got == fma2(lm.build(name, phase="decode", context=4100), phase="decode"), name
    model = meta_model(hf, *HF_CONFIGS["gpt2"]).train()
    ids = torch.zeros((1, L), dtype=torch.long, device="meta")
    fwd, out = flop_count(lambda: model(ids, labels=ids))
    bwd, _ = flop_count(lambda: out.loss.backward())
    assert fwd + bwd == fma2(lm.build("gpt2", phase="train", seq_len=L), phase="train")


# -------------------------------------------------- small eager models: FLOPs
def small(kind, h=64, nh=4, nkv=2, I=128, V=128, n=2, **over):
    if kind == "GPT2":
        kw = dict(vocab_size=V, n_positions=64, n_embd=h, n_layer=n, n_head=nh)
    else:
        kw = dict(vocab_size=V, hidden_size=h, intermediate_size=I, num_hidden_layers=n,
                  num_attention_heads=nh, num_key_value_heads=nkv, max_position_embeddings=256,
                  tie_word_embeddings=False)
        if kind in ("Mistral", "Mixtral"):
            kw["sliding_window"] = None
        if kind == "Mixtral":
            kw.update(num_local_experts=4, num_experts_per_tok=2)
    kw.update(over)
    return kind, kw


def random_small(rng: random.Random):
    """Small configurations of every family: GQA ratios, head_dim != h / heads,
    biases, tied heads, sliding windows, experts and top-k."""
    out = []
    for kind in ("Llama", "Mistral", "Qwen2", "Mixtral", "GPT2"):
        for _ in range(3):
            nh = rng.choice([2, 4, 6])
            over = dict(h=nh * rng.choice([4, 8]), nh=nh, I=rng.choice([40, 72]),
                        V=rng.choice([50, 97]), n=rng.choice([1, 2, 3]),
                        nkv=rng.choice([x for x in (1, 2, 3, 6) if nh % x == 0]))
            extra = {}
            if kind != "GPT2":
                extra["tie_word_embeddings"] = rng.random() < 0.3
            if kind in ("Llama", "Mistral", "Mixtral") and rng.random() < 0.5:
                extra["head_dim"] = rng.choice([8, 12])
            if kind == "Llama":
                extra.update(attention_bias=rng.random() < 0.5, mlp_bias=rng.random() < 0.5)
            if kind == "Mistral":
                extra["sliding_window"] = rng.choice([None, 4, 7])
            if kind == "Mixtral":
                extra.update(num_local_experts=rng.choice([3, 4]), num_experts_per_tok=rng.choice([1, 2]))
            if kind == "GPT2":
                extra.update(n_inner=rng.choice([None, 3 * over["h"]]),
                             tie_word_embeddings=rng.random() < 0.7)
            out.append(small(kind, **over, **extra))
    return out


CASES = [small(k) for k in ("Llama", "Mistral", "Qwen2", "Mixtral", "GPT2")] + random_small(
    random.Random(14))


def build_eager(hf, kind, kw, seed=0):
    import torch
    torch.manual_seed(seed)
    cfg = hf_config(hf, kind, kw)
    m = getattr(hf, MODEL_CLASS[kind])(cfg)
    if kind == "Mixtral":
        m.set_experts_implementation("eager")     # a loop over the experts hit
    return m.eval(), cfg


@pytest.mark.parametrize("case", range(len(CASES)))
def test_flops_equal_flop_counter_mode(hf, case):
    """Prefill with every logit and with the last, one decode step after t
    cached tokens, and training (forward + backward), batch 2."""
    import torch
    kind, kw = CASES[case]
    model, cfg = build_eager(hf, kind, kw, seed=case)
    ours = lm_config(kind, cfg)
    assert sum(p.numel() for p in model.parameters()) == ours.params()["total"] \
        == int(nf.score(lm.build(ours, seq_len=4))["params"][0])
    g = torch.Generator().manual_seed(case)
    B, L = 2, 11
    ids = torch.randint(0, cfg.vocab_size, (B, L), generator=g)
    with torch.no_grad():
        got, _ = flop_count(lambda: model(ids))
        assert got == fma2(lm.build(ours, seq_len=L), B)
        got, _ = flop_count(lambda: model(ids, logits_to_keep=1))
        assert got == fma2(lm.build(ours, seq_len=L, logits="last"), B)
        for t in (1, 9):
            cache = hf.DynamicCache(config=model.config)
            run(model, torch.randint(0, cfg.vocab_size, (B, t), generator=g), cache)
            nxt = torch.randint(0, cfg.vocab_size, (B, 1), generator=g)
            got, _ = flop_count(lambda: run(model, nxt, cache))
            assert got == fma2(lm.build(ours, phase="decode", context=t), B, "decode"), (kind, t)
    model.train()
    fwd, out = flop_count(lambda: model(ids, labels=ids))
    bwd, _ = flop_count(lambda: out.loss.backward())
    assert bwd == 2 * fwd
    assert fwd + bwd == fma2(lm.build(ours, phase="train", seq_len=L), B, "train")


@pytest.mark.parametrize("kind", ["Llama", "Qwen2", "Mixtral", "GPT2"])
@pytest.mark.parametrize("dtype,nbytes", [("float32", 4), ("bfloat16", 2)])
def test_kv_cache_bytes_equal_dynamic_cache(hf, kind, dtype, nbytes):
    import torch
    model, cfg = build_eager(hf, *small(kind))
    model = model.to(getattr(torch, dtype))
    ours = lm_config(kind, cfg)
    adt = {4: "fp32", 2: "bf16"}[nbytes]
    B, t = 3, 10
    with torch.no_grad():
        cache = hf.DynamicCache(config=model.config)
        run(model, torch.randint(0, cfg.vocab_size, (B, t)), cache)
        held = sum(x.numel() * x.element_size() for layer in cache.layers
                   for x in (layer.keys, layer.values))
        r = nf.score(lm.build(ours, seq_len=t), batch_size=B, act_dtype=adt, phase="prefill")
        assert int(r["kv_cache_bytes"][0]) == held
        run(model, torch.randint(0, cfg.vocab_size, (B, 1)), cache)
        held = sum(x.numel() * x.element_size() for layer in cache.layers
                   for x in (layer.keys, layer.values))
        r = nf.score(lm.build(ours, phase="decode", context=t), batch_size=B, act_dtype=adt,
                     phase="decode")
        assert int(r["kv_cache_bytes"][0]) == held


# ------------------------------------------------------------------ Kaplan
def kaplan_forward_per_token(n_layer, d_model, d_attn, d_ff, n_ctx):
    """Kaplan et al. 2020, Table 1: C_forward = 2N + 2 n_layer n_ctx d_attn,
    N = 2 d_model n_layer (2 d_attn + d_ff) (weight matrices only)."""
    N = 2 * d_model * n_layer * (2 * d_attn + d_ff)
    return 2 * N + 2 * n_layer * n_ctx * d_attn


def test_kaplan_closed_form_is_an_approximation():
    """GPT-2 small at n_ctx 1024: the exact count (FlopCounterMode's) is
    Kaplan's plus the second attention matmul over the full n_ctx x n_ctx
    (Kaplan counts one, or both over the causal half) plus the LM head on
    every position (Kaplan leaves out de-embedding): 1.509 x Kaplan.  Counted
    causal-half with the last logit only, the difference is n_ctx/2 keys of
    attention per token plus one LM head row: within 0.05 %."""
    n_layer, d, V, L = 12, 768, 50257, 1024
    kaplan = kaplan_forward_per_token(n_layer, d, d, 4 * d, L) * L
    exact = fma2(lm.build("gpt2", seq_len=L))
    attention_half, head = 2 * n_layer * L * d * L, 2 * d * V * L
    assert exact - kaplan == attention_half + head
    assert abs(exact / kaplan - 1.509) < 5e-4
    # causal half: queries see (i + 1) keys, i.e. n_ctx (n_ctx + 1) / 2 per head
    half = fma2(lm.build("gpt2", seq_len=L, logits="last"), causal="half")
    assert half - kaplan == 2 * n_layer * d * L + 2 * d * V
    assert 0 < half / kaplan - 1 < 0.0005
