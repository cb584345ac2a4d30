"""Resource budgets for NAS loops: masks, push-down filters, rejection sampling.

A :class:`Budget` is a set of upper bounds on metrics.  It tests results
(:meth:`Budget.mask`, vectorised), filters a stored dataset
(:meth:`Budget.expression`, pushed down to the Parquet reader), checks one
candidate cheaply (:meth:`Budget.fits`), and draws candidates of a space that
fit (:func:`sample_within`).

Bounds are inclusive (``macs <= max_macs``).  Invalid candidates (``status !=
0``) never fit.  ``max_flops`` bounds the ``ops`` column of results scored
under the convention named by ``flops_convention`` (``"flops"`` by default):
"FLOPs" is not one number, so a budget never compares FLOPs with results
counted another way -- it raises instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

import numpy as np

__all__ = ["Budget", "BudgetSample", "sample_within"]

# budget attribute -> result column
_COLUMNS = (("max_macs", "macs"), ("max_flops", "ops"), ("max_params", "params"),
            ("max_peak_act_bytes", "peak_act_bytes"), ("max_latency", "latency_s"))


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
    flops_convention: str = "flops"
    _limits: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        limits = []
        for attr, col in _COLUMNS:
            v = getattr(self, attr)
            if v is None:
                continue
            if attr == "max_latency":
                v = float(v)
                if not v >= 0:  # also rejects NaN
                    raise ValueError(f"{attr} must be a non-negative number of seconds, got {v!r}")
            else:
                if isinstance(v, float) and not v.is_integer():
                    # counts are integers: x <= 2.5 is x <= 2
                    v = math.floor(v)
                v = int(v)
                if v < 0:
                    raise ValueError(f"{attr} must be >= 0, got {v}")
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
             act_dtype: str = "fp32", device=None) -> bool:
        """Does one candidate fit?  Cheap enough to call in a Python loop.

        ``candidate`` is one architecture (a record array, a
        :class:`~nasflops.Net`, a one-architecture ``SpecBatch``), scored here
        under :attr:`convention` with the given batch size and dtypes, or one
        already-scored result (a one-row ``Scores`` or a mapping of metric
        values).  An invalid architecture raises :class:`~nasflops.SpecError`.
        """
        from . import _core
        from .conventions import get_convention
        from .spec import LAYER_DTYPE, Net, SpecBatch

        records = None
        if isinstance(candidate, Net):
            records = candidate.records
        elif isinstance(candidate, np.ndarray) and candidate.dtype == LAYER_DTYPE:
            records = np.ascontiguousarray(candidate)
        elif isinstance(candidate, SpecBatch):
            if len(candidate) != 1:
                raise ValueError(f"fits takes one architecture, got a batch of {len(candidate)}")
            records = candidate[0]
        if records is None:
            if isinstance(candidate, np.ndarray) and candidate.dtype.names:
                if candidate.size != 1:
                    raise ValueError(f"fits takes one result row, got {candidate.size}; use mask()")
                return bool(self.mask(candidate.reshape(1))[0])
            if isinstance(candidate, Mapping):
                row = {k: np.atleast_1d(v) for k, v in candidate.items() if k != "convention"}
                return bool(self.mask(row, convention=candidate.get("convention"))[0])
            raise TypeError("fits takes one architecture (records, Net, SpecBatch of one) or one "
                            f"result row (Scores row, mapping); got {type(candidate).__name__}")
        if self.max_latency is not None and device is None:
            raise ValueError("max_latency needs a device profile: fits(..., device=nasflops.Device(...))")
        # straight to the core: nasflops.score's generality (lists, chunking,
        # result rows) costs more than scoring one architecture does
        from .scoring import _dtype_size
        conv = get_convention(self.convention)
        metrics = np.empty((1, len(_core.METRICS)), dtype=np.int64)
        status = np.empty(1, dtype=np.int64)
        bad = np.empty(1, dtype=np.int64)
        lat = np.empty(1, dtype=np.float64) if device is not None else None
        offsets = np.array([0, records.shape[0]], dtype=np.int64)
        peak, bw = (float(device.peak_ops_per_s), float(device.bytes_per_s)) if device else (0.0, 0.0)
        _core.score_range(records, offsets, 0, 1, conv.table, int(batch_size),
                          _dtype_size(weight_dtype, "weight_dtype"), _dtype_size(act_dtype, "act_dtype"),
                          metrics, status, bad, peak, bw, lat)
        if status[0]:
            from .scoring import score
            score(records, convention=conv)  # raises SpecError with the explanation
        row = metrics[0]
        for attr, col, v in self._limits:
            value = lat[0] if col == "latency_s" else row[_METRIC_INDEX[col]]
            if value > v:
                return False
        return True


def _metric_index() -> dict:
    from . import _core
    return {m: i for i, m in enumerate(_core.METRICS)}


_METRIC_INDEX = _metric_index()


def _convention_of(results) -> Optional[str]:
    conv = getattr(results, "convention", None)
    if conv:
        return conv
    schema = getattr(results, "schema", None)
    if schema is not None and not isinstance(results, np.ndarray):
        from .storage import _meta_of_schema
        return _meta_of_schema(schema).get("convention")
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
            hint = " (score with device=...)" if name == "latency_s" else ""
            raise KeyError(f"{why} needs the {name!r} column, absent from these results{hint}")
        return get(name)
    return cols


# ----------------------------------------------------------------- sampling
@dataclass
class BudgetSample:
    """Candidates drawn by :func:`sample_within`.

    Attributes
    ----------
    arch_id : int64 array
        Positions of the candidates in the space's seeded sample stream
        (``space.sample_columns(1, seed, start=arch_id[i])`` is candidate i).
    columns : dict of arrays
        Their native encoding, columnar.
    batch : SpecBatch
        Their layer records (encoded on first access, then kept).
    scores : Scores
        Their results (convention: the budget's).
    draws : int
        Candidates sampled to find them.
    """

    arch_id: np.ndarray
    columns: dict
    scores: Any
    draws: int
    space: Any = field(repr=False, default=None)
    _batch: Any = field(repr=False, default=None)

    @property
    def batch(self):
        """The candidates' layer records (a :class:`~nasflops.SpecBatch`)."""
        # encoded again on demand: keeping every accepted candidate's records
        # while sampling would cost hundreds of bytes per layer
        if self._batch is None:
            from .spec import SpecBatch
            self._batch = (self.space.encode_columns(self.columns) if len(self.arch_id)
                           else SpecBatch.from_list([]))
        return self._batch

    def __len__(self) -> int:
        return len(self.arch_id)

    @property
    def acceptance(self) -> float:
        """Fraction of sampled candidates that fit."""
        return len(self.arch_id) / self.draws if self.draws else float("nan")

    @property
    def natives(self) -> list:
        """The candidates as the space's Python natives."""
        return self.space.from_columns(self.columns)


def _encode_score(space, cols, opts):
    from .scoring import score
    return cols, score(space.encode_columns(cols), **opts)


def sample_within(space, budget: Budget, n: int, seed: int = 0, *, batch_size: int = 1,
                  weight_dtype: str = "fp32", act_dtype: str = "fp32", device=None,
                  max_draws: Optional[int] = None, n_jobs: Optional[int] = 1) -> BudgetSample:
    """Draw ``n`` candidates of ``space`` that fit ``budget`` (rejection sampling).

    The result is the first ``n`` fitting candidates of the space's seeded
    sample stream, so it depends only on ``(space, budget, n, seed)`` and the
    scoring options.  Candidates are encoded and scored in vectorised blocks
    growing from a few hundred to 4096, so small ``n`` stays cheap and large
    ``n`` runs at core speed.

    Parameters
    ----------
    space : SearchSpace or str
        The space (or its registered name).
    budget : Budget
        Bounds; scored under ``budget.convention``.
    n : int
        Candidates wanted.
    seed : int
        Seed of the sample stream.
    batch_size, weight_dtype, act_dtype, device
        Scoring options (memory budgets depend on them; ``max_latency``
        needs ``device``).
    max_draws : int, optional
        Give up after sampling this many candidates (default
        ``max(1_000_000, 100 * n)``).
    n_jobs : int or None
        Threads scoring each block (joblib's convention).

    Notes
    -----
    Every call draws at least one whole sampling block (65536 natives, the
    unit of the seeded stream), about 10-20 ms for OFA-MBv3 on one core.
    A NAS loop wanting one candidate at a time should draw a few thousand
    in one call and iterate over them; to test a candidate it built itself,
    :meth:`Budget.fits` costs microseconds.

    Raises
    ------
    ValueError
        When fewer than ``n`` candidates fit within ``max_draws`` draws, naming
        the budget, how many fitted and the smallest value of each bounded
        metric seen -- typically because the budget is below the space's
        smallest candidate.

    Examples
    --------
    >>> import nasflops                                        # doctest: +SKIP
    >>> s = nasflops.sample_within(nasflops.get_space("ofa-mbv3"),
    ...                            nasflops.Budget(max_macs=300_000_000), 10, seed=0)  # doctest: +SKIP
    >>> bool((s.scores["macs"] <= 300_000_000).all())            # doctest: +SKIP
    True
    """
    from .scoring import Scores
    from .search_spaces.base import SAMPLE_BLOCK, take_columns

    if isinstance(space, str):
        from .search_spaces import get_space
        space = get_space(space)
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if budget.max_latency is not None and device is None:
        raise ValueError("max_latency needs a device profile: sample_within(..., device=nasflops.Device(...))")
    max_draws = max(1_000_000, 100 * n) if max_draws is None else int(max_draws)
    if max_draws < 1:
        raise ValueError(f"max_draws must be >= 1, got {max_draws}")

    ids, col_parts, score_parts = [], [], []
    found = draws = 0
    smallest: dict[str, Any] = {}
    from joblib import Parallel, delayed, effective_n_jobs

    from .pipeline import ENCODE_BLOCK
    jobs = max(1, effective_n_jobs(n_jobs))
    opts = dict(convention=budget.convention, batch_size=batch_size, weight_dtype=weight_dtype,
                act_dtype=act_dtype, device=device, errors="status", n_jobs=1)
    # encoding is fastest in blocks of a few thousand (cache-sized records)
    step = min(ENCODE_BLOCK, max(256, 4 * n))
    block = 0
    with Parallel(n_jobs=n_jobs, prefer="threads") as parallel:
        while found < n and draws < max_draws:
            # natives are drawn a whole block at a time (that is how the seeded
            # stream is defined); encoding and scoring, the costly part, go in
            # growing steps so that n=1 does not score 65536 candidates
            block_cols = space.sample_columns(SAMPLE_BLOCK, seed, block * SAMPLE_BLOCK)
            pos = 0
            while pos < SAMPLE_BLOCK and found < n and draws < max_draws:
                # up to `jobs` consecutive steps at once; they are consumed in
                # stream order and the ones past the n-th fit are discarded, so
                # the answer (and `draws`) does not depend on n_jobs
                steps, p = [], pos
                while len(steps) < jobs and p < SAMPLE_BLOCK and draws + (p - pos) < max_draws:
                    m = min(step, SAMPLE_BLOCK - p, max_draws - draws - (p - pos))
                    steps.append((p, p + m))
                    p += m
                    step = min(step * 4, ENCODE_BLOCK)
                if len(steps) == 1:
                    results = [_encode_score(space, take_columns(block_cols, slice(*steps[0])), opts)]
                else:
                    results = parallel(delayed(_encode_score)(
                        space, take_columns(block_cols, slice(lo, hi)), opts) for lo, hi in steps)
                for (lo, hi), (cols, res) in zip(steps, results):
                    if found >= n:
                        break
                    ok = budget.mask(res)
                    valid = res["status"] == 0
                    if valid.any():
                        for _, col, _v in budget._limits:
                            low = res[col][valid].min()
                            smallest[col] = low if col not in smallest else min(smallest[col], low)
                    idx = np.flatnonzero(ok)[: n - found]
                    if idx.size:
                        ids.append(block * SAMPLE_BLOCK + lo + idx)
                        col_parts.append(take_columns(cols, idx))
                        score_parts.append(np.asarray(res)[idx])
                        found += idx.size
                    draws += hi - lo
                pos = p
            block += 1

    if found < n:
        seen = ", ".join(f"{c}={int(v):,}" if c != "latency_s" else f"{c}={float(v):.3g}"
                         for c, v in smallest.items()) or "no valid candidate"
        if found == 0:
            raise ValueError(f"budget unreachable in {space.name}: none of {draws:,} sampled "
                             f"candidates (seed {seed}) fits {budget}; smallest seen: {seen}. "
                             "Loosen the budget or raise max_draws.")
        raise ValueError(f"only {found} of the {n} requested candidates of {space.name} fit {budget} "
                         f"in {draws:,} draws (acceptance {found / draws:.2e}); raise max_draws "
                         "or loosen the budget")

    from .search_spaces.base import concat_columns
    if found:
        arch_id = np.concatenate(ids).astype(np.int64)
        columns = concat_columns(col_parts)
        rows = np.concatenate(score_parts)
    else:
        from .scoring import RESULT_DTYPE
        arch_id = np.zeros(0, dtype=np.int64)
        columns = take_columns(space.sample_columns(1, seed), slice(0, 0))
        fields = list(RESULT_DTYPE.descr) + ([("latency_s", "<f8")] if device is not None else [])
        rows = np.empty(0, dtype=fields)
    scores = rows.view(Scores)
    scores.convention = budget.convention
    from .conventions import get_convention
    scores.unit = get_convention(budget.convention).unit
    scores.batch_size, scores.weight_dtype, scores.act_dtype = int(batch_size), weight_dtype, act_dtype
    return BudgetSample(arch_id=arch_id, columns=columns, scores=scores, draws=draws, space=space)
