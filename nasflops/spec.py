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
call          :class:`Call`: module (default), function, method or operator
flags         :class:`Flag` bits: bias, affine, ceil_mode, exclude_pad, inplace,
              called_again, causal, tokens, matrix, copy, flat, tied, checkpoint
out_channels  conv/linear outputs; input channels; slice channel count; pad: channels;
              embedding dimension; each expert's outputs
groups        conv groups; channel-shuffle groups; slice: step (0 = 1);
              attention/rope heads; experts
start         slice: first channel (token) kept; pad: channels of zeros in front
size_h/_w     input: height/width; adaptive avg pool, pad, crop: output size;
              kv_cache: past tokens (size_h); expert_linear: experts per token,
              top-k (size_h)
kernel_h/_w   conv/pool kernel
stride_h/_w   conv/pool stride; crop: step
pad_h/_w      conv/pool zero padding on each side; pad: rows/columns of zeros
              above/left; crop: first row/column kept
dilation_h/_w conv/max-pool dilation
input0..3     indices (within the architecture) of the layers feeding this one,
              used slots first, -1 for unused
kv_heads      attention: key/value heads (0: as many as heads)
extra         concat: axis joined (0 channels, 1 height, 2 width); mean: axes
              reduced (bits 1 channels, 2 height, 4 width); param_add: learned
              values; embedding: vocabulary size
============  =================================================================
"""
from __future__ import annotations

import contextlib
import enum
import operator
from typing import Iterable, Sequence

import numpy as np

from . import _core

__all__ = ["LAYER_DTYPE", "MAX_INPUTS", "Op", "Act", "Flag", "Call", "SpecBatch", "Net",
           "empty_records", "parse_act", "ACT_ALIASES", "LAYOUTS", "mark_called_again"]

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

#: tensor layouts the core infers (layer_table's ``layout`` column): images
#: (C x H x W), tokens (g groups of an H x W grid, channels last; a sequence
#: is H = L, W = 1) and matrix stacks (g matrices of H x W)
LAYOUTS: tuple[str, ...] = _core.LAYOUTS

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
#: field -> (lowest, highest) value the record can hold
_FIELD_BOUNDS = {name: (int(np.iinfo(LAYER_DTYPE[name]).min), int(np.iinfo(LAYER_DTYPE[name]).max))
                 for name in LAYER_DTYPE.names}


def _field_value(layer: int, op: int, field: str, value) -> int:
    """``value`` as the integer a record field holds, or the caller's mistake
    named: never numpy's OverflowError, a silently wrapped field or a
    truncated float."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"layer {layer} ({op_name(op)}): {field} must be an integer, "
                        f"got {value!r}") from None
    lo, hi = _FIELD_BOUNDS[field]
    if not lo <= v <= hi:
        raise ValueError(f"layer {layer} ({op_name(op)}): {field}={v} does not fit the record's "
                         f"{LAYER_DTYPE[field].name} field ({lo}..{hi})")
    return v


def _continues(records, names, i: int, j: int) -> bool:
    """Whether record ``i`` continues the call that made record ``j`` (a
    chained add or concat: one torch call written as several records)."""
    return (j >= 0 and names[j] == names[i] and int(records[i]["op"]) in (Op.ADD, Op.CONCAT)
            and records[j]["op"] == records[i]["op"])


def mark_called_again(records, names: Sequence[str]) -> np.ndarray:
    """A copy of ``records`` in which every module call whose module is
    called again later carries :attr:`Flag.CALLED_AGAIN`.

    ``names`` gives each record's module (its path in the torch model, such
    as ``"layer1.0.relu"``); records with the same name are calls of one
    module instance.  Unnamed records (``""``), the input and calls that
    are not module calls are left alone, and the records of one chained
    add or concat are one call.  A module's parameters are then counted
    once, at its last call, and tools that keep a module's last call only
    (torchstat) can be reproduced.

    Examples
    --------
    >>> import nasflops
    >>> net = nasflops.Net(8, 4, 4)
    >>> x = net.act(net.input, "relu", name="relu")
    >>> y = net.act(net.add(x, net.input), "relu", name="relu")   # the same module again
    >>> [bool(f & nasflops.Flag.CALLED_AGAIN) for f in net.records["flags"]]
    [False, True, False, False]
    """
    records = np.array(_as_records(records), copy=True)
    names = [str(n) for n in names]
    if len(names) != len(records):
        raise ValueError(f"{len(names)} names for {len(records)} records: give one name per "
                         "record ('' for none)")
    call_of: dict[int, int] = {}
    last_call: dict[str, int] = {}
    for i in range(1, len(records)):
        if not names[i] or int(records[i]["call"]) != Call.MODULE:
            continue
        j = int(records[i]["input0"])
        same_call = _continues(records, names, i, j) and call_of.get(j) == last_call.get(names[i])
        call_of[i] = call_of[j] if same_call else i
        last_call[names[i]] = call_of[i]
    again = [i for i, c in call_of.items() if c != last_call[names[i]]]
    if again:
        records["flags"][again] |= int(Flag.CALLED_AGAIN)
    return records


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

    Every method also takes ``name``: the path of the torch module the
    record stands for (``"layer1.0.conv1"``), kept in :attr:`names`.  Two
    module calls with one name are calls of one module instance: the earlier
    ones are flagged ``called_again`` (:func:`mark_called_again`).

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
        self._names: list[str] = [""]
        self._modules: dict[str, None] = {}     # module names, registration order
        self._call = int(Call.MODULE)
        row = _BLANK_ROW.copy()
        row[_OP] = int(Op.INPUT)
        for k, v in (("out_channels", channels), ("size_h", height), ("size_w", width)):
            row[_FIELD_INDEX[k]] = _field_value(0, Op.INPUT, k, v)
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
        """The architecture as a record array (a copy); earlier calls of a
        named module called again carry ``Flag.CALLED_AGAIN``."""
        rows = np.array([tuple(r) for r in self._rows], dtype=LAYER_DTYPE)
        return mark_called_again(rows, self._names) if self._modules else rows

    @property
    def names(self) -> list[str]:
        """One name per record: its torch module path, ``""`` when unnamed."""
        return list(self._names)

    @property
    def modules(self) -> list[str]:
        """The named modules in their order of registration: those declared
        with :meth:`declare` first, then in order of first call.

        >>> import nasflops
        >>> net = nasflops.Net(3, 8, 8)
        >>> net.declare("conv", "bn", "unused")
        >>> x = net.bn(net.conv(net.input, 4, 3, name="conv"), name="bn")
        >>> _ = net.act(x, "relu", name="relu")
        >>> net.modules
        ['conv', 'bn', 'unused', 'relu']
        """
        return list(self._modules)

    def declare(self, *names: str) -> None:
        """Register module names before their first call, in the order the
        torch model registers them (``named_modules``), where that differs
        from the order they run in; a declared module never called is a
        module that exists and never runs."""
        for n in names:
            self._modules.setdefault(str(n), None)

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
            row[_FIELD_INDEX[k]] = _field_value(layer, int(row[_OP]), k, v)

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

    def append(self, op, inputs: Sequence[int], name: str = "", **fields) -> int:
        """One record of any op with its raw fields (``out_channels=...``,
        ``flags=...``; see the module docstring); the other methods are
        shorthands for it.  Returns the new layer's index.

        >>> import nasflops
        >>> net = nasflops.Net(1, 6, 1)
        >>> e = net.append(nasflops.Op.EMBEDDING, [net.input], out_channels=8, extra=100)
        >>> int(nasflops.score(net)["params"][0])
        800
        """
        return self._append(int(op), inputs, name, **fields)

    def _append(self, op: int, inputs: Sequence[int], name: str = "", **fields) -> int:
        if len(inputs) > MAX_INPUTS:
            raise ValueError(f"a record takes at most {MAX_INPUTS} inputs")
        name = str(name or "")
        self._names.append(name)
        if name and self._call == Call.MODULE:
            self._modules.setdefault(name, None)
        row = _BLANK_ROW.copy()
        row[_OP], row[_CALL] = int(op), self._call
        layer = len(self._rows)
        for k, src in enumerate(inputs):
            row[_INPUT0 + k] = _field_value(layer, op, INPUT_FIELDS[k], src)
        for k, v in fields.items():
            row[_FIELD_INDEX[k]] = _field_value(layer, op, k, v)
        self._rows.append(row)
        return len(self._rows) - 1

    def _window(self, op, x, kernel, stride, padding, dilation, flags, name, **extra) -> int:
        kh, kw = _pair(kernel, "kernel")
        sh, sw = _pair(stride, "stride")
        ph, pw = _pair(padding, "padding")
        dh, dw = _pair(dilation, "dilation")
        return self._append(op, [x], kernel_h=kh, kernel_w=kw, stride_h=sh, stride_w=sw,
                            pad_h=ph, pad_w=pw, dilation_h=dh, dilation_w=dw,
                            flags=flags, name=name, **extra)

    # -- layers with weights ------------------------------------------------
    def conv(self, x: int, out_channels: int, kernel, stride=1, padding=0,
             dilation=1, groups: int = 1, bias: bool = False, name: str = "") -> int:
        """2-D convolution (``nn.Conv2d``); ``groups=in_channels`` is depthwise."""
        return self._window(Op.CONV2D, x, kernel, stride, padding, dilation,
                            Flag.BIAS if bias else 0, name, out_channels=out_channels,
                            groups=groups)

    def linear(self, x: int, out_features: int, bias: bool = True, tied: bool = False,
               name: str = "") -> int:
        """Fully connected layer on a 1x1 input (flatten or pool first) or on
        every token.  ``tied=True``: the weight is an embedding's table (a
        tied language-model head), counted there, not here; it is still read."""
        return self._append(Op.LINEAR, [x], name, out_channels=out_features,
                            flags=(Flag.BIAS if bias else 0) | (Flag.TIED if tied else 0))

    def bn(self, x: int, affine: bool = True, name: str = "") -> int:
        """Batch norm (inference: running statistics)."""
        return self._append(Op.BATCHNORM, [x], name, flags=Flag.AFFINE if affine else 0)

    def layernorm(self, x: int, affine: bool = True, name: str = "") -> int:
        """Layer norm over the channels at each position (ConvNeXt's LayerNorm2d)."""
        return self._append(Op.LAYERNORM, [x], name, flags=Flag.AFFINE if affine else 0)

    def scale(self, x: int, bias: bool = False, name: str = "") -> int:
        """Learned per-channel scale (ConvNeXt's layer scale)."""
        return self._append(Op.SCALE, [x], name, flags=Flag.BIAS if bias else 0)

    # -- element-wise -------------------------------------------------------
    def act(self, x: int, kind: str | int, inplace: bool = False, name: str = "") -> int:
        """Activation: relu, relu6, hardswish, hardsigmoid, sigmoid, silu, gelu, tanh,
        or element-wise arithmetic with a constant: add_const, sub_const,
        mul_const, div_const, pow_const, clamp, sqrt (``x + 3``, ``x / 6``, ...:
        the constant's value is not part of the record).

        ``inplace=True`` overwrites the input (allocates nothing)."""
        return self._append(Op.ACT, [x], name, act=int(parse_act(kind)),
                            flags=Flag.INPLACE if inplace else 0)

    def softmax(self, x: int, name: str = "") -> int:
        """Softmax over channels."""
        return self._append(Op.SOFTMAX, [x], name)

    def log_softmax(self, x: int, name: str = "") -> int:
        """Log-softmax over channels."""
        return self._append(Op.LOG_SOFTMAX, [x], name)

    def add(self, *xs: int, inplace: bool = False, name: str = "") -> int:
        """Element-wise sum of two or more same-shape tensors.

        ``inplace=True`` accumulates into the first input (torch's ``out += x``):
        no new tensor is allocated."""
        if len(xs) < 2:
            raise ValueError("add needs at least two inputs")
        flags = Flag.INPLACE if inplace else 0
        head, rest = list(xs[:MAX_INPUTS]), list(xs[MAX_INPUTS:])
        out = self._append(Op.ADD, head, name, flags=flags)
        while rest:
            take = rest[:MAX_INPUTS - 1]
            rest = rest[MAX_INPUTS - 1:]
            out = self._append(Op.ADD, [out] + take, name, flags=flags)
        return out

    def mul(self, x: int, gate: int, inplace: bool = False, name: str = "") -> int:
        """Element-wise product; ``gate`` may broadcast (a C x 1 x 1 SE gate).
        ``inplace=True``: ``x *= gate``."""
        return self._append(Op.MUL, [x, gate], name, flags=Flag.INPLACE if inplace else 0)

    def sub(self, x: int, y: int, inplace: bool = False, name: str = "") -> int:
        """Element-wise difference ``x - y``; ``y`` may broadcast like a gate."""
        return self._append(Op.SUB, [x, y], name, flags=Flag.INPLACE if inplace else 0)

    def div(self, x: int, y: int, inplace: bool = False, name: str = "") -> int:
        """Element-wise quotient ``x / y``; ``y`` may broadcast like a gate."""
        return self._append(Op.DIV, [x, y], name, flags=Flag.INPLACE if inplace else 0)

    def concat(self, *xs: int, axis: int = 0, name: str = "") -> int:
        """Concatenate along channels (``axis=0``), height (1: tokens of a
        sequence) or width (2).

        Past four inputs the join is a chain whose later records carry
        ``Flag.INPLACE``: each grows the first record's buffer, so the chain
        allocates, reads and writes exactly what one ``torch.cat`` does."""
        if not xs:
            raise ValueError("concat needs at least one input")
        head, rest = list(xs[:MAX_INPUTS]), list(xs[MAX_INPUTS:])
        out = self._append(Op.CONCAT, head, name, extra=axis)
        while rest:
            take = rest[:MAX_INPUTS - 1]
            rest = rest[MAX_INPUTS - 1:]
            out = self._append(Op.CONCAT, [out] + take, name, flags=Flag.INPLACE, extra=axis)
        return out

    # -- pooling ------------------------------------------------------------
    def maxpool(self, x: int, kernel, stride=None, padding=0, dilation=1,
                ceil_mode: bool = False, name: str = "") -> int:
        """Max pooling; ``stride`` defaults to the kernel, as in torch."""
        return self._window(Op.MAXPOOL, x, kernel, kernel if stride is None else stride,
                            padding, dilation, Flag.CEIL_MODE if ceil_mode else 0, name)

    def avgpool(self, x: int, kernel, stride=None, padding=0, ceil_mode: bool = False,
                count_include_pad: bool = True, name: str = "") -> int:
        """Average pooling; ``stride`` defaults to the kernel, as in torch."""
        flags = (Flag.CEIL_MODE if ceil_mode else 0) | (0 if count_include_pad else Flag.EXCLUDE_PAD)
        return self._window(Op.AVGPOOL, x, kernel, kernel if stride is None else stride,
                            padding, 1, flags, name)

    def adaptive_avgpool(self, x: int, size, name: str = "") -> int:
        """Adaptive average pooling to ``size`` (an int or a pair)."""
        h, w = _pair(size, "size")
        return self._append(Op.ADAPTIVE_AVGPOOL, [x], name, size_h=h, size_w=w)

    def global_avgpool(self, x: int, name: str = "") -> int:
        """Global average pooling (adaptive to 1 x 1)."""
        return self.adaptive_avgpool(x, 1, name)

    def mean(self, x: int, channels: bool = False, height: bool = False,
             width: bool = False, name: str = "") -> int:
        """Mean over the chosen axes, each reduced to 1 (``x.mean(1, keepdim=True)``
        is ``channels=True``)."""
        mask = (1 if channels else 0) | (2 if height else 0) | (4 if width else 0)
        return self._append(Op.MEAN, [x], name, extra=mask)

    # -- shape and wiring ---------------------------------------------------
    def flatten(self, x: int, name: str = "") -> int:
        """Flatten C x H x W to features (a view)."""
        return self._append(Op.FLATTEN, [x], name)

    def identity(self, x: int, name: str = "") -> int:
        """Identity (a view; NAS "skip_connect")."""
        return self._append(Op.IDENTITY, [x], name)

    def zero(self, x: int, name: str = "") -> int:
        """Zeros shaped like the input (NAS "none"); costs nothing."""
        return self._append(Op.ZERO, [x], name)

    def copy(self, x: int, name: str = "") -> int:
        """A copy of the input (``x.permute(...).contiguous()``, ``x.clone()``):
        a new tensor, no arithmetic."""
        return self._append(Op.COPY, [x], name)

    def dropout(self, x: int, name: str = "") -> int:
        """Dropout (identity at inference; a view)."""
        return self._append(Op.DROPOUT, [x], name)

    def channel_shuffle(self, x: int, groups: int, name: str = "") -> int:
        """ShuffleNet channel shuffle."""
        return self._append(Op.CHANNEL_SHUFFLE, [x], name, groups=groups)

    def slice(self, x: int, start: int, count: int, step: int = 1, tokens: bool = False,
              name: str = "") -> int:
        """Channels ``start, start + step, ...`` (``count`` of them) of the input:
        a view (``chunk``, ``x[:, a:b]``, ``x[:, 1::2]``); with ``tokens=True``,
        tokens of a sequence (``x[:, 0]``: ViT's class token)."""
        return self._append(Op.SLICE, [x], name, start=start, out_channels=count,
                            groups=step if step != 1 else 0, flags=Flag.TOKENS if tokens else 0)

    # -- tokens and attention -----------------------------------------------
    def tokens(self, x: int, flat: bool = False, name: str = "") -> int:
        """An image as tokens, channels last (a view): ``x.permute(0, 2, 3, 1)``,
        or with ``flat=True`` a sequence of H*W tokens (``x.flatten(2).transpose(1, 2)``)."""
        return self._append(Op.TOKENS, [x], name, flags=Flag.FLAT if flat else 0)

    def to_image(self, x: int, name: str = "") -> int:
        """Tokens on an H x W grid back to a C x H x W image (a view)."""
        return self._append(Op.TO_IMAGE, [x], name)

    def prepend(self, x: int, count: int = 1, name: str = "") -> int:
        """Prepend ``count`` learned tokens to a sequence (ViT's class token,
        DeiT's distillation token): ``count * C`` parameters, one copy."""
        return self._append(Op.PREPEND, [x], name, size_h=count)

    def param_add(self, x: int, params: int, inplace: bool = False, name: str = "") -> int:
        """Add a learned tensor of ``params`` values broadcast to ``x`` (position
        embeddings, relative-position biases; 0 for a constant such as a mask)."""
        return self._append(Op.PARAM_ADD, [x], name, extra=params, flags=Flag.INPLACE if inplace else 0)

    def view_as(self, x: int, shape, layout: str = "image", copy: bool = False, name: str = "") -> int:
        """Reshape (and permute) to ``shape`` in ``layout``: ``(C, H, W)`` for an
        image, ``(G, H, W, C)`` for tokens (G groups of an H x W grid, channels
        last), ``(G, H, W)`` for a stack of matrices.  ``copy=True`` when torch
        copies (``.contiguous()``, a reshape of a permuted tensor).

        >>> import nasflops
        >>> net = nasflops.Net(8, 4, 4)
        >>> t = net.tokens(net.input, flat=True)                   # 16 tokens of 8
        >>> h = net.view_as(t, (2, 16, 4), layout="matrix")        # 2 heads of 16 x 4
        >>> nasflops.layer_table(net)[["groups", "height", "width"]][-1].tolist()
        (2, 16, 4)
        """
        shape = tuple(int(v) for v in shape)
        if layout == "image" and len(shape) == 3:
            g, (c, h, w), flags = 1, shape, 0
        elif layout == "tokens" and len(shape) == 4:
            (g, h, w, c), flags = shape, Flag.TOKENS
        elif layout == "matrix" and len(shape) == 3:
            (g, h, w), c, flags = shape, 1, Flag.MATRIX
        else:
            raise ValueError(f"view_as: a {layout!r} shape is (C, H, W) for 'image', (G, H, W, C) "
                             f"for 'tokens' or (G, H, W) for 'matrix'; got {shape}")
        return self._append(Op.VIEW_AS, [x], name, groups=g, out_channels=c, size_h=h, size_w=w,
                            flags=flags | (Flag.COPY if copy else 0))

    def matmul(self, a: int, b: int, name: str = "") -> int:
        """Batched matrix product of two matrix stacks, ``a @ b``: (G, M, K) x
        (G or 1, K, N) -> (G, M, N)."""
        return self._append(Op.MATMUL, [a, b], name)

    def attention(self, q: int, k: int, v: int, heads: int, kv_heads: int = 0,
                  causal: bool = False, name: str = "") -> int:
        """Scaled dot-product attention of token tensors (``F.scaled_dot_product_attention``
        after splitting heads): ``heads`` query heads over ``kv_heads`` key/value
        heads (GQA/MQA; 0 = as many).  The score matrix counts in the memory
        metrics unless scored with ``fused_attention=True``."""
        return self._append(Op.ATTENTION, [q, k, v], name, groups=heads, kv_heads=kv_heads,
                            flags=Flag.CAUSAL if causal else 0)

    def mha(self, x: int, embed_dim: int, heads: int, bias: bool = True, name: str = "") -> int:
        """``nn.MultiheadAttention(embed_dim, heads, bias=bias)`` as self-attention
        on a token tensor: in-projection, attention and out-projection in one
        record, as hook tools see the module."""
        return self._append(Op.MHA, [x], name, out_channels=embed_dim, groups=heads,
                            flags=Flag.BIAS if bias else 0)

    # -- language models --------------------------------------------------
    def embedding(self, ids: int, vocab: int, dim: int, name: str = "") -> int:
        """Token embedding (``nn.Embedding(vocab, dim)``): token ids, one channel
        per position (an input of ``1 x L x 1``), to a sequence of ``dim``
        channels; ``vocab * dim`` parameters, the rows looked up read.

        >>> import nasflops
        >>> net = nasflops.Net(1, 16, 1)                  # 16 token ids
        >>> x = net.embedding(net.input, 1000, 64)
        >>> nasflops.layer_table(net)[["channels", "height", "layout", "params"]][-1].tolist()
        (64, 16, 1, 64000)
        """
        return self._append(Op.EMBEDDING, [ids], name, out_channels=dim, extra=vocab)

    def rmsnorm(self, x: int, affine: bool = True, name: str = "") -> int:
        """Root-mean-square norm over the channels at each position (Llama's
        RMSNorm): a weight of C parameters, no bias."""
        return self._append(Op.RMSNORM, [x], name, flags=Flag.AFFINE if affine else 0)

    def rope(self, x: int, heads: int, name: str = "") -> int:
        """Rotary position embedding of a token tensor of ``heads`` heads (each
        head's channels rotated in pairs): no parameters, same shape."""
        return self._append(Op.ROPE, [x], name, groups=heads)

    def kv_cache(self, x: int, past: int, name: str = "") -> int:
        """Append the tokens of ``x`` (new keys or values) to a cache holding
        ``past`` tokens; the result is the whole cache, ``past + L`` tokens (a
        view of it).  The cache is not an activation: its bytes are
        ``kv_cache_bytes``; the new entries are written, and readers of the
        result read all of it.

        >>> import nasflops
        >>> net = nasflops.Net(8, 1, 1)                   # one new token's key
        >>> k = net.kv_cache(net.tokens(net.input), past=99)
        >>> int(nasflops.score(net, phase="decode", act_dtype="bf16")["kv_cache_bytes"][0])
        1600
        """
        return self._append(Op.KV_CACHE, [x], name, size_h=past)

    def expert_linear(self, x: int, out_features: int, experts: int, top_k: int,
                      bias: bool = False, name: str = "") -> int:
        """``experts`` linear layers of a mixture of experts, each token routed
        to ``top_k`` of them: from one group of tokens (dispatch) or from the
        ``top_k`` groups an earlier expert linear made, to ``top_k`` groups.
        Parameters: all experts; active parameters: ``top_k`` of them."""
        return self._append(Op.EXPERT_LINEAR, [x], name, out_channels=out_features,
                            groups=experts, size_h=top_k, flags=Flag.BIAS if bias else 0)

    def moe_combine(self, x: int, weights: int, name: str = "") -> int:
        """Each token's ``top_k`` expert outputs (the groups of ``x``) weighted by
        its routing weights (``weights``, the router's probabilities for the
        same tokens) and summed: one group of tokens."""
        return self._append(Op.MOE_COMBINE, [x, weights], name)

    def checkpoint(self, x: int) -> int:
        """Mark layer ``x`` as a recomputation checkpoint (``Flag.CHECKPOINT``):
        training with full recomputation keeps its output and recomputes the
        layers after it, up to the next checkpoint, in the backward pass.
        Returns ``x``."""
        self.set(x, flags=self.get(x, "flags") | int(Flag.CHECKPOINT))
        return x

    def patch_merge(self, x: int, name: str = "") -> int:
        """Swin's patch merging: each 2 x 2 neighbourhood of a token grid to one
        token of 4C channels (odd sides zero-padded), one copy."""
        return self._append(Op.PATCH_MERGE, [x], name)

    def crop(self, x: int, start, size, step=1, name: str = "") -> int:
        """Spatial window (a view): rows ``start[0] + i * step[0]`` for
        ``i < size[0]``, columns alike (``x[:, :, 1:, 1:]``, ``x[:, :, ::2, ::2]``)."""
        (sh, sw), (zh, zw), (th, tw) = (_pair(start, "start"), _pair(size, "size"),
                                        _pair(step, "step"))
        return self._append(Op.CROP, [x], name, pad_h=sh, pad_w=sw, size_h=zh, size_w=zw,
                            stride_h=th, stride_w=tw)

    def pad(self, x: int, out_shape, offset=(0, 0, 0), name: str = "") -> int:
        """Zero padding: the input placed at ``offset`` (channels, rows, columns
        of zeros before it) in a zero tensor of ``out_shape`` (C, H, W)."""
        c, h, w = (int(v) for v in out_shape)
        oc, oh, ow = (int(v) for v in offset)
        return self._append(Op.PAD, [x], name, out_channels=c, size_h=h, size_w=w, start=oc,
                            pad_h=oh, pad_w=ow)
