"""Per-block kernels of the summaries figures read: column sums, row sums, feature fractions.

Each function works on one row block (numpy array or scipy sparse matrix, cells x genes) and
returns dense float64 numpy arrays. No Dask, no AnnData.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse


def _sum(block, axis: int) -> np.ndarray:
    if sparse.issparse(block):
        return np.asarray(block.sum(axis=axis, dtype=np.float64)).ravel()
    return np.asarray(block, dtype=np.float64).sum(axis=axis)


def column_sums(block) -> np.ndarray:
    """Per-gene sums of one row block, float64 (NaN propagates)."""
    return _sum(block, 0)


def row_sums(*blocks) -> np.ndarray:
    """Per-cell sums over genes of each block, ``(n_rows, len(blocks))`` float64."""
    return np.column_stack([_sum(b, 1) for b in blocks])


def feature_fractions(block, members: Sequence[np.ndarray]) -> np.ndarray:
    """Each feature's share of the cell's total: ``sum(block[:, m]) / sum(block)`` per cell.

    Parameters
    ----------
    block
        One row block (cells x genes).
    members
        One array of gene positions per feature (a single gene or a group of genes).

    Returns
    -------
    numpy.ndarray
        ``(n_rows, len(members))`` float64; NaN in cells whose total is 0.
    """
    total = _sum(block, 1)
    csc = block.tocsc() if sparse.issparse(block) else np.asarray(block, dtype=np.float64)
    out = np.column_stack([_sum(csc[:, np.asarray(m, dtype=np.int64)], 1) for m in members])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = out / total[:, None]
    out[total == 0] = np.nan
    return out.reshape(block.shape[0], len(members))
