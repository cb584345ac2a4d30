"""The contract every search space follows.

A space has a *native encoding* (what its paper and benchmark call an
architecture), handled as columns (:mod:`.columns`).  A subclass implements:

``native_columns``
    ``{column_name: description}`` of its columnar native form.
``_sample_block(rng, n) -> columns``
    ``n`` random candidates drawn with ``rng`` (a ``numpy.random.Generator``),
    vectorised.
``encode_columns(columns) -> SpecBatch``
    vectorised encoder.
``to_columns(natives) -> columns`` / ``from_columns(columns) -> list``
    between Python native objects and columns (validating, with errors that
    name the candidate and the field).
``arrow_columns(columns) -> dict[str, pyarrow.Array]``
    the native columns as stored in Parquet, under the native field names.

and, where the records determine the native, ``decode(batch) -> columns``
(records back to natives, verified by re-encoding);
and, for finite spaces small enough to list, ``size`` and
``_enumerate_block(start, stop) -> columns``.

Sampling is reproducible whatever the chunking: candidates are drawn in fixed
blocks of :data:`SAMPLE_BLOCK`, block ``b`` from its own generator seeded by
``(seed, b)``, so ``sample(n, seed, start=k)`` returns candidates ``k ..
k + n - 1`` of one infinite seeded stream.
"""
from __future__ import annotations

import abc
import threading
import weakref
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from nasflops.budget import Budget
from nasflops.engine import RawScores, score_into
from nasflops.options import ScoringOptions, positive_int
from nasflops.scoring import Scores
from nasflops.spec import SpecBatch
from . import profiles as _profiles
from .columns import SAMPLE_BLOCK, NativeError, concat_columns, n_rows, take_columns
from .sampling import BudgetSample, sample_within
from .tables import NotDecomposable, SlotTable, Trellis, metric_column, score_slots

__all__ = ["SearchSpace", "SAMPLE_BLOCK", "NativeError", "NotDecomposable", "make_divisible"]

# recently drawn blocks per space (outside the instance: never pickled with it)
_BLOCK_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BLOCK_LOCK = threading.Lock()
# block tables and trellises per space and scoring options (idem)
_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TABLE_LOCK = threading.RLock()
#: sample_within methods
METHODS = ("auto", "exact", "rejection")


def _opts_key(opts: ScoringOptions) -> tuple:
    return (opts.convention.name, opts.convention.weights.tobytes(), opts.batch_size,
            opts.weight_bytes, opts.act_bytes)


def make_divisible(v: float, divisor: int, min_val: Optional[int] = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never below 90 % of ``v``.

    The TensorFlow MobileNet rule, as OFA (``ofa.utils.make_divisible``) and
    torchvision (``_make_divisible``) write it.

    >>> make_divisible(16 * 1.2, 8), make_divisible(112 * 1.2, 8)
    (24, 136)
    """
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


class SearchSpace(abc.ABC):
    """A NAS search space: natives in, :class:`~nasflops.SpecBatch` out."""

    #: registry name (``get_space(name)``)
    name: str = ""
    #: paper the space comes from, and the figures it must reproduce
    reference: str = ""
    #: ``{column: description}`` of the columnar native encoding
    native_columns: Mapping[str, str] = {}
    #: one-line description of the native form shown to users
    native_example: str = ""
    #: the phase its records are the workload of (``nasflops.options.PHASES``):
    #: ``forward`` for a network scored as given; a language-model space is
    #: built for ``prefill``, ``decode`` or ``train``, and is scored in it
    phase: str = "forward"

    # -- to implement ---------------------------------------------------------
    @abc.abstractmethod
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` random candidates as columns."""

    @abc.abstractmethod
    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        """Vectorised encoding of columnar natives into layer records."""

    @abc.abstractmethod
    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        """Validate Python natives and turn them into columns."""

    @abc.abstractmethod
    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        """Columns back to Python natives."""

    @abc.abstractmethod
    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """Native columns as pyarrow arrays, under the native field names."""

    @property
    def size(self) -> Optional[int]:
        """Number of distinct candidates (``None`` when unbounded)."""
        return None

    def _enumerate_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} cannot be enumerated")

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Native columns back from records this space encoded.

        Spaces that can read their natives off the records implement it and
        verify the result by re-encoding; a batch that is not from the space
        raises :class:`NativeError` naming the first such candidate.
        """
        raise NotImplementedError(f"{self.name} has no decoder: keep the native columns "
                                  "(sample_columns / to_columns) beside the batch")

    def _verify_decoded(self, batch: SpecBatch, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Re-encode decoded columns; raise NativeError at the first candidate that differs."""
        again = self.encode_columns(cols)
        same_len = np.array_equal(again.lengths, batch.lengths)
        if same_len and np.array_equal(again.records, batch.records):
            return dict(cols)
        for i in range(len(batch)):  # only on failure: find the culprit
            if not np.array_equal(again[i], batch[i]):
                raise NativeError(self.name, i, "records", "not an architecture of this space "
                                  f"({self!r}): re-encoding what was read differs")
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def params(self) -> dict:
        """Parameters the space was built with (stored in result metadata)."""
        return {}

    # -- decomposable spaces (block tables, trellis) -----------------------------
    #: why exact profiles do not apply, for spaces without a trellis
    not_decomposable: str = ("its cost is not a sum of independent per-block choices, so "
                             "exact profiles, counts and sampling do not apply")

    def _slot_table(self, opts: ScoringOptions) -> Optional[SlotTable]:
        """The block table of a template-based space (None: no table)."""
        return None

    def _slot_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(template id per slot, group)`` of validated columns (spaces with a table)."""
        raise NotImplementedError

    def _trellis(self, opts: ScoringOptions, metrics: tuple) -> Optional[Trellis]:
        """The space's trellis, exact for ``metrics`` where it can be (None: not decomposable)."""
        return None

    # -- provided -------------------------------------------------------------
    @property
    def enumerable(self) -> bool:
        """True when :meth:`enumerate` lists the whole space."""
        return type(self)._enumerate_block is not SearchSpace._enumerate_block

    def encode(self, natives: Sequence[Any]) -> SpecBatch:
        """Encode Python natives (e.g. NB201 strings) into a batch."""
        return self.encode_columns(self.to_columns(natives))

    def sample_columns(self, n: int, seed: int = 0, start: int = 0) -> dict[str, np.ndarray]:
        """Candidates ``start .. start + n - 1`` of the seeded stream, as columns."""
        if n < 0 or start < 0:
            raise ValueError("n and start must be >= 0")
        first, last = start // SAMPLE_BLOCK, (start + max(n, 1) - 1) // SAMPLE_BLOCK
        cols = concat_columns([self._sampled_block(int(seed), b) for b in range(first, last + 1)])
        lo = start - first * SAMPLE_BLOCK
        return take_columns(cols, slice(lo, lo + n))

    def _sampled_block(self, seed: int, b: int) -> dict[str, np.ndarray]:
        """Block ``b`` of the stream; the last few are kept, so consecutive small
        chunks of one block draw it once."""
        key = (seed, b)
        with _BLOCK_LOCK:
            cache = _BLOCK_CACHE.setdefault(self, {})
            cols = cache.get(key)
        if cols is None:
            cols = self._sample_block(np.random.default_rng([seed, b]), SAMPLE_BLOCK)
            for v in cols.values():
                v.setflags(write=False)
            with _BLOCK_LOCK:
                if len(cache) >= 2:  # a chunk straddles at most two blocks
                    cache.pop(next(iter(cache)))
                cache[key] = cols
        return cols

    def sample(self, n: int, seed: int = 0, start: int = 0) -> SpecBatch:
        """``n`` random candidates (vectorised; same seed, same candidates)."""
        return self.encode_columns(self.sample_columns(n, seed, start))

    def enumerate_columns(self, start: int = 0, stop: Optional[int] = None) -> dict[str, np.ndarray]:
        """Candidates ``start .. stop - 1`` of the space's fixed enumeration order."""
        size = self.size
        stop = size if stop is None else min(stop, size)
        return self._enumerate_block(start, stop)

    def enumerate(self, start: int = 0, stop: Optional[int] = None) -> SpecBatch:
        """Every candidate (or a range of them), in a fixed order."""
        return self.encode_columns(self.enumerate_columns(start, stop))

    def sample_within(self, budget, n: int, seed: int = 0, method: str = "auto",
                      over: str = "encodings", start: int = 0, **kwargs) -> BudgetSample:
        """``n`` candidates within ``budget``.

        Parameters
        ----------
        budget : Budget
            Upper bounds (inclusive).
        n, seed : int
            How many, and the seed of the stream they come from.
        method : {"auto", "exact", "rejection"}
            ``"exact"``: independent uniform draws among the candidates
            within the budget, by unranking paths of the space's trellis
            (:func:`.profiles.sample_exact`): no rejection, so a 1e-6 tail
            costs what the median does; candidate ``i`` is draw ``start + i``
            of a seeded stream.  ``"rejection"``: the first ``n`` fitting
            candidates of the space's sample stream
            (:func:`.sampling.sample_within`; keyword arguments
            ``max_draws``, ``n_jobs``, ``device``).  ``"auto"`` (default):
            exact where the space and the budget decompose, else rejection.
        over : {"encodings", "networks"}
            Exact draws are uniform over native encodings (the distribution
            :meth:`sample` draws from, restricted to the budget) or over
            distinct networks.
        start : int
            First draw of the exact stream (chunked callers).
        batch_size, weight_dtype, act_dtype
            Scoring options (keyword arguments).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if method != "rejection":
            try:
                return self._sample_exact(budget, n, seed, over, start, **kwargs)
            except NotDecomposable:
                if method == "exact":
                    raise
        if start:
            raise ValueError("start is for method='exact'")
        return sample_within(self, budget, n, seed, **kwargs)

    def _sample_exact(self, budget, n: int, seed: int, over: str, start: int,
                      batch_size: int = 1, weight_dtype: str = "fp32", act_dtype: str = "fp32",
                      device=None, **rest) -> BudgetSample:
        """``sample_within(method="exact")``; NotDecomposable where it does not apply."""
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
        if device is not None or rest.keys() - {"n_jobs", "max_draws"}:
            raise NotDecomposable("exact sampling takes no device (latency is not decomposable)")
        opts = ScoringOptions.make(budget.convention, batch_size, weight_dtype, act_dtype)
        cols, within = self.exact_columns(budget, n, seed, over, start, opts)
        raw = self.score_columns_raw(cols, opts)
        return BudgetSample(arch_id=np.arange(start, start + n, dtype=np.int64), columns=cols,
                            scores=Scores.from_raw(raw, opts), draws=n, space=self,
                            method="exact", within=within)

    def check_exact(self, budget, opts: Optional[ScoringOptions] = None) -> None:
        """Raise :class:`NotDecomposable` unless exact answers exist for ``budget``."""
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
        self.trellis(opts or ScoringOptions.make(budget.convention), _profiles.budget_metrics(budget))

    def exact_columns(self, budget, n: int, seed: int = 0, over: str = "encodings", start: int = 0,
                      opts: Optional[ScoringOptions] = None) -> tuple[dict, int]:
        """Draws ``start .. start + n - 1`` of the exact stream within ``budget``
        (see :meth:`sample_within`), as native columns, and the exact number
        of candidates within the budget."""
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
        n, seed, start = (positive_int(v, k, 0) for v, k in ((n, "n"), (seed, "seed"),
                                                             (start, "start")))
        opts = opts or ScoringOptions.make(budget.convention)
        trellis = self.trellis(opts, _profiles.budget_metrics(budget))
        return _profiles.sample_exact(self, trellis, budget, n, seed, over, start)

    # -- tables, profiles ----------------------------------------------------------
    def _cached(self, kind: str, opts: ScoringOptions, build):
        key = (kind,) + _opts_key(opts)
        with _TABLE_LOCK:
            cache = _TABLES.setdefault(self, {})
            if key not in cache:
                cache[key] = build()
            return cache[key]

    def block_table(self, opts: Optional[ScoringOptions] = None) -> SlotTable:
        """What every block template adds to every metric (``tables.py``), built
        once per scoring options.  Raises :class:`NotDecomposable` for spaces
        without one."""
        opts = opts or ScoringOptions.make()
        table = self._cached("table", opts, lambda: self._slot_table(opts))
        if table is None:
            raise NotDecomposable(f"{self.name}: {self.not_decomposable}")
        return table

    def score_columns_raw(self, cols: Mapping[str, np.ndarray], opts: ScoringOptions) -> RawScores:
        """Scores of native columns: from the block table where it answers for
        every candidate (equal to the record core's, metric for metric),
        else by encoding and the record core."""
        return self.score_columns_counted(cols, opts)[0]

    def score_columns_counted(self, cols: Mapping[str, np.ndarray],
                              opts: ScoringOptions) -> tuple[RawScores, int]:
        """:meth:`score_columns_raw` and the most layer records one candidate
        was encoded into (0 when the block table answered: nothing was
        encoded), which a streaming caller sizes its next block by
        (:func:`nasflops.engine.encode_step`)."""
        try:
            # tables hold forward passes without latency; other scoring: the core
            table = (self.block_table(opts) if not opts.with_latency and opts.phase == "forward"
                     else None)
        except NotDecomposable:
            table = None
        if table is not None:
            tids, groups = self._slot_ids(cols)
            raw = score_slots(table, tids, groups)
            if raw is not None:
                return raw, 0
        specs = self.encode_columns(cols)
        n = n_rows(cols)
        if len(specs) != n:
            raise ValueError(f"{self.name}: encode_columns returned {len(specs)} architectures "
                             f"for {n} candidates")
        raw = score_into(specs.records, specs.offsets, opts, RawScores.allocate(n, opts.with_latency))
        return raw, int(specs.lengths.max()) if n else 0

    def trellis(self, opts: Optional[ScoringOptions] = None, metrics: tuple = ()) -> Trellis:
        """The space's choices as a :class:`~.tables.Trellis` whose values
        count under ``opts``, exact for ``metrics``; raises
        :class:`NotDecomposable` (saying why) where there is none."""
        opts = opts or ScoringOptions.make()
        metrics = tuple(sorted(set(metrics)))
        tr = self._cached(("trellis",) + metrics, opts, lambda: self._trellis(opts, metrics))
        if tr is None:
            raise NotDecomposable(f"{self.name}: {self.not_decomposable}")
        tr.check(metrics)
        return tr

    def profile(self, metric: str = "macs", convention: str = "macs", by: Optional[str] = None,
                over: str = "networks", batch_size: int = 1, weight_dtype: str = "fp32",
                act_dtype: str = "fp32", n_jobs: int = 1) -> "_profiles.Profile":
        """The exact distribution of ``metric`` over the whole space.

        Parameters
        ----------
        metric : str
            A ``score`` column: ``ops`` (under ``convention``), ``macs``,
            ``params``, ``weight_bytes``, ``act_bytes``, ``peak_act_bytes``,
            ``read_bytes``, ``write_bytes``.
        convention, batch_size, weight_dtype, act_dtype
            Scoring options.
        by : str, optional
            The group field to present it by (``"r"``); per-group answers
            are always available (``group=`` arguments).
        over : {"networks", "encodings"}
            Count distinct networks (``size``) or native encodings.
        n_jobs : int
            Threads building the groups' distributions.

        Returns
        -------
        Profile
            Exact counts (Python ints), CDF, histograms, quantiles, mean, and
            the minimum and maximum with one architecture each.

        Raises
        ------
        NotDecomposable
            For spaces without a block decomposition (the zoo), saying so.

        Examples
        --------
        >>> from nasflops.search_spaces import get_space
        >>> p = get_space("nb201").profile("params")
        >>> p.total, p.min.value, p.max.value
        (15625, 73306, 1531546)
        """
        metric_column(metric)
        opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype)
        return _profiles.profile(self, self.trellis(opts, (metric,)), metric, over, by, n_jobs)

    def count_within(self, budget, over: str = "networks", batch_size: int = 1,
                     weight_dtype: str = "fp32", act_dtype: str = "fp32") -> "_profiles.Within":
        """The exact number of candidates within ``budget`` (:class:`~.profiles.Within`)."""
        if not isinstance(budget, Budget):
            raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
        opts = ScoringOptions.make(budget.convention, batch_size, weight_dtype, act_dtype)
        tr = self.trellis(opts, _profiles.budget_metrics(budget))
        return _profiles.count_within(self, tr, budget, over)

    def pareto_front(self, x: str = "macs", y: str = "params", over: str = "networks",
                     convention: str = "macs", batch_size: int = 1, weight_dtype: str = "fp32",
                     act_dtype: str = "fp32") -> list:
        """The exact Pareto front of ``(x, y)`` over the whole space, both
        minimised, one witness architecture per point (``{x, y, group, native}``)."""
        opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype)
        return _profiles.pareto_front(self, self.trellis(opts, (x, y)), x, y, over)

    def describe(self) -> dict:
        """Name, size, native encoding and reference, for listings."""
        return {"name": self.name, "size": self.size, "native": self.native_example,
                "columns": dict(self.native_columns), "reference": self.reference,
                "params": self.params}

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({p})"
