"""torchstat's per-module report, computed analytically from layer records.

torchstat 0.0.7 (``torchstat.stat(model, (C, H, W))``) prints one row per
leaf module of a torch model: name, input and output shape, params,
memory(MB), MAdd, Flops, MemRead(B), MemWrite(B), duration[%] and
MemR+W(B), then a totals row and five summary lines.  It no longer runs on
pandas 2 (it calls ``DataFrame.append``).  :func:`torchstat_report` gives the
same table from records and per-record module names, figure for figure,
under the conventions ``torchstat-madd`` and ``torchstat-flops`` and the
``torchstat`` memory semantics (``nasflops.options.MEMORY_SEMANTICS``), with
torchstat's quirks kept:

* one row per module in registration order (:func:`nasflops.search_spaces.zoo.modules`;
  otherwise the order of first call), holding its *last* call: a module
  called twice (ResNet's block ``relu``) shows and counts one call;
* function, method and operator calls (``torch.flatten``, ``x + y``) have no
  row and count nothing; a module registered but never called has a row of
  zeros with shapes ``0 0 0``;
* MAdd, Flops and bytes at batch 1, fp32; the totals row's MemRead(B) and
  MemWrite(B) repeat the last row's (torchstat's leftover loop variables),
  its MemR+W(B) is the true sum.

One column is new: ``roofline[%]``, each row's share of the network's
roofline latency on a named device (``nasflops.options.DEVICES``), in place
of torchstat's measured ``duration[%]`` (same width, same format).  The
latency counts every record's real work (the ``flops`` convention and
nasflops' memory semantics), so the rows add up to less than 100% where
functional ops or earlier calls of a module cost time.

Shapes print as torchstat prints a tensor without its batch dimension:
``C H W``, or just ``C`` for a 2-D tensor, which records do not store: a
tensor is taken to be 2-D after ``flatten`` or ``linear``, after a global
pool written as a method call (torchvision's ``x.mean([2, 3])``), and after
element-wise ops on a 2-D tensor.  torchstat's "not supported" lines, printed
while the model runs, are not reproduced.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .options import Device, get_device
from .scoring import as_batch, layer_table
from .spec import Call, Flag, Net, Op, mark_called_again

__all__ = ["TORCHSTAT_COLUMNS", "TorchstatReport", "torchstat_report", "round_value"]

#: the report's columns, torchstat's with ``roofline[%]`` for ``duration[%]``
TORCHSTAT_COLUMNS = ("module name", "input shape", "output shape", "params", "memory(MB)",
                     "MAdd", "Flops", "MemRead(B)", "MemWrite(B)", "roofline[%]", "MemR+W(B)")
_TEXT = ("module name", "input shape", "output shape")
_FLOAT64 = ("params", "MemRead(B)", "MemWrite(B)", "MemR+W(B)")   # float64 in torchstat's frame
_FORMATS = {"memory(MB)": "{:.2f}", "roofline[%]": "{:.2%}", "MAdd": "{:,}", "Flops": "{:,}"}
_MAX_COLWIDTH = 50          # pandas' display.max_colwidth
_WINDOWED = (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL, Op.ADAPTIVE_AVGPOOL, Op.INPUT)


@dataclass
class TorchstatReport:
    """torchstat's table for one network, and the roofline behind its new column.

    Attributes
    ----------
    rows : list of dict
        One per module, keyed by :data:`TORCHSTAT_COLUMNS`: names and shapes
        as printed, counts as ints, ``memory(MB)`` a float32 value, and
        ``roofline[%]`` a fraction of the network's latency.
    total : dict
        torchstat's totals row (MemRead(B)/MemWrite(B) are the last row's).
    device : Device
        The roofline profile of ``roofline[%]``.
    latency_s : float
        The network's roofline latency on ``device`` (every record).
    named : bool
        Whether module names were given (else rows are named by record index).
    mem_read, mem_write : int
        The true sums of MemRead(B) and MemWrite(B).
    """

    rows: list
    total: dict
    device: Device
    latency_s: float
    named: bool = True
    mem_read: int = 0
    mem_write: int = 0

    @property
    def text(self) -> str:
        """The report as torchstat prints it (without its trailing blank line),
        followed by the roofline lines."""
        return render_torchstat(self)

    def __str__(self) -> str:
        return self.text


def _flat(records: np.ndarray) -> np.ndarray:
    """Whether each record's output is a 2-D (N, C) tensor in torch."""
    flat = np.zeros(len(records), dtype=bool)
    for i, r in enumerate(records):
        op = int(r["op"])
        if op in (Op.FLATTEN, Op.LINEAR):
            flat[i] = True
        elif op == Op.MEAN and int(r["extra"]) & 6 == 6:
            flat[i] = True          # x.mean([2, 3]) drops the spatial dimensions
        elif op not in _WINDOWED:
            flat[i] = flat[int(r["input0"])]
    return flat


def _shape(table, flat, i: int) -> str:
    if i < 0:
        return " ".join("{:>3d}".format(0) for _ in range(3))
    dims = [int(table["channels"][i])] if flat[i] else \
        [int(table["channels"][i]), int(table["height"][i]), int(table["width"][i])]
    return " ".join("{:>3d}".format(d) for d in dims)


def _module_order(records, names, modules) -> list[str]:
    """Row names: ``modules`` (registration order) plus any module called but
    not listed, in order of first call."""
    order = dict.fromkeys(str(m) for m in (modules or ()))
    for i in range(1, len(records)):
        if names[i] and int(records[i]["call"]) == Call.MODULE:
            order.setdefault(names[i], None)
    return list(order)


def _row(name, idx, tables, flat, lat, total_lat) -> dict:
    """One module's row from the records of its last call (``idx``; empty:
    never called)."""
    madd, flops = tables
    if not idx:
        zero = _shape(madd, flat, -1)
        return {"module name": name, "input shape": zero, "output shape": zero, "params": 0,
                "memory(MB)": 0.0, "MAdd": 0, "Flops": 0, "MemRead(B)": 0, "MemWrite(B)": 0,
                "roofline[%]": 0.0, "MemR+W(B)": 0, "called": False}
    first, last = idx[0], idx[-1]
    rd = int(madd["read_bytes"][idx].sum())
    wr = int(madd["write_bytes"][idx].sum())
    return {"module name": name,
            "input shape": _shape(madd, flat, int(madd["inputs"][first].split(",")[0])),
            "output shape": _shape(madd, flat, last),
            "params": int(madd["params"][idx].sum()),
            "memory(MB)": float(np.float32(int(madd["act_bytes"][idx].sum()) / 1024 ** 2)),
            "MAdd": int(madd["ops"][idx].sum()), "Flops": int(flops["ops"][idx].sum()),
            "MemRead(B)": rd, "MemWrite(B)": wr,
            "roofline[%]": float(lat[idx].sum() / total_lat) if total_lat > 0 else 0.0,
            "MemR+W(B)": rd + wr, "called": True}


def torchstat_report(spec, names: Optional[Sequence[str]] = None,
                     modules: Optional[Sequence[str]] = None,
                     device="t4") -> TorchstatReport:
    """torchstat 0.0.7's report of one architecture, computed from its records.

    Parameters
    ----------
    spec : records, Net or one-architecture SpecBatch
        The network; each record's ``call`` says whether torchstat sees it
        (module calls only).  A :class:`~nasflops.Net` brings its own
        ``names`` and ``modules``.
    names : sequence of str, optional
        One module path per record (``""`` for none), e.g. from
        ``zoo.build(name, with_names=True)`` or a :class:`~nasflops.Net`'s
        ``names``.  Records with one name are calls of one module.  Without
        names, every module-call record is its own module, named by its index.
    modules : sequence of str, optional
        Module names in registration order (``zoo.modules(name)``, a Net's
        ``modules``): the row order, including modules never called.
    device : str or Device
        Roofline profile of the ``roofline[%]`` column (``nasflops.options.DEVICES``).

    Examples
    --------
    >>> from nasflops.search_spaces import zoo
    >>> records, names = zoo.build("vgg16", with_names=True)
    >>> r = torchstat_report(records, names, zoo.modules("vgg16"))
    >>> r.rows[0]["module name"], r.rows[0]["MAdd"], r.rows[0]["Flops"]
    ('features.0', 173408256, 89915392)
    >>> r.total["MAdd"], r.total["Flops"], r.total["params"]
    (30958666264, 15503489024, 138357544)
    >>> print(r.text.splitlines()[-6])
    Total memory: 109.39MB
    """
    if isinstance(spec, Net):
        names = spec.names if names is None else names
        modules = spec.modules if modules is None else modules
    batch = as_batch(spec)
    if len(batch) != 1:
        raise ValueError(f"a torchstat report is of one architecture, got {len(batch)}")
    records = batch[0]
    named = names is not None
    names = [str(n) for n in names] if named else \
        [str(i) if i and int(r["call"]) == Call.MODULE else "" for i, r in enumerate(records)]
    records = mark_called_again(records, names)
    dev = get_device(device)
    madd = layer_table(records, convention="torchstat-madd", memory="torchstat")
    flops = layer_table(records, convention="torchstat-flops", memory="torchstat")
    lat = layer_table(records, convention="flops", device=dev)["latency_s"]
    flat = _flat(records)
    visible = {}
    for i in range(1, len(records)):
        r = records[i]
        if names[i] and int(r["call"]) == Call.MODULE and not int(r["flags"]) & Flag.CALLED_AGAIN:
            visible.setdefault(names[i], []).append(i)
    total_lat = float(lat.sum())
    rows = [_row(n, visible.get(n, []), (madd, flops), flat, lat, total_lat)
            for n in _module_order(records, names, modules)]
    if not rows:
        raise ValueError("no module calls to report: torchstat sees module calls only "
                         "(records whose call kind is 'module')")
    return TorchstatReport(rows, _totals(rows), dev, total_lat, named,
                           sum(r["MemRead(B)"] for r in rows), sum(r["MemWrite(B)"] for r in rows))


def _totals(rows: list) -> dict:
    """torchstat's totals row: sums, memory summed in the column's dtype
    (float32 when every module was called), MemRead/MemWrite of the last row."""
    all_called = all(r["called"] for r in rows)
    mem = np.array([r["memory(MB)"] for r in rows], dtype=np.float32 if all_called else np.float64)
    share = np.array([r["roofline[%]"] for r in rows], dtype=np.float32)
    return {"params": sum(r["params"] for r in rows), "memory(MB)": float(mem.sum()),
            "MAdd": sum(r["MAdd"] for r in rows), "Flops": sum(r["Flops"] for r in rows),
            "roofline[%]": float(share.sum()),
            "MemRead(B)": rows[-1]["MemRead(B)"], "MemWrite(B)": rows[-1]["MemWrite(B)"],
            "MemR+W(B)": sum(r["MemR+W(B)"] for r in rows)}


# ------------------------------------------------------------------ rendering
def round_value(value, binary: bool = False) -> str:
    """torchstat's ``reporter.round_value``: 2 decimals with a T/G/M/K prefix.

    >>> round_value(30958666264), round_value(15503489024), round_value(783170624, True)
    ('30.96G', '15.5G', '746.89M')
    >>> round_value(192)
    '192'
    """
    divisor = 1024.0 if binary else 1000.0
    value = np.int64(value)
    for power, prefix in ((4, "T"), (3, "G"), (2, "M"), (1, "K")):
        if value // divisor ** power > 0:
            # round() of a numpy float: numpy's round-half-even, not zero-padded
            return str(np.round(np.float64(value / divisor ** power), 2)) + prefix
    return str(value)


_NUMBER = re.compile(r"^\s*[\+-]?[0-9]+\.[0-9]*$")


def _trim_zeros(cells: list) -> list:
    """pandas' trailing-zero trim: drop zeros common to every number, keep one decimal."""
    while True:
        nums = [c for c in cells if _NUMBER.match(c)]
        if not (nums and all(c.endswith("0") for c in nums)):
            break
        cells = [c[:-1] if _NUMBER.match(c) else c for c in cells]
    return [c + "0" if _NUMBER.match(c) and c.endswith(".") else c for c in cells]


def _float_cells(values: list) -> list:
    """A float64 column as pandas prints it (precision 6, a space for the sign,
    scientific when a long figure meets a value over 1e6)."""
    cells = _trim_zeros(["{: .6f}".format(v) for v in values])
    if any(0 < abs(v) < 1e-6 for v in values) or (
            max(len(c) for c in cells) > 12 and any(abs(v) > 1e6 for v in values)):
        cells = ["{: .6e}".format(v) for v in values]
    return cells


def _column(col: str, rows: list, total: dict) -> list:
    """Header and cells of one column, right-justified to pandas' width."""
    if col in _TEXT:
        cells, header = [" " + r[col] for r in rows] + ["  "], col
    elif col in _FLOAT64:
        cells = _float_cells([float(r[col]) for r in rows] + [float(total[col])])
        header = " " + col
    else:
        fmt = _FORMATS[col]
        cells, header = [" " + fmt.format(float(v)) for v in
                         [r[col] for r in rows] + [total[col]]], col
    width = min(max(len(header), max(len(c) for c in cells)), _MAX_COLWIDTH)
    cells = [c[:width - 3] + "..." if len(c) > width else c for c in cells]
    return [header.rjust(width)] + [c.rjust(width) for c in cells]


def render_torchstat(report: TorchstatReport) -> str:
    """The report as torchstat prints it, then the roofline and source lines.

    The table, its ``=`` and ``-`` rules and the five ``Total`` lines are
    torchstat's, byte for byte, but for the ``roofline[%]`` column.
    """
    rows, total = report.rows, report.total
    cols = [[""] + [str(i) for i in range(len(rows))] + ["total"]]
    cols += [_column(c, rows, total) for c in TORCHSTAT_COLUMNS]
    widths = [max(len(s) for s in c) for c in cols]
    lines = ["".join(c[i].ljust(widths[j] + (1 if j < len(cols) - 1 else 0))
                     for j, c in enumerate(cols)) for i in range(len(rows) + 2)]
    rule = len(lines[0])
    out = lines + ["=" * rule, f"Total params: {total['params']:,}", "-" * rule,
                   f"Total memory: {total['memory(MB)']:.2f}MB",
                   f"Total MAdd: {round_value(total['MAdd'])}MAdd",
                   f"Total Flops: {round_value(total['Flops'])}Flops",
                   f"Total MemR+W: {round_value(total['MemR+W(B)'], True)}B"]
    d = report.device
    out.append(f"Roofline latency: {report.latency_s * 1e3:.4g} ms on {d.name} "
               f"({d.peak_ops_per_s / 1e12:g} TFLOP/s under 'flops', {d.bytes_per_s / 1e9:g} GB/s); "
               f"roofline[%] is each row's share, {total['roofline[%]']:.2%} in the rows "
               "(the rest: calls torchstat does not see)")
    out.append(f"MemRead and MemWrite summed: {report.mem_read:,} B and {report.mem_write:,} B "
               "(torchstat's total row repeats its last row's)")
    if not report.named:
        out.append("module names: record indices (this source gives no module names)")
    return "\n".join(out) + "\n"
