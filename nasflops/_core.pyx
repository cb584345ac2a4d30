# cython: language_level=3
"""Compiled scoring core.

The core reads layer records and writes integers; it knows nothing of search
spaces, files or torch.  One pass per architecture infers every layer's
output shape from its inputs, computes the convention-independent *terms* of
each layer (MACs, output elements, ...), weighs them by the convention's
row of the rules table, and accumulates params and memory; a second pass over
the same architecture sweeps tensor lifetimes to find the peak of live
activations.

Everything below ``score_arch`` runs without the GIL.  Errors are status
codes (``Status`` in ``_core.pxd``) with the index of the offending layer;
``nasflops.scoring`` turns them into messages.  All arithmetic on counts is
checked for int64 overflow.
"""
import numpy as np

from libc.stdint cimport int8_t, uint8_t, int16_t, int32_t, int64_t
from libc.stdlib cimport malloc, free

cdef extern from *:
    """
    static inline int nf_mul_ovf(int64_t a, int64_t b, int64_t *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    static inline int nf_add_ovf(int64_t a, int64_t b, int64_t *r) {
        return __builtin_add_overflow(a, b, r);
    }
    """
    bint nf_mul_ovf(int64_t a, int64_t b, int64_t *r) noexcept nogil
    bint nf_add_ovf(int64_t a, int64_t b, int64_t *r) noexcept nogil


cdef Layer _dummy_layer
LAYER_DTYPE = np.asarray(<Layer[:1]>(&_dummy_layer)).dtype
LAYER_SIZE = sizeof(Layer)

# Public mirrors of the C enums (nasflops.spec builds Python enums on them).
OPS = {
    "input": OP_INPUT, "conv2d": OP_CONV2D, "linear": OP_LINEAR,
    "batchnorm": OP_BATCHNORM, "layernorm": OP_LAYERNORM, "act": OP_ACT,
    "maxpool": OP_MAXPOOL, "avgpool": OP_AVGPOOL,
    "adaptive_avgpool": OP_ADAPTIVE_AVGPOOL, "add": OP_ADD, "mul": OP_MUL,
    "concat": OP_CONCAT, "flatten": OP_FLATTEN, "identity": OP_IDENTITY,
    "zero": OP_ZERO, "channel_shuffle": OP_CHANNEL_SHUFFLE,
    "dropout": OP_DROPOUT, "softmax": OP_SOFTMAX, "slice": OP_SLICE,
    "scale": OP_SCALE,
}
ACTS = {
    "relu": ACT_RELU, "relu6": ACT_RELU6, "hardswish": ACT_HARDSWISH,
    "hardsigmoid": ACT_HARDSIGMOID, "sigmoid": ACT_SIGMOID, "silu": ACT_SILU,
    "gelu": ACT_GELU, "tanh": ACT_TANH,
}
FLAGS = {
    "bias": FLAG_BIAS, "affine": FLAG_AFFINE, "ceil_mode": FLAG_CEIL_MODE,
    "exclude_pad": FLAG_EXCLUDE_PAD, "inplace": FLAG_INPLACE,
}
TERMS = ("mac", "out", "in", "bias", "affine", "window", "extra_in", "rows",
         "out_ch")
STATUS = {
    "ok": ST_OK, "empty": ST_EMPTY, "no_input": ST_NO_INPUT,
    "bad_op": ST_BAD_OP, "bad_value": ST_BAD_VALUE,
    "bad_groups": ST_BAD_GROUPS, "bad_input_ref": ST_BAD_INPUT_REF,
    "shape_mismatch": ST_SHAPE_MISMATCH,
    "kernel_too_large": ST_KERNEL_TOO_LARGE, "overflow": ST_OVERFLOW,
    "bad_padding": ST_BAD_PADDING, "bad_shape": ST_BAD_SHAPE,
}
N_RULES = N_OPS + N_ACTS
assert N_RULES <= RULES_CAP
MAX_LAYER_INPUTS = MAX_INPUTS

# Columns of the per-architecture metrics written by score_range.
cdef enum:  # Metric
    M_OPS = 0
    M_MACS = 1
    M_PARAMS = 2
    M_WEIGHT_BYTES = 3
    M_ACT_BYTES = 4
    M_PEAK_ACT_BYTES = 5
    M_READ_BYTES = 6
    M_WRITE_BYTES = 7
    N_METRICS = 8

METRICS = ("ops", "macs", "params", "weight_bytes", "act_bytes",
           "peak_act_bytes", "read_bytes", "write_bytes")

# Columns of the per-layer table written by layer_metrics.
cdef enum:  # LayerCol
    L_C = 0
    L_H = 1
    L_W = 2
    L_OPS = 3
    L_MACS = 4
    L_PARAMS = 5
    L_ACT_BYTES = 6
    L_READ_BYTES = 7
    L_WRITE_BYTES = 8
    L_LIVE_BYTES = 9
    N_LAYER_COLS = 10

LAYER_COLUMNS = ("channels", "height", "width", "ops", "macs", "params",
                 "act_bytes", "read_bytes", "write_bytes", "live_bytes")


cdef enum:
    RULES_CAP = 64   # >= N_OPS + N_ACTS

cdef struct Rules:
    # a convention's table, row by row, keeping only the non-zero weights
    int32_t n[RULES_CAP]                  # non-zero terms of each row
    int32_t term[RULES_CAP * N_TERMS]     # which terms
    int64_t coef[RULES_CAP * N_TERMS]     # their integer weights


cdef void compile_rules(const int64_t[:, ::1] table, Rules* r) noexcept:
    cdef Py_ssize_t row, k
    cdef int32_t m
    for row in range(N_OPS + N_ACTS):
        m = 0
        for k in range(N_TERMS):
            if table[row, k] != 0:
                r.term[row * N_TERMS + m] = <int32_t>k
                r.coef[row * N_TERMS + m] = table[row, k]
                m += 1
        r.n[row] = m


cdef struct Tensor:
    # what the sweep knows of one layer's output: one 64-byte cache line
    int64_t c           # channels
    int64_t h           # height
    int64_t w           # width
    int64_t elems       # elements per sample
    int64_t bytes       # bytes (x batch x element size)
    int64_t alloc       # bytes this layer allocates (0 for views and in-place ops)
    int64_t freed       # bytes released after this step
    int32_t owner       # layer whose buffer this output lives in
    int32_t last_use    # last layer reading the buffer (meaningful for owners)


cdef struct Scratch:
    Tensor* t           # one per layer of the longest architecture


cdef int scratch_alloc(Scratch* s, Py_ssize_t n) noexcept nogil:
    s.t = <Tensor*>malloc((n if n > 0 else 1) * sizeof(Tensor))
    return -1 if s.t == NULL else 0


cdef void scratch_free(Scratch* s) noexcept nogil:
    free(s.t)


cdef inline int64_t mul3(int64_t a, int64_t b, int64_t c, bint* ovf) noexcept nogil:
    cdef int64_t r
    ovf[0] |= nf_mul_ovf(a, b, &r)
    ovf[0] |= nf_mul_ovf(r, c, &r)
    return r


cdef inline int64_t mul2(int64_t a, int64_t b, bint* ovf) noexcept nogil:
    cdef int64_t r
    ovf[0] |= nf_mul_ovf(a, b, &r)
    return r


cdef inline int64_t add2(int64_t a, int64_t b, bint* ovf) noexcept nogil:
    cdef int64_t r
    ovf[0] |= nf_add_ovf(a, b, &r)
    return r


cdef inline int64_t pooled_size(int64_t size, int64_t k, int64_t s, int64_t p,
                                int64_t d, bint ceil_mode) noexcept nogil:
    """Output length of a sliding window, as torch computes it.

    The caller guarantees ``size + 2p >= d(k-1) + 1`` and ``s >= 1``.
    """
    cdef int64_t span = size + 2 * p - d * (k - 1) - 1
    cdef int64_t o
    if s == 1:  # the common case needs no (slow, 64-bit) division
        return span + 1
    if ceil_mode:
        o = (span + s - 1) // s + 1
        # torch: the last window must start inside the input or left padding
        if (o - 1) * s >= size + p:
            o -= 1
    else:
        o = span // s + 1
    return o


cdef inline int64_t adaptive_window_sum(int64_t size, int64_t out) noexcept nogil:
    """Sum of adaptive pooling window lengths along one axis.

    torch's window i spans floor(i*size/out) .. ceil((i+1)*size/out); the
    lengths add up to size + out - gcd(size, out) (the windows overlap by one
    wherever a boundary falls inside an input cell), in O(log) time whatever
    the sizes.
    """
    cdef int64_t a = size, b = out, t
    while b:
        t = a % b
        a = b
        b = t
    return size + out - a


cdef inline int fail(int64_t* bad_layer, Py_ssize_t i, int status) noexcept nogil:
    bad_layer[0] = i
    return status


cdef inline int32_t input_of(const Layer* L, int k) noexcept nogil:
    # the four slots are consecutive int32 fields
    return (&L.input0)[k]


cdef inline int n_inputs_of(const Layer* L) noexcept nogil:
    cdef int k = 0
    while k < MAX_INPUTS and input_of(L, k) >= 0:
        k += 1
    return k


cdef int score_arch(const Layer* layers, Py_ssize_t n, const Rules* rules,
                    int64_t batch, int64_t wsize, int64_t asize,
                    double peak_ops, double bytes_per_s,
                    Scratch* s, int64_t* metrics, double* latency,
                    int64_t* bad_layer, int64_t* per_layer) noexcept nogil:
    """Score one architecture; return a Status and set ``bad_layer``.

    ``metrics`` receives N_METRICS values; ``latency`` (may be NULL) the
    roofline estimate; ``per_layer`` (may be NULL) N_LAYER_COLS per layer.
    """
    cdef Py_ssize_t i, j
    cdef int k, nin, lo, hi
    cdef const Layer* L
    cdef int row, t
    cdef int64_t v, macs_b, win_k
    cdef bint has_bias, has_affine
    cdef int64_t cin, hin, win, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, g, cpg
    cdef int64_t e, e_in, macs, params, ops, act, rd, wr, other
    cdef int64_t tot_ops = 0, tot_macs = 0, tot_params = 0, tot_act = 0
    cdef int64_t tot_rd = 0, tot_wr = 0, live = 0, peak = 0
    cdef double lat = 0.0, t_compute, t_memory
    cdef bint ovf = False, view, extend
    cdef int op

    bad_layer[0] = -1
    if n == 0:
        return ST_EMPTY

    for i in range(n):
        L = layers + i
        op = L.op
        if op < 0 or op >= N_OPS:
            return fail(bad_layer, i, ST_BAD_OP)
        if (op == OP_INPUT) != (i == 0):
            return fail(bad_layer, i, ST_NO_INPUT)

        # ---- inputs: contiguous slots, each naming an earlier layer
        nin = n_inputs_of(L)
        for k in range(nin, MAX_INPUTS):
            if input_of(L, k) != -1:
                return fail(bad_layer, i, ST_BAD_INPUT_REF)
        for k in range(nin):
            if input_of(L, k) >= i:
                return fail(bad_layer, i, ST_BAD_INPUT_REF)
        if op == OP_INPUT:
            lo = 0
            hi = 0
        elif op == OP_ADD:
            lo = 2
            hi = MAX_INPUTS
        elif op == OP_MUL:
            lo = 2
            hi = 2
        elif op == OP_CONCAT:
            lo = 1
            hi = MAX_INPUTS
        else:
            lo = 1
            hi = 1
        if nin < lo or nin > hi:
            return fail(bad_layer, i, ST_BAD_INPUT_REF)

        if op == OP_INPUT:
            cin = 0
            hin = 0
            win = 0
            e_in = 0
        else:
            j = input_of(L, 0)
            cin = s.t[j].c
            hin = s.t[j].h
            win = s.t[j].w
            e_in = s.t[j].elems

        # ---- shape inference and per-op terms
        c = cin
        h = hin
        w = win
        macs = 0
        params = 0
        other = 0
        win_k = 0
        has_bias = False
        has_affine = False
        view = False
        extend = False

        if op == OP_INPUT:
            if L.out_channels < 1 or L.size_h < 1 or L.size_w < 1:
                return fail(bad_layer, i, ST_BAD_VALUE)
            c = L.out_channels
            h = L.size_h
            w = L.size_w
        elif op == OP_CONV2D or op == OP_MAXPOOL or op == OP_AVGPOOL:
            kh = L.kernel_h
            kw = L.kernel_w
            sh = L.stride_h
            sw = L.stride_w
            ph = L.pad_h
            pw = L.pad_w
            dh = L.dilation_h
            dw = L.dilation_w
            if (kh < 1 or kw < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0
                    or dh < 1 or dw < 1):
                return fail(bad_layer, i, ST_BAD_VALUE)
            if op == OP_AVGPOOL and (dh != 1 or dw != 1):
                return fail(bad_layer, i, ST_BAD_VALUE)
            if hin + 2 * ph < dh * (kh - 1) + 1 or win + 2 * pw < dw * (kw - 1) + 1:
                return fail(bad_layer, i, ST_KERNEL_TOO_LARGE)
            if op == OP_CONV2D:
                g = L.groups
                if L.out_channels < 1 or g < 1:
                    return fail(bad_layer, i, ST_BAD_VALUE)
                if g == 1:
                    cpg = cin
                else:
                    if cin % g != 0 or L.out_channels % g != 0:
                        return fail(bad_layer, i, ST_BAD_GROUPS)
                    cpg = cin // g
                c = L.out_channels
                h = pooled_size(hin, kh, sh, ph, dh, False)
                w = pooled_size(win, kw, sw, pw, dw, False)
                # params: c * (cin/g) * kh * kw (+ c)
                params = mul3(c, cpg, kh * kw, &ovf)
                if L.flags & FLAG_BIAS:
                    params = add2(params, c, &ovf)
                    has_bias = True
                macs = mul3(mul3(h, w, c, &ovf), cpg, kh * kw, &ovf)
            else:
                # torch: padding at most half the (effective) kernel
                if op == OP_MAXPOOL:
                    if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
                        return fail(bad_layer, i, ST_BAD_PADDING)
                elif 2 * ph > kh or 2 * pw > kw:
                    return fail(bad_layer, i, ST_BAD_PADDING)
                h = pooled_size(hin, kh, sh, ph, dh, L.flags & FLAG_CEIL_MODE)
                w = pooled_size(win, kw, sw, pw, dw, L.flags & FLAG_CEIL_MODE)
                win_k = kh * kw   # window elements per output
        elif op == OP_ADAPTIVE_AVGPOOL:
            if L.size_h < 1 or L.size_w < 1:
                return fail(bad_layer, i, ST_BAD_VALUE)
            h = L.size_h
            w = L.size_w
        elif op == OP_LINEAR:
            if L.out_channels < 1:
                return fail(bad_layer, i, ST_BAD_VALUE)
            if hin != 1 or win != 1:
                return fail(bad_layer, i, ST_BAD_SHAPE)
            c = L.out_channels
            params = mul2(c, cin, &ovf)
            if L.flags & FLAG_BIAS:
                params = add2(params, c, &ovf)
                has_bias = True
            macs = mul2(c, cin, &ovf)
        elif op == OP_BATCHNORM or op == OP_LAYERNORM:
            if L.flags & FLAG_AFFINE:
                params = 2 * c
                has_affine = True
        elif op == OP_SCALE:
            params = c
            if L.flags & FLAG_BIAS:
                params = 2 * c
                has_bias = True
        elif op == OP_ACT:
            if L.act < 0 or L.act >= N_ACTS:
                return fail(bad_layer, i, ST_BAD_OP)
            view = (L.flags & FLAG_INPLACE) != 0
        elif op == OP_ADD:
            # torch's `out += identity` writes into its first input
            view = (L.flags & FLAG_INPLACE) != 0
            for k in range(1, nin):
                j = input_of(L, k)
                if s.t[j].c != cin or s.t[j].h != hin or s.t[j].w != win:
                    return fail(bad_layer, i, ST_SHAPE_MISMATCH)
                other += s.t[j].elems
        elif op == OP_MUL:
            # the second input broadcasts: each dim equal or 1 (SE gate C x 1 x 1)
            j = input_of(L, 1)
            if ((s.t[j].c != cin and s.t[j].c != 1) or (s.t[j].h != hin and s.t[j].h != 1)
                    or (s.t[j].w != win and s.t[j].w != 1)):
                return fail(bad_layer, i, ST_SHAPE_MISMATCH)
            other = s.t[j].elems
        elif op == OP_CONCAT:
            # a continuation grows its first input's buffer (one torch.cat
            # of more than MAX_INPUTS tensors written as a chain of records)
            extend = (L.flags & FLAG_INPLACE) != 0
            for k in range(1, nin):
                j = input_of(L, k)
                if s.t[j].h != hin or s.t[j].w != win:
                    return fail(bad_layer, i, ST_SHAPE_MISMATCH)
                c += s.t[j].c
                other += s.t[j].elems
        elif op == OP_FLATTEN:
            c = mul3(cin, hin, win, &ovf)
            h = 1
            w = 1
            view = True
        elif op == OP_IDENTITY or op == OP_DROPOUT:
            view = True
        elif op == OP_SLICE:
            if L.start < 0 or L.out_channels < 1 or L.start + <int64_t>L.out_channels > cin:
                return fail(bad_layer, i, ST_BAD_VALUE)
            c = L.out_channels
            view = True
        elif op == OP_CHANNEL_SHUFFLE:
            if L.groups < 1:
                return fail(bad_layer, i, ST_BAD_VALUE)
            if cin % L.groups != 0:
                return fail(bad_layer, i, ST_BAD_GROUPS)
        # OP_ZERO, OP_SOFTMAX: same shape, nothing else to infer

        s.t[i].c = c
        s.t[i].h = h
        s.t[i].w = w
        e = mul3(c, h, w, &ovf)
        s.t[i].elems = e
        s.t[i].bytes = mul3(e, batch, asize, &ovf)
        s.t[i].freed = 0
        if ovf:
            return fail(bad_layer, i, ST_OVERFLOW)

        # ---- the convention's row: only the terms it weighs are computed
        # (all x batch)
        macs_b = mul2(macs, batch, &ovf)
        row = N_OPS + L.act if op == OP_ACT else op
        ops = 0
        for k in range(rules.n[row]):
            t = rules.term[row * N_TERMS + k]
            if t == T_MAC:
                v = macs_b
            elif t == T_OUT:
                v = mul2(e, batch, &ovf)
            elif t == T_IN:
                v = mul2(e_in, batch, &ovf)
            elif t == T_BIAS:
                v = mul2(e, batch, &ovf) if has_bias else 0
            elif t == T_AFFINE:
                v = mul2(e, batch, &ovf) if has_affine else 0
            elif t == T_WINDOW:
                if op == OP_ADAPTIVE_AVGPOOL:
                    v = mul3(mul3(c, adaptive_window_sum(hin, h), adaptive_window_sum(win, w), &ovf),
                             batch, 1, &ovf)
                else:
                    v = mul3(win_k, e, batch, &ovf)
            elif t == T_EXTRA_IN:
                v = mul2(other, batch, &ovf)
            elif t == T_ROWS:
                v = mul3(h, w, batch, &ovf)
            else:  # T_OUT_CH
                v = mul2(c, batch, &ovf)
            ops = add2(ops, mul2(rules.coef[row * N_TERMS + k], v, &ovf), &ovf)

        # ---- memory: views and the network input move no bytes; in-place
        # ops (act, add) allocate nothing but still read and write
        if op == OP_INPUT or (view and op != OP_ACT and op != OP_ADD):
            act = 0
            rd = 0
            wr = 0
        elif extend:
            act = s.t[i].bytes - s.t[input_of(L, 0)].bytes
            wr = act
            rd = 0
            for k in range(1, nin):
                rd = add2(rd, s.t[input_of(L, k)].bytes, &ovf)
        else:
            act = s.t[i].bytes
            wr = act
            rd = mul2(params, wsize, &ovf)
            for k in range(nin):
                rd = add2(rd, s.t[input_of(L, k)].bytes, &ovf)
        if ovf:
            return fail(bad_layer, i, ST_OVERFLOW)

        tot_ops = add2(tot_ops, ops, &ovf)
        tot_macs = add2(tot_macs, macs_b, &ovf)
        tot_params = add2(tot_params, params, &ovf)
        tot_act = add2(tot_act, act, &ovf)
        tot_rd = add2(tot_rd, rd, &ovf)
        tot_wr = add2(tot_wr, wr, &ovf)
        if ovf:
            return fail(bad_layer, i, ST_OVERFLOW)
        if latency != NULL and (peak_ops > 0 or bytes_per_s > 0):
            t_compute = ops / peak_ops if peak_ops > 0 else 0.0
            t_memory = (<double>rd + <double>wr) / bytes_per_s if bytes_per_s > 0 else 0.0
            lat += t_compute if t_compute > t_memory else t_memory

        # ---- lifetimes: a view or in-place op aliases its input's buffer
        if view or extend:
            s.t[i].owner = s.t[input_of(L, 0)].owner
            s.t[i].alloc = act if extend else 0
        else:
            s.t[i].owner = <int32_t>i
            s.t[i].alloc = s.t[i].bytes
        s.t[i].last_use = <int32_t>i
        for k in range(nin):
            s.t[s.t[input_of(L, k)].owner].last_use = <int32_t>i
        if extend:
            # one cat: every input of the chain lives until its last record
            j = input_of(L, 0)
            while True:
                for k in range(n_inputs_of(layers + j)):
                    s.t[s.t[input_of(layers + j, k)].owner].last_use = <int32_t>i
                if layers[j].op != OP_CONCAT or not (layers[j].flags & FLAG_INPLACE):
                    break
                j = input_of(layers + j, 0)
        s.t[s.t[i].owner].last_use = <int32_t>i

        if per_layer != NULL:
            per_layer[i * N_LAYER_COLS + L_C] = c
            per_layer[i * N_LAYER_COLS + L_H] = h
            per_layer[i * N_LAYER_COLS + L_W] = w
            per_layer[i * N_LAYER_COLS + L_OPS] = ops
            per_layer[i * N_LAYER_COLS + L_MACS] = macs_b
            per_layer[i * N_LAYER_COLS + L_PARAMS] = params
            per_layer[i * N_LAYER_COLS + L_ACT_BYTES] = act
            per_layer[i * N_LAYER_COLS + L_READ_BYTES] = rd
            per_layer[i * N_LAYER_COLS + L_WRITE_BYTES] = wr

    # ---- peak of live activations, layers run in spec order
    for i in range(n):
        s.t[s.t[s.t[i].owner].last_use].freed += s.t[i].alloc
    for i in range(n):
        live += s.t[i].alloc
        if live > peak:
            peak = live
        if per_layer != NULL:
            per_layer[i * N_LAYER_COLS + L_LIVE_BYTES] = live
        live -= s.t[i].freed
        if live < 0:  # cannot happen; guards the sums above
            bad_layer[0] = i
            return ST_OVERFLOW

    bad_layer[0] = -1
    metrics[M_OPS] = tot_ops
    metrics[M_MACS] = tot_macs
    metrics[M_PARAMS] = tot_params
    metrics[M_WEIGHT_BYTES] = mul2(tot_params, wsize, &ovf)
    metrics[M_ACT_BYTES] = tot_act
    metrics[M_PEAK_ACT_BYTES] = peak
    metrics[M_READ_BYTES] = tot_rd
    metrics[M_WRITE_BYTES] = tot_wr
    if latency != NULL:
        latency[0] = lat
    if ovf:
        return ST_OVERFLOW
    return ST_OK


def score_range(const Layer[::1] records, const int64_t[::1] offsets,
                Py_ssize_t start, Py_ssize_t stop,
                const int64_t[:, ::1] rules, int64_t batch,
                int64_t weight_size, int64_t act_size,
                int64_t[:, ::1] metrics, int64_t[::1] status,
                int64_t[::1] bad_layer,
                double peak_ops=0.0, double bytes_per_s=0.0,
                double[::1] latency=None):
    """Score architectures ``start <= i < stop`` of a batch, GIL released.

    Writes row ``i`` of ``metrics`` (``METRICS`` columns), ``status``,
    ``bad_layer`` and, if given, ``latency``.  Rows of invalid architectures
    hold -1.  Offsets must have been validated by the caller.
    """
    if rules.shape[0] != N_RULES or rules.shape[1] != N_TERMS:
        raise ValueError("rules table must have shape (%d, %d)" % (N_RULES, N_TERMS))
    if metrics.shape[1] != N_METRICS:
        raise ValueError("metrics must have %d columns" % N_METRICS)
    if stop > offsets.shape[0] - 1 or start < 0 or metrics.shape[0] < stop:
        raise IndexError("architecture range out of bounds")
    cdef Py_ssize_t i, k, longest = 0
    cdef Scratch s
    cdef Rules compiled
    compile_rules(rules, &compiled)
    cdef int st, rc = 0
    cdef double* lat = NULL
    cdef bint with_latency = latency is not None
    if with_latency and latency.shape[0] < stop:
        raise IndexError("latency output too short")
    with nogil:
        for i in range(start, stop):
            if offsets[i + 1] - offsets[i] > longest:
                longest = offsets[i + 1] - offsets[i]
        rc = scratch_alloc(&s, longest)
        if rc == 0:
            for i in range(start, stop):
                if with_latency:
                    lat = &latency[i]
                st = score_arch(&records[offsets[i]], offsets[i + 1] - offsets[i],
                                &compiled, batch, weight_size, act_size,
                                peak_ops, bytes_per_s, &s, &metrics[i, 0], lat,
                                &bad_layer[i], NULL)
                status[i] = st
                if st != ST_OK:
                    for k in range(N_METRICS):
                        metrics[i, k] = -1
                    if with_latency:
                        latency[i] = -1.0
            scratch_free(&s)
    if rc != 0:
        raise MemoryError()


def layer_metrics(const Layer[::1] records, const int64_t[:, ::1] rules,
                  int64_t batch, int64_t weight_size, int64_t act_size):
    """Per-layer shapes and counts of one architecture.

    Returns ``(status, bad_layer, table)`` where ``table`` is an int64 array
    of shape ``(n_layers, len(LAYER_COLUMNS))``.  On error, rows from
    ``bad_layer`` on are unspecified.
    """
    if rules.shape[0] != N_RULES or rules.shape[1] != N_TERMS:
        raise ValueError("rules table must have shape (%d, %d)" % (N_RULES, N_TERMS))
    cdef Py_ssize_t n = records.shape[0]
    table = np.zeros((n, N_LAYER_COLS), dtype=np.int64)
    cdef int64_t[:, ::1] tv = table
    cdef int64_t metrics[N_METRICS]
    cdef int64_t bad = -1
    cdef Scratch s
    cdef int st = ST_OK, rc
    cdef const Layer* first = NULL
    cdef int64_t* out = NULL
    cdef Rules compiled
    compile_rules(rules, &compiled)
    if n > 0:
        first = &records[0]
        out = &tv[0, 0]
    with nogil:
        rc = scratch_alloc(&s, n)
        if rc == 0:
            st = score_arch(first, n, &compiled, batch, weight_size,
                            act_size, 0.0, 0.0, &s, metrics, NULL, &bad, out)
            scratch_free(&s)
    if rc != 0:
        raise MemoryError()
    return st, bad, table
