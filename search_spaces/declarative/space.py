"""The compiled declarative space: sampling, validation and encoding, vectorised.

Every block variant of every position is written once as a record template
(:class:`~nasflops.search_spaces.templates.TemplatePool`); a batch of
candidates is a table lookup of template ids and one compiled gather.  The
schema and the native encoding are described in ``docs/declarative.md``.
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from nasflops.options import ScoringOptions
from nasflops.spec import Net, SpecBatch
from ..base import SearchSpace
from ..columns import NativeError, n_rows
from .._gather import chain_tids
from ..profiles import path_counts
from ..tables import SlotTable, Trellis
from ..templates import TemplatePool
from .blocks import BlockWriter
from .chains import build_trellis
from .decode import decode_batch
from .schema import FIELD_MAX, SchemaError, normalize

__all__ = ["DeclarativeSpace", "MAX_TEMPLATES"]


_COLUMN_DOC = {
    "r": "int16 (n,): input resolution",
    "d": "int8 (n, stages): depth of each stage",
    "w": "int16 (n, stages): width of each stage",
    "op": "int8 (n, positions): block type of each position (index into block_types)",
    "ks": "int8 (n, positions): kernel of each position",
    "e": "int8 or float32 (n, positions): expansion of each position",
}
_ORDER = ("op", "ks", "e", "d", "w", "r")
#: compile-time bound on block templates (each a few records, built once)
MAX_TEMPLATES = 200_000


class DeclarativeSpace(SearchSpace):
    """A chain space compiled from a declarative definition (``docs/declarative.md``).

    Parameters
    ----------
    schema : mapping
        The definition (as loaded from YAML).
    source : str, optional
        The file it came from; rebuilt from it (``params["path"]``) unless shipped.
    shipped : bool
        A definition shipped with nasflops: rebuilt from its name alone.
    overrides : mapping, optional
        Values of the space's declared ``parameters`` (e.g. OFA's ``width_mult``).

    Attributes
    ----------
    block_types : tuple of str
        The block type names, in the order ``op`` column values index.
    n_positions : int
        Block positions (all stages at their largest depth).
    """

    def __init__(self, schema: Mapping, source: Optional[str] = None, shipped: bool = False,
                 overrides: Optional[Mapping] = None):
        if not isinstance(schema, Mapping):   # e.g. an empty file, or a YAML list
            raise SchemaError("<space>", f"expected a mapping, got {type(schema).__name__}")
        self.schema = copy.deepcopy(dict(schema))
        self.spec = spec = normalize(self.schema, overrides or {})
        self.source, self.shipped = source, shipped
        self.name = spec["name"]
        self.reference = spec["reference"] or spec["description"]
        st = spec["stages"]
        self.block_types = tuple(dict.fromkeys(t for s in st for t in s["types"]))
        self.n_stages = len(st)
        self._stage_pos = np.cumsum([0] + [max(s["depths"]) for s in st])
        self.n_positions = int(self._stage_pos[-1])
        self.resolutions = np.asarray(spec["resolutions"], dtype=np.int64)
        # a column exists for every dimension with a choice somewhere
        has = {"r": len(self.resolutions) > 1,
               "d": any(len(s["depths"]) > 1 for s in st),
               "w": any(len(s["widths"]) > 1 for s in st),
               "op": any(len(s["types"]) > 1 for s in st),
               "ks": any(len(s["kernels"]) > 1 for s in st),
               "e": any(len(s["expands"]) > 1 for s in st)}
        self._e_float = any(isinstance(x, float) for s in st for x in s["expands"])
        # a space without choices (one network) still names its resolution
        self.columns = tuple(c for c in _ORDER if has[c]) or ("r",)
        self.native_columns = {c: _COLUMN_DOC[c] for c in self.columns}
        self.native_example = "{" + ", ".join(f'"{c}": ...' for c in self.columns) + "}"
        self._compile()
        self._build_lookups()
        self._size: Optional[int] = None

    @property
    def params(self) -> dict:
        # shipped spaces are rebuilt from their name and parameters; others
        # from their file too
        params = dict(self.spec["parameters"])
        if not self.shipped and self.source is not None:
            params = {"path": self.source, **params}
        return params

    def __repr__(self) -> str:
        p = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"DeclarativeSpace({self.name!r}{p})"

    # -- compilation ------------------------------------------------------------
    def _compile(self) -> None:
        spec, b = self.spec, BlockWriter(self.spec["options"])
        st = spec["stages"]
        self._pool = pool = TemplatePool(n_res=len(self.resolutions))
        h = self.resolutions.copy()
        net = Net(spec["channels"], 0, 0)
        x, c, patches = net.input, spec["channels"], []
        for i, layer in enumerate(spec["stem"]):
            x, c, h = b.fixed(net, x, layer, c, h, patches)
            self._check_size(h, f"stem[{i}]")
        self._stem_tid = pool.add_net(net, include_input=True, patches=patches)
        self._empty_tid = pool.add_empty()
        # per position: first template id and the radices of its index
        self._base = np.zeros(self.n_positions, dtype=np.int64)
        self._radix = []          # per position (nt, nk, ne, nwin, nw)
        self._allowed_op = []     # per position: allowed local type indices
        prev_widths = [c]
        n_templates = sum(len(sd["types"]) * len(sd["kernels"]) * len(sd["expands"])
                          * len(sd["widths"]) * (max(sd["depths"]) - 1 + len(prev))
                          for sd, prev in zip(st, [prev_widths] + [x["widths"] for x in st]))
        if n_templates > MAX_TEMPLATES:
            raise SchemaError("stages", f"{n_templates} block templates (one per position and "
                                        f"combination of choices) exceed {MAX_TEMPLATES}; "
                                        "split the space or use fewer choices per stage")
        for s, sd in enumerate(st):
            h_out = (h - 1) // sd["stride"] + 1    # odd kernels, same padding
            self._check_size(h_out, f"stages[{s}]")
            for i in range(max(sd["depths"])):
                p = self._stage_pos[s] + i
                stride = sd["stride"] if i == 0 else 1
                win_choices = prev_widths if i == 0 else [None]
                self._base[p] = len(pool)
                self._radix.append((len(sd["types"]), len(sd["kernels"]), len(sd["expands"]),
                                    len(win_choices), len(sd["widths"])))
                self._allowed_op.append(np.array([j for j, t in enumerate(sd["types"])
                                                  if not (i == 0 and t == "skip")]))
                for typ, k, e, win, wout in itertools.product(
                        sd["types"], sd["kernels"], sd["expands"], win_choices, sd["widths"]):
                    cin = wout if win is None else win
                    if typ == "skip":
                        pool.add_empty()
                        continue
                    bnet, patches, h_in = Net(cin, 0, 0), [], h if i == 0 else h_out
                    b.block(bnet, bnet.input, typ, cin, wout, k, stride, e, sd, h_in, patches)
                    pool.add_net(bnet, patches=patches, size=h_in)
            h, prev_widths = h_out, sd["widths"]
        self._head_base = len(pool)
        for w in prev_widths:
            hnet, patches, hh, c = Net(w, 0, 0), [], h, w
            x = hnet.input
            for i, layer in enumerate(spec["head"]):
                x, c, hh = b.fixed(hnet, x, layer, c, hh, patches)
                self._check_size(hh, f"head[{i}]")
            pool.add_net(hnet, patches=patches, size=h)
        pool.freeze()

    def _build_lookups(self) -> None:
        """Value -> choice index tables of the integer columns, and the
        per-position radices that turn choice indices into template ids."""
        self._luts, self._lut8 = {}, {}
        for col in self.columns:
            if col == "r" or (col == "e" and self._e_float):
                continue
            sets = self._choice_sets(col)
            lo = min(min(c) for _, c in sets)
            hi = max(max(c) for _, c in sets)
            table = np.full((self._width(col), int(hi - lo + 1)), -1, dtype=np.int64)
            for sl, choices in sets:
                for j, v in enumerate(choices):
                    table[sl, int(v - lo)] = j
            if col == "op":       # a stage's first block is never skipped
                for s in range(self.n_stages):
                    p = int(self._stage_pos[s])
                    allowed = set(self._allowed_op[p].tolist())
                    for j, v in enumerate(sets[s][1]):
                        if j not in allowed:
                            table[p, int(v - lo)] = -1
            self._luts[col] = (lo, table)
            if self._dtype(col) == np.int8:
                # int8 columns: index a 256-entry table by the value's bit pattern
                lut8 = np.full((table.shape[0], 256), -1, dtype=np.int8)
                vals = np.arange(lo, hi + 1)
                lut8[:, vals.astype(np.int8).view(np.uint8)] = table
                same = (lut8 == lut8[0]).all()
                self._lut8[col] = lut8[0] if same else lut8.reshape(-1)
        P = self.n_positions
        rad = np.asarray(self._radix, dtype=np.int64).reshape(P, 5)
        self._nk, self._ne, self._nwin, self._nw = rad[:, 1], rad[:, 2], rad[:, 3], rad[:, 4]
        self._pos_stage = np.repeat(np.arange(self.n_stages),
                                    np.diff(self._stage_pos)).astype(np.int64)
        self._pos_in_stage = np.arange(P) - self._stage_pos[self._pos_stage]
        # the width choice a position's input width follows (previous stage)
        self._pos_prev = np.maximum(self._pos_stage - 1, 0)
        self._pos_takes_prev = (self._pos_in_stage == 0) & (self._pos_stage > 0)
        self._depths = [np.asarray(sd["depths"]) for sd in self.spec["stages"]]
        # mixed-radix strides of a position's choices, and depth choice -> depth
        self._stride_w = np.ones(P, dtype=np.int64)
        self._stride_win = self._nw.copy()
        self._stride_e = self._nw * self._nwin
        self._stride_k = self._stride_e * self._ne
        self._stride_t = self._stride_k * self._nk
        self._depth_table = np.zeros((self.n_stages, max(len(d) for d in self._depths)), np.int64)
        for st, ds in enumerate(self._depths):
            self._depth_table[st, :len(ds)] = ds
        # without a depth column every stage has its one depth
        self._fixed_active = self._pos_in_stage < self._depth_table[self._pos_stage, 0]
        self._fast = None if self._e_float else self._kernel_tables()

    def _kernel_tables(self) -> dict:
        """The lookup tables of the compiled template-id kernel (``chain_tids``)."""
        P, S = self.n_positions, self.n_stages
        start, lo, ptr, lut = {}, [], [0], []
        for col in self.columns:
            start[col] = len(lo)
            if col == "r":
                res = self.resolutions
                table = np.full((1, int(res[-1] - res[0] + 1)), -1, dtype=np.int64)
                table[0, res - res[0]] = np.arange(len(res))
                low = int(res[0])
            else:
                low, table = self._luts[col]
            for row in table:
                lo.append(low)
                lut.append(row)
                ptr.append(ptr[-1] + len(row))
        col = {c: (lambda q, c=c: start[c] + q if c in start else -1) for c in _ORDER}
        pos_cols = np.array([[col["op"](p), col["ks"](p), col["e"](p), col["d"](s), col["w"](s),
                              col["w"](s - 1) if self._pos_takes_prev[p] else -1]
                             for p, s in enumerate(self._pos_stage)], dtype=np.int64).reshape(P, 6)
        nk, ne, nwin, nw = self._nk, self._ne, self._nwin, self._nw
        weights = np.stack([nk * ne * nwin * nw, ne * nwin * nw, nwin * nw, nw, np.ones(P, np.int64)],
                           axis=1)
        depth_of = np.zeros((P, max(len(d) for d in self._depths)), dtype=np.int64)
        for p, s in enumerate(self._pos_stage):
            depth_of[p, :len(self._depths[s])] = self._depths[s]
        return {"lo": np.asarray(lo, np.int64), "ptr": np.asarray(ptr, np.int64),
                "lut": np.concatenate(lut).astype(np.int64), "pos_cols": pos_cols,
                "weights": np.ascontiguousarray(weights, dtype=np.int64), "depth_of": depth_of,
                "head_col": col["w"](S - 1), "r_col": col["r"](0)}

    def _check_size(self, h: np.ndarray, where: str) -> None:
        if (h < 1).any():
            r = int(self.resolutions[np.argmax(h < 1)])
            raise SchemaError(where, f"the feature map vanishes at resolution {r}")

    # -- choices per position ---------------------------------------------------
    def _choice_sets(self, col: str) -> list[tuple[slice, list]]:
        """(column slice, choice values) per stage for a column."""
        out = []
        for s, sd in enumerate(self.spec["stages"]):
            sl = slice(int(self._stage_pos[s]), int(self._stage_pos[s + 1]))
            if col == "op":
                out.append((sl, [self.block_types.index(t) for t in sd["types"]]))
            elif col == "ks":
                out.append((sl, sd["kernels"]))
            elif col == "e":
                out.append((sl, sd["expands"]))
            elif col == "d":
                out.append((slice(s, s + 1), sd["depths"]))
            elif col == "w":
                out.append((slice(s, s + 1), sd["widths"]))
        return out

    def _dtype(self, col: str):
        return {"r": np.int16, "d": np.int8, "w": np.int16, "op": np.int8, "ks": np.int8,
                "e": np.float32 if self._e_float else np.int8}[col]

    def _width(self, col: str) -> int:
        return self.n_stages if col in ("d", "w") else self.n_positions

    # -- natives ------------------------------------------------------------------
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """Every column's choices uniformly, column by column (``op, ks, e, d,
        w, r``).  A column whose positions all have the same number of
        choices is drawn in one call of 8-bit indices; others stage by stage."""
        cols = {}
        for col in self.columns:
            if col == "r":
                cols["r"] = self.resolutions[rng.integers(0, len(self.resolutions), n)].astype(np.int16)
                continue
            out = np.empty((n, self._width(col)), dtype=self._dtype(col))
            sets = self._choice_sets(col)
            counts = {len(c) for _, c in sets}
            if len(counts) == 1 and max(counts) <= 127:
                k = rng.integers(0, counts.pop(), (n, out.shape[1]), dtype=np.int8)
                if all(c == sets[0][1] for _, c in sets):
                    out[...] = np.asarray(sets[0][1], dtype=out.dtype)[k]
                else:
                    for sl, choices in sets:
                        out[:, sl] = np.asarray(choices, dtype=out.dtype)[k[:, sl]]
            else:
                for sl, choices in sets:
                    vals = np.asarray(choices, dtype=out.dtype)
                    out[:, sl] = vals[rng.integers(0, len(vals), (n, sl.stop - sl.start))]
            if col == "op":
                # a stage's first block is never skipped: redraw it among the others
                for st in range(self.n_stages):
                    p = int(self._stage_pos[st])
                    allowed = self._allowed_op[p]
                    if len(allowed) < self._radix[p][0]:
                        vals = np.asarray([self.block_types.index(self.spec["stages"][st]["types"][j])
                                           for j in allowed], dtype=out.dtype)
                        out[:, p] = vals[rng.integers(0, len(vals), n)]
            cols[col] = out
        return cols

    def _fail(self, cand, field, reason):
        raise NativeError(self.name, None if cand is None else int(cand), field, reason)

    def _indices(self, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validate columns; return the choice index of every entry."""
        missing = [c for c in self.columns if c not in cols]
        if missing:
            self._fail(None, missing[0], f"column missing (need {', '.join(self.columns)})")
        n = n_rows(cols)
        idx = {}
        for col in self.columns:
            a = np.asarray(cols[col])
            if col == "r":
                if a.ndim != 1 or a.shape[0] != n:
                    self._fail(None, "r", f"expected shape ({n},), got {a.shape}")
                ri = np.clip(np.searchsorted(self.resolutions, a), 0, len(self.resolutions) - 1)
                bad = self.resolutions[ri] != a
                if bad.any():
                    i = int(np.argmax(bad))
                    self._fail(i, "r", f"{a[i]} is not a resolution of the space "
                                       f"({_describe(self.resolutions)})")
                idx["r"] = ri
                continue
            width = self._width(col)
            if a.ndim != 2 or a.shape != (n, width):
                self._fail(None, col, f"expected shape ({n}, {width}), got {a.shape}")
            lut = self._luts.get(col)
            lut8 = self._lut8.get(col)
            if lut8 is not None and a.dtype == np.int8:
                # one gather by bit pattern: no casts, no bounds to check
                bits = a.view(np.uint8)
                if lut8.ndim == 1 and lut8.shape[0] == 256:
                    ci = lut8[bits]
                else:
                    ci = lut8[bits + np.arange(0, 256 * width, 256, dtype=np.int32)]
            elif lut is not None and a.dtype.kind in "iu":
                # one table lookup: lut[position, value - lo] = choice index or -1
                lo, table = lut
                v = a.astype(np.int64) - lo
                inside = (v >= 0) & (v < table.shape[1])
                ci = np.where(inside, table[np.arange(width), np.where(inside, v, 0)], -1)
            else:     # fractional expansions (or float input): compare per choice
                ci = np.full(a.shape, -1, dtype=np.int64)
                for sl, choices in self._choice_sets(col):
                    sub = a[:, sl]
                    for j, val in enumerate(choices):
                        ci[:, sl][sub == np.asarray(val, dtype=self._dtype(col))] = j
                if col == "op":
                    for s in range(self.n_stages):
                        p = int(self._stage_pos[s])
                        ok = np.isin(ci[:, p], self._allowed_op[p])
                        ci[~ok, p] = -1
            if (ci < 0).any():
                i, j = np.argwhere(ci < 0)[0]
                if col in ("d", "w"):
                    choices = self._choice_sets(col)[j][1]
                    where = f"stage {j}"
                else:
                    s = int(np.searchsorted(self._stage_pos, j, side="right") - 1)
                    choices = self._choice_sets(col)[s][1]
                    where = f"position {j}: stage {s}, block {j - self._stage_pos[s]}"
                    if col == "op":
                        choices = [self.block_types[c] for c in choices]
                        if j == self._stage_pos[s]:
                            choices = [c for c in choices if c != "skip"]
                val = a[i, j].item()
                if col == "op":
                    val = self.block_types[val] if 0 <= val < len(self.block_types) else int(val)
                self._fail(i, col, f"entry {j} is {val!r} ({where}); choices are {choices}")
            idx[col] = ci
        return idx

    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        """Validate natives (dicts with one entry per column; a single int
        stands for a list of it, as OFA's ``val2list``) into columns."""
        natives = list(natives)
        n = len(natives)
        cols = {c: (np.zeros(n, dtype=np.int16) if c == "r"
                    else np.zeros((n, self._width(c)), dtype=self._dtype(c))) for c in self.columns}
        fields = set(self.columns)
        for i, nat in enumerate(natives):    # reading Python objects: one pass
            if not isinstance(nat, Mapping):
                self._fail(i, "<native>",
                           f"expected a dict with {', '.join(self.columns)}; got {type(nat).__name__}")
            extra = set(nat) - fields
            if extra:
                self._fail(i, sorted(map(str, extra))[0], f"unknown field (fields are {', '.join(self.columns)})")
            for col in self.columns:
                if col not in nat:
                    self._fail(i, col, "missing")
                if col == "r":
                    cols["r"][i] = self._native_int(i, "r", nat["r"], "a resolution")
                else:
                    cols[col][i] = self._native_row(i, col, nat[col])
        self._indices(cols)
        return cols

    def _native_int(self, i: int, col: str, v, what: str) -> int:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            self._fail(i, col, f"{v!r} is not an int ({what})")
        if not 0 < v <= FIELD_MAX:
            self._fail(i, col, f"{v!r} is out of range ({what})")
        return int(v)

    def _native_row(self, i: int, col: str, v) -> list:
        w = self._width(col)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            v = [v] * w
        if not isinstance(v, (list, tuple, np.ndarray)) or len(v) != w:
            got = len(v) if hasattr(v, "__len__") and not isinstance(v, str) else repr(v)
            self._fail(i, col, f"expected a list of {w} entries, got {got}")
        dtype = self._dtype(col)
        lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if np.dtype(dtype).kind == "i" \
            else (0, FIELD_MAX)
        names = {t: k for k, t in enumerate(self.block_types)}
        out = []
        for j, x in enumerate(v):
            if col == "op" and isinstance(x, str):
                if x not in names:
                    self._fail(i, "op", f"entry {j} (position {j}): unknown op name {x!r}; "
                                        f"known: {', '.join(self.block_types)}")
                x = names[x]
            if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
                self._fail(i, col, f"entry {j} is {x!r}, not a number")
            if not math.isfinite(x) or not lo <= x <= hi:
                self._fail(i, col, f"entry {j} is {x!r}, out of range")
            if np.dtype(dtype).kind == "i" and x != int(x):
                self._fail(i, col, f"entry {j} is {x!r}, not an integer")
            out.append(x)
        return out

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        lists = {c: np.asarray(cols[c]).tolist() for c in self.columns}
        if "e" in lists and self._e_float:
            # the schema's own values (0.35), not their float32 images
            ei = self._indices(cols)["e"]
            vals = np.empty(ei.shape, dtype=object)
            for sl, choices in self._choice_sets("e"):
                vals[:, sl] = np.asarray(choices, dtype=object)[ei[:, sl]]
            lists["e"] = vals.tolist()
        if "op" in lists:
            lists["op"] = [[self.block_types[v] for v in row] for row in lists["op"]]
        n = n_rows(cols)
        return [{c: lists[c][i] for c in self.columns} for i in range(n)]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """Per-stage/per-position columns as lists (``op`` as dictionary strings)."""
        import pyarrow as pa
        out = {}
        for c in self.columns:
            a = np.ascontiguousarray(cols[c], dtype=self._dtype(c))
            if c == "r":
                out[c] = pa.array(a)
                continue
            n, w = a.shape
            values = pa.array(a.reshape(-1))
            if c == "op":
                values = pa.DictionaryArray.from_arrays(values, pa.array(list(self.block_types)))
            offsets = pa.array(np.arange(0, n * w + 1, w, dtype=np.int32))
            out[c] = pa.ListArray.from_arrays(offsets, values)
        return out

    # -- encoding -----------------------------------------------------------------
    def template_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Validated columns -> (template id per slot, resolution index).

        A position's template id is its base plus the mixed-radix index of its
        choices (type, kernel, expansion, input width, output width); only the
        columns the space has are added in.  Integer columns of the right
        shapes go through one compiled pass (``chain_tids``); anything else,
        and any invalid value, through the validating numpy path (which names
        the culprit).
        """
        fast = self._fast_ids(cols) if self._fast is not None else None
        if fast is not None:
            return fast
        idx = self._indices(cols)
        n = n_rows(cols)
        tids = np.empty((n, self.n_positions + 2), dtype=np.int64)
        block = tids[:, 1:-1]
        block[...] = self._base
        for col, stride in (("op", self._stride_t), ("ks", self._stride_k), ("e", self._stride_e)):
            if col in idx:
                block += idx[col] * stride
        w_i = idx.get("w")
        if w_i is not None:
            block += w_i[:, self._pos_stage] * self._stride_w
            block += np.where(self._pos_takes_prev, w_i[:, self._pos_prev], 0) * self._stride_win
        if "d" in idx:
            depth = self._depth_table[np.arange(self.n_stages), idx["d"]]
            np.putmask(block, self._pos_in_stage >= depth[:, self._pos_stage], self._empty_tid)
        else:
            np.putmask(block, np.broadcast_to(~self._fixed_active, block.shape), self._empty_tid)
        tids[:, 0] = self._stem_tid
        tids[:, -1] = self._head_base + (w_i[:, -1] if w_i is not None else 0)
        r_idx = idx.get("r", np.zeros(n, dtype=np.int64))
        return tids, r_idx

    def _fast_ids(self, cols: Mapping[str, np.ndarray]):
        if any(c not in cols for c in self.columns):
            return None
        n = n_rows(cols)
        parts = []
        for c in self.columns:
            a = np.asarray(cols[c])
            want = (n,) if c == "r" else (n, self._width(c))
            if a.shape != want or a.dtype.kind not in "iu":
                return None
            parts.append(a.reshape(n, -1))
        vals = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.int64)
        f = self._fast
        tids = np.empty((n, self.n_positions + 2), dtype=np.int64)
        r_idx = np.empty(n, dtype=np.int64)
        bad = chain_tids(vals, f["lo"], f["ptr"], f["lut"], f["pos_cols"], f["weights"], self._base,
                         self._pos_in_stage, f["depth_of"], self._stem_tid, self._empty_tid,
                         self._head_base, f["head_col"], f["r_col"], tids, r_idx)
        return None if bad >= 0 else (tids, r_idx)

    # -- block tables and trellis ---------------------------------------------
    def _slot_table(self, opts: ScoringOptions) -> SlotTable:
        return self._pool.slot_table(opts, self.resolutions)

    def _slot_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return self.template_ids(cols)

    def _trellis(self, opts: ScoringOptions, metrics: tuple) -> Trellis:
        return build_trellis(self, self.block_table(opts))

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        tids, r_idx = self.template_ids(cols)
        return self._pool.assemble(tids, r_idx, self.resolutions)

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Native columns read back from records this space encoded.

        Positions a candidate does not use (beyond a stage's depth, or the
        kernel of a skip) come back as their first choices.  Verified by
        re-encoding; records that are not from this space raise
        :class:`NativeError` naming the first such candidate.
        """
        return decode_batch(self, batch)

    def columns_from_indices(self, idx: Mapping[str, np.ndarray], r_idx: np.ndarray
                             ) -> dict[str, np.ndarray]:
        """Native columns from choice indices (per column) and resolution indices."""
        n = len(r_idx)
        cols = {}
        for col in self.columns:
            if col == "r":
                cols["r"] = self.resolutions[r_idx].astype(np.int16)
                continue
            out = np.empty((n, self._width(col)), dtype=self._dtype(col))
            for sl, choices in self._choice_sets(col):
                out[:, sl] = np.asarray(choices, dtype=out.dtype)[idx[col][:, sl]]
            cols[col] = out
        return cols

    # -- size -------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Distinct networks: per stage, the sequences of non-skip blocks its
        depths allow (with its widths), times the resolutions.

        Natives that differ only where the network does not look (entries
        beyond a stage's depth, the kernel of a skip, skips moved within a
        stage, an expansion a block does not use or that rounds to the same
        width as another) are one network: the paths of the space's trellis
        counted as networks (``chains.py``).  :attr:`n_encodings` counts
        natives instead.
        """
        if self._size is None:
            structure = build_trellis(self, None)
            self._size = path_counts(structure, "networks", groups=[0])[0] * len(self.resolutions)
        return self._size

    @property
    def n_encodings(self) -> int:
        """Distinct native encodings (every column entry a valid choice)."""
        total = len(self.resolutions)
        for s, sd in enumerate(self.spec["stages"]):
            per_pos = len(sd["kernels"]) * len(sd["expands"])
            n_types = len(sd["types"])
            first = n_types - (1 if "skip" in sd["types"] else 0)
            total *= len(sd["widths"]) * len(sd["depths"])
            total *= (first * per_pos) * (n_types * per_pos) ** (max(sd["depths"]) - 1)
        return total


def _describe(res: np.ndarray) -> str:
    if len(res) > 3:
        steps = np.unique(np.diff(res))
        if len(steps) == 1:
            return f"{res[0]}..{res[-1]} in steps of {steps[0]}"
    return ", ".join(str(int(r)) for r in res)
