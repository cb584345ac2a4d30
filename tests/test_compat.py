"""The thop / ptflops / fvcore conventions against the real tools.

The tools run (as their READMEs show) on models built by ``to_torch``: one
per op and flag, a seeded sample of random architectures, and zoo/space
models when those spaces exist.  Their totals must equal the core's under the
matching convention exactly.  See docs/conventions.md for what each counts.
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
from nasflops.torch_bridge import op_specs, random_specs, to_torch  # noqa: E402
from nasflops.torch_bridge.reference import fvcore_count, ptflops_count, thop_count  # noqa: E402

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


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op(name):
    check(OPS[name])


def test_random_architectures():
    batch = random_specs(16, seed=2024)
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
