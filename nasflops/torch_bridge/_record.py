"""Run a model once and record every op it performs, as hook tools see it.

This module only runs models; it knows nothing of records or counts.  The
model runs eagerly, once, on a concrete input (no symbolic tracing: data-
dependent Python, ``assert``, ``int(x.size(1) * 0.5)``, einops all just run),
under two recorders:

* forward hooks on every module: a module whose exact type the registry knows
  (``nn.Conv2d``, ``nn.ReLU``, nasflops' bridge modules, the user's
  ``module_map`` types) is a *leaf*: one :class:`Event` with its inputs and
  output, and nothing inside it is recorded; other modules are traced into
  and only give the recorded calls their path (``layer1.0``);
* a ``TorchFunctionMode``: every torch function, tensor method and operator
  called outside a leaf is one :class:`Event` with its arguments and result.
  ``x.add(y)`` and ``x + y`` reach the same ``TensorBase.add``: the method
  names of :data:`registry.METHOD_NAMES` are wrapped while the model runs, so
  the call kind says which one it was.

Convolutions, fully connected layers and batch norms are not computed: their
output is a zero tensor of the right shape (the counts need shapes, not
values), so the run costs little more than the Python of the model.  Models whose parameters
live on the ``meta`` device run on meta tensors.

After the run, :func:`link` ties every event to the events that produced its
inputs, and :func:`fuse` folds activations written out with arithmetic
(``F.relu6(x + 3.) / 6.``, ``x * torch.sigmoid(x)``) into the activation they
compute, keeping the call kind a hook tool sees.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ..spec import Call
from . import registry
from .registry import Entry

__all__ = ["Event", "Run", "record", "eval_mode", "input_tensor", "same_buffer", "tensors", "inputs",
           "check_module_map", "Offender", "UnsupportedOpsError"]

# frames of torch, of this package and of the wrappers between the user's line
# and the recorder are skipped (contextlib and functools: their files only)
_SKIP_DIRS = (os.path.dirname(torch.__file__) + os.sep,
              os.path.dirname(os.path.abspath(__file__)) + os.sep,
              contextlib.__file__, functools.__file__)
try:  # einops' internals call torch: the user's line is the rearrange call
    import einops as _einops
    _SKIP_DIRS += (os.path.dirname(_einops.__file__) + os.sep,)
except ImportError:  # pragma: no cover - einops is optional
    pass


class Offender(NamedTuple):
    """One unsupported construct: the record-style ``name`` of its first call
    (module path, or ``path:callable``), the torch callable, why, where in the
    user's source it is called, and how many calls share that line."""

    name: str
    target: str
    reason: str
    where: str = "?"
    count: int = 1


class UnsupportedOpsError(ValueError):
    """Constructs of a torch model nasflops cannot translate or count, each
    listed once (:class:`Offender`).

    Attributes
    ----------
    offenders : list of Offender
    """

    def __init__(self, what: str, offenders: list, hint: str = ""):
        self.offenders = list(offenders)
        lines = []
        for o in self.offenders:
            times = f" ({o.count} calls)" if o.count > 1 else ""
            lines.append(f"  - {o.name or '<model>'}: {o.target} called at {o.where}{times}: "
                         f"{o.reason}")
        n = len(self.offenders)
        text = f"{what}: {n} unsupported construct{'s' if n != 1 else ''}:\n" + "\n".join(lines)
        super().__init__(text + (f"\n{hint}" if hint else ""))


@dataclass
class Event:
    """One op of the run, as a hook tool sees it.

    Attributes
    ----------
    entry : registry.Entry or None
        What the callable is; None for a callable nasflops does not know.
    target : module or callable
        The leaf module instance, or the torch callable.
    args, kwargs, out
        Arguments and result (real tensors of the run).
    path : str
        ``named_modules()`` path of a leaf; for a call, the path of the module
        whose ``forward`` made it (``""``: the model's own forward).
    where : tuple or None
        ``(file, line, function)`` of the user's code that made the call.
    call : Call
        The call kind (the entry's, or ``METHOD`` for a wrapped method name).
    sources : list
        Per tensor argument (in :func:`tensors` order): the index of the event
        that produced it, -1 for the model input, None for anything else
        (parameters, buffers, constants made inside ``forward``).
    """

    entry: Optional[Entry]
    target: Any
    args: tuple
    kwargs: dict
    out: Any
    path: str
    where: Optional[tuple]
    call: Call
    sources: list = field(default_factory=list)
    uses: int = 0
    act: str = ""
    owner: Any = None     # the module whose forward made the call (calls only)
    ins: list = field(default_factory=list)   # the tensors it reads (link fills it)
    live: bool = True     # its result reaches the model's output

    @property
    def kind(self) -> str:
        return self.entry.kind if self.entry is not None else ""

    @property
    def module(self) -> Optional[nn.Module]:
        return self.target if isinstance(self.target, nn.Module) else None

    def name(self) -> str:
        """The record name: a leaf's path, else ``<path>:<callable>``."""
        if self.module is not None:
            return self.path or type(self.target).__name__
        if self.owner is not None and type(self.owner).__module__.startswith("torch.nn."):
            return self.path       # inside a torch.nn module nasflops does not know
        if isinstance(self.target, str):     # a fused, written-out activation
            return f"{self.path}:{self.target.rsplit(' ', 1)[-1]}"
        fn = registry.callable_name(self.target).rsplit(".", 1)[-1]
        return f"{self.path}:{fn}"

    def callable(self) -> str:
        """The torch callable (or module type) as a user writes it; a call made
        inside a ``torch.nn`` module nasflops does not know is that module."""
        if self.module is not None:
            return registry.callable_name(type(self.target))
        if self.owner is not None and type(self.owner).__module__.startswith("torch.nn."):
            return registry.callable_name(type(self.owner))
        if isinstance(self.target, str):
            return self.target
        return registry.callable_name(self.target)

    def location(self) -> str:
        if self.where is None:
            return "?"
        return f"{self.where[0]}:{self.where[1]}"


@dataclass
class Run:
    """What :func:`record` returns: the events in execution order, the input,
    and which modules and parameters the run used."""

    events: list
    x: torch.Tensor
    out: Any              # what the model returned
    params: dict          # id(parameter) -> (name, parameter)
    called: set           # ids of the modules whose forward ran
    meta: bool


def tensors(values) -> list:
    """The tensors among call arguments, depth first (lists, tuples, dicts)."""
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out.extend(tensors(v))
        elif isinstance(v, dict):
            out.extend(tensors(v.values()))
    return out


def inputs(ev: "Event") -> list:
    """The tensors an event reads (``out=`` is written, not read)."""
    kw = ev.kwargs if "out" not in ev.kwargs else {k: v for k, v in ev.kwargs.items()
                                                   if k != "out"}
    return tensors((ev.args, kw))


def _where(depth: int = 2) -> Optional[tuple]:
    f = sys._getframe(depth)
    while f is not None and f.f_code.co_filename.startswith(_SKIP_DIRS):
        f = f.f_back
    return None if f is None else (f.f_code.co_filename, f.f_lineno, f.f_code.co_name)


# ---------------------------------------------------- shapes without compute
def _conv_shape(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str) or x.dim() != 4:
        return None
    s, p, d = (v if isinstance(v, (tuple, list)) else (v, v) for v in (stride, padding, dilation))
    k = w.shape[2:]
    h, ww = ((x.shape[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in (0, 1))
    return (x.shape[0], w.shape[0], h, ww)


def _linear_shape(x, w, bias=None):
    return tuple(x.shape[:-1]) + (w.shape[0],)


def _same_shape(x, *args, **kwargs):
    return tuple(x.shape)


#: the ops whose output the recorder makes (zeros of the right shape) instead
#: of computing it: the heavy ones
_SHAPE_ONLY = {F.conv2d: _conv_shape, F.linear: _linear_shape, F.batch_norm: _same_shape}


class _Recorder(TorchFunctionMode):
    """Records every call outside a leaf module; see the module docstring."""

    def __init__(self, names: dict, leaf_types: tuple, shape_only: bool):
        super().__init__()
        self.events: list[Event] = []
        self.names, self.leaf_types = names, leaf_types
        self.shape_only = shape_only
        self.depth = 0            # > 0 inside a leaf module
        self.stack: list = []     # per module call: leaf / traced-into / inside a leaf
        self.paths = [""]
        self.owners: list = [None]  # the module whose forward is running
        self.called: set = set()
        self.method_call = False  # set by the wrapped tensor methods
        self.wrapped: dict = {}   # wrapper -> the tensor method it wraps

    # -- torch calls
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        # x.add(y) runs the wrapper first (method_call set), then reaches here
        # with the original; x + y reaches here with the wrapper itself
        method, self.method_call = self.method_call, False
        fast = _SHAPE_ONLY.get(func) if self.shape_only else None
        shape = fast(*args, **kwargs) if fast is not None else None
        if shape is not None:
            out = args[0].new_zeros(shape)
        else:
            out = func(*args, **kwargs)
            self.method_call = False
        if self.depth == 0 and _has_tensor(out):
            orig = self.wrapped.get(func)
            if orig is not None:
                func = orig
            entry = _entry_of(func, args)
            call = entry.call if entry is not None else Call.METHOD
            if method and entry is not None and entry.call == Call.OPERATOR \
                    and entry.arg != "inplace":
                call = Call.METHOD
            # lists are copied: models append to them after the call (DenseNet)
            args = tuple(list(a) if isinstance(a, list) else a for a in args)
            self.events.append(Event(entry, func, args, kwargs, out, self.paths[-1], _where(),
                                     call, owner=self.owners[-1]))
        return out

    # -- module calls (global forward hooks)
    def pre(self, module, args):
        self.called.add(id(module))
        if self.depth:
            self.depth += 1
            self.stack.append(None)
            return
        name = self.names.get(id(module))
        if name is None:   # made inside forward: named after where it ran
            name = f"{self.paths[-1]}.{type(module).__name__}".lstrip(".")
        if type(module) in self.leaf_types:
            self.depth = 1
            self.stack.append((module, name, _where(2)))
        else:
            self.stack.append(False)
            self.paths.append(name)
            self.owners.append(module)

    def post(self, module, args, out):
        item = self.stack.pop()
        if item is None:
            self.depth -= 1
        elif item is False:
            self.paths.pop()
            self.owners.pop()
        else:
            self.depth = 0
            m, name, where = item
            entry = registry.MODULES.get(type(m)) or _norms(type(m)) or \
                Entry("mapped", Call.MODULE)
            self.events.append(Event(entry, m, tuple(args), {}, out, name, where, Call.MODULE))


def _norms(cls) -> Optional[Entry]:
    """Language models' RMSNorm classes (``LlamaRMSNorm``, ``Qwen2RMSNorm``,
    ...: a class named ``*RMSNorm``), one module each; none is a torch.nn
    type, so no tool has a rule for them."""
    return Entry("rmsnorm", Call.MODULE) if cls.__name__.endswith("RMSNorm") and \
        cls.__module__.split(".")[0] != "torch" else None


def _has_tensor(out) -> bool:
    if isinstance(out, torch.Tensor):
        return True
    return isinstance(out, (tuple, list)) and any(isinstance(t, torch.Tensor) for t in out)


def _entry_of(func, args) -> Optional[Entry]:
    e = registry.entry_of(func)
    if e is None and getattr(func, "__name__", "") == "__get__" and args \
            and isinstance(args[0], torch.Tensor):
        return Entry("alias", Call.OPERATOR)     # x.data
    return e


@contextlib.contextmanager
def _wrapped_methods(rec: _Recorder):
    """``torch.Tensor.add`` & co. flag their call as a method while recording
    (``x + y`` goes through the operator slot and stays an operator)."""
    saved = {n: torch.Tensor.__dict__.get(n) for n in registry.METHOD_NAMES}

    def wrap(orig):
        def method(self, *args, **kwargs):
            rec.method_call = True
            return orig(self, *args, **kwargs)
        return method

    for n in registry.METHOD_NAMES:
        orig = getattr(torch.Tensor, n)
        w = wrap(orig)
        rec.wrapped[w] = orig
        setattr(torch.Tensor, n, w)
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                delattr(torch.Tensor, n)
            else:
                setattr(torch.Tensor, n, v)


def record(model: nn.Module, x: torch.Tensor, module_map: dict) -> Run:
    """Run ``model(x)`` once (``no_grad``) under the recorders.

    ``module_map`` types are leaves as well as the registry's module types.
    """
    names = {id(m): n for n, m in model.named_modules()}
    leaf_types = frozenset(registry.MODULES) | frozenset(module_map) | frozenset(
        type(m) for m in model.modules() if _norms(type(m)) and type(m) not in module_map)
    rec = _Recorder(names, leaf_types, shape_only=x.device.type != "meta")
    hooks = [nn.modules.module.register_module_forward_pre_hook(rec.pre),
             nn.modules.module.register_module_forward_hook(rec.post)]
    try:
        with torch.no_grad(), _wrapped_methods(rec), rec:
            out = model(x)
    except Exception as exc:
        raise RuntimeError(f"running {type(model).__name__} once on one input of shape "
                           f"{tuple(x.shape)} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        for h in hooks:
            h.remove()
    params = {}
    for name, p in list(model.named_parameters(remove_duplicate=False)):
        params.setdefault(id(p), (name, p))
    link(rec.events, x)
    _liveness(rec.events, out)
    return Run(rec.events, x, out, params, rec.called, x.device.type == "meta")


# ------------------------------------------------------- links and fusions
def link(events: list, x: torch.Tensor) -> None:
    """Fill every event's ``sources`` (producer event per tensor argument) and
    ``uses`` (how many later arguments read its output)."""
    producer = {id(x): -1}
    for i, ev in enumerate(events):
        ev.ins = inputs(ev)
        ev.sources = [producer.get(id(t)) for t in ev.ins]
        for s in ev.sources:
            if s is not None and s >= 0:
                events[s].uses += 1
        outs = ev.out if isinstance(ev.out, (tuple, list)) else (ev.out,)
        for t in outs:
            if isinstance(t, torch.Tensor):
                producer[id(t)] = i


def _liveness(events: list, out) -> None:
    """Mark the events whose results reach the model's output (the others feed
    only Python: ``if x.sum() > 0``, an assert, a discarded branch)."""
    producer = {}
    for i, ev in enumerate(events):
        ev.live = False
        outs = ev.out if isinstance(ev.out, (tuple, list)) else (ev.out,)
        for t in outs:
            if isinstance(t, torch.Tensor):
                producer[id(t)] = i
    todo = [producer[id(t)] for t in tensors([out]) if id(t) in producer]
    while todo:
        i = todo.pop()
        if events[i].live:
            continue
        events[i].live = True
        todo.extend(s for s in events[i].sources if s is not None and s >= 0)


def _scalar(ev: Event, value: float) -> bool:
    """``ev`` combines its tensor with the number ``value`` (and nothing else)."""
    nums = [a for a in ev.args[1:] if isinstance(a, (int, float)) and not isinstance(a, bool)]
    return len(ev.args) == 2 and len(nums) == 1 and math.isclose(nums[0], value) \
        and ev.entry.arg != "reversed"


def _relu6_like(ev: Event) -> bool:
    """relu6 however written: F.relu6, nn.ReLU6, clamp/hardtanh(0, 6)."""
    if ev.kind == "act":
        return ev.entry.arg == "relu6"
    if ev.kind != "clamp":
        return False
    if ev.module is not None:
        lo, hi = ev.module.min_val, ev.module.max_val
    else:
        bounds = list(ev.args[1:3]) + [None] * 2
        lo = ev.kwargs.get("min", ev.kwargs.get("min_val", bounds[0]))
        hi = ev.kwargs.get("max", ev.kwargs.get("max_val", bounds[1]))
        if registry.callable_name(ev.target).endswith(("clamp_min", "clamp_min_")):
            hi = None
    return lo is not None and hi is not None and float(lo) == 0.0 and float(hi) == 6.0


def _only_user(events: list, i: int, start: int) -> Optional[int]:
    """The single later event reading event ``i``'s output, if there is one."""
    if events[i].uses != 1:
        return None
    for j in range(start, len(events)):
        if i in events[j].sources:
            return j
    return None


def fuse(events: list) -> list:
    """Fold written-out activations into one event each (see module docstring).

    ``relu6(x + 3) / 6`` is hardsigmoid, ``x * hardsigmoid(x)`` and
    ``x * relu6(x + 3) / 6`` hardswish, ``x * sigmoid(x)`` silu (the module,
    function or method forms of sigmoid and hardsigmoid included).  The fused
    event's call kind is ``operator`` when a tool sees a relu6 inside
    (``F.relu6``, ``nn.ReLU6``: ptflops counts it), ``method`` when nothing is
    seen (``clamp``); a step a tool would count on its own (``x.add(3)``,
    ``x.mul(1 / 6)``) prevents the fusion.
    """
    drop: set = set()
    for i, ev in enumerate(events):
        if i in drop or ev.kind != "add" or ev.call == Call.METHOD or not _scalar(ev, 3.0):
            continue
        j = _only_user(events, i, i + 1)
        if j is None or not _relu6_like(events[j]) or events[j].sources[:1] != [i]:
            continue
        k = _only_user(events, j, j + 1)
        if k is None:
            continue
        seen = Call.OPERATOR if events[j].kind == "act" else Call.METHOD
        src = ev.sources[0]
        kev = events[k]
        if _divides_by_six(kev) and kev.sources[:1] == [j]:
            fused = _fused(ev, kev, "hardsigmoid", seen, src)
            drop |= {i, j}
            events[k] = fused
            _hardswish_of(events, k, src, drop)
        elif kev.kind == "mul" and kev.call != Call.METHOD and sorted(
                s for s in kev.sources if s is not None) == sorted([src, j]):
            m = _only_user(events, k, k + 1)
            if m is not None and _divides_by_six(events[m]) and events[m].sources[:1] == [k]:
                events[m] = _fused(ev, events[m], "hardswish", seen, src)
                drop |= {i, j, k}
    _gated(events, drop)
    _rope(events, drop)
    _gelu_tanh(events, drop)
    return _renumber(events, drop)


def _gelu_tanh(events: list, drop: set) -> None:
    """GELU's tanh approximation written out, ``0.5 * x * (1 + tanh(c * (x +
    0.044715 * x ** 3)))`` (GPT-2's ``gelu_new``): one gelu, an operator call
    (no tool sees any of its steps by name)."""
    def one(k, kind):          # the single-use event k of this kind: its first source
        ev = events[k] if k is not None and k >= 0 else None
        if ev is None or ev.uses != 1 or k in drop or ev.kind != kind or not ev.sources:
            return None
        return [s for s in ev.sources if s is not None]

    for h, ev in enumerate(events):
        if ev.kind != "mul" or len(ev.sources) != 2 or None in ev.sources or h in drop:
            continue
        for a, g in (ev.sources, ev.sources[::-1]):
            sa = one(a, "mul")                  # 0.5 * x
            sg = one(g, "add")                  # 1 + tanh(...)
            if not sa or not sg or len(sa) != 1 or len(sg) != 1 or \
                    not _scalar(events[a], 0.5) or not _scalar(events[g], 1.0):
                continue
            sf = one(sg[0], "act")
            if not sf or events[sg[0]].entry.arg != "tanh":
                continue
            se = one(sf[0], "mul")              # sqrt(2 / pi) * (...)
            sd = one(se[0], "add") if se and len(se) == 1 else None
            x = sa[0]
            if not sd or len(sd) != 2 or x not in sd:
                continue
            c = [s for s in sd if s != x]
            sc = one(c[0], "mul") if c else None     # 0.044715 * x ** 3
            sb = one(sc[0], "pow") if sc and len(sc) == 1 else None
            if not sb or sb != [x] or not _scalar(events[c[0]], 0.044715):
                continue
            parts = {a, g, sg[0], sf[0], se[0], c[0], sc[0]}
            xt = events[a].args[0] if isinstance(events[a].args[0], torch.Tensor) \
                else events[a].args[1]
            fused = Event(Entry("act", Call.OPERATOR, "gelu"), "written-out gelu", (xt,), {},
                          ev.out, events[a].path, events[a].where, Call.OPERATOR, [x],
                          ev.uses, "gelu")
            fused.ins = [xt]
            fused.live = ev.live
            events[h] = fused
            drop |= parts
            break


def _derived(events: list) -> list:
    """Per event: whether its result depends on the model's input."""
    out = []
    for ev in events:
        out.append(any(s == -1 or (s is not None and s >= 0 and out[s]) for s in ev.sources))
    return out


def _rope(events: list, drop: set) -> None:
    """``x * cos + rotate_half(x) * sin`` (rotate_half: ``torch.cat((-x2, x1),
    -1)`` of the halves of ``x``; cos and sin made without the input) is one
    rotary embedding, a function call (Hugging Face's ``apply_rotary_pos_emb``)."""
    active = _derived(events)

    def split(k):      # a mul of one activation by a constant: (activation source, event)
        ev = events[k]
        if ev.kind != "mul" or len(ev.sources) != 2:
            return None
        a, b = ev.sources
        live = [s for s in (a, b) if s is not None and (s == -1 or active[s])]
        return live[0] if len(live) == 1 else None

    for k, ev in enumerate(events):
        if ev.kind != "add" or len(ev.sources) != 2 or None in ev.sources or -1 in ev.sources:
            continue
        i, j = ev.sources
        xi, xj = split(i), split(j)
        if xi is None or xj is None:
            continue
        if events[xi].kind == "cat":
            i, j, xi, xj = j, i, xj, xi
        c = events[xj] if xj >= 0 else None
        if c is None or c.kind != "cat" or len(c.sources) != 2 or None in c.sources:
            continue
        n, g1 = c.sources
        if n < 0 or g1 < 0 or events[n].kind or not events[n].sources or \
                registry.callable_name(events[n].target).rsplit(".", 1)[-1] not in \
                ("neg", "__neg__"):
            continue
        g2 = events[n].sources[0]
        if g2 is None or g2 < 0 or any(events[g].kind != "getitem" or events[g].sources[:1] != [xi]
                                       for g in (g1, g2)):
            continue
        parts = {i, j, xj, n, g1, g2}
        if any(events[p].uses != 1 for p in (i, j, xj, n)) or parts & drop:
            continue
        x = events[i].ins[0] if events[i].sources[0] == xi else events[i].ins[1]
        fused = Event(Entry("rope", Call.FUNCTION), "written-out rotary embedding", (x,), {},
                      ev.out, events[i].path, events[i].where, Call.FUNCTION, [xi], ev.uses,
                      "rope")
        fused.ins = [x]
        fused.live = ev.live
        events[k] = fused
        drop |= parts


def _divides_by_six(ev: Event) -> bool:
    return (ev.kind == "div" and _scalar(ev, 6.0)) or \
        (ev.kind == "mul" and ev.call != Call.METHOD and _scalar(ev, 1 / 6))


def _fused(first: Event, last: Event, kind: str, call: Call, src) -> Event:
    ev = Event(Entry("act", call, kind), "written-out " + kind, (first.args[0],), {},
               last.out, first.path, first.where, call, [src], last.uses, kind)
    ev.ins = [first.args[0]]
    return ev


def _hardswish_of(events: list, k: int, src, drop: set) -> None:
    """``x * hardsigmoid(x)`` (operator) after the fused hardsigmoid at ``k``."""
    m = _only_user(events, k, k + 1)
    if m is None:
        return
    mev = events[m]
    if mev.kind == "mul" and mev.call != Call.METHOD and \
            sorted(s for s in mev.sources if s is not None) == sorted([src, k]):
        events[m] = _fused(events[k], mev, "hardswish", events[k].call, src)
        drop.add(k)


def _gated(events: list, drop: set) -> None:
    """``x * sigmoid(x)`` is silu (no tool sees one: an operator call);
    ``x * hardsigmoid(x)`` (the module or a function) is hardswish, called as
    its hardsigmoid was."""
    for k, ev in enumerate(events):
        kind = ev.entry.arg if ev.kind == "act" and not ev.act else None
        if k in drop or kind not in ("sigmoid", "hardsigmoid"):
            continue
        m = _only_user(events, k, k + 1)
        if m is None:
            continue
        mev = events[m]
        src = ev.sources[0] if ev.sources else None
        if mev.kind == "mul" and mev.call == Call.OPERATOR and src is not None and \
                sorted(s for s in mev.sources if s is not None) == sorted([src, k]):
            fused, call = ("silu", Call.OPERATOR) if kind == "sigmoid" else ("hardswish", ev.call)
            events[m] = _fused(ev, mev, fused, call, src)
            drop.add(k)


def _renumber(events: list, drop: set) -> list:
    """Drop fused-away events; sources point at the new positions."""
    if not drop:
        return events
    new_index, kept = {-1: -1}, []
    for i, ev in enumerate(events):
        if i not in drop:
            new_index[i] = len(kept)
            kept.append(ev)
    for ev in kept:
        ev.sources = [new_index.get(s) if s is not None else None for s in ev.sources]
    return kept


# ------------------------------------------------------------------- helpers
def check_module_map(module_map) -> dict:
    """Validate ``{module type: op}``; ops are :data:`registry.MAPPABLE`."""
    out = {}
    for t, op in (module_map or {}).items():
        if not isinstance(t, type) or not issubclass(t, nn.Module):
            raise TypeError(f"module_map keys must be nn.Module subclasses, got {t!r}")
        if op not in registry.MAPPABLE:
            raise ValueError(f"module_map[{t.__name__}] = {op!r}: must be one of "
                             f"{', '.join(registry.MAPPABLE)}")
        out[t] = op
    return out


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run ``model`` in inference mode (BN running stats, no dropout), then
    restore every module's training flag whatever happens."""
    training = [m for m in model.modules() if m.training]
    for m in training:
        m.__dict__["training"] = False     # what Module.eval() sets, without its overhead
    try:
        yield model
    finally:
        for m in training:
            m.__dict__["training"] = True


def input_tensor(model: nn.Module, input_shape, batch_size: int = 1) -> torch.Tensor:
    """A random input of ``(C, H, W)`` (batch ``batch_size``) or ``(N, C, H, W)``,
    on the device and dtype of the model's parameters."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) in (1, 3):
        shape = (int(batch_size),) + shape
    if len(shape) not in (2, 4) or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W) for an image, (L,) "
                         f"or (N, L) for token ids, with positive sizes, got "
                         f"{tuple(input_shape)}")
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    if len(shape) == 2:       # token ids: 0 is in every vocabulary
        return torch.zeros(shape, device=device, dtype=torch.long)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    if device.type == "meta":
        return torch.empty(shape, device=device, dtype=dtype)
    return torch.randn(shape, device=device, dtype=dtype)


def same_buffer(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors share memory (a view or an in-place result)."""
    if a is b:
        return True
    if a.device.type == "meta" or b.device.type == "meta":
        ba = a._base if a._base is not None else a
        bb = b._base if b._base is not None else b
        return ba is bb
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
