# Type stub for the compiled kernels of block tables and exact profiles
# (search_spaces/_dist.pyx); C types in comments.  Counts are 128-bit:
# (n, 2) uint64 arrays, [:, 0] the low word.
import numpy as np
from numpy.typing import NDArray

I64 = NDArray[np.int64]
U64 = NDArray[np.uint64]

def table_sums(table: I64, n_groups: int, tids: I64, groups: I64, peak_col: int,
               out: I64) -> int: ...             # first overflowing row or -1
def accumulate_windows(src_k: list[I64], src_cnt: list[U64], part_src: I64, part_a: I64,
                       part_b: I64, part_mult: U64, span: int, lo: int, g: int, window: int,
                       out_val: I64, out_cnt: U64, out_k: I64, out_info: I64,
                       fits64: bool = False, cnt_stride: int = 2, acc_buffer: U64 | None = None
                       ) -> int: ...   # values written, -1 overflow; cnt_stride 1: 64-bit counts
def lean_values(k: I64, c: U64, lo: int, g: int, out_val: I64, out_cnt: U64) -> None: ...
def accumulate_bits(src_bits: list[U64 | None], src_k: list[I64 | None], src_cnt: list[U64],
                    src_span: I64, part_src: I64, part_a: I64, part_b: I64, part_mult: U64,
                    span: int, window: int, out_bits: U64, out_cnt: U64, out_info: I64,
                    acc_buffer: U64 | None = None
                    ) -> int: ...   # counts written; info: step, last point, total
def bits_values(bits: U64, c: U64, lo: int, g: int, out_val: I64, out_cnt: U64) -> None: ...
def bits_points(bits: U64, out_k: I64) -> None: ...     # the set bits, ascending
def points_bits(k: I64, bits: U64) -> None: ...         # every word written
def bits_rank(bits: U64, before: I64, counts: U64, cum: U64) -> None: ...
def bits_upto(bits: U64, kb: int, out_bits: U64) -> tuple[int, int]: ...   # (set bits <= kb, last)
def merge_shifted(src_ptr: I64, src_val: I64, src_cnt: U64, part_src: I64, part_shift: I64,
                  part_mult: U64, take_max: bool, out_val: I64, out_cnt: U64) -> int: ...
def cumsum(c: U64, out: U64) -> bool: ...        # overflow
def step_and_total(v: I64, c: U64, info: I64,
                   total: bool = ..., floor: int = ...) -> bool: ...   # info: step, total lo, hi; overflow
def pair_cdf(lv: I64, lc: U64, rv: I64, rcum: U64, points: I64, out: U64) -> bool: ...
def pair_cdf_many(lv: I64, lc: U64, rv: I64, rcum: U64, points: I64,
                  out: U64) -> bool: ...         # points ascending; overflow
def rank_index(k: I64, bits: U64, before: I64, counts: U64 | None = ...,
               cum: U64 | None = ...) -> None: ...   # counts given: cum their running sums
def use_popcnt(which: int) -> int: ...        # -1 CPU's popcnt when present, 0 portable
def use_avx512(which: int) -> int: ...       # -1 AVX-512 packing when present, 0 portable
def pair_cdf_rank(off: I64, lc: U64, bits: U64, before: I64, rcum: U64, base: I64,
                  out: U64, region: int = ...
                  ) -> None: ...   # lc: 64-bit, any stride; the index read region by region
def pair_weights(lv: I64, lc: U64, rv: I64, rcum: U64, q: int, out: U64) -> bool: ...
def search(cum: U64, ranks: U64, out: I64) -> None: ...
def uniform_below(raw: U64, n_lo: int, n_hi: int, out: U64) -> I64: ...   # indices to redraw
def unrank(state: I64, value: I64, rank: U64, e_ptr: I64, e_other: I64, e_shift: I64,
           e_mult: U64, d_ptr: I64, d_val: I64, d_cnt: U64, edge: I64, sub: U64,
           new_state: I64, new_value: I64, new_rank: U64) -> int: ...   # first bad sample or -1
