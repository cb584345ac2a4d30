"""The streaming pipeline: a whole search space into a Parquet dataset.

:func:`score_space` streams candidates chunk after chunk: for every chunk of
``chunk_size`` candidates, sample (or enumerate) the native columns, encode
and score them in small sub-blocks, and write one part file.  A chunk task
does all of that where it runs and returns only a row count, so memory stays
bounded whatever ``n`` is and, on a cluster, only a few bytes per chunk
travel back to the client.  The directory's state (metadata, resume, atomic
parts) belongs to :class:`nasflops.storage.RunWriter`.

Determinism: the candidates of chunk ``k`` are positions ``k * chunk_size``
to ``(k + 1) * chunk_size - 1`` of the space's seeded sample stream (or of its
enumeration), and that stream does not depend on how it is cut
(:meth:`SearchSpace.sample_columns`).  The core scores each architecture on
its own.  Hence a dataset's rows, sorted by ``arch_id``, are identical bit for
bit for any backend, ``n_jobs`` and ``chunk_size``.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ._version import __version__
from .conventions import Convention
from .engine import ENCODE_BLOCK, RawScores, encode_step
from .options import ScoringOptions, positive_int
from .search_spaces import SearchSpace, get_space, space_phase
from .search_spaces.columns import take_columns
from .storage import RunWriter, commit_part, read_results, scores_table

__all__ = ["score_space", "ScoreRun", "DEFAULT_CHUNK_SIZE"]

#: candidates per part file when ``chunk_size`` is not given: two sampling
#: blocks (``SAMPLE_BLOCK``), so no chunk re-draws a block another one drew
DEFAULT_CHUNK_SIZE = 1 << 17
#: the largest part: a chunk's natives and results are held in memory at once
MAX_CHUNK_SIZE = 1 << 22
#: the most candidates one run may ask for (2**50, ~10**15: decades of one
#: machine's time); beyond it a count is a mistake, not a request
MAX_N = 1 << 50


@dataclass
class ScoreRun:
    """What :func:`score_space` did.

    Attributes
    ----------
    path : str
        The dataset directory.
    n : int
        Candidates in the dataset once complete.
    n_parts : int
        Part files (chunks) of the dataset.
    parts_written, parts_resumed : int
        Parts written by this call, and parts found complete and kept.
    parts_repaired : list of (str, str)
        Parts found damaged when resuming (file name, why): they failed their
        checksum (or, never recorded, their verification), were deleted and
        written again by this call.
    rows_written : int
        Candidates scored and written by this call.
    n_invalid : int
        Rows written by this call whose ``status`` is not 0.
    seconds : float
        Wall time of this call.
    metadata : dict
        The run's metadata (as stored under the ``nasflops`` schema key).
    """

    path: str
    n: int
    n_parts: int
    parts_written: int
    parts_resumed: int
    rows_written: int
    n_invalid: int
    seconds: float
    metadata: dict = field(repr=False)
    parts_repaired: list = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Candidates per second scored and written by this call."""
        return self.rows_written / self.seconds if self.seconds > 0 else float("nan")

    def read(self, **kwargs):
        """The dataset as a pyarrow Table (see :func:`nasflops.read_results`)."""
        return read_results(self.path, **kwargs)


@dataclass(frozen=True)
class _ChunkTask:
    """Everything a worker needs to produce part ``k``: plain, picklable data."""

    space: Any
    mode: str               # "sample", "enumerate" or "within" (exact draws within a budget)
    seed: int
    k: int
    start: int
    stop: int
    out: str
    opts: ScoringOptions
    metadata: bytes
    token: str
    compression: Optional[str]
    encode_block: int
    within: Any = None      # the budget of mode "within"
    over: str = "encodings"
    within_opts: Any = None  # its scoring options (its convention)


def _run_chunk(task: _ChunkTask) -> tuple[int, int, int, dict]:
    """Sample/enumerate, score (block tables where the space has them, else
    encode and the record core) and write part ``task.k``.

    Returns ``(k, rows, invalid_rows, record)``, the record (rows, size,
    hash) being what the run file keeps of the part.
    """
    m = task.stop - task.start
    space = task.space
    if task.mode == "sample":
        cols = space.sample_columns(m, task.seed, task.start)
    elif task.mode == "within":
        cols, _ = space.exact_columns(task.within, m, task.seed, task.over, task.start,
                                      task.within_opts)
    else:
        cols = space.enumerate_columns(task.start, task.stop)
    raw = RawScores.allocate(m, task.opts.with_latency)
    # score in sub-blocks: the layer records of a whole chunk could be
    # hundreds of MB, the natives and results only a few hundred bytes a row;
    # blocks grow from one candidate while the records stay within budget
    lo, step, longest = 0, 1, 1
    while lo < m:
        hi = min(lo + step, m)
        sub = cols if (lo == 0 and hi == m) else take_columns(cols, slice(lo, hi))
        part, layers = space.score_columns_counted(sub, task.opts)
        raw.put(lo, part)
        longest = max(longest, layers)
        lo, step = hi, encode_step(step, longest, task.encode_block)
    native = space.arrow_columns(cols)
    del cols
    table = scores_table(raw.metrics, raw.status, raw.bad_layer, raw.latency,
                         arch_id=np.arange(task.start, task.stop, dtype=np.int64),
                         native=native, metadata=task.metadata,
                         extra_metrics=task.opts.extra_metrics)
    _, record = commit_part(task.out, task.k, table, token=task.token, compression=task.compression)
    return task.k, m, int(np.count_nonzero(raw.status)), record


def _progress_bar(total: int, completed: int, label: str):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("{task.fields[rate]} cand/s"), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=False)
    task = bar.add_task(label, total=total, completed=completed, rate="-")
    return bar, task


def _plan(space: SearchSpace, n, seed, within=None) -> tuple[str, int, Optional[int]]:
    """``(mode, candidates, seed)``: enumerate the space, sample ``n``, or draw
    ``n`` exactly within a budget."""
    if within is not None:
        if n is None or isinstance(n, str):
            raise ValueError("score_space(within=budget) draws n candidates: pass n=<number>")
        return "within", positive_int(n, "n", 0, MAX_N), positive_int(seed, "seed", 0)
    if n is None or (isinstance(n, str) and n.lower() == "all"):
        if not space.enumerable or space.size is None:
            raise ValueError(f"search space {space.name!r} cannot be enumerated (unbounded or too "
                             "large to list); pass n=<number of candidates> to sample it")
        return "enumerate", int(space.size), None
    if isinstance(n, str):
        raise ValueError(f"n must be a non-negative integer, 'all' or None, got {n!r}")
    return "sample", positive_int(n, "n", 0, MAX_N), positive_int(seed, "seed", 0)


def _open_writer(out, metadata: dict, total: int, chunk_size: int, resume: bool,
                 overwrite: bool) -> RunWriter:
    """The run's writer; parts that failed verification on resume are
    reported with a ``RuntimeWarning`` each (they are written again)."""
    writer = RunWriter(out, metadata, total, chunk_size, resume=resume, overwrite=overwrite)
    for name, why in writer.repaired:
        warnings.warn(f"{os.path.join(writer.path, name)} failed verification ({why}): "
                      "writing it again", RuntimeWarning, stacklevel=3)
    return writer


def _within_options(space: SearchSpace, within, batch_size: int, weight_dtype: str,
                    act_dtype: str) -> Optional[ScoringOptions]:
    """The scoring options a ``within`` budget is checked under (its own
    convention), having checked here, not in a worker, that it decomposes."""
    if within is None:
        return None
    opts = ScoringOptions.make(within.convention, batch_size, weight_dtype, act_dtype)
    space.check_exact(within, opts)
    return opts


def _run_metadata(space: SearchSpace, opts: ScoringOptions, mode: str, total: int,
                  seed: Optional[int], chunk_size: int, within=None, over=None) -> dict:
    meta = {"version": __version__, "space": {"name": space.name, "params": space.params},
            "mode": mode, "seed": seed, "n": total, "chunk_size": chunk_size}
    if within is not None:
        meta["within"] = {"budget": str(within), "limits": within.limits,
                          "flops_convention": within.flops_convention, "over": over}
    meta.update(opts.metadata())
    return meta


def _fan_out(writer: RunWriter, tasks, n_jobs, bar, t0: float) -> tuple[int, int, int]:
    """Run the chunk tasks; return ``(parts, rows, invalid rows)`` written."""
    import joblib

    written = invalid = rows = 0
    bar, bar_task = bar if bar is not None else (None, None)
    results = joblib.Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")(
        joblib.delayed(_run_chunk)(t) for t in tasks)
    for k, m, bad, record in results:
        writer.record(k, record)
        written += 1
        rows += m
        invalid += bad
        if bar is not None:
            dt = time.perf_counter() - t0
            bar.update(bar_task, advance=m, rate=f"{rows / dt:,.0f}" if dt > 0 else "-")
    return written, rows, invalid


def score_space(space, n: Union[int, str, None] = None, seed: int = 0,
                out: Union[str, os.PathLike] = "run.parquet",
                convention: Union[str, Convention] = "macs", batch_size: int = 1,
                weight_dtype: str = "fp32", act_dtype: str = "fp32", device=None,
                chunk_size: Optional[int] = None, n_jobs: Optional[int] = 1,
                progress: bool = True, resume: bool = False, overwrite: bool = False,
                compression: Optional[str] = "zstd",
                encode_block: int = ENCODE_BLOCK, fused_attention: bool = False,
                memory: str = "nasflops", phase: Optional[str] = None, causal: str = "full",
                within=None, over: str = "encodings") -> ScoreRun:
    """Score a whole search space (or ``n`` samples of it) into a Parquet dataset.

    Chunk after chunk: sample or enumerate ``chunk_size`` candidates, encode,
    score, write one part file (``part-000000.parquet``, ...), repeat.  Peak
    memory depends on ``chunk_size`` and ``n_jobs``, not on ``n``.

    Parameters
    ----------
    space : SearchSpace or str
        The space, or a registered name (``"nb201"``, ``"ofa-mbv3"``, ...).
    n : int, "all" or None
        Number of candidates to sample from the seeded stream; ``None`` or
        ``"all"`` enumerates the whole space (finite spaces only).
    seed : int
        Sampling seed (ignored when enumerating).
    out : path
        Dataset directory, created if missing.
    convention, batch_size, weight_dtype, act_dtype, device
        As in :func:`nasflops.score`.
    chunk_size : int, optional
        Candidates per part file (default :data:`DEFAULT_CHUNK_SIZE`).  The
        ids of part ``k`` are ``k * chunk_size ...``.  Multiples of
        ``SAMPLE_BLOCK`` (65536) sample fastest; at most
        :data:`MAX_CHUNK_SIZE`.
    n_jobs : int or None
        Chunks in flight at once, joblib's convention.  Threads by default;
        ``joblib.parallel_config(backend="loky" | "dask")`` moves the chunks
        to processes or to a cluster (whose workers must see ``out``).
    progress : bool
        Show a progress bar (candidates/s and ETA) on stderr.
    resume : bool
        Finish an interrupted run in ``out``: parts that verify against the
        checksums recorded when they were written are kept; missing and
        damaged ones are written (damaged ones are listed in
        ``parts_repaired`` and reported with a ``RuntimeWarning``).  The
        run's parameters must match the stored ones exactly (else
        ``ValueError`` naming the differences).  One writer at a time: a
        second run on the same ``out`` raises
        :class:`nasflops.storage.RunLockedError`.
    overwrite : bool
        Delete the part files and metadata of a previous run in ``out`` first.
    compression : str or None
        Parquet codec (``"zstd"``, ``"snappy"``, ``None``).
    encode_block : int
        Candidates encoded and scored at a time inside a chunk.
    fused_attention : bool
        As in :func:`nasflops.score`: attention scores never materialised.
    memory, phase, causal
        As in :func:`nasflops.score` (stored in the metadata); ``phase``
        defaults to the space's own (``space.phase``, see ``space_phase``).
    within : Budget, optional
        Draw the ``n`` candidates uniformly among those within this budget,
        exactly (no rejection: :meth:`SearchSpace.sample_within` with
        ``method="exact"``); ``arch_id`` is the position in that seeded
        stream, the same for any chunking.  Decomposable spaces only.
    over : {"encodings", "networks"}
        What ``within`` draws are uniform over.

    Returns
    -------
    ScoreRun
        Counts, timing and the metadata; ``.read()`` loads the table.

    Examples
    --------
    >>> import nasflops                                       # doctest: +SKIP
    >>> run = nasflops.score_space("ofa-mbv3", n=1_000_000, seed=0,
    ...                            out="ofa.parquet", n_jobs=2)  # doctest: +SKIP
    >>> nasflops.read_results("ofa.parquet").num_rows         # doctest: +SKIP
    1000000

    On a dask cluster (README, "Scoring at scale"), each worker samples,
    encodes, scores and writes its own parts, so ``out`` must be a
    directory every worker sees; only a row count per chunk travels back.
    """
    t0 = time.perf_counter()
    if isinstance(space, str):
        space = get_space(space)
    opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype, device,
                               fused_attention, memory, space_phase(space, phase), causal)
    encode_block = positive_int(encode_block, "encode_block")
    mode, total, seed = _plan(space, n, seed, within)
    w_opts = _within_options(space, within, batch_size, weight_dtype, act_dtype)
    chunk_size = positive_int(DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, "chunk_size",
                              1, MAX_CHUNK_SIZE)
    writer = _open_writer(out, _run_metadata(space, opts, mode, total, seed, chunk_size, within,
                                             over), total, chunk_size, resume, overwrite)
    bar, failed = None, True
    try:
        # lazy: joblib draws tasks as workers free up, so nothing here grows with n
        tasks = (_ChunkTask(space, mode, seed or 0, k, *writer.rows_of(k), writer.path, opts,
                            writer.metadata_bytes, writer.token, compression, encode_block,
                            within, over, w_opts)
                 for k in writer.todo())
        resumed_rows = sum(np.subtract(*writer.rows_of(k)[::-1]) for k in writer.done)
        if progress:
            bar = _progress_bar(total, int(resumed_rows), f"{space.name} [{opts.convention.name}]")
            bar[0].start()
        written, rows, invalid = _fan_out(writer, tasks, n_jobs, bar, t0)
        failed = False
    finally:
        if bar is not None:
            bar[0].stop()
        writer.close(failed=failed)
    return ScoreRun(path=writer.path, n=total, n_parts=writer.n_parts, parts_written=written,
                    parts_resumed=len(writer.done), rows_written=rows, n_invalid=invalid,
                    seconds=time.perf_counter() - t0, metadata=writer.metadata,
                    parts_repaired=list(writer.repaired))
