"""nasflops: analytic FLOPs/MACs, params and memory of neural architectures.

Architectures are arrays of layer records (:data:`LAYER_DTYPE`); a batch is a
:class:`SpecBatch`.  :func:`score` evaluates them in a compiled core under a
named counting convention (:data:`CONVENTIONS`), without building a model.
The layers, and what each may import, are in ``docs/design.md``.
"""
from ._version import __version__
from .spec import LAYER_DTYPE, MAX_INPUTS, Act, Call, Flag, Net, Op, SpecBatch
from .conventions import CONVENTIONS, Convention, get_convention, register_convention
from .options import (CAUSAL_COUNTS, DEVICES, DTYPE_SIZES, MEMORY_SEMANTICS, PHASES, Device,
                      ScoringOptions, get_device)
from .scoring import METRICS, RESULT_DTYPE, STATUS_NAMES, Scores, SpecError, layer_table, score
from .budget import Budget
from .search_spaces import NotDecomposable, Profile, get_space, list_spaces, sample_within
from .storage import open_dataset, read_metadata, read_results, write_results, write_table
from .pipeline import score_space
from .reports import torchstat_report
from . import analytics, units

__all__ = [
    "LAYER_DTYPE", "MAX_INPUTS", "Act", "Call", "Flag", "Net", "Op", "SpecBatch",
    "CONVENTIONS", "Convention", "get_convention", "register_convention",
    "DTYPE_SIZES", "METRICS", "RESULT_DTYPE", "STATUS_NAMES", "Device", "ScoringOptions",
    "DEVICES", "MEMORY_SEMANTICS", "PHASES", "CAUSAL_COUNTS", "get_device", "torchstat_report",
    "Scores", "SpecError", "layer_table", "score", "get_space", "list_spaces", "Profile",
    "NotDecomposable",
    "Budget", "sample_within", "score_space", "read_results", "read_metadata", "open_dataset",
    "write_results", "write_table", "analytics", "units", "__version__",
]
