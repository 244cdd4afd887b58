"""Kernels of the gene-space vector field on one row block (numpy and scipy only)."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def densify(block, *, expm1: bool = False) -> np.ndarray:
    """A block of expression values as dense float64 (``expm1`` undoes a ``log1p``)."""
    x = block.toarray() if sparse.issparse(block) else np.asarray(block)
    x = np.asarray(x, dtype=np.float64)
    return np.expm1(x) if expm1 else x


def nonfinite_columns(block) -> np.ndarray:
    """Number of NaN or infinite values in each column of a block (float64, for sums)."""
    if sparse.issparse(block):
        b = sparse.csr_matrix(block)
        bad = ~np.isfinite(b.data)
        return np.bincount(b.indices[bad], minlength=b.shape[1]).astype(np.float64)
    return (~np.isfinite(np.asarray(block))).sum(axis=0).astype(np.float64)


def place_columns(v: np.ndarray, *, cols: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``v`` placed on columns ``cols`` of a ``width``-wide float32 matrix, 0 elsewhere."""
    out = np.zeros((v.shape[0], width), dtype=np.float32)
    out[:, cols] = v
    return out
