"""Graph builders of sctransform: gene sums, the sample fit in gene groups, lazy residuals.

Per-gene sums are map-reduced over row blocks (over the kept cells); the seeded cell sample
is gathered into one task; the step-1 fits run as one task per group of genes on that
sample; the residual matrix is lazy CSR row blocks (never densified, never assembled in one
process), and the feature-gene score is a second map-reduce over the same residuals.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import share
from ..kernels import sctransform as ksct
from .blocks import ArrayLike, align_rows, gather_rows, map_rows
from .preprocess import sum_kept_rows

FIT_GROUP = 128  # genes per step-1 fitting task
_CSR_META = sparse.csr_matrix((0, 0), dtype=np.float32)


def gene_sums(
    x: ArrayLike, genes: np.ndarray, *, cells: np.ndarray | None = None, eps: float = 1.0
) -> Any:
    """Lazy per-gene ``sum``, ``logsum`` (see :func:`kernels.sctransform.gene_sums`) and ``n``."""
    return sum_kept_rows(ksct.gene_sums, x, cells=cells, genes=np.asarray(genes), eps=float(eps))


def sample(x: ArrayLike, rows: np.ndarray, genes: np.ndarray) -> Any:
    """One lazy task holding the sorted ``rows`` of ``x`` on ``genes`` (CSR, float64)."""
    return gather_rows(align_rows(x)[0], np.asarray(rows), np.asarray(genes), np.float64)


def cell_attributes(x: ArrayLike, genes: np.ndarray) -> da.Array:
    """Lazy ``(cells, 6)``: each cell's :data:`kernels.sctransform.CELL_ATTRIBUTES`."""
    n = len(ksct.CELL_ATTRIBUTES)
    return map_rows(ksct.cell_attributes, x, n_cols=n, dtype=np.float64, genes=np.asarray(genes))


def _fit_group(counts: sparse.spmatrix, log_umi: np.ndarray) -> np.ndarray:
    return ksct.fit_genes(counts.toarray(), log_umi)


def fit(counts: sparse.csc_matrix, log_umi: np.ndarray, *, group: int = FIT_GROUP) -> Any:
    """Lazy ``(3, genes)`` step-1 parameters, one task per ``group`` columns of ``counts``.

    ``counts`` (sample cells x step-1 genes, in memory) goes to the tasks column group by
    column group through :func:`~dynadask._core.compute.share`.
    """
    counts = sparse.csc_matrix(counts)
    lu = np.asarray(log_umi, dtype=np.float64)
    parts = []
    for start in range(0, counts.shape[1], group):
        (piece,) = share([counts[:, start : start + group]])
        parts.append(dask.delayed(_fit_group, pure=True)(piece, lu))
    return dask.delayed(np.hstack, pure=True)(parts)


def _residual_block(block, genes=None, params=None, clip=None) -> sparse.csr_matrix:
    return ksct.residuals(block, genes=genes, params=params, clip=clip)


def residuals(x: ArrayLike, genes: np.ndarray, params: np.ndarray, clip: float) -> da.Array:
    """Lazy X with the columns ``genes`` replaced by their residuals: CSR row blocks, float32."""
    xd = align_rows(x)[0]
    return da.map_blocks(
        _residual_block,
        xd,
        genes=np.asarray(genes),
        params=np.asarray(params, dtype=np.float64),
        clip=float(clip),
        dtype=np.float32,
        meta=_CSR_META,
    )


def residual_moments(
    x: ArrayLike,
    genes: np.ndarray,
    params: np.ndarray,
    clip: float,
    *,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy per-gene ``sum`` and ``sumsq`` of the residuals over the kept cells."""
    return sum_kept_rows(
        ksct.residual_moments,
        x,
        cells=cells,
        genes=np.asarray(genes),
        params=np.asarray(params, dtype=np.float64),
        clip=float(clip),
    )
