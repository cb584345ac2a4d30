"""The declarative schema: validation and defaults (the manual is ``docs/declarative.md``).

:func:`normalize` turns a definition (a dict, as loaded from YAML) into one
where every field is checked and every default filled in, or raises
:class:`SchemaError` naming the offending key (``stages[2].block.kernel``).
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from nasflops.spec import parse_act
from ..base import make_divisible

__all__ = ["SchemaError", "BLOCK_TYPES", "normalize"]


class SchemaError(ValueError):
    """A declarative space definition that is not valid, naming where."""

    def __init__(self, where: str, reason: str):
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")


#: block types a stage may choose from
BLOCK_TYPES = ("conv", "mbconv", "resnet_basic", "resnet_bottleneck", "skip")
_LAYER_FIELDS = {
    "conv": {"out", "kernel", "stride", "groups", "bias", "bn", "act", "padding"},
    "mbconv": {"out", "kernel", "stride", "expand", "act", "se", "residual", "divisor"},
    "resnet_basic": {"out", "kernel", "stride", "act"},
    "resnet_bottleneck": {"out", "kernel", "stride", "expand", "act", "divisor"},
    "maxpool": {"kernel", "stride", "padding"},
    "avgpool": {"kernel", "stride", "padding"},
    "global_pool": set(), "flatten": set(), "dropout": {"rate"},
    "linear": {"out", "bias"},
}
_BLOCK_FIELDS = {"type", "kernel", "expand", "act", "se", "residual", "divisor", "bn", "bias"}
_DEFAULT_OPTIONS = {"divisor": 8, "inplace": ["relu", "relu6"], "global_pool": "adaptive", "bn": True,
                    "width_mult": None, "width_divisor": 8}
_SE_DEFAULT = {"reduction": 4, "divisor": 8, "act": "relu", "gate": "hardsigmoid"}


def _keys(keys) -> list:
    """Mapping keys as sorted strings (YAML keys may be ints, floats or None)."""
    return sorted(map(str, keys))


def _type_name(where: str, t, known) -> str:
    """A layer or block type: one of ``known`` (a string, so never unhashable)."""
    if not isinstance(t, str) or t not in known:
        raise SchemaError(where, f"unknown type {t!r}; known: {', '.join(known)}")
    return t


def _act(where: str, v) -> Optional[str]:
    if v is None or v == "none":
        return None
    if not isinstance(v, str):
        raise SchemaError(where, f"an activation is a name, got {v!r}")
    try:
        return parse_act(v).name.lower()
    except ValueError as exc:
        raise SchemaError(where, str(exc)) from None


#: the largest value any integer field may take: kernels, strides and the
#: per-candidate native columns are 16-bit in the records and columns
FIELD_MAX = 32767
#: resolutions a space may list (every resolution-dependent field has a value per resolution)
MAX_RESOLUTIONS = 1024


def _int(where: str, v, lo: int = 1, hi: int = FIELD_MAX) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise SchemaError(where, f"expected an integer in {lo}..{hi:,}, got {v!r}")
    return int(v)


def _choices(where: str, v, integer: bool = True, lo: float = 1, hi: float = FIELD_MAX) -> list:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if not vals:
        raise SchemaError(where, "needs at least one choice")
    out = []
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise SchemaError(where, f"choice {x!r} is not a number")
        if not math.isfinite(x) or not lo <= x <= hi or (integer and x != int(x)):
            kind = "an integer" if integer else "a number"
            raise SchemaError(where, f"choice {x!r} must be {kind} in {lo:g}..{hi:g}")
        out.append(int(x) if x == int(x) else float(x))
    if len(set(out)) != len(out):
        raise SchemaError(where, f"duplicate choices in {vals}")
    return out


def _resolutions(where: str, v) -> list[int]:
    if isinstance(v, Mapping):
        extra = set(v) - {"min", "max", "step"}
        if extra:
            raise SchemaError(where, f"unknown keys {_keys(extra)} (use min, max, step)")
        lo, hi = _int(where + ".min", v.get("min")), _int(where + ".max", v.get("max"))
        step = _int(where + ".step", v.get("step", 1))
        if hi < lo:
            raise SchemaError(where, f"max {hi} < min {lo}")
        out = list(range(lo, hi + 1, step))
    else:
        out = sorted(_choices(where, v))
    if len(out) > MAX_RESOLUTIONS:
        raise SchemaError(where, f"{len(out)} resolutions; at most {MAX_RESOLUTIONS}")
    return out


def _se(where: str, v) -> Optional[dict]:
    if v is None or v is False:
        return None
    se = dict(_SE_DEFAULT)
    if isinstance(v, Mapping):
        extra = set(v) - set(_SE_DEFAULT)
        if extra:
            raise SchemaError(where, f"unknown keys {_keys(extra)} (use {', '.join(_SE_DEFAULT)})")
        se.update(v)
    elif v is not True:
        raise SchemaError(where, f"expected true/false or a mapping, got {v!r}")
    se["reduction"] = _int(where + ".reduction", se["reduction"])
    se["divisor"] = _int(where + ".divisor", se["divisor"])
    se["act"] = _act(where + ".act", se["act"])
    se["gate"] = _act(where + ".gate", se["gate"])
    return se


def _kernel(where: str, k) -> int:
    k = _int(where, k)
    if k % 2 == 0:
        raise SchemaError(where, f"kernel {k} must be odd (same padding k // 2)")
    return k


def _fixed_layer(where: str, spec, opts: dict) -> dict:
    """Validate one stem/head layer; fill its defaults."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise SchemaError(where, "a layer is a mapping with a 'type'")
    t = _type_name(where + ".type", spec["type"], tuple(_LAYER_FIELDS))
    extra = set(spec) - _LAYER_FIELDS[t] - {"type"}
    if extra:
        raise SchemaError(where, f"unknown fields {_keys(extra)} for {t}")
    out = {"type": t}
    if t in ("conv", "mbconv", "resnet_basic", "resnet_bottleneck", "linear"):
        if "out" not in spec:
            raise SchemaError(where, f"{t} needs 'out'")
        out["out"] = _int(where + ".out", spec["out"])
        if t != "linear":   # a classifier's outputs are classes, not a width
            out["out"] = _scaled(out["out"], opts)
    if t in ("conv", "mbconv", "resnet_basic", "resnet_bottleneck"):
        out["kernel"] = _kernel(where + ".kernel", spec.get("kernel", 3))
        out["stride"] = _int(where + ".stride", spec.get("stride", 1))
        out["act"] = _act(where + ".act", spec.get("act", None if t == "conv" else "relu"))
    if t == "conv":
        g = spec.get("groups", 1)
        out["groups"] = g if g == "depthwise" else _int(where + ".groups", g)
        out["bias"] = bool(spec.get("bias", False))
        out["bn"] = bool(spec.get("bn", opts["bn"]))
        out["padding"] = _int(where + ".padding", spec.get("padding", out["kernel"] // 2), 0)
    if t in ("mbconv", "resnet_bottleneck"):
        out["expand"] = _choices(where + ".expand", spec.get("expand", 1 if t == "mbconv" else 0.25),
                                 integer=False, lo=0)[0]
        div = spec.get("divisor", opts["divisor"])
        out["divisor"] = None if div is None else _int(where + ".divisor", div)
    if t == "mbconv":
        out["se"] = _se(where + ".se", spec.get("se"))
        out["residual"] = bool(spec.get("residual", True))
    if t in ("maxpool", "avgpool"):
        out["kernel"] = _int(where + ".kernel", spec.get("kernel"))
        out["stride"] = _int(where + ".stride", spec.get("stride", out["kernel"]))
        out["padding"] = _int(where + ".padding", spec.get("padding", 0), 0)
    if t == "linear":
        out["bias"] = bool(spec.get("bias", True))
    return out


def _stage(where: str, spec, opts: dict) -> dict:
    if not isinstance(spec, Mapping):
        raise SchemaError(where, "a stage is a mapping")
    extra = set(spec) - {"width", "depth", "stride", "block", "name"}
    if extra:
        raise SchemaError(where, f"unknown fields {_keys(extra)} (use width, depth, stride, block)")
    for key in ("width", "depth", "block"):
        if key not in spec:
            raise SchemaError(where, f"missing '{key}'")
    blk = spec["block"]
    if not isinstance(blk, Mapping):
        raise SchemaError(where + ".block", "expected a mapping")
    extra = set(blk) - _BLOCK_FIELDS
    if extra:
        raise SchemaError(where + ".block", f"unknown fields {_keys(extra)}")
    types = blk.get("type", "mbconv")
    types = list(types) if isinstance(types, (list, tuple)) else [types]
    if not types:
        raise SchemaError(where + ".block.type", "needs at least one block type")
    for t in types:
        _type_name(where + ".block.type", t, BLOCK_TYPES)
    if len(set(types)) != len(types):
        raise SchemaError(where + ".block.type", "duplicate block types")
    if types == ["skip"]:
        raise SchemaError(where + ".block.type", "a stage needs a block type other than skip")
    div = blk.get("divisor", opts["divisor"])
    st = {
        "widths": [_scaled(w, opts) for w in _choices(where + ".width", spec["width"])],
        "depths": _choices(where + ".depth", spec["depth"]),
        "stride": _int(where + ".stride", spec.get("stride", 1)),
        "types": types,
        "kernels": [_kernel(where + ".block.kernel", k)
                    for k in _choices(where + ".block.kernel", blk.get("kernel", 3))],
        "expands": _choices(where + ".block.expand",
                            blk.get("expand", 0.25 if types[0] == "resnet_bottleneck" else 1),
                            integer=False, lo=0),
        "act": _act(where + ".block.act", blk.get("act", "relu")),
        "se": _se(where + ".block.se", blk.get("se")),
        "residual": bool(blk.get("residual", True)),
        "divisor": None if div is None else _int(where + ".block.divisor", div),
        "bn": bool(blk.get("bn", opts["bn"])),
        "bias": bool(blk.get("bias", False)),
    }
    return st


def _scaled(width: int, opts: dict) -> int:
    """A width under the space's ``width_mult`` (as OFA scales its base widths)."""
    if opts["width_mult"] is None:
        return width
    return make_divisible(width * opts["width_mult"], opts["width_divisor"])


def _options(schema: Mapping, overrides: Mapping) -> tuple[dict, dict]:
    """The space's options and its parameters (overridable options) with
    ``overrides`` applied."""
    params = schema.get("parameters") or {}
    if not isinstance(params, Mapping):
        raise SchemaError("parameters", "expected a mapping of option name to default value")
    bad = set(params) - set(_DEFAULT_OPTIONS)
    if bad:
        raise SchemaError("parameters", f"unknown options {_keys(bad)}; parameters are options "
                                        f"({', '.join(_DEFAULT_OPTIONS)})")
    unknown = set(overrides) - set(params)
    if unknown:
        raise SchemaError("<parameters>", f"{schema.get('name')!r} takes "
                          f"{', '.join(_keys(params)) or 'no parameters'}; got {_keys(unknown)}")
    params = {**params, **overrides}
    opts = dict(_DEFAULT_OPTIONS)
    o = schema.get("options") or {}
    if not isinstance(o, Mapping):
        raise SchemaError("options", "expected a mapping")
    extra = set(o) - set(_DEFAULT_OPTIONS)
    if extra:
        raise SchemaError("options", f"unknown options {_keys(extra)}")
    opts.update(o)
    opts.update(params)
    if opts["global_pool"] not in ("adaptive", "mean_wh"):
        raise SchemaError("options.global_pool", "must be 'adaptive' or 'mean_wh'")
    inplace = opts["inplace"] or []
    if not isinstance(inplace, (list, tuple)):
        raise SchemaError("options.inplace", "expected a list of activation names")
    opts["inplace"] = {_act("options.inplace", a) for a in inplace}
    if opts["divisor"] is not None:
        opts["divisor"] = _int("options.divisor", opts["divisor"])
    opts["width_divisor"] = _int("options.width_divisor", opts["width_divisor"])
    wm = opts["width_mult"]
    if wm is not None and (isinstance(wm, bool) or not isinstance(wm, (int, float))
                           or not 0 < wm <= 64):
        raise SchemaError("options.width_mult", f"expected a number in (0, 64], got {wm!r}")
    return opts, params


def normalize(schema: Mapping, overrides: Mapping = ()) -> dict:
    """Validate a definition; return it with every default filled in.

    ``overrides`` set the space's declared ``parameters``.  Raises
    :class:`SchemaError` naming the offending key.
    """
    if not isinstance(schema, Mapping):
        raise SchemaError("<space>", f"expected a mapping, got {type(schema).__name__}")
    extra = set(schema) - {"name", "reference", "description", "input", "options", "parameters",
                           "stem", "stages", "head"}
    if extra:
        raise SchemaError("<space>", f"unknown keys {_keys(extra)}")
    if not isinstance(schema.get("name"), str) or not schema["name"]:
        raise SchemaError("name", "a space needs a non-empty string name")
    opts, params = _options(schema, dict(overrides))
    inp = schema.get("input") or {}
    if not isinstance(inp, Mapping):
        raise SchemaError("input", "expected a mapping")
    extra = set(inp) - {"channels", "resolution"}
    if extra:
        raise SchemaError("input", f"unknown keys {_keys(extra)}")
    stages = schema.get("stages")
    if not isinstance(stages, (list, tuple)) or not stages:
        raise SchemaError("stages", "a space needs a non-empty list of stages")
    for key in ("stem", "head"):
        if not isinstance(schema.get(key) or [], (list, tuple)):
            raise SchemaError(key, "expected a list of layers")
    return {
        "name": schema["name"],
        "reference": str(schema.get("reference", "")),
        "description": str(schema.get("description", "")),
        "parameters": params,
        "channels": _int("input.channels", inp.get("channels", 3)),
        "resolutions": _resolutions("input.resolution", inp.get("resolution", 224)),
        "options": opts,
        "stem": [_fixed_layer(f"stem[{i}]", s, opts) for i, s in enumerate(schema.get("stem") or [])],
        "stages": [_stage(f"stages[{i}]", s, opts) for i, s in enumerate(stages)],
        "head": [_fixed_layer(f"head[{i}]", s, opts) for i, s in enumerate(schema.get("head") or [])],
    }
