# cython: language_level=3
"""Compiled gather for template-based encoders (see ``templates.py``).

A candidate is a run of *segments*, each a contiguous run of records copied
from a pool of prebuilt templates whose inputs are stored relative to the
record itself, with ``UNUSED`` for unused slots.  One pass copies every
segment and makes its inputs absolute within the architecture, with the GIL
released, so encoding runs in parallel threads and touches each byte once.
"""
import numpy as np

from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy

from nasflops._core cimport Layer

cdef enum:
    UNUSED_SLOT = -(1 << 30)    # a stored input equal to this is an unused slot
    UNUSED_BELOW = -(1 << 29)   # any relative input plus a position stays above this

#: template marker of an unused input slot (any record position plus it stays < 0)
UNUSED = UNUSED_SLOT


cdef inline int32_t absolute(int32_t v, int64_t at) noexcept nogil:
    return <int32_t>(v + at) if v > UNUSED_BELOW else -1


def gather_segments(const Layer[::1] pool, const int64_t[:, ::1] seg_src,
                    const int64_t[:, ::1] seg_len, const int64_t[::1] offsets,
                    Layer[::1] out):
    """Fill ``out`` with every candidate's segments, inputs made absolute.

    Candidate ``i`` is written to ``out[offsets[i]:offsets[i + 1]]`` as the
    concatenation of ``pool[seg_src[i, s] : seg_src[i, s] + seg_len[i, s]]``
    for ``s`` in order.  A stored input ``v`` becomes ``v + j`` where ``j`` is
    the record's position within its architecture; ``UNUSED`` becomes -1.

    Every segment must lie inside ``pool`` and each row of ``seg_len`` must
    sum to the candidate's length: both are checked here, before any copy.
    """
    cdef Py_ssize_t n = seg_src.shape[0], S = seg_src.shape[1], i, s, j
    cdef int64_t dst, local, L, src, total
    cdef int64_t n_pool = pool.shape[0]
    cdef Layer* r
    cdef bint bad = False
    if seg_len.shape[0] != n or seg_len.shape[1] != S or offsets.shape[0] != n + 1:
        raise ValueError("seg_src, seg_len and offsets disagree in shape")
    with nogil:
        if offsets[0] != 0:
            bad = True
        for i in range(n):
            if bad:
                break
            total = 0
            for s in range(S):
                L = seg_len[i, s]
                src = seg_src[i, s]
                if L < 0 or src < 0 or src > n_pool - L:
                    bad = True
                    break
                total += L
            if offsets[i + 1] - offsets[i] != total:
                bad = True
        if not bad and offsets[n] > out.shape[0]:
            bad = True
    if bad:
        raise ValueError("template segments outside the pool, or offsets that do not match "
                         "their lengths")
    with nogil:
        for i in range(n):
            dst = offsets[i]
            local = 0
            for s in range(S):
                L = seg_len[i, s]
                if L == 0:
                    continue
                memcpy(&out[dst], &pool[seg_src[i, s]], L * sizeof(Layer))
                for j in range(L):
                    r = &out[dst + j]
                    r.input0 = absolute(r.input0, local + j)
                    r.input1 = absolute(r.input1, local + j)
                    r.input2 = absolute(r.input2, local + j)
                    r.input3 = absolute(r.input3, local + j)
                dst += L
                local += L


def chain_tids(const int64_t[:, ::1] vals, const int64_t[::1] col_lo, const int64_t[::1] lut_ptr,
               const int64_t[::1] lut, const int64_t[:, ::1] pos_cols,
               const int64_t[:, ::1] pos_weights, const int64_t[::1] base,
               const int64_t[::1] pos_in_stage, const int64_t[:, ::1] depth_of,
               int64_t stem, int64_t empty, int64_t head_base, int64_t head_col, int64_t r_col,
               int64_t[:, ::1] tids, int64_t[::1] r_idx):
    """Template ids of chain candidates from their native values (GIL released).

    ``vals[i, j]`` is column ``j`` of candidate ``i`` (every native column
    side by side); ``lut[lut_ptr[j] + v - col_lo[j]]`` is the choice index
    of value ``v`` in column ``j`` (-1: not a choice).  Position ``p`` reads
    the columns ``pos_cols[p]`` = (type, kernel, expansion, depth, width,
    previous width; -1: choice 0) and its template id is ``base[p] +
    sum(index * pos_weights[p])`` when ``pos_in_stage[p] <
    depth_of[p, depth index]``, else ``empty``.  Slot 0 is ``stem``, the
    last ``head_base`` plus the width index in ``head_col``.  Returns -1, or
    the first candidate holding a value that is not a choice.
    """
    cdef Py_ssize_t n = vals.shape[0], C = vals.shape[1], P = pos_cols.shape[0], i, p, j
    cdef int64_t v, bad = -1
    cdef const int64_t* row
    cdef const int64_t* pc
    cdef const int64_t* pw
    cdef int64_t* ci
    cdef int64_t* out
    if pos_cols.shape[1] != 6 or pos_weights.shape[1] != 5 or tids.shape[1] != P + 2:
        raise ValueError("chain_tids: shapes disagree")
    ci_arr = np.empty(C + 1, dtype=np.int64)     # choice index per column; [C]: no column
    cdef int64_t[::1] civ = ci_arr
    with nogil:
        ci = &civ[0] + 1                        # ci[-1] == 0
        ci[-1] = 0
        for i in range(n):
            row = &vals[i, 0]
            for j in range(C):
                v = row[j] - col_lo[j]
                if v < 0 or v >= lut_ptr[j + 1] - lut_ptr[j] or lut[lut_ptr[j] + v] < 0:
                    bad = i
                    break
                ci[j] = lut[lut_ptr[j] + v]
            if bad >= 0:
                break
            out = &tids[i, 0]
            out[0] = stem
            for p in range(P):
                pc = &pos_cols[p, 0]
                pw = &pos_weights[p, 0]
                if pos_in_stage[p] < depth_of[p, ci[pc[3]]]:
                    out[p + 1] = base[p] + (ci[pc[0]] * pw[0] + ci[pc[1]] * pw[1] + ci[pc[2]] * pw[2]
                                            + ci[pc[5]] * pw[3] + ci[pc[4]] * pw[4])
                else:
                    out[p + 1] = empty
            out[P + 1] = head_base + ci[head_col]
            r_idx[i] = ci[r_col]
    return bad
