"""Dask graphs of the Hodge decomposition: edge flows per row block, upsampling per row block.

The kNN lists of the basis are cut in row blocks (:func:`dynadask.graph.neighbourhood.
plan_blocks`); one task per block gathers the coordinates and field values of the cells its
rows and their neighbours touch and returns the rows' edge flows
(:func:`dynadask.kernels.hodge.edge_flows`). The graph solve itself happens on the client
(:func:`dynadask.kernels.hodge.graph_potential`): it needs the whole sparse graph.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
from scipy.spatial import cKDTree

from .._core.compute import compute, share
from .._core.settings import get_chunk_policy
from ..kernels import hodge as kh
from .blocks import as_rows
from .neighbourhood import gather, plan_blocks


def block_rows(n_cells: int, k: int, d: int) -> int:
    """Rows per block so that a block's ``rows x k x d`` float64 differences stay near 64 MiB."""
    return get_chunk_policy().rows_per_block(2 * k * d, n_cells)


def knn_flows(X: Any, V: Any, nbrs: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Edge flows from every cell to each of its kNN neighbours, one task per row block.

    Parameters
    ----------
    X, V
        Coordinates and field values of every cell (numpy or Dask, ``n x d``).
    nbrs
        ``n x k`` neighbour indices (the cell itself excluded).
    rows
        Cells per block (default from the chunk policy).

    Returns
    -------
    numpy.ndarray
        ``n x k`` flows.
    """
    n, k = nbrs.shape
    d = X.shape[1]
    rows = rows or block_rows(n, k, d)
    xr, vr = as_rows(X), as_rows(V)
    with_self = np.column_stack([np.arange(n), nbrs])
    (nbrs_d,) = share([np.ascontiguousarray(nbrs, dtype=np.int64)])
    parts = []
    for block in plan_blocks(with_self, rows, depth=1):
        task = dask.delayed(_flows_block, pure=True)
        parts.append(
            task(gather(xr, block), gather(vr, block), nbrs_d, block.start, block.stop, block.cells)
        )
    done = compute(*parts, desc="ddhodge edge flows")
    return np.vstack(done) if done else np.zeros((0, k))


def _flows_block(
    x: np.ndarray, v: np.ndarray, nbrs: np.ndarray, start: int, stop: int, cells: np.ndarray
) -> np.ndarray:
    rows = np.searchsorted(cells, np.arange(start, stop))
    local = np.searchsorted(cells, np.asarray(nbrs[start:stop]))
    return kh.edge_flows(np.asarray(x), np.asarray(v), rows, local)


def upsample(X: Any, sampled: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Each cell's mean of ``values`` over its ``k`` nearest sampled cells, per row block.

    Parameters
    ----------
    X
        Coordinates of every cell (numpy or Dask, ``n x d``).
    sampled
        Coordinates of the sampled cells (``m x d``), whose ``values`` (``m x c``) are known.
    k
        Neighbours averaged.

    Returns
    -------
    numpy.ndarray
        ``n x c``.
    """
    k = min(k, sampled.shape[0])
    (tree_d,) = share([cKDTree(np.asarray(sampled, dtype=np.float64))])
    (vals_d,) = share([np.asarray(values, dtype=np.float64)])
    xr = as_rows(X, get_chunk_policy().rows_per_block(2 * k * X.shape[1], X.shape[0]))
    parts = [dask.delayed(_upsample_block)(b, tree_d, vals_d, k) for b in xr.to_delayed().ravel()]
    done = compute(*parts, desc="ddhodge upsampling")
    return np.vstack(done)


def _upsample_block(x: np.ndarray, tree: cKDTree, values: np.ndarray, k: int) -> np.ndarray:
    _, idx = tree.query(np.asarray(x, dtype=np.float64), k=k)
    return kh.upsample(values, np.asarray(idx).reshape(len(x), k))
