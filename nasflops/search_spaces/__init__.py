"""Published NAS search spaces as spec batches.

``get_space(name, **params)`` builds a space; ``list_spaces()`` describes
them all.  Each space lives in its own module and registers itself with
:func:`register_space`; see :mod:`nasflops.search_spaces.base` for the
contract.
"""
from __future__ import annotations

import importlib
from typing import Callable

from .base import NativeError, SearchSpace

__all__ = ["get_space", "list_spaces", "register_space", "SearchSpace", "NativeError", "SPACES"]

#: name -> factory(**params) -> SearchSpace
SPACES: dict[str, Callable[..., SearchSpace]] = {}

# modules that register spaces when imported (kept lazy: importing nasflops
# stays cheap)
_MODULES = ("nb201", "ofa_mbv3", "zoo", "declarative")


def register_space(name: str):
    """Class or factory decorator adding a space to the registry."""
    def deco(factory):
        SPACES[name] = factory
        return factory
    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def get_space(name: str, **params) -> SearchSpace:
    """Build the search space ``name`` with its parameters.

    ``name`` is a registered name (see :func:`list_spaces`) or
    ``"yaml:path/to/space.yaml"``, a user-defined declarative space (see
    :mod:`nasflops.search_spaces.declarative`).  A declarative space rebuilt
    from stored metadata comes back through its ``path`` parameter.

    Raises ``ValueError`` listing the known spaces when ``name`` is unknown.

    Examples
    --------
    >>> import nasflops
    >>> nasflops.get_space("nb201", dataset="cifar100").size
    15625
    """
    _load_all()
    if name.startswith("yaml:") or "path" in params:
        from .declarative import load_space
        path = name[len("yaml:"):] if name.startswith("yaml:") else params.pop("path")
        params.pop("path", None)
        if params:
            raise ValueError(f"a declarative space takes no parameters; got {sorted(params)}")
        return load_space(path)
    try:
        factory = SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}, "
                         "or yaml:PATH") from None
    return factory(**params)


def list_spaces() -> list[dict]:
    """Every registered space's ``describe()`` (default parameters)."""
    _load_all()
    return [SPACES[n]().describe() for n in sorted(SPACES)]
