"""AutoFormer's spaces against AutoFormer's own code (vendored, tests/third_party/autoformer).

The supernet is built as ``supernet_train.py`` builds it (``qkv_bias=True``,
``--gp --change_qkv --relative_position``, ``max_relative_position=14``) at
the ``SUPERNET`` sizes of ``experiments/supernet/supernet-*.yaml``;
``set_sample_config`` samples a subnet.  Parameters: the code's
``get_sampled_params_numel`` (what the paper reports and its search bounds);
MACs: half of ``torch.utils.flop_counter.FlopCounterMode`` 's FLOPs on the
sampled module (it counts conv, mm/addmm and bmm: the patch embedding, the
linears and the four attention products of each layer); the paper's FLOPs:
the code's ``get_complexity``.
"""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nasflops as nf
from nasflops.engine import METRICS
from nasflops.options import ScoringOptions
from nasflops.search_spaces import NativeError, get_space
from nasflops.search_spaces import autoformer as af
from nasflops.search_spaces import vision_transformers as vt
from tests.conftest import import_torchvision

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
THIRD = Path(__file__).resolve().parent / "third_party" / "autoformer"
EXAMPLES = ROOT / "docs" / "examples"


@pytest.fixture(scope="module")
def supernets():
    sys.path.insert(0, str(THIRD))
    try:
        from model.supernet_transformer import Vision_TransformerSuper
    finally:
        sys.path.remove(str(THIRD))
    out = {}
    for name, c in af.SUPERNETS.items():
        s = c["supernet"]
        torch.manual_seed(0)
        out[name] = Vision_TransformerSuper(
            img_size=224, patch_size=16, embed_dim=s["embed_dim"], depth=s["depth"],
            num_heads=s["num_heads"], mlp_ratio=s["mlp_ratio"], qkv_bias=True, gp=True,
            relative_position=True, change_qkv=True, max_relative_position=14).eval()
    return out


def _config(native: dict) -> dict:
    """A native as the code's ``set_sample_config`` takes it."""
    d = native["depth"]
    return {"layer_num": d, "embed_dim": [native["embed_dim"]] * d,
            "mlp_ratio": list(native["mlp_ratio"]), "num_heads": list(native["num_heads"])}


def _real_counts(model, native: dict) -> tuple[int, int, float]:
    """(params, MACs, paper FLOPs) of the real sampled supernet."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = _config(native)
    params = model.get_sampled_params_numel(cfg)       # also set_sample_config(cfg)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    return params, fc.get_total_flops() // 2, model.get_complexity(196)


def _scores(batch):
    return nf.score(batch, convention="macs")


@pytest.mark.parametrize("name", list(af.SUBNETS))
def test_published_subnets_equal_the_code(supernets, name):
    native = af.SUBNETS[name]
    params, macs, paper = _real_counts(supernets[name], native)
    r = _scores(af.subnet(name))
    assert int(r["params"][0]) == params
    assert int(r["macs"][0]) == macs
    # the paper's counter, in closed form, is the code's get_complexity
    assert af.paper_complexity(native["embed_dim"], native["mlp_ratio"],
                               native["num_heads"]) == paper
    # published figures (Table 3): S and B parameters are these counts rounded;
    # T's FLOPs and B's are the paper's own counter rounded (see autoformer.py)
    published_params, published_flops = af.PUBLISHED[name]
    if name != "autoformer-t":
        assert f"{params / 1e6:.1f}" == published_params
    if name != "autoformer-s":
        assert f"{paper / 1e9:.{len(published_flops.partition('.')[2])}f}" == published_flops


def test_tool_conventions_equal_the_tools_on_the_code(supernets):
    # thop (0: the super modules are nn.Linear subclasses, which it skips, and
    # they call F.linear), ptflops (the functional calls it patches), fvcore
    # (aten ops, layer norms included) and FlopCounterMode (fma2), batch 1 and 2
    pytest.importorskip("fvcore")
    pytest.importorskip("thop")
    pytest.importorskip("ptflops")
    import_torchvision()         # ptflops imports it
    from nasflops.torch_bridge.reference import (flop_counter_count, fvcore_count,
                                                 ptflops_count, thop_count)
    native = af.SUBNETS["autoformer-t"]
    model = supernets["autoformer-t"]
    for p in model.parameters():
        p.requires_grad_(False)          # fvcore traces the sliced weights as constants
    model.set_sample_config(_config(native))
    net = vt.autoformer(native["embed_dim"], native["mlp_ratio"], native["num_heads"])
    shape = (3, 224, 224)

    def ops(conv, b=1):
        return int(nf.score(net, convention=conv, batch_size=b)["ops"][0])
    assert ptflops_count(model, shape)[0] == ops("ptflops")
    for b in (1, 2):
        assert thop_count(model, shape, b)[0] == ops("thop", b)
        assert fvcore_count(model, shape, b) == ops("fvcore", b)
        assert flop_counter_count(model, shape, b) == ops("fma2", b)


def test_published_t_subnet_is_outside_table_1():
    space = get_space("autoformer-t")
    with pytest.raises(NativeError, match=r"autoformer-t: candidate 0, field 'mlp_ratio\[2\]': "
                                          r"layer 2: 3 is not a choice \(3.5, 4\)"):
        space.encode([af.SUBNETS["autoformer-t"]])
    # S and B are candidates of their spaces, with the subnet builder's records
    for name in ("autoformer-s", "autoformer-b"):
        batch = get_space(name).encode([af.SUBNETS[name]])
        assert np.array_equal(batch.records, af.subnet(name).records)


@pytest.mark.parametrize("name", list(af.SUPERNETS))
def test_random_subnets_equal_the_code(supernets, name):
    space = get_space(name)
    natives = space.from_columns(space.sample_columns(3, seed=11))
    r = _scores(space.encode(natives))
    for i, native in enumerate(natives):
        params, macs, paper = _real_counts(supernets[name], native)
        assert (int(r["params"][i]), int(r["macs"][i])) == (params, macs), native
        assert af.paper_complexity(native["embed_dim"], native["mlp_ratio"],
                                   native["num_heads"]) == paper


def test_vectorised_encoding_equals_the_builder():
    space = get_space("autoformer-s")
    cols = space.sample_columns(40, seed=3)
    batch = space.encode_columns(cols)
    for i, nat in enumerate(space.from_columns(cols)):
        net = space.network(nat["embed_dim"], nat["mlp_ratio"], nat["num_heads"])
        assert np.array_equal(batch[i], net.records), i
    # the stream does not depend on the chunking; columns round-trip
    again = {k: np.concatenate([space.sample_columns(15, seed=3)[k],
                                space.sample_columns(25, seed=3, start=15)[k]]) for k in cols}
    assert all(np.array_equal(cols[k], again[k]) for k in cols)
    back = space.to_columns(space.from_columns(cols))
    assert all(np.array_equal(cols[k], back[k]) for k in cols)


@pytest.mark.parametrize("name", ["autoformer-t", "autoformer-b", "vit_deit.yaml"])
def test_decode_reads_the_natives_back(name):
    space = get_space(name if name.startswith("auto") else f"yaml:{EXAMPLES / name}")
    cols = space.sample_columns(60, seed=8)
    batch = space.encode_columns(cols)
    back = space.decode(batch)
    assert all(np.array_equal(cols[k], back[k]) for k in cols)
    other = get_space("autoformer-s").sample(2, seed=0)
    with pytest.raises(NativeError, match=rf"{space.name}: candidate 0, field 'records'"):
        space.decode(other)


def test_sampling_is_valid_and_covers_the_choices():
    space = get_space("autoformer-b")
    cols = space.sample_columns(5000, seed=0)
    space._indices(cols)                       # every candidate validates
    assert set(cols["embed_dim"].tolist()) == {528, 576, 624}
    assert set(cols["depth"].tolist()) == {14, 15, 16}
    live = np.arange(16)[None] < cols["depth"][:, None]
    assert set(cols["mlp_ratio"][live].tolist()) == {3.0, 3.5, 4.0}
    assert set(cols["num_heads"][live].tolist()) == {8, 9, 10}
    assert not cols["mlp_ratio"][~live].any() and not cols["num_heads"][~live].any()


@pytest.mark.parametrize("native, field, reason", [
    ({"embed_dim": 200, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12},
     "embed_dim", r"200 is not a choice \(192, 216, 240\)"),
    ({"embed_dim": 192, "depth": 11, "mlp_ratio": [4] * 11, "num_heads": [3] * 11},
     "depth", r"11 is not a choice \(12, 13, 14\)"),
    ({"embed_dim": 192, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 5 + [5] + [3] * 6},
     r"num_heads\[5\]", r"layer 5: 5 is not a choice \(3, 4\)"),
    ({"embed_dim": 192, "depth": 12, "mlp_ratio": [4] * 11, "num_heads": [3] * 12},
     "mlp_ratio", r"expected one value per layer \(12\)"),
    ({"embed_dim": [192, 216], "layer_num": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12},
     "embed_dim", "every layer has one embed dim"),
])
def test_bad_natives_name_candidate_layer_and_reason(native, field, reason):
    space = get_space("autoformer-t")
    good = {"embed_dim": 192, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12}
    with pytest.raises(NativeError, match=rf"autoformer-t: candidate 1, field '{field}': {reason}"):
        space.encode([good, native])


def test_bad_columns_beyond_the_depth():
    space = get_space("autoformer-t")
    cols = space.sample_columns(4, seed=0)
    cols = {k: v.copy() for k, v in cols.items()}
    cols["depth"][2] = 12
    cols["num_heads"][2, 12:] = 0
    cols["mlp_ratio"][2, 12] = 4.0
    cols["mlp_ratio"][2, 13] = 0
    with pytest.raises(NativeError, match=r"candidate 2, field 'mlp_ratio\[12\]': layer 12 is "
                                          r"beyond the depth 12: must be 0, got 4"):
        space.encode_columns(cols)


@pytest.mark.parametrize("convention", ["macs", "flops", "fvcore", "thop"])
def test_block_table_scores_equal_the_core(convention):
    space = get_space("autoformer-t")
    cols = space.sample_columns(300, seed=5)
    opts = ScoringOptions.make(convention, 2)
    raw = space.score_columns_raw(cols, opts)
    ref = nf.score(space.encode_columns(cols), convention=convention, batch_size=2)
    for k, m in enumerate(METRICS):
        assert np.array_equal(raw.metrics[:, k], ref[m]), m


def _small_space(**kw):
    return af.TransformerSpace((64, 96), (1, 2), (2.0, 4.0), (1, 2), resolution=32,
                               num_classes=10, name="tiny-autoformer", **kw)


def _all_natives(space):
    out = []
    K = list(itertools.product(space.mlp_ratios, space.heads))
    for e in space.embed_dims:
        for d in space.depths:
            for layers in itertools.product(K, repeat=d):
                out.append({"embed_dim": e, "depth": d, "mlp_ratio": [r for r, _ in layers],
                            "num_heads": [h for _, h in layers]})
    return out


@pytest.mark.parametrize("metric", ["params", "macs", "peak_act_bytes"])
def test_trellis_profile_equals_brute_force(metric):
    space = _small_space()
    natives = _all_natives(space)
    assert len(natives) == space.size == 2 * (4 + 16)
    values = nf.score(space.encode(natives))[metric]
    prof = space.profile(metric)
    assert prof.total == len(natives)
    assert (prof.min.value, prof.max.value) == (int(values.min()), int(values.max()))
    uniq, counts = np.unique(values, return_counts=True)
    assert [prof.count(int(v)) for v in uniq] == np.cumsum(counts).tolist()
    # witnesses decode to natives of the space with that value
    w = space.encode([prof.max.native])
    assert int(nf.score(w)[metric][0]) == prof.max.value


def test_exact_sampling_within_a_budget():
    space = get_space("autoformer-t")
    budget = nf.Budget(max_params=6_000_000)
    s = space.sample_within(budget, 50, seed=1, method="exact")
    assert (s.scores["params"] <= 6_000_000).all()
    r = nf.score(space.encode_columns(s.columns))
    assert np.array_equal(r["params"], s.scores["params"])


def test_cli_profile(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "nasflops", "profile", "autoformer-t", "--metric",
                        "params"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"{get_space('autoformer-t').size:,}" in p.stdout


# ------------------------------------------------------------ YAML spaces
def test_yaml_deit_space_scores_like_the_python_builders():
    space = get_space(f"yaml:{EXAMPLES / 'vit_deit.yaml'}")
    assert space.name == "vit-deit" and space.params["path"].endswith("vit_deit.yaml")
    cands = [(192, 3, vt.deit_tiny), (384, 6, vt.deit_small), (768, 12, vt.vit_b_16)]
    natives = [{"embed_dim": e, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [h] * 12}
               for e, h, _ in cands]
    batch = space.encode(natives)
    for i, (_, _, build) in enumerate(cands):
        assert np.array_equal(batch[i], build())
    for conv in ("macs", "flops", "fvcore", "thop", "ptflops"):
        got = nf.score(batch, convention=conv)
        ref = nf.score(nf.SpecBatch.from_list([b() for _, _, b in cands]), convention=conv)
        for m in METRICS:
            assert np.array_equal(got[m], ref[m]), (conv, m)
    # the block table agrees with the core on samples (per-layer heads mix)
    cols = space.sample_columns(200, seed=2)
    raw = space.score_columns_raw(cols, ScoringOptions.make("flops"))
    ref = nf.score(space.encode_columns(cols), convention="flops")
    assert all(np.array_equal(raw.metrics[:, k], ref[m]) for k, m in enumerate(METRICS))


def test_yaml_autoformer_space_equals_the_shipped_space():
    space = get_space(f"yaml:{EXAMPLES / 'autoformer_t_like.yaml'}")
    shipped = get_space("autoformer-t")
    cols = shipped.sample_columns(100, seed=9)
    a, b = space.encode_columns(cols), shipped.encode_columns(cols)
    assert np.array_equal(a.records, b.records) and np.array_equal(a.offsets, b.offsets)
    assert space.size == shipped.size


@pytest.mark.parametrize("change, match", [
    ({"heads": [3]}, "unknown key 'heads'"),
    ({"num_heads": [5, 7]}, "192 is not divisible by 5"),
    ({"attention": "swin"}, "attention must be one of autoformer, torchvision"),
    ({"embed_dim": [384, 192]}, "embed_dim must be distinct and ascending"),
    ({"patch": 0}, "patch must be a positive integer, got 0"),
    ({"resolution": 100}, "resolution must be a multiple of the patch size 16, got 100"),
    ({"resolution": 4096}, "resolution goes up to 1024"),
    ({"attention": "autoformer", "relative_position": "yes"}, "relative_position must be true"),
    ({"mlp_ratio": [0.001]}, "mlp_ratio 0.001 gives embed_dim 192 an MLP of no channel"),
    ({"embed_dim": ["wide"]}, "embed_dim must be a list of numbers"),
])
def test_yaml_errors_name_file_and_key(tmp_path, change, match):
    import yaml
    d = yaml.safe_load((EXAMPLES / "vit_deit.yaml").read_text())
    d.update(change)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ValueError, match=match) as exc:
        get_space(f"yaml:{path}")
    assert str(path) in str(exc.value)


def test_registry_lists_the_spaces():
    names = {s["name"]: s for s in nf.list_spaces()}
    for v in "tsb":
        s = names[f"autoformer-{v}"]
        assert s["size"] == get_space(f"autoformer-{v}").size
    # T: 3 embed dims x (4^12 + 4^13 + 4^14) layer choices
    assert get_space("autoformer-t").size == 3 * (4 ** 12 + 4 ** 13 + 4 ** 14)


def test_score_space_stores_natives_and_scores_like_the_core(tmp_path):
    space = get_space("autoformer-s")
    run = nf.score_space(space, n=2500, seed=4, out=tmp_path / "af", convention="flops",
                         chunk_size=1000, n_jobs=2, progress=False)
    t = run.read().sort_by("arch_id")
    ref = nf.score(space.sample(2500, seed=4), convention="flops")
    for m in nf.METRICS:
        assert t[m].to_pylist() == ref[m].tolist(), m
    natives = space.from_columns(space.sample_columns(2, seed=4))
    rows = t.slice(0, 2).select(["embed_dim", "depth", "mlp_ratio", "num_heads"]).to_pylist()
    assert rows == natives
    assert run.metadata["space"]["name"] == "autoformer-s"
