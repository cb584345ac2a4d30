"""Readers of token tensors: the ops of transformers and language models.

A token-world value (:class:`~._values.T`) is all of one record's output in
whatever shape and order torch holds it -- ``N x L x C``, heads split
``N x H x L x d``, windows ``N*nW x 49 x C``, transposed or permuted.  Views
(``reshape``, ``view``, ``permute``, ``transpose``, ``flatten``, ...) change
nothing; a reader asks for the layout it needs (:func:`tokens_of`,
:func:`matrix_of`, :func:`same_as`) and a view record (``tokens``,
``to_image``, ``view_as``) is written only when the record at hand does not
already have it.  Counts depend on shapes only, so any record of the right
shape holding the right elements counts exactly what torch computes; a copy
torch makes (a reshape of a permuted tensor, ``.contiguous()``) is a
``copy`` record.

The batch: records are per sample.  The batch is folded into the leading
(group) dimensions of whatever torch holds (``B*H`` of a ``bmm``, ``B*nW``
of windows): per-sample groups are the leading dims' product over ``N``.
"""
from __future__ import annotations

import math

import torch

from ..spec import Call
from . import _record
from ._record import Event
from ._values import (CANON, Ctx, Lazy, Marker, Stale, Static, Unsupported, V, T, arg)

IMAGE, TOKENS, MATRIX = 0, 1, 2
_LAYOUT = {IMAGE: "image", TOKENS: "tokens", MATRIX: "matrix"}
_ME = Call.METHOD


# ------------------------------------------------------------------ values
def to_t(ctx: Ctx, v, ev: Event) -> T:
    """The token-world value of any activation (an image value is a view of
    all of its record too)."""
    if isinstance(v, T):
        return v
    if isinstance(v, Marker):
        if v.kind == "repeat":
            raise Unsupported("an expand that repeats elements, read other than by a reshape "
                              "(repeat_kv)")
        if v.kind == "quarter":
            raise Unsupported("a strided view x[..., i::2, j::2, :] of a token grid other than "
                              "the four of a patch merging, joined by torch.cat")
        return T(v.rec)
    if isinstance(v, (V, Lazy)):
        return T(ctx.act(v, ev).rec)
    raise Unsupported(f"an input that is not an activation of the model ({_what(v)})")


def _what(v) -> str:
    from ._values import what
    return what(v)


def groups(ctx: Ctx, shape, lead: int) -> int:
    """Per-sample product of the first ``lead`` dims (the batch folded in)."""
    n = math.prod(int(s) for s in shape[:lead])
    if n % ctx.batch:
        raise Unsupported(f"a tensor of shape {tuple(shape)} whose leading dims do not hold "
                          f"the batch of {ctx.batch}")
    return n // ctx.batch


def per_sample(ctx: Ctx, t: torch.Tensor) -> int:
    return groups(ctx, t.shape, t.dim())


def new(ctx: Ctx, method: str, ev: Event, *args, geom: tuple, out=None, call=None,
        **kw) -> int:
    """Append one token-world record of geometry ``geom``; ``out`` is the
    tensor it stands for (its element count checked at the end)."""
    r = ctx.rec(method, ev, *args, call=call, **kw)
    ctx.geoms[r] = geom
    ctx.shapes[r] = geom[1:4]
    if isinstance(out, torch.Tensor):
        ctx.numel_of[r] = out
    return r


def same(ctx: Ctx, method: str, ev: Event, x: T, *args, out=None, **kw) -> T:
    """A record keeping its input's geometry."""
    return T(new(ctx, method, ev, x.rec, *args, geom=ctx.geom(x.rec), out=out, **kw), x.bdim)


# ------------------------------------------------------- asking for layouts
def view(ctx: Ctx, ev: Event, rec: int, want: tuple) -> int:
    """A record of geometry ``want`` holding record ``rec``'s elements: ``rec``
    itself, or a view written now (``tokens``, ``to_image`` or ``view_as``)."""
    have = ctx.geom(rec)
    if have == want:
        return rec
    key = ("view", rec, want)      # one view of a record per layout, however often read
    if key not in ctx.pieces:
        ctx.pieces[key] = _view(ctx, ev, rec, have, want)
    return ctx.pieces[key]


def _view(ctx: Ctx, ev: Event, rec: int, have: tuple, want: tuple) -> int:
    g, c, h, w, lay = want
    if g * c * h * w != math.prod(have[:4]):
        raise Unsupported(f"a view of {_shape(have)} as {_shape(want)}")
    if have[4] == IMAGE and lay == TOKENS and g == 1 and c == have[1] and \
            (h, w) in ((have[2] * have[3], 1), (have[2], have[3])):
        return new(ctx, "tokens", ev, rec, flat=(h, w) != (have[2], have[3]), geom=want,
                   call=_ME)
    if have[4] == TOKENS and have[0] == 1 and lay == IMAGE and have[1:4] == (c, h, w):
        return new(ctx, "to_image", ev, rec, geom=want, call=_ME)
    shape = {IMAGE: (c, h, w), TOKENS: (g, h, w, c), MATRIX: (g, h, w)}[lay]
    return new(ctx, "view_as", ev, rec, shape, _LAYOUT[lay], geom=want, call=_ME)


def _shape(geom: tuple) -> str:
    g, c, h, w, lay = geom
    return f"{_LAYOUT[lay]} {g} x {c} x {h} x {w}"


def tokens_geom(ctx: Ctx, t: torch.Tensor, bdim: int = 0) -> tuple:
    """Tokens with the last dim as channels: ``N x C`` one token, ``N x L x C``
    (or ``L x N x C``) a sequence, ``B x H x W x C`` a grid (``B`` = N times
    windows)."""
    s = tuple(int(v) for v in t.shape)
    if len(s) < 2:
        raise Unsupported(f"a token tensor of rank {len(s)}")
    if len(s) == 2:
        return (groups(ctx, s, 1), s[1], 1, 1, TOKENS)
    if len(s) == 3:
        b = 1 if bdim == 1 else 0
        return (groups(ctx, (s[b],), 1), s[2], s[1 - b], 1, TOKENS)
    return (groups(ctx, s, len(s) - 3), s[-1], s[-3], s[-2], TOKENS)


def tokens_of(ctx: Ctx, ev: Event, v, t: torch.Tensor, norm: bool = False) -> T:
    """``v`` as a record whose channels are ``t``'s last dim: a token tensor
    (or an ``N x C`` image for a norm or a linear layer), else a view."""
    x = to_t(ctx, v, ev)
    g, c, h, w, lay = ctx.geom(x.rec)
    if c == int(t.shape[-1]) and (lay == TOKENS or (lay == IMAGE and (norm or h == w == 1))):
        return x
    return T(view(ctx, ev, x.rec, tokens_geom(ctx, t)), x.bdim)


def seq_of(ctx: Ctx, ev: Event, v, t: torch.Tensor) -> T:
    """``v`` as one sequence ``1 x C x L x 1`` (``t`` is ``N x L x C`` or
    ``L x N x C``)."""
    x = to_t(ctx, v, ev)
    if t.dim() != 3 or x.bdim > 1:
        raise Unsupported(f"a token sequence of shape {tuple(t.shape)} (N x L x C)")
    return T(view(ctx, ev, x.rec, tokens_geom(ctx, t, x.bdim)), x.bdim)


def token_dim(x: T, t: torch.Tensor) -> int:
    """The dim of the tokens of a sequence ``N x L x C`` / ``L x N x C``."""
    return 1 - x.bdim if t.dim() == 3 and x.bdim in (0, 1) else -1


def matrix_geom(ctx: Ctx, t: torch.Tensor) -> tuple:
    s = tuple(int(v) for v in t.shape)
    if len(s) < 3:
        raise Unsupported(f"a matrix product of a rank-{len(s)} tensor (batched matrices "
                          "only: ... x M x K)")
    return (groups(ctx, s, len(s) - 2), 1, s[-2], s[-1], MATRIX)


def matrix_of(ctx: Ctx, ev: Event, v, t: torch.Tensor) -> int:
    x = to_t(ctx, v, ev)
    return view(ctx, ev, x.rec, matrix_geom(ctx, t))


def image_of(ctx: Ctx, ev: Event, v: T, t: torch.Tensor) -> V:
    """A token value read by an image op (a convolution, a pool): ``N x C x
    H x W`` or ``N x C``."""
    if t.dim() == 4:
        g = groups(ctx, t.shape, 1)
        if g != 1:
            raise Unsupported(f"an image op on a tensor of shape {tuple(t.shape)}")
        want = (1,) + tuple(int(s) for s in t.shape[1:]) + (IMAGE,)
        return V(view(ctx, ev, v.rec, want), CANON)
    if t.dim() == 2 and groups(ctx, t.shape, 1) == 1:
        return V(view(ctx, ev, v.rec, (1, int(t.shape[1]), 1, 1, IMAGE)), ("N", "C"))
    raise Unsupported(f"an image op on a token tensor of shape {tuple(t.shape)}")


# -------------------------------------------------------------- weighted
def linear(ctx: Ctx, ev: Event, vals: list):
    t = ev.ins[0]
    x = tokens_of(ctx, ev, vals[0], t)
    m = ev.module
    w = m.weight if m is not None else ev.args[1]
    bias = m.bias if m is not None else arg(ev, 2, "bias")
    g, c, h, ww, lay = ctx.geom(x.rec)
    out = int(w.shape[0])
    tied = id(w) in ctx.added          # an embedding's table, counted there
    ctx.added.add(id(w))
    return T(new(ctx, "linear", ev, x.rec, out, bias is not None, tied, geom=(g, out, h, ww, lay),
                 out=ev.out), x.bdim)


def ln(ctx: Ctx, ev: Event, vals: list):
    t = ev.ins[0]
    m = ev.module
    if m is not None:
        shape, affine = tuple(m.normalized_shape), m.elementwise_affine
    else:
        shape, affine = tuple(arg(ev, 1, "normalized_shape")), arg(ev, 2, "weight") is not None
    if shape != (int(t.shape[-1]),):
        raise Unsupported(f"layer norm over {shape} of a tensor of shape {tuple(t.shape)} "
                          "(over the last dim only)")
    x = tokens_of(ctx, ev, vals[0], t, norm=True)
    return same(ctx, "layernorm", ev, x, bool(affine), out=ev.out)


def mha(ctx: Ctx, ev: Event, vals: list):
    """``nn.MultiheadAttention`` as self-attention (one record, as the hook
    tools see the module)."""
    m = ev.module
    q, k, v = (list(ev.args) + [None] * 3)[:3]
    if not (q is k is v) or len(ev.args) > 3:
        raise Unsupported("nn.MultiheadAttention other than self-attention mha(x, x, x) "
                          "(cross-attention, masks passed by position)")
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        raise Unsupported("nn.MultiheadAttention with kdim/vdim, add_bias_kv or add_zero_attn")
    bias = m.in_proj_bias is not None
    if bias != (m.out_proj.bias is not None):
        raise Unsupported("nn.MultiheadAttention whose out-projection bias differs from its "
                          "in-projection's")
    out = ev.out[0] if isinstance(ev.out, (tuple, list)) else ev.out
    if isinstance(ev.out, (tuple, list)) and len(ev.out) > 1 and isinstance(ev.out[1],
                                                                           torch.Tensor):
        ctx.vals[id(ev.out[1])] = Static("attention weights", False)
    x = to_t(ctx, vals[0], ev)
    if q.dim() != 3 or x.bdim != (0 if m.batch_first else 1):
        raise Unsupported(f"nn.MultiheadAttention(batch_first={m.batch_first}) on a tensor of "
                          f"shape {tuple(q.shape)} whose batch is not in dim "
                          f"{0 if m.batch_first else 1}")
    x = seq_of(ctx, ev, x, q)
    r = new(ctx, "mha", ev, x.rec, int(m.embed_dim), int(m.num_heads), bias,
            geom=ctx.geom(x.rec), out=out)
    return (T(r, x.bdim), Static("attention weights", False)) \
        if isinstance(ev.out, (tuple, list)) else T(r, x.bdim)


# ------------------------------------------------------- matrix products
def _matmul(ctx: Ctx, ev: Event, a, ta: torch.Tensor, b, tb: torch.Tensor, out) -> T:
    if ta.dim() < 3 and tb.dim() < 3:
        raise Unsupported("a product of unbatched matrices (the batch must lead)")
    ra = matrix_of(ctx, ev, a, ta)
    rb = matrix_of(ctx, ev, b, tb)
    ga, gb = ctx.geom(ra)[0], ctx.geom(rb)[0]
    if ga != gb and 1 not in (ga, gb):
        raise Unsupported(f"a matrix product of stacks of {ga} and {gb} matrices")
    g = max(ga, gb)
    geom = (g, 1, int(ta.shape[-2]), int(tb.shape[-1]), MATRIX)
    return T(new(ctx, "matmul", ev, ra, rb, geom=geom, out=out))


def _active(v) -> bool:
    return isinstance(v, (V, T, Lazy, Marker, Stale))


def matmul(ctx: Ctx, ev: Event, vals: list):
    """``torch.matmul``, ``@``, ``bmm``, ``mm`` of two activations."""
    ta, tb = ev.args[0], ev.args[1]
    va, vb = ctx.vals.get(id(ta)), ctx.vals.get(id(tb))
    if not (_active(va) and _active(vb)):
        raise Unsupported("a matrix product with a parameter or constant (write it as "
                          "nn.Linear / F.linear)")
    return _matmul(ctx, ev, va, ta, vb, tb, ev.out)


def baddbmm(ctx: Ctx, ev: Event, vals: list):
    """``torch.baddbmm(input, a, b)``: the product, then ``input`` added."""
    if arg(ev, 3, "beta", 1) not in (0, 1) or arg(ev, 4, "alpha", 1) != 1:
        raise Unsupported("baddbmm with alpha != 1 or beta other than 0 and 1")
    ti, ta, tb = ev.args[0], ev.args[1], ev.args[2]
    y = _matmul(ctx, ev, ctx.vals.get(id(ta)), ta, ctx.vals.get(id(tb)), tb, ev.out)
    if arg(ev, 3, "beta", 1) == 0:
        return y
    vi = ctx.vals.get(id(ti))
    if _active(vi):
        if tuple(ti.shape) != tuple(ev.out.shape):
            raise Unsupported("baddbmm whose input broadcasts")
        b = view(ctx, ev, to_t(ctx, vi, ev).rec, ctx.geom(y.rec))
        return T(new(ctx, "add", ev, y.rec, b, geom=ctx.geom(y.rec), out=ev.out))
    return _param_add(ctx, ev, y, vi, ti, ev.out)


def einsum(ctx: Ctx, ev: Event, vals: list):
    """``torch.einsum`` of two operands that is a batched matrix product
    (``bhqd,bhkd->bhqk``, ``bij,bjk->bik``, ...)."""
    eq = ev.args[0]
    ops = list(ev.args[1]) if len(ev.args) == 2 and isinstance(ev.args[1], (list, tuple)) \
        else list(ev.args[1:])
    if not isinstance(eq, str) or len(ops) != 2 or "->" not in eq or "." in eq:
        raise Unsupported("einsum other than an explicit two-operand product 'ab,bc->ac'")
    lhs, out = eq.replace(" ", "").split("->")
    ia, ib = lhs.split(",")
    ta, tb = ops
    if len(set(ia)) != len(ia) or len(set(ib)) != len(ib) or len(ia) != ta.dim() or \
            len(ib) != tb.dim():
        raise Unsupported(f"einsum {eq!r} (repeated or missing indices)")
    size = {**dict(zip(ib, tb.shape)), **dict(zip(ia, ta.shape))}
    batch = [c for c in out if c in ia and c in ib]
    m = [c for c in out if c in ia and c not in ib]
    n = [c for c in out if c in ib and c not in ia]
    k = [c for c in ia if c in ib and c not in out]
    if set(ia) | set(ib) != set(batch + m + n + k) or not k:
        raise Unsupported(f"einsum {eq!r} that reduces an index of one operand only, or "
                          "contracts nothing")
    va, vb = ctx.vals.get(id(ta)), ctx.vals.get(id(tb))
    if not (_active(va) and _active(vb)):
        raise Unsupported("an einsum with a parameter or constant")
    if not batch or batch[0] not in ia[:1] or ib[:1] != batch[0]:
        raise Unsupported(f"einsum {eq!r} whose operands do not both lead with the batch")
    prod = lambda cs: math.prod(int(size[c]) for c in cs)   # noqa: E731
    bsz = groups(ctx, (prod(batch),), 1)
    ra = view(ctx, ev, to_t(ctx, va, ev).rec, (bsz, 1, prod(m), prod(k), MATRIX))
    rb = view(ctx, ev, to_t(ctx, vb, ev).rec, (bsz, 1, prod(k), prod(n), MATRIX))
    return T(new(ctx, "matmul", ev, ra, rb, geom=(bsz, 1, prod(m), prod(n), MATRIX),
                 out=ev.out))


def sdpa(ctx: Ctx, ev: Event, vals: list):
    """``F.scaled_dot_product_attention(q, k, v)``: ``... x H x L x d`` (heads
    = H; GQA when k and v have fewer heads) or ``... x L x d`` (one head)."""
    tq, tk, tv = ev.args[0], arg(ev, 1, "key"), arg(ev, 2, "value")
    mask = arg(ev, 3, "attn_mask")
    if arg(ev, 4, "dropout_p", 0.0):
        raise Unsupported("scaled_dot_product_attention with dropout")
    causal = bool(arg(ev, 5, "is_causal", False))
    if mask is not None and _active(ctx.vals.get(id(mask))):
        raise Unsupported("an attention mask computed from the activations")
    vq, vk, vv = (ctx.vals.get(id(t)) for t in (tq, tk, tv))
    if not all(_active(v) for v in (vq, vk, vv)):
        raise Unsupported("attention over a parameter or constant")
    if not tq.dim() == tk.dim() == tv.dim() or tq.dim() < 3:
        raise Unsupported("attention of tensors of different ranks (... x H x L x d)")

    def geom(t, heads):
        s = tuple(int(v) for v in t.shape)
        lead = len(s) - (3 if heads else 2)
        hh = s[-3] if heads else 1
        return (groups(ctx, s, lead), hh * s[-1], s[-2], 1, TOKENS), hh

    heads = tq.dim() >= 4
    (gq, hq), (gk, hk), (gv, _) = geom(tq, heads), geom(tk, heads), geom(tv, heads)
    rq, rk, rv = (view(ctx, ev, to_t(ctx, v, ev).rec, g) for v, g in ((vq, gq), (vk, gk),
                                                                       (vv, gv)))
    g, dv = gq[0], int(tv.shape[-1])
    r = new(ctx, "attention", ev, rq, rk, rv, hq, hk, causal,
            geom=(g, hq * dv, gq[2], 1, TOKENS), out=ev.out)
    return T(r)


# ------------------------------------------------------------ element-wise
def unary(method: str):
    def read(ctx: Ctx, ev: Event, vals: list):
        x = to_t(ctx, vals[0], ev)
        return same(ctx, method, ev, x, out=ev.out)
    read.__name__ = "tokens_" + method
    return read


def act(ctx: Ctx, ev: Event, vals: list):
    x = to_t(ctx, vals[0], ev)
    kind = ev.act or (ev.entry.arg if ev.entry.arg else getattr(ev.module, "kind", None))
    return same(ctx, "act", ev, x, kind, inplace=_inplace(ev), out=ev.out)


def clamp(ctx: Ctx, ev: Event, vals: list):
    return same(ctx, "act", ev, to_t(ctx, vals[0], ev), "clamp", inplace=_inplace(ev),
                out=ev.out)


def _inplace(ev: Event) -> bool:
    x = ev.args[0] if ev.args else None
    return isinstance(ev.out, torch.Tensor) and isinstance(x, torch.Tensor) and \
        _record.same_buffer(ev.out, x)


def softmax(ctx: Ctx, ev: Event, vals: list):
    t = ev.ins[0]
    dim = ev.module.dim if ev.module is not None else arg(ev, 1, "dim")
    if dim is None or int(dim) % t.dim() != t.dim() - 1:
        raise Unsupported(f"softmax over dim {dim} of a token tensor (over the last only)")
    x = to_t(ctx, vals[0], ev)
    g, c, h, w, lay = ctx.geom(x.rec)
    last = int(t.shape[-1])
    if not ((lay == MATRIX and w == last) or (lay != MATRIX and c == last)):
        x = T(view(ctx, ev, x.rec, matrix_geom(ctx, t) if t.dim() >= 3 else
                   tokens_geom(ctx, t)), x.bdim)
    return same(ctx, "log_softmax" if ev.entry.arg == "log" else "softmax", ev, x,
                out=ev.out)


def _numbers(ev: Event) -> list:
    vals = list(ev.args[1:]) + [ev.kwargs.get("other")]
    return [a for a in vals if isinstance(a, (int, float)) and not isinstance(a, bool)]


def arith(ctx: Ctx, ev: Event, vals: list):
    """``+ - * /`` of token tensors: with a number (an activation record),
    with a parameter or constant tensor (``param_add``, a per-channel
    ``scale``), or of two activations (equal shapes; the second may be 1
    over the channels: ``x * rsqrt(mean(x^2))``)."""
    op = ev.kind
    if ev.kwargs.get("alpha", 1) != 1 or (op == "div" and ev.kwargs.get("rounding_mode")):
        raise Unsupported(f"{op} with alpha or rounding_mode")
    ts = [a for a in ev.args[:2] if isinstance(a, torch.Tensor)]
    acts = [t for t in ts if _active(ctx.vals.get(id(t)))]
    if len(acts) == 2:
        return _binary(ctx, ev, op)
    x = to_t(ctx, ctx.vals.get(id(acts[0])), ev)
    others = [t for t in ts if t is not acts[0]]
    if others:
        st = ctx.vals.get(id(others[0]))
        if op == "add":
            return _param_add(ctx, ev, x, st, others[0], ev.out)
        if op == "mul" and isinstance(st, Static) and st.param and \
                others[0].numel() == ctx.geom(x.rec)[1] and \
                others[0].numel() == int(ev.out.shape[-1]):
            return _with_weight(ctx, ev, x)
        raise Unsupported(f"{op} of a token tensor and {_what(st)} of shape "
                          f"{tuple(others[0].shape)}")
    nums = _numbers(ev)
    if len(nums) != 1:
        raise Unsupported(f"{op} of a token tensor and {ev.args[1:]!r}")
    if op == "mul" and nums[0] == 0 and not _inplace(ev):
        return same(ctx, "zero", ev, x, out=ev.out)
    return same(ctx, "act", ev, x, f"{op}_const", inplace=_inplace(ev), out=ev.out)


def _with_weight(ctx: Ctx, ev: Event, x: T) -> T:
    """``x * w`` with a per-channel weight: a scale record (``w`` counted once)."""
    return same(ctx, "scale", ev, x, False, out=ev.out)


def _param_add(ctx: Ctx, ev: Event, x: T, st, t: torch.Tensor, out) -> T:
    """``x + p``: a learned tensor (its parameters counted once) or a
    constant such as a mask (0 parameters) broadcast over ``x``."""
    if t.numel() > out.numel() or tuple(torch.broadcast_shapes(t.shape, out.shape)) != \
            tuple(out.shape):
        raise Unsupported(f"adding a tensor of shape {tuple(t.shape)} that does not broadcast "
                          f"to {tuple(out.shape)}")
    params = 0
    if isinstance(st, Static) and st.param and st.name not in ctx.added:
        params = ctx.param_numel.get(st.name, int(t.numel()))
        ctx.added.add(st.name)
    g = ctx.geom(x.rec)
    if tuple(_operand_shape(ev, x, ctx)) != tuple(out.shape):
        raise Unsupported("an addition whose activation operand broadcasts")
    return T(new(ctx, "param_add", ev, x.rec, params, inplace=_inplace(ev), geom=g, out=out),
             x.bdim)


def _operand_shape(ev: Event, x: T, ctx: Ctx):
    """The torch shape of ``x`` as an argument of ``ev``."""
    for a in ev.args[:2]:
        if isinstance(a, torch.Tensor) and isinstance(ctx.vals.get(id(a)), T) and \
                ctx.vals.get(id(a)).rec == x.rec:
            return a.shape
    return ev.out.shape


def _binary(ctx: Ctx, ev: Event, op: str) -> T:
    ta, tb = ev.args[0], ev.args[1] if len(ev.args) > 1 else ev.kwargs.get("other")
    a, b = (to_t(ctx, ctx.vals.get(id(t)), ev) for t in (ta, tb))
    if op == "pow":
        raise Unsupported("a tensor raised to a tensor power")
    inplace = _inplace(ev)
    if tuple(tb.shape) != tuple(ev.out.shape) and tuple(ta.shape) == tuple(ev.out.shape):
        pass
    elif tuple(ta.shape) != tuple(ev.out.shape):
        if inplace or op in ("sub", "div"):
            raise Unsupported(f"{op} whose first input broadcasts")
        a, b, ta, tb = b, a, tb, ta
    ga, gb = ctx.geom(a.rec), ctx.geom(b.rec)
    if ga[4] == IMAGE and gb[4] != IMAGE and tuple(tb.shape) == tuple(ta.shape):
        a = T(view(ctx, ev, a.rec, gb), a.bdim)    # an image read as tokens: as the other
        ga = gb
    if tuple(tb.shape) == tuple(ta.shape):
        rb = view(ctx, ev, b.rec, ga)
    elif op != "add" and tuple(tb.shape[:-1]) == tuple(ta.shape[:-1]) and tb.shape[-1] == 1 \
            and ga[4] != MATRIX and ga[1] == int(ta.shape[-1]):
        rb = view(ctx, ev, b.rec, (ga[0], 1, ga[2], ga[3], ga[4]))   # 1 per position
    else:
        raise Unsupported(f"{op} of token tensors of shapes {tuple(ta.shape)} and "
                          f"{tuple(tb.shape)}")
    method = {"add": "add", "mul": "mul", "sub": "sub", "div": "div"}[op]
    return T(new(ctx, method, ev, a.rec, rb, inplace=inplace, geom=ga, out=ev.out), a.bdim)


def mean(ctx: Ctx, ev: Event, vals: list):
    """A mean over the tokens of a sequence (``x.mean(1)``) or over the
    channels (``x.pow(2).mean(-1, keepdim=True)``)."""
    t = ev.args[0]
    dims = arg(ev, 1, "dim")
    keep = bool(arg(ev, 2, "keepdim", False))
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    dims = sorted(int(d) % t.dim() for d in dims)
    x = to_t(ctx, vals[0], ev)
    if dims == [t.dim() - 1]:
        x = tokens_of(ctx, ev, x, t, norm=True)
        g, c, h, w, lay = ctx.geom(x.rec)
        return T(new(ctx, "mean", ev, x.rec, True, geom=(g, 1, h, w, lay), out=ev.out), x.bdim)
    if len(dims) == 1 and dims[0] == token_dim(x, t):
        x = seq_of(ctx, ev, x, t)
        g, c, h, w, lay = ctx.geom(x.rec)
        return T(new(ctx, "mean", ev, x.rec, False, True, geom=(g, c, 1, 1, lay), out=ev.out),
                 x.bdim)
    raise Unsupported(f"a mean over dims {dims} of a token tensor of shape {tuple(t.shape)} "
                      "(over the tokens of N x L x C, or the last dim)")


# --------------------------------------------------------------- layout
def reshape(ctx: Ctx, ev: Event, vals: list):
    """view / reshape / flatten / squeeze / unsqueeze / unflatten: the same
    elements; a copy record when torch had to copy."""
    if isinstance(vals[0], Marker) and vals[0].kind == "repeat":
        return _repeat(ctx, ev, vals[0])
    x = to_t(ctx, vals[0], ev)
    out, t = ev.out, ev.args[0]
    if not _record.same_buffer(out, t):
        x = same(ctx, "copy", ev, x, out=out)
    return T(x.rec, _bdim_after_reshape(ctx, x.bdim, t, out))


def _bdim_after_reshape(ctx: Ctx, bdim: int, t, out) -> int:
    if ctx.batch == 1 or (bdim == 0 and out.dim() and int(out.shape[0]) % ctx.batch == 0):
        return 0
    if all(int(s) == 1 for s in t.shape[:bdim]) and int(out.shape[0]) % ctx.batch == 0:
        return 0
    raise Unsupported(f"a reshape {tuple(t.shape)} -> {tuple(out.shape)} that mixes the batch "
                      "into other dims")


def contiguous(ctx: Ctx, ev: Event, vals: list):
    x = to_t(ctx, vals[0], ev)
    if ev.out is ev.args[0] or _record.same_buffer(ev.out, ev.args[0]):
        return x
    return same(ctx, "copy", ev, x, out=ev.out)


def permutation(ev: Event) -> list:
    """The dimension order a ``permute`` or ``transpose`` event produces (the
    new tensor's dimension k is the input's ``perm[k]``)."""
    rank = ev.args[0].dim()
    if ev.kind == "transpose":
        a, b = (int(d) % rank for d in (arg(ev, 1, "dim0"), arg(ev, 2, "dim1")))
        perm = list(range(rank))
        perm[a], perm[b] = perm[b], perm[a]
        return perm
    perm = list(ev.args[1:]) if len(ev.args) > 2 else list(arg(ev, 1, "dims"))
    return [int(d) % rank for d in perm]


def permute(ctx: Ctx, ev: Event, vals: list):
    x = to_t(ctx, vals[0], ev)
    perm = permutation(ev)
    return T(x.rec, perm.index(x.bdim) if x.bdim < len(perm) else 0)


def alias(ctx: Ctx, ev: Event, vals: list):
    return to_t(ctx, vals[0], ev)


def to(ctx: Ctx, ev: Event, vals: list):
    """``x.to(dtype)``, ``x.float()``, ``x.type_as(y)``: the tensor itself, or
    a copy when the dtype changes."""
    return contiguous(ctx, ev, vals)


def expand(ctx: Ctx, ev: Event, vals: list):
    """A broadcast view: the same elements, or each repeated (``repeat_kv``
    of grouped-query attention: ``k[:, :, None].expand(B, Hkv, n, L, d)``,
    materialised by the reshape that follows)."""
    x = to_t(ctx, vals[0], ev)
    n, k = ev.out.numel(), ev.args[0].numel()
    if n == k:
        return x
    return Marker("repeat", x.rec, n // k)


def _repeat(ctx: Ctx, ev: Event, m: Marker) -> T:
    """The copy a reshape makes of a repeating expand: ``n`` copies of the
    record, joined on the channels (``repeat_kv``: key/value heads to as many
    as the query heads).  A view when torch can keep the zero stride (one
    key/value head), written as the copy all the same."""
    g, c, h, w, lay = ctx.geom(m.rec)
    if lay == MATRIX:
        raise Unsupported("repeating a stack of matrices")
    r = new(ctx, "concat", ev, *([m.rec] * m.groups), axis=0, geom=(g, c * m.groups, h, w, lay),
            out=ev.out)
    return T(r)


def _piece(ctx: Ctx, ev: Event, x: T, t: torch.Tensor, d: int, start: int, count: int,
           step: int, out) -> T:
    """Elements ``start, start + step, ...`` (``count`` of them) along dim
    ``d`` of ``t``: channels when ``d`` is the channel dim or splits the
    channels evenly (``qkv.reshape(B, L, 3, H, d).permute(2, 0, 3, 1, 4)[0]``),
    tokens of a sequence ``N x L x C`` along ``L``."""
    if d == x.bdim:
        raise Unsupported("indexing the batch dimension of a token tensor")
    size = int(t.shape[d])
    g, c, h, w, lay = ctx.geom(x.rec)
    if lay != MATRIX and (d == t.dim() - 1 and c == size):
        return T(new(ctx, "slice", ev, x.rec, start, count, step,
                     geom=(g, count, h, w, lay), out=out), x.bdim)
    if d == token_dim(x, t):
        x = seq_of(ctx, ev, x, t)
        c = ctx.geom(x.rec)[1]
        return T(new(ctx, "slice", ev, x.rec, start, count, step, tokens=True,
                     geom=(1, c, count, 1, TOKENS), out=out), x.bdim)
    if lay != MATRIX and step == 1 and c % size == 0 and _outer(t, d, x.bdim):
        per = c // size
        return T(new(ctx, "slice", ev, x.rec, start * per, count * per,
                     geom=(g, count * per, h, w, lay), out=out), x.bdim)
    raise Unsupported(f"a piece along dim {d} of a token tensor of shape {tuple(t.shape)}")


def _outer(t: torch.Tensor, d: int, bdim: int) -> bool:
    """Dim ``d`` is outside every dim but the batch (a split of the whole)."""
    return all(int(s) == 1 or i == bdim for i, s in enumerate(t.shape[:d]))


def getitem(ctx: Ctx, ev: Event, vals: list):
    x = to_t(ctx, vals[0], ev)
    t, idx = ev.args[0], ev.args[1]
    idx = idx if isinstance(idx, tuple) else (idx,)
    n_real = sum(1 for e in idx if e is not None and e is not Ellipsis)
    full, d, cut, removed = [], 0, [], []
    for e in idx:
        if e is Ellipsis:
            full += [slice(None)] * (t.dim() - n_real)
        else:
            full.append(e)
    for e in full:
        if e is None:
            continue
        size = int(t.shape[d])
        if isinstance(e, slice):
            start, stop, step = e.indices(size)
            count = len(range(start, stop, step))
            if (start, count, step) != (0, size, 1):
                cut.append((d, start, count, step))
        elif isinstance(e, int) and not isinstance(e, bool):
            cut.append((d, e % size, 1, 1))
            removed.append(d)
        elif isinstance(e, list) and len(e) == 1 and isinstance(e[0], int):
            cut.append((d, e[0] % size, 1, 1))       # x[:, [-1]]: the last token, kept
        else:
            raise Unsupported(f"indexing a token tensor with {type(e).__name__} (slices, "
                              "ints and None only)")
        d += 1
    if not cut:
        return x
    if t.dim() == 4 and [c_[0] for c_ in cut] == [1, 2] and x.bdim == 0 and \
            all(c_[3] == 2 and c_[1] in (0, 1) for c_ in cut):
        # one of the four of a patch merging: x[..., i::2, j::2, :]
        return Marker("quarter", view(ctx, ev, x.rec, tokens_geom(ctx, t)), 0,
                      (cut[0][1], cut[1][1]))
    if len(cut) > 1:
        raise Unsupported("indexing more than one dim of a token tensor at once")
    d, start, count, step = cut[0]
    y = _piece(ctx, ev, x, t, d, start, count, step, ev.out)
    return T(y.rec, y.bdim - sum(1 for r in removed if r < y.bdim))


def chunk(ctx: Ctx, ev: Event, vals: list):
    """chunk / split / unbind: one slice record per piece."""
    x = to_t(ctx, vals[0], ev)
    t = ev.args[0]
    dim = int(arg(ev, 1, "dim", 0)) if ev.kind == "unbind" else int(arg(ev, 2, "dim", 0))
    dim %= t.dim()
    pieces, start = [], 0
    for o in ev.out:
        n = 1 if ev.kind == "unbind" else int(o.shape[dim])
        y = _piece(ctx, ev, x, t, dim, start, n, 1, o)
        pieces.append(T(y.rec, y.bdim - (1 if ev.kind == "unbind" and dim < y.bdim else 0)))
        start += n
    return tuple(pieces)


def cat(ctx: Ctx, ev: Event, vals: list):
    """``torch.cat``: learned tokens in front (``prepend``: ViT's class
    token), or activations along the tokens of a sequence or the channels."""
    seq = list(ev.args[0]) if ev.module is None else list(ev.args)
    dim = int(arg(ev, 1, "dim", 0)) % seq[0].dim()
    vs = [ctx.vals.get(id(t)) for t in seq]
    if any(isinstance(v, Marker) and v.kind == "quarter" for v in vs):
        return _patch_merge(ctx, ev, vs, seq, dim)
    if len(seq) == 2 and isinstance(vs[0], Static) and seq[0].numel() == 0 and \
            _active(vs[1]) and seq[1].dim() >= 3 and \
            int(arg(ev, 1, "dim", 0)) % seq[1].dim() == seq[1].dim() - 2:
        return _kv_cache(ctx, ev, vs[1], seq[1])     # DynamicCache.update
    front = 0
    while front < len(vs) and isinstance(vs[front], Static) and vs[front].param:
        front += 1
    rest = seq[front:]
    if not rest or not all(_active(v) for v in vs[front:]):
        raise Unsupported("torch.cat of activations with constants, or with parameters "
                          "other than learned tokens in front (a class token)")
    if front:
        if len(rest) != 1 or dim != token_dim(to_t(ctx, vs[front], ev), rest[0]):
            raise Unsupported("learned tokens concatenated other than in front of one "
                              "N x L x C sequence")
        x = seq_of(ctx, ev, vs[front], rest[0])
        count = sum(int(t.shape[1]) for t in seq[:front])
        for v in vs[:front]:
            ctx.added.add(v.name)
        g, c, h, w, lay = ctx.geom(x.rec)
        return T(new(ctx, "prepend", ev, x.rec, count, geom=(g, c, h + count, w, lay),
                     out=ev.out))
    if dim == seq[0].dim() - 1:
        xs = [tokens_of(ctx, ev, v, t) for v, t in zip(vs, seq)]
        axis, k = 0, 1
    elif dim == token_dim(to_t(ctx, vs[0], ev), seq[0]):
        xs = [seq_of(ctx, ev, v, t) for v, t in zip(vs, seq)]
        axis, k = 1, 2
    else:
        raise Unsupported(f"torch.cat of token tensors along dim {dim}")
    geoms = [ctx.geom(x.rec) for x in xs]
    total = sum(gm[k] for gm in geoms)
    g = list(geoms[0])
    g[k] = total
    r = new(ctx, "concat", ev, *[x.rec for x in xs], axis=axis, geom=tuple(g), out=ev.out)
    return T(r)


def const(ctx: Ctx, ev: Event, vals: list):
    """``x.new_zeros(...)`` & co.: a constant (only the activation's dtype and
    device are read)."""
    return Static(ev.callable(), False)


def _patch_merge(ctx: Ctx, ev: Event, vs: list, seq: list, dim: int) -> T:
    """``torch.cat([x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], ...], -1)``:
    Swin's patch merging gather, one record (as the zoo writes it, a function
    call: torchvision's ``_patch_merging_pad``)."""
    recs = {v.rec for v in vs if isinstance(v, Marker)}
    parts = sorted(v.dims for v in vs if isinstance(v, Marker) and v.kind == "quarter")
    if len(vs) != 4 or len(recs) != 1 or dim != 3 or parts != [(0, 0), (0, 1), (1, 0), (1, 1)]:
        raise Unsupported("torch.cat of strided views of a token grid other than the four "
                          "2 x 2 neighbours of a patch merging, on the channels")
    rec = recs.pop()
    g, c, h, w, lay = ctx.geom(rec)
    return T(new(ctx, "patch_merge", ev, rec, geom=(g, 4 * c, (h + 1) // 2, (w + 1) // 2, lay),
                 out=ev.out, call=Call.FUNCTION))


def pad(ctx: Ctx, ev: Event, vals: list):
    """``F.pad`` of a token tensor by nothing: the copy torch makes."""
    pads = list(arg(ev, 1, "pad"))
    if any(int(p) for p in pads) or arg(ev, 2, "mode", "constant") != "constant":
        raise Unsupported(f"padding a token tensor by {pads} (windows padded to whole "
                          "windows; nasflops pads images only)")
    return same(ctx, "copy", ev, to_t(ctx, vals[0], ev), out=ev.out)


# -------------------------------------------------------- language models
def _heads_geom(ctx: Ctx, t: torch.Tensor) -> tuple:
    """``N x H x L x d`` (heads split) as one sequence of ``H*d`` channels;
    ``N x L x C`` as it is."""
    if t.dim() == 4:
        s = tuple(int(v) for v in t.shape)
        return (groups(ctx, s, 1), s[1] * s[3], s[2], 1, TOKENS), s[1]
    return tokens_geom(ctx, t), 1


def addmm(ctx: Ctx, ev: Event, vals: list):
    """``torch.addmm(bias, x, weight)`` with learned ``weight`` (in x out) and
    ``bias``: a linear layer, as transformers' ``Conv1D`` (GPT-2) writes it."""
    ti, ta, tb = ev.args[0], ev.args[1], ev.args[2]
    vi, va, vb = (ctx.vals.get(id(t)) for t in (ti, ta, tb))
    if arg(ev, 3, "beta", 1) != 1 or arg(ev, 4, "alpha", 1) != 1 or not _active(va) or \
            not (isinstance(vb, Static) and vb.param) or \
            not (isinstance(vi, Static) and vi.param and ti.dim() == 1):
        raise Unsupported("addmm other than bias + x @ weight with learned weight and bias")
    x = tokens_of(ctx, ev, va, ta)
    g, c, h, w, lay = ctx.geom(x.rec)
    out = int(tb.shape[1])
    ctx.added.update((id(tb), id(ti)))
    return T(new(ctx, "linear", ev, x.rec, out, True, geom=(g, out, h, w, lay), out=ev.out),
             x.bdim)


def embedding(ctx: Ctx, ev: Event, vals: list):
    """``nn.Embedding`` / ``F.embedding`` of the token ids."""
    m = ev.module
    w = m.weight if m is not None else ev.args[1]
    t = ev.args[0]
    if t.dim() != 2 or t.dtype not in (torch.long, torch.int32, torch.int64):
        raise Unsupported(f"an embedding of a tensor of shape {tuple(t.shape)} (token ids N x L)")
    x = to_t(ctx, vals[0], ev)
    ids = view(ctx, ev, x.rec, (1, 1, int(t.shape[1]), 1, IMAGE))
    ctx.added.add(id(w))
    r = new(ctx, "embedding", ev, ids, int(w.shape[0]), int(w.shape[1]),
            geom=(1, int(w.shape[1]), int(t.shape[1]), 1, TOKENS), out=ev.out)
    return T(r)


def rmsnorm(ctx: Ctx, ev: Event, vals: list):
    """A ``*RMSNorm`` module: over the last dim, a weight of C or none."""
    t = ev.args[0]
    w = getattr(ev.module, "weight", None)
    if w is not None and tuple(w.shape) != (int(t.shape[-1]),):
        raise Unsupported(f"an RMSNorm whose weight {tuple(w.shape)} is not one per channel "
                          f"of {tuple(t.shape)}")
    x = tokens_of(ctx, ev, vals[0], t, norm=True)
    return same(ctx, "rmsnorm", ev, x, w is not None, out=ev.out)


def rope(ctx: Ctx, ev: Event, vals: list):
    """``x * cos + rotate_half(x) * sin`` (fused by the recorder)."""
    t = ev.args[0]
    geom, heads = _heads_geom(ctx, t)
    x = to_t(ctx, vals[0], ev)
    r = view(ctx, ev, x.rec, geom)
    return T(new(ctx, "rope", ev, r, heads, geom=geom, out=ev.out))


def _kv_cache(ctx: Ctx, ev: Event, v, t: torch.Tensor) -> T:
    """``torch.cat([cache, k], -2)`` of an empty cache: the cache written."""
    geom, _ = _heads_geom(ctx, t)
    r = view(ctx, ev, to_t(ctx, v, ev).rec, geom)
    return T(new(ctx, "kv_cache", ev, r, 0, geom=geom, out=ev.out))


def masked_fill(ctx: Ctx, ev: Event, vals: list):
    """``scores.masked_fill(mask, value)`` with a mask made without the input
    (nanoGPT's causal mask): a constant applied to the scores, as a mask
    added (``param_add`` of nothing learned)."""
    t, mask = ev.args[0], arg(ev, 1, "mask")
    if _active(ctx.vals.get(id(mask))) or isinstance(arg(ev, 2, "value"), torch.Tensor):
        raise Unsupported("masked_fill with a mask or value computed from the activations")
    x = to_t(ctx, vals[0], ev)
    return T(new(ctx, "param_add", ev, x.rec, 0, inplace=_inplace(ev), geom=ctx.geom(x.rec),
                 out=ev.out), x.bdim)


#: registry kind -> token-world reader
READERS = {
    "linear": linear, "ln": ln, "mha": mha, "matmul": matmul, "baddbmm": baddbmm,
    "einsum": einsum, "sdpa": sdpa, "act": act, "clamp": clamp, "softmax": softmax,
    "add": arith, "sub": arith, "mul": arith, "div": arith, "pow": arith, "mean": mean,
    "dropout": unary("dropout"), "identity": unary("identity"), "clone": unary("copy"),
    "zeros_like": unary("zero"),
    "reshape": reshape, "flatten": reshape, "permute": permute, "transpose": permute,
    "contiguous": contiguous, "alias": alias, "to": to, "expand": expand,
    "getitem": getitem, "chunk": chunk, "split": chunk, "unbind": chunk, "cat": cat,
    "roll": unary("copy"), "const": const, "pad": pad,
    "embedding": embedding, "rmsnorm": rmsnorm, "rope": rope, "addmm": addmm,
    "masked_fill": masked_fill,
}
#: token-world markers (steps of a pattern)
MARKERS = frozenset({"quarter", "repeat"})
#: kinds that always read in the token world (their inputs are never images)
ALWAYS = frozenset({"mha", "matmul", "baddbmm", "einsum", "sdpa", "unbind", "roll", "const",
                    "embedding", "rmsnorm", "rope", "addmm"})
