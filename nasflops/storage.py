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
``write_bytes``; int64, -1 for invalid rows), ``status`` (int8, 0 = valid),
``bad_layer`` (int32, -1 when valid) and, with a device, ``latency_s``.

Schema metadata, under the single key ``nasflops``, is a JSON object: package
``version``, ``convention`` and its ``unit``, ``space`` (``name`` and
``params``), ``mode`` (``sample``/``enumerate``), ``seed``, ``n``,
``chunk_size``, ``batch_size``, ``weight_dtype``/``act_dtype`` and their
``*_bytes_per_element``, and ``device``.

A part is written as ``.part-XXXXXX.parquet.<token>.incomplete`` and renamed
when complete (``os.replace`` is atomic), so a killed run leaves complete
parts only; the leading dot hides temporaries from ``pyarrow.dataset``.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import uuid
from typing import Iterator, Mapping, Optional, Union

import numpy as np

from .engine import METRICS
from .options import META_KEY, metadata_of_schema

__all__ = ["META_KEY", "RUN_FILE", "read_results", "read_metadata", "open_dataset",
           "scores_table", "write_results", "write_table", "part_name", "list_parts",
           "metadata_of_schema", "atomic_path", "RunWriter", "write_part"]

#: run metadata file inside a dataset directory (``_`` prefix: pyarrow skips it)
RUN_FILE = "_nasflops.json"
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_TMP_SUFFIX = ".incomplete"


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
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_run_file(path: str, meta: Mapping) -> None:
    """Write ``_nasflops.json`` atomically."""
    with atomic_path(os.path.join(path, RUN_FILE)) as tmp:
        with open(tmp, "w") as fh:
            json.dump(meta, fh, indent=1, sort_keys=True)


def read_run_file(path: str) -> Optional[dict]:
    """The run metadata of a directory, or ``None`` when it has none."""
    f = os.path.join(os.fspath(path), RUN_FILE)
    if not os.path.exists(f):
        return None
    with open(f) as fh:
        return json.load(fh)


# ------------------------------------------------------------------ writing
def _metadata_bytes(metadata) -> Optional[bytes]:
    if metadata is None:
        return None
    if isinstance(metadata, (bytes, bytearray)):
        return bytes(metadata)
    return json.dumps(metadata, sort_keys=True, default=str).encode()


def scores_table(scores, status=None, bad_layer=None, latency=None, *, arch_id=None,
                 native: Optional[Mapping] = None, metadata=None):
    """Results as a pyarrow Table, built column-wise from numpy.

    Parameters
    ----------
    scores : Scores (structured array) or int64 array of shape (n, len(METRICS))
        Either what :func:`nasflops.score` returns, or the raw metric matrix,
        then with ``status``, ``bad_layer`` and optionally ``latency``.
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
        cols = {m: scores[m] for m in METRICS}
        status = scores["status"]
        bad_layer = scores["bad_layer"]
        latency = scores["latency_s"] if "latency_s" in scores.dtype.names else None
        if metadata is None and getattr(scores, "convention", ""):
            metadata = {"convention": scores.convention, "unit": scores.unit,
                        "batch_size": scores.batch_size, "weight_dtype": scores.weight_dtype,
                        "act_dtype": scores.act_dtype}
    else:
        scores = np.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != len(METRICS):
            raise ValueError(f"metrics must have shape (n, {len(METRICS)}), got {scores.shape}")
        if status is None or bad_layer is None:
            raise ValueError("status and bad_layer are required with a metric matrix")
        n = scores.shape[0]
        cols = {m: scores[:, j] for j, m in enumerate(METRICS)}
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
    for m in METRICS:
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
    import pyarrow.parquet as pq

    final = os.path.join(path, part_name(k))
    with atomic_path(final, token) as tmp:
        # statistics per row group let readers skip data on filters; metric
        # columns are near-unique integers, where dictionaries only cost time
        pq.write_table(table, tmp, compression=compression, write_statistics=True,
                       use_dictionary=[c for c in table.column_names if c in ("status", "bad_layer")
                                       or not _is_metric(c)])
    return final


def _is_metric(name: str) -> bool:
    return name in METRICS or name in ("arch_id", "latency_s")


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
    os.makedirs(path, exist_ok=True)
    if list_parts(path) or os.path.exists(os.path.join(path, RUN_FILE)):
        if not overwrite:
            raise FileExistsError(f"{path} already holds results; pass overwrite=True to replace them")
        remove_run(path)
    meta = (table.schema.metadata or {}).get(META_KEY.encode())
    if meta is not None:
        write_run_file(path, json.loads(meta))
    write_part(path, 0, table, compression=compression)
    return path


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


def open_dataset(path: Union[str, os.PathLike]):
    """The results at ``path`` as a ``pyarrow.dataset.Dataset`` (lazy, memory-mapped).

    Parts are listed in chunk order; temporaries and the metadata file are
    not part of it.  The schema carries the ``nasflops`` metadata.
    """
    import pyarrow.dataset as ds
    from pyarrow import fs

    files = part_files(os.fspath(path))
    dataset = ds.dataset(files, format="parquet", filesystem=fs.LocalFileSystem(use_mmap=True))
    if not dataset.schema.metadata or META_KEY.encode() not in dataset.schema.metadata:
        meta = read_run_file(os.fspath(path)) if os.path.isdir(path) else None
        if meta is not None:
            dataset = dataset.replace_schema(dataset.schema.with_metadata(
                {META_KEY: json.dumps(meta, sort_keys=True)}))
    return dataset


def read_results(path, columns: Optional[list] = None, filter=None, as_dataset: bool = False):
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
    dataset = open_dataset(path)
    if as_dataset:
        if columns is not None or filter is not None:
            raise ValueError("columns and filter apply to tables; with as_dataset=True pass them "
                             "to dataset.to_table(...)")
        return dataset
    if hasattr(filter, "expression"):    # a nasflops.Budget
        filter = filter.expression(metadata_of_schema(dataset.schema))
    table = dataset.to_table(columns=columns, filter=filter)
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
    meta = metadata_of_schema(pq.read_schema(files[0]))
    if not meta:
        raise ValueError(f"{files[0]} has no '{META_KEY}' metadata: not written by nasflops")
    return meta


# ------------------------------------------------------------- run directories
class RunWriter:
    """Owns one run directory: its metadata, its part files, and resuming it.

    The pipeline only computes tables and hands them to :func:`write_part`
    (possibly on another machine); everything about the directory's state is
    decided here:

    * a new run writes ``_nasflops.json`` first, then parts;
    * ``overwrite`` removes a previous run's parts and metadata (nothing else);
    * ``resume`` requires the stored parameters to equal the asked ones
      exactly (else ``ValueError`` naming the differences) and keeps every
      part that is complete;
    * anything else in an existing run is refused (``FileExistsError``).

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
    token : str
        Marks this writer's temporaries (removed by :meth:`close`).
    """

    def __init__(self, path, metadata: Mapping, n_rows: int, chunk_size: int,
                 resume: bool = False, overwrite: bool = False):
        self.path = os.fspath(path)
        # JSON round trip: what is stored is what is compared on resume
        self.metadata = json.loads(json.dumps(metadata, sort_keys=True))
        self.n_rows, self.chunk_size = int(n_rows), int(chunk_size)
        self.n_parts = -(-self.n_rows // self.chunk_size)
        self.token = uuid.uuid4().hex[:12]
        os.makedirs(self.path, exist_ok=True)
        stored, parts = read_run_file(self.path), list_parts(self.path)
        if overwrite:
            remove_run(self.path)
            stored, parts = None, {}
        elif stored is not None or parts:
            if not resume:
                raise FileExistsError(f"{self.path} already holds a nasflops run ({len(parts)} "
                                      "parts); pass resume=True to finish it or overwrite=True to "
                                      "replace it")
            self._check_same(stored if stored is not None else read_metadata(self.path))
        clean_temporaries(self.path)
        if stored is None:
            write_run_file(self.path, self.metadata)
        self.done = self._complete_parts(parts)

    @property
    def metadata_bytes(self) -> bytes:
        """The metadata as stored in every part's schema."""
        return json.dumps(self.metadata, sort_keys=True).encode()

    def rows_of(self, k: int) -> tuple[int, int]:
        """Row range ``(start, stop)`` of part ``k``."""
        start = k * self.chunk_size
        return start, min(start + self.chunk_size, self.n_rows)

    def todo(self) -> list[int]:
        """Parts still to write, in order."""
        return [k for k in range(self.n_parts) if k not in self.done]

    def close(self) -> None:
        """Remove this writer's leftover temporaries."""
        clean_temporaries(self.path, self.token)

    def _check_same(self, stored: Mapping) -> None:
        meta = self.metadata
        diff = {k: (stored.get(k), meta.get(k)) for k in sorted(set(stored) | set(meta))
                if stored.get(k) != meta.get(k)}
        if diff:
            lines = "; ".join(f"{k}: stored {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume the run in {self.path}: its parameters differ "
                             f"({lines}); pass the same parameters, or overwrite=True to start again")

    def _complete_parts(self, parts: Mapping[int, str]) -> set:
        """Indices of parts on disk that hold exactly the rows they should.

        A part exists only once fully written (atomic rename); the row count
        read from its footer guards against a foreign or truncated file.
        """
        import pyarrow.parquet as pq

        done = set()
        for k, path in parts.items():
            start, stop = self.rows_of(k)
            if stop <= start:
                raise ValueError(f"{path} is part {k}, beyond the {self.n_parts} parts of this "
                                 "run; the directory holds another run")
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception:  # unreadable: write it again
                rows = -1
            if rows == stop - start:
                done.add(k)
        return done
