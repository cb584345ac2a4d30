"""The counting definitions, written as a plain Python loop over layers.

This is the straightforward implementation the compiled core is measured
against (``benchmarks/bench_core.py``) and checked against (the property
tests): Python integers, one dict per layer, no cleverness.  It is not used
for scoring.
"""
from __future__ import annotations

import numpy as np

from .spec import INPUT_FIELDS, Flag, Op

INT64_MAX = (1 << 63) - 1
_VIEWS = {Op.FLATTEN, Op.IDENTITY, Op.DROPOUT, Op.SLICE}


class RefError(Exception):
    def __init__(self, layer: int, status: str):
        super().__init__(f"layer {layer}: {status}")
        self.layer, self.status = layer, status


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


def score_one(records, rules: np.ndarray, batch: int = 1, wsize: int = 4, asize: int = 4) -> dict:
    """Score one architecture; raise :class:`RefError` (layer, status name) if invalid."""
    n_ops = len(Op)
    rules = rules.tolist()
    layers = [{k: int(r[k]) for k in r.dtype.names} for r in records]
    if not layers:
        raise RefError(-1, "empty")
    shapes, owner, last_use, alloc = [], [], {}, []
    tot = dict(ops=0, macs=0, params=0, act_bytes=0, read_bytes=0, write_bytes=0)
    for i, L in enumerate(layers):
        op = L["op"]
        if not 0 <= op < n_ops:
            raise RefError(i, "bad_op")
        if (op == Op.INPUT) != (i == 0):
            raise RefError(i, "no_input")
        ins = []
        for f in INPUT_FIELDS:
            if L[f] < 0:
                break
            ins.append(L[f])
        if any(L[f] != -1 for f in INPUT_FIELDS[len(ins):]) or any(j >= i for j in ins):
            raise RefError(i, "bad_input_ref")
        lo, hi = {Op.INPUT: (0, 0), Op.ADD: (2, 4), Op.MUL: (2, 2), Op.CONCAT: (1, 4)}.get(op, (1, 1))
        if not lo <= len(ins) <= hi:
            raise RefError(i, "bad_input_ref")
        c, h, w = shapes[ins[0]] if ins else (0, 0, 0)
        cin, hin, win = c, h, w
        macs = params = window = extra = 0
        bias = affine = view = extend = False
        if op == Op.INPUT:
            if min(L["out_channels"], L["size_h"], L["size_w"]) < 1:
                raise RefError(i, "bad_value")
            c, h, w = L["out_channels"], L["size_h"], L["size_w"]
        elif op in (Op.CONV2D, Op.MAXPOOL, Op.AVGPOOL):
            kh, kw, sh, sw = L["kernel_h"], L["kernel_w"], L["stride_h"], L["stride_w"]
            ph, pw, dh, dw = L["pad_h"], L["pad_w"], L["dilation_h"], L["dilation_w"]
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
                c = cout
                h, w = _out_len(hin, kh, sh, ph, dh, False), _out_len(win, kw, sw, pw, dw, False)
                params = c * (cin // g) * kh * kw
                if L["flags"] & Flag.BIAS:
                    params += c
                    bias = True
                macs = h * w * c * (cin // g) * kh * kw
            else:
                if op == Op.MAXPOOL:
                    if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
                        raise RefError(i, "bad_padding")
                elif 2 * ph > kh or 2 * pw > kw:
                    raise RefError(i, "bad_padding")
                ceil = bool(L["flags"] & Flag.CEIL_MODE)
                h, w = _out_len(hin, kh, sh, ph, dh, ceil), _out_len(win, kw, sw, pw, dw, ceil)
                window = kh * kw * c * h * w
        elif op == Op.ADAPTIVE_AVGPOOL:
            if L["size_h"] < 1 or L["size_w"] < 1:
                raise RefError(i, "bad_value")
            h, w = L["size_h"], L["size_w"]
            window = c * _adaptive(hin, h) * _adaptive(win, w)
        elif op == Op.LINEAR:
            if L["out_channels"] < 1:
                raise RefError(i, "bad_value")
            if (hin, win) != (1, 1):
                raise RefError(i, "bad_shape")
            c = L["out_channels"]
            params = macs = c * cin
            if L["flags"] & Flag.BIAS:
                params += c
                bias = True
        elif op in (Op.BATCHNORM, Op.LAYERNORM):
            if L["flags"] & Flag.AFFINE:
                params, affine = 2 * c, True
        elif op == Op.SCALE:
            params = c
            if L["flags"] & Flag.BIAS:
                params, bias = 2 * c, True
        elif op == Op.ACT:
            if not 0 <= L["act"] < len(rules) - n_ops:
                raise RefError(i, "bad_op")
            view = bool(L["flags"] & Flag.INPLACE)
        elif op == Op.ADD:
            view = bool(L["flags"] & Flag.INPLACE)
            for j in ins[1:]:
                if shapes[j] != (cin, hin, win):
                    raise RefError(i, "shape_mismatch")
                extra += _numel(shapes[j])
        elif op == Op.MUL:
            g = shapes[ins[1]]
            if any(a != b and a != 1 for a, b in zip(g, (cin, hin, win))):
                raise RefError(i, "shape_mismatch")
            extra = _numel(g)
        elif op == Op.CONCAT:
            extend = bool(L["flags"] & Flag.INPLACE)
            for j in ins[1:]:
                if shapes[j][1:] != (hin, win):
                    raise RefError(i, "shape_mismatch")
                c += shapes[j][0]
                extra += _numel(shapes[j])
        elif op == Op.FLATTEN:
            c, h, w, view = cin * hin * win, 1, 1, True
        elif op in (Op.IDENTITY, Op.DROPOUT):
            view = True
        elif op == Op.SLICE:
            if L["start"] < 0 or L["out_channels"] < 1 or L["start"] + L["out_channels"] > cin:
                raise RefError(i, "bad_value")
            c, view = L["out_channels"], True
        elif op == Op.CHANNEL_SHUFFLE:
            if L["groups"] < 1:
                raise RefError(i, "bad_value")
            if cin % L["groups"]:
                raise RefError(i, "bad_groups")
        shapes.append((c, h, w))
        out = c * h * w
        terms = [macs * batch, out * batch, _numel((cin, hin, win)) * batch if ins else 0,
                 out * batch if bias else 0, out * batch if affine else 0, window * batch,
                 extra * batch, h * w * batch, c * batch]
        row = rules[n_ops + L["act"]] if op == Op.ACT else rules[op]
        ops = sum(a * t for a, t in zip(row, terms))
        if op == Op.INPUT or (view and op not in (Op.ACT, Op.ADD)):
            act = rd = wr = 0
        elif extend:  # grows input 0's buffer: writes and reads only the new part
            act = wr = (out - _numel(shapes[ins[0]])) * batch * asize
            rd = sum(_numel(shapes[j]) for j in ins[1:]) * batch * asize
        else:
            act = wr = out * batch * asize
            rd = params * wsize + sum(_numel(shapes[j]) for j in ins) * batch * asize
        for k, v in (("ops", ops), ("macs", macs * batch), ("params", params),
                     ("act_bytes", act), ("read_bytes", rd), ("write_bytes", wr)):
            tot[k] += v
        owner.append(owner[ins[0]] if view or extend else i)
        alloc.append(act if extend else 0 if view else out * batch * asize)
        for j in ins:
            last_use[owner[j]] = i
        j = ins[0] if extend else None
        while j is not None:  # one cat: every input of the chain lives until here
            head = layers[j]
            for f in INPUT_FIELDS:
                if head[f] >= 0:
                    last_use[owner[head[f]]] = i
            extends = head["op"] == Op.CONCAT and head["flags"] & Flag.INPLACE
            j = head["input0"] if extends else None
        last_use[owner[i]] = max(last_use.get(owner[i], i), i)
    freed = [0] * len(layers)
    for i in range(len(layers)):
        freed[last_use[owner[i]]] += alloc[i]
    live = peak = 0
    for i in range(len(layers)):
        live += alloc[i]
        peak = max(peak, live)
        live -= freed[i]
    tot["weight_bytes"] = tot["params"] * wsize
    tot["peak_act_bytes"] = peak
    if any(abs(v) > INT64_MAX for v in tot.values()):
        raise RefError(len(layers) - 1, "overflow")
    return tot


def _numel(shape):
    c, h, w = shape
    return c * h * w
