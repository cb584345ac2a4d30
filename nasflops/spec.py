"""Layer-spec records, ragged batches of them, and a builder for writing nets.

A network is a 1-D numpy array of :data:`LAYER_DTYPE` records, one per layer,
in an order where every layer's inputs come before it (a topological order).
Layer 0 is the network input (channels, height, width), so resolution is part
of the candidate.  Shapes are never stored: the core infers them.

A batch of architectures is a :class:`SpecBatch`: one contiguous record array
and an int64 ``offsets`` array of length ``n + 1``, architecture ``i`` being
``records[offsets[i]:offsets[i + 1]]`` -- the layout of an Arrow list array.

Record fields (see ``nasflops/_core.pxd`` for the C struct they mirror):

============  =================================================================
op            :class:`Op` code
act           :class:`Act` kind (``op == Op.ACT`` only)
flags         :class:`Flag` bits: bias, affine, ceil_mode, exclude_pad, inplace
out_channels  conv/linear outputs; input channels; slice channel count; pad: channels
groups        conv groups; channel-shuffle groups; slice: step (0 = 1)
start         slice: first channel kept; pad: channels of zeros in front
size_h/_w     input: height/width; adaptive avg pool, pad, crop: output size
kernel_h/_w   conv/pool kernel
stride_h/_w   conv/pool stride; crop: step
pad_h/_w      conv/pool zero padding on each side; pad: rows/columns of zeros
              above/left; crop: first row/column kept
dilation_h/_w conv/max-pool dilation
input0..3     indices (within the architecture) of the layers feeding this one,
              used slots first, -1 for unused
extra         concat: axis joined (0 channels, 1 height, 2 width); mean: axes
              reduced (bits 1 channels, 2 height, 4 width)
============  =================================================================
"""
from __future__ import annotations

import contextlib
import enum
from typing import Iterable, Sequence

import numpy as np

from . import _core

__all__ = ["LAYER_DTYPE", "MAX_INPUTS", "Op", "Act", "Flag", "Call", "SpecBatch", "Net",
           "empty_records", "parse_act", "ACT_ALIASES"]

#: numpy dtype of one layer record, taken from the C struct ``Layer``.
LAYER_DTYPE: np.dtype = _core.LAYER_DTYPE
#: Number of input slots per record (``input0`` .. ``input3``).
MAX_INPUTS: int = _core.MAX_LAYER_INPUTS
INPUT_FIELDS = tuple(f"input{k}" for k in range(MAX_INPUTS))

Op = enum.IntEnum("Op", {k.upper(): v for k, v in _core.OPS.items()})
Op.__doc__ = "Operation codes of layer records (stable: stored in files)."
Act = enum.IntEnum("Act", {k.upper(): v for k, v in _core.ACTS.items()})
Act.__doc__ = "Activation kinds for ``Op.ACT`` records."
Flag = enum.IntFlag("Flag", {k.upper(): v for k, v in _core.FLAGS.items()})
Flag.__doc__ = "Bits of the ``flags`` field."
Call = enum.IntEnum("Call", {k.upper(): v for k, v in _core.CALLS.items()})
Call.__doc__ = ("How torch code invokes an op (``call`` field): a module (the default), a "
                "function, a tensor method or an operator.")

#: activation names accepted wherever a kind is named (spaces, YAML, the CLI):
#: each :class:`Act` by its own name, plus the spellings papers and code use
ACT_ALIASES: dict[str, str] = {
    "h_swish": "hardswish", "hswish": "hardswish", "hard_swish": "hardswish",
    "h_sigmoid": "hardsigmoid", "hsigmoid": "hardsigmoid", "hard_sigmoid": "hardsigmoid",
    "swish": "silu",
}


def parse_act(kind) -> Act:
    """The :class:`Act` named by ``kind`` (a name, an alias or a code).

    >>> parse_act("h_swish"), parse_act("relu")
    (<Act.HARDSWISH: 2>, <Act.RELU: 0>)
    """
    if isinstance(kind, str):
        name = ACT_ALIASES.get(kind.lower(), kind.lower())
        try:
            return Act[name.upper()]
        except KeyError:
            known = sorted({a.name.lower() for a in Act} | set(ACT_ALIASES))
            raise ValueError(f"unknown activation {kind!r}; known: {', '.join(known)}") from None
    return Act(int(kind))


def op_name(code: int) -> str:
    """Lower-case name of an op code, or ``'op<code>'`` when unknown."""
    try:
        return Op(int(code)).name.lower()
    except ValueError:
        return f"op{int(code)}"


def act_name(code: int) -> str:
    """Lower-case name of an activation kind, or ``'act<code>'``."""
    try:
        return Act(int(code)).name.lower()
    except ValueError:
        return f"act{int(code)}"


def empty_records(n: int) -> np.ndarray:
    """``n`` zeroed records with every input slot unused (-1)."""
    rec = np.zeros(n, dtype=LAYER_DTYPE)
    for f in INPUT_FIELDS:
        rec[f] = -1
    return rec


def _as_records(arr) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype != LAYER_DTYPE:
        raise TypeError(f"expected records of nasflops.LAYER_DTYPE, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"records must be 1-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class SpecBatch:
    """A ragged batch of architectures: one record array plus offsets.

    Parameters
    ----------
    records : ndarray of LAYER_DTYPE
        All layers of all architectures, back to back.
    offsets : array of int
        Length ``n + 1``, non-decreasing, ``offsets[0] == 0`` and
        ``offsets[-1] == len(records)``.

    Examples
    --------
    >>> import nasflops
    >>> a = nasflops.Net(3, 32, 32); _ = a.conv(a.input, 16, 3, padding=1)
    >>> b = nasflops.Net(3, 64, 64); _ = b.conv(b.input, 8, 1)
    >>> batch = nasflops.SpecBatch.from_list([a.records, b.records])
    >>> len(batch), batch.lengths.tolist()
    (2, [2, 2])
    >>> batch[1]["out_channels"].tolist()
    [3, 8]
    """

    __slots__ = ("records", "offsets")

    def __init__(self, records, offsets):
        records = _as_records(records)
        offsets = np.asarray(offsets)
        if offsets.size and offsets.dtype.kind not in "iu":
            raise TypeError(f"offsets must be integers, got dtype {offsets.dtype}")
        # a private, read-only copy: a caller reusing its buffer cannot change
        # a validated batch behind the core's back
        offsets = np.array(offsets, dtype=np.int64, copy=True)
        if offsets.ndim != 1 or offsets.shape[0] < 1:
            raise ValueError("offsets must be 1-D with at least one entry")
        if offsets[0] != 0 or offsets[-1] != records.shape[0]:
            raise ValueError(
                f"offsets must start at 0 and end at len(records)={records.shape[0]}, "
                f"got {offsets[0]} .. {offsets[-1]}")
        if offsets.shape[0] > 1 and np.any(offsets[1:] < offsets[:-1]):
            bad = int(np.argmax(offsets[1:] < offsets[:-1]))
            raise ValueError(f"offsets must be non-decreasing (architecture {bad})")
        offsets.setflags(write=False)
        self.records = records
        self.offsets = offsets

    @classmethod
    def from_list(cls, archs: Iterable) -> "SpecBatch":
        """Batch from a sequence of per-architecture record arrays (or :class:`Net`)."""
        parts = [_as_records(a.records if isinstance(a, Net) else a) for a in archs]
        offsets = np.zeros(len(parts) + 1, dtype=np.int64)
        if parts:
            np.cumsum([len(p) for p in parts], out=offsets[1:])
            records = np.concatenate(parts)
        else:
            records = np.zeros(0, dtype=LAYER_DTYPE)
        return cls(records, offsets)

    @classmethod
    def concat(cls, batches: Sequence["SpecBatch"]) -> "SpecBatch":
        """Concatenate batches, in order."""
        batches = list(batches)
        if not batches:
            return cls(np.zeros(0, dtype=LAYER_DTYPE), np.zeros(1, dtype=np.int64))
        records = np.concatenate([b.records for b in batches])
        shift = np.cumsum([0] + [len(b.records) for b in batches[:-1]])
        offsets = np.concatenate([[0]] + [b.offsets[1:] + s for b, s in zip(batches, shift)])
        return cls(records, offsets.astype(np.int64))

    @property
    def lengths(self) -> np.ndarray:
        """Number of layers of each architecture."""
        return np.diff(self.offsets)

    @property
    def n_layers(self) -> int:
        """Total number of layer records in the batch."""
        return int(self.records.shape[0])

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            n = len(self)
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"architecture {key} out of range for a batch of {n}")
            return self.records[self.offsets[i]:self.offsets[i + 1]]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                stop = max(stop, start)
                lo, hi = self.offsets[start], self.offsets[stop]
                return SpecBatch(self.records[lo:hi], self.offsets[start:stop + 1] - lo)
            key = np.arange(start, stop, step)
        return self.take(key)

    def take(self, indices) -> "SpecBatch":
        """New batch holding the architectures at ``indices`` (vectorised gather)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for a batch of {n}")
        idx = np.where(idx < 0, idx + n, idx)
        starts = self.offsets[idx]
        lens = self.offsets[idx + 1] - starts
        offsets = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        # position of every output record in the source buffer
        src = np.repeat(starts - offsets[:-1], lens) + np.arange(offsets[-1])
        return SpecBatch(np.take(self.records, src), offsets)  # np.take: ~3x fancy indexing

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"SpecBatch({len(self)} architectures, {self.n_layers} layers)"


_FIELD_INDEX = {name: i for i, name in enumerate(LAYER_DTYPE.names)}
_OP, _CALL, _INPUT0 = _FIELD_INDEX["op"], _FIELD_INDEX["call"], _FIELD_INDEX["input0"]
_BLANK_ROW = [0] * len(LAYER_DTYPE.names)
for _f in INPUT_FIELDS:
    _BLANK_ROW[_FIELD_INDEX[_f]] = -1
# the input slots are consecutive fields
assert [_FIELD_INDEX[f] for f in INPUT_FIELDS] == list(range(_INPUT0, _INPUT0 + MAX_INPUTS))


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


class Net:
    """Write one architecture by hand, layer by layer.

    Every method appends one record (``concat``/``add`` of more than four
    tensors append a chain) and returns the index of the new layer, to be
    passed as the input of later layers.  Nothing is checked here: the core
    checks everything when the net is scored, and names the layer at fault.

    Parameters
    ----------
    channels, height, width : int
        The network input (per sample; the batch size is a scoring option).

    Examples
    --------
    A residual block:

    >>> import nasflops
    >>> net = nasflops.Net(16, 32, 32)
    >>> x = net.input
    >>> y = net.conv(x, 16, 3, padding=1)
    >>> y = net.bn(y)
    >>> y = net.act(y, "relu")
    >>> out = net.add(x, y)
    >>> int(nasflops.score(net.records)["macs"][0])
    2359296
    """

    def __init__(self, channels: int, height: int, width: int):
        # one list of field values per record (LAYER_DTYPE's order): cheaper to
        # append than numpy scalars, made into records in one go
        self._rows: list[list[int]] = []
        self._call = int(Call.MODULE)
        row = _BLANK_ROW.copy()
        row[_OP] = int(Op.INPUT)
        for k, v in (("out_channels", channels), ("size_h", height), ("size_w", width)):
            row[_FIELD_INDEX[k]] = int(v)
        self._rows.append(row)

    input = 0
    """Index of the network input layer."""

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def last(self) -> int:
        """Index of the most recently added layer."""
        return len(self._rows) - 1

    @property
    def records(self) -> np.ndarray:
        """The architecture as a record array (a copy)."""
        return np.array([tuple(r) for r in self._rows], dtype=LAYER_DTYPE)

    def get(self, layer: int, field: str) -> int:
        """One field of a record already written.

        >>> net = Net(3, 8, 8)
        >>> net.get(net.conv(net.input, 4, 3), "kernel_h")
        3
        """
        return self._rows[layer][_FIELD_INDEX[field]]

    def set(self, layer: int, **fields) -> None:
        """Change fields of a record already written (``net.set(i, call=...)``).

        >>> net = Net(3, 8, 8)
        >>> i = net.conv(net.input, 4, 3)
        >>> net.set(i, flags=int(Flag.BIAS))
        >>> int(net.records["flags"][i])
        1
        """
        row = self._rows[layer]
        for k, v in fields.items():
            row[_FIELD_INDEX[k]] = int(v)

    @contextlib.contextmanager
    def calling(self, call):
        """Records added inside the block carry call kind ``call`` (a
        :class:`Call` or its name): how torch code invokes them, which the
        hook-tool conventions weigh.

        >>> import nasflops
        >>> net = nasflops.Net(8, 4, 4)
        >>> with net.calling("function"):
        ...     _ = net.act(net.input, "relu")
        >>> nasflops.Call(int(net.records["call"][1])).name
        'FUNCTION'
        """
        old = self._call
        self._call = int(Call[call.upper()] if isinstance(call, str) else Call(call))
        try:
            yield self
        finally:
            self._call = old

    def _append(self, op: int, inputs: Sequence[int], **fields) -> int:
        if len(inputs) > MAX_INPUTS:
            raise ValueError(f"a record takes at most {MAX_INPUTS} inputs")
        row = _BLANK_ROW.copy()
        row[_OP], row[_CALL] = int(op), self._call
        for k, src in enumerate(inputs):
            row[_INPUT0 + k] = int(src)
        for k, v in fields.items():
            row[_FIELD_INDEX[k]] = int(v)
        self._rows.append(row)
        return len(self._rows) - 1

    def _window(self, op, x, kernel, stride, padding, dilation, flags, **extra) -> int:
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(stride, "stride")
        ph, pw = _pair(padding, "padding")
        dh, dw = _pair(dilation, "dilation")
        return self._append(op, [x], kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                            pad_h=ph, pad_w=pw, dilation_h=dh, dilation_w=dw,
                            flags=flags, **extra)

    # -- layers with weights ------------------------------------------------
    def conv(self, x: int, out_channels: int, kernel, stride=1, padding=0,
             dilation=1, groups: int = 1, bias: bool = False) -> int:
        """2-D convolution (``nn.Conv2d``); ``groups=in_channels`` is depthwise."""
        return self._window(Op.CONV2D, x, kernel, stride, padding, dilation,
                            Flag.BIAS if bias else 0, out_channels=out_channels,
                            groups=groups)

    def linear(self, x: int, out_features: int, bias: bool = True) -> int:
        """Fully connected layer on a 1x1 input (flatten or pool first)."""
        return self._append(Op.LINEAR, [x], out_channels=out_features,
                            flags=Flag.BIAS if bias else 0)

    def bn(self, x: int, affine: bool = True) -> int:
        """Batch norm (inference: running statistics)."""
        return self._append(Op.BATCHNORM, [x], flags=Flag.AFFINE if affine else 0)

    def layernorm(self, x: int, affine: bool = True) -> int:
        """Layer norm over the channels at each position (ConvNeXt's LayerNorm2d)."""
        return self._append(Op.LAYERNORM, [x], flags=Flag.AFFINE if affine else 0)

    def scale(self, x: int, bias: bool = False) -> int:
        """Learned per-channel scale (ConvNeXt's layer scale)."""
        return self._append(Op.SCALE, [x], flags=Flag.BIAS if bias else 0)

    # -- element-wise -------------------------------------------------------
    def act(self, x: int, kind: str | int, inplace: bool = False) -> int:
        """Activation: relu, relu6, hardswish, hardsigmoid, sigmoid, silu, gelu, tanh,
        or element-wise arithmetic with a constant: add_const, sub_const,
        mul_const, div_const, pow_const, clamp, sqrt (``x + 3``, ``x / 6``, ...:
        the constant's value is not part of the record).

        ``inplace=True`` overwrites the input (allocates nothing)."""
        return self._append(Op.ACT, [x], act=int(parse_act(kind)),
                            flags=Flag.INPLACE if inplace else 0)

    def softmax(self, x: int) -> int:
        """Softmax over channels."""
        return self._append(Op.SOFTMAX, [x])

    def log_softmax(self, x: int) -> int:
        """Log-softmax over channels."""
        return self._append(Op.LOG_SOFTMAX, [x])

    def add(self, *xs: int, inplace: bool = False) -> int:
        """Element-wise sum of two or more same-shape tensors.

        ``inplace=True`` accumulates into the first input (torch's ``out += x``):
        no new tensor is allocated."""
        if len(xs) < 2:
            raise ValueError("add needs at least two inputs")
        flags = Flag.INPLACE if inplace else 0
        head, rest = list(xs[:MAX_INPUTS]), list(xs[MAX_INPUTS:])
        out = self._append(Op.ADD, head, flags=flags)
        while rest:
            take = rest[:MAX_INPUTS - 1]
            rest = rest[MAX_INPUTS - 1:]
            out = self._append(Op.ADD, [out] + take, flags=flags)
        return out

    def mul(self, x: int, gate: int, inplace: bool = False) -> int:
        """Element-wise product; ``gate`` may broadcast (a C x 1 x 1 SE gate).
        ``inplace=True``: ``x *= gate``."""
        return self._append(Op.MUL, [x, gate], flags=Flag.INPLACE if inplace else 0)

    def sub(self, x: int, y: int, inplace: bool = False) -> int:
        """Element-wise difference ``x - y``; ``y`` may broadcast like a gate."""
        return self._append(Op.SUB, [x, y], flags=Flag.INPLACE if inplace else 0)

    def div(self, x: int, y: int, inplace: bool = False) -> int:
        """Element-wise quotient ``x / y``; ``y`` may broadcast like a gate."""
        return self._append(Op.DIV, [x, y], flags=Flag.INPLACE if inplace else 0)

    def concat(self, *xs: int, axis: int = 0) -> int:
        """Concatenate along channels (``axis=0``), height (1) or width (2).

        Past four inputs the join is a chain whose later records carry
        ``Flag.INPLACE``: each grows the first record's buffer, so the chain
        allocates, reads and writes exactly what one ``torch.cat`` does."""
        if not xs:
            raise ValueError("concat needs at least one input")
        head, rest = list(xs[:MAX_INPUTS]), list(xs[MAX_INPUTS:])
        out = self._append(Op.CONCAT, head, extra=axis)
        while rest:
            take = rest[:MAX_INPUTS - 1]
            rest = rest[MAX_INPUTS - 1:]
            out = self._append(Op.CONCAT, [out] + take, flags=Flag.INPLACE, extra=axis)
        return out

    # -- pooling ------------------------------------------------------------
    def maxpool(self, x: int, kernel, stride=None, padding=0, dilation=1,
                ceil_mode: bool = False) -> int:
        """Max pooling; ``stride`` defaults to the kernel, as in torch."""
        return self._window(Op.MAXPOOL, x, kernel, kernel if stride is None else stride,
                            padding, dilation, Flag.CEIL_MODE if ceil_mode else 0)

    def avgpool(self, x: int, kernel, stride=None, padding=0, ceil_mode: bool = False,
                count_include_pad: bool = True) -> int:
        """Average pooling; ``stride`` defaults to the kernel, as in torch."""
        flags = (Flag.CEIL_MODE if ceil_mode else 0) | (0 if count_include_pad else Flag.EXCLUDE_PAD)
        return self._window(Op.AVGPOOL, x, kernel, kernel if stride is None else stride,
                            padding, 1, flags)

    def adaptive_avgpool(self, x: int, size) -> int:
        """Adaptive average pooling to ``size`` (an int or a pair)."""
        h, w = _pair(size, "size")
        return self._append(Op.ADAPTIVE_AVGPOOL, [x], size_h=h, size_w=w)

    def global_avgpool(self, x: int) -> int:
        """Global average pooling (adaptive to 1 x 1)."""
        return self.adaptive_avgpool(x, 1)

    def mean(self, x: int, channels: bool = False, height: bool = False,
             width: bool = False) -> int:
        """Mean over the chosen axes, each reduced to 1 (``x.mean(1, keepdim=True)``
        is ``channels=True``)."""
        mask = (1 if channels else 0) | (2 if height else 0) | (4 if width else 0)
        return self._append(Op.MEAN, [x], extra=mask)

    # -- shape and wiring ---------------------------------------------------
    def flatten(self, x: int) -> int:
        """Flatten C x H x W to features (a view)."""
        return self._append(Op.FLATTEN, [x])

    def identity(self, x: int) -> int:
        """Identity (a view; NAS "skip_connect")."""
        return self._append(Op.IDENTITY, [x])

    def zero(self, x: int) -> int:
        """Zeros shaped like the input (NAS "none"); costs nothing."""
        return self._append(Op.ZERO, [x])

    def copy(self, x: int) -> int:
        """A copy of the input (``x.permute(...).contiguous()``, ``x.clone()``):
        a new tensor, no arithmetic."""
        return self._append(Op.COPY, [x])

    def dropout(self, x: int) -> int:
        """Dropout (identity at inference; a view)."""
        return self._append(Op.DROPOUT, [x])

    def channel_shuffle(self, x: int, groups: int) -> int:
        """ShuffleNet channel shuffle."""
        return self._append(Op.CHANNEL_SHUFFLE, [x], groups=groups)

    def slice(self, x: int, start: int, count: int, step: int = 1) -> int:
        """Channels ``start, start + step, ...`` (``count`` of them) of the input:
        a view (``chunk``, ``x[:, a:b]``, ``x[:, 1::2]``)."""
        return self._append(Op.SLICE, [x], start=start, out_channels=count,
                            groups=step if step != 1 else 0)

    def crop(self, x: int, start, size, step=1) -> int:
        """Spatial window (a view): rows ``start[0] + i * step[0]`` for
        ``i < size[0]``, columns alike (``x[:, :, 1:, 1:]``, ``x[:, :, ::2, ::2]``)."""
        (sh, sw), (zh, zw), (th, tw) = (_pair(start, "start"), _pair(size, "size"),
                                        _pair(step, "step"))
        return self._append(Op.CROP, [x], pad_h=sh, pad_w=sw, size_h=zh, size_w=zw,
                            stride_h=th, stride_w=tw)

    def pad(self, x: int, out_shape, offset=(0, 0, 0)) -> int:
        """Zero padding: the input placed at ``offset`` (channels, rows, columns
        of zeros before it) in a zero tensor of ``out_shape`` (C, H, W)."""
        c, h, w = (int(v) for v in out_shape)
        oc, oh, ow = (int(v) for v in offset)
        return self._append(Op.PAD, [x], out_channels=c, size_h=h, size_w=w, start=oc,
                            pad_h=oh, pad_w=ow)
