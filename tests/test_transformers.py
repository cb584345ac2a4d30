"""Vision transformers against the real torchvision models and the real tools.

The zoo's specs (``search_spaces/vision_transformers.py``) must give, under
the ``thop``, ``ptflops`` and ``fvcore`` conventions, exactly what those
tools print for torchvision 0.28's own modules, and under ``macs`` the
figure torchvision publishes; ``params`` must be ``sum(p.numel())``.  Why
the tools disagree with each other is docs/conventions.md, "Transformers".
MaxViT's ``torch.einsum`` is the one place fvcore rounds (its einsum handle
reads numpy's printed FLOP estimate): there its count is derived from the
records and every other op is held exact.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from tests.conftest import import_torchvision  # noqa: E402

tv = import_torchvision()
if tv is None:
    pytest.skip("torchvision is not installed", allow_module_level=True)
pytest.importorskip("thop")
pytest.importorskip("ptflops")
pytest.importorskip("fvcore")

import nasflops as nf  # noqa: E402
from nasflops.search_spaces import vision_transformers as vits  # noqa: E402
from nasflops.search_spaces import zoo  # noqa: E402
from nasflops.torch_bridge.reference import fvcore_count, ptflops_count, thop_count  # noqa: E402

#: DeiT (Touvron et al. 2021) is torchvision's VisionTransformer, narrower:
#: (heads, width) of a 12-layer, patch-16 ViT at 224
DEIT = {"deit_tiny": (3, 192), "deit_small": (6, 384)}


def torchvision_model(name):
    torch.manual_seed(0)
    if name in DEIT:
        heads, dim = DEIT[name]
        return tv.models.VisionTransformer(224, 16, 12, heads, dim, 4 * dim).eval()
    return getattr(tv.models, name)().eval()


def ops(name, convention):
    return int(nf.score(zoo.build(name), convention=convention)["ops"][0])


# deit_tiny: odd heads, never the fused path; deit_small and vit_b_32: the
# fused path exists (even heads); vit_b_16: the headline model; swin_t:
# functional linears, Tensor.matmul, windows, shifts and patch merging
@pytest.mark.parametrize("name", ["deit_tiny", "deit_small", "vit_b_32", "vit_b_16", "swin_t"])
def test_real_tools_on_real_torchvision_models(name):
    model = torchvision_model(name)
    shape = (3, 224, 224)
    true_params = sum(p.numel() for p in model.parameters())
    assert int(nf.score(zoo.build(name))["params"][0]) == true_params
    macs, ptflops_params = ptflops_count(model, shape)
    assert macs == ops(name, "ptflops")
    assert ptflops_params == true_params
    assert thop_count(model, shape)[0] == ops(name, "thop")
    # fvcore with autograd on (its default): under no_grad, nn.MultiheadAttention's
    # fast path hides the projections from it (docs/conventions.md)
    assert torch.is_grad_enabled()
    assert fvcore_count(model, shape) == ops(name, "fvcore")


@pytest.mark.parametrize("name", [n for n, (gmacs, _) in vits.PUBLISHED.items() if gmacs])
def test_macs_are_torchvisions_published_figures(name):
    """torchvision's weights metadata: ``_ops`` (GFLOPS, which are GMACs) to 3
    decimals and ``num_params`` exactly."""
    weights = tv.models.get_model_weights(name).DEFAULT
    r = nf.score(zoo.build(name), convention="macs")
    assert f"{int(r['macs'][0]) / 1e9:.3f}" == f"{weights.meta['_ops']:.3f}"
    assert int(r["params"][0]) == weights.meta["num_params"]


def test_math_attention_counts_what_torchvision_published():
    """torchvision's counter (one per MAC of mm/addmm/bmm/convolution) sees the
    two attention products only when attention runs as matrix products: with
    the math backend, ``FlopCounterMode`` gives exactly 2 x ``macs``."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode
    model = torchvision_model("deit_tiny")
    counter = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), counter:
        model(torch.randn(1, 3, 224, 224))
    assert counter.get_total_flops() == ops("deit_tiny", "fma2") == 2 * ops("deit_tiny", "macs")


# -- MaxViT-T: MBConv + window and grid attention, torch.einsum -------------------------
@pytest.fixture(scope="module")
def maxvit():
    """torchvision's ``maxvit_t`` (eval, CPU), built once for this module."""
    return torchvision_model("maxvit_t")


def fvcore_einsum(groups, m, k, n):
    """What fvcore 0.1.5's ``einsum_flop_jit`` counts for a batched product
    ``(groups, m, k) x (groups, k, n)`` written with any einsum equation but its
    two 3-D special cases (MaxViT's are 5-D): numpy's ``einsum_path``
    "Optimized FLOP count" (2 per multiply-add here), *printed* with ``%.3e``,
    parsed back, halved and floored -- a 4-significant-digit rounding."""
    path = np.einsum_path("gmk,gnk->gmn", np.zeros((groups, m, k)), np.zeros((groups, n, k)),
                          optimize="optimal")[1]
    line = next(x for x in path.split("\n") if "optimized flop" in x.lower())
    return int(np.floor(float(line.split(":")[-1]) / 2))


def test_maxvit_t_on_the_real_tools(maxvit):
    """thop and ptflops see no ``torch.einsum`` (an operator matmul: 0), ptflops
    sees ``F.softmax`` and the SiLU/GELU modules, thop the norms and pools;
    FlopCounterMode counts the einsums as the ``bmm`` s they run as."""
    from torch.utils.flop_counter import FlopCounterMode
    shape = (3, 224, 224)
    true_params = sum(p.numel() for p in maxvit.parameters())
    assert int(nf.score(zoo.build("maxvit_t"))["params"][0]) == true_params
    macs, ptflops_params = ptflops_count(maxvit, shape)
    assert (macs, ptflops_params) == (ops("maxvit_t", "ptflops"), true_params)
    # thop counts parameters of modules it has a rule for: not the relative-position
    # bias tables, which RelativePositionalMultiHeadAttention holds itself
    t = nf.layer_table(zoo.build("maxvit_t"))
    tables = int(t[t["op"] == "param_add"]["params"].sum())
    assert thop_count(maxvit, shape) == (ops("maxvit_t", "thop"), true_params - tables)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        maxvit(torch.randn(1, *shape))
    assert counter.get_total_flops() == ops("maxvit_t", "fma2") == 2 * ops("maxvit_t", "macs")


def test_maxvit_t_fvcore_exact_but_its_einsum_rounding(maxvit):
    """fvcore counts every op of MaxViT-T as the ``fvcore`` convention does,
    except ``aten::einsum``, which it rounds (:func:`fvcore_einsum`): a rounding
    of each product's own count that no per-element convention can express.
    Its einsum total is derived from the matmul records, exactly."""
    from fvcore.nn import FlopCountAnalysis
    fca = FlopCountAnalysis(maxvit, torch.randn(1, 3, 224, 224))
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    fca.tracer_warnings("none")
    by_op = fca.by_operator()
    t = nf.layer_table(zoo.build("maxvit_t"))
    mm = t[t["op"] == "matmul"]
    inner = [int(c) // (int(g) * int(h) * int(w)) for c, g, h, w in
             zip(mm["macs"], mm["groups"], mm["height"], mm["width"])]
    exact = int(mm["macs"].sum())
    rounded = sum(fvcore_einsum(int(g), int(h), k, int(w))
                  for g, h, k, w in zip(mm["groups"], mm["height"], inner, mm["width"]))
    assert by_op["einsum"] == rounded != exact
    assert int(fca.total()) - rounded == ops("maxvit_t", "fvcore") - exact


@pytest.mark.parametrize("resolution", [220, 221, 448])
def test_maxvit_t_resolutions_as_torchvision(resolution):
    """``maxvit_t(input_size=(r, r))`` is refused where a stage grid is not a
    multiple of 7 (220: 55 x 55), accepted otherwise, odd sides included
    (221: the stem gives 111, then 56); where accepted, FlopCounterMode on the
    meta device gives ``fma2`` of the zoo's records at that resolution."""
    from torch.utils.flop_counter import FlopCounterMode
    try:
        with torch.device("meta"):
            model = tv.models.maxvit_t(input_size=(resolution, resolution)).eval()
    except ValueError:
        with pytest.raises(ValueError, match=f"maxvit_t: resolution {resolution} gives"):
            zoo.build("maxvit_t", resolution=resolution)
        return
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, resolution, resolution, device="meta"))
    r = nf.score(zoo.build("maxvit_t", resolution=resolution), convention="fma2")
    assert counter.get_total_flops() == int(r["ops"][0])
    assert int(r["params"][0]) == sum(p.numel() for p in model.parameters())
