"""``to_torch``: a real ``nn.Module`` from one architecture's layer records.

Every record becomes one module, run in record order with the record's DAG
wiring, so the module a record becomes is the unit a hook counter (ours, thop,
ptflops) sees.  Standard ``torch.nn`` modules are used wherever one exists
(``Conv2d``, ``Linear``, ``BatchNorm2d``, ``ReLU(inplace=...)``, ``MaxPool2d``,
``AdaptiveAvgPool2d``, ``Flatten``, ``Dropout``, ``Identity``, ``Softmax(dim=1)``,
``ChannelShuffle``), because reference tools key their rules on the exact
module type; ops torch has no module for are tiny modules defined here
(:class:`Add`, :class:`Mul`, :class:`Concat`, :class:`Slice`, :class:`Zero`,
:class:`Scale`, :class:`LayerNorm2d`, :class:`InplaceAct`).

Tensor ranks follow what a hand-written model does: the network input and
every spatial op are ``N x C x H x W``; ``flatten`` and ``linear`` give
``N x F``.  The spec's shape of a rank-2 tensor is ``F x 1 x 1``, so when an op
needs the other rank (a ``Linear`` after a global pool without flatten, a
``Conv2d`` after a flatten) its input is reshaped on the way in
(``x.flatten(1)`` or ``x.view(-1, C, 1, 1)``): both are views, which cost
nothing under every convention and move no bytes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..scoring import SpecError, layer_table
from ..spec import INPUT_FIELDS, LAYER_DTYPE, Act, Flag, Op, SpecBatch

__all__ = ["to_torch", "SpecModule", "Add", "InplaceAdd", "Mul", "Concat", "Slice", "Zero", "Scale",
           "LayerNorm2d", "InplaceAct", "BRIDGE_MODULES"]


# ------------------------------------------------------------ tiny modules
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


class _Fused(nn.Module):
    """Stands for a record folded into a later one (the head of a concat chain,
    which one ``torch.cat`` computes); never called."""

    def forward(self, *xs):  # pragma: no cover - never called
        raise RuntimeError("a fused record is computed by the record that consumes it")


class Mul(nn.Module):
    """Element-wise product; the gate broadcasts (an SE gate ``N x C x 1 x 1``)."""

    def forward(self, x, gate):
        return x * gate


class Concat(nn.Module):
    """Concatenation along channels (``torch.cat(xs, dim=1)``)."""

    def forward(self, *xs):
        return torch.cat(xs, dim=1)


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
        # the parameter's broadcast shape is fixed at build time (tracing
        # cannot branch on x.dim())
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
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


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


#: nasflops' own modules (leaves for tracing, known to the hook counter)
BRIDGE_MODULES = (Add, InplaceAdd, Mul, Concat, Slice, Zero, Scale, LayerNorm2d, InplaceAct)

# activations with an ``inplace`` argument in torch.nn
_ACT_MODULES = {
    Act.RELU: nn.ReLU, Act.RELU6: nn.ReLU6, Act.HARDSWISH: nn.Hardswish,
    Act.HARDSIGMOID: nn.Hardsigmoid, Act.SILU: nn.SiLU,
}
_ACT_PLAIN = {Act.SIGMOID: nn.Sigmoid, Act.TANH: nn.Tanh, Act.GELU: nn.GELU}

# input adaptation codes
_KEEP, _TO_2D, _TO_4D = 0, 1, 2


class SpecModule(nn.Module):
    """An architecture as a module: ``layers[i - 1]`` is record ``i``.

    ``forward`` runs the records in order; ``inputs[i]`` names the records
    feeding record ``i`` and ``adapt[i]`` how each input is reshaped (see the
    module docstring).  A tensor is dropped after its last consumer, as eager
    code would.

    Attributes
    ----------
    layers : nn.ModuleList
        One module per record after the input.
    input_shape : tuple
        ``(C, H, W)`` of the network input.
    """

    def __init__(self, layers: Sequence[nn.Module], inputs, adapt, channels, release,
                 input_shape, output: int):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.inputs = [list(map(int, v)) for v in inputs]
        self.adapt = [list(map(int, v)) for v in adapt]
        self.channels = [int(c) for c in channels]
        self.release = [list(map(int, v)) for v in release]
        self.input_shape = tuple(int(v) for v in input_shape)
        self.output = int(output)

    def forward(self, x):
        outs = [x] + [None] * len(self.layers)
        for i in range(1, len(self.layers) + 1):
            if not self.inputs[i]:
                continue  # fused into a later record
            xs = []
            for j, how in zip(self.inputs[i], self.adapt[i]):
                t = outs[j]
                if how == _TO_2D:
                    t = t.flatten(1)
                elif how == _TO_4D:
                    t = t.view(-1, self.channels[j], 1, 1)
                xs.append(t)
            outs[i] = self.layers[i - 1](*xs)
            for j in self.release[i]:
                outs[j] = None
        return outs[self.output]


def _one_arch(spec) -> np.ndarray:
    if isinstance(spec, SpecBatch):
        if len(spec) != 1:
            raise ValueError(f"to_torch builds one architecture; got a batch of {len(spec)} "
                             "(index it: to_torch(batch[i]))")
        return spec[0]
    recs = spec.records if hasattr(spec, "records") and not isinstance(spec, np.ndarray) else spec
    recs = np.asarray(recs)
    if recs.dtype != LAYER_DTYPE or recs.ndim != 1:
        raise TypeError("to_torch takes one architecture: a record array of nasflops.LAYER_DTYPE, "
                        f"a Net or a one-element SpecBatch; got {type(spec).__name__}")
    return recs


def to_torch(spec, device: Optional[str | torch.device] = None, init: bool = True) -> SpecModule:
    """Build a runnable ``nn.Module`` from one architecture's records.

    Parameters
    ----------
    spec : ndarray of LAYER_DTYPE, Net, or one-element SpecBatch
        The architecture (validated by the core first: an invalid one raises
        :class:`nasflops.SpecError` naming the layer).
    device : str or torch.device, optional
        Where to create parameters; ``"meta"`` builds shapes only, which is
        enough for counting and costs no memory.
    init : bool
        ``False`` skips torch's random weight initialisation (weights are
        then zeros): much faster to build, and counts do not depend on values.

    Returns
    -------
    SpecModule
        In eval mode; ``model(torch.randn(N, C, H, W))`` runs it, and
        ``sum(p.numel() for p in model.parameters())`` equals the core's
        ``params``.

    Examples
    --------
    >>> import nasflops as nf
    >>> from nasflops.torch_bridge import to_torch
    >>> net = nf.Net(3, 32, 32); x = net.conv(net.input, 8, 3, padding=1, bias=True)
    >>> x = net.act(net.bn(x), "relu", inplace=True)
    >>> _ = net.linear(net.flatten(net.global_avgpool(x)), 10)
    >>> model = to_torch(net)
    >>> sum(p.numel() for p in model.parameters()) == int(nf.score(net)["params"][0])
    True
    >>> tuple(model(torch.randn(2, 3, 32, 32)).shape)
    (2, 10)
    """
    recs = _one_arch(spec)
    table = layer_table(recs)  # validates; raises SpecError naming the layer
    chans = table["channels"].astype(int)
    n = len(recs)
    ins = [[int(r[f]) for f in INPUT_FIELDS if r[f] >= 0] for r in recs]
    ins, fused = _fuse_concat_chains(recs, ins)
    rank = [4] * n
    adapt: list[list[int]] = [[]]
    layers: list[nn.Module] = []

    ctx = torch.device(device) if device is not None else None
    if init:
        factory = _make_layer
    else:
        def factory(*a):
            with torch.device("meta"):
                return _make_layer(*a)
    for i in range(1, n):
        r = recs[i]
        op = int(r["op"])
        src = ins[i]
        if i in fused:
            adapt.append([])
            rank[i] = 4 if 4 in [rank[j] for j in src] else 2
            layers.append(_Fused())
            ins[i] = []
            continue
        need = _needed_rank(op, [rank[j] for j in src])
        adapt.append([_TO_2D if (need == 2 and rank[j] == 4) else
                      _TO_4D if (need == 4 and rank[j] == 2) else _KEEP for j in src])
        rank[i] = 2 if op in (Op.FLATTEN, Op.LINEAR) else need
        try:
            if ctx is not None and init:
                with ctx:
                    mod = factory(r, int(chans[src[0]]), rank[i])
            else:
                mod = factory(r, int(chans[src[0]]), rank[i])
        except (ValueError, RuntimeError) as exc:  # pragma: no cover - the core validated it
            raise SpecError(None, i, 0, f"cannot build a torch module: {exc}") from exc
        layers.append(mod)

    # drop each tensor after its last consumer (the output is kept)
    last = list(range(n))
    for i in range(1, n):
        for j in ins[i]:
            last[j] = i
    release: list[list[int]] = [[] for _ in range(n)]
    for j in range(n - 1):
        if last[j] > j:
            release[last[j]].append(j)

    model = SpecModule(layers, ins, adapt, chans, release,
                       tuple(int(recs[0][f]) for f in ("out_channels", "size_h", "size_w")), n - 1)
    if not init:
        model = model.to_empty(device=ctx if ctx is not None else "cpu")
        # uninitialised memory may hold NaNs and denormals, which make CPU
        # kernels many times slower: zeros cost nothing to compute with
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
    return model.eval()


def _fuse_concat_chains(recs, ins):
    """Fold concat chains into one ``torch.cat``.

    ``Net.concat`` of more than four tensors writes a chain whose later
    records carry ``Flag.INPLACE`` (each grows the buffer of the one before);
    torch computes the whole chain as one ``cat`` of all its inputs, at the
    last record.  Returns the effective inputs of every record and the set of
    records folded away.
    """
    ins = [list(v) for v in ins]
    users = [0] * len(recs)
    for v in ins:
        for j in v:
            users[j] += 1
    fused = set()
    for i in range(1, len(recs)):
        r = recs[i]
        if int(r["op"]) != Op.CONCAT or not int(r["flags"]) & Flag.INPLACE:
            continue
        j = ins[i][0]
        if int(recs[j]["op"]) == Op.CONCAT and users[j] == 1 and j > 0:
            ins[i] = ins[j] + ins[i][1:]
            fused.add(j)
    return ins, fused


def _needed_rank(op: int, in_ranks: list[int]) -> int:
    if op == Op.LINEAR:
        return 2
    if op in (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL, Op.ADAPTIVE_AVGPOOL, Op.CHANNEL_SHUFFLE):
        return 4
    if op == Op.FLATTEN:
        return in_ranks[0]
    # element-wise and joins: one rank for all inputs, 4 if any is spatial
    return 4 if 4 in in_ranks else 2


def _make_layer(r, cin: int, rank: int) -> nn.Module:
    op = int(r["op"])
    flags = int(r["flags"])
    kernel = (int(r["kernel_h"]), int(r["kernel_w"]))
    stride = (int(r["stride_h"]), int(r["stride_w"]))
    pad = (int(r["pad_h"]), int(r["pad_w"]))
    dil = (int(r["dilation_h"]), int(r["dilation_w"]))
    if op == Op.CONV2D:
        return nn.Conv2d(cin, int(r["out_channels"]), kernel, stride, pad, dil,
                         groups=int(r["groups"]), bias=bool(flags & Flag.BIAS))
    if op == Op.LINEAR:
        return nn.Linear(cin, int(r["out_channels"]), bias=bool(flags & Flag.BIAS))
    if op == Op.BATCHNORM:
        cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
        return cls(cin, affine=bool(flags & Flag.AFFINE))
    if op == Op.LAYERNORM:
        if rank == 4:
            return LayerNorm2d(cin, affine=bool(flags & Flag.AFFINE))
        return nn.LayerNorm(cin, elementwise_affine=bool(flags & Flag.AFFINE))
    if op == Op.SCALE:
        return Scale(cin, bias=bool(flags & Flag.BIAS), rank=rank)
    if op == Op.ACT:
        kind = Act(int(r["act"]))
        inplace = bool(flags & Flag.INPLACE)
        if kind in _ACT_MODULES:
            return _ACT_MODULES[kind](inplace=inplace)
        if inplace:
            return InplaceAct(kind.name.lower())
        return _ACT_PLAIN[kind]()
    if op == Op.MAXPOOL:
        return nn.MaxPool2d(kernel, stride, pad, dil, ceil_mode=bool(flags & Flag.CEIL_MODE))
    if op == Op.AVGPOOL:
        return nn.AvgPool2d(kernel, stride, pad, ceil_mode=bool(flags & Flag.CEIL_MODE),
                            count_include_pad=not (flags & Flag.EXCLUDE_PAD))
    if op == Op.ADAPTIVE_AVGPOOL:
        return nn.AdaptiveAvgPool2d((int(r["size_h"]), int(r["size_w"])))
    if op == Op.ADD:
        return InplaceAdd() if flags & Flag.INPLACE else Add()
    if op == Op.MUL:
        return Mul()
    if op == Op.CONCAT:
        return Concat()
    if op == Op.FLATTEN:
        return nn.Flatten()
    if op == Op.IDENTITY:
        return nn.Identity()
    if op == Op.DROPOUT:
        # eval-mode dropout returns its input; p is not part of the spec
        return nn.Dropout(0.0)
    if op == Op.ZERO:
        return Zero()
    if op == Op.CHANNEL_SHUFFLE:
        return nn.ChannelShuffle(int(r["groups"]))
    if op == Op.SOFTMAX:
        return nn.Softmax(dim=1)
    if op == Op.SLICE:
        return Slice(int(r["start"]), int(r["out_channels"]))
    raise ValueError(f"op code {op} has no torch module")
