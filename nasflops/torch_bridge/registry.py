"""The torch-callable registry: which torch module type, function, tensor method
or operator is which nasflops op, and how a hook-based tool sees the call.

One table, three readers: ``from_torch`` (``trace.py``) dispatches every
recorded call on its :class:`Entry`; ``count_with_hooks`` (``hooks.py``)
recognises the same calls but counts them with its own formulas; ``to_torch``
(``build.py``) spells each record back with :data:`ACTS` and :data:`ARITH`.

The call kind (``nasflops.Call``) is what the hook tools can see, so that the
``thop``, ``ptflops`` and ``fvcore`` conventions weigh each call exactly as the
tool does (docs/conventions.md):

==========  ================================================================
module      an ``nn.Module`` of exactly that type (thop and ptflops key on
            ``type(m)``: a subclass is traced into, and is what it calls)
function    a ``torch.nn.functional`` function (ptflops patches ``F.relu``,
            ``F.relu6``, ``F.gelu``, ``F.silu``, ``F.softmax`` and the pools)
method      a tensor method or ``torch.*`` function called by name
            (``x.add(y)``, ``torch.add``, ``torch.relu``, ``x.mean()``; ptflops
            patches only ``add`` and ``mul``)
operator    a Python operator or an in-place method (``x + y``, ``x += y``,
            ``x.add_(y)``, ``x[:, :2]``): no tool sees those by name
==========  ================================================================
"""
from __future__ import annotations

import operator
from typing import Any, NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..spec import Call
from .modules import (Add, Concat, InplaceAct, InplaceAdd, LayerNorm2d, Mul, Scale, Slice,
                      Zero)

__all__ = ["Entry", "MODULES", "CALLABLES", "ACTS", "ARITH", "METHOD_NAMES", "MAPPABLE",
           "entry_of", "callable_name", "spelling"]

TB = getattr(torch._C, "TensorBase", None) or torch._C._TensorBase   # renamed in torch 2.1
M, FN, ME, OP = Call.MODULE, Call.FUNCTION, Call.METHOD, Call.OPERATOR


class Entry(NamedTuple):
    """What one torch callable is: the reader ``kind`` (a key of the dispatch
    tables of ``trace.py`` and ``hooks.py``), the call kind a hook tool sees,
    and one argument (an activation kind, ``"max"``/``"avg"``, ``"inplace"``,
    ``"reversed"`` for ``c - x``)."""

    kind: str
    call: Call
    arg: Any = None


class ActSpelling(NamedTuple):
    """How torch spells one activation: the module class, the
    ``torch.nn.functional`` function, the tensor methods / ``torch.*``
    functions (the first is what ``to_torch`` writes) and in-place methods.
    ``inplace_kw``: the module and function take ``inplace=``."""

    module: Optional[type]
    function: Any
    methods: tuple
    inplace_methods: tuple
    inplace_kw: bool


_nn = torch._C._nn
#: activation kind -> its spellings (one activation table for the bridge; the
#: names are nasflops.spec.Act's)
ACTS: dict[str, ActSpelling] = {
    "relu": ActSpelling(nn.ReLU, F.relu, (torch.relu, TB.relu), (torch.relu_, TB.relu_), True),
    "relu6": ActSpelling(nn.ReLU6, F.relu6, (_nn.relu6,), (_nn.relu6_,), True),
    "hardswish": ActSpelling(nn.Hardswish, F.hardswish, (_nn.hardswish,), (_nn.hardswish_,),
                             True),
    "hardsigmoid": ActSpelling(nn.Hardsigmoid, F.hardsigmoid, (_nn.hardsigmoid,),
                               (_nn.hardsigmoid_,), True),
    "silu": ActSpelling(nn.SiLU, F.silu, (_nn.silu,), (_nn.silu_,), True),
    "gelu": ActSpelling(nn.GELU, F.gelu, (), (), False),
    # F.sigmoid and F.tanh call the tensor methods: what every tool sees
    "sigmoid": ActSpelling(nn.Sigmoid, None, (torch.sigmoid, TB.sigmoid),
                           (torch.sigmoid_, TB.sigmoid_), False),
    "tanh": ActSpelling(nn.Tanh, None, (torch.tanh, TB.tanh), (torch.tanh_, TB.tanh_), False),
    "sqrt": ActSpelling(None, None, (torch.sqrt, TB.sqrt), (torch.sqrt_, TB.sqrt_), False),
    "clamp": ActSpelling(nn.Hardtanh, F.hardtanh,
                         (torch.clamp, TB.clamp, torch.clip, TB.clip, TB.clamp_min,
                          TB.clamp_max, torch.clamp_min, torch.clamp_max),
                         (torch.clamp_, TB.clamp_, TB.clip_, TB.clamp_min_, TB.clamp_max_,
                          F.hardtanh_), True),
}


class ArithSpelling(NamedTuple):
    """Element-wise arithmetic: ``operator`` (``x + y``), the tensor method,
    the ``torch.*`` function and the in-place method (``x += y`` is it)."""

    operator: Any
    method: Any
    function: Any
    inplace: Any
    inplace_operator: Any


#: op -> its spellings; an op with a constant is the activation ``<op>_const``
ARITH: dict[str, ArithSpelling] = {
    "add": ArithSpelling(operator.add, TB.add, torch.add, TB.add_, operator.iadd),
    "sub": ArithSpelling(operator.sub, TB.sub, torch.sub, TB.sub_, operator.isub),
    "mul": ArithSpelling(operator.mul, TB.mul, torch.mul, TB.mul_, operator.imul),
    "div": ArithSpelling(operator.truediv, TB.div, torch.div, TB.div_, operator.itruediv),
    "pow": ArithSpelling(operator.pow, TB.pow, torch.pow, TB.pow_, operator.ipow),
}

#: tensor methods whose object is also what their operator calls (``x + y``
#: and ``x.add(y)`` both reach ``TensorBase.add``): the recorder tells them
#: apart by wrapping these names on ``torch.Tensor`` while it runs, as
#: ptflops does
METHOD_NAMES = ("add", "sub", "mul", "div", "matmul")

#: exact module type -> entry
MODULES: dict[type, Entry] = {
    nn.Conv2d: Entry("conv", M), nn.Linear: Entry("linear", M),
    nn.BatchNorm1d: Entry("bn", M), nn.BatchNorm2d: Entry("bn", M),
    nn.LayerNorm: Entry("ln", M), LayerNorm2d: Entry("ln", M),
    nn.MaxPool2d: Entry("pool", M, "max"), nn.AvgPool2d: Entry("pool", M, "avg"),
    nn.AdaptiveAvgPool2d: Entry("apool", M),
    nn.Flatten: Entry("flatten", M), nn.Identity: Entry("identity", M),
    nn.Dropout: Entry("dropout", M), nn.Dropout2d: Entry("dropout", M),
    nn.Softmax: Entry("softmax", M), nn.LogSoftmax: Entry("softmax", M, "log"),
    nn.ChannelShuffle: Entry("shuffle", M),
    nn.ZeroPad2d: Entry("pad", M), nn.ConstantPad2d: Entry("pad", M),
    nn.Hardtanh: Entry("clamp", M),
    Add: Entry("add", M), InplaceAdd: Entry("add", M, "inplace"), Mul: Entry("mul", M),
    Concat: Entry("cat", M), Slice: Entry("narrow", M), Zero: Entry("zeros_like", M),
    Scale: Entry("scale", M), InplaceAct: Entry("act", M),
}
MODULES[nn.MultiheadAttention] = Entry("mha", M)
MODULES[nn.Embedding] = Entry("embedding", M)
for _kind, _s in ACTS.items():
    if _s.module is not None and _kind != "clamp":
        MODULES[_s.module] = Entry("act", M, _kind)

_CALLS: list[tuple[Any, Entry]] = [
    (F.conv2d, Entry("conv", FN)), (F.linear, Entry("linear", FN)),
    (F.batch_norm, Entry("bn", FN)), (F.layer_norm, Entry("ln", FN)),
    (F.max_pool2d, Entry("pool", FN, "max")), (F.avg_pool2d, Entry("pool", FN, "avg")),
    (torch.max_pool2d, Entry("pool", ME, "max")),
    (F.adaptive_avg_pool2d, Entry("apool", FN)),
    (F.softmax, Entry("softmax", FN)), (torch.softmax, Entry("softmax", ME)),
    (TB.softmax, Entry("softmax", ME)), (F.log_softmax, Entry("softmax", FN, "log")),
    (torch.log_softmax, Entry("softmax", ME, "log")), (TB.log_softmax, Entry("softmax", ME, "log")),
    (F.dropout, Entry("dropout", FN)), (F.dropout2d, Entry("dropout", FN)),
    (F.pad, Entry("pad", FN)),
    (torch.flatten, Entry("reshape", ME)), (torch.reshape, Entry("reshape", ME)),
    (torch.squeeze, Entry("reshape", ME)), (torch.unsqueeze, Entry("reshape", ME)),
    (torch.permute, Entry("permute", ME)), (torch.transpose, Entry("transpose", ME)),
    (torch.chunk, Entry("chunk", ME)), (torch.split, Entry("split", ME)),
    (torch.Tensor.split, Entry("split", ME)), (torch.narrow, Entry("narrow", ME)),
    (torch.cat, Entry("cat", ME)), (torch.concat, Entry("cat", ME)),
    (torch.concatenate, Entry("cat", ME)),
    (torch.mean, Entry("mean", ME)), (TB.mean, Entry("mean", ME)),
    (torch.zeros_like, Entry("zeros_like", FN)),
    (torch.channel_shuffle, Entry("shuffle", ME)),
    (TB.__getitem__, Entry("getitem", OP)),
    (TB.contiguous, Entry("contiguous", ME)), (TB.clone, Entry("clone", ME)),
    (torch.clone, Entry("clone", ME)), (TB.detach, Entry("alias", ME)),
    (TB.expand, Entry("expand", ME)), (TB.expand_as, Entry("expand", ME)),
    (torch.Tensor.__pow__, Entry("pow", OP)), (torch.Tensor.__rpow__, Entry("pow", OP, "reversed")),
    (torch.Tensor.__ipow__, Entry("pow", OP, "inplace")),
    (torch.Tensor.__rsub__, Entry("sub", OP, "reversed")),
    (torch.Tensor.__rdiv__, Entry("div", OP, "reversed")),
]
for _name in ("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as", "reshape_as"):
    _CALLS.append((getattr(TB, _name), Entry("reshape", ME)))
_CALLS += [(TB.unflatten if hasattr(TB, "unflatten") else torch.Tensor.unflatten,
            Entry("reshape", ME)),
           (TB.permute, Entry("permute", ME)), (TB.transpose, Entry("transpose", ME)),
           (TB.chunk, Entry("chunk", ME)), (TB.narrow, Entry("narrow", ME))]
for _kind, _s in ACTS.items():
    if _s.function is not None:
        _CALLS.append((_s.function, Entry("clamp" if _kind == "clamp" else "act", FN, _kind)))
    for _m in _s.methods:
        _CALLS.append((_m, Entry("clamp" if _kind == "clamp" else "act", ME, _kind)))
    for _m in _s.inplace_methods:
        _CALLS.append((_m, Entry("clamp" if _kind == "clamp" else "act", ME, _kind)))
for _op, _s in ARITH.items():
    # the method object doubles as the operator's: the recorder decides the call
    _CALLS += [(_s.method, Entry(_op, OP)), (_s.function, Entry(_op, ME)),
               (_s.inplace, Entry(_op, OP, "inplace"))]

# token tensors (_tokens.py).  `a @ b` and `a.matmul(b)` both reach
# TensorBase.matmul: "matmul" is a wrapped method name, so the operator stays
# an operator (ptflops patches torch.matmul / Tensor.matmul / bmm, not `@`);
# torch.einsum is seen by no tool but fvcore, which counts aten::einsum as the
# product it is: an operator's row
_CALLS += [(torch.matmul, Entry("matmul", ME)), (TB.matmul, Entry("matmul", OP)),
           (torch.bmm, Entry("matmul", ME)), (TB.bmm, Entry("matmul", ME)),
           (torch.mm, Entry("matmul", ME)), (TB.mm, Entry("matmul", ME)),
           (torch.baddbmm, Entry("baddbmm", ME)), (TB.baddbmm, Entry("baddbmm", ME)),
           (torch.einsum, Entry("einsum", OP)),
           (F.scaled_dot_product_attention, Entry("sdpa", FN)),
           (torch.unbind, Entry("unbind", ME)), (TB.unbind, Entry("unbind", ME)),
           (TB.to, Entry("to", ME)), (TB.float, Entry("to", ME)), (TB.type_as, Entry("to", ME)),
           (TB.type, Entry("to", ME)),
           (torch.roll, Entry("roll", ME)), (TB.roll, Entry("roll", ME)),
           (F.embedding, Entry("embedding", FN)),
           (torch.addmm, Entry("addmm", ME)), (TB.addmm, Entry("addmm", ME)),
           (torch.masked_fill, Entry("masked_fill", ME)),
           (TB.masked_fill, Entry("masked_fill", ME)), (TB.masked_fill_, Entry("masked_fill", ME))]
# a tensor made from an activation's size and dtype only: a constant
_CALLS += [(getattr(TB, n), Entry("const", ME)) for n in ("new_zeros", "new_ones", "new_full",
                                                          "new_empty", "new_tensor")]

#: callable object (as a TorchFunctionMode receives it) -> entry
CALLABLES: dict[Any, Entry] = {}
for _f, _e in _CALLS:
    CALLABLES.setdefault(_f, _e)
# F.hardtanh_ and the act's in-place tensor methods stay "method": they are
# not torch.nn.functional names ptflops patches
CALLABLES[F.hardtanh_] = Entry("clamp", ME, "clamp")

#: what a user's module type may be mapped to (``module_map``)
MAPPABLE = ("relu", "relu6", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh",
            "global_avgpool", "identity", "dropout", "flatten", "zero")


def entry_of(target) -> Optional[Entry]:
    """The registry entry of a module instance or a callable, or None.

    >>> import torch.nn as nn, torch.nn.functional as F
    >>> entry_of(nn.ReLU()).kind, entry_of(F.relu).call.name
    ('act', 'FUNCTION')
    """
    if isinstance(target, nn.Module):
        return MODULES.get(type(target))
    try:
        return CALLABLES.get(target)
    except TypeError:   # an unhashable callable
        return None


def callable_name(target) -> str:
    """A readable name of a torch callable or module type, as a user writes it:
    ``torch.nn.functional.interpolate``, ``torch.Tensor.mul``, ``nn.Upsample``.

    >>> import torch
    >>> callable_name(torch.cat), callable_name(torch.Tensor.view)
    ('torch.cat', 'torch.Tensor.view')
    """
    if isinstance(target, type):
        mod = target.__module__
        if mod.startswith("torch.nn.modules"):
            return f"nn.{target.__qualname__}"
        return f"{mod}.{target.__qualname__}"
    qual = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) \
        or repr(target)
    mod = getattr(target, "__module__", None)
    if qual.startswith(("TensorBase.", "Tensor.")):
        return "torch.Tensor." + qual.split(".", 1)[1]
    if qual.startswith("_VariableFunctionsClass."):
        return "torch." + qual.split(".", 1)[1]
    if mod in (None, "torch._C._nn"):
        mod = "torch.nn.functional" if hasattr(F, qual) else (mod or "torch")
    return f"{mod}.{qual}"


def spelling(fn) -> str:
    """The path ``to_torch`` writes to call ``fn`` by name at run time
    (``modules.resolve``): ``"F.relu"``, ``"torch.add"``, ``".relu"`` (a tensor
    method), ``"torch._C._nn.relu6"``.

    >>> import torch, torch.nn.functional as F
    >>> spelling(F.relu), spelling(torch.relu), spelling(torch.Tensor.relu)
    ('F.relu', 'torch.relu', '.relu')
    """
    name = fn.__name__
    for prefix, base in (("F.", F), ("torch.", torch), (".", TB), ("torch._C._nn.", _nn)):
        if getattr(base, name, None) is fn:
            return prefix + name
    raise ValueError(f"{fn!r} has no name to call it by")


# ------------------------------------- transformer and language-model ops
# (added by the build side of the bridge: to_torch's modules, and matrix
# products for count_with_hooks; readers for from_torch are trace.py's)
from .modules import (Attention, ExpertLinear, KVCache, MoECombine, ParamAdd,  # noqa: E402
                      PatchMerge, RMSNorm, Rotary, SelfAttention, TokenEmbedding, ViewAs)

MODULES.update({
    ParamAdd: Entry("param_add", M), ViewAs: Entry("view_as", M),
    Attention: Entry("attention", M), SelfAttention: Entry("mha", M),
    PatchMerge: Entry("patch_merge", M), TokenEmbedding: Entry("embedding", M),
    RMSNorm: Entry("rmsnorm", M), Rotary: Entry("rope", M), KVCache: Entry("kv_cache", M),
    ExpertLinear: Entry("expert_linear", M), MoECombine: Entry("moe_combine", M),
})
