"""Vision transformers of torchvision, written as layer specs (part of the zoo).

Each builder mirrors the module torchvision 0.28 builds, op for op in the
order its eval-mode ``forward`` runs them, with the call kind of every op
(a module, a function, a tensor method, an operator), so that the thop,
ptflops and fvcore conventions see what those tools see on the real model:

* ViT (``vision_transformer.py``): ``conv_proj`` (module), ``reshape`` +
  ``permute`` to a sequence (methods, a view), ``torch.cat`` with the class
  token (a ``torch.*`` function, which the tools see as a method:
  ``prepend``), ``+ pos_embedding`` (operator:
  ``param_add``), then per encoder block ``ln_1``, ``nn.MultiheadAttention``
  (one ``mha`` record: in-projection, attention, out-projection, as the
  tools see the module), dropout, ``x + input`` (operator), ``ln_2``, the MLP
  (Linear, GELU, Dropout, Linear, Dropout modules), ``x + y``; the final
  ``ln``, ``x[:, 0]`` (a token slice) and the head.  DeiT-Tiny/Small/Base
  are torchvision's ``VisionTransformer`` at the DeiT paper's sizes (patch 16,
  12 layers, dims 192/384/768, heads 3/6/12, MLP 4x; params equal timm's
  ``deit_*_patch16_224``).
* Swin (``swin_transformer.py``, v1: patch 4, window 7): the patch
  embedding and a ``Permute`` to tokens on the grid (channels last), then
  per block ``norm1``, the shifted-window attention, which calls the
  functional ``shifted_window_attention`` with the weights of ``qkv`` and
  ``proj`` (so ``F.linear``: modules never called), a ``Tensor.matmul``
  for Q.K^T and A.V each, ``q * scale`` (operator), the relative-position
  bias table gathered and added (``param_add`` with its ``169 * heads``
  parameters), ``F.softmax``, and the copies torch makes (``F.pad`` by 0,
  ``torch.roll`` of shifted blocks, the reshapes into and out of windows);
  ``stochastic_depth`` (one module, called twice), the MLP and both
  residuals; ``PatchMerging`` as one ``patch_merge`` (pad, four strided
  slices, ``torch.cat``), its ``norm`` and a bias-free ``reduction``; the
  final norm, ``Permute``, pool, flatten and head.  Resolutions are
  multiples of 224 (whole windows at every stage; torchvision pads others).
* MaxViT-T (``maxvit.py``): the stem (3x3/2 conv, BN, GELU; 3x3 conv with
  bias), then per ``MaxVitLayer`` an ``MBConv`` (the projection evaluated
  first: ``AvgPool2d(3, 2, 1)`` and a 1x1 conv where the layer strides,
  ``nn.Identity`` otherwise; a pre-norm BatchNorm, 1x1 and depthwise 3x3
  convs with BN and GELU, squeeze-excitation with SiLU and Sigmoid and the
  ``scale * input`` product, a 1x1 conv; ``res + x``), window attention and
  grid attention: ``WindowPartition`` (a ``view_as``, a copy unless one
  partition covers the map), ``SwapAxes`` for the grid (a view), the
  ``LayerNorm``, ``RelativePositionalMultiHeadAttention`` (``to_qkv``,
  ``torch.chunk``, heads by reshape and permute, ``k * scale``, two
  ``torch.einsum`` products, the gathered relative-position bias added with
  its ``169 * heads`` parameters, ``F.softmax``, ``merge``), the MLP and two
  residuals around one ``StochasticDepth``, then ``WindowDepartition``; the
  classifier: pool, flatten, LayerNorm, Linear, Tanh, bias-free Linear.
  ``torch.einsum`` is one aten op that neither thop nor ptflops patches (as
  for the ``@`` operator): an ``operator`` matmul.  fvcore counts it, but
  rounds it: its einsum handle parses numpy's ``einsum_path`` estimate,
  printed to 4 significant digits (``%.3e``), so on ``maxvit_t`` fvcore
  prints 1,072 more than the ``fvcore`` row (every other op equal;
  tests/test_transformers.py derives the difference from the records).
  Resolutions whose four stage grids are multiples of 7 (224, 448, ...), as
  torchvision requires.

Published figures: torchvision's "GFLOPS" (MACs) and parameter counts
(:data:`PUBLISHED`); they count the attention's two matrix products, which
nasflops' ``macs`` does too.

Examples
--------
>>> import nasflops
>>> r = nasflops.score(vit_b_16())
>>> int(r["macs"][0]), int(r["params"][0])
(17563828224, 86567656)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from nasflops.spec import Net

__all__ = ["MODELS", "NETS", "PUBLISHED", "ALIASES", "autoformer", "autoformer_layer",
           "autoformer_stem", "autoformer_head", "vit_stem", "vit_layer", "vit_head",
           "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32",
           "deit_tiny", "deit_small", "deit_base", "swin_t", "swin_s", "swin_b", "maxvit_t"]


def _check_resolution(resolution: int, patch: int) -> int:
    resolution = int(resolution)
    if resolution < patch or resolution % patch:
        raise ValueError(f"resolution must be a multiple of the patch size {patch}, "
                         f"got {resolution}")
    return resolution


def _encoder_block(net: Net, x: int, dim: int, heads: int, mlp: int, p: str) -> int:
    """torchvision ``EncoderBlock``: pre-norm attention and MLP, two residuals."""
    y = net.layernorm(x, name=p + "ln_1")
    y = net.mha(y, dim, heads, name=p + "self_attention")
    y = net.dropout(y, name=p + "dropout")
    with net.calling("operator"):
        x = net.add(y, x)                                  # x + input
    y = net.layernorm(x, name=p + "ln_2")
    y = net.linear(y, mlp, name=p + "mlp.0")               # MLPBlock: Linear, GELU, Dropout,
    y = net.dropout(net.act(y, "gelu", name=p + "mlp.1"), name=p + "mlp.2")    # Linear, Dropout
    y = net.dropout(net.linear(y, dim, name=p + "mlp.3"), name=p + "mlp.4")
    with net.calling("operator"):
        return net.add(x, y)                               # x + y


def vit_stem(net: Net, dim: int, patch: int) -> int:
    """torchvision ``VisionTransformer`` up to its encoder layers: ``conv_proj``,
    the sequence, the class token, the position embedding, dropout."""
    seq = (net.get(0, "size_h") // patch) ** 2 + 1
    x = net.conv(net.input, dim, patch, stride=patch, bias=True, name="conv_proj")
    with net.calling("method"):
        x = net.tokens(x, flat=True)                                 # reshape, permute
    with net.calling("method"):
        x = net.prepend(x, 1)                                        # torch.cat([cls, x], 1)
    with net.calling("operator"):
        x = net.param_add(x, seq * dim)                              # + pos_embedding
    return net.dropout(x, name="encoder.dropout")


def vit_head(net: Net, x: int, num_classes: int) -> int:
    """torchvision ``VisionTransformer`` after its encoder layers: ``encoder.ln``,
    the class token, ``heads.head``."""
    x = net.layernorm(x, name="encoder.ln")
    with net.calling("operator"):
        x = net.slice(x, 0, 1, tokens=True)                          # x[:, 0]
    return net.linear(x, num_classes, name="heads.head")


def vit_layer(net: Net, x: int, dim: int, heads: int, mlp: int, i: int) -> int:
    """torchvision's encoder layer ``i`` (``EncoderBlock``)."""
    return _encoder_block(net, x, dim, heads, mlp, f"encoder.layers.encoder_layer_{i}.")


def _vit(patch: int, layers: int, heads: int, dim: int, mlp: int, num_classes: int,
         resolution: int) -> Net:
    """torchvision ``VisionTransformer`` (class token, learned position embedding),
    records named by module path."""
    resolution = _check_resolution(resolution, patch)
    net = Net(3, resolution, resolution)
    x = vit_stem(net, dim, patch)
    for i in range(layers):
        x = vit_layer(net, x, dim, heads, mlp, i)
    vit_head(net, x, num_classes)
    return net


def _vit_net(patch, layers, heads, dim, mlp, doc: str):
    def build(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
        return _vit(patch, layers, heads, dim, mlp, num_classes, resolution).records
    build.__doc__ = doc
    build.net = lambda num_classes, resolution: _vit(patch, layers, heads, dim, mlp,
                                                     num_classes, resolution)
    return build


vit_b_16 = _vit_net(16, 12, 12, 768, 3072, "ViT-B/16 (torchvision ``vit_b_16``).")
vit_b_32 = _vit_net(32, 12, 12, 768, 3072, "ViT-B/32 (torchvision ``vit_b_32``).")
vit_l_16 = _vit_net(16, 24, 16, 1024, 4096, "ViT-L/16 (torchvision ``vit_l_16``).")
vit_l_32 = _vit_net(32, 24, 16, 1024, 4096, "ViT-L/32 (torchvision ``vit_l_32``).")
deit_tiny = _vit_net(16, 12, 3, 192, 768,
                     "DeiT-Tiny (Touvron et al. 2021): ViT, patch 16, dim 192, 3 heads.")
deit_small = _vit_net(16, 12, 6, 384, 1536, "DeiT-Small: ViT, patch 16, dim 384, 6 heads.")
deit_base = _vit_net(16, 12, 12, 768, 3072,
                     "DeiT-Base: ViT, patch 16, dim 768, 12 heads (the network of ViT-B/16).")

# ---------------------------------------------------------------------------
# Swin Transformer (swin_transformer.py, v1)
# ---------------------------------------------------------------------------
_WINDOW = 7


def _window_attention(net: Net, x: int, dim: int, heads: int, side: int, shift: bool,
                      p: str) -> int:
    """``ShiftedWindowAttention`` at ``p`` on a ``side x side`` token grid: its
    forward calls the functional ``shifted_window_attention`` with the
    weights of ``qkv`` and ``proj`` (modules never called) and the gathered
    relative-position bias (added to the scores with its table's parameters)."""
    windows, d = (side // _WINDOW) ** 2, dim // heads
    with net.calling("function"):
        x = net.copy(x)                                            # F.pad (by 0: a copy)
    with net.calling("method"):
        if shift:
            x = net.copy(x)                                        # torch.roll
        x = net.view_as(x, (windows, _WINDOW, _WINDOW, dim), "tokens", copy=True)
    with net.calling("function"):
        qkv = net.linear(x, 3 * dim)                               # F.linear(x, qkv.weight, ...)
    with net.calling("operator"):                                  # qkv[0], qkv[1], qkv[2]
        q, k, v = (net.slice(qkv, i * dim, dim) for i in range(3))
    with net.calling("method"):                                    # reshape, permute: heads
        q, k, v = (net.view_as(t, (windows * heads, _WINDOW ** 2, d), "matrix") for t in (q, k, v))
    with net.calling("operator"):
        q = net.act(q, "mul_const")                                # q * d ** -0.5
    with net.calling("method"):
        k = net.view_as(k, (windows * heads, d, _WINDOW ** 2), "matrix")   # k.transpose(-2, -1)
        a = net.matmul(q, k)                                       # q.matmul(k^T)
    with net.calling("operator"):
        a = net.param_add(a, (2 * _WINDOW - 1) ** 2 * heads)       # + relative_position_bias
        if shift:
            a = net.param_add(a, 0)                                # + the shift mask (a constant)
    with net.calling("function"):
        a = net.softmax(a)                                         # F.softmax(attn, dim=-1)
    with net.calling("method"):
        a = net.matmul(a, v)                                       # attn.matmul(v)
        a = net.view_as(a, (windows, _WINDOW, _WINDOW, dim), "tokens", copy=True)
    with net.calling("function"):
        a = net.linear(a, dim)                                     # F.linear(x, proj.weight, ...)
    with net.calling("method"):                                    # windows back to the grid
        a = net.view_as(a, (1, side, side, dim), "tokens", copy=True)
        if shift:
            a = net.copy(a)                                        # torch.roll back
    return a


def _swin_block(net: Net, x: int, dim: int, heads: int, side: int, shift: bool, p: str) -> int:
    """``SwinTransformerBlock``: ``x + sd(attn(norm1(x)))``, ``x + sd(mlp(norm2(x)))``,
    with one ``stochastic_depth`` module called twice (identity in eval)."""
    net.declare(*(p + m for m in ("norm1", "attn.qkv", "attn.proj", "stochastic_depth", "norm2",
                                  "mlp.0", "mlp.1", "mlp.2", "mlp.3", "mlp.4")))
    y = _window_attention(net, net.layernorm(x, name=p + "norm1"), dim, heads, side, shift,
                          p + "attn")
    y = net.identity(y, name=p + "stochastic_depth")
    with net.calling("operator"):
        x = net.add(x, y)
    y = net.linear(net.layernorm(x, name=p + "norm2"), 4 * dim, name=p + "mlp.0")
    y = net.dropout(net.act(y, "gelu", name=p + "mlp.1"), name=p + "mlp.2")
    y = net.dropout(net.linear(y, dim, name=p + "mlp.3"), name=p + "mlp.4")
    y = net.identity(y, name=p + "stochastic_depth")
    with net.calling("operator"):
        return net.add(x, y)


def _swin(dim: int, depths: tuple, heads: tuple, num_classes: int, resolution: int) -> Net:
    """torchvision ``SwinTransformer`` (v1: patch 4, window 7, MLP ratio 4),
    records named by module path."""
    resolution = int(resolution)
    if resolution < 224 or resolution % 224:
        raise ValueError(f"resolution must be a multiple of 224 (every stage a whole number "
                         f"of 7 x 7 windows, without padding), got {resolution}")
    net = Net(3, resolution, resolution)
    x = net.conv(net.input, dim, 4, stride=4, bias=True, name="features.0.0")
    with net.calling("method"):
        x = net.tokens(x)                                          # Permute([0, 2, 3, 1])
    x = net.layernorm(x, name="features.0.2")
    side = resolution // 4
    for stage, (depth, h) in enumerate(zip(depths, heads)):
        if stage:
            p = f"features.{2 * stage}."                           # PatchMerging
            net.declare(p + "reduction", p + "norm")
            with net.calling("function"):
                x = net.patch_merge(x)                             # _patch_merging_pad
            x = net.linear(net.layernorm(x, name=p + "norm"), 2 * dim, bias=False,
                           name=p + "reduction")
            dim, side = 2 * dim, side // 2
        for i in range(depth):
            # odd blocks shift their windows by 3, unless one window covers the map
            shift = i % 2 == 1 and side > _WINDOW
            x = _swin_block(net, x, dim, h, side, shift, f"features.{2 * stage + 1}.{i}.")
    x = net.layernorm(x, name="norm")
    with net.calling("method"):
        x = net.to_image(x)                                        # Permute([0, 3, 1, 2])
    x = net.flatten(net.adaptive_avgpool(x, 1, name="avgpool"), name="flatten")
    net.linear(x, num_classes, name="head")
    return net


def _swin_net(dim, depths, heads, doc: str):
    def build(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
        return _swin(dim, depths, heads, num_classes, resolution).records
    build.__doc__ = doc
    build.net = lambda num_classes, resolution: _swin(dim, depths, heads, num_classes, resolution)
    return build


swin_t = _swin_net(96, (2, 2, 6, 2), (3, 6, 12, 24), "Swin-T (torchvision ``swin_t``).")
swin_s = _swin_net(96, (2, 2, 18, 2), (3, 6, 12, 24), "Swin-S (torchvision ``swin_s``).")
swin_b = _swin_net(128, (2, 2, 18, 2), (4, 8, 16, 32), "Swin-B (torchvision ``swin_b``).")

# ---------------------------------------------------------------------------
# MaxViT (maxvit.py)
# ---------------------------------------------------------------------------
_PARTITION = 7       # partition_size: 7 x 7 windows, a 7 x 7 grid
_HEAD_DIM = 32


def _maxvit_sides(resolution: int, blocks: int) -> list[int]:
    """``_make_block_input_shapes``: the side of each block's grid (the stem and
    every block halve it, as a 3x3 stride-2 convolution with padding 1 does),
    each a multiple of the partition size, as ``MaxVit.__init__`` demands."""
    resolution = int(resolution)
    if resolution < 1:
        raise ValueError(f"maxvit_t: resolution must be >= 1, got {resolution}")
    side, sides = (resolution - 1) // 2 + 1, []
    for _ in range(blocks):
        side = (side - 1) // 2 + 1
        sides.append(side)
    if any(s % _PARTITION for s in sides):
        raise ValueError(f"maxvit_t: resolution {resolution} gives block grids of sides {sides}; "
                         f"each must be a multiple of the partition size {_PARTITION} "
                         f"(torchvision refuses the others), e.g. 224 or 448")
    return sides


def _mbconv(net: Net, x: int, cin: int, cout: int, stride: int, p: str) -> int:
    """``MBConv`` at ``p``: ``res = proj(x)``, then ``layers`` (pre-norm,
    1x1 and depthwise 3x3 ``Conv2dNormActivation`` s with GELU, SE with SiLU
    and Sigmoid, 1x1 ``conv_c``), ``stochastic_depth`` (``nn.Identity`` when
    its probability is 0), ``res + x``."""
    mid, sqz, project = cout * 4, cout // 4, stride != 1 or cin != cout
    proj = ((p + "proj.0", p + "proj.1") if stride == 2 else (p + "proj.0",)) if project \
        else (p + "proj",)
    se = p + "layers.squeeze_excitation."
    net.declare(*proj, p + "stochastic_depth", p + "layers.pre_norm",
                *(f"{p}layers.conv_{c}.{i}" for c in "ab" for i in range(3)),
                *(se + m for m in ("avgpool", "fc1", "fc2", "activation", "scale_activation")),
                p + "layers.conv_c")
    res = x                                                        # res = self.proj(x)
    if stride == 2:                                                # AvgPool2d(3, 2, padding=1)
        res = net.avgpool(res, 3, stride=2, padding=1, name=p + "proj.0")
    if project:                                                    # Conv2d(cin, cout, 1, bias=True)
        res = net.conv(res, cout, 1, bias=True, name=proj[-1])
    else:
        res = net.identity(res, name=p + "proj")                   # nn.Identity()
    y = net.bn(x, name=p + "layers.pre_norm")                      # BatchNorm2d(cin)
    y = net.conv(y, mid, 1, name=p + "layers.conv_a.0")            # conv_a: 1x1, BN, GELU
    y = net.act(net.bn(y, name=p + "layers.conv_a.1"), "gelu", name=p + "layers.conv_a.2")
    y = net.conv(y, mid, 3, stride=stride, padding=1, groups=mid,  # conv_b: depthwise 3x3
                 name=p + "layers.conv_b.0")
    y = net.act(net.bn(y, name=p + "layers.conv_b.1"), "gelu", name=p + "layers.conv_b.2")
    s = net.global_avgpool(y, name=se + "avgpool")                 # SqueezeExcitation._scale
    s = net.act(net.conv(s, sqz, 1, bias=True, name=se + "fc1"), "silu", name=se + "activation")
    s = net.act(net.conv(s, mid, 1, bias=True, name=se + "fc2"), "sigmoid",
                name=se + "scale_activation")
    with net.calling("operator"):
        y = net.mul(y, s)                                          # scale * input
    y = net.conv(y, cout, 1, bias=True, name=p + "layers.conv_c")  # Conv2d(mid, cout, 1)
    # StochasticDepth, or nn.Identity where its probability is 0 (the very first
    # MBConv: probabilities rise linearly from 0): one identity record either way
    y = net.identity(y, name=p + "stochastic_depth")
    with net.calling("operator"):
        return net.add(res, y)                                     # res + x


def _relative_attention(net: Net, x: int, dim: int, groups: int, p: str) -> int:
    """``RelativePositionalMultiHeadAttention`` at ``p`` on ``groups`` partitions
    of 49 tokens (``[B, G, P, D]``): ``to_qkv``, ``torch.chunk``, heads by
    reshape and permute, ``k * scale_factor``, ``torch.einsum`` for Q.K^T, the
    gathered relative-position bias added (its ``169 * heads`` parameters),
    ``F.softmax``, ``torch.einsum`` for A.V, heads merged (a copy), ``merge``.

    ``torch.einsum`` runs as one aten op that no hook tool patches (thop and
    ptflops see nothing, as for the ``@`` operator): an ``operator`` matmul."""
    heads, tokens = dim // _HEAD_DIM, _PARTITION ** 2
    qkv = net.linear(x, 3 * dim, name=p + "to_qkv")                # nn.Linear(dim, 3 dim)
    with net.calling("method"):
        q, k, v = (net.slice(qkv, i * dim, dim) for i in range(3))  # torch.chunk(qkv, 3, -1)
        # reshape(B, G, P, H, DH).permute(0, 1, 3, 2, 4), a view each: G*H matrices
        # (k's as DH x P, the operand einsum contracts over DH)
        q = net.view_as(q, (groups * heads, tokens, _HEAD_DIM), "matrix")
        k = net.view_as(k, (groups * heads, _HEAD_DIM, tokens), "matrix")
        v = net.view_as(v, (groups * heads, tokens, _HEAD_DIM), "matrix")
    with net.calling("operator"):
        k = net.act(k, "mul_const")                                # k * self.scale_factor
        a = net.matmul(q, k)                                       # einsum("BGHID,BGHJD->BGHIJ")
        a = net.param_add(a, (2 * _PARTITION - 1) ** 2 * heads)    # dot_prod + pos_bias
    with net.calling("function"):
        a = net.softmax(a)                                         # F.softmax(..., dim=-1)
    with net.calling("operator"):
        a = net.matmul(a, v)                                       # einsum("BGHIJ,BGHJD->BGHID")
    with net.calling("method"):                                    # permute, reshape (a copy)
        a = net.view_as(a, (1, groups, tokens, dim), "tokens", copy=True)
    return net.linear(a, dim, name=p + "merge")                    # nn.Linear(dim, dim)


def _partition_attention(net: Net, x: int, dim: int, side: int, grid: bool, p: str) -> int:
    """``PartitionAttentionLayer`` at ``p`` on a ``dim x side x side`` image:
    window attention (49 tokens of one 7 x 7 window) or grid attention (49
    tokens 7 apart, ``SwapAxes`` moving the 7 x 7 axis last), each group of
    49 tokens attending within itself, then the MLP; two pre-norm residuals
    with one ``StochasticDepth`` module called twice (identity in eval).

    ``WindowPartition`` and ``WindowDepartition`` reshape, permute and
    reshape: a copy where there is more than one partition (the permuted
    tensor cannot be viewed as the new shape), a view of a single one."""
    n = side // _PARTITION                                         # n_partitions
    groups, copy = n * n, n > 1
    swap = ("partition_swap", "departition_swap")
    net.declare(*(p + m for m in ("partition_op", "departition_op") + swap),
                *(f"{p}attn_layer.{m}" for m in ("0", "1.to_qkv", "1.merge", "2")),
                *(f"{p}mlp_layer.{i}" for i in range(5)), p + "stochastic_dropout")
    # partition_op(x, p): [B, C, H, W] -> [B, (H/p)(W/p), p*p, C]; window: p = 7,
    # grid: p = n (then SwapAxes(-2, -3): [B, n*n, 49, C], torch.swapaxes, a view)
    if grid:
        x = net.view_as(x, (1, _PARTITION ** 2, groups, dim), "tokens", copy=copy,
                        name=p + "partition_op")
        x = net.view_as(x, (1, groups, _PARTITION ** 2, dim), "tokens", name=p + swap[0])
    else:
        x = net.view_as(x, (1, groups, _PARTITION ** 2, dim), "tokens", copy=copy,
                        name=p + "partition_op")
        x = net.identity(x, name=p + swap[0])                      # nn.Identity()
    y = net.layernorm(x, name=p + "attn_layer.0")                  # nn.LayerNorm(dim)
    y = _relative_attention(net, y, dim, groups, p + "attn_layer.1.")
    y = net.dropout(y, name=p + "attn_layer.2")                    # nn.Dropout
    y = net.identity(y, name=p + "stochastic_dropout")
    with net.calling("operator"):
        x = net.add(x, y)                                          # x + sd(attn_layer(x))
    y = net.linear(net.layernorm(x, name=p + "mlp_layer.0"), 4 * dim, name=p + "mlp_layer.1")
    y = net.act(y, "gelu", name=p + "mlp_layer.2")                 # LayerNorm, Linear, GELU,
    y = net.dropout(net.linear(y, dim, name=p + "mlp_layer.3"), name=p + "mlp_layer.4")
    y = net.identity(y, name=p + "stochastic_dropout")             # Linear, Dropout
    with net.calling("operator"):
        x = net.add(x, y)                                          # x + sd(mlp_layer(x))
    if grid:
        x = net.view_as(x, (1, _PARTITION ** 2, groups, dim), "tokens", name=p + swap[1])
    else:
        x = net.identity(x, name=p + swap[1])
    # departition_op: reshape, permute, reshape back to [B, C, H, W]
    return net.view_as(x, (dim, side, side), "image", copy=copy, name=p + "departition_op")


def _maxvit(stem: int, channels: tuple, depths: tuple, num_classes: int, resolution: int) -> Net:
    """torchvision ``MaxVit`` (partition 7, head dim 32, expansion 4, squeeze
    0.25, MLP ratio 4, GELU; BatchNorm in the convolutions, LayerNorm in the
    attention), records named by module path."""
    sides = _maxvit_sides(resolution, len(channels))
    net = Net(3, resolution, resolution)
    x = net.conv(net.input, stem, 3, stride=2, padding=1, name="stem.0.0")  # Conv2dNormActivation
    x = net.act(net.bn(x, name="stem.0.1"), "gelu", name="stem.0.2")       # (no bias, BN, GELU)
    x = net.conv(x, stem, 3, padding=1, bias=True, name="stem.1.0")        # conv with bias only
    cin = stem
    for b, (cout, depth, side) in enumerate(zip(channels, depths, sides)):
        for i in range(depth):                                     # MaxVitLayer: MBconv,
            p = f"blocks.{b}.layers.{i}.layers."                   # window, grid attention
            x = _mbconv(net, x, cin if i == 0 else cout, cout, 2 if i == 0 else 1,
                        p + "MBconv.")
            x = _partition_attention(net, x, cout, side, False, p + "window_attention.")
            x = _partition_attention(net, x, cout, side, True, p + "grid_attention.")
        cin = cout
    x = net.flatten(net.adaptive_avgpool(x, 1, name="classifier.0"), name="classifier.1")
    x = net.linear(net.layernorm(x, name="classifier.2"), channels[-1], name="classifier.3")
    x = net.act(x, "tanh", name="classifier.4")
    net.linear(x, num_classes, bias=False, name="classifier.5")
    return net


def _maxvit_net(stem, channels, depths, doc: str):
    def build(num_classes: int = 1000, resolution: int = 224) -> np.ndarray:
        return _maxvit(stem, channels, depths, num_classes, resolution).records
    build.__doc__ = doc
    build.net = lambda num_classes, resolution: _maxvit(stem, channels, depths, num_classes,
                                                        resolution)
    return build


maxvit_t = _maxvit_net(64, (64, 128, 256, 512), (2, 2, 5, 2),
                       "MaxViT-T (torchvision ``maxvit_t``): stem 64, blocks of 64/128/256/512 "
                       "channels and 2/2/5/2 layers.")

MODELS: dict[str, Callable[..., np.ndarray]] = {
    "vit_b_16": vit_b_16, "vit_b_32": vit_b_32, "vit_l_16": vit_l_16, "vit_l_32": vit_l_32,
    "deit_tiny": deit_tiny, "deit_small": deit_small,
    "swin_t": swin_t, "swin_s": swin_s, "swin_b": swin_b,
    "maxvit_t": maxvit_t,
}
#: the same models as named nets, ``(num_classes, resolution) -> Net``
NETS: dict[str, Callable[[int, int], Net]] = {name: f.net for name, f in MODELS.items()}
#: other names of zoo models: DeiT-Base is ViT-B/16, record for record
ALIASES: dict[str, str] = {"deit_base": "vit_b_16"}

#: torchvision's published GFLOPS (MACs, 3 decimals) and parameters; DeiT:
#: the paper's rounded parameters (5.7 M / 22 M / 86 M) are exactly these
#: counts of timm's deit_*_patch16_224, and their MACs are not published to
#: three decimals (None)
PUBLISHED: dict[str, tuple] = {
    "vit_b_16": ("17.564", 86_567_656),
    "vit_b_32": ("4.409", 88_224_232),
    "vit_l_16": ("61.555", 304_326_632),
    "vit_l_32": ("15.378", 306_535_400),
    "deit_tiny": (None, 5_717_416),
    "deit_small": (None, 22_050_664),
    "swin_t": ("4.491", 28_288_354),
    "swin_s": ("8.741", 49_606_258),
    "swin_b": ("15.431", 87_768_224),
    "maxvit_t": ("5.558", 30_919_624),
}

# ---------------------------------------------------------------------------
# AutoFormer (Chen et al., ICCV 2021): the sampled subnet of a supernet
# ---------------------------------------------------------------------------
#: AutoFormer's attention: every head 64 wide (``change_qkv``), relative
#: positions clipped to +-14 (``max_relative_position``), so each table has
#: 2 * 14 + 2 rows (row 0 is the class token's)
AUTOFORMER_HEAD_DIM = 64
AUTOFORMER_MAX_REL = 14
AUTOFORMER_REL_ROWS = 2 * AUTOFORMER_MAX_REL + 2


def _rel_pos(net: Net, src: int, heads: int, seq: int, d: int, p: str) -> int:
    """``RelativePosition2D_super(N, N)`` at ``p``: its two tables (vertical and
    horizontal distance, ``30 x d`` learned values each) gathered at the
    ``N x N`` index matrices and added: a ``d x N x N`` tensor.

    The index matrices are constants (``arange``, ``clamp``, ``pad``); the
    records take their shape from the first plane of the score stack ``src``
    (views, no cost) and look the tables up with two ``embedding`` records,
    which count each table's parameters once and the gathered copies as
    activations.  Torch builds the gathered tensor once per batch, the
    records once per sample: the memory metrics are exact at batch size 1.
    """
    with net.calling("method"):
        ids = net.view_as(src, (heads, seq, seq), "image")
        ids = net.slice(ids, 0, 1)
    with net.calling("operator"):                                  # table[index]
        tv = net.embedding(ids, AUTOFORMER_REL_ROWS, d, name=p + ".embeddings_table_v")
        th = net.embedding(ids, AUTOFORMER_REL_ROWS, d, name=p + ".embeddings_table_h")
        return net.add(tv, th)


def autoformer_layer(net: Net, x: int, embed_dim: int, ffn_dim: int, heads: int, seq: int,
                     p: str = "", relative_position: bool = True,
                     head_dim: int = AUTOFORMER_HEAD_DIM) -> int:
    """AutoFormer's ``TransformerEncoderLayer`` (pre-norm) on ``seq`` tokens of
    ``embed_dim``, as its eval ``forward`` runs: ``attn_layer_norm``; the
    super attention (``qkv`` to ``3 * heads * 64``, Q.K^T, the relative-position
    term ``q @ r_k^T``, softmax, A.V, the term ``A @ r_v``, ``proj``); dropout,
    residual; ``ffn_layer_norm``, ``fc1``, GELU, ``fc2``, residual.  The super
    modules slice their weights and call ``F.linear``/``F.layer_norm``.  Heads are
    ``head_dim`` wide (AutoFormer: 64)."""
    d = head_dim
    hd = heads * d
    net.declare(*(p + m for m in ("attn_layer_norm", "attn.qkv", "attn.rel_pos_embed_k",
                                  "attn.rel_pos_embed_v", "attn.attn_drop", "attn.proj",
                                  "attn.proj_drop", "drop_path", "ffn_layer_norm", "fc1", "fc2")))
    with net.calling("function"):
        y = net.layernorm(x, name=p + "attn_layer_norm")
        qkv = net.linear(y, 3 * hd, name=p + "attn.qkv")
    with net.calling("operator"):                                  # qkv[0], qkv[1], qkv[2]
        q, k, v = (net.slice(qkv, i * hd, hd) for i in range(3))
    with net.calling("method"):                                    # reshape, permute: heads
        q, v = (net.view_as(t, (heads, seq, d), "matrix") for t in (q, v))
        k = net.view_as(k, (heads, d, seq), "matrix")              # k.transpose(-2, -1)
    with net.calling("operator"):
        a = net.act(net.matmul(q, k), "mul_const")                 # (q @ k^T) * scale
    if relative_position:
        rk = _rel_pos(net, a, heads, seq, d, p + "attn.rel_pos_embed_k")
        with net.calling("method"):
            qp = net.view_as(q, (seq, heads, d), "matrix", copy=True)   # q.permute.reshape
            rk = net.view_as(rk, (seq, d, seq), "matrix")              # r_p_k.transpose(2, 1)
        with net.calling("operator"):
            s = net.matmul(qp, rk)
        with net.calling("method"):
            s = net.view_as(s, (heads, seq, seq), "matrix", copy=True)  # .transpose.reshape
        with net.calling("operator"):
            a = net.add(a, net.act(s, "mul_const"))
    with net.calling("method"):
        a = net.softmax(a)                                         # attn.softmax(dim=-1)
    a = net.dropout(a, name=p + "attn.attn_drop")
    with net.calling("operator"):
        o = net.matmul(a, v)                                       # attn @ v
    with net.calling("method"):
        o = net.view_as(o, (1, seq, 1, hd), "tokens", copy=True)   # .transpose(1, 2).reshape
    if relative_position:
        rv = _rel_pos(net, a, heads, seq, d, p + "attn.rel_pos_embed_v")
        with net.calling("method"):
            a1 = net.view_as(a, (seq, heads, seq), "matrix", copy=True)
            rv = net.view_as(rv, (seq, seq, d), "matrix")
        with net.calling("operator"):
            t = net.matmul(a1, rv)                                 # attn_1 @ r_p_v
        with net.calling("method"):
            t = net.view_as(t, (heads, seq, d), "matrix", copy=True)
            t = net.view_as(t, (1, seq, 1, hd), "tokens", copy=True)
        with net.calling("operator"):
            o = net.add(o, t)
    with net.calling("function"):
        o = net.linear(o, embed_dim, name=p + "attn.proj")
    o = net.dropout(o, name=p + "attn.proj_drop")
    with net.calling("function"):
        o = net.dropout(o)                                         # F.dropout
    o = net.identity(o, name=p + "drop_path")
    with net.calling("operator"):
        x = net.add(x, o)                                          # residual + x
    with net.calling("function"):
        y = net.layernorm(x, name=p + "ffn_layer_norm")
        y = net.act(net.linear(y, ffn_dim, name=p + "fc1"), "gelu")   # gelu(fc1(x))
        y = net.dropout(y)
        y = net.dropout(net.linear(y, embed_dim, name=p + "fc2"))
    y = net.identity(y, name=p + "drop_path")
    with net.calling("operator"):
        return net.add(x, y)


def autoformer_stem(net: Net, embed_dim: int, patch: int = 16) -> int:
    """``PatchembedSuper`` (``F.conv2d`` with the sliced weight, ``flatten(2).transpose(1, 2)``),
    the class token (``torch.cat``) and the absolute position embedding
    (``x + pos_embed``), ``F.dropout``."""
    res = net.get(0, "size_h")
    seq = (res // patch) ** 2 + 1
    with net.calling("function"):
        x = net.conv(net.input, embed_dim, patch, stride=patch, bias=True,
                     name="patch_embed_super.proj")
    with net.calling("method"):
        x = net.prepend(net.tokens(x, flat=True), 1, name="cls_token")
    with net.calling("operator"):
        x = net.param_add(x, seq * embed_dim, name="pos_embed")
    with net.calling("function"):
        return net.dropout(x)


def autoformer_head(net: Net, x: int, seq: int, num_classes: int = 1000,
                    mean_pool: bool = True) -> int:
    """The final ``norm``, the pooling -- ``torch.mean(x[:, 1:], dim=1)`` over the
    patch tokens (``gp``, as every published AutoFormer) or ``x[:, 0]`` -- and ``head``."""
    with net.calling("function"):
        x = net.layernorm(x, name="norm")
    with net.calling("operator"):
        x = net.slice(x, 1, seq - 1, tokens=True) if mean_pool else net.slice(x, 0, 1, tokens=True)
    if mean_pool:
        with net.calling("method"):
            x = net.mean(x, height=True)
    with net.calling("function"):
        return net.linear(x, num_classes, name="head")


def autoformer(embed_dim: int, mlp_ratio, num_heads, num_classes: int = 1000,
               resolution: int = 224, patch: int = 16, mean_pool: bool = True,
               relative_position: bool = True) -> Net:
    """An AutoFormer subnet as the supernet runs it after ``set_sample_config``:
    ``len(mlp_ratio)`` layers of ``embed_dim``, layer ``i`` with an MLP of
    ``int(embed_dim * mlp_ratio[i])`` and ``num_heads[i]`` heads of 64;
    records named by module path.

    Examples
    --------
    >>> import nasflops                     # AutoFormer-T (experiments/subnet/AutoFormer-T.yaml)
    >>> ratios = [3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5]
    >>> net = autoformer(192, ratios, [3] * 10 + [4, 3, 3])
    >>> int(nasflops.score(net)["params"][0])    # get_sampled_params_numel of the code
    5867944
    """
    if len(mlp_ratio) != len(num_heads) or not len(mlp_ratio):
        raise ValueError(f"autoformer: mlp_ratio and num_heads need one entry per layer, got "
                         f"{len(mlp_ratio)} and {len(num_heads)}")
    resolution = _check_resolution(resolution, patch)
    seq = (resolution // patch) ** 2 + 1
    net = Net(3, resolution, resolution)
    x = autoformer_stem(net, embed_dim, patch)
    for i, (r, h) in enumerate(zip(mlp_ratio, num_heads)):
        x = autoformer_layer(net, x, embed_dim, int(embed_dim * r), int(h), seq, f"blocks.{i}.",
                             relative_position)
    autoformer_head(net, x, seq, num_classes, mean_pool)
    return net
