# cython: language_level=3
"""Compiled scoring core.

The core reads layer records and writes integers; it knows nothing of search
spaces, files or torch.  Scoring one architecture is a pass over its layers
followed by a sweep (``docs/design.md``, "The core"), each layer going
through the same small kernels, in order:

1. ``check_record``     a known op; its input slots name earlier layers, as many as the op takes;
2. ``infer_layer``      its output shape and convention-independent quantities
                        (MACs, params, window sizes, ...), validating every field;
3. ``convention_ops``   the convention's row: integer weights times the terms;
4. ``layer_bytes``      bytes allocated, read and written;
   (``torchstat_bytes``  the same under torchstat's memory semantics);
5. ``track_lifetime``   which buffer the output lives in and who reads it last;

then ``peak_sweep`` walks the steps to find the peak of live activations.
``nasflops/_pyref.py`` states the same definitions, kernel for kernel, in
plain Python.

Everything below the ``def`` entry points runs without the GIL.  Errors are
status codes (``Status`` in ``_core.pxd``) with the index of the offending
layer; ``nasflops.scoring`` turns them into messages.  All arithmetic on
counts is checked for int64 overflow.
"""
import numpy as np

from libc.stdint cimport int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t
from libc.stdlib cimport malloc, free

cdef extern from *:
    """
    /* checked int64 arithmetic: an overflow sets *ovf (a rare, cold branch) */
    static inline int64_t nf_mul(int64_t a, int64_t b, int *ovf) {
        int64_t r;
        if (__builtin_expect(__builtin_mul_overflow(a, b, &r), 0)) *ovf = 1;
        return r;
    }
    static inline int64_t nf_add(int64_t a, int64_t b, int *ovf) {
        int64_t r;
        if (__builtin_expect(__builtin_add_overflow(a, b, &r), 0)) *ovf = 1;
        return r;
    }
    """
    int64_t nf_mul(int64_t a, int64_t b, bint* ovf) noexcept nogil
    int64_t nf_add(int64_t a, int64_t b, bint* ovf) noexcept nogil


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
    "scale": OP_SCALE, "tokens": OP_TOKENS, "to_image": OP_TO_IMAGE,
    "prepend": OP_PREPEND, "param_add": OP_PARAM_ADD, "view_as": OP_VIEW_AS,
    "matmul": OP_MATMUL, "attention": OP_ATTENTION, "mha": OP_MHA,
    "patch_merge": OP_PATCH_MERGE, "pad": OP_PAD, "crop": OP_CROP, "sub": OP_SUB,
    "div": OP_DIV, "mean": OP_MEAN, "copy": OP_COPY, "log_softmax": OP_LOG_SOFTMAX,
    "embedding": OP_EMBEDDING, "rmsnorm": OP_RMSNORM, "rope": OP_ROPE, "kv_cache": OP_KV_CACHE,
    "expert_linear": OP_EXPERT_LINEAR, "moe_combine": OP_MOE_COMBINE,
}
ACTS = {
    "relu": ACT_RELU, "relu6": ACT_RELU6, "hardswish": ACT_HARDSWISH,
    "hardsigmoid": ACT_HARDSIGMOID, "sigmoid": ACT_SIGMOID, "silu": ACT_SILU,
    "gelu": ACT_GELU, "tanh": ACT_TANH, "add_const": ACT_ADD_CONST,
    "sub_const": ACT_SUB_CONST, "mul_const": ACT_MUL_CONST, "div_const": ACT_DIV_CONST,
    "pow_const": ACT_POW_CONST, "clamp": ACT_CLAMP, "sqrt": ACT_SQRT,
}
CALLS = {
    "module": CALL_MODULE, "function": CALL_FUNCTION, "method": CALL_METHOD,
    "operator": CALL_OPERATOR,
}
FLAGS = {
    "bias": FLAG_BIAS, "affine": FLAG_AFFINE, "ceil_mode": FLAG_CEIL_MODE,
    "exclude_pad": FLAG_EXCLUDE_PAD, "inplace": FLAG_INPLACE, "causal": FLAG_CAUSAL,
    "tokens": FLAG_TOKENS, "matrix": FLAG_MATRIX, "copy": FLAG_COPY, "flat": FLAG_FLAT,
    "called_again": FLAG_CALLED_AGAIN, "tied": FLAG_TIED, "checkpoint": FLAG_CHECKPOINT,
}
TERMS = ("mac", "out", "in", "bias", "affine", "window", "extra_in", "rows",
         "out_ch", "attn_mac", "scores", "samples")
STATUS = {
    "ok": ST_OK, "empty": ST_EMPTY, "no_input": ST_NO_INPUT,
    "bad_op": ST_BAD_OP, "bad_value": ST_BAD_VALUE,
    "bad_groups": ST_BAD_GROUPS, "bad_input_ref": ST_BAD_INPUT_REF,
    "shape_mismatch": ST_SHAPE_MISMATCH,
    "kernel_too_large": ST_KERNEL_TOO_LARGE, "overflow": ST_OVERFLOW,
    "bad_padding": ST_BAD_PADDING, "bad_shape": ST_BAD_SHAPE,
}
MEMORY = {"nasflops": MEM_NASFLOPS, "torchstat": MEM_TORCHSTAT}
# a convention's weights: one row per op (activations: one per kind), per call kind
cdef enum:
    RULE_ROWS = N_OPS + N_ACTS
N_RULES = RULE_ROWS
N_CALL_KINDS = N_CALLS
MAX_LAYER_INPUTS = MAX_INPUTS

# How a tensor's per-sample shape (g, c, h, w) is laid out.
cdef enum Layout:
    LAYOUT_IMAGE = 0      # C x H x W (g = 1), torch's NCHW
    LAYOUT_TOKENS = 1     # g groups of an H x W grid of tokens with C channels each
                          # (channels last; a sequence is H = L, W = 1)
    LAYOUT_MATRIX = 2     # g stacked H x W matrices (C = 1)
    N_LAYOUTS = 3

LAYOUTS = ("image", "tokens", "matrix")

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
    M_ACTIVE_PARAMS = 8       # parameters one token touches (MoE: the routed experts only)
    M_KV_CACHE_BYTES = 9      # bytes the key/value caches hold after the pass
    M_GRAD_BYTES = 10         # training: one gradient per parameter, weight dtype
    M_OPTIMIZER_BYTES = 11    # training: Adam's two fp32 moments (+ fp32 master weights)
    M_SAVED_ACT_BYTES = 12    # training: activations kept for the backward pass
    M_RECOMPUTE_ACT_BYTES = 13  # training: the same with full recomputation (checkpoints)
    N_METRICS = 14

METRICS = ("ops", "macs", "params", "weight_bytes", "act_bytes",
           "peak_act_bytes", "read_bytes", "write_bytes", "active_params", "kv_cache_bytes",
           "grad_bytes", "optimizer_bytes", "saved_act_bytes", "recompute_act_bytes")

# Columns of the per-layer table written by layer_metrics.
cdef enum:  # LayerCol
    L_C = 0
    L_H = 1
    L_W = 2
    L_G = 3
    L_LAYOUT = 4
    L_OPS = 5
    L_MACS = 6
    L_PARAMS = 7
    L_ACT_BYTES = 8
    L_READ_BYTES = 9
    L_WRITE_BYTES = 10
    L_LIVE_BYTES = 11
    L_ACTIVE_PARAMS = 12
    L_KV_CACHE_BYTES = 13
    N_LAYER_COLS = 14

LAYER_COLUMNS = ("channels", "height", "width", "groups", "layout", "ops", "macs", "params",
                 "act_bytes", "read_bytes", "write_bytes", "live_bytes", "active_params",
                 "kv_cache_bytes")


# the Python name tables must cover the C enums exactly
assert len(OPS) == N_OPS and sorted(OPS.values()) == list(range(N_OPS))
assert len(ACTS) == N_ACTS and sorted(ACTS.values()) == list(range(N_ACTS))
assert len(CALLS) == N_CALLS and sorted(CALLS.values()) == list(range(N_CALLS))
assert len(TERMS) == N_TERMS
assert len(LAYOUTS) == N_LAYOUTS
assert len(MEMORY) == N_MEMORY and sorted(MEMORY.values()) == list(range(N_MEMORY))
assert len(STATUS) == N_STATUS and sorted(STATUS.values()) == list(range(N_STATUS))
assert len(METRICS) == N_METRICS
assert len(LAYER_COLUMNS) == N_LAYER_COLS


# ------------------------------------------------------------------ state
cdef struct Rules:
    # a convention's weights, row by row (row = call kind x (op or act)),
    # keeping only the non-zero ones; rows of N_TERMS slots, heap-allocated
    int32_t* n          # non-zero terms of each row
    int32_t* term       # which terms
    int64_t* coef       # their integer weights
    bint last_call_only # count only a module's last call (records flagged
                        # FLAG_CALLED_AGAIN count zero), as torchstat does


cdef struct Tensor:
    # what the sweep knows of one layer's output
    int64_t g           # groups (windows) or stacked matrices; 1 for images
    int64_t c           # channels
    int64_t h           # height (tokens, matrix rows)
    int64_t w           # width (matrix columns)
    int64_t layout      # Layout
    int64_t elems       # elements per sample
    int64_t bytes       # bytes (x batch size x element size)
    int64_t alloc       # bytes this layer allocates (0 for views and in-place ops)
    int64_t scratch     # bytes live only while this layer runs (attention scores)
    int64_t freed       # bytes released after this step
    int32_t owner       # layer whose buffer this output lives in
    int32_t last_use    # last layer reading the buffer (meaningful for owners)


cdef struct LayerFacts:
    # one layer, as the kernels fill it in (counts per sample unless noted)
    int nin             # used input slots
    int64_t gin         # shape of input 0
    int64_t cin
    int64_t hin
    int64_t win
    int64_t lin         # layout of input 0
    int64_t e_in        # elements of input 0
    int64_t g           # output shape
    int64_t c
    int64_t h
    int64_t w
    int64_t layout
    int64_t e           # output elements
    int64_t macs        # multiply-accumulates (attention matmuls included)
    int64_t attn_macs   # of which attention matmuls
    int64_t scores      # attention scores counted (the causal triangle when counted half)
    int64_t scores_mem  # attention scores materialised (always the full rectangle)
    int64_t scratch     # elements materialised and dropped within the layer
    int64_t params      # parameters (not per sample)
    int64_t inactive    # of which parameters a token does not touch (experts not routed to)
    int64_t other       # elements of every input but the first
    int64_t win_k       # pooling: window elements per output
    uint8_t has_bias
    uint8_t has_affine
    uint8_t view        # aliases input 0's buffer (views, in-place act/add)
    uint8_t extend      # grows input 0's buffer (a concat chain continuation)
    uint8_t cache       # its output lives in a key/value cache, not in an activation


cdef struct LayerCost:
    # one layer's contribution to the totals (x batch size)
    int64_t ops
    int64_t macs
    int64_t params      # parameters counted (0 at an earlier call of a module
                        # called again: a module's weights are counted once)
    int64_t active      # of which a token touches
    int64_t kv          # bytes of key/value cache its output holds
    int64_t act         # bytes allocated
    int64_t rd          # bytes read
    int64_t wr          # bytes written


cdef struct Options:
    int64_t batch_size
    int64_t weight_size   # bytes per weight
    int64_t elem_bytes    # bytes per activation element across the batch (batch x act size)
    double peak_ops       # roofline: ops/s (0 = none)
    double bytes_per_s
    bint fused_attention  # attention scores never materialised (FlashAttention)
    int memory            # MemorySemantics of act/read/write bytes
    bint train            # forward + backward: every count and byte x 3, training state
    bint causal_half      # causal attention counts the keys at or before each query only


cdef struct Scratch:
    Tensor* t           # one per layer of the longest architecture


cdef int scratch_alloc(Scratch* s, Py_ssize_t n) noexcept nogil:
    s.t = <Tensor*>malloc((n if n > 0 else 1) * sizeof(Tensor))
    return -1 if s.t == NULL else 0


cdef void scratch_free(Scratch* s) noexcept nogil:
    free(s.t)


cdef int compile_rules(const int64_t[:, :, ::1] weights, bint last_call_only,
                       Rules* r) except -1:
    cdef Py_ssize_t call, row, k, i
    cdef int32_t m
    cdef Py_ssize_t n_rows = N_CALLS * RULE_ROWS
    r.n = <int32_t*>malloc(n_rows * sizeof(int32_t))
    r.term = <int32_t*>malloc(n_rows * N_TERMS * sizeof(int32_t))
    r.coef = <int64_t*>malloc(n_rows * N_TERMS * sizeof(int64_t))
    if r.n == NULL or r.term == NULL or r.coef == NULL:
        free_rules(r)
        raise MemoryError()
    r.last_call_only = last_call_only
    for call in range(N_CALLS):
        for row in range(RULE_ROWS):
            i = call * RULE_ROWS + row
            m = 0
            for k in range(N_TERMS):
                if weights[call, row, k] != 0:
                    r.term[i * N_TERMS + m] = <int32_t>k
                    r.coef[i * N_TERMS + m] = weights[call, row, k]
                    m += 1
            r.n[i] = m
    return 0


cdef void free_rules(Rules* r) noexcept nogil:
    free(r.n)
    free(r.term)
    free(r.coef)
    r.n = NULL
    r.term = NULL
    r.coef = NULL


# --------------------------------------------------------------- arithmetic
cdef inline int64_t mul2(int64_t a, int64_t b, bint* ovf) noexcept nogil:
    return nf_mul(a, b, ovf)


cdef inline int64_t mul3(int64_t a, int64_t b, int64_t c, bint* ovf) noexcept nogil:
    return mul2(mul2(a, b, ovf), c, ovf)


cdef inline int64_t add2(int64_t a, int64_t b, bint* ovf) noexcept nogil:
    return nf_add(a, b, ovf)


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


cdef inline int32_t input_of(const Layer* L, int k) noexcept nogil:
    # the four slots are consecutive int32 fields
    return (&L.input0)[k]


cdef inline int n_inputs_of(const Layer* L) noexcept nogil:
    cdef int k = 0
    while k < MAX_INPUTS and input_of(L, k) >= 0:
        k += 1
    return k


# ---------------------------------------------------- 1. inputs of a layer
cdef uint64_t op_mask(ops):
    """A set of op codes as a bit mask (one test in the kernels)."""
    cdef uint64_t m = 0
    for op in ops:
        m |= (<uint64_t>1) << op
    return m


assert N_OPS <= 64      # op sets are 64-bit masks


cdef inline int arity_ok(int op, int nin) noexcept nogil:
    """Whether ``op`` takes ``nin`` inputs."""
    cdef int lo = 1, hi = 1
    if op == OP_INPUT:
        lo = 0
        hi = 0
    elif op == OP_ADD:
        lo = 2
        hi = MAX_INPUTS
    elif (op == OP_MUL or op == OP_SUB or op == OP_DIV or op == OP_MATMUL
          or op == OP_MOE_COMBINE):
        lo = 2
        hi = 2
    elif op == OP_ATTENTION:
        lo = 3
        hi = 3
    elif op == OP_CONCAT:
        hi = MAX_INPUTS
    return lo <= nin <= hi


# the ops that do not take one (two) inputs, for check_record's common case
cdef uint64_t ONE_INPUT_NOT_ALLOWED = op_mask([op for op in range(N_OPS) if not arity_ok(op, 1)])
cdef uint64_t TWO_INPUTS_NOT_ALLOWED = op_mask([op for op in range(N_OPS) if not arity_ok(op, 2)])


cdef inline int check_record(const Layer* L, Py_ssize_t i, int* n_inputs) noexcept nogil:
    """A known op and call kind; the network input first and only there; used
    input slots first, each naming an earlier layer, as many as the op takes
    (set in ``n_inputs``)."""
    cdef int k
    cdef int nin = 0
    cdef int32_t slot
    # most layers: a known op taking one (or two) inputs, then unused slots
    if <uint16_t>L.op < N_OPS and L.call < N_CALLS and <uint32_t>L.input0 < <uint64_t>i:
        if (L.input1 & L.input2 & L.input3) == -1:
            if not (ONE_INPUT_NOT_ALLOWED >> L.op) & 1:
                n_inputs[0] = 1
                return ST_OK
        elif (L.input2 & L.input3) == -1 and <uint32_t>L.input1 < <uint64_t>i:
            if not (TWO_INPUTS_NOT_ALLOWED >> L.op) & 1:
                n_inputs[0] = 2
                return ST_OK
    if <uint16_t>L.op >= N_OPS:
        return ST_BAD_OP
    if L.call >= N_CALLS:
        return ST_BAD_VALUE
    if (L.op == OP_INPUT) != (i == 0):
        return ST_NO_INPUT
    for k in range(MAX_INPUTS):     # one pass: used slots first, the rest exactly -1
        slot = input_of(L, k)
        if slot >= 0:
            if nin != k or slot >= i:
                return ST_BAD_INPUT_REF
            nin += 1
        elif slot != -1:
            return ST_BAD_INPUT_REF
    if not arity_ok(L.op, nin):
        return ST_BAD_INPUT_REF
    n_inputs[0] = nin
    return ST_OK


cdef inline void read_input(const Layer* L, const Tensor* t, int nin, LayerFacts* f
                            ) noexcept nogil:
    """Input 0's shape (none for the network input)."""
    cdef int k
    if nin == 0:
        f.gin = 1
        f.cin = 0
        f.hin = 0
        f.win = 0
        f.lin = LAYOUT_IMAGE
        f.e_in = 0
    else:
        k = input_of(L, 0)
        f.gin = t[k].g
        f.cin = t[k].c
        f.hin = t[k].h
        f.win = t[k].w
        f.lin = t[k].layout
        f.e_in = t[k].elems


# ----------------------------------- 2. shape and per-op quantities, by family
cdef inline bint is_image(const LayerFacts* f) noexcept nogil:
    return f.lin == LAYOUT_IMAGE and f.gin == 1


cdef inline bint has_channels(const LayerFacts* f) noexcept nogil:
    # images and token tensors have channels; matrix stacks do not
    return f.lin != LAYOUT_MATRIX


cdef inline int infer_window(const Layer* L, LayerFacts* f, bint* ovf) noexcept nogil:
    """conv2d, maxpool, avgpool: a kernel sliding over an image."""
    cdef int op = L.op
    cdef int64_t kh = L.kernel_h, kw = L.kernel_w, sh = L.stride_h, sw = L.stride_w
    cdef int64_t ph = L.pad_h, pw = L.pad_w, dh = L.dilation_h, dw = L.dilation_w
    cdef int64_t g, cpg
    if not is_image(f):
        return ST_BAD_SHAPE
    # (| rather than or: one well-predicted branch per test, not one per field)
    if ((kh < 1) | (kw < 1) | (sh < 1) | (sw < 1) | (ph < 0) | (pw < 0) | (dh < 1)
            | (dw < 1)):
        return ST_BAD_VALUE
    if ((dh != 1) | (dw != 1)) and op == OP_AVGPOOL:
        return ST_BAD_VALUE
    if (f.hin + 2 * ph < dh * (kh - 1) + 1) | (f.win + 2 * pw < dw * (kw - 1) + 1):
        return ST_KERNEL_TOO_LARGE
    if op == OP_CONV2D:
        g = L.groups
        if L.out_channels < 1 or g < 1:
            return ST_BAD_VALUE
        cpg = f.cin
        if g != 1:
            if f.cin % g != 0 or L.out_channels % g != 0:
                return ST_BAD_GROUPS
            cpg = f.cin // g
        f.c = L.out_channels
        f.h = pooled_size(f.hin, kh, sh, ph, dh, False)
        f.w = pooled_size(f.win, kw, sw, pw, dw, False)
        f.params = mul3(f.c, cpg, kh * kw, ovf)          # c * (cin/g) * kh * kw (+ c)
        if L.flags & FLAG_BIAS:
            f.params = add2(f.params, f.c, ovf)
            f.has_bias = True
        f.macs = mul3(mul3(f.h, f.w, f.c, ovf), cpg, kh * kw, ovf)
        return ST_OK
    # torch: pool padding at most half the (effective) kernel
    if op == OP_MAXPOOL:
        if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
            return ST_BAD_PADDING
    elif 2 * ph > kh or 2 * pw > kw:
        return ST_BAD_PADDING
    f.h = pooled_size(f.hin, kh, sh, ph, dh, L.flags & FLAG_CEIL_MODE)
    f.w = pooled_size(f.win, kw, sw, pw, dw, L.flags & FLAG_CEIL_MODE)
    f.win_k = kh * kw
    return ST_OK


cdef inline bint same_shape(const Tensor* a, const LayerFacts* f) noexcept nogil:
    return (a.g == f.gin and a.c == f.cin and a.h == f.hin and a.w == f.win
            and a.layout == f.lin)


# Ops whose ``FLAG_INPLACE`` overwrites input 0: they allocate nothing but
# still read and write (torch's ``x.relu_()``, ``out += x``, ``x *= g``,
# ``x += pos_embedding``); a bit per op
cdef uint64_t IN_PLACE_WRITERS = op_mask((OP_ACT, OP_ADD, OP_MUL, OP_SUB, OP_DIV, OP_PARAM_ADD))


cdef inline bint writes_in_place(int op) noexcept nogil:
    return (IN_PLACE_WRITERS >> op) & 1


cdef inline int infer_join(const Layer* L, const Tensor* t, LayerFacts* f) noexcept nogil:
    """add, mul, sub, div, concat: several inputs whose shapes must agree."""
    cdef int k
    cdef int32_t j
    cdef int axis = L.extra
    if L.op == OP_ADD:
        # torch's `out += identity` writes into its first input
        f.view = (L.flags & FLAG_INPLACE) != 0
        for k in range(1, f.nin):
            j = input_of(L, k)
            if not same_shape(t + j, f):
                return ST_SHAPE_MISMATCH
            f.other += t[j].elems
    elif L.op == OP_MUL or L.op == OP_SUB or L.op == OP_DIV:
        # the second input broadcasts: each dim equal or 1 (SE gate C x 1 x 1)
        f.view = (L.flags & FLAG_INPLACE) != 0
        j = input_of(L, 1)
        if (t[j].layout != f.lin or (t[j].g != f.gin and t[j].g != 1)
                or (t[j].c != f.cin and t[j].c != 1) or (t[j].h != f.hin and t[j].h != 1)
                or (t[j].w != f.win and t[j].w != 1)):
            return ST_SHAPE_MISMATCH
        f.other = t[j].elems
    else:
        # a continuation grows its first input's buffer (one torch.cat of
        # more than MAX_INPUTS tensors written as a chain of records)
        if not has_channels(f):
            return ST_BAD_SHAPE
        if axis < 0 or axis > 2:
            return ST_BAD_VALUE
        f.extend = (L.flags & FLAG_INPLACE) != 0
        for k in range(1, f.nin):
            j = input_of(L, k)
            if (t[j].g != f.gin or t[j].layout != f.lin
                    or (axis != 0 and t[j].c != f.cin) or (axis != 1 and t[j].h != f.hin)
                    or (axis != 2 and t[j].w != f.win)):
                return ST_SHAPE_MISMATCH
            if axis == 0:
                f.c += t[j].c
            elif axis == 1:
                f.h += t[j].h
            else:
                f.w += t[j].w
            f.other += t[j].elems
    return ST_OK


cdef inline int infer_tokens(const Layer* L, LayerFacts* f, bint* ovf) noexcept nogil:
    """Ops that move between layouts or work on token tensors: tokens,
    to_image, prepend, param_add, view_as, patch_merge."""
    cdef int op = L.op
    if op == OP_TOKENS:
        if not is_image(f):
            return ST_BAD_SHAPE
        f.layout = LAYOUT_TOKENS
        if L.flags & FLAG_FLAT:
            f.h = mul2(f.hin, f.win, ovf)
            f.w = 1
        f.view = True
    elif op == OP_TO_IMAGE:
        if f.lin != LAYOUT_TOKENS or f.gin != 1:
            return ST_BAD_SHAPE
        f.layout = LAYOUT_IMAGE
        f.view = True
    elif op == OP_PREPEND:
        if f.lin != LAYOUT_TOKENS or f.gin != 1 or f.win != 1:
            return ST_BAD_SHAPE
        if L.size_h < 1:
            return ST_BAD_VALUE
        f.h = add2(f.hin, L.size_h, ovf)
        f.params = mul2(L.size_h, f.cin, ovf)
    elif op == OP_PARAM_ADD:
        if L.extra < 0:
            return ST_BAD_VALUE
        f.params = L.extra
        f.view = (L.flags & FLAG_INPLACE) != 0
    elif op == OP_VIEW_AS:
        if L.groups < 1 or L.out_channels < 1 or L.size_h < 1 or L.size_w < 1:
            return ST_BAD_VALUE
        if (L.flags & FLAG_TOKENS) and (L.flags & FLAG_MATRIX):
            return ST_BAD_VALUE
        f.g = L.groups
        f.c = L.out_channels
        f.h = L.size_h
        f.w = L.size_w
        f.layout = (LAYOUT_TOKENS if L.flags & FLAG_TOKENS else
                    LAYOUT_MATRIX if L.flags & FLAG_MATRIX else LAYOUT_IMAGE)
        if (f.layout == LAYOUT_IMAGE and f.g != 1) or (f.layout == LAYOUT_MATRIX and f.c != 1):
            return ST_BAD_VALUE
        if mul2(mul3(f.g, f.c, f.h, ovf), f.w, ovf) != f.e_in:
            return ST_OVERFLOW if ovf[0] else ST_SHAPE_MISMATCH
        f.view = (L.flags & FLAG_COPY) == 0
    else:  # OP_PATCH_MERGE: 2 x 2 neighbours to channels, odd sides zero-padded
        if f.lin != LAYOUT_TOKENS or f.gin != 1:
            return ST_BAD_SHAPE
        f.c = mul2(f.cin, 4, ovf)
        f.h = (f.hin + 1) // 2
        f.w = (f.win + 1) // 2
    return ST_OK


cdef inline int infer_matmul(const Layer* L, const Tensor* t, LayerFacts* f,
                             bint* ovf) noexcept nogil:
    """matmul: (g, m, k) x (g or 1, k, n) -> (g, m, n); either stack may broadcast."""
    cdef const Tensor* b = t + input_of(L, 1)
    if f.lin != LAYOUT_MATRIX or b.layout != LAYOUT_MATRIX:
        return ST_BAD_SHAPE
    if f.win != b.h or (b.g != f.gin and b.g != 1 and f.gin != 1):
        return ST_SHAPE_MISMATCH
    f.g = f.gin if f.gin > b.g else b.g
    f.h = f.hin
    f.w = b.w
    f.macs = mul3(mul3(f.g, f.h, f.win, ovf), f.w, 1, ovf)
    f.other = b.elems
    return ST_OK


cdef inline int infer_attention(const Layer* L, const Tensor* t, LayerFacts* f,
                                bint causal_half, bint* ovf) noexcept nogil:
    """attention (q, k, v token tensors) and mha (one token tensor, with its
    projections): heads = ``groups``, key/value heads = ``kv_heads``.

    A causal attention's queries are the last Lq of its Lk positions (Lk >=
    Lq: a decode step's one query over the cached keys and its own).  Its
    scores count the full Lq x Lk rectangle, as torch computes them, or with
    ``causal_half`` only the keys at or before each query:
    Lq (Lk - Lq) + Lq (Lq + 1) / 2.  Memory always holds the rectangle."""
    cdef int64_t H = L.groups, Hkv = L.kv_heads if L.kv_heads > 0 else L.groups
    cdef int64_t Lq, Lk, d, dv, E
    cdef const Tensor* k
    cdef const Tensor* v
    if f.lin != LAYOUT_TOKENS:
        return ST_BAD_SHAPE
    if H < 1 or L.kv_heads < 0:
        return ST_BAD_VALUE
    Lq = mul2(f.hin, f.win, ovf)
    if L.op == OP_MHA:
        E = L.out_channels
        if E < 1:
            return ST_BAD_VALUE
        if f.cin != E:
            return ST_SHAPE_MISMATCH
        if E % H != 0 or L.kv_heads != 0:
            return ST_BAD_GROUPS
        Lk = Lq
        d = E // H
        dv = d
        f.params = mul3(4, E, E, ovf)                       # in_proj 3E^2, out_proj E^2
        if L.flags & FLAG_BIAS:
            f.params = add2(f.params, mul2(4, E, ovf), ovf)
            f.has_bias = True
        f.macs = mul3(mul3(f.gin, Lq, 4, ovf), E, E, ovf)   # projections
        f.scratch = mul3(mul2(f.gin, Lq, ovf), 4, E, ovf)   # qkv and the heads' output
    else:
        k = t + input_of(L, 1)
        v = t + input_of(L, 2)
        if k.layout != LAYOUT_TOKENS or v.layout != LAYOUT_TOKENS:
            return ST_BAD_SHAPE
        if k.g != f.gin or v.g != f.gin or k.h != v.h or k.w != v.w:
            return ST_SHAPE_MISMATCH
        if f.cin % H != 0 or H % Hkv != 0 or v.c % Hkv != 0:
            return ST_BAD_GROUPS
        d = f.cin // H
        if k.c != mul2(Hkv, d, ovf):
            return ST_SHAPE_MISMATCH
        dv = v.c // Hkv
        Lk = mul2(k.h, k.w, ovf)
        f.c = mul2(H, dv, ovf)
        f.other = add2(k.elems, v.elems, ovf)
    f.scores_mem = mul3(mul2(f.gin, H, ovf), Lq, Lk, ovf)
    f.scores = f.scores_mem
    if L.flags & FLAG_CAUSAL:
        if Lk < Lq:
            return ST_SHAPE_MISMATCH
        if causal_half:
            f.scores = mul2(mul2(f.gin, H, ovf),
                            add2(mul2(Lq, Lk - Lq, ovf), mul2(Lq, Lq + 1, ovf) // 2, ovf), ovf)
    f.attn_macs = mul2(f.scores, d + dv, ovf)
    f.macs = add2(f.macs, f.attn_macs, ovf)
    return ST_OK


cdef inline int infer_reshape(const Layer* L, LayerFacts* f) noexcept nogil:
    """pad, crop, mean: the output shape from the record's geometry (pad and
    crop of images; mean of images and token tensors)."""
    if f.lin == LAYOUT_MATRIX or f.gin != 1 or (L.op != OP_MEAN and f.lin != LAYOUT_IMAGE):
        return ST_BAD_SHAPE
    if L.op == OP_MEAN:
        if L.extra < 1 or L.extra > 7:
            return ST_BAD_VALUE
        if L.extra & 1:
            f.c = 1
        if L.extra & 2:
            f.h = 1
        if L.extra & 4:
            f.w = 1
        return ST_OK
    if L.size_h < 1 or L.size_w < 1 or L.pad_h < 0 or L.pad_w < 0:
        return ST_BAD_VALUE
    if L.op == OP_PAD:
        if (L.out_channels < 1 or L.start < 0 or L.start + f.cin > L.out_channels
                or L.pad_h + f.hin > L.size_h or L.pad_w + f.win > L.size_w):
            return ST_BAD_VALUE
        f.c = L.out_channels
    else:
        # a crop: rows pad_h, pad_h + stride_h, ... (size_h of them), all inside
        if (L.stride_h < 1 or L.stride_w < 1
                or L.pad_h + (L.size_h - 1) * <int64_t>L.stride_h >= f.hin
                or L.pad_w + (L.size_w - 1) * <int64_t>L.stride_w >= f.win):
            return ST_BAD_VALUE
        f.view = True
    f.h = L.size_h
    f.w = L.size_w
    return ST_OK


cdef inline int infer_lm(const Layer* L, const Tensor* t, LayerFacts* f,
                         bint* ovf) noexcept nogil:
    """The ops of language models: embedding, rmsnorm, rope, kv_cache,
    expert_linear, moe_combine."""
    cdef int op = L.op
    cdef int64_t per, k
    cdef const Tensor* p
    if op == OP_EMBEDDING:
        # token ids: one channel (the id) per position
        if f.cin != 1 or f.gin != 1 or f.lin == LAYOUT_MATRIX:
            return ST_BAD_SHAPE
        if L.out_channels < 1 or L.extra < 1:
            return ST_BAD_VALUE
        f.c = L.out_channels
        f.layout = LAYOUT_TOKENS
        f.params = mul2(L.extra, f.c, ovf)
    elif op == OP_RMSNORM:
        if not has_channels(f):
            return ST_BAD_SHAPE
        if L.flags & FLAG_AFFINE:
            f.params = f.c
            f.has_affine = True
    elif op == OP_ROPE:
        # rotates pairs of channels within each of `groups` heads
        if f.lin != LAYOUT_TOKENS:
            return ST_BAD_SHAPE
        if L.groups < 1:
            return ST_BAD_VALUE
        if f.cin % L.groups != 0 or (f.cin // L.groups) % 2 != 0:
            return ST_BAD_GROUPS
    elif op == OP_KV_CACHE:
        # a view of the cache: past tokens, then the ones appended
        if f.lin != LAYOUT_TOKENS or f.gin != 1 or f.win != 1:
            return ST_BAD_SHAPE
        if L.size_h < 0:
            return ST_BAD_VALUE
        f.h = add2(f.hin, L.size_h, ovf)
        f.view = True
        f.cache = True
    elif op == OP_EXPERT_LINEAR:
        # one token (group 1: dispatch) or each of its top-k slots through an expert
        k = L.size_h
        if f.lin != LAYOUT_TOKENS:
            return ST_BAD_SHAPE
        if L.out_channels < 1 or L.groups < 1 or k < 1 or k > L.groups:
            return ST_BAD_VALUE
        if f.gin != 1 and f.gin != k:
            return ST_SHAPE_MISMATCH
        f.g = k
        f.c = L.out_channels
        per = mul2(f.c, f.cin, ovf)
        if L.flags & FLAG_BIAS:
            per = add2(per, f.c, ovf)
            f.has_bias = True
        f.params = mul2(per, L.groups, ovf)
        f.inactive = mul2(per, L.groups - k, ovf)
        f.macs = mul2(mul3(k, f.hin, f.win, ovf), mul2(f.c, f.cin, ovf), ovf)
    else:  # OP_MOE_COMBINE: k groups of expert outputs, the routing weights of the tokens
        p = t + input_of(L, 1)
        if f.lin != LAYOUT_TOKENS or p.layout != LAYOUT_TOKENS or p.g != 1:
            return ST_BAD_SHAPE
        if p.h != f.hin or p.w != f.win:
            return ST_SHAPE_MISMATCH
        f.g = 1
        f.other = p.elems
    return ST_OK


cdef inline int infer_layer(const Layer* L, const Tensor* t, LayerFacts* f,
                            bint causal_half, bint* ovf) noexcept nogil:
    """Output shape and per-op quantities of one layer, every field checked."""
    cdef int op = L.op
    f.g = f.gin
    f.c = f.cin
    f.h = f.hin
    f.w = f.win
    f.layout = f.lin
    f.macs = 0
    f.attn_macs = 0
    f.scores = 0
    f.scores_mem = 0
    f.scratch = 0
    f.params = 0
    f.inactive = 0
    f.other = 0
    f.win_k = 0
    f.has_bias = False
    f.has_affine = False
    f.view = False
    f.extend = False
    f.cache = False
    if op == OP_INPUT:
        if L.out_channels < 1 or L.size_h < 1 or L.size_w < 1:
            return ST_BAD_VALUE
        f.c = L.out_channels
        f.h = L.size_h
        f.w = L.size_w
    elif op == OP_CONV2D or op == OP_MAXPOOL or op == OP_AVGPOOL:
        return infer_window(L, f, ovf)
    elif op == OP_ADAPTIVE_AVGPOOL:
        if f.gin != 1 or f.lin == LAYOUT_MATRIX:
            return ST_BAD_SHAPE
        if L.size_h < 1 or L.size_w < 1:
            return ST_BAD_VALUE
        f.h = L.size_h
        f.w = L.size_w
    elif op == OP_LINEAR:
        if L.out_channels < 1:
            return ST_BAD_VALUE
        # an image must be 1 x 1 (flatten or pool first); tokens: every token
        if f.lin == LAYOUT_MATRIX or (f.lin == LAYOUT_IMAGE and (f.hin != 1 or f.win != 1)):
            return ST_BAD_SHAPE
        f.c = L.out_channels
        f.macs = mul2(mul3(f.gin, f.hin, f.win, ovf), mul2(f.c, f.cin, ovf), ovf)
        f.params = mul2(f.c, f.cin, ovf)
        if L.flags & FLAG_TIED:     # the weight is an embedding's, counted there
            f.params = 0
        if L.flags & FLAG_BIAS:
            f.params = add2(f.params, f.c, ovf)
            f.has_bias = True
    elif op == OP_BATCHNORM or op == OP_LAYERNORM or op == OP_SCALE:
        if (op == OP_BATCHNORM and not is_image(f)) or not has_channels(f):
            return ST_BAD_SHAPE
        if op == OP_SCALE:
            f.params = f.c
            if L.flags & FLAG_BIAS:
                f.params = mul2(2, f.c, ovf)
                f.has_bias = True
        elif L.flags & FLAG_AFFINE:
            f.params = mul2(2, f.c, ovf)
            f.has_affine = True
    elif op == OP_ACT:
        if L.act < 0 or L.act >= N_ACTS:
            return ST_BAD_OP
        f.view = (L.flags & FLAG_INPLACE) != 0
    elif op == OP_ADD or op == OP_MUL or op == OP_CONCAT or op == OP_SUB or op == OP_DIV:
        return infer_join(L, t, f)
    elif op == OP_PAD or op == OP_CROP or op == OP_MEAN:
        return infer_reshape(L, f)
    elif op == OP_FLATTEN:
        if not is_image(f):
            return ST_BAD_SHAPE
        f.c = mul3(f.cin, f.hin, f.win, ovf)
        f.h = 1
        f.w = 1
        f.view = True
    elif op == OP_IDENTITY or op == OP_DROPOUT:
        f.view = True
    elif op == OP_SLICE:
        # channels (with FLAG_TOKENS: tokens) start, start + step, ...
        # (out_channels of them); groups is the step, 0 meaning 1
        if not has_channels(f) or ((L.flags & FLAG_TOKENS) and f.lin != LAYOUT_TOKENS):
            return ST_BAD_SHAPE
        if (L.start < 0 or L.out_channels < 1 or L.groups < 0
                or L.start + (L.out_channels - 1) * <int64_t>(L.groups if L.groups > 1 else 1)
                >= (f.hin if L.flags & FLAG_TOKENS else f.cin)):
            return ST_BAD_VALUE
        if L.flags & FLAG_TOKENS:
            f.h = L.out_channels
        else:
            f.c = L.out_channels
        f.view = True
    elif op == OP_CHANNEL_SHUFFLE:
        if not is_image(f):
            return ST_BAD_SHAPE
        if L.groups < 1:
            return ST_BAD_VALUE
        if f.cin % L.groups != 0:
            return ST_BAD_GROUPS
    elif op == OP_MATMUL:
        return infer_matmul(L, t, f, ovf)
    elif op == OP_ATTENTION or op == OP_MHA:
        return infer_attention(L, t, f, causal_half, ovf)
    elif (op == OP_EMBEDDING or op == OP_RMSNORM or op == OP_ROPE or op == OP_KV_CACHE
          or op == OP_EXPERT_LINEAR or op == OP_MOE_COMBINE):
        return infer_lm(L, t, f, ovf)
    elif (op == OP_TOKENS or op == OP_TO_IMAGE or op == OP_PREPEND or op == OP_PARAM_ADD
          or op == OP_VIEW_AS or op == OP_PATCH_MERGE):
        return infer_tokens(L, f, ovf)
    # OP_ZERO, OP_SOFTMAX, OP_LOG_SOFTMAX, OP_COPY: same shape, nothing else to infer
    return ST_OK


# ------------------------------------------------------ 3. the convention's row
cdef inline int64_t rows_of(const LayerFacts* f, bint* ovf) noexcept nogil:
    """Positions of the output: vectors along its channels (images, tokens)
    or its rows (matrices) -- what a softmax normalises, one at a time."""
    if f.layout == LAYOUT_MATRIX:
        return mul2(f.g, f.h, ovf)
    return mul3(f.g, f.h, f.w, ovf)


cdef inline int64_t term_value(int t, int op, const LayerFacts* f, int64_t n,
                               bint* ovf) noexcept nogil:
    """One term of ``nasflops.conventions`` for this layer, x batch size ``n``."""
    if t == T_MAC:
        return mul2(f.macs, n, ovf)
    if t == T_OUT:
        return mul2(f.e, n, ovf)
    if t == T_IN:
        return mul2(f.e_in, n, ovf)
    if t == T_BIAS:
        return mul2(f.e, n, ovf) if f.has_bias else 0
    if t == T_AFFINE:
        return mul2(f.e, n, ovf) if f.has_affine else 0
    if t == T_WINDOW:
        if op == OP_MEAN:
            return mul2(f.e_in, n, ovf)   # every input element summed once
        if op == OP_ADAPTIVE_AVGPOOL:
            return mul3(mul3(f.c, adaptive_window_sum(f.hin, f.h),
                             adaptive_window_sum(f.win, f.w), ovf), n, 1, ovf)
        return mul3(f.win_k, f.e, n, ovf)
    if t == T_EXTRA_IN:
        return mul2(f.other, n, ovf)
    if t == T_ROWS:
        return mul2(rows_of(f, ovf), n, ovf)
    if t == T_ATTN_MAC:
        return mul2(f.attn_macs, n, ovf)
    if t == T_SCORES:
        return mul2(f.scores, n, ovf)
    if t == T_OUT_CH:
        return mul2(f.c, n, ovf)
    return n                   # T_SAMPLES


cdef inline int64_t convention_ops(const Rules* rules, const Layer* L, const LayerFacts* f,
                                   int64_t n, bint* ovf) noexcept nogil:
    """The layer's count: its row's weights times its terms (only the terms
    the convention weighs are computed); zero for an earlier call of a module
    called again when the convention keeps only the last call."""
    cdef int row = L.call * RULE_ROWS + (N_OPS + L.act if L.op == OP_ACT else L.op)
    cdef int k
    cdef int64_t ops = 0
    if (L.flags & FLAG_CALLED_AGAIN) and rules.last_call_only:
        return 0
    for k in range(rules.n[row]):
        ops = add2(ops, mul2(rules.coef[row * N_TERMS + k],
                             term_value(rules.term[row * N_TERMS + k], L.op, f, n, ovf),
                             ovf), ovf)
    return ops


# ------------------------------------------------------------------- 4. bytes
# ops that may read other than every parameter once (see weights_read)
cdef uint64_t PARTIAL_WEIGHT_READS = op_mask((OP_EMBEDDING, OP_LINEAR, OP_EXPERT_LINEAR))


cdef inline int64_t weights_read(const Layer* L, const LayerFacts* f, int64_t n,
                                 bint* ovf) noexcept nogil:
    """Weight elements one pass of ``n`` samples reads: every parameter once,
    except an embedding (the rows looked up), a tied linear (the table it
    shares) and an expert linear (the experts that can be hit: at most
    min(experts, n x tokens x top-k); exact for one decoded token)."""
    cdef int64_t hits
    if not (PARTIAL_WEIGHT_READS >> L.op) & 1:
        return f.params
    if L.op == OP_EMBEDDING:
        return mul2(f.e, n, ovf)
    if L.op == OP_LINEAR and (L.flags & FLAG_TIED):
        return add2(f.params, mul2(f.c, f.cin, ovf), ovf)
    if L.op == OP_EXPERT_LINEAR:
        hits = mul2(mul3(f.g, f.h, f.w, ovf), n, ovf)
        if hits > L.groups:
            hits = L.groups
        return mul2(f.params // L.groups, hits, ovf)
    return f.params


cdef inline void layer_bytes(const Layer* L, const Tensor* t, const LayerFacts* f,
                             int64_t out_bytes, int64_t scratch_bytes, int64_t weight_bytes,
                             LayerCost* cost, bint* ovf) noexcept nogil:
    """Views and the network input move no bytes; in-place ops (act, add, ...)
    allocate nothing but still read and write; a concat continuation writes
    only what it adds; intermediates an op materialises and drops (attention
    scores) are written once and read once.  A key/value cache record writes
    its new entries into the cache (whose reading is its readers' input);
    ``weight_bytes``: the weights the layer reads (``weights_read``)."""
    cdef int k
    # (bitwise: in-place and true views alternate, a branch per flag would mispredict)
    if (L.op == OP_INPUT) | (f.view & (not writes_in_place(L.op)) & (not f.cache)):
        cost.act = 0
        cost.rd = 0
        cost.wr = 0
    elif f.cache:
        cost.act = 0
        cost.rd = t[input_of(L, 0)].bytes
        cost.wr = cost.rd
    elif f.extend:
        cost.act = out_bytes - t[input_of(L, 0)].bytes
        cost.wr = cost.act
        cost.rd = 0
        for k in range(1, f.nin):
            cost.rd = add2(cost.rd, t[input_of(L, k)].bytes, ovf)
    else:
        if scratch_bytes == 0:
            cost.act = out_bytes
            cost.rd = weight_bytes
        else:
            cost.act = add2(out_bytes, scratch_bytes, ovf)
            cost.rd = add2(weight_bytes, scratch_bytes, ovf)
        cost.wr = cost.act
        for k in range(f.nin):
            cost.rd = add2(cost.rd, t[input_of(L, k)].bytes, ovf)


cdef inline void torchstat_bytes(const Layer* L, const Tensor* t, const LayerFacts* f,
                                 int64_t out_bytes, int64_t weight_size, int64_t weight_bytes,
                                 LayerCost* cost, bint* ovf) noexcept nogil:
    """torchstat 0.0.7's memory columns (``compute_memory.py``).  Only module
    calls are seen, and of a module called again only its last call.  Its
    "memory" is every such call's output, views and in-place outputs included.
    It reads and writes only in the modules it has a rule for: conv and linear
    read input + weights, batch norm input + 2C (running statistics, affine or
    not), pools and ReLU/ReLU6 their input; each writes its output.  Every
    other module moves nothing."""
    cdef int op = L.op
    cdef int64_t in_bytes
    cost.act = 0
    cost.rd = 0
    cost.wr = 0
    if op == OP_INPUT or L.call != CALL_MODULE or (L.flags & FLAG_CALLED_AGAIN):
        return
    cost.act = out_bytes
    in_bytes = t[input_of(L, 0)].bytes
    if op == OP_CONV2D or op == OP_LINEAR:
        cost.rd = add2(in_bytes, weight_bytes, ovf)
    elif op == OP_BATCHNORM:
        cost.rd = add2(in_bytes, mul3(2, f.c, weight_size, ovf), ovf)
    elif (op == OP_MAXPOOL or op == OP_AVGPOOL
          or (op == OP_ACT and (L.act == ACT_RELU or L.act == ACT_RELU6))):
        cost.rd = in_bytes
    else:
        return
    cost.wr = out_bytes


# --------------------------------------------------------------- 5. lifetimes
cdef inline void track_lifetime(const Layer* layers, Py_ssize_t i, const LayerFacts* f,
                                int64_t act, Tensor* t) noexcept nogil:
    """A view or in-place op lives in its input's buffer; every buffer an op
    reads lives at least until that op."""
    cdef const Layer* L = layers + i
    cdef int k
    cdef Py_ssize_t j
    if f.view or f.extend:
        t[i].owner = t[input_of(L, 0)].owner
        t[i].alloc = act if f.extend else 0
    else:
        t[i].owner = <int32_t>i
        t[i].alloc = t[i].bytes
    t[i].freed = 0
    for k in range(f.nin):
        t[t[input_of(L, k)].owner].last_use = <int32_t>i
    if f.extend:
        # one cat: every input of the chain lives until its last record
        j = input_of(L, 0)
        while True:
            for k in range(n_inputs_of(layers + j)):
                t[t[input_of(layers + j, k)].owner].last_use = <int32_t>i
            if layers[j].op != OP_CONCAT or not (layers[j].flags & FLAG_INPLACE):
                break
            j = input_of(layers + j, 0)
    t[t[i].owner].last_use = <int32_t>i


# ------------------------------------------------------------------ 6. peak
cdef inline int peak_sweep(Tensor* t, Py_ssize_t n, bint any_scratch, int64_t* peak,
                           int64_t* per_layer) noexcept nogil:
    """Largest total of live buffers, layers run in order, each buffer freed
    after its last reader; a layer's scratch is live only while it runs
    (``any_scratch``: some layer has scratch).

    The caller has checked that the sum of every allocation fits in int64
    (it is at most the activation bytes plus the input), so no partial sum
    below can overflow.
    """
    cdef Py_ssize_t i
    cdef int64_t live = 0, now, top = 0
    for i in range(n):
        t[t[t[i].owner].last_use].freed += t[i].alloc
    for i in range(n):
        live += t[i].alloc
        now = live + t[i].scratch if any_scratch else live
        if now > top:
            top = now
        if per_layer != NULL:
            per_layer[i * N_LAYER_COLS + L_LIVE_BYTES] = now
        live -= t[i].freed
        if live < 0:  # cannot happen; guards the bookkeeping above
            return ST_OVERFLOW
    peak[0] = top
    return ST_OK


# ------------------------------------------------------------ one architecture
cdef inline int fail(int64_t* bad_layer, Py_ssize_t i, int status) noexcept nogil:
    bad_layer[0] = i
    return status


cdef inline void add_cost(int64_t* tot, const LayerCost* cost, bint* ovf) noexcept nogil:
    tot[M_OPS] = add2(tot[M_OPS], cost.ops, ovf)
    tot[M_MACS] = add2(tot[M_MACS], cost.macs, ovf)
    tot[M_PARAMS] = add2(tot[M_PARAMS], cost.params, ovf)
    tot[M_ACT_BYTES] = add2(tot[M_ACT_BYTES], cost.act, ovf)
    tot[M_READ_BYTES] = add2(tot[M_READ_BYTES], cost.rd, ovf)
    tot[M_WRITE_BYTES] = add2(tot[M_WRITE_BYTES], cost.wr, ovf)


cdef inline double roofline(const LayerCost* cost, const Options* o) noexcept nogil:
    cdef double t_compute = cost.ops / o.peak_ops if o.peak_ops > 0 else 0.0
    cdef double t_memory = ((<double>cost.rd + <double>cost.wr) / o.bytes_per_s
                            if o.bytes_per_s > 0 else 0.0)
    return t_compute if t_compute > t_memory else t_memory


cdef inline void write_layer_row(int64_t* row, const LayerFacts* f, const LayerCost* cost
                                 ) noexcept nogil:
    row[L_C] = f.c
    row[L_H] = f.h
    row[L_W] = f.w
    row[L_G] = f.g
    row[L_LAYOUT] = f.layout
    row[L_OPS] = cost.ops
    row[L_MACS] = cost.macs
    row[L_PARAMS] = cost.params
    row[L_ACT_BYTES] = cost.act
    row[L_READ_BYTES] = cost.rd
    row[L_WRITE_BYTES] = cost.wr
    row[L_ACTIVE_PARAMS] = cost.active
    row[L_KV_CACHE_BYTES] = cost.kv


cdef inline void train_cost(LayerCost* cost, bint* ovf) noexcept nogil:
    """Forward + backward: the backward of every record counts twice its
    forward, ops and bytes (a matrix product's input and weight gradients are
    two products of its size; FlopCounterMode counts exactly that)."""
    cost.ops = mul2(cost.ops, 3, ovf)
    cost.macs = mul2(cost.macs, 3, ovf)
    cost.rd = mul2(cost.rd, 3, ovf)
    cost.wr = mul2(cost.wr, 3, ovf)


cdef struct Kept:
    # activations a training step keeps for its backward pass
    int64_t saved         # every buffer the forward allocates (no recomputation)
    int64_t checkpoints   # full recomputation: the outputs of checkpoint records
    int64_t segment       # ... the buffers allocated since the last checkpoint
    int64_t largest       # ... the largest such segment before it


cdef inline void keep_for_backward(Kept* k, int64_t nbytes, bint checkpoint,
                                   bint* ovf) noexcept nogil:
    """A layer's buffer, kept for the backward: always without recomputation;
    with full recomputation a checkpoint's output is kept and starts a new
    segment, and other buffers are recomputed one segment at a time."""
    k.saved = add2(k.saved, nbytes, ovf)
    if checkpoint:
        k.checkpoints = add2(k.checkpoints, nbytes, ovf)
        if k.segment > k.largest:
            k.largest = k.segment
        k.segment = 0
    else:
        k.segment = add2(k.segment, nbytes, ovf)


cdef inline void train_state(int64_t* tot, int64_t weight_size, const Kept* k,
                             bint* ovf) noexcept nogil:
    """Training memory: gradients in the weight dtype; Adam's two fp32
    moments, plus an fp32 master copy of weights narrower than fp32; the
    activations kept for the backward, all of them or, with full
    recomputation, the checkpoints' outputs and the largest segment."""
    tot[M_GRAD_BYTES] = mul2(tot[M_PARAMS], weight_size, ovf)
    tot[M_OPTIMIZER_BYTES] = mul2(tot[M_PARAMS], 12 if weight_size < 4 else 8, ovf)
    tot[M_SAVED_ACT_BYTES] = k.saved
    tot[M_RECOMPUTE_ACT_BYTES] = add2(k.checkpoints,
                                      k.segment if k.segment > k.largest else k.largest, ovf)


cdef int score_arch(const Layer* layers, Py_ssize_t n, const Rules rules, const Options o,
                    Scratch* s, int64_t* metrics, double* latency,
                    int64_t* bad_layer, int64_t* per_layer) noexcept nogil:
    """Score one architecture; return a Status and set ``bad_layer``.

    ``metrics`` receives N_METRICS values; ``latency`` (may be NULL) the
    roofline estimate; ``per_layer`` (may be NULL) N_LAYER_COLS per layer.
    """
    cdef Py_ssize_t i
    cdef const Layer* L
    cdef Tensor* t = s.t
    cdef Tensor* out
    cdef LayerFacts f
    cdef LayerCost cost
    cdef int64_t tot[N_METRICS]
    cdef int64_t peak = 0, inactive = 0
    cdef int64_t alloc, allocated = 0, wbytes
    cdef Kept kept
    cdef double lat = 0.0
    cdef bint ovf = False, any_scratch = False
    cdef int st
    cdef bint with_latency = latency != NULL and (o.peak_ops > 0 or o.bytes_per_s > 0)
    # the options most calls leave off, tested once per layer
    cdef bint other_semantics = o.memory == MEM_TORCHSTAT or o.train
    cdef bint more_outputs = with_latency or per_layer != NULL

    bad_layer[0] = -1
    if n == 0:
        return ST_EMPTY
    for i in range(N_METRICS):
        tot[i] = 0
    kept.saved = kept.checkpoints = kept.segment = kept.largest = 0
    for i in range(n):
        L = layers + i
        out = t + i
        st = check_record(L, i, &f.nin)
        if st != ST_OK:
            return fail(bad_layer, i, st)
        read_input(L, t, f.nin, &f)
        st = infer_layer(L, t, &f, o.causal_half, &ovf)
        if st != ST_OK:
            return fail(bad_layer, i, st)
        out.g = f.g
        out.c = f.c
        out.h = f.h
        out.w = f.w
        out.layout = f.layout
        f.e = mul2(mul3(f.g, f.c, f.h, &ovf), f.w, &ovf)
        out.elems = f.e
        out.bytes = mul2(f.e, o.elem_bytes, &ovf)
        if f.scratch == 0 and f.scores_mem == 0:   # most layers: nothing transient
            out.scratch = 0
        else:
            if not o.fused_attention:   # attention scores are materialised
                f.scratch = add2(f.scratch, f.scores_mem, &ovf)
            out.scratch = mul2(f.scratch, o.elem_bytes, &ovf)
            any_scratch = True
        cost.macs = mul2(f.macs, o.batch_size, &ovf)
        cost.ops = convention_ops(&rules, L, &f, o.batch_size, &ovf)
        cost.params = f.params
        cost.active = f.params
        if L.flags & FLAG_CALLED_AGAIN:   # a module's weights count once, at its last call
            cost.params = 0
            cost.active = 0
        elif f.inactive != 0:             # experts a token is not routed to
            cost.active = f.params - f.inactive
            inactive = add2(inactive, f.inactive, &ovf)
        cost.kv = 0
        if f.cache:
            cost.kv = out.bytes
            tot[M_KV_CACHE_BYTES] = add2(tot[M_KV_CACHE_BYTES], cost.kv, &ovf)
        wbytes = mul2(weights_read(L, &f, o.batch_size, &ovf), o.weight_size, &ovf)
        layer_bytes(L, t, &f, out.bytes, out.scratch, wbytes, &cost, &ovf)
        alloc = cost.act     # what the buffers really take, for the peak
        allocated = add2(allocated, alloc, &ovf)
        if other_semantics:
            if o.memory == MEM_TORCHSTAT:
                torchstat_bytes(L, t, &f, out.bytes, o.weight_size, wbytes, &cost, &ovf)
            if o.train:
                train_cost(&cost, &ovf)
                # the buffer this layer allocates (as track_lifetime sees it) and its scratch
                keep_for_backward(&kept, add2(0 if f.view else alloc if f.extend else out.bytes,
                                              out.scratch, &ovf),
                                  (L.flags & FLAG_CHECKPOINT) != 0, &ovf)
        add_cost(tot, &cost, &ovf)
        if ovf:
            return fail(bad_layer, i, ST_OVERFLOW)
        track_lifetime(layers, i, &f, alloc, t)
        if more_outputs:
            if with_latency:
                lat += roofline(&cost, &o)
            if per_layer != NULL:
                write_layer_row(per_layer + i * N_LAYER_COLS, &f, &cost)

    # every allocation is a layer's activation bytes or the network input:
    # this bounds every partial sum of the sweep
    add2(allocated, t[0].bytes, &ovf)
    # a token touches every counted parameter but those of the experts it is not routed to
    tot[M_ACTIVE_PARAMS] = tot[M_PARAMS] - inactive
    tot[M_WEIGHT_BYTES] = mul2(tot[M_PARAMS], o.weight_size, &ovf)
    if o.train:
        train_state(tot, o.weight_size, &kept, &ovf)
    if ovf or peak_sweep(t, n, any_scratch, &peak, per_layer) != ST_OK:
        return fail(bad_layer, n - 1, ST_OVERFLOW)
    tot[M_PEAK_ACT_BYTES] = peak
    bad_layer[0] = -1
    for i in range(N_METRICS):
        metrics[i] = tot[i]
    if latency != NULL:
        latency[0] = lat
    return ST_OK


# ------------------------------------------------------------- entry points
cdef Options make_options(int64_t batch_size, int64_t weight_size, int64_t act_size,
                          double peak_ops, double bytes_per_s, bint fused_attention,
                          int memory, bint train, bint causal_half) except *:
    cdef Options o
    cdef bint ovf = False
    o.fused_attention = fused_attention
    o.train = train
    o.causal_half = causal_half
    if memory < 0 or memory >= N_MEMORY:
        raise ValueError("memory must be one of %s, got %d" % (sorted(MEMORY.values()), memory))
    o.batch_size = batch_size
    o.weight_size = weight_size
    o.elem_bytes = nf_mul(batch_size, act_size, &ovf)
    if ovf:
        raise ValueError("batch_size x activation bytes (%d x %d) overflows int64"
                         % (batch_size, act_size))
    o.peak_ops = peak_ops
    o.bytes_per_s = bytes_per_s
    o.memory = memory
    return o


def _check_weights(const int64_t[:, :, ::1] weights):
    if weights.shape[0] != N_CALLS or weights.shape[1] != RULE_ROWS or weights.shape[2] != N_TERMS:
        raise ValueError("convention weights must have shape (%d, %d, %d)"
                         % (N_CALLS, RULE_ROWS, N_TERMS))


cdef Py_ssize_t check_offsets(const int64_t[::1] offsets, Py_ssize_t start, Py_ssize_t stop,
                              Py_ssize_t n_records) noexcept nogil:
    """First architecture in ``start .. stop - 1`` whose offsets do not lie
    inside the records in order, or -1: the core reads only what is there."""
    cdef Py_ssize_t i
    if offsets[start] < 0:
        return start
    for i in range(start, stop):
        if offsets[i + 1] < offsets[i] or offsets[i + 1] > n_records:
            return i
    return -1


def score_range(const Layer[::1] records, const int64_t[::1] offsets,
                Py_ssize_t start, Py_ssize_t stop,
                const int64_t[:, :, ::1] weights, int64_t batch_size,
                int64_t weight_size, int64_t act_size,
                int64_t[:, ::1] metrics, int64_t[::1] status,
                int64_t[::1] bad_layer,
                double peak_ops=0.0, double bytes_per_s=0.0,
                double[::1] latency=None, bint fused_attention=False,
                int memory=MEM_NASFLOPS, bint last_call_only=False, bint train=False,
                bint causal_half=False):
    """Score architectures ``start <= i < stop`` of a batch, GIL released.

    Writes row ``i`` of ``metrics`` (``METRICS`` columns), ``status``,
    ``bad_layer`` and, if given, ``latency``.  Rows of invalid architectures
    hold -1.  ``memory`` picks the byte semantics (``MEMORY``);
    ``last_call_only`` makes records flagged ``called_again`` count zero ops;
    ``train`` counts forward + backward and the training memory;
    ``causal_half`` counts causal attention over the keys at or before each
    query.  Offsets are checked against the records before anything is
    read (``ValueError`` naming the first bad architecture).
    """
    _check_weights(weights)
    if metrics.shape[1] != N_METRICS:
        raise ValueError("metrics must have %d columns" % N_METRICS)
    if (stop > offsets.shape[0] - 1 or start < 0 or start > stop or metrics.shape[0] < stop
            or status.shape[0] < stop or bad_layer.shape[0] < stop):
        raise IndexError("architecture range out of bounds")
    if batch_size < 1 or weight_size < 1 or act_size < 1:
        raise ValueError("batch_size and element sizes must be >= 1")
    cdef Py_ssize_t i, k, longest = 0, bad_arch = -1
    cdef Scratch s
    cdef Rules compiled
    cdef Options o = make_options(batch_size, weight_size, act_size, peak_ops, bytes_per_s,
                                  fused_attention, memory, train, causal_half)
    cdef int st, rc = 0
    cdef double* lat = NULL
    cdef bint with_latency = latency is not None
    if with_latency and latency.shape[0] < stop:
        raise IndexError("latency output too short")
    if start == stop:
        return
    with nogil:
        bad_arch = check_offsets(offsets, start, stop, records.shape[0])
    if bad_arch >= 0:
        raise ValueError("architecture %d: offsets %d..%d lie outside the %d records or out of "
                         "order" % (bad_arch, offsets[bad_arch], offsets[bad_arch + 1],
                                    records.shape[0]))
    compile_rules(weights, last_call_only, &compiled)
    with nogil:
        for i in range(start, stop):
            if offsets[i + 1] - offsets[i] > longest:
                longest = offsets[i + 1] - offsets[i]
        rc = scratch_alloc(&s, longest)
        if rc == 0:
            for i in range(start, stop):
                if with_latency:
                    lat = &latency[i]
                st = score_arch(&records[0] + offsets[i], offsets[i + 1] - offsets[i],
                                compiled, o, &s, &metrics[i, 0], lat, &bad_layer[i], NULL)
                status[i] = st
                if st != ST_OK:
                    for k in range(N_METRICS):
                        metrics[i, k] = -1
                    if with_latency:
                        latency[i] = -1.0
            scratch_free(&s)
        free_rules(&compiled)
    if rc != 0:
        raise MemoryError()


def layer_metrics(const Layer[::1] records, const int64_t[:, :, ::1] weights,
                  int64_t batch_size, int64_t weight_size, int64_t act_size,
                  bint fused_attention=False, int memory=MEM_NASFLOPS,
                  bint last_call_only=False, bint train=False, bint causal_half=False):
    """Per-layer shapes and counts of one architecture.

    Returns ``(status, bad_layer, table)`` where ``table`` is an int64 array
    of shape ``(n_layers, len(LAYER_COLUMNS))``.  On error, rows from
    ``bad_layer`` on are unspecified.
    """
    _check_weights(weights)
    if batch_size < 1 or weight_size < 1 or act_size < 1:
        raise ValueError("batch_size and element sizes must be >= 1")
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
    cdef Options o = make_options(batch_size, weight_size, act_size, 0.0, 0.0, fused_attention,
                                  memory, train, causal_half)
    if n > 0:
        first = &records[0]
        out = &tv[0, 0]
    compile_rules(weights, last_call_only, &compiled)
    with nogil:
        rc = scratch_alloc(&s, n)
        if rc == 0:
            st = score_arch(first, n, compiled, o, &s, metrics, NULL, &bad, out)
            scratch_free(&s)
        free_rules(&compiled)
    if rc != 0:
        raise MemoryError()
    return st, bad, table
