# Type stub for the compiled core (nasflops/_core.pyx); C types in comments.
import numpy as np
from numpy.typing import NDArray

LAYER_DTYPE: np.dtype            # from the C struct Layer (packed, 64 bytes)
LAYER_SIZE: int                  # sizeof(Layer)
MAX_LAYER_INPUTS: int            # MAX_INPUTS
N_RULES: int                     # N_OPS + N_ACTS: rows of a convention, per call kind
N_CALL_KINDS: int                # N_CALLS
OPS: dict[str, int]              # enum OpCode
ACTS: dict[str, int]             # enum ActKind
CALLS: dict[str, int]            # enum CallKind
FLAGS: dict[str, int]            # enum Flag
TERMS: tuple[str, ...]           # Term: columns of a convention table
MEMORY: dict[str, int]           # enum MemorySemantics
STATUS: dict[str, int]           # enum Status
METRICS: tuple[str, ...]         # columns of score_range's metrics
LAYER_COLUMNS: tuple[str, ...]   # columns of layer_metrics' table

def score_range(
    records: NDArray[np.void],           # const Layer[::1]
    offsets: NDArray[np.int64],          # const int64_t[::1], n + 1
    start: int,                          # Py_ssize_t
    stop: int,                           # Py_ssize_t
    weights: NDArray[np.int64],          # const int64_t[:, :, ::1], (N_CALLS, N_RULES, N_TERMS)
    batch_size: int,                     # int64_t
    weight_size: int,                    # int64_t, bytes per weight
    act_size: int,                       # int64_t, bytes per activation
    metrics: NDArray[np.int64],          # int64_t[:, ::1], (n, len(METRICS)), written
    status: NDArray[np.int64],           # int64_t[::1], written
    bad_layer: NDArray[np.int64],        # int64_t[::1], written
    peak_ops: float = ...,               # double, ops/s; 0 = no roofline
    bytes_per_s: float = ...,            # double
    latency: NDArray[np.float64] | None = ...,  # double[::1], written
    fused_attention: bool = ...,         # bint: attention scores never materialised
    memory: int = ...,                   # int, MemorySemantics (0 = nasflops)
    last_call_only: bool = ...,          # bint: records flagged called_again count 0 ops
    train: bool = ...,                   # bint: forward + backward (x 3) and training memory
    causal_half: bool = ...,             # bint: causal attention over the keys each query sees
) -> None: ...

def layer_metrics(
    records: NDArray[np.void],           # const Layer[::1], one architecture
    weights: NDArray[np.int64],          # const int64_t[:, :, ::1]
    batch_size: int,                     # int64_t
    weight_size: int,
    act_size: int,
    fused_attention: bool = ...,         # bint
    memory: int = ...,                   # int, MemorySemantics
    last_call_only: bool = ...,          # bint
    train: bool = ...,                   # bint
    causal_half: bool = ...,             # bint
) -> tuple[int, int, NDArray[np.int64]]: ...  # (status, bad_layer, (n, len(LAYER_COLUMNS)))
