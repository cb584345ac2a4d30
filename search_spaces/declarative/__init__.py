"""User-defined chain search spaces, declared as data and compiled to a sampler.

A *declarative space* is a dict (or a YAML file holding one) describing a
macro/chain space: a stem, stages of repeated blocks whose type, kernel,
expansion, width and depth are chosen per candidate, and a head -- the shape
of MobileNet-like (OFA, ProxylessNAS, MnasNet-style) and ResNet-like spaces.
The schema, the block topologies and the native encoding are documented in
``docs/declarative.md``; the shipped definitions are the ``*.yaml`` files of
``search_spaces/``.

* :mod:`.schema` validates a definition and fills its defaults;
* :mod:`.blocks` writes each block type's records;
* :mod:`.space` compiles the templates and samples, validates and encodes;
* :mod:`.decode` reads natives back from records.

Examples
--------
>>> import nasflops
>>> from nasflops.search_spaces.declarative import compile_space
>>> space = compile_space({
...     "name": "tiny", "input": {"resolution": [32, 64]},
...     "stem": [{"type": "conv", "out": 16, "kernel": 3, "stride": 2, "act": "relu"}],
...     "stages": [{"width": [16, 24], "depth": [1, 2], "stride": 2,
...                 "block": {"type": "mbconv", "kernel": [3, 5], "expand": [3, 6], "act": "relu"}}],
...     "head": [{"type": "global_pool"}, {"type": "linear", "out": 10}]})
>>> sorted(space.native_columns)
['d', 'e', 'ks', 'r', 'w']
>>> cfg = {"r": 32, "d": [1], "w": [16], "ks": [3, 3], "e": [3, 3]}
>>> int(nasflops.score(space.encode([cfg]))["params"][0])
2826
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from .schema import BLOCK_TYPES, SchemaError
from .space import MAX_TEMPLATES, DeclarativeSpace

__all__ = ["compile_space", "load_space", "DeclarativeSpace", "SchemaError", "BLOCK_TYPES",
           "MAX_TEMPLATES"]


def compile_space(schema: Mapping, source: Optional[str] = None, **parameters) -> DeclarativeSpace:
    """Compile a declarative definition (a dict; see ``docs/declarative.md``).

    ``parameters`` set the values of the definition's declared ``parameters``.
    """
    return DeclarativeSpace(schema, source, overrides=parameters)


def _read_yaml(path: Path):
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise SchemaError(os.fspath(path), f"cannot read the file: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        # safe_load refuses Python tags and other constructors: a data file only
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SchemaError(os.fspath(path), f"not a valid YAML space definition: {first}") from None


def load_space(path, expected_name: Optional[str] = None, shipped: bool = False,
               **parameters) -> DeclarativeSpace:
    """Load and compile a YAML (or JSON) space definition.

    Raises :class:`SchemaError` naming the file, and the offending key for
    invalid definitions.  ``parameters`` set the definition's declared
    ``parameters`` (e.g. ``width_mult=1.0``).
    """
    path = Path(path)
    schema = _read_yaml(path)
    try:
        space = DeclarativeSpace(schema, source=os.fspath(path), shipped=shipped,
                                 overrides=parameters)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc.where}", exc.reason) from None
    if expected_name is not None and space.name != expected_name:
        raise SchemaError(f"{path}: name", f"is {space.name!r}; shipped files must be named "
                                           f"after their space ({expected_name!r})")
    return space
