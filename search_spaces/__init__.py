"""Published NAS search spaces as spec batches: the registry.

``get_space(name, **params)`` builds a space; ``list_spaces()`` describes
them all.  The shipped spaces are the modules and YAML files of this
directory (``search_spaces/`` at the repository root, installed as
``nasflops.search_spaces``):

==================  ================================================  ========================
name                what                                              defined in
==================  ================================================  ========================
``nb201``           NAS-Bench-201's 15,625 cells                      ``nb201.py``
``zoo``             torchvision's ImageNet classifiers                ``zoo.py``
``autoformer-*``    AutoFormer's supernets T, S, B (ViT subnets)      ``autoformer.py``
``ofa-mbv3``        Once-for-All MobileNetV3                          ``ofa_mbv3.yaml``
``proxylessnas-*``  the ProxylessNAS space at three published widths  ``proxylessnas_*.yaml``
``llm``             Llama-style decoders (depth, width, GQA, FFN)     ``llm.yaml``
``llm-moe``         Mixtral-style decoders (experts, top-k)           ``llm_moe.yaml``
==================  ================================================  ========================

The language-model spaces (``lm_space.py``, ``type: language_model`` in YAML)
are built for one phase: ``get_space("llm", phase="decode", context=4096)``.

Space modules never import this registry: it imports them, on first use.
Users add their own with :func:`register_space` or load a YAML definition
with ``get_space("yaml:path/to/space.yaml")`` (see ``docs/declarative.md``).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from .base import SearchSpace
from .columns import NativeError
from .profiles import Profile, Within, Witness
from .sampling import BudgetSample, space_phase
from .tables import NotDecomposable

__all__ = ["get_space", "list_spaces", "register_space", "sample_within", "SearchSpace",
           "NativeError", "BudgetSample", "SHIPPED_YAML", "NotDecomposable", "Profile", "Within",
           "Witness", "space_phase"]

#: shipped declarative definitions: registry name -> file (``_`` in the file
#: name reads as ``-``)
SHIPPED_YAML: dict[str, Path] = {p.stem.replace("_", "-"): p
                                 for p in sorted(Path(__file__).parent.glob("*.yaml"))}

#: spaces added by users: name -> factory(**params) -> SearchSpace
_USER: dict[str, Callable[..., SearchSpace]] = {}


def _factories() -> dict[str, Callable[..., SearchSpace]]:
    from .autoformer import AutoFormerSpace
    from .lm_space import load_space
    from .nb201 import NB201Space
    from .zoo import ZooSpace

    out: dict[str, Callable[..., SearchSpace]] = {"nb201": NB201Space, "zoo": ZooSpace}
    for v in ("t", "s", "b"):
        out[f"autoformer-{v}"] = functools.partial(AutoFormerSpace, v)
    for name, path in SHIPPED_YAML.items():
        out[name] = functools.partial(load_space, path, expected_name=name, shipped=True)
    out.update(_USER)
    return out


def register_space(name: str, factory: Callable[..., SearchSpace]) -> None:
    """Add a space to the registry: ``get_space(name, **params)`` then calls
    ``factory(**params)``."""
    if not callable(factory):
        raise TypeError(f"register_space({name!r}, ...) needs a callable factory")
    _USER[name] = factory


def get_space(name: str, **params) -> SearchSpace:
    """Build the search space ``name`` with its parameters.

    ``name`` is a registered name (see :func:`list_spaces`) or
    ``"yaml:path/to/space.yaml"``, a user-defined declarative space.  A
    declarative space rebuilt from stored metadata comes back through its
    ``path`` parameter.

    Raises ``ValueError`` listing the known spaces when ``name`` is unknown.

    Examples
    --------
    >>> import nasflops
    >>> nasflops.get_space("nb201", dataset="cifar100").size
    15625
    """
    if not isinstance(name, str):
        raise TypeError(f"a space name is a string, got {type(name).__name__}")
    if name.startswith("yaml:") or "path" in params:
        from .lm_space import load_space
        path = name[len("yaml:"):] if name.startswith("yaml:") else params.pop("path")
        params.pop("path", None)
        return load_space(path, **params)
    factories = _factories()
    try:
        factory = factories[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(factories))}, "
                         "or yaml:PATH") from None
    return factory(**params)


def list_spaces() -> list[dict]:
    """Every registered space's ``describe()`` (default parameters)."""
    factories = _factories()
    return [factories[n]().describe() for n in sorted(factories)]


def sample_within(space, budget, n: int, seed: int = 0, **kwargs) -> BudgetSample:
    """The first ``n`` candidates of ``space`` (a space or its name) that fit
    ``budget``; see :meth:`SearchSpace.sample_within`."""
    if isinstance(space, str):
        space = get_space(space)
    return space.sample_within(budget, n, seed, **kwargs)
