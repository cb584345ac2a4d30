"""The torchvision model zoo: published MACs and parameter counts, topology.

Published figures are torchvision's (``weights.meta["_ops"]`` and
``["num_params"]``, the "GFLOPS" and "Params" columns of its model docs),
held in ``zoo.PUBLISHED``; everything else here is derived by hand in the
test that uses it.
"""
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest

import nasflops as nf
from nasflops import Act, Flag, Op
from nasflops.search_spaces import NativeError, get_space, zoo


def giga(count: int, decimals: int) -> str:
    """``count / 1e9`` with ``decimals`` digits, from the exact integer."""
    q = Decimal(1).scaleb(-decimals)
    return str((Decimal(count) / Decimal(10 ** 9)).quantize(q, rounding=ROUND_HALF_EVEN))


@pytest.fixture(scope="module")
def scores():
    """Every zoo model at 224 x 224, scored once under ``macs``."""
    batch = zoo.ZooSpace().enumerate()
    r = nf.score(batch, convention="macs")
    return {name: r[i] for i, name in enumerate(zoo.MODEL_NAMES)}


def count(rec, op, flags=0, act=None):
    """Records of ``op`` (with all ``flags`` bits set and activation ``act``)."""
    m = (rec["op"] == op) & ((rec["flags"] & flags) == flags)
    if act is not None:
        m &= rec["act"] == act
    return int(m.sum())


# -- published figures ---------------------------------------------------------
CNNS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vgg11", "vgg16",
        "vgg19", "alexnet", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small",
        "efficientnet_b0", "densenet121", "shufflenet_v2_x1_0", "squeezenet1_0",
        "googlenet", "regnet_y_400mf", "convnext_tiny")
TRANSFORMERS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "deit_tiny", "deit_small",
                "swin_t", "swin_s", "swin_b", "maxvit_t")


def test_zoo_lists_the_issue_models():
    assert zoo.MODEL_NAMES == CNNS + TRANSFORMERS
    assert set(zoo.PUBLISHED) == set(zoo.MODELS)


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_params_match_torchvision_exactly(name, scores):
    assert int(scores[name]["status"]) == 0
    assert int(scores[name]["params"]) == zoo.PUBLISHED[name][1]


@pytest.mark.parametrize("name", [n for n in zoo.MODEL_NAMES if zoo.PUBLISHED[n][0]])
def test_macs_match_torchvision_gflops_column(name, scores):
    assert giga(int(scores[name]["macs"]), 3) == zoo.PUBLISHED[name][0]
    # ``macs`` counts only conv/linear multiply-accumulates, as torchvision does
    assert int(scores[name]["ops"]) == int(scores[name]["macs"])


@pytest.mark.parametrize("name, gmacs, decimals, params", [
    # issue 2's figures, as written there
    ("resnet50", "4.089", 3, 25_557_032),
    ("vgg16", "15.47", 2, 138_357_544),
    ("mobilenet_v2", "0.301", 3, 3_504_872),
])
def test_issue2_published_figures(name, gmacs, decimals, params):
    r = nf.score(zoo.MODELS[name](), convention="macs")
    assert giga(int(r["macs"][0]), decimals) == gmacs
    assert int(r["params"][0]) == params


# -- hand-checkable structure ----------------------------------------------------
def test_resnet50_layer_counts():
    rec = zoo.resnet50()
    blocks = 3 + 4 + 6 + 3
    # stem conv + 3 convs per bottleneck + one projection per stage
    assert count(rec, Op.CONV2D) == 1 + 3 * blocks + 4
    assert count(rec, Op.LINEAR) == 1
    assert count(rec, Op.BATCHNORM) == count(rec, Op.CONV2D)
    # every ReLU is nn.ReLU(inplace=True): stem + 3 per block
    assert count(rec, Op.ACT, act=Act.RELU) == 1 + 3 * blocks
    assert count(rec, Op.ACT, Flag.INPLACE, Act.RELU) == 1 + 3 * blocks
    # ``out += identity`` once per block
    assert count(rec, Op.ADD, Flag.INPLACE) == blocks == count(rec, Op.ADD)
    assert count(rec, Op.CONV2D, Flag.BIAS) == 0


def test_resnet50_classifier_and_shapes():
    t = nf.layer_table(zoo.resnet50())
    fc = t[-1]
    assert fc["op"] == "linear"
    assert (fc["macs"], fc["params"]) == (2048 * 1000, 2048 * 1000 + 1000)
    pool = t[t["op"] == "adaptive_avgpool"][0]
    assert (pool["channels"], pool["height"], pool["width"]) == (2048, 1, 1)
    # the last stage runs at 224 / 32 = 7
    assert t[t["op"] == "conv2d"][-1]["height"] == 7


def test_vgg16_by_hand():
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    macs = params = 0
    side, cin = 224, 3
    for v in cfg:
        if v == "M":
            side //= 2
        else:
            macs += side * side * v * cin * 9
            params += v * cin * 9 + v
            cin = v
    for i, o in ((512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)):
        macs += i * o
        params += i * o + o
    r = nf.score(zoo.vgg16())
    assert (int(r["macs"][0]), int(r["params"][0])) == (macs, params)
    # the two 64 x 224 x 224 fp32 maps around conv1_2 are the largest live set
    assert int(r["peak_act_bytes"][0]) == 2 * 64 * 224 * 224 * 4


def test_alexnet_shapes():
    t = nf.layer_table(zoo.alexnet())
    conv1 = t[t["op"] == "conv2d"][0]
    assert conv1["height"] == (224 + 2 * 2 - 11) // 4 + 1 == 55
    pool = t[t["op"] == "adaptive_avgpool"][0]
    assert (pool["channels"], pool["height"], pool["width"]) == (256, 6, 6)
    assert count(zoo.alexnet(), Op.DROPOUT) == 2


def test_squeezenet_ceil_mode_pooling():
    t = nf.layer_table(zoo.squeezenet1_0())
    pools = t[t["op"] == "maxpool"]
    conv1 = (224 - 7) // 2 + 1          # 109
    p1 = -(-(conv1 - 3) // 2) + 1        # ceil: 54
    p2 = -(-(p1 - 3) // 2) + 1           # ceil: 27 (floor would give 26)
    p3 = -(-(p2 - 3) // 2) + 1           # ceil: 13
    assert pools["height"].tolist() == [p1, p2, p3]
    assert t[-1]["channels"] == 1000 and t[-1]["op"] == "flatten"


def test_googlenet_structure():
    rec = zoo.googlenet()
    t = nf.layer_table(rec)
    # maxpool1 with ceil_mode: ceil((112 - 3) / 2) + 1 = 56, not 55
    assert t[t["op"] == "maxpool"][0]["height"] == 56
    # 3 stem convs + 6 per inception x 9, no auxiliary heads, one classifier
    assert count(rec, Op.CONV2D) == 3 + 6 * 9
    assert count(rec, Op.LINEAR) == 1
    assert count(rec, Op.MAXPOOL, Flag.CEIL_MODE) == count(rec, Op.MAXPOOL) == 4 + 9


def test_densenet121_structure():
    rec = zoo.densenet121()
    layers = 6 + 12 + 24 + 16
    assert count(rec, Op.CONV2D) == 1 + 2 * layers + 3
    # head: norm5 -> F.relu(inplace=True) -> pool -> linear on 1024 features
    t = nf.layer_table(rec)
    assert t[-1]["op"] == "linear" and t[-1]["params"] == 1024 * 1000 + 1000
    # every dense layer reads the concatenation of all earlier features
    assert t[t["op"] == "concat"]["channels"].max() == 1024


def test_shufflenet_split_and_shuffle():
    rec = zoo.shufflenet_v2_x1_0()
    units = 4 + 8 + 4
    assert count(rec, Op.CHANNEL_SHUFFLE) == units
    assert (rec["groups"][rec["op"] == Op.CHANNEL_SHUFFLE] == 2).all()
    # chunk(2) in every stride-1 unit: two views
    assert count(rec, Op.SLICE) == 2 * (units - 3)
    # depthwise convs: two per stride-2 unit, one per stride-1 unit
    dw = (rec["op"] == Op.CONV2D) & (rec["groups"] > 1)
    assert int(dw.sum()) == 2 * 3 + (units - 3)


def test_squeeze_excitation_blocks():
    large = zoo.mobilenet_v3_large()
    # use_se is True in 8 of the 15 bneck rows of MobileNetV3-Large
    assert count(large, Op.MUL) == 8
    # the SE gate is nn.Hardsigmoid() (not in place); the SE ReLU is nn.ReLU()
    assert count(large, Op.ACT, act=Act.HARDSIGMOID) == 8
    assert count(large, Op.ACT, Flag.INPLACE, Act.HARDSIGMOID) == 0
    eff = zoo.efficientnet_b0()
    blocks = 1 + 2 + 2 + 3 + 3 + 4 + 1
    assert count(eff, Op.MUL) == count(eff, Op.ACT, act=Act.SIGMOID) == blocks
    # SE gate convs are 1x1 with bias; every other conv is bias-free (BN follows)
    assert count(eff, Op.CONV2D, Flag.BIAS) == 2 * blocks
    regnet = zoo.regnet_y_400mf()
    assert count(regnet, Op.MUL) == 1 + 3 + 6 + 6


def test_convnext_tiny_mappings():
    rec = zoo.convnext_tiny()
    blocks = 3 + 3 + 9 + 3
    # stem LN + one LN per block + one per downsample + head LN
    assert count(rec, Op.LAYERNORM, Flag.AFFINE) == 1 + blocks + 3 + 1
    assert count(rec, Op.SCALE) == blocks
    assert count(rec, Op.ACT, act=Act.GELU) == blocks
    assert count(rec, Op.ADD, Flag.INPLACE) == blocks
    t = nf.layer_table(rec)
    # Linear(96, 384) on 56 x 56 channels-last rows == a 1x1 conv
    first_pw = t[(t["op"] == "conv2d") & (t["channels"] == 384)][0]
    assert first_pw["macs"] == 56 * 56 * 96 * 384
    assert first_pw["params"] == 96 * 384 + 384


def test_num_classes_and_resolution():
    base = nf.score(zoo.resnet50())
    ten = nf.score(zoo.resnet50(num_classes=10))
    assert int(base["params"][0]) - int(ten["params"][0]) == 2049 * (1000 - 10)
    big = nf.score(zoo.resnet50(resolution=448))
    # every conv map doubles in each side (224 and 448 are multiples of 32)
    fc = 2048 * 1000
    assert int(big["macs"][0]) == 4 * (int(base["macs"][0]) - fc) + fc
    with pytest.raises(ValueError, match="resolution"):
        zoo.resnet50(resolution=0)


def test_build_returns_independent_copies():
    a = zoo.build("alexnet")
    a["out_channels"][:] = 0
    assert int(nf.score(zoo.build("alexnet"))["params"][0]) == zoo.PUBLISHED["alexnet"][1]
    with pytest.raises(ValueError, match="unknown zoo model 'resnet9'"):
        zoo.build("resnet9")


# -- the zoo as a search space ---------------------------------------------------------
def test_space_is_registered():
    assert type(get_space("zoo")) is zoo.ZooSpace
    assert get_space("zoo", resolution=160).params == {"resolution": 160, "num_classes": 1000}


def test_space_enumerates_in_fixed_order(scores):
    space = zoo.ZooSpace()
    assert space.size == len(zoo.MODELS) == len(CNNS) + len(TRANSFORMERS)
    assert space.enumerable
    cols = space.enumerate_columns()
    assert space.from_columns(cols) == list(zoo.MODEL_NAMES)
    assert space.params == {"resolution": 224, "num_classes": 1000}
    part = space.enumerate(3, 5)
    r = nf.score(part)
    assert r["params"].tolist() == [zoo.PUBLISHED[n][1] for n in zoo.MODEL_NAMES[3:5]]


def test_space_sampling_is_seeded_and_uniform_support():
    space = zoo.ZooSpace()
    a = space.sample_columns(500, seed=7)["model"]
    b = space.sample_columns(500, seed=7)["model"]
    assert (a == b).all()
    assert set(a.tolist()) == set(zoo.MODEL_NAMES)
    # a chunk of the stream equals the same rows drawn at once
    assert (space.sample_columns(10, seed=7, start=20)["model"] == a[20:30]).all()
    batch = space.sample(50, seed=1)
    names = space.sample_columns(50, seed=1)["model"]
    r = nf.score(batch)
    assert r["params"].tolist() == [zoo.PUBLISHED[n][1] for n in names]


def test_space_encode_validates_and_round_trips():
    space = zoo.ZooSpace(resolution=160)
    cols = space.to_columns(["vgg11", "googlenet", "vgg11"])
    assert space.from_columns(cols) == ["vgg11", "googlenet", "vgg11"]
    batch = space.encode(["vgg11", "googlenet"])
    assert len(batch) == 2 and batch[0]["size_h"][0] == 160
    with pytest.raises(NativeError, match="candidate 1, field 'model': unknown model 'resnet9'"):
        space.encode(["resnet18", "resnet9"])
    with pytest.raises(NativeError, match="candidate 0"):
        space.encode([50])
    pa = pytest.importorskip("pyarrow")
    arr = space.arrow_columns(cols)["model"]
    assert arr.type == pa.string() and arr.to_pylist() == ["vgg11", "googlenet", "vgg11"]
    with pytest.raises(ValueError, match="resolution"):
        zoo.ZooSpace(resolution=0)


def test_decode_names_models_from_records():
    space = zoo.ZooSpace()
    cols = space.sample_columns(60, seed=4)
    assert space.decode(space.encode_columns(cols))["model"].tolist() == cols["model"].tolist()
    other = nf.SpecBatch.concat([space.encode(["alexnet"]), zoo.ZooSpace(resolution=192).encode(["alexnet"])])
    with pytest.raises(NativeError, match="candidate 1"):
        space.decode(other)


# -- names and call kinds, against torchvision 0.28 itself -------------------------------
# Permute (ConvNeXt) is a view with no record; every other leaf module has one.
_NO_RECORD = ("Permute",)
#: leaf modules whose record is the function their forward calls (unnamed)
_FUNCTION_RECORD = ("LayerNorm2d",)


def _torchvision_model(tv, name):
    """The torchvision model on the meta device (shapes only, no arithmetic)."""
    import torch
    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    if name.startswith("regnet"):     # computes its widths with tensors: build on the CPU
        return getattr(tv.models, name)(**kw).to("meta").eval()
    with torch.device("meta"):
        if name in _DEIT:             # DeiT is torchvision's VisionTransformer, narrower
            heads, dim = _DEIT[name]
            return tv.models.VisionTransformer(224, 16, 12, heads, dim, 4 * dim).eval()
        return getattr(tv.models, name)(**kw).eval()


#: DeiT (Touvron et al. 2021): heads and width of a 12-layer, patch-16 ViT
_DEIT = {"deit_tiny": (3, 192), "deit_small": (6, 384)}


def _leaf_calls(model):
    """Registered leaves and ``(name, output shape)`` of every leaf-module call, in order.

    ``nn.MultiheadAttention`` counts as a leaf: one record, as hook tools see
    the module (its ``out_proj`` only holds weights and is never called)."""
    import torch
    units = [n for n, m in model.named_modules() if isinstance(m, torch.nn.MultiheadAttention)]
    inside = tuple(u + "." for u in units)
    leaves = [(n, m) for n, m in model.named_modules()
              if (not list(m.children()) or n in units) and not n.startswith(inside)
              and type(m).__name__ not in _NO_RECORD + _FUNCTION_RECORD]
    calls = []

    def record(m, i, o, n):
        out = o[0] if isinstance(o, tuple) else o
        calls.append((n, tuple(out.shape[1:])))
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: record(m, i, o, n)) for n, m in leaves]
    with torch.no_grad():
        model(torch.empty(1, 3, 224, 224, device="meta"))
    for h in hooks:
        h.remove()
    return [n for n, _ in leaves], calls


def _fx_calls(model):
    """How many function, method and operator calls of each kind ``forward`` makes,
    in the tools' terms: ``torch.*`` functions are methods (ptflops patches
    ``torch.add`` and ``Tensor.add`` alike), ``torch.nn.functional`` ones functions.

    Leaf modules are leaves here too (their calls are held to the hooks above),
    except those whose records are the functions their ``forward`` calls
    (``_FUNCTION_RECORD``).  Shape arithmetic (``x.shape``, ``x.size()``,
    ``n_h * n_w``), what is computed from weights alone (MaxViT's
    relative-position bias gathered from its table, before it meets the
    activations) and unpacking a tuple (``x.chunk(2)``, ``torch.chunk``,
    ``nn.MultiheadAttention``'s output) compute nothing per input and are left out."""
    import collections
    import operator

    import torch
    import torch.fx

    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return super().is_leaf_module(m, qualname) or (
                not list(m.children()) and type(m).__name__ not in _FUNCTION_RECORD)
    kinds = collections.Counter()
    static = set()       # nodes holding sizes or weights (or computed from them), not activations
    for n in Tracer().trace(model).nodes:
        target = getattr(n.target, "__name__", n.target)
        inputs = n.all_input_nodes
        if n.op == "get_attr" or n.target in (getattr, "size") or (
                inputs and all(a in static for a in inputs)):
            static.add(n)
            continue
        if n.target is operator.getitem and isinstance(n.args[1], int) and (
                n.args[0].op == "call_module" or n.args[0].target in ("chunk", torch.chunk)):
            continue
        if n.op == "call_function" and getattr(operator, str(target), None) is n.target:
            kinds["operator", target] += 1
        elif n.op == "call_function" and getattr(torch, str(target), None) is n.target:
            kinds["method", target] += 1        # torch.cat, torch.flatten: as the tools see them
        elif n.op in ("call_function", "call_method"):
            kinds[n.op[5:], target] += 1
    return kinds


#: record (call kind, op) -> the call torchvision's forward makes, records per call
#: (and the call's kind where it differs from the record's)
_RECORD_CALLS = {
    ("operator", "add"): ("add", 1), ("operator", "mul"): ("mul", 1),
    ("operator", "scale"): ("mul", 1),
    ("method", "flatten"): ("flatten", 1),              # torch.flatten, x.flatten
    ("method", "concat"): ("cat", 1),                   # torch.cat
    ("function", "relu"): ("relu", 1),
    ("function", "adaptive_avgpool"): ("adaptive_avg_pool2d", 1),
    # shufflenetv2.channel_shuffle, a function: view, torch.transpose, contiguous, view
    ("function", "channel_shuffle"): ("transpose", 1, "method"),
    ("method", "mean"): ("mean", 1),
    ("function", "layernorm"): ("layer_norm", 1),       # ConvNeXt's LayerNorm2d
    ("method", "slice"): ("chunk", 2),
    # vision transformers: x.reshape(...).permute(...); torch.cat with the class token;
    # + pos_embedding; x[:, 0]
    ("method", "tokens"): ("reshape", 1), ("method", "prepend"): ("cat", 1),
    ("operator", "param_add"): ("add", 1), ("operator", "slice"): ("getitem", 1),
    # MaxViT's attention: q.reshape(...).permute(...) (and back) a record each; k * scale;
    # torch.einsum (invisible to the hook tools: an operator matmul); F.softmax
    ("method", "view_as"): ("reshape", 1), ("operator", "mul_const"): ("mul", 1),
    ("operator", "matmul"): ("einsum", 1, "method"), ("function", "softmax"): ("softmax", 1),
}
#: models whose forward calls torch.fx-wrapped functions (Swin's
#: shifted_window_attention and _patch_merging_pad): fx sees one opaque call
#: where the records hold what runs inside, so their call kinds are held to
#: the real tools instead (tests/test_transformers.py)
_FX_OPAQUE = ("swin_t", "swin_s", "swin_b")


@pytest.mark.parametrize("name", zoo.MODEL_NAMES)
def test_names_and_call_kinds_mirror_torchvision(name, torchvision):
    import collections
    model = _torchvision_model(torchvision, name)
    registered, calls = _leaf_calls(model)
    rec, names = zoo.build(name, with_names=True)
    t = nf.layer_table(rec)
    mine = [(names[i], (int(t["channels"][i]), int(t["height"][i]), int(t["width"][i])))
            for i in range(1, len(rec)) if rec["call"][i] == nf.Call.MODULE]
    # every module call, in order, by name, with its output shape (a 2-D output is
    # C x 1 x 1 here; ConvNeXt's channels-last tensors hold the same dimensions)
    assert [n for n, _ in mine] == [n for n, _ in calls]
    for (n, ours), (_, theirs) in zip(mine, calls):
        assert sorted(ours) == sorted(theirs + (1,) * (3 - len(theirs))), n
    assert all(names[i] == "" for i in range(len(rec)) if rec["call"][i] != nf.Call.MODULE)
    # the modules in registration order, those never called in eval mode included
    assert zoo.modules(name) == registered
    if name in _FX_OPAQUE:
        return
    # every function, method and operator call, by kind (a chained concat is one call;
    # the calls inside LayerNorm2d, which fx traces through, aside)
    fx = _fx_calls(model)
    counted = collections.Counter()
    for r in rec[1:]:
        kind = nf.Call(int(r["call"])).name.lower()
        if kind == "module" or (r["op"] == Op.CONCAT and r["flags"] & Flag.INPLACE):
            continue
        op = nf.Act(int(r["act"])).name.lower() if r["op"] == Op.ACT else nf.Op(int(r["op"])).name.lower()
        call, per, *fx_kind = _RECORD_CALLS[kind, op]
        if call == "chunk":       # x.chunk(k): k slices of one k-th of the channels each
            per = t["channels"][r["input0"]] // r["out_channels"]
        counted[(fx_kind or [kind])[0], call] += Fraction(1, int(per))
    assert counted == {k: v for k, v in fx.items() if k in counted or k[1] in
                       {c for c, *_ in _RECORD_CALLS.values()}}
