"""Record templates: how every shipped space encodes without a Python loop per candidate.

A candidate of a template-based space is a chain of *slots* (a stem, blocks
or cells, a head).  Each slot holds one *template*: a short record array,
possibly empty (an absent block), built once when the space is made.  A
template stores each input as an offset from the record itself (``-1`` is
the record just before it, so a slot's first record may read the previous
slot's output), and :data:`UNUSED` for unused slots: templates are position
independent.  Encoding a batch is then one compiled gather
(:func:`gather_segments`, GIL released) from the template pool, plus a few
vectorised patches of fields that depend on the input resolution.

:class:`TemplatePool` holds the templates; NAS-Bench-201, the declarative
compiler (and through it OFA-MBv3 and ProxylessNAS) all assemble through it.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from nasflops.engine import METRICS, score_block
from nasflops.options import ScoringOptions
from nasflops.spec import INPUT_FIELDS, LAYER_DTYPE, Flag, Net, Op, SpecBatch, empty_records
from .tables import SlotTable
from ._gather import UNUSED
from ._gather import gather_segments as _gather

__all__ = ["TemplatePool", "UNUSED", "gather_segments", "relative_inputs"]


def _score(batch: SpecBatch, opts: ScoringOptions):
    return score_block(batch.records, batch.offsets, opts)


def gather_segments(pool: np.ndarray, seg_src: np.ndarray, seg_len: np.ndarray) -> SpecBatch:
    """Assemble candidates from template segments (compiled, GIL released).

    Candidate ``i`` is the concatenation of ``pool[seg_src[i, s] : seg_src[i, s]
    + seg_len[i, s]]`` over its ``S`` segments.  Inputs in the pool are
    relative to their record, :data:`UNUSED` for unused slots; the result's
    are absolute.  Segments outside the pool raise ``ValueError``.
    """
    seg_src = np.ascontiguousarray(seg_src, dtype=np.int64)
    seg_len = np.ascontiguousarray(seg_len, dtype=np.int64)
    if seg_src.shape != seg_len.shape or seg_src.ndim != 2:
        raise ValueError("seg_src and seg_len must be (n, S) arrays of one shape")
    n = seg_src.shape[0]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(seg_len.sum(axis=1), out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=LAYER_DTYPE)
    _gather(pool, seg_src, seg_len, offsets, out)
    return SpecBatch(out, offsets)


def relative_inputs(records: np.ndarray, base: int = 0) -> np.ndarray:
    """A copy of ``records`` whose inputs are relative to each record.

    ``records[j]``'s input ``v`` (absolute, counting from ``base``) becomes
    ``v - base - j``; unused slots (< 0 before) become :data:`UNUSED`.
    """
    rec = np.array(records, dtype=LAYER_DTYPE, copy=True)
    at = np.arange(len(rec)) + base
    for f in INPUT_FIELDS:
        used = rec[f] >= 0
        rec[f] = np.where(used, rec[f] - at, UNUSED)
    return rec


class TemplatePool:
    """Record templates of chain slots, assembled by one vectorised gather.

    Fields that depend on the resolution are *patched*: the stem's input
    record gets ``size_h = size_w = r``, and a template may name records whose
    ``size_h`` takes a per-resolution value (the ``(H, 1)`` pool of a
    two-step global mean, whose H depends on the input resolution).

    Parameters
    ----------
    n_res : int
        Number of resolutions of the space (patch tables have one value per
        resolution index).

    Examples
    --------
    >>> import numpy as np, nasflops
    >>> pool = TemplatePool(n_res=2)
    >>> stem = nasflops.Net(3, 0, 0); _ = stem.conv(stem.input, 8, 3, padding=1)
    >>> t0 = pool.add_net(stem, include_input=True)
    >>> blk = nasflops.Net(8, 0, 0); _ = blk.add(blk.conv(blk.input, 8, 1), blk.input)
    >>> t1 = pool.add_net(blk); t2 = pool.add_empty(); pool.freeze()
    >>> b = pool.assemble(np.array([[t0, t1], [t0, t2]]), np.array([0, 1]), np.array([32, 64]))
    >>> b.lengths.tolist(), b[0]["input1"].tolist(), int(b[1]["size_h"][0])
    ([4, 2], [-1, -1, -1, 1], 64)
    """

    def __init__(self, n_res: int):
        self.n_res = int(n_res)
        self._parts: list[np.ndarray] = []
        self._lengths: list[int] = []
        self._patches: dict[int, list[tuple[int, np.ndarray]]] = {}
        self._inputs: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._frozen = False

    def __len__(self) -> int:
        return len(self._lengths)

    def add_records(self, records: np.ndarray, patches=(), slot_input=None) -> int:
        """Add one template given as records with record-relative inputs; return its id.

        ``patches`` are ``(record index, size_h per resolution index)`` pairs;
        ``slot_input`` is the shape of the slot's input (see :meth:`add_many`).
        """
        return self.add_many(records, [len(records)], [list(patches)],
                             None if slot_input is None else [slot_input])

    def add_many(self, records: np.ndarray, lengths: Sequence[int], patches=None,
                 slot_inputs=None) -> int:
        """Add consecutive templates at once (``records`` split by ``lengths``);
        return the first id.  ``patches`` is one list per template, or None.

        ``slot_inputs`` is one entry per template, or None: the shape of the
        tensor the template reads as its slot input, ``(channels, size)``
        where ``size`` is the height (= width) per resolution index (an int
        or an array), or ``(channels, height, width)``.  Templates that
        start with the network input need none.  Knowing it lets
        :meth:`slot_networks` score every template on its own, in context
        (the block tables of ``tables.py``).
        """
        if self._frozen:
            raise RuntimeError("template pool is frozen")
        records = np.ascontiguousarray(records, dtype=LAYER_DTYPE)
        lengths = [int(v) for v in lengths]
        if sum(lengths) != len(records):
            raise ValueError("template lengths do not add up to the records given")
        first = len(self._lengths)
        for t, plist in enumerate(patches or ()):
            checked = []
            for local, values in plist:
                values = np.asarray(values, dtype=np.int32)
                if values.shape != (self.n_res,):
                    raise ValueError(f"patch values need one entry per resolution ({self.n_res})")
                checked.append((int(local), values))
            if checked:
                self._patches[first + t] = checked
        for t, shape in enumerate(slot_inputs or ()):
            if shape is not None:
                self._inputs[first + t] = self._checked_input(shape)
        self._parts.append(records)
        self._lengths.extend(lengths)
        return first

    def _checked_input(self, shape) -> tuple[int, np.ndarray, np.ndarray]:
        c, *hw = shape
        if len(hw) not in (1, 2):
            raise ValueError("a slot input is (channels, size) or (channels, height, width)")
        h, w = (np.broadcast_to(np.asarray(v, dtype=np.int64), (self.n_res,)).copy()
                for v in (hw * 2)[:2])
        return int(c), h, w

    def add_net(self, net: Net, include_input: bool = False, patches=(), size=None) -> int:
        """Add the layers of ``net`` as a template; return its id.

        Layer 0 of ``net`` stands for the slot's input (the previous slot's
        output) and is dropped unless ``include_input`` (the stem, whose layer
        0 is the network input).  ``patches`` are ``(net layer index,
        size_h per resolution index)`` pairs.  ``size`` is the slot input's
        height (= width) per resolution index; its channels are layer 0's.
        """
        rec = relative_inputs(net.records)
        drop = 0 if include_input else 1
        slot_input = None
        if size is not None and not include_input:
            slot_input = (int(net.records[0]["out_channels"]), size)
        return self.add_records(rec[drop:], [(i - drop, v) for i, v in patches], slot_input)

    def add_empty(self) -> int:
        """Add the empty template (an absent block); return its id."""
        return self.add_records(np.zeros(0, dtype=LAYER_DTYPE))

    def freeze(self) -> None:
        """Concatenate the templates into the gather tables."""
        # after the templates, one network-input record (no template's):
        # slot_networks() puts it before a template to score it alone
        self._input_at = sum(self._lengths)
        parts = self._parts + [relative_inputs(empty_records(1))]
        parts[-1]["op"] = Op.INPUT
        recs = np.concatenate(parts)
        recs.setflags(write=False)
        self.records = recs   # inputs relative to each record, UNUSED when unused
        self.lengths = np.array(self._lengths, dtype=np.int64)
        self.starts = np.zeros(len(self.lengths), dtype=np.int64)
        np.cumsum(self.lengths[:-1], out=self.starts[1:])
        n_t = len(self.lengths)
        n_p = max([len(p) for p in self._patches.values()] + [1])
        self.patch_local = np.full((n_t, n_p), -1, dtype=np.int64)
        self.patch_val = np.zeros((n_t, n_p, self.n_res), dtype=np.int32)
        for t, plist in self._patches.items():
            for p, (local, values) in enumerate(plist):
                self.patch_local[t, p] = local
                self.patch_val[t, p] = values
        self._patched_p = [p for p in range(n_p) if (self.patch_local[:, p] >= 0).any()]
        # slot inputs: channels (0 = the template starts with the network
        # input, -1 = unknown), height and width per resolution index
        self.in_c = np.full(n_t, -1, dtype=np.int64)
        self.in_hw = np.zeros((n_t, 2, self.n_res), dtype=np.int64)
        for t, (c, h, w) in self._inputs.items():
            self.in_c[t], self.in_hw[t, 0], self.in_hw[t, 1] = c, h, w
        if n_t:
            first = recs["op"][np.minimum(self.starts, max(len(recs) - 1, 0))] == Op.INPUT
            self.in_c[(self.lengths > 0) & first] = 0
        self._parts = [recs]
        self._frozen = True

    def slot_networks(self, tids: np.ndarray, r_idx: np.ndarray,
                      resolutions: Optional[np.ndarray] = None) -> SpecBatch:
        """Each template alone, in context: one network per ``(tids[i], r_idx[i])``.

        Network ``i`` is the template's records preceded by a network-input
        record of the template's slot input shape at resolution index
        ``r_idx[i]`` (a template that starts with the network input gets
        ``resolutions[r_idx[i]]`` as its size, when given), with the
        template's patches for that resolution.  Scored by the core, it
        gives what the template adds to any candidate that holds it
        (``tables.py``).  Empty templates and templates without a known slot
        input raise ``ValueError``.
        """
        tids = np.asarray(tids, dtype=np.int64)
        r_idx = np.asarray(r_idx, dtype=np.int64)
        if (self.lengths[tids] == 0).any() or (self.in_c[tids] < 0).any():
            bad = int(tids[(self.lengths[tids] == 0) | (self.in_c[tids] < 0)][0])
            raise ValueError(f"template {bad} is empty or has no known slot input shape")
        has_in = self.in_c[tids] > 0
        n = len(tids)
        seg_src = np.stack([np.full(n, self._input_at), self.starts[tids]], axis=1)
        seg_len = np.stack([has_in.astype(np.int64), self.lengths[tids]], axis=1)
        batch = gather_segments(self.records, seg_src, seg_len)
        rec, first = batch.records, batch.offsets[:-1]
        t_in, r_in = tids[has_in], r_idx[has_in]
        rec["out_channels"][first[has_in]] = self.in_c[t_in]
        rec["size_h"][first[has_in]] = self.in_hw[t_in, 0, r_in]
        rec["size_w"][first[has_in]] = self.in_hw[t_in, 1, r_in]
        if resolutions is not None:
            own = first[~has_in]
            rec["size_h"][own] = rec["size_w"][own] = np.asarray(resolutions)[r_idx[~has_in]]
        for p in self._patched_p:
            loc = self.patch_local[tids, p]
            ok = loc >= 0
            at = first[ok] + has_in[ok] + loc[ok]
            rec["size_h"][at] = self.patch_val[tids[ok], p, r_idx[ok]]
        return batch

    def slot_table(self, opts: ScoringOptions, resolutions: Optional[np.ndarray] = None,
                   block: int = 4096) -> SlotTable:
        """Score every (non-empty template, resolution index) on its own: the
        block table of ``tables.py``.

        Each template is scored after a network-input record of its slot
        input shape (:meth:`slot_networks`), and the input record's own share
        (the lone input scored alone) is subtracted, so a row is exactly what
        the template adds to any candidate that holds it.  Templates without
        a known slot input raise ``ValueError``.
        """
        n_t, R = len(self.lengths), self.n_res
        values = np.zeros((n_t, R, len(METRICS)), dtype=np.int64)
        valid = np.ones((n_t, R), dtype=bool)
        tt, rr = (a.ravel() for a in np.meshgrid(np.flatnonzero(self.lengths > 0), np.arange(R),
                                                 indexing="ij"))
        for lo in range(0, len(tt), block):
            t, r = tt[lo:lo + block], rr[lo:lo + block]
            raw = _score(self.slot_networks(t, r, resolutions), opts)
            values[t, r] = raw.metrics[:, :len(METRICS)]
            valid[t, r] = raw.status == 0
            alone = self.in_c[t] > 0     # the synthetic input's own share
            if alone.any():
                inputs = empty_records(int(alone.sum()))
                inputs["op"] = Op.INPUT
                inputs["out_channels"] = self.in_c[t[alone]]
                inputs["size_h"] = self.in_hw[t[alone], 0, r[alone]]
                inputs["size_w"] = self.in_hw[t[alone], 1, r[alone]]
                own = _score(SpecBatch(inputs, np.arange(len(inputs) + 1, dtype=np.int64)), opts)
                share = own.metrics[:, :len(METRICS)].copy()
                share[:, METRICS.index("peak_act_bytes")] = 0
                values[t[alone], r[alone]] -= share
        return SlotTable(values, valid, bool(self.output_unaliased.all()), opts)

    @property
    def output_unaliased(self) -> np.ndarray:
        """Per template: its output lives in a buffer of exactly its size, so
        no buffer outlives the slot but through the output, and a
        candidate's peak is the largest of its slots' (``tables.py``).  False
        where the output is (a view of) a channel slice or a grown concat."""
        out = np.ones(len(self.lengths), dtype=bool)
        rec = self.records
        views = {int(Op.FLATTEN), int(Op.IDENTITY), int(Op.DROPOUT)}
        for t in np.flatnonzero(self.lengths > 0):
            j, first = int(self.starts[t] + self.lengths[t] - 1), int(self.starts[t])
            while j >= first:
                op, inplace = int(rec["op"][j]), bool(rec["flags"][j] & Flag.INPLACE)
                if op == Op.SLICE or (op == Op.CONCAT and inplace):
                    out[t] = False
                    break
                if not (op in views or (op in (Op.ACT, Op.ADD) and inplace)):
                    break
                j += int(rec["input0"][j])
        return out

    def assemble(self, tids: np.ndarray, r_idx: np.ndarray, resolutions: np.ndarray,
                 set_input_size: bool = True) -> SpecBatch:
        """Chain templates into a batch, without a loop over candidates.

        Parameters
        ----------
        tids : int array (n, S)
            Template id of each slot of each candidate; slot 0 must be a
            template that starts with the network input.
        r_idx : int array (n,)
            Resolution index of each candidate (selects patch values).
        resolutions : int array
            Resolution of each index (the input record's height and width).
        set_input_size : bool
            Write the resolution into the input record (False when the stem
            template already holds it).
        """
        tids = np.asarray(tids, dtype=np.int64)
        lens = self.lengths[tids]
        batch = gather_segments(self.records, self.starts[tids], lens)
        rec, offsets = batch.records, batch.offsets
        if set_input_size and tids.shape[0]:
            r_idx = np.asarray(r_idx, dtype=np.int64)
            nonempty = np.diff(offsets) > 0
            first = offsets[:-1][nonempty]
            res = np.asarray(resolutions)[r_idx][nonempty]
            rec["size_h"][first] = res
            rec["size_w"][first] = res
        if self._patched_p:  # segment starts in the batch, for the patches
            seg_start = np.cumsum(lens, axis=1) - lens + offsets[:-1, None]
            for p in self._patched_p:
                loc = self.patch_local[tids, p]
                ci, sj = np.nonzero(loc >= 0)
                if ci.size:
                    at = seg_start[ci, sj] + loc[ci, sj]
                    rec["size_h"][at] = self.patch_val[tids[ci, sj], p, r_idx[ci]]
        return batch
