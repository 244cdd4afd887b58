"""kNN search on an embedding: one index built once, neighbour lists for every cell.

The embedding (cells x a few dozen components) is small enough to sit in one process; the
index is built once and queried row block by row block (exact search), or its own
neighbour graph is read for the cells it was built on (NN-descent). Neighbour lists
``(idx, dist)`` are ``(n_cells, k)`` arrays (see :mod:`dynadask.kernels.neighbors`).
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import numpy as np
from scipy import sparse

from .._core.compute import compute, share
from .._core.errors import InputError
from .._core.settings import get_chunk_policy
from ..kernels import neighbors as kn

Knn = tuple[np.ndarray, np.ndarray]

# dynamo's automatic choice: NN-descent above this many cells (and more than 2 dimensions)
PYNN_MIN_CELLS = 5000
_EXACT = ("ball_tree", "kd_tree", "brute", "auto")
_APPROX = ("pynn", "umap")


def choose_method(n_cells: int, n_dims: int, method: str | None) -> str:
    """Pick the search method: dynamo's rule when ``method`` is ``None``.

    Exact search (``'ball_tree'`` above 10 dimensions, else ``'kd_tree'``) up to 5,000 cells
    or in at most 2 dimensions, NN-descent (``'pynn'``) otherwise.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    if method is None:
        if n_cells > PYNN_MIN_CELLS and n_dims > 2:
            return "pynn"
        return "ball_tree" if n_dims > 10 else "kd_tree"
    if method == "hnswlib":
        raise InputError(
            "method 'hnswlib' is not available in dynadask: use 'pynn' "
            "(NN-descent, the default above 5,000 cells) or an exact method"
        )
    if method not in _EXACT + _APPROX:
        raise InputError(f"unknown kNN method {method!r}: use one of {list(_EXACT + _APPROX)}")
    return method


def _query(index: Any, x: np.ndarray) -> Knn:
    dist, idx = index.kneighbors(x)
    return idx, dist


def knn_exact(
    x: np.ndarray,
    k: int,
    *,
    method: str = "ball_tree",
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    **kwargs: Any,
) -> Knn:
    """Exact ``k`` nearest neighbours (self included) with scikit-learn, queried per row block."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(
        n_neighbors=k, metric=metric, metric_params=metric_kwds, algorithm=method, **kwargs
    ).fit(x)
    (index_d,) = share([index])  # once to the workers, not once per task
    rows = get_chunk_policy().rows_per_block(x.shape[1] * 64, x.shape[0])
    parts = [dask.delayed(_query)(index_d, x[s : s + rows]) for s in range(0, x.shape[0], rows)]
    done = compute(*parts, desc="kNN queries")
    idx = np.vstack([p[0] for p in done])
    dist = np.vstack([p[1] for p in done])
    return kn.self_first(idx, dist)


_CACHED: list[bool] = []


def cache_pynndescent() -> int:
    """Let numba cache pynndescent's compiled functions on disk (once per process).

    Most of pynndescent's numba functions are compiled afresh in every process: on the
    100,000-cell atlas that was 92 % of the ``neighbors`` stage (about 35 of 39 CPU s).
    With caching on, a later process loads the machine code instead; the code, and so the
    neighbours found, are the same. Functions numba cannot cache are compiled as before.

    Returns
    -------
    int
        How many functions had caching turned on by this call.
    """
    if _CACHED:
        return 0
    _CACHED.append(True)
    import importlib
    import pkgutil

    import pynndescent
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    turned = 0
    for info in pkgutil.iter_modules(pynndescent.__path__):
        try:
            module = importlib.import_module(f"pynndescent.{info.name}")
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        value.enable_caching()
                    except (RuntimeError, OSError):  # no cache location for it
                        continue
                turned += 1
    return turned


def _nndescent(
    x: np.ndarray, k: int, metric: str, metric_kwds: dict | None, seed: int, kwargs: dict
) -> Knn:
    from pynndescent import NNDescent

    cache_pynndescent()
    with warnings.catch_warnings():  # two functions numba cannot cache: compiled as before
        warnings.filterwarnings("ignore", message=".*[Cc]annot cache compiled function.*")
        index = NNDescent(
            x, metric=metric, metric_kwds=metric_kwds, n_neighbors=k, random_state=seed, **kwargs
        )
    idx, dist = index.neighbor_graph
    return kn.self_first(idx, dist)


def knn_nndescent(
    x: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    seed: int = 19491001,
    **kwargs: Any,
) -> Knn:
    """Approximate ``k`` nearest neighbours (self included) from an NN-descent index.

    The index is built once, in one task of the active scheduler; the neighbour graph it
    builds for its own cells is the answer (no second search). ``x`` goes to the worker on
    its own, not inside the task graph.
    """
    (x_d,) = share([x])
    task = dask.delayed(_nndescent)(x_d, k, metric, metric_kwds, seed, kwargs)
    return compute(task, desc="NN-descent index")[0]


def knn(x: np.ndarray, k: int, method: str, **kwargs: Any) -> Knn:
    """``k`` nearest neighbours (self first) of every row of ``x`` with ``method``."""
    k = max(1, min(k, x.shape[0]))
    if method in _APPROX and k < x.shape[0]:
        return knn_nndescent(x, k, **kwargs)
    kwargs.pop("seed", None)
    method = method if method in _EXACT else "auto"
    return knn_exact(x, k, method=method, **kwargs)


def knn_in_groups(
    x: np.ndarray, n_neighbors: int, groups: list[np.ndarray], method: str | None, **kwargs: Any
) -> tuple[Knn, np.ndarray]:
    """Neighbour lists searched within each group of cells only (global indices).

    Each group gets ``min(n_neighbors, n_group - 1)`` neighbours (self included, at least
    1), as dynamo does; shorter rows are padded with ``-1``.

    Returns
    -------
    (idx, dist), k_per_cell
        The lists and, for each cell, the neighbour count its group used.
    """
    n = x.shape[0]
    idx = np.full((n, n_neighbors), -1, dtype=np.int64)
    dist = np.full((n, n_neighbors), np.inf, dtype=np.float32)
    k_cell = np.zeros(n, dtype=np.int64)
    for cells in groups:
        k = max(1, min(n_neighbors, cells.size - 1))
        sub = x[cells]
        how = choose_method(sub.shape[0], sub.shape[1], method)
        gi, gd = knn(sub, k, how, **kwargs)
        idx[cells, :k] = np.where(gi >= 0, cells[np.maximum(gi, 0)], -1)
        dist[cells, :k] = gd
        k_cell[cells] = k
    return (idx, dist), k_cell


def _weights_in_group(idx: np.ndarray, dist: np.ndarray, k: int, kind: str) -> sparse.csr_matrix:
    if kind == "gaussian":
        return kn.gaussian_graph(idx, dist)
    w = kn.fuzzy_weights(idx, dist, k)
    return kn.fuzzy_union(idx, w, kn.umap_epochs(idx.shape[0]))


def group_graph(
    knn_lists: Knn, k_cell: np.ndarray, groups: list[np.ndarray], kind: str = "umap"
) -> sparse.csr_matrix:
    """The weighted graph of each group (fuzzy union, or Gaussian), assembled over all cells.

    Parameters
    ----------
    knn_lists
        Global neighbour lists whose neighbours lie in the cell's own group.
    k_cell
        Neighbour count per cell (its group's).
    groups
        Disjoint sorted index arrays covering the cells.
    kind
        ``'umap'`` (symmetric fuzzy union, pruned as UMAP does) or ``'gaussian'``.
    """
    idx, dist = knn_lists
    n = idx.shape[0]
    if len(groups) == 1 and groups[0].size == n:
        k = int(k_cell[0])
        return _weights_in_group(idx[:, :k], dist[:, :k], k, kind)
    parts = []
    for cells in groups:
        k = int(k_cell[cells[0]])
        gi = idx[cells, :k]
        local = np.where(gi >= 0, np.searchsorted(cells, np.maximum(gi, 0)), -1)
        g = _weights_in_group(local, dist[cells, :k], k, kind).tocoo()
        parts.append(sparse.csr_matrix((g.data, (cells[g.row], cells[g.col])), shape=(n, n)))
    out = parts[0] if len(parts) == 1 else sparse.csr_matrix(sum(parts[1:], parts[0]))
    out.sort_indices()
    return out
