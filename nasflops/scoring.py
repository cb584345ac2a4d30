"""Scoring front: validates arguments, maps names to the compiled core.

``score`` returns one row per architecture; ``layer_table`` the per-layer
breakdown of one architecture.  Both name their counting convention.  Core
status codes become sentences here (:func:`explain`).
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from . import _core
from .conventions import Convention
from .engine import CORE_METRICS, METRICS, RawScores, score_chunks
from .options import DTYPE_SIZES, Device, ScoringOptions
from .spec import INPUT_FIELDS, LAYER_DTYPE, Call, Flag, Net, Op, SpecBatch, act_name, op_name

__all__ = ["score", "layer_table", "SpecError", "MissingColumnError", "Device", "Scores",
           "DTYPE_SIZES", "METRICS", "RESULT_DTYPE", "STATUS_NAMES", "as_batch", "explain"]

#: row dtype of :func:`score` results
RESULT_DTYPE = np.dtype([(m, np.int64) for m in METRICS]
                        + [("status", np.int8), ("bad_layer", np.int32)])
#: status code -> short name (0 is ``ok``)
STATUS_NAMES = {v: k for k, v in _core.STATUS.items()}
_ST = _core.STATUS


class MissingColumnError(KeyError, ValueError):
    """Results lack a column a computation names (a ``KeyError`` for lookups,
    a ``ValueError`` for the caller's mistake); the message lists what there is."""

    def __str__(self) -> str:   # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SpecError(ValueError):
    """An architecture the core cannot score, with where and why.

    Attributes
    ----------
    arch : int or None
        Index of the architecture in its batch.
    layer : int or None
        Index of the offending layer within the architecture.
    status : int
        The core's status code (see ``nasflops.STATUS_NAMES``).
    reason : str
        Human-readable cause.
    """

    def __init__(self, arch: Optional[int], layer: Optional[int], status: int, reason: str):
        self.arch, self.layer, self.status, self.reason = arch, layer, status, reason
        where = []
        if arch is not None:
            where.append(f"architecture {arch}")
        if layer is not None and layer >= 0:
            where.append(f"layer {layer}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class Scores(np.ndarray):
    """Structured array of per-architecture results that knows its convention.

    Columns: ``ops`` (total under ``convention``), ``macs``, ``params``,
    ``weight_bytes``, ``act_bytes``, ``peak_act_bytes``, ``read_bytes``,
    ``write_bytes`` (int64, exact), the columns the ``phase`` adds
    (``options.PHASE_METRICS``: ``active_params``, ``kv_cache_bytes`` and,
    training, ``grad_bytes``, ``optimizer_bytes``, ``saved_act_bytes``,
    ``recompute_act_bytes``), ``status`` (0 = valid), ``bad_layer`` (-1 when
    valid) and, with a device, ``latency_s`` (float64).  Metric columns of
    invalid rows hold -1.
    """

    convention: str = ""
    unit: str = ""
    batch_size: int = 1
    weight_dtype: str = "fp32"
    act_dtype: str = "fp32"
    memory: str = "nasflops"
    phase: str = "forward"
    causal: str = "full"

    def __array_finalize__(self, obj):
        if obj is None:
            return
        for a in ("convention", "unit", "batch_size", "weight_dtype", "act_dtype", "memory",
                  "phase", "causal"):
            setattr(self, a, getattr(obj, a, getattr(Scores, a)))

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of valid architectures."""
        return np.asarray(self["status"]) == 0


    @classmethod
    def from_raw(cls, raw: RawScores, opts: ScoringOptions) -> "Scores":
        """Result rows from the core's arrays, naming the options they were scored with."""
        extra = [(m, "<i8") for m in opts.extra_metrics]
        fields = (list(RESULT_DTYPE.descr[:len(METRICS)]) + extra + list(RESULT_DTYPE.descr[len(METRICS):])
                  + ([("latency_s", "<f8")] if raw.latency is not None else []))
        out = np.empty(len(raw), dtype=fields)
        for m in METRICS + opts.extra_metrics:
            out[m] = raw.metrics[:, CORE_METRICS.index(m)]
        out["status"] = raw.status
        out["bad_layer"] = raw.bad_layer
        if raw.latency is not None:
            out["latency_s"] = raw.latency
        res = out.view(cls)
        res.convention, res.unit = opts.convention.name, opts.convention.unit
        res.batch_size, res.weight_dtype, res.act_dtype = opts.batch_size, opts.weight_dtype, opts.act_dtype
        res.memory, res.phase, res.causal = opts.memory, opts.phase, opts.causal
        return res


def as_batch(specs) -> SpecBatch:
    """A :class:`SpecBatch` from what the scoring functions accept: a batch,
    one architecture's records, a :class:`Net`, or a list of those."""
    if isinstance(specs, SpecBatch):
        return specs
    if isinstance(specs, Net):
        specs = specs.records
    if isinstance(specs, np.ndarray) and specs.dtype == LAYER_DTYPE:
        if specs.ndim != 1:
            raise ValueError(f"records must be 1-D, got shape {specs.shape}")
        return SpecBatch(specs, np.array([0, len(specs)], dtype=np.int64))
    if isinstance(specs, (list, tuple)):
        return SpecBatch.from_list(specs)
    raise TypeError("specs must be a SpecBatch, one architecture's records "
                    f"(LAYER_DTYPE), a Net or a list of those; got {type(specs).__name__}")


def score(specs, convention: Union[str, Convention] = "macs", batch_size: int = 1,
          weight_dtype: str = "fp32", act_dtype: str = "fp32", n_jobs: Optional[int] = 1,
          errors: str = "raise", device: Optional[Device] = None,
          chunk_size: Optional[int] = None, fused_attention: bool = False,
          memory: str = "nasflops", phase: str = "forward", causal: str = "full") -> Scores:
    """Score architectures: FLOPs/MACs, params and memory, exactly.

    Parameters
    ----------
    specs : SpecBatch, ndarray of LAYER_DTYPE, Net, or list of those
        The architectures.  One record array is one architecture.
    convention : str or Convention
        What ``ops`` counts: ``"macs"``, ``"flops"``, ``"fma2"`` or any
        registered convention (see ``nasflops.CONVENTIONS``).
    batch_size : int
        Samples per forward pass (N); multiplies every count but params.
    weight_dtype, act_dtype : str
        Element types of weights and activations (``fp32``, ``fp16``,
        ``bf16``, ``int8``, ...) for the byte metrics.
    n_jobs : int or None
        Parallel workers, joblib's convention (``None`` = 1 unless inside
        ``joblib.parallel_config``, ``-1`` = all cores).  Threads by
        default (the core releases the GIL); the user's
        ``joblib.parallel_config(backend=...)`` is respected.  Results never
        depend on ``n_jobs``, the backend or ``chunk_size``.
    errors : {"raise", "status"}
        ``"raise"``: raise :class:`SpecError` naming the first invalid
        architecture and layer.  ``"status"``: return every row, invalid
        ones with a non-zero ``status``, their ``bad_layer``, and -1 metrics.
    device : Device or str, optional
        Adds a ``latency_s`` roofline column: a :class:`~nasflops.Device`, or
        the name of one of ``nasflops.DEVICES`` (``"a100"``, ``"t4"``, ...).
    chunk_size : int, optional
        Architectures per parallel task.
    fused_attention : bool
        Attention runs fused (FlashAttention-style): its score matrix is
        never materialised and adds nothing to the memory metrics.
    memory : {"nasflops", "torchstat"}
        What ``act_bytes``, ``read_bytes`` and ``write_bytes`` count: the
        buffers allocated and the bytes every op moves, or torchstat
        0.0.7's memory, MemRead and MemWrite (README, "Memory metrics").
    phase : {"forward", "prefill", "decode", "train"}
        What the pass is, named in the result (``options.PHASES``):
        ``train`` counts forward + backward (every record's ops and bytes
        x 3) and adds the training memory; prefill, decode and train add
        ``active_params`` and ``kv_cache_bytes``.
    causal : {"full", "half"}
        Causal attention scores counted as the full rectangle torch
        computes, or only the keys at or before each query.

    Returns
    -------
    Scores
        One row per architecture (a numpy structured array); its
        ``convention`` and ``unit`` attributes name what ``ops`` counts.

    Examples
    --------
    >>> import nasflops
    >>> net = nasflops.Net(16, 32, 32)
    >>> _ = net.conv(net.input, 32, 3, padding=1, bias=True)
    >>> r = nasflops.score(net, convention="flops")
    >>> int(r["ops"][0]), int(r["macs"][0]), int(r["params"][0]), r.convention
    (9437184, 4718592, 4640, 'flops')
    """
    specs = as_batch(specs)
    if errors not in ("raise", "status"):
        raise ValueError(f"errors must be 'raise' or 'status', got {errors!r}")
    opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype, device,
                               fused_attention, memory, phase, causal)
    raw = score_chunks(specs, opts, n_jobs=n_jobs, chunk_size=chunk_size)
    if errors == "raise" and len(raw) and np.any(raw.status):
        i = int(np.flatnonzero(raw.status)[0])
        bad, st = int(raw.bad_layer[i]), int(raw.status[i])
        raise SpecError(i, bad, st, explain(specs[i], bad, st, opts))
    return Scores.from_raw(raw, opts)


#: dtype of :func:`layer_table` rows
LAYER_TABLE_DTYPE = np.dtype([("layer", np.int32), ("op", "U16"), ("inputs", "U24")]
                             + [(c, np.int64) for c in _core.LAYER_COLUMNS])


def layer_table(spec, convention: Union[str, Convention] = "macs", batch_size: int = 1,
                weight_dtype: str = "fp32", act_dtype: str = "fp32",
                device: Optional[Device] = None, fused_attention: bool = False,
                memory: str = "nasflops", phase: str = "forward",
                causal: str = "full") -> np.ndarray:
    """Per-layer breakdown of one architecture.

    Returns a structured array with, per layer: ``layer``, ``op`` (name),
    ``inputs`` (comma-separated indices), output ``channels``/``height``/
    ``width``/``groups`` and ``layout`` (0 image, 1 tokens, 2 matrices), ``ops`` (under ``convention``), ``macs``, ``params``,
    ``act_bytes`` (output), ``read_bytes``, ``write_bytes``, ``live_bytes``
    (live activations while the layer runs; their maximum is
    ``peak_act_bytes``), ``active_params``, ``kv_cache_bytes`` and, with a
    device, ``latency_s``.  ``memory``, ``phase`` and ``causal`` are as in
    :func:`score`.

    Raises :class:`SpecError` for an invalid architecture.

    Examples
    --------
    >>> import nasflops
    >>> net = nasflops.Net(3, 8, 8); _ = net.conv(net.input, 4, 3, padding=1)
    >>> t = nasflops.layer_table(net)
    >>> t["op"].tolist(), t["macs"].tolist()
    (['input', 'conv2d'], [0, 6912])
    """
    specs = as_batch(spec)
    if len(specs) != 1:
        raise ValueError(f"layer_table takes one architecture, got {len(specs)}")
    records = specs[0]
    opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype, device,
                               fused_attention, memory, phase, causal)
    st, bad, table = _core.layer_metrics(records, *opts.core_args())
    if st:
        raise SpecError(None, int(bad), int(st), explain(records, int(bad), int(st), opts))
    fields = list(LAYER_TABLE_DTYPE.descr) + ([("latency_s", "<f8")] if device else [])
    out = np.zeros(len(records), dtype=fields)
    out["layer"] = np.arange(len(records))
    out["op"] = [_layer_label(r) for r in records]
    ins = np.stack([records[f] for f in INPUT_FIELDS], axis=1)
    out["inputs"] = [",".join(str(v) for v in row if v >= 0) for row in ins]
    for k, c in enumerate(_core.LAYER_COLUMNS):
        out[c] = table[:, k]
    if device is not None:
        out["latency_s"] = np.maximum(out["ops"] / device.peak_ops_per_s,
                                      (out["read_bytes"] + out["write_bytes"]) / device.bytes_per_s)
    return out


def _layer_label(rec) -> str:
    if rec["op"] == Op.ACT:
        return act_name(rec["act"])
    return op_name(rec["op"])


# ---------------------------------------------------------------- messages
def explain(records: np.ndarray, layer: int, status: int,
            opts: Optional[ScoringOptions] = None) -> str:
    """Turn a core status into a sentence about ``records[layer]``.

    The layers before ``layer`` are valid under the options the architecture
    was scored with (the core stops at the first fault), so their shapes are
    inferred again, with those same options, to name what disagreed.
    """
    if status == _ST["empty"]:
        return "the architecture has no layers"
    rec = records[layer]
    name = _layer_label(rec) if 0 <= rec["op"] < len(Op) else op_name(rec["op"])
    shapes = {}
    if layer > 0 and status not in (_ST["bad_input_ref"], _ST["no_input"]):
        opts = opts or ScoringOptions.make()
        # same options: the rows before the fault are exactly what was scored
        _, _, t = _core.layer_metrics(np.ascontiguousarray(records[:layer + 1]), *opts.core_args())
        shapes = {j: tuple(int(v) for v in t[j, :5]) for j in range(layer)}
    why = _EXPLAIN.get(status)
    reason = why(_Fault(rec, layer, name, shapes)) if why else f"invalid (status {status})"
    return reason if status == _ST["bad_op"] and int(rec["op"]) != Op.ACT else f"({name}) {reason}"


class _Fault:
    """The faulty record with the shapes of its inputs, for the messages."""

    def __init__(self, rec, layer: int, name: str, shapes: dict):
        self.rec, self.layer, self.name, self.shapes = rec, layer, name, shapes
        self.op = int(rec["op"])
        self.ins = [int(rec[f]) for f in INPUT_FIELDS if rec[f] >= 0]

    def shape(self, j) -> Optional[tuple]:
        return self.shapes.get(j)

    def shp(self, j) -> str:
        return describe_shape(self.shapes.get(j))

    def first(self) -> str:
        return self.shp(self.ins[0]) if self.ins else "?"


def describe_shape(s) -> str:
    """A per-sample shape ``(c, h, w, g, layout)`` as words: ``8x14x14`` for an
    image, ``197 tokens of 768`` for a sequence, ``4 x 7x7 tokens of 96`` for
    grouped token grids, ``12 matrices of 197x64`` for a matrix stack."""
    if not s:
        return "?"
    c, h, w, g, layout = s
    if layout == 1:
        grid = f"{h}" if w == 1 else f"{h}x{w}"
        return f"{g} x {grid} tokens of {c}" if g != 1 else f"{grid} tokens of {c}"
    if layout == 2:
        return f"{g} matrices of {h}x{w}"
    return f"{c}x{h}x{w}"


def _no_input(f: _Fault) -> str:
    if f.layer == 0:
        return f"layer 0 must be the network input (op 'input'), got '{f.name}'"
    return "only layer 0 may be the network input"


def _bad_op(f: _Fault) -> str:
    if f.op == Op.ACT:
        return f"unknown activation kind {int(f.rec['act'])}"
    return f"unknown op code {f.op}; known: 0..{len(Op) - 1}"


def _bad_input_ref(f: _Fault) -> str:
    raw = [int(f.rec[k]) for k in INPUT_FIELDS]
    want = {Op.INPUT: "no inputs", Op.ADD: "2 to 4 inputs", Op.MUL: "2 inputs",
            Op.MATMUL: "2 inputs", Op.ATTENTION: "3 inputs (q, k, v)",
            Op.CONCAT: "1 to 4 inputs",
            Op.MOE_COMBINE: "2 inputs (the experts' outputs, the routing weights)"}.get(f.op, "1 input")
    return (f"inputs {raw} are invalid: it takes {want}, each naming an earlier "
            f"layer (0..{f.layer - 1}), used slots first and -1 for unused ones")


def _bad_groups(f: _Fault) -> str:
    g = int(f.rec["groups"])
    s = f.shape(f.ins[0]) if f.ins else None
    cin = s[0] if s else None
    if f.op == Op.CHANNEL_SHUFFLE:
        return f"groups={g} does not divide the {cin} input channels"
    if f.op == Op.ROPE:
        return (f"heads={g} must split the {cin} channels into heads of an even size (rotary "
                f"embedding rotates pairs of channels); input: {f.first()}")
    if f.op in (Op.ATTENTION, Op.MHA):
        kv = int(f.rec["kv_heads"]) or g
        width = int(f.rec["out_channels"]) if f.op == Op.MHA else cin
        values = f" and kv_heads={kv} must divide the heads and the value channels" \
            if f.op == Op.ATTENTION else ""
        return (f"heads={g} must divide the query channels ({width}){values}; "
                f"inputs: {', '.join(f.shp(j) for j in f.ins)}")
    return (f"groups={g} must divide in_channels={cin} and "
            f"out_channels={int(f.rec['out_channels'])}")


def _shape_mismatch(f: _Fault) -> str:
    parts = ", ".join(f"{f.shp(j)} from layer {j}" for j in f.ins)
    if f.op == Op.VIEW_AS:
        s = f.shape(f.ins[0])
        n_in = s[0] * s[1] * s[2] * s[3] if s else "?"
        want = int(f.rec["groups"]) * int(f.rec["out_channels"]) * int(f.rec["size_h"]) \
            * int(f.rec["size_w"])
        return (f"a view keeps the number of elements: the input ({parts}) has {n_in} elements, "
                f"the shape asks for {want}")
    if f.op == Op.ATTENTION and f.rec["flags"] & Flag.CAUSAL:
        q, k = f.shape(f.ins[0]), f.shape(f.ins[1])
        if q and k and k[1] * k[2] < q[1] * q[2]:
            return (f"a causal attention needs at least as many keys as queries (its queries are "
                    f"the last of its positions); got {parts}")
    need = {Op.ADD: "identical shapes", Op.CONCAT: "equal height and width (and groups)",
            Op.MUL: "the second to broadcast to the first (each dim equal or 1)",
            Op.MATMUL: "(G, M, K) x (G or 1, K, N): the inner dimensions equal",
            Op.ATTENTION: "keys with kv_heads x head_dim channels and keys and values "
                          "with the same tokens",
            Op.MHA: f"input channels equal to embed_dim={int(f.rec['out_channels'])}",
            Op.EXPERT_LINEAR: f"one group of tokens (each token dispatched to its experts) or "
                              f"top_k={int(f.rec['size_h'])} groups (each slot through its expert)",
            Op.MOE_COMBINE: "routing weights for the same tokens as the experts' outputs"}
    return f"input shapes disagree ({parts}); it needs {need.get(f.op, 'matching shapes')}"


def _kernel_too_large(f: _Fault) -> str:
    r = f.rec
    return (f"kernel {r['kernel_h']}x{r['kernel_w']} (dilation {r['dilation_h']}x"
            f"{r['dilation_w']}) is larger than its padded input: input {f.first()} (CxHxW), "
            f"padding {r['pad_h']}x{r['pad_w']}")


def _bad_padding(f: _Fault) -> str:
    r = f.rec
    return (f"padding {r['pad_h']}x{r['pad_w']} is more than half the kernel "
            f"{r['kernel_h']}x{r['kernel_w']} (torch rejects it)")


def _bad_shape(f: _Fault) -> str:
    got = f"got {f.first()}"
    if f.op == Op.LINEAR:
        return f"linear needs a 1x1 input (flatten or pool first) or tokens; {got}"
    if f.op == Op.MATMUL:
        return ("matmul multiplies two matrix stacks (view_as(..., layout='matrix')); "
                f"got {', '.join(f.shp(j) for j in f.ins)}")
    if f.op == Op.PREPEND:
        return f"prepend needs one sequence of tokens (tokens(x, flat=True)); {got}"
    if f.op == Op.EMBEDDING:
        return f"embedding looks up token ids: one channel per position (an input of 1 x L x 1); {got}"
    if f.op == Op.KV_CACHE:
        return f"kv_cache appends to one sequence of tokens (one group, W = 1); {got}"
    if f.op == Op.MOE_COMBINE:
        return ("moe_combine takes the experts' outputs (tokens) and one sequence of routing "
                f"weights (tokens); got {', '.join(f.shp(j) for j in f.ins)}")
    if f.op in (Op.ROPE, Op.EXPERT_LINEAR):
        return f"{f.name} needs tokens (tokens(x) first); {got}"
    if f.op in (Op.TO_IMAGE, Op.PATCH_MERGE, Op.ATTENTION, Op.MHA):
        return f"{f.name} needs tokens (tokens(x) first); {got}"
    if f.op in (Op.CONCAT, Op.SLICE, Op.LAYERNORM, Op.RMSNORM, Op.SCALE, Op.ADAPTIVE_AVGPOOL):
        return f"{f.name} needs an image or tokens, not a matrix stack; {got}"
    return f"{f.name} needs an image (C x H x W; to_image(x) for tokens); {got}"


def _overflow(f: _Fault) -> str:
    return "a count overflows int64 (output or counts too large)"


def _bad_value(f: _Fault) -> str:
    return _bad_fields(f.rec, f.shape(f.ins[0]) if f.ins else None)


_EXPLAIN = {_ST["no_input"]: _no_input, _ST["bad_op"]: _bad_op,
            _ST["bad_input_ref"]: _bad_input_ref, _ST["bad_groups"]: _bad_groups,
            _ST["shape_mismatch"]: _shape_mismatch, _ST["kernel_too_large"]: _kernel_too_large,
            _ST["bad_padding"]: _bad_padding, _ST["bad_shape"]: _bad_shape,
            _ST["overflow"]: _overflow, _ST["bad_value"]: _bad_value}


def _bad_fields(rec, in_shape) -> str:
    op = int(rec["op"])
    checks = []
    if op == Op.INPUT:
        checks = [("out_channels", 1), ("size_h", 1), ("size_w", 1)]
    elif op in (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL):
        checks = [("kernel_h", 1), ("kernel_w", 1), ("stride_h", 1), ("stride_w", 1),
                  ("pad_h", 0), ("pad_w", 0), ("dilation_h", 1), ("dilation_w", 1)]
        if op == Op.CONV2D:
            checks += [("out_channels", 1), ("groups", 1)]
    elif op in (Op.LINEAR,):
        checks = [("out_channels", 1)]
    elif op == Op.ADAPTIVE_AVGPOOL:
        checks = [("size_h", 1), ("size_w", 1)]
    elif op == Op.CHANNEL_SHUFFLE:
        checks = [("groups", 1)]
    elif op == Op.SLICE:
        checks = [("out_channels", 1), ("start", 0)]
    elif op == Op.PREPEND:
        checks = [("size_h", 1)]
    elif op == Op.PARAM_ADD:
        checks = [("extra", 0)]
    elif op == Op.VIEW_AS:
        checks = [("groups", 1), ("out_channels", 1), ("size_h", 1), ("size_w", 1)]
    elif op in (Op.ATTENTION, Op.MHA):
        checks = [("groups", 1), ("kv_heads", 0)] + ([("out_channels", 1)] if op == Op.MHA else [])
    elif op == Op.EMBEDDING:
        checks = [("out_channels", 1), ("extra", 1)]
    elif op == Op.ROPE:
        checks = [("groups", 1)]
    elif op == Op.KV_CACHE:
        checks = [("size_h", 0)]
    elif op == Op.EXPERT_LINEAR:
        checks = [("out_channels", 1), ("groups", 1), ("size_h", 1)]
    bad = [f"{f}={int(rec[f])} (must be >= {lo})" for f, lo in checks if rec[f] < lo]
    if rec["call"] >= len(Call):
        bad.insert(0, f"call={int(rec['call'])} is not a call kind (0..{len(Call) - 1}: "
                      f"{', '.join(c.name.lower() for c in Call)})")
    if op == Op.AVGPOOL and (rec["dilation_h"] != 1 or rec["dilation_w"] != 1):
        bad.append("avgpool has no dilation (dilation must be 1)")
    if op == Op.SLICE and in_shape and not bad:
        axis, size = (("tokens", in_shape[1]) if rec["flags"] & Flag.TOKENS
                      else ("channels", in_shape[0]))
        bad.append(f"{axis} {int(rec['start'])}..{int(rec['start']) + int(rec['out_channels'])} "
                   f"exceed the {size} input {axis}")
    if op == Op.VIEW_AS and not bad:
        bad.append("a view is an image (groups 1), tokens or matrices (channels 1), not both")
    if op == Op.EXPERT_LINEAR and not bad and rec["size_h"] > rec["groups"]:
        bad.append(f"top_k (size_h)={int(rec['size_h'])} exceeds the experts (groups)="
                   f"{int(rec['groups'])}: each token is routed to top_k distinct experts")
    return "; ".join(bad) if bad else "a field is out of range"
