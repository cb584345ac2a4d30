"""The torch bridge: to_torch, from_torch, the hook counter and validate.

Every comparison is exact.  The hook counter never calls the core, so core ==
hooks on the same architecture checks both against the definitions; the
hand-computed figures below check the hook counter on its own.
"""
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import nasflops as nf  # noqa: E402
from tests.counting import core, shape_of, n_params  # noqa: E402
from nasflops.torch_bridge import (HOOK_CONVENTIONS, UnsupportedOpsError,  # noqa: E402
                                   count_with_hooks, from_torch, op_specs,
                                   random_specs, to_torch, validate)
from nasflops.torch_bridge import hooks as hooks_mod  # noqa: E402
from nasflops.cli import main as cli_main  # noqa: E402

CONVENTIONS = sorted(HOOK_CONVENTIONS)


pytestmark = pytest.mark.usefixtures("one_torch_thread")
OPS = op_specs()


# ------------------------------------------------------------------ to_torch
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_core_equals_hooks(name):
    """One layer of each op: params, every convention and every memory metric."""
    recs = OPS[name]
    model = to_torch(recs)
    assert n_params(model) == core(recs, "macs")["params"]
    out = model(torch.randn(2, *shape_of(recs)))
    table = nf.layer_table(recs)
    assert out[0].numel() == int(table["channels"][-1] * table["height"][-1] * table["width"][-1])
    for conv in CONVENTIONS:
        for n in (1, 3):
            got = count_with_hooks(model, shape_of(recs), conv, batch_size=n).as_dict()
            assert got == core(recs, conv, n), (name, conv, n)
    got = count_with_hooks(model, shape_of(recs), "flops", 2, weight_dtype="int8", act_dtype="fp16")
    assert got.as_dict() == core(recs, "flops", 2, weight_dtype="int8", act_dtype="fp16")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_round_trip(name):
    recs = OPS[name]
    spec = from_torch(to_torch(recs), shape_of(recs))
    for conv in ("flops", "thop", "ptflops"):
        assert core(spec, conv, 2) == core(recs, conv, 2), (name, conv)


def test_random_architectures_core_equals_hooks():
    batch = random_specs(24, seed=7)
    for i in range(len(batch)):
        recs = batch[i]
        model = to_torch(recs, init=False)
        assert n_params(model) == core(recs, "macs")["params"]
        # real tensors for some conventions, shapes-only (meta) for the rest
        for conv in CONVENTIONS:
            m = model if conv in ("flops", "ptflops") else to_torch(recs, device="meta")
            assert count_with_hooks(m, shape_of(recs), conv, batch_size=2).as_dict() == \
                core(recs, conv, 2), (i, conv)


def test_random_architectures_round_trip():
    batch = random_specs(24, seed=11)
    for i in range(len(batch)):
        recs = batch[i]
        spec = from_torch(to_torch(recs, device="meta"), shape_of(recs))
        for conv in ("flops", "fvcore"):
            assert core(spec, conv, 3) == core(recs, conv, 3), i


def test_hooks_by_hand():
    # conv 3->8, 3x3, padding 1, on 8x8, bias: MACs 8*8*8*27; flops 2*MAC - out + out
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    c = count_with_hooks(m, (3, 8, 8), "flops")
    out = 8 * 8 * 8
    assert c.macs == out * 27 == 13824
    assert c.ops == 2 * out * 27 + out == 28160
    assert c.params == 8 * 27 + 8
    # bytes: conv writes out, relu (not in place) writes out again
    assert c.act_bytes == 2 * out * 4
    assert c.read_bytes == (3 * 64 + 224) * 4 + out * 4
    # peak: input + conv output, then conv output + relu output
    assert c.peak_act_bytes == max(3 * 64 + out, 2 * out) * 4
    # in place: the relu allocates nothing
    c = count_with_hooks(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True)),
                         (3, 8, 8), "macs")
    assert c.peak_act_bytes == (3 * 64 + out) * 4 and c.act_bytes == 2 * out * 4


def test_to_torch_is_runnable_and_named_errors():
    net = nf.Net(3, 16, 16)
    x = net.conv(net.input, 8, 3, padding=1)
    net.linear(x, 10)  # linear on 16x16: invalid
    with pytest.raises(nf.SpecError, match="layer 2"):
        to_torch(net)
    with pytest.raises(ValueError, match="one architecture"):
        to_torch(random_specs(2))
    model = to_torch(random_specs(1, seed=3)[0], init=False)
    assert not model.training


# --------------------------------------------------------------- zoo, spaces
def _space(name, **kw):
    import nasflops.search_spaces as spaces
    return spaces.get_space(name, **kw)


def test_zoo_round_trip_and_hooks():
    from nasflops.search_spaces import vision_transformers, zoo as zoo_mod
    zoo = _space("zoo")
    batch = zoo.enumerate()
    cnns = [i for i, n in enumerate(zoo_mod.MODEL_NAMES) if n not in vision_transformers.MODELS]
    for i in cnns:      # the vision transformers: tests/test_transformers.py
        recs = batch[i]
        model = to_torch(recs, device="meta")
        spec = from_torch(model, shape_of(recs))
        assert core(spec, "flops") == core(recs, "flops"), i
        assert count_with_hooks(model, shape_of(recs), "flops").as_dict() == core(recs, "flops"), i


@pytest.mark.parametrize("space", ["nb201", "ofa-mbv3"])
def test_space_round_trip_and_hooks(space):
    sp = _space(space)
    batch = sp.sample(6, seed=1)
    for i in range(len(batch)):
        recs = batch[i]
        model = to_torch(recs, device="meta")
        spec = from_torch(model, shape_of(recs))
        for conv in ("flops", "ptflops"):
            assert core(spec, conv, 2) == core(recs, conv, 2), (space, i, conv)
            assert count_with_hooks(model, shape_of(recs), conv, 2).as_dict() == core(recs, conv, 2)


# ----------------------------------------------------------------- from_torch
class Functional(nn.Module):
    """Functional calls of every kind from_torch maps."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.se1 = nn.Conv2d(16, 4, 1)
        self.se2 = nn.Conv2d(4, 16, 1)
        self.gamma = nn.Parameter(torch.ones(16))
        self.beta = nn.Parameter(torch.zeros(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)), inplace=True)
        a, b = x.chunk(2, dim=1)
        b = torch.relu(self.dw(b))
        x = torch.cat([a, b], dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).contiguous().view(n, c, h, w)
        s = x.mean((2, 3), keepdim=True)
        s = torch.sigmoid(self.se2(F.silu(self.se1(s))))
        y = x * s
        y = y * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)
        y += x
        y = F.max_pool2d(y, 3, 2, 1)
        y = y[:, 4:12] + y[:, 0:8]
        y = F.adaptive_avg_pool2d(torch.cat((y, y), 1), 1)
        y = torch.flatten(y, 1)
        return F.softmax(self.fc(y), dim=1)


def test_from_torch_functional_model():
    model = Functional().eval()
    spec, names = from_torch(model, (3, 32, 32), return_names=True)
    ops = [nf.spec.op_name(o) for o in spec["op"]]
    # a chunk piece becomes a slice where it is first read; x.mean is a mean;
    # torch.flatten of N x C x 1 x 1 is the same tensor
    assert ops == ["input", "conv2d", "batchnorm", "act", "slice", "conv2d", "act", "slice",
                   "concat", "channel_shuffle", "mean", "conv2d", "act", "conv2d",
                   "act", "mul", "scale", "add", "maxpool", "slice", "slice", "add", "concat",
                   "adaptive_avgpool", "linear", "softmax"]
    assert spec["flags"][3] & nf.Flag.INPLACE and spec["flags"][17] & nf.Flag.INPLACE
    assert spec["flags"][16] & nf.Flag.BIAS
    # how each op is called, as the hook tools see it
    calls = [nf.Call(int(c)).name.lower()[:2] for c in spec["call"]]
    assert calls == ["mo", "mo", "mo", "fu", "me", "mo", "me", "me", "me", "me", "me", "mo",
                     "fu", "mo", "me", "op", "op", "op", "fu", "op", "op", "op", "me", "fu",
                     "mo", "fu"]
    assert names[:4] == ["input", "stem", "bn", ":relu"] and names[-2:] == ["fc", ":softmax"]
    assert core(spec, "macs")["params"] == n_params(model)
    # from_torch + core against the independent hook count of the same model
    for conv in CONVENTIONS:
        assert core(spec, conv, 2) == count_with_hooks(model, (3, 32, 32), conv, 2).as_dict(), conv


class Offenders(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.leaky = nn.LeakyReLU()
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        x = self.leaky(self.conv(x))
        x = torch.sin(x)
        x = x.transpose(2, 3)
        x = self.up(x)
        return x.sum(1)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()   # reused without weights: fine

    def forward(self, x):
        return self.relu(self.conv(self.relu(self.conv(x))))


def test_shared_weights_are_reported():
    with pytest.raises(UnsupportedOpsError, match="called 2 times with shared weights"):
        from_torch(Shared(), (4, 8, 8))
    # the hook counter follows torch: shared parameters count once
    assert count_with_hooks(Shared(), (4, 8, 8)).params == 4 * 4 * 9 + 4


def test_unsupported_ops_listed_together():
    with pytest.raises(UnsupportedOpsError) as err:
        from_torch(Offenders(), (3, 16, 16))
    # in execution order: the module path (or `path:callable` of a call), the
    # torch callable, the source line; x.transpose(2, 3) is only a new layout
    names = [o.name for o in err.value.offenders]
    assert names == ["leaky", ":sin", "up", ":sum"]
    assert [o.target for o in err.value.offenders] == ["nn.LeakyReLU", "torch.sin",
                                                        "nn.Upsample", "torch.Tensor.sum"]
    lines = [int(o.where.rsplit(":", 1)[1]) for o in err.value.offenders]
    assert all(o.where.startswith(__file__) for o in err.value.offenders)
    assert lines == sorted(lines) and len(set(lines)) == 4
    msg = str(err.value)
    assert "4 unsupported" in msg and "LeakyReLU" in msg and "sin" in msg and "Upsample" in msg
    assert "module_map" in msg.splitlines()[-1]
    with pytest.raises(UnsupportedOpsError) as err:
        count_with_hooks(Offenders(), (3, 16, 16))
    assert {"leaky", ":sin", "up", ":sum"} <= {o.name for o in err.value.offenders}


class Untraceable(nn.Module):
    def __init__(self, functional_between=False):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.functional_between = functional_between

    def forward(self, x):
        if x.sum() > -1e30:  # data-dependent: torch.fx cannot trace this
            x = self.act(self.conv(x))
        if self.functional_between:
            x = x * 2
        return self.pool(x)


def test_from_torch_runs_untraceable_code():
    # a data-dependent branch (torch.fx cannot trace it) just runs; its test,
    # x.sum() > ..., never reaches the output and is left out
    spec = from_torch(Untraceable(), (3, 8, 8))
    ops = [nf.spec.op_name(o) for o in spec["op"]]
    assert ops == ["input", "conv2d", "act", "adaptive_avgpool"]
    # code between modules is seen too: x * 2 is an arithmetic activation
    between = from_torch(Untraceable(functional_between=True), (3, 8, 8))
    assert [nf.spec.op_name(o) for o in between["op"]] == ops[:3] + ["act"] + ops[3:]
    assert nf.Act(int(between["act"][3])).name == "MUL_CONST"
    for conv in CONVENTIONS:
        got = count_with_hooks(Untraceable(), (3, 8, 8), conv, batch_size=2).as_dict()
        assert got == core(spec, conv, 2), conv
        got = count_with_hooks(Untraceable(True), (3, 8, 8), conv, batch_size=2).as_dict()
        assert got == core(between, conv, 2), conv


# ------------------------------------------------------------------ validate
def test_validate_report_and_cli(capsys):
    r = validate("random", samples=4, convention="flops", seed=2, batch_size=2)
    assert r.ok and r.n == 4 and r.worst is None
    assert all(v == 4 for v in r.agree.values())
    text = str(r)
    assert "all counts agree exactly" in text and "peak_act_bytes" in text
    assert cli_main(["validate", "random", "-n", "3", "-c", "thop", "--device", "meta"]) == 0
    assert "convention=thop" in capsys.readouterr().out
    r = validate(random_specs(5, seed=1), samples=2, convention="macs")
    assert r.n == 2 and r.ok


def test_validate_reports_a_mismatch(monkeypatch, capsys):
    # a deliberately wrong hook rule must be caught and named
    wrong = dict(HOOK_CONVENTIONS["macs"], conv=lambda f: f.mac + 1)
    monkeypatch.setitem(hooks_mod.HOOK_CONVENTIONS, "macs", wrong)
    r = validate(op_specs(), samples=None, convention="macs")
    assert not r.ok and r.worst["metric"] == "ops"
    assert r.worst["hooks"] == r.worst["core"] + 1
    assert "mismatch" in str(r)
    assert cli_main(["validate", "random", "-n", "2"]) == 1


def test_validate_rejects_unknown_convention():
    with pytest.raises(ValueError, match="count_with_hooks"):
        validate("random", samples=1, convention="nb201-unknown")


def test_nothing_else_imports_torch():
    import ast
    from pathlib import Path
    root = Path(nf.__file__).parent
    for path in root.rglob("*.py"):
        if "torch_bridge" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not any(n == "torch" or n.startswith("torch.") for n in names), path


@pytest.mark.parametrize("arch", [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|skip_connect~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|skip_connect~1|none~2|",
])
def test_from_torch_on_xautodl_nb201(arch):
    """NAS-Bench-201's own network (xautodl's TinyNetwork: `sum()` of edges,
    `x.mul(0.)` for none) translated by from_torch scores exactly as the nb201
    space's encoding of the same string, and as the hook counter measures it."""
    pytest.importorskip("xautodl")
    from xautodl.models.cell_infers.tiny_network import TinyNetwork
    from xautodl.models.cell_searchs.genotypes import Structure
    space = _space("nb201")
    net = TinyNetwork(16, 5, Structure.str2structure(arch), 10).eval()
    spec = from_torch(net, (3, 32, 32))
    ref = space.encode([arch])[0]
    assert core(spec, "macs")["params"] == n_params(net)
    for conv in CONVENTIONS:
        assert count_with_hooks(net, (3, 32, 32), conv).as_dict() == core(spec, conv), conv
        if conv != "ptflops":
            assert core(spec, conv) == core(ref, conv), conv
    # ptflops counts `x.mul(0.)` (it patches Tensor.mul), which the space's
    # encoding writes as a module: the translation agrees with the real tool
    ptflops = _ptflops()
    assert ptflops(net, (3, 32, 32)) == core(spec, "ptflops")["ops"]
    per_cell = 16 * 32 * 32 + 32 * 16 * 16 + 64 * 8 * 8    # one edge of a cell of each stage
    assert core(spec, "ptflops")["ops"] - core(ref, "ptflops")["ops"] == \
        arch.count("none") * 5 * per_cell


def _ptflops():
    """The real ptflops (it imports torchvision, which needs the test fixture's help)."""
    from tests.conftest import import_torchvision
    import_torchvision()
    pytest.importorskip("ptflops")
    from nasflops.torch_bridge.reference import ptflops_count
    return lambda m, s: ptflops_count(m, s)[0]


class ConvNeXtNorm(nn.Module):
    """torchvision's ConvNeXt style: LayerNorm2d as permute -> F.layer_norm ->
    permute, then a layer scale as a broadcast (C, 1, 1) parameter."""

    def __init__(self, c=8):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.weight, self.bias = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))
        self.gamma = nn.Parameter(torch.full((c, 1, 1), 1e-6))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        y = F.layer_norm(y, (y.shape[-1],), self.weight, self.bias, 1e-6)
        return x + y.permute(0, 3, 1, 2) * self.gamma


def test_functional_layer_norm_channels_last():
    model = ConvNeXtNorm().eval()
    spec = from_torch(model, (8, 14, 14))
    assert [nf.spec.op_name(o) for o in spec["op"]] == ["input", "conv2d", "layernorm", "scale",
                                                       "add"]
    assert spec["flags"][2] & nf.Flag.AFFINE
    assert core(spec, "macs")["params"] == n_params(model)
    for conv in CONVENTIONS:
        assert count_with_hooks(model, (8, 14, 14), conv, 2).as_dict() == core(spec, conv, 2), conv


def test_from_torch_on_ofa_subnets(ofa_importable):
    """Once-for-All's own subnets (its Hswish/Hsigmoid modules mapped, or
    translated as written, `x * F.relu6(x + 3.) / 6.`; SE's
    `x.mean(3, keepdim=True).mean(2, keepdim=True)` as two means) translate
    to records scoring exactly as the ofa-mbv3 space's encoding, memory
    included, and as the hook counter measures the subnet; under ptflops as
    the real ptflops counts it."""
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.utils.pytorch_modules import Hsigmoid, Hswish
    space = _space("ofa-mbv3")
    supernet = OFAMobileNetV3(width_mult=1.2, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                              depth_list=[2, 3, 4]).eval()
    mapping = {Hswish: "hardswish", Hsigmoid: "hardsigmoid"}
    ptflops = _ptflops()
    for nat in space.from_columns(space.sample_columns(2, seed=3)):
        supernet.set_active_subnet(ks=nat["ks"], e=nat["e"], d=nat["d"])
        subnet = supernet.get_active_subnet(preserve_weight=False).to("meta").eval()
        shape = (3, nat["r"], nat["r"])
        spec = from_torch(subnet, shape, module_map=mapping)
        written = from_torch(subnet, shape)      # Hswish traced through: fused back
        ref = space.encode([nat])[0]
        assert core(spec, "macs")["params"] == n_params(subnet)
        for conv in ("flops", "ofa"):
            assert core(spec, conv) == core(ref, conv) == core(written, conv), conv
            assert count_with_hooks(subnet, shape, conv, module_map=mapping).as_dict() == \
                core(ref, conv), conv
        assert count_with_hooks(subnet, shape, "ptflops").as_dict() == core(written, "ptflops")
        # ptflops on a CPU copy: on meta tensors torch decomposes a linear
        # layer into a (patched) torch.matmul, which ptflops counts again
        cpu = supernet.get_active_subnet(preserve_weight=False).eval()
        assert ptflops(cpu, shape) == core(written, "ptflops")["ops"]
    with pytest.raises(ValueError, match="module_map"):
        from_torch(subnet, shape, module_map={Hswish: "swish"})


@pytest.mark.parametrize("name", [s["name"] for s in nf.list_spaces()])
def test_validate_every_space_agrees_exactly(name):
    # the whole zoo (CNNs and vision transformers); a seeded sample of every
    # other space (language-model spaces: one forward pass of a 16-token
    # prompt); memory metrics included
    target, n, params = name, 4, {}
    if name == "zoo":
        from nasflops.search_spaces import zoo
        target, n = zoo.ZooSpace().encode(list(zoo.MODEL_NAMES)), len(zoo.MODEL_NAMES)
    elif any(s["name"] == name and "phase" in s for s in nf.list_spaces()):
        params = {"seq_len": 16}
    report = validate(target, samples=n, convention="flops", seed=0, batch_size=2, device="meta",
                      space_params=params)
    assert report.ok, str(report)
    assert report.n == n and not report.mismatches


def test_counting_and_tracing_restore_training_mode():
    import torch.nn as tnn
    m = tnn.Sequential(tnn.Conv2d(3, 4, 3), tnn.BatchNorm2d(4), tnn.Dropout())
    m.train()
    count_with_hooks(m, (3, 8, 8), "macs")
    assert m.training and all(c.training for c in m)
    from_torch(m, (3, 8, 8))
    assert m.training
    m.eval()
    from_torch(m, (3, 8, 8))
    assert not m.training


# ------------------------------------------------- runs, errors, einops
def test_from_torch_runs_the_model_once():
    m = Functional().eval()
    calls = []
    h = m.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        from_torch(m, (3, 32, 32))
        count_with_hooks(m, (3, 32, 32), ["flops", "thop"])
    finally:
        h.remove()
    assert calls == [1, 1]


class Repeated(nn.Module):
    """One unsupported construct met at every block, a rank-3 layer norm."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(4, 4, 3, padding=1) for _ in range(3))
        self.norm = nn.LayerNorm(6)

    def forward(self, x):
        for conv in self.convs:
            x = torch.erf(conv(x))          # one line, three calls
        return self.norm(x.mean(3))         # N x C x H: normalised over H


def test_errors_name_each_construct_once():
    with pytest.raises(UnsupportedOpsError) as err:
        from_torch(Repeated(), (4, 6, 6))
    erf, norm = err.value.offenders
    assert erf.target == "torch.erf" and erf.count == 3 and erf.name == ":erf"
    assert norm.target == "nn.LayerNorm" and norm.name == "norm"
    assert "rank-3 tensor (1, 4, 6)" in norm.reason and "N x C x H" in norm.reason
    lines = str(err.value).splitlines()
    assert lines[0] == "cannot translate Repeated: 2 unsupported constructs:"
    assert "(3 calls)" in lines[1] and "module_map=" in lines[-1]
    with pytest.raises(ValueError, match="module_map"):
        from_torch(Repeated(), (4, 6, 6), module_map={nn.LayerNorm: "layernorm"})


def test_einops_translates():
    einops = pytest.importorskip("einops")
    from einops.layers.torch import Rearrange

    class Mixer(nn.Module):
        def __init__(self, c=8):
            super().__init__()
            self.conv = nn.Conv2d(3, c, 3, padding=1)
            self.to_last = Rearrange("b c h w -> b h w c")
            self.norm, self.mlp = nn.LayerNorm(c), nn.Linear(c, c)

        def forward(self, x):
            y = self.mlp(self.norm(self.to_last(self.conv(x))))     # channels-last
            y = einops.rearrange(y, "b h w c -> b c h w")
            return einops.reduce(y, "b c h w -> b c", "mean")

    model = Mixer().eval()
    spec = from_torch(model, (3, 8, 8))
    assert [nf.spec.op_name(o) for o in spec["op"]] == ["input", "conv2d", "layernorm", "conv2d",
                                                       "mean"]
    for conv in CONVENTIONS:
        assert count_with_hooks(model, (3, 8, 8), conv, 2).as_dict() == core(spec, conv, 2), conv
