"""Plots of complexity distributions (matplotlib, an optional extra: ``nasflops[plot]``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["plot_distributions"]


def plot_distributions(data, out: str | os.PathLike, metrics: Sequence[str] = ("macs", "params", "peak_act_bytes"),
                       x: str = "macs", y: str = "params", title: str | None = None, bins: int = 60) -> str:
    """Histograms of ``metrics`` and a ``x``-vs-``y`` scatter with its Pareto front, as one PNG.

    Parameters
    ----------
    data : path, pyarrow Dataset/Table or Scores
        A results dataset (see :func:`nasflops.read_results`).
    out : path
        The PNG to write (written to a temporary name, then renamed).
    metrics : sequence of str
        One histogram per metric (valid rows only).
    x, y : str
        The scatter's axes; the front minimises both.

    Returns
    -------
    str
        The path written.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the extra
        raise ImportError("plots need matplotlib: pip install 'nasflops[plot]'") from None
    from .analytics import _column, _dataset, _filter, pareto_front

    dataset = _dataset(data)
    expr = _filter(dataset)
    names = set(dataset.schema.names)
    metrics = [m for m in metrics if m in names]
    from matplotlib.ticker import EngFormatter

    n_plots = len(metrics) + 1
    cols = 2 if n_plots > 2 else n_plots
    rows = -(-n_plots // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False)
    axes = axes.ravel()
    for ax in axes[n_plots:]:
        ax.set_visible(False)

    def fmt(ax_axis, metric):
        ax_axis.set_major_formatter(EngFormatter(unit="B" if metric.endswith("_bytes") else "", sep=""))

    for ax, m in zip(axes, metrics):
        v = _column(dataset, m, expr)
        ax.hist(v, bins=bins, color="#4878a8")
        ax.set_xlabel(_label(m, dataset))
        ax.set_ylabel("candidates")
        fmt(ax.xaxis, m)
    ax = axes[n_plots - 1]
    xs, ys = _column(dataset, x, expr), _column(dataset, y, expr)
    if xs.size > 200_000:  # a scatter of millions is ink, not information
        pick = np.random.default_rng(0).choice(xs.size, 200_000, replace=False)
        xs, ys = xs[pick], ys[pick]
    ax.scatter(xs, ys, s=2, alpha=0.3, color="#888888", label="candidates", rasterized=True)
    front = pareto_front(dataset, x=x, y=y, columns=[])
    ax.plot(front[x].to_numpy(), front[y].to_numpy(), "o-", color="#c44e52", ms=3, label="Pareto front")
    ax.set_xlabel(_label(x, dataset))
    ax.set_ylabel(_label(y, dataset))
    fmt(ax.xaxis, x)
    fmt(ax.yaxis, y)
    ax.legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = os.fspath(out)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".incomplete.png"
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def _label(metric: str, dataset) -> str:
    from .storage import metadata_of_schema
    meta = metadata_of_schema(dataset.schema)
    if metric == "ops":
        return f"ops ({meta.get('convention', '?')})"
    return metric
