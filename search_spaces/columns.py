"""Natives as columns: the form candidates travel in between sampling, encoding and storage.

A space's *native encoding* is what its paper and benchmark call an
architecture (a NAS-Bench-201 string, OFA's ``ks/e/d/r`` dict, ...).  Inside
nasflops natives travel as **columns**: a ``dict`` of numpy arrays, one row
per candidate, so that no step loops in Python per candidate.  This module
holds the helpers every space shares, the unit of the seeded sample stream,
and the error that names a bad native.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["SAMPLE_BLOCK", "NativeError", "concat_columns", "take_columns", "n_rows"]

#: candidates per independently seeded sampling block: block ``b`` of seed
#: ``s`` is drawn from its own generator seeded by ``(s, b)``
SAMPLE_BLOCK = 1 << 16


class NativeError(ValueError):
    """A native encoding that is not in the space, naming candidate and field."""

    def __init__(self, space: str, candidate: Optional[int], field: str, reason: str):
        self.space, self.candidate, self.field, self.reason = space, candidate, field, reason
        where = f"candidate {candidate}, " if candidate is not None else ""
        super().__init__(f"{space}: {where}field {field!r}: {reason}")


def concat_columns(parts: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate columnar natives row-wise."""
    parts = list(parts)
    if len(parts) == 1:
        return dict(parts[0])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def take_columns(cols: Mapping[str, np.ndarray], idx) -> dict[str, np.ndarray]:
    """Rows ``idx`` (a slice, indices or a mask) of columnar natives."""
    return {k: v[idx] for k, v in cols.items()}


def n_rows(cols: Mapping[str, np.ndarray]) -> int:
    """Number of candidates in columnar natives."""
    return len(next(iter(cols.values())))
