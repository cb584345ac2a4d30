# cython: language_level=3
"""Compiled gather for template-based encoders.

Spaces encode a candidate as a run of *segments*, each a contiguous run of
records copied from a pool of prebuilt templates, whose inputs are stored
relative to the segment start (or to the record itself) with ``UNUSED``
(< -2**29) for unused slots.  One pass copies every segment and makes its
inputs absolute within the architecture, with the GIL released, so encoding
runs in parallel threads and touches each byte once.
"""
from libc.stdint cimport int32_t, int64_t
from libc.string cimport memcpy

from nasflops._core cimport Layer

cdef enum:
    UNUSED_BELOW = -(1 << 29)   # stored inputs below this are unused slots


cdef inline int32_t absolute(int32_t v, int64_t base) noexcept nogil:
    return <int32_t>(v + base) if v > UNUSED_BELOW else -1


def gather_segments(const Layer[::1] pool, const int64_t[:, ::1] seg_src,
                    const int64_t[:, ::1] seg_len, const int64_t[::1] offsets,
                    Layer[::1] out, bint record_relative):
    """Fill ``out`` with every candidate's segments, inputs made absolute.

    Candidate ``i`` is written to ``out[offsets[i]:offsets[i + 1]]`` as the
    concatenation of ``pool[seg_src[i, s] : seg_src[i, s] + seg_len[i, s]]``
    for ``s`` in order.  A stored input ``v`` becomes ``v + b`` where ``b`` is
    the segment's start within the architecture (plus the record's index in
    the segment when ``record_relative``); ``v < -2**29`` becomes -1.

    The caller guarantees the segments lie inside ``pool`` and that each
    row of ``seg_len`` sums to the candidate's length (see
    :func:`nasflops.search_spaces.base.check_segments`).
    """
    cdef Py_ssize_t n = seg_src.shape[0], S = seg_src.shape[1], i, s, j
    cdef int64_t dst, local, L, base
    cdef Layer* r
    if seg_len.shape[0] != n or seg_len.shape[1] != S or offsets.shape[0] != n + 1:
        raise ValueError("seg_src, seg_len and offsets disagree in shape")
    if n and offsets[n] > out.shape[0]:
        raise ValueError("output too short")
    with nogil:
        for i in range(n):
            dst = offsets[i]
            local = 0
            for s in range(S):
                L = seg_len[i, s]
                if L <= 0:
                    continue
                memcpy(&out[dst], &pool[seg_src[i, s]], L * sizeof(Layer))
                for j in range(L):
                    r = &out[dst + j]
                    base = local + j if record_relative else local
                    r.input0 = absolute(r.input0, base)
                    r.input1 = absolute(r.input1, base)
                    r.input2 = absolute(r.input2, base)
                    r.input3 = absolute(r.input3, base)
                dst += L
                local += L
