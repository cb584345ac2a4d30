# cython: language_level=3
"""Compiled kernels of block-table scoring and exact profiles (``tables.py``, ``dists.py``).

Counts of exact distributions are unsigned 128-bit integers, stored as
``(n, 2)`` uint64 arrays (``[:, 0]`` the low word, ``[:, 1]`` the high word)
and computed in C's ``unsigned __int128``; every product and sum is checked
for overflow.  Metric values are int64, also checked.  Nothing here
allocates Python objects in its loops, and every loop runs without the GIL.
"""
import numpy as np

from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memset

cdef extern from *:
    """
    typedef unsigned __int128 nf_u128;
    static inline int nf_u128_mul(nf_u128 a, nf_u128 b, nf_u128 *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    static inline int nf_u128_add(nf_u128 a, nf_u128 b, nf_u128 *r) {
        return __builtin_add_overflow(a, b, r);
    }
    static inline int nf_i64_add(int64_t a, int64_t b, int64_t *r) {
        return __builtin_add_overflow(a, b, r);
    }
    static inline nf_u128 nf_u128_make(uint64_t lo, uint64_t hi) {
        return ((nf_u128)hi << 64) | (nf_u128)lo;
    }
    static inline uint64_t nf_u128_lo(nf_u128 x) { return (uint64_t)x; }
    static inline int nf_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
        return __builtin_mul_overflow(a, b, r);
    }
    static inline uint64_t nf_u128_hi(nf_u128 x) { return (uint64_t)(x >> 64); }
    static inline int64_t nf_popcount64(uint64_t x) {   /* SWAR: no -mpopcnt needed */
        x = x - ((x >> 1) & 0x5555555555555555ULL);
        x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
        x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
        return (int64_t)((x * 0x0101010101010101ULL) >> 56);
    }
    /* One stretch of left values for one point of pair_cdf_rank: the sum of
       lc[i] * rcum[rank(base - off[i]) - 1], every lookup base - off[i] within
       the index (the caller's stretch).  Built twice on x86-64, with the
       popcnt instruction (chosen at run time when the CPU has it) and without. */
    #define NF_RANK_BLOCK(NAME, POP, ATTR)                                            \
    ATTR static nf_u128 NAME(const int64_t* off, const uint64_t* lc, int64_t i0,     \
                             int64_t i1, int64_t base, const uint64_t* bits,          \
                             const int64_t* before, const uint64_t* rcum) {           \
        nf_u128 t = 0;                                                                \
        for (int64_t i = i0; i < i1; i++) {                                           \
            int64_t idx = base - off[i];                                              \
            int64_t w = idx >> 6;                                                     \
            uint64_t word = bits[w] & (~0ULL >> (63 - (idx & 63)));                   \
            int64_t r = before[w] + (int64_t)POP(word);                               \
            if (r > 0) t += (nf_u128)lc[i] * rcum[r - 1];                             \
        }                                                                             \
        return t;                                                                     \
    }
    NF_RANK_BLOCK(nf_rank_block_swar, nf_popcount64, )
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    NF_RANK_BLOCK(nf_rank_block_popcnt, __builtin_popcountll, __attribute__((target("popcnt"))))
    static int nf_popcnt_ok = -1;
    static nf_u128 nf_rank_block(const int64_t* off, const uint64_t* lc, int64_t i0,
                                 int64_t i1, int64_t base, const uint64_t* bits,
                                 const int64_t* before, const uint64_t* rcum) {
        if (nf_popcnt_ok < 0) nf_popcnt_ok = __builtin_cpu_supports("popcnt") ? 1 : 0;
        if (nf_popcnt_ok)
            return nf_rank_block_popcnt(off, lc, i0, i1, base, bits, before, rcum);
        return nf_rank_block_swar(off, lc, i0, i1, base, bits, before, rcum);
    }
    static int nf_set_popcnt(int v) {   /* -1: the CPU decides, 0: never, 1: if it can */
        int old = nf_popcnt_ok;
        nf_popcnt_ok = (v != 0 && __builtin_cpu_supports("popcnt")) ? v : 0;
        return old;
    }
    #else
    #define nf_rank_block nf_rank_block_swar
    static int nf_set_popcnt(int v) { (void)v; return 0; }
    #endif
    /* The 64-bit accumulation of one part into one window: entries i0..i1 of
       a source (lattice points k, counts c every cs words: 2 for 128-bit
       counts, 1 for 64-bit ones) go to acc[k * a + b], times mult; the caller
       found i1 (no test per entry). */
    static void nf_scatter64(uint64_t* __restrict acc, const int64_t* __restrict k,
                             const uint64_t* __restrict c, int64_t cs, int64_t i0,
                             int64_t i1, int64_t a, int64_t b, uint64_t mult) {
        if (cs == 1 && a == 1 && mult == 1) {
            for (int64_t i = i0; i < i1; i++) acc[k[i] + b] += c[i];
        } else if (a == 1 && mult == 1) {
            for (int64_t i = i0; i < i1; i++) acc[k[i] + b] += c[2 * i];
        } else {
            for (int64_t i = i0; i < i1; i++) acc[k[i] * a + b] += c[cs * i] * mult;
        }
    }
    /* The first i in [i0, e) with k[i] * a + b >= w (k ascending, a >= 0). */
    static int64_t nf_window_end(const int64_t* k, int64_t i0, int64_t e, int64_t a,
                                 int64_t b, int64_t w) {
        int64_t lo = i0, hi = e;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (k[mid] * a + b >= w) hi = mid; else lo = mid + 1;
        }
        return lo;
    }
    static int64_t nf_gcd64(int64_t a, int64_t b) {
        while (b) { int64_t t = a % b; a = b; b = t; }
        return a;
    }
    /* Slot m of a sweep's output: lattice point k, its value lo + k * g where
       ov is not NULL, its count every cs words (2: the high word zero). */
    static inline __attribute__((always_inline)) void nf_put_point(
            int64_t* __restrict ov, int64_t* __restrict ok, uint64_t* __restrict oc, int64_t cs,
            int64_t m, int64_t k, int64_t lo, int64_t g, uint64_t c) {
        if (ov) ov[m] = lo + k * g;
        ok[m] = k;
        oc[cs * m] = c;
        if (cs == 2) oc[2 * m + 1] = 0;
    }
    /* The points of a window one by one (only the non-zero ones written)
       while the gcd of their differences is not 1: once it is, it stays 1
       and need not be tracked.  Returns the point reached. */
    static int64_t nf_sweep_track(uint64_t* __restrict acc, int64_t j, int64_t n, int64_t w0,
                                  int64_t lo, int64_t g, int64_t* __restrict ov,
                                  int64_t* __restrict ok, uint64_t* __restrict oc, int64_t cs,
                                  int64_t* m_io, int64_t* last_io, int64_t* h_io,
                                  uint64_t* tot_io) {
        int64_t m = *m_io, last = *last_io, h = *h_io;
        uint64_t tot = *tot_io;
        for (; j < n && h != 1; j++) {
            uint64_t c = acc[j];
            if (!c) continue;
            int64_t k = w0 + j;
            if (last >= 0) h = nf_gcd64(k - last, h);
            last = k;
            nf_put_point(ov, ok, oc, cs, m, k, lo, g, c);
            acc[j] = 0;
            tot += c;
            m++;
        }
        *m_io = m, *last_io = last, *h_io = h, *tot_io = tot;
        return j;
    }
    #if defined(__GNUC__) && defined(__x86_64__)
    #include <immintrin.h>
    #define NF_HAVE_AVX512 1
    /* Blocks of eight points from j with AVX-512: the non-zero ones packed
       into registers and stored whole (eight slots from m, so only while
       they stay below cap): lattice points, values lo + k * g where ov is
       not NULL, counts every cs words (2: each followed by a zero high
       word); the block cleared.  Returns the point reached. */
    __attribute__((target("avx512f"))) static int64_t nf_pack_avx512(
            uint64_t* __restrict acc, int64_t j, int64_t n, int64_t w0, int64_t lo, int64_t g,
            int64_t* __restrict ov, int64_t* __restrict ok, uint64_t* __restrict oc, int64_t cs,
            int64_t* m_io, int64_t cap, uint64_t* tot_io) {
        const __m512i lane = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i zero = _mm512_setzero_si512();
        const __m512i lane_g = _mm512_set_epi64(7 * g, 6 * g, 5 * g, 4 * g, 3 * g, 2 * g, g, 0);
        /* lanes 0..3, then 4..7, of the packed counts, each followed by a zero word */
        const __m512i low4 = _mm512_set_epi64(8, 3, 8, 2, 8, 1, 8, 0);
        const __m512i high4 = _mm512_set_epi64(8, 7, 8, 6, 8, 5, 8, 4);
        __m512i tot = zero;
        int64_t m = *m_io;
        for (; j + 8 <= n && m + 8 <= cap; j += 8) {
            __m512i c = _mm512_loadu_si512((const void*)(acc + j));
            __mmask8 nz = _mm512_test_epi64_mask(c, c);
            if (!nz) continue;
            __m512i k = _mm512_add_epi64(_mm512_set1_epi64(w0 + j), lane);
            __m512i cc = _mm512_maskz_compress_epi64(nz, c);
            _mm512_storeu_si512((void*)(ok + m), _mm512_maskz_compress_epi64(nz, k));
            if (ov) {
                __m512i v = _mm512_add_epi64(_mm512_set1_epi64(lo + (w0 + j) * g), lane_g);
                _mm512_storeu_si512((void*)(ov + m), _mm512_maskz_compress_epi64(nz, v));
            }
            if (cs == 1) {
                _mm512_storeu_si512((void*)(oc + m), cc);
            } else {
                _mm512_storeu_si512((void*)(oc + 2 * m),
                                    _mm512_permutex2var_epi64(cc, low4, zero));
                _mm512_storeu_si512((void*)(oc + 2 * m + 8),
                                    _mm512_permutex2var_epi64(cc, high4, zero));
            }
            _mm512_storeu_si512((void*)(acc + j), zero);
            tot = _mm512_add_epi64(tot, c);
            m += __builtin_popcount((unsigned)nz);
        }
        *tot_io += (uint64_t)_mm512_reduce_add_epi64(tot);
        *m_io = m;
        return j;
    }
    static int nf_avx512_ok = -1;
    static int nf_set_avx512(int v) {   /* -1: the CPU decides, 0: never */
        int old = nf_avx512_ok;
        nf_avx512_ok = (v != 0 && __builtin_cpu_supports("avx512f")) ? 1 : 0;
        return old;
    }
    /* A dense word's points (eight or more) with AVX-512: eight at a time,
       their counts expanded from the packed ones to the lanes their bits set
       and added to the accumulators at[0..63] (masked loads and stores: only
       the set lanes are read and written; no branch per block). */
    __attribute__((target("avx512f"))) static inline void nf_dense_word_avx512(
            uint64_t* __restrict at, uint64_t word, const uint64_t* __restrict c) {
        for (int q = 0; q < 8; q++, word >>= 8, at += 8) {
            __mmask8 mk = (__mmask8)word;
            int n = __builtin_popcount((unsigned)mk);
            __m512i v = _mm512_maskz_loadu_epi64((__mmask8)((1u << n) - 1), (const void*)c);
            v = _mm512_maskz_expand_epi64(mk, v);
            __m512i x = _mm512_maskz_loadu_epi64(mk, (const void*)at);
            _mm512_mask_storeu_epi64((void*)at, mk, _mm512_add_epi64(x, v));
            c += n;
        }
    }
    /* A word of 64 accumulators with AVX-512: its bits, its non-zero counts
       packed from slot m (eight slots stored per block: the caller checked
       that 64 more fit), the non-zero blocks cleared.  Returns the new count. */
    __attribute__((target("avx512f"))) static int64_t nf_pack_bits_avx512(
            uint64_t* __restrict acc, uint64_t* __restrict oc, int64_t m, uint64_t* word_out,
            uint64_t* tot_io) {
        const __m512i zero = _mm512_setzero_si512();
        __m512i tot = zero;
        uint64_t word = 0;
        for (int q = 0; q < 8; q++) {
            __m512i c = _mm512_loadu_si512((const void*)(acc + 8 * q));
            __mmask8 nz = _mm512_test_epi64_mask(c, c);
            if (!nz) continue;
            word |= (uint64_t)nz << (8 * q);
            _mm512_storeu_si512((void*)(oc + m), _mm512_maskz_compress_epi64(nz, c));
            _mm512_storeu_si512((void*)(acc + 8 * q), zero);
            tot = _mm512_add_epi64(tot, c);
            m += __builtin_popcount((unsigned)nz);
        }
        *tot_io += (uint64_t)_mm512_reduce_add_epi64(tot);
        *word_out = word;
        return m;
    }
    #else
    static int nf_set_avx512(int v) { (void)v; return 0; }
    #endif
    /* Blocks of eight points from j, once the gcd of the points' differences
       is 1: eight empty points are passed over in one test, and within a
       block every point is written at the next free slot, which only a
       non-zero one takes (so the output must have a slot past its last
       entry, or room for every point).  Inlined where it is called, so the
       lean form's call (ov NULL, cs 1) compiles to its own tight loop. */
    static inline __attribute__((always_inline)) int64_t nf_sweep_blocks(
            uint64_t* __restrict acc, int64_t j, int64_t n, int64_t w0, int64_t lo, int64_t g,
            int64_t* __restrict ov, int64_t* __restrict ok, uint64_t* __restrict oc, int64_t cs,
            int64_t m, uint64_t* tot_io) {
        uint64_t tot = *tot_io;
        for (; j < n; j += 8) {
            int64_t end = j + 8 < n ? j + 8 : n;
            uint64_t any = 0;
            for (int64_t i = j; i < end; i++) any |= acc[i];
            if (!any) continue;
            for (int64_t i = j; i < end; i++) {
                uint64_t c = acc[i];
                nf_put_point(ov, ok, oc, cs, m, w0 + i, lo, g, c);
                acc[i] = 0;
                tot += c;
                m += c != 0;
            }
        }
        *tot_io = tot;
        return m;
    }
    /* Write out the non-zero points of a window of 64-bit accumulators (their
       total fits 64 bits: the caller checked) and clear them, where an exact
       profile spends much of its time (so compiled apart from its caller,
       whose registers it would otherwise share): one by one until the gcd of
       their differences is 1 (nf_sweep_track), then packed eight at a time
       with AVX-512 where the CPU has it, else in blocks (nf_sweep_blocks).
       Counts are written every cs words (2: the high word zero); values only
       where ov is not NULL.  cap: the output's slots. */
    static __attribute__((noinline)) int64_t nf_sweep64(
            uint64_t* __restrict acc, int64_t n, int64_t w0, int64_t lo, int64_t g,
            int64_t* __restrict ov, int64_t* __restrict ok, uint64_t* __restrict oc, int64_t cs,
            int64_t m, int64_t cap, int64_t* last_io, int64_t* h_io, uint64_t* tot_io) {
        int64_t j = nf_sweep_track(acc, 0, n, w0, lo, g, ov, ok, oc, cs, &m, last_io, h_io,
                                   tot_io);
        #ifdef NF_HAVE_AVX512
        if (nf_avx512_ok < 0) nf_set_avx512(-1);
        if (nf_avx512_ok && j < n)
            j = nf_pack_avx512(acc, j, n, w0, lo, g, ov, ok, oc, cs, &m, cap, tot_io);
        #endif
        if (cs == 1 && !ov)             /* the lean form */
            return nf_sweep_blocks(acc, j, n, w0, 0, 0, NULL, ok, oc, 1, m, tot_io);
        return nf_sweep_blocks(acc, j, n, w0, lo, g, ov, ok, oc, cs, m, tot_io);
    }
    static inline int64_t nf_i64_sub_sat(int64_t a, int64_t b) {
        int64_t r;
        if (__builtin_sub_overflow(a, b, &r)) return b < 0 ? INT64_MAX : INT64_MIN;
        return r;
    }
    /* The bitmap form (a Lean): one bit per lattice point, the counts of the
       set ones in order.  One part's accumulation into one window: the
       source's points ks .. ke - 1 (the first of them count number ci) go
       to acc[k * a + b], times mult.  A word of eight points or more is added
       at once (nf_dense_word_avx512 where the CPU has AVX-512 and a == 1,
       mult == 1; else point by point); a sparser word is decoded without a
       branch into eight slots of p (its points, from word ks >> 6) and q
       (their counts' numbers, from ci), the next word's overwriting those
       past its last point, and the decoded points are added in one loop
       after the words: no branch per point or word, where a loop over a
       sparse word's bits would mispredict its end at every word.  p and q
       hold the points plus 8.  The counts are prefetched NF_AHEAD_BYTES
       ahead: a part's counts are a stream the hardware prefetcher restarts
       at every 4 KiB page.  Returns the count number reached. */
    #define NF_AHEAD_BYTES 4096
    static inline __attribute__((always_inline)) int64_t nf_scatter_bits_body(
            uint64_t* __restrict acc, const uint64_t* __restrict bits,
            const uint64_t* __restrict c, int64_t ks, int64_t ke, int64_t ci, int64_t a,
            int64_t b, uint64_t mult, uint32_t* __restrict p, uint32_t* __restrict q,
            int avx512) {
        int64_t w0 = ks >> 6, w1 = (ke - 1) >> 6, n = 0, ci0 = ci;
        uint64_t first = ~0ULL << (ks & 63), last = ~0ULL >> (63 - ((ke - 1) & 63));
        const char* ahead = (const char*)(c + ci);
        int plain = a == 1 && mult == 1;
        for (int64_t w = w0; w <= w1; w++) {
            uint64_t word = bits[w];
            if (w == w0) word &= first;
            if (w == w1) word &= last;
            int cnt = avx512 ? __builtin_popcountll(word) : (int)nf_popcount64(word);
            if (cnt < 8) {                   /* sparse: decoded, added after the words */
                uint32_t base = (uint32_t)((w - w0) << 6), q0 = (uint32_t)(ci - ci0);
                for (int i = 0; i < 8; i++) {
                    p[n + i] = base + (uint32_t)__builtin_ctzll(word | (1ULL << 63));
                    q[n + i] = q0 + (uint32_t)i;
                    word &= word - 1;
                }
                n += cnt;
                ci += cnt;
                continue;
            }
            for (; ahead < (const char*)(c + ci) + NF_AHEAD_BYTES; ahead += 64)
                __builtin_prefetch(ahead);
            #ifdef NF_HAVE_AVX512
            if (avx512 && plain) {
                nf_dense_word_avx512(acc + (w << 6) + b, word, c + ci);
                ci += cnt;
                continue;
            }
            #endif
            if (plain) {
                uint64_t* at = acc + (w << 6) + b;
                for (; word; word &= word - 1)
                    at[__builtin_ctzll(word)] += c[ci++];
            } else {
                for (; word; word &= word - 1)
                    acc[((w << 6) + __builtin_ctzll(word)) * a + b] += c[ci++] * mult;
            }
        }
        if (plain) {
            uint64_t* at = acc + (w0 << 6) + b;
            const uint64_t* c0 = c + ci0;
            for (int64_t i = 0; i < n; i++)
                at[p[i]] += c0[q[i]];
        } else {
            for (int64_t i = 0; i < n; i++)
                acc[((w0 << 6) + p[i]) * a + b] += c[ci0 + q[i]] * mult;
        }
        return ci;
    }
    static int64_t nf_scatter_bits_portable(uint64_t* acc, const uint64_t* bits,
            const uint64_t* c, int64_t ks, int64_t ke, int64_t ci, int64_t a, int64_t b,
            uint64_t mult, uint32_t* p, uint32_t* q) {
        return nf_scatter_bits_body(acc, bits, c, ks, ke, ci, a, b, mult, p, q, 0);
    }
    #ifdef NF_HAVE_AVX512
    __attribute__((target("avx512f,popcnt"))) static int64_t nf_scatter_bits_avx512(
            uint64_t* acc, const uint64_t* bits, const uint64_t* c, int64_t ks, int64_t ke,
            int64_t ci, int64_t a, int64_t b, uint64_t mult, uint32_t* p, uint32_t* q) {
        return nf_scatter_bits_body(acc, bits, c, ks, ke, ci, a, b, mult, p, q, 1);
    }
    #endif
    static int64_t nf_scatter_bits(uint64_t* acc, const uint64_t* bits, const uint64_t* c,
                                   int64_t ks, int64_t ke, int64_t ci, int64_t a, int64_t b,
                                   uint64_t mult, uint32_t* p, uint32_t* q) {
        if (ks >= ke) return ci;
        #ifdef NF_HAVE_AVX512
        if (nf_avx512_ok < 0) nf_set_avx512(-1);
        if (nf_avx512_ok)
            return nf_scatter_bits_avx512(acc, bits, c, ks, ke, ci, a, b, mult, p, q);
        #endif
        return nf_scatter_bits_portable(acc, bits, c, ks, ke, ci, a, b, mult, p, q);
    }
    /* One accumulator's count written at the next free slot of oc, which
       only a non-zero one takes (no branch), and cleared; returns its bit. */
    static inline __attribute__((always_inline)) uint64_t nf_take_point(
            uint64_t* __restrict at, uint64_t* __restrict oc, int64_t* m, uint64_t* tot) {
        uint64_t c = *at;
        oc[*m] = c;
        *m += c != 0;
        *at = 0;
        *tot += c;
        return c != 0;
    }
    /* Write out the non-zero points of a window of 64-bit accumulators (from
       point w0, a multiple of 64; n of them) as bits (the window's words of
       obits) and counts (from slot m), and clear them.  One by one while the
       gcd of the points' differences is not 1 (it is tracked: once 1, it
       stays 1); then a word of 64 points at a time, its blocks of eight
       packed with AVX-512 where the CPU has it and the output has room for
       64 more slots (cap), else point by point without a branch (a
       count is written at the next free slot, which only a non-zero one
       takes: the output needs a slot past its last entry).  Returns the
       new count. */
    static __attribute__((noinline)) int64_t nf_sweep_bits(
            uint64_t* __restrict acc, int64_t n, int64_t w0, uint64_t* __restrict obits,
            uint64_t* __restrict oc, int64_t m, int64_t cap, int64_t* last_io, int64_t* h_io,
            uint64_t* tot_io) {
        int64_t last = *last_io, h = *h_io, j = 0;
        uint64_t tot = *tot_io;
        uint64_t* ob = obits + (w0 >> 6);
        memset(ob, 0, (size_t)((n + 63) >> 6) * sizeof(uint64_t));
        for (; j < n && h != 1; j++) {
            uint64_t c = acc[j];
            if (!c) continue;
            int64_t k = w0 + j;
            if (last >= 0) h = nf_gcd64(k - last, h);
            last = k;
            ob[j >> 6] |= 1ULL << (j & 63);
            oc[m++] = c;
            acc[j] = 0;
            tot += c;
        }
        for (; j < n && (j & 63); j++)          /* up to a word's start */
            ob[j >> 6] |= nf_take_point(acc + j, oc, &m, &tot) << (j & 63);
        #ifdef NF_HAVE_AVX512
        if (nf_avx512_ok < 0) nf_set_avx512(-1);
        #endif
        for (; j + 64 <= n; j += 64) {
            uint64_t word = 0;
            #ifdef NF_HAVE_AVX512
            if (nf_avx512_ok && m + 64 <= cap) {
                m = nf_pack_bits_avx512(acc + j, oc, m, &word, &tot);
                ob[j >> 6] = word;
                continue;
            }
            #endif
            for (int q = 0; q < 64; q += 8) {
                uint64_t any = 0;
                for (int i = q; i < q + 8; i++) any |= acc[j + i];
                if (!any) continue;
                for (int i = q; i < q + 8; i++)
                    word |= nf_take_point(acc + j + i, oc, &m, &tot) << i;
            }
            ob[j >> 6] = word;
        }
        for (; j < n; j++)                      /* the span's last, partial word */
            ob[j >> 6] |= nf_take_point(acc + j, oc, &m, &tot) << (j & 63);
        /* the last point written: the highest set bit of the window's words */
        for (int64_t w = ((n + 63) >> 6) - 1; w >= 0; w--)
            if (ob[w]) { last = w0 + (w << 6) + 63 - __builtin_clzll(ob[w]); break; }
        *last_io = last, *h_io = h, *tot_io = tot;
        return m;
    }
    """
    ctypedef unsigned long long u128 "nf_u128"
    bint u128_mul "nf_u128_mul"(u128 a, u128 b, u128* r) noexcept nogil
    bint u128_add "nf_u128_add"(u128 a, u128 b, u128* r) noexcept nogil
    bint i64_add "nf_i64_add"(int64_t a, int64_t b, int64_t* r) noexcept nogil
    u128 mk "nf_u128_make"(uint64_t lo, uint64_t hi) noexcept nogil
    uint64_t lo64 "nf_u128_lo"(u128 x) noexcept nogil
    uint64_t hi64 "nf_u128_hi"(u128 x) noexcept nogil
    bint __builtin_mul_overflow_u64 "nf_mul_u64"(uint64_t a, uint64_t b, uint64_t* r) noexcept nogil
    int64_t i64_sub_sat "nf_i64_sub_sat"(int64_t a, int64_t b) noexcept nogil
    int64_t gcd64 "nf_gcd64"(int64_t a, int64_t b) noexcept nogil
    void scatter64 "nf_scatter64"(uint64_t* acc, const int64_t* k, const uint64_t* c, int64_t cs,
                                  int64_t i0, int64_t i1, int64_t a, int64_t b,
                                  uint64_t mult) noexcept nogil
    int64_t window_end "nf_window_end"(const int64_t* k, int64_t i0, int64_t e, int64_t a,
                                       int64_t b, int64_t w) noexcept nogil
    int64_t sweep64 "nf_sweep64"(uint64_t* acc, int64_t n, int64_t w0, int64_t lo, int64_t g,
                                 int64_t* ov, int64_t* ok, uint64_t* oc, int64_t cs, int64_t m,
                                 int64_t cap, int64_t* last_io, int64_t* h_io,
                                 uint64_t* tot_io) noexcept nogil
    int64_t popcount64 "nf_popcount64"(uint64_t x) noexcept nogil
    int64_t ctz64 "__builtin_ctzll"(uint64_t x) noexcept nogil
    int64_t clz64 "__builtin_clzll"(uint64_t x) noexcept nogil
    int64_t scatter_bits "nf_scatter_bits"(uint64_t* acc, const uint64_t* bits,
                                           const uint64_t* c, int64_t ks, int64_t ke,
                                           int64_t ci, int64_t a, int64_t b, uint64_t mult,
                                           uint32_t* p, uint32_t* q) noexcept nogil
    int64_t sweep_bits "nf_sweep_bits"(uint64_t* acc, int64_t n, int64_t w0, uint64_t* obits,
                                       uint64_t* oc, int64_t m, int64_t cap, int64_t* last_io,
                                       int64_t* h_io, uint64_t* tot_io) noexcept nogil
    int set_popcnt "nf_set_popcnt"(int v) noexcept nogil
    int set_avx512 "nf_set_avx512"(int v) noexcept nogil
    u128 rank_block "nf_rank_block"(const int64_t* off, const uint64_t* lc, int64_t i0,
                                    int64_t i1, int64_t base, const uint64_t* bits,
                                    const int64_t* before, const uint64_t* rcum) noexcept nogil


cdef inline u128 get(const uint64_t[:, ::1] a, Py_ssize_t i) noexcept nogil:
    return mk(a[i, 0], a[i, 1])


cdef inline void put(uint64_t[:, ::1] a, Py_ssize_t i, u128 x) noexcept nogil:
    a[i, 0] = lo64(x)
    a[i, 1] = hi64(x)


# ------------------------------------------------------------ table scoring
def table_sums(const int64_t[:, ::1] table, int64_t n_groups, const int64_t[:, ::1] tids,
               const int64_t[::1] groups, int64_t peak_col, int64_t[:, ::1] out):
    """Row ``i`` of ``out``: the sum over slots ``s`` of ``table[tids[i, s] *
    n_groups + groups[i]]``, column ``peak_col`` their maximum instead.

    ``table`` has 8 columns.  Returns the first row whose sum overflows
    int64, or -1.  Rows and groups must be in range (the caller validates
    them).
    """
    cdef Py_ssize_t n = tids.shape[0], S = tids.shape[1], i, s, m
    cdef const int64_t* row
    cdef int64_t acc[8]
    cdef int64_t peak
    cdef bint ovf
    cdef int64_t bad = -1
    if out.shape[0] != n or out.shape[1] != 8 or table.shape[1] != 8 or groups.shape[0] != n \
            or not 0 <= peak_col < 8:
        raise ValueError("table_sums: shapes disagree")
    with nogil:
        for i in range(n):
            ovf = False
            for m in range(8):
                acc[m] = 0
            peak = 0
            for s in range(S):
                row = &table[tids[i, s] * n_groups + groups[i], 0]
                if row[peak_col] > peak:
                    peak = row[peak_col]
                for m in range(8):
                    ovf |= i64_add(acc[m], row[m], &acc[m])
            acc[peak_col] = peak
            for m in range(8):
                out[i, m] = acc[m]
            if ovf:
                bad = i
                break
    return bad


# ---------------------------------------------------------- accumulation
cdef inline bint mul64(u128 c, uint64_t m, u128* r) noexcept nogil:
    """``r = c * m`` for a 128-bit ``c`` and a 64-bit ``m``; True on overflow."""
    cdef uint64_t hi = hi64(c), top
    cdef u128 p = <u128>lo64(c) * m
    if hi == 0:
        r[0] = p
        return False
    if __builtin_mul_overflow_u64(hi, m, &top):
        return True
    return u128_add(p, (<u128>top) << 64, r)


cdef inline int64_t sweep(uint64_t* acc, int64_t n, int64_t w0, int64_t lo, int64_t g,
                          int64_t* ov, int64_t* ok, uint64_t* oc, int64_t m,
                          int64_t* last, int64_t* h, u128* tot) noexcept nogil:
    """Write out the non-zero points of a window of 128-bit accumulators and
    clear them; updates the gcd of the gaps between the points written and
    their total.  Returns the new count, -1 on overflow."""
    cdef int64_t j
    cdef uint64_t c_lo, c_hi
    for j in range(n):
        c_lo = acc[2 * j]
        c_hi = acc[2 * j + 1]
        if c_lo | c_hi:
            if last[0] >= 0 and h[0] != 1:
                h[0] = gcd64(w0 + j - last[0], h[0])
            last[0] = w0 + j
            ov[m] = lo + (w0 + j) * g
            ok[m] = w0 + j
            oc[2 * m] = c_lo
            oc[2 * m + 1] = c_hi
            if u128_add(tot[0], mk(c_lo, c_hi), tot):
                return -1
            acc[2 * j] = 0
            acc[2 * j + 1] = 0
            m += 1
    return m


cdef inline int64_t scatter128(uint64_t* acc, const int64_t* kp, const uint64_t* cp, int64_t i,
                               int64_t e, int64_t a, int64_t b, uint64_t mult, int64_t width,
                               bint* ovf) noexcept nogil:
    """The 128-bit accumulation of one part into one window of ``width``
    points, from entry ``i``: returns the first entry beyond the window (or
    where a count overflowed, ``ovf`` set)."""
    cdef int64_t j
    cdef uint64_t c_hi, top
    cdef u128 x, y
    while i < e:
        j = kp[i] * a + b
        if j >= width:
            break
        c_hi = cp[2 * i + 1]
        x = <u128>cp[2 * i] * mult
        if c_hi:
            if __builtin_mul_overflow_u64(c_hi, mult, &top) or \
                    u128_add(x, (<u128>top) << 64, &x):
                ovf[0] = True
                break
        y = mk(acc[2 * j], acc[2 * j + 1]) + x
        if y < x:
            ovf[0] = True
            break
        acc[2 * j] = lo64(y)
        acc[2 * j + 1] = hi64(y)
        i += 1
    return i


def lean_values(const int64_t[::1] k, const uint64_t[::1] c, int64_t lo, int64_t g,
                int64_t[::1] out_val, uint64_t[:, ::1] out_cnt):
    """A lean distribution's values ``lo + k * g`` and its 64-bit counts as
    128-bit ones, in one pass (a :class:`~.dists.Dist` made of a Lean, when
    first read; :func:`bits_values` for the bitmap form)."""
    cdef Py_ssize_t i, n = k.shape[0]
    if c.shape[0] != n or out_val.shape[0] < n or out_cnt.shape[0] < n:
        raise ValueError("lean_values: shapes disagree")
    with nogil:
        for i in range(n):
            out_val[i] = lo + k[i] * g
            out_cnt[i, 0] = c[i]
            out_cnt[i, 1] = 0


def bits_values(const uint64_t[::1] bits, const uint64_t[::1] c, int64_t lo, int64_t g,
                int64_t[::1] out_val, uint64_t[:, ::1] out_cnt):
    """:func:`lean_values` of the bitmap form: the values ``lo + k * g`` of
    the set bits ``k``."""
    cdef Py_ssize_t i = 0, n = c.shape[0], w, W = bits.shape[0]
    cdef uint64_t word
    if out_val.shape[0] < n or out_cnt.shape[0] < n or _n_set(bits) != n:
        raise ValueError("bits_values: shapes disagree")
    with nogil:
        for w in range(W):
            word = bits[w]
            while word:
                out_val[i] = lo + ((w << 6) + ctz64(word)) * g
                out_cnt[i, 0] = c[i]
                out_cnt[i, 1] = 0
                word &= word - 1
                i += 1


cdef Py_ssize_t _n_set(const uint64_t[::1] bits) noexcept:
    cdef Py_ssize_t w, n = 0
    with nogil:
        for w in range(bits.shape[0]):
            n += popcount64(bits[w])
    return n


def bits_points(const uint64_t[::1] bits, int64_t[::1] out_k):
    """The set bits of ``bits``, ascending, into ``out_k`` (exactly as long)."""
    cdef Py_ssize_t i = 0, w, W = bits.shape[0]
    cdef uint64_t word
    if _n_set(bits) != out_k.shape[0]:
        raise ValueError("bits_points: out_k must hold exactly the set bits")
    with nogil:
        for w in range(W):
            word = bits[w]
            while word:
                out_k[i] = (w << 6) + ctz64(word)
                word &= word - 1
                i += 1


def points_bits(const int64_t[::1] k, uint64_t[::1] bits):
    """The bits of the lattice points ``k`` (ascending, distinct, from 0),
    every word of ``bits`` written."""
    cdef Py_ssize_t n = k.shape[0], W = bits.shape[0], i
    cdef int64_t prev = -1
    cdef bint bad = False
    if n and (k[0] < 0 or k[n - 1] >= 64 * W):
        raise ValueError("points_bits: a point lies outside the bits")
    with nogil:
        if W:
            memset(&bits[0], 0, W * sizeof(uint64_t))
        for i in range(n):
            if k[i] <= prev:
                bad = True
                break
            prev = k[i]
            bits[k[i] >> 6] |= (<uint64_t>1) << (k[i] & 63)
    if bad:
        raise ValueError("points_bits: points must be ascending and distinct")


def bits_upto(const uint64_t[::1] bits, int64_t kb, uint64_t[::1] out_bits):
    """The set bits ``<= kb`` of ``bits`` into ``out_bits`` (``kb // 64 + 1``
    words, all written); returns ``(how many, the last of them)`` (-1: none)."""
    cdef Py_ssize_t W = kb // 64 + 1, w
    cdef int64_t n = 0, last = -1
    if kb < 0 or out_bits.shape[0] != W or W > bits.shape[0]:
        raise ValueError("bits_upto: shapes disagree")
    with nogil:
        for w in range(W):
            out_bits[w] = bits[w]
        out_bits[W - 1] &= ~0ULL >> (63 - (kb & 63))
        for w in range(W):
            n += popcount64(out_bits[w])
            if out_bits[w]:
                last = (w << 6) + 63 - clz64(out_bits[w])
    return n, last


def bits_rank(const uint64_t[::1] bits, int64_t[::1] before, const uint64_t[::1] counts,
              uint64_t[::1] cum):
    """The rest of a rank index whose bits are given (:func:`rank_index`):
    ``before[w]`` the set bits below word ``w``, and the inclusive running
    sums of ``counts`` (one per set bit; their total below 2**64) to ``cum``."""
    cdef Py_ssize_t W = bits.shape[0], n = counts.shape[0], w, i
    cdef int64_t run = 0
    cdef uint64_t tot = 0
    if before.shape[0] != W or cum.shape[0] != n or _n_set(bits) != n:
        raise ValueError("bits_rank: shapes disagree")
    with nogil:
        for w in range(W):
            before[w] = run
            run += popcount64(bits[w])
        for i in range(n):
            tot += counts[i]
            cum[i] = tot


def _source_addresses(list src_k, list src_cnt, int64_t cs):
    """Per source of :func:`accumulate_windows`: the addresses of its lattice
    points and counts (``cs`` words each) and its length, checked to agree.
    The caller keeps the arrays alive while it reads them."""
    cdef Py_ssize_t S = len(src_k), s
    cdef const int64_t[::1] kv
    cdef const uint64_t[::1] cv
    kp_a = np.zeros(max(S, 1), dtype=np.uint64)
    cp_a = np.zeros(max(S, 1), dtype=np.uint64)
    n_a = np.zeros(max(S, 1), dtype=np.int64)
    cdef uint64_t[::1] kaddr = kp_a, caddr = cp_a
    cdef int64_t[::1] slen = n_a
    for s in range(S):
        kv = src_k[s]
        if not src_cnt[s].flags.c_contiguous:    # else ravel would copy: a dangling address
            raise ValueError("accumulate_windows: a source's counts are not contiguous")
        cv = np.ravel(src_cnt[s])
        if cv.shape[0] != cs * kv.shape[0] or np.ndim(src_cnt[s]) != (2 if cs == 2 else 1):
            raise ValueError("accumulate_windows: a source's indices and counts disagree")
        slen[s] = kv.shape[0]
        if kv.shape[0]:
            kaddr[s] = <uint64_t>&kv[0]
            caddr[s] = <uint64_t>&cv[0]
    return kp_a, cp_a, n_a


def _accumulators(acc_buffer, Py_ssize_t n_acc, str who):
    """``n_acc`` cleared uint64 accumulators: the start of ``acc_buffer``
    (memory a :class:`~.dists.Scratch` reuses), else new ones."""
    if acc_buffer is None:
        return np.zeros(n_acc, dtype=np.uint64)
    acc_a = acc_buffer[:n_acc]
    if acc_a.shape[0] < n_acc:
        raise ValueError(f"{who}: acc_buffer is shorter than the window's {n_acc} accumulators")
    acc_a[:] = 0
    return acc_a


def accumulate_windows(list src_k, list src_cnt, const int64_t[::1] part_src,
                       const int64_t[::1] part_a, const int64_t[::1] part_b,
                       const uint64_t[::1] part_mult, int64_t span, int64_t lo, int64_t g,
                       int64_t window, int64_t[::1] out_val, out_cnt,
                       int64_t[::1] out_k, int64_t[::1] out_info, bint fits64=False,
                       int cnt_stride=2, acc_buffer=None):
    """Sum shifted, scaled sorted distributions on the lattice ``lo + j * g``,
    one window of ``window`` lattice points at a time (memory: the window).

    Source ``s`` is ``src_k[s]`` (int64 lattice indices, ascending) with
    ``src_cnt[s]`` (``(n, 2)`` uint64 counts); the sources are read in
    place.  Part ``p`` sends entry ``i`` of source ``part_src[p]`` to point
    ``src_k[i] * part_a[p] + part_b[p]`` with its count times
    ``part_mult[p]``.  Writes the non-zero points in order, with their
    lattice point ``j`` to ``out_k``; returns how many, or -1 on overflow.
    ``out_info`` (4 int64) receives the gcd of the differences between the
    points written (0 for fewer than two) and their total count (words 2
    and 3: low, high).  ``fits64``: the caller has checked that the sum
    over parts of source total times multiplicity is below 2**64, so every
    count and sum fits 64 bits (the faster loop: no overflow is possible).
    The outputs hold at least ``min(span, entries + 1)`` points, ``entries``
    the sum over parts of their source's length (the 64-bit sweep writes
    every point of a block at the next free slot).

    ``cnt_stride=1`` (with ``fits64`` only): every count, read and written,
    is one 64-bit word (``(n,)`` arrays) instead of two, and ``out_val``
    may be empty (no values written): the lean form a dynamic program keeps
    between its steps (:class:`~.dists.Lean`).  ``acc_buffer``: uint64
    memory for the window's accumulators (at least ``2 * min(window,
    span)`` words, cleared here), else a new one.
    """
    cdef Py_ssize_t P = part_src.shape[0], S = len(src_k), p, m = 0, s, n_entries = 0
    cdef int64_t w0, w1, j, i, e, a, b, last = -1, h = 0
    cdef uint64_t mult
    cdef u128 tot = 0
    cdef uint64_t tot64 = 0
    cdef bint ovf = False
    cdef uint64_t[::1] ocv = np.ravel(out_cnt)
    cdef int64_t cs = cnt_stride
    if cs not in (1, 2) or (cs == 1 and not fits64):
        raise ValueError("accumulate_windows: counts are 2 words, or 1 with fits64")
    if np.shape(out_cnt)[1:] != ((2,) if cs == 2 else ()) or not np.may_share_memory(ocv, out_cnt):
        raise ValueError("accumulate_windows: out_cnt must be a contiguous (n, 2) or (n,) array")
    cdef Py_ssize_t n_out = ocv.shape[0] // cs
    if len(src_cnt) != S or out_info.shape[0] < 4 or out_k.shape[0] < n_out \
            or (out_val.shape[0] and out_val.shape[0] < n_out) or (cs == 2 and not out_val.shape[0]):
        raise ValueError("accumulate_windows: shapes disagree")
    kp_a, cp_a, n_a = _source_addresses(src_k, src_cnt, cs)
    cdef uint64_t[::1] kaddr = kp_a, caddr = cp_a
    cdef int64_t[::1] slen = n_a
    for p in range(P):
        if not 0 <= part_src[p] < S:
            raise ValueError("accumulate_windows: a part's source is out of range")
        if part_a[p] < 0:
            raise ValueError("accumulate_windows: a part's lattice stride is negative")
        n_entries += slen[part_src[p]]
    if n_out < min(span, n_entries + 1):
        raise ValueError("accumulate_windows: the outputs are shorter than min(span, entries + 1)")
    cdef const int64_t* kp
    cdef const uint64_t* cp
    pos_a = np.zeros(max(P, 1), dtype=np.int64)
    acc_a = _accumulators(acc_buffer, 2 * max(min(window, span), 1), "accumulate_windows")
    cdef int64_t[::1] pos = pos_a
    cdef uint64_t[::1] accv = acc_a
    cdef uint64_t* acc = &accv[0]
    cdef int64_t* ov = &out_val[0] if out_val.shape[0] else NULL
    cdef int64_t* ok = &out_k[0] if out_k.shape[0] else NULL
    cdef uint64_t* oc = &ocv[0] if ocv.shape[0] else NULL
    with nogil:
        w0 = 0
        while w0 < span and not ovf:
            w1 = w0 + window if w0 + window < span else span
            for p in range(P):
                s = part_src[p]
                e = slen[s]
                if e == 0:
                    continue
                kp = <const int64_t*>kaddr[s]
                cp = <const uint64_t*>caddr[s]
                i = pos[p]
                a = part_a[p]
                b = part_b[p] - w0
                mult = part_mult[p]
                if fits64:
                    j = window_end(kp, i, e, a, b, w1 - w0)
                    scatter64(acc, kp, cp, cs, i, j, a, b, mult)
                    pos[p] = j
                    continue
                pos[p] = scatter128(acc, kp, cp, i, e, a, b, mult, w1 - w0, &ovf)
                if ovf:
                    break
            if fits64:
                m = sweep64(acc, w1 - w0, w0, lo, g, ov, ok, oc, cs, m, n_out, &last, &h, &tot64)
            else:
                m = sweep(acc, w1 - w0, w0, lo, g, ov, ok, oc, m, &last, &h, &tot)
            if m < 0:
                ovf = True
                break
            w0 = w1
    if fits64:
        tot = tot64
    out_info[0] = h
    out_info[1] = 0
    out_info[2] = <int64_t>lo64(tot)
    out_info[3] = <int64_t>hi64(tot)
    return -1 if ovf else m


def _bit_sources(list src_bits, list src_k, list src_cnt, const int64_t[::1] src_span):
    """Per source of :func:`accumulate_bits`: the address of its bits (or of
    its points), of its counts, its length and its form (0 bits, 1 points),
    checked to agree.  The caller keeps the arrays alive while it reads them."""
    cdef Py_ssize_t S = len(src_bits), s
    kp_a = np.zeros(max(S, 1), dtype=np.uint64)
    cp_a = np.zeros(max(S, 1), dtype=np.uint64)
    n_a = np.zeros(max(S, 1), dtype=np.int64)
    kind_a = np.zeros(max(S, 1), dtype=np.int64)
    cdef uint64_t[::1] baddr = kp_a, caddr = cp_a
    cdef int64_t[::1] slen = n_a, kind = kind_a
    cdef const uint64_t[::1] bv
    cdef const int64_t[::1] kv
    cdef const uint64_t[::1] cv
    for s in range(S):
        cv = src_cnt[s]
        if src_bits[s] is None:
            kv = src_k[s]
            if kv.shape[0] != cv.shape[0] or (kv.shape[0] and not (
                    0 <= kv[0] and kv[kv.shape[0] - 1] < src_span[s])):
                raise ValueError("accumulate_bits: a source's points, span and counts disagree")
            kind[s] = 1
            if kv.shape[0]:
                baddr[s] = <uint64_t>&kv[0]
        else:
            bv = src_bits[s]
            if not 0 <= src_span[s] <= 64 * bv.shape[0] or cv.shape[0] > src_span[s]:
                raise ValueError("accumulate_bits: a source's bits, span and counts disagree")
            if bv.shape[0]:
                baddr[s] = <uint64_t>&bv[0]
        slen[s] = cv.shape[0]
        if cv.shape[0]:
            caddr[s] = <uint64_t>&cv[0]
    return kp_a, cp_a, n_a, kind_a


def accumulate_bits(list src_bits, list src_k, list src_cnt, const int64_t[::1] src_span,
                    const int64_t[::1] part_src, const int64_t[::1] part_a,
                    const int64_t[::1] part_b, const uint64_t[::1] part_mult, int64_t span,
                    int64_t window, uint64_t[::1] out_bits, uint64_t[::1] out_cnt,
                    int64_t[::1] out_info, acc_buffer=None):
    """:func:`accumulate_windows` in the bitmap form (:class:`~.dists.Lean`):
    sources and output are a bit per lattice point and the 64-bit counts of
    the set ones, in order.

    Source ``s`` is ``src_bits[s]`` (uint64 words; its points are below
    ``src_span[s]``) with ``src_cnt[s]`` (one count per set bit), or where
    that is None, ``src_k[s]`` (its points, ascending int64) with
    ``src_cnt[s]`` (one count each): a sparse source (read as
    :func:`accumulate_windows` reads one).  Part
    ``p`` sends point ``k`` of source ``part_src[p]`` to point ``k *
    part_a[p] + part_b[p]`` (``0 <= ... < span``) with its count times
    ``part_mult[p]``; the caller checked that the sum over parts of source
    total times multiplicity is below 2**64.  Writes the ``ceil(span / 64)``
    words of ``out_bits`` and the counts of the set bits to ``out_cnt``
    (at least ``min(span, entries + 1)`` slots, ``entries`` the sum over
    parts of their source's length); returns how many.  ``out_info`` (4
    int64) receives the gcd of the differences between the points written
    (0 for fewer than two), the last point, and the total count (word 2).
    ``acc_buffer``: uint64 memory for the window's accumulators (at least
    ``min(window, span)`` rounded up to 64 words, cleared here), else a new
    one.  ``window`` must be a multiple of 64.
    """
    cdef Py_ssize_t P = part_src.shape[0], S = len(src_bits), p, s, n_entries = 0
    cdef int64_t w0, w1, a, b, ke, m = 0, last = -1, h = 0
    cdef uint64_t tot = 0
    cdef Py_ssize_t n_words = (span + 63) // 64
    if window <= 0 or window % 64 or span <= 0:
        raise ValueError("accumulate_bits: window must be a positive multiple of 64, span positive")
    if len(src_cnt) != S or len(src_k) != S or src_span.shape[0] != S \
            or out_info.shape[0] < 4 or out_bits.shape[0] < n_words:
        raise ValueError("accumulate_bits: shapes disagree")
    kp_a, cp_a, n_a, kind_a = _bit_sources(src_bits, src_k, src_cnt, src_span)
    cdef uint64_t[::1] baddr = kp_a, caddr = cp_a
    cdef int64_t[::1] slen = n_a, kind = kind_a
    for p in range(P):
        if not 0 <= part_src[p] < S:
            raise ValueError("accumulate_bits: a part's source is out of range")
        s = part_src[p]
        if part_a[p] < 0 or part_b[p] < 0 or (slen[s] and part_a[p] * (src_span[s] - 1)
                                               + part_b[p] >= span):
            raise ValueError("accumulate_bits: a part's points fall outside the span")
        n_entries += slen[s]
    if out_cnt.shape[0] < min(span, n_entries + 1):
        raise ValueError("accumulate_bits: out_cnt is shorter than min(span, entries + 1)")
    cdef Py_ssize_t n_acc = (min(window, span) + 63) // 64 * 64
    acc_a = _accumulators(acc_buffer, n_acc, "accumulate_bits")
    cdef uint64_t[::1] accv = acc_a
    cdef uint64_t* acc = &accv[0]
    ks_a = np.zeros(max(P, 1), dtype=np.int64)
    ci_a = np.zeros(max(P, 1), dtype=np.int64)
    cdef int64_t[::1] ks = ks_a, ci = ci_a
    # a sparse word's points and counts' numbers, decoded (a window's worth, plus 8)
    cdef uint32_t[::1] dec_p = np.empty(n_acc + 72, dtype=np.uint32)
    cdef uint32_t[::1] dec_q = np.empty(n_acc + 72, dtype=np.uint32)
    cdef uint64_t* oc = &out_cnt[0] if out_cnt.shape[0] else NULL
    with nogil:
        w0 = 0
        while w0 < span:
            w1 = w0 + window if w0 + window < span else span
            for p in range(P):
                s = part_src[p]
                if slen[s] == 0:
                    continue
                a = part_a[p]
                b = part_b[p]
                if kind[s]:             # points: up to the first beyond the window
                    ke = window_end(<const int64_t*>baddr[s], ci[p], slen[s], a, b - w0, w1 - w0)
                    scatter64(acc, <const int64_t*>baddr[s], <const uint64_t*>caddr[s], 1, ci[p],
                              ke, a, b - w0, part_mult[p])
                    ci[p] = ke
                    continue
                if a == 0:              # one point, at b
                    ke = src_span[s] if b < w1 else 0
                else:                   # the points k with k * a + b < w1
                    ke = (w1 - b + a - 1) // a if w1 > b else 0
                    if ke > src_span[s]:
                        ke = src_span[s]
                if ke > ks[p]:
                    ci[p] = scatter_bits(acc, <const uint64_t*>baddr[s],
                                         <const uint64_t*>caddr[s], ks[p], ke, ci[p], a,
                                         b - w0, part_mult[p], &dec_p[0], &dec_q[0])
                    ks[p] = ke
            m = sweep_bits(acc, w1 - w0, w0, &out_bits[0], oc, m, out_cnt.shape[0], &last, &h,
                           &tot)
            w0 = w1
    out_info[0] = h
    out_info[1] = last
    out_info[2] = <int64_t>tot
    out_info[3] = 0
    return m


cdef inline int64_t head_key(const int64_t* val, const int64_t* pos, const int64_t* shift,
                             const int64_t* src_of, bint take_max, Py_ssize_t p) noexcept nogil:
    cdef int64_t v = val[pos[p]]
    if take_max:
        return v if v > shift[p] else shift[p]
    return v + shift[p]


cdef inline void sift_down(int64_t* heap, int64_t* key, Py_ssize_t n, Py_ssize_t i) noexcept nogil:
    """Restore the min-heap of part indices ``heap[0 .. n-1]`` keyed by ``key[part]``."""
    cdef Py_ssize_t c
    cdef int64_t x = heap[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and (key[heap[c + 1]] < key[heap[c]]
                          or (key[heap[c + 1]] == key[heap[c]] and heap[c + 1] < heap[c])):
            c += 1
        if key[heap[c]] < key[x] or (key[heap[c]] == key[x] and heap[c] < x):
            heap[i] = heap[c]
            i = c
        else:
            break
    heap[i] = x


def merge_shifted(const int64_t[::1] src_ptr, const int64_t[::1] src_val,
                  const uint64_t[:, ::1] src_cnt, const int64_t[::1] part_src,
                  const int64_t[::1] part_shift, const uint64_t[::1] part_mult, bint take_max,
                  int64_t[::1] out_val, uint64_t[:, ::1] out_cnt):
    """Merge shifted, scaled copies of sorted distributions into one (k-way, by a heap).

    Part ``p`` is source ``part_src[p]`` (values ``src_val[src_ptr[s] ..
    src_ptr[s + 1] - 1]``, ascending) with every value ``v`` turned into
    ``v + part_shift[p]`` (or ``max(v, part_shift[p])`` with ``take_max``)
    and its count times ``part_mult[p]``.  Writes the distinct values, in
    order, with summed counts; returns how many, or -1 on overflow.  The
    output must hold the total length of the parts.
    """
    cdef Py_ssize_t P = part_src.shape[0], n = 0, m = 0, p, i
    cdef int64_t v
    cdef u128 x, y
    cdef bint ovf = False
    pos_a = np.empty(max(P, 1), dtype=np.int64)
    end_a = np.empty(max(P, 1), dtype=np.int64)
    key_a = np.empty(max(P, 1), dtype=np.int64)
    heap_a = np.empty(max(P, 1), dtype=np.int64)
    cdef int64_t[::1] pos = pos_a, end = end_a, key = key_a, heap = heap_a
    cdef const uint64_t* cp = &src_cnt[0, 0] if src_cnt.shape[0] else NULL
    with nogil:
        for p in range(P):
            pos[p] = src_ptr[part_src[p]]
            end[p] = src_ptr[part_src[p] + 1]
            if pos[p] < end[p]:
                key[p] = head_key(&src_val[0], &pos[0], &part_shift[0], &part_src[0], take_max, p)
                heap[n] = p
                n += 1
        i = n // 2
        while i > 0:
            i -= 1
            sift_down(&heap[0], &key[0], n, i)
        while n > 0:
            p = heap[0]
            v = key[p]
            if mul64(mk(cp[2 * pos[p]], cp[2 * pos[p] + 1]), part_mult[p], &x):
                ovf = True
                break
            if m > 0 and out_val[m - 1] == v:
                if u128_add(mk(out_cnt[m - 1, 0], out_cnt[m - 1, 1]), x, &y):
                    ovf = True
                    break
                out_cnt[m - 1, 0] = lo64(y)
                out_cnt[m - 1, 1] = hi64(y)
            else:
                out_val[m] = v
                out_cnt[m, 0] = lo64(x)
                out_cnt[m, 1] = hi64(x)
                m += 1
            pos[p] += 1
            if pos[p] < end[p]:
                key[p] = head_key(&src_val[0], &pos[0], &part_shift[0], &part_src[0], take_max, p)
            else:
                n -= 1
                heap[0] = heap[n]
            sift_down(&heap[0], &key[0], n, 0)
    return -1 if ovf else m


def cumsum(const uint64_t[:, ::1] c, uint64_t[:, ::1] out):
    """Inclusive cumulative sums of 128-bit counts; True on overflow."""
    cdef Py_ssize_t i, n = c.shape[0]
    cdef u128 t = 0
    cdef bint ovf = False
    with nogil:
        for i in range(n):
            if u128_add(t, get(c, i), &t):
                ovf = True
                break
            put(out, i, t)
    return ovf


def step_and_total(const int64_t[::1] v, const uint64_t[:, ::1] c, int64_t[::1] info,
                   bint total=True, int64_t floor=1):
    """One pass over a distribution: ``info[0]`` the gcd of the differences
    between its (ascending) values (0 for fewer than two; found once it is
    ``floor``, a step every difference is known to be a multiple of, so
    usually from the first few), and with ``total`` ``info[1]`` and
    ``info[2]`` the low and high words of its total count (the low and high
    words summed apart, no test per count).  True when the total exceeds
    2**128."""
    cdef Py_ssize_t i, n = v.shape[0]
    cdef int64_t h = 0
    cdef u128 lo = 0, hi = 0, t = 0
    cdef bint ovf = False
    if c.shape[0] != n or c.shape[1] != 2 or info.shape[0] < 3:
        raise ValueError("step_and_total: shapes disagree")
    with nogil:
        for i in range(1, n):
            h = gcd64(v[i] - v[i - 1], h)
            if h == floor:
                break
        if total:
            for i in range(n):
                lo += c[i, 0]
                hi += c[i, 1]
            ovf = hi64(hi) != 0 or u128_add(lo, hi << 64, &t)
    info[0] = h
    info[1] = <int64_t>lo64(t)
    info[2] = <int64_t>hi64(t)
    return ovf


# ------------------------------------------------------------- pair counts
cdef inline bint pair_count(const int64_t[::1] lv, const uint64_t[:, ::1] lc,
                            const int64_t[::1] rv, const uint64_t[:, ::1] rcum, int64_t q,
                            u128* total, bint write, uint64_t[:, ::1] weights) noexcept nogil:
    """Sum over ``i`` of ``lc[i] * rcum[j]``, ``j`` the last right value with
    ``lv[i] + rv[j] <= q`` (none: 0); both sides ascending, so one pass.
    With ``write``, also writes the running sum per ``i`` to ``weights``."""
    cdef Py_ssize_t i, n = lv.shape[0]
    cdef Py_ssize_t j = rv.shape[0] - 1
    cdef u128 t = 0, p
    for i in range(n):
        while j >= 0 and rv[j] > i64_sub_sat(q, lv[i]):
            j -= 1
        if j >= 0:
            if u128_mul(get(lc, i), get(rcum, j), &p) or u128_add(t, p, &t):
                return True
        if write:
            put(weights, i, t)
    total[0] = t
    return False


def pair_cdf(const int64_t[::1] lv, const uint64_t[:, ::1] lc, const int64_t[::1] rv,
             const uint64_t[:, ::1] rcum, const int64_t[::1] points, uint64_t[:, ::1] out):
    """Exact CDF of ``L + R`` at every point: ``#{(l, r): l + r <= q}``.

    ``L``: values ``lv`` ascending with counts ``lc``; ``R``: values ``rv``
    ascending with cumulative counts ``rcum``.  One pass over both per
    point.  Returns True on overflow.
    """
    cdef Py_ssize_t k
    cdef u128 t
    cdef bint ovf = False
    with nogil:
        for k in range(points.shape[0]):
            if pair_count(lv, lc, rv, rcum, points[k], &t, False, out):
                ovf = True
                break
            put(out, k, t)
    return ovf


def pair_cdf_many(const int64_t[::1] lv, const uint64_t[:, ::1] lc, const int64_t[::1] rv,
                  const uint64_t[:, ::1] rcum, const int64_t[::1] points, uint64_t[:, ::1] out):
    """Exact CDF of ``L + R`` at every point, ``points`` ascending: one pass
    over ``L`` for all of them (see :func:`pair_cdf`, the same counts).

    Each point keeps its own pointer into ``R`` (the last value within
    ``q - l``), which only moves down as ``l`` grows; the points whose
    pointer has left ``R`` are skipped (they are the lowest).  Cost:
    ``len(points) * len(L)`` products plus ``len(points) * len(R)`` pointer
    steps, reading ``L`` once.  Returns True on overflow.
    """
    cdef Py_ssize_t n = lv.shape[0], m = points.shape[0], i, k
    cdef Py_ssize_t nr = rv.shape[0]
    cdef int64_t j, t, l
    cdef uint64_t c_lo, c_hi, r_lo, r_hi
    cdef u128 x, c
    cdef bint ovf = False
    if lc.shape[0] != n or rcum.shape[0] != nr or out.shape[0] != m:
        raise ValueError("pair_cdf_many: shapes disagree")
    for k in range(1, m):
        if points[k] < points[k - 1]:
            raise ValueError("pair_cdf_many: points must be ascending")
    cdef u128* acc = <u128*>calloc(max(m, 1), sizeof(u128))
    cdef int64_t* pos = <int64_t*>calloc(max(m, 1), sizeof(int64_t))
    if acc == NULL or pos == NULL:
        free(acc)
        free(pos)
        raise MemoryError()
    with nogil:
        for k in range(m):
            pos[k] = nr - 1
        for i in range(n):
            c_lo = lc[i, 0]
            c_hi = lc[i, 1]
            if (c_lo | c_hi) == 0:
                continue
            c = mk(c_lo, c_hi)
            l = lv[i]
            k = m - 1
            while k >= 0:
                t = i64_sub_sat(points[k], l)
                j = pos[k]
                while j >= 0 and rv[j] > t:
                    j -= 1
                pos[k] = j
                if j < 0:            # and every lower point: nothing within
                    break
                r_lo = rcum[j, 0]
                r_hi = rcum[j, 1]
                if (c_hi | r_hi) == 0:
                    x = (<u128>c_lo) * r_lo
                elif u128_mul(c, mk(r_lo, r_hi), &x):
                    ovf = True
                    break
                if u128_add(acc[k], x, &acc[k]):
                    ovf = True
                    break
                k -= 1
            if ovf:
                break
        for k in range(m):
            put(out, k, acc[k])
    free(acc)
    free(pos)
    return ovf


def rank_index(const int64_t[::1] k, uint64_t[::1] bits, int64_t[::1] before,
               const uint64_t[:] counts=None, uint64_t[::1] cum=None):
    """A rank index of the lattice points ``k`` (ascending, distinct, from 0):
    bit ``t`` of ``bits`` is set when ``t`` is one of them, ``before[w]``
    counts the points below word ``w`` (so the points ``<= t`` number
    ``before[t >> 6] + popcount(bits[t >> 6] & mask(t))``).  With
    ``counts`` (64-bit, any stride) their inclusive cumulative sums are
    written to ``cum`` in the same pass (the caller checked that the total
    is below 2**64)."""
    cdef Py_ssize_t n = k.shape[0], W = bits.shape[0], i, w
    cdef int64_t run = 0, x, prev = -1, cur = -1
    cdef uint64_t tot = 0, word = 0
    cdef bint bad = False
    cdef const uint64_t* cp = NULL
    cdef Py_ssize_t cs = 0
    if before.shape[0] != W or (n and (k[0] < 0 or k[n - 1] >= 64 * W)) \
            or (counts is None) != (cum is None) \
            or (counts is not None and (counts.shape[0] != n or cum.shape[0] != n)):
        raise ValueError("rank_index: shapes disagree")
    if counts is not None and n:
        cp, cs = &counts[0], counts.strides[0] // sizeof(uint64_t)
    with nogil:
        memset(&bits[0], 0, W * sizeof(uint64_t))
        for i in range(n):          # a word is written once its points are all set
            x = k[i]
            if x <= prev:
                bad = True
                break
            prev = x
            if x >> 6 != cur:
                if cur >= 0:
                    bits[cur] = word
                cur, word = x >> 6, 0
            word |= (<uint64_t>1) << (x & 63)
            if cp != NULL:
                tot += cp[i * cs]
                cum[i] = tot
        if cur >= 0 and not bad:
            bits[cur] = word
        for w in range(W):
            before[w] = run
            run += popcount64(bits[w])
    if bad:
        raise ValueError("rank_index: points must be ascending and distinct")


def use_avx512(int which):
    """Whether the 64-bit sweep of :func:`accumulate_windows` (either form)
    packs a window's points with AVX-512 instructions: -1 when the CPU has
    them (the default), 0 never (the portable loop; tests compare both).
    Returns the previous setting."""
    return set_avx512(which)


def use_popcnt(int which):
    """Which popcount :func:`pair_cdf_rank` uses: -1 the CPU's instruction
    when it has one (the default), 0 the portable one (tests compare both).
    Returns the previous setting."""
    return set_popcnt(which)


cdef inline Py_ssize_t count_le(const int64_t* off, Py_ssize_t n, int64_t x) noexcept nogil:
    """How many of the ascending ``off[:n]`` are ``<= x``."""
    cdef Py_ssize_t lo = 0, hi = n, mid
    while lo < hi:
        mid = lo + (hi - lo) // 2
        if off[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def pair_cdf_rank(const int64_t[::1] off, const uint64_t[:] lc, const uint64_t[::1] bits,
                  const int64_t[::1] before, const uint64_t[::1] rcum, const int64_t[::1] base,
                  uint64_t[:, ::1] out, int64_t region=1 << 17):
    """Exact ``#{(l, r): l + r <= q}`` at every point, the right side read
    through a rank index of its lattice points (:func:`rank_index`) and its
    cumulative counts ``rcum`` (64-bit): the right count within ``q - l`` is
    ``rcum[rank(base[q] - off[l]) - 1]`` (0 below the index, the total
    above).

    ``off`` ascending (the left values' offsets in lattice steps), ``lc``
    their 64-bit counts (any stride: a lean form's, or the low words of
    two-word counts), ``base`` ascending (one per point).  The caller
    checks that every left count,
    the left total and the right total are below 2**64 and that their
    product is below 2**128, so no sum can overflow.  The index is read one
    region of ``region`` lattice points at a time, for every point: the
    left values whose lookup falls in it are a stretch found by bisection,
    and the region (bits, word counts, cumulative counts) stays in cache
    while every point reads it; the left values beyond the index count the
    right total each, from the left's cumulative counts.
    """
    cdef Py_ssize_t n = off.shape[0], m = base.shape[0], W = bits.shape[0], k
    cdef Py_ssize_t nr = rcum.shape[0], i, i_lo, i_hi
    cdef int64_t T = 64 * W, r0, r1
    cdef uint64_t run = 0
    if lc.shape[0] != n or out.shape[0] != m or before.shape[0] != W or W == 0 or nr == 0 \
            or region < 64:
        raise ValueError("pair_cdf_rank: shapes disagree")
    for k in range(1, m):
        if base[k] < base[k - 1]:
            raise ValueError("pair_cdf_rank: points must be ascending")
    cdef u128* acc = <u128*>calloc(max(m, 1), sizeof(u128))
    cdef uint64_t* lcum = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))
    cdef uint64_t* lw = <uint64_t*>malloc(max(n, 1) * sizeof(uint64_t))   # lc, contiguous
    if acc == NULL or lcum == NULL or lw == NULL:
        free(acc)
        free(lcum)
        free(lw)
        raise MemoryError()
    with nogil:
        for i in range(n):
            lw[i] = lc[i]
            run += lw[i]
            lcum[i] = run
        for k in range(m):                 # left values beyond the index: the right total
            i = count_le(&off[0], n, base[k] - T)
            if i > 0:
                acc[k] = <u128>lcum[i - 1] * rcum[nr - 1]
        r0 = 0
        while r0 < T:
            r1 = r0 + region if r0 + region < T else T
            for k in range(m):             # lookups in [r0, r1): off in (base - r1, base - r0]
                if base[k] - r0 < 0:
                    continue
                i_hi = count_le(&off[0], n, base[k] - r0)
                i_lo = count_le(&off[0], i_hi, base[k] - r1)
                if i_lo < i_hi:
                    acc[k] += rank_block(&off[0], lw, i_lo, i_hi, base[k], &bits[0],
                                         &before[0], &rcum[0])
            r0 = r1
        for k in range(m):
            put(out, k, acc[k])
    free(acc)
    free(lcum)
    free(lw)


def pair_weights(const int64_t[::1] lv, const uint64_t[:, ::1] lc, const int64_t[::1] rv,
                 const uint64_t[:, ::1] rcum, int64_t q, uint64_t[:, ::1] out):
    """Running sums over the left values of their pair counts within ``q``
    (see :func:`pair_cdf`); True on overflow."""
    cdef u128 t
    cdef bint ovf
    with nogil:
        ovf = pair_count(lv, lc, rv, rcum, q, &t, True, out)
    return ovf


# ---------------------------------------------------------------- sampling
cdef inline Py_ssize_t upper(const uint64_t[:, ::1] cum, Py_ssize_t lo, Py_ssize_t hi,
                             u128 rank) noexcept nogil:
    """First index in ``lo .. hi - 1`` whose cumulative count exceeds ``rank``."""
    cdef Py_ssize_t mid
    while lo < hi:
        mid = (lo + hi) // 2
        if get(cum, mid) > rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def search(const uint64_t[:, ::1] cum, const uint64_t[:, ::1] ranks, int64_t[::1] out):
    """``out[i]``: the first index whose cumulative count exceeds ``ranks[i]``."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(ranks.shape[0]):
            out[i] = upper(cum, 0, cum.shape[0], get(ranks, i))


def uniform_below(const uint64_t[:, ::1] raw, uint64_t n_lo, uint64_t n_hi,
                  uint64_t[:, ::1] out):
    """Uniform ranks in ``[0, N)`` from uniform 128-bit words, by rejection:
    ``out[i] = raw[i] mod N`` when ``raw[i]`` lies below the largest multiple
    of ``N``; returns the indices to redraw (an int64 array)."""
    cdef u128 N = mk(n_lo, n_hi), x
    cdef u128 top = ((<u128>0) - 1) - (((<u128>0) - 1) % N + 1) % N
    cdef Py_ssize_t i, m = 0
    redo = np.empty(raw.shape[0], dtype=np.int64)
    cdef int64_t[::1] rv = redo
    with nogil:
        for i in range(raw.shape[0]):
            x = get(raw, i)
            if x > top:
                rv[m] = i
                m += 1
            else:
                put(out, i, x % N)
    return redo[:m]


def unrank(const int64_t[::1] state, const int64_t[::1] value, const uint64_t[:, ::1] rank,
           const int64_t[::1] e_ptr, const int64_t[::1] e_other, const int64_t[::1] e_shift,
           const uint64_t[::1] e_mult, const int64_t[::1] d_ptr, const int64_t[::1] d_val,
           const uint64_t[:, ::1] d_cnt, int64_t[::1] edge, uint64_t[::1] sub,
           int64_t[::1] new_state, int64_t[::1] new_value, uint64_t[:, ::1] new_rank):
    """One step of unranking paths of a trellis, for every sample at once.

    Sample ``i`` sits in ``state[i]`` with path value ``value[i]`` and rank
    ``rank[i]`` among the paths that reach it with that value.  The edges
    of state ``s`` are ``e_ptr[s] .. e_ptr[s + 1] - 1``, each leading to
    ``e_other`` (the neighbouring boundary's state) with value ``e_shift``
    and multiplicity ``e_mult``; that boundary's distribution of state ``t``
    is ``d_val/d_cnt[d_ptr[t] .. d_ptr[t + 1] - 1]`` (values ascending).
    Edges are weighed by ``count(value - shift) * mult`` in order; the chosen
    edge, the sub-index among its multiplicity and the rank within the
    neighbour are written out.  Returns the first sample whose rank is not
    below its total weight (inconsistent input), or -1.
    """
    cdef Py_ssize_t i, e, lo, hi, mid
    cdef int64_t t, v, bad = -1
    cdef u128 r, c, w
    with nogil:
        for i in range(state.shape[0]):
            r = get(rank, i)
            edge[i] = -1
            for e in range(e_ptr[state[i]], e_ptr[state[i] + 1]):
                t = e_other[e]
                v = value[i] - e_shift[e]
                lo = d_ptr[t]
                hi = d_ptr[t + 1]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if d_val[mid] < v:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo >= d_ptr[t + 1] or d_val[lo] != v:
                    continue
                c = get(d_cnt, lo)
                w = c * e_mult[e]
                if r < w:
                    edge[i] = e
                    sub[i] = <uint64_t>(r // c)
                    put(new_rank, i, r % c)
                    new_state[i] = t
                    new_value[i] = v
                    break
                r -= w
            if edge[i] < 0:
                bad = i
                break
    return bad
