"""User-defined chain search spaces, declared as data and compiled to a sampler.

A *declarative space* is a dict (or a YAML file holding one) describing a
macro/chain space -- a stem, stages of repeated blocks whose type, kernel,
expansion, width and depth are chosen per candidate, and a head -- the shape
of MobileNet-like (OFA, ProxylessNAS, MnasNet-style) and ResNet-like spaces.
:func:`compile_space` turns it into a :class:`~nasflops.search_spaces.
SearchSpace` whose sampling and encoding are vectorised: every block variant
is written once as a record template, and a batch is one gather from the
template pool (:class:`TemplatePool`).

Shipped definitions live next to this module (``search_spaces/*.yaml``) and
are registered under their file name with ``_`` read as ``-``:

* ``ofa-mbv3-declarative`` (``ofa_mbv3_declarative.yaml``): the Once-for-All
  MobileNetV3 w1.2 space; encodes record for record like ``ofa-mbv3``.
* ``proxylessnas-mobile``, ``proxylessnas-gpu``, ``proxylessnas-cpu``
  (``proxylessnas_*.yaml``): the ProxylessNAS search space (MBConv k{3,5,7}
  x e{3,6} or zero, per layer) at the stage widths of each published
  ProxylessNAS network, which it reproduces (Mobile: 320.4 M MACs, 4,080,512
  params; GPU: 465.3 M, 7,119,848; CPU: 439.2 M, 4,361,648; see the files).

Any other file: ``load_space("path/to/space.yaml")`` (or a dict:
``compile_space({...})``).

Schema
------
Top level (``name`` and ``stages`` required)::

    name: my-space                  # registry / result-metadata name
    reference: "paper, figures"     # free text, shown by list_spaces()
    input:
      channels: 3
      resolution: 224               # an int, a list, or {min, max, step}
    options:                        # defaults for every layer (all optional)
      divisor: 8                    # MBConv middle width make_divisible(round(cin * e), divisor);
                                    #   null: round(cin * e)
      inplace: [relu, relu6]        # activations that overwrite their input
      global_pool: adaptive         # adaptive: one global pool record;
                                    #   mean_wh: x.mean(3).mean(2) as torch code often
                                    #   writes it (pool to (H, 1), then to (1, 1))
      bn: true                      # conv layers are followed by batch norm
    stem: [layer, ...]              # fixed layers, first one reads the input
    stages:
      - width: 32                   # output channels: an int or a list of choices
        depth: [2, 3, 4]            # blocks: an int or a list of choices
        stride: 2                   # stride of the stage's first block (fixed)
        block:                      # any field may be a list of choices where noted
          type: mbconv              # conv | mbconv | resnet_basic | resnet_bottleneck | skip
                                    #   (list of choices allowed; skip = identity,
                                    #   never drawn for a stage's first block)
          kernel: [3, 5, 7]         # odd kernels; list of choices allowed
          expand: [3, 4, 6]         # MBConv expansion (list allowed); bottleneck: middle
                                    #   width = round(out * expand), e.g. 0.25
          act: relu                 # activation of the block
          se: false                 # true or {reduction: 4, divisor: 8, act: relu,
                                    #   gate: hardsigmoid} (MBConv squeeze-excitation)
          residual: true            # identity shortcut when stride 1 and in == out
    head: [layer, ...]              # fixed layers after the last stage

Fixed layers (stem/head) are ``{type: ..., ...}`` with ``type`` one of
``conv`` (out, kernel, stride=1, groups=1, bias=false, bn, act=null),
``mbconv`` / ``resnet_basic`` / ``resnet_bottleneck`` (as blocks, plus out and
stride), ``maxpool`` / ``avgpool`` (kernel, stride, padding=0),
``global_pool``, ``flatten``, ``dropout`` and ``linear`` (out, bias=true).
Activations: relu, relu6, hardswish (h_swish), hardsigmoid (h_sigmoid),
sigmoid, silu (swish), gelu, tanh.  Padding is ``kernel // 2`` (same).

Block topologies (what the records are, in forward order):

* ``conv``: conv -> [BN] -> [act].
* ``mbconv``: [1x1 expand -> BN -> act, unless expand == 1] -> depthwise kxk
  -> BN -> act -> [SE: pool -> 1x1 conv (bias) -> act -> 1x1 conv (bias) ->
  gate, multiply] -> 1x1 project -> BN -> [+ input].  SE width is
  ``make_divisible(mid // reduction, divisor)``.
* ``resnet_basic`` (torchvision ``BasicBlock``): kxk/stride -> BN -> act ->
  kxk -> BN, shortcut identity or 1x1/stride conv -> BN, add, act.
* ``resnet_bottleneck`` (torchvision ``Bottleneck``, stride on the kxk): 1x1
  -> BN -> act -> kxk/stride -> BN -> act -> 1x1 -> BN, shortcut as above,
  add, act.

Limits, by design of the compiled form: strides are fixed per stage (every
spatial size is then a function of the resolution alone, so resolution-
dependent fields are filled from per-resolution tables); kernels are odd
with same padding; SE exists in MBConv only; ResNet shortcuts are the
torchvision 1x1/stride conv (no avg-pool "ResNet-D" downsampling).  Each
block position holds one template per combination of its choices (type x
kernel x expand x in-width x out-width), built once at compile time.

Native encoding
---------------
A dict with one entry per dimension that has a choice somewhere in the space
(dimensions with a single value everywhere are implied):

``r``  int, the input resolution (if the space has several, or no other
       choice);
``d``  list, one depth per stage;
``w``  list, one width per stage;
``op`` list of block type names, one per block position;
``ks`` list of kernels, one per block position;
``e``  list of expansions, one per block position.

Block positions are all blocks of all stages at their largest depth, in
order (OFA's 20 for 5 stages of at most 4).  Like OFA, entries of positions a
candidate does not use (beyond its depth, or the kernel of a ``skip``) must
still be valid choices and are sampled, but do not change the network.  As
columns: ``r`` int16 (n,), ``d`` int8 and ``w`` int16 (n, stages), ``op``
int8 (n, positions) indexing :attr:`DeclarativeSpace.block_types`, ``ks``
int8 and ``e`` int8 (float32 if an expansion is fractional), (n, positions).

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

import copy
import itertools
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from ..spec import INPUT_FIELDS, LAYER_DTYPE, Net, SpecBatch
from .base import NativeError, SearchSpace, gather_segments, n_rows

__all__ = ["TemplatePool", "make_divisible", "compile_space", "load_space",
           "DeclarativeSpace", "SchemaError", "SHIPPED"]


def make_divisible(v: float, divisor: int, min_val: Optional[int] = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never below 90 % of ``v``.

    The TensorFlow MobileNet rule, as OFA (``ofa.utils.make_divisible``) and
    torchvision write it.

    >>> make_divisible(16 * 1.2, 8), make_divisible(112 * 1.2, 8)
    (24, 136)
    """
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


# the records as rows of int32 words: the gather below copies whole rows,
# ~10x faster than fancy-indexing the structured dtype
assert all(LAYER_DTYPE.fields[f][1] % 4 == 0 for f in INPUT_FIELDS)
#: template marker of an unused input slot; any position plus it stays < 0
_UNUSED = -(1 << 30)


class TemplatePool:
    """Record templates of chain segments, assembled by one vectorised gather.

    A candidate is a chain of *slots* (stem, blocks, head); each slot holds one
    template (a short record array, possibly empty: an absent block).  A
    template stores each input as an offset from the record itself, so it is
    position independent: after the gather, input = own position + offset.
    A slot's first records may name the record just before the slot, the
    previous slot's output, which is why every template ends with its output.

    Fields that depend on the resolution are *patched*: the stem's input
    record gets ``size_h = size_w = r``, and a template may name records whose
    ``size_h`` takes a per-resolution value (the (H, 1) pool of a two-step
    global mean, whose H depends on the input resolution).

    Parameters
    ----------
    n_res : int
        Number of resolutions of the space (patch tables have one value per
        resolution index).

    Examples
    --------
    >>> import numpy as np, nasflops
    >>> pool = TemplatePool(n_res=2)
    >>> stem = nasflops.Net(3, 0, 0); _ = stem.conv(stem.input, 8, 3, padding=1)
    >>> t0 = pool.add_net(stem, include_input=True)
    >>> blk = nasflops.Net(8, 0, 0); _ = blk.add(blk.conv(blk.input, 8, 1), blk.input)
    >>> t1 = pool.add_net(blk); t2 = pool.add_empty(); pool.freeze()
    >>> b = pool.assemble(np.array([[t0, t1], [t0, t2]]), np.array([0, 1]), np.array([32, 64]))
    >>> b.lengths.tolist(), b[0]["input1"].tolist(), int(b[1]["size_h"][0])
    ([4, 2], [-1, -1, -1, 1], 64)
    """

    def __init__(self, n_res: int):
        self.n_res = int(n_res)
        self._parts: list[np.ndarray] = []
        self._patches: list[list[tuple[int, np.ndarray]]] = []
        self._frozen = False

    def __len__(self) -> int:
        return len(self._parts)

    def add_records(self, records: np.ndarray, patches=()) -> int:
        """Add a template given as records with offset inputs; return its id."""
        if self._frozen:
            raise RuntimeError("template pool is frozen")
        self._parts.append(np.ascontiguousarray(records, dtype=LAYER_DTYPE))
        checked = []
        for local, values in patches:
            values = np.asarray(values, dtype=np.int32)
            if values.shape != (self.n_res,):
                raise ValueError(f"patch values need one entry per resolution ({self.n_res})")
            checked.append((int(local), values))
        self._patches.append(checked)
        return len(self._parts) - 1

    def add_net(self, net: Net, include_input: bool = False, patches=()) -> int:
        """Add the layers of ``net`` as a template; return its id.

        Layer 0 of ``net`` stands for the slot's input (the previous slot's
        output) and is dropped unless ``include_input`` (the stem, whose layer
        0 is the network input).  ``patches`` are ``(net layer index,
        size_h per resolution index)`` pairs.
        """
        rec = net.records
        self_idx = np.arange(len(rec))
        for f in INPUT_FIELDS:
            used = rec[f] >= 0
            rec[f] = np.where(used, rec[f] - self_idx, _UNUSED)
        drop = 0 if include_input else 1
        return self.add_records(rec[drop:], [(i - drop, v) for i, v in patches])

    def add_empty(self) -> int:
        """Add the empty template (an absent block); return its id."""
        return self.add_records(np.zeros(0, dtype=LAYER_DTYPE))

    def freeze(self) -> None:
        """Concatenate the templates into the gather tables."""
        recs = np.concatenate(self._parts) if self._parts else np.zeros(0, LAYER_DTYPE)
        self.lengths = np.array([len(p) for p in self._parts], dtype=np.int64)
        self.starts = np.zeros(len(self._parts), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        recs.setflags(write=False)
        self._records = recs   # inputs relative to each record, _UNUSED when unused
        n_p = max([len(p) for p in self._patches] + [1])
        self.patch_local = np.full((len(self._parts), n_p), -1, dtype=np.int64)
        self.patch_val = np.zeros((len(self._parts), n_p, self.n_res), dtype=np.int32)
        for t, plist in enumerate(self._patches):
            for p, (local, values) in enumerate(plist):
                self.patch_local[t, p] = local
                self.patch_val[t, p] = values
        self._patched_p = [p for p in range(n_p) if (self.patch_local[:, p] >= 0).any()]
        self._frozen = True

    def assemble(self, tids: np.ndarray, r_idx: np.ndarray, resolutions: np.ndarray) -> SpecBatch:
        """Chain templates into a batch, without a loop over candidates.

        Parameters
        ----------
        tids : int array (n, S)
            Template id of each slot of each candidate; slot 0 must be a
            template that starts with the network input.
        r_idx : int array (n,)
            Resolution index of each candidate (selects patch values).
        resolutions : int array
            Resolution of each index (the input record's height and width).
        """
        tids = np.asarray(tids, dtype=np.int64)
        n = tids.shape[0]
        lens = self.lengths[tids]
        # one compiled pass: copy every template, make its inputs (stored
        # relative to each record) absolute in the architecture
        batch = gather_segments(self._records, self.starts[tids], lens, record_relative=True)
        rec, offsets = batch.records, batch.offsets
        arch_len = np.diff(offsets)
        r_idx = np.asarray(r_idx, dtype=np.int64)
        if n:
            res = np.asarray(resolutions)[r_idx]
            first = offsets[:-1][arch_len > 0]
            rec["size_h"][first] = res[arch_len > 0]
            rec["size_w"][first] = res[arch_len > 0]
        if self._patched_p:  # segment starts in the batch, for the patches
            seg_start = np.cumsum(lens, axis=1) - lens + offsets[:-1, None]
        for p in self._patched_p:
            loc = self.patch_local[tids, p]
            ci, sj = np.nonzero(loc >= 0)
            if ci.size:
                at = seg_start[ci, sj] + loc[ci, sj]
                rec["size_h"][at] = self.patch_val[tids[ci, sj], p, r_idx[ci]]
        return batch


# ===================================================================== schema
class SchemaError(ValueError):
    """A declarative space definition that is not valid, naming where."""

    def __init__(self, where: str, reason: str):
        self.where, self.reason = where, reason
        super().__init__(f"{where}: {reason}")


_ACT_NAMES = {"relu": "relu", "relu6": "relu6", "hardswish": "hardswish", "h_swish": "hardswish",
              "hswish": "hardswish", "hardsigmoid": "hardsigmoid", "h_sigmoid": "hardsigmoid",
              "hsigmoid": "hardsigmoid", "sigmoid": "sigmoid", "silu": "silu", "swish": "silu",
              "gelu": "gelu", "tanh": "tanh"}
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
_DEFAULT_OPTIONS = {"divisor": 8, "inplace": ["relu", "relu6"], "global_pool": "adaptive", "bn": True}
_SE_DEFAULT = {"reduction": 4, "divisor": 8, "act": "relu", "gate": "hardsigmoid"}


def _act(where: str, v) -> Optional[str]:
    if v is None or v == "none":
        return None
    if not isinstance(v, str) or v.lower() not in _ACT_NAMES:
        raise SchemaError(where, f"unknown activation {v!r}; known: {', '.join(sorted(_ACT_NAMES))}")
    return _ACT_NAMES[v.lower()]


def _int(where: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise SchemaError(where, f"expected an integer >= {lo}, got {v!r}")
    return int(v)


def _choices(where: str, v, integer: bool = True, lo: float = 1) -> list:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if not vals:
        raise SchemaError(where, "needs at least one choice")
    out = []
    for x in vals:
        if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
            raise SchemaError(where, f"choice {x!r} is not a number")
        if x < lo or (integer and x != int(x)):
            raise SchemaError(where, f"choice {x!r} must be {'an integer ' if integer else ''}>= {lo}")
        out.append(int(x) if x == int(x) else float(x))
    if len(set(out)) != len(out):
        raise SchemaError(where, f"duplicate choices in {vals}")
    return out


def _resolutions(where: str, v) -> list[int]:
    if isinstance(v, Mapping):
        extra = set(v) - {"min", "max", "step"}
        if extra:
            raise SchemaError(where, f"unknown keys {sorted(extra)} (use min, max, step)")
        lo, hi = _int(where + ".min", v.get("min")), _int(where + ".max", v.get("max"))
        step = _int(where + ".step", v.get("step", 1))
        if hi < lo:
            raise SchemaError(where, f"max {hi} < min {lo}")
        return list(range(lo, hi + 1, step))
    return sorted(_choices(where, v))


def _se(where: str, v) -> Optional[dict]:
    if v is None or v is False:
        return None
    se = dict(_SE_DEFAULT)
    if isinstance(v, Mapping):
        extra = set(v) - set(_SE_DEFAULT)
        if extra:
            raise SchemaError(where, f"unknown keys {sorted(extra)} (use {', '.join(_SE_DEFAULT)})")
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
    t = spec["type"]
    if t not in _LAYER_FIELDS:
        raise SchemaError(where + ".type",
                          f"unknown layer type {t!r}; known: {', '.join(_LAYER_FIELDS)}")
    extra = set(spec) - _LAYER_FIELDS[t] - {"type"}
    if extra:
        raise SchemaError(where, f"unknown fields {sorted(extra)} for {t}")
    out = {"type": t}
    if t in ("conv", "mbconv", "resnet_basic", "resnet_bottleneck", "linear"):
        if "out" not in spec:
            raise SchemaError(where, f"{t} needs 'out'")
        out["out"] = _int(where + ".out", spec["out"])
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
        raise SchemaError(where, f"unknown fields {sorted(extra)} (use width, depth, stride, block)")
    for key in ("width", "depth", "block"):
        if key not in spec:
            raise SchemaError(where, f"missing '{key}'")
    blk = spec["block"]
    if not isinstance(blk, Mapping):
        raise SchemaError(where + ".block", "expected a mapping")
    extra = set(blk) - _BLOCK_FIELDS
    if extra:
        raise SchemaError(where + ".block", f"unknown fields {sorted(extra)}")
    types = blk.get("type", "mbconv")
    types = list(types) if isinstance(types, (list, tuple)) else [types]
    for t in types:
        if t not in BLOCK_TYPES:
            raise SchemaError(where + ".block.type",
                              f"unknown block type {t!r}; known: {', '.join(BLOCK_TYPES)}")
    if len(set(types)) != len(types):
        raise SchemaError(where + ".block.type", "duplicate block types")
    if types == ["skip"]:
        raise SchemaError(where + ".block.type", "a stage needs a block type other than skip")
    div = blk.get("divisor", opts["divisor"])
    st = {
        "widths": _choices(where + ".width", spec["width"]),
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


def _normalize(schema: Mapping) -> dict:
    if not isinstance(schema, Mapping):
        raise SchemaError("<space>", f"expected a mapping, got {type(schema).__name__}")
    extra = set(schema) - {"name", "reference", "description", "input", "options", "stem",
                           "stages", "head"}
    if extra:
        raise SchemaError("<space>", f"unknown keys {sorted(extra)}")
    if not isinstance(schema.get("name"), str) or not schema["name"]:
        raise SchemaError("name", "a space needs a non-empty string name")
    opts = dict(_DEFAULT_OPTIONS)
    o = schema.get("options") or {}
    extra = set(o) - set(_DEFAULT_OPTIONS)
    if extra:
        raise SchemaError("options", f"unknown options {sorted(extra)}")
    opts.update(o)
    if opts["global_pool"] not in ("adaptive", "mean_wh"):
        raise SchemaError("options.global_pool", "must be 'adaptive' or 'mean_wh'")
    opts["inplace"] = {_act("options.inplace", a) for a in (opts["inplace"] or [])}
    if opts["divisor"] is not None:
        opts["divisor"] = _int("options.divisor", opts["divisor"])
    inp = schema.get("input") or {}
    extra = set(inp) - {"channels", "resolution"}
    if extra:
        raise SchemaError("input", f"unknown keys {sorted(extra)}")
    stages = schema.get("stages")
    if not isinstance(stages, (list, tuple)) or not stages:
        raise SchemaError("stages", "a space needs a non-empty list of stages")
    return {
        "name": schema["name"],
        "reference": str(schema.get("reference", "")),
        "description": str(schema.get("description", "")),
        "channels": _int("input.channels", inp.get("channels", 3)),
        "resolutions": _resolutions("input.resolution", inp.get("resolution", 224)),
        "options": opts,
        "stem": [_fixed_layer(f"stem[{i}]", s, opts) for i, s in enumerate(schema.get("stem") or [])],
        "stages": [_stage(f"stages[{i}]", s, opts) for i, s in enumerate(stages)],
        "head": [_fixed_layer(f"head[{i}]", s, opts) for i, s in enumerate(schema.get("head") or [])],
    }


# ================================================================== builders
def _out_size(h: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    return (h + 2 * p - k) // s + 1


class _Builder:
    """Writes layers and blocks into a :class:`Net`, tracking the spatial size
    per resolution (an array) for the records patched per candidate."""

    def __init__(self, opts: dict):
        self.opts = opts

    def act(self, net: Net, x: int, kind: Optional[str]) -> int:
        if kind is None:
            return x
        return net.act(x, kind, inplace=kind in self.opts["inplace"])

    def global_pool(self, net: Net, x: int, h: np.ndarray, patches: list) -> int:
        if self.opts["global_pool"] == "mean_wh":
            # x.mean(3, keepdim=True).mean(2, keepdim=True): the first pool's
            # height is the input's, filled per candidate from ``h``
            first = net.adaptive_avgpool(x, (0, 1))
            patches.append((first, h))
            return net.adaptive_avgpool(first, 1)
        return net.global_avgpool(x)

    def conv(self, net, x, cout, k, s=1, groups=1, bias=False, bn=True, act=None, padding=None):
        x = net.conv(x, cout, k, stride=s, padding=k // 2 if padding is None else padding,
                     groups=groups, bias=bias)
        if bn:
            x = net.bn(x)
        return self.act(net, x, act)

    def mbconv(self, net, x, cin, cout, k, s, e, act, se, residual, divisor, h, patches):
        inp = x
        if e == 1:
            mid = cin
        else:
            mid = int(round(cin * e))
            if divisor:
                mid = make_divisible(mid, divisor)
            x = self.conv(net, x, mid, 1, act=act)
        x = self.conv(net, x, mid, k, s, groups=mid, act=act)
        h = _out_size(h, k, s, k // 2)
        if se:
            se_mid = make_divisible(mid // se["reduction"], se["divisor"])
            y = self.global_pool(net, x, h, patches)
            y = net.conv(y, se_mid, 1, bias=True)
            y = self.act(net, y, se["act"])
            y = net.conv(y, mid, 1, bias=True)
            y = self.act(net, y, se["gate"])
            x = net.mul(x, y)
        x = self.conv(net, x, cout, 1)
        if residual and s == 1 and cin == cout:
            x = net.add(x, inp)
        return x, h

    def _shortcut_add(self, net, x, inp, cin, cout, s, act):
        if s != 1 or cin != cout:
            inp = self.conv(net, inp, cout, 1, s, padding=0)
        return self.act(net, net.add(x, inp), act)

    def resnet_basic(self, net, x, cin, cout, k, s, act, h):
        inp = x
        x = self.conv(net, x, cout, k, s, act=act)
        x = self.conv(net, x, cout, k)
        return self._shortcut_add(net, x, inp, cin, cout, s, act), _out_size(h, k, s, k // 2)

    def resnet_bottleneck(self, net, x, cin, cout, k, s, e, act, divisor, h):
        inp = x
        mid = int(round(cout * e))
        if divisor:
            mid = make_divisible(mid, divisor)
        x = self.conv(net, x, mid, 1, act=act)
        x = self.conv(net, x, mid, k, s, act=act)
        x = self.conv(net, x, cout, 1)
        return self._shortcut_add(net, x, inp, cin, cout, s, act), _out_size(h, k, s, k // 2)

    def block(self, net, x, typ, cin, cout, k, s, e, st, h, patches):
        """One stage block (``st``: the stage's normalized spec)."""
        if typ == "conv":
            x = self.conv(net, x, cout, k, s, bias=st["bias"], bn=st["bn"], act=st["act"])
            return x, _out_size(h, k, s, k // 2)
        if typ == "mbconv":
            return self.mbconv(net, x, cin, cout, k, s, e, st["act"], st["se"], st["residual"],
                               st["divisor"], h, patches)
        if typ == "resnet_basic":
            return self.resnet_basic(net, x, cin, cout, k, s, st["act"], h)
        if typ == "resnet_bottleneck":
            return self.resnet_bottleneck(net, x, cin, cout, k, s, e, st["act"], st["divisor"], h)
        raise AssertionError(typ)

    def fixed(self, net, x, spec, cin, h, patches):
        """One stem/head layer; returns (output, channels, spatial size)."""
        t = spec["type"]
        if t in ("mbconv", "resnet_basic", "resnet_bottleneck"):
            st = {"act": spec["act"], "se": spec.get("se"), "residual": spec.get("residual", True),
                  "divisor": spec.get("divisor")}
            x, h = self.block(net, x, t, cin, spec["out"], spec["kernel"], spec["stride"],
                              spec.get("expand", 1), st, h, patches)
            return x, spec["out"], h
        if t == "conv":
            g = cin if spec["groups"] == "depthwise" else spec["groups"]
            x = self.conv(net, x, spec["out"], spec["kernel"], spec["stride"], g, spec["bias"],
                          spec["bn"], spec["act"], spec["padding"])
            return x, spec["out"], _out_size(h, spec["kernel"], spec["stride"], spec["padding"])
        if t in ("maxpool", "avgpool"):
            f = net.maxpool if t == "maxpool" else net.avgpool
            x = f(x, spec["kernel"], spec["stride"], spec["padding"])
            return x, cin, _out_size(h, spec["kernel"], spec["stride"], spec["padding"])
        if t == "global_pool":
            return self.global_pool(net, x, h, patches), cin, np.ones_like(h)
        if t == "flatten":
            return net.flatten(x), cin, h
        if t == "dropout":
            return net.dropout(x), cin, h
        if t == "linear":
            return net.linear(x, spec["out"], bias=spec["bias"]), spec["out"], h
        raise AssertionError(t)


# ===================================================================== space
_COLUMN_DOC = {
    "r": "int16 (n,): input resolution",
    "d": "int8 (n, stages): depth of each stage",
    "w": "int16 (n, stages): width of each stage",
    "op": "int8 (n, positions): block type of each position (index into block_types)",
    "ks": "int8 (n, positions): kernel of each position",
    "e": "int8 or float32 (n, positions): expansion of each position",
}
_ORDER = ("op", "ks", "e", "d", "w", "r")
#: compile-time bound on block templates (each a few records, built once)
MAX_TEMPLATES = 200_000


class DeclarativeSpace(SearchSpace):
    """A chain space compiled from a declarative definition (module docstring).

    Parameters
    ----------
    schema : mapping
        The definition (as loaded from YAML).
    source : str, optional
        Where it came from (shown in ``params``).

    Attributes
    ----------
    block_types : tuple of str
        The block type names, in the order ``op`` column values index.
    n_positions : int
        Block positions (all stages at their largest depth).
    """

    def __init__(self, schema: Mapping, source: Optional[str] = None):
        self.schema = copy.deepcopy(dict(schema))
        self.spec = spec = _normalize(self.schema)
        self.source = source
        self.name = spec["name"]
        self.reference = spec["reference"] or spec["description"]
        st = spec["stages"]
        self.block_types = tuple(dict.fromkeys(t for s in st for t in s["types"]))
        self.n_stages = len(st)
        self._stage_pos = np.cumsum([0] + [max(s["depths"]) for s in st])
        self.n_positions = int(self._stage_pos[-1])
        self.resolutions = np.asarray(spec["resolutions"], dtype=np.int64)
        # a column exists for every dimension with a choice somewhere
        has = {"r": len(self.resolutions) > 1,
               "d": any(len(s["depths"]) > 1 for s in st),
               "w": any(len(s["widths"]) > 1 for s in st),
               "op": any(len(s["types"]) > 1 for s in st),
               "ks": any(len(s["kernels"]) > 1 for s in st),
               "e": any(len(s["expands"]) > 1 for s in st)}
        self._e_float = any(isinstance(x, float) for s in st for x in s["expands"])
        # a space without choices (one network) still names its resolution
        self.columns = tuple(c for c in _ORDER if has[c]) or ("r",)
        self.native_columns = {c: _COLUMN_DOC[c] for c in self.columns}
        self.native_example = "{" + ", ".join(f'"{c}": ...' for c in self.columns) + "}"
        self._compile()
        self._build_lookups()

    @property
    def params(self) -> dict:
        # shipped spaces are rebuilt from their name alone; others from a path
        if self.source is None or self.source in map(os.fspath, SHIPPED.values()):
            return {}
        return {"path": self.source}

    def __repr__(self) -> str:
        src = f", path={self.params['path']!r}" if self.params else ""
        return f"DeclarativeSpace({self.name!r}{src})"

    # -- compilation ------------------------------------------------------------
    def _compile(self) -> None:
        spec, b = self.spec, _Builder(self.spec["options"])
        st = spec["stages"]
        self._pool = pool = TemplatePool(n_res=len(self.resolutions))
        h = self.resolutions.copy()
        net = Net(spec["channels"], 0, 0)
        x, c, patches = net.input, spec["channels"], []
        for i, layer in enumerate(spec["stem"]):
            x, c, h = b.fixed(net, x, layer, c, h, patches)
            self._check_size(h, f"stem[{i}]")
        self._stem_tid = pool.add_net(net, include_input=True, patches=patches)
        self._empty_tid = pool.add_empty()
        # per position: first template id and the radices of its index
        self._base = np.zeros(self.n_positions, dtype=np.int64)
        self._radix = []          # per position (nt, nk, ne, nwin, nw)
        self._allowed_op = []     # per position: allowed local type indices
        prev_widths = [c]
        n_templates = sum(len(sd["types"]) * len(sd["kernels"]) * len(sd["expands"])
                          * len(sd["widths"]) * (max(sd["depths"]) - 1 + len(prev))
                          for sd, prev in zip(st, [prev_widths] + [x["widths"] for x in st]))
        if n_templates > MAX_TEMPLATES:
            raise SchemaError("stages", f"{n_templates} block templates (one per position and "
                                        f"combination of choices) exceed {MAX_TEMPLATES}; "
                                        "split the space or use fewer choices per stage")
        for s, sd in enumerate(st):
            h_out = (h - 1) // sd["stride"] + 1    # odd kernels, same padding
            self._check_size(h_out, f"stages[{s}]")
            for i in range(max(sd["depths"])):
                p = self._stage_pos[s] + i
                stride = sd["stride"] if i == 0 else 1
                win_choices = prev_widths if i == 0 else [None]
                self._base[p] = len(pool)
                self._radix.append((len(sd["types"]), len(sd["kernels"]), len(sd["expands"]),
                                    len(win_choices), len(sd["widths"])))
                self._allowed_op.append(np.array([j for j, t in enumerate(sd["types"])
                                                  if not (i == 0 and t == "skip")]))
                for typ, k, e, win, wout in itertools.product(
                        sd["types"], sd["kernels"], sd["expands"], win_choices, sd["widths"]):
                    cin = wout if win is None else win
                    if typ == "skip":
                        pool.add_empty()
                        continue
                    bnet, patches = Net(cin, 0, 0), []
                    b.block(bnet, bnet.input, typ, cin, wout, k, stride, e, sd, h if i == 0 else h_out,
                            patches)
                    pool.add_net(bnet, patches=patches)
            h, prev_widths = h_out, sd["widths"]
        self._head_base = len(pool)
        for w in prev_widths:
            hnet, patches, hh, c = Net(w, 0, 0), [], h, w
            x = hnet.input
            for i, layer in enumerate(spec["head"]):
                x, c, hh = b.fixed(hnet, x, layer, c, hh, patches)
                self._check_size(hh, f"head[{i}]")
            pool.add_net(hnet, patches=patches)
        pool.freeze()

    def _build_lookups(self) -> None:
        """Value -> choice index tables of the integer columns, and the
        per-position radices that turn choice indices into template ids."""
        self._luts = {}
        for col in self.columns:
            if col == "r" or (col == "e" and self._e_float):
                continue
            sets = self._choice_sets(col)
            lo = min(min(c) for _, c in sets)
            hi = max(max(c) for _, c in sets)
            table = np.full((self._width(col), int(hi - lo + 1)), -1, dtype=np.int64)
            for sl, choices in sets:
                for j, v in enumerate(choices):
                    table[sl, int(v - lo)] = j
            if col == "op":       # a stage's first block is never skipped
                for s in range(self.n_stages):
                    p = int(self._stage_pos[s])
                    allowed = set(self._allowed_op[p].tolist())
                    for j, v in enumerate(sets[s][1]):
                        if j not in allowed:
                            table[p, int(v - lo)] = -1
            self._luts[col] = (lo, table)
        P = self.n_positions
        rad = np.asarray(self._radix, dtype=np.int64).reshape(P, 5)
        self._nk, self._ne, self._nwin, self._nw = rad[:, 1], rad[:, 2], rad[:, 3], rad[:, 4]
        self._pos_stage = np.repeat(np.arange(self.n_stages),
                                    np.diff(self._stage_pos)).astype(np.int64)
        self._pos_in_stage = np.arange(P) - self._stage_pos[self._pos_stage]
        # the width choice a position's input width follows (previous stage)
        self._pos_prev = np.maximum(self._pos_stage - 1, 0)
        self._pos_takes_prev = (self._pos_in_stage == 0) & (self._pos_stage > 0)
        self._depths = [np.asarray(sd["depths"]) for sd in self.spec["stages"]]

    def _check_size(self, h: np.ndarray, where: str) -> None:
        if (h < 1).any():
            r = int(self.resolutions[np.argmax(h < 1)])
            raise SchemaError(where, f"the feature map vanishes at resolution {r}")

    # -- choices per position ---------------------------------------------------
    def _choice_sets(self, col: str) -> list[tuple[slice, list]]:
        """(column slice, choice values) per stage for a column."""
        out = []
        for s, sd in enumerate(self.spec["stages"]):
            sl = slice(int(self._stage_pos[s]), int(self._stage_pos[s + 1]))
            if col == "op":
                out.append((sl, [self.block_types.index(t) for t in sd["types"]]))
            elif col == "ks":
                out.append((sl, sd["kernels"]))
            elif col == "e":
                out.append((sl, sd["expands"]))
            elif col == "d":
                out.append((slice(s, s + 1), sd["depths"]))
            elif col == "w":
                out.append((slice(s, s + 1), sd["widths"]))
        return out

    def _dtype(self, col: str):
        return {"r": np.int16, "d": np.int8, "w": np.int16, "op": np.int8, "ks": np.int8,
                "e": np.float32 if self._e_float else np.int8}[col]

    def _width(self, col: str) -> int:
        return self.n_stages if col in ("d", "w") else self.n_positions

    # -- natives ------------------------------------------------------------------
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        cols = {}
        for col in self.columns:
            if col == "r":
                cols["r"] = self.resolutions[rng.integers(0, len(self.resolutions), n)].astype(np.int16)
                continue
            out = np.empty((n, self._width(col)), dtype=self._dtype(col))
            for sl, choices in self._choice_sets(col):
                vals = np.asarray(choices, dtype=out.dtype)
                out[:, sl] = vals[rng.integers(0, len(vals), (n, sl.stop - sl.start))]
            if col == "op":
                # a stage's first block is never skipped: redraw it among the others
                for s in range(self.n_stages):
                    p = int(self._stage_pos[s])
                    allowed = self._allowed_op[p]
                    if len(allowed) < self._radix[p][0]:
                        vals = np.asarray([self.block_types.index(self.spec["stages"][s]["types"][j])
                                           for j in allowed], dtype=out.dtype)
                        out[:, p] = vals[rng.integers(0, len(vals), n)]
            cols[col] = out
        return cols

    def _fail(self, cand, field, reason):
        raise NativeError(self.name, None if cand is None else int(cand), field, reason)

    def _indices(self, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate columns; return the choice index of every entry."""
        missing = [c for c in self.columns if c not in cols]
        if missing:
            self._fail(None, missing[0], f"column missing (need {', '.join(self.columns)})")
        n = n_rows(cols)
        idx = {}
        for col in self.columns:
            a = np.asarray(cols[col])
            if col == "r":
                if a.ndim != 1 or a.shape[0] != n:
                    self._fail(None, "r", f"expected shape ({n},), got {a.shape}")
                ri = np.clip(np.searchsorted(self.resolutions, a), 0, len(self.resolutions) - 1)
                bad = self.resolutions[ri] != a
                if bad.any():
                    i = int(np.argmax(bad))
                    self._fail(i, "r", f"{a[i]} is not a resolution of the space "
                                       f"({_describe(self.resolutions)})")
                idx["r"] = ri
                continue
            width = self._width(col)
            if a.ndim != 2 or a.shape != (n, width):
                self._fail(None, col, f"expected shape ({n}, {width}), got {a.shape}")
            lut = self._luts.get(col)
            if lut is not None and a.dtype.kind in "iu":
                # one table lookup: lut[position, value - lo] = choice index or -1
                lo, table = lut
                v = a.astype(np.int64) - lo
                inside = (v >= 0) & (v < table.shape[1])
                ci = np.where(inside, table[np.arange(width), np.where(inside, v, 0)], -1)
            else:     # fractional expansions (or float input): compare per choice
                ci = np.full(a.shape, -1, dtype=np.int64)
                for sl, choices in self._choice_sets(col):
                    sub = a[:, sl]
                    for j, val in enumerate(choices):
                        ci[:, sl][sub == np.asarray(val, dtype=self._dtype(col))] = j
                if col == "op":
                    for s in range(self.n_stages):
                        p = int(self._stage_pos[s])
                        ok = np.isin(ci[:, p], self._allowed_op[p])
                        ci[~ok, p] = -1
            if (ci < 0).any():
                i, j = np.argwhere(ci < 0)[0]
                if col in ("d", "w"):
                    choices = self._choice_sets(col)[j][1]
                    where = f"stage {j}"
                else:
                    s = int(np.searchsorted(self._stage_pos, j, side="right") - 1)
                    choices = self._choice_sets(col)[s][1]
                    where = f"position {j} (stage {s}, block {j - self._stage_pos[s]})"
                    if col == "op":
                        choices = [self.block_types[c] for c in choices]
                        if j == self._stage_pos[s]:
                            choices = [c for c in choices if c != "skip"]
                val = a[i, j]
                if col == "op":
                    val = self.block_types[val] if 0 <= val < len(self.block_types) else int(val)
                self._fail(i, col, f"{where} is {val!r}; choices are {choices}")
            idx[col] = ci
        return idx

    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        natives = list(natives)
        n = len(natives)
        cols = {c: (np.zeros(n, dtype=np.int16) if c == "r"
                    else np.zeros((n, self._width(c)), dtype=self._dtype(c))) for c in self.columns}
        names = {t: i for i, t in enumerate(self.block_types)}
        fields = set(self.columns)
        for i, nat in enumerate(natives):    # reading Python objects: one pass
            if not isinstance(nat, Mapping):
                self._fail(i, "<native>",
                           f"expected a dict with {sorted(fields)}, got {type(nat).__name__}")
            extra = set(nat) - fields
            if extra:
                self._fail(i, sorted(extra)[0], f"unknown field (fields are {', '.join(self.columns)})")
            for col in self.columns:
                if col not in nat:
                    self._fail(i, col, "missing")
                v = nat[col]
                if col == "r":
                    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < v < 32768:
                        self._fail(i, "r", f"{v!r} is not a resolution")
                    cols["r"][i] = v
                    continue
                w = self._width(col)
                if not isinstance(v, (list, tuple, np.ndarray)) or len(v) != w:
                    got = len(v) if hasattr(v, "__len__") and not isinstance(v, str) else repr(v)
                    self._fail(i, col, f"expected a list of {w} entries, got {got}")
                for j, x in enumerate(v):
                    if col == "op":
                        if isinstance(x, str):
                            if x not in names:
                                self._fail(i, "op", f"position {j}: unknown op name {x!r}; "
                                                    f"known: {', '.join(self.block_types)}")
                            x = names[x]
                    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                        self._fail(i, col, f"position {j} is {x!r}, not a number")
                    if not -128 <= x <= 32767:
                        self._fail(i, col, f"position {j} is {x!r}, out of range")
                    if cols[col].dtype.kind == "i" and x != int(x):
                        self._fail(i, col, f"position {j} is {x!r}, not an integer")
                    cols[col][i, j] = x
        self._indices(cols)
        return cols

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        lists = {c: np.asarray(cols[c]).tolist() for c in self.columns}
        if "e" in lists and self._e_float:
            # the schema's own values (0.35), not their float32 images
            ei = self._indices(cols)["e"]
            vals = np.empty(ei.shape, dtype=object)
            for sl, choices in self._choice_sets("e"):
                vals[:, sl] = np.asarray(choices, dtype=object)[ei[:, sl]]
            lists["e"] = vals.tolist()
        if "op" in lists:
            lists["op"] = [[self.block_types[v] for v in row] for row in lists["op"]]
        n = n_rows(cols)
        return [{c: lists[c][i] for c in self.columns} for i in range(n)]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """Per-stage/per-position columns as lists (``op`` as dictionary strings)."""
        import pyarrow as pa
        out = {}
        for c in self.columns:
            a = np.ascontiguousarray(cols[c], dtype=self._dtype(c))
            if c == "r":
                out[c] = pa.array(a)
                continue
            n, w = a.shape
            values = pa.array(a.reshape(-1))
            if c == "op":
                values = pa.DictionaryArray.from_arrays(values, pa.array(list(self.block_types)))
            offsets = pa.array(np.arange(0, n * w + 1, w, dtype=np.int32))
            out[c] = pa.ListArray.from_arrays(offsets, values)
        return out

    # -- encoding -----------------------------------------------------------------
    def template_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Validated columns -> (template id per slot, resolution index)."""
        idx = self._indices(cols)
        n = n_rows(cols)
        zeros_p = np.zeros((n, self.n_positions), dtype=np.int64)
        zeros_s = np.zeros((n, self.n_stages), dtype=np.int64)
        t_i, k_i, e_i = (idx.get(c, zeros_p) for c in ("op", "ks", "e"))
        d_i, w_i = idx.get("d", zeros_s), idx.get("w", zeros_s)
        depth = np.empty((n, self.n_stages), dtype=np.int64)
        for s, ds in enumerate(self._depths):
            depth[:, s] = ds[d_i[:, s]]
        # all positions at once: mixed-radix index of the position's choices
        win = np.where(self._pos_takes_prev, w_i[:, self._pos_prev], 0)
        local = (((t_i * self._nk + k_i) * self._ne + e_i) * self._nwin + win) * self._nw \
            + w_i[:, self._pos_stage]
        active = self._pos_in_stage < depth[:, self._pos_stage]
        tids = np.empty((n, self.n_positions + 2), dtype=np.int64)
        tids[:, 0] = self._stem_tid
        tids[:, 1:-1] = np.where(active, self._base + local, self._empty_tid)
        tids[:, -1] = self._head_base + w_i[:, -1]
        r_idx = idx.get("r", np.zeros(n, dtype=np.int64))
        return tids, r_idx

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        tids, r_idx = self.template_ids(cols)
        return self._pool.assemble(tids, r_idx, self.resolutions)


def _describe(res: np.ndarray) -> str:
    if len(res) > 3:
        steps = np.unique(np.diff(res))
        if len(steps) == 1:
            return f"{res[0]}..{res[-1]} in steps of {steps[0]}"
    return ", ".join(str(int(r)) for r in res)


# ================================================================== loading
def compile_space(schema: Mapping, source: Optional[str] = None) -> DeclarativeSpace:
    """Compile a declarative definition (a dict, see the module docstring)."""
    return DeclarativeSpace(schema, source)


def load_space(path, expected_name: Optional[str] = None) -> DeclarativeSpace:
    """Load and compile a YAML (or JSON) space definition.

    Raises :class:`SchemaError` naming the offending key for invalid files.
    """
    path = Path(path)
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is the 'yaml' extra
        raise ImportError("declarative spaces need PyYAML: pip install 'nasflops[yaml]'") from None
    with open(path) as f:
        schema = yaml.safe_load(f)
    space = compile_space(schema, source=os.fspath(path))
    if expected_name is not None and space.name != expected_name:
        raise SchemaError(f"{path}: name", f"is {space.name!r}; shipped files must be named "
                                           f"after their space ({expected_name!r})")
    return space


def _register_shipped() -> dict[str, Path]:
    import functools

    from . import register_space
    shipped = {}
    for p in sorted(Path(__file__).parent.glob("*.yaml")):
        name = p.stem.replace("_", "-")
        shipped[name] = p
        register_space(name)(functools.partial(load_space, p, expected_name=name))
    return shipped


#: shipped definitions: registry name -> file
SHIPPED = _register_shipped()
