"""AutoFormer's search spaces, and vision-transformer spaces declared in YAML.

Reference: M. Chen, H. Peng, J. Fu and H. Ling, "AutoFormer: Searching
Transformers for Visual Recognition", ICCV 2021; code: microsoft/Cream,
``AutoFormer/`` (``model/supernet_transformer.py``, ``model/module/``).

Native encoding, as the paper and its ``set_sample_config`` write a subnet:
``embed_dim`` (one for all layers), ``depth`` (the code's ``layer_num``), and
per layer ``mlp_ratio`` and ``num_heads``.  As columns: ``embed_dim`` int16
``(n,)``, ``depth`` int8 ``(n,)``, ``mlp_ratio`` float32 and ``num_heads``
int8 ``(n, max depth)``, 0 beyond the candidate's depth.

The supernets (``autoformer-t``, ``-s``, ``-b``) take the choices of the
paper's Table 1, which are those of ``experiments/supernet/supernet-*.yaml``
except one: ``supernet-B.yaml`` lists heads 9 and 10, Table 1 and
``experiments/subnet/AutoFormer-B.yaml`` 8, 9 and 10 (here: 8, 9, 10).
Every layer has heads of 64 (``change_qkv``: Q-K-V width ``64 * heads``),
biased Q-K-V, a 2-D relative-position encoding of keys and values (four
``30 x 64`` tables per layer, ``max_relative_position = 14``), the absolute
position embedding, a class token, and the classifier on the mean of the
patch tokens (``gp``): the published models are trained with ``--gp
--change_qkv --relative_position``.  The records follow the supernet's
eval ``forward`` op for op (:func:`.vision_transformers.autoformer_layer`).

Published subnets (:data:`SUBNETS`, ``experiments/subnet/AutoFormer-*.yaml``)
and what counts them (``tests/test_autoformer.py`` runs the code):

=============  =============  ==========  ==============  ===============
subnet         paper          params      ``macs``        paper's counter
=============  =============  ==========  ==============  ===============
AutoFormer-T   5.7 M, 1.3 G    5,867,944   1,481,938,432    1,344,034,362
AutoFormer-S   22.9 M, 5.1 G  22,891,432   5,161,400,832    4,892,144,730
AutoFormer-B   53.7 M, 11 G   53,691,688  11,691,179,008   11,236,929,660
=============  =============  ==========  ==============  ===============

The parameters equal the code's ``get_sampled_params_numel`` (what its search
bounds), and ``macs`` equals half of ``torch.utils.flop_counter`` 's FLOPs
on the sampled supernet; the S and B parameter figures are these rounded,
T's 5.7 M is not (5,867,944; the repository's README prints 5.8 M).  The
paper's T and B FLOPs are ``Vision_TransformerSuper.get_complexity(196)``
rounded (S's 5.1 G is neither that, 4.89 G, nor ``macs``, 5.16 G),
reproduced by
:func:`paper_complexity`, which differs from ``macs`` in exactly these terms
(``N = 197`` tokens, ``e`` embed dim, ``q = 64 * heads``, ``f`` the MLP width):

* every layer counts ``N + 1 = 198`` tokens (the layer adds 1 to the 197 it
  is given, and each module's counter is handed that): Q-K-V ``198 * 3qe``,
  ``QK^T`` and ``AV`` ``198^2 q`` each, ``proj`` ``198 qe``, ``fc1``/``fc2``
  ``198 ef`` each, instead of 197;
* the relative-position products ``q @ r_k^T`` and ``attn @ r_v`` (``197^2 q``
  MACs each) are counted as ``14 * 198^2 + 198^2 / 2`` and ``14 * 198^2 +
  198 q / 2``;
* each layer norm counts ``198 e`` (``macs``: 0), the position embedding
  ``197 e / 2`` and the patch embedding's bias ``e`` (``macs``: 0; torch's
  counter counts neither);
* the classifier counts all 197 tokens, ``197 * 1000 e``, though it runs on
  their mean (``1000 e``); the final norm counts 0.

The published T subnet has ``mlp_ratio`` 3.0 in layers 2, 4 and 5, outside
Table 1's T choices (3.5, 4): it is not a candidate of ``autoformer-t``
(``encode`` names the layer); :func:`subnet` builds it as published.

Encoding is one gather from a template pool (a stem and a head per embed
dim, a layer per (embed dim, MLP ratio, heads)); scoring uses the block
table of those templates, and the space is a trellis (groups = embed dims,
one step per layer, a state for "depth reached"), so exact profiles,
counts within a budget and exact sampling apply (``nasflops profile
autoformer-t``).

Examples
--------
>>> import nasflops
>>> from nasflops.search_spaces import get_space
>>> space = get_space("autoformer-s")
>>> r = nasflops.score(space.encode([SUBNETS["autoformer-s"]]))
>>> int(r["params"][0]), int(r["macs"][0])
(22891432, 5161400832)
"""
from __future__ import annotations

import functools
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from nasflops.engine import METRICS, score_block
from nasflops.options import ScoringOptions, short_repr
from nasflops.spec import Net, Op, SpecBatch
from . import vision_transformers as vt
from .base import SearchSpace
from .columns import NativeError
from .tables import SlotTable, Step, Trellis
from .templates import TemplatePool

__all__ = ["TransformerSpace", "AutoFormerSpace", "SUPERNETS", "SUBNETS", "PUBLISHED",
           "subnet", "paper_complexity", "transformer_from_definition", "ATTENTIONS"]

#: Table 1 of the paper: the choices of each supernet, and the supernet's own
#: (largest) sizes (``experiments/supernet/supernet-*.yaml``: ``SUPERNET``)
SUPERNETS: dict[str, dict] = {
    "autoformer-t": {"embed_dim": (192, 216, 240), "depth": (12, 13, 14),
                     "mlp_ratio": (3.5, 4.0), "num_heads": (3, 4),
                     "supernet": {"embed_dim": 256, "depth": 14, "mlp_ratio": 4.0, "num_heads": 4}},
    "autoformer-s": {"embed_dim": (320, 384, 448), "depth": (12, 13, 14),
                     "mlp_ratio": (3.0, 3.5, 4.0), "num_heads": (5, 6, 7),
                     "supernet": {"embed_dim": 448, "depth": 14, "mlp_ratio": 4.0, "num_heads": 7}},
    "autoformer-b": {"embed_dim": (528, 576, 624), "depth": (14, 15, 16),
                     "mlp_ratio": (3.0, 3.5, 4.0), "num_heads": (8, 9, 10),
                     "supernet": {"embed_dim": 640, "depth": 16, "mlp_ratio": 4.0,
                                  "num_heads": 10}},
}

#: the searched subnets, ``experiments/subnet/AutoFormer-*.yaml`` (``RETRAIN``)
SUBNETS: dict[str, dict] = {
    "autoformer-t": {"embed_dim": 192, "depth": 13,
                     "mlp_ratio": [3.5, 3.5, 3.0, 3.5, 3.0, 3.0, 4.0, 4.0, 3.5, 4.0, 3.5, 4.0, 3.5],
                     "num_heads": [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 3, 3]},
    "autoformer-s": {"embed_dim": 384, "depth": 13,
                     "mlp_ratio": [3.0, 3.5, 3.0, 3.5, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.5, 4.0],
                     "num_heads": [6, 6, 5, 7, 5, 5, 5, 6, 6, 7, 7, 6, 7]},
    "autoformer-b": {"embed_dim": 576, "depth": 14,
                     "mlp_ratio": [3.5, 3.5, 4.0, 3.5, 4.0, 3.5, 3.5, 3.0, 4.0, 4.0, 3.0, 4.0,
                                   3.0, 3.5],
                     "num_heads": [9, 9, 9, 9, 9, 10, 9, 9, 10, 9, 10, 9, 9, 10]},
}

#: the paper's Table 3 / Figure 1: (params in M, FLOPs in G), as printed
PUBLISHED: dict[str, tuple[str, str]] = {
    "autoformer-t": ("5.7", "1.3"), "autoformer-s": ("22.9", "5.1"), "autoformer-b": ("53.7", "11"),
}

#: how a layer attends: AutoFormer's super attention (Q-K-V of ``heads *
#: head_dim``, optional relative positions, F.linear / F.layer_norm) or
#: torchvision's ``EncoderBlock`` (``nn.MultiheadAttention`` of ``embed_dim``)
ATTENTIONS = ("autoformer", "torchvision")
#: largest embed dim, depth, heads and resolution a space may declare
MAX_EMBED, MAX_DEPTH, MAX_HEADS, MAX_RESOLUTION = 4096, 64, 64, 1024


def subnet(name: str, num_classes: int = 1000) -> Net:
    """The published subnet ``name`` (``"autoformer-t"``, ``-s``, ``-b``) as a
    named net, built as ``Vision_TransformerSuper.set_sample_config`` samples it.

    >>> import nasflops
    >>> int(nasflops.score(subnet("autoformer-t"))["params"][0])
    5867944
    """
    if name not in SUBNETS:
        raise ValueError(f"unknown AutoFormer subnet {name!r}; known: {', '.join(SUBNETS)}")
    c = SUBNETS[name]
    return vt.autoformer(c["embed_dim"], c["mlp_ratio"], c["num_heads"], num_classes)


def paper_complexity(embed_dim: int, mlp_ratio: Sequence[float], num_heads: Sequence[int],
                     num_classes: int = 1000, sequence_length: int = 196) -> float:
    """``Vision_TransformerSuper.get_complexity(sequence_length)`` after
    ``set_sample_config``, in closed form: the "FLOPs" of the paper (see the
    module docstring for how it differs from ``macs``).

    >>> c = SUBNETS["autoformer-t"]
    >>> round(paper_complexity(c["embed_dim"], c["mlp_ratio"], c["num_heads"]) / 1e9, 1)
    1.3
    """
    e, n = int(embed_dim), int(sequence_length)
    total = e + n * e * 3 * 16 * 16                   # patch embedding (bias once)
    total += (n + 1) * e / 2.0                        # position embedding
    t = n + 2                                         # what each layer's modules are given
    for r, h in zip(mlp_ratio, num_heads):
        q, f = 64 * int(h), int(e * r)
        total += 2 * t * e                            # two layer norms
        total += t * 3 * q * e + 2 * t * t * q + t * q * e     # qkv, QK^T, AV, proj
        total += 14 * t * t + t * t / 2.0 + 14 * t * t + t * q / 2.0   # relative positions
        total += 2 * t * e * f                        # fc1, fc2
    return total + (n + 1) * e * num_classes          # the head, on every token


def _as_choices(values, what: str, where: str, kind=int) -> tuple:
    try:
        vals = tuple(kind(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {what} must be a list of numbers, got {short_repr(values)}") \
            from None
    if not vals or len(set(vals)) != len(vals) or list(vals) != sorted(vals):
        raise ValueError(f"{where}: {what} must be distinct and ascending, got {list(values)}")
    if any(v <= 0 for v in vals):
        raise ValueError(f"{where}: {what} must be positive, got {list(values)}")
    return vals


class TransformerSpace(SearchSpace):
    """A space of plain vision transformers: one embed dim, a depth, and per
    layer an MLP ratio and a number of heads, each from a list of choices
    (AutoFormer's encoding).

    Parameters
    ----------
    embed_dim, depth, mlp_ratio, num_heads : sequences
        The choices (ascending).  Every layer has the same choices.
    attention : {"autoformer", "torchvision"}
        The layer (see :data:`ATTENTIONS`).  ``torchvision``: heads of
        ``embed_dim // num_heads`` (every pair must divide), class-token
        pooling, records as :func:`.vision_transformers.vit_b_16`.
    head_dim : int
        Width of a head (``autoformer`` only; AutoFormer: 64).
    relative_position : bool
        AutoFormer's relative positions (``autoformer`` only).
    pool : {"mean", "cls"}
        The classifier reads the mean of the patch tokens or the class token
        (``torchvision``: cls only).
    patch, resolution, num_classes : int
        Patch size, input resolution (a multiple of ``patch``), classes.
    name, reference : str
        Registry name and reference.
    """

    native_columns = {
        "embed_dim": "int16 (n,): embedding width of every layer",
        "depth": "int8 (n,): number of layers",
        "mlp_ratio": "float32 (n, max depth): MLP width / embed dim per layer, 0 beyond depth",
        "num_heads": "int8 (n, max depth): attention heads per layer, 0 beyond depth",
    }
    native_example = ("{'embed_dim': 192, 'depth': 12, 'mlp_ratio': [3.5, 4, ...], "
                      "'num_heads': [3, 4, ...]}")

    def __init__(self, embed_dim: Sequence[int], depth: Sequence[int],
                 mlp_ratio: Sequence[float], num_heads: Sequence[int],
                 attention: str = "autoformer", head_dim: int = vt.AUTOFORMER_HEAD_DIM,
                 relative_position: bool = True, pool: str = "mean", patch: int = 16,
                 resolution: int = 224, num_classes: int = 1000, name: str = "transformer",
                 reference: str = ""):
        where = name
        self.name, self.reference = name, reference
        self.embed_dims = _as_choices(embed_dim, "embed_dim", where)
        self.depths = _as_choices(depth, "depth", where)
        self.mlp_ratios = _as_choices(mlp_ratio, "mlp_ratio", where, float)
        self.heads = _as_choices(num_heads, "num_heads", where)
        for what, vals, top in (("embed_dim", self.embed_dims, MAX_EMBED),
                                ("depth", self.depths, MAX_DEPTH),
                                ("num_heads", self.heads, MAX_HEADS)):
            if vals[-1] > top:
                raise ValueError(f"{where}: {what} choices go up to {top}, got {vals[-1]}")
        if any(np.float32(r) != r for r in self.mlp_ratios):
            raise ValueError(f"{where}: mlp_ratio choices must be exact in float32 "
                             f"(3.5, 4.0, ...), got {list(self.mlp_ratios)}")
        if attention not in ATTENTIONS:
            raise ValueError(f"{where}: attention must be one of {', '.join(ATTENTIONS)}, "
                             f"got {attention!r}")
        if pool not in ("mean", "cls"):
            raise ValueError(f"{where}: pool must be 'mean' or 'cls', got {pool!r}")
        self.attention, self.pool = attention, pool
        self.head_dim, self.relative_position = int(head_dim), bool(relative_position)
        if attention == "torchvision":
            if pool != "cls" or relative_position:
                raise ValueError(f"{where}: torchvision attention pools the class token and has "
                                 "no relative positions (pool: cls, relative_position: false)")
            bad = [(e, h) for e in self.embed_dims for h in self.heads if e % h]
            if bad:
                raise ValueError(f"{where}: torchvision attention needs embed_dim divisible by "
                                 f"num_heads; {bad[0][0]} is not divisible by {bad[0][1]}")
        elif self.head_dim < 1:
            raise ValueError(f"{where}: head_dim must be >= 1, got {head_dim}")
        for what, v in (("patch", patch), ("resolution", resolution), ("num_classes", num_classes),
                        ("head_dim", head_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{where}: {what} must be a positive integer, got {short_repr(v)}")
        if not isinstance(relative_position, (bool, np.bool_)):
            raise ValueError(f"{where}: relative_position must be true or false, got "
                             f"{short_repr(relative_position)}")
        self.patch, self.num_classes = int(patch), int(num_classes)
        if resolution > MAX_RESOLUTION:
            raise ValueError(f"{where}: resolution goes up to {MAX_RESOLUTION}, got {resolution}")
        try:
            self.resolution = vt._check_resolution(resolution, self.patch)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        narrow = [(e, r) for e in self.embed_dims for r in self.mlp_ratios if int(e * r) < 1]
        if narrow:
            raise ValueError(f"{where}: mlp_ratio {narrow[0][1]:g} gives embed_dim {narrow[0][0]} "
                             "an MLP of no channel")
        self.seq = (self.resolution // self.patch) ** 2 + 1
        self.max_depth = self.depths[-1]

    @property
    def params(self) -> dict:
        source = getattr(self, "source", "")
        return {"path": source, "num_classes": self.num_classes} if source else \
            {"num_classes": self.num_classes}

    @property
    def size(self) -> int:
        E, K = len(self.embed_dims), len(self.mlp_ratios) * len(self.heads)
        return E * sum(K ** d for d in self.depths)

    # -- the records --------------------------------------------------------------
    def network(self, embed_dim: int, mlp_ratio: Sequence[float], num_heads: Sequence[int]) -> Net:
        """One candidate as a named net (no check that it is in the space)."""
        if self.attention == "autoformer":
            return vt.autoformer(embed_dim, mlp_ratio, num_heads, self.num_classes,
                                 self.resolution, self.patch, self.pool == "mean",
                                 self.relative_position)
        net = Net(3, self.resolution, self.resolution)
        x = vt.vit_stem(net, embed_dim, self.patch)
        for i, (r, h) in enumerate(zip(mlp_ratio, num_heads)):
            x = vt.vit_layer(net, x, embed_dim, int(h), int(embed_dim * r), i)
        vt.vit_head(net, x, self.num_classes)
        return net

    def _stem_net(self, e: int) -> Net:
        net = Net(3, self.resolution, self.resolution)
        if self.attention == "autoformer":
            vt.autoformer_stem(net, e, self.patch)
        else:
            vt.vit_stem(net, e, self.patch)
        return net

    def _layer_net(self, e: int, r: float, h: int) -> Net:
        net = Net(e, self.seq, 1)       # layer 0 stands for the previous slot's tokens
        if self.attention == "autoformer":
            vt.autoformer_layer(net, net.input, e, int(e * r), h, self.seq, "",
                                self.relative_position, self.head_dim)
        else:
            vt.vit_layer(net, net.input, e, h, int(e * r), 0)
        return net

    def _head_net(self, e: int) -> Net:
        net = Net(e, self.seq, 1)
        if self.attention == "autoformer":
            vt.autoformer_head(net, net.input, self.seq, self.num_classes, self.pool == "mean")
        else:
            vt.vit_head(net, net.input, self.num_classes)
        return net

    @functools.cached_property
    def _pool(self) -> tuple[TemplatePool, dict]:
        """Templates: a stem per embed dim, a layer per (embed dim, MLP ratio,
        heads), the empty layer, a head per embed dim."""
        pool = TemplatePool(n_res=1)
        ids = {"stem": [pool.add_net(self._stem_net(e), include_input=True)
                        for e in self.embed_dims]}
        ids["layer"] = pool.add_net(self._layer_net(self.embed_dims[0], self.mlp_ratios[0],
                                                    self.heads[0]))
        for k, (e, r, h) in enumerate((e, r, h) for e in self.embed_dims for r in self.mlp_ratios
                                      for h in self.heads):
            if k:
                pool.add_net(self._layer_net(e, r, h))
        ids["empty"] = pool.add_empty()
        ids["head"] = [pool.add_net(self._head_net(e)) for e in self.embed_dims]
        pool.freeze()
        return pool, ids

    # -- columns ------------------------------------------------------------------
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        # as the supernet trains and the search mutates: every choice uniform
        E, D, R, H = (len(v) for v in (self.embed_dims, self.depths, self.mlp_ratios, self.heads))
        ei = rng.integers(0, E, size=n)
        depth = np.asarray(self.depths, dtype=np.int8)[rng.integers(0, D, size=n)]
        ri = rng.integers(0, R, size=(n, self.max_depth))
        hi = rng.integers(0, H, size=(n, self.max_depth))
        live = np.arange(self.max_depth)[None, :] < depth[:, None]
        return {"embed_dim": np.asarray(self.embed_dims, dtype=np.int16)[ei], "depth": depth,
                "mlp_ratio": np.where(live, np.asarray(self.mlp_ratios, dtype=np.float32)[ri],
                                      np.float32(0)),
                "num_heads": np.where(live, np.asarray(self.heads, dtype=np.int8)[hi],
                                      np.int8(0)).astype(np.int8)}

    def _fail(self, i: int, field: str, reason: str):
        raise NativeError(self.name, i, field, reason)

    def _indices(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """Validated columns -> (embed index, depth, MLP index, heads index, live mask)."""
        missing = [c for c in self.native_columns if c not in cols]
        if missing:
            raise NativeError(self.name, None, missing[0], f"missing column; got {sorted(cols)}")
        emb, dep = np.asarray(cols["embed_dim"]), np.asarray(cols["depth"])
        mlp, hd = np.asarray(cols["mlp_ratio"]), np.asarray(cols["num_heads"])
        n = len(emb)
        for c, a, nd in (("embed_dim", emb, 1), ("depth", dep, 1), ("mlp_ratio", mlp, 2),
                         ("num_heads", hd, 2)):
            if a.ndim != nd or len(a) != n or (nd == 2 and a.shape[1] != self.max_depth):
                want = f"({n},)" if nd == 1 else f"({n}, {self.max_depth})"
                raise NativeError(self.name, None, c, f"expected shape {want}, got {a.shape}")
        ei = self._lookup(emb, self.embed_dims, "embed_dim")
        self._lookup(dep, self.depths, "depth")
        live = np.arange(self.max_depth)[None, :] < dep[:, None].astype(np.int64)
        ri = self._lookup(mlp, self.mlp_ratios, "mlp_ratio", live)
        hi = self._lookup(hd, self.heads, "num_heads", live)
        return ei, dep.astype(np.int64), ri, hi, live

    def _lookup(self, a: np.ndarray, choices: tuple, field: str,
                live: Optional[np.ndarray] = None) -> np.ndarray:
        """Index of each value among ``choices`` (0 where not live); raises naming
        the first candidate (and layer) whose value is not a choice."""
        ch = np.asarray(choices, dtype=np.float64)
        v = a.astype(np.float64)
        pos = np.minimum(np.searchsorted(ch, v), len(ch) - 1)
        ok = ch[pos] == v
        if live is not None:
            ok = np.where(live, ok, v == 0)
        if not ok.all():
            at = np.argwhere(~ok)[0]
            i = int(at[0])
            shown = ", ".join(f"{c:g}" for c in choices)
            if live is None:
                self._fail(i, field, f"{a[i].item():g} is not a choice ({shown})")
            layer, val = int(at[1]), a[i, int(at[1])].item()
            if live[i, layer]:
                self._fail(i, f"{field}[{layer}]", f"layer {layer}: {val:g} is not a choice "
                           f"({shown})")
            self._fail(i, f"{field}[{layer}]", f"layer {layer} is beyond the depth "
                       f"{int(live[i].sum())}: must be 0, got {val:g}")
        return np.where(live, pos, 0) if live is not None else pos

    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        """Columns from natives: mappings ``{"embed_dim", "depth" (or
        ``layer_num``), "mlp_ratio", "num_heads"}`` with one MLP ratio and one
        head count per layer; ``embed_dim`` may be the code's per-layer list
        (all equal)."""
        if isinstance(natives, Mapping):
            natives = [natives]
        n, D = len(natives), self.max_depth
        cols = {"embed_dim": np.zeros(n, dtype=np.int16), "depth": np.zeros(n, dtype=np.int8),
                "mlp_ratio": np.zeros((n, D), dtype=np.float32),
                "num_heads": np.zeros((n, D), dtype=np.int8)}
        for i, nat in enumerate(natives):
            if not isinstance(nat, Mapping):
                self._fail(i, "native", f"expected a mapping with embed_dim, depth, mlp_ratio, "
                           f"num_heads; got {short_repr(nat)}")
            depth = nat.get("depth", nat.get("layer_num"))
            e = nat.get("embed_dim")
            if isinstance(e, (list, tuple)):
                if len(set(e)) != 1:
                    self._fail(i, "embed_dim", f"every layer has one embed dim here, got {list(e)}")
                e = e[0]
            for field, v in (("embed_dim", e), ("depth", depth)):
                if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                    self._fail(i, field, f"expected an integer, got {short_repr(v)}")
            if not 0 < depth <= D:
                self._fail(i, "depth", f"{depth} is not a choice "
                           f"({', '.join(map(str, self.depths))})")
            if not 0 < e < 1 << 15:
                self._fail(i, "embed_dim", f"{e} is not a choice "
                           f"({', '.join(map(str, self.embed_dims))})")
            for field in ("mlp_ratio", "num_heads"):
                v = nat.get(field)
                if not isinstance(v, (list, tuple, np.ndarray)) or len(v) != depth:
                    self._fail(i, field, f"expected one value per layer ({depth}), got "
                               f"{short_repr(v)}")
                try:
                    arr = np.asarray(v, dtype=np.float64)
                except (TypeError, ValueError):
                    self._fail(i, field, f"expected numbers, got {short_repr(v)}")
                off = (arr != np.round(arr)) | (arr < 1) | (arr > 127)
                if field == "num_heads" and off.any():
                    k = int(np.flatnonzero(off)[0])
                    self._fail(i, f"num_heads[{k}]", f"layer {k}: {v[k]!r} is not a choice "
                               f"({', '.join(map(str, self.heads))})")
                if field == "mlp_ratio" and ((arr <= 0) | (arr > 1e4)).any():
                    k = int(np.flatnonzero((arr <= 0) | (arr > 1e4))[0])
                    self._fail(i, f"mlp_ratio[{k}]", f"layer {k}: {v[k]!r} is not a choice "
                               f"({', '.join(f'{c:g}' for c in self.mlp_ratios)})")
                cols[field][i, :depth] = arr
            cols["embed_dim"][i], cols["depth"][i] = e, depth
        self._indices(cols)
        return cols

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        """Mappings ``{"embed_dim", "depth", "mlp_ratio", "num_heads"}`` (lists of
        length ``depth``)."""
        ei, dep, ri, hi, _ = self._indices(cols)
        out = []
        for i in range(len(ei)):
            d = int(dep[i])
            out.append({"embed_dim": self.embed_dims[ei[i]], "depth": d,
                        "mlp_ratio": [self.mlp_ratios[k] for k in ri[i, :d]],
                        "num_heads": [self.heads[k] for k in hi[i, :d]]})
        return out

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """``embed_dim``, ``depth`` and the per-layer lists (``depth`` long)."""
        import pyarrow as pa
        _, dep, _, _, live = self._indices(cols)
        offsets = np.zeros(len(dep) + 1, dtype=np.int32)
        np.cumsum(dep, out=offsets[1:])
        out = {"embed_dim": pa.array(np.asarray(cols["embed_dim"], dtype=np.int16)),
               "depth": pa.array(np.asarray(cols["depth"], dtype=np.int8))}
        for c, dt in (("mlp_ratio", np.float32), ("num_heads", np.int8)):
            flat = np.asarray(cols[c], dtype=dt)[live]
            out[c] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))
        return out

    # -- encoding -----------------------------------------------------------------
    def _slot_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Template per slot: stem, ``max depth`` layers (empty beyond the
        depth), head; one group."""
        ei, _, ri, hi, live = self._indices(cols)
        pool, ids = self._pool
        R, H = len(self.mlp_ratios), len(self.heads)
        n = len(ei)
        tids = np.empty((n, self.max_depth + 2), dtype=np.int64)
        tids[:, 0] = np.asarray(ids["stem"])[ei]
        tids[:, 1:-1] = np.where(live, ids["layer"] + (ei[:, None] * R + ri) * H + hi, ids["empty"])
        tids[:, -1] = np.asarray(ids["head"])[ei]
        return tids, np.zeros(n, dtype=np.int64)

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        """Records of every candidate: one compiled gather of templates."""
        tids, groups = self._slot_ids(cols)
        return self._pool[0].assemble(tids, groups, np.array([self.resolution]),
                                      set_input_size=False)

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Columns back from records this space encoded: the embed dim from the
        patch embedding, the depth from the length, each layer's heads from
        its Q-K-V (or attention) record and its MLP ratio from ``fc1``; then
        re-encoded and compared.  Raises :class:`NativeError` naming the first
        candidate that is not an architecture of this space."""
        pool, ids = self._pool
        n = len(batch)
        D = self.max_depth
        ls, ll, lh = (int(pool.lengths[t]) for t in (ids["stem"][0], ids["layer"], ids["head"][0]))
        layer = pool.records[pool.starts[ids["layer"]]:pool.starts[ids["layer"]] + ll]
        lin = np.flatnonzero(layer["op"] == int(Op.LINEAR))
        if self.attention == "autoformer":
            at_heads, per_head = int(lin[0]), 3 * self.head_dim     # qkv: 3 * heads * head_dim
            field = "out_channels"
        else:
            at_heads = int(np.flatnonzero(layer["op"] == int(Op.MHA))[0])
            per_head, field = 1, "groups"
        at_ffn = int(lin[-2])                                          # fc1 (mlp.0)
        rec, off, lengths = batch.records, batch.offsets, batch.lengths
        body = lengths - ls - lh
        depth = np.where(body % ll == 0, body // ll, -1)
        bad = ~np.isin(depth, self.depths)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise NativeError(self.name, i, "records", f"{int(lengths[i])} records are no depth "
                              f"of this space ({self!r})")
        last = max(len(rec) - 1, 0)
        emb = rec["out_channels"][np.minimum(off[:-1] + 1, last)].astype(np.int64)  # patch conv
        live = np.arange(D)[None, :] < depth[:, None]
        base = off[:-1, None] + ls + np.arange(D)[None, :] * ll
        heads = rec[field][np.minimum(base + at_heads, last)].astype(np.int64) // per_head
        ffn = rec["out_channels"][np.minimum(base + at_ffn, last)].astype(np.int64)
        ratios = np.asarray(self.mlp_ratios)
        # the MLP ratio whose int(e * r) is the fc1 width (0 when none is)
        widths = (emb[:, None, None] * ratios[None, None, :]).astype(np.int64)
        hit = widths == ffn[:, :, None]
        mlp = np.where(hit.any(axis=2), ratios[hit.argmax(axis=2)], 0.0)
        cols = {"embed_dim": emb.astype(np.int16), "depth": depth.astype(np.int8),
                "mlp_ratio": np.where(live, mlp, 0).astype(np.float32),
                "num_heads": np.where(live, np.clip(heads, 0, 127), 0).astype(np.int8)}
        try:
            self._indices(cols)
        except NativeError as exc:
            raise NativeError(self.name, exc.candidate, "records", "not an architecture of this "
                              f"space ({self!r}): {exc.field} {exc.reason}") from None
        return self._verify_decoded(batch, cols) if n else cols

    # -- block table and trellis ------------------------------------------------------
    def _slot_table(self, opts: ScoringOptions) -> SlotTable:
        """What each template adds, measured after its embed dim's stem: a
        layer's (or head's) row is the score of stem + template minus the
        stem's; its peak is the peak of stem + template, which is at least the
        stem's, so a candidate's peak, the largest of its slots', is unchanged."""
        pool, ids = self._pool
        n_t = len(pool.lengths)
        M = len(METRICS)
        peak = METRICS.index("peak_act_bytes")
        stems = np.asarray(ids["stem"])
        # the embed dim index of each non-stem, non-empty template
        R, H = len(self.mlp_ratios), len(self.heads)
        owner = np.full(n_t, -1, dtype=np.int64)
        lay = ids["layer"] + np.arange(len(self.embed_dims) * R * H)
        owner[lay] = np.arange(len(lay)) // (R * H)
        owner[np.asarray(ids["head"])] = np.arange(len(self.embed_dims))
        others = np.flatnonzero(owner >= 0)
        alone = score_block(*_batch(pool.assemble(stems[:, None], np.zeros(len(stems), np.int64),
                                                  np.array([self.resolution]), False)), opts)
        pair = np.stack([stems[owner[others]], others], axis=1)
        both = score_block(*_batch(pool.assemble(pair, np.zeros(len(pair), np.int64),
                                                 np.array([self.resolution]), False)), opts)
        values = np.zeros((n_t, 1, M), dtype=np.int64)
        valid = np.ones((n_t, 1), dtype=bool)
        values[stems, 0] = alone.metrics[:, :M]
        valid[stems, 0] = alone.status == 0
        rows = both.metrics[:, :M] - alone.metrics[owner[others], :M]
        rows[:, peak] = both.metrics[:, peak]
        values[others, 0] = rows
        valid[others, 0] = (both.status == 0) & (alone.status[owner[others]] == 0)
        return SlotTable(values, valid, bool(pool.output_unaliased.all()), opts)

    def _trellis(self, opts: ScoringOptions, metrics: tuple) -> Optional[Trellis]:
        """Groups: the embed dims.  Step 0: stem and head; step ``1 + l``: layer
        ``l``, from state *running* one edge per (MLP ratio, heads) back to
        *running* and, once ``l`` is a depth choice, an edge to *stopped*
        (a stopped chain stays stopped); a last step joins both states."""
        table = self.block_table(opts)
        if not table.all_valid or not table.peak_exact:
            return None
        _, ids = self._pool
        v = table.values[:, 0]                       # (templates, metrics)
        E, R, H = len(self.embed_dims), len(self.mlp_ratios), len(self.heads)
        K, M = R * H, len(METRICS)
        peak = METRICS.index("peak_act_bytes")
        stems, heads = np.asarray(ids["stem"]), np.asarray(ids["head"])
        first = v[stems] + v[heads]
        first[:, peak] = np.maximum(v[stems, peak], v[heads, peak])
        steps = [Step(1, 1, [0], [0], first[None], np.ones((1, 2)), [-1], "stem and head")]
        layer = v[ids["layer"]:ids["layer"] + E * K].reshape(E, K, M).transpose(1, 0, 2)
        zero = np.zeros((1, E, M), dtype=np.int64)
        n_in = 1                  # states: 0 running (every layer so far present), 1 stopped
        for lyr in range(self.max_depth):
            src, dst, vals, lab = [0] * K, [0] * K, [layer], list(range(K))
            if n_in == 2:                              # a stopped chain stays stopped
                src, dst, lab = src + [1], dst + [1], lab + [-2]
                vals.append(zero)
            if lyr in self.depths:                     # depth lyr: stop before layer lyr
                src, dst, lab = src + [0], dst + [1], lab + [-1]
                vals.append(zero)
            n_out = 2 if max(dst) == 1 else 1
            steps.append(Step(n_in, n_out, src, dst, np.concatenate(vals), np.ones((len(src), 2)),
                              lab, f"layer {lyr}"))
            n_in = n_out
        if n_in == 2:
            steps.append(Step(2, 1, [0, 1], [0, 0], np.zeros((2, E, M), dtype=np.int64),
                              np.ones((2, 2)), [-3, -3], "end"))
        labels = [s.label for s in steps]

        def decode(edges, subs, groups):
            edges = np.asarray(edges, dtype=np.int64)
            n = len(edges)
            lab = np.stack([labels[1 + lyr][edges[:, 1 + lyr]] for lyr in range(self.max_depth)],
                           axis=1) if n else np.zeros((0, self.max_depth), dtype=np.int64)
            live = lab >= 0                            # layers taken before any stop
            depth = live.sum(axis=1)
            k = np.maximum(lab, 0)
            return {"embed_dim": np.asarray(self.embed_dims, dtype=np.int16)[np.asarray(groups)],
                    "depth": depth.astype(np.int8),
                    "mlp_ratio": np.where(live, np.asarray(self.mlp_ratios, np.float32)[k // H],
                                          np.float32(0)),
                    "num_heads": np.where(live, np.asarray(self.heads, np.int8)[k % H],
                                          0).astype(np.int8)}

        return Trellis(steps, "embed_dim", np.asarray(self.embed_dims, dtype=np.int64),
                       frozenset(METRICS), decode, opts)


def _batch(b: SpecBatch) -> tuple[np.ndarray, np.ndarray]:
    return b.records, b.offsets


class AutoFormerSpace(TransformerSpace):
    """AutoFormer's supernet ``variant`` (``"t"``, ``"s"``, ``"b"``): Table 1's
    choices, heads of 64, relative positions, mean pooling."""

    def __init__(self, variant: str = "t", num_classes: int = 1000):
        name = f"autoformer-{variant}"
        if name not in SUPERNETS:
            raise ValueError(f"autoformer: unknown variant {variant!r}; known: t, s, b")
        c = SUPERNETS[name]
        super().__init__(c["embed_dim"], c["depth"], c["mlp_ratio"], c["num_heads"],
                         num_classes=num_classes, name=name,
                         reference="Chen et al., AutoFormer: Searching Transformers for Visual "
                                   "Recognition, ICCV 2021 (Table 1; published subnet "
                                   f"{PUBLISHED[name][0]} M params, {PUBLISHED[name][1]} G FLOPs)")
        self.variant = variant

    def __reduce__(self):
        return (AutoFormerSpace, (self.variant, self.num_classes))


#: keys of a ``type: vision_transformer`` YAML definition
DEFINITION_KEYS = ("name", "type", "description", "reference", "embed_dim", "depth", "mlp_ratio",
                   "num_heads", "attention", "head_dim", "relative_position", "pool", "patch",
                   "resolution", "classes")


def transformer_from_definition(definition: Mapping, source: str = "",
                                **parameters) -> TransformerSpace:
    """A :class:`TransformerSpace` from a ``type: vision_transformer`` YAML
    mapping (``docs/declarative.md``, "Vision transformers").  Raises
    ``ValueError`` naming the offending key."""
    unknown = sorted(set(definition) - set(DEFINITION_KEYS))
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r}; a vision_transformer space has "
                         f"{', '.join(DEFINITION_KEYS)}")
    for key in ("name", "embed_dim", "depth", "mlp_ratio", "num_heads"):
        if key not in definition:
            raise ValueError(f"missing key {key!r}")
    unknown = sorted(set(parameters) - {"num_classes"})
    if unknown:
        raise TypeError(f"unexpected parameter {unknown[0]!r} (a vision_transformer space takes "
                        "num_classes)")
    d = dict(definition)
    kw = {k: d[k] for k in ("attention", "head_dim", "relative_position", "pool", "patch",
                            "resolution") if k in d}
    if "attention" in kw and kw["attention"] == "torchvision":
        kw.setdefault("pool", "cls")
        kw.setdefault("relative_position", False)
    space = TransformerSpace(
        _listed(d, "embed_dim", source), _listed(d, "depth", source),
        _listed(d, "mlp_ratio", source), _listed(d, "num_heads", source),
        num_classes=parameters.get("num_classes", d.get("classes", 1000)),
        name=str(d["name"]), reference=str(d.get("reference", "")), **kw)
    space.source = source
    return space


def _listed(d: Mapping, key: str, source: str) -> list:
    v = d[key]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return [v]
    if not isinstance(v, list):
        raise ValueError(f"{key}: expected a number or a list of choices, got "
                         f"{short_repr(v)}")
    return v
