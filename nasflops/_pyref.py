"""The counting definitions, written as a plain Python loop over layers.

This is the straightforward implementation the compiled core is measured
against (``benchmarks/bench_core.py``) and checked against (the property
tests): Python integers, one dict per layer, no cleverness.  It is cut into
the same steps as ``_core.pyx`` (``check_record``, ``infer_layer``,
``convention_ops``, ``layer_bytes``/``torchstat_bytes``, ``track_lifetime``,
``peak_sweep``), so
the two read side by side, and it checks every intermediate the core checks
against the int64 range, so both report an overflow at the same layer.  It is
not used for scoring.
"""
from __future__ import annotations

import numpy as np

from . import _core
from .spec import INPUT_FIELDS, Act, Call, Flag, Op

INT64_MAX = (1 << 63) - 1
_TERM_NAMES = _core.TERMS    # the columns of a convention's weights


class RefError(Exception):
    def __init__(self, layer: int, status: str):
        super().__init__(f"layer {layer}: {status}")
        self.layer, self.status = layer, status


class _Overflow(Exception):
    pass


def _chk(v: int) -> int:
    """An intermediate the core computes in int64: must fit."""
    if not -INT64_MAX - 1 <= v <= INT64_MAX:
        raise _Overflow
    return v


def _prod(*factors: int) -> int:
    """A product of positive factors, checked as the core checks each step."""
    r = 1
    for f in factors:
        r = _chk(r * f)
    return r


def _out_len(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    if ceil_mode:
        o = -(-span // s) + 1
        if (o - 1) * s >= size + p:
            o -= 1
        return o
    return span // s + 1


def _adaptive(size, out):
    return sum(-(-(i + 1) * size // out) - (i * size) // out for i in range(out))


IMAGE, TOKENS, MATRIX = 0, 1, 2     # layouts, as _core.pyx's Layout


def _numel(shape):
    g, c, h, w, _ = shape
    return g * c * h * w


# ------------------------------------------------------------ 1. inputs
def check_record(L: dict, i: int, n_ops: int, n_calls: int) -> list[int]:
    """Indices of the layers feeding ``L``; raises on an unknown op or call
    kind, the network input elsewhere than first, a bad slot layout or arity."""
    if not 0 <= L["op"] < n_ops:
        raise RefError(i, "bad_op")
    if L["call"] >= n_calls:
        raise RefError(i, "bad_value")
    if (L["op"] == Op.INPUT) != (i == 0):
        raise RefError(i, "no_input")
    ins = []
    for f in INPUT_FIELDS:
        if L[f] < 0:
            break
        ins.append(L[f])
    if any(L[f] != -1 for f in INPUT_FIELDS[len(ins):]) or any(j >= i for j in ins):
        raise RefError(i, "bad_input_ref")
    lo, hi = {Op.INPUT: (0, 0), Op.ADD: (2, 4), Op.MUL: (2, 2), Op.SUB: (2, 2), Op.DIV: (2, 2),
              Op.MATMUL: (2, 2), Op.ATTENTION: (3, 3), Op.CONCAT: (1, 4),
              Op.MOE_COMBINE: (2, 2)}.get(L["op"], (1, 1))
    if not lo <= len(ins) <= hi:
        raise RefError(i, "bad_input_ref")
    return ins


# ---------------------------------------------- 2. shape and per-op quantities
def _is_image(f):
    return f["lin"] == IMAGE and f["gin"] == 1


def infer_window(L: dict, i: int, f: dict) -> None:
    op = L["op"]
    kh, kw, sh, sw = L["kernel_h"], L["kernel_w"], L["stride_h"], L["stride_w"]
    ph, pw, dh, dw = L["pad_h"], L["pad_w"], L["dilation_h"], L["dilation_w"]
    cin, hin, win = f["cin"], f["hin"], f["win"]
    if not _is_image(f):
        raise RefError(i, "bad_shape")
    if min(kh, kw, sh, sw, dh, dw) < 1 or min(ph, pw) < 0:
        raise RefError(i, "bad_value")
    if op == Op.AVGPOOL and (dh, dw) != (1, 1):
        raise RefError(i, "bad_value")
    if hin + 2 * ph < dh * (kh - 1) + 1 or win + 2 * pw < dw * (kw - 1) + 1:
        raise RefError(i, "kernel_too_large")
    if op == Op.CONV2D:
        g, cout = L["groups"], L["out_channels"]
        if cout < 1 or g < 1:
            raise RefError(i, "bad_value")
        if cin % g or cout % g:
            raise RefError(i, "bad_groups")
        f["c"] = cout
        f["h"], f["w"] = _out_len(hin, kh, sh, ph, dh, False), _out_len(win, kw, sw, pw, dw, False)
        f["params"] = _prod(cout, cin // g, kh * kw)
        if L["flags"] & Flag.BIAS:
            f["params"] = _chk(f["params"] + cout)
            f["bias"] = True
        f["macs"] = _prod(f["h"], f["w"], cout, cin // g, kh * kw)
        return
    if op == Op.MAXPOOL:
        if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
            raise RefError(i, "bad_padding")
    elif 2 * ph > kh or 2 * pw > kw:
        raise RefError(i, "bad_padding")
    ceil = bool(L["flags"] & Flag.CEIL_MODE)
    f["h"], f["w"] = _out_len(hin, kh, sh, ph, dh, ceil), _out_len(win, kw, sw, pw, dw, ceil)
    f["win_k"] = kh * kw


#: ops whose Flag.INPLACE overwrites input 0 (allocate nothing, still read and write)
WRITES_IN_PLACE = (Op.ACT, Op.ADD, Op.MUL, Op.SUB, Op.DIV, Op.PARAM_ADD)


def infer_join(L: dict, i: int, f: dict, ins: list, shapes: list) -> None:
    op = L["op"]
    mine = (f["gin"], f["cin"], f["hin"], f["win"], f["lin"])
    if op == Op.ADD:
        f["view"] = bool(L["flags"] & Flag.INPLACE)
        for j in ins[1:]:
            if shapes[j] != mine:
                raise RefError(i, "shape_mismatch")
            f["other"] += _numel(shapes[j])
    elif op in (Op.MUL, Op.SUB, Op.DIV):
        f["view"] = bool(L["flags"] & Flag.INPLACE)
        g = shapes[ins[1]]
        if g[4] != f["lin"] or any(a != b and a != 1 for a, b in zip(g[:4], mine[:4])):
            raise RefError(i, "shape_mismatch")
        f["other"] = _numel(g)
    else:
        if f["lin"] == MATRIX:
            raise RefError(i, "bad_shape")
        axis = L["extra"]
        if not 0 <= axis <= 2:
            raise RefError(i, "bad_value")
        f["extend"] = bool(L["flags"] & Flag.INPLACE)
        out = [f["c"], f["h"], f["w"]]
        for j in ins[1:]:
            g, c, h, w, lay = shapes[j]
            if (g, lay) != (f["gin"], f["lin"]) or any(
                    a != b for k, (a, b) in enumerate(zip((c, h, w), (f["cin"], f["hin"], f["win"])))
                    if k != axis):
                raise RefError(i, "shape_mismatch")
            out[axis] += (c, h, w)[axis]
            f["other"] += _numel(shapes[j])
        f["c"], f["h"], f["w"] = out


def infer_reshape(L: dict, i: int, f: dict) -> None:
    """pad, crop, mean: the output shape from the record's geometry (pad and
    crop of images; mean of images and token tensors)."""
    if f["lin"] == MATRIX or f["gin"] != 1 or (L["op"] != Op.MEAN and f["lin"] != IMAGE):
        raise RefError(i, "bad_shape")
    if L["op"] == Op.MEAN:
        if not 1 <= L["extra"] <= 7:
            raise RefError(i, "bad_value")
        f["c"], f["h"], f["w"] = (1 if L["extra"] & bit else v
                                  for bit, v in ((1, f["c"]), (2, f["h"]), (4, f["w"])))
        return
    sh, sw, ph, pw = L["size_h"], L["size_w"], L["pad_h"], L["pad_w"]
    if min(sh, sw) < 1 or min(ph, pw) < 0:
        raise RefError(i, "bad_value")
    if L["op"] == Op.PAD:
        c = L["out_channels"]
        if c < 1 or L["start"] < 0 or L["start"] + f["cin"] > c or ph + f["hin"] > sh \
                or pw + f["win"] > sw:
            raise RefError(i, "bad_value")
        f["c"] = c
    else:
        if min(L["stride_h"], L["stride_w"]) < 1 or ph + (sh - 1) * L["stride_h"] >= f["hin"] \
                or pw + (sw - 1) * L["stride_w"] >= f["win"]:
            raise RefError(i, "bad_value")
        f["view"] = True
    f["h"], f["w"] = sh, sw


def infer_tokens(L: dict, i: int, f: dict) -> None:
    """tokens, to_image, prepend, param_add, view_as, patch_merge."""
    op = L["op"]
    if op == Op.TOKENS:
        if not _is_image(f):
            raise RefError(i, "bad_shape")
        f["layout"] = TOKENS
        if L["flags"] & Flag.FLAT:
            f["h"], f["w"] = _prod(f["hin"], f["win"]), 1
        f["view"] = True
    elif op == Op.TO_IMAGE:
        if f["lin"] != TOKENS or f["gin"] != 1:
            raise RefError(i, "bad_shape")
        f["layout"], f["view"] = IMAGE, True
    elif op == Op.PREPEND:
        if f["lin"] != TOKENS or f["gin"] != 1 or f["win"] != 1:
            raise RefError(i, "bad_shape")
        if L["size_h"] < 1:
            raise RefError(i, "bad_value")
        f["h"] = _chk(f["hin"] + L["size_h"])
        f["params"] = _prod(L["size_h"], f["cin"])
    elif op == Op.PARAM_ADD:
        if L["extra"] < 0:
            raise RefError(i, "bad_value")
        f["params"], f["view"] = L["extra"], bool(L["flags"] & Flag.INPLACE)
    elif op == Op.VIEW_AS:
        g, c, h, w = L["groups"], L["out_channels"], L["size_h"], L["size_w"]
        if min(g, c, h, w) < 1 or (L["flags"] & Flag.TOKENS and L["flags"] & Flag.MATRIX):
            raise RefError(i, "bad_value")
        lay = TOKENS if L["flags"] & Flag.TOKENS else MATRIX if L["flags"] & Flag.MATRIX else IMAGE
        if (lay == IMAGE and g != 1) or (lay == MATRIX and c != 1):
            raise RefError(i, "bad_value")
        f.update(g=g, c=c, h=h, w=w, layout=lay, view=not L["flags"] & Flag.COPY)
        if _prod(g, c, h, w) != f["e_in"]:
            raise RefError(i, "shape_mismatch")
    else:   # patch_merge
        if f["lin"] != TOKENS or f["gin"] != 1:
            raise RefError(i, "bad_shape")
        f["c"], f["h"], f["w"] = _prod(f["cin"], 4), (f["hin"] + 1) // 2, (f["win"] + 1) // 2


def infer_matmul(L: dict, i: int, f: dict, ins: list, shapes: list) -> None:
    bg, _, bh, bw, blay = shapes[ins[1]]
    if f["lin"] != MATRIX or blay != MATRIX:
        raise RefError(i, "bad_shape")
    if f["win"] != bh or (bg != f["gin"] and bg != 1 and f["gin"] != 1):
        raise RefError(i, "shape_mismatch")
    f["g"], f["h"], f["w"] = max(f["gin"], bg), f["hin"], bw
    f["macs"] = _prod(f["g"], f["h"], f["win"], f["w"])
    f["other"] = _numel(shapes[ins[1]])


def infer_attention(L: dict, i: int, f: dict, ins: list, shapes: list, causal_half: bool) -> None:
    H = L["groups"]
    Hkv = L["kv_heads"] if L["kv_heads"] > 0 else H
    if f["lin"] != TOKENS:
        raise RefError(i, "bad_shape")
    if H < 1 or L["kv_heads"] < 0:
        raise RefError(i, "bad_value")
    Lq = _prod(f["hin"], f["win"])
    if L["op"] == Op.MHA:
        E = L["out_channels"]
        if E < 1:
            raise RefError(i, "bad_value")
        if f["cin"] != E:
            raise RefError(i, "shape_mismatch")
        if E % H or L["kv_heads"]:
            raise RefError(i, "bad_groups")
        Lk, d = Lq, E // H
        dv = d
        f["params"] = _prod(4, E, E)
        if L["flags"] & Flag.BIAS:
            f["params"], f["bias"] = _chk(f["params"] + _prod(4, E)), True
        f["macs"] = _prod(f["gin"], Lq, 4, E, E)
        f["scratch"] = _prod(f["gin"], Lq, 4, E)
    else:
        k, v = shapes[ins[1]], shapes[ins[2]]
        if k[4] != TOKENS or v[4] != TOKENS:
            raise RefError(i, "bad_shape")
        if k[0] != f["gin"] or v[0] != f["gin"] or k[2:4] != v[2:4]:
            raise RefError(i, "shape_mismatch")
        if f["cin"] % H or H % Hkv or v[1] % Hkv:
            raise RefError(i, "bad_groups")
        d = f["cin"] // H
        if k[1] != _prod(Hkv, d):
            raise RefError(i, "shape_mismatch")
        dv = v[1] // Hkv
        Lk = _prod(k[2], k[3])
        f["c"] = _prod(H, dv)
        f["other"] = _chk(_numel(k) + _numel(v))
    f["scores"] = f["scores_mem"] = _prod(f["gin"], H, Lq, Lk)
    if L["flags"] & Flag.CAUSAL:
        if Lk < Lq:
            raise RefError(i, "shape_mismatch")
        if causal_half:    # query j of the last Lq positions sees Lk - Lq + j + 1 keys
            f["scores"] = _prod(_prod(f["gin"], H), _chk(_prod(Lq, Lk - Lq) + _prod(Lq, Lq + 1) // 2))
    f["attn_macs"] = _prod(f["scores"], d + dv)
    f["macs"] = _chk(f["macs"] + f["attn_macs"])


def infer_lm(L: dict, i: int, f: dict, ins: list, shapes: list) -> None:
    """embedding, rmsnorm, rope, kv_cache, expert_linear, moe_combine."""
    op = L["op"]
    if op == Op.EMBEDDING:
        if f["cin"] != 1 or f["gin"] != 1 or f["lin"] == MATRIX:
            raise RefError(i, "bad_shape")
        if L["out_channels"] < 1 or L["extra"] < 1:
            raise RefError(i, "bad_value")
        f["c"], f["layout"] = L["out_channels"], TOKENS
        f["params"] = _prod(L["extra"], f["c"])
    elif op == Op.RMSNORM:
        if f["lin"] == MATRIX:
            raise RefError(i, "bad_shape")
        if L["flags"] & Flag.AFFINE:
            f["params"], f["affine"] = f["c"], True
    elif op == Op.ROPE:
        if f["lin"] != TOKENS:
            raise RefError(i, "bad_shape")
        if L["groups"] < 1:
            raise RefError(i, "bad_value")
        if f["cin"] % L["groups"] or (f["cin"] // L["groups"]) % 2:
            raise RefError(i, "bad_groups")
    elif op == Op.KV_CACHE:
        if f["lin"] != TOKENS or f["gin"] != 1 or f["win"] != 1:
            raise RefError(i, "bad_shape")
        if L["size_h"] < 0:
            raise RefError(i, "bad_value")
        f["h"] = _chk(f["hin"] + L["size_h"])
        f["view"] = f["cache"] = True
    elif op == Op.EXPERT_LINEAR:
        k, experts = L["size_h"], L["groups"]
        if f["lin"] != TOKENS:
            raise RefError(i, "bad_shape")
        if L["out_channels"] < 1 or experts < 1 or k < 1 or k > experts:
            raise RefError(i, "bad_value")
        if f["gin"] not in (1, k):
            raise RefError(i, "shape_mismatch")
        f["g"], f["c"] = k, L["out_channels"]
        per = _prod(f["c"], f["cin"])
        if L["flags"] & Flag.BIAS:
            per, f["bias"] = _chk(per + f["c"]), True
        f["params"] = _prod(per, experts)
        f["inactive"] = _prod(per, experts - k)
        f["macs"] = _chk(_prod(k, f["hin"], f["win"]) * _prod(f["c"], f["cin"]))
    else:   # moe_combine
        pg, _, ph, pw, play = shapes[ins[1]]
        if f["lin"] != TOKENS or play != TOKENS or pg != 1:
            raise RefError(i, "bad_shape")
        if (ph, pw) != (f["hin"], f["win"]):
            raise RefError(i, "shape_mismatch")
        f["g"], f["other"] = 1, _numel(shapes[ins[1]])


def _infer_simple(L: dict, i: int, f: dict, n_acts: int) -> None:
    op = L["op"]
    cin, hin, win = f["cin"], f["hin"], f["win"]
    if op == Op.INPUT:
        if min(L["out_channels"], L["size_h"], L["size_w"]) < 1:
            raise RefError(i, "bad_value")
        f["c"], f["h"], f["w"] = L["out_channels"], L["size_h"], L["size_w"]
    elif op == Op.ADAPTIVE_AVGPOOL:
        if f["gin"] != 1 or f["lin"] == MATRIX:
            raise RefError(i, "bad_shape")
        if L["size_h"] < 1 or L["size_w"] < 1:
            raise RefError(i, "bad_value")
        f["h"], f["w"] = L["size_h"], L["size_w"]
    elif op == Op.LINEAR:
        if L["out_channels"] < 1:
            raise RefError(i, "bad_value")
        if f["lin"] == MATRIX or (f["lin"] == IMAGE and (hin, win) != (1, 1)):
            raise RefError(i, "bad_shape")
        f["c"] = L["out_channels"]
        f["macs"] = _chk(_prod(f["gin"], hin, win) * _prod(f["c"], cin))
        f["params"] = _prod(f["c"], cin)
        if L["flags"] & Flag.TIED:      # the weight is an embedding's, counted there
            f["params"] = 0
        if L["flags"] & Flag.BIAS:
            f["params"], f["bias"] = _chk(f["params"] + f["c"]), True
    elif op in (Op.BATCHNORM, Op.LAYERNORM, Op.SCALE):
        if (op == Op.BATCHNORM and not _is_image(f)) or f["lin"] == MATRIX:
            raise RefError(i, "bad_shape")
        if op == Op.SCALE:
            f["params"] = cin
            if L["flags"] & Flag.BIAS:
                f["params"], f["bias"] = _prod(2, cin), True
        elif L["flags"] & Flag.AFFINE:
            f["params"], f["affine"] = _prod(2, cin), True
    elif op == Op.ACT:
        if not 0 <= L["act"] < n_acts:
            raise RefError(i, "bad_op")
        f["view"] = bool(L["flags"] & Flag.INPLACE)
    elif op == Op.FLATTEN:
        if not _is_image(f):
            raise RefError(i, "bad_shape")
        f["c"], f["h"], f["w"], f["view"] = _prod(cin, hin, win), 1, 1, True
    elif op in (Op.IDENTITY, Op.DROPOUT):
        f["view"] = True
    elif op == Op.SLICE:
        along_tokens = bool(L["flags"] & Flag.TOKENS)
        if f["lin"] == MATRIX or (along_tokens and f["lin"] != TOKENS):
            raise RefError(i, "bad_shape")
        size, step = (hin if along_tokens else cin), max(L["groups"], 1)
        if L["start"] < 0 or L["out_channels"] < 1 or L["groups"] < 0 or \
                L["start"] + (L["out_channels"] - 1) * step >= size:
            raise RefError(i, "bad_value")
        f["h" if along_tokens else "c"], f["view"] = L["out_channels"], True
    elif op == Op.CHANNEL_SHUFFLE:
        if not _is_image(f):
            raise RefError(i, "bad_shape")
        if L["groups"] < 1:
            raise RefError(i, "bad_value")
        if cin % L["groups"]:
            raise RefError(i, "bad_groups")


_TOKEN_OPS = (Op.TOKENS, Op.TO_IMAGE, Op.PREPEND, Op.PARAM_ADD, Op.VIEW_AS, Op.PATCH_MERGE)
_LM_OPS = (Op.EMBEDDING, Op.RMSNORM, Op.ROPE, Op.KV_CACHE, Op.EXPERT_LINEAR, Op.MOE_COMBINE)


def infer_layer(L: dict, i: int, ins: list, shapes: list, n_acts: int,
                causal_half: bool = False) -> dict:
    """Output shape and quantities of one layer (per sample), fields checked."""
    op = L["op"]
    gin, cin, hin, win, lin = shapes[ins[0]] if ins else (1, 0, 0, 0, IMAGE)
    f = dict(gin=gin, cin=cin, hin=hin, win=win, lin=lin, e_in=gin * cin * hin * win,
             g=gin, c=cin, h=hin, w=win, layout=lin, macs=0, attn_macs=0, scores=0, scores_mem=0,
             scratch=0, params=0, inactive=0, other=0, win_k=0, bias=False, affine=False,
             view=False, extend=False, cache=False)
    if op in (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL):
        infer_window(L, i, f)
    elif op in (Op.ADD, Op.MUL, Op.CONCAT, Op.SUB, Op.DIV):
        infer_join(L, i, f, ins, shapes)
    elif op in (Op.PAD, Op.CROP, Op.MEAN):
        infer_reshape(L, i, f)
    elif op == Op.MATMUL:
        infer_matmul(L, i, f, ins, shapes)
    elif op in (Op.ATTENTION, Op.MHA):
        infer_attention(L, i, f, ins, shapes, causal_half)
    elif op in _LM_OPS:
        infer_lm(L, i, f, ins, shapes)
    elif op in _TOKEN_OPS:
        infer_tokens(L, i, f)
    else:
        _infer_simple(L, i, f, n_acts)
    return f


# ------------------------------------------------------- 3. convention row
def term_value(term: str, op: int, f: dict, n: int) -> int:
    if term == "mac":
        return _prod(f["macs"], n) if f["macs"] else 0
    if term == "out":
        return _prod(f["e"], n)
    if term == "in":
        return _prod(f["e_in"], n) if f["e_in"] else 0
    if term == "bias":
        return _prod(f["e"], n) if f["bias"] else 0
    if term == "affine":
        return _prod(f["e"], n) if f["affine"] else 0
    if term == "window":
        if op == Op.MEAN:
            return _prod(f["e_in"], n)
        if op == Op.ADAPTIVE_AVGPOOL:
            return _prod(f["c"], _adaptive(f["hin"], f["h"]), _adaptive(f["win"], f["w"]), n)
        return _prod(f["win_k"], f["e"], n) if f["win_k"] else 0
    if term == "extra_in":
        return _prod(f["other"], n) if f["other"] else 0
    if term == "rows":
        if f["layout"] == MATRIX:
            return _prod(f["g"], f["h"], n)
        return _prod(f["g"], f["h"], f["w"], n)
    if term == "attn_mac":
        return _prod(f["attn_macs"], n) if f["attn_macs"] else 0
    if term == "scores":
        return _prod(f["scores"], n) if f["scores"] else 0
    if term == "out_ch":
        return _prod(f["c"], n)
    return n                  # samples


def convention_ops(row: list[int], L: dict, f: dict, n: int, last_call_only: bool) -> int:
    """The row's weights times the terms; zero for an earlier call of a module
    called again when the convention keeps only the last call."""
    op = L["op"]
    if last_call_only and L["flags"] & Flag.CALLED_AGAIN:
        return 0
    ops = 0
    for term, coef in zip(_TERM_NAMES, row):
        if coef:
            ops = _chk(ops + _chk(coef * term_value(term, op, f, n)))
    return ops


# ----------------------------------------------------------------- 4. bytes
def weights_read(L: dict, f: dict, n: int) -> int:
    """Weight elements one pass of ``n`` samples reads: every parameter once,
    but an embedding's looked-up rows, a tied linear's shared table, and the
    experts an expert linear can hit (at most min(experts, n x slots))."""
    if L["op"] == Op.EMBEDDING:
        return _prod(f["e"], n)
    if L["op"] == Op.LINEAR and L["flags"] & Flag.TIED:
        return _chk(f["params"] + _prod(f["c"], f["cin"]))
    if L["op"] == Op.EXPERT_LINEAR:
        hits = min(L["groups"], _prod(f["g"], f["h"], f["w"], n))
        return _prod(f["params"] // L["groups"], hits)
    return f["params"]


def layer_bytes(L: dict, f: dict, ins: list, shapes: list, n: int, wbytes: int,
                asize: int, scratch: int) -> tuple[int, int, int]:
    """(allocated, written, read) bytes of one layer; ``scratch``: bytes it
    materialises and drops (written once, read once); ``wbytes``: the
    weights it reads.  A key/value cache writes its new entries."""
    nbytes = [_numel(shapes[j]) * n * asize for j in ins]
    out = f["e"] * n * asize
    if L["op"] == Op.INPUT or (f["view"] and L["op"] not in WRITES_IN_PLACE and not f["cache"]):
        return 0, 0, 0
    if f["cache"]:
        return 0, nbytes[0], nbytes[0]
    if f["extend"]:   # grows input 0's buffer: writes and reads only the new part
        act = out - nbytes[0]
        return act, act, _chk(sum(nbytes[1:]))
    act = _chk(out + scratch)
    return act, act, _chk(_chk(wbytes + scratch) + sum(nbytes))


def torchstat_bytes(L: dict, f: dict, ins: list, shapes: list, n: int, wsize: int,
                    asize: int, wbytes: int) -> tuple[int, int, int]:
    """(memory, written, read) bytes of one layer as torchstat 0.0.7 counts them:
    module calls only (the last call of a module called again), every output as
    memory, reads and writes only where it has a rule."""
    op = L["op"]
    if op == Op.INPUT or L["call"] != Call.MODULE or L["flags"] & Flag.CALLED_AGAIN:
        return 0, 0, 0
    out = f["e"] * n * asize
    in_bytes = _numel(shapes[ins[0]]) * n * asize
    if op in (Op.CONV2D, Op.LINEAR):
        return out, out, _chk(in_bytes + wbytes)
    if op == Op.BATCHNORM:
        return out, out, _chk(in_bytes + _prod(2, f["c"], wsize))
    if op in (Op.MAXPOOL, Op.AVGPOOL) or (op == Op.ACT and L["act"] in (Act.RELU, Act.RELU6)):
        return out, out, in_bytes
    return out, 0, 0


# ------------------------------------------------------------ 5. lifetimes
def track_lifetime(layers: list, i: int, f: dict, ins: list, act: int, out_bytes: int,
                   owner: list, alloc: list, last_use: dict) -> None:
    owner.append(owner[ins[0]] if f["view"] or f["extend"] else i)
    alloc.append(act if f["extend"] else 0 if f["view"] else out_bytes)
    for j in ins:
        last_use[owner[j]] = i
    j = ins[0] if f["extend"] else None
    while j is not None:   # one cat: every input of the chain lives until here
        head = layers[j]
        for fld in INPUT_FIELDS:
            if head[fld] >= 0:
                last_use[owner[head[fld]]] = i
        extends = head["op"] == Op.CONCAT and head["flags"] & Flag.INPLACE
        j = head["input0"] if extends else None
    last_use[owner[i]] = max(last_use.get(owner[i], i), i)


# ------------------------------------------------------------------ 6. peak
def peak_sweep(n_layers: int, owner: list, alloc: list, scratch: list, last_use: dict) -> int:
    freed = [0] * n_layers
    for i in range(n_layers):
        freed[last_use[owner[i]]] += alloc[i]
    live = peak = 0
    for i in range(n_layers):
        live += alloc[i]
        peak = max(peak, live + scratch[i])
        live -= freed[i]
    return peak


class _Kept:
    """Activations a training step keeps for its backward pass: every buffer
    (``saved``) or, with full recomputation, the checkpoints' outputs and the
    largest segment recomputed from one."""

    def __init__(self):
        self.saved = self.checkpoints = self.segment = self.largest = 0

    def keep(self, nbytes: int, checkpoint: bool) -> None:
        self.saved = _chk(self.saved + nbytes)
        if checkpoint:
            self.checkpoints = _chk(self.checkpoints + nbytes)
            self.largest, self.segment = max(self.largest, self.segment), 0
        else:
            self.segment = _chk(self.segment + nbytes)


def train_state(tot: dict, wsize: int, kept: _Kept) -> None:
    """Gradients (weight dtype), Adam's fp32 moments (+ fp32 master weights
    narrower than fp32), activations kept with and without recomputation."""
    tot["grad_bytes"] = _prod(tot["params"], wsize)
    tot["optimizer_bytes"] = _prod(tot["params"], 12 if wsize < 4 else 8)
    tot["saved_act_bytes"] = kept.saved
    tot["recompute_act_bytes"] = _chk(kept.checkpoints + max(kept.segment, kept.largest))


def score_one(records, rules: np.ndarray, batch_size: int = 1, wsize: int = 4, asize: int = 4,
              fused_attention: bool = False, memory: str = "nasflops",
              last_call_only: bool = False, train: bool = False,
              causal_half: bool = False) -> dict:
    """Score one architecture; raise :class:`RefError` (layer, status name) if invalid.

    ``memory`` is ``"nasflops"`` or ``"torchstat"`` (the byte semantics);
    ``last_call_only`` makes records flagged ``called_again`` count zero ops;
    ``train`` counts forward + backward (x 3) and the training memory;
    ``causal_half`` counts causal attention over the keys at or before each query.
    """
    n_ops = len(Op)
    n_acts = rules.shape[1] - n_ops
    n_calls = rules.shape[0]
    table = rules.tolist()     # Python ints: no silent int64 wrap here
    layers = [{k: int(r[k]) for k in r.dtype.names} for r in records]
    if not layers:
        raise RefError(-1, "empty")
    shapes, owner, alloc, scratch, last_use, allocated = [], [], [], [], {}, 0
    tot = dict(ops=0, macs=0, params=0, act_bytes=0, read_bytes=0, write_bytes=0,
               active_params=0, kv_cache_bytes=0, grad_bytes=0, optimizer_bytes=0,
               saved_act_bytes=0, recompute_act_bytes=0)
    kept = _Kept()
    for i, L in enumerate(layers):
        op = L["op"]
        ins = check_record(L, i, n_ops, n_calls)
        try:
            f = infer_layer(L, i, ins, shapes, n_acts, causal_half)
            f["e"] = _prod(f["g"], f["c"], f["h"], f["w"])
            out_bytes = _prod(f["e"], batch_size, asize)
            if not fused_attention:     # attention scores are materialised
                f["scratch"] = _chk(f["scratch"] + f["scores_mem"])
            scratch_bytes = _prod(f["scratch"], batch_size, asize)
            row = table[L["call"]][n_ops + L["act"] if op == Op.ACT else op]
            macs = _prod(f["macs"], batch_size) if f["macs"] else 0
            ops = convention_ops(row, L, f, batch_size, last_call_only)
            params = 0 if L["flags"] & Flag.CALLED_AGAIN else f["params"]
            active = 0 if L["flags"] & Flag.CALLED_AGAIN else f["params"] - f["inactive"]
            kv = out_bytes if f["cache"] else 0
            wbytes = _prod(weights_read(L, f, batch_size), wsize)
            act, wr, rd = layer_bytes(L, f, ins, shapes, batch_size, wbytes, asize, scratch_bytes)
            allocated = _chk(allocated + act)     # what the buffers take, for the peak
            if memory == "torchstat":
                act_tot, wr, rd = torchstat_bytes(L, f, ins, shapes, batch_size, wsize, asize, wbytes)
            else:
                act_tot = act
            if train:   # backward = 2 x forward; what the backward keeps
                ops, macs, rd, wr = (_prod(v, 3) for v in (ops, macs, rd, wr))
                own = 0 if f["view"] else act if f["extend"] else out_bytes
                kept.keep(_chk(own + scratch_bytes), bool(L["flags"] & Flag.CHECKPOINT))
            for k, v in (("ops", ops), ("macs", macs), ("params", params),
                         ("act_bytes", act_tot), ("read_bytes", rd), ("write_bytes", wr),
                         ("active_params", active), ("kv_cache_bytes", kv)):
                tot[k] = _chk(tot[k] + v)
        except _Overflow:
            raise RefError(i, "overflow") from None
        shapes.append((f["g"], f["c"], f["h"], f["w"], f["layout"]))
        scratch.append(scratch_bytes)
        track_lifetime(layers, i, f, ins, act, out_bytes, owner, alloc, last_use)
    try:
        _chk(allocated + alloc[0])    # bounds every partial sum of the sweep
        tot["weight_bytes"] = _prod(tot["params"], wsize) if tot["params"] else 0
        if train:
            train_state(tot, wsize, kept)
    except _Overflow:
        raise RefError(len(layers) - 1, "overflow") from None
    tot["peak_act_bytes"] = peak_sweep(len(layers), owner, alloc, scratch, last_use)
    return tot
