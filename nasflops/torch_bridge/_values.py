"""What ``from_torch`` knows of each tensor of a run, and the translation state.

A tensor of the recorded run maps to a *value*:

* :class:`V` -- an activation: the output of record ``rec``, with the layout
  of the tensor's dimensions as labels (``("N", "C", "H", "W")``; channels-
  last ``("N", "H", "W", "C")``; ``("N", "C")`` for a ``C x 1 x 1`` record; a
  label missing from ``dims`` is 1 in the record), so permutes, squeezes and
  views translate to nothing;
* :class:`Static` -- a parameter (or a view of one), a buffer, or a constant
  tensor made inside ``forward``;
* :class:`Lazy` -- a ``chunk``/``split`` piece, which becomes a slice record
  when something reads it;
* :class:`T` -- a token-world activation (``_tokens.py``): all of record
  ``rec``'s output, per sample, in whatever shape and order torch holds it
  (``N x L x C``, heads split ``N x H x L x d``, windows, a permuted view);
  a reader that needs a layout asks for it and a view record is written only
  then, so reshapes and permutes between two ops cost no record;
* :class:`Marker` -- a step of a channel-shuffle pattern;
* :class:`Bad` -- the output of an op that could not be translated (ops
  reading it are not reported: they are consequences, not gaps).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import torch

from ..spec import Call, Net
from ._record import Event

CANON = ("N", "C", "H", "W")
#: record axis of each label (concat's ``axis``)
AXIS = {"C": 0, "H": 1, "W": 2}


class Unsupported(Exception):
    """A construct ``from_torch`` cannot translate (the message says why)."""


class V(NamedTuple):
    rec: int
    dims: tuple = CANON


class T(NamedTuple):
    """A token-world activation: the elements of record ``rec`` (per sample),
    in any shape; ``bdim`` is the torch dimension holding the batch as its
    outermost factor."""

    rec: int
    bdim: int = 0


class Static(NamedTuple):
    name: str
    param: bool


class Bad(NamedTuple):
    why: str = ""


class Stale(NamedTuple):
    """``x * w`` whose record took the ``+ b`` that followed it: reading it
    again would read the biased tensor."""

    rec: int


class Lazy(NamedTuple):
    src: V
    label: str
    start: int
    count: int
    ev: Event


class Marker(NamedTuple):
    kind: str
    rec: int
    groups: int
    dims: tuple = CANON


@dataclass
class Ctx:
    """The translation state: the records being written and the value of
    every tensor seen so far."""

    net: Net
    module_map: dict
    names: list = field(default_factory=lambda: ["input"])
    shapes: list = field(default_factory=list)        # record -> (C, H, W)
    tensor_of: dict = field(default_factory=dict)     # record -> (tensor, dims), checked
    vals: dict = field(default_factory=dict)          # id(tensor) -> value
    pieces: dict = field(default_factory=dict)        # chunk piece -> its record
    geoms: dict = field(default_factory=dict)         # token-world record -> (G, C, H, W, layout)
    numel_of: dict = field(default_factory=dict)      # token-world record -> tensor, checked
    param_numel: dict = field(default_factory=dict)   # parameter name -> its element count
    added: set = field(default_factory=set)           # parameters already counted by a record
    batch: int = 1

    def rec(self, method: str, ev: Event, *args, call: Optional[Call] = None,
            out=None, dims=None, **kw) -> int:
        """Append one record (``Net.<method>``) with the event's call kind and
        name; ``out``/``dims``: the tensor it stands for, checked at the end."""
        r = getattr(self.net, method)(*args, **kw)
        for i in range(len(self.names), r + 1):     # chains append several records
            self.net.set(i, call=ev.call if call is None else call)
            self.names.append(ev)       # named on demand (Translation.names)
            self.shapes.append(None)
        if isinstance(out, torch.Tensor) and dims is not None:
            self.tensor_of[r] = (out, dims)
            self.shapes[r] = shape_of(out, dims)
        return r

    def geom(self, rec: int) -> tuple:
        """``(G, C, H, W, layout)`` of a record (layout 0 image, 1 tokens,
        2 matrix)."""
        g = self.geoms.get(rec)
        if g is not None:
            return g
        c, h, w = self.shape(rec)
        return (1, c, h, w, 0)

    def shape(self, rec: int) -> tuple:
        """``(C, H, W)`` of a record (from the tensor torch produced for it)."""
        s = self.shapes[rec]
        if s is None:
            raise Unsupported("an input whose shape nasflops did not keep")
        return s

    def act(self, v, ev: Event) -> V:
        """The activation ``v`` stands for; a chunk piece becomes its record."""
        if isinstance(v, Lazy):
            key = (v.src, v.label, v.start, v.count, id(v.ev))
            if key not in self.pieces:
                self.pieces[key] = self._piece(v)
            return self.pieces[key]
        if not isinstance(v, V):
            raise Unsupported(f"an input that is not an activation of the model ({what(v)})")
        return v

    def _piece(self, v: Lazy) -> V:
        c, h, w = self.shape(v.src.rec)
        if v.label == "C":
            r = self.rec("slice", v.ev, v.src.rec, v.start, v.count)
            self.shapes[r] = (v.count, h, w)
        else:
            start = (v.start, 0) if v.label == "H" else (0, v.start)
            size = (v.count, w) if v.label == "H" else (h, v.count)
            r = self.rec("crop", v.ev, v.src.rec, start, size)
            self.shapes[r] = (c,) + size
        return V(r, v.src.dims)


def shape_of(t: torch.Tensor, dims: tuple) -> tuple:
    """The record shape ``(C, H, W)`` a tensor laid out ``dims`` stands for."""
    if dims is CANON:
        s = t.shape
        return int(s[1]), int(s[2]), int(s[3])
    size = dict(zip(dims, (int(s) for s in t.shape)))
    return tuple(size.get(k, 1) for k in ("C", "H", "W"))


def what(v) -> str:
    if isinstance(v, Static):
        return f"parameter {v.name}" if v.param else f"a tensor made in forward ({v.name})"
    if isinstance(v, Marker):
        return f"a {v.kind} step of a channel shuffle"
    if isinstance(v, Bad) and v.why:
        return v.why
    if isinstance(v, T):
        return "a token tensor"
    if isinstance(v, Stale):
        return "x * w read again after x * w + b was translated as one biased scale"
    return type(v).__name__


def canon(v: V, what_: str) -> int:
    """The record of an ``N x C x H x W`` activation (else unsupported)."""
    if v.dims != CANON:
        raise Unsupported(f"{what_} needs an N x C x H x W tensor; this one is laid out "
                          f"{' x '.join(v.dims)}")
    return v.rec


def arg(ev: Event, pos: int, name: str, default=None):
    """Argument ``name`` of a call, by keyword or position."""
    if name in ev.kwargs:
        return ev.kwargs[name]
    return ev.args[pos] if len(ev.args) > pos else default


def pair(v) -> tuple:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def label(v, dim: int, rank: int) -> str:
    """The label of tensor dimension ``dim`` (negative allowed)."""
    return v.dims[dim % rank]


def layout(v) -> str:
    return " x ".join(v.dims)
