"""Results on disk: a Parquet dataset of part files, plus its metadata.

Layout of a run directory (written by :func:`nasflops.score_space`)::

    run.parquet/
        _nasflops.json          the run's parameters (written first)
        part-000000.parquet     candidates 0 .. chunk_size - 1
        part-000001.parquet     ...

Columns of every part, built from numpy arrays (never per-row Python
objects): ``arch_id`` (int64, the candidate's position in the space's sample
stream or enumeration), the native encoding under the space's own field names
(NB201: ``arch``; OFA: ``ks``, ``e``, ``d``, ``r``), every metric of
:func:`nasflops.score` under the same names (``ops``, ``macs``, ``params``,
``weight_bytes``, ``act_bytes``, ``peak_act_bytes``, ``read_bytes``,
``write_bytes``; int64, -1 for invalid rows), the columns a language-model
phase adds (``active_params``, ``kv_cache_bytes``; training: ``grad_bytes``,
``optimizer_bytes``, ``saved_act_bytes``, ``recompute_act_bytes``),
``status`` (int8, 0 = valid), ``bad_layer`` (int32, -1 when valid) and, with
a device, ``latency_s``.

Schema metadata, under the single key ``nasflops``, is a JSON object: package
``version``, ``convention`` and its ``unit``, ``space`` (``name`` and
``params``), ``mode`` (``sample``/``enumerate``), ``seed``, ``n``,
``chunk_size``, ``batch_size``, ``weight_dtype``/``act_dtype`` and their
``*_bytes_per_element``, ``memory``, ``device``, ``fused_attention``, the
``phase`` (``forward``, ``prefill``, ``decode``, ``train``) and how causal
attention is counted (``causal``: ``full`` or ``half``).

A part is written as ``.part-XXXXXX.parquet.<token>.incomplete`` and renamed
when complete (``os.replace`` is atomic), so a killed run leaves complete
parts only; the leading dot hides temporaries from ``pyarrow.dataset``.

Integrity.  Parquet pages carry CRC checksums (``write_page_checksum``), and
``_nasflops.json`` records, per committed part, its rows, size and a 128-bit
XXH3 hash of the whole file.  Reading verifies every recorded part (a
memory-mapped hash at several GB/s) and refuses one that differs or is
missing (:class:`CorruptResultsError`, naming the file); resuming rewrites
it.  One writer at a time: :class:`RunLock` holds an exclusive ``flock`` on
``.nasflops.lock`` in the directory for as long as a run writes.

The run file::

    {"format": "nasflops-run/1",
     "metadata": {...},                    # what read_metadata returns
     "parts": {"part-000000.parquet": {"rows": 131072, "bytes": 6502211,
                                       "xxh3_128": "9f0c..."}, ...}}

(a run file of an older nasflops is the metadata alone: its parts are
verified by their page checksums only).
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import mmap
import os
import re
import socket
import time
import uuid
from typing import Iterator, Mapping, Optional, Union

import numpy as np

from .engine import CORE_METRICS, METRICS
from .options import META_KEY, metadata_of_schema

__all__ = ["META_KEY", "RUN_FILE", "LOCK_FILE", "read_results", "read_metadata", "open_dataset",
           "scores_table", "write_results", "write_table", "part_name", "list_parts",
           "metadata_of_schema", "atomic_path", "RunWriter", "write_part", "RunLock",
           "CorruptResultsError", "RunLockedError", "file_checksum", "verify_parts"]

#: run metadata file inside a dataset directory (``_`` prefix: pyarrow skips it)
RUN_FILE = "_nasflops.json"
#: the writers' lock file (leading dot: pyarrow skips it; removed on release)
LOCK_FILE = ".nasflops.lock"
RUN_FORMAT = "nasflops-run/1"
#: the whole-file hash recorded per part (xxhash's XXH3, 128 bits)
HASH = "xxh3_128"
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_TMP_SUFFIX = ".incomplete"


class CorruptResultsError(ValueError):
    """A results dataset whose files are not what was written: a part that
    differs from its recorded checksum, is missing, or a run file that
    cannot be read.  The message names the file."""


class RunLockedError(OSError):
    """Another process holds the write lock of an output directory."""


def part_name(k: int) -> str:
    """File name of part ``k`` (zero-padded, so names sort like indices)."""
    return f"part-{int(k):06d}.parquet"


def list_parts(path: Union[str, os.PathLike]) -> dict[int, str]:
    """``{chunk index: path}`` of the complete part files in a run directory."""
    path = os.fspath(path)
    out = {}
    if not os.path.isdir(path):
        return out
    for name in os.listdir(path):
        m = _PART_RE.match(name)
        if m:
            out[int(m.group(1))] = os.path.join(path, name)
    return dict(sorted(out.items()))


def clean_temporaries(path: str, token: Optional[str] = None) -> None:
    """Remove leftover ``.incomplete`` files (only this run's when ``token`` is given)."""
    pattern = f".*.{token or '*'}{_TMP_SUFFIX}"
    if not os.path.isdir(path):
        return
    for name in fnmatch.filter(os.listdir(path), pattern):
        try:
            os.remove(os.path.join(path, name))
        except FileNotFoundError:  # another cleaner got there first
            pass


def remove_run(path: str) -> None:
    """Delete a run's parts, temporaries and metadata file (nothing else)."""
    for f in list_parts(path).values():
        os.remove(f)
    clean_temporaries(path)
    run = os.path.join(path, RUN_FILE)
    if os.path.exists(run):
        os.remove(run)


@contextlib.contextmanager
def atomic_path(final: str, token: Optional[str] = None) -> Iterator[str]:
    """Write ``final`` through a hidden temporary: yields the temporary's path.

    The temporary (``.<name>.<token>.incomplete``, hidden from
    ``pyarrow.dataset`` by its leading dot) is renamed to ``final`` when the
    block ends normally (``os.replace`` is atomic) and removed whatever
    happens otherwise, so ``final`` is complete or absent.
    """
    head, name = os.path.split(final)
    tmp = os.path.join(head, f".{name}.{token or uuid.uuid4().hex[:12]}{_TMP_SUFFIX}")
    try:
        yield tmp
        _fsync(tmp)                  # the bytes reach the disk before the name does
        os.replace(tmp, final)
        _fsync(head or ".", directory=True)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _fsync(path: str, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:            # some platforms cannot open a directory: best effort
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def file_checksum(path: str) -> dict:
    """``{"bytes": size, "xxh3_128": hex digest}`` of a whole file.

    The file is memory-mapped and hashed with XXH3 (several GB/s), so
    verifying a dataset costs a fraction of decoding it.

    Examples
    --------
    >>> import os, tempfile
    >>> from nasflops.storage import file_checksum
    >>> f = os.path.join(tempfile.mkdtemp(), "x"); _ = open(f, "wb").write(b"nasflops")
    >>> file_checksum(f)["bytes"], len(file_checksum(f)["xxh3_128"])
    (8, 32)
    """
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                h.update(mm)
    return {"bytes": size, HASH: h.hexdigest()}


def write_run_file(path: str, meta: Optional[Mapping], parts: Optional[Mapping] = None) -> None:
    """Write ``_nasflops.json`` (metadata and the parts' checksums) atomically."""
    doc = {"format": RUN_FORMAT, "metadata": meta, "parts": dict(sorted((parts or {}).items()))}
    with atomic_path(os.path.join(path, RUN_FILE)) as tmp:
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)


def read_run(path) -> Optional[tuple[Optional[dict], dict]]:
    """``(metadata, parts)`` of a run directory's ``_nasflops.json``, or ``None``
    when it has none.  ``parts`` maps part file names to their recorded rows,
    size and hash (empty for a run file of an older nasflops).

    Raises :class:`CorruptResultsError` naming the file when it is not a run
    file (not JSON, not the expected structure).
    """
    f = os.path.join(os.fspath(path), RUN_FILE)
    try:
        with open(f, "rb") as fh:
            doc = json.loads(fh.read())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise CorruptResultsError(f"{f} is corrupt ({e}): it is not a nasflops run file; "
                                  "restore it, or delete it to read the parts' own metadata") from None
    if not isinstance(doc, dict):
        raise CorruptResultsError(f"{f} is corrupt: expected a JSON object, got "
                                  f"{type(doc).__name__}")
    if "format" not in doc:        # an older nasflops: the metadata alone
        return doc, {}
    meta, parts = doc.get("metadata"), doc.get("parts")
    if (doc["format"] != RUN_FORMAT or not isinstance(parts, dict)
            or not (meta is None or isinstance(meta, dict))
            or not all(isinstance(v, dict) and _PART_RE.match(str(k)) for k, v in parts.items())):
        raise CorruptResultsError(f"{f} is corrupt: not a {RUN_FORMAT} run file "
                                  f"(format {doc.get('format')!r})")
    return meta, parts


def read_run_file(path) -> Optional[dict]:
    """The run metadata of a directory, or ``None`` when it has none."""
    run = read_run(path)
    return None if run is None else run[0]


class RunLock:
    """An exclusive lock on an output directory, held while a run writes it.

    An ``flock`` on ``<dir>/.nasflops.lock``, which holds the owner's pid and
    host for the message a second writer gets.  The kernel drops the lock
    when its process dies, so a killed run never leaves a stale lock; the
    file is removed on release (after checking, on acquire, that the file
    locked is still the one named, so two writers can never both win).

    Examples
    --------
    >>> import tempfile
    >>> from nasflops.storage import RunLock, RunLockedError
    >>> d = tempfile.mkdtemp()
    >>> with RunLock(d):
    ...     try:
    ...         RunLock(d).acquire()
    ...     except RunLockedError as e:
    ...         print("refused")
    refused
    """

    def __init__(self, path):
        self.dir = os.fspath(path)
        self.path = os.path.join(self.dir, LOCK_FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunLockedError` naming its holder."""
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if not _try_lock(fd):
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    raise RunLockedError(f"{self.dir} is being written by another nasflops run "
                                         f"({holder}); wait for it to finish or write elsewhere")
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:   # released and removed in between: try again
                same = False
            except BaseException:
                os.close(fd)
                raise
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.remove(self.path)
        except OSError:
            pass
        os.close(fd)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    """Take an exclusive, non-blocking lock on ``fd``; False if another holds it."""
    try:
        import fcntl
    except ImportError:          # Windows
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# ------------------------------------------------------------------ writing
def _metadata_bytes(metadata) -> Optional[bytes]:
    if metadata is None:
        return None
    if isinstance(metadata, (bytes, bytearray)):
        return bytes(metadata)
    return json.dumps(metadata, sort_keys=True, default=str).encode()


def scores_table(scores, status=None, bad_layer=None, latency=None, *, arch_id=None,
                 native: Optional[Mapping] = None, metadata=None, extra_metrics=()):
    """Results as a pyarrow Table, built column-wise from numpy.

    Parameters
    ----------
    scores : Scores (structured array) or int64 array of shape (n, len(CORE_METRICS))
        Either what :func:`nasflops.score` returns, or the core's raw metric
        matrix, then with ``status``, ``bad_layer`` and optionally ``latency``.
    extra_metrics : sequence of str
        With a raw matrix: the columns beyond ``METRICS`` its phase keeps
        (``ScoringOptions.extra_metrics``); a ``Scores`` carries its own.
    arch_id : int array, optional
        Candidate ids (default ``0 .. n - 1``).
    native : mapping of column name -> pyarrow Array or numpy array, optional
        The native encoding (``space.arrow_columns(cols)``).
    metadata : dict or bytes, optional
        Stored under the schema-metadata key ``nasflops``.  With a
        :class:`~nasflops.Scores` and no metadata, its convention, batch
        size and dtypes are stored.

    Examples
    --------
    >>> import nasflops
    >>> from nasflops.storage import scores_table
    >>> net = nasflops.Net(3, 8, 8); _ = net.conv(net.input, 4, 3, padding=1)
    >>> t = scores_table(nasflops.score([net.records, net.records]))
    >>> t.column_names[:3], t["macs"].to_pylist()
    (['arch_id', 'ops', 'macs'], [6912, 6912])
    """
    import pyarrow as pa

    if isinstance(scores, np.ndarray) and scores.dtype.names:
        n = len(scores)
        cols = {m: scores[m] for m in CORE_METRICS if m in scores.dtype.names}
        status = scores["status"]
        bad_layer = scores["bad_layer"]
        latency = scores["latency_s"] if "latency_s" in scores.dtype.names else None
        if metadata is None and getattr(scores, "convention", ""):
            metadata = {"convention": scores.convention, "unit": scores.unit,
                        "batch_size": scores.batch_size, "weight_dtype": scores.weight_dtype,
                        "act_dtype": scores.act_dtype, "phase": scores.phase,
                        "causal": scores.causal}
    else:
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != len(CORE_METRICS):
            raise ValueError(f"metrics must have shape (n, {len(CORE_METRICS)}), got {scores.shape}")
        if status is None or bad_layer is None:
            raise ValueError("status and bad_layer are required with a metric matrix")
        unknown = [m for m in extra_metrics if m not in CORE_METRICS or m in METRICS]
        if unknown:
            raise ValueError(f"extra_metrics {unknown} are not phase metrics of the core "
                             f"({', '.join(m for m in CORE_METRICS if m not in METRICS)})")
        n = scores.shape[0]
        cols = {m: scores[:, CORE_METRICS.index(m)] for m in METRICS + tuple(extra_metrics)}
    arrays, names = [], []

    def add(name, values, dtype):
        # one contiguous copy at most (a strided column), then zero-copy into Arrow
        arrays.append(pa.array(np.ascontiguousarray(values, dtype=dtype)))
        names.append(name)

    add("arch_id", np.arange(n, dtype=np.int64) if arch_id is None else arch_id, np.int64)
    for name, arr in (native or {}).items():
        if name in names or name in cols:
            raise ValueError(f"native column {name!r} clashes with a result column")
        if isinstance(arr, np.ndarray):
            arr = pa.array(arr)
        if len(arr) != n:
            raise ValueError(f"native column {name!r} has {len(arr)} rows, expected {n}")
        arrays.append(arr)
        names.append(name)
    for m in cols:
        add(m, cols[m], np.int64)
    add("status", status, np.int8)
    add("bad_layer", bad_layer, np.int32)
    if latency is not None:
        add("latency_s", latency, np.float64)
    table = pa.Table.from_arrays(arrays, names=names)
    meta = _metadata_bytes(metadata)
    if meta is not None:
        table = table.replace_schema_metadata({META_KEY: meta})
    return table


def write_part(path: str, k: int, table, token: str = "0",
               compression: Optional[str] = "zstd") -> str:
    """Write part ``k`` of a run atomically; return its final path.

    The file is written under a hidden temporary name and renamed once
    complete; the temporary is removed in ``finally`` whatever happens.
    """
    return commit_part(path, k, table, token, compression)[0]


def commit_part(path: str, k: int, table, token: str = "0",
                compression: Optional[str] = "zstd") -> tuple[str, dict]:
    """Write part ``k`` atomically; return its path and what the run file
    records of it (``rows``, ``bytes``, and the hash of exactly the bytes
    renamed into place)."""
    import pyarrow.parquet as pq

    final = os.path.join(path, part_name(k))
    with atomic_path(final, token) as tmp:
        # statistics per row group let readers skip data on filters; metric
        # columns are near-unique integers, where dictionaries only cost time;
        # every page carries a CRC
        pq.write_table(table, tmp, compression=compression, write_statistics=True,
                       write_page_checksum=True,
                       use_dictionary=[c for c in table.column_names if c in ("status", "bad_layer")
                                       or not _is_metric(c)])
        info = {"rows": table.num_rows, **file_checksum(tmp)}
    return final, info


def _is_metric(name: str) -> bool:
    return name in CORE_METRICS or name in ("arch_id", "latency_s")


def write_table(path: Union[str, os.PathLike], table, overwrite: bool = False,
                compression: Optional[str] = "zstd") -> str:
    """Write a results Table (e.g. a filtered one) as a one-part dataset; return its directory.

    The table's ``nasflops`` schema metadata, if any, is kept and also
    written to ``_nasflops.json``.  Readable with :func:`read_results`.

    Examples
    --------
    >>> import nasflops                                         # doctest: +SKIP
    >>> t = nasflops.analytics.filter_results("ofa.parquet", nasflops.Budget(max_macs=200_000_000))  # doctest: +SKIP
    >>> write_table("ofa-small.parquet", t)                     # doctest: +SKIP
    'ofa-small.parquet'
    """
    path = os.fspath(path)
    created = not os.path.exists(path)
    os.makedirs(path, exist_ok=True)
    written = False
    try:
        with RunLock(path):
            if list_parts(path) or os.path.exists(os.path.join(path, RUN_FILE)):
                if not overwrite:
                    raise FileExistsError(f"{path} already holds results; pass overwrite=True to "
                                          "replace them")
                remove_run(path)
            meta = (table.schema.metadata or {}).get(META_KEY.encode())
            # the part first, then the run file recording it: whatever fails
            # (a full disk), no directory is left with metadata and no data
            final, info = commit_part(path, 0, table, compression=compression)
            try:
                write_run_file(path, None if meta is None else json.loads(meta),
                               {part_name(0): info})
            except BaseException:
                os.remove(final)
                raise
            written = True
    finally:
        if created and not written:
            _remove_if_empty(path)
    return path


def _remove_if_empty(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def write_results(path: Union[str, os.PathLike], scores, *, arch_id=None, native=None,
                  metadata=None, compression: Optional[str] = "zstd", overwrite: bool = False) -> str:
    """Write in-memory results (e.g. from :func:`nasflops.score`) as a one-part dataset.

    Returns the directory, readable with :func:`read_results`.
    """
    table = scores_table(scores, arch_id=arch_id, native=native, metadata=metadata)
    return write_table(path, table, overwrite=overwrite, compression=compression)


# ------------------------------------------------------------------ reading
def part_files(path: str) -> list[str]:
    if os.path.isdir(path):
        files = list(list_parts(path).values())
        if not files:
            raise FileNotFoundError(f"{path} holds no result parts (part-*.parquet)")
        return files
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError(f"no results at {path}")


def verify_parts(path) -> int:
    """Check a run directory's parts against ``_nasflops.json``; return how
    many were verified by their recorded hash.

    Every part the run file records must exist with its recorded size and
    hash; otherwise :class:`CorruptResultsError` names the file.  Parts it
    does not record (a run file of an older nasflops, or a part renamed
    into place just before a crash) are left to their page checksums.

    Examples
    --------
    >>> import nasflops, tempfile                              # doctest: +SKIP
    >>> verify_parts("run.parquet")                            # doctest: +SKIP
    3
    """
    path = os.fspath(path)
    run = read_run(path)
    if run is None:
        return 0
    on_disk = {os.path.basename(f) for f in list_parts(path).values()}
    for name in run[1]:
        if name not in on_disk:
            raise CorruptResultsError(f"{os.path.join(path, name)} is missing: {RUN_FILE} records "
                                      "it as written; resume the run to write it again")
    # parts are hashed in parallel (xxhash releases the GIL), first failure named
    from concurrent.futures import ThreadPoolExecutor

    names = sorted(run[1])
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1, len(names)))) as pool:
        whys = pool.map(lambda n: part_mismatch(os.path.join(path, n), run[1][n]), names)
        for name, why in zip(names, whys):
            if why:
                raise CorruptResultsError(f"{os.path.join(path, name)} is corrupt: {why}; resume "
                                          "the run (--resume) to write it again")
    return len(names)


def part_mismatch(f: str, rec: Mapping) -> str:
    """Why the file ``f`` differs from its record ``rec``, or ``""``."""
    size = os.path.getsize(f)
    if size != rec.get("bytes"):
        return f"{size:,} bytes where {rec.get('bytes')!r} were written"
    if file_checksum(f)[HASH] != rec.get(HASH):
        return "its content differs from the checksum recorded when it was written"
    return ""


def _parquet_format():
    """Parquet reading that verifies the page checksums of what it decodes."""
    import pyarrow.dataset as ds
    return ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
        page_checksum_verification=True))


def open_dataset(path: Union[str, os.PathLike], verify: bool = True):
    """The results at ``path`` as a ``pyarrow.dataset.Dataset`` (lazy, memory-mapped).

    Parts are listed in chunk order; temporaries and the metadata file are
    not part of it.  The schema carries the ``nasflops`` metadata.  With
    ``verify`` (the default), every part recorded in ``_nasflops.json`` is
    checked against its recorded size and hash first
    (:func:`verify_parts`), and pages are checked against their CRCs as
    they are decoded (only for parts without a recorded hash: a verified
    hash already covers every byte); a corrupt or missing part raises
    :class:`CorruptResultsError` naming the file.
    """
    import pyarrow.dataset as ds
    from pyarrow import fs

    path = os.fspath(path)
    files = part_files(path)
    meta, hashed = None, 0
    if os.path.isdir(path):
        if verify:
            hashed = verify_parts(path)
        meta = read_run_file(path)
    # a part whose whole-file hash was just checked needs no page CRC checks;
    # parts without a recorded hash (a run file of an older nasflops, a part a
    # kill left unrecorded, a lone file) get them as their pages are decoded
    pages = verify and hashed < len(files)
    try:
        dataset = ds.dataset(files, format=_parquet_format() if pages else "parquet",
                             filesystem=fs.LocalFileSystem(use_mmap=True))
    except (OSError, ValueError) as e:   # pyarrow's errors name no file when a footer is bad
        raise CorruptResultsError(f"{path}: a part cannot be opened as Parquet ({_one_line(e)})") from None
    if not dataset.schema.metadata or META_KEY.encode() not in dataset.schema.metadata:
        if meta is not None:
            dataset = dataset.replace_schema(dataset.schema.with_metadata(
                {META_KEY: json.dumps(meta, sort_keys=True)}))
    return dataset


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def read_results(path, columns: Optional[list] = None, filter=None, as_dataset: bool = False,
                 verify: bool = True):
    """Read a results dataset (a run directory or one Parquet file).

    Parameters
    ----------
    path : str or path-like
        What :func:`nasflops.score_space` or :func:`write_results` wrote.
    columns : list of str, optional
        Columns to read (projection push-down: others are never decoded).
    filter : pyarrow.compute.Expression or Budget, optional
        Row filter, pushed down to the Parquet reader (row groups whose
        statistics exclude it are skipped).  A :class:`~nasflops.Budget` is
        turned into its expression using the dataset's convention.
    as_dataset : bool
        Return the lazy ``pyarrow.dataset.Dataset`` instead of a Table
        (``columns``/``filter`` must then be omitted).
    verify : bool
        Check every part against the hash recorded when it was written, and
        pages against their CRCs (:func:`open_dataset`); a corrupt part
        raises :class:`CorruptResultsError` naming the file.

    Returns
    -------
    pyarrow.Table or pyarrow.dataset.Dataset
        Files are memory-mapped; numeric columns come out as Arrow buffers
        that ``to_numpy()`` views without copying (single-chunk, no nulls),
        which is as zero-copy as Parquet decoding allows.  The schema
        metadata key ``nasflops`` holds the run's metadata
        (:func:`read_metadata`).

    Examples
    --------
    >>> import nasflops                                        # doctest: +SKIP
    >>> t = nasflops.read_results("run.parquet", columns=["arch_id", "macs"],
    ...                           filter=nasflops.Budget(max_macs=300_000_000))  # doctest: +SKIP
    """
    dataset = open_dataset(path, verify=verify)
    if as_dataset:
        if columns is not None or filter is not None:
            raise ValueError("columns and filter apply to tables; with as_dataset=True pass them "
                             "to dataset.to_table(...)")
        return dataset
    if hasattr(filter, "expression"):    # a nasflops.Budget
        filter = filter.expression(metadata_of_schema(dataset.schema))
    try:
        table = dataset.to_table(columns=columns, filter=filter)
    except OSError as e:     # a page that fails its CRC: name the dataset
        raise CorruptResultsError(f"{os.fspath(path)}: {_one_line(e)}") from None
    if dataset.schema.metadata:
        table = table.replace_schema_metadata(dataset.schema.metadata)
    return table


def read_metadata(path) -> dict:
    """The ``nasflops`` metadata of results: a path, Table, Dataset or schema.

    Examples
    --------
    >>> import nasflops                                        # doctest: +SKIP
    >>> nasflops.read_metadata("run.parquet")["convention"]    # doctest: +SKIP
    'macs'
    """
    import pyarrow as pa

    if isinstance(path, pa.Schema):
        return metadata_of_schema(path)
    if hasattr(path, "schema") and not isinstance(path, (str, os.PathLike)):
        return metadata_of_schema(path.schema)
    path = os.fspath(path)
    if os.path.isdir(path):
        meta = read_run_file(path)
        if meta is not None:
            return meta
    import pyarrow.parquet as pq
    files = part_files(path)
    try:
        meta = metadata_of_schema(pq.read_schema(files[0]))
    except (OSError, ValueError) as e:
        raise CorruptResultsError(f"{files[0]}: cannot read its metadata ({_one_line(e)})") from None
    if not meta:
        raise ValueError(f"{files[0]} has no '{META_KEY}' metadata: not written by nasflops")
    return meta


# ------------------------------------------------------------- run directories
class RunWriter:
    """Owns one run directory: its lock, its metadata, its part files, and resuming it.

    The pipeline only computes tables and hands them to :func:`commit_part`
    (possibly on another machine), then reports each committed part to
    :meth:`record`; everything about the directory's state is decided here:

    * the directory is locked (:class:`RunLock`) from construction to
      :meth:`close`: a second writer gets :class:`RunLockedError`;
    * a new run writes ``_nasflops.json`` first, then parts, each recorded
      in the run file (rows, size, hash) once renamed into place;
    * ``overwrite`` removes a previous run's parts and metadata (nothing else);
    * ``resume`` requires the stored parameters to equal the asked ones
      exactly (else ``ValueError`` naming the differences) and keeps every
      part that verifies: its recorded hash, or for a part never recorded
      (the run was killed between its rename and its record) a full read
      checking page checksums, rows, ``arch_id`` and metadata.  A part that
      fails is deleted, listed in :attr:`repaired` with the reason, and
      written again;
    * anything else in an existing run is refused (``FileExistsError``);
    * a run that fails before any part is recorded leaves nothing behind
      (:meth:`close` with ``failed=True``), not a directory of metadata.

    Parameters
    ----------
    path : path-like
        The dataset directory (created if missing).
    metadata : dict
        The run's parameters; JSON-serialisable, stored and compared as JSON.
    n_rows, chunk_size : int
        Rows of the complete dataset and rows per part: part ``k`` holds rows
        ``k * chunk_size ..``.
    resume, overwrite : bool
        What to do with a run already in ``path``.

    Attributes
    ----------
    done : set of int
        Parts found complete and kept.
    repaired : list of (str, str)
        Parts found damaged on resume (file name, why), deleted to be rewritten.
    token : str
        Marks this writer's temporaries (removed by :meth:`close`).
    """

    #: at most one rewrite of the run file per this many seconds while parts arrive
    flush_seconds = 1.0

    def __init__(self, path, metadata: Mapping, n_rows: int, chunk_size: int,
                 resume: bool = False, overwrite: bool = False):
        self.path = os.fspath(path)
        # JSON round trip: what is stored is what is compared on resume
        self.metadata = json.loads(json.dumps(metadata, sort_keys=True))
        self.n_rows, self.chunk_size = int(n_rows), int(chunk_size)
        self.n_parts = -(-self.n_rows // self.chunk_size)
        self.token = uuid.uuid4().hex[:12]
        self.repaired: list[tuple[str, str]] = []
        self.parts: dict[str, dict] = {}
        self._dirty, self._flushed = False, time.monotonic()
        self._created_dir = not os.path.exists(self.path)
        self._created_run = False
        os.makedirs(self.path, exist_ok=True)
        self._lock = RunLock(self.path)
        try:
            self._lock.acquire()
            self._open(resume, overwrite)
        except BaseException:
            self.close(failed=True)
            raise

    def _open(self, resume: bool, overwrite: bool) -> None:
        if overwrite:      # before reading anything: a corrupt run file is replaced too
            remove_run(self.path)
        run, parts = read_run(self.path), list_parts(self.path)
        if run is not None or parts:
            if not resume:
                raise FileExistsError(f"{self.path} already holds a nasflops run ({len(parts)} "
                                      "parts); pass resume=True to finish it or overwrite=True to "
                                      "replace it")
            stored = run[0] if run is not None and run[0] is not None else read_metadata(self.path)
            self._check_same(stored)
        clean_temporaries(self.path)
        recorded = {} if run is None else run[1]
        self.done = self._complete_parts(parts, recorded)
        if run is None:
            self._created_run = True
        self._write_run_file()

    @property
    def metadata_bytes(self) -> bytes:
        """The metadata as stored in every part's schema."""
        return json.dumps(self.metadata, sort_keys=True).encode()

    def rows_of(self, k: int) -> tuple[int, int]:
        """Row range ``(start, stop)`` of part ``k``."""
        start = k * self.chunk_size
        return start, min(start + self.chunk_size, self.n_rows)

    def todo(self) -> Iterator[int]:
        """Parts still to write, in order (lazily: a run may have billions)."""
        return (k for k in range(self.n_parts) if k not in self.done)

    def record(self, k: int, info: Mapping) -> None:
        """Record committed part ``k`` (rows, size, hash) in the run file.

        The run file is rewritten at most every :attr:`flush_seconds` (and
        on :meth:`close`), so its cost does not grow with the square of the
        number of parts; a part committed but not yet recorded when a run
        is killed is verified in full on resume.
        """
        start, stop = self.rows_of(k)
        if info.get("rows") != stop - start:
            raise ValueError(f"part {k} of {self.path} has {info.get('rows')} rows, expected "
                             f"{stop - start}")
        self.parts[part_name(k)] = dict(info)
        self._dirty = True
        if time.monotonic() - self._flushed >= self.flush_seconds:
            self._write_run_file()

    def close(self, failed: bool = False) -> None:
        """Remove this writer's temporaries and release the lock.  After a
        failure, a run this writer created that holds no part is removed
        (and its directory, if this writer created it and it is empty)."""
        try:
            if os.path.isdir(self.path) and self._lock.held:
                clean_temporaries(self.path, self.token)
                if failed and self._created_run and not list_parts(self.path):
                    remove_run(self.path)
                elif self._dirty:
                    self._write_run_file()
        finally:
            self._lock.release()
            if failed and self._created_dir:
                _remove_if_empty(self.path)

    def _write_run_file(self) -> None:
        write_run_file(self.path, self.metadata, self.parts)
        self._dirty, self._flushed = False, time.monotonic()

    def _check_same(self, stored: Mapping) -> None:
        meta = self.metadata
        diff = {k: (stored.get(k), meta.get(k)) for k in sorted(set(stored) | set(meta))
                if stored.get(k) != meta.get(k)}
        if diff:
            lines = "; ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume the run in {self.path}: its parameters differ "
                             f"({lines}); pass the same parameters, or overwrite=True to start again")

    def _complete_parts(self, parts: Mapping[int, str], recorded: Mapping[str, dict]) -> set:
        """Indices of parts on disk that verify (see the class); the others
        are deleted and listed in :attr:`repaired`."""
        done = set()
        for k, path in parts.items():
            start, stop = self.rows_of(k)
            if stop <= start:
                raise ValueError(f"{path} is part {k}, beyond the {self.n_parts} parts of this "
                                 "run; the directory holds another run")
            name = part_name(k)
            rec = recorded.get(name)
            if rec is not None:
                why = part_mismatch(path, rec) or (
                    "" if rec.get("rows") == stop - start else
                    f"it was recorded with {rec.get('rows')!r} rows, expected {stop - start}")
            else:
                why = self._unrecorded_mismatch(path, start, stop)
            if why:
                os.remove(path)
                self.repaired.append((name, why))
                continue
            self.parts[name] = dict(rec) if rec is not None else {"rows": stop - start,
                                                                  **file_checksum(path)}
            done.add(k)
        return done

    def _unrecorded_mismatch(self, path: str, start: int, stop: int) -> str:
        """Why a part the run file does not record cannot be kept, or ``""``:
        it must decode with valid page checksums, carry this run's metadata
        and hold exactly the ``arch_id`` range of its position."""
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, page_checksum_verification=True, memory_map=True)
        except Exception as e:  # anything unreadable is rewritten, whatever pyarrow says
            return f"it is not readable Parquet ({_one_line(e)[:200]})"
        if (table.schema.metadata or {}).get(META_KEY.encode()) != self.metadata_bytes:
            return "its metadata is not this run's"
        if table.num_rows != stop - start:
            return f"it holds {table.num_rows:,} rows, expected {stop - start:,}"
        ids = table.column("arch_id").to_numpy() if "arch_id" in table.column_names else None
        if ids is None or not np.array_equal(ids, np.arange(start, stop, dtype=np.int64)):
            return f"its arch_id column is not {start}..{stop - 1} (a part of another position)"
        return ""
