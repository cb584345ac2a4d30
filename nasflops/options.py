"""Scoring options: what a count depends on besides the architecture.

Every way of scoring (:func:`nasflops.score`, :func:`nasflops.score_space`,
budgets, sampling) takes the same options -- the counting convention, the
batch size, the element types of weights and activations, the memory
semantics, and an optional roofline device -- and validates them once, here,
into a
:class:`ScoringOptions`.  Lower layers receive that object, never loose
positional values.
"""
from __future__ import annotations

import json
import math
import operator
from dataclasses import dataclass, field
from typing import Optional, Union

from . import _core
from .conventions import Convention, get_convention

__all__ = ["DTYPE_SIZES", "Device", "DEVICES", "get_device", "MEMORY_SEMANTICS", "PHASES",
           "CAUSAL_COUNTS", "PHASE_METRICS", "ScoringOptions", "positive_int", "short_repr",
           "META_KEY", "metadata_of_schema"]

#: what ``act_bytes``, ``read_bytes`` and ``write_bytes`` count (README,
#: "Memory metrics"): ``"nasflops"`` -- buffers allocated and bytes every op
#: moves; ``"torchstat"`` -- torchstat 0.0.7's memory(MB), MemRead(B) and
#: MemWrite(B): module calls only, every module output as memory (dropout,
#: in-place ReLU included), reads and writes only where torchstat has a rule
MEMORY_SEMANTICS: tuple[str, ...] = tuple(_core.MEMORY)

#: what one scoring pass is (README, "Language models"), named in every
#: result: ``forward``, one forward pass of the network as given (the
#: default); ``prefill`` and ``decode``, a language model's forward pass over
#: a prompt, or over one new token against its key/value cache -- what the
#: records say, which the phase names; ``train``, forward and backward: every
#: count and byte of a record x 3 (its backward = 2 x its forward), and the
#: training memory (gradients, Adam's state, activations kept)
PHASES: tuple[str, ...] = ("forward", "prefill", "decode", "train")

#: how a causal attention's scores are counted: ``full``, the Lq x Lk
#: rectangle torch computes (FlopCounterMode's count); ``half``, only the
#: keys at or before each query, Lq (Lk - Lq) + Lq (Lq + 1) / 2 (L (L + 1) / 2
#: for a prompt of L: the causal halving of Megatron and MaxText, exact)
CAUSAL_COUNTS: tuple[str, ...] = ("full", "half")

#: result columns a phase adds to the metrics of every result
PHASE_METRICS: dict[str, tuple[str, ...]] = {
    "forward": (),
    "prefill": ("active_params", "kv_cache_bytes"),
    "decode": ("active_params", "kv_cache_bytes"),
    "train": ("active_params", "kv_cache_bytes", "grad_bytes", "optimizer_bytes",
              "saved_act_bytes", "recompute_act_bytes"),
}
assert set(PHASE_METRICS) == set(PHASES)
assert all(m in _core.METRICS for cols in PHASE_METRICS.values() for m in cols)

#: schema-metadata key under which results (Arrow tables, Parquet files)
#: carry their options and provenance, as one JSON object
META_KEY = "nasflops"


def metadata_of_schema(schema) -> dict:
    """The ``nasflops`` metadata dict of a pyarrow schema (empty when absent).

    Metadata that is not a JSON object raises ``ValueError`` (not whatever
    the JSON decoder raises on bytes that are not text)."""
    raw = (schema.metadata or {}).get(META_KEY.encode())
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"the '{META_KEY}' schema metadata is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"the '{META_KEY}' schema metadata is not a JSON object")
    return meta

#: bytes per element of the element types accepted for weights and activations
DTYPE_SIZES = {"fp64": 8, "float64": 8, "fp32": 4, "float32": 4, "fp16": 2,
               "float16": 2, "bf16": 2, "bfloat16": 2, "int8": 1, "uint8": 1,
               "fp8": 1}


def positive_int(value, name: str, minimum: int = 1, maximum: int = (1 << 62)) -> int:
    """``value`` as an int in ``[minimum, maximum]``, or a ``ValueError`` naming ``name``.

    Integers only (``True``, ``1.5`` and ``"3"`` are refused: a count given
    as a float or a string is a mistake, not a request to round).

    >>> positive_int(4, "batch_size")
    4
    >>> positive_int(1.5, "batch_size")
    Traceback (most recent call last):
    ...
    ValueError: batch_size must be an integer >= 1, got 1.5
    """
    if isinstance(value, bool):
        ok = False
    else:
        try:
            value = operator.index(value)
            ok = minimum <= value <= maximum
        except TypeError:
            ok = False
    if not ok:
        bound = f">= {minimum}" if maximum >= (1 << 62) else f"in {minimum}..{maximum:,}"
        raise ValueError(f"{name} must be an integer {bound}, got {short_repr(value)}")
    return int(value)


def short_repr(value, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters, for one-line messages.

    >>> short_repr(10 ** 400)
    '1000000000000000000000000000000000000000... (401 characters)'
    """
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


@dataclass(frozen=True)
class Device:
    """A roofline device profile: latency per layer is
    ``max(ops / peak_ops_per_s, (read_bytes + write_bytes) / bytes_per_s)``.

    ``peak_ops_per_s`` is in the unit of the convention scored with (MAC/s
    for ``macs``, FLOP/s for ``flops``): FLOPS belong to hardware, FLOPs to
    models, and this is where they meet.  Both rates must be positive, finite
    numbers.

    >>> Device("edge", 1e9, 4e9).peak_ops_per_s
    1000000000.0
    """

    name: str
    peak_ops_per_s: float
    bytes_per_s: float
    #: where the figures come from (a datasheet), for the printouts
    source: str = field(default="", compare=False, repr=False)

    def __post_init__(self):
        for attr in ("peak_ops_per_s", "bytes_per_s"):
            v = getattr(self, attr)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"Device {self.name!r}: {attr} must be a positive, finite number, "
                                 f"got {v!r}")
            object.__setattr__(self, attr, float(v))


#: named device profiles: vendor peak FLOP/s (so score them with a FLOP
#: convention such as ``flops`` or ``fma2``) and peak memory bandwidth; fp32
#: peaks, and ``-bf16`` profiles with the dense bf16 tensor-core peak that
#: language models run at
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("a100", 19.5e12, 1555e9,
           "NVIDIA A100 Tensor Core GPU datasheet (A100 40GB SXM): FP32 19.5 TFLOPS, "
           "HBM2 1,555 GB/s"),
    Device("v100", 15.7e12, 900e9,
           "NVIDIA V100 Tensor Core GPU datasheet (V100 SXM2): FP32 15.7 TFLOPS, HBM2 900 GB/s"),
    Device("t4", 8.1e12, 320e9,
           "NVIDIA T4 datasheet: FP32 8.1 TFLOPS; 16 GB GDDR6 on a 256-bit bus at 10 Gbps, "
           "320 GB/s"),
    Device("a100-bf16", 312e12, 1555e9,
           "NVIDIA A100 Tensor Core GPU datasheet (A100 40GB SXM): BF16 Tensor Core 312 TFLOPS "
           "(dense), HBM2 1,555 GB/s"),
    Device("h100-bf16", 989.5e12, 3.35e12,
           "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM): BF16 Tensor Core 1,979 TFLOPS with "
           "sparsity, 989.5 dense; HBM3 3.35 TB/s"),
    Device("jetson-nano", 235.8e9, 25.6e9,
           "NVIDIA Jetson Nano module datasheet: 128 CUDA cores at 921.6 MHz (472 GFLOPS FP16, "
           "235.8 GFLOPS FP32), 64-bit LPDDR4 25.6 GB/s"),
)}


def get_device(name) -> Device:
    """A :class:`Device` itself, or the named profile of :data:`DEVICES`.

    >>> get_device("t4").bytes_per_s
    320000000000.0
    """
    if isinstance(name, Device):
        return name
    try:
        return DEVICES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown device {name!r}; known: {', '.join(DEVICES)}") from None


def dtype_size(name, what: str = "dtype") -> int:
    """Bytes per element of an element type name (``fp32``, ``bf16``, ...)."""
    try:
        return DTYPE_SIZES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; known: {', '.join(DTYPE_SIZES)}") from None


@dataclass(frozen=True)
class ScoringOptions:
    """Validated scoring options, shared by every entry point.

    Build with :meth:`make`; the attributes are then known to be sound.

    Attributes
    ----------
    convention : Convention
        What ``ops`` counts.
    batch_size : int
        Samples per forward pass (N).
    weight_dtype, act_dtype : str
        Element types as given (stored in result metadata).
    weight_bytes, act_bytes : int
        Bytes per weight and per activation element.
    device : Device or None
        Roofline profile, adding ``latency_s`` (:meth:`make` also takes the
        name of one of :data:`DEVICES`).
    fused_attention : bool
        Attention runs fused (FlashAttention-style): its score matrix is
        never materialised, so it adds nothing to the memory metrics.
    memory : str
        Byte semantics, one of :data:`MEMORY_SEMANTICS`.
    phase : str
        One of :data:`PHASES`: ``train`` counts forward + backward and the
        training memory; every phase is named in the results.
    causal : str
        One of :data:`CAUSAL_COUNTS`: how causal attention scores count.

    Examples
    --------
    >>> o = ScoringOptions.make("flops", batch_size=8, act_dtype="bf16")
    >>> o.convention.name, o.batch_size, o.weight_bytes, o.act_bytes, o.memory
    ('flops', 8, 4, 2, 'nasflops')
    >>> ScoringOptions.make("fma2", phase="train").extra_metrics[:2]
    ('active_params', 'kv_cache_bytes')
    """

    convention: Convention
    batch_size: int
    weight_dtype: str
    act_dtype: str
    weight_bytes: int
    act_bytes: int
    device: Optional[Device] = None
    fused_attention: bool = False
    memory: str = "nasflops"
    phase: str = "forward"
    causal: str = "full"

    @classmethod
    def make(cls, convention: Union[str, Convention] = "macs", batch_size: int = 1,
             weight_dtype: str = "fp32", act_dtype: str = "fp32",
             device: Union[None, str, Device] = None, fused_attention: bool = False,
             memory: str = "nasflops", phase: str = "forward",
             causal: str = "full") -> "ScoringOptions":
        """Validate the options; a ``ValueError`` names the bad one.  A
        device is a :class:`Device` or the name of one of :data:`DEVICES`."""
        if isinstance(device, str):
            device = get_device(device)
        if device is not None and not isinstance(device, Device):
            raise TypeError(f"device must be a nasflops.Device or the name of one of "
                            f"nasflops.DEVICES, got {type(device).__name__}")
        if not isinstance(fused_attention, bool):
            raise TypeError(f"fused_attention must be True or False, got {fused_attention!r}")
        if memory not in MEMORY_SEMANTICS:
            raise ValueError(f"unknown memory semantics {memory!r}; known: "
                             f"{', '.join(MEMORY_SEMANTICS)}")
        if phase not in PHASES:
            raise ValueError(f"unknown phase {short_repr(phase)}; known: {', '.join(PHASES)}")
        if causal not in CAUSAL_COUNTS:
            raise ValueError(f"unknown causal attention count {short_repr(causal)}; known: "
                             f"{', '.join(CAUSAL_COUNTS)}")
        # the core multiplies counts by the batch size in int64: 2**31 keeps
        # every realistic product in range and refuses nonsense early
        return cls(get_convention(convention), positive_int(batch_size, "batch_size", 1, 1 << 31),
                   str(weight_dtype), str(act_dtype), dtype_size(weight_dtype, "weight_dtype"),
                   dtype_size(act_dtype, "act_dtype"), device, fused_attention, memory, phase,
                   causal)

    @property
    def with_latency(self) -> bool:
        """Whether results carry a ``latency_s`` column."""
        return self.device is not None

    @property
    def extra_metrics(self) -> tuple[str, ...]:
        """Result columns the phase adds (:data:`PHASE_METRICS`)."""
        return PHASE_METRICS[self.phase]

    def core_args(self) -> tuple:
        """``(weights, batch_size, weight_bytes, act_bytes, fused_attention, memory,
        last_call_only, train, causal_half)`` as the core's ``layer_metrics`` takes them."""
        return (self.convention.weights, self.batch_size, self.weight_bytes, self.act_bytes,
                self.fused_attention, _core.MEMORY[self.memory], self.convention.last_call_only,
                self.phase == "train", self.causal == "half")

    def roofline_args(self) -> tuple[float, float]:
        """``(peak_ops_per_s, bytes_per_s)``, zeros without a device."""
        if self.device is None:
            return 0.0, 0.0
        return self.device.peak_ops_per_s, self.device.bytes_per_s

    def metadata(self) -> dict:
        """The options as stored with results (JSON-able)."""
        d = self.device
        return {
            "convention": self.convention.name,
            "unit": self.convention.unit,
            "batch_size": self.batch_size,
            "weight_dtype": self.weight_dtype,
            "act_dtype": self.act_dtype,
            "weight_bytes_per_element": self.weight_bytes,
            "act_bytes_per_element": self.act_bytes,
            "memory": self.memory,
            "device": None if d is None else {"name": d.name, "peak_ops_per_s": d.peak_ops_per_s,
                                              "bytes_per_s": d.bytes_per_s},
            "fused_attention": self.fused_attention,
            "phase": self.phase,
            "causal": self.causal,
        }
