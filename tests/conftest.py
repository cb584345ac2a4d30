"""Shared test helpers."""
import importlib.util
import sys
import types

import pytest

_TORCHVISION_LIB = []    # keeps the schema library alive for the session


def import_torchvision():
    """The real torchvision (0.28, a CUDA build) on the CPU torch, or None.

    Its meta registrations expect two kernel-less op schemas that the CPU
    torch does not define; defining them first is enough for the model
    constructors, which are all the tests use.  Tests only, never the library.
    """
    if importlib.util.find_spec("torchvision") is None:
        return None
    mod = sys.modules.get("torchvision")
    if mod is not None:
        return None if getattr(mod, "_nasflops_stub", False) else mod
    import torch
    if not _TORCHVISION_LIB:
        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_LIB.append(lib)
    import torchvision
    return torchvision


def pytest_configure(config):
    # ptflops imports torchvision.ops at import time: the schemas must exist
    # before any test (or reference tool) imports it
    if importlib.util.find_spec("torch") is not None:
        import_torchvision()


@pytest.fixture(scope="session")
def torchvision():
    """torchvision's model constructors (skipped when torchvision is absent)."""
    pytest.importorskip("torch")
    tv = import_torchvision()
    if tv is None:
        pytest.skip("torchvision is not installed (make test installs it)")
    return tv


@pytest.fixture(scope="session")
def ofa_importable():
    """Make the ``ofa`` package importable without gdown (and, where
    torchvision is absent, without it too).

    ``ofa`` imports both at import time for its data loaders and model zoo,
    which the network code never uses: small stand-ins with the attributes
    touched at import are enough.
    """
    pytest.importorskip("torch")
    if import_torchvision() is None and "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tr = types.ModuleType("torchvision.transforms")
        fn = types.ModuleType("torchvision.transforms.functional")
        ds = types.ModuleType("torchvision.datasets")

        class _Transform:  # base classes ofa subclasses at import
            def __init__(self, *a, **k):
                pass

        tr.RandomResizedCrop = tr.RandomCrop = _Transform
        tr.functional, tv.transforms, tv.datasets = fn, tr, ds
        tv._nasflops_stub = True
        sys.modules.update({"torchvision": tv, "torchvision.transforms": tr,
                            "torchvision.transforms.functional": fn,
                            "torchvision.datasets": ds})
    sys.modules.setdefault("gdown", types.ModuleType("gdown"))
    return pytest.importorskip("ofa")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one torch thread, and the machine is shared."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
