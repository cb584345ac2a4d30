"""NAS-Bench-201: 15,625 cell architectures in the benchmark's macro skeleton.

Reference: X. Dong and Y. Yang, "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020; the benchmark's code is
the ``xautodl`` package (``xautodl.models.cell_infers.TinyNetwork``).  With
the ``nb201`` convention nasflops reproduces the benchmark's published FLOPs
and params exactly: on CIFAR-10 they span 7.78 to 220.11 MFLOPs and 0.073 to
1.53 M params, and ``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
has 113.95137 MFLOPs and 0.802426 M params.

The native encoding is the benchmark's string: three nodes separated by
``+``, node ``j`` listing ``|op~i|`` for every earlier node ``i = 0 .. j-1``.
As columns it is ``ops``, int8 ``(n, 6)``: the op index of each edge, edges in
the string's order ``(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)`` and ops numbered
as in :data:`OPS` (xautodl's ``NAS_BENCH_201`` list).

The enumeration order is mixed radix over the six edges, edge ``1<-0`` most
significant: candidate ``i`` has ``ops[e] = (i // 5**(5 - e)) % 5``.  This is
*not* the index of the NAS-Bench-201 API (that index follows the benchmark's
archive file, which nasflops does not ship); :meth:`NB201Space.index` gives
ours.

Macro skeleton (``TinyNetwork(C, N)``, C=16, N=5): stem conv3x3 + BN; three
stages of N cells at C, 2C, 4C channels, a ``ResNetBasicblock`` of stride 2
between stages (ReLU-conv3x3/2-BN, ReLU-conv3x3-BN, shortcut avgpool2/2 +
conv1x1, add); BN + ReLU; global average pool; linear classifier.  Cell edges:
``nor_conv_kxk`` = ReLU -> conv (no bias) -> BN (affine), ``avg_pool_3x3`` =
stride 1, padding 1, ``count_include_pad=False``, ``skip_connect`` = identity,
``none`` = zeros.

How the records model the torch forward pass (what memory metrics assume):

* ``skip_connect`` is an ``identity`` record: a view, it allocates nothing;
  ``none`` is a ``zero`` record: xautodl computes ``x.mul(0.0)``, a new
  tensor, so it allocates.
* The cell's ReLUs are not in-place (``nn.ReLU(inplace=False)``) and
  allocate; the final ReLU is in-place.
* A node with several incoming edges is a chain of two-input ``add`` records
  in edge order, as xautodl's running ``sum`` computes it; node 1, with one
  edge, is that edge's output itself (torch's ``0 + x`` copy is not modelled).
* Records come in forward order: edges in string order, each node's adds
  right after its last edge; tensors are freed after their last consumer.

Every op has a fixed record template, so encoding is a single vectorised
gather from a pool of templates (see :meth:`NB201Space.encode_columns`).

Examples
--------
>>> import nasflops
>>> from nasflops.search_spaces import get_space
>>> space = get_space("nb201", dataset="cifar10")
>>> s = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
...      "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
>>> r = nasflops.score(space.encode([s]), convention="nb201")
>>> int(r["ops"][0]), int(r["params"][0])
(113951370, 802426)
"""
from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Sequence

import numpy as np

from nasflops.engine import METRICS
from nasflops.options import ScoringOptions, positive_int, short_repr
from nasflops.spec import LAYER_DTYPE, Act, Flag, Op, SpecBatch, empty_records
from .base import SearchSpace
from .columns import NativeError
from .tables import NotDecomposable, SlotTable, Step, Trellis, score_slots
from .templates import UNUSED, TemplatePool

__all__ = ["NB201Space", "OPS", "EDGES", "DATASETS", "N_EDGES", "SIZE"]

#: op names, in the order of their index in the ``ops`` column (xautodl's
#: ``NAS_BENCH_201`` list)
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: cell edges ``(to_node, from_node)`` in the order of the native string
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_EDGES = len(EDGES)
N_OPS = len(OPS)
#: number of distinct cells (= architectures)
SIZE = N_OPS ** N_EDGES
#: dataset -> (input channels, height, width, classes) of the benchmark
DATASETS: dict[str, tuple[int, int, int, int]] = {
    "cifar10": (3, 32, 32, 10),
    "cifar100": (3, 32, 32, 100),
    "ImageNet16-120": (3, 16, 16, 120),
}

_OP_INDEX = {name: k for k, name in enumerate(OPS)}
# mixed-radix weights: edge 0 most significant
_RADIX = N_OPS ** np.arange(N_EDGES - 1, -1, -1, dtype=np.int64)
# records an edge of each op takes (ReLU, conv, BN for convolutions)
_OP_LEN = np.array([1, 1, 3, 3, 1], dtype=np.int64)
# templates below are written with inputs relative to the template's start
# (-1 being the layer just before it: a cell's or block's input) and UNUSED
# for unused slots; _record_relative() turns them into the pool's form
_UNUSED = UNUSED

# a record as machine words, to compare records fast
_WORD = np.dtype(np.uint64 if LAYER_DTYPE.itemsize % 8 == 0 else np.uint8)
_WORDS = LAYER_DTYPE.itemsize // _WORD.itemsize

_EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
            "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


# ---------------------------------------------------------------- templates
def _rec(op, inputs=(), **fields) -> np.ndarray:
    r = empty_records(1)
    r["op"] = op
    if len(inputs) > 2:
        raise ValueError("nb201 templates use at most two inputs")
    for k in range(2):
        r[f"input{k}"] = inputs[k] if k < len(inputs) else _UNUSED
    for k, v in fields.items():
        r[k] = v
    return r


def _conv(inp, out_ch, k, stride=1, pad=0, flags=0):
    return _rec(Op.CONV2D, [inp], out_channels=out_ch, groups=1, kernel_h=k, kernel_w=k,
                stride_h=stride, stride_w=stride, pad_h=pad, pad_w=pad,
                dilation_h=1, dilation_w=1, flags=flags)


def _window(op, inp, k, stride, pad, flags=0):
    return _rec(op, [inp], kernel_h=k, kernel_w=k, stride_h=stride, stride_w=stride,
                pad_h=pad, pad_w=pad, dilation_h=1, dilation_w=1, flags=flags)


def _relu(inp, inplace=False):
    return _rec(Op.ACT, [inp], act=Act.RELU, flags=Flag.INPLACE if inplace else 0)


def _bn(inp):
    return _rec(Op.BATCHNORM, [inp], flags=Flag.AFFINE)


def _stem(C: int, in_ch: int, h: int, w: int) -> np.ndarray:
    """Input + ``stem``: conv3x3 (no bias) + BN.  Positions are absolute."""
    return np.concatenate([
        _rec(Op.INPUT, (), out_channels=in_ch, size_h=h, size_w=w),
        _conv(0, C, 3, 1, 1),
        _bn(1),
    ])


def _reduction(c_out: int) -> np.ndarray:
    """xautodl ``ResNetBasicblock(c_in, c_out, stride=2)``, forward order."""
    return np.concatenate([
        _relu(-1), _conv(0, c_out, 3, 2, 1), _bn(1),            # conv_a
        _relu(2), _conv(3, c_out, 3, 1, 1), _bn(4),              # conv_b
        _window(Op.AVGPOOL, -1, 2, 2, 0), _conv(6, c_out, 1),      # downsample
        _rec(Op.ADD, [7, 5]),                                    # residual + basicblock
    ])


def _head(classes: int) -> np.ndarray:
    """``lastact`` (BN, in-place ReLU), global pool, view, classifier."""
    return np.concatenate([
        _bn(-1), _relu(0, inplace=True),
        _rec(Op.ADAPTIVE_AVGPOOL, [1], size_h=1, size_w=1),
        _rec(Op.FLATTEN, [2]),
        _rec(Op.LINEAR, [3], out_channels=classes, flags=Flag.BIAS),
    ])


@functools.lru_cache(maxsize=1)
def _cell_library() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Records of every cell, indexed by enumeration order.

    Returns ``(records, start, length)``: cell ``g`` is
    ``records[start[g]:start[g] + length[g]]``, inputs relative to the cell's
    first record (-1 = the cell input), convolution ``out_channels`` 1 (the
    caller scales them per stage).

    Built in a padded layout of 21 slots per cell (three per edge, one per
    add) where every input is known in advance, then compacted.
    """
    G = SIZE
    ops = _index_to_ops(np.arange(G, dtype=np.int64)).astype(np.int64)
    W = 21
    IN = W  # padded index standing for the cell input
    edge_slots = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8],
                           [10, 11, 12], [13, 14, 15], [17, 18, 19]])
    add2, add3a, add3b = 9, 16, 20
    node_slot = np.array([IN, 2, add2, add3b])     # where each node's tensor is
    # slot-level templates of each op: (a, b, c); one-record ops use slot c
    tmpl = empty_records(N_OPS * 3).reshape(N_OPS, 3)
    used = np.zeros((N_OPS, 3), dtype=bool)
    tmpl[0, 2] = _rec(Op.ZERO, [0])[0]
    tmpl[1, 2] = _rec(Op.IDENTITY, [0])[0]
    tmpl[4, 2] = _window(Op.AVGPOOL, 0, 3, 1, 1, Flag.EXCLUDE_PAD)[0]
    for k, kernel in ((2, 1), (3, 3)):
        tmpl[k, 0] = _relu(0)[0]
        tmpl[k, 1] = _conv(0, 1, kernel, 1, kernel // 2)[0]
        tmpl[k, 2] = _bn(0)[0]
        used[k] = True
    used[:, 2] = True

    P = empty_records(G * W).reshape(G, W)
    U = np.zeros((G, W), dtype=bool)
    in0 = np.full((G, W), -1, dtype=np.int64)
    in1 = np.full((G, W), -1, dtype=np.int64)
    for e, (_, src) in enumerate(EDGES):
        a, b, c = edge_slots[e]
        k = ops[:, e]
        P[:, [a, b, c]] = tmpl[k]
        U[:, [a, b, c]] = used[k]
        s = node_slot[src]
        in0[:, a] = s
        in0[:, b] = a
        in0[:, c] = np.where(_OP_LEN[k] == 3, b, s)
    for slot, (x, y) in ((add2, (edge_slots[1, 2], edge_slots[2, 2])),
                         (add3a, (edge_slots[3, 2], edge_slots[4, 2])),
                         (add3b, (add3a, edge_slots[5, 2]))):
        P[:, slot] = _rec(Op.ADD)[0]
        U[:, slot] = True
        in0[:, slot] = x
        in1[:, slot] = y

    # compact: padded slot -> position within the cell; cell input -> -1
    pos = np.concatenate([np.cumsum(U, axis=1) - 1, np.full((G, 1), -1)], axis=1)
    rows = np.arange(G)[:, None]
    P["input0"] = np.where(in0 >= 0, pos[rows, np.maximum(in0, 0)], _UNUSED)
    P["input1"] = np.where(in1 >= 0, pos[rows, np.maximum(in1, 0)], _UNUSED)
    records = P[U]
    length = U.sum(axis=1).astype(np.int64)
    start = np.zeros(G, dtype=np.int64)
    np.cumsum(length[:-1], out=start[1:])
    for a in (records, start, length):
        a.setflags(write=False)
    return records, start, length


def _record_relative(records: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Templates given back to back, inputs relative to each template's start,
    rewritten relative to each record (the pool's form)."""
    rec = records.copy()
    starts = np.cumsum(lengths) - lengths
    local = np.arange(len(rec)) - np.repeat(starts, lengths)
    for f in ("input0", "input1", "input2", "input3"):
        used = rec[f] != _UNUSED
        rec[f] = np.where(used, rec[f] - local, _UNUSED)
    return rec


class _Pool:
    """Every template one space instance assembles architectures from."""

    def __init__(self, C: int, N: int, dataset: str):
        in_ch, h, w, classes = DATASETS[dataset]
        cells, start, length = _cell_library()
        cells = cells.copy()
        self.pool = pool = TemplatePool(n_res=1)
        fixed = [_stem(C, in_ch, h, w), _reduction(2 * C), _reduction(4 * C), _head(classes)]
        for part in fixed + [cells]:
            # templates use two slots; -1 in input0/1 names the layer before
            part["input2"] = part["input3"] = _UNUSED
        # what each slot reads: the stem the network input; reductions and
        # cells their stage's tensor; the head the last stage's
        ins = [None, (C, h, w), (2 * C, h // 2, w // 2), (4 * C, h // 4, w // 4)]
        self.stem, self.red1, self.red2, self.head = (
            pool.add_records(_record_relative(part, np.array([len(part)])), slot_input=si)
            for part, si in zip(fixed, ins))
        conv = cells["op"] == Op.CONV2D
        cell_rel = _record_relative(cells, length)
        self.cell_base = []
        for stage in range(3):
            lib = cell_rel.copy()
            lib["out_channels"][conv] = C << stage
            shape = (C << stage, h >> stage, w >> stage)
            self.cell_base.append(pool.add_many(lib, length, slot_inputs=[shape] * len(length)))
        pool.freeze()
        # slots of an architecture: stem, N cells, red, N cells, red, N cells, head
        self.n_slots = 3 * N + 4
        self.N = N


#: bounds of the skeleton parameters: widths up to 4 * MAX_C channels, and at
#: most ~45 * MAX_N layers per architecture (a 4,096-candidate encode block
#: then stays under ~200 MB of records)
MAX_C, MAX_N = 1024, 16


@functools.lru_cache(maxsize=4)   # ~36 MB each
def _pool(C: int, N: int, dataset: str) -> _Pool:
    return _Pool(C, N, dataset)


# ------------------------------------------------------------ native tables
def _index_to_ops(idx: np.ndarray) -> np.ndarray:
    return ((idx[:, None] // _RADIX[None, :]) % N_OPS).astype(np.int8)


@functools.lru_cache(maxsize=1)
def _strings() -> tuple[np.ndarray, dict]:
    """All 15,625 native strings in enumeration order, and string -> index."""
    ops = _index_to_ops(np.arange(SIZE, dtype=np.int64))
    out = []
    for row in ops.tolist():
        names = [f"{OPS[k]}~{src}" for k, (_, src) in zip(row, EDGES)]
        out.append(f"|{names[0]}|+|{names[1]}|{names[2]}|+|{names[3]}|{names[4]}|{names[5]}|")
    arr = np.array(out, dtype=object)
    arr.setflags(write=False)
    return arr, {s: i for i, s in enumerate(out)}


_NODE_RE = re.compile(r"^\|(.*)\|$")


def _parse_string(space: str, cand: int, s: str) -> list[int]:
    """Parse one native string, raising a :class:`NativeError` that names the
    candidate, the field and the edge at fault."""
    def fail(reason):
        raise NativeError(space, cand, "arch", f"{reason} (in {s!r})")

    s_stripped = s.strip()
    nodes = s_stripped.split("+")
    if len(nodes) != 3:
        fail(f"expected 3 nodes separated by '+', got {len(nodes)}")
    ops = []
    for j, node in enumerate(nodes, start=1):
        m = _NODE_RE.match(node)
        if m is None or m.group(1) == "":
            fail(f"node {j} {node!r} is not of the form '|op~i|...|'")
        items = m.group(1).split("|")
        if len(items) != j:
            fail(f"node {j} must list {j} incoming edge(s) (from nodes 0..{j - 1}), "
                 f"got {len(items)}")
        for i, item in enumerate(items):
            op, sep, src = item.partition("~")
            if not sep:
                fail(f"node {j}, edge {i + 1}: {item!r} is not of the form 'op~i'")
            if op not in _OP_INDEX:
                fail(f"node {j} <- {src}: unknown op {op!r}; expected one of {', '.join(OPS)}")
            if not src.isdigit():
                fail(f"node {j}: input index {src!r} of {item!r} is not an integer")
            if int(src) >= j:
                fail(f"node {j}: input index {int(src)} out of range (node {j} takes "
                     f"inputs 0..{j - 1})")
            if int(src) != i:
                fail(f"node {j}: edge {i + 1} comes from node {int(src)}; the edges of "
                     f"node {j} must come from nodes 0..{j - 1}, once each, in order")
            ops.append(_OP_INDEX[op])
    return ops


def _parse_ops(space: str, cand: int, seq) -> list[int]:
    """A sequence of 6 ops (names or indices), validated."""
    try:
        items = list(seq)
    except TypeError:
        raise NativeError(space, cand, "arch", f"expected an NB201 string, a mapping or a "
                          f"sequence of {N_EDGES} ops, got {type(seq).__name__}") from None
    if len(items) != N_EDGES:
        raise NativeError(space, cand, "ops", f"expected {N_EDGES} ops (one per edge "
                          f"{', '.join(f'{d}<-{s}' for d, s in EDGES)}), got {len(items)}")
    ops = []
    for e, v in enumerate(items):
        d, s = EDGES[e]
        if isinstance(v, str):
            if v not in _OP_INDEX:
                raise NativeError(space, cand, f"ops[{e}]", f"edge {d}<-{s}: unknown op {v!r}; "
                                  f"expected one of {', '.join(OPS)}")
            ops.append(_OP_INDEX[v])
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            if not 0 <= int(v) < N_OPS:
                raise NativeError(space, cand, f"ops[{e}]", f"edge {d}<-{s}: op index {int(v)} "
                                  f"out of range 0..{N_OPS - 1}")
            ops.append(int(v))
        else:
            raise NativeError(space, cand, f"ops[{e}]", f"edge {d}<-{s}: expected an op name "
                              f"or index, got {v!r}")
    return ops


# ------------------------------------------------------------------- space
class NB201Space(SearchSpace):
    """NAS-Bench-201 cell space in xautodl's ``TinyNetwork`` skeleton.

    Parameters
    ----------
    dataset : {"cifar10", "cifar100", "ImageNet16-120"}
        Sets the input resolution (32, 32, 16) and classes (10, 100, 120).
    C : int
        Channels of the first stage (the benchmark: 16).
    N : int
        Cells per stage (the benchmark: 5).

    Examples
    --------
    >>> from nasflops.search_spaces import get_space
    >>> space = get_space("nb201", dataset="ImageNet16-120")
    >>> cols = space.enumerate_columns(0, 3)
    >>> space.from_columns(cols)[2]
    '|none~0|+|none~0|none~1|+|none~0|none~1|nor_conv_1x1~2|'
    >>> batch = space.encode(space.from_columns(cols))
    >>> len(batch)
    3
    """

    name = "nb201"
    reference = ("Dong & Yang, NAS-Bench-201, ICLR 2020 (code: xautodl). Convention 'nb201' "
                 "reproduces the published FLOPs/params: CIFAR-10 7.78-220.11 MFLOPs, "
                 "0.073-1.53 M params")
    native_columns = {
        "ops": "int8 (n, 6): op index per edge, edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; "
               "ops " + ", ".join(f"{k}={o}" for k, o in enumerate(OPS)),
    }
    native_example = _EXAMPLE

    def __init__(self, dataset: str = "cifar10", C: int = 16, N: int = 5):
        if not isinstance(dataset, str) or dataset not in DATASETS:
            raise ValueError(f"nb201: unknown dataset {short_repr(dataset)}; known: "
                             f"{', '.join(DATASETS)}")
        # bounded so that no parameter asks for a multi-GB template pool or
        # encode block: C is the first stage's width (xautodl: 16), N the
        # cells per stage (5); an architecture has ~45 * N layers
        self.dataset = dataset
        self.C = positive_int(C, "nb201: C", 1, MAX_C)
        self.N = positive_int(N, "nb201: N", 1, MAX_N)

    @property
    def params(self) -> dict:
        return {"dataset": self.dataset, "C": self.C, "N": self.N}

    @property
    def size(self) -> int:
        return SIZE

    # -- columns ------------------------------------------------------------
    def _enumerate_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        if not 0 <= start <= stop <= SIZE:
            raise ValueError(f"nb201: enumeration range {start}..{stop} outside 0..{SIZE}")
        return {"ops": _index_to_ops(np.arange(start, stop, dtype=np.int64))}

    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        # uniform over the 15,625 cells: each edge's op independently uniform
        return {"ops": rng.integers(0, N_OPS, size=(n, N_EDGES), dtype=np.int8)}

    def _checked_ops(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        if "ops" not in cols:
            raise NativeError(self.name, None, "ops", f"missing column; got {sorted(cols)}")
        ops = np.asarray(cols["ops"])
        if ops.ndim != 2 or ops.shape[1] != N_EDGES:
            raise NativeError(self.name, None, "ops",
                              f"expected shape (n, {N_EDGES}), got {ops.shape}")
        if ops.dtype.kind not in "iu":
            raise NativeError(self.name, None, "ops", f"expected integers, got dtype {ops.dtype}")
        bad = (ops < 0) | (ops >= N_OPS)
        if bad.any():
            i, e = (int(v) for v in np.argwhere(bad)[0])
            raise NativeError(self.name, i, f"ops[{e}]", f"op index {int(ops[i, e])} out of "
                              f"range 0..{N_OPS - 1}")
        return ops

    def index(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        """Enumeration index (0 .. 15624) of each candidate, int64."""
        return self._checked_ops(cols).astype(np.int64) @ _RADIX

    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        """Columns from natives: NB201 strings, ``{"arch": str}`` or ``{"ops": [...]}``
        mappings, or sequences of 6 op names or indices (one bare string is one
        candidate).  A 2-D integer array is taken as the ``ops`` column."""
        if isinstance(natives, str):
            natives = [natives]
        if isinstance(natives, np.ndarray) and natives.ndim == 2 and natives.dtype.kind in "iu":
            return {"ops": self._checked_ops({"ops": natives}).astype(np.int8)}
        _, lookup = _strings()
        idx = np.empty(len(natives), dtype=np.int64)
        for i, nat in enumerate(natives):
            # canonical strings: one dict lookup; anything else is parsed and
            # validated field by field
            g = lookup.get(nat) if isinstance(nat, str) else None
            if g is None:
                if isinstance(nat, Mapping):
                    if "arch" in nat:
                        nat = nat["arch"]
                    elif "ops" in nat:
                        nat = nat["ops"]
                    else:
                        raise NativeError(self.name, i, "arch", f"mapping has neither 'arch' "
                                          f"nor 'ops' (keys: {sorted(nat)})")
                if isinstance(nat, str):
                    g = lookup.get(nat)
                    if g is None:
                        ops = _parse_string(self.name, i, nat)
                        g = int(np.dot(ops, _RADIX))
                else:
                    g = int(np.dot(_parse_ops(self.name, i, nat), _RADIX))
            idx[i] = g
        return {"ops": _index_to_ops(idx)}

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        """NB201 strings."""
        strings, _ = _strings()
        return strings[self.index(cols)].tolist()

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """``{"arch": pyarrow string array}`` of NB201 strings."""
        import pyarrow as pa
        return {"arch": _arrow_strings().take(pa.array(self.index(cols)))}

    # -- encoding -----------------------------------------------------------
    def _slot_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Template id of every slot (stem, cells, reduction blocks, head), one group."""
        g = self.index(cols)
        n = g.shape[0]
        p = _pool(self.C, self.N, self.dataset)
        N = self.N
        tids = np.empty((n, p.n_slots), dtype=np.int64)
        tids[:, 0] = p.stem
        for stage in range(3):
            lo = 1 + stage * (N + 1)
            tids[:, lo:lo + N] = (p.cell_base[stage] + g)[:, None]
            if stage < 2:
                tids[:, lo + N] = p.red1 if stage == 0 else p.red2
        tids[:, -1] = p.head
        return tids, np.zeros(n, dtype=np.int64)

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        """Records of every candidate: one gather from the template pool.

        An architecture is ``3N + 4`` segments (stem, cells, reduction
        blocks, head), each a contiguous run of pool templates; only a cell's
        length depends on its ops.  Inputs are stored relative to their
        segment and shifted to positions in the architecture afterwards.
        """
        tids, groups = self._slot_ids(cols)
        # one compiled pass copies the templates and makes their inputs absolute
        return _pool(self.C, self.N, self.dataset).pool.assemble(
            tids, groups, np.zeros(1, dtype=np.int64), set_input_size=False)

    # -- block tables and trellis (exact profiles) ----------------------------------
    def _slot_table(self, opts: ScoringOptions) -> SlotTable:
        return _pool(self.C, self.N, self.dataset).pool.slot_table(opts)

    def _trellis(self, opts: ScoringOptions, metrics: tuple) -> Trellis:
        """Six independent edges where the metrics allow, else one step of all
        15,625 cells (see :func:`nb201_trellis`)."""
        return nb201_trellis(self, self.block_table(opts), metrics)

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Columns back from records this space encoded (same dataset, C, N).

        Reads the first cell's ops, then checks that re-encoding gives the
        same records; raises :class:`NativeError` naming the first candidate
        that is not an NB201 architecture of this space.
        """
        n = len(batch)
        if n == 0:
            return {"ops": np.zeros((0, N_EDGES), dtype=np.int8)}
        rec, off, lengths = batch.records, batch.offsets, batch.lengths
        if (lengths == 0).any():
            raise NativeError(self.name, int(np.argmax(lengths == 0)), "records",
                              "empty architecture")
        op, kern = rec["op"], rec["kernel_h"]
        last = len(rec) - 1
        ops = np.zeros((n, N_EDGES), dtype=np.int8)
        ok = np.ones(n, dtype=bool)
        pos = off[:-1] + 3                              # the first cell's first record
        for e in range(N_EDGES):
            ok &= pos < off[1:]
            o = op[np.minimum(pos, last)]
            kk = kern[np.minimum(pos + 1, last)]        # conv kernel after a ReLU
            k = np.select([o == Op.ZERO, o == Op.IDENTITY, o == Op.AVGPOOL,
                           (o == Op.ACT) & (kk == 1), (o == Op.ACT) & (kk == 3)],
                          [0, 1, 4, 2, 3], -1)
            ok &= k >= 0
            k = np.maximum(k, 0)
            ops[:, e] = k
            # the adds of nodes 2 and 3a follow edges 2 and 4
            pos = pos + _OP_LEN[k] + (1 if e in (2, 4) else 0)
        cols = {"ops": ops}
        # the decoded ops must re-encode to exactly these records
        again = self.encode_columns(cols)
        same = again.lengths == lengths
        idx = np.flatnonzero(same)
        if len(idx):
            a, a_off = _gather(again, idx)
            b, _ = _gather(batch, idx)
            diff = (a.view(_WORD).reshape(-1, _WORDS)
                    != b.view(_WORD).reshape(-1, _WORDS)).any(axis=1)
            same[idx] = ~np.logical_or.reduceat(diff, a_off[:-1])
        ok &= same
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise NativeError(self.name, i, "records", "not an NB201 TinyNetwork spec of "
                              f"{self!r}")
        return cols


def _gather(batch: SpecBatch, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Records and offsets of architectures ``idx`` (no copy when all)."""
    if len(idx) == len(batch):
        return batch.records, batch.offsets
    starts, lens = batch.offsets[idx], batch.lengths[idx]
    off = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    src = np.repeat(starts - off[:-1], lens) + np.arange(off[-1])
    return np.take(batch.records, src), off


@functools.lru_cache(maxsize=1)
def _arrow_strings():
    import pyarrow as pa
    strings, _ = _strings()
    return pa.array(strings.tolist(), type=pa.string())


# ------------------------------------------------------------ exact profiles
def _cell_costs(space: NB201Space, table: SlotTable) -> tuple[np.ndarray, np.ndarray]:
    """``(per_edge, rest)``: what op ``o`` on edge ``e`` adds to a whole
    network (its five cells of every stage), ``(6, 5, metrics)``, and the
    rest of the network (stem, reduction blocks, head, the cells' adds).

    An edge's op reads the same node tensor whatever the other edges hold,
    so a cell costs the sum of its edges plus its adds: measured against
    the cell whose every edge is ``skip_connect`` (an identity view, which
    costs nothing).
    """
    p = _pool(space.C, space.N, space.dataset)
    N, skip = space.N, _OP_INDEX["skip_connect"]
    base_g = int(np.dot([skip] * N_EDGES, _RADIX))
    cells = sum(table.values[p.cell_base[st]:p.cell_base[st] + SIZE, 0] for st in range(3))
    per_edge = np.zeros((N_EDGES, N_OPS, len(METRICS)), dtype=np.int64)
    for e in range(N_EDGES):
        for o in range(N_OPS):
            g = base_g + (o - skip) * int(_RADIX[e])
            per_edge[e, o] = N * (cells[g] - cells[base_g])
    rest = sum(table.values[t, 0] for t in (p.stem, p.red1, p.red2, p.head)) + N * cells[base_g]
    return per_edge, rest


def nb201_trellis(space: NB201Space, table: SlotTable, metrics: tuple) -> Trellis:
    """NAS-Bench-201 as a trellis.

    The metrics that are sums over the six edges' ops (checked against all
    15,625 cells, from the block table) get a trellis of a constant step and
    six steps of five edges: the profile is a convolution over independent
    edges.  The peak of live activations is not a sum over edges (a cell's
    tensors live together): for it, or any metric that fails the check, the
    trellis is one step whose 15,625 edges are the cells themselves, each
    with its whole network's values from the block table.
    """
    per_edge, rest = _cell_costs(space, table)
    ops = _index_to_ops(np.arange(SIZE, dtype=np.int64)).astype(np.int64)
    tids, groups = space._slot_ids({"ops": ops})
    whole = score_slots(table, tids, groups)
    if whole is None:
        raise NotDecomposable(f"{space.name}: the block table does not cover every cell")
    summed = per_edge[np.arange(N_EDGES), ops].sum(axis=1) + rest
    additive = frozenset(m for k, m in enumerate(METRICS) if m != "peak_act_bytes"
                         and np.array_equal(summed[:, k], whole.metrics[:, k]))
    one = np.ones((1, 2), dtype=np.uint64)
    decode = (lambda path, subs, groups_: {"ops": _edge_ops(path)})
    if set(metrics) <= additive:
        const = rest.copy()
        const[METRICS.index("peak_act_bytes")] = 0
        steps = [Step(1, 1, [0], [0], const[None, None], one, [-1], "network (edges aside)")]
        for e, (d, s_) in enumerate(EDGES):
            vals = per_edge[e].copy()
            vals[:, METRICS.index("peak_act_bytes")] = 0
            steps.append(Step(1, 1, np.zeros(N_OPS), np.zeros(N_OPS), vals[:, None],
                              np.ones((N_OPS, 2)), np.arange(N_OPS), f"edge {d}<-{s_}"))
        return Trellis(steps, None, np.zeros(1, dtype=np.int64), additive, decode, table.options)
    step = Step(1, 1, np.zeros(SIZE), np.zeros(SIZE), whole.metrics[:, None, :len(METRICS)],
                np.ones((SIZE, 2)),
                np.arange(SIZE), "cell")
    return Trellis([step], None, np.zeros(1, dtype=np.int64), frozenset(METRICS),
                   lambda path, subs, groups_: {"ops": _index_to_ops(path[:, 0])}, table.options)


def _edge_ops(path: np.ndarray) -> np.ndarray:
    """The ``ops`` column of paths through the six-edge trellis (step 0 is constant)."""
    return path[:, 1:1 + N_EDGES].astype(np.int8)
