"""Counting conventions: what "FLOPs" means, as data.

The core computes, for every layer, a few convention-independent *terms*
(all multiplied by the batch size N):

==========  ==================================================================
``mac``     multiply-accumulates of conv/linear: N*Ho*Wo*Cout*(Cin/g)*Kh*Kw, N*I*O
``out``     output elements
``in``      elements of the first input
``bias``    output elements if the layer has a bias, else 0
``affine``  output elements if the norm is affine, else 0
``window``  pooling: sum over outputs of the window size (K*K per output;
            adaptive/global pools: the exact windows, Hin*Win per channel for
            global)
``extra_in`` elements of every input but the first (add of k tensors: (k-1)*out)
``rows``    output positions, N*Ho*Wo
``out_ch``  output channels times N
``samples`` N itself: one per sample (torchstat's softmax counts 3 per element - 1)
==========  ==================================================================

A convention is a set of rules with one row per op (activations have one row per
kind) giving an integer coefficient per term; a layer's count is the dot
product of its row with its terms.  Rows may differ by how the op is called
in torch code (``Call``: a module, a function, a tensor method, an
operator), because hook-based tools see those differently: a rule key
``"relu@module"`` applies to module calls only, a bare ``"relu"`` to every
call.  A convention may also keep only a module's last call
(``last_call_only``: records flagged ``called_again`` count zero), as
torchstat does.  Adding a convention is adding a table, never a code path.
Ops a convention does not mention count zero *by that
convention's definition* (``macs`` counts only multiply-accumulates), never
because an op was unknown: unknown ops are errors in the core.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from . import _core
from .spec import Act, Call, Op

__all__ = ["Convention", "CONVENTIONS", "get_convention", "register_convention", "TERMS"]

TERMS: tuple[str, ...] = _core.TERMS
_ALL_ACTS = "act:*"


def _rule_rows(key: str) -> list[tuple[int, int]]:
    """``(call kind, row)`` pairs a rule key addresses: an op name,
    ``act:<kind>`` or ``act:*``, optionally ``@module``/``@function``/
    ``@method``/``@operator``."""
    op_key, _, call_key = key.partition("@")
    try:
        calls = [Call[call_key.upper()]] if call_key else list(Call)
    except KeyError:
        raise ValueError(f"unknown call kind {call_key!r} in rule {key!r}; known: "
                         f"{', '.join(c.name.lower() for c in Call)}") from None
    try:
        if op_key == _ALL_ACTS:
            rows = [len(Op) + a for a in Act]
        elif op_key.startswith("act:"):
            rows = [len(Op) + Act[op_key[4:].upper()]]
        else:
            rows = [Op[op_key.upper()]]
    except KeyError:
        raise ValueError(f"unknown rule key {key!r}: use an op name ({', '.join(o.name.lower() for o in Op)}), "
                         f"'act:<kind>' or 'act:*', optionally followed by '@<call kind>'") from None
    return [(int(c), int(r)) for c in calls for r in rows]


@dataclass(frozen=True)
class Convention:
    """A named counting convention.

    Attributes
    ----------
    name : str
        Registry key (``"macs"``, ``"flops"``, ...), stored with every result.
    unit : str
        What one count is, for printing: ``"MACs"`` or ``"FLOPs"``.
    description : str
        One line: what it counts and where it comes from.
    rules : mapping
        ``{op_or_act_key: {term: coefficient}}``, the human-readable source.
    weights : ndarray
        ``(N_CALL_KINDS, N_RULES, N_TERMS)`` int64: the rules as the array
        the core reads, one row per call kind and op (and activation kind),
        one column per term.
    last_call_only : bool
        Count only the last call of a module called several times: records
        flagged ``Flag.CALLED_AGAIN`` count zero (torchstat overwrites a
        module's figures at every call).
    """

    name: str
    unit: str
    description: str
    rules: Mapping[str, Mapping[str, int]]
    weights: np.ndarray = field(repr=False, compare=False)
    last_call_only: bool = False

    @classmethod
    def build(cls, name: str, unit: str, description: str,
              rules: Mapping[str, Mapping[str, int]],
              last_call_only: bool = False) -> "Convention":
        weights = np.zeros((_core.N_CALL_KINDS, _core.N_RULES, len(TERMS)), dtype=np.int64)
        # rules for every call kind first, so that "op@call" rules override them
        for key, terms in sorted(rules.items(), key=lambda kv: "@" in kv[0]):
            for term, coef in terms.items():
                if term not in TERMS:
                    raise ValueError(f"convention {name!r}: unknown term {term!r} in rule {key!r}")
            rows = _rule_rows(key)
            for call, row in rows:
                weights[call, row, :] = 0
                for term, coef in terms.items():
                    weights[call, row, TERMS.index(term)] = int(coef)
        weights.setflags(write=False)
        return cls(name, unit, description, rules, weights, bool(last_call_only))


CONVENTIONS: dict[str, Convention] = {}


def register_convention(name: str, unit: str, description: str,
                        rules: Mapping[str, Mapping[str, int]],
                        last_call_only: bool = False) -> Convention:
    """Add a convention to the registry (and return it).

    ``rules`` maps an op name (``"conv2d"``), an activation (``"act:relu"``)
    or every activation (``"act:*"``), optionally restricted to one call kind
    (``"conv2d@function"``), to ``{term: integer coefficient}``.
    ``last_call_only`` counts a module called several times at its last call
    only (records flagged ``called_again`` count zero).
    """
    conv = Convention.build(name, unit, description, rules, last_call_only)
    CONVENTIONS[name] = conv
    return conv


def get_convention(name: str | Convention) -> Convention:
    """Look a convention up by name, with an error listing the known ones."""
    if isinstance(name, Convention):
        return name
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown convention {name!r}; known: {', '.join(sorted(CONVENTIONS))}") from None


_MAC = {"mac": 1}

register_convention(
    "macs", "MACs",
    "multiply-accumulates of conv, linear and matrix products, attention's two included "
    "(torchvision's 'GFLOPS' column); a mixture of experts' routed experts",
    {"conv2d": _MAC, "linear": _MAC, "matmul": _MAC, "attention": _MAC, "mha": _MAC,
     "expert_linear": _MAC})

register_convention(
    "flops", "FLOPs",
    "every floating-point operation, multiplies and adds counted apart: "
    "conv/linear 2*MAC - out (+ out with bias), BN 4/elem, LN 6/elem (+2 affine), "
    "activation 1/elem, pool K*K/out, add (k-1)/elem, mul, sub, div 1/elem, mean 1 per input "
    "element, softmax and log-softmax 2/elem, matmul 2*MAC - out, "
    "attention 2*MAC + 2/score - out (scale, softmax); "
    "RMSNorm 3/elem (+1 weight), rotary embedding 3/elem, expert linear as linear, "
    "MoE combine 2/input - out; embedding lookup and KV-cache append 0",
    {
        "conv2d": {"mac": 2, "out": -1, "bias": 1},
        "linear": {"mac": 2, "out": -1, "bias": 1},
        "batchnorm": {"out": 4},
        # statistics at run time: mean 1, variance 3 (sub, square, add), then
        # normalise 2 (sub, div) and, if affine, scale and shift 2
        "layernorm": {"out": 6, "affine": 2},
        "scale": {"out": 1, "bias": 1},
        _ALL_ACTS: {"out": 1},
        "maxpool": {"window": 1},
        "avgpool": {"window": 1},
        "adaptive_avgpool": {"window": 1},
        "add": {"extra_in": 1},
        "mul": {"out": 1},
        "sub": {"out": 1},
        "div": {"out": 1},
        "mean": {"window": 1},
        "softmax": {"out": 2},
        "log_softmax": {"out": 2},
        "param_add": {"out": 1},
        # k multiplies and k - 1 adds per output element
        "matmul": {"mac": 2, "out": -1},
        # Q.K^T (2d - 1 per score), scale (1), softmax (2), A.V (2Lk - 1 per output)
        "attention": {"mac": 2, "scores": 2, "out": -1},
        # in-projection (3 outputs per token) and out-projection as linear
        # layers, with biases, plus the attention between them
        "mha": {"mac": 2, "out": -5, "bias": 4, "scores": 2},
        # mean of squares 2 (square, add), scale by the reciprocal root 1,
        # weight 1 (the root itself is one per position: not counted)
        "rmsnorm": {"out": 3, "affine": 1},
        # each channel pair (x, y) -> (x cos - y sin, x sin + y cos): 4 multiplies
        # and 2 adds per pair (the cos/sin tables are computed once per pass)
        "rope": {"out": 3},
        "expert_linear": {"mac": 2, "out": -1, "bias": 1},
        # each of the k slots weighted (k*C multiplies), summed (k-1)*C adds
        "moe_combine": {"in": 2, "out": -1},
    })

register_convention(
    "fma2", "FLOPs",
    "2 x MACs of conv, linear and matrix products, one fused multiply-add counted as two "
    "(torch.utils.flop_counter.FlopCounterMode)",
    {"conv2d": {"mac": 2}, "linear": {"mac": 2}, "matmul": {"mac": 2}, "attention": {"mac": 2},
     "mha": {"mac": 2}, "expert_linear": {"mac": 2}})

# ---- compatibility conventions: one block per reference tool, each a table.
# -- nb201: NAS-Bench-201's published "FLOPs" (xautodl.utils.flop_benchmark.
# get_model_infos).  Its hooks record conv and pool counts, but
# compute_average_flops_cost sums only Conv2d/Conv1d/Linear modules:
# conv Ho*Wo*Cout*(Cin/g)*Kh*Kw (+ Ho*Wo*Cout with bias), linear I*O (+ O
# with bias); pools, BN, activations, adds and zeros count nothing.  The
# benchmark reports this per image in millions (flops / 1e6), what it calls
# MFLOPs; here the count is exact and x batch like every convention.  Each
# count is a multiply-accumulate (bias adds aside), hence the unit.
register_convention(
    "nb201", "MACs",
    "NAS-Bench-201's published 'FLOPs' (xautodl get_model_infos): conv and linear "
    "MACs plus one per output element with a bias; everything else free",
    {"conv2d": {"mac": 1, "bias": 1}, "linear": {"mac": 1, "bias": 1}})
# -- end nb201
# -- ofa: Once-for-All's counter (ofa.utils.flops_counter.profile, which
# count_net_flops calls at data_shape (1, 3, r, r)).  It hooks leaf modules:
# Conv1d/2d/3d and MyConv2d count in_channels * y.nelement() * kh * kw //
# groups (the MACs, batch included, bias not), Linear counts in_features *
# out_features (bias not, and *not* times the batch); BN, dropout, pools,
# activations and the functional ops (SE mean, mul, residual add) count 0.
# At batch 1, the only batch OFA counts at, that is MACs of conv and linear;
# for batch N > 1 nasflops scales linear by N where OFA's hook would not
# (no per-sample term exists to express that quirk).  OFA accumulates in
# float32 buffers, so its printed totals above 2**24 are rounded (843101056.0
# for the largest OFA-MBv3 w1.2 subnet at 224 whose exact count, given here,
# is 843101040); run in float64 it agrees exactly (tests/test_ofa.py).
register_convention(
    "ofa", "MACs",
    "Once-for-All's flops_counter.profile: conv and linear MACs, no bias, nothing else "
    "(OFA's 'MFLOPs'; its linear hook ignores the batch, equal at batch 1)",
    {"conv2d": _MAC, "linear": _MAC})
# -- thop / ptflops / fvcore: the totals those tools print for the same torch
# model.  Each tool sees an op only through its own window, so each row says
# which call kinds it sees (Call, docs/design.md section 5):
#   thop     hooks modules of an exact registered type: "@module" rows only;
#   ptflops  hooks modules of an exact registered type *and* patches a few
#            torch.nn.functional functions (F.relu, F.relu6, F.gelu, F.silu,
#            F.softmax, the pools) and torch.add/mul, Tensor.add/mul: "@module",
#            "@function" and "@method" rows; Python operators are invisible;
#   fvcore   traces aten ops, whatever the spelling: rows for every call kind,
#            except that x.mean() (a "method" adaptive pool) is aten::mean,
#            which it does not count.
# tests/test_compat.py runs the real tools on to_torch models (every op under
# every call kind), on torchvision's own models and on a corpus of third-party
# model files, and compares exactly.  docs/conventions.md explains every row.
register_convention(
    "thop", "MACs",
    "thop 0.1.1 profile(): modules only: conv/linear MACs without bias, BN/LN 2/elem "
    "(4 affine), avg pool 1/out, adaptive pool in+out, softmax 3C-1 per position; "
    "functions, methods and operators zero, nn.MultiheadAttention zero",
    {
        "conv2d@module": _MAC,
        "linear@module": _MAC,
        # count_normalization: 2 * x.numel(), doubled when affine
        "batchnorm@module": {"out": 2, "affine": 2},
        "layernorm@module": {"out": 2, "affine": 2},
        # count_avgpool: y.numel(); count_adap_avgpool: (Hin*Win/(Ho*Wo) + 1) * y.numel()
        "avgpool@module": {"out": 1},
        "adaptive_avgpool@module": {"in": 1, "out": 1},
        # count_softmax: per position, C exp + (C - 1) add + C div
        "softmax@module": {"out": 3, "rows": -1},
    })

register_convention(
    "ptflops", "MACs",
    "ptflops 0.7.5 pytorch backend (its default): conv/linear modules MACs plus bias, BN "
    "modules 1/elem (2 affine), LN modules 1/elem; nn.ReLU and nn.GELU 2/elem (module hook + "
    "patched functional), F.relu, F.gelu, ReLU6, SiLU 1/elem; pool modules 2 per input "
    "element, F.*pool* 1; softmax 1/elem; torch.add/mul and x.add/mul 1 per output element; "
    "torch.matmul/bmm MACs, its MultiheadAttention hook; F.linear, SDPA and @ zero",
    {
        "conv2d@module": {"mac": 1, "bias": 1},
        "linear@module": {"mac": 1, "bias": 1},
        "batchnorm@module": {"out": 1, "affine": 1},
        "layernorm@module": {"out": 1},
        # nn.ReLU/nn.GELU: module hook + the F.relu/F.gelu their forward calls
        "act:relu@module": {"out": 2},
        "act:gelu@module": {"out": 2},
        "act:relu6@module": {"out": 1},      # module hook; F.hardtanh is not patched
        "act:silu@module": {"out": 1},       # no module hook; F.silu is patched
        "act:relu@function": {"out": 1},
        "act:gelu@function": {"out": 1},
        "act:relu6@function": {"out": 1},
        "act:silu@function": {"out": 1},
        # written out, relu6(x + 3) / 6: the F.relu6 or nn.ReLU6 inside counts
        "act:hardsigmoid@operator": {"out": 1},
        "act:hardswish@operator": {"out": 1},
        # torch.add / torch.mul / x.add / x.mul: one per output element
        "act:add_const@method": {"out": 1},
        "act:mul_const@method": {"out": 1},
        "add@method": {"extra_in": 1},
        "mul@method": {"out": 1},
        "zero@method": {"out": 1},            # x.mul(0.)
        "scale@method": {"out": 1, "bias": 1},   # x.mul(w) (.add(b))
        "maxpool@module": {"in": 2},
        "avgpool@module": {"in": 2},
        "adaptive_avgpool@module": {"in": 2},
        "maxpool@function": {"in": 1},
        # F.avg_pool2d and F.adaptive_avg_pool2d are the only names of those
        # functions: a "method" or "operator" call of them is the same call
        "avgpool@function": {"in": 1}, "avgpool@method": {"in": 1},
        "avgpool@operator": {"in": 1},
        "adaptive_avgpool@function": {"in": 1}, "adaptive_avgpool@method": {"in": 1},
        "adaptive_avgpool@operator": {"in": 1},
        "softmax@module": {"out": 1},        # no module hook; F.softmax is patched
        "softmax@function": {"out": 1},
        # its nn.MultiheadAttention hook: q scaling (L*E), projections, in-proj
        # bias (3*L*E), per head Q.K^T + softmax + A.V, out-proj with a bias
        # "always enabled" (L*E)
        "mha@module": {"mac": 1, "out": 2, "bias": 3, "scores": 1},
        # torch.matmul / Tensor.matmul / bmm are patched; the @ operator is not
        "matmul@function": _MAC,
        "matmul@method": _MAC,
    })

register_convention(
    "fvcore", "MACs",
    "fvcore 0.1.5 FlopCountAnalysis, eval mode: conv/linear MACs without bias, "
    "BN 1/elem (2 affine), LN 4/elem (5 affine), adaptive avg pool 1 per input element "
    "(not x.mean()), matmul MACs, MultiheadAttention's projections (autograd on); every "
    "other op, scaled-dot-product attention included, zero",
    {
        "conv2d": _MAC,
        "linear": _MAC,
        "batchnorm": {"out": 1, "affine": 1},
        "layernorm": {"out": 4, "affine": 1},
        "adaptive_avgpool": {"in": 1},     # x.mean((2, 3)) is a mean: aten::mean, not counted
        "matmul": _MAC,
        # aten::linear of the projections; the attention itself is
        # aten::scaled_dot_product_attention, which fvcore does not count
        "mha": {"mac": 1, "attn_mac": -1},
        # an experts module runs its experts as aten::linear / mm / bmm
        "expert_linear": _MAC,
    })

# -- torchstat 0.0.7 (torchstat.stat: compute_madd.py and compute_flops.py).
# It wraps the __call__ of every leaf module's class, so it sees module
# calls only ("@module" below; torch.flatten, F.relu, x + y count nothing)
# and overwrites a module's figures at each call: a module called twice
# (ResNet's BasicBlock relu) counts its last call only (last_call_only).
# "MAdd" counts multiplies and adds apart (hence FLOPs); its "Flops" are
# multiply-accumulates plus a few per-element terms (hence MACs).  Per
# sample, x N like every convention (torchstat always runs N = 1):
#   MAdd   conv (2*Cin/g*K - 1 + bias) per output = 2 mac - out + bias;
#          linear (2I - 1) per output, no bias term; BN 4/elem; max pool
#          (K - 1) per output = window - out; avg pool K per output = window;
#          ReLU/ReLU6 1/elem; softmax 3 per element - 1 (its 'dim' ignored)
#   Flops  conv mac + bias; linear mac (no bias); BN 1/elem, 2 affine;
#          max and avg pool 1 per INPUT element; ReLU/ReLU6 1/elem
# Every other module (adaptive pools, dropout, other activations, layer
# norm, identity, flatten modules) is "not supported": 0.
register_convention(
    "torchstat-madd", "FLOPs",
    "torchstat 0.0.7's 'MAdd' (module calls only, last call of a module): conv 2*MAC - out "
    "(+ out with bias), linear 2*MAC - out, BN 4/elem, max pool (K-1)/out, avg pool K/out, "
    "ReLU/ReLU6 1/elem, softmax 3/elem - 1; everything else zero",
    {
        "conv2d@module": {"mac": 2, "out": -1, "bias": 1},
        "linear@module": {"mac": 2, "out": -1},
        "batchnorm@module": {"out": 4},
        "maxpool@module": {"window": 1, "out": -1},
        "avgpool@module": {"window": 1},
        "act:relu@module": {"out": 1},
        "act:relu6@module": {"out": 1},
        "softmax@module": {"out": 3, "samples": -1},
    },
    last_call_only=True)

register_convention(
    "torchstat-flops", "MACs",
    "torchstat 0.0.7's 'Flops' (module calls only, last call of a module): conv MACs + bias, "
    "linear MACs, BN 1/elem (2 affine), max/avg pool 1 per input element, ReLU/ReLU6 1/elem; "
    "everything else zero",
    {
        "conv2d@module": {"mac": 1, "bias": 1},
        "linear@module": {"mac": 1},
        "batchnorm@module": {"out": 1, "affine": 1},
        "maxpool@module": {"in": 1},
        "avgpool@module": {"in": 1},
        "act:relu@module": {"out": 1},
        "act:relu6@module": {"out": 1},
    },
    last_call_only=True)
# -- end torchstat
