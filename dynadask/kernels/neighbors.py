"""kNN graph kernels: neighbour lists, distance graphs and fuzzy (UMAP-style) memberships.

A neighbour list is a pair ``(idx, dist)`` of ``(n_cells, k)`` arrays: global cell indices
(``-1`` pads rows with fewer neighbours) and their distances, the cell itself first at
distance 0. Everything here works on plain numpy / scipy objects.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import sparse


def self_first(idx: np.ndarray, dist: np.ndarray, row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Put each cell itself in column 0 (distance 0), keeping the others in order.

    Approximate searches may return a duplicate cell before the cell itself, or miss it; the
    cell is then moved (or inserted, dropping the farthest neighbour) to the front.

    Parameters
    ----------
    idx, dist
        ``(n, k)`` neighbour indices and distances of the cells ``row0 .. row0 + n - 1``.
    row0
        Global index of the first row.
    """
    idx = np.asarray(idx, dtype=np.int64)
    dist = np.asarray(dist, dtype=np.float32)
    return _self_first(idx, dist, row0)


@numba.njit(cache=True)
def _self_first(idx, dist, row0):
    n, k = idx.shape
    out_i = np.empty_like(idx)
    out_d = np.empty_like(dist)
    for r in range(n):
        cell = row0 + r
        out_i[r, 0] = cell
        out_d[r, 0] = 0.0
        m = 1
        for j in range(k):
            if idx[r, j] != cell and m < k:
                out_i[r, m] = idx[r, j]
                out_d[r, m] = dist[r, j]
                m += 1
    return out_i, out_d


def knn_from_distances(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, row0: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Read a neighbour list back from rows of a sparse distance graph.

    Parameters
    ----------
    indptr, indices, data
        CSR arrays of a block of rows of ``obsp['distances']`` (self not stored).
    row0
        Global index of the block's first row.
    k
        Neighbours per row counting the cell itself; the ``k - 1`` nearest stored ones follow
        it, missing ones are ``-1`` at distance ``inf``.

    Returns
    -------
    idx, dist
        ``(n_rows, k)`` int64 indices and float32 distances.
    """
    data = np.asarray(data)  # ordered in its own precision; distances returned as float32
    return _knn_from_distances(
        np.asarray(indptr, np.int64),
        np.asarray(indices, np.int64),
        data if np.issubdtype(data.dtype, np.floating) else data.astype(np.float64),
        row0,
        k,
    )


@numba.njit(cache=True)
def _knn_from_distances(indptr, indices, data, row0, k):
    n = indptr.shape[0] - 1
    idx = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf, dtype=np.float32)
    for i in range(n):
        cell = row0 + i
        idx[i, 0] = cell
        dist[i, 0] = 0.0
        a, b = indptr[i], indptr[i + 1]
        order = np.argsort(data[a:b], kind="mergesort")
        m = 1
        for t in order:
            if m >= k:
                break
            if indices[a + t] != cell:
                idx[i, m] = indices[a + t]
                dist[i, m] = np.float32(data[a + t])
                m += 1
    return idx, dist


def distance_graphs(
    idx: np.ndarray, dist: np.ndarray, n: int
) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """The kNN distance graph and its binary connectivities, as dynamo stores them.

    Entries with distance 0 (the cell itself, exact duplicates) and padding are left out;
    connectivities are 1 on every stored distance.

    Parameters
    ----------
    idx, dist
        Neighbour list of ``n_rows`` cells.
    n
        Number of columns (all cells).

    Returns
    -------
    distances, connectivities
        ``(n_rows, n)`` float32 CSR matrices.
    """
    keep = (idx >= 0) & (dist > 0) & np.isfinite(dist)
    d = _rows_csr(idx, dist.astype(np.float32), keep, n)
    c = d.copy()
    c.data[:] = 1.0
    return d, c


def fuzzy_weights(idx: np.ndarray, dist: np.ndarray, n_neighbors: int) -> np.ndarray:
    """UMAP's directed membership strengths of each cell's neighbours.

    For cell ``i`` with nearest non-zero distance ``rho_i`` and bandwidth ``sigma_i`` (chosen so
    that the memberships sum to ``log2(n_neighbors)``), neighbour ``j`` has membership
    ``exp(-(d_ij - rho_i) / sigma_i)`` (1 when ``d_ij <= rho_i``). The cell itself and padding
    get 0.

    Returns
    -------
    numpy.ndarray
        ``(n, k)`` float32 memberships.
    """
    from umap.umap_ import smooth_knn_dist  # heavy (umap compiles with numba at import)

    d = np.where(idx >= 0, dist, np.inf).astype(np.float32)
    sigmas, rhos = smooth_knn_dist(d, float(n_neighbors), local_connectivity=1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        excess = d.astype(np.float64) - rhos[:, None]
        w = np.exp(-excess / sigmas[:, None])
    w = np.where((excess <= 0) | (sigmas[:, None] == 0), 1.0, w).astype(np.float32)
    own = idx == np.arange(idx.shape[0])[:, None]
    w[own | (idx < 0) | ~np.isfinite(d)] = 0.0
    return w


def fuzzy_union(idx: np.ndarray, weights: np.ndarray, n_epochs: int) -> sparse.csr_matrix:
    """Symmetric fuzzy union ``A + A^T - A * A^T`` of directed memberships, pruned like UMAP.

    Edges weaker than ``max / n_epochs`` are dropped: UMAP's layout step prunes its graph in
    place that way, and dynamo's smoothing graph is the pruned one.

    Parameters
    ----------
    idx
        ``(n, k)`` neighbour indices local to the cells described (``-1`` padding).
    weights
        ``(n, k)`` directed memberships from :func:`fuzzy_weights`.
    n_epochs
        UMAP's epoch count for this many cells (500 up to 10,000 cells, else 200).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, n)`` float32 symmetric weights.
    """
    n = idx.shape[0]
    a = _rows_csr(idx, weights.astype(np.float32), (idx >= 0) & (weights > 0), n)
    at = a.T.tocsr()
    sym = (a + at - a.multiply(at)).tocsr()
    sym.eliminate_zeros()
    if sym.nnz:
        sym.data[sym.data < sym.data.max() / float(n_epochs)] = 0.0
        sym.eliminate_zeros()
    return sym


def umap_epochs(n_cells: int) -> int:
    """UMAP's default epoch count: 500 for at most 10,000 cells, 200 above."""
    return 500 if n_cells <= 10_000 else 200


def gaussian_graph(idx: np.ndarray, dist: np.ndarray, sigma: float = 10.0) -> sparse.csr_matrix:
    """Directed Gaussian kernel ``exp(-d^2 / (2 sigma^2))`` on each cell's neighbours (self too).

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, n)`` float64 weights (rows not normalised).
    """
    w = np.exp(-(dist.astype(np.float64) ** 2) / (2.0 * sigma**2))
    return _rows_csr(idx, w, idx >= 0, idx.shape[0])


def _rows_csr(
    idx: np.ndarray, values: np.ndarray, keep: np.ndarray, n_cols: int
) -> sparse.csr_matrix:
    """CSR matrix with row ``r`` holding ``values[r, keep[r]]`` at columns ``idx[r, keep[r]]``."""
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))])
    out = sparse.csr_matrix(
        (values[keep], idx[keep].astype(np.int32), indptr), shape=(idx.shape[0], n_cols)
    )
    out.sum_duplicates()
    out.sort_indices()
    return out
