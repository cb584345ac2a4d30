# Type stub for the compiled template gather (search_spaces/_gather.pyx); C types in comments.
import numpy as np
from numpy.typing import NDArray

UNUSED: int                              # UNUSED_SLOT, -2**30: a template's unused input slot

def gather_segments(
    pool: NDArray[np.void],              # const Layer[::1], templates, inputs record-relative
    seg_src: NDArray[np.int64],          # const int64_t[:, ::1], (n, S) pool start per segment
    seg_len: NDArray[np.int64],          # const int64_t[:, ::1], (n, S) records per segment
    offsets: NDArray[np.int64],          # const int64_t[::1], n + 1, cumulative lengths
    out: NDArray[np.void],               # Layer[::1], written
) -> None: ...

def chain_tids(
    vals: NDArray[np.int64],             # const int64_t[:, ::1], (n, columns): native values side by side
    col_lo: NDArray[np.int64],           # const int64_t[::1], lowest value per column
    lut_ptr: NDArray[np.int64],          # const int64_t[::1], columns + 1
    lut: NDArray[np.int64],              # const int64_t[::1], value -> choice index (-1: none)
    pos_cols: NDArray[np.int64],         # const int64_t[:, ::1], (positions, 6)
    pos_weights: NDArray[np.int64],      # const int64_t[:, ::1], (positions, 5)
    base: NDArray[np.int64],             # const int64_t[::1], first template id per position
    pos_in_stage: NDArray[np.int64],     # const int64_t[::1]
    depth_of: NDArray[np.int64],         # const int64_t[:, ::1], (positions, depth choices)
    stem: int, empty: int, head_base: int, head_col: int, r_col: int,
    tids: NDArray[np.int64],             # int64_t[:, ::1], (n, positions + 2), written
    r_idx: NDArray[np.int64],            # int64_t[::1], written
) -> int: ...                            # first candidate with an invalid value, or -1
