"""Graph builders of exact PCA over row blocks: one moments pass, then a lazy projection.

The one PCA path of the package: ``dyn.pp.pca`` (``log1p(x / s)`` of counts on the selected
genes), the velocity PCA of ``dyn.tl.cell_velocities``, the gene PCA of
``dyn.tl.reduceDimension`` (expression used as it is, ``size_factors=None``) and the
future-state SVD of ``dyn.tl.cell_wise_confidence`` (``centre=False``) all sum
:func:`dynadask.kernels.pca.cross_moments` over row blocks, solve with
:func:`dynadask.kernels.pca.pca_from_moments` and project block by block.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .._core.compute import compute
from ..kernels import pca as kpca
from .blocks import ArrayLike, map_rows
from .preprocess import sum_kept_rows


def cross_moments(
    x: ArrayLike,
    size_factors: np.ndarray | None = None,
    genes: np.ndarray | None = None,
    *,
    log: bool = True,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy sums and genes x genes cross-product of ``log1p(x / s)[:, genes]`` over cells.

    Memory grows with ``len(genes)**2`` (a few thousand genes: tens of MB), not with cells.
    ``size_factors=None`` leaves ``x`` undivided, ``genes=None`` keeps all columns and
    ``cells`` (boolean mask) restricts the sums to some cells (all when ``None``).

    Returns
    -------
    dask.delayed.Delayed
        Dict with ``n``, ``sum`` and ``gram`` (float64).
    """
    genes = None if genes is None else np.asarray(genes)
    if size_factors is None:
        return sum_kept_rows(
            kpca.cross_moments, x, cells=cells, size_factors=None, genes=genes, log=log
        )
    return sum_kept_rows(
        kpca.cross_moments,
        x,
        np.asarray(size_factors, dtype=np.float64),
        cells=cells,
        genes=genes,
        log=log,
    )


def fit(
    x: ArrayLike,
    n_components: int,
    *,
    size_factors: np.ndarray | None = None,
    genes: np.ndarray | None = None,
    log: bool = True,
    centre: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact PCA of ``log1p(x / s)[:, genes]`` from one pass over row blocks (computed).

    ``centre=False`` gives the axes of the uncentred data (a truncated SVD), ``mean`` zero.

    Returns
    -------
    tuple
        ``mean``, ``components`` (features x k, unit columns, largest loading positive),
        ``explained_variance`` and ``explained_variance_ratio``, as
        :func:`dynadask.kernels.pca.pca_from_moments`.
    """
    m = compute(cross_moments(x, size_factors, genes, log=log), desc="PCA statistics")[0]
    return kpca.pca_from_moments(m["n"][0], m["sum"], m["gram"], n_components, centre)


def project(
    x: ArrayLike,
    size_factors: np.ndarray | None,
    genes: np.ndarray | None,
    mean: np.ndarray,
    components: np.ndarray,
    *,
    log: bool = True,
    dtype: type = np.float32,
) -> da.Array:
    """Lazy PCA coordinates ``(log1p(x / s)[:, genes] - mean) @ components`` (``dtype``)."""
    kwargs = {
        "genes": None if genes is None else np.asarray(genes),
        "mean": np.asarray(mean, dtype=np.float64),
        "components": np.asarray(components, dtype=np.float64),
        "log": log,
        "out_dtype": dtype,
    }
    if size_factors is None:
        return map_rows(
            kpca.project, x, n_cols=components.shape[1], dtype=dtype, size_factors=None, **kwargs
        )
    return map_rows(
        kpca.project,
        x,
        np.asarray(size_factors, dtype=np.float64),
        n_cols=components.shape[1],
        dtype=dtype,
        **kwargs,
    )


def displacement(
    x: ArrayLike, v: ArrayLike, mean: np.ndarray, components: np.ndarray, *, log: bool = True
) -> da.Array:
    """Lazy displacement of ``x + v`` from ``x`` in a PCA basis (float64).

    See :func:`dynadask.kernels.pca.displacement`.
    """
    return map_rows(
        kpca.displacement,
        x,
        v,
        n_cols=components.shape[1],
        dtype=np.float64,
        mean=np.asarray(mean, dtype=np.float64),
        components=np.asarray(components, dtype=np.float64),
        log=log,
    )
