"""Moment kernels: the smoothing graph and graph-weighted averages of one row block.

A first moment of cell ``i`` is ``sum_j W_ij x_j`` over its neighbourhood; a second moment
is the same average of ``x_j * y_j``. A row block of ``W`` only touches the rows of ``x``
its neighbourhoods use: :func:`local_rows` lists them and re-indexes the block so that the
product runs on those gathered rows alone. Sums are accumulated in float64.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse


def smoothing_graph(sym: sparse.spmatrix) -> sparse.csr_matrix:
    """Row-normalised binary graph with self loops: dynamo's ``moments_con``.

    Every stored edge of ``sym`` and every cell itself weigh 1; each row is divided by its
    count, so each cell's moment is the plain mean over itself and its graph neighbours.

    Returns
    -------
    scipy.sparse.csr_matrix
        float32, rows sum to 1.
    """
    g = sparse.csr_matrix(sym, dtype=np.float32, copy=True)
    g.data[:] = 1.0
    g = (g + sparse.eye(g.shape[0], format="csr", dtype=np.float32)).tocsr()
    deg = np.diff(g.indptr)
    g.data = np.repeat((1.0 / np.maximum(deg, 1)).astype(np.float32), deg)
    g.sort_indices()
    return g


def row_normalise(w: sparse.spmatrix) -> sparse.csr_matrix:
    """Divide each row by its sum (rows summing to 0 stay 0); float32 CSR."""
    w = sparse.csr_matrix(w, dtype=np.float64, copy=True)
    sums = np.asarray(w.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    w.data *= np.repeat(scale, np.diff(w.indptr))
    out = w.astype(np.float32)
    out.sort_indices()
    return out


def local_rows(block: sparse.spmatrix) -> tuple[np.ndarray, sparse.csr_matrix]:
    """The cells a row block of the graph uses, and the block re-indexed onto them.

    Returns
    -------
    needed, local
        Sorted global indices of the used cells; the block with its columns renumbered to
        positions in ``needed`` (shape ``n_rows x len(needed)``).
    """
    block = sparse.csr_matrix(block)
    needed = np.unique(block.indices).astype(np.int64)
    cols = np.searchsorted(needed, block.indices)
    local = sparse.csr_matrix((block.data, cols, block.indptr), shape=(block.shape[0], needed.size))
    return needed, local


def take_rows(block: Any, rows: np.ndarray, cols: np.ndarray | None = None) -> Any:
    """Rows ``rows`` (positions in the block) and columns ``cols`` of one block, float64.

    Sparse blocks stay CSR, dense ones stay numpy.
    """
    if sparse.issparse(block):
        out = sparse.csr_matrix(block)[rows]
        out = out if cols is None else out[:, cols]
        return sparse.csr_matrix(out, dtype=np.float64)
    out = np.asarray(block)[rows]
    out = out if cols is None else out[:, cols]
    return np.asarray(out, dtype=np.float64)


def stack_rows(pieces: list[Any]) -> Any:
    """Stack row pieces (all sparse or all dense) in order."""
    if any(sparse.issparse(p) for p in pieces):
        return sparse.vstack([sparse.csr_matrix(p) for p in pieces], format="csr")
    return np.vstack(pieces)


def smooth(
    local: sparse.csr_matrix,
    x: Any,
    y: Any = None,
    cols: np.ndarray | None = None,
    n_vars: int | None = None,
) -> np.ndarray:
    """Graph-weighted average of ``x`` (or of ``x * y``) over each row's neighbourhood.

    Parameters
    ----------
    local
        ``n_rows x m`` graph block re-indexed onto the gathered rows (see :func:`local_rows`).
    x, y
        ``m x g`` gathered rows (CSR or dense) of one or two layers, same genes.
    cols
        Positions of the ``g`` genes among ``n_vars`` output columns (all when ``None``).
    n_vars
        Width of the output; other columns are 0.

    Returns
    -------
    numpy.ndarray
        ``n_rows x n_vars`` float32.
    """
    w = sparse.csr_matrix(local, dtype=np.float64)
    if y is not None:
        x = x.multiply(y) if sparse.issparse(x) else x * (y.toarray() if sparse.issparse(y) else y)
    prod = w @ x
    prod = prod.toarray() if sparse.issparse(prod) else np.asarray(prod)
    if cols is None:
        return prod.astype(np.float32)
    out = np.zeros((w.shape[0], n_vars), dtype=np.float32)
    out[:, cols] = prod
    return out
