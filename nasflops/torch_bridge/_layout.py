"""Readers of the ops that move data around without arithmetic: reshapes,
permutes, indexing, ``chunk``/``split``/``narrow``, copies and the channel-
shuffle patterns.  Most of them change only a value's layout labels and write
no record (``_values.py``)."""
from __future__ import annotations

import torch

from . import _record, _tokens
from ._record import Event
from ._values import (CANON, Ctx, Lazy, Marker, T, Unsupported, V, arg, label,
                      shape_of)


def relabel(x: V, ins: tuple, outs: tuple):
    """Labels of a reshape that only adds or drops size-1 dims (None if it
    does more).  The batch stays first; non-1 sizes must match in order."""
    if not outs or outs[0] != ins[0] or x.dims[0] != "N":
        return None
    have = [(lab, s) for lab, s in zip(x.dims[1:], ins[1:]) if s != 1]
    if [s for _, s in have] != [s for s in outs[1:] if s != 1]:
        return None
    ones = [lab for lab, s in zip(x.dims[1:], ins[1:]) if s == 1]
    spare = ones + [lab for lab in ("C", "H", "W") if lab not in x.dims]
    dims, k = ["N"], 0
    for s in outs[1:]:
        if s != 1:
            dims.append(have[k][0])
            k += 1
        elif spare:
            dims.append(spare.pop(0))
        else:
            return None
    return tuple(dims)


def flatten_to(ctx: Ctx, ev: Event, x: V, out: torch.Tensor) -> V:
    """``N x ...`` flattened to ``N x F``: a flatten record (a copy first when
    torch had to copy, as for a permuted tensor)."""
    src = ev.args[0] if ev.args and isinstance(ev.args[0], torch.Tensor) else None
    rec = x.rec
    if src is not None and not _record.same_buffer(out, src):
        rec = ctx.rec("copy", ev, rec)
        ctx.shapes[rec] = ctx.shape(x.rec)
    r = ctx.rec("flatten", ev, rec, out=out, dims=("N", "C"))
    return V(r, ("N", "C"))


def reshape(ctx: Ctx, ev: Event, vals: list):
    """view / reshape / flatten / squeeze / unsqueeze / unflatten / nn.Flatten."""
    v, t, out = vals[0], ev.args[0], ev.out
    if isinstance(v, Marker):
        return _marker_reshape(ctx, ev, v, out)
    x = ctx.act(v, ev)
    ins, outs = tuple(t.shape), tuple(out.shape)
    if x.dims == CANON and len(outs) == 5 and outs[0] == ins[0] and \
            outs[1] * outs[2] == ins[1] and outs[3:] == ins[2:]:
        return Marker("grouped", x.rec, outs[1])          # shuffle: N x g x C/g x H x W
    if x.dims == CANON and len(outs) == 3 and 1 < outs[1] and ins[1] % outs[1] == 0 and \
            outs[0] * outs[1] == ins[0] * ins[1] and outs[2] == ins[2] * ins[3]:
        return Marker("pairs", x.rec, outs[1])            # megvii: N*C/g x g x H*W
    if ev.module is None or ev.kind != "flatten":
        dims = relabel(x, ins, outs)
        if dims is not None:
            return V(x.rec, dims)
    if len(outs) == 2 and outs[0] == ins[0] and x.dims[0] == "N":
        return flatten_to(ctx, ev, x, out)
    return _as_tokens(ctx, ev, x)


def _as_tokens(ctx: Ctx, ev: Event, x) -> T:
    """A reshape no image layout holds: the same elements as a token tensor
    (``_tokens.py``; ``N x C x H x W`` to ``N x C x L``, windows, heads)."""
    rec = x.rec if isinstance(x, (V, Marker)) else ctx.act(x, ev).rec
    bdim = x.dims.index("N") if isinstance(x, V) and "N" in x.dims else 0
    return _tokens.reshape(ctx, ev, [T(rec, bdim)])


def _marker_reshape(ctx: Ctx, ev: Event, m: Marker, out: torch.Tensor):
    outs = tuple(out.shape)
    if m.kind == "shuffled" and len(outs) == 4:
        r = ctx.rec("channel_shuffle", ev, m.rec, m.groups, out=out, dims=CANON)
        return V(r)
    if m.kind == "pairs_t" and len(outs) == 5 and outs[0] == m.groups:
        if not _record.same_buffer(out, ev.args[0]):
            raise Unsupported("the split of a channel shuffle that torch had to copy")
        return Marker("pairs_split", m.rec, m.groups)
    return _as_tokens(ctx, ev, m)


def permute(ctx: Ctx, ev: Event, vals: list):
    """permute / transpose: new labels, no record."""
    v = vals[0]
    perm = _tokens.permutation(ev)
    if isinstance(v, Marker):
        if v.kind == "grouped" and perm == [0, 2, 1, 3, 4]:
            return Marker("shuffled", v.rec, v.groups)
        if v.kind == "pairs" and perm == [1, 0, 2]:
            return Marker("pairs_t", v.rec, v.groups)
        return T(v.rec, perm.index(0))        # not a shuffle: a token tensor
    x = ctx.act(v, ev)
    if perm[0] != 0:
        return T(x.rec, perm.index(x.dims.index("N")))
    return V(x.rec, tuple(x.dims[p] for p in perm))


def contiguous(ctx: Ctx, ev: Event, vals: list):
    """A no-op on a contiguous tensor, else a copy (inside a shuffle pattern,
    the copy is the shuffle's)."""
    v, t = vals[0], ev.args[0]
    if isinstance(v, Marker) or ev.out is t:
        return v
    x = ctx.act(v, ev)
    return V(ctx.rec("copy", ev, x.rec, out=ev.out, dims=x.dims), x.dims)


def alias(ctx: Ctx, ev: Event, vals: list):
    """x.detach(), x.data: the same tensor."""
    return vals[0]


def expand(ctx: Ctx, ev: Event, vals: list):
    """expand / expand_as: a broadcast view; the consumer broadcasts instead."""
    x = ctx.act(vals[0], ev)
    if ev.out.dim() != ev.args[0].dim():
        raise Unsupported("an expand that adds dimensions")
    return x


def _index_parts(x: V, t: torch.Tensor, idx) -> tuple:
    """Per-dim index parts of ``x[idx]``: ``{label: (start, count, step)}`` of
    the kept ranges, the labels dropped by an int and the output labels
    (``None`` where ``idx`` inserts a dim)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    n_real = sum(1 for e in idx if e is not None and e is not Ellipsis)
    expanded = []
    for e in idx:
        if e is Ellipsis:
            expanded += [slice(None)] * (t.dim() - n_real)
        else:
            expanded.append(e)
    expanded += [slice(None)] * (t.dim() - sum(1 for e in expanded if e is not None))
    ranges, dropped, out, d = {}, [], [], 0
    for e in expanded:
        if e is None:
            out.append(None)
            continue
        lab, size = x.dims[d], int(t.shape[d])
        d += 1
        if isinstance(e, slice):
            start, stop, step = e.indices(size)
            count = len(range(start, stop, step))
            if (start, count, step) != (0, size, 1):
                ranges[lab] = (start, count, step)
            out.append(lab)
        elif isinstance(e, int) and not isinstance(e, bool):
            ranges[lab] = (e % size, 1, 1)
            dropped.append(lab)
        else:
            raise Unsupported(f"indexing with {type(e).__name__} (slices, ints and None only)")
    return ranges, dropped, out


def getitem(ctx: Ctx, ev: Event, vals: list):
    """x[...]: channel slices, spatial crops (any step), ints, None."""
    v, t, idx = vals[0], ev.args[0], ev.args[1]
    if isinstance(v, Marker) and v.kind == "pairs_split" and isinstance(idx, int):
        return _pair_piece(ctx, ev, v, idx)
    x = ctx.act(v, ev)
    ranges, dropped, out = _index_parts(x, t, idx)
    if "N" in ranges:
        raise Unsupported("indexing the batch dimension")
    rec = x.rec
    c, h, w = ctx.shape(rec)
    if "C" in ranges:
        start, count, step = ranges["C"]
        rec = ctx.rec("slice", ev, rec, start, count, step)
        c = count
        ctx.shapes[rec] = (c, h, w)
    if "H" in ranges or "W" in ranges:
        sh, zh, th = ranges.get("H", (0, h, 1))
        sw, zw, tw = ranges.get("W", (0, w, 1))
        rec = ctx.rec("crop", ev, rec, (sh, sw), (zh, zw), (th, tw))
        ctx.shapes[rec] = (c, zh, zw)
    spare = [lab for lab in ("C", "H", "W") if lab not in out or lab in dropped]
    dims = []
    for lab in out:
        if lab is None:
            if not spare:
                raise Unsupported("indexing that adds more dims than an N x C x H x W tensor has")
            lab = spare.pop(0)
        dims.append(lab)
    y = V(rec, tuple(dims))
    if rec != x.rec:
        ctx.tensor_of[rec] = (ev.out, y.dims)
    return y


def _pair_piece(ctx: Ctx, ev: Event, m: Marker, k: int) -> V:
    """x[k] of megvii's ``reshape(2, -1, C/2, H, W)`` after its permute:
    channels k, k + g, k + 2g, ... -- a strided view, as torch makes it."""
    c, h, w = ctx.shape(m.rec)
    n = c // m.groups
    s = ctx.rec("slice", ev, m.rec, k, n, m.groups, out=ev.out, dims=CANON)
    return V(s)


def chunk(ctx: Ctx, ev: Event, vals: list):
    """chunk / split: one lazy piece per output (a slice or crop when read)."""
    x = ctx.act(vals[0], ev)
    t = ev.args[0]
    dim = arg(ev, 2, "dim", 0)
    lab = label(x, int(dim), t.dim())
    if lab == "N":
        raise Unsupported(f"{ev.kind} along the batch dimension")
    pieces, start = [], 0
    for o in ev.out:
        n = int(o.shape[int(dim) % t.dim()])
        pieces.append(Lazy(x, lab, start, n, ev) if n != int(t.shape[int(dim) % t.dim()])
                      else x)
        start += n
    return tuple(pieces)


def narrow(ctx: Ctx, ev: Event, vals: list):
    """x.narrow(dim, start, length), and the Slice bridge module (channels)."""
    x = ctx.act(vals[0], ev)
    if ev.module is not None:
        dim, start, length = 1, ev.module.start, ev.module.count
    else:
        dim, start, length = (arg(ev, i, k) for i, k in ((1, "dim"), (2, "start"),
                                                         (3, "length")))
    lab = label(x, int(dim), ev.args[0].dim())
    if lab == "N":
        raise Unsupported("narrow along the batch dimension")
    y = ctx.act(Lazy(x, lab, int(start), int(length), ev), ev)
    ctx.tensor_of[y.rec] = (ev.out, y.dims)
    ctx.shapes[y.rec] = shape_of(ev.out, y.dims)
    return y
