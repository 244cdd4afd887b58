"""Dask graphs of the per-gene Gini coefficient: a summary pass, then gathered values.

:func:`summary` is one reduction over the row blocks (per-gene sums and non-zero counts, the
smallest value). :func:`numerators` collects the non-zero values of a batch of genes block by
block, merged in a tree of concatenations, and ranks them in the last task, so only one
number per gene reaches the client; callers keep each batch under a budget of values.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..kernels import gini as kgini
from .blocks import ArrayLike, align_rows


def _tree(parts: list, fn, split_every: int = 8) -> Any:
    while len(parts) > 1:
        parts = [
            dask.delayed(fn, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _blocks(x: ArrayLike, cells: np.ndarray | None) -> list[Any]:
    """Delayed row blocks of ``x``, cut to the rows ``cells`` keeps (all when ``None``)."""
    if cells is None:
        (xd,) = align_rows(x)
        return list(xd.to_delayed().ravel())
    xd, keep = align_rows(x, np.asarray(cells, dtype=bool))
    pairs = zip(xd.to_delayed().ravel(), keep.to_delayed().ravel(), strict=True)
    return [dask.delayed(_kept_rows, pure=True)(b, k) for b, k in pairs]


def _kept_rows(block: Any, keep: np.ndarray) -> Any:
    keep = np.asarray(keep, dtype=bool).ravel()
    return block if keep.all() else block[keep]


def summary(x: ArrayLike, cells: np.ndarray | None = None) -> Any:
    """Lazy ``sum``, ``nnz``, ``n`` and ``min`` of ``x`` (:func:`kernels.gini.summary`).

    ``cells`` is a boolean mask of the rows summed over (all when ``None``).
    """
    parts = [dask.delayed(kgini.summary, pure=True)(b) for b in _blocks(x, cells)]
    return _tree(parts, kgini.merge)


def numerators(
    x: ArrayLike,
    cols: np.ndarray,
    zeros: np.ndarray,
    n: float,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy Gini numerators of the columns ``cols`` (``zeros``: their numbers of zeros)."""
    cols = np.asarray(cols, dtype=np.int64)
    parts = [dask.delayed(kgini.nonzero_values, pure=True)(b, cols) for b in _blocks(x, cells)]
    gathered = _tree(parts, kgini.concat)
    return dask.delayed(kgini.numerators, pure=True)(gathered, np.asarray(zeros), float(n))
