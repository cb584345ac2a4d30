"""Once-for-All MobileNetV3 space (``ofa-mbv3``).

Reference: H. Cai, C. Gan, T. Wang, Z. Zhang and S. Han, "Once-for-All: Train
One Network and Specialize it for Efficient Deployment", ICLR 2020; code: the
``ofa`` package (``ofa.imagenet_classification.elastic_nn.networks.
OFAMobileNetV3``).  The space is the published ``ofa_mbv3_d234_e346_k357_w1.2``
supernet: width multiplier 1.2, kernel {3, 5, 7} and expand ratio {3, 4, 6}
per block, depth {2, 3, 4} per stage over 5 stages, input resolution 128 to
224 in steps of 4.  That is (9^2 + 9^3 + 9^4)^5 ~ 2.2e19 distinct sub-networks
(OFA's "more than 10^19") times 25 resolutions; the native encoding has
3^45 * 25 ~ 7.4e22 values because entries beyond a stage's depth are unused.
Under the ``ofa`` convention nasflops reproduces
``ofa.utils.flops_counter.profile`` (what ``count_net_flops`` reports) on
``get_active_subnet()``, and params equal ``sum(p.numel())`` of that subnet,
exactly; ``tests/test_ofa.py`` checks it on a seeded sample.  The largest
network (ks=7, e=6, d=4) at 224 has 843,101,040 MACs (OFA's float32 counter
prints 843101056.0, see :data:`nasflops.CONVENTIONS` ``"ofa"``) and
10,701,632 params.

Native encoding: OFA's dict ``{"ks": [20 ints], "e": [20 ints], "d": [5
ints], "r": int}`` (``set_active_subnet(ks=..., e=..., d=...)`` plus the
resolution).  As columns: ``ks`` int8 (n, 20), ``e`` int8 (n, 20), ``d`` int8
(n, 5), ``r`` int16 (n,).  Entry ``4 * s + i`` of ``ks``/``e`` is block ``i``
of stage ``s``; like OFA, the lists always have 20 entries and the entries of
blocks beyond a stage's depth are ignored by the network (but must still be
valid choices, and are sampled too, as ``sample_active_subnet`` does), so two
natives differing only there encode to the same records.

The network (``get_active_subnet()`` in eval mode), as records:

* first conv 3x3/2 -> BN -> h-swish (24 channels);
* first block, an MBConv with expand 1 (depthwise 3x3 -> BN -> ReLU ->
  pointwise -> BN) plus identity shortcut (24 -> 24);
* 5 stages of MBConv blocks, widths 32, 48, 96, 136, 192, strides 2, 2, 2, 1,
  2, activations ReLU, ReLU, h-swish, h-swish, h-swish, squeeze-excitation in
  stages 2, 4 and 5.  A block is: 1x1 expand -> BN -> act, depthwise kxk ->
  BN -> act, [SE], 1x1 project -> BN, + identity when stride 1 and in == out.
  The middle width is ``make_divisible(round(in * e), 8)``; the SE squeeze
  width ``make_divisible(mid // 4, 8)``;
* final expand 1x1 -> BN -> h-swish (1152), global average pool, feature mix
  1x1 (no BN, no bias) -> h-swish (1536), flatten, dropout, linear 1000.

What memory metrics assume: ReLUs are in place (``nn.ReLU(inplace=True)``);
OFA's ``Hswish``/``Hsigmoid`` compute ``x * relu6(x + 3) / 6`` into a new
tensor, so they are not in place.  OFA pools (``MyGlobalAvgPool2d`` and the SE
squeeze) as ``x.mean(3, keepdim=True).mean(2, keepdim=True)``: two reductions,
written as an adaptive average pool to (H, 1) then to (1, 1), so the C x H
intermediate is counted.  Dropout (eval) and flatten are views.

Encoding is a gather from a pool of record templates, one per (block
position, kernel, expand) plus stem and head (:class:`~nasflops.search_spaces.
declarative.TemplatePool`), with no Python loop over candidates: about 1e5
candidates (2e7 records) per second and core on a shared 2-core machine;
sampling 1e6 candidates' natives takes ~0.2 s.

Examples
--------
>>> import nasflops
>>> space = nasflops.get_space("ofa-mbv3")
>>> cfg = {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5, "r": 224}
>>> r = nasflops.score(space.encode([cfg]), convention="ofa")
>>> int(r["ops"][0]), int(r["params"][0])
(843101040, 10701632)
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..spec import Net, SpecBatch
from . import register_space
from .base import NativeError, SearchSpace, n_rows
from .declarative import TemplatePool, make_divisible

__all__ = ["OFAMobileNetV3Space"]

KS_CHOICES = (3, 5, 7)
E_CHOICES = (3, 4, 6)
D_CHOICES = (2, 3, 4)
R_MIN, R_MAX, R_STEP = 128, 224, 4
N_STAGES, MAX_DEPTH = 5, 4
N_BLOCKS = N_STAGES * MAX_DEPTH

# OFAMobileNetV3.__init__: base widths of first conv, first block, the five
# stages, final expand and feature mix; per-stage stride, activation and SE
STAGE_BASE_WIDTHS = (24, 40, 80, 112, 160)
STRIDES = (2, 2, 2, 1, 2)
ACTS = ("relu", "relu", "hardswish", "hardswish", "hardswish")
USE_SE = (False, True, False, True, True)
SE_REDUCTION = 4
DIVISOR = 8          # MyNetwork.CHANNEL_DIVISIBLE
N_CLASSES = 1000


def _lut(choices: Sequence[int], size: int = 256) -> np.ndarray:
    """Value -> choice index (-1 for values not in ``choices``)."""
    lut = np.full(size, -1, dtype=np.int16)
    lut[list(choices)] = np.arange(len(choices))
    return lut


_KS_LUT, _E_LUT, _D_LUT = _lut(KS_CHOICES), _lut(E_CHOICES), _lut(D_CHOICES)


def _ofa_act(net: Net, x: int, kind: str) -> int:
    # nn.ReLU(inplace=True) overwrites its input; OFA's Hswish computes
    # x * relu6(x + 3) / 6 into a fresh tensor whatever its inplace flag
    return net.act(x, kind, inplace=(kind == "relu"))


def _ofa_mean_pool(net: Net, x: int) -> tuple[int, int]:
    """``x.mean(3, keepdim=True).mean(2, keepdim=True)``; returns (first, last).

    The first record's ``size_h`` (the input height) is filled per candidate.
    """
    first = net.adaptive_avgpool(x, (0, 1))
    return first, net.adaptive_avgpool(first, 1)


def _mbconv(net: Net, x: int, cin: int, cout: int, k: int, stride: int, e: int,
            act: str, se: bool, shortcut: bool):
    """Records of OFA's ``ResidualBlock(MBConvLayer(...), shortcut)``.

    Returns the output index and the index of the SE's first pool (or None).
    """
    inp = x
    if e == 1:                       # MBConvLayer: no inverted bottleneck
        mid = round(cin * e)
    else:                            # DynamicMBConvLayer.active_middle_channel
        mid = make_divisible(round(cin * e), DIVISOR)
        x = net.conv(x, mid, 1)
        x = net.bn(x)
        x = _ofa_act(net, x, act)
    x = net.conv(x, mid, k, stride=stride, padding=k // 2, groups=mid)
    x = net.bn(x)
    x = _ofa_act(net, x, act)
    pool = None
    if se:                           # SEModule(mid)
        se_mid = make_divisible(mid // SE_REDUCTION, DIVISOR)
        pool, y = _ofa_mean_pool(net, x)
        y = net.conv(y, se_mid, 1, bias=True)
        y = net.act(y, "relu", inplace=True)
        y = net.conv(y, mid, 1, bias=True)
        y = net.act(y, "hardsigmoid")
        x = net.mul(x, y)
    x = net.conv(x, cout, 1)
    x = net.bn(x)
    if shortcut:                     # conv(x) + shortcut(x)
        x = net.add(x, inp)
    return x, pool


class _Layout:
    """Channel widths and spatial sizes of OFA-MBv3 at one width multiplier."""

    def __init__(self, width_mult: float):
        md = lambda c: make_divisible(c * width_mult, DIVISOR)  # noqa: E731
        self.stem_width = md(16)
        self.first_block_width = md(16)
        self.stage_widths = [md(c) for c in STAGE_BASE_WIDTHS]
        self.final_expand_width = md(960)
        self.last_channel = md(1280)
        self.resolutions = np.arange(R_MIN, R_MAX + 1, R_STEP)
        # spatial size after the first conv and after each stage (same
        # padding, odd kernels: H -> (H - 1) // s + 1 whatever the kernel)
        h = (self.resolutions - 1) // 2 + 1
        self.stage_out_h = []
        for s in STRIDES:
            h = (h - 1) // s + 1
            self.stage_out_h.append(h)


@register_space("ofa-mbv3")
class OFAMobileNetV3Space(SearchSpace):
    """OFA MobileNetV3 sub-networks (see the module docstring).

    Parameters
    ----------
    width_mult : float
        OFA's width multiplier (1.2 for the published supernet; 1.0 also has
        released weights).
    """

    name = "ofa-mbv3"
    reference = ("Cai et al., Once-for-All, ICLR 2020 (ofa package, OFAMobileNetV3 "
                 "w1.2 k357 e346 d234, r 128-224/4); reproduces ofa.utils.flops_counter "
                 "under the 'ofa' convention")
    native_columns = {
        "ks": "int8 (n, 20): depthwise kernel of each block, 4 per stage, in {3, 5, 7}",
        "e": "int8 (n, 20): expand ratio of each block, in {3, 4, 6}",
        "d": "int8 (n, 5): depth of each stage, in {2, 3, 4}",
        "r": "int16 (n,): input resolution, 128..224 step 4",
    }
    native_example = '{"ks": [20 x 3|5|7], "e": [20 x 3|4|6], "d": [5 x 2|3|4], "r": 128..224 step 4}'

    def __init__(self, width_mult: float = 1.2):
        self.width_mult = float(width_mult)
        self._layout = _Layout(self.width_mult)
        self._pool = self._build_templates()

    @property
    def params(self) -> dict:
        return {"width_mult": self.width_mult}

    @property
    def size(self) -> int:
        """Distinct networks: (9^2 + 9^3 + 9^4)^5 sub-networks x 25 resolutions
        (natives differing only in entries beyond a stage's depth are one network).
        Too many to enumerate: sample instead."""
        per_block = len(KS_CHOICES) * len(E_CHOICES)
        per_stage = sum(per_block ** d for d in D_CHOICES)
        return per_stage ** N_STAGES * len(self._layout.resolutions)

    # -- templates ------------------------------------------------------------
    def _build_templates(self) -> TemplatePool:
        L = self._layout
        pool = TemplatePool(n_res=len(L.resolutions))
        # stem: input, first conv, first block (an MBConv, expand 1, identity
        # shortcut when its input and output widths agree)
        net = Net(3, 0, 0)
        x = net.conv(net.input, L.stem_width, 3, stride=2, padding=1)
        x = net.bn(x)
        x = _ofa_act(net, x, "hardswish")
        _mbconv(net, x, L.stem_width, L.first_block_width, 3, 1, 1, "relu", False,
                L.stem_width == L.first_block_width)
        self._stem_tid = pool.add_net(net, include_input=True)
        self._empty_tid = pool.add_empty()
        # block slot j: 9 templates, (kernel index * 3 + expand index)
        self._block_base = np.zeros(N_BLOCKS, dtype=np.int32)
        cin = L.first_block_width
        for s in range(N_STAGES):
            cout = L.stage_widths[s]
            for i in range(MAX_DEPTH):
                stride = STRIDES[s] if i == 0 else 1
                block_in = cin if i == 0 else cout
                tids = []
                for k in KS_CHOICES:
                    for e in E_CHOICES:
                        net = Net(block_in, 0, 0)
                        _, se_pool = _mbconv(net, net.input, block_in, cout, k, stride, e,
                                             ACTS[s], USE_SE[s], stride == 1 and block_in == cout)
                        patches = [(se_pool, L.stage_out_h[s])] if se_pool is not None else []
                        tids.append(pool.add_net(net, patches=patches))
                assert tids == list(range(tids[0], tids[0] + len(tids)))
                self._block_base[s * MAX_DEPTH + i] = tids[0]
            cin = cout
        # head: final expand, global pool, feature mix, classifier
        net = Net(cin, 0, 0)
        x = net.conv(net.input, L.final_expand_width, 1)
        x = net.bn(x)
        x = _ofa_act(net, x, "hardswish")
        first_pool, x = _ofa_mean_pool(net, x)
        x = net.conv(x, L.last_channel, 1)
        x = _ofa_act(net, x, "hardswish")
        x = net.flatten(x)
        x = net.dropout(x)
        net.linear(x, N_CLASSES)
        self._head_tid = pool.add_net(net, patches=[(first_pool, L.stage_out_h[-1])])
        pool.freeze()
        return pool

    # -- natives --------------------------------------------------------------
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        # one draw per entry, all 20 ks/e entries included (OFA samples them)
        ks = np.asarray(KS_CHOICES, dtype=np.int8)[rng.integers(0, 3, (n, N_BLOCKS), dtype=np.int8)]
        e = np.asarray(E_CHOICES, dtype=np.int8)[rng.integers(0, 3, (n, N_BLOCKS), dtype=np.int8)]
        d = np.asarray(D_CHOICES, dtype=np.int8)[rng.integers(0, 3, (n, N_STAGES), dtype=np.int8)]
        r = (R_MIN + R_STEP * rng.integers(0, len(self._layout.resolutions), n)).astype(np.int16)
        return {"ks": ks, "e": e, "d": d, "r": r}

    def _fail(self, cand, field, reason):
        raise NativeError(self.name, None if cand is None else int(cand), field, reason)

    def _check(self, cols: Mapping[str, np.ndarray]):
        """Validate columns; return (kernel index, expand index, d, resolution index)."""
        missing = [k for k in ("ks", "e", "d", "r") if k not in cols]
        if missing:
            self._fail(None, missing[0], "column missing (need ks, e, d, r)")
        n = len(cols["r"])
        idx = {}
        for field, width, lut, choices in (("ks", N_BLOCKS, _KS_LUT, KS_CHOICES),
                                            ("e", N_BLOCKS, _E_LUT, E_CHOICES),
                                            ("d", N_STAGES, _D_LUT, D_CHOICES)):
            a = np.asarray(cols[field])
            if a.ndim != 2 or a.shape != (n, width):
                self._fail(None, field, f"expected shape ({n}, {width}), got {a.shape}")
            if a.dtype.kind not in "iu":
                self._fail(None, field, f"expected integers, got dtype {a.dtype}")
            inside = (a >= 0) & (a < len(lut))
            ci = np.where(inside, lut[np.where(inside, a, 0)], -1)
            if (ci < 0).any():
                i, j = np.argwhere(ci < 0)[0]
                self._fail(i, field, f"entry {j} is {a[i, j]}; choices are {list(choices)}")
            idx[field] = ci
        r = np.asarray(cols["r"])
        if r.ndim != 1 or r.dtype.kind not in "iu":
            self._fail(None, "r", f"expected a 1-D integer column, got {r.dtype} {r.shape}")
        bad = (r < R_MIN) | (r > R_MAX) | ((r - R_MIN) % R_STEP != 0)
        if bad.any():
            i = int(np.argmax(bad))
            self._fail(i, "r", f"{r[i]} is not a resolution of the space "
                               f"({R_MIN}..{R_MAX} in steps of {R_STEP})")
        return idx["ks"], idx["e"], np.asarray(cols["d"]), ((r - R_MIN) // R_STEP).astype(np.int64)

    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        natives = list(natives)
        n = len(natives)
        ks = np.zeros((n, N_BLOCKS), dtype=np.int8)
        e = np.zeros((n, N_BLOCKS), dtype=np.int8)
        d = np.zeros((n, N_STAGES), dtype=np.int8)
        r = np.zeros(n, dtype=np.int16)
        lengths = {"ks": N_BLOCKS, "e": N_BLOCKS, "d": N_STAGES}
        for i, nat in enumerate(natives):   # reading Python objects: one pass
            if not isinstance(nat, Mapping):
                self._fail(i, "<native>", f"expected a dict with ks, e, d, r; got {type(nat).__name__}")
            extra = set(nat) - {"ks", "e", "d", "r"}
            if extra:
                self._fail(i, sorted(extra)[0], "unknown field (fields are ks, e, d, r)")
            for field, arr in (("ks", ks), ("e", e), ("d", d)):
                if field not in nat:
                    self._fail(i, field, "missing")
                v = nat[field]
                if isinstance(v, (int, np.integer)):   # OFA's val2list broadcast
                    v = [v] * lengths[field]
                if not isinstance(v, (list, tuple, np.ndarray)) or len(v) != lengths[field]:
                    got = len(v) if hasattr(v, "__len__") else type(v).__name__
                    self._fail(i, field, f"expected a list of {lengths[field]} ints, got {got}")
                arr[i] = self._ints(i, field, v, -128, 127)
            if "r" not in nat:
                self._fail(i, "r", "missing")
            r[i] = self._ints(i, "r", [nat["r"]], -32768, 32767)[0]
        cols = {"ks": ks, "e": e, "d": d, "r": r}
        self._check(cols)
        return cols

    def _ints(self, i, field, values, lo, hi):
        out = []
        for j, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                self._fail(i, field, f"entry {j} is {v!r}, not an int")
            if not lo <= v <= hi:
                self._fail(i, field, f"entry {j} is {v}, out of range")
            out.append(int(v))
        return out

    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        ks, e, d = (np.asarray(cols[k]).tolist() for k in ("ks", "e", "d"))
        r = np.asarray(cols["r"]).tolist()
        return [{"ks": a, "e": b, "d": c, "r": x} for a, b, c, x in zip(ks, e, d, r)]

    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """``ks``, ``e``, ``d`` as list<int8> columns and ``r`` as int16."""
        import pyarrow as pa
        out = {}
        for k in ("ks", "e", "d"):
            a = np.ascontiguousarray(cols[k], dtype=np.int8)
            n, w = a.shape
            offsets = pa.array(np.arange(0, n * w + 1, w, dtype=np.int32))
            out[k] = pa.ListArray.from_arrays(offsets, pa.array(a.reshape(-1)))
        out["r"] = pa.array(np.asarray(cols["r"], dtype=np.int16))
        return out

    # -- encoding -------------------------------------------------------------
    def template_ids(self, cols: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Validated columns -> (template id per slot (n, 22), resolution index (n,))."""
        ki, ei, d, r_idx = self._check(cols)
        n = n_rows(cols)
        tids = np.empty((n, N_BLOCKS + 2), dtype=np.int32)
        tids[:, 0] = self._stem_tid
        tids[:, -1] = self._head_tid
        # block 4*s+i is present iff i < d[s]; OFA keeps depth-d prefixes
        pos_in_stage = np.tile(np.arange(MAX_DEPTH), N_STAGES)
        active = pos_in_stage[None, :] < np.repeat(d, MAX_DEPTH, axis=1)
        tids[:, 1:-1] = np.where(active, self._block_base[None, :] + ki * 3 + ei, self._empty_tid)
        return tids, r_idx

    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        tids, r_idx = self.template_ids(cols)
        return self._pool.assemble(tids, r_idx, self._layout.resolutions)

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Native columns read off the records (vectorised), verified by re-encoding.

        Every block has one depthwise conv: its kernel is ``ks``, its width the
        expanded width (hence ``e``), and the next 1x1 bias-free conv (the
        projection) names the stage.  Entries beyond a stage's depth do not
        reach the records: they come back as the smallest choices (3, 3).
        Raises :class:`NativeError` for records that are not from this space.
        """
        from ..spec import Flag, Op

        n = len(batch)
        rec, off = batch.records, batch.offsets
        if n == 0:
            return {"ks": np.zeros((0, N_BLOCKS), np.int8), "e": np.zeros((0, N_BLOCKS), np.int8),
                    "d": np.zeros((0, N_STAGES), np.int8), "r": np.zeros(0, np.int16)}
        if (batch.lengths == 0).any():
            raise NativeError(self.name, int(np.argmax(batch.lengths == 0)), "records", "empty architecture")
        L = self._layout
        conv = rec["op"] == Op.CONV2D
        dw = conv & (rec["groups"] > 1) & (rec["groups"] == rec["out_channels"])
        proj = conv & (rec["groups"] == 1) & (rec["kernel_h"] == 1) & ((rec["flags"] & Flag.BIAS) == 0)
        arch_of = np.repeat(np.arange(n), batch.lengths)
        dw_at = np.flatnonzero(dw)
        first = np.searchsorted(dw_at, off[:-1])          # each candidate's first block's dw
        keep = np.ones(dw_at.size, bool)
        keep[first[first < dw_at.size]] = False
        dw_at = dw_at[keep]
        cand = arch_of[dw_at]
        proj_at = np.flatnonzero(proj)
        nxt = np.searchsorted(proj_at, dw_at, side="right")
        if dw_at.size and (nxt >= proj_at.size).any():
            bad = int(cand[np.argmax(nxt >= proj_at.size)])
            raise NativeError(self.name, bad, "records", "a depthwise conv without its projection")
        width = rec["out_channels"][proj_at[nxt]] if dw_at.size else np.zeros(0, np.int32)
        widths = np.asarray(L.stage_widths)
        stage = np.searchsorted(widths, width)   # widths increase stage by stage
        ok = (stage < N_STAGES) & (widths[np.minimum(stage, N_STAGES - 1)] == width)
        if not ok.all():
            raise NativeError(self.name, int(cand[np.argmax(~ok)]), "records",
                              f"block width {int(width[np.argmax(~ok)])} is no OFA stage width")
        # position of each block in its stage, and each stage's depth
        key = cand * N_STAGES + stage
        d = np.bincount(key, minlength=n * N_STAGES).reshape(n, N_STAGES)
        starts = np.cumsum(d.reshape(-1)) - d.reshape(-1)
        pos = np.arange(dw_at.size) - starts[key]
        if (d < min(D_CHOICES)).any() or (d > max(D_CHOICES)).any():
            raise NativeError(self.name, int(np.argwhere((d < min(D_CHOICES)) | (d > max(D_CHOICES)))[0, 0]),
                              "d", "stage depth out of range")
        # expand ratio: the choice whose make_divisible(round(cin * e)) is the width
        prev = np.asarray([L.first_block_width] + list(L.stage_widths[:-1]))
        cin = np.where(pos == 0, prev[stage], widths[stage])
        mid = rec["out_channels"][dw_at].astype(np.int64)
        e = np.zeros(dw_at.size, np.int8)
        for choice in E_CHOICES:
            table = np.array([make_divisible(round(c * choice), DIVISOR) for c in range(max(widths) + 1)])
            e[(e == 0) & (table[cin] == mid)] = choice
        ks = np.full((n, N_BLOCKS), KS_CHOICES[0], np.int8)
        ee = np.full((n, N_BLOCKS), E_CHOICES[0], np.int8)
        slot = stage * MAX_DEPTH + np.minimum(pos, MAX_DEPTH - 1)
        ks[cand, slot] = rec["kernel_h"][dw_at]
        ee[cand, slot] = np.where(e == 0, E_CHOICES[0], e)
        cols = {"ks": ks, "e": ee, "d": d.astype(np.int8), "r": rec["size_h"][off[:-1]].astype(np.int16)}
        try:
            self._check(cols)
        except NativeError as exc:
            raise NativeError(self.name, exc.candidate, exc.field, f"read from records: {exc.reason}") from None
        return self._verify_decoded(batch, cols)
