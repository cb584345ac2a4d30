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
