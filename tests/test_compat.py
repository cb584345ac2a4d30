"""The thop / ptflops / fvcore / fma2 conventions against the real tools.

The tools run (as their READMEs show) on models built by ``to_torch``: one
per op and flag under every call kind torch can spell (a module, a function,
a tensor method, an operator: each tool sees them differently), a seeded
sample of random architectures with random call kinds, samples of the
spaces, and the zoo's records.  Their totals must equal the core's under the
matching convention exactly.  Real torchvision models and third-party model
files are in tests/test_torchvision.py and tests/test_corpus.py.  See
docs/conventions.md for what each tool counts.
"""
import pytest

torch = pytest.importorskip("torch")
from tests.conftest import import_torchvision  # noqa: E402

# ptflops imports torchvision as it loads; torchvision 0.28 needs its two
# kernel-less schemas defined on the CPU torch first (tests/conftest.py)
import_torchvision()
pytest.importorskip("thop")
pytest.importorskip("ptflops")
pytest.importorskip("fvcore")

import nasflops as nf  # noqa: E402
from tests.counting import shape_of  # noqa: E402
from nasflops.torch_bridge import op_specs, random_specs, spellable, to_torch  # noqa: E402
from nasflops.torch_bridge.reference import (flop_counter_count, fvcore_count,  # noqa: E402
                                             ptflops_count, thop_count)

OPS = op_specs()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ops(spec, convention, batch_size=1):
    return int(nf.score(spec, convention=convention, batch_size=batch_size)["ops"][0])


def params(spec):
    return int(nf.score(spec)["params"][0])


def check(recs, batch_sizes=(1, 2)):
    """Every tool on one architecture; ptflops only counts batch 1."""
    s = shape_of(recs)
    model = to_torch(recs)
    macs, p = ptflops_count(model, s)
    assert macs == ops(recs, "ptflops")
    assert p == params(recs)
    for n in batch_sizes:
        assert thop_count(model, s, n)[0] == ops(recs, "thop", n), ("thop", n)
        assert fvcore_count(model, s, n) == ops(recs, "fvcore", n), ("fvcore", n)
        assert flop_counter_count(model, s, n) == ops(recs, "fma2", n), ("fma2", n)


def with_call(recs, call):
    """The same architecture, every op called as ``call``; None when torch
    cannot spell one of them that way (an in-place GELU as a function)."""
    out = recs.copy()
    out["call"][1:] = int(call)
    return out if all(spellable(r) for r in out[1:]) else None


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_every_call(name):
    spelled = [c for c in nf.Call if with_call(OPS[name], c) is not None]
    assert nf.Call.MODULE in spelled        # every op has a module spelling
    for call in spelled:
        check(with_call(OPS[name], call))


def test_random_architectures():
    batch = random_specs(16, seed=2024)
    assert len({int(c) for c in batch.records["call"]}) == len(nf.Call)
    for i in range(len(batch)):
        check(batch[i], batch_sizes=(1,) if i % 2 else (3,))


def _space(name):
    import nasflops.search_spaces as ss
    return ss.get_space(name)


@pytest.mark.parametrize("space,n", [("nb201", 3), ("ofa-mbv3", 2)])
def test_space_samples(space, n):
    batch = _space(space).sample(n, seed=5)
    for i in range(len(batch)):
        check(batch[i], batch_sizes=(1,))


@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "mobilenet_v3_small",
                                   "efficientnet_b0", "densenet121", "shufflenet_v2_x1_0",
                                   "squeezenet1_0", "googlenet", "regnet_y_400mf",
                                   "convnext_tiny"])
def test_zoo_models(model):
    batch = _space("zoo").encode([model])
    check(batch[0], batch_sizes=(1,))


def test_thop_uneven_adaptive_pool_quirk():
    """thop sizes an adaptive window in floats, Hin/Ho * Win/Wo, and truncates
    the total: for uneven sizes it can land one below the exact in + out that
    the nasflops row counts (documented in docs/conventions.md)."""
    net = nf.Net(1, 8, 8)
    net.adaptive_avgpool(net.input, 7)
    exact = 8 * 8 + 7 * 7   # in + out elements
    assert ops(net.records, "thop") == exact
    assert thop_count(to_torch(net), (1, 8, 8))[0] == exact - 1


def test_ptflops_left_aligned_broadcast_quirk():
    """ptflops' torch.mul/torch.add counter aligns shapes from the left: x.mul(w)
    with a per-channel w of lower rank (C x 1 x 1) counts C times the
    product.  The ptflops row counts the product, as ptflops does for a w of
    the input's rank (what to_torch writes; documented in docs/conventions.md)."""
    import torch.nn as nn

    class Layer(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.w = nn.Parameter(torch.ones(shape))

        def forward(self, x):
            return x.mul(self.w)
    out = 4 * 5 * 5
    assert ptflops_count(Layer((1, 4, 1, 1)), (4, 5, 5))[0] == out
    assert ptflops_count(Layer((4, 1, 1)), (4, 5, 5))[0] == 4 * out


# ------------------------------------------ real-world spellings, real tools
class _Fn(torch.nn.Module):
    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for k, m in children.items():
            setattr(self, k, m)

    def forward(self, x):
        return self.fn(self, x)


def _written_activations():
    """Hard-sigmoid, hard-swish and swish as model code writes them."""
    F = torch.nn.functional
    relu6 = torch.nn.ReLU6()
    return {
        "F.relu6(x + 3.) / 6.": ("hardsigmoid", lambda s, x: F.relu6(x + 3.) / 6.),
        "nn.ReLU6()(x + 3) / 6": ("hardsigmoid", lambda s, x: s.r(x + 3) / 6),
        "torch.clamp(x + 3, 0, 6) / 6": ("hardsigmoid", lambda s, x: torch.clamp(x + 3, 0, 6) / 6),
        "F.hardtanh(x + 3., 0., 6.) * (1 / 6)": ("hardsigmoid",
                                               lambda s, x: F.hardtanh(x + 3., 0., 6.) * (1 / 6)),
        "x * F.relu6(x + 3.) / 6.": ("hardswish", lambda s, x: x * F.relu6(x + 3.) / 6.),
        "x * (F.relu6(x + 3., inplace=True) / 6.)": (
            "hardswish", lambda s, x: x * (F.relu6(x + 3., inplace=True) / 6.)),
        "x * nn.Hardsigmoid()(x)": ("hardswish", lambda s, x: x * torch.nn.Hardsigmoid()(x)),
        "x.add(3.).clamp_(0., 6.).div_(6.) (ptflops sees add)": (
            None, lambda s, x: x.add(3.).clamp_(0., 6.).div_(6.)),
        "x * torch.sigmoid(x)": ("silu", lambda s, x: x * torch.sigmoid(x)),
    }, relu6


@pytest.mark.parametrize("spelling", sorted(_written_activations()[0]))
def test_written_out_activations(spelling):
    """Written-out activations translate to one activation record that costs
    what the module costs under nasflops' conventions, and exactly what each
    tool counts for the code as written."""
    from nasflops.torch_bridge import from_torch
    table, relu6 = _written_activations()
    kind, fn = table[spelling]
    model = _Fn(fn, r=relu6).eval()
    s = (8, 6, 6)
    spec = from_torch(model, s)
    if kind is not None:      # one activation, as cheap as the module
        assert [nf.spec.op_name(o) for o in spec["op"]] == ["input", "act"]
        assert nf.Act(int(spec["act"][1])).name.lower() == kind
        assert ops(spec, "flops") == 8 * 6 * 6
    assert ptflops_count(model, s)[0] == ops(spec, "ptflops")
    assert thop_count(model, s)[0] == ops(spec, "thop")
    assert fvcore_count(model, s) == ops(spec, "fvcore")


class Constructs(torch.nn.Module):
    """The constructs real code uses that an fx trace or an op table misses:
    spatial and strided slicing, padding, arithmetic with constants, chained
    and channel means, cat on height and width, einops, `int(x.size(1) * r)`,
    shape asserts, a module built but never called."""

    def __init__(self, c=8):
        super().__init__()
        nn = torch.nn
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.reduce1 = nn.Conv2d(c, c // 2, 1, stride=2, bias=False)
        self.reduce2 = nn.Conv2d(c, c // 2, 1, stride=2, bias=False)
        self.pad = nn.ZeroPad2d((0, 1, 0, 1))
        self.unused = nn.Conv2d(c, c, 1)
        self.fc = nn.Linear(c // 2, 10)

    def forward(self, x):
        F = torch.nn.functional
        assert x.dim() == 4 and x.shape[1] % 2 == 0
        y = F.relu(self.conv(x))
        half = int(y.size(1) * 0.5)
        # DARTS' FactorizedReduce: one conv on x, one on x shifted by a pixel
        r = torch.cat([self.reduce1(y), self.reduce2(y[:, :, 1:, 1:])], dim=1)
        u = F.pad(r, (1, 1, 1, 1))[:, :, 1:-1, 1:-1] * 0.5 - 1.
        u = torch.cat([u[:, :half], u[:, half:]], dim=1) + r
        v = (u - u.mean(1, keepdim=True)) / (u.pow(2).mean(1, keepdim=True) + 1e-5).sqrt()
        w = torch.cat([v, v], dim=2)[:, ::2]
        w = torch.cat([w, self.pad(w)[..., :-1, :-1]], dim=3)
        z = w.mean(3).mean(2)                                # chained means
        return self.fc(z.reshape(z.shape[0], -1)).clamp(min=-3., max=3.)


def test_real_world_constructs():
    from nasflops.torch_bridge import translate
    model = Constructs().eval()
    t = translate(model, (8, 12, 12))
    ops_used = {nf.spec.op_name(o) for o in t.records["op"]}
    assert {"crop", "pad", "sub", "div", "mean", "concat", "slice"} <= ops_used
    assert {int(a) for a in t.records["act"][t.records["op"] == nf.Op.ACT]} >= {
        int(nf.Act.MUL_CONST), int(nf.Act.SUB_CONST), int(nf.Act.ADD_CONST),
        int(nf.Act.POW_CONST), int(nf.Act.SQRT), int(nf.Act.CLAMP)}
    assert t.unused == [("unused", 8 * 8 + 8)]
    for tool, count in (("thop", thop_count(model, (8, 12, 12))[0]),
                        ("ptflops", ptflops_count(model, (8, 12, 12))[0]),
                        ("fvcore", fvcore_count(model, (8, 12, 12))),
                        ("fma2", flop_counter_count(model, (8, 12, 12)))):
        assert ops(t.records, tool) == count, tool
