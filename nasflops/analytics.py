"""Analysing results: filters, quantiles, histograms, Pareto fronts, group-by, SQL.

Every function takes ``data`` as a results path (what
:func:`nasflops.score_space` wrote), a ``pyarrow.dataset.Dataset``, a
``pyarrow.Table`` or in-memory :class:`~nasflops.Scores`.  Only valid rows
(``status == 0``) are analysed.  Filters (a :class:`~nasflops.Budget` and/or a
pyarrow expression) are pushed down to the Parquet reader, and only the
columns needed are read, in record batches where the statistic allows
streaming (histograms, Pareto fronts), so memory follows the answer, not the
dataset.

Examples
--------
>>> import nasflops                                          # doctest: +SKIP
>>> from nasflops import analytics as A                      # doctest: +SKIP
>>> A.quantiles("run.parquet", ["macs", "params"])           # doctest: +SKIP
>>> A.pareto_front("run.parquet", "macs", "peak_act_bytes")  # doctest: +SKIP
>>> A.group_by("run.parquet", "r", "macs", stats=("count", "median"))  # doctest: +SKIP
>>> A.sql("run.parquet", "SELECT r, median(macs) FROM results GROUP BY r ORDER BY r")  # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["filter_results", "quantiles", "histogram", "pareto_front", "group_by", "sql"]


def _dataset(data):
    """Any accepted ``data`` as a pyarrow Dataset (lazy for paths)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if isinstance(data, (str, os.PathLike)):
        from .storage import open_dataset
        return open_dataset(data)
    if isinstance(data, ds.Dataset):
        return data
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        t = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
        return ds.dataset(t)
    if isinstance(data, np.ndarray) and data.dtype.names:
        from .storage import scores_table
        return ds.dataset(scores_table(data))
    raise TypeError("data must be a results path, a pyarrow Dataset/Table or nasflops.Scores; "
                    f"got {type(data).__name__}")


def _filter(dataset, budget=None, where=None):
    """Push-down expression: valid rows, within ``budget``, matching ``where``."""
    import pyarrow.compute as pc

    from .storage import metadata_of_schema

    names = dataset.schema.names
    expr = pc.field("status") == 0 if "status" in names else None
    if budget is not None:
        b = budget.expression(metadata_of_schema(dataset.schema))
        expr = b if expr is None else expr & b
    if where is not None:
        expr = where if expr is None else expr & where
    return expr


def _need(dataset, cols):
    from .scoring import MissingColumnError

    missing = [c for c in cols if c not in dataset.schema.names]
    if missing:
        raise MissingColumnError(f"column(s) {', '.join(map(repr, missing))} not in the results; "
                                 f"available: {', '.join(dataset.schema.names)}")


def filter_results(data, budget=None, where=None, columns: Optional[Sequence[str]] = None):
    """Valid rows within ``budget`` (and matching ``where``), as a pyarrow Table.

    Parameters
    ----------
    data : path, Dataset, Table or Scores
    budget : Budget, optional
    where : pyarrow.compute.Expression, optional
        Extra predicate, e.g. ``pc.field("r") >= 192``.
    columns : list of str, optional
        Columns to return (default all).

    Examples
    --------
    >>> import pyarrow as pa
    >>> from nasflops.analytics import filter_results
    >>> from nasflops.budget import Budget
    >>> t = pa.table({"arch_id": [0, 1, 2], "macs": [5, 9, 3], "status": pa.array([0, 0, 1], pa.int8())})
    >>> filter_results(t, Budget(max_macs=6))["arch_id"].to_pylist()
    [0]
    """
    dataset = _dataset(data)
    if columns is not None:
        _need(dataset, columns)
    table = dataset.to_table(columns=None if columns is None else list(columns),
                             filter=_filter(dataset, budget, where))
    if dataset.schema.metadata:
        table = table.replace_schema_metadata(dataset.schema.metadata)
    return table


def _column(dataset, name, expr) -> np.ndarray:
    _need(dataset, [name])
    col = dataset.to_table(columns=[name], filter=expr).column(name)
    return col.to_numpy()


def quantiles(data, metrics: Union[str, Sequence[str]] = ("ops", "macs", "params", "peak_act_bytes"),
              q: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0), budget=None, where=None):
    """Exact quantiles of each metric over valid rows (numpy's linear interpolation).

    Returns a pyarrow Table with a ``quantile`` column and one float64 column
    per metric (NaN when no row is left).

    Examples
    --------
    >>> import pyarrow as pa
    >>> from nasflops.analytics import quantiles
    >>> t = pa.table({"macs": [10, 20, 30, 40], "status": pa.array([0, 0, 0, 0], pa.int8())})
    >>> quantiles(t, "macs", q=[0.5, 1.0])["macs"].to_pylist()
    [25.0, 40.0]
    """
    import pyarrow as pa

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    q = np.asarray(q, dtype=np.float64)
    if np.any((q < 0) | (q > 1)):
        raise ValueError(f"quantiles must be in [0, 1], got {q.tolist()}")
    dataset = _dataset(data)
    expr = _filter(dataset, budget, where)
    out = {"quantile": q}
    for m in metrics:  # one column in memory at a time
        v = _column(dataset, m, expr)
        out[m] = np.quantile(v, q) if v.size else np.full(q.shape, np.nan)
    return pa.table(out)


def histogram(data, metric: str, bins: int = 50, range: Optional[tuple] = None,
              log: bool = False, budget=None, where=None):
    """Histogram of one metric over valid rows, streamed batch by batch.

    Parameters
    ----------
    bins : int
        Number of bins (numpy's convention: the last bin includes its right edge).
    range : (low, high), optional
        Default: the metric's min and max (one extra streaming pass).
    log : bool
        Geometric bin edges (for metrics spanning decades; values must be > 0).

    Returns
    -------
    counts : int64 array, shape (bins,)
    edges : float64 array, shape (bins + 1,)

    Examples
    --------
    >>> import pyarrow as pa
    >>> from nasflops.analytics import histogram
    >>> t = pa.table({"macs": [1, 2, 2, 3, 4], "status": pa.array([0] * 5, pa.int8())})
    >>> c, e = histogram(t, "macs", bins=3)
    >>> c.tolist(), e.tolist()
    ([1, 2, 2], [1.0, 2.0, 3.0, 4.0])
    """
    import pyarrow.compute as pc

    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    dataset = _dataset(data)
    _need(dataset, [metric])
    expr = _filter(dataset, budget, where)
    if range is None:
        lo, hi = np.inf, -np.inf
        for b in dataset.to_batches(columns=[metric], filter=expr):
            if b.num_rows:
                mm = pc.min_max(b.column(0))
                lo, hi = min(lo, mm["min"].as_py()), max(hi, mm["max"].as_py())
        if lo > hi:  # no rows
            lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
    else:
        lo, hi = range
    if log:
        if lo <= 0:
            raise ValueError(f"log bins need {metric} > 0; the smallest value is {lo}")
        edges = np.geomspace(lo, hi if hi > lo else lo * 10, bins + 1)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    counts = np.zeros(bins, dtype=np.int64)
    for b in dataset.to_batches(columns=[metric], filter=expr):
        if b.num_rows:
            counts += np.histogram(b.column(0).to_numpy(), bins=edges)[0]
    return counts, edges


def _front_mask(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows not dominated when minimising both ``x`` and ``y``.

    Row i is dominated if some j has ``x_j <= x_i`` and ``y_j <= y_i`` with
    one strict.  After sorting by (x, y): i survives iff y_i is below the
    minimum y of all rows with a strictly smaller x, and y_i is the least y
    among rows of equal x (exact duplicates all survive).
    """
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((y, x))
    xs, ys = x[order], y[order]
    prefix_min = np.minimum.accumulate(ys)
    first = np.searchsorted(xs, xs, side="left")  # first row of each x group
    has_smaller_x = first > 0
    before = prefix_min[np.where(has_smaller_x, first - 1, 0)]
    keep_sorted = (ys == ys[first]) & (~has_smaller_x | (ys < before))
    keep = np.empty(n, dtype=bool)
    keep[order] = keep_sorted
    return keep


def pareto_front(data, x: str = "macs", y: str = "params", maximize: Sequence[str] = (),
                 columns: Optional[Sequence[str]] = None, budget=None, where=None):
    """The Pareto front of valid rows over two metrics (both minimised by default).

    Streams the data: the front of each record batch is kept, then the front
    of those fronts (a row dominated within its batch is dominated overall).

    Parameters
    ----------
    x, y : str
        Columns to trade off.
    maximize : sequence of str
        Which of ``x``, ``y`` to maximise instead (e.g. an accuracy column).
    columns : list of str, optional
        Columns to return besides ``x`` and ``y`` (default: all).

    Returns
    -------
    pyarrow.Table
        The non-dominated rows, sorted by ``x`` (then ``y``); exact
        duplicates are all kept.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from nasflops.analytics import pareto_front
    >>> t = pa.table({"arch_id": [0, 1, 2, 3], "macs": [1, 2, 3, 2], "params": [9, 5, 1, 7],
    ...               "status": pa.array([0, 0, 0, 0], pa.int8())})
    >>> pareto_front(t, "macs", "params")["arch_id"].to_pylist()
    [0, 1, 2]
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    for m in maximize:
        if m not in (x, y):
            raise ValueError(f"maximize names {m!r}, which is neither x={x!r} nor y={y!r}")
    dataset = _dataset(data)
    _need(dataset, [x, y])
    cols = list(dataset.schema.names) if columns is None else list(columns)
    _need(dataset, cols)
    read = list(dict.fromkeys([x, y] + cols))
    sign = {c: (-1 if c in maximize else 1) for c in (x, y)}

    def front_of(t):
        xv = t.column(x).to_numpy() * sign[x]
        yv = t.column(y).to_numpy() * sign[y]
        return t.filter(pa.array(_front_mask(xv, yv)))

    parts = [front_of(pa.Table.from_batches([b]))
             for b in dataset.to_batches(columns=read, filter=_filter(dataset, budget, where))
             if b.num_rows]
    if not parts:
        return dataset.schema.empty_table().select(read)
    front = front_of(pa.concat_tables(parts))
    order = pc.sort_indices(front, sort_keys=[(x, "descending" if x in maximize else "ascending"),
                                              (y, "descending" if y in maximize else "ascending")])
    out = front.take(order).select(list(dict.fromkeys(cols + [x, y])) if columns is not None else read)
    return out.replace_schema_metadata(dataset.schema.metadata) if dataset.schema.metadata else out


_ARROW_STATS = {"count": "count", "min": "min", "max": "max", "mean": "mean", "sum": "sum"}


def group_by(data, by: Union[str, Sequence[str]], metric: str = "macs",
             stats: Sequence[str] = ("count", "min", "median", "max"), budget=None, where=None):
    """Statistics of ``metric`` per value of native-encoding field(s) ``by``.

    Parameters
    ----------
    by : str or list of str
        Column(s) to group on, e.g. ``"r"`` (OFA resolution) or ``"arch"``
        (NB201).  A list column (OFA's ``d``) groups by its whole value,
        returned as a string key such as ``"2,3,4,4,2"`` (sorted as text).
    metric : str
        The metric summarised.
    stats : sequence of str
        Any of ``count``, ``min``, ``max``, ``mean``, ``sum`` (computed by
        Arrow's hash aggregation) and ``median`` or ``q<p>`` (e.g. ``q90``:
        exact quantiles, numpy's linear interpolation).

    Returns
    -------
    pyarrow.Table
        One row per group, sorted by the keys; columns ``by...`` then
        ``<metric>_<stat>``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from nasflops.analytics import group_by
    >>> t = pa.table({"r": [160, 160, 224, 224, 224], "macs": [1, 3, 2, 4, 9],
    ...               "status": pa.array([0] * 5, pa.int8())})
    >>> g = group_by(t, "r", "macs", stats=("count", "median"))
    >>> g.to_pydict()
    {'r': [160, 224], 'macs_count': [2, 3], 'macs_median': [2.0, 4.0]}
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = [by] if isinstance(by, str) else list(by)
    dataset = _dataset(data)
    _need(dataset, keys + [metric])
    list_keys = [k for k in keys if _is_list(dataset.schema.field(k).type)]
    quants = {}
    for s in stats:
        if s == "median":
            quants[s] = 0.5
        elif s.startswith("q") and s[1:].replace(".", "", 1).isdigit():
            quants[s] = float(s[1:]) / 100.0
            if not 0 <= quants[s] <= 1:
                raise ValueError(f"quantile statistic {s!r} must be within q0..q100")
        elif s not in _ARROW_STATS:
            raise ValueError(f"unknown statistic {s!r}; known: {', '.join(_ARROW_STATS)}, median, q<p>")
    table = dataset.to_table(columns=keys + [metric], filter=_filter(dataset, budget, where))
    for k in list_keys:
        # a list value (OFA's d = [2, 3, 4, 4, 2]) becomes the key "2,3,4,4,2"
        i = table.schema.get_field_index(k)
        joined = pc.binary_join(pc.cast(table.column(k), pa.list_(pa.string())), ",")
        table = table.set_column(i, k, joined)

    # counts are always computed: quantiles need each group's size
    wanted = ["count"] + [s for s in stats if s in _ARROW_STATS and s != "count"]
    grouped = table.group_by(keys, use_threads=False).aggregate(
        [(metric, _ARROW_STATS[s]) for s in wanted])
    grouped = grouped.take(pc.sort_indices(grouped, sort_keys=[(k, "ascending") for k in keys]))
    result = {k: grouped.column(k) for k in keys}
    for s in stats:
        if s in _ARROW_STATS:
            result[f"{metric}_{s}"] = grouped.column(f"{metric}_{_ARROW_STATS[s]}")
    if quants:
        # exact quantiles: sort by (group, value) once, then read every
        # group's order statistics from its slice -- vectorised over groups
        sorted_idx = pc.sort_indices(
            table, sort_keys=[(k, "ascending") for k in keys] + [(metric, "ascending")]).to_numpy()
        vals = table.column(metric).to_numpy()[sorted_idx].astype(np.float64)
        counts = grouped.column(f"{metric}_count").to_numpy()
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        for s, p in quants.items():
            pos = starts + p * (counts - 1)
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, starts + counts - 1)
            frac = pos - lo
            result[f"{metric}_{s}"] = pa.array(vals[lo] + (vals[hi] - vals[lo]) * frac)
    return pa.table({k: result[k] for k in keys + [f"{metric}_{s}" for s in stats]})


def _is_list(t) -> bool:
    import pyarrow as pa
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def sql(data, query: str, table: str = "results"):
    """Run SQL over results with DuckDB (optional extra: ``pip install nasflops[sql]``).

    The results are exposed as the view ``results`` (or ``table``); DuckDB
    reads the Parquet parts directly, with its own projection and filter
    push-down, and returns a pyarrow Table.

    Examples
    --------
    >>> from nasflops.analytics import sql                   # doctest: +SKIP
    >>> sql("ofa.parquet", '''
    ...     SELECT r, count(*) AS n, median(macs) AS median_macs
    ...     FROM results WHERE status = 0 GROUP BY r ORDER BY r''')  # doctest: +SKIP
    """
    try:
        import duckdb
    except ImportError:
        raise ImportError("nasflops.analytics.sql needs DuckDB: pip install 'nasflops[sql]' "
                          "(or pip install duckdb)") from None
    if not table.isidentifier():
        raise ValueError(f"table name must be an identifier, got {table!r}")
    con = duckdb.connect()
    try:
        if isinstance(data, (str, os.PathLike)):
            from .storage import part_files, verify_parts
            files = part_files(os.fspath(data))
            if os.path.isdir(data):
                verify_parts(data)          # DuckDB reads the files itself
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{listing}])")
        else:
            arrow = _dataset(data).to_table()
            con.register(table, arrow)
        # the relational API hands Arrow over without the DB-API's extra copy
        rel = con.sql(query) if hasattr(con, "sql") else con.execute(query)
        if rel is None:
            raise ValueError("the query returned no rows (use a SELECT)")
        for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
            fetch = getattr(rel, name, None)
            if fetch is not None:
                out = fetch()
                return out.read_all() if hasattr(out, "read_all") else out
        raise RuntimeError("this DuckDB version offers no Arrow result")  # pragma: no cover
    finally:
        con.close()
