"""Scoring at scale: parallel chunks and the streaming pipeline.

Two entry points:

:func:`score_chunks`
    scores a :class:`~nasflops.SpecBatch` in chunks handed to
    ``joblib.Parallel(prefer="threads")``.  Each chunk task *returns* its
    result arrays and the caller stitches them, so the task runs unchanged in
    a thread (the default: the core releases the GIL), a loky process or a
    dask worker -- whatever ``joblib.parallel_config(backend=...)`` the user
    chose.  ``nasflops.score(..., n_jobs=k)`` is built on it.

:func:`score_space`
    streams a whole search space into a Parquet dataset: for every chunk of
    ``chunk_size`` candidates, sample (or enumerate) the native columns,
    encode and score them in small sub-blocks, and write one part file.  A
    chunk task does all of that where it runs and returns only a row count,
    so memory stays bounded whatever ``n`` is and, on a cluster, only a few
    bytes per chunk travel back to the client.

Determinism: the candidates of chunk ``k`` are positions ``k * chunk_size``
to ``(k + 1) * chunk_size - 1`` of the space's seeded sample stream (or of its
enumeration), and that stream does not depend on how it is cut
(:meth:`SearchSpace.sample_columns`).  The core scores each architecture on
its own.  Hence a dataset's rows, sorted by ``arch_id``, are identical bit for
bit for any backend, ``n_jobs`` and ``chunk_size``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from . import _core
from .conventions import Convention

__all__ = ["score_chunks", "score_space", "ScoreRun", "DEFAULT_CHUNK_SIZE", "ENCODE_BLOCK"]

#: candidates per part file when ``chunk_size`` is not given: two sampling
#: blocks (``SAMPLE_BLOCK``), so no chunk re-draws a block another one drew
DEFAULT_CHUNK_SIZE = 1 << 17
#: candidates encoded and scored at a time inside a chunk; bounds the layer
#: records held at once (~ ENCODE_BLOCK x layers x 56 bytes)
ENCODE_BLOCK = 1 << 12

_N_METRICS = len(_core.METRICS)


# --------------------------------------------------------------- chunked core
def _score_block(records: np.ndarray, offsets: np.ndarray, table: np.ndarray, batch_size: int,
                 weight_size: int, act_size: int, peak_ops: float, bytes_per_s: float,
                 with_latency: bool):
    """Score one self-contained batch (offsets start at 0); return its arrays.

    Module-level and argument-only so that process backends can pickle it.
    """
    n = offsets.shape[0] - 1
    metrics = np.empty((n, _N_METRICS), dtype=np.int64)
    status = np.empty(n, dtype=np.int64)
    bad = np.empty(n, dtype=np.int64)
    latency = np.empty(n, dtype=np.float64) if with_latency else None
    _core.score_range(records, offsets, 0, n, table, batch_size, weight_size, act_size,
                      metrics, status, bad, peak_ops, bytes_per_s, latency)
    return metrics, status, bad, latency


def _chunk_bounds(n: int, n_jobs: int, chunk_size: Optional[int]) -> list[tuple[int, int]]:
    if chunk_size is None:
        # a few chunks per worker for balance, not so many that dispatch shows
        chunk_size = max(1024, -(-n // (4 * n_jobs)))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def score_chunks(batch, table: np.ndarray, batch_size: int, weight_size: int, act_size: int,
                 device=None, n_jobs: Optional[int] = 1, chunk_size: Optional[int] = None):
    """Score a batch in parallel chunks; return ``(metrics, status, bad_layer, latency)``.

    The low-level engine of :func:`nasflops.score` (which validates the
    arguments and builds the result rows).  Chunks are scored by
    ``joblib.Parallel(n_jobs, prefer="threads")``: threads unless the user
    selected another backend with ``joblib.parallel_config``.  No shared
    memory is required: each task returns its arrays, so loky processes and
    dask workers give the same numbers as threads.

    Parameters
    ----------
    batch : SpecBatch
        Validated architectures.
    table : ndarray
        The compiled convention table (``Convention.table``).
    batch_size, weight_size, act_size : int
        Samples per pass and bytes per weight / activation element.
    device : Device, optional
        Roofline profile; adds the latency array.
    n_jobs : int or None
        joblib's convention (``None``: 1 unless inside ``parallel_config``).
    chunk_size : int, optional
        Architectures per task (default: about four tasks per worker).

    Returns
    -------
    metrics : int64 array, shape (n, len(METRICS))
    status, bad_layer : int64 arrays
    latency : float64 array or None

    Examples
    --------
    >>> import nasflops
    >>> from nasflops.pipeline import score_chunks
    >>> net = nasflops.Net(3, 8, 8); _ = net.conv(net.input, 4, 3, padding=1)
    >>> batch = nasflops.SpecBatch.from_list([net.records] * 3)
    >>> m, st, bad, lat = score_chunks(batch, nasflops.get_convention("macs").table, 1, 4, 4,
    ...                                n_jobs=2, chunk_size=1)
    >>> m[:, 1].tolist(), st.tolist()
    ([6912, 6912, 6912], [0, 0, 0])
    """
    import joblib

    n = len(batch)
    with_latency = device is not None
    peak, bw = (float(device.peak_ops_per_s), float(device.bytes_per_s)) if with_latency else (0.0, 0.0)
    table = np.ascontiguousarray(table, dtype=np.int64)
    jobs = max(1, joblib.effective_n_jobs(n_jobs))
    bounds = _chunk_bounds(n, jobs, chunk_size)
    if len(bounds) <= 1 or jobs == 1:
        if len(bounds) <= 1:
            return _score_block(batch.records, batch.offsets, table, batch_size, weight_size,
                                act_size, peak, bw, with_latency)
        # serial: the core writes straight into the outputs, no stitching
        metrics = np.empty((n, _N_METRICS), dtype=np.int64)
        status = np.empty(n, dtype=np.int64)
        bad = np.empty(n, dtype=np.int64)
        latency = np.empty(n, dtype=np.float64) if with_latency else None
        for lo, hi in bounds:
            _core.score_range(batch.records, batch.offsets, lo, hi, table, batch_size,
                              weight_size, act_size, metrics, status, bad, peak, bw, latency)
        return metrics, status, bad, latency

    metrics = np.empty((n, _N_METRICS), dtype=np.int64)
    status = np.empty(n, dtype=np.int64)
    bad = np.empty(n, dtype=np.int64)
    latency = np.empty(n, dtype=np.float64) if with_latency else None

    def tasks():
        for lo, hi in bounds:
            part = batch[lo:hi]  # views of the records, offsets rebased to 0
            yield joblib.delayed(_score_block)(part.records, part.offsets, table, batch_size,
                                               weight_size, act_size, peak, bw, with_latency)

    # results arrive in order; each is copied into place and dropped, so at
    # most the pre-dispatched chunks exist twice
    results = joblib.Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(tasks())
    for (lo, hi), (m, s, b, lat) in zip(bounds, results):
        metrics[lo:hi] = m
        status[lo:hi] = s
        bad[lo:hi] = b
        if with_latency:
            latency[lo:hi] = lat
    return metrics, status, bad, latency


# ----------------------------------------------------------- streaming runs
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
        from .storage import read_results
        return read_results(self.path, **kwargs)


@dataclass(frozen=True)
class _ChunkTask:
    """Everything a worker needs to produce part ``k``: plain, picklable data."""

    space: Any
    mode: str               # "sample" or "enumerate"
    seed: int
    k: int
    start: int
    stop: int
    out: str
    table: np.ndarray
    batch_size: int
    weight_size: int
    act_size: int
    peak_ops: float
    bytes_per_s: float
    with_latency: bool
    metadata: bytes
    token: str
    compression: Optional[str]
    encode_block: int


def _run_chunk(task: _ChunkTask) -> tuple[int, int, int]:
    """Sample/enumerate, encode, score and write part ``task.k``.

    Returns ``(k, rows, invalid_rows)``.
    """
    from .search_spaces.base import take_columns
    from .storage import scores_table, write_part

    m = task.stop - task.start
    space = task.space
    if task.mode == "sample":
        cols = space.sample_columns(m, task.seed, task.start)
    else:
        cols = space.enumerate_columns(task.start, task.stop)
    metrics = np.empty((m, _N_METRICS), dtype=np.int64)
    status = np.empty(m, dtype=np.int64)
    bad = np.empty(m, dtype=np.int64)
    latency = np.empty(m, dtype=np.float64) if task.with_latency else None
    # encode in sub-blocks: the layer records of a whole chunk could be
    # hundreds of MB, the natives and results only a few hundred bytes a row
    for lo in range(0, m, task.encode_block):
        hi = min(lo + task.encode_block, m)
        sub = cols if (lo == 0 and hi == m) else take_columns(cols, slice(lo, hi))
        batch = space.encode_columns(sub)
        if len(batch) != hi - lo:
            raise ValueError(f"{getattr(space, 'name', space)}: encode_columns returned "
                             f"{len(batch)} architectures for {hi - lo} candidates")
        _core.score_range(batch.records, batch.offsets, 0, hi - lo, task.table, task.batch_size,
                          task.weight_size, task.act_size, metrics[lo:hi], status[lo:hi],
                          bad[lo:hi], task.peak_ops, task.bytes_per_s,
                          None if latency is None else latency[lo:hi])
        del batch
    native = space.arrow_columns(cols)
    del cols
    table = scores_table(metrics, status, bad, latency,
                         arch_id=np.arange(task.start, task.stop, dtype=np.int64),
                         native=native, metadata=task.metadata)
    write_part(task.out, task.k, table, token=task.token, compression=task.compression)
    return task.k, m, int(np.count_nonzero(status))


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


def score_space(space, n: Union[int, str, None] = None, seed: int = 0,
                out: Union[str, os.PathLike] = "run.parquet",
                convention: Union[str, Convention] = "macs", batch_size: int = 1,
                weight_dtype: str = "fp32", act_dtype: str = "fp32", device=None,
                chunk_size: Optional[int] = None, n_jobs: Optional[int] = 1,
                progress: bool = True, resume: bool = False, overwrite: bool = False,
                compression: Optional[str] = "zstd",
                encode_block: int = ENCODE_BLOCK) -> ScoreRun:
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
    import uuid

    import joblib

    from . import __version__
    from .scoring import scoring_args
    from .storage import (clean_temporaries, list_parts, read_metadata, read_run_file,
                          remove_run, write_run_file)

    t0 = time.perf_counter()
    if isinstance(space, str):
        from .search_spaces import get_space
        space = get_space(space)
    conv, batch_size, wsize, asize = scoring_args(convention, batch_size, weight_dtype, act_dtype)
    encode_block = int(encode_block)
    if encode_block < 1:
        raise ValueError(f"encode_block must be >= 1, got {encode_block}")

    if n is None or (isinstance(n, str) and n.lower() == "all"):
        if not space.enumerable or space.size is None:
            raise ValueError(f"search space {space.name!r} cannot be enumerated (unbounded or too "
                             "large to list); pass n=<number of candidates> to sample it")
        mode, total, seed = "enumerate", int(space.size), None
    else:
        if isinstance(n, str) or int(n) != n or int(n) < 0:
            raise ValueError(f"n must be a non-negative integer, 'all' or None, got {n!r}")
        mode, total, seed = "sample", int(n), int(seed)
    chunk_size = DEFAULT_CHUNK_SIZE if chunk_size is None else int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_parts = -(-total // chunk_size)

    meta = {
        "version": __version__,
        "convention": conv.name,
        "unit": conv.unit,
        "space": {"name": space.name, "params": space.params},
        "mode": mode,
        "seed": seed,
        "n": total,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
        "weight_dtype": str(weight_dtype),
        "act_dtype": str(act_dtype),
        "weight_bytes_per_element": wsize,
        "act_bytes_per_element": asize,
        "device": None if device is None else {
            "name": device.name, "peak_ops_per_s": float(device.peak_ops_per_s),
            "bytes_per_s": float(device.bytes_per_s)},
    }
    # JSON round trip: what is stored is what is compared on resume
    meta = json.loads(json.dumps(meta, default=_json_default))
    meta_bytes = json.dumps(meta, sort_keys=True).encode()

    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    stored = read_run_file(out)
    parts = list_parts(out)
    if overwrite:
        remove_run(out)
        stored, parts = None, {}
    elif stored is not None or parts:
        if not resume:
            raise FileExistsError(f"{out} already holds a nasflops run ({len(parts)} parts); pass "
                                  "resume=True to finish it or overwrite=True to replace it")
        if stored is None:
            stored = read_metadata(out)
        diff = {k: (stored.get(k), meta.get(k)) for k in sorted(set(stored) | set(meta))
                if stored.get(k) != meta.get(k)}
        if diff:
            lines = "; ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume the run in {out}: its parameters differ ({lines}); "
                             "pass the same parameters, or overwrite=True to start again")
    clean_temporaries(out)
    if stored is None:
        write_run_file(out, meta)

    done = _complete_parts(parts, total, chunk_size)
    todo = [k for k in range(n_parts) if k not in done]
    token = uuid.uuid4().hex[:12]
    table = np.ascontiguousarray(conv.table, dtype=np.int64)
    peak, bw = (float(device.peak_ops_per_s), float(device.bytes_per_s)) if device else (0.0, 0.0)

    def tasks():
        for k in todo:
            start = k * chunk_size
            yield joblib.delayed(_run_chunk)(_ChunkTask(
                space, mode, seed if seed is not None else 0, k, start,
                min(start + chunk_size, total), out, table, batch_size, wsize, asize, peak, bw,
                device is not None, meta_bytes, token, compression, encode_block))

    resumed_rows = sum(min(chunk_size, total - k * chunk_size) for k in done)
    bar = None
    if progress:
        bar, bar_task = _progress_bar(total, resumed_rows, f"{space.name} [{conv.name}]")
        bar.start()
    written = invalid = rows = 0
    try:
        if todo:
            results = joblib.Parallel(n_jobs=n_jobs, prefer="threads",
                                      return_as="generator_unordered")(tasks())
            for _, m, bad in results:
                written += 1
                rows += m
                invalid += bad
                if bar is not None:
                    dt = time.perf_counter() - t0
                    bar.update(bar_task, advance=m, rate=f"{rows / dt:,.0f}" if dt > 0 else "-")
    finally:
        if bar is not None:
            bar.stop()
        clean_temporaries(out, token)
    return ScoreRun(path=out, n=total, n_parts=n_parts, parts_written=written,
                    parts_resumed=len(done), rows_written=rows, n_invalid=invalid,
                    seconds=time.perf_counter() - t0, metadata=meta)


def _complete_parts(parts: dict, total: int, chunk_size: int) -> set:
    """Indices of parts on disk that hold exactly the rows they should.

    A part exists only once fully written (atomic rename); the row count
    read from its footer guards against a foreign or truncated file.
    """
    import pyarrow.parquet as pq

    done = set()
    for k, path in parts.items():
        want = min(chunk_size, total - k * chunk_size)
        if want <= 0:
            raise ValueError(f"{path} is part {k}, beyond the {-(-total // chunk_size)} parts of "
                             "this run; the directory holds another run")
        try:
            rows = pq.read_metadata(path).num_rows
        except Exception:  # unreadable: write it again
            rows = -1
        if rows == want:
            done.add(k)
    return done


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return str(obj)
