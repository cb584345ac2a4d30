"""``from_torch``: a layer spec from a real ``nn.Module``.

The model is traced with ``torch.fx`` (standard ``torch.nn`` modules and
nasflops' bridge modules are leaves) and run once on a real input, so every
node's tensors are known.  Each node becomes zero or more records:

* modules: ``Conv2d``, ``Linear``, ``BatchNorm1d/2d``, ``LayerNorm`` (over the
  channels of ``N x C``, or channels-last between two permutes, ConvNeXt
  style), activations (``ReLU``, ``ReLU6``, ``Hardswish``, ``Hardsigmoid``,
  ``Sigmoid``, ``SiLU``, ``GELU``, ``Tanh``; in-place when the output is the
  input's memory), ``MaxPool2d``, ``AvgPool2d`` (``ceil_mode``,
  ``count_include_pad``), ``AdaptiveAvgPool2d``, ``Flatten``, ``Identity``,
  ``Dropout``, ``Softmax(dim=1)``, ``ChannelShuffle`` and the bridge modules;
* functions and methods: ``F.relu``/``torch.relu``/``x.relu_()`` and the other
  activations, ``x + y`` / ``+=`` / ``torch.add``, ``x * gate`` / ``torch.mul``,
  ``x * param`` (a per-channel scale, ``+ param`` adds its bias), ``x * 0``
  (NAS "none"), ``0 + x`` (``sum()``'s start: no record), ``torch.cat(dim=1)``,
  ``torch.flatten``, ``x.view/reshape(N, -1)``, ``x.mean((2, 3))`` (global
  pool; ``x.mean(3, keepdim=True)`` is an adaptive pool to H x 1),
  ``F.layer_norm`` (as ``LayerNorm``), ``F.adaptive_avg_pool2d``,
  ``F.max_pool2d``, ``F.avg_pool2d``, ``F.softmax(dim=1)``, ``F.dropout``,
  ``torch.chunk``/``split`` along channels and channel slicing (``x[:, a:b]``, ``narrow``), the
  ``view -> transpose(1, 2) -> view`` channel-shuffle pattern,
  ``torch.channel_shuffle``, ``torch.zeros_like``;
* reshapes that keep the spec's ``C x H x W`` (``N x C`` vs ``N x C x 1 x 1``)
  and ``size``/``shape`` look-ups produce no record.

Anything else is collected, and one :class:`UnsupportedOpsError` lists every
offender with its fx node name -- never a silent zero.  When fx cannot trace
the model at all, forward hooks on the leaf modules are used instead; tensors
produced by code between modules are then reported as unsupported.

Every record's shape is checked against the tensor torch produced for it.
"""
from __future__ import annotations

import operator
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..scoring import layer_table
from ..spec import Flag, Net, Op
from . import _fx
from .build import (BRIDGE_MODULES, Add, Concat, InplaceAct, InplaceAdd, LayerNorm2d, Mul, Scale,
                    Slice, Zero)
from .hooks import UnsupportedOpsError

__all__ = ["from_torch"]

_ACT_MODULES = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish",
                nn.Hardsigmoid: "hardsigmoid", nn.Sigmoid: "sigmoid", nn.SiLU: "silu",
                nn.GELU: "gelu", nn.Tanh: "tanh"}
_ACT_FUNCS = {F.relu: "relu", torch.relu: "relu", torch.relu_: "relu", F.relu_: "relu",
              F.relu6: "relu6", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
              torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.silu: "silu",
              F.gelu: "gelu", torch.tanh: "tanh", F.tanh: "tanh"}
_ACT_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                "tanh": "tanh", "tanh_": "tanh"}
_ADD = {operator.add, operator.iadd, torch.add}
_MUL = {operator.mul, operator.imul, torch.mul}
_RESHAPE_METHODS = {"view", "reshape", "flatten", "unsqueeze", "squeeze", "contiguous",
                    "unflatten", "detach"}
_RESHAPE_FUNCS = {torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze}


class _Unsupported(Exception):
    pass


def _chw(t: torch.Tensor) -> tuple[int, int, int]:
    """The spec shape of an activation tensor: N x C x H x W or N x F (F x 1 x 1)."""
    if t.dim() == 4:
        return int(t.shape[1]), int(t.shape[2]), int(t.shape[3])
    if t.dim() == 2:
        return int(t.shape[1]), 1, 1
    raise _Unsupported(f"a rank-{t.dim()} tensor {tuple(t.shape)} "
                       "(specs hold N x C x H x W or N x F)")


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[-1])
    return int(v), int(v)


def _arg(args, kwargs, pos: int, name: str, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else default


class _Builder:
    """Turns executed nodes into records, keeping the node -> record map."""

    def __init__(self, x: torch.Tensor, module_map: Optional[dict] = None):
        c, h, w = _chw(x)
        self.net = Net(c, h, w)
        self.module_map = module_map or {}
        self.tensor_of = {0: x}     # record -> the torch tensor it stands for
        self.where = {0: "input"}   # record -> fx node name (for errors)
        self.scale_from_mul: dict[int, int] = {}   # scale record -> users left

    def add(self, rec: int, out: torch.Tensor, where: str) -> int:
        self.tensor_of[rec] = out
        self.where[rec] = where
        return rec

    # -------------------------------------------------------------- modules
    def module(self, m: nn.Module, srcs: list[int], ins: list, out, where: str) -> int:
        net, t = self.net, type(m)
        s = srcs[0] if srcs else None
        mapped = self.module_map.get(t)
        if mapped is not None:
            return self.add(_mapped(net, mapped, s, ins, out), out, where)
        if t is nn.Conv2d:
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise _Unsupported(f"Conv2d padding={m.padding!r} padding_mode={m.padding_mode!r} "
                                   "(numeric zero padding only)")
            r = net.conv(s, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                         m.groups, m.bias is not None)
        elif t is nn.Linear:
            r = net.linear(s, m.out_features, m.bias is not None)
        elif t in (nn.BatchNorm1d, nn.BatchNorm2d):
            if not m.track_running_stats:
                raise _Unsupported("BatchNorm without running statistics")
            r = net.bn(s, m.affine)
        elif t is nn.LayerNorm:
            x = ins[0]
            if tuple(m.normalized_shape) != (int(x.shape[-1]),):
                raise _Unsupported(f"LayerNorm over {tuple(m.normalized_shape)} "
                                   "(only the channels)")
            if x.dim() == 2:
                r = net.layernorm(s, m.elementwise_affine)
            else:
                raise _Unsupported("LayerNorm on a rank-4 tensor not between permute(0, 2, 3, 1) "
                                   "and permute(0, 3, 1, 2)")
        elif t is LayerNorm2d:
            r = net.layernorm(s, m.norm.elementwise_affine)
        elif t is Scale:
            r = net.scale(s, m.bias is not None)
        elif t in _ACT_MODULES:
            r = net.act(s, _ACT_MODULES[t], inplace=_fx.same_buffer(out, ins[0]))
        elif t is InplaceAct:
            r = net.act(s, m.kind, inplace=_fx.same_buffer(out, ins[0]))
        elif t is nn.MaxPool2d:
            if m.return_indices:
                raise _Unsupported("MaxPool2d(return_indices=True)")
            r = net.maxpool(s, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        elif t is nn.AvgPool2d:
            if m.divisor_override is not None:
                raise _Unsupported("AvgPool2d(divisor_override=...)")
            r = net.avgpool(s, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
        elif t is nn.AdaptiveAvgPool2d:
            r = net.adaptive_avgpool(s, (int(out.shape[-2]), int(out.shape[-1])))
        elif t is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise _Unsupported(f"Flatten(start_dim={m.start_dim}, end_dim={m.end_dim})")
            r = net.flatten(s)
        elif t is nn.Identity:
            r = net.identity(s)
        elif t is nn.Dropout:
            r = net.dropout(s)
        elif t is nn.Softmax:
            if m.dim not in (1, 1 - ins[0].dim()):
                raise _Unsupported(f"Softmax(dim={m.dim}) (channels only, dim=1)")
            r = net.softmax(s)
        elif t is nn.ChannelShuffle:
            r = net.channel_shuffle(s, m.groups)
        elif t is Add:
            r = net.add(*srcs)
        elif t is InplaceAdd:
            r = net.add(*srcs, inplace=True)
        elif t is Mul:
            r = self._mul(srcs, ins)
        elif t is Concat:
            r = net.concat(*srcs)
        elif t is Slice:
            r = net.slice(s, m.start, m.count)
        elif t is Zero:
            r = net.zero(s)
        else:
            raise _Unsupported(f"module {t.__module__}.{t.__qualname__} has no nasflops op")
        return self.add(r, out, where)

    def _mul(self, srcs, ins) -> int:
        a, b = ins
        # the full-shape operand first: the core broadcasts the second
        if a.numel() < b.numel():
            srcs = srcs[::-1]
        return self.net.mul(srcs[0], srcs[1])


def _mapped(net: Net, op: str, s: int, ins: list, out) -> int:
    """Record for a module the user mapped to a nasflops op."""
    if op == "global_avgpool":
        return net.global_avgpool(s)
    if op in ("identity", "dropout", "flatten", "zero"):
        return getattr(net, op)(s)
    return net.act(s, op, inplace=_fx.same_buffer(out, ins[0]))


def _trace_value(env, v):
    """Record index (or marker) an fx argument maps to; None for non-tensors."""
    if isinstance(v, torch.fx.Node):
        return env.get(v)
    return None


def from_torch(model: nn.Module, input_shape, batch_size: int = 1,
               module_map: Optional[dict] = None) -> np.ndarray:
    """Translate a torch model into one architecture's layer records.

    Parameters
    ----------
    model : nn.Module
        The model; it is run once (eval mode, no grad) on a random input.
    input_shape : tuple
        ``(C, H, W)`` or ``(N, C, H, W)``; the spec holds ``C, H, W`` (the
        batch is a scoring option).
    batch_size : int
        N of the trial run when ``input_shape`` has three entries.
    module_map : dict, optional
        ``{module type: op}`` for your own modules, which are then not traced
        into: an activation kind (``"hardswish"``, ...), ``"global_avgpool"``,
        ``"identity"``, ``"dropout"``, ``"flatten"`` or ``"zero"``.  E.g.
        ``{Hswish: "hardswish"}`` for a module computing
        ``x * F.relu6(x + 3) / 6``.

    Returns
    -------
    ndarray of LAYER_DTYPE
        Records in execution order; score them with :func:`nasflops.score`.

    Raises
    ------
    UnsupportedOpsError
        Listing every module or function with no nasflops op, with its fx
        node name and target.

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
    >>> spec = from_torch(Block(), (8, 16, 16))
    >>> [nf.spec.op_name(o) for o in spec["op"]]
    ['input', 'conv2d', 'add', 'act']
    >>> int(nf.score(spec)["macs"][0])
    147456
    """
    mmap = _fx.check_module_map(module_map)
    with _fx.eval_mode(model):
        x = _fx.input_tensor(model, input_shape, batch_size)
        try:
            gm = _fx.trace(model, tuple(mmap))
        except _fx.TraceFailed as exc:
            return _from_hooks(model, x, str(exc), mmap)
        runs = _fx.run_recorded(gm, x)
    return _from_runs(runs, type(model).__name__, mmap)


def _from_runs(runs: list, model_name: str, module_map: dict) -> np.ndarray:
    env: dict[Any, Any] = {}
    offenders: list[tuple[str, str, str]] = []
    b: Optional[_Builder] = None
    params: dict = {}
    n_placeholders = 0
    for run in runs:
        n = run.node
        if n.op == "placeholder":
            n_placeholders += 1
            if n_placeholders > 1:
                offenders.append((n.name, "placeholder", "a second model input (one input only)"))
                continue
            b = _Builder(run.result, module_map)
            env[n] = 0
            continue
        if n.op == "get_attr":
            params[n] = run.result
            continue
        if n.op == "output":
            continue
        try:
            out = _node(b, env, params, run)
        except _Unsupported as exc:
            tgt = n.target if isinstance(n.target, str) else \
                getattr(n.target, "__qualname__", str(n.target))
            offenders.append((n.name, f"{n.op} {tgt}", str(exc)))
            # keep wiring downstream nodes so that every offender is listed
            srcs = [env.get(a) for a in n.all_input_nodes if isinstance(env.get(a), int)]
            out = srcs[0] if srcs else 0
        if out is not None:
            env[n] = out
    # a module with weights called twice shares them; a spec has one record
    # per call and would count its parameters twice
    calls: dict = {}
    for run in runs:
        if run.node.op == "call_module" and any(True for _ in run.module.parameters()):
            calls.setdefault(run.node.target, []).append(run.node.name)
    for target, names in calls.items():
        if len(names) > 1:
            offenders.append((names[1], f"call_module {target}",
                              f"called {len(names)} times with shared weights (nodes "
                              f"{', '.join(names)}); a spec has one record, with its own "
                              "parameters, per call"))
    if offenders:
        raise UnsupportedOpsError(f"cannot translate {model_name}", offenders)
    return _checked(b)


def _checked(b: "_Builder") -> np.ndarray:
    recs = b.net.records
    table = layer_table(recs)
    for i, t in b.tensor_of.items():
        if not isinstance(t, torch.Tensor):
            continue
        want = _chw(t)
        got = (int(table["channels"][i]), int(table["height"][i]), int(table["width"][i]))
        if want != got:  # a translation bug, not a user error
            raise RuntimeError(f"from_torch: record {i} (fx node {b.where[i]}) has shape {got} "
                               f"but torch produced {want}")
    return recs


def _node(b: _Builder, env: dict, params: dict, run) -> Any:
    """Translate one executed node; returns its env value (record index,
    marker tuple) or None for non-tensor nodes."""
    n = run.node
    res = run.result
    where = n.name
    if n.op == "call_module":
        srcs, ins = [], []
        for a in n.args:
            v = _trace_value(env, a)
            if isinstance(v, tuple) and v[0] == "perm" and isinstance(run.module, nn.LayerNorm):
                # channels-last LayerNorm (ConvNeXt): normalise C at each position
                m = run.module
                if tuple(m.normalized_shape) != (int(res.shape[-1]),):
                    raise _Unsupported("LayerNorm over more than the channels")
                r = b.net.layernorm(v[1], m.elementwise_affine)
                b.add(r, None, where)
                return ("perm", r)
            if not isinstance(v, int):
                raise _Unsupported("an input that is not a plain activation (channels-last, "
                                   "grouped or a tuple)")
            srcs.append(v)
        ins = list(run.hook_inputs) if run.hook_inputs is not None else list(run.args)
        return b.module(run.module, srcs, ins, res, where)

    if n.op not in ("call_function", "call_method"):
        return None
    tgt = n.target
    is_f, is_m = n.op == "call_function", n.op == "call_method"
    if (is_m and tgt in ("size", "dim", "numel")) or (is_f and tgt is getattr):
        return None
    if not isinstance(res, (torch.Tensor, tuple, list)):
        return None
    if n.all_input_nodes and all(a in params for a in n.all_input_nodes):
        params[n] = res   # a view of a parameter (w.view(1, C, 1, 1))
        return None
    args, kwargs = run.args, run.kwargs
    vals = [_trace_value(env, a) for a in n.args]
    x0 = args[0] if args else None
    v0 = vals[0] if vals else None
    net = b.net

    if is_f and tgt is F.layer_norm:
        shape = tuple(_arg(args, kwargs, 1, "normalized_shape"))
        if shape != (int(x0.shape[-1]),):
            raise _Unsupported(f"layer_norm over {shape} (only the channels)")
        affine = _arg(args, kwargs, 2, "weight") is not None
        if _arg(args, kwargs, 3, "bias") is not None and not affine:
            raise _Unsupported("layer_norm with a bias but no weight")
        if isinstance(v0, tuple) and v0[0] == "perm":   # channels-last (ConvNeXt)
            r = net.layernorm(v0[1], affine)
            b.add(r, None, where)
            return ("perm", r)
        if x0.dim() != 2:
            raise _Unsupported("layer_norm on a rank-4 tensor not between permute(0, 2, 3, 1) "
                               "and permute(0, 3, 1, 2)")
        return b.add(net.layernorm(_src(v0), affine), res, where)

    # markers: channels-last (permute) and grouped (shuffle) views
    if isinstance(v0, tuple):
        return _marker_node(b, v0, run)

    if (is_f and tgt in _ACT_FUNCS) or (is_m and tgt in _ACT_METHODS):
        kind = _ACT_FUNCS[tgt] if is_f else _ACT_METHODS[tgt]
        return b.add(net.act(_src(v0), kind, inplace=_fx.same_buffer(res, x0)), res, where)

    if (is_f and tgt in _ADD) or (is_m and tgt in ("add", "add_", "__add__", "__iadd__")):
        return _add(b, params, n, vals, args, kwargs, res)
    if (is_f and tgt in _MUL) or (is_m and tgt in ("mul", "mul_", "__mul__", "__imul__")):
        return _mul(b, params, n, vals, args, res)

    if is_f and tgt in (torch.cat, torch.concat):
        if _arg(args, kwargs, 1, "dim", 0) != 1:
            raise _Unsupported("torch.cat along a dim other than channels (dim=1)")
        seq = n.args[0]
        srcs = [_src(env.get(a)) for a in seq]
        return b.add(net.concat(*srcs), res, where)

    if (is_f and tgt is torch.flatten) or (is_m and tgt in _RESHAPE_METHODS) or \
            (is_f and tgt in _RESHAPE_FUNCS):
        return _reshape(b, v0, x0, res, where)
    if (is_m and tgt in ("transpose", "permute")) or \
            (is_f and tgt in (torch.transpose, torch.permute)):
        dims = tuple(a for a in args[1:]) if is_m else tuple(args[1:])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if x0.dim() == 4 and dims == (0, 2, 3, 1):
            return ("perm", _src(v0))
        raise _Unsupported(f"{tgt}{dims} (only permute(0, 2, 3, 1) around a LayerNorm, and the "
                           "channel-shuffle pattern)")

    return _pool_or_slice_node(b, run, v0, x0)


def _pool_or_slice_node(b: _Builder, run, v0, x0) -> Any:
    """Reductions, pools, softmax and channel selections (the rest of :func:`_node`)."""
    n, res, where = run.node, run.result, run.node.name
    tgt, args, kwargs, net = n.target, run.args, run.kwargs, b.net
    is_f, is_m = n.op == "call_function", n.op == "call_method"
    if (is_f and tgt is torch.mean) or (is_m and tgt == "mean"):
        dims = _arg(args, kwargs, 1, "dim")
        d = x0.dim()
        if isinstance(dims, (tuple, list)) and d == 4 and sorted(v % d for v in dims) == [2, 3]:
            r = net.global_avgpool(_src(v0))
            return b.add(r, res, where)
        if isinstance(dims, int) and d == 4 and dims % d in (2, 3) and res.dim() == 4:
            # x.mean(3, keepdim=True).mean(2, keepdim=True) (OFA's SE): two
            # means, two pools (H x W -> H x 1 -> 1 x 1), as torch runs them
            r = net.adaptive_avgpool(_src(v0), (int(res.shape[2]), int(res.shape[3])))
            return b.add(r, res, where)
        raise _Unsupported(f"mean over dims {dims} (only over (2, 3), or one spatial dim "
                           "with keepdim=True)")
    if is_f and tgt is F.adaptive_avg_pool2d:
        return b.add(net.adaptive_avgpool(_src(v0), (int(res.shape[-2]), int(res.shape[-1]))),
                     res, where)
    if is_f and tgt is F.max_pool2d:
        k = _arg(args, kwargs, 1, "kernel_size")
        s = _arg(args, kwargs, 2, "stride") or k
        if _arg(args, kwargs, 6, "return_indices", False):
            raise _Unsupported("max_pool2d(return_indices=True)")
        r = net.maxpool(_src(v0), k, s, _arg(args, kwargs, 3, "padding", 0),
                        _arg(args, kwargs, 4, "dilation", 1),
                        bool(_arg(args, kwargs, 5, "ceil_mode", False)))
        return b.add(r, res, where)
    if is_f and tgt is F.avg_pool2d:
        k = _arg(args, kwargs, 1, "kernel_size")
        s = _arg(args, kwargs, 2, "stride") or k
        if _arg(args, kwargs, 6, "divisor_override") is not None:
            raise _Unsupported("avg_pool2d(divisor_override=...)")
        r = net.avgpool(_src(v0), k, s, _arg(args, kwargs, 3, "padding", 0),
                        bool(_arg(args, kwargs, 4, "ceil_mode", False)),
                        bool(_arg(args, kwargs, 5, "count_include_pad", True)))
        return b.add(r, res, where)
    if (is_f and tgt in (F.softmax, torch.softmax)) or (is_m and tgt == "softmax"):
        dim = _arg(args, kwargs, 1, "dim")
        if dim not in (1, 1 - x0.dim()):
            raise _Unsupported(f"softmax over dim {dim} (channels only, dim=1)")
        return b.add(net.softmax(_src(v0)), res, where)
    if is_f and tgt is F.dropout:
        return b.add(net.dropout(_src(v0)), res, where)
    if is_f and tgt is torch.zeros_like:
        return b.add(net.zero(_src(v0)), res, where)
    if is_f and tgt in (torch.channel_shuffle, getattr(F, "channel_shuffle", None)):
        g = int(_arg(args, kwargs, 1, "groups"))
        return b.add(net.channel_shuffle(_src(v0), g), res, where)

    if (is_f and tgt in (torch.chunk, torch.split)) or (is_m and tgt in ("chunk", "split")):
        dim = _arg(args, kwargs, 2, "dim", 0)
        if dim % x0.dim() != 1:
            raise _Unsupported(f"{tgt} along dim {dim} (channels only, dim=1)")
        pieces, start = [], 0
        for t in res:
            pieces.append((start, int(t.shape[1])))
            start += int(t.shape[1])
        return ("tuple", _src(v0), pieces, list(res))
    if is_m and tgt == "narrow":
        dim, start, length = (_arg(args, kwargs, i, k)
                              for i, k in ((1, "dim"), (2, "start"), (3, "length")))
        if dim % x0.dim() != 1:
            raise _Unsupported("narrow along a dim other than channels")
        return b.add(net.slice(_src(v0), int(start), int(length)), res, where)
    if is_f and tgt is operator.getitem:
        return _getitem(b, v0, x0, args[1], res, where)

    name = tgt if isinstance(tgt, str) else getattr(tgt, "__qualname__", repr(tgt))
    raise _Unsupported(f"no nasflops op for {n.op} {getattr(tgt, '__module__', '') or ''}"
                       f"{'.' if getattr(tgt, '__module__', None) else ''}{name}")


def _src(v) -> int:
    if not isinstance(v, int):
        raise _Unsupported("an input that is not a plain activation")
    return v


def _param(params: dict, node) -> Optional[torch.Tensor]:
    if isinstance(node, torch.fx.Node) and node in params:
        return params[node]
    return None


def _add(b, params, n, vals, args, kwargs, res):
    if kwargs.get("alpha", 1) != 1 or (len(args) > 2 and args[2] != 1):
        raise _Unsupported("add with alpha")
    p = [_param(params, a) for a in n.args[:2]]
    if all(isinstance(v, int) for v in vals[:2]):
        if _fx.same_buffer(res, args[0]):   # out += x
            return b.add(b.net.add(vals[0], vals[1], inplace=True), res, n.name)
        return b.add(b.net.add(vals[0], vals[1]), res, n.name)
    # x * w + bias: the bias of a per-channel scale made just before
    if (p[1] is not None and isinstance(vals[0], int)) or \
            (p[0] is not None and isinstance(vals[1], int)):
        src, prm = (vals[0], p[1]) if p[1] is not None else (vals[1], p[0])
        rec = b.net._rows[src] if src < len(b.net) else None
        if (rec is not None and rec["op"] == Op.SCALE and not rec["flags"] & Flag.BIAS
                and src == len(b.net) - 1 and prm.numel() == int(res.shape[1])
                and b.scale_from_mul.get(src) == 1):
            rec["flags"] |= Flag.BIAS
            b.tensor_of[src] = res
            return src
        raise _Unsupported("adding a parameter that is not the bias of a per-channel scale "
                           "(x * w + b)")
    consts = [a for a in args[:2] if isinstance(a, (int, float))]
    acts = [v for v in vals[:2] if isinstance(v, int)]
    if consts == [0] and len(acts) == 1:
        # `0 + x`: Python's sum() starting value (NAS-Bench-201's cells); the
        # identity, no record
        return acts[0]
    raise _Unsupported("add of a tensor and a constant other than 0")


def _mul(b, params, n, vals, args, res):
    p = [_param(params, a) for a in n.args[:2]]
    if all(isinstance(v, int) for v in vals[:2]):
        srcs, ins = list(vals[:2]), list(args[:2])
        return b.add(b._mul(srcs, ins), res, n.name)
    for k in (0, 1):
        prm, v = p[k], vals[1 - k]
        if prm is not None and isinstance(v, int):
            x = args[1 - k]
            if prm.numel() == x.shape[1] and all(s == 1 for i, s in enumerate(prm.shape)
                                                if prm.dim() - i != x.dim() - 1):
                r = b.add(b.net.scale(v, False), res, n.name)
                b.scale_from_mul[r] = len(n.users)
                return r
            raise _Unsupported(f"multiplying by a parameter of shape {tuple(prm.shape)} "
                               "(per-channel scales only)")
    other = args[1] if isinstance(vals[0], int) else args[0]
    if isinstance(other, (int, float)) and other == 0:
        v = vals[0] if isinstance(vals[0], int) else vals[1]
        return b.add(b.net.zero(v), res, n.name)
    raise _Unsupported("multiplying by a constant other than 0")


def _reshape(b, v0, x0, res, where):
    src = _src(v0)
    if x0.dim() == 4 and res.dim() == 2 and res.shape[1] == x0[0].numel():
        return b.add(b.net.flatten(src), res, where)
    if res.dim() == 5 and x0.dim() == 4 and res.shape[1] * res.shape[2] == x0.shape[1] \
            and tuple(res.shape[3:]) == tuple(x0.shape[2:]):
        # channel shuffle, step 1: N x g x C/g x H x W
        return ("grouped", src, int(res.shape[1]))
    try:
        same = _chw(res) == _chw(x0)
    except _Unsupported:
        same = False
    if same:
        return src   # N x C <-> N x C x 1 x 1: the spec shape is unchanged
    raise _Unsupported(f"reshape {tuple(x0.shape)} -> {tuple(res.shape)} (only flatten to N x F, "
                       "N x C <-> N x C x 1 x 1 and the channel-shuffle pattern)")


def _marker_node(b, v0, run):
    n, res, args = run.node, run.result, run.args
    tgt = n.target
    kind = v0[0]
    if kind == "perm":
        # back to N x C x H x W after a channels-last LayerNorm
        dims = tuple(args[1:]) if n.op == "call_method" else tuple(args[1:])
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if tgt in ("permute", torch.permute) and dims == (0, 3, 1, 2):
            b.tensor_of[v0[1]] = res
            return v0[1]
        if tgt == "contiguous":
            return v0
        raise _Unsupported("channels-last tensor used by anything but a LayerNorm and "
                           "permute(0, 3, 1, 2)")
    if kind == "grouped":
        dims = tuple(args[1:])
        if (tgt in ("transpose", torch.transpose) and sorted(dims) == [1, 2]) or \
                (tgt in ("permute", torch.permute) and tuple(dims[0] if len(dims) == 1 else dims)
                 == (0, 2, 1, 3, 4)):
            return ("shuffled", v0[1], v0[2])
        raise _Unsupported("a grouped view (N x g x C/g x H x W) not followed by transpose(1, 2)")
    if kind == "shuffled":
        if tgt == "contiguous":
            return v0
        if tgt in ("view", "reshape", "flatten", torch.flatten, torch.reshape) and res.dim() == 4:
            r = b.net.channel_shuffle(v0[1], v0[2])
            return b.add(r, res, n.name)
        raise _Unsupported("a transposed grouped view not reshaped back to N x C x H x W")
    if kind == "tuple":
        if tgt is operator.getitem:
            i = int(args[1])
            start, count = v0[2][i]
            return b.add(b.net.slice(v0[1], start, count), res, n.name)
        raise _Unsupported("a chunk/split result used other than by indexing")
    raise _Unsupported("unexpected input")


def _getitem(b, v0, x0, idx, res, where):
    src = _src(v0)
    if not isinstance(idx, tuple):
        idx = (idx,)
    full = slice(None, None, None)
    if len(idx) >= 2 and idx[0] == full and isinstance(idx[1], slice) \
            and all(i == full or i is Ellipsis for i in idx[2:]) and idx[1].step in (None, 1):
        start, stop, _ = idx[1].indices(int(x0.shape[1]))
        if (start, stop) == (0, int(x0.shape[1])):
            return src
        return b.add(b.net.slice(src, start, stop - start), res, where)
    if all(i == full or i is None or i is Ellipsis for i in idx):
        try:
            if _chw(res) == _chw(x0):
                return src
        except _Unsupported:
            pass
    raise _Unsupported(f"indexing {idx} (only channel slices x[:, a:b])")


# ------------------------------------------------------------- hooks fallback
def _from_hooks(model: nn.Module, x: torch.Tensor, why: str, module_map: dict) -> np.ndarray:
    """Translate module by module from forward hooks (fx could not trace).

    A module's input must be the model input or another module's output;
    tensors made by code between modules cannot be seen and are reported.
    """
    runs, offenders = _fx.run_hooked(model, x, BRIDGE_MODULES + tuple(module_map))
    offenders = [(name, typ, f"{reason} ({why})") for name, typ, reason in offenders]
    b = _Builder(x, module_map)
    rec_of = {runs[0].node: 0}
    for run in runs[1:]:
        n = run.node
        srcs = [rec_of.get(a) for a in n.all_input_nodes]
        if any(s is None for s in srcs) or not isinstance(run.result, torch.Tensor):
            continue
        try:
            rec_of[n] = b.module(run.module, srcs, list(run.hook_inputs), run.result, n.name)
        except _Unsupported as exc:
            offenders.append((n.name, type(run.module).__name__, str(exc)))
            rec_of[n] = srcs[0] if srcs else 0
    if offenders:
        raise UnsupportedOpsError(f"cannot translate {type(model).__name__}", offenders)
    return _checked(b)
