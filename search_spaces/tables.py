"""Block tables: what each choice of a decomposable space adds to every metric.

A template-based candidate is a chain of slots (``templates.py``).  Every
template, scored on its own *in context* -- after a network-input record of
the shape its slot reads, at each input resolution -- adds a fixed amount to
each additive metric of any candidate that holds it: ops under the
convention, MACs, params, weight bytes, activation bytes, read and write
bytes.  The peak of live activations is a maximum, not a sum: a slot's peak
(its own buffers plus the slot input while it is read) is exact wherever no
buffer outlives its slot except through the slot output, so a candidate's
peak is the largest of its slots' (see :class:`SlotTable`).

Two structures live here, both plain data that spaces build:

:class:`SlotTable`
    ``values[template, group, metric]``; scoring a batch is a sum (and a
    max) of table rows, compiled (:func:`score_slots`).
:class:`Trellis`
    the choices of a space as a layered graph: boundaries of *states*
    joined by *edges*, each edge carrying its contribution to every metric
    per group, its multiplicity (as distinct networks and as native
    encodings) and a label the space decodes.  A candidate is a path; the
    exact profiles of ``exact.py`` are dynamic programs over it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from nasflops.engine import CORE_METRICS, METRICS, RawScores
from nasflops.options import ScoringOptions
from ._dist import table_sums

__all__ = ["SlotTable", "Step", "Trellis", "NotDecomposable", "ADDITIVE", "PEAK", "COUNT_MODES",
           "metric_column"]

#: metrics that add up over blocks (``score``'s columns); ``ops`` is counted
#: under the table's convention
ADDITIVE = ("ops", "macs", "params", "weight_bytes", "act_bytes", "read_bytes", "write_bytes")
#: the one metric that is a maximum over blocks
PEAK = "peak_act_bytes"
#: what a count counts: distinct networks, or native encodings
COUNT_MODES = ("networks", "encodings")
_PEAK_COL = METRICS.index(PEAK)
_PARAMS_COL = METRICS.index("params")
_ACTIVE_COL = CORE_METRICS.index("active_params")
# the core's metrics begin with METRICS, in order (the phases' columns follow)
assert CORE_METRICS[:len(METRICS)] == METRICS
#: bytes of dynamic programs a trellis keeps between exact sampling calls
MEMO_BYTES = 512 << 20


class NotDecomposable(ValueError):
    """A space (or a question) without an exact block decomposition."""


def metric_column(metric: str) -> int:
    """Column of ``metric`` in tables and trellis values (``METRICS`` order).

    >>> metric_column("macs"), metric_column("peak_act_bytes")
    (1, 5)
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; metrics are {', '.join(METRICS)}")
    return METRICS.index(metric)


@dataclass(frozen=True)
class SlotTable:
    """What every template adds to a candidate, per group (input resolution).

    Attributes
    ----------
    values : int64 array (n_templates, n_groups, len(METRICS))
        Columns in ``METRICS`` order; the ``peak_act_bytes`` column holds the
        slot's own peak.  Empty templates are zero rows.
    valid : bool array (n_templates, n_groups)
        Whether the template scores without error in that group (an invalid
        pair makes :func:`score_slots` decline).
    peak_exact : bool
        Whether a candidate's peak is the largest of its slots' peaks.
    options : ScoringOptions
        The convention, batch size and element sizes the table counts in.

    Examples
    --------
    >>> import numpy as np
    >>> from nasflops.options import ScoringOptions
    >>> v = np.zeros((2, 1, 8), dtype=np.int64); v[:, 0, 1] = [100, 20]; v[:, 0, 5] = [64, 96]
    >>> t = SlotTable(v, np.ones((2, 1), bool), True, ScoringOptions.make())
    >>> raw = score_slots(t, np.array([[0, 1, 1]]), np.array([0]))
    >>> int(raw.metrics[0, 1]), int(raw.metrics[0, 5])
    (140, 96)
    """

    values: np.ndarray
    valid: np.ndarray
    peak_exact: bool
    options: ScoringOptions
    _flat: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        flat = np.ascontiguousarray(self.values, dtype=np.int64).reshape(-1, len(METRICS))
        object.__setattr__(self, "_flat", flat)

    @property
    def all_valid(self) -> bool:
        """Every template scores without error at every resolution."""
        return bool(self.valid.all())

    @property
    def n_groups(self) -> int:
        """Groups (input resolutions) of the table."""
        return int(self.values.shape[1])


def score_slots(table: SlotTable, tids: np.ndarray, groups: np.ndarray) -> Optional[RawScores]:
    """Score candidates given as slot template ids, from the table alone.

    Returns :class:`~nasflops.engine.RawScores` equal to the record core's
    in a forward pass (every metric, status 0), or ``None`` when the table cannot answer for
    every candidate -- a template invalid at a candidate's resolution, an
    int64 overflow, or a peak that is not a slot maximum -- so the caller
    scores with the core instead (which names the fault).
    """
    tids = np.ascontiguousarray(tids, dtype=np.int64)
    groups = np.ascontiguousarray(groups, dtype=np.int64)
    n = tids.shape[0]
    if not table.peak_exact or (not table.all_valid and n
                                and not table.valid[tids, groups[:, None]].all()):
        return None
    sums = np.empty((n, len(METRICS)), dtype=np.int64)
    if table_sums(table._flat, table.n_groups, tids, groups, _PEAK_COL, sums) >= 0:
        return None
    out = RawScores.allocate(n, False)
    out.metrics[:] = 0              # a forward pass: the columns of the other phases are 0,
    out.metrics[:, :len(METRICS)] = sums
    out.metrics[:, _ACTIVE_COL] = sums[:, _PARAMS_COL]    # but every parameter is active
    out.status[:] = 0
    out.bad_layer[:] = -1
    return out


@dataclass
class Step:
    """One step of a :class:`Trellis`: edges from ``n_in`` states to ``n_out``.

    Attributes
    ----------
    src, dst : int64 arrays (E,)
        State before and after each edge.
    values : int64 array (E, n_groups, len(METRICS))
        What taking the edge adds to each metric, per group (``METRICS``
        order; the ``peak_act_bytes`` column is the edge's peak, combined by
        maximum).
    mult : uint64 array (E, 2)
        How many distinct networks and how many native encodings the edge
        stands for (0: the edge does not exist in that count).
    label : int64 array (E, ...)
        Opaque to the dynamic programs; the space decodes paths with it.
    name : str
        For messages (``"stage 2, block 1"``).
    """

    n_in: int
    n_out: int
    src: np.ndarray
    dst: np.ndarray
    values: np.ndarray
    mult: np.ndarray
    label: np.ndarray
    name: str = ""

    def __post_init__(self):
        self.src = np.asarray(self.src, dtype=np.int64)
        self.dst = np.asarray(self.dst, dtype=np.int64)
        self.values = np.ascontiguousarray(self.values, dtype=np.int64)
        self.mult = np.ascontiguousarray(self.mult, dtype=np.uint64).reshape(-1, 2)
        self.label = np.asarray(self.label)
        E = len(self.src)
        if not (len(self.dst) == self.values.shape[0] == self.mult.shape[0] == len(self.label) == E):
            raise ValueError(f"step {self.name!r}: edge arrays disagree in length")
        if self.values.ndim != 3 or self.values.shape[2] != len(METRICS):
            raise ValueError(f"step {self.name!r}: values must be (edges, groups, {len(METRICS)})")
        if E and (self.src.min() < 0 or self.src.max() >= self.n_in or self.dst.min() < 0
                  or self.dst.max() >= self.n_out):
            raise ValueError(f"step {self.name!r}: an edge names a state out of range")
        if (self.values < 0).any():
            raise ValueError(f"step {self.name!r}: metric contributions must be >= 0")

    def mode_mult(self, mode: str) -> np.ndarray:
        """Multiplicities in one count mode (``networks`` or ``encodings``)."""
        return self.mult[:, COUNT_MODES.index(mode)]


@dataclass
class Trellis:
    """A decomposable space as a layered graph of choices.

    Boundary 0 has one state (the start), the last boundary one (the end);
    step ``k`` joins boundary ``k`` to ``k + 1``.  A path from start to end,
    within one *group*, is a candidate; its metric values are the sums of
    its edges' values in that group (the peak: their maximum), for the
    metrics in ``exact``.  A path's multiplicity is the product of its
    edges' multiplicities in the count mode: 1 per distinct network, and
    how many native encodings stand for it.

    Attributes
    ----------
    steps : list of Step
    group_name : str or None
        The native field that selects the group (``"r"``), or None.
    group_values : array
        Its value per group.
    exact : frozenset of str
        Metrics whose path value equals the record core's, every candidate.
    decode : callable
        ``decode(edges, subs, groups) -> native columns``: ``edges`` (n,
        steps) the edge taken at each step, ``subs`` (n, steps) uint64 which
        of an edge's multiplicity (encodings), ``groups`` (n,).
    options : ScoringOptions
        What the values count.
    """

    steps: list
    group_name: Optional[str]
    group_values: np.ndarray
    exact: frozenset
    decode: Callable
    options: ScoringOptions
    _memo: dict = field(default_factory=dict, repr=False, compare=False)
    _lock: Any = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a trellis needs at least one step")
        if self.steps[0].n_in != 1 or self.steps[-1].n_out != 1:
            raise ValueError("a trellis starts and ends in one state")
        for a, b in zip(self.steps, self.steps[1:]):
            if a.n_out != b.n_in:
                raise ValueError(f"steps {a.name!r} and {b.name!r} disagree on their boundary")
        G = self.n_groups
        if any(s.values.shape[1] != G for s in self.steps):
            raise ValueError("every step needs values for every group")

    @property
    def n_groups(self) -> int:
        """Groups of the trellis (e.g. input resolutions)."""
        return len(self.group_values)

    def memo(self, key, build: Callable, nbytes: Optional[Callable] = None):
        """``build()``, kept under ``key`` for the next caller (chunks of one
        exact sampling run share their dynamic programs); results with
        ``nbytes`` are kept only up to :data:`MEMO_BYTES` in all, most recent first."""
        with self._lock:
            if key in self._memo:
                value = self._memo.pop(key)
                self._memo[key] = value
                return value[0]
        value = build()
        size = nbytes(value) if nbytes is not None else 0
        with self._lock:
            self._memo[key] = (value, size)
            while sum(v[1] for v in self._memo.values()) > MEMO_BYTES:
                big = next(k for k, v in self._memo.items() if v[1])
                self._memo.pop(big)
        return value

    def check(self, metrics: Sequence[str]) -> None:
        """Raise :class:`NotDecomposable` unless every metric is exact here."""
        bad = [m for m in metrics if m not in self.exact]
        if bad:
            raise NotDecomposable(f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not a sum "
                                  f"(or maximum) over this space's blocks; exact for: "
                                  f"{', '.join(sorted(self.exact))}")
