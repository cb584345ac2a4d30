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
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from ._version import __version__
from .conventions import Convention
from .engine import ENCODE_BLOCK, RawScores
from .options import ScoringOptions, positive_int
from .search_spaces import SearchSpace, get_space
from .search_spaces.columns import take_columns
from .storage import RunWriter, read_results, scores_table, write_part

__all__ = ["score_space", "ScoreRun", "DEFAULT_CHUNK_SIZE"]

#: candidates per part file when ``chunk_size`` is not given: two sampling
#: blocks (``SAMPLE_BLOCK``), so no chunk re-draws a block another one drew
DEFAULT_CHUNK_SIZE = 1 << 17


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


def _run_chunk(task: _ChunkTask) -> tuple[int, int, int]:
    """Sample/enumerate, score (block tables where the space has them, else
    encode and the record core) and write part ``task.k``.

    Returns ``(k, rows, invalid_rows)``.
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
    # hundreds of MB, the natives and results only a few hundred bytes a row
    for lo in range(0, m, task.encode_block):
        hi = min(lo + task.encode_block, m)
        sub = cols if (lo == 0 and hi == m) else take_columns(cols, slice(lo, hi))
        raw.put(lo, space.score_columns_raw(sub, task.opts))
    native = space.arrow_columns(cols)
    del cols
    table = scores_table(raw.metrics, raw.status, raw.bad_layer, raw.latency,
                         arch_id=np.arange(task.start, task.stop, dtype=np.int64),
                         native=native, metadata=task.metadata)
    write_part(task.out, task.k, table, token=task.token, compression=task.compression)
    return task.k, m, int(np.count_nonzero(raw.status))


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
        return "within", positive_int(n, "n", 0), positive_int(seed, "seed", 0)
    if n is None or (isinstance(n, str) and n.lower() == "all"):
        if not space.enumerable or space.size is None:
            raise ValueError(f"search space {space.name!r} cannot be enumerated (unbounded or too "
                             "large to list); pass n=<number of candidates> to sample it")
        return "enumerate", int(space.size), None
    if isinstance(n, str):
        raise ValueError(f"n must be a non-negative integer, 'all' or None, got {n!r}")
    return "sample", positive_int(n, "n", 0), positive_int(seed, "seed", 0)


def _run_metadata(space: SearchSpace, opts: ScoringOptions, mode: str, total: int,
                  seed: Optional[int], chunk_size: int, within=None, over=None) -> dict:
    meta = {"version": __version__, "space": {"name": space.name, "params": space.params},
            "mode": mode, "seed": seed, "n": total, "chunk_size": chunk_size}
    if within is not None:
        meta["within"] = {"budget": str(within), "limits": within.limits,
                          "flops_convention": within.flops_convention, "over": over}
    meta.update(opts.metadata())
    return meta


def _fan_out(writer: RunWriter, tasks: list, n_jobs, bar, t0: float) -> tuple[int, int, int]:
    """Run the chunk tasks; return ``(parts, rows, invalid rows)`` written."""
    import joblib

    written = invalid = rows = 0
    if not tasks:
        return written, rows, invalid
    bar, bar_task = bar if bar is not None else (None, None)
    results = joblib.Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator_unordered")(
        joblib.delayed(_run_chunk)(t) for t in tasks)
    for _, m, bad in results:
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
                encode_block: int = ENCODE_BLOCK, within=None, over: str = "encodings") -> ScoreRun:
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
        ``SAMPLE_BLOCK`` (65536) sample fastest.
    n_jobs : int or None
        Chunks in flight at once, joblib's convention.  Threads by default;
        ``joblib.parallel_config(backend="loky" | "dask")`` moves the chunks
        to processes or to a cluster (whose workers must see ``out``).
    progress : bool
        Show a progress bar (candidates/s and ETA) on stderr.
    resume : bool
        Finish an interrupted run in ``out``: complete parts are kept,
        missing ones written.  The run's parameters must match the stored
        ones exactly (else ``ValueError`` naming the differences).
    overwrite : bool
        Delete the part files and metadata of a previous run in ``out`` first.
    compression : str or None
        Parquet codec (``"zstd"``, ``"snappy"``, ``None``).
    encode_block : int
        Candidates encoded and scored at a time inside a chunk.
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

    On an existing dask cluster, through joblib's dask backend.  Each worker
    samples, encodes, scores and writes its own parts, so ``out`` must be a
    directory every worker sees (a shared filesystem) and nasflops must be
    installed on the workers; only a row count per chunk travels back:

    >>> import joblib                                         # doctest: +SKIP
    >>> from dask.distributed import Client                   # doctest: +SKIP
    >>> client = Client("tcp://scheduler-host:8786")          # doctest: +SKIP
    >>> with joblib.parallel_config(backend="dask"):          # doctest: +SKIP
    ...     nasflops.score_space("ofa-mbv3", n=100_000_000, seed=0,
    ...                          out="/shared/ofa.parquet", n_jobs=-1)
    """
    t0 = time.perf_counter()
    if isinstance(space, str):
        space = get_space(space)
    opts = ScoringOptions.make(convention, batch_size, weight_dtype, act_dtype, device)
    encode_block = positive_int(encode_block, "encode_block")
    mode, total, seed = _plan(space, n, seed, within)
    w_opts = None if within is None else ScoringOptions.make(within.convention, batch_size,
                                                             weight_dtype, act_dtype)
    if within is not None:      # fail now, not in a worker: the budget must decompose
        space.check_exact(within, w_opts)
    chunk_size = positive_int(DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size, "chunk_size")
    writer = RunWriter(out, _run_metadata(space, opts, mode, total, seed, chunk_size, within, over),
                       total, chunk_size, resume=resume, overwrite=overwrite)
    tasks = [_ChunkTask(space, mode, seed or 0, k, *writer.rows_of(k), writer.path, opts,
                        writer.metadata_bytes, writer.token, compression, encode_block, within,
                        over, w_opts)
             for k in writer.todo()]
    resumed_rows = sum(np.subtract(*writer.rows_of(k)[::-1]) for k in writer.done)
    bar = None
    if progress:
        bar = _progress_bar(total, int(resumed_rows), f"{space.name} [{opts.convention.name}]")
        bar[0].start()
    try:
        written, rows, invalid = _fan_out(writer, tasks, n_jobs, bar, t0)
    finally:
        if bar is not None:
            bar[0].stop()
        writer.close()
    return ScoreRun(path=writer.path, n=total, n_parts=writer.n_parts, parts_written=written,
                    parts_resumed=len(writer.done), rows_written=rows, n_invalid=invalid,
                    seconds=time.perf_counter() - t0, metadata=writer.metadata)
