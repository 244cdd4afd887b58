"""Kernels of the per-gene Gini coefficient: block summaries, gathered values, numerators.

The Gini coefficient of a gene's values ``x_1 <= ... <= x_n`` is
``sum_i (2 i - n - 1) x_i / (n sum_i x_i)``. dynamo shifts every value by
``1e-7 - min`` (the smallest value of the whole matrix) first; the weights ``2 i - n - 1``
add up to 0, so the shift only enlarges the denominator: ``n (sum x + n c)``. The numerator
needs each gene's values in order, which zeros simplify: with ``z`` zeros, a gene's ``k``-th
smallest non-zero value sits at rank ``k`` when negative and ``k + z`` when positive. So a
gene needs only its non-zero values, gathered across row blocks (:func:`nonzero_values`,
:func:`concat`) and ranked once (:func:`numerators`).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

SHIFT = 1e-7
"""dynamo's constant added after the shift to the smallest value (no value may be 0)."""


def _csr(block) -> sparse.csr_matrix:
    if sparse.issparse(block):
        return sparse.csr_matrix(block)
    return sparse.csr_matrix(np.asarray(block))


def summary(block) -> dict[str, np.ndarray]:
    """Per-gene ``sum`` and ``nnz`` (non-zero values), ``n`` (cells) and ``min`` of one block.

    ``min`` is the smallest value of the block (a 1-element array; 0 when a value is zero).
    """
    x = _csr(block).astype(np.float64)
    x.eliminate_zeros()
    n_rows, n_cols = x.shape
    full = x.nnz == n_rows * n_cols
    low = x.data.min() if x.nnz else 0.0
    return {
        "sum": np.asarray(x.sum(axis=0)).ravel(),
        "nnz": np.bincount(x.indices, minlength=n_cols).astype(np.float64),
        "n": np.array([float(n_rows)]),
        "min": np.array([low if full else min(low, 0.0)]),
    }


def merge(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge :func:`summary` results: sums and counts add, the minimum is the smallest."""
    out = {k: np.sum([p[k] for p in parts], axis=0) for k in ("sum", "nnz", "n")}
    out["min"] = np.min([p["min"] for p in parts], axis=0)
    return out


def nonzero_values(block, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(position in cols, value)`` of every non-zero value of the columns ``cols``."""
    x = _csr(block)
    cols = np.asarray(cols, dtype=np.int64)
    if not np.array_equal(cols, np.arange(x.shape[1])):
        x = x[:, cols]
    x = x.tocoo()
    keep = x.data != 0
    return x.col[keep].astype(np.int32), x.data[keep].astype(np.float64)


def concat(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate :func:`nonzero_values` results."""
    return tuple(np.concatenate(items) for items in zip(*parts, strict=True))


def numerators(gathered: tuple[np.ndarray, np.ndarray], zeros: np.ndarray, n: float) -> np.ndarray:
    """``sum_i (2 r_i - n - 1) x_i`` per gene from its non-zero values and number of zeros.

    Parameters
    ----------
    gathered
        ``(gene position, value)`` of the non-zero values (any order).
    zeros
        Number of zero values of each gene (``n - nnz``).
    n
        Number of cells.
    """
    gene, value = gathered
    zeros = np.asarray(zeros, dtype=np.float64)
    by_value = np.argsort(value)
    order = by_value[np.argsort(gene[by_value], kind="stable")]  # radix sort of the genes
    gene, value = gene[order].astype(np.int64), value[order]
    starts = np.searchsorted(gene, np.arange(zeros.size))
    k = np.arange(gene.size) - starts[gene] + 1.0
    rank = k + np.where(value > 0, zeros[gene], 0.0)
    return np.bincount(gene, weights=(2 * rank - n - 1) * value, minlength=zeros.size)


def gini(numerator: np.ndarray, total: np.ndarray, n: float, low: float) -> np.ndarray:
    """Dynamo's Gini coefficient from the numerators, per-gene totals and the matrix minimum."""
    shift = SHIFT - low
    return np.asarray(numerator) / (n * (np.asarray(total, dtype=np.float64) + n * shift))


def batches(nnz: np.ndarray, budget: int) -> list[np.ndarray]:
    """Consecutive gene positions whose non-zero values stay within ``budget`` per batch."""
    out, start, total = [], 0, 0
    for i, count in enumerate(np.asarray(nnz, dtype=np.int64)):
        if total + count > budget and i > start:
            out.append(np.arange(start, i))
            start, total = i, 0
        total += count
    if start < len(nnz):
        out.append(np.arange(start, len(nnz)))
    return out
