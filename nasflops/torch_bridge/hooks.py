"""``count_with_hooks``: an independent, hook-based reference counter.

It never calls the core and writes no records.  The model runs once under the
same recorder as ``from_torch`` (``_record.py``: every leaf-module call, torch
function, tensor method and operator, with its real tensors and the call kind
a hook tool sees), but each op's count is computed here, from the *tensors*
(shapes of the real inputs and outputs, the module's own parameters), with the
formulas of docs/conventions.md and, for the compatibility conventions, with
the rules of the tools' sources (thop 0.1.1 ``vision/basic_hooks.py``,
ptflops 0.7.5 ``pytorch_ops.py`` + ``pytorch_engine.py``, fvcore 0.1.5
``jit_handles.py``), transcribed below one convention per table.

Matrix products are counted however they are called (``x @ y`` is an
operator, ``x.matmul(y)``, ``torch.matmul`` and ``torch.bmm`` methods, as
ptflops tells them apart).  nasflops' one-record transformer and
language-model modules (``modules.TRANSFORMER_MODULES``: attention,
``nn.MultiheadAttention`` on token groups, embeddings, RMS norms, rotary
embeddings, caches, expert linears, ...) are leaves, each counted from its
real input and output tensors and its own attributes (heads, key/value
heads, whether a reshape copies, the experts its run hit).

Memory follows the same definitions, measured on the run:

* ``act_bytes``/``write_bytes``: output elements of every op that computes
  (views -- flatten, identity, dropout, slices, reshapes -- move no bytes);
* ``read_bytes``: that op's activation inputs plus its parameters (an
  embedding reads the rows it looks up, an expert linear the experts it
  hits);
* an attention's score matrix (and ``nn.MultiheadAttention``'s q, k, v and
  heads' output) is written and read once and lives while the op runs,
  unless ``fused_attention``; a key/value cache is not an activation (its
  new entries are read and written);
* ``peak_act_bytes``: buffers live while the ops run in order, each freed
  after its last consumer; a view or an op whose output shares memory with its
  input (in-place ops, detected from the real tensors) allocates nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from ..options import dtype_size
from ..spec import Call
from . import _record
from ._record import Offender, UnsupportedOpsError

__all__ = ["count_with_hooks", "HookCounts", "HOOK_CONVENTIONS", "UnsupportedOpsError"]

_METRICS = ("ops", "macs", "params", "weight_bytes", "act_bytes", "peak_act_bytes",
            "read_bytes", "write_bytes")
M, FN, ME, OP = Call.MODULE, Call.FUNCTION, Call.METHOD, Call.OPERATOR


# ------------------------------------------------------------------ op facts
@dataclass
class OpFacts:
    """What one executed op is, measured from its real tensors."""

    name: str
    kind: str                       # conv, linear, bn, ln, scale, act, maxpool, ...
    inputs: list                    # activation tensors read
    out: Optional[torch.Tensor]
    params: list = field(default_factory=list)   # parameter tensors it owns
    call: Call = Call.MODULE
    act: str = ""                   # activation kind
    mac: int = 0
    bias: bool = False
    affine: bool = False
    window: int = 0                 # pooling: input elements summed over windows
    sources: list = field(default_factory=list)  # facts producing the inputs
    channels: int = 0               # softmax: size of the normalised dim
    scores: int = 0                 # attention: query-key scores computed
    attn_mac: int = 0               # attention: MACs of its two products
    scratch: int = 0                # elements an op materialises and drops (qkv, scores)
    score_scratch: int = 0          # ... of which the score matrix (fused away or not)
    weights_read: Optional[int] = None   # parameter elements read, if not all it owns

    @property
    def out_numel(self) -> int:
        return int(self.out.numel())

    @property
    def in_numel(self) -> int:
        return int(self.inputs[0].numel()) if self.inputs else 0


def _elems(t: torch.Tensor) -> int:
    """Elements a tensor holds in memory: an expanded view (stride 0) reads
    its base once per element, not once per position it is broadcast to."""
    n = 1
    for size, stride in zip(t.shape, t.stride()):
        if stride != 0:
            n *= int(size)
    return n


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


def _kw(ev, pos: int, name: str, default=None):
    if name in ev.kwargs:
        return ev.kwargs[name]
    return ev.args[pos] if len(ev.args) > pos else default


# one function per registry kind: (event, facts so far) -> facts, or a reason
def _weighted(ev, f: OpFacts):
    m = ev.module
    w = m.weight if m is not None else ev.args[1]
    bias = m.bias if m is not None else _kw(ev, 2, "bias")
    f.bias = bias is not None
    if m is None:
        f.params = [t for t in (w, bias) if t is not None]
    # every output element is one dot product over the weight's fan-in
    f.mac = f.out_numel * (int(w[0].numel()))
    f.kind = ev.kind
    return f


def _norm(ev, f: OpFacts):
    m = ev.module
    if ev.kind == "bn":
        f.affine = bool(m.affine) if m is not None else _kw(ev, 3, "weight") is not None
    elif m is not None and hasattr(m, "norm"):         # nasflops' LayerNorm2d
        f.affine = bool(m.norm.elementwise_affine)
    else:
        f.affine = bool(m.elementwise_affine) if m is not None else \
            _kw(ev, 2, "weight") is not None
    if m is None:
        f.params = [t for t in (_kw(ev, 3 if ev.kind == "bn" else 2, "weight"),
                                _kw(ev, 4 if ev.kind == "bn" else 3, "bias")) if t is not None]
    f.kind = ev.kind
    return f


def _act_facts(ev, f: OpFacts):
    f.kind = "act"
    f.act = ev.act or ev.entry.arg or getattr(ev.module, "kind", "") or "clamp"
    if ev.kind == "clamp":
        f.act = "clamp"
    return f


def _pool(ev, f: OpFacts):
    k = ev.module.kernel_size if ev.module is not None else _kw(ev, 1, "kernel_size")
    kh, kw = _pair(k)
    f.kind = "maxpool" if ev.entry.arg == "max" else "avgpool"
    f.window = kh * kw * f.out_numel
    return f


def _apool(ev, f: OpFacts):
    f.kind, f.window = "adaptive", _adaptive_window(f.inputs[0], f.out)
    return f


def _mean(ev, f: OpFacts):
    f.kind, f.window = "mean", f.in_numel      # every element summed once
    return f


def _softmax(ev, f: OpFacts):
    dim = ev.module.dim if ev.module is not None else _kw(ev, 1, "dim")
    f.kind = "log_softmax" if ev.entry.arg == "log" else "softmax"
    f.channels = int(f.inputs[0].shape[int(dim)])
    return f


def _view_or_copy(ev, f: OpFacts):
    # a reshape that had to copy (a permuted tensor made contiguous) writes a
    # new tensor
    copied = f.out is not None and f.inputs and not _record.same_buffer(f.out, f.inputs[0])
    f.kind = "copy" if copied else "view"
    return f


def _arith(ev, f: OpFacts, prms: list):
    """``+ - * / **`` with a tensor, a parameter or a number."""
    op = ev.kind
    nums = [a for a in list(ev.args[1:]) + [ev.kwargs.get("other")]
            if isinstance(a, (int, float)) and not isinstance(a, bool)]
    if len(f.inputs) == 2 and not prms:
        f.kind = op
        return f
    if len(f.inputs) == 1 and prms and op in ("mul", "add"):
        f.params, f.kind = prms, "scale" if op == "mul" else "scale_bias"
        return f
    if len(f.inputs) == 1 and not prms and len(nums) == 1:
        inplace = _record.same_buffer(f.out, f.inputs[0])
        if op == "add" and nums[0] == 0 and ev.call == OP and not inplace:
            f.kind = "view"
        elif op == "mul" and nums[0] == 0 and not inplace:
            f.kind = "zero"
        else:
            f.kind, f.act = "act", f"{op}_const"
        return f
    return f"{op} of {len(f.inputs)} activations, {len(prms)} parameters and {nums}"


def _mapped(ev, f: OpFacts, module_map: dict):
    op = module_map[type(ev.module)]
    if op == "global_avgpool":
        f.kind, f.window = "adaptive", f.in_numel
    elif op == "zero":
        f.kind = "zero"
    elif op in ("identity", "dropout", "flatten"):
        f.kind = "view"
    else:
        f.kind, f.act = "act", op
    return f


def _matmul(ev, f: OpFacts):
    """``a @ b``, ``a.matmul(b)``, ``torch.matmul``, ``bmm``: one multiply-add
    per output element and inner index."""
    if len(f.inputs) != 2:
        return "a matrix product with a parameter operand"
    f.kind, f.mac = "matmul", f.out_numel * int(f.inputs[0].shape[-1])
    return f


def _attention(ev, f: OpFacts):
    """nasflops' ``Attention`` (q, k, v token tensors ``N x G x H x W x C``)."""
    m = ev.module
    q, k, v = f.inputs
    heads, kv = m.heads, m.kv_heads
    lq, lk = int(q.shape[2] * q.shape[3]), int(k.shape[2] * k.shape[3])
    d, dv = int(q.shape[-1]) // heads, int(v.shape[-1]) // kv
    f.scores = int(q.shape[0] * q.shape[1]) * heads * lq * lk
    f.attn_mac = f.mac = f.scores * (d + dv)
    f.score_scratch = f.scratch = f.scores
    f.kind = "attention"
    return f


def _mha(ev, f: OpFacts):
    """nasflops' ``SelfAttention`` (an ``nn.MultiheadAttention`` on each group
    of tokens): in-projection, attention, out-projection."""
    attn = ev.module.attn
    x = f.inputs[0]
    e, heads = int(attn.embed_dim), int(attn.num_heads)
    rows = int(x.numel()) // e                 # tokens of all groups and samples
    tokens = int(x.shape[2] * x.shape[3])
    f.scores = rows * heads * tokens
    f.attn_mac = f.scores * 2 * (e // heads)
    f.mac = rows * 4 * e * e + f.attn_mac
    f.bias = attn.in_proj_bias is not None
    f.score_scratch = f.scores
    f.scratch = rows * 4 * e + f.scores      # q, k, v and the heads' output, the scores
    f.kind = "mha"
    return f


def _lm_leaf(ev, f: OpFacts):
    """nasflops' one-record modules of vision transformers and language models."""
    m, kind = ev.module, ev.kind
    if kind == "view_as":
        f.kind = "copy" if m.copy else "view"
    elif kind == "patch_merge":
        f.kind = "copy"
    elif kind == "embedding":
        f.kind, f.weights_read = "embedding", f.out_numel      # the rows looked up
    elif kind == "rmsnorm":
        f.kind, f.affine = "rmsnorm", m.norm.weight is not None
    elif kind == "expert_linear":
        w = m.weight
        per = int(w[0].numel()) + (int(m.bias[0].numel()) if m.bias is not None else 0)
        f.kind, f.bias = "expert_linear", m.bias is not None
        f.mac = f.out_numel * int(w.shape[-1])
        f.weights_read = per * len(m.hits)                      # the experts the run hit
    else:               # param_add, rope, kv_cache, moe_combine
        f.kind = kind
    return f


_SIMPLE = {"cat": "concat", "pad": "pad", "shuffle": "shuffle", "zeros_like": "zero",
           "clone": "copy", "dropout": "view", "identity": "view", "alias": "view",
           "expand": "view", "scale": "scale"}
_FACTS = {"conv": _weighted, "linear": _weighted, "bn": _norm, "ln": _norm, "act": _act_facts,
          "clamp": _act_facts, "pool": _pool, "apool": _apool, "mean": _mean,
          "softmax": _softmax, "matmul": _matmul, "attention": _attention, "mha": _mha}
for _k in ("param_add", "view_as", "patch_merge", "embedding", "rmsnorm", "rope", "kv_cache",
           "expert_linear", "moe_combine"):
    _FACTS[_k] = _lm_leaf
for _k in ("reshape", "flatten", "permute", "transpose", "getitem", "chunk", "split", "narrow",
           "contiguous"):
    _FACTS[_k] = _view_or_copy


def _facts(ev, inputs: list, prms: list, module_map: dict):
    """Facts of one event, or a reason when there is no counting rule."""
    f = OpFacts(ev.name(), "", inputs, ev.out if isinstance(ev.out, torch.Tensor) else None,
                list(ev.module.parameters()) if ev.module is not None else [], ev.call)
    kind = ev.kind
    if kind == "mapped":
        return _mapped(ev, f, module_map)
    if ev.module is not None and kind in ("add", "mul"):
        f.kind = kind            # nasflops' Add / Mul modules
        return f
    if kind in ("add", "sub", "mul", "div", "pow"):
        return _arith(ev, f, prms)
    if kind in _SIMPLE:
        f.kind = _SIMPLE[kind]
        if kind == "scale":
            f.bias = ev.module.bias is not None
        if kind == "cat" and ev.module is None:
            f.params = prms      # learned tokens joined (ViT's class token)
        return f
    rule = _FACTS.get(kind)
    if rule is None:
        return f"no counting rule for {ev.callable()}"
    return rule(ev, f)


# ------------------------------------------------------------- conventions
# One table per convention: kind -> count of one op, from its facts (its
# call kind included).  Kinds missing from a table count zero *by that
# convention's definition*.
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
        "adaptive": lambda f: f.window, "mean": lambda f: f.window,
        "add": lambda f: sum(int(t.numel()) for t in f.inputs[1:]),
        "mul": lambda f: f.out_numel, "sub": lambda f: f.out_numel,
        "div": lambda f: f.out_numel,
        "softmax": lambda f: 2 * f.out_numel, "log_softmax": lambda f: 2 * f.out_numel,
        "param_add": lambda f: f.out_numel,
        "matmul": lambda f: 2 * f.mac - f.out_numel,
        # Q.K^T, A.V; scale and softmax 2 per score
        "attention": lambda f: 2 * f.mac + 2 * f.scores - f.out_numel,
        # in-projection (3 outputs per token) and out-projection as linear
        # layers with their biases, the attention between them
        "mha": lambda f: (2 * f.mac - 5 * f.out_numel + (4 * f.out_numel if f.bias else 0)
                          + 2 * f.scores),
        "rmsnorm": lambda f: 3 * f.out_numel + (f.out_numel if f.affine else 0),
        "rope": lambda f: 3 * f.out_numel,
        "expert_linear": conv,
        "moe_combine": lambda f: 2 * f.in_numel - f.out_numel,
    }


def _module_only(rule: Rule) -> Rule:
    return lambda f: rule(f) if f.call == M else 0


def _thop_rules() -> dict[str, Rule]:
    # thop/vision/basic_hooks.py, hooked on modules of an exact registered
    # type only: count_convNd (no bias), count_linear (in_features *
    # y.numel()), count_normalization (2 * x.numel(), x2 when affine),
    # count_softmax, count_avgpool (y.numel()), count_adap_avgpool ((Hin*Win /
    # (Ho*Wo) + 1) * y.numel(), here in exact integers); ReLU/ReLU6/MaxPool/
    # Dropout are zero_ops; functions, methods and operators are invisible.
    def norm(f):
        return 2 * f.in_numel * (2 if f.affine else 1)

    def softmax(f):
        return (f.in_numel // f.channels) * (3 * f.channels - 1)
    rules = {"conv": lambda f: f.mac, "linear": lambda f: f.mac, "bn": norm, "ln": norm,
             "softmax": softmax, "avgpool": lambda f: f.out_numel,
             "adaptive": lambda f: f.in_numel + f.out_numel}
    return {k: _module_only(r) for k, r in rules.items()}


def _ptflops_rules() -> dict[str, Rule]:
    # ptflops 0.7.5, default pytorch backend: module hooks on exact types
    # (pytorch_ops.py MODULES_MAPPING) plus patched functionals
    # (FUNCTIONAL_MAPPING: F.relu, F.relu6, F.gelu, F.silu, F.softmax, the
    # pools, counted 1 per input element) and tensor ops (TENSOR_OPS_MAPPING:
    # torch.add/mul, Tensor.add/mul, 1 per output element).  Modules whose
    # forward calls a patched function count twice (nn.ReLU, nn.GELU, the
    # pools); nn.SiLU and nn.Softmax have no hook but call F.silu / F.softmax.
    # A written-out hard-sigmoid/-swish (call "operator") holds an F.relu6 or
    # nn.ReLU6.  LayerNorm has no `affine` attribute: never doubled.
    acts = {M: {"relu": 2, "gelu": 2, "relu6": 1, "silu": 1},
            FN: {"relu": 1, "gelu": 1, "relu6": 1, "silu": 1},
            ME: {"add_const": 1, "mul_const": 1},
            OP: {"hardsigmoid": 1, "hardswish": 1}}
    pool = {M: 2, FN: 1}
    bias = (lambda f: f.mac + (f.out_numel if f.bias else 0))
    method = (lambda rule: (lambda f: rule(f) if f.call == ME else 0))
    return {
        "conv": _module_only(bias), "linear": _module_only(bias),
        "bn": _module_only(lambda f: f.in_numel * (2 if f.affine else 1)),
        "ln": _module_only(lambda f: f.in_numel),
        "act": lambda f: acts[f.call].get(f.act, 0) * f.out_numel,
        "maxpool": lambda f: pool.get(f.call, 0) * f.in_numel,
        "avgpool": lambda f: pool.get(f.call, 0) * f.in_numel,
        "adaptive": lambda f: pool.get(f.call, 0) * f.in_numel,
        "softmax": lambda f: f.in_numel if f.call in (M, FN) else 0,
        "add": method(lambda f: f.out_numel), "mul": method(lambda f: f.out_numel),
        "zero": method(lambda f: f.out_numel),
        "scale": method(lambda f: f.out_numel + (f.out_numel if f.bias else 0)),
        # its nn.MultiheadAttention hook: q scaling, projections, in-projection
        # bias, per head Q.K^T + softmax + A.V, the out-projection's bias
        "mha": lambda f: (f.mac + 2 * f.out_numel + (3 * f.out_numel if f.bias else 0)
                          + f.scores),
        # torch.matmul, Tensor.matmul, bmm are patched; the @ operator is not
        "matmul": lambda f: f.mac if f.call in (FN, ME) else 0,
    }


def _fvcore_rules() -> dict[str, Rule]:
    # fvcore 0.1.5 flop_count.py _DEFAULT_SUPPORTED_OPS / jit_handles.py: aten
    # ops whatever the spelling, model in eval mode: conv (no bias), linear,
    # batch_norm (1 or 2 per element), layer_norm (4 or 5),
    # adaptive_avg_pool2d (1 per input element; a mean is aten::mean, not
    # counted); every other aten op is ignored or unsupported (zero).
    return {
        "conv": lambda f: f.mac, "linear": lambda f: f.mac,
        "bn": lambda f: f.in_numel * (2 if f.affine else 1),
        "ln": lambda f: f.in_numel * (5 if f.affine else 4),
        "adaptive": lambda f: f.in_numel,
        "matmul": lambda f: f.mac, "expert_linear": lambda f: f.mac,
        # aten::linear of the projections; scaled_dot_product_attention is not counted
        "mha": lambda f: f.mac - f.attn_mac,
    }


_MAC_KINDS = ("conv", "linear", "matmul", "attention", "mha", "expert_linear")

#: convention name -> {op kind: count rule}
HOOK_CONVENTIONS: dict[str, dict[str, Rule]] = {
    "macs": {k: (lambda f: f.mac) for k in _MAC_KINDS},
    "fma2": {k: (lambda f: 2 * f.mac) for k in _MAC_KINDS},
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

    ``by_node`` lists, per counted op, its name, kind, ops, macs, params and
    bytes.
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


def _classify(run: _record.Run, mmap: dict, model_name: str) -> list:
    """Pass 1 of :func:`count_with_hooks`: the facts of every op, in order.

    Raises :class:`UnsupportedOpsError` listing every op without a rule.
    """
    static = set(run.params)             # parameters, and tensors made from them only
    fact_of = {-1: 0}                    # event index -> fact index
    facts = [OpFacts("input", "input", [], run.x)]
    offenders = []
    for i, ev in enumerate(run.events):
        ts = ev.ins
        acts = [(t, s) for t, s in zip(ts, ev.sources) if s is not None and s in fact_of]
        if not acts:     # parameters and what is made from them alone
            outs = ev.out if isinstance(ev.out, (tuple, list)) else (ev.out,)
            static.update(id(t) for t in outs if isinstance(t, torch.Tensor))
            continue
        prms = [t for t, s in zip(ts, ev.sources) if not (s is not None and s in fact_of)
                and id(t) in static]
        f = _facts(ev, [t for t, _ in acts], prms, mmap) if ev.entry is not None else \
            "count_with_hooks has no rule for it"
        if isinstance(f, str):
            if ev.live:    # a dead end (`if x.sum() > 0`) is left out
                offenders.append(Offender(ev.name(), ev.callable(), f, ev.location()))
                # a stand-in, so that the ops after it are checked too
                fact_of[i] = len(facts)
                facts.append(OpFacts(ev.name(), "view", [t for t, _ in acts], None))
            continue
        f.sources = [fact_of.get(s) for _, s in acts]
        if f.kind == "scale_bias":
            f = _scale_bias(f, facts, run.events, acts)
            if isinstance(f, str):
                offenders.append(Offender(ev.name(), ev.callable(), f, ev.location()))
                continue
        fact_of[i] = len(facts)
        facts.append(f)
    if offenders:
        raise UnsupportedOpsError(f"cannot count {model_name}", offenders)
    return facts


def _scale_bias(f: OpFacts, facts: list, events: list, acts: list):
    """``x * w + b``: the multiply (a ``scale`` fact) becomes a view of its
    input and the add carries both parameters, so the pair counts and moves
    bytes as the one op it is."""
    src = f.sources[0]
    mul = facts[src] if src is not None else None
    ev = events[acts[0][1]]
    if mul is None or mul.kind != "scale" or mul.bias or ev.uses != 1 or mul.call != f.call:
        return "adding a parameter that is not the bias of a per-channel scale (x * w + b)"
    mul.kind = "view"
    f.kind, f.bias = "scale", True
    f.params = mul.params + f.params
    f.inputs = mul.inputs
    f.sources = mul.sources
    return f


def count_with_hooks(model: torch.nn.Module, input_shape, convention: str = "macs",
                     batch_size: int = 1, weight_dtype: str = "fp32",
                     act_dtype: str = "fp32", module_map: Optional[dict] = None,
                     fused_attention: bool = False) -> HookCounts:
    """Count a torch model by running it, independently of the nasflops core.

    Parameters
    ----------
    model : nn.Module
        A model whose ops are in docs/conventions.md (every op nasflops
        knows, as modules, functions, methods or operators).  It runs once
        under the recorder ``from_torch`` uses (no symbolic tracing).
    input_shape : tuple
        ``(C, H, W)`` (batch ``batch_size``) or ``(N, C, H, W)``.
    convention : str or sequence of str
        ``"macs"``, ``"flops"``, ``"fma2"``, ``"nb201"``, ``"ofa"``,
        ``"thop"``, ``"ptflops"`` or ``"fvcore"`` (see :data:`HOOK_CONVENTIONS`);
        several (a list) are counted from one run.
    batch_size : int
        N when ``input_shape`` has three entries.
    weight_dtype, act_dtype : str
        Element types for the byte metrics (``fp32``, ``fp16``, ``int8``, ...).
    module_map : dict, optional
        ``{module type: op}`` for your own modules, as in
        :func:`~nasflops.torch_bridge.from_torch`.
    fused_attention : bool
        Attention runs fused (FlashAttention-style): its score matrix is never
        materialised, so it adds nothing to the memory metrics (the core's
        option of that name).

    Returns
    -------
    HookCounts, or ``{convention: HookCounts}`` for a sequence of conventions

    Raises
    ------
    UnsupportedOpsError
        Listing every op without a counting rule.

    Examples
    --------
    >>> import torch.nn as nn
    >>> from nasflops.torch_bridge import count_with_hooks
    >>> m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> c = count_with_hooks(m, (3, 8, 8), "flops")
    >>> c.macs, c.ops, c.params
    (13824, 28160, 224)
    """
    names = [convention] if isinstance(convention, str) else list(convention)
    for name in names:
        if name not in HOOK_CONVENTIONS:
            raise ValueError(f"count_with_hooks implements conventions "
                             f"{', '.join(HOOK_CONVENTIONS)}; got {name!r}")
    # element sizes are a table, not a count: shared with the core's front
    wsize, asize = dtype_size(weight_dtype, "weight_dtype"), dtype_size(act_dtype, "act_dtype")
    mmap = _record.check_module_map(module_map)
    with _record.eval_mode(model):
        x = _record.input_tensor(model, input_shape, batch_size)
        run = _record.record(model, x, mmap)
    run.events = _record.fuse(run.events)
    facts = _classify(run, mmap, type(model).__name__)
    out = {}
    for name in names:
        tot, by_node = _totals(facts, HOOK_CONVENTIONS[name], wsize, asize, fused_attention)
        # torch's definition: every parameter once (shared ones are not repeated)
        tot["params"] = sum(int(p.numel()) for p in model.parameters())
        tot["weight_bytes"] = tot["params"] * wsize
        out[name] = HookCounts(name, **tot, by_node=by_node)
    return out[convention] if isinstance(convention, str) else out


def _totals(facts: list, rules: dict, wsize: int, asize: int,
            fused_attention: bool = False) -> tuple[dict, list]:
    """Pass 2: counts and bytes per op, and the peak of live buffers."""
    tot = dict.fromkeys(_METRICS, 0)
    owner: list = []
    scratch: list = []
    by_node = []
    for i, f in enumerate(facts):
        own_params = sum(_elems(p) for p in f.params)
        ops = int(rules[f.kind](f)) if f.kind in rules else 0
        extra = (f.scratch - (f.score_scratch if fused_attention else 0)) * asize
        read = own_params if f.weights_read is None else f.weights_read
        if f.kind in ("input", "view") or f.out is None:
            act = rd = wr = extra = 0
        elif f.kind == "kv_cache":
            # the new entries written into the cache, which is not an activation
            act = 0
            rd = wr = sum(_elems(t) for t in f.inputs) * asize
        else:
            act = wr = f.out_numel * asize + extra
            rd = read * wsize + sum(_elems(t) for t in f.inputs) * asize + extra
        scratch.append(extra)
        # a view aliases its input by definition (the cache holds what it
        # appends); a computing op does when its output is its input's
        # memory (in-place)
        src = f.sources[0] if f.sources else None
        if src is not None and (f.kind in ("view", "kv_cache") or (
                f.out is not None and f.inputs and _record.same_buffer(f.out, f.inputs[0]))):
            owner.append(owner[src])
        else:
            owner.append(i)
        tot["ops"] += ops
        tot["macs"] += f.mac
        tot["act_bytes"] += act
        tot["read_bytes"] += rd
        tot["write_bytes"] += wr
        by_node.append({"node": f.name, "kind": f.kind + (f":{f.act}" if f.act else ""),
                        "ops": ops, "macs": f.mac, "params": own_params,
                        "act_bytes": act, "read_bytes": rd, "write_bytes": wr})
    tot["peak_act_bytes"] = _peak(facts, owner, asize, scratch)
    return tot, by_node


def _peak(facts: list, owner: list, asize: int, scratch: list) -> int:
    last = list(range(len(facts)))
    for i, f in enumerate(facts):
        for s in f.sources:
            if s is not None:
                last[owner[s]] = max(last[owner[s]], i)
        last[owner[i]] = max(last[owner[i]], i)
    freed = [0] * len(facts)
    size = [0] * len(facts)
    for i, f in enumerate(facts):
        if owner[i] == i and f.out is not None:
            size[i] = f.out_numel * asize
            freed[last[i]] += size[i]
    live = peak = 0
    for i in range(len(facts)):
        live += size[i]
        peak = max(peak, live + scratch[i])     # scratch lives while its op runs
        live -= freed[i]
    return peak
