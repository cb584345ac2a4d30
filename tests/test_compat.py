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

import_torchvision()      # ptflops imports torchvision.ops when it loads
pytest.importorskip("thop")
pytest.importorskip("ptflops")
pytest.importorskip("fvcore")

import nasflops as nf  # noqa: E402
from nasflops.torch_bridge import op_specs, random_specs, spellable, to_torch  # noqa: E402
from nasflops.torch_bridge.reference import (flop_counter_count, fvcore_count,  # noqa: E402
                                             ptflops_count, thop_count)

OPS = op_specs()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ops(spec, convention, batch_size=1):
    return int(nf.score(spec, convention=convention, batch_size=batch_size)["ops"][0])


def params(spec):
    return int(nf.score(spec)["params"][0])


def shape_of(recs):
    return int(recs[0]["out_channels"]), int(recs[0]["size_h"]), int(recs[0]["size_w"])


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
