"""Readers of the ops that compute: one function per registry kind,
``(ctx, event, input values) -> value(s)``, dispatched by :data:`READERS`.

Each reads its arguments the way torch defines them (a module's attributes,
a function's positional and keyword arguments), writes the records, and
raises :class:`~._values.Unsupported` with the reason for anything nasflops
cannot express.
"""
from __future__ import annotations

import torch

from ..spec import Call, Flag, Op
from . import _layout, _record
from ._record import Event
from .modules import LayerNorm2d
from ._values import (CANON, AXIS, Ctx, Lazy, Stale, Static, Unsupported, V, arg, canon, label,
                      layout, pair, shape_of)


def _inplace(ev: Event, x) -> bool:
    return isinstance(ev.out, torch.Tensor) and isinstance(x, torch.Tensor) and \
        _record.same_buffer(ev.out, x)


def _same(ctx: Ctx, method: str, ev: Event, x: V, *args, **kw) -> V:
    """A record whose output keeps its input's layout."""
    return V(ctx.rec(method, ev, x.rec, *args, out=ev.out, dims=x.dims, **kw), x.dims)


# ------------------------------------------------------------- weighted ops
def conv(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    m = ev.module
    if m is not None:
        if m.padding_mode != "zeros":
            raise Unsupported(f"Conv2d(padding_mode={m.padding_mode!r}) (zero padding only)")
        w, bias = m.weight, m.bias
        stride, padding, dilation, groups = m.stride, m.padding, m.dilation, m.groups
    else:
        w, bias = ev.args[1], arg(ev, 2, "bias")
        stride, padding = arg(ev, 3, "stride", 1), arg(ev, 4, "padding", 0)
        dilation, groups = arg(ev, 5, "dilation", 1), arg(ev, 6, "groups", 1)
    k = (int(w.shape[2]), int(w.shape[3]))
    if isinstance(padding, str):
        padding = _same_padding(padding, k, pair(dilation), pair(stride))
    r = ctx.rec("conv", ev, canon(x, "a convolution"), int(w.shape[0]), k, pair(stride),
                pair(padding), pair(dilation), int(groups), bias is not None,
                out=ev.out, dims=CANON)
    return V(r)


def _same_padding(mode: str, k, d, s) -> tuple:
    if mode == "valid":
        return 0, 0
    total = [d[i] * (k[i] - 1) for i in (0, 1)]
    if s != (1, 1) or any(t % 2 for t in total):
        raise Unsupported("padding='same' that pads one side more than the other")
    return total[0] // 2, total[1] // 2


def linear(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    m = ev.module
    w = m.weight if m is not None else ev.args[1]
    bias = m.bias if m is not None else arg(ev, 2, "bias")
    if x.dims == ("N", "C"):
        return _same(ctx, "linear", ev, x, int(w.shape[0]), bias is not None)
    if len(x.dims) == 4 and x.dims[0] == "N" and x.dims[-1] == "C":
        # a linear layer over the channels at every position: a 1x1 convolution
        return _same(ctx, "conv", ev, x, int(w.shape[0]), 1, bias=bias is not None)
    raise Unsupported(f"a linear layer on a tensor laid out {layout(x)} (N x C, or "
                      "channels-last N x H x W x C)")


def bn(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    m = ev.module
    if m is not None:
        if not m.track_running_stats:
            raise Unsupported("BatchNorm without running statistics")
        affine = m.affine
    else:
        if arg(ev, 5, "training", False) or arg(ev, 1, "running_mean") is None:
            raise Unsupported("batch_norm in training mode (inference statistics only)")
        affine = arg(ev, 3, "weight") is not None
    if x.dims not in (CANON, ("N", "C")):
        raise Unsupported(f"batch norm on a tensor laid out {layout(x)}")
    return _same(ctx, "bn", ev, x, bool(affine))


def ln(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    m, t = ev.module, ev.args[0]
    if isinstance(m, LayerNorm2d):
        canon(x, "LayerNorm2d")
        return _same(ctx, "layernorm", ev, x, m.norm.elementwise_affine)
    if m is not None:
        shape, affine = tuple(m.normalized_shape), m.elementwise_affine
    else:
        shape, affine = tuple(arg(ev, 1, "normalized_shape")), arg(ev, 2, "weight") is not None
    if shape != (int(t.shape[-1]),) or x.dims[-1] != "C":
        raise Unsupported(
            f"layer norm over {shape} of a rank-{t.dim()} tensor {tuple(t.shape)} laid out "
            f"{layout(x)} (nasflops normalises the channels: N x C, or channels-last "
            "N x H x W x C between permutes)")
    return _same(ctx, "layernorm", ev, x, bool(affine))


def scale_module(ctx: Ctx, ev: Event, vals: list):
    return _same(ctx, "scale", ev, ctx.act(vals[0], ev), ev.module.bias is not None)


# -------------------------------------------------------------- element-wise
def act(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    kind = ev.act or (ev.entry.arg if ev.entry.arg else getattr(ev.module, "kind", None))
    return _same(ctx, "act", ev, x, kind, inplace=_inplace(ev, ev.args[0]))


def clamp(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    return _same(ctx, "act", ev, x, "clamp", inplace=_inplace(ev, ev.args[0]))


def mapped(ctx: Ctx, ev: Event, vals: list):
    """A ``module_map`` type: the op the user named."""
    x = ctx.act(vals[0], ev)
    op = ctx.module_map[type(ev.module)]
    if op == "global_avgpool":
        canon(x, "a global pool")
        return _same(ctx, "global_avgpool", ev, x)
    if op in ("identity", "dropout", "zero"):
        return _same(ctx, op, ev, x)
    if op == "flatten":
        return _layout.flatten_to(ctx, ev, x, ev.out)
    return _same(ctx, "act", ev, x, op, inplace=_inplace(ev, ev.args[0]))


def _numbers(ev: Event) -> list:
    vals = list(ev.args[1:]) + [ev.kwargs.get("other")]
    return [a for a in vals if isinstance(a, (int, float)) and not isinstance(a, bool)]


def arith(ctx: Ctx, ev: Event, vals: list):
    """``+ - * / **`` between two activations, an activation and a number, or
    an activation and a parameter (a per-channel scale and its bias)."""
    op = ev.kind
    acts = [v for v in vals if isinstance(v, (V, Lazy, Stale))]
    statics = [v for v in vals if isinstance(v, Static)]
    if ev.kwargs.get("alpha", 1) != 1 or (op == "div" and ev.kwargs.get("rounding_mode")):
        raise Unsupported(f"{op} with alpha or rounding_mode")
    if len(acts) == 2 and not statics:
        return _binary(ctx, ev, vals, op)
    if len(acts) != 1:
        raise Unsupported(f"{op} of {len(acts)} activations and {len(statics)} other tensors")
    x = ctx.act(acts[0], ev)
    if statics:
        return _with_param(ctx, ev, x, statics[0], op)
    nums = _numbers(ev)
    if len(nums) != 1:
        raise Unsupported(f"{op} of an activation and {ev.args[1:]!r}")
    c, inplace = nums[0], _inplace(ev, ev.args[0])
    if op == "add" and c == 0 and ev.call == Call.OPERATOR and not inplace:
        return x      # `0 + x`: the start of Python's sum(); `y + 0`: the same tensor
    if op == "mul" and c == 0 and not inplace:
        return _same(ctx, "zero", ev, x)      # NAS "none" written x * 0
    return _same(ctx, "act", ev, x, f"{op}_const", inplace=inplace)


def _binary(ctx: Ctx, ev: Event, vals: list, op: str):
    a, b = (ctx.act(v, ev) for v in vals[:2])
    if a.dims != b.dims:
        raise Unsupported(f"{op} of tensors laid out {layout(a)} and {layout(b)}")
    if op == "pow":
        raise Unsupported("a tensor raised to a tensor power")
    sa, sb = ctx.shape(a.rec), ctx.shape(b.rec)
    full = shape_of(ev.out, a.dims)
    inplace = _inplace(ev, ev.args[0])
    if sa != full:
        if sb != full or inplace:
            raise Unsupported(f"{op} where the first input broadcasts")
        a, b = b, a              # the full-shape operand first: the core broadcasts the second
    if op == "add" and sa != sb:
        raise Unsupported("an addition that broadcasts (x + y of equal shapes only)")
    return V(ctx.rec(op, ev, a.rec, b.rec, inplace=inplace, out=ev.out, dims=a.dims), a.dims)


def _per_channel(x: V, t: torch.Tensor, p: torch.Tensor) -> bool:
    """``p`` broadcasts over ``t`` as one value per channel."""
    if "C" not in x.dims or p.dim() > t.dim() or p.numel() != int(t.shape[x.dims.index("C")]):
        return False
    c = x.dims.index("C") - (t.dim() - p.dim())
    return all(s == 1 for i, s in enumerate(p.shape) if i != c)


def _with_param(ctx: Ctx, ev: Event, x: V, prm: Static, op: str):
    ts = _record.tensors(ev.args)
    t = next(a for a in ts if ctx.vals.get(id(a)) is not prm)
    p = next(a for a in ts if ctx.vals.get(id(a)) is prm)
    if not _per_channel(x, t, p) or op not in ("mul", "add"):
        raise Unsupported(f"{op} of an activation and {prm.name} of shape {tuple(p.shape)} "
                          "(per-channel scales x * w (+ b) only)")
    if op == "mul":
        return _same(ctx, "scale", ev, x, False, )
    net, last = ctx.net, ctx.net.last
    flags = net.get(last, "flags")
    if x.rec == last and net.get(last, "op") == Op.SCALE and not flags & Flag.BIAS \
            and net.get(last, "call") == int(ev.call):
        net.set(last, flags=flags | Flag.BIAS)   # x * w + b: one scale with a bias
        ctx.tensor_of[last] = (ev.out, x.dims)
        ctx.vals[id(t)] = Stale(last)
        return V(last, x.dims)
    raise Unsupported(f"adding {prm.name}, which is not the bias of a per-channel scale made "
                      "just before with the same call (x * w + b)")


# ------------------------------------------------------------ windows, joins
def pool(ctx: Ctx, ev: Event, vals: list):
    x = canon(ctx.act(vals[0], ev), "a pool")
    m, kind = ev.module, ev.entry.arg
    if m is not None:
        k, s, p, ceil = m.kernel_size, m.stride, m.padding, m.ceil_mode
        extra = (m.dilation, m.return_indices) if kind == "max" else \
            (m.count_include_pad, m.divisor_override)
    else:
        k = arg(ev, 1, "kernel_size")
        s = arg(ev, 2, "stride") or k
        p = arg(ev, 3, "padding", 0)
        if kind == "max":
            ceil = bool(arg(ev, 5, "ceil_mode", False))
            extra = (arg(ev, 4, "dilation", 1), arg(ev, 6, "return_indices", False))
        else:
            ceil = bool(arg(ev, 4, "ceil_mode", False))
            extra = (arg(ev, 5, "count_include_pad", True), arg(ev, 6, "divisor_override"))
    if kind == "max":
        if extra[1]:
            raise Unsupported("max pooling with return_indices=True")
        return V(ctx.rec("maxpool", ev, x, pair(k), pair(s), pair(p), pair(extra[0]), ceil,
                         out=ev.out, dims=CANON))
    if extra[1] is not None:
        raise Unsupported("avg pooling with divisor_override")
    return V(ctx.rec("avgpool", ev, x, pair(k), pair(s), pair(p), ceil, bool(extra[0]),
                     out=ev.out, dims=CANON))


def apool(ctx: Ctx, ev: Event, vals: list):
    x = canon(ctx.act(vals[0], ev), "an adaptive pool")
    size = (int(ev.out.shape[-2]), int(ev.out.shape[-1]))
    return V(ctx.rec("adaptive_avgpool", ev, x, size, out=ev.out, dims=CANON))


def mean(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    t = ev.args[0]
    dims = arg(ev, 1, "dim")
    if dims is None:
        raise Unsupported("a mean over every dimension, batch included")
    dims = [dims] if isinstance(dims, int) else list(dims)
    labels = {label(x, int(d), t.dim()) for d in dims}
    if "N" in labels:
        raise Unsupported("a mean over the batch dimension")
    keep = bool(arg(ev, 2, "keepdim", False))
    out_dims = x.dims if keep else tuple(lab for lab in x.dims if lab not in labels)
    r = ctx.rec("mean", ev, x.rec, "C" in labels, "H" in labels, "W" in labels, out=ev.out,
                dims=out_dims)
    return V(r, out_dims)


def softmax(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    dim = ev.module.dim if ev.module is not None else arg(ev, 1, "dim")
    if dim is None or label(x, int(dim), ev.args[0].dim()) != "C":
        raise Unsupported(f"softmax over dim {dim} (over the channels only)")
    return _same(ctx, "log_softmax" if ev.entry.arg == "log" else "softmax", ev, x)


def cat(ctx: Ctx, ev: Event, vals: list):
    seq = list(ev.args) if ev.module is not None else list(ev.args[0])
    xs = [ctx.act(ctx.vals.get(id(t)), ev) for t in seq]
    dim = ev.module.dim if ev.module is not None else arg(ev, 1, "dim", 0)
    if any(x.dims != xs[0].dims for x in xs):
        raise Unsupported("torch.cat of tensors laid out differently")
    lab = label(xs[0], int(dim), seq[0].dim())
    if lab == "N":
        raise Unsupported("torch.cat along the batch dimension")
    r = ctx.rec("concat", ev, *[x.rec for x in xs], axis=AXIS[lab], out=ev.out,
                dims=xs[0].dims)
    return V(r, xs[0].dims)


def pad(ctx: Ctx, ev: Event, vals: list):
    x = ctx.act(vals[0], ev)
    t, m = ev.args[0], ev.module
    if m is not None:
        pads, mode = list(m.padding), "constant"
    else:
        pads, mode = list(arg(ev, 1, "pad")), arg(ev, 2, "mode", "constant")
    if mode != "constant":
        raise Unsupported(f"padding mode {mode!r} (constant padding only)")
    before, after = dict.fromkeys("CHW", 0), dict.fromkeys("CHW", 0)
    for i in range(len(pads) // 2):
        lab = x.dims[t.dim() - 1 - i]
        lo, hi = int(pads[2 * i]), int(pads[2 * i + 1])
        if (lab == "N" and (lo or hi)) or lo < 0 or hi < 0:
            raise Unsupported("padding the batch, or negative padding (a crop)")
        if lab != "N":
            before[lab], after[lab] = lo, hi
    c, h, w = ctx.shape(x.rec)
    out = (c + before["C"] + after["C"], h + before["H"] + after["H"],
           w + before["W"] + after["W"])
    return _same(ctx, "pad", ev, x, out, (before["C"], before["H"], before["W"]))


def shuffle(ctx: Ctx, ev: Event, vals: list):
    x = canon(ctx.act(vals[0], ev), "a channel shuffle")
    g = ev.module.groups if ev.module is not None else arg(ev, 1, "groups")
    return V(ctx.rec("channel_shuffle", ev, x, int(g), out=ev.out, dims=CANON))


def join_module(ctx: Ctx, ev: Event, vals: list):
    """nasflops' Add / InplaceAdd / Mul modules."""
    if ev.kind == "mul":
        return _binary(ctx, ev, vals, "mul")
    xs = [ctx.act(v, ev) for v in vals]
    return V(ctx.rec("add", ev, *[x.rec for x in xs], inplace=ev.entry.arg == "inplace",
                     out=ev.out, dims=xs[0].dims), xs[0].dims)


def unary(method: str):
    """Reader of a one-input op that keeps the layout (dropout, identity, ...)."""
    def read(ctx: Ctx, ev: Event, vals: list):
        return _same(ctx, method, ev, ctx.act(vals[0], ev))
    read.__name__ = method
    return read


#: registry kind -> reader ``(ctx, event, input values) -> value or tuple of values``
READERS = {
    "conv": conv, "linear": linear, "bn": bn, "ln": ln, "act": act, "clamp": clamp,
    "mapped": mapped, "pool": pool, "apool": apool, "mean": mean, "softmax": softmax,
    "cat": cat, "pad": pad, "scale": scale_module, "shuffle": shuffle,
    "add": arith, "sub": arith, "mul": arith, "div": arith, "pow": arith,
    "dropout": unary("dropout"), "identity": unary("identity"),
    "zeros_like": unary("zero"), "clone": unary("copy"),
    "alias": _layout.alias, "expand": _layout.expand, "contiguous": _layout.contiguous,
    "reshape": _layout.reshape, "flatten": _layout.reshape, "permute": _layout.permute,
    "transpose": _layout.permute, "getitem": _layout.getitem, "chunk": _layout.chunk,
    "split": _layout.chunk, "narrow": _layout.narrow,
}
#: module-call readers that differ from the call of the same kind
MODULE_READERS = {"add": join_module, "mul": join_module}
