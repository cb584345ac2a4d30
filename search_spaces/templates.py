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

from typing import Sequence

import numpy as np

from nasflops.spec import INPUT_FIELDS, LAYER_DTYPE, Net, SpecBatch
from ._gather import UNUSED
from ._gather import gather_segments as _gather

__all__ = ["TemplatePool", "UNUSED", "gather_segments", "relative_inputs"]


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
        self._frozen = False

    def __len__(self) -> int:
        return len(self._lengths)

    def add_records(self, records: np.ndarray, patches=()) -> int:
        """Add one template given as records with record-relative inputs; return its id.

        ``patches`` are ``(record index, size_h per resolution index)`` pairs.
        """
        return self.add_many(records, [len(records)], [list(patches)])

    def add_many(self, records: np.ndarray, lengths: Sequence[int], patches=None) -> int:
        """Add consecutive templates at once (``records`` split by ``lengths``);
        return the first id.  ``patches`` is one list per template, or None."""
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
        self._parts.append(records)
        self._lengths.extend(lengths)
        return first

    def add_net(self, net: Net, include_input: bool = False, patches=()) -> int:
        """Add the layers of ``net`` as a template; return its id.

        Layer 0 of ``net`` stands for the slot's input (the previous slot's
        output) and is dropped unless ``include_input`` (the stem, whose layer
        0 is the network input).  ``patches`` are ``(net layer index,
        size_h per resolution index)`` pairs.
        """
        rec = relative_inputs(net.records)
        drop = 0 if include_input else 1
        return self.add_records(rec[drop:], [(i - drop, v) for i, v in patches])

    def add_empty(self) -> int:
        """Add the empty template (an absent block); return its id."""
        return self.add_records(np.zeros(0, dtype=LAYER_DTYPE))

    def freeze(self) -> None:
        """Concatenate the templates into the gather tables."""
        recs = np.concatenate(self._parts) if self._parts else np.zeros(0, LAYER_DTYPE)
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
        self._parts = [recs]
        self._frozen = True

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
