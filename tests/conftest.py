"""Shared test helpers."""
import sys
import types

import pytest


@pytest.fixture(scope="session")
def ofa_importable():
    """Make the ``ofa`` package importable without torchvision and gdown.

    ``ofa`` imports both at import time for its data loaders and model zoo,
    which the network code never uses: small stand-ins with the attributes
    touched at import are enough (torchvision has no CPU build here).
    """
    pytest.importorskip("torch")
    if "torchvision" not in sys.modules:
        tv = types.ModuleType("torchvision")
        tr = types.ModuleType("torchvision.transforms")
        fn = types.ModuleType("torchvision.transforms.functional")
        ds = types.ModuleType("torchvision.datasets")

        class _Transform:  # base classes ofa subclasses at import
            def __init__(self, *a, **k):
                pass

        tr.RandomResizedCrop = tr.RandomCrop = _Transform
        tr.functional, tv.transforms, tv.datasets = fn, tr, ds
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
