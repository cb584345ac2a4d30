"""Resource budgets for NAS loops: masks, push-down filters, one-candidate checks.

A :class:`Budget` is a set of upper bounds on metrics.  It tests results
(:meth:`Budget.mask`, vectorised), filters a stored dataset
(:meth:`Budget.expression`, pushed down to the Parquet reader) and checks one
candidate cheaply (:meth:`Budget.fits`).  Drawing the candidates of a space
that fit is the space's job (:meth:`SearchSpace.sample_within`).

Bounds are inclusive (``macs <= max_macs``).  Invalid candidates (``status !=
0``) never fit.  ``max_flops`` bounds the ``ops`` column of results scored
under the convention named by ``flops_convention`` (``"flops"`` by default):
"FLOPs" is not one number, so a budget never compares FLOPs with results
counted another way -- it raises instead.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from .engine import CORE_METRICS, RawScores, score_into
from .options import ScoringOptions, metadata_of_schema, short_repr
from .scoring import MissingColumnError, SpecError, explain
from .spec import LAYER_DTYPE, Net, SpecBatch

__all__ = ["Budget"]

# budget attribute -> result column
_COLUMNS = (("max_macs", "macs"), ("max_flops", "ops"), ("max_params", "params"),
            ("max_peak_act_bytes", "peak_act_bytes"), ("max_latency", "latency_s"),
            ("max_active_params", "active_params"), ("max_kv_cache_bytes", "kv_cache_bytes"))


#: counts are int64: a bound above this is refused rather than overflowing a filter
_INT64_MAX = (1 << 63) - 1


def _bound(attr: str, v):
    """A budget bound checked: a count in ``0..2**63 - 1`` (a fractional float
    is floored: counts are integers, so x <= 2.5 is x <= 2), or for
    ``max_latency`` a non-negative number of seconds.  ``ValueError`` naming
    the bound otherwise (bools, strings, NaN, infinities, out of range)."""
    number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
    if attr == "max_latency":
        if not number or not float(v) >= 0:  # also rejects NaN
            raise ValueError(f"{attr} must be a non-negative number of seconds, got {short_repr(v)}")
        return float(v)
    given = v
    if number and isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            number = False
        else:
            v = math.floor(v)
    if not number or not 0 <= int(v) <= _INT64_MAX:
        raise ValueError(f"{attr} must be an integer >= 0 and <= {_INT64_MAX:,} (counts are "
                         f"int64), got {short_repr(given)}")
    return int(v)


@dataclass(frozen=True)
class Budget:
    """Upper bounds on a candidate's cost (inclusive); ``None`` = unbounded.

    Parameters
    ----------
    max_macs : int, optional
        Multiply-accumulates (``macs`` column).
    max_flops : int, optional
        FLOPs: the ``ops`` column of results scored under ``flops_convention``.
    max_params : int, optional
        Parameters.
    max_peak_act_bytes : int, optional
        Peak live activation memory, bytes (depends on batch size and
        activation dtype of the results).
    max_latency : float, optional
        Roofline latency, seconds (``latency_s``; results need a device).
    max_active_params : int, optional
        Parameters one token touches (a mixture of experts' routed experts
        only; results of a language-model phase).
    max_kv_cache_bytes : int, optional
        Bytes the key/value caches hold after the pass (results of a
        language-model phase: decode at a context, or prefill of a prompt).
    flops_convention : str
        The convention ``max_flops`` is counted in.

    Examples
    --------
    >>> import nasflops
    >>> from nasflops.budget import Budget
    >>> net = nasflops.Net(3, 8, 8); _ = net.conv(net.input, 4, 3, padding=1)
    >>> Budget(max_macs=10_000).fits(net.records)
    True
    >>> Budget(max_macs=6_000, max_params=200).mask(nasflops.score(net)).tolist()
    [False]
    """

    max_macs: Optional[int] = None
    max_flops: Optional[int] = None
    max_params: Optional[int] = None
    max_peak_act_bytes: Optional[int] = None
    max_latency: Optional[float] = None
    max_active_params: Optional[int] = None
    max_kv_cache_bytes: Optional[int] = None
    flops_convention: str = "flops"
    _limits: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        limits = []
        for attr, col in _COLUMNS:
            v = getattr(self, attr)
            if v is None:
                continue
            v = _bound(attr, v)
            object.__setattr__(self, attr, v)
            limits.append((attr, col, v))
        object.__setattr__(self, "_limits", tuple(limits))

    # ----------------------------------------------------------- description
    @property
    def limits(self) -> dict:
        """``{result column: bound}`` of the bounds set."""
        return {col: v for _, col, v in self._limits}

    @property
    def convention(self) -> str:
        """Convention to score candidates in for this budget."""
        return self.flops_convention if self.max_flops is not None else "macs"

    def __str__(self) -> str:
        parts = [f"{a}={v:,}" if isinstance(v, int) else f"{a}={v:g}" for a, _, v in self._limits]
        return f"Budget({', '.join(parts) or 'unbounded'})"

    def _check_convention(self, convention: Optional[str]) -> None:
        if self.max_flops is None:
            return
        if convention is None:
            raise ValueError("max_flops needs results that name their convention (nasflops.Scores, a "
                             "dataset with nasflops metadata) or an explicit convention=...")
        if convention != self.flops_convention:
            raise ValueError(f"max_flops is counted under convention {self.flops_convention!r} but "
                             f"these results' ops are {convention!r}; score under "
                             f"{self.flops_convention!r} or set Budget(flops_convention=...)")

    # ------------------------------------------------------------- testing
    def mask(self, results, convention: Optional[str] = None) -> np.ndarray:
        """Boolean mask of the rows of ``results`` that fit (vectorised).

        Parameters
        ----------
        results : Scores, structured array, pyarrow Table/RecordBatch or mapping
            Anything with the result columns; ``status`` is honoured when present.
        convention : str, optional
            Convention of ``results``' ``ops`` (taken from the results when
            they record it: ``Scores.convention`` or ``nasflops`` metadata).
        """
        if convention is None:
            convention = _convention_of(results)
        self._check_convention(convention)
        cols = _column_getter(results)
        status = cols("status", required=False)
        if status is not None:
            ok = np.asarray(status) == 0
        else:
            ok = np.ones(_n_rows(results), dtype=bool)
        for attr, col, v in self._limits:
            values = cols(col, required=True, why=attr)
            ok &= np.asarray(values) <= v
        return ok

    def expression(self, metadata=None):
        """The budget as a ``pyarrow.compute.Expression`` for push-down filters.

        ``metadata`` is the dataset's ``nasflops`` metadata dict (or a
        convention name) used to check ``max_flops``.

        Examples
        --------
        >>> from nasflops.budget import Budget
        >>> str(Budget(max_macs=5).expression())
        '((status == 0) and (macs <= 5))'
        """
        import pyarrow.compute as pc

        conv = metadata.get("convention") if isinstance(metadata, Mapping) else metadata
        self._check_convention(conv)
        expr = pc.field("status") == 0
        for _, col, v in self._limits:
            expr = expr & (pc.field(col) <= v)
        return expr

    def fits(self, candidate, batch_size: int = 1, weight_dtype: str = "fp32",
             act_dtype: str = "fp32", device=None, phase: str = "forward",
             causal: str = "full") -> bool:
        """Does one candidate fit?  Cheap enough to call in a Python loop.

        ``candidate`` is one architecture (a record array, a
        :class:`~nasflops.Net`, a one-architecture ``SpecBatch``), scored here
        under :attr:`convention` with the given batch size, dtypes, phase and
        causal count, or one already-scored result (a one-row ``Scores`` or a
        mapping of metric values).  An invalid architecture raises
        :class:`~nasflops.SpecError`.
        """
        if isinstance(candidate, Mapping):           # one scored result, as a mapping
            row = {k: np.atleast_1d(v) for k, v in candidate.items() if k != "convention"}
            return bool(self.mask(row, convention=candidate.get("convention"))[0])
        if isinstance(candidate, Net):
            candidate = candidate.records
        elif isinstance(candidate, SpecBatch):
            if len(candidate) != 1:
                raise ValueError(f"fits takes one architecture, got a batch of {len(candidate)}")
            candidate = candidate[0]
        if not isinstance(candidate, np.ndarray) or not candidate.dtype.names:
            raise TypeError("fits takes one architecture (records, Net, SpecBatch of one) or one "
                            f"result row (Scores row, mapping); got {type(candidate).__name__}")
        if candidate.dtype != LAYER_DTYPE:           # one scored result row
            if candidate.size != 1:
                raise ValueError(f"fits takes one result row, got {candidate.size}; use mask()")
            return bool(self.mask(candidate.reshape(1))[0])
        records = np.ascontiguousarray(candidate)
        if self.max_latency is not None and device is None:
            raise ValueError("max_latency needs a device profile: fits(..., device=nasflops.Device(...))")
        # straight to the engine: nasflops.score's generality (lists, chunking,
        # result rows) costs more than scoring one architecture does
        opts = _options(self.convention, batch_size, weight_dtype, act_dtype, device, False,
                        "nasflops", phase, causal)
        raw = score_into(records, np.array([0, records.shape[0]], dtype=np.int64), opts,
                         RawScores.allocate(1, opts.with_latency))
        if raw.status[0]:
            bad, st = int(raw.bad_layer[0]), int(raw.status[0])
            raise SpecError(None, bad, st, explain(records, bad, st, opts))
        row = raw.metrics[0]
        for attr, col, v in self._limits:
            value = raw.latency[0] if col == "latency_s" else row[_METRIC_INDEX[col]]
            if value > v:
                return False
        return True


_METRIC_INDEX = {m: i for i, m in enumerate(CORE_METRICS)}


@functools.lru_cache(maxsize=64)
def _options(*args) -> ScoringOptions:
    # fits() runs in tight loops: validate each combination of options once
    return ScoringOptions.make(*args)


def _convention_of(results) -> Optional[str]:
    conv = getattr(results, "convention", None)
    if conv:
        return conv
    schema = getattr(results, "schema", None)
    if schema is not None and not isinstance(results, np.ndarray):
        return metadata_of_schema(schema).get("convention")
    if isinstance(results, Mapping):
        c = results.get("convention")
        return c if isinstance(c, str) else None
    return None


def _n_rows(results) -> int:
    if isinstance(results, Mapping):
        return len(next(v for v in results.values() if not isinstance(v, str)))
    if hasattr(results, "num_rows"):
        return results.num_rows
    return len(results)


def _column_getter(results):
    if isinstance(results, np.ndarray) and results.dtype.names:
        names = results.dtype.names
        get = results.__getitem__
    elif isinstance(results, Mapping):
        names = tuple(results)
        get = results.__getitem__
    elif hasattr(results, "column_names"):  # pyarrow Table / RecordBatch
        names = tuple(results.column_names)

        def get(c):
            col = results.column(c)
            return col.to_numpy() if not hasattr(col, "combine_chunks") else col.to_numpy()
    else:
        raise TypeError("results must be nasflops.Scores, a structured array, a pyarrow Table/"
                        f"RecordBatch or a mapping of arrays; got {type(results).__name__}")

    def cols(name, required, why=""):
        if name not in names:
            if not required:
                return None
            hint = (" (score with device=...)" if name == "latency_s" else
                    " (score a language-model phase: prefill, decode or train)"
                    if name in ("active_params", "kv_cache_bytes") else "")
            raise MissingColumnError(f"{why} needs the {name!r} column, absent from these "
                                     f"results{hint}")
        return get(name)
    return cols
