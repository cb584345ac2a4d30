"""Vision transformers of torchvision, written as layer specs (part of the zoo).

Each builder mirrors the module torchvision 0.28 builds, op for op in the
order its eval-mode ``forward`` runs them, with the call kind of every op
(a module, a function, a tensor method, an operator), so that the thop,
ptflops and fvcore conventions see what those tools see on the real model:

* ViT (``vision_transformer.py``): ``conv_proj`` (module), ``reshape`` +
  ``permute`` to a sequence (methods, a view), ``torch.cat`` with the class
  token (function: ``prepend``), ``+ pos_embedding`` (operator:
  ``param_add``), then per encoder block ``ln_1``, ``nn.MultiheadAttention``
  (one ``mha`` record: in-projection, attention, out-projection, as the
  tools see the module), dropout, ``x + input`` (operator), ``ln_2``, the MLP
  (Linear, GELU, Dropout, Linear, Dropout modules), ``x + y``; the final
  ``ln``, ``x[:, 0]`` (a token slice) and the head.  DeiT-Tiny/Small/Base
  are torchvision's ``VisionTransformer`` at the DeiT paper's sizes (patch 16,
  12 layers, dims 192/384/768, heads 3/6/12, MLP 4x; params equal timm's
  ``deit_*_patch16_224``).

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

__all__ = ["MODELS", "NETS", "PUBLISHED", "ALIASES", "vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32",
           "deit_tiny", "deit_small", "deit_base"]


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


def _vit(patch: int, layers: int, heads: int, dim: int, mlp: int, num_classes: int,
         resolution: int) -> Net:
    """torchvision ``VisionTransformer`` (class token, learned position embedding),
    records named by module path."""
    resolution = _check_resolution(resolution, patch)
    seq = (resolution // patch) ** 2 + 1
    net = Net(3, resolution, resolution)
    x = net.conv(net.input, dim, patch, stride=patch, bias=True, name="conv_proj")
    with net.calling("method"):
        x = net.tokens(x, flat=True)                                 # reshape, permute
    with net.calling("function"):
        x = net.prepend(x, 1)                                        # torch.cat([cls, x], 1)
    with net.calling("operator"):
        x = net.param_add(x, seq * dim)                              # + pos_embedding
    x = net.dropout(x, name="encoder.dropout")
    for i in range(layers):
        x = _encoder_block(net, x, dim, heads, mlp, f"encoder.layers.encoder_layer_{i}.")
    x = net.layernorm(x, name="encoder.ln")
    with net.calling("operator"):
        x = net.slice(x, 0, 1, tokens=True)                          # x[:, 0]
    net.linear(x, num_classes, name="heads.head")
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

MODELS: dict[str, Callable[..., np.ndarray]] = {
    "vit_b_16": vit_b_16, "vit_b_32": vit_b_32, "vit_l_16": vit_l_16, "vit_l_32": vit_l_32,
    "deit_tiny": deit_tiny, "deit_small": deit_small,
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
}
