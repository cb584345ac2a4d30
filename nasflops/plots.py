"""Plots of complexity distributions (matplotlib, an optional extra: ``nasflops[plot]``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

__all__ = ["plot_distributions", "plot_profile"]


def _pyplot():
    """matplotlib's pyplot on the headless Agg backend, and its EngFormatter."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import EngFormatter
    except ImportError:  # pragma: no cover - depends on the extra
        raise ImportError("plots need matplotlib: pip install 'nasflops[plot]'") from None
    return plt, EngFormatter


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
    plt, EngFormatter = _pyplot()
    from .analytics import _column, _dataset, _filter, pareto_front

    dataset = _dataset(data)
    expr = _filter(dataset)
    names = set(dataset.schema.names)
    metrics = [m for m in metrics if m in names]

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


def plot_profile(profile, out: str | os.PathLike, by: str | None = None, results=None,
                 bins: int = 80, hist=None) -> str:
    """The exact distribution of a :class:`~nasflops.search_spaces.Profile` as one PNG.

    Parameters
    ----------
    profile : Profile
        What ``space.profile(...)`` returned.
    out : path
        The PNG to write (written to a temporary name, then renamed).
    by : str, optional
        One curve per group (e.g. per input resolution), coloured by its
        value; otherwise the pooled distribution as bars.
    results : path, Dataset or Table, optional
        A results dataset of the same space: the histogram of its sampled
        candidates is overlaid (as a fraction of the candidates), pooled or
        per group.
    bins : int
        Bins of the exact histograms (their counts are exact).
    hist : (edges, per-group counts), optional
        Exact histograms already computed (``profile.group_histograms``).

    Returns
    -------
    str
        The path written.
    """
    plt, EngFormatter = _pyplot()
    if hist is None:
        edges = profile.edges(bins)
        hist = (edges, profile.group_histograms(edges))
    edges, per_group = hist
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    sampled = _sampled(results, profile) if results is not None else None
    if by:
        _profile_curves(ax, profile, edges, per_group, sampled)
    else:
        counts = [sum(c) for c in zip(*per_group)]
        frac = np.array([float(c) for c in counts]) / float(profile.total)
        ax.bar(edges[:-1], frac, width=np.diff(edges), align="edge", color="#4878a8",
               label=f"exact ({_n(profile.total)} {profile.over})")
        if sampled is not None:
            h = np.histogram(sampled[0], bins=edges)[0]
            ax.step(edges[:-1], h / max(len(sampled[0]), 1), where="post", color="#c44e52",
                    label=f"sampled ({len(sampled[0]):,} candidates)")
        ax.legend(fontsize=8)
    unit = "B" if profile.metric.endswith("_bytes") else ""
    ax.xaxis.set_major_formatter(EngFormatter(unit=unit, sep=""))
    name = f"ops ({profile.convention})" if profile.metric == "ops" else profile.metric
    ax.set_xlabel(name)
    ax.set_ylabel(f"fraction of {profile.over} per bin")
    ax.set_title(f"{profile.space}: exact {name} distribution over {_n(profile.total)} {profile.over}")
    fig.tight_layout()
    return _save(fig, plt, out)


def _profile_curves(ax, profile, edges, per_group, sampled) -> None:
    """One exact curve per group, coloured by the group's value."""
    from matplotlib import cm, colors

    vals = profile.group_values
    norm = colors.Normalize(min(vals), max(vals))
    mid = (edges[:-1] + edges[1:]) / 2
    for g, total, counts in zip(vals, profile.totals, per_group):
        ax.plot(mid, np.array([float(c) for c in counts]) / float(total), color=cm.viridis(norm(g)),
                lw=1.2)
        if sampled is not None and sampled[1] is not None:
            mine = sampled[0][sampled[1] == g]
            if mine.size:
                ax.plot(mid, np.histogram(mine, bins=edges)[0] / mine.size, ls=":", lw=0.9,
                        color=cm.viridis(norm(g)))
    sm = cm.ScalarMappable(norm=norm, cmap=cm.viridis)
    ax.figure.colorbar(sm, ax=ax, label=profile.group_name)


def _n(total: int) -> str:
    return f"{total:,}" if total < 10**7 else f"{total:.3g}"


def _sampled(results, profile):
    """(metric values, group values or None) of a results dataset's valid rows."""
    from .analytics import _column, _dataset, _filter
    dataset = _dataset(results)
    expr = _filter(dataset)
    values = _column(dataset, profile.metric, expr)
    group = profile.group_name
    groups = _column(dataset, group, expr) if group and group in dataset.schema.names else None
    return values, groups


def _save(fig, plt, out) -> str:
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
