"""``count_with_hooks``: an independent, hook-based reference counter.

It never calls the core.  The model is traced with ``torch.fx`` and run on a
real input; every leaf module reports its input and output tensors through a
forward hook, and functional calls (``x + y``, ``torch.cat``, ``F.relu``,
``x.mean((2, 3))``, ...) are read off the traced graph as it executes.  Each
op's count is then computed from the *tensors* (shapes of the real inputs and
outputs, the module's own parameters) with the formulas of docs/design.md sections
3-4 and, for the compatibility conventions, with the rules of the tools'
sources (thop 0.1.1 ``vision/basic_hooks.py``, ptflops 0.7.5
``pytorch_ops.py`` + ``pytorch_engine.py``, fvcore 0.1.5 ``jit_handles.py``),
transcribed below one convention per table.

Memory follows the same definitions, measured on the run:

* ``act_bytes``/``write_bytes``: output elements of every op that computes
  (views -- flatten, identity, dropout, slices, reshapes -- move no bytes);
* ``read_bytes``: that op's activation inputs plus its parameters;
* ``peak_act_bytes``: buffers live while the graph runs in order, each freed
  after its last consumer; a view or an op whose output shares memory with its
  input (in-place activations, detected from the real tensors) allocates
  nothing.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..options import dtype_size
from . import _fx
from .build import (BRIDGE_MODULES, Add, Concat, InplaceAct, InplaceAdd, LayerNorm2d, Mul, Scale,
                    Slice, Zero)

__all__ = ["count_with_hooks", "HookCounts", "HOOK_CONVENTIONS", "UnsupportedOpsError"]

_METRICS = ("ops", "macs", "params", "weight_bytes", "act_bytes", "peak_act_bytes",
            "read_bytes", "write_bytes")


class UnsupportedOpsError(ValueError):
    """Ops of a torch model nasflops cannot translate or count, all listed.

    Attributes
    ----------
    offenders : list of (node name, target, reason)
    """

    def __init__(self, what: str, offenders: list[tuple[str, str, str]]):
        self.offenders = offenders
        lines = "\n".join(f"  - {name}: {target} ({reason})" for name, target, reason in offenders)
        super().__init__(f"{what}: {len(offenders)} unsupported op(s):\n{lines}")


# ------------------------------------------------------------------ op facts
@dataclass
class OpFacts:
    """What one executed op is, measured from its real tensors."""

    name: str
    kind: str                       # conv, linear, bn, ln, scale, act, maxpool, ...
    inputs: list                    # activation tensors read
    out: Optional[torch.Tensor]
    params: list = field(default_factory=list)   # parameter tensors it owns
    act: str = ""                   # activation kind
    mac: int = 0
    bias: bool = False
    affine: bool = False
    window: int = 0                 # pooling: input elements summed over windows
    input_nodes: list = field(default_factory=list)

    @property
    def out_numel(self) -> int:
        return int(self.out.numel())

    @property
    def in_numel(self) -> int:
        return int(self.inputs[0].numel()) if self.inputs else 0


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def _adaptive_windows(size: int, out: int) -> int:
    # torch: window i covers floor(i*size/out) .. ceil((i+1)*size/out)
    return sum(-(-((i + 1) * size) // out) - (i * size) // out for i in range(out))


def _adaptive_window(x: torch.Tensor, y: torch.Tensor) -> int:
    n, c = x.shape[0], x.shape[1]
    return int(n * c * _adaptive_windows(x.shape[-2], y.shape[-2])
               * _adaptive_windows(x.shape[-1], y.shape[-1]))


_MODULE_ACTS = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish",
                nn.Hardsigmoid: "hardsigmoid", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
                nn.GELU: "gelu", nn.Tanh: "tanh"}
_FUNC_ACTS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu",
              F.relu6: "relu6", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
              torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.silu: "silu", F.gelu: "gelu",
              torch.tanh: "tanh", F.tanh: "tanh"}
_METHOD_ACTS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                "tanh": "tanh", "tanh_": "tanh"}
_VIEW_METHODS = {"flatten", "view", "reshape", "unsqueeze", "squeeze", "contiguous", "narrow",
                 "chunk", "split", "permute", "transpose", "unflatten", "detach"}
_VIEW_FUNCS = {torch.flatten, operator.getitem, torch.chunk, torch.split, torch.narrow,
               torch.reshape, torch.squeeze, torch.unsqueeze, F.dropout, torch.permute,
               torch.transpose}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_MUL_FUNCS = {operator.mul, operator.imul, torch.mul}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
_MUL_METHODS = {"mul", "mul_", "__mul__", "__imul__"}


def _tensors(values) -> list:
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            out.extend(_tensors(v))
    return out


def _dim_arg(run, pos: int, default=None):
    if "dim" in run.kwargs:
        return run.kwargs["dim"]
    return run.args[pos] if len(run.args) > pos else default


def _facts(run: _fx.NodeRun, param_nodes: set, module_map: Optional[dict] = None
           ) -> tuple[Optional[OpFacts], Optional[str]]:
    """Facts of an executed node, or (None, reason) when unsupported.

    Returns ``(None, None)`` for nodes that are not tensor ops (``size``,
    ``getattr``).
    """
    if run.node.op == "call_module":
        return _module_facts(run, module_map)
    if run.node.op not in ("call_function", "call_method"):
        return None, None
    return _call_facts(run, param_nodes)


def _module_facts(run: _fx.NodeRun, module_map: Optional[dict]
                  ) -> tuple[Optional[OpFacts], Optional[str]]:
    """Facts of a leaf-module call, from the tensors its forward hook saw."""
    n, name, res = run.node, run.node.name, run.result
    m = run.module
    x = list(run.hook_inputs) if run.hook_inputs is not None else _tensors(run.args)
    y = run.hook_output if run.hook_output is not None else res
    own = list(m.parameters())
    f = OpFacts(name, "", [t for t in x if isinstance(t, torch.Tensor)], y, own)
    t = type(m)
    mapped = (module_map or {}).get(t)
    if mapped is not None:
        if mapped == "global_avgpool":
            f.kind, f.window = "adaptive", int(x[0].numel())
        elif mapped == "zero":
            f.kind = "zero"
        elif mapped in ("identity", "dropout", "flatten"):
            f.kind = "view"
        else:
            f.kind, f.act = "act", mapped
        return f, None
    if t is nn.Conv2d:
        w = m.weight
        f.kind, f.bias = "conv", m.bias is not None
        f.mac = int(y.numel()) * int(w.shape[1] * w.shape[2] * w.shape[3])
    elif t is nn.Linear:
        f.kind, f.bias = "linear", m.bias is not None
        f.mac = int(y.numel()) * int(m.in_features)
    elif t in (nn.BatchNorm1d, nn.BatchNorm2d):
        f.kind, f.affine = "bn", bool(m.affine)
    elif t is nn.LayerNorm:
        if tuple(m.normalized_shape) != (x[0].shape[-1],) or x[0].dim() != 2:
            return None, "LayerNorm is supported over the channels of an N x C tensor " \
                         "(use nasflops.torch_bridge.LayerNorm2d for N x C x H x W)"
        f.kind, f.affine = "ln", bool(m.elementwise_affine)
    elif t is LayerNorm2d:
        f.kind, f.affine = "ln", bool(m.norm.elementwise_affine)
    elif t is Scale:
        f.kind, f.bias = "scale", m.bias is not None
    elif t in _MODULE_ACTS:
        f.kind, f.act = "act", _MODULE_ACTS[t]
    elif t is InplaceAct:
        f.kind, f.act = "act", m.kind
    elif t in (nn.MaxPool2d, nn.AvgPool2d):
        kh, kw = _pair(m.kernel_size)
        f.kind = "maxpool" if t is nn.MaxPool2d else "avgpool"
        f.window = kh * kw * int(y.numel())
    elif t is nn.AdaptiveAvgPool2d:
        f.kind, f.window = "adaptive", _adaptive_window(x[0], y)
    elif t in (nn.Flatten, nn.Identity, nn.Dropout, Slice):
        f.kind = "view"
    elif t is nn.Softmax:
        if m.dim not in (1, 1 - x[0].dim()):
            return None, f"softmax over dim {m.dim} (only channels, dim=1)"
        f.kind = "softmax"
    elif t is nn.ChannelShuffle:
        f.kind = "shuffle"
    elif t in (Add, InplaceAdd):
        f.kind = "add"
    elif t is Mul:
        f.kind = "mul"
    elif t is Concat:
        f.kind = "concat"
    elif t is Zero:
        f.kind = "zero"
    else:
        return None, f"module {t.__module__}.{t.__name__} has no counting rule"
    return f, None


def _call_facts(run: _fx.NodeRun, param_nodes: set) -> tuple[Optional[OpFacts], Optional[str]]:
    """Facts of a function or tensor-method call, read off the traced graph."""
    n, name, res = run.node, run.node.name, run.result
    target = n.target
    if n.op == "call_method" and target in ("size", "dim", "numel"):
        return None, None
    if n.op == "call_function" and target is getattr:
        return None, None
    if not isinstance(res, (torch.Tensor, tuple, list)):
        return None, None
    # split arguments by where they come from: parameters (get_attr nodes and
    # views of them) or activations
    acts, prms = [], []
    for a, v in list(zip(n.args, run.args)) + [(n.kwargs[k], run.kwargs[k]) for k in n.kwargs]:
        is_param = isinstance(a, torch.fx.Node) and a in param_nodes
        (prms if is_param else acts).extend(_tensors([v]))
    out = res if isinstance(res, torch.Tensor) else None
    f = OpFacts(name, "", acts, out, prms)
    is_f, is_m = n.op == "call_function", n.op == "call_method"
    if (is_f and target in _FUNC_ACTS) or (is_m and target in _METHOD_ACTS):
        f.kind, f.act = "act", _FUNC_ACTS[target] if is_f else _METHOD_ACTS[target]
        return f, None
    if (is_f and target in _VIEW_FUNCS) or (is_m and target in _VIEW_METHODS):
        # a reshape that had to copy (a transposed tensor made contiguous, as
        # in the channel-shuffle pattern) writes a new tensor
        copied = (out is not None and acts and isinstance(acts[0], torch.Tensor)
                  and not _fx.same_buffer(out, acts[0]))
        f.kind = "copy" if copied else "view"
        return f, None
    scalars = [a for a in run.args if isinstance(a, (int, float))]
    if (is_f and target in _ADD_FUNCS) or (is_m and target in _ADD_METHODS):
        if len(acts) == 2 and not prms:
            f.kind = "add"
            return f, None
        if len(acts) == 1 and not prms and scalars == [0]:
            # `0 + x`, the start of Python's sum(): the identity
            f.kind = "view"
            return f, None
        return None, ("add needs two activation tensors (or 0 + x; no other constants, "
                      "no parameters)")
    if (is_f and target in _MUL_FUNCS) or (is_m and target in _MUL_METHODS):
        if len(acts) == 2 and not prms:
            f.kind = "mul"
            return f, None
        if len(acts) == 1 and len(prms) == 1 and prms[0].numel() == acts[0].shape[1]:
            f.kind = "scale"
            return f, None
        if len(acts) == 1 and not prms and scalars in ([0], [0.0]):
            f.kind = "zero"
            return f, None
        return None, "mul needs two activation tensors, a per-channel parameter or a zero"
    if (is_f and target in (torch.cat, torch.concat)):
        if _dim_arg(run, 1, 0) not in (1,):
            return None, "concat along a dim other than channels (dim=1)"
        f.kind = "concat"
        return f, None
    if (is_f and target in (torch.mean,)) or (is_m and target == "mean"):
        dims = _dim_arg(run, 1)
        d = acts[0].dim() if acts else 4
        dims = tuple(sorted(v % d for v in dims)) if isinstance(dims, (tuple, list)) else None
        if dims == (2, 3) and d == 4:
            f.kind, f.window = "adaptive", int(acts[0].numel())
            return f, None
        one = _dim_arg(run, 1)
        if isinstance(one, int) and d == 4 and one % d in (2, 3) and out.dim() == 4:
            # a mean over one spatial dim (keepdim): an adaptive pool to H x 1
            f.kind, f.window = "adaptive", _adaptive_window(acts[0], out)
            return f, None
        return None, "mean over other dims than (2, 3) or one spatial dim with keepdim=True"
    if is_f and target is F.layer_norm:
        shape = tuple(run.kwargs.get("normalized_shape", run.args[1] if len(run.args) > 1 else ()))
        if shape != (int(acts[0].shape[-1]),):
            return None, f"layer_norm over {shape} (only the channels)"
        weight = run.kwargs.get("weight", run.args[2] if len(run.args) > 2 else None)
        f.kind, f.affine = "ln", weight is not None
        return f, None
    if is_f and target is F.adaptive_avg_pool2d:
        f.kind, f.window = "adaptive", _adaptive_window(acts[0], out)
        return f, None
    if is_f and target in (F.max_pool2d, F.avg_pool2d):
        k = run.kwargs.get("kernel_size", run.args[1] if len(run.args) > 1 else None)
        kh, kw = _pair(k)
        f.kind = "maxpool" if target is F.max_pool2d else "avgpool"
        f.window = kh * kw * int(out.numel())
        return f, None
    if (is_f and target in (F.softmax, torch.softmax)) or (is_m and target == "softmax"):
        if _dim_arg(run, 1) not in (1, 1 - acts[0].dim()):
            return None, "softmax over a dim other than channels (dim=1)"
        f.kind = "softmax"
        return f, None
    if is_f and target in (torch.channel_shuffle, getattr(F, "channel_shuffle", None)):
        f.kind = "shuffle"
        return f, None
    if is_f and target is torch.zeros_like:
        f.kind = "zero"
        return f, None
    tname = target if isinstance(target, str) else getattr(target, "__qualname__", repr(target))
    return None, f"no counting rule for {n.op} {tname}"


def _scale_bias(run, param_nodes: set, facts: dict) -> Optional[OpFacts]:
    """``x * w + b`` with per-channel parameters: one scale with a bias.

    The multiply (already a ``scale``) is folded into the add: it becomes a
    view of its input, and the add carries both parameters, so the pair
    counts and moves bytes as the one op it is.
    """
    n = run.node
    if n.op == "call_function" and n.target not in _ADD_FUNCS:
        return None
    if n.op == "call_method" and n.target not in ("add", "__add__"):
        return None
    args = list(zip(n.args, run.args))
    if len(args) != 2:
        return None
    acts = [(a, v) for a, v in args if isinstance(a, torch.fx.Node) and a not in param_nodes]
    prms = [v for a, v in args if isinstance(a, torch.fx.Node) and a in param_nodes]
    if len(acts) != 1 or len(prms) != 1:
        return None
    src, val = acts[0]
    mul = facts.get(src)
    if (mul is None or mul.kind != "scale" or mul.bias or len(src.users) != 1
            or prms[0].numel() != val.shape[1]):
        return None
    mul.kind = "view"
    f = OpFacts(n.name, "scale", [val], run.result, mul.params + prms, bias=True)
    return f


# ------------------------------------------------------------- conventions
# One table per convention: kind -> count of one op, from its facts.  Kinds
# missing from a table count zero *by that convention's definition*.
Rule = Callable[[OpFacts], int]


def _flops_rules() -> dict[str, Rule]:
    # the `flops` row of the README's conventions table
    def conv(f):
        return 2 * f.mac - f.out_numel + (f.out_numel if f.bias else 0)
    return {
        "conv": conv, "linear": conv,
        "bn": lambda f: 4 * f.out_numel,
        "ln": lambda f: 6 * f.out_numel + (2 * f.out_numel if f.affine else 0),
        "scale": lambda f: f.out_numel + (f.out_numel if f.bias else 0),
        "act": lambda f: f.out_numel,
        "maxpool": lambda f: f.window, "avgpool": lambda f: f.window,
        "adaptive": lambda f: f.window,
        "add": lambda f: sum(int(t.numel()) for t in f.inputs[1:]),
        "mul": lambda f: f.out_numel,
        "softmax": lambda f: 2 * f.out_numel,
    }


def _thop_rules() -> dict[str, Rule]:
    # thop/vision/basic_hooks.py: count_convNd (no bias), count_linear
    # (in_features * y.numel()), count_normalization (2 * x.numel(), x2 when
    # affine), count_softmax, count_avgpool (y.numel()), count_adap_avgpool
    # ((Hin*Win/(Ho*Wo) + 1) * y.numel(), computed here in exact integers);
    # ReLU/ReLU6/MaxPool/Dropout are zero_ops; other modules have no rule.
    def norm(f):
        return 2 * f.in_numel * (2 if f.affine else 1)

    def softmax(f):
        c = int(f.inputs[0].shape[1])
        return (f.in_numel // c) * (3 * c - 1)
    return {
        "conv": lambda f: f.mac, "linear": lambda f: f.mac,
        "bn": norm, "ln": norm, "softmax": softmax,
        "avgpool": lambda f: f.out_numel,
        "adaptive": lambda f: f.in_numel + f.out_numel,
    }


def _ptflops_rules() -> dict[str, Rule]:
    # ptflops 0.7.5, default pytorch backend: module hooks (pytorch_ops.py
    # MODULES_MAPPING) plus patched functionals (FUNCTIONAL_MAPPING), which
    # count again inside nn.ReLU (F.relu), nn.GELU (F.gelu), the pools
    # (F.max_pool2d, ...) and count alone inside nn.SiLU (F.silu) and
    # nn.Softmax (F.softmax).  LayerNorm has no `affine` attribute, so
    # bn_flops_counter_hook never doubles it.
    acts = {"relu": 2, "gelu": 2, "relu6": 1, "silu": 1}
    return {
        "conv": lambda f: f.mac + (f.out_numel if f.bias else 0),
        "linear": lambda f: f.mac + (f.out_numel if f.bias else 0),
        "bn": lambda f: f.in_numel * (2 if f.affine else 1),
        "ln": lambda f: f.in_numel,
        "act": lambda f: acts.get(f.act, 0) * f.out_numel,
        "maxpool": lambda f: 2 * f.in_numel, "avgpool": lambda f: 2 * f.in_numel,
        "adaptive": lambda f: 2 * f.in_numel,
        "softmax": lambda f: f.in_numel,
    }


def _fvcore_rules() -> dict[str, Rule]:
    # fvcore 0.1.5 flop_count.py _DEFAULT_SUPPORTED_OPS / jit_handles.py,
    # model in eval mode: conv (no bias), linear, batch_norm (1 or 2 per
    # element), layer_norm (4 or 5), adaptive_avg_pool2d (1 per input
    # element); every other aten op is ignored or unsupported (zero).
    return {
        "conv": lambda f: f.mac, "linear": lambda f: f.mac,
        "bn": lambda f: f.in_numel * (2 if f.affine else 1),
        "ln": lambda f: f.in_numel * (5 if f.affine else 4),
        "adaptive": lambda f: f.in_numel,
    }


#: convention name -> {op kind: count rule}
HOOK_CONVENTIONS: dict[str, dict[str, Rule]] = {
    "macs": {"conv": lambda f: f.mac, "linear": lambda f: f.mac},
    "fma2": {"conv": lambda f: 2 * f.mac, "linear": lambda f: 2 * f.mac},
    "flops": _flops_rules(),
    # NAS-Bench-201's published counts: conv/linear MACs plus one per output
    # element with a bias
    "nb201": {"conv": lambda f: f.mac + (f.out_numel if f.bias else 0),
              "linear": lambda f: f.mac + (f.out_numel if f.bias else 0)},
    # Once-for-All's counter: conv/linear MACs, no bias (at batch 1, where OFA
    # counts; nasflops' row scales linear by N like everything else)
    "ofa": {"conv": lambda f: f.mac, "linear": lambda f: f.mac},
    "thop": _thop_rules(),
    "ptflops": _ptflops_rules(),
    "fvcore": _fvcore_rules(),
}


# ------------------------------------------------------------------ counter
@dataclass
class HookCounts:
    """Totals measured by :func:`count_with_hooks` (all exact integers).

    ``by_node`` lists, per counted op, its fx node name, kind, ops, macs,
    params and bytes.
    """

    convention: str
    ops: int
    macs: int
    params: int
    weight_bytes: int
    act_bytes: int
    peak_act_bytes: int
    read_bytes: int
    write_bytes: int
    by_node: list = field(default_factory=list, repr=False)

    def as_dict(self) -> dict:
        """The metric totals as ``{metric: int}`` (nasflops' metric names)."""
        return {m: getattr(self, m) for m in _METRICS}


def _classify(runs: list, mmap: dict, model_name: str) -> tuple[dict, list]:
    """Pass 1 of :func:`count_with_hooks`: what every executed node is.

    Returns the facts of every counted node and their execution order; raises
    :class:`UnsupportedOpsError` listing every node without a rule.
    """
    # pass 1: what every node is
    facts: dict = {}
    offenders = []
    order = []
    param_nodes: set = set()
    for run in runs:
        n = run.node
        if n.op == "get_attr" or (n.op in ("call_function", "call_method") and n.all_input_nodes
                                  and all(a in param_nodes for a in n.all_input_nodes)):
            param_nodes.add(n)
            continue
        if n.op == "placeholder":
            facts[n] = OpFacts(n.name, "input", [], run.result)
            order.append(n)
            continue
        f, why = _facts(run, param_nodes, mmap)
        if f is None and why is not None:
            f = _scale_bias(run, param_nodes, facts) or f
        if f is None:
            if why is not None:
                tgt = n.target if isinstance(n.target, str) else \
                    getattr(n.target, "__name__", str(n.target))
                offenders.append((n.name, f"{n.op} {tgt}", why))
            continue
        f.input_nodes = [a for a in n.all_input_nodes if a in facts]
        facts[n] = f
        order.append(n)
    if offenders:
        raise UnsupportedOpsError(f"cannot count {model_name}", offenders)

    return facts, order


def count_with_hooks(model: nn.Module, input_shape, convention: str = "macs",
                     batch_size: int = 1, weight_dtype: str = "fp32",
                     act_dtype: str = "fp32", module_map: Optional[dict] = None) -> HookCounts:
    """Count a torch model by running it, independently of the nasflops core.

    Parameters
    ----------
    model : nn.Module
        A model whose ops are in docs/conventions.md (every op nasflops
        knows, as modules or functional calls).  It is traced with
        ``torch.fx``; a model fx cannot trace is counted from forward hooks
        on its leaf modules alone, and code between modules is then reported.
    input_shape : tuple
        ``(C, H, W)`` (batch ``batch_size``) or ``(N, C, H, W)``.
    convention : str
        ``"macs"``, ``"flops"``, ``"fma2"``, ``"nb201"``, ``"ofa"``,
        ``"thop"``, ``"ptflops"`` or ``"fvcore"`` (see :data:`HOOK_CONVENTIONS`).
    batch_size : int
        N when ``input_shape`` has three entries.
    weight_dtype, act_dtype : str
        Element types for the byte metrics (``fp32``, ``fp16``, ``int8``, ...).
    module_map : dict, optional
        ``{module type: op}`` for your own modules, as in
        :func:`~nasflops.torch_bridge.from_torch`.

    Returns
    -------
    HookCounts

    Raises
    ------
    UnsupportedOpsError
        Listing every op without a counting rule, with its fx node name.

    Examples
    --------
    >>> import torch.nn as nn
    >>> from nasflops.torch_bridge import count_with_hooks
    >>> m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> c = count_with_hooks(m, (3, 8, 8), "flops")
    >>> c.macs, c.ops, c.params
    (13824, 28160, 224)
    """
    if convention not in HOOK_CONVENTIONS:
        raise ValueError(f"count_with_hooks implements conventions {', '.join(HOOK_CONVENTIONS)}; "
                         f"got {convention!r}")
    # element sizes are a table, not a count: shared with the core's front
    wsize, asize = dtype_size(weight_dtype, "weight_dtype"), dtype_size(act_dtype, "act_dtype")
    rules = HOOK_CONVENTIONS[convention]
    mmap = _fx.check_module_map(module_map)
    with _fx.eval_mode(model):
        x = _fx.input_tensor(model, input_shape, batch_size)
        try:
            runs = _fx.run_recorded(_fx.trace(model, tuple(mmap)), x)
        except _fx.TraceFailed:
            # hooks where tracing cannot go: module by module
            runs, missing = _fx.run_hooked(model, x, BRIDGE_MODULES + tuple(mmap))
            if missing:
                raise UnsupportedOpsError(f"cannot count {type(model).__name__}", missing) from None

    facts, order = _classify(runs, mmap, type(model).__name__)
    # pass 2: counts and bytes per op; buffers for the peak
    tot = dict.fromkeys(_METRICS, 0)
    owner: dict = {}
    by_node = []
    for n in order:
        f = facts[n]
        own_params = sum(int(p.numel()) for p in f.params)
        ops = int(rules[f.kind](f)) if f.kind in rules else 0
        macs = f.mac
        if f.kind in ("input", "view") or f.out is None:
            act = rd = wr = 0
        else:
            act = wr = f.out_numel * asize
            rd = own_params * wsize + sum(int(t.numel()) for t in f.inputs) * asize
        # a view aliases its input by definition; a computing op does when its
        # output is its input's memory (in-place)
        src = f.input_nodes[0] if f.input_nodes else None
        if f.kind == "view" and src is not None:
            owner[n] = owner[src]
        elif (src is not None and f.out is not None and f.inputs
              and _fx.same_buffer(f.out, f.inputs[0])):
            owner[n] = owner[src]
        else:
            owner[n] = n
        tot["ops"] += ops
        tot["macs"] += macs
        tot["act_bytes"] += act
        tot["read_bytes"] += rd
        tot["write_bytes"] += wr
        by_node.append({"node": f.name, "kind": f.kind + (f":{f.act}" if f.act else ""),
                        "ops": ops, "macs": macs, "params": own_params,
                        "act_bytes": act, "read_bytes": rd, "write_bytes": wr})
    # torch's definition: every parameter once (shared ones are not repeated)
    tot["params"] = sum(int(p.numel()) for p in model.parameters())
    tot["weight_bytes"] = tot["params"] * wsize
    tot["peak_act_bytes"] = _peak(order, facts, owner, asize)
    return HookCounts(convention, **tot, by_node=by_node)


def _peak(order, facts, owner, asize: int) -> int:
    pos = {n: i for i, n in enumerate(order)}
    last = {}
    for n in order:
        o = owner[n]
        last[o] = max(last.get(o, pos[n]), pos[n])
        for u in n.users:
            if u in pos:
                last[o] = max(last[o], pos[u])
    freed = [0] * len(order)
    size = {}
    for n in order:
        if owner[n] is n and facts[n].out is not None:
            size[n] = int(facts[n].out.numel()) * asize
            freed[last[n]] += size[n]
    live = peak = 0
    for i, n in enumerate(order):
        live += size.get(n, 0)
        peak = max(peak, live)
        live -= freed[i]
    return peak
