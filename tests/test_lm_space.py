"""Language-model search spaces: definitions refused with one error, seeded
vectorised sampling, the batch encoder equal to the one-model builder record
for record, natives, budgets (total/active params, KV cache, decode latency,
prefill FLOPs) with sample_within and score_space, and the command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import nasflops as nf
from nasflops.budget import Budget
from nasflops.search_spaces import NativeError, get_space, language_models as lm
from nasflops.search_spaces.declarative import SchemaError
from nasflops.search_spaces.lm_space import LMSpace

TINY = {"name": "tiny-lm", "vocab": 300, "layers": [1, 2, 3], "hidden": [32, 64], "heads": [2, 4],
        "kv_heads": [1, 2], "ffn": {"choices": [48, 96, 160], "per_layer": True}, "seq_len": 16}


def spaces():
    return [
        LMSpace(TINY),
        LMSpace(TINY, phase="decode", context=20),
        LMSpace(TINY, phase="train", seq_len=8),
        LMSpace({**TINY, "ffn": [40, 72], "experts": [2, 4], "top_k": [1, 2], "window": 6,
                 "qkv_bias": True, "tied": True}, phase="decode", context=9),
        LMSpace({**TINY, "ffn": [40, 72], "experts": [3], "top_k": [1, 3], "gated": False,
                 "act": "gelu", "mlp_bias": True, "head_dim": 6}),
        LMSpace({"name": "tiny-gpt2", "family": "gpt2", "vocab": 99, "layers": [1, 2],
                 "hidden": [24, 48], "heads": [2, 3], "ffn": [64, 96], "positions": 40,
                 "seq_len": 12, "logits": "last"}),
        get_space("llm", phase="train", seq_len=64),
        get_space("llm-moe", phase="decode", context=100),
    ]


def workload_kw(space):
    w = space.workload
    return ({"phase": "decode", "context": w.past} if w.phase == "decode"
            else {"phase": w.phase, "seq_len": w.tokens, "logits": w.logits})


@pytest.mark.parametrize("space", spaces(), ids=lambda s: f"{s.name}-{s.phase}")
def test_batch_encoder_equals_the_builder(space):
    cols = space.sample_columns(40, seed=3)
    batch = space.encode_columns(cols)
    for i, native in enumerate(space.from_columns(cols)):
        assert np.array_equal(batch[i], lm.build(space.config(native), **workload_kw(space))), i
    r = nf.score(batch, convention="fma2", phase=space.phase)
    assert (r["status"] == 0).all() and r.phase == space.phase


def test_sampling_is_seeded_and_cut_anywhere():
    space = LMSpace(TINY)
    a = space.sample_columns(300, seed=5)
    b = space.sample_columns(200, seed=5, start=100)
    for k in a:
        assert np.array_equal(a[k][100:], b[k])
    assert not np.array_equal(a["hidden"], space.sample_columns(300, seed=6)["hidden"])
    for k, choices in (("hidden", [32, 64]), ("heads", [2, 4]), ("kv_heads", [1, 2]), ("layers", [1, 2, 3])):
        assert set(np.unique(a[k])) == set(choices)
    assert a["ffn"].shape == (300, 3) and set(np.unique(a["ffn"])) == {48, 96, 160}


def test_size_counts_distinct_networks():
    # per-layer FFN: entries beyond the depth are unused, so depth d gives 3**d
    assert LMSpace(TINY).size == (3 + 9 + 27) * 2 * 2 * 2
    moe = LMSpace({**TINY, "ffn": [40, 72], "experts": [2, 4], "top_k": [1, 2]})
    assert moe.size == 3 * 2 * 2 * 2 * 2 * 2 * 2


def test_natives_round_trip_and_errors():
    space = LMSpace(TINY)
    natives = [{"layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2, "ffn": [48, 160]},
               {"layers": 1, "hidden": 32, "heads": 2, "kv_heads": 1, "ffn": [96, 96, 96]}]
    cols = space.to_columns(natives)
    back = space.from_columns(cols)
    assert back[0] == {**natives[0], "ffn": [48, 160, 160]} and back[1] == natives[1]
    assert np.array_equal(space.encode(natives).records, space.encode(back).records)
    t = space.arrow_columns(cols)
    assert t["ffn"].type.list_size == 3 and t["hidden"].to_pylist() == [64, 32]
    bad = [({**natives[0], "hidden": 65}, "hidden", "not a choice"),
           ({**natives[0], "ffn": [48]}, "ffn", "1 sizes"),
           ({**natives[0], "ffn": [48, 49]}, "ffn", "not a choice"),
           ({**natives[0], "heads": True}, "heads", "integer"),
           ({**natives[0], "experts": 2}, "experts", "not a field"),
           ({k: v for k, v in natives[0].items() if k != "heads"}, "heads", "missing")]
    for native, field, text in bad:
        with pytest.raises(NativeError) as ei:
            space.encode([natives[1], native])
        assert ei.value.candidate == 1 and ei.value.field == field and text in str(ei.value)


@pytest.mark.parametrize("change,where,text", [
    ({"bogus": 1}, "bogus", "unknown key"),
    ({"vocab": [100, 200]}, "vocab", "fixed per space"),
    ({"heads": [2, 3]}, "choices", "heads=3: must divide hidden=32"),
    ({"kv_heads": [3]}, "choices", "kv_heads=3: must divide heads=2"),
    ({"experts": [0, 4]}, "experts", "dense (0) or a mixture"),
    ({"experts": [2], "top_k": [3]}, "choices", "top_k=3: must be in 1..experts=2"),
    ({"ffn": {"choices": [8], "per_layer": "yes"}}, "ffn.per_layer", "true or false"),
    ({"layers": []}, "layers", "at least one"),
    ({"hidden": [32.5]}, "hidden", "integers"),
    ({"phase": "inference"}, "phase", "unknown phase"),
    ({"family": "t5"}, "family", "unknown family"),
    ({"head_dim": 3}, "choices", "head_dim=3: must be even"),
])
def test_bad_definitions_name_the_key(change, where, text):
    with pytest.raises(SchemaError) as ei:
        LMSpace({**TINY, **change})
    assert ei.value.where == where and text in ei.value.reason


def test_workload_parameters():
    space = LMSpace(TINY, phase="decode", context=50)
    assert space.params == {"phase": "decode", "context": 50} and space.workload.past == 50
    with pytest.raises(SchemaError, match="give context, not seq_len"):
        LMSpace(TINY, phase="decode", seq_len=8)
    with pytest.raises(SchemaError, match="learned positions"):
        LMSpace({**TINY, "family": "gpt2", "heads": [2], "kv_heads": [2], "positions": 10})
    with pytest.raises(ValueError, match="built for the decode phase"):
        nf.score_space(space, n=10, out="unused", phase="prefill", progress=False)


# ------------------------------------------------------------------ budgets
def test_sample_within_language_model_budgets():
    space = get_space("llm-moe", phase="decode", context=2048)
    dev = nf.options.get_device("a100-bf16")
    budget = Budget(max_active_params=1_500_000_000, max_kv_cache_bytes=300 << 20,
                    max_params=8_000_000_000, max_latency=2e-3)
    got = space.sample_within(budget, 40, seed=1, act_dtype="bf16", weight_dtype="bf16",
                              device=dev)
    again = nf.score(got.batch, act_dtype="bf16", weight_dtype="bf16", device=dev, phase="decode")
    assert got.scores.phase == "decode" and len(got) == 40
    assert (again["active_params"] <= 1_500_000_000).all() and (again["kv_cache_bytes"] <= 300 << 20).all()
    assert (again["latency_s"] <= 2e-3).all() and (again["params"] <= 8_000_000_000).all()
    # the draws are the stream's first candidates that fit
    cols = space.sample_columns(got.draws, seed=1)
    every = nf.score(space.encode_columns(cols), act_dtype="bf16", weight_dtype="bf16", device=dev,
                     phase="decode")
    assert np.array_equal(np.flatnonzero(budget.mask(every))[:40], got.arch_id)
    # prefill FLOPs, counted as FlopCounterMode counts them
    pre = get_space("llm", seq_len=1024)
    b = Budget(max_flops=2 * 10**12, flops_convention="fma2")
    s = pre.sample_within(b, 20, seed=0)
    assert s.scores.convention == "fma2" and (s.scores["ops"] <= 2 * 10**12).all()
    assert b.fits(s.batch[0], phase="prefill")


def test_budget_on_results_without_language_model_columns():
    r = nf.score(nf.get_space("nb201").sample(3, seed=0))
    with pytest.raises(nf.scoring.MissingColumnError, match="language-model phase"):
        Budget(max_kv_cache_bytes=10).mask(r)


def test_score_space_writes_the_phase(tmp_path):
    space = get_space("llm-moe", phase="decode", context=512)
    run = nf.score_space(space, n=300, seed=2, out=tmp_path / "run", convention="fma2",
                         act_dtype="bf16", chunk_size=128, progress=False)
    assert run.metadata["phase"] == "decode" and run.metadata["causal"] == "full"
    assert run.metadata["space"] == {"name": "llm-moe", "params": {"phase": "decode", "context": 512}}
    t = run.read()
    direct = nf.score(space.sample(300, seed=2), convention="fma2", act_dtype="bf16", phase="decode")
    for m in ("ops", "params", "active_params", "kv_cache_bytes"):
        assert t[m].to_pylist() == direct[m].tolist()
    again = nf.score_space(space, n=300, seed=2, out=tmp_path / "run", convention="fma2",
                           act_dtype="bf16", chunk_size=128, progress=False, resume=True)
    assert again.parts_resumed == 3 and again.rows_written == 0
    rebuilt = get_space(run.metadata["space"]["name"], **run.metadata["space"]["params"])
    assert rebuilt.params == space.params


# --------------------------------------------------------------- the CLI
def cli(*args):
    env = dict(os.environ, COLUMNS="220", NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "nasflops", *map(str, args)], capture_output=True,
                       text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_cli_count_a_zoo_model_in_decode():
    out = cli("count", "llama-2-7b", "--phase", "decode", "--context", "4096", "--dtype", "bf16",
              "--device", "a100-bf16")
    r = nf.score(lm.build("llama-2-7b", phase="decode", context=4096), convention="fma2",
                 weight_dtype="bf16", act_dtype="bf16", phase="decode",
                 device=nf.options.get_device("a100-bf16"))[0]
    assert "6,738,415,616 params" in out and "6,738,415,616 active" in out
    assert "KV cache after the pass: 2.00 GiB (4,097 tokens" in out
    assert f"{int(r['ops']) / 1e9:.3f} GFLOPs (fma2)" in out
    assert f"{1 / float(r['latency_s']):,.1f} tokens/s" in out
    assert "model.layers.0.self_attn.q_pr" in out and "decoder layers 1-31" in out


def test_cli_count_training_and_a_space_native():
    out = cli("count", "mixtral-8x7b", "--phase", "train", "--seq-len", "512", "--dtype", "bf16")
    assert "46,702,792,704 params" in out and "12,879,925,248 active" in out
    assert "Adam" in out and "with full recomputation" in out
    native = {"layers": 8, "hidden": 1024, "heads": 16, "kv_heads": 4, "ffn": 2816, "experts": 8,
              "top_k": 2}
    out = cli("count", json.dumps(native), "--space", "llm-moe", "--phase", "decode",
              "--context", "100", "--all-layers")
    space = get_space("llm-moe", phase="decode", context=100)
    r = nf.score(space.encode([native]), convention="fma2", phase="decode")[0]
    assert f"{int(r['params']):,} params" in out and "model.layers.7.mlp.experts.down_proj" in out


def test_cli_score_the_llm_space(tmp_path):
    out = cli("score", "llm", "-n", "200", "--phase", "decode", "--context", "1024", "-c", "fma2",
              "--dtype", "bf16", "-o", tmp_path / "llm", "--no-progress")
    assert "200 candidates of llm (decode)" in out and "kv_cache_bytes" in out
    meta = nf.storage.read_metadata(str(tmp_path / "llm"))
    assert meta["phase"] == "decode" and meta["act_dtype"] == "bf16"
