"""Dask graphs of the marker-gene tests: per-group counts over row blocks, gathered values.

:func:`group_counts` is one map-reduce over the row blocks (group x gene arrays reach the
client). :func:`gathered_values` collects the non-zero values of chosen genes with their
group, block by block, merged in a tree of concatenations; its callers keep each call's
genes under a budget of values, so the client never holds more than that.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..kernels import markers as km
from .blocks import align_rows, sum_rows


def group_counts(x: Any, codes: np.ndarray, n_groups: int) -> dask.delayed:
    """Lazy ``cells``, ``nnz`` and ``sum`` per group (:func:`kernels.markers.group_counts`)."""
    return sum_rows(km.group_counts, x, np.asarray(codes, dtype=np.int64), n_groups=n_groups)


def gathered_values(
    x: Any, codes: np.ndarray, cols: np.ndarray, split_every: int = 8
) -> dask.delayed:
    """Lazy ``(gene position, group, value)`` of the non-zero values of columns ``cols``."""
    xs = align_rows(x, np.asarray(codes, dtype=np.int64))
    blocks = [b.to_delayed().ravel() for b in xs]
    cols = np.asarray(cols, dtype=np.int64)
    parts = [
        dask.delayed(km.nonzero_values, pure=True)(b, c, cols=cols)
        for b, c in zip(*blocks, strict=True)
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(km.concat, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]
