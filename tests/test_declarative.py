"""Declarative chain spaces: schema, compiled sampler/encoder, shipped spaces."""
import textwrap

import numpy as np
import pytest

import nasflops as nf
from nasflops.search_spaces import NativeError, get_space
from nasflops.search_spaces.declarative import SchemaError, compile_space, load_space

SEED = 7

# The published ProxylessNAS networks in the proxylessnas-* spaces' native
# encoding.  Source of the architectures: the per-layer kernel, expand and
# zero/MBConv lists of osmr/imgclsmob pytorchcv/models/proxylessnas.py
# (get_proxylessnas(version), transcribed from the official proxyless_*.config
# files), 21 searched layers after the fixed first block.
def _native(residual, ks, e):
    return {"op": ["mbconv" if r else "skip" for r in residual], "ks": ks, "e": e}


PROXYLESS = {
    "mobile": _native([1, 1, 0, 0] + [1] * 17,
                      [5, 3, 3, 3, 7, 3, 5, 5, 7, 5, 5, 5, 5, 5, 5, 5, 7, 7, 7, 7, 7],
                      [3, 3, 3, 3, 3, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6, 6, 3, 3, 6]),
    "gpu": _native([1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
                   [5, 3, 3, 3, 7, 3, 3, 3, 7, 5, 5, 5, 5, 3, 3, 5, 7, 7, 7, 5, 7],
                   [3, 3, 3, 3, 3, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6, 6, 6, 6, 6]),
    "cpu": _native([1] * 9 + [0, 0] + [1] * 10,
                   [3, 3, 3, 3, 3, 3, 3, 5, 3, 3, 3, 3, 5, 3, 3, 3, 5, 5, 5, 3, 5],
                   [6, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6, 3, 3, 3, 6]),
}
PROXYLESS_MOBILE = PROXYLESS["mobile"]
# published figures: mit-han-lab/proxylessnas logs/imagenet_<version>_log.txt
# ("Total training params: 4.08M", "Total FLOPs: 320.4M", ...; their counter
# is conv + linear MACs) and the exact params osmr/imgclsmob's test asserts
PUBLISHED = {  # version: (params, params in M as printed, MACs in M as printed)
    "mobile": (4080512, 4.08, 320.4),
    "gpu": (7119848, 7.12, 465.3),
    "cpu": (4361648, 4.36, 439.2),
}
# stem, first block, stage widths and feature-mix width of each network
WIDTHS = {
    "mobile": (32, 16, [32, 40, 80, 96, 192, 320], 1280),
    "gpu": (40, 24, [32, 56, 112, 128, 256, 432], 1728),
    "cpu": (40, 24, [32, 48, 88, 104, 216, 360], 1432),
}


# ------------------------------------------------------------------ OFA-MBv3
def test_ofa_mbv3_is_declarative():
    # one OFA: the shipped YAML, on the declarative machinery (its counts are
    # checked against the ofa package in test_ofa.py and test_torch_bridge.py)
    space = get_space("ofa-mbv3")
    assert space.columns == ("ks", "e", "d", "r") and space.params == {"width_mult": 1.2}
    assert space.size == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5 * 25
    assert space.n_encodings == 3 ** 45 * 25
    assert get_space("ofa-mbv3", width_mult=1.0).params == {"width_mult": 1.0}


# -------------------------------------------------------------- ProxylessNAS
@pytest.mark.parametrize("version", ["mobile", "gpu", "cpu"])
def test_proxylessnas_published_figures(version):
    space = get_space(f"proxylessnas-{version}")
    assert space.columns == ("op", "ks", "e") and space.block_types == ("mbconv", "skip")
    r = nf.score(space.encode([PROXYLESS[version]]), convention="ofa")
    macs, params = int(r["ops"][0]), int(r["params"][0])
    exact, params_m, macs_m = PUBLISHED[version]
    assert params == exact
    assert round(params / 1e6, 2) == params_m
    assert round(macs / 1e6, 1) == macs_m


@pytest.mark.parametrize("version", ["mobile", "gpu", "cpu"])
def test_proxylessnas_matches_ofa_package(version, ofa_importable):
    torch = pytest.importorskip("torch")
    networks = pytest.importorskip("ofa.imagenet_classification.networks")
    from ofa.utils.flops_counter import profile
    # the published network as an ofa ProxylessNASNets config (the format of
    # the official proxyless_*.config files), built from the native
    stem, first, widths, mix = WIDTHS[version]
    native = PROXYLESS[version]
    blocks = [{"name": "ResidualBlock", "shortcut": None,
               "conv": {"name": "MBConvLayer", "in_channels": stem, "out_channels": first,
                        "kernel_size": 3, "stride": 1, "expand_ratio": 1, "act_func": "relu6"}}]
    strides, depths = [2, 2, 2, 1, 2, 1], [4, 4, 4, 4, 4, 1]
    cin, p = first, 0
    for w, s, d in zip(widths, strides, depths):
        for i in range(d):
            op, k, e = (native[c][p] for c in ("op", "ks", "e"))
            stride = s if i == 0 else 1
            shortcut = ({"name": "IdentityLayer", "in_channels": cin, "out_channels": w}
                        if stride == 1 and cin == w else None)
            conv = ({"name": "ZeroLayer"} if op == "skip" else
                    {"name": "MBConvLayer", "in_channels": cin, "out_channels": w, "kernel_size": k,
                     "stride": stride, "expand_ratio": e, "act_func": "relu6"})
            blocks.append({"name": "ResidualBlock", "conv": conv, "shortcut": shortcut})
            cin, p = w, p + 1
    config = {
        "name": "ProxylessNASNets",
        "first_conv": {"name": "ConvLayer", "in_channels": 3, "out_channels": stem,
                       "kernel_size": 3, "stride": 2, "act_func": "relu6"},
        "blocks": blocks,
        "feature_mix_layer": {"name": "ConvLayer", "in_channels": cin, "out_channels": mix,
                              "kernel_size": 1, "act_func": "relu6"},
        "classifier": {"name": "LinearLayer", "in_features": mix, "out_features": 1000},
    }
    net = networks.ProxylessNASNets.build_from_config(config)
    params = sum(q.numel() for q in net.parameters())
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)     # exact counter buffers (see test_ofa.py)
    try:
        macs, _ = profile(net.to("meta", torch.float64), (1, 3, 224, 224))
    finally:
        torch.set_default_dtype(old)
    space = get_space(f"proxylessnas-{version}")
    r = nf.score(space.encode([native]), convention="ofa")
    assert (int(r["ops"][0]), int(r["params"][0])) == (int(macs), params)


def test_proxylessnas_samples_valid():
    space = get_space("proxylessnas-mobile")
    cols = space.sample_columns(3000, seed=SEED)
    first = space._stage_pos[:-1]
    assert not (cols["op"][:, first] == space.block_types.index("skip")).any()
    assert (cols["op"] == 1).any()       # zero ops elsewhere are drawn
    r = nf.score(space.encode_columns(cols), convention="macs", errors="status")
    assert (r["status"] == 0).all()
    # a skip is the identity: fewer MACs than the same native with an MBConv
    nat = dict(PROXYLESS_MOBILE, op=["mbconv"] * 21)
    full = nf.score(space.encode([nat, PROXYLESS_MOBILE]))["macs"]
    assert full[0] > full[1]


# ----------------------------------------------------------------- ResNets
def _resnet(block, depths, expand=None):
    blk = {"type": block, "kernel": 3, "act": "relu"}
    if expand is not None:
        blk["expand"] = expand
    mult = 4 if block == "resnet_bottleneck" else 1
    return compile_space({
        "name": f"resnet-{block}",
        "input": {"resolution": 224},
        "options": {"divisor": None},
        "stem": [{"type": "conv", "out": 64, "kernel": 7, "stride": 2, "act": "relu"},
                 {"type": "maxpool", "kernel": 3, "stride": 2, "padding": 1}],
        "stages": [{"width": w * mult, "depth": d, "stride": s, "block": blk}
                   for w, d, s in zip((64, 128, 256, 512), depths, (1, 2, 2, 2))],
        "head": [{"type": "global_pool"}, {"type": "flatten"}, {"type": "linear", "out": 1000}],
    })


@pytest.mark.parametrize("block,depths,expand,params,gmacs", [
    # torchvision's published figures (ResNet18_Weights / ResNet50_Weights
    # IMAGENET1K_V1 meta: num_params and "_ops" in GFLOPS, i.e. GMACs)
    ("resnet_basic", (2, 2, 2, 2), None, 11689512, 1.814),
    ("resnet_bottleneck", (3, 4, 6, 3), 0.25, 25557032, 4.089),
])
def test_resnet_blocks_reproduce_torchvision(block, depths, expand, params, gmacs):
    space = _resnet(block, depths, expand)
    assert space.columns == ("r",)
    r = nf.score(space.encode([{"r": 224}]))
    assert int(r["params"][0]) == params
    assert round(int(r["macs"][0]) / 1e9, 3) == gmacs


# ------------------------------------------------------ choices and natives
TINY = {
    "name": "tiny",
    "input": {"resolution": [32, 64]},
    "stem": [{"type": "conv", "out": 16, "kernel": 3, "stride": 2, "act": "relu"}],
    "stages": [
        {"width": [16, 24], "depth": [1, 2], "stride": 2,
         "block": {"type": ["mbconv", "conv"], "kernel": [3, 5], "expand": [3, 6], "act": "relu",
                   "se": True}},
        {"width": [32, 40], "depth": [1, 2, 3], "stride": 1,
         "block": {"type": ["resnet_basic", "skip", "resnet_bottleneck"], "kernel": [3],
                   "expand": [3, 6]}},
    ],
    "head": [{"type": "global_pool"}, {"type": "linear", "out": 10}],
}


def test_every_choice_builds_valid_networks():
    space = compile_space(TINY)
    assert space.columns == ("op", "ks", "e", "d", "w", "r")
    cols = space.sample_columns(4000, seed=SEED)
    r = nf.score(space.encode_columns(cols), errors="status")
    assert (r["status"] == 0).all()
    # chunk-independent and reproducible
    part = space.sample_columns(100, seed=SEED, start=1000)
    for c in space.columns:
        np.testing.assert_array_equal(part[c], cols[c][1000:1100])
    # natives round trip
    nat = space.from_columns({c: v[:50] for c, v in cols.items()})
    assert np.array_equal(space.encode(nat).records, space.encode_columns(
        {c: v[:50] for c, v in cols.items()}).records)


def test_unused_entries_do_not_change_the_network():
    space = compile_space(TINY)
    nat = {"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 5,
           "e": [3, 6, 3, 3, 3], "d": [1, 2], "w": [16, 32], "r": 32}
    other = dict(nat, op=["mbconv", "mbconv", "resnet_basic", "skip", "resnet_bottleneck"],
                 ks=[3, 5, 3, 3, 3], e=[3, 3, 6, 6, 6])
    a, b = space.encode([nat]), space.encode([other])
    assert np.array_equal(a.records, b.records)


def test_width_choices_rewire_the_next_stage():
    space = compile_space(TINY)
    base = {"op": ["mbconv", "mbconv", "resnet_basic", "skip", "skip"], "ks": [3] * 5,
            "e": [3] * 5, "d": [1, 1], "w": [16, 32], "r": 32}
    wide = dict(base, w=[24, 32])
    p0, p1 = (int(nf.score(space.encode([x]))["params"][0]) for x in (base, wide))
    assert p1 > p0


@pytest.mark.parametrize("native,field,text", [
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3, 3, 3, 3, 3],
      "e": [3, 3, 3, 3, 3], "d": [1, 1], "w": [16, 32], "r": 48}, "r", "48"),
    ({"op": ["mbconv", "conv", "identity", "skip", "skip"], "ks": [3] * 5, "e": [3] * 5,
      "d": [1, 1], "w": [16, 32], "r": 32}, "op", "unknown op name 'identity'"),
    ({"op": ["mbconv", "conv", "skip", "skip", "skip"], "ks": [3] * 5, "e": [3] * 5,
      "d": [1, 1], "w": [16, 32], "r": 32}, "op", "position 2"),
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 4, "e": [3] * 5,
      "d": [1, 1], "w": [16, 32], "r": 32}, "ks", "5 entries"),
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3, 7, 3, 3, 3],
      "e": [3] * 5, "d": [1, 1], "w": [16, 32], "r": 32}, "ks", "position 1"),
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 5, "e": [3] * 5,
      "d": [1, 4], "w": [16, 32], "r": 32}, "d", "stage 1"),
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 5, "e": [3] * 5,
      "d": [1, 1], "w": [16, 33], "r": 32}, "w", "stage 1"),
    ({"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 5, "e": [3] * 5,
      "d": [1, 1], "w": [16, 32]}, "r", "missing"),
])
def test_bad_natives_name_candidate_and_field(native, field, text):
    space = compile_space(TINY)
    good = {"op": ["mbconv", "conv", "resnet_basic", "skip", "skip"], "ks": [3] * 5,
            "e": [3] * 5, "d": [1, 1], "w": [16, 32], "r": 32}
    with pytest.raises(NativeError) as ei:
        space.encode([good, good, native])
    assert ei.value.candidate == 2 and ei.value.field == field
    assert text in str(ei.value) and "candidate 2" in str(ei.value)


def test_bad_columns_name_candidate_and_field():
    space = compile_space(TINY)
    cols = space.sample_columns(10, seed=SEED)
    cols["e"] = cols["e"].copy()
    cols["e"][4, 3] = 5
    with pytest.raises(NativeError, match=r"candidate 4, field 'e'.*position 3"):
        space.encode_columns(cols)


@pytest.mark.parametrize("patch,where", [
    ({"stages": [{"width": 16, "depth": 1, "block": {"kernel": 4}}]}, "stages[0].block.kernel"),
    ({"stages": [{"width": 16, "depth": 1, "block": {"type": "lstm"}}]}, "stages[0].block.type"),
    ({"stages": [{"width": 16, "depth": 1, "block": {"act": "mish"}}]}, "stages[0].block.act"),
    ({"stages": [{"width": 16, "block": {}}]}, "stages[0]"),
    ({"stem": [{"type": "conv", "kernel": 3}]}, "stem[0]"),
    ({"options": {"global_pool": "max"}}, "options.global_pool"),
    ({"input": {"resolution": 4}, "stem": [{"type": "conv", "out": 8, "kernel": 7, "padding": 0}]},
     "stem[0]"),
    ({"widths": 3}, "<space>"),
])
def test_schema_errors_name_the_key(patch, where):
    schema = {"name": "bad", "stages": [{"width": 16, "depth": 1, "block": {}}]}
    schema.update(patch)
    with pytest.raises(SchemaError) as ei:
        compile_space(schema)
    assert ei.value.where == where


def test_load_yaml_file(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "space.yaml"
    path.write_text(textwrap.dedent("""\
        name: file-space
        input: {resolution: {min: 32, max: 40, step: 4}}
        stem: [{type: conv, out: 8, kernel: 3, stride: 2, act: relu6}]
        stages:
          - {width: 8, depth: [1, 2], stride: 1, block: {type: mbconv, kernel: [3, 5], expand: 2}}
        head: [{type: global_pool}, {type: linear, out: 10}]
        """))
    space = load_space(path)
    assert space.name == "file-space" and space.columns == ("ks", "d", "r")
    assert list(space.resolutions) == [32, 36, 40]
    b = space.encode([{"ks": [5, 3], "d": [2], "r": 36}])
    assert int(b[0]["size_h"][0]) == 36
    assert (nf.score(b)["status"] == 0).all()


def test_arrow_columns():
    pa = pytest.importorskip("pyarrow")
    space = compile_space(TINY)
    cols = space.sample_columns(5, seed=SEED)
    arrow = space.arrow_columns(cols)
    assert set(arrow) == set(space.columns)
    assert arrow["op"].to_pylist() == [n["op"] for n in space.from_columns(cols)]
    assert arrow["d"].to_pylist() == cols["d"].tolist()
    assert pa.types.is_int16(arrow["r"].type)


def test_fractional_expansions_round_trip():
    schema = dict(TINY, stages=[TINY["stages"][0], {
        "width": 32, "depth": 2, "stride": 1,
        "block": {"type": "resnet_bottleneck", "expand": [0.2, 0.25, 0.35]}}])
    space = compile_space(schema)
    cols = space.sample_columns(50, seed=SEED)
    assert cols["e"].dtype == np.float32
    nat = space.from_columns(cols)
    assert {x for n in nat for x in n["e"][2:]} <= {0.2, 0.25, 0.35}
    assert np.array_equal(space.encode(nat).records, space.encode_columns(cols).records)
    assert (nf.score(space.encode(nat), errors="status")["status"] == 0).all()


def test_too_many_templates_is_a_schema_error():
    wide = {"width": list(range(8, 8 * 41, 8)), "depth": 4, "stride": 1,
            "block": {"type": "mbconv", "kernel": [3, 5, 7], "expand": [1, 2, 3, 4, 6, 8]}}
    with pytest.raises(SchemaError, match="templates"):
        compile_space({"name": "huge", "stages": [wide] * 12})


def _random_schema(rng):
    """A random small space mixing every block type, option and choice kind."""
    pick = lambda xs, k=None: (list(rng.choice(xs, size=k, replace=False)) if k  # noqa: E731
                               else xs[rng.integers(len(xs))])
    stages = []
    for s in range(int(rng.integers(1, 4))):
        types = pick(["conv", "mbconv", "resnet_basic", "resnet_bottleneck"],
                     int(rng.integers(1, 3)))
        if s and rng.random() < 0.5:
            types.append("skip")
        block = {"type": [str(t) for t in types], "kernel": [int(k) for k in pick([1, 3, 5, 7], 2)],
                 "act": pick(["relu", "relu6", "hardswish", "silu"]),
                 "se": bool(rng.random() < 0.5)}
        block["expand"] = ([0.25, 0.5] if "resnet_bottleneck" in types else
                           [int(e) for e in pick([1, 3, 4, 6], 2)])
        stages.append({"width": [int(w) for w in pick([8, 16, 24, 32], int(rng.integers(1, 3)))],
                       "depth": [int(d) for d in pick([1, 2, 3], int(rng.integers(1, 3)))],
                       "stride": int(pick([1, 2])), "block": block})
    return {
        "name": "random",
        "input": {"channels": int(pick([1, 3])), "resolution": [int(r) for r in pick([24, 32, 40], 2)]},
        "options": {"global_pool": pick(["adaptive", "mean_wh"]), "divisor": pick([None, 8])},
        "stem": [{"type": "conv", "out": 16, "kernel": 3, "stride": 2, "act": "relu"},
                 {"type": "maxpool", "kernel": 3, "stride": 1, "padding": 1}],
        "stages": stages,
        "head": [{"type": "conv", "out": 32, "kernel": 1, "act": "hardswish"},
                 {"type": "global_pool"}, {"type": "flatten"}, {"type": "dropout"},
                 {"type": "linear", "out": 10}],
    }


@pytest.mark.parametrize("seed", range(25))
def test_random_schemas_compile_to_valid_networks(seed):
    rng = np.random.default_rng(seed)
    space = compile_space(_random_schema(rng))
    cols = space.sample_columns(300, seed=seed)
    batch = space.encode_columns(cols)
    r = nf.score(batch, convention="flops", errors="status")
    assert (r["status"] == 0).all(), nf.score(batch, errors="raise")
    # natives survive the round trip and re-encode identically
    back = space.to_columns(space.from_columns(cols))
    assert np.array_equal(space.encode_columns(back).records, batch.records)
