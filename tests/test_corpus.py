"""from_torch on third-party model files (tests/corpus: CIFAR models, MobileNetV3,
GhostNet, MnasNet, ShuffleNets, DARTS genotype networks, RepVGG, ConvNeXt,
EfficientNet), each checked against the real tools run on the same model:
thop, ptflops, fvcore and torch's FlopCounterMode give exactly the totals of
the conventions of the same name; count_with_hooks agrees on every
convention and memory metric; params reconcile with sum(p.numel())."""
import warnings

import pytest

torch = pytest.importorskip("torch")

import nasflops as nf  # noqa: E402
from tests.counting import core  # noqa: E402
from nasflops.torch_bridge import (UnsupportedOpsError, UnusedParametersWarning,  # noqa: E402
                                   count_with_hooks, from_torch, translate)
from tests import corpus  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRANSLATED = [n for n in corpus.NAMES if n not in corpus.UNSUPPORTED]
HOOKS = ["macs", "flops", "fma2", "thop", "ptflops", "fvcore"]


@pytest.fixture(scope="module")
def tools(torchvision):
    """The real tools (ptflops imports torchvision.ops: the fixture first)."""
    pytest.importorskip("thop")
    pytest.importorskip("ptflops")
    pytest.importorskip("fvcore")
    from nasflops.torch_bridge import reference
    return reference


@pytest.mark.parametrize("name", TRANSLATED)
def test_translation_matches_the_real_tools(name, tools):
    model, shape = corpus.build(name)
    t = translate(model, shape)
    assert t.params_run + sum(n for _, n in t.unused) == t.params_total == \
        sum(p.numel() for p in model.parameters())
    assert core(t.records, "macs")["params"] == t.params_run
    assert tools.thop_count(model, shape)[0] == core(t.records, "thop")["ops"]
    assert tools.ptflops_count(model, shape)[0] == core(t.records, "ptflops")["ops"]
    assert tools.fvcore_count(model, shape) == core(t.records, "fvcore")["ops"]
    fma2 = tools.flop_counter_count(model, shape)
    assert fma2 == core(t.records, "fma2")["ops"] == 2 * core(t.records, "macs")["ops"]
    # the independent counter, from the same kind of run: every metric at batch 2
    hooks = count_with_hooks(model, shape, HOOKS, batch_size=2)
    for conv in HOOKS:
        want = core(t.records, conv, 2)
        want["params"], want["weight_bytes"] = t.params_total, 4 * t.params_total
        assert hooks[conv].as_dict() == want, conv


def test_unused_modules_are_reported():
    # DARTS builds its auxiliary head (train.py --auxiliary), which runs only
    # in training mode; kuangliu's EfficientNet builds an expansion conv that
    # its first block (expansion 1) skips
    model, shape = corpus.build("darts_v2_cifar")
    with pytest.warns(UnusedParametersWarning, match="auxiliary_head") as w:
        recs = from_torch(model, shape)
    aux = sum(p.numel() for p in model.auxiliary_head.parameters())
    assert f"{aux:,} of" in str(w[0].message)
    t = translate(model, shape)
    assert t.unused == [("auxiliary_head", aux)]
    assert core(recs, "macs")["params"] == t.params_run == t.params_total - aux
    model, shape = corpus.build("kl_efficientnet_b0")
    t = translate(model, shape)
    assert [name for name, _ in t.unused] == ["layers.0.conv1", "layers.0.bn1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_torch(*corpus.build("kl_resnet18"))   # nothing unused: no warning


def test_unsupported_model_names_its_first_gap():
    pytest.importorskip("einops")
    model, shape = corpus.build("lucidrains_mobilevit_xxs")
    # MobileViT translates (einops' rearranges, attention); a softmin in place
    # of each attention's softmax does not
    for m in list(model.modules()):
        for key, child in m._modules.items():
            if isinstance(child, torch.nn.Softmax):
                m._modules[key] = torch.nn.Softmin(dim=-1)
    with pytest.raises(UnsupportedOpsError) as err:
        from_torch(model, shape)
    first = err.value.offenders[0]
    # the module, where it is called, in which module
    assert first.name.startswith("trunk.") and first.target == "nn.Softmin"
    assert first.where.startswith(str(corpus.HERE / "lucidrains_mobilevit_xxs.py"))
    assert first.reason == "nasflops has no op for it"
    lines = str(err.value).splitlines()
    assert "MobileViT" in lines[0] and "trunk." in lines[1] and "module_map" in lines[-1]
