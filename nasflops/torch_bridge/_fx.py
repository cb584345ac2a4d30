"""Tracing and recorded execution shared by ``from_torch`` and the hook counter.

This module only runs models; it knows nothing of ops or counts.  A model is
traced with ``torch.fx`` (standard ``torch.nn`` modules and nasflops' bridge
modules are leaves), then run node by node on a real input: every node's
arguments and result are recorded, and leaf modules additionally report
their inputs and output through real forward hooks.
"""
from __future__ import annotations

import contextlib
import operator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
import torch.fx as fx
import torch.nn as nn

from .build import BRIDGE_MODULES


class _InplaceProxy(fx.Proxy):
    """A proxy that keeps ``+=`` and ``*=`` in place.

    ``fx.Proxy`` has no ``__iadd__``, so Python falls back to ``__add__`` and
    ``out += identity`` would run out of place; memory metrics must see the
    in-place update the eager model performs.
    """

    def __iadd__(self, other):
        return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

    def __imul__(self, other):
        return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})


class LeafTracer(fx.Tracer):
    """fx tracer whose leaves are torch.nn modules, nasflops' bridge modules
    and the user's mapped module types (``extra_leaves``)."""

    def __init__(self, extra_leaves: tuple = ()):
        super().__init__()
        self.extra_leaves = tuple(extra_leaves)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _InplaceProxy(node, self)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, BRIDGE_MODULES + self.extra_leaves):
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return super().is_leaf_module(m, qualname)


#: what a user's module type may be mapped to (``module_map``)
MAPPABLE = ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh",
            "global_avgpool", "identity", "dropout", "flatten", "zero")


def check_module_map(module_map) -> dict:
    """Validate ``{module type: op}``; ops are :data:`MAPPABLE`."""
    out = {}
    for t, op in (module_map or {}).items():
        if not isinstance(t, type) or not issubclass(t, nn.Module):
            raise TypeError(f"module_map keys must be nn.Module subclasses, got {t!r}")
        if op not in MAPPABLE:
            raise ValueError(f"module_map[{t.__name__}] = {op!r}: must be one of "
                             f"{', '.join(MAPPABLE)}")
        out[t] = op
    return out


class TraceFailed(RuntimeError):
    """``torch.fx`` could not trace the model (data-dependent control flow, ...)."""


def trace(model: nn.Module, extra_leaves: tuple = ()) -> fx.GraphModule:
    """Symbolically trace ``model`` with :class:`LeafTracer`."""
    tracer = LeafTracer(extra_leaves)
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many types: TraceError, TypeError, ...
        raise TraceFailed(f"torch.fx cannot trace {type(model).__name__}: "
                          f"{type(exc).__name__}: {exc}") from exc
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


@dataclass
class NodeRun:
    """One executed node: its fx node, evaluated arguments and result.

    ``hook_inputs``/``hook_output`` are what the module's forward hook saw
    (``call_module`` nodes only).
    """

    node: fx.Node
    args: tuple
    kwargs: dict
    result: Any
    module: Optional[nn.Module] = None
    hook_inputs: Optional[tuple] = None
    hook_output: Any = None
    extra: dict = field(default_factory=dict)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm, garbage_collect_values=False)
        self.runs: list[NodeRun] = []
        self._last_hook: Optional[tuple] = None

    def hook(self, module, inputs, output):
        self._last_hook = (inputs, output)

    def run_node(self, n: fx.Node):
        args, kwargs = self.fetch_args_kwargs_from_env(n)
        self._last_hook = None
        result = super().run_node(n)
        run = NodeRun(n, args, kwargs, result)
        if n.op == "call_module":
            run.module = self.fetch_attr(n.target)
            if self._last_hook is not None:
                run.hook_inputs, run.hook_output = self._last_hook
        self.runs.append(run)
        return result


def run_recorded(gm: fx.GraphModule, x: torch.Tensor) -> list[NodeRun]:
    """Run ``gm`` on ``x`` under ``no_grad``, recording every node.

    Forward hooks are attached to every leaf module called by the graph and
    removed afterwards.
    """
    rec = _Recorder(gm)
    handles = []
    seen = set()
    for n in gm.graph.nodes:
        if n.op == "call_module" and n.target not in seen:
            seen.add(n.target)
            handles.append(gm.get_submodule(n.target).register_forward_hook(rec.hook))
    try:
        with torch.no_grad():
            rec.run(x)
    finally:
        for h in handles:
            h.remove()
    return rec.runs


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run ``model`` in inference mode (BN running stats, no dropout), then
    restore its training flag whatever happens."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def input_tensor(model: nn.Module, input_shape, batch_size: int = 1) -> torch.Tensor:
    """A random input of ``(C, H, W)`` (batch ``batch_size``) or ``(N, C, H, W)``,
    on the device and dtype of the model's parameters."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) == 3:
        shape = (int(batch_size),) + shape
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be (C, H, W) or (N, C, H, W) with positive sizes, "
                         f"got {tuple(input_shape)}")
    p = next(iter(model.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
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


class HookNode:
    """Stand-in for an ``fx.Node`` when a model is run with hooks only.

    Carries what the counters read from a node: ``op``, ``name``,
    ``target``, ``args``, ``kwargs``, ``all_input_nodes`` and ``users``.
    """

    def __init__(self, op: str, name: str, target, inputs: list):
        self.op, self.name, self.target = op, name, target
        self.args, self.kwargs = tuple(inputs), {}
        self.all_input_nodes = list(inputs)
        self.users: dict = {}
        for i in inputs:
            i.users[self] = None

    def __repr__(self):
        return f"HookNode({self.name})"


def run_hooked(model: nn.Module, x: torch.Tensor, leaf_types: tuple = ()
               ) -> tuple[list[NodeRun], list[tuple[str, str, str]]]:
    """Run ``model`` eagerly with forward hooks on its leaf modules.

    For models ``torch.fx`` cannot trace.  Each leaf-module call becomes a
    :class:`NodeRun` whose inputs are the calls that produced its input
    tensors (matched by identity).  A module fed by a tensor no module made --
    code between modules, invisible to hooks -- is returned as an offender
    ``(module name, type, reason)``.
    """
    names = {}
    for name, m in model.named_modules():
        if isinstance(m, leaf_types) or not list(m.children()):
            names[m] = name or type(m).__name__
    inner = {c for m in names if isinstance(m, leaf_types) for c in m.modules() if c is not m}
    calls = []
    handles = [m.register_forward_hook(lambda m, i, o: calls.append((m, i, o)))
               for m in names if m not in inner]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    root = HookNode("placeholder", "x", "x", [])
    runs = [NodeRun(root, (), {}, x)]
    made = {id(x): root}
    offenders = []
    seen: dict = {}
    for m, inputs, out in calls:
        ins = [t for t in inputs if isinstance(t, torch.Tensor)]
        srcs = [made.get(id(t)) for t in ins]
        name = names[m]
        k = seen[name] = seen.get(name, -1) + 1
        if any(s is None for s in srcs):
            offenders.append((name, type(m).__name__,
                              "its input comes from code between modules, which forward hooks "
                              "cannot see (torch.fx could not trace the model)"))
            srcs = [s for s in srcs if s is not None] or [root]
        node = HookNode("call_module", name if k == 0 else f"{name}#{k}", name, srcs)
        runs.append(NodeRun(node, tuple(inputs), {}, out, m, tuple(inputs), out))
        if isinstance(out, torch.Tensor):
            made[id(out)] = node
    return runs, offenders
