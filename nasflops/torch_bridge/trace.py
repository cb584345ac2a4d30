"""``from_torch``: a layer spec from a real ``nn.Module``.

The model runs once (``_record.py``): eagerly, on a concrete input, with every
op recorded as a hook tool sees it (a module, a function, a tensor method or
an operator), with its tensors, the module it ran in and the user's source
line.  Untraceable Python (data-dependent branches, ``assert``,
``int(x.size(1) * 0.5)``, einops) just runs.  Each recorded op is then
translated by the reader its registry entry names (``_readers.py``,
``_layout.py``); every record's shape is checked against the tensor torch
produced for it.

What cannot be translated is collected: one :class:`UnsupportedOpsError`
lists every unsupported construct once (the torch callable, the source line,
the module path), in execution order.  The output of an unsupported op is
replaced by a stand-in of the right shape, so the ops after it are still
translated and only real gaps are listed.

Parameters are accounted for honestly: :func:`translate` reports the modules
that never ran and the parameters never read, so ``params`` (of what runs)
reconciles with ``sum(p.numel() for p in model.parameters())``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn as nn

from .. import _core
from ..conventions import get_convention
from ..scoring import layer_table
from ..spec import Net
from . import _record, _tokens, registry
from ._readers import MODULE_READERS, READERS
from ._record import Offender, UnsupportedOpsError
from ._values import (CANON, Bad, Ctx, Lazy, Marker, Stale, Static, T, Unsupported, V,
                      shape_of)

__all__ = ["from_torch", "translate", "Translation", "UnusedParametersWarning"]

_ACTIVE = (V, Lazy, Marker, Stale, T)
_GUESS = {4: CANON, 2: ("N", "C"), 3: ("N", "C", "H")}


class UnusedParametersWarning(UserWarning):
    """A model holds parameters its forward pass never uses."""


@dataclass
class Translation:
    """What :func:`translate` returns.

    Attributes
    ----------
    records : ndarray of LAYER_DTYPE
        One architecture, in execution order.
    names : list of str
        Per record: the module path of a module call (``layer1.0.conv1``), or
        ``<path of the calling module>:<callable>`` (``layer1.0:add``; the
        model's own forward is the empty path); ``"input"`` for record 0.
        Several records made by one call (a concat of more than four tensors)
        share its name.
    params_total : int
        ``sum(p.numel() for p in model.parameters())``.
    params_run : int
        Parameters the forward pass reads (what the records count).
    unused : list of (str, int)
        Modules never called and parameters never read, with their
        parameter counts: ``params_total - params_run`` is their sum.
    """

    records: np.ndarray
    params_total: int
    params_run: int
    unused: list = field(default_factory=list)
    made_by: list = field(default_factory=list, repr=False)   # per record: "input" or its event

    @property
    def names(self) -> list:
        return [m if isinstance(m, str) else m.name() for m in self.made_by]

    def __str__(self) -> str:
        lines = [f"{len(self.records)} records; params {self.params_run:,} of "
                 f"{self.params_total:,} run"]
        for name, n in self.unused:
            lines.append(f"  never used: {name} ({n:,} params)")
        return "\n".join(lines)


def _hint() -> str:
    return ("Your own module types can be mapped to one nasflops op each: "
            "from_torch(model, shape, module_map={MyModule: op}) with op one of "
            f"{', '.join(registry.MAPPABLE)}.")


def _value(ctx: Ctx, t: torch.Tensor):
    v = ctx.vals.get(id(t))
    return v if v is not None else Static("a buffer or constant", False)


def _set_out(ctx: Ctx, ev: _record.Event, value) -> None:
    outs = ev.out if isinstance(ev.out, (tuple, list)) else (ev.out,)
    vals = value if isinstance(value, tuple) and not isinstance(value, _ACTIVE + (Static, Bad)) \
        else (value,) * len(outs)
    for t, v in zip(outs, vals):
        if isinstance(t, torch.Tensor):
            ctx.vals[id(t)] = v


def _stand_in(ctx: Ctx, ev: _record.Event, ins: list):
    """A record of the right shape for the output of an unsupported op, so the
    ops after it are translated (and their own gaps found)."""
    src = next((v for v in ins if isinstance(v, V)), None) if ev.live else None
    outs = ev.out if isinstance(ev.out, (tuple, list)) else (ev.out,)
    tok = next(((v, t) for v, t in zip(ins, ev.ins) if isinstance(v, T)), None) \
        if ev.live else None
    stand = []
    for t in outs:
        if tok is not None and isinstance(t, torch.Tensor) and t.numel() == tok[1].numel():
            stand.append(tok[0])      # the same elements, as far as shapes go
            continue
        dims = _GUESS.get(t.dim()) if isinstance(t, torch.Tensor) else None
        if src is None or dims is None:
            stand.append(Bad(f"the output of {ev.callable()}, which is unsupported"))
            continue
        r = ctx.rec("identity", ev, src.rec)
        ctx.shapes[r] = shape_of(t, dims)
        stand.append(V(r, dims))
    return tuple(stand) if isinstance(ev.out, (tuple, list)) else stand[0]


def _step(ctx: Ctx, ev: _record.Event, used: set, seen: dict) -> Optional[str]:
    """Translate one event; the reason when it is unsupported."""
    ins = [_value(ctx, t) for t in ev.ins]
    if any(isinstance(v, Bad) for v in ins):
        _set_out(ctx, ev, Bad())
        return None
    m = ev.module
    if m is not None:
        own = list(m.parameters()) if m._modules else \
            [p for p in m._parameters.values() if p is not None]
        used.update(id(p) for p in own)
        if own:
            seen.setdefault(id(m), []).append(ev)
    for t in ev.ins:
        if isinstance(ctx.vals.get(id(t)), Static):
            used.add(id(t))
    if not any(isinstance(v, _ACTIVE) for v in ins):
        params = [v for v in ins if isinstance(v, Static) and v.param]
        if m is not None and own:     # a module of constants: its parameters (GPT-2's wpe)
            name = ev.name()
            ctx.param_numel.setdefault(name, sum(int(p.numel()) for p in own))
            params = [Static(name, True)]
        _set_out(ctx, ev, params[0] if params else Static(ev.callable(), False))
        return None
    tokens = ev.kind in _tokens.ALWAYS or any(isinstance(v, T) or (
        isinstance(v, Marker) and v.kind in _tokens.MARKERS) for v in ins)
    reader = _tokens.READERS.get(ev.kind) if tokens else None
    if reader is None:
        reader = (MODULE_READERS.get(ev.kind) if m is not None else None) or \
            READERS.get(ev.kind)
    if ev.entry is None or reader is None:
        _set_out(ctx, ev, _stand_in(ctx, ev, ins))
        return "nasflops has no op for it"
    try:
        if tokens and reader not in _tokens.READERS.values():
            # an image op reading a token tensor: N x C x H x W or N x C
            ins = [_tokens.image_of(ctx, ev, v, t) if isinstance(v, T) else v
                   for v, t in zip(ins, ev.ins)]
            for v, t in zip(ins, ev.ins):
                ctx.vals[id(t)] = v
        out = reader(ctx, ev, ins)
    except Unsupported as exc:
        _set_out(ctx, ev, _stand_in(ctx, ev, ins))
        return str(exc)
    _set_out(ctx, ev, out)
    return None


def _offenders(failed: list, seen: dict) -> list:
    """One entry per construct (callable + source line), in order of first call."""
    for calls in seen.values():
        if len(calls) > 1:
            first = calls[0]
            failed.append((first, f"called {len(calls)} times with shared weights; a spec has "
                                  "one record, with its own parameters, per call"))
    groups: dict = {}
    for ev, reason in failed:
        key = (ev.callable(), ev.location(), reason)
        if key in groups:
            groups[key] = groups[key]._replace(count=groups[key].count + 1)
        else:
            groups[key] = Offender(ev.name(), ev.callable(), reason, ev.location())
    return list(groups.values())


def _run(model: nn.Module, input_shape, batch_size: int, module_map: dict):
    with _record.eval_mode(model):
        x = _record.input_tensor(model, input_shape, batch_size)
        run = _record.record(model, x, module_map)
    run.events = _record.fuse(run.events)
    return run


def translate(model: nn.Module, input_shape, batch_size: int = 1,
              module_map: Optional[dict] = None) -> Translation:
    """Translate a torch model into records, with names and a parameter report.

    Parameters are as :func:`from_torch`'s.

    Returns
    -------
    Translation

    Raises
    ------
    UnsupportedOpsError
        Every construct nasflops cannot translate, each once, with its source
        line and module path.

    Examples
    --------
    >>> import torch.nn as nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv, self.spare = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 1)
    ...     def forward(self, x):
    ...         return self.conv(x).relu()
    >>> t = translate(Net(), (3, 8, 8))
    >>> t.names
    ['input', 'conv', ':relu']
    >>> t.params_total - t.params_run, t.unused
    (72, [('spare', 72)])
    """
    mmap = _record.check_module_map(module_map)
    run = _run(model, input_shape, batch_size, mmap)
    if run.x.dim() == 2:          # token ids, N x L: one channel (the id) per position
        c, h, w = 1, int(run.x.shape[1]), 1
        ctx = Ctx(Net(c, h, w), mmap)
        ctx.vals[id(run.x)] = T(0)
    else:
        c, h, w = (int(s) for s in run.x.shape[1:])
        ctx = Ctx(Net(c, h, w), mmap)
        ctx.vals[id(run.x)] = V(0, CANON)
    ctx.shapes.append((c, h, w))
    ctx.batch = int(run.x.shape[0])
    for pid, (name, p) in run.params.items():
        ctx.vals[pid] = Static(name, True)
        ctx.param_numel[name] = int(p.numel())
    used: set = set()
    seen: dict = {}
    # an op nasflops cannot translate whose result never reaches the output
    # (`if x.sum() > 0`, an assert) is left out, not reported
    failed = [(ev, why) for ev in run.events
              if (why := _step(ctx, ev, used, seen)) is not None and ev.live]
    offenders = _offenders(failed, seen)
    if offenders:
        raise UnsupportedOpsError(f"cannot translate {type(model).__name__}", offenders, _hint())
    recs = _checked(ctx)
    return _report(model, run, recs, ctx.names, used)


def _report(model: nn.Module, run: _record.Run, recs, names, used: set) -> Translation:
    total = sum(int(p.numel()) for p in model.parameters())
    ran = sum(int(p.numel()) for pid, (_n, p) in run.params.items() if pid in used)
    unused = []
    for name, m in model.named_modules():
        if id(m) in run.called or any(name.startswith(u + ".") for u, _ in unused):
            continue
        n = sum(int(p.numel()) for p in m.parameters() if id(p) not in used)
        if n:
            unused.append((name, n))
    inside = {id(p) for name, _n in unused for p in model.get_submodule(name).parameters()}
    for pid, (name, p) in run.params.items():
        if pid not in used and pid not in inside:
            unused.append((name, int(p.numel())))
    return Translation(recs, total, ran, unused, list(names))


def _checked(ctx: Ctx) -> np.ndarray:
    recs = ctx.net.records
    status, _bad, table = _core.layer_metrics(recs, get_convention("macs").weights, 1, 4, 4)
    if status != 0:
        layer_table(recs)        # raises the SpecError that names the layer
    for i, (t, dims) in ctx.tensor_of.items():
        want = shape_of(t, dims)
        got = tuple(int(v) for v in table[i, :3])       # channels, height, width
        if want != got:  # a translation bug, not a user error
            raise RuntimeError(f"from_torch: record {i} ({ctx.names[i]}) has shape {got} but "
                               f"torch produced {want} ({tuple(t.shape)} laid out {dims})")
    for i, geom in ctx.geoms.items():     # token-world records: (G, C, H, W, layout)
        got = tuple(int(v) for v in table[i, [3, 0, 1, 2, 4]])
        t = ctx.numel_of.get(i)
        if got != geom or (t is not None and t.numel() != ctx.batch * math.prod(geom[:4])):
            raise RuntimeError(f"from_torch: record {i} ({ctx.names[i]}) has shape {got} but "
                               f"the translation meant {geom}" +
                               (f" for a tensor of shape {tuple(t.shape)}" if t is not None
                                else ""))
    return recs


def from_torch(model: nn.Module, input_shape, batch_size: int = 1,
               module_map: Optional[dict] = None, return_names: bool = False):
    """Translate a torch model into one architecture's layer records.

    Parameters
    ----------
    model : nn.Module
        The model; it runs once, in eval mode, without gradients, on a random
        input (convolutions and linear layers are not computed: only their
        shapes are).  Parameters on the ``meta`` device are fine.
    input_shape : tuple
        ``(C, H, W)`` or ``(N, C, H, W)``; the spec holds ``C, H, W`` (the
        batch is a scoring option).
    batch_size : int
        N of the run when ``input_shape`` has three entries.
    module_map : dict, optional
        ``{module type: op}`` for your own modules, which are then not traced
        into: an activation kind (``"hardswish"``, ...), ``"global_avgpool"``,
        ``"identity"``, ``"dropout"``, ``"flatten"`` or ``"zero"``.  The record
        is then a module call, and hook-tool conventions count it as the
        ``torch.nn`` module of that op.
    return_names : bool
        Also return the record names (:attr:`Translation.names`).

    Returns
    -------
    ndarray of LAYER_DTYPE, or (records, names)
        Records in execution order; score them with :func:`nasflops.score`.
        When the model holds parameters its forward never reads, an
        :class:`UnusedParametersWarning` names them (``translate`` returns
        the full report).

    Raises
    ------
    UnsupportedOpsError
        Every construct with no nasflops op, each once, naming the torch
        callable, the source line and the module path.

    Examples
    --------
    >>> import torch.nn as nn, torch.nn.functional as F, nasflops as nf
    >>> from nasflops.torch_bridge import from_torch
    >>> class Block(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    ...     def forward(self, x):
    ...         return F.relu(x + self.conv(x))
    >>> spec, names = from_torch(Block(), (8, 16, 16), return_names=True)
    >>> [nf.spec.op_name(o) for o in spec["op"]], names
    (['input', 'conv2d', 'add', 'act'], ['input', 'conv', ':add', ':relu'])
    >>> [nf.Call(int(c)).name for c in spec["call"][1:]]
    ['MODULE', 'OPERATOR', 'FUNCTION']
    >>> int(nf.score(spec)["macs"][0])
    147456
    """
    t = translate(model, input_shape, batch_size, module_map)
    if t.unused:
        listed = ", ".join(f"{n} ({k:,})" for n, k in t.unused[:8])
        more = f" and {len(t.unused) - 8} more" if len(t.unused) > 8 else ""
        warnings.warn(f"{type(model).__name__}: {t.params_total - t.params_run:,} of "
                      f"{t.params_total:,} parameters are never used by forward and are not "
                      f"counted: {listed}{more}", UnusedParametersWarning, stacklevel=2)
    return (t.records, t.names) if return_names else t.records
