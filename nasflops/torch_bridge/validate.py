"""``validate``: every number the core prints, checked against torch.

Sampled architectures are built with :func:`to_torch`, counted by the
hook-based reference (:func:`count_with_hooks`, which never calls the core)
and by the core (:func:`nasflops.score`); integer counts must agree exactly.

``random_specs`` draws random valid architectures that use every op the core
knows -- the ``"random"`` space of ``validate`` and the tests.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..scoring import METRICS, SpecError, score
from ..spec import Act, Call, Net, Op, SpecBatch
from .build import spellable, to_torch
from .hooks import HOOK_CONVENTIONS, count_with_hooks

__all__ = ["validate", "ValidationReport", "random_specs", "op_specs", "transformer_op_specs",
           "random_transformer_specs"]


# ------------------------------------------------------------ random specs
_ACTS = tuple(a.name.lower() for a in Act)


def _random_net(rng: np.random.Generator) -> Net:
    """One random valid architecture (adaptive pools only to divisible sizes,
    where thop's floating-point window size is exact)."""
    c = int(rng.choice([3, 4, 8, 16]))
    h = int(rng.integers(6, 25))
    w = int(h if rng.random() < 0.7 else rng.integers(6, 25))
    net = Net(c, h, w)
    x = net.input
    shape = [c, h, w]

    def act(x):
        kind = str(rng.choice(_ACTS))
        inplace = bool(rng.random() < 0.5)
        return net.act(x, kind, inplace=inplace)

    def conv(x, cout, k=None, stride=1, groups=1, dilation=1):
        k = int(rng.choice([1, 3, 5])) if k is None else k
        pad = dilation * (k // 2)
        y = net.conv(x, cout, k, stride=stride, padding=pad, dilation=dilation, groups=groups,
                     bias=bool(rng.random() < 0.4))
        shape[0] = cout
        shape[1] = (shape[1] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        shape[2] = (shape[2] + 2 * pad - dilation * (k - 1) - 1) // stride + 1
        return y

    for _ in range(int(rng.integers(2, 7))):
        kind = rng.choice(["conv", "res", "se", "cat", "pool", "norm", "misc", "shape"])
        C = shape[0]
        small = min(shape[1], shape[2]) < 4
        if kind == "conv":
            cout = int(rng.choice([4, 8, 12, 16]))
            g = 1
            r = rng.random()
            if r < 0.3:
                cout, g = C, C                      # depthwise
            elif r < 0.5 and C % 2 == 0 and cout % 2 == 0:
                g = 2
            stride = 2 if (not small and rng.random() < 0.3) else 1
            dil = 2 if (min(shape[1], shape[2]) >= 5 and rng.random() < 0.15) else 1
            x = conv(x, cout, stride=stride, groups=g, dilation=dil)
            x = net.bn(x, affine=bool(rng.random() < 0.8))
            x = act(x)
        elif kind == "res":
            y = conv(x, C, k=3)
            y = net.bn(y)
            y = act(y)
            y = conv(y, C, k=3)
            r = rng.random()
            if r < 0.4:
                x = net.add(x, y)
            elif r < 0.7:
                x = net.add(y, x, inplace=True)      # torch's `out += identity`
            else:
                x = net.add(x, y, net.identity(x))
        elif kind == "se":
            s = net.global_avgpool(x)
            s = net.conv(s, max(1, C // 2), 1, bias=True)
            s = net.act(s, "relu", inplace=True)
            s = net.conv(s, C, 1, bias=True)
            s = net.act(s, str(rng.choice(["hardsigmoid", "sigmoid"])))
            x = net.mul(x, s)
        elif kind == "cat":
            a = conv(x, int(rng.choice([4, 8])), k=1)
            ca = shape[0]
            b = net.maxpool(x, 3, 1, 1)
            # 2, 3 or 6 tensors (past four, a chain of records: one torch.cat)
            k = int(rng.choice([2, 3, 6]))
            x = net.concat(a, b, *([x] * (k - 2)))
            shape[0] = ca + C * (k - 1)
            if shape[0] % 2 == 0 and rng.random() < 0.5:
                x = net.channel_shuffle(x, 2)
            if rng.random() < 0.4:
                half = shape[0] // 2
                x = net.slice(x, int(rng.integers(0, shape[0] - half + 1)), half)
                shape[0] = half
        elif kind == "pool" and not small:
            k = int(rng.choice([2, 3]))
            s = int(rng.choice([1, 2]))
            p = int(rng.integers(0, k // 2 + 1))
            ceil = bool(rng.random() < 0.3)
            if rng.random() < 0.5:
                x = net.maxpool(x, k, s, p, ceil_mode=ceil)
            else:
                x = net.avgpool(x, k, s, p, ceil_mode=ceil,
                                count_include_pad=bool(rng.random() < 0.5))
            for d in (1, 2):
                span = shape[d] + 2 * p - k
                o = (-(-span // s) if ceil else span // s) + 1
                if ceil and (o - 1) * s >= shape[d] + p:
                    o -= 1
                shape[d] = o
        elif kind == "shape":
            x = _random_shape_op(net, x, shape, rng)
        elif kind == "norm":
            x = net.layernorm(x, affine=bool(rng.random() < 0.7))
            if rng.random() < 0.5:
                x = net.scale(x, bias=bool(rng.random() < 0.5))
        else:
            r = rng.random()
            if r < 0.3:
                x = net.dropout(x)
            elif r < 0.6:
                x = net.add(x, net.zero(x))
            else:
                x = net.softmax(x) if rng.random() < 0.5 else net.identity(x)
    # head
    if rng.random() < 0.3 and shape[1] % 2 == 0 and shape[2] % 2 == 0:
        x = net.adaptive_avgpool(x, (shape[1] // 2, shape[2] // 2))
        x = net.flatten(x)
    else:
        x = net.global_avgpool(x)
        if rng.random() < 0.7:
            x = net.flatten(x)
    x = net.linear(x, int(rng.choice([5, 10])), bias=bool(rng.random() < 0.7))
    if rng.random() < 0.3:
        x = net.bn(x)
    if rng.random() < 0.3:
        x = net.softmax(x)
    return net


def _random_shape_op(net: Net, x: int, shape: list, rng: np.random.Generator) -> int:
    """One of the ops that slice, pad, reduce or recombine (shape updated)."""
    C, H, W = shape
    r = int(rng.integers(0, 6))
    if r == 0 and H > 2 and W > 2:                  # x[:, :, 1:, ::2] and back
        y = net.crop(x, (1, 0), (H - 1, (W + 1) // 2), (1, 2))
        return net.pad(y, (C, H, W), (0, 1, W - (W + 1) // 2))
    if r == 1:                                      # channels-first layer norm, written out
        m = net.mean(x, channels=True)
        d = net.sub(x, m)
        v = net.act(net.mean(net.act(d, "pow_const"), channels=True), "add_const")
        return net.div(d, net.act(v, "sqrt"))
    if r == 2 and C % 2 == 0:                       # even and odd channels, joined
        return net.concat(net.slice(x, 0, C // 2, 2), net.slice(x, 1, C // 2, 2))
    if r == 3:                                      # stack along height or width
        axis = int(rng.integers(1, 3))
        shape[axis] *= 2
        return net.concat(x, net.copy(x), axis=axis)
    if r == 4:
        return net.mul(net.conv(x, C, 1), net.act(net.mean(x, height=True, width=True),
                                                   "hardsigmoid"), inplace=True)
    return net.log_softmax(x) if rng.random() < 0.5 else net.act(x, "clamp", inplace=True)


def _random_calls(recs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each op called as a module, a function, a method or an operator, at
    random among the spellings torch has for it."""
    for i in range(1, len(recs)):
        if int(recs[i]["op"]) == Op.LAYERNORM and recs[i]["call"] == Call.MODULE:
            # F.layer_norm between permutes leaves a channels-last view, which
            # a later flatten of it copies (records of a flatten are views)
            continue
        old = int(recs[i]["call"])
        recs[i]["call"] = int(rng.integers(0, len(Call)))
        if not spellable(recs[i]):
            recs[i]["call"] = old
    return recs


def random_specs(n: int, seed: int = 0) -> SpecBatch:
    """``n`` random valid architectures covering every op (seeded), each op
    called as a module, a function, a method or an operator at random.

    Small (inputs up to 24 x 24) so that building and running them in torch is
    quick.

    Examples
    --------
    >>> from nasflops.torch_bridge import random_specs
    >>> len(random_specs(3, seed=1))
    3
    """
    rng = np.random.default_rng(seed)
    return SpecBatch.from_list([_random_calls(_random_net(rng).records, rng)
                                for _ in range(int(n))])


def op_specs(channels: int = 8, size: int = 10) -> dict[str, np.ndarray]:
    """One small architecture per op and flag the core knows: ``{name: records}``.

    Each is the network input (``channels x size x size``) plus the op under
    test (and what it needs: a flatten before a linear, a gate for a mul).
    Used by the tests to check every op against torch and the reference tools.

    Examples
    --------
    >>> from nasflops.torch_bridge import op_specs
    >>> specs = op_specs()
    >>> "conv_depthwise" in specs and "concat6" in specs
    True
    """
    C = channels
    cases = {
        "conv": lambda n, x: n.conv(x, 16, 3, padding=1),
        "conv_bias": lambda n, x: n.conv(x, 16, 3, padding=1, bias=True),
        "conv_stride2": lambda n, x: n.conv(x, 12, 3, stride=2, padding=1),
        "conv_groups2": lambda n, x: n.conv(x, 4, 1, groups=2, bias=True),
        "conv_depthwise": lambda n, x: n.conv(x, C, 5, padding=2, groups=C),
        "conv_dilated": lambda n, x: n.conv(x, 8, 3, padding=2, dilation=2),
        "conv_asym": lambda n, x: n.conv(x, 8, (3, 1), stride=(2, 1), padding=(1, 0)),
        "linear": lambda n, x: n.linear(n.flatten(x), 10),
        "linear_nobias": lambda n, x: n.linear(n.flatten(x), 10, bias=False),
        "linear_after_pool": lambda n, x: n.linear(n.global_avgpool(x), 7),
        "bn": lambda n, x: n.bn(x),
        "bn_noaffine": lambda n, x: n.bn(x, affine=False),
        "bn_1d": lambda n, x: n.bn(n.linear(n.flatten(x), 6)),
        "layernorm": lambda n, x: n.layernorm(x),
        "layernorm_noaffine": lambda n, x: n.layernorm(x, affine=False),
        "layernorm_1d": lambda n, x: n.layernorm(n.linear(n.flatten(x), 6)),
        "scale": lambda n, x: n.scale(x),
        "scale_bias": lambda n, x: n.scale(x, bias=True),
        "maxpool": lambda n, x: n.maxpool(x, 3, 2, 1),
        "maxpool_ceil": lambda n, x: n.maxpool(x, 3, 2, 0, ceil_mode=True),
        "maxpool_dilated": lambda n, x: n.maxpool(x, 3, 1, 1, dilation=2),
        "avgpool": lambda n, x: n.avgpool(x, 3, 2, 1),
        "avgpool_exclude_pad": lambda n, x: n.avgpool(x, 3, 2, 1, count_include_pad=False),
        "avgpool_ceil": lambda n, x: n.avgpool(x, 2, 3, 0, ceil_mode=True),
        "global_pool": lambda n, x: n.global_avgpool(x),
        "adaptive_pool": lambda n, x: n.adaptive_avgpool(x, (5, 2)),
        "adaptive_pool_uneven": lambda n, x: n.adaptive_avgpool(x, (3, 4)),
        "add": lambda n, x: n.add(x, n.conv(x, C, 1)),
        "add3": lambda n, x: n.add(x, n.conv(x, C, 1), n.identity(x)),
        "add_inplace": lambda n, x: n.add(n.conv(x, C, 1), x, inplace=True),
        "mul_gate": lambda n, x: n.mul(x, n.act(n.conv(n.global_avgpool(x), C, 1), "sigmoid")),
        "mul": lambda n, x: n.mul(x, n.conv(x, C, 3, padding=1)),
        "concat": lambda n, x: n.concat(x, n.conv(x, 4, 1)),
        "concat6": lambda n, x: n.concat(*([x] * 5 + [n.conv(x, 4, 1)])),
        "flatten": lambda n, x: n.flatten(x),
        "identity": lambda n, x: n.identity(x),
        "zero": lambda n, x: n.zero(x),
        "channel_shuffle": lambda n, x: n.channel_shuffle(x, 2),
        "dropout": lambda n, x: n.dropout(x),
        "softmax": lambda n, x: n.softmax(x),
        "softmax_1d": lambda n, x: n.softmax(n.linear(n.flatten(x), 10)),
        "log_softmax": lambda n, x: n.log_softmax(x),
        "log_softmax_1d": lambda n, x: n.log_softmax(n.linear(n.flatten(x), 10)),
        "slice": lambda n, x: n.slice(x, 2, 4),
        "slice_step": lambda n, x: n.slice(x, 1, 3, step=3),
        "pad": lambda n, x: n.pad(x, (C + 2, size + 1, size + 3), (1, 1, 2)),
        "pad_spatial": lambda n, x: n.pad(x, (C, size + 2, size + 2), (0, 1, 1)),
        "crop": lambda n, x: n.crop(x, (1, 0), (4, 5), (2, 2)),
        "sub": lambda n, x: n.sub(x, n.mean(x, channels=True)),
        "sub_inplace": lambda n, x: n.sub(n.conv(x, C, 1), x, inplace=True),
        "div": lambda n, x: n.div(x, n.act(n.global_avgpool(x), "sigmoid")),
        "mul_inplace": lambda n, x: n.mul(n.conv(x, C, 1), n.global_avgpool(x), inplace=True),
        "mean_channels": lambda n, x: n.mean(x, channels=True),
        "mean_spatial": lambda n, x: n.mean(x, height=True, width=True),
        "mean_height": lambda n, x: n.mean(x, height=True),
        "copy": lambda n, x: n.copy(x),
        "concat_height": lambda n, x: n.concat(x, n.crop(x, 0, (4, size)), axis=1),
        "concat_width6": lambda n, x: n.concat(*([x] * 6), axis=2),
    }
    for a in _ACTS:
        cases[f"act_{a}"] = (lambda kind: lambda n, x: n.act(x, kind))(a)
        cases[f"act_{a}_inplace"] = (lambda kind: lambda n, x: n.act(n.conv(x, C, 1), kind,
                                                                      inplace=True))(a)
    out = {}
    for name, build in cases.items():
        net = Net(C, size, size)
        build(net, net.input)
        out[name] = net.records
    return out


# ------------------------------------------ token tensors, attention, LMs
def transformer_op_specs(channels: int = 16, tokens: int = 6) -> dict[str, np.ndarray]:
    """One small architecture per token, attention and language-model op (and
    the flags and shapes that change how it is built): ``{name: records}``.

    A sequence is ``tokens`` tokens of ``channels`` channels (an image of
    ``channels x tokens x 1`` made tokens); a grid ``channels x 5 x 3`` (odd
    sides: patch merging pads); token ids ``1 x tokens x 1``.  Only
    forward-pass records (a key/value cache of no past tokens).

    Examples
    --------
    >>> from nasflops.torch_bridge import transformer_op_specs
    >>> specs = transformer_op_specs()
    >>> "attention_gqa" in specs and "expert_linear_bias" in specs
    True
    """
    C, L, H = channels, tokens, 4
    d = C // H

    def seq(n):
        return n.tokens(n.input, flat=True)

    def heads(n, x, lk=L):
        return n.view_as(x, (H, L, d), "matrix", copy=True)

    def attn(n, x, kv=0, causal=False, rope=False, cache=False):
        kvh = kv or H
        q, k, v = n.linear(x, C), n.linear(x, kvh * d), n.linear(x, kvh * d)
        if rope:
            q, k = n.rope(q, H), n.rope(k, kvh)
        if cache:
            k, v = n.kv_cache(k, 0), n.kv_cache(v, 0)
        return n.linear(n.attention(q, k, v, H, kv, causal=causal), C)

    def window(n, x, call):
        q = heads(n, n.linear(x, C))
        k = n.view_as(n.linear(x, C), (H, d, L), "matrix", copy=True)
        with n.calling(call):
            a = n.matmul(q, k)
        a = n.softmax(n.param_add(n.param_add(a, 7 * H), 0))
        with n.calling(call):
            a = n.matmul(a, heads(n, n.linear(x, C)))
        return n.view_as(a, (1, L, 1, C), "tokens", copy=True)

    def moe(n, x, bias=False, gated=True):
        p = n.softmax(n.linear(x, 4, bias=False))
        if gated:
            gu = n.expert_linear(x, 2 * C, 4, 2, bias=bias)
            y = n.mul(n.act(n.slice(gu, 0, C), "silu"), n.slice(gu, C, C))
        else:
            y = n.act(n.expert_linear(x, C, 4, 2, bias=bias), "gelu")
        return n.moe_combine(n.expert_linear(y, C, 4, 2, bias=bias), p)

    seq_cases = {
        "tokens_flat": lambda n, x: x,
        "linear_tokens": lambda n, x: n.linear(x, 24),
        "layernorm_tokens": lambda n, x: n.layernorm(x),
        "layernorm_tokens_function": lambda n, x: _called(n, "function", n.layernorm, x),
        "softmax_tokens": lambda n, x: n.softmax(x),
        "scale_tokens": lambda n, x: n.scale(x, bias=True),
        "slice_tokens": lambda n, x: n.slice(x, 0, 1, tokens=True),
        "slice_channels": lambda n, x: n.slice(x, 4, 8),
        "concat_tokens": lambda n, x: n.concat(x, n.copy(x), axis=1),
        "concat_channels": lambda n, x: n.concat(x, n.linear(x, 8)),
        "mean_tokens": lambda n, x: n.mean(x, height=True),
        "gelu_tokens": lambda n, x: n.act(x, "gelu"),
        "prepend": lambda n, x: n.prepend(x, 2),
        "position_embedding": lambda n, x: n.param_add(x, L * C),
        "position_embedding_inplace": lambda n, x: n.param_add(n.linear(x, C), L * C,
                                                               inplace=True),
        "mha": lambda n, x: n.mha(x, C, H),
        "mha_nobias": lambda n, x: n.mha(x, C, 2, bias=False),
        "attention": lambda n, x: attn(n, x),
        "attention_gqa": lambda n, x: attn(n, x, kv=2),
        "attention_mqa_causal": lambda n, x: attn(n, x, kv=1, causal=True),
        "attention_rope_cache": lambda n, x: attn(n, x, kv=2, causal=True, rope=True, cache=True),
        "attention_cross": lambda n, x: n.attention(
            x, n.concat(x, x, axis=1), n.linear(n.concat(x, x, axis=1), 8), H, causal=True),
        "view_as_matrix": lambda n, x: heads(n, x),
        "view_as_view": lambda n, x: n.view_as(x, (2, L, 1, C // 2), "tokens"),
        "matmul_module": lambda n, x: window(n, x, "module"),
        "matmul_function": lambda n, x: window(n, x, "function"),
        "matmul_method": lambda n, x: window(n, x, "method"),
        "matmul_operator": lambda n, x: window(n, x, "operator"),
        "rmsnorm": lambda n, x: n.rmsnorm(x),
        "rmsnorm_noaffine": lambda n, x: n.rmsnorm(x, affine=False),
        "rope": lambda n, x: n.rope(x, H),
        "kv_cache": lambda n, x: n.kv_cache(x, 0),
        "expert_linear": lambda n, x: moe(n, x),
        "expert_linear_bias": lambda n, x: moe(n, x, bias=True, gated=False),
    }
    out = {}
    for name, build in seq_cases.items():
        net = Net(C, L, 1)
        build(net, seq(net))
        out[name] = net.records
    net = Net(C, 5, 3)                                 # a grid: patch merging, back to an image
    x = net.patch_merge(net.tokens(net.input))
    net.to_image(net.linear(net.layernorm(x), 2 * C, bias=False))
    out["patch_merge_to_image"] = net.records
    for tied in (False, True):                         # token ids to logits
        net = Net(1, L, 1)
        x = net.embedding(net.input, 50, C)
        net.linear(net.rmsnorm(x), 50, bias=False, tied=tied)
        out["embedding_tied_head" if tied else "embedding_head"] = net.records
    return out


def _called(net: Net, call: str, fn, *args, **kw):
    with net.calling(call):
        return fn(*args, **kw)


def _random_transformer(rng: np.random.Generator) -> Net:
    """One random valid vision transformer or decoder: a patch embedding or
    token ids, then random blocks (self-attention as ``nn.MultiheadAttention``
    or as projections, GQA/MQA heads, causal masks, rotary embeddings,
    windowed attention written as matrix products with a relative-position
    table, dense or gated MLPs, mixtures of experts, layer or RMS norms,
    layer scale, patch merging) and a head."""
    C = int(rng.choice([8, 16, 24]))
    heads = [h for h in (1, 2, 4) if C % h == 0 and (C // h) % 2 == 0]
    if rng.random() < 0.3:                              # a decoder on token ids
        L = int(rng.integers(2, 9))
        vocab = int(rng.choice([20, 50]))
        net = Net(1, L, 1)
        x = net.embedding(net.input, vocab, C)
        grid = None
    else:
        side = int(rng.choice([2, 3, 4]))
        p = int(rng.choice([2, 4]))
        net = Net(3, side * p, side * p)
        x = net.conv(net.input, C, p, stride=p, bias=True)
        flat = bool(rng.random() < 0.6)
        x = net.tokens(x, flat=flat)
        L, grid = (side * side, None) if flat else (side * side, side)
        vocab = None
        if flat and rng.random() < 0.5:
            x = net.prepend(x, 1)
            L += 1
            x = net.param_add(x, L * C)

    def norm(y):
        r = rng.random()
        return net.rmsnorm(y, affine=bool(r < 0.2)) if r < 0.4 else             net.layernorm(y, affine=bool(rng.random() < 0.8))

    for _ in range(int(rng.integers(1, 4))):
        h = int(rng.choice(heads))
        kind = str(rng.choice(["mha", "attn", "window", "mlp", "moe", "merge"]))
        if kind == "merge" and grid is not None:
            x = net.patch_merge(x)
            grid = (grid + 1) // 2
            L = grid * grid
            x = net.linear(norm(x), C, bias=False)
            continue
        y = norm(x)
        if kind == "mha" and grid is None:
            y = net.mha(y, C, h, bias=bool(rng.random() < 0.7))
        elif kind in ("attn", "mha"):
            kv = int(rng.choice([k for k in (0, 1, h) if k == 0 or h % k == 0]))
            d = C // h
            q = net.linear(y, C, bias=bool(rng.random() < 0.5))
            k = net.linear(y, (kv or h) * d)
            v = net.linear(y, (kv or h) * d)
            if rng.random() < 0.5:
                q, k = net.rope(q, h), net.rope(k, kv or h)
            if grid is None and rng.random() < 0.3:          # a cache holds a sequence
                k, v = net.kv_cache(k, 0), net.kv_cache(v, 0)
            y = net.attention(q, k, v, h, kv, causal=bool(rng.random() < 0.5))
            y = net.linear(y, C)
        elif kind == "window":
            d = C // h
            qkv = net.linear(y, 3 * C)
            q, k, v = (net.view_as(net.slice(qkv, i * C, C), (h, L, d), "matrix")
                       for i in range(3))
            q = net.act(q, "mul_const")
            a = net.matmul(q, net.view_as(k, (h, d, L), "matrix"))
            a = net.softmax(net.param_add(a, int(rng.integers(1, 4)) * h))
            y = net.view_as(net.matmul(a, v), (1, L, 1, C) if grid is None
                            else (1, grid, grid, C), "tokens", copy=True)
            y = net.linear(y, C)
        elif kind == "moe":
            e = int(rng.choice([2, 4]))
            k = int(rng.integers(1, e + 1))
            p = net.softmax(net.linear(y, e, bias=False))
            y = net.act(net.expert_linear(y, 2 * C, e, k, bias=bool(rng.random() < 0.3)), "silu")
            y = net.moe_combine(net.expert_linear(y, C, e, k), p)
        else:
            g = bool(rng.random() < 0.5)
            u = net.act(net.linear(y, 2 * C), str(rng.choice(["gelu", "silu", "relu"])))
            if g:
                u = net.mul(u, net.linear(y, 2 * C))
            y = net.dropout(net.linear(u, C))
        if rng.random() < 0.3:
            y = net.scale(y)
        x = net.add(x, y, inplace=bool(rng.random() < 0.2))
    x = norm(x)
    if vocab is not None:
        net.linear(x, vocab, bias=False, tied=bool(rng.random() < 0.5))
    elif grid is None:
        net.linear(net.slice(x, 0, 1, tokens=True), 10)
    else:
        net.linear(net.flatten(net.adaptive_avgpool(net.to_image(x), 1)), 10)
    return net


def random_transformer_specs(n: int, seed: int = 0) -> SpecBatch:
    """``n`` random valid vision transformers and decoders (seeded), each op
    called as a module, a function, a method or an operator at random (see
    :func:`random_specs`): the ``"random-transformer"`` space of ``validate``.

    Examples
    --------
    >>> from nasflops.torch_bridge import random_transformer_specs
    >>> len(random_transformer_specs(3, seed=1))
    3
    """
    rng = np.random.default_rng(seed)
    return SpecBatch.from_list([_random_calls(_random_transformer(rng).records, rng)
                                for _ in range(int(n))])


# ------------------------------------------------------------------ report
@dataclass
class ValidationReport:
    """Core vs hook-based counts on the same architectures.

    Attributes
    ----------
    source, convention : str
        What was validated and under which convention.
    n : int
        Architectures compared.
    agree : dict
        ``{metric: number of architectures where core == hooks}``.
    worst : dict or None
        The largest relative mismatch: ``arch``, ``metric``, ``core``, ``hooks``.
    mismatches : list of dict
        Every mismatch (architecture, metric, both values).
    seconds : dict
        Wall time of ``build`` (to_torch), ``hooks`` and ``core``.
    """

    source: str
    convention: str
    n: int
    batch_size: int
    agree: dict
    worst: Optional[dict]
    mismatches: list = field(default_factory=list, repr=False)
    seconds: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every metric of every architecture agrees exactly."""
        return not self.mismatches

    def __str__(self) -> str:
        lines = [f"nasflops validate: {self.source}, {self.n} architectures, "
                 f"convention={self.convention}, batch_size={self.batch_size}",
                 f"{'metric':<16}{'agree':>10}{'of':>6}",
                 "-" * 32]
        for m, k in self.agree.items():
            lines.append(f"{m:<16}{k:>10}{self.n:>6}")
        lines.append("-" * 32)
        if self.worst is None:
            lines.append("all counts agree exactly")
        else:
            w = self.worst
            lines.append(f"{len(self.mismatches)} mismatch(es); worst: architecture {w['arch']}, "
                         f"{w['metric']}: core {w['core']} vs hooks {w['hooks']}")
        t = self.seconds
        def rate(s):
            return f"{self.n / s:,.1f} arch/s" if s > 0 else "-"
        build, hooks, core = (t.get(k, 0.0) for k in ("build", "hooks", "core"))
        lines.append(f"time: to_torch {build:.3f} s, hooks {hooks:.3f} s ({rate(build + hooks)}), "
                     f"core {core * 1e6:,.0f} us ({rate(core)})")
        return "\n".join(lines)


def _batch_from(specs_or_space, samples: Optional[int], seed: int, space_params: dict):
    if isinstance(specs_or_space, str):
        if specs_or_space == "random":
            return random_specs(samples or 20, seed), "random"
        if specs_or_space == "random-transformer":
            return random_transformer_specs(samples or 20, seed), "random-transformer"
        from ..search_spaces import get_space
        space = get_space(specs_or_space, **space_params)
        return space.sample(samples or 20, seed=seed), specs_or_space
    if isinstance(specs_or_space, dict):   # {name: records}, as op_specs() returns
        specs_or_space = list(specs_or_space.values())
    if isinstance(specs_or_space, SpecBatch):
        batch = specs_or_space
    elif hasattr(specs_or_space, "sample"):
        name = getattr(specs_or_space, "name", "space")
        return specs_or_space.sample(samples or 20, seed=seed), name
    elif isinstance(specs_or_space, np.ndarray):
        batch = SpecBatch(specs_or_space, np.array([0, len(specs_or_space)]))
    else:
        batch = SpecBatch.from_list(specs_or_space)
    if samples is not None and samples < len(batch):
        batch = batch.take(np.random.default_rng(seed).choice(len(batch), samples, replace=False))
    return batch, f"{len(batch)} given specs"


def validate(specs_or_space, samples: Optional[int] = None, convention: str = "macs",
             seed: int = 0, batch_size: int = 1, device: str = "cpu",
             space_params: Optional[dict] = None,
             fused_attention: bool = False) -> ValidationReport:
    """Count sampled architectures with the core and with torch hooks; compare.

    Parameters
    ----------
    specs_or_space : str, SearchSpace, SpecBatch, list or dict of record arrays
        A space name (``nasflops.get_space``; ``"random"`` draws
        :func:`random_specs`, ``"random-transformer"``
        :func:`random_transformer_specs`), a space object, or the
        architectures.  Language-model spaces are compared on one forward
        pass (phase ``forward``: the counts of a prefill; a decode step's
        cache of past tokens is not built).
    samples : int, optional
        How many to draw from a space (default 20), or to pick from given specs.
    convention : str
        Any convention :func:`count_with_hooks` implements.
    seed : int
        Sampling seed.
    batch_size : int
        N for every count.
    device : str
        Where to build the torch models (``"meta"`` is fastest: counting
        needs shapes only).
    space_params : dict, optional
        Parameters of the space.
    fused_attention : bool
        Score and count with attention's score matrix fused away (memory).

    Returns
    -------
    ValidationReport
        ``report.ok`` is True when every metric agrees exactly;
        ``print(report)`` shows the table.

    Examples
    --------
    >>> from nasflops.torch_bridge import validate
    >>> r = validate("random", samples=3, convention="flops", seed=0)
    >>> r.ok, r.agree["ops"]
    (True, 3)
    """
    if convention not in HOOK_CONVENTIONS:
        raise ValueError(f"validate compares against count_with_hooks, which implements "
                         f"{', '.join(HOOK_CONVENTIONS)}; got {convention!r}")
    batch, source = _batch_from(specs_or_space, samples, seed, space_params or {})
    n = len(batch)
    score(batch[:1], convention=convention)  # first call pays imports, not the core
    t_core = float("inf")
    for _ in range(3):  # best of 3: the core's time is small and noisy
        t0 = time.perf_counter()
        core = score(batch, convention=convention, batch_size=batch_size, errors="raise",
                     fused_attention=fused_attention)
        t_core = min(t_core, time.perf_counter() - t0)

    _check_memory(core, device, batch_size)
    agree = dict.fromkeys(METRICS, 0)
    mismatches = []
    t_build = t_hooks = 0.0
    threads = torch.get_num_threads()
    # one architecture at a time is small work: one torch thread is faster
    # and does not fight other processes for the cores
    torch.set_num_threads(1)
    try:
        _compare(batch, convention, batch_size, device, core, agree, mismatches, times := {},
                 fused_attention)
    finally:
        torch.set_num_threads(threads)
    t_build, t_hooks = times["build"], times["hooks"]
    worst = max(mismatches, key=lambda d: d["rel"]) if mismatches else None
    return ValidationReport(source, convention, n, batch_size, agree, worst, mismatches,
                            {"build": t_build, "hooks": t_hooks, "core": t_core})


#: tensors a validation may allocate on a real device (fp32 weights plus every
#: activation of one candidate, which the core knows before torch runs)
VALIDATE_MEMORY = 4 << 30


def _check_memory(core, device, batch_size: int) -> None:
    """Refuse, before any allocation, a candidate too large to run for real."""
    if str(device) == "meta" or len(core) == 0:
        return
    need = core["act_bytes"] + core["weight_bytes"]
    i = int(np.argmax(need))
    if int(need[i]) > VALIDATE_MEMORY:
        raise ValueError(f"validating candidate {i} on {device} would allocate ~{int(need[i]) / 2**30:,.1f} "
                         f"GiB of tensors (batch {batch_size}); use device='meta' (shapes only) or a "
                         "smaller batch or resolution")


def _compare(batch, convention, batch_size, device, core, agree, mismatches, times,
             fused_attention=False):
    t_build = t_hooks = 0.0
    for i in range(len(batch)):
        recs = batch[i]
        t0 = time.perf_counter()
        try:
            model = to_torch(recs, device=device, init=False)
        except SpecError as exc:          # a record to_torch does not build: name the candidate
            raise SpecError(i, exc.layer, exc.status, exc.reason) from exc
        t1 = time.perf_counter()
        c, hh, ww = (int(recs[0][f]) for f in ("out_channels", "size_h", "size_w"))
        hooks = count_with_hooks(model, (c, hh, ww), convention, batch_size=batch_size,
                                 fused_attention=fused_attention).as_dict()
        t2 = time.perf_counter()
        t_build += t1 - t0
        t_hooks += t2 - t1
        for m in METRICS:
            a, b = int(core[m][i]), int(hooks[m])
            if a == b:
                agree[m] += 1
            else:
                mismatches.append({"arch": i, "metric": m, "core": a, "hooks": b,
                                   "rel": abs(a - b) / max(1, abs(b))})
    times["build"], times["hooks"] = t_build, t_hooks
