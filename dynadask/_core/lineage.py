"""What a lazy matrix is made of, when a writer can use it to skip work.

Two facts are remembered, by the Dask array's name (a deterministic token of its graph):

- a CSR matrix read straight from a store (``io.open``): its store location and key;
- a CSR matrix that is a per-row transform of such a stored matrix (``x / s`` or
  ``log1p(x / s)`` with one factor per row): it has the stored matrix's rows, column
  indices and row pointers, and only its values differ.

The writers then write such a transform value chunk by value chunk, reusing the stored
indices and row pointers (:func:`dynadask.io.writers.write_arrays`), instead of building
row blocks and assembling them. Nothing here changes what is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_STORED: dict[str, tuple[Any, str]] = {}
_ROWWISE: dict[str, RowTransform] = {}


@dataclass(frozen=True)
class RowTransform:
    """A CSR matrix whose stored values are ``f(values / factor[row])`` of a stored CSR.

    Attributes
    ----------
    location
        The store (a ``Path`` or :class:`~dynadask.io.location.Remote`) of the source.
    key
        The source's element key in the store (``'X'``, ``'layers/spliced'``).
    factors
        One float64 divisor per row.
    log
        Apply ``log1p`` after dividing.
    via_float32
        Round the source values to float32 before dividing (as :func:`scale_rows` does).
    dtype
        The result's value dtype.
    """

    location: Any
    key: str
    factors: np.ndarray
    log: bool
    via_float32: bool
    dtype: np.dtype

    def values(self, data: np.ndarray, factors: np.ndarray) -> np.ndarray:
        """The transformed values of ``data`` given each value's row factor."""
        data = np.asarray(data)
        if self.via_float32:
            data = data.astype(np.float32, copy=False)
        out = data.astype(np.float64) / factors
        if self.log:
            out = np.log1p(out)
        return out.astype(self.dtype, copy=False)


def remember_stored(x: Any, location: Any, key: str) -> None:
    """Record that lazy CSR ``x`` reads the store's element ``key`` as it is."""
    name = getattr(x, "name", None)
    if name is not None:
        _STORED[name] = (location, key)


def stored_source(x: Any) -> tuple[Any, str] | None:
    """The (location, key) that lazy ``x`` reads unchanged, or ``None``."""
    name = getattr(x, "name", None)
    return _STORED.get(name) if name is not None else None


def remember_row_transform(
    x: Any, source: Any, factors: np.ndarray, *, log: bool, via_float32: bool, dtype: Any
) -> None:
    """Record that lazy ``x`` is a per-row transform of ``source`` (if that is stored)."""
    found = stored_source(source)
    name = getattr(x, "name", None)
    factors = np.asarray(factors)
    if found is None or name is None or factors.dtype.kind not in "fiu":
        return
    _ROWWISE[name] = RowTransform(
        found[0],
        found[1],
        np.asarray(factors, dtype=np.float64).ravel(),
        bool(log),
        bool(via_float32),
        np.dtype(dtype),
    )


def row_transform(x: Any) -> RowTransform | None:
    """The :class:`RowTransform` that lazy ``x`` is, or ``None``."""
    name = getattr(x, "name", None)
    return _ROWWISE.get(name) if name is not None else None
