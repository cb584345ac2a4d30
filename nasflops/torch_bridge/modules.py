"""nasflops' own ``nn.Module`` s: the tiny modules ``to_torch`` builds for ops
torch has no module for, and the wrappers that spell an op as a function, a
tensor method or an operator.

Two families:

* **bridge modules** (:data:`BRIDGE_MODULES`: :class:`Add`, :class:`Mul`,
  :class:`Concat`, :class:`Slice`, :class:`Zero`, :class:`Scale`,
  :class:`LayerNorm2d`, :class:`InplaceAct`, ...) stand for one record called
  as a module.  ``from_torch`` reads them as one op without looking inside.
* **spellings** (:class:`Fn`, :class:`ConvF`, :class:`LinearF`,
  :class:`BatchNormF`, :class:`LayerNormF`, :class:`ScaleF`) call a torch
  function, tensor method or operator in their ``forward``; ``from_torch``
  traces into them like into any user module, so a record written with call
  kind ``function`` comes back as one.

No module here has a type the reference tools (thop, ptflops) key a rule on:
what they see is what ``forward`` calls.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Add", "InplaceAdd", "Mul", "Concat", "Slice", "Zero", "Scale", "LayerNorm2d",
           "InplaceAct", "Fused", "BRIDGE_MODULES", "Fn", "Written", "ConvF", "LinearF",
           "BatchNormF", "LayerNormF", "ScaleF", "resolve"]


# ------------------------------------------------------------ bridge modules
class Add(nn.Module):
    """Element-wise sum of two or more same-shape tensors (``a + b + ...``)."""

    def forward(self, x, *others):
        for o in others:
            x = x + o
        return x


class InplaceAdd(nn.Module):
    """In-place sum into the first input (torch's ``out += identity``)."""

    def forward(self, x, *others):
        for o in others:
            x += o
        return x


class Fused(nn.Module):
    """Stands for a record folded into a later one (the head of a concat chain,
    which one ``torch.cat`` computes); never called."""

    def forward(self, *xs):  # pragma: no cover - never called
        raise RuntimeError("a fused record is computed by the record that consumes it")


class Mul(nn.Module):
    """Element-wise product; the gate broadcasts (an SE gate ``N x C x 1 x 1``)."""

    def forward(self, x, gate):
        return x * gate


class Concat(nn.Module):
    """Concatenation along one axis (``torch.cat(xs, dim=1)`` by default)."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = int(dim)

    def forward(self, *xs):
        return torch.cat(xs, dim=self.dim)


class Slice(nn.Module):
    """Channels ``start .. start + count`` of the input (a view, like ``chunk``)."""

    def __init__(self, start: int, count: int):
        super().__init__()
        self.start, self.count = int(start), int(count)

    def forward(self, x):
        return x.narrow(1, self.start, self.count)

    def extra_repr(self):
        return f"start={self.start}, count={self.count}"


class Zero(nn.Module):
    """NAS-Bench "none": zeros shaped like the input (a new tensor)."""

    def forward(self, x):
        return torch.zeros_like(x)


class Scale(nn.Module):
    """Learned per-channel scale (ConvNeXt's layer scale), optional shift.

    Parameters: ``C`` weights, plus ``C`` biases with ``bias=True``.
    """

    def __init__(self, channels: int, bias: bool = False, rank: int = 4):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        # the parameter's broadcast shape is fixed at build time
        self.shape = (1, channels) + (1,) * (rank - 2)

    def forward(self, x):
        y = x * self.weight.view(self.shape)
        if self.bias is not None:
            y = y + self.bias.view(self.shape)
        return y


class LayerNorm2d(nn.Module):
    """Layer norm over the channels at each position (ConvNeXt's LayerNorm2d).

    Holds a plain ``nn.LayerNorm`` child, applied channels-last, so tools that
    key on the ``nn.LayerNorm`` type see it.
    """

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(channels, elementwise_affine=affine)

    def forward(self, x):
        # contiguous: the next op sees an N x C x H x W tensor, as the record
        # says (a flatten of it is a view)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous()


class InplaceAct(nn.Module):
    """In-place sigmoid, tanh or GELU, which ``torch.nn`` has no in-place flag for.

    The activation is a plain ``nn.Sigmoid``/``nn.Tanh``/``nn.GELU`` child whose
    result is written back into the input, so tools keyed on those module
    types count it exactly as they count the out-of-place activation.
    """

    def __init__(self, kind: str):
        super().__init__()
        fns = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}
        if kind not in fns:
            raise ValueError(f"InplaceAct handles sigmoid, tanh and gelu, got {kind!r}")
        self.kind = kind
        self.fn = fns[kind]()

    def forward(self, x):
        return x.copy_(self.fn(x))

    def extra_repr(self):
        return self.kind


#: nasflops' own modules, each one record (leaves for from_torch)
BRIDGE_MODULES = (Add, InplaceAdd, Mul, Concat, Slice, Zero, Scale, LayerNorm2d, InplaceAct)


# ----------------------------------------------------------------- spellings
def resolve(path: str, x=None):
    """The callable a spelling names, looked up *now* (tools such as ptflops
    patch ``F.relu`` and ``torch.add`` while they run): ``"F.relu"``,
    ``"torch.add"``, ``"torch._C._nn.relu6"``, or ``".mul"``, the method of ``x``.

    >>> import torch
    >>> resolve("torch.cat") is torch.cat
    True
    """
    if path.startswith("."):
        return getattr(x, path[1:])
    head, name = path.rsplit(".", 1)
    base = {"F": F, "torch": torch, "torch._C._nn": torch._C._nn}[head]
    return getattr(base, name)


class Fn(nn.Module):
    """An op spelled as a torch function, a tensor method or an operator:
    ``forward(x, *others)`` calls ``fn`` on them, then ``*args, **kwargs``.

    ``fn`` is a spelling path (:func:`resolve`: ``"F.relu"``, ``"torch.add"``,
    ``".mul"`` for ``x.mul(...)``) or a callable (``operator.add``);
    ``packed=True`` passes the inputs as one list (``torch.cat``).

    >>> import operator, torch
    >>> Fn(operator.add)(torch.ones(1), torch.ones(1)).item()
    2.0
    >>> Fn(".mul", 0.5)(torch.ones(1)).item()
    0.5
    """

    def __init__(self, fn, *args, packed: bool = False, **kwargs):
        super().__init__()
        self.fn, self.args, self.kwargs, self.packed = fn, args, kwargs, packed

    def forward(self, x, *others):
        if self.packed:
            return resolve(self.fn)([x, *others], *self.args, **self.kwargs)
        if not isinstance(self.fn, str):
            return self.fn(x, *others, *self.args, **self.kwargs)
        if self.fn.startswith("."):
            return resolve(self.fn, x)(*others, *self.args, **self.kwargs)
        return resolve(self.fn)(x, *others, *self.args, **self.kwargs)

    def extra_repr(self):
        return self.fn if isinstance(self.fn, str) else getattr(self.fn, "__name__", "")


class Written(nn.Module):
    """An activation written out with arithmetic, as model code does:
    ``hardsigmoid``: ``F.relu6(x + 3.) / 6.`` (``clamp=True``:
    ``torch.clamp(x + 3., 0., 6.) / 6.``), ``hardswish``: ``x * F.relu6(x + 3.) / 6.``,
    ``silu``: ``x * torch.sigmoid(x)``; ``inplace=True`` writes into ``x``."""

    def __init__(self, kind: str, clamp: bool = False, inplace: bool = False):
        super().__init__()
        self.kind, self.clamp, self.inplace = kind, clamp, inplace

    def _relu6(self, t, inplace=False):
        if self.clamp:
            return t.clamp_(0., 6.) if inplace else torch.clamp(t, 0., 6.)
        return F.relu6(t, inplace=inplace)

    def forward(self, x):
        if self.kind == "silu":
            s = torch.sigmoid(x)
            return x.mul_(s) if self.inplace else x * s
        if self.kind == "hardsigmoid":
            if self.inplace:
                return self._relu6(x.add_(3.), inplace=True).div_(6.)
            return self._relu6(x + 3.) / 6.
        r = self._relu6(x + 3.)
        if self.inplace:
            return x.mul_(r).div_(6.)
        return x * r / 6.

    def extra_repr(self):
        return self.kind


class ConvF(nn.Module):
    """A convolution spelled ``F.conv2d(x, self.weight, self.bias, ...)``."""

    def __init__(self, cin: int, cout: int, kernel, stride, padding, dilation, groups: int,
                 bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, *kernel))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.geometry = (stride, padding, dilation, groups)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, *self.geometry)


class LinearF(nn.Module):
    """A fully connected layer spelled ``F.linear(x, self.weight, self.bias)``."""

    def __init__(self, cin: int, cout: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class BatchNormF(nn.Module):
    """Inference batch norm spelled ``F.batch_norm(x, mean, var, w, b, False)``."""

    def __init__(self, channels: int, affine: bool):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            False)


class LayerNormF(nn.Module):
    """Layer norm over the channels spelled ``F.layer_norm`` (channels-last
    between two permutes on ``N x C x H x W``, torchvision's LayerNorm2d).

    Its output is a channels-last view, as torchvision's: a flatten of it (or
    of what an element-wise op makes of it) copies."""

    def __init__(self, channels: int, affine: bool, rank: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None
        self.rank, self.shape = rank, (channels,)

    def forward(self, x):
        if self.rank == 2:
            return F.layer_norm(x, self.shape, self.weight, self.bias)
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.shape, self.weight, self.bias)
        return y.permute(0, 3, 1, 2)


class ScaleF(nn.Module):
    """A per-channel scale spelled ``x.mul(w)`` (``.add(b)``) (``method=True``)
    or ``x * w`` (``+ b``)."""

    def __init__(self, channels: int, bias: bool, rank: int, method: bool):
        super().__init__()
        # the input's rank: ptflops aligns the shapes of torch.mul / torch.add
        # from the left, so a (C, 1, 1) weight would be counted C times over
        shape = (1, channels) + (1,) * (rank - 2)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None
        self.method = method

    def forward(self, x):
        if self.method:
            y = x.mul(self.weight)
            return y if self.bias is None else y.add(self.bias)
        y = x * self.weight
        return y if self.bias is None else y + self.bias
