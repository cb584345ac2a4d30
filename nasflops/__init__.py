"""nasflops: analytic FLOPs/MACs, params and memory of neural architectures.

Architectures are arrays of layer records (:data:`LAYER_DTYPE`); a batch is a
:class:`SpecBatch`.  :func:`score` evaluates them in a compiled core under a
named counting convention (:data:`CONVENTIONS`), without building a model.
"""
from .spec import LAYER_DTYPE, MAX_INPUTS, Act, Flag, Net, Op, SpecBatch
from .conventions import CONVENTIONS, Convention, get_convention, register_convention
from .scoring import (DTYPE_SIZES, METRICS, RESULT_DTYPE, STATUS_NAMES, Device, Scores,
                      SpecError, layer_table, score)
from .search_spaces import get_space, list_spaces
from .budget import Budget, sample_within
from .pipeline import score_space
from .storage import open_dataset, read_metadata, read_results, write_results, write_table
from . import analytics, units

__version__ = "0.1.0"

__all__ = [
    "LAYER_DTYPE", "MAX_INPUTS", "Act", "Flag", "Net", "Op", "SpecBatch",
    "CONVENTIONS", "Convention", "get_convention", "register_convention",
    "DTYPE_SIZES", "METRICS", "RESULT_DTYPE", "STATUS_NAMES", "Device", "Scores",
    "SpecError", "layer_table", "score", "get_space", "list_spaces",
    "Budget", "sample_within", "score_space", "read_results", "read_metadata", "open_dataset",
    "write_results", "write_table", "analytics", "units", "__version__",
]
