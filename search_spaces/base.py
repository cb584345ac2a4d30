"""The contract every search space follows.

A space has a *native encoding* (what its paper and benchmark call an
architecture), handled as columns (:mod:`.columns`).  A subclass implements:

``native_columns``
    ``{column_name: description}`` of its columnar native form.
``_sample_block(rng, n) -> columns``
    ``n`` random candidates drawn with ``rng`` (a ``numpy.random.Generator``),
    vectorised.
``encode_columns(columns) -> SpecBatch``
    vectorised encoder.
``to_columns(natives) -> columns`` / ``from_columns(columns) -> list``
    between Python native objects and columns (validating, with errors that
    name the candidate and the field).
``arrow_columns(columns) -> dict[str, pyarrow.Array]``
    the native columns as stored in Parquet, under the native field names.

and, where the records determine the native, ``decode(batch) -> columns``
(records back to natives, verified by re-encoding);
and, for finite spaces small enough to list, ``size`` and
``_enumerate_block(start, stop) -> columns``.

Sampling is reproducible whatever the chunking: candidates are drawn in fixed
blocks of :data:`SAMPLE_BLOCK`, block ``b`` from its own generator seeded by
``(seed, b)``, so ``sample(n, seed, start=k)`` returns candidates ``k ..
k + n - 1`` of one infinite seeded stream.
"""
from __future__ import annotations

import abc
import threading
import weakref
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from nasflops.spec import SpecBatch
from .columns import SAMPLE_BLOCK, NativeError, concat_columns, take_columns
from .sampling import BudgetSample, sample_within

__all__ = ["SearchSpace", "SAMPLE_BLOCK", "NativeError", "make_divisible"]

# recently drawn blocks per space (outside the instance: never pickled with it)
_BLOCK_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_BLOCK_LOCK = threading.Lock()


def make_divisible(v: float, divisor: int, min_val: Optional[int] = None) -> int:
    """Round ``v`` to a multiple of ``divisor``, never below 90 % of ``v``.

    The TensorFlow MobileNet rule, as OFA (``ofa.utils.make_divisible``) and
    torchvision (``_make_divisible``) write it.

    >>> make_divisible(16 * 1.2, 8), make_divisible(112 * 1.2, 8)
    (24, 136)
    """
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


class SearchSpace(abc.ABC):
    """A NAS search space: natives in, :class:`~nasflops.SpecBatch` out."""

    #: registry name (``get_space(name)``)
    name: str = ""
    #: paper the space comes from, and the figures it must reproduce
    reference: str = ""
    #: ``{column: description}`` of the columnar native encoding
    native_columns: Mapping[str, str] = {}
    #: one-line description of the native form shown to users
    native_example: str = ""
    #: the phase its records are the workload of (``nasflops.options.PHASES``):
    #: ``forward`` for a network scored as given; a language-model space is
    #: built for ``prefill``, ``decode`` or ``train``, and is scored in it
    phase: str = "forward"

    # -- to implement ---------------------------------------------------------
    @abc.abstractmethod
    def _sample_block(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` random candidates as columns."""

    @abc.abstractmethod
    def encode_columns(self, cols: Mapping[str, np.ndarray]) -> SpecBatch:
        """Vectorised encoding of columnar natives into layer records."""

    @abc.abstractmethod
    def to_columns(self, natives: Sequence[Any]) -> dict[str, np.ndarray]:
        """Validate Python natives and turn them into columns."""

    @abc.abstractmethod
    def from_columns(self, cols: Mapping[str, np.ndarray]) -> list:
        """Columns back to Python natives."""

    @abc.abstractmethod
    def arrow_columns(self, cols: Mapping[str, np.ndarray]) -> dict:
        """Native columns as pyarrow arrays, under the native field names."""

    @property
    def size(self) -> Optional[int]:
        """Number of distinct candidates (``None`` when unbounded)."""
        return None

    def _enumerate_block(self, start: int, stop: int) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} cannot be enumerated")

    def decode(self, batch: SpecBatch) -> dict[str, np.ndarray]:
        """Native columns back from records this space encoded.

        Spaces that can read their natives off the records implement it and
        verify the result by re-encoding; a batch that is not from the space
        raises :class:`NativeError` naming the first such candidate.
        """
        raise NotImplementedError(f"{self.name} has no decoder: keep the native columns "
                                  "(sample_columns / to_columns) beside the batch")

    def _verify_decoded(self, batch: SpecBatch, cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Re-encode decoded columns; raise NativeError at the first candidate that differs."""
        again = self.encode_columns(cols)
        same_len = np.array_equal(again.lengths, batch.lengths)
        if same_len and np.array_equal(again.records, batch.records):
            return dict(cols)
        for i in range(len(batch)):  # only on failure: find the culprit
            if not np.array_equal(again[i], batch[i]):
                raise NativeError(self.name, i, "records", "not an architecture of this space "
                                  f"({self!r}): re-encoding what was read differs")
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def params(self) -> dict:
        """Parameters the space was built with (stored in result metadata)."""
        return {}

    # -- provided -------------------------------------------------------------
    @property
    def enumerable(self) -> bool:
        """True when :meth:`enumerate` lists the whole space."""
        return type(self)._enumerate_block is not SearchSpace._enumerate_block

    def encode(self, natives: Sequence[Any]) -> SpecBatch:
        """Encode Python natives (e.g. NB201 strings) into a batch."""
        return self.encode_columns(self.to_columns(natives))

    def sample_columns(self, n: int, seed: int = 0, start: int = 0) -> dict[str, np.ndarray]:
        """Candidates ``start .. start + n - 1`` of the seeded stream, as columns."""
        if n < 0 or start < 0:
            raise ValueError("n and start must be >= 0")
        first, last = start // SAMPLE_BLOCK, (start + max(n, 1) - 1) // SAMPLE_BLOCK
        cols = concat_columns([self._sampled_block(int(seed), b) for b in range(first, last + 1)])
        lo = start - first * SAMPLE_BLOCK
        return take_columns(cols, slice(lo, lo + n))

    def _sampled_block(self, seed: int, b: int) -> dict[str, np.ndarray]:
        """Block ``b`` of the stream; the last few are kept, so consecutive small
        chunks of one block draw it once."""
        key = (seed, b)
        with _BLOCK_LOCK:
            cache = _BLOCK_CACHE.setdefault(self, {})
            cols = cache.get(key)
        if cols is None:
            cols = self._sample_block(np.random.default_rng([seed, b]), SAMPLE_BLOCK)
            for v in cols.values():
                v.setflags(write=False)
            with _BLOCK_LOCK:
                if len(cache) >= 2:  # a chunk straddles at most two blocks
                    cache.pop(next(iter(cache)))
                cache[key] = cols
        return cols

    def sample(self, n: int, seed: int = 0, start: int = 0) -> SpecBatch:
        """``n`` random candidates (vectorised; same seed, same candidates)."""
        return self.encode_columns(self.sample_columns(n, seed, start))

    def enumerate_columns(self, start: int = 0, stop: Optional[int] = None) -> dict[str, np.ndarray]:
        """Candidates ``start .. stop - 1`` of the space's fixed enumeration order."""
        size = self.size
        stop = size if stop is None else min(stop, size)
        return self._enumerate_block(start, stop)

    def enumerate(self, start: int = 0, stop: Optional[int] = None) -> SpecBatch:
        """Every candidate (or a range of them), in a fixed order."""
        return self.encode_columns(self.enumerate_columns(start, stop))

    def sample_within(self, budget, n: int, seed: int = 0, **kwargs) -> BudgetSample:
        """The first ``n`` candidates of the seeded stream that fit ``budget``.

        Rejection sampling at core speed; see :func:`.sampling.sample_within`
        (keyword arguments: batch size, dtypes, device, ``max_draws``,
        ``n_jobs``).  Raises ``ValueError`` when the budget looks unreachable.
        """
        return sample_within(self, budget, n, seed, **kwargs)

    def describe(self) -> dict:
        """Name, size, native encoding and reference, for listings."""
        return {"name": self.name, "size": self.size, "native": self.native_example,
                "columns": dict(self.native_columns), "reference": self.reference,
                "params": self.params}

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({p})"
