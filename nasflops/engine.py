"""The chunk engine: the one way Python hands architectures to the core.

:class:`RawScores` is the set of arrays the core writes (one allocator for
the whole package); :func:`score_into` fills rows of it from a batch;
:func:`score_chunks` splits a batch into chunks for
``joblib.Parallel(prefer="threads")``.  Each chunk task *returns* its arrays
and the caller stitches them, so the task runs unchanged in a thread (the
default: the core releases the GIL), a loky process or a dask worker --
whatever ``joblib.parallel_config(backend=...)`` the user chose.  Results
never depend on the backend, ``n_jobs`` or the chunk size: the core scores
each architecture on its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import _core
from .options import PHASE_METRICS, ScoringOptions

__all__ = ["RawScores", "score_into", "score_block", "score_chunks", "ENCODE_BLOCK",
           "RECORD_BUDGET", "encode_step", "METRICS", "CORE_METRICS"]

#: candidates encoded and scored at a time by streaming callers (the pipeline,
#: sampling), at most
ENCODE_BLOCK = 1 << 12
#: bytes of layer records a streaming caller holds at once, at most (about).
#: Cache-sized on purpose: a block of a few MB is written while the next is
#: encoded into memory the allocator reuses, still in cache when the core
#: reads it.  A block above glibc's mmap threshold (32 MB at most) comes as
#: fresh pages the kernel zeroes first, every block: 64 MB blocks encoded
#: at about half the rate of 8 MB ones (benchmarks/README.md, bench_spaces.py)
RECORD_BUDGET = 8 << 20


def encode_step(step: int, longest: int, cap: int = ENCODE_BLOCK) -> int:
    """Candidates a streaming caller encodes next: twice the last ``step``
    (starting small, so the first blocks measure the space), at most ``cap``,
    and few enough that candidates of ``longest`` layers (the longest seen so
    far) stay within :data:`RECORD_BUDGET`.

    >>> encode_step(1, 200), encode_step(2048, 200), encode_step(4096, 20_000)
    (2, 655, 6)
    """
    fits = RECORD_BUDGET // (max(1, int(longest)) * _core.LAYER_SIZE)
    return int(max(1, min(2 * step, cap, fits)))

#: every integer metric column the core writes, in order
CORE_METRICS: tuple[str, ...] = _core.METRICS
#: the metrics of every result (a phase adds columns: ``options.PHASE_METRICS``)
METRICS: tuple[str, ...] = tuple(m for m in CORE_METRICS
                                 if not any(m in cols for cols in PHASE_METRICS.values()))


@dataclass
class RawScores:
    """The arrays the core writes for ``n`` architectures.

    ``metrics`` is int64 ``(n, len(CORE_METRICS))``, ``status`` and ``bad_layer``
    int64 ``(n,)``, ``latency`` float64 ``(n,)`` or ``None``.  Rows of invalid
    architectures hold -1.
    """

    metrics: np.ndarray
    status: np.ndarray
    bad_layer: np.ndarray
    latency: Optional[np.ndarray]

    @classmethod
    def allocate(cls, n: int, with_latency: bool) -> "RawScores":
        """Uninitialised arrays for ``n`` rows (the core writes every one)."""
        return cls(np.empty((n, len(CORE_METRICS)), dtype=np.int64), np.empty(n, dtype=np.int64),
                   np.empty(n, dtype=np.int64),
                   np.empty(n, dtype=np.float64) if with_latency else None)

    def __len__(self) -> int:
        return int(self.status.shape[0])

    @property
    def arrays(self) -> tuple:
        """``(metrics, status, bad_layer, latency)``."""
        return self.metrics, self.status, self.bad_layer, self.latency

    def rows(self, lo: int, hi: int) -> "RawScores":
        """Rows ``lo .. hi - 1`` as views."""
        return RawScores(self.metrics[lo:hi], self.status[lo:hi], self.bad_layer[lo:hi],
                         None if self.latency is None else self.latency[lo:hi])

    def put(self, lo: int, part: "RawScores") -> None:
        """Copy ``part`` into rows ``lo ..``."""
        hi = lo + len(part)
        self.metrics[lo:hi] = part.metrics
        self.status[lo:hi] = part.status
        self.bad_layer[lo:hi] = part.bad_layer
        if self.latency is not None:
            self.latency[lo:hi] = part.latency

    @classmethod
    def concat(cls, parts: list) -> "RawScores":
        """Rows of several results, in order."""
        lat = None if parts[0].latency is None else np.concatenate([p.latency for p in parts])
        return cls(np.concatenate([p.metrics for p in parts]),
                   np.concatenate([p.status for p in parts]),
                   np.concatenate([p.bad_layer for p in parts]), lat)


def score_into(records: np.ndarray, offsets: np.ndarray, opts: ScoringOptions, out: RawScores,
               start: int = 0, stop: Optional[int] = None) -> RawScores:
    """Score architectures ``start .. stop - 1`` of ``(records, offsets)`` into
    the same rows of ``out``; returns ``out``.  The GIL is released while the
    core runs."""
    stop = offsets.shape[0] - 1 if stop is None else stop
    weights, batch_size, wbytes, abytes, fused, memory, last_call_only, train, half = \
        opts.core_args()
    peak, bw = opts.roofline_args()
    _core.score_range(records, offsets, start, stop, weights, batch_size, wbytes, abytes,
                      out.metrics, out.status, out.bad_layer, peak, bw, out.latency,
                      fused, memory, last_call_only, train, half)
    return out


def score_block(records: np.ndarray, offsets: np.ndarray, opts: ScoringOptions) -> RawScores:
    """Score one self-contained batch (offsets start at 0) into new arrays.

    Module-level and argument-only, so that process backends can pickle it.
    """
    out = RawScores.allocate(offsets.shape[0] - 1, opts.with_latency)
    return score_into(records, offsets, opts, out)


def _chunk_bounds(n: int, n_jobs: int, chunk_size: Optional[int]) -> list[tuple[int, int]]:
    if chunk_size is None:
        # a few chunks per worker for balance, not so many that dispatch shows
        chunk_size = max(1024, -(-n // (4 * n_jobs)))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def score_chunks(specs, opts: ScoringOptions, n_jobs: Optional[int] = 1,
                 chunk_size: Optional[int] = None) -> RawScores:
    """Score a :class:`~nasflops.SpecBatch` in parallel chunks.

    The engine of :func:`nasflops.score`, which validates the arguments and
    builds the result rows.  No shared memory is required: each task returns
    its arrays, so loky processes and dask workers give the same numbers as
    threads.

    Parameters
    ----------
    specs : SpecBatch
        The architectures.
    opts : ScoringOptions
        Convention, batch size, element sizes, device.
    n_jobs : int or None
        joblib's convention (``None``: 1 unless inside ``parallel_config``).
    chunk_size : int, optional
        Architectures per task (default: about four tasks per worker).

    Examples
    --------
    >>> import nasflops
    >>> from nasflops.engine import score_chunks
    >>> from nasflops.options import ScoringOptions
    >>> net = nasflops.Net(3, 8, 8); _ = net.conv(net.input, 4, 3, padding=1)
    >>> specs = nasflops.SpecBatch.from_list([net.records] * 3)
    >>> r = score_chunks(specs, ScoringOptions.make("macs"), n_jobs=2, chunk_size=1)
    >>> r.metrics[:, 1].tolist(), r.status.tolist()
    ([6912, 6912, 6912], [0, 0, 0])
    """
    import joblib

    n = len(specs)
    jobs = max(1, joblib.effective_n_jobs(n_jobs))
    bounds = _chunk_bounds(n, jobs, chunk_size)
    if len(bounds) <= 1 or jobs == 1:
        # serial: the core writes straight into the outputs, no stitching
        out = RawScores.allocate(n, opts.with_latency)
        for lo, hi in bounds:
            score_into(specs.records, specs.offsets, opts, out, lo, hi)
        return out

    def tasks():
        for lo, hi in bounds:
            part = specs[lo:hi]  # views of the records, offsets rebased to 0
            yield joblib.delayed(score_block)(part.records, part.offsets, opts)

    # results arrive in order; each is copied into place and dropped, so at
    # most the pre-dispatched chunks exist twice
    out = RawScores.allocate(n, opts.with_latency)
    results = joblib.Parallel(n_jobs=n_jobs, prefer="threads", return_as="generator")(tasks())
    for (lo, _), part in zip(bounds, results):
        out.put(lo, part)
    return out
