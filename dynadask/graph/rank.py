"""Dask graphs of the gene rankings: per-group statistics over row blocks, gene-wise Jacobians.

:func:`group_stats` is a map-reduce: each row block gives its per-group statistics
(:func:`dynadask.kernels.rank.group_stats`, ``n_groups x n_genes`` arrays) and a tree of
:func:`dynadask.kernels.rank.merge_stats` combines them, so a cells x genes layer is read
once, block by block, and only group x gene arrays reach the client.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np

from ..kernels import rank as kr
from .blocks import align_rows, as_rows, map_rows
from .vectorfield import block_rows


def group_stats(
    x: Any, codes: Any, n_groups: int, *, dtype: Any = None, split_every: int = 8
) -> dask.delayed:
    """Lazy per-group statistics of the columns of ``x`` (see :data:`kernels.rank.STATS`).

    Parameters
    ----------
    x
        cells x genes (numpy, scipy sparse or Dask, dense or CSR blocks).
    codes
        Group code of every cell (``-1`` leaves a cell out), length ``n_cells``.
    n_groups
        Number of groups.
    dtype
        Cast the values to this dtype before pooling.
    split_every
        Fan-in of the merge tree.

    Returns
    -------
    dask.delayed.Delayed
        The merged statistics dict.
    """
    xs = align_rows(x, np.asarray(codes, dtype=np.int64))
    blocks = [b.to_delayed().ravel() for b in xs]
    parts = [
        dask.delayed(kr.group_stats, pure=True)(b, c, n_groups=n_groups, dtype=dtype)
        for b, c in zip(*blocks, strict=True)
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(kr.merge_stats, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def jacobian_diagonal(
    X: Any, ctrl: np.ndarray, C: np.ndarray, beta: float, Q: np.ndarray
) -> da.Array:
    """Lazy ``d f_g / d x_g`` (cells x genes, float64) of a field at every row of ``X``.

    ``Q`` (genes x d) takes each gene into the field's space (PCA loadings, or unit vectors
    for a gene-space field); one task per row block (see
    :func:`dynadask.kernels.rank.jacobian_diagonal`).
    """
    ctrl = np.asarray(ctrl, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    x = as_rows(X, block_rows(ctrl.shape[0], max(1, Q.shape[0] // max(ctrl.shape[0], 1))))
    return map_rows(
        kr.jacobian_diagonal,
        x,
        n_cols=Q.shape[0],
        dtype=np.float64,
        ctrl=ctrl,
        C=np.asarray(C, dtype=np.float64),
        beta=float(beta),
        Q=Q,
    )
