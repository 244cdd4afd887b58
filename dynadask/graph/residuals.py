"""Graph builders of residual matrices: analytic Pearson residuals, regression residuals.

Per-gene sums are map-reduced over row blocks; the residual matrices themselves are lazy,
dense float32 row blocks over the chosen genes (never assembled in one process).
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from scipy import sparse

from ..kernels import residuals as kres
from .blocks import ArrayLike, align_rows, map_rows, sum_rows
from .preprocess import sum_kept_rows

_CSR_META = sparse.csr_matrix((0, 0), dtype=np.float32)


def batch_sums(x: ArrayLike, codes: np.ndarray, n_batches: int) -> Any:
    """Lazy per-batch column sums, cells per batch, per-gene sums and squares of counts."""
    return sum_rows(kres.batch_sums, x, np.asarray(codes), n_batches=int(n_batches))


def pearson_moments(
    x: ArrayLike,
    cell_sums: np.ndarray,
    codes: np.ndarray,
    *,
    gene_sums: np.ndarray,
    totals: np.ndarray,
    clips: np.ndarray,
    theta: float = 100.0,
) -> Any:
    """Lazy per-batch, per-gene ``sum`` and ``sumsq`` of clipped Pearson residuals.

    ``cell_sums`` and ``codes`` (batch of each cell) are per cell; ``gene_sums`` (batches x
    genes), ``totals`` and ``clips`` (per batch) define each batch's expected counts.
    """
    return sum_rows(
        kres.pearson_moments,
        x,
        np.asarray(cell_sums, dtype=np.float64),
        np.asarray(codes),
        gene_sums=np.asarray(gene_sums, dtype=np.float64),
        totals=np.asarray(totals, dtype=np.float64),
        clips=np.asarray(clips, dtype=np.float64),
        theta=float(theta),
    )


def _pearson_block(block, cell_sums, **kwargs) -> np.ndarray:
    return kres.pearson_residuals(block, np.asarray(cell_sums).ravel(), **kwargs).astype(np.float32)


def pearson_residuals(
    x: ArrayLike,
    cell_sums: np.ndarray,
    gene_sums: np.ndarray,
    total: float,
    *,
    genes: np.ndarray,
    theta: float = 100.0,
    clip: float = np.inf,
) -> da.Array:
    """Lazy clipped Pearson residuals on ``genes`` (cells x genes, dense float32 row blocks)."""
    genes = np.asarray(genes)
    return map_rows(
        _pearson_block,
        x,
        np.asarray(cell_sums, dtype=np.float64),
        n_cols=genes.size,
        dtype=np.float32,
        gene_sums=np.asarray(gene_sums, dtype=np.float64),
        total=float(total),
        theta=float(theta),
        clip=float(clip),
        genes=genes,
    )


def regression_sums(
    x: ArrayLike,
    covariates: np.ndarray,
    *,
    genes: np.ndarray | None = None,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy per-gene ``sum`` and ``cross`` (centred covariates x genes) over row blocks."""
    return sum_kept_rows(
        kres.regression_sums,
        x,
        np.asarray(covariates, dtype=np.float64),
        cells=cells,
        genes=None if genes is None else np.asarray(genes),
    )


def _regression_block(block, covariates, **kwargs) -> np.ndarray:
    return kres.regression_residuals(block, covariates, **kwargs).astype(np.float32)


def regression_residuals(
    x: ArrayLike,
    covariates: np.ndarray,
    intercept: np.ndarray,
    coef: np.ndarray,
    *,
    genes: np.ndarray | None = None,
) -> da.Array:
    """Lazy ``x[:, genes] - intercept - covariates @ coef`` (dense float32 row blocks)."""
    return map_rows(
        _regression_block,
        x,
        np.asarray(covariates, dtype=np.float64),
        n_cols=x.shape[1] if genes is None else len(genes),
        genes=None if genes is None else np.asarray(genes),
        dtype=np.float32,
        intercept=np.asarray(intercept, dtype=np.float64),
        coef=np.asarray(coef, dtype=np.float64),
    )


def _with_columns(block, values, genes=None) -> Any:
    return kres.with_columns(block, values, genes)


def with_columns(x: ArrayLike, values: da.Array, genes: np.ndarray) -> da.Array:
    """Lazy CSR blocks of ``x`` whose columns ``genes`` are replaced by ``values``."""
    xd, vd = align_rows(x, values)
    return da.blockwise(
        _with_columns,
        "ij",
        xd,
        "ij",
        vd.rechunk({1: -1}),
        "ik",
        genes=np.asarray(genes),
        concatenate=True,
        dtype=np.float32,
        meta=_CSR_META,
    )
