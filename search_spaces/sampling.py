"""Drawing the candidates of a space that fit a budget, by rejection.

The answer is the first ``n`` fitting candidates of the space's seeded sample
stream, so it depends only on ``(space, budget, n, seed)`` and the scoring
options -- never on ``n_jobs``.  The stream is read in *steps* (runs of
consecutive candidates) that grow from a few hundred to
:data:`~nasflops.engine.ENCODE_BLOCK`, so a small ``n`` stays cheap and a
large one runs at core speed; up to ``n_jobs`` steps are encoded and scored
at once, then consumed in stream order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import numpy as np

from nasflops.budget import Budget
from nasflops.engine import ENCODE_BLOCK, RawScores, encode_step
from nasflops.options import ScoringOptions, positive_int
from nasflops.scoring import Scores, score
from nasflops.spec import SpecBatch
from .columns import SAMPLE_BLOCK, concat_columns, take_columns

__all__ = ["BudgetSample", "sample_within", "space_phase"]


def space_phase(space, phase: Optional[str] = None) -> str:
    """The phase to score ``space`` in: ``phase``, or by default the space's
    own (``space.phase``: a language-model space is built for one phase).
    Scoring a phase-specific space's records as another phase is refused.

    >>> class Decoding: name, phase = "lm", "decode"
    >>> space_phase(Decoding()), space_phase(object(), "train")
    ('decode', 'train')
    """
    own = getattr(space, "phase", "forward")
    if phase is None:
        return own
    if own != "forward" and phase != own:
        raise ValueError(f"{getattr(space, 'name', space)} is built for the {own} phase (its records "
                         f"are that workload); build it with phase={phase!r} instead of scoring its "
                         f"{own} records as {phase}")
    return phase


@dataclass
class BudgetSample:
    """Candidates drawn by :meth:`SearchSpace.sample_within`.

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
    method : str
        ``"rejection"`` or ``"exact"`` (then ``arch_id`` are positions in the
        exact stream of uniform draws within the budget).
    within : int or None
        With ``"exact"``: the exact number of candidates within the budget.
    """

    arch_id: np.ndarray
    columns: dict
    scores: Any
    draws: int
    space: Any = field(repr=False, default=None)
    _batch: Any = field(repr=False, default=None)
    method: str = "rejection"
    within: Optional[int] = None

    @property
    def batch(self) -> SpecBatch:
        """The candidates' layer records (a :class:`~nasflops.SpecBatch`)."""
        # encoded again on demand: keeping every accepted candidate's records
        # while sampling would cost hundreds of bytes per layer
        if self._batch is None:
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


def _encode_score(space, cols, opts: ScoringOptions, seen: dict):
    specs = space.encode_columns(cols)
    if len(specs):
        seen["longest"] = max(seen["longest"], int(specs.lengths.max()))
    return cols, score(specs, convention=opts.convention,
                       batch_size=opts.batch_size, weight_dtype=opts.weight_dtype,
                       act_dtype=opts.act_dtype, device=opts.device, errors="status",
                       fused_attention=opts.fused_attention, memory=opts.memory,
                       phase=opts.phase, causal=opts.causal)


def _steps(max_draws: int, first_step: int, jobs: int,
           seen: Optional[dict] = None) -> Iterator[list[tuple[int, int]]]:
    """Rounds of up to ``jobs`` consecutive stream ranges ``(start, stop)``,
    growing 4x per range up to ENCODE_BLOCK, never crossing a sampling block,
    ``max_draws`` candidates in all.  ``seen["longest"]`` (the longest
    candidate encoded so far, updated by the caller) keeps each range's
    records within ``RECORD_BUDGET``."""
    pos, step = 0, min(first_step, 16)   # the first ranges measure the space
    seen = {"longest": 1} if seen is None else seen
    while pos < max_draws:
        rnd = []
        while len(rnd) < jobs and pos < max_draws:
            step = min(step, encode_step(step, seen["longest"]))
            stop = min(pos + step, (pos // SAMPLE_BLOCK + 1) * SAMPLE_BLOCK, max_draws)
            rnd.append((pos, stop))
            pos = stop
            step = min(step * 4, ENCODE_BLOCK)
        yield rnd


def _scored_steps(space, seed: int, opts: ScoringOptions, max_draws: int, first_step: int,
                  n_jobs) -> Iterator[tuple[int, dict, Any]]:
    """``(start, columns, scores)`` of consecutive stream ranges, in stream order."""
    from joblib import Parallel, delayed, effective_n_jobs

    jobs = max(1, effective_n_jobs(n_jobs))
    seen = {"longest": 1}
    with Parallel(n_jobs=n_jobs, prefer="threads") as parallel:
        for rnd in _steps(max_draws, first_step, jobs, seen):
            # natives are drawn whole blocks at a time (that is how the seeded
            # stream is defined); encoding and scoring, the costly part, go by step
            parts = [space.sample_columns(hi - lo, seed, lo) for lo, hi in rnd]
            if len(rnd) == 1:
                results = [_encode_score(space, parts[0], opts, seen)]
            else:
                results = parallel(delayed(_encode_score)(space, c, opts, seen) for c in parts)
            for (lo, _), (cols, res) in zip(rnd, results):
                yield lo, cols, res


def _shortfall(space, budget: Budget, n: int, found: int, draws: int, seed: int,
               smallest: dict) -> ValueError:
    seen = ", ".join(f"{c}={int(v):,}" if c != "latency_s" else f"{c}={float(v):.3g}"
                     for c, v in smallest.items()) or "no valid candidate"
    if found == 0:
        return ValueError(f"budget unreachable in {space.name}: none of {draws:,} sampled "
                          f"candidates (seed {seed}) fits {budget}; smallest seen: {seen}. "
                          "Loosen the budget or raise max_draws.")
    return ValueError(f"only {found} of the {n} requested candidates of {space.name} fit {budget} "
                      f"in {draws:,} draws (acceptance {found / draws:.2e}); raise max_draws "
                      "or loosen the budget")


def sample_within(space, budget: Budget, n: int, seed: int = 0, *, batch_size: int = 1,
                  weight_dtype: str = "fp32", act_dtype: str = "fp32", device=None,
                  max_draws: Optional[int] = None, n_jobs: Optional[int] = 1,
                  phase: Optional[str] = None, causal: str = "full",
                  fused_attention: bool = False) -> BudgetSample:
    """Draw ``n`` candidates of ``space`` that fit ``budget`` (rejection sampling).

    Parameters
    ----------
    space : SearchSpace
        The space.
    budget : Budget
        Bounds; scored under ``budget.convention``.
    n : int
        Candidates wanted.
    seed : int
        Seed of the sample stream.
    batch_size, weight_dtype, act_dtype, device
        Scoring options (memory budgets depend on them; ``max_latency``
        needs ``device``).
    phase, causal, fused_attention
        As in :func:`nasflops.score`; ``phase`` defaults to the space's
        (:func:`space_phase`).
    max_draws : int, optional
        Give up after sampling this many candidates (default
        ``max(1_000_000, 100 * n)``).
    n_jobs : int or None
        Threads scoring the steps (joblib's convention).

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
    """
    if not isinstance(budget, Budget):
        raise TypeError(f"budget must be a nasflops.Budget, got {type(budget).__name__}")
    n = positive_int(n, "n", 0)
    seed = positive_int(seed, "seed", 0)
    if budget.max_latency is not None and device is None:
        raise ValueError("max_latency needs a device profile: sample_within(..., "
                         "device=nasflops.Device(...))")
    max_draws = max(1_000_000, 100 * n) if max_draws is None else positive_int(max_draws, "max_draws")
    opts = ScoringOptions.make(budget.convention, batch_size, weight_dtype, act_dtype, device,
                               fused_attention, "nasflops", space_phase(space, phase), causal)

    ids, col_parts, score_parts = [], [], []
    found = draws = 0
    smallest: dict[str, Any] = {}
    steps = _scored_steps(space, seed, opts, max_draws, min(ENCODE_BLOCK, max(256, 4 * n)), n_jobs)
    for lo, cols, res in (steps if n else ()):
        valid = res["status"] == 0
        for col in budget.limits if valid.any() else ():
            low = res[col][valid].min()
            smallest[col] = min(smallest.get(col, low), low)
        idx = np.flatnonzero(budget.mask(res))[: n - found]
        if idx.size:
            ids.append(lo + idx)
            col_parts.append(take_columns(cols, idx))
            score_parts.append(np.asarray(res)[idx])
            found += idx.size
        draws += len(res)
        if found >= n:
            break
    if found < n:
        raise _shortfall(space, budget, n, found, draws, seed, smallest)
    return _result(space, seed, opts, ids, col_parts, score_parts, draws)


def _result(space, seed, opts, ids, col_parts, score_parts, draws) -> BudgetSample:
    empty = Scores.from_raw(RawScores.allocate(0, opts.with_latency), opts)   # names the options
    if ids:
        arch_id = np.concatenate(ids).astype(np.int64)
        columns = concat_columns(col_parts)
        scores = np.concatenate(score_parts).astype(empty.dtype).view(Scores)
        scores.__array_finalize__(empty)
    else:
        arch_id = np.zeros(0, dtype=np.int64)
        columns = take_columns(space.sample_columns(1, seed), slice(0, 0))
        scores = empty
    return BudgetSample(arch_id=arch_id, columns=columns, scores=scores, draws=draws, space=space)
