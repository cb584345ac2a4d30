"""Tracing and recorded execution shared by ``from_torch`` and the hook counter.

This module only runs models; it knows nothing of ops or counts.  A model is
traced with ``torch.fx`` (standard ``torch.nn`` modules and nasflops' bridge
modules are leaves), then run node by node on a real input: every node's
arguments and result are recorded, and leaf modules additionally report
their inputs and output through real forward hooks.
"""
from __future__ import annotations

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
    """fx tracer whose leaves are torch.nn modules and nasflops' bridge modules."""

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _InplaceProxy(node, self)

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, BRIDGE_MODULES):
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return super().is_leaf_module(m, qualname)


class TraceFailed(RuntimeError):
    """``torch.fx`` could not trace the model (data-dependent control flow, ...)."""


def trace(model: nn.Module) -> fx.GraphModule:
    """Symbolically trace ``model`` with :class:`LeafTracer`."""
    tracer = LeafTracer()
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
