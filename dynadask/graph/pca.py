"""Graph builders of exact PCA over row blocks: one moments pass, then a lazy projection."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..kernels import pca as kpca
from .blocks import ArrayLike, map_rows
from .preprocess import sum_kept_rows


def cross_moments(
    x: ArrayLike,
    size_factors: np.ndarray,
    genes: np.ndarray,
    *,
    log: bool = True,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy sums and genes x genes cross-product of ``log1p(x / s)[:, genes]`` over cells.

    Memory grows with ``len(genes)**2`` (a few thousand genes: tens of MB), not with cells.
    ``cells`` (boolean mask) restricts the sums to some cells (all when ``None``).

    Returns
    -------
    dask.delayed.Delayed
        Dict with ``n``, ``sum`` and ``gram`` (float64).
    """
    return sum_kept_rows(
        kpca.cross_moments,
        x,
        np.asarray(size_factors, dtype=np.float64),
        cells=cells,
        genes=np.asarray(genes),
        log=log,
    )


def project(
    x: ArrayLike,
    size_factors: np.ndarray,
    genes: np.ndarray,
    mean: np.ndarray,
    components: np.ndarray,
    *,
    log: bool = True,
) -> da.Array:
    """Lazy PCA coordinates ``(log1p(x / s)[:, genes] - mean) @ components``, float32."""
    return map_rows(
        kpca.project,
        x,
        np.asarray(size_factors, dtype=np.float64),
        n_cols=components.shape[1],
        dtype=np.float32,
        genes=np.asarray(genes),
        mean=np.asarray(mean, dtype=np.float64),
        components=np.asarray(components, dtype=np.float64),
        log=log,
    )
