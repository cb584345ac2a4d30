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
nothing under every convention and move no bytes.  A token tensor (``G``
groups of an ``H x W`` grid of ``C`` channels) is ``N x G x H x W x C``,
channels last (a sequence: ``N x 1 x L x 1 x C``), and a stack of ``G``
matrices ``N x G x H x W``: the shapes the modules of ``modules.py`` take,
so nothing is adapted between them.

Everything a forward pass runs is built, transformers and language models
included (attention with its heads, GQA and causal masks, position
embeddings and relative-position tables as parameters, embeddings, RMS
norms, rotary embeddings, experts, tied heads).  Not built, with a
:class:`~nasflops.SpecError` naming the layer: a key/value cache holding past
tokens (a decode step); an op on a layout torch code does not run it on
(RMS norm of an image).
"""
from __future__ import annotations

import operator
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..scoring import SpecError, layer_table
from ..spec import INPUT_FIELDS, LAYER_DTYPE, Act, Call, Flag, Op, SpecBatch
from .modules import (Add, Attention, BatchNormF, Concat, ConvF, ExpertLinear, Fn, Fused,
                      InplaceAct, InplaceAdd, KVCache, LayerNorm2d, LayerNormF, LinearF,
                      MoECombine, Mul, ParamAdd, PatchMerge, Prepend, RMSNorm, Rotary, Scale,
                      ScaleF, SelfAttention, Slice, TokenEmbedding, Tokens, ToImage, ViewAs,
                      Written, Zero)
from .registry import ACTS, spelling

__all__ = ["to_torch", "SpecModule", "spellable"]


# activations whose torch.nn module takes ``inplace=``
_INPLACE_MODULES = {k for k, sp in ACTS.items() if sp.inplace_kw and sp.module is not None}

# input adaptation codes
_KEEP, _TO_2D, _TO_4D = 0, 1, 2
# ranks of the tensors of the other layouts (build.py's codes): a token tensor
# is N x G x H x W x C, a matrix stack N x G x H x W
_TOKENS_RANK, _MATRIX_RANK = 5, 3
_LAYOUT_RANK = {1: _TOKENS_RANK, 2: _MATRIX_RANK}


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
    shapes = [tuple(int(v) for v in row) for row in zip(table["channels"], table["height"],
                                                         table["width"])]
    layouts = table["layout"].astype(int)
    per_sample = _per_sample_shapes(table)
    n = len(recs)
    ins = [[int(r[f]) for f in INPUT_FIELDS if r[f] >= 0] for r in recs]
    ins, fused = _fuse_concat_chains(recs, ins)
    rank = [4] * n
    adapt: list[list[int]] = [[]]
    layers: list[nn.Module] = []
    ties: list[tuple[int, int]] = []     # (tied linear, its embedding)

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
            rank[i] = _LAYOUT_RANK.get(int(layouts[i]), 4 if 4 in [rank[j] for j in src] else 2)
            layers.append(Fused())
            ins[i] = []
            continue
        info = {"out": per_sample[i], "ins": [per_sample[j] for j in src]}
        if layouts[src[0]] != 0:
            # token tensors and matrix stacks have one shape: nothing to adapt
            need = _LAYOUT_RANK[int(layouts[src[0]])]
            adapt.append([_KEEP] * len(src))
        else:
            need = _needed_rank(op, [rank[j] for j in src])
            adapt.append([_TO_2D if (need == 2 and rank[j] == 4) else
                          _TO_4D if (need == 4 and rank[j] == 2) else _KEEP for j in src])
        if layouts[i] != 0:
            rank[i] = _LAYOUT_RANK[int(layouts[i])]
        elif layouts[src[0]] != 0:
            rank[i] = 4                                      # to_image
        else:
            rank[i] = 2 if op in (Op.FLATTEN, Op.LINEAR) else need
        try:
            if ctx is not None and init:
                with ctx:
                    mod = factory(r, shapes[src[0]], need, info)
            else:
                mod = factory(r, shapes[src[0]], need, info)
        except NotBuilt as exc:
            raise SpecError(None, i, 0, f"{Op(op).name.lower()}: {exc}") from exc
        except (ValueError, RuntimeError) as exc:  # pragma: no cover - the core validated it
            raise SpecError(None, i, 0, f"cannot build a torch module: {exc}") from exc
        layers.append(mod)
        if op == Op.LINEAR and int(r["flags"]) & Flag.TIED:
            ties.append((i, _tied_table(recs, chans, ins, i)))

    release = _releases(ins)
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
            elif hasattr(m, "reset_buffers"):       # masks, indices, rotary tables
                m.reset_buffers()
    # a tied head's weight *is* the embedding's table (after to_empty, which
    # gives every module its own tensors)
    for i, j in ties:
        model.layers[i - 1].weight = model.layers[j - 1].embed.weight
    return model.eval()


def _per_sample_shapes(table) -> list[tuple]:
    """Each record's tensor per sample, in the shape the built model holds it:
    ``(C, H, W)`` for an image, ``(G, H, W, C)`` for tokens, ``(G, H, W)`` for
    matrices."""
    return [(int(c), int(h), int(w)) if lay == 0 else (int(g), int(h), int(w), int(c))
            if lay == 1 else (int(g), int(h), int(w))
            for g, c, h, w, lay in zip(table["groups"], table["channels"], table["height"],
                                       table["width"], table["layout"])]


def _releases(ins) -> list[list[int]]:
    """Per record, the tensors to drop after it: each after its last consumer
    (the output is kept)."""
    n = len(ins)
    last = list(range(n))
    for i in range(1, n):
        for j in ins[i]:
            last[j] = i
    release: list[list[int]] = [[] for _ in range(n)]
    for j in range(n - 1):
        if last[j] > j:
            release[last[j]].append(j)
    return release


def _tied_table(recs, chans, ins, i: int) -> int:
    """The embedding record whose table a tied linear ``i`` shares: vocabulary
    = the linear's outputs, dimension = its inputs."""
    vocab, dim = int(recs[i]["out_channels"]), int(chans[ins[i][0]])
    for j in range(1, i):
        if int(recs[j]["op"]) == Op.EMBEDDING and int(recs[j]["extra"]) == vocab \
                and int(recs[j]["out_channels"]) == dim:
            return j
    raise SpecError(None, i, 0, f"a tied linear ({dim} -> {vocab}) needs an embedding of "
                                f"{vocab} x {dim} before it to share the table with")


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
    if op in (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL, Op.ADAPTIVE_AVGPOOL, Op.CHANNEL_SHUFFLE,
              Op.PAD, Op.CROP, Op.MEAN, Op.TOKENS, Op.EMBEDDING):
        return 4
    if op in (Op.FLATTEN, Op.COPY):
        return in_ranks[0]
    # element-wise and joins: one rank for all inputs, 4 if any is spatial
    return 4 if 4 in in_ranks else 2




# ----------------------------------------------------------- the spellings
# One builder per op: ``(record, input channels, rank, call) -> nn.Module``.
# The call kind picks the spelling a hook tool sees (registry.py): a torch.nn
# module, a torch.nn.functional function, a tensor method / torch.* function,
# an operator.  Where torch has no distinct spelling for a call kind, the
# nearest one is used and the conventions weigh both alike.
class NoSpelling(ValueError):
    """A record's op has no torch spelling with its call kind."""


class NotBuilt(ValueError):
    """A record ``to_torch`` does not build (a key/value cache of past tokens)."""


def _geometry(r):
    return ((int(r["kernel_h"]), int(r["kernel_w"])), (int(r["stride_h"]), int(r["stride_w"])),
            (int(r["pad_h"]), int(r["pad_w"])), (int(r["dilation_h"]), int(r["dilation_w"])))


def _conv(r, ins, rank, call):
    cin = ins[0]
    k, s, p, d = _geometry(r)
    bias, cout, g = bool(int(r["flags"]) & Flag.BIAS), int(r["out_channels"]), int(r["groups"])
    if call == Call.MODULE:
        return nn.Conv2d(cin, cout, k, s, p, d, groups=g, bias=bias)
    return ConvF(cin, cout, k, s, p, d, g, bias)


def _linear(r, ins, rank, call):
    cin = ins[0]
    bias, cout = bool(int(r["flags"]) & Flag.BIAS), int(r["out_channels"])
    return nn.Linear(cin, cout, bias=bias) if call == Call.MODULE else LinearF(cin, cout, bias)


def _norm(r, ins, rank, call):
    cin = ins[0]
    affine = bool(int(r["flags"]) & Flag.AFFINE)
    if int(r["op"]) == Op.BATCHNORM:
        if call != Call.MODULE:
            return BatchNormF(cin, affine)
        return (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(cin, affine=affine)
    if call != Call.MODULE:
        return LayerNormF(cin, affine, rank)
    if rank == _MATRIX_RANK:
        raise ValueError("a layer norm of a matrix stack has no channels")
    if rank == 4:
        return LayerNorm2d(cin, affine=affine)
    return nn.LayerNorm(cin, elementwise_affine=affine)


def _scale(r, ins, rank, call):
    cin = ins[0]
    bias = bool(int(r["flags"]) & Flag.BIAS)
    if call == Call.MODULE:
        return Scale(cin, bias=bias, rank=rank)
    return ScaleF(cin, bias, rank, method=call == Call.METHOD)


def _operator(op: str, inplace: bool):
    """``operator.add`` / ``operator.iadd`` ... (``div`` is ``truediv``)."""
    name = "truediv" if op == "div" else op
    return getattr(operator, f"i{name}" if inplace else name)


#: the constant to_torch writes for each arithmetic activation (none may make
#: the op vanish: not x + 0, not x * 0)
_CONSTS = {"add_const": ("add", 1.0), "sub_const": ("sub", 1.0), "mul_const": ("mul", 0.5),
           "div_const": ("div", 2.0), "pow_const": ("pow", 2)}


def _act(r, ins, rank, call):
    kind = Act(int(r["act"])).name.lower()
    inplace = bool(int(r["flags"]) & Flag.INPLACE)
    if kind in _CONSTS:
        op, c = _CONSTS[kind]
        if call == Call.METHOD:
            if inplace:   # out=x: refused when autograd is on, as the tools run
                raise NoSpelling(f"in-place {kind} called as a method has no torch spelling")
            return Fn(f"torch.{op}", c)
        return Fn(_operator(op, inplace), c)
    sp = ACTS[kind]
    extra = (-1.0, 1.0) if kind == "clamp" else ()
    if call == Call.OPERATOR and kind in ("hardsigmoid", "hardswish", "silu"):
        return Written(kind, inplace=inplace)
    if call == Call.MODULE and sp.module is not None:
        if kind in _INPLACE_MODULES:
            return sp.module(*extra, inplace=inplace)
        if inplace:
            return InplaceAct(kind)
        return sp.module()
    if call == Call.FUNCTION and sp.function is not None and (sp.inplace_kw or not inplace):
        kw = {"inplace": True} if inplace else {}
        return Fn(spelling(sp.function), *extra, **kw)
    methods = sp.inplace_methods if inplace else sp.methods
    if not methods:
        raise NoSpelling(f"{'in-place ' if inplace else ''}{kind} called as a "
                         f"{call.name.lower()} has no torch spelling")
    return Fn(spelling(methods[0]), *extra)


def _window(r, ins, rank, call):
    op, flags = int(r["op"]), int(r["flags"])
    k, s, p, d = _geometry(r)
    ceil = bool(flags & Flag.CEIL_MODE)
    if op == Op.MAXPOOL:
        if call == Call.MODULE:
            return nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)
        fn = "F.max_pool2d" if call == Call.FUNCTION else "torch.max_pool2d"
        return Fn(fn, k, s, p, d, ceil_mode=ceil)
    if op == Op.AVGPOOL:
        incl = not (flags & Flag.EXCLUDE_PAD)
        if call == Call.MODULE:
            return nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=incl)
        return Fn("F.avg_pool2d", k, s, p, ceil, incl)
    size = (int(r["size_h"]), int(r["size_w"]))
    if call == Call.MODULE:
        return nn.AdaptiveAvgPool2d(size)
    return Fn("F.adaptive_avg_pool2d", size)


def _join(r, ins, rank, call):
    op, inplace = int(r["op"]), bool(int(r["flags"]) & Flag.INPLACE)
    if call != Call.MODULE and sum(int(r[f]) >= 0 for f in INPUT_FIELDS) > 2:
        # torch adds two tensors at a time: a + b + c makes a tensor in between
        raise NoSpelling("an add of more than two tensors is one op only as a module")
    name = {Op.ADD: "add", Op.MUL: "mul", Op.SUB: "sub", Op.DIV: "div"}[op]
    if call == Call.MODULE and op == Op.ADD:
        return InplaceAdd() if inplace else Add()
    if call == Call.MODULE and op == Op.MUL and not inplace:
        return Mul()
    if call == Call.METHOD:
        if inplace:   # out=x: refused when autograd is on, as the tools run
            raise NoSpelling(f"an in-place {name} called as a method has no torch spelling")
        return _Chain(f"torch.{name}")
    return _Chain(_operator(name, inplace))


class _Chain(nn.Module):
    """``fn(fn(a, b), c)``...: a join of several inputs."""

    def __init__(self, fn):
        super().__init__()
        self.fn = Fn(fn)

    def forward(self, x, *others):
        for o in others:
            x = self.fn(x, o)
        return x


def _concat(r, ins, rank, call):
    # channels, height, width: dims 1, 2, 3 of an image, 4, 2, 3 of tokens
    dim = ((4, 2, 3) if rank == _TOKENS_RANK else (1, 2, 3))[int(r["extra"])]
    if call == Call.MODULE:
        return Concat(dim)
    return Fn("torch.cat", dim=dim, packed=True)


def _zero(r, ins, rank, call):
    if call == Call.MODULE:
        return Zero()
    if call == Call.METHOD:
        return Fn(".mul", 0.0)              # NAS-Bench-201's none: x.mul(0.)
    if call == Call.OPERATOR:
        return Fn(operator.mul, 0.0)
    return Fn("torch.zeros_like")


def _slice(r, ins, rank, call):
    start, count, step = int(r["start"]), int(r["out_channels"]), max(int(r["groups"]), 1)
    # channels of an image (dim 1) or of tokens (dim 4); tokens of a sequence (dim 2)
    dim = 1 if rank != _TOKENS_RANK else 2 if int(r["flags"]) & Flag.TOKENS else 4
    if call == Call.MODULE and step == 1 and dim == 1:
        return Slice(start, count)
    if call in (Call.MODULE, Call.METHOD) and step == 1:
        # torch has no module for it: the tensor method (no tool counts either)
        return Fn(".narrow", dim, start, count)
    return Fn(operator.getitem, (slice(None),) * dim
              + (slice(start, start + (count - 1) * step + 1, step),))


def _crop(r, ins, rank, call):
    idx = [slice(None), slice(None)]
    for a in ("h", "w"):
        b, n, s = int(r[f"pad_{a}"]), int(r[f"size_{a}"]), int(r[f"stride_{a}"])
        idx.append(slice(b, b + (n - 1) * s + 1, s))
    return Fn(operator.getitem, tuple(idx))


def _pad(r, ins, rank, call):
    c, h, w = ins
    before = (int(r["start"]), int(r["pad_h"]), int(r["pad_w"]))
    after = (int(r["out_channels"]) - c - before[0], int(r["size_h"]) - h - before[1],
             int(r["size_w"]) - w - before[2])
    if call == Call.MODULE and before[0] == after[0] == 0:
        return nn.ZeroPad2d((before[2], after[2], before[1], after[1]))
    return Fn("F.pad", (before[2], after[2], before[1], after[1], before[0], after[0]))


def _mean(r, ins, rank, call):
    mask = int(r["extra"])
    chan = 4 if rank == _TOKENS_RANK else 1
    dims = tuple(d for bit, d in ((1, chan), (2, 2), (4, 3)) if mask & bit)
    return Fn(".mean", dims, keepdim=True)


def _simple(r, ins, rank, call):
    op = int(r["op"])
    if op == Op.FLATTEN:
        return nn.Flatten() if call == Call.MODULE else Fn("torch.flatten", 1)
    if op == Op.IDENTITY:
        return nn.Identity()
    if op == Op.DROPOUT:
        # eval-mode dropout returns its input; p is not part of the spec
        return nn.Dropout(0.0) if call == Call.MODULE else Fn("F.dropout", 0.0, False)
    if op == Op.CHANNEL_SHUFFLE:
        g = int(r["groups"])
        return nn.ChannelShuffle(g) if call == Call.MODULE else Fn("torch.channel_shuffle", g)
    if op in (Op.SOFTMAX, Op.LOG_SOFTMAX):
        log = "log_" if op == Op.LOG_SOFTMAX else ""
        # over the channels of an image, of tokens (last), over a matrix's rows
        dim = 1 if rank in (2, 4) else -1
        if call == Call.MODULE:
            return (nn.LogSoftmax if log else nn.Softmax)(dim=dim)
        return Fn(f"F.{log}softmax" if call == Call.FUNCTION else f"torch.{log}softmax", dim)
    return Fn(".clone")                      # Op.COPY


# -- token tensors, attention and language models (``info``: the per-sample
# shapes of the record's output and inputs, as the built model holds them)
def _tokens(r, ins, rank, call, info):
    op = int(r["op"])
    if op == Op.TOKENS:
        return Tokens(flat=bool(int(r["flags"]) & Flag.FLAT))
    if op == Op.TO_IMAGE:
        return ToImage()
    if op == Op.PREPEND:
        return Prepend(int(r["size_h"]), ins[0])
    if op == Op.PATCH_MERGE:
        return PatchMerge()
    if info is None:
        raise ValueError("needs the record's shapes")
    if op == Op.PARAM_ADD:
        return ParamAdd(int(r["extra"]), info["out"], bool(int(r["flags"]) & Flag.INPLACE))
    return ViewAs(info["out"], copy=bool(int(r["flags"]) & Flag.COPY))    # Op.VIEW_AS


def _matmul(r, ins, rank, call, info):
    # torch.matmul (function: torch has no F.matmul), x.matmul(y), x @ y; no
    # module exists: a module call is the operator
    if call == Call.FUNCTION:
        return Fn("torch.matmul")
    if call == Call.METHOD:
        return Fn(".matmul")
    return Fn(operator.matmul)


def _attention(r, ins, rank, call, info):
    op = int(r["op"])
    if op == Op.MHA:
        if call != Call.MODULE:
            raise NoSpelling("nn.MultiheadAttention is a module; its functional form is not "
                             "one op to the tools")
        return SelfAttention(int(r["out_channels"]), int(r["groups"]),
                             bias=bool(int(r["flags"]) & Flag.BIAS))
    if info is None:
        raise ValueError("needs the record's shapes")
    (_, qh, qw, _), (_, kh, kw, _) = info["ins"][0], info["ins"][1]
    return Attention(int(r["groups"]), int(r["kv_heads"]), bool(int(r["flags"]) & Flag.CAUSAL),
                     qh * qw, kh * kw)


def _language(r, ins, rank, call, info):
    op = int(r["op"])
    if op == Op.EMBEDDING:
        return TokenEmbedding(int(r["extra"]), int(r["out_channels"]))
    if op == Op.KV_CACHE:
        if int(r["size_h"]) > 0:
            raise NotBuilt(f"a key/value cache holding {int(r['size_h'])} past tokens (a decode "
                           "step) is not built: to_torch builds one forward pass from position 0 "
                           "(phase forward or prefill, past 0)")
        return KVCache()
    if op == Op.EXPERT_LINEAR:
        return ExpertLinear(ins[0], int(r["out_channels"]), int(r["groups"]), int(r["size_h"]),
                            bias=bool(int(r["flags"]) & Flag.BIAS))
    if rank != _TOKENS_RANK:
        raise NotBuilt("to_torch builds it on token tensors only, not on an image")
    if op == Op.RMSNORM:
        return RMSNorm(ins[0], affine=bool(int(r["flags"]) & Flag.AFFINE))
    if info is None:
        raise ValueError("needs the record's shapes")
    g, h, w, c = info["ins"][0]
    if op == Op.ROPE:
        return Rotary(int(r["groups"]), h * w, c // int(r["groups"]))
    return MoECombine(info["ins"][1][-1])                                # Op.MOE_COMBINE


_BUILDERS = {
    Op.CONV2D: _conv, Op.LINEAR: _linear, Op.BATCHNORM: _norm, Op.LAYERNORM: _norm,
    Op.SCALE: _scale, Op.ACT: _act, Op.MAXPOOL: _window, Op.AVGPOOL: _window,
    Op.ADAPTIVE_AVGPOOL: _window, Op.ADD: _join, Op.MUL: _join, Op.SUB: _join, Op.DIV: _join,
    Op.CONCAT: _concat, Op.ZERO: _zero, Op.SLICE: _slice, Op.CROP: _crop, Op.PAD: _pad,
    Op.MEAN: _mean, Op.FLATTEN: _simple, Op.IDENTITY: _simple, Op.DROPOUT: _simple,
    Op.CHANNEL_SHUFFLE: _simple, Op.SOFTMAX: _simple, Op.COPY: _simple, Op.LOG_SOFTMAX: _simple,
}
_SHAPED_BUILDERS = {
    Op.TOKENS: _tokens, Op.TO_IMAGE: _tokens, Op.PREPEND: _tokens, Op.PARAM_ADD: _tokens,
    Op.VIEW_AS: _tokens, Op.PATCH_MERGE: _tokens, Op.MATMUL: _matmul, Op.ATTENTION: _attention,
    Op.MHA: _attention, Op.EMBEDDING: _language, Op.RMSNORM: _language, Op.ROPE: _language,
    Op.KV_CACHE: _language, Op.EXPERT_LINEAR: _language, Op.MOE_COMBINE: _language,
}


def _make_layer(r, ins: tuple, rank: int, info: Optional[dict] = None) -> nn.Module:
    """The module of record ``r``, whose input 0 is ``ins`` = (C, H, W) at
    ``rank`` (2, 4: an image; 5: tokens; 3: matrices); ``info``: the
    per-sample shapes of its output and inputs."""
    op = int(r["op"])
    call = Call(int(r["call"]))
    if op in _SHAPED_BUILDERS:
        return _SHAPED_BUILDERS[op](r, ins, rank, call, info)
    builder = _BUILDERS.get(op)
    if builder is None:
        raise ValueError(f"op code {op} has no torch module")
    if rank not in (2, 4) and op in (Op.CONV2D, Op.BATCHNORM, Op.MAXPOOL, Op.AVGPOOL,
                                     Op.ADAPTIVE_AVGPOOL, Op.PAD, Op.CROP, Op.FLATTEN,
                                     Op.CHANNEL_SHUFFLE):
        raise NotBuilt("to_torch builds it on images only")
    return builder(r, ins, rank, call)


def spellable(record) -> bool:
    """Whether ``to_torch`` can spell this record's op with its call kind.

    >>> import nasflops as nf
    >>> net = nf.Net(4, 8, 8)
    >>> with net.calling("function"):
    ...     _ = net.act(net.input, "gelu", inplace=True)
    >>> spellable(net.records[1])
    False
    """
    try:
        with torch.device("meta"):
            _make_layer(record, (4, 4, 4), 4)
    except NoSpelling:
        return False
    except (ValueError, RuntimeError):   # the stand-in input does not fit: spelled all the same
        pass
    return True
