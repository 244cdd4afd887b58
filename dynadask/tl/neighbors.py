"""``dyn.tl.neighbors``: the kNN graph of the cells in an embedding (PCA by default)."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from .._core.validate import enough_cells, unique_names
from ..graph import neighbors as gn
from ..graph import neighbourhood as nb
from ..io import commit, store_path
from ..kernels import neighbors as kn


def neighbor_keys(result_prefix: str | None = "") -> tuple[str, str, str]:
    """The (connectivities, distances, neighbors) keys for ``result_prefix`` (dynamo's rule)."""
    prefix = result_prefix or ""
    if prefix and not prefix.endswith("_"):
        prefix += "_"
    return f"{prefix}{keys.CONNECTIVITIES}", f"{prefix}{keys.DISTANCES}", f"{prefix}neighbors"


def embedding(adata: ad.AnnData, basis: str | None, n_dims: int | None = None) -> np.ndarray:
    """Return ``obsm['X_<basis>']`` (first ``n_dims`` columns) as an in-memory float32 array.

    Raises
    ------
    ValueError
        When the embedding is missing (with the step that makes it) or not 2-D.
    """
    if basis is None or basis == "X":
        raise InputError(
            "dynadask searches neighbours in an embedding: give basis='pca' "
            "(or another obsm['X_<basis>']) or pass X_data"
        )
    name = keys.basis_key(basis)
    if name not in adata.obsm:
        fix = (
            "run dyn.pp.pca(adata) (or dyn.pp.recipe_monocle)"
            if name == keys.X_PCA
            else "compute that embedding first or give an existing basis"
        )
        raise MissingKeyError(f"obsm[{name!r}] is missing: {fix}")
    x = adata.obsm[name]
    x = x[:, :n_dims] if n_dims is not None else x
    return _as_matrix(x, name)


def _as_matrix(x: Any, name: str) -> np.ndarray:
    if isinstance(x, da.Array):
        x = compute(x, desc=f"read {name}")[0]
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"{name} must be a cells x dimensions matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"{name} has NaN or infinite values: recompute it")
    return x


def search(
    x: np.ndarray,
    n_neighbors: int,
    method: str | None,
    *,
    metric: str = "euclidean",
    metric_kwds: dict | None = None,
    seed: int = 19491001,
    **kwargs: Any,
) -> gn.Knn:
    """The ``n_neighbors`` nearest cells (self first) of every cell of ``x``."""
    how = gn.choose_method(x.shape[0], x.shape[1], method)
    return gn.knn(x, n_neighbors, how, metric=metric, metric_kwds=metric_kwds, seed=seed, **kwargs)


def neighbors(
    adata: ad.AnnData,
    X_data: Any = None,  # noqa: N803 - dynamo's name
    genes: Any = None,
    *,
    basis: str = "pca",
    layer: str | None = None,
    n_pca_components: int = 30,
    n_neighbors: int = 30,
    method: str | None = None,
    metric: str = "euclidean",
    metric_kwads: dict | None = None,
    cores: int = 1,
    seed: int = 19491001,
    result_prefix: str = "",
    **kwargs: Any,
) -> ad.AnnData:
    """Find each cell's nearest neighbours in an embedding and store the kNN graph.

    The index is built once on the embedding (cells x components, small even for millions
    of cells): exact search (scikit-learn) up to 5,000 cells, NN-descent (pynndescent) above,
    as dynamo chooses. Exact search is queried row block by row block; NN-descent's own
    neighbour graph answers for the cells it indexed.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']``.
    X_data
        Cells x dimensions coordinates to search instead of the embedding.
    genes, layer
        Not used: neighbours are searched in an embedding (kept for dynamo's signature;
        ``layer`` without an embedding raises).
    basis
        Embedding to search in (``'pca'`` -> ``obsm['X_pca']``, all its columns, as dynamo).
    n_pca_components
        Recorded in ``uns['neighbors']['params']['n_pcs']``.
    n_neighbors
        Neighbours per cell, counting the cell itself.
    method
        ``None`` (automatic), ``'ball_tree'``, ``'kd_tree'``, ``'brute'`` (exact) or
        ``'pynn'`` / ``'umap'`` (NN-descent).
    metric, metric_kwads
        Distance and its options.
    cores
        Ignored (the active Dask scheduler runs the work); a warning when not 1.
    seed
        Random state of NN-descent.
    result_prefix
        Prefix of the output keys (``'<prefix>_connectivities'``, …).
    **kwargs
        Passed to the index (scikit-learn ``NearestNeighbors`` or ``pynndescent.NNDescent``).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    obsp['distances']
        Distances to the ``n_neighbors - 1`` nearest other cells (float32 CSR).
    obsp['connectivities']
        1 on the same entries (dynamo's binary kNN connectivities).
    uns['neighbors']
        ``params`` (``n_neighbors``, ``method``, ``metric``, ``n_pcs``, ``basis``) and, for an
        in-memory AnnData, ``indices`` (``n_cells x n_neighbors``, self first).

    Raises
    ------
    ValueError
        Missing embedding (run ``dyn.pp.pca``), wrong ``X_data`` shape, unknown method, fewer
        than 2 cells, ``n_neighbors < 2``.
    """
    if cores not in (1, None):
        warnings.warn(
            "cores is ignored: dynadask computes on the active Dask scheduler", stacklevel=2
        )
    if layer is not None and X_data is None and basis is None:
        embedding(adata, None)
    unique_names(adata)
    x = _search_space(adata, X_data, basis)
    _check_counts(x.shape[0], n_neighbors)
    idx, dist = search(
        x, n_neighbors, method, metric=metric, metric_kwds=metric_kwads, seed=seed, **kwargs
    )
    conn_key, dist_key, nbr_key = neighbor_keys(result_prefix)
    distances, connectivities = kn.distance_graphs(idx, dist, x.shape[0])
    record: dict[str, Any] = {
        "params": {
            "n_neighbors": n_neighbors,
            "method": str(method),
            "metric": str(metric),
            "n_pcs": n_pca_components,
            "basis": str(basis),
        }
    }
    if store_path(adata) is None:
        record["indices"] = idx
    commit(
        adata,
        "neighbors",
        obsp={dist_key: distances, conn_key: connectivities},
        uns={nbr_key: record},
    )
    return adata


def _search_space(adata: ad.AnnData, X_data: Any, basis: str | None) -> np.ndarray:  # noqa: N803
    if X_data is None:
        return embedding(adata, basis)
    x = _as_matrix(X_data, "X_data")
    if x.shape[0] != adata.n_obs:
        raise InputError(f"X_data has {x.shape[0]} rows but adata has {adata.n_obs} cells")
    return x


def _check_counts(n_cells: int, n_neighbors: int) -> None:
    if n_cells < 2:
        raise InputError(f"a kNN graph needs at least 2 cells, got {n_cells}")
    if n_neighbors < 2:
        raise InputError(f"n_neighbors counts the cell itself and must be >= 2, got {n_neighbors}")
    enough_cells(n_cells, n_neighbors)


def neighbour_indices(adata: ad.AnnData, prefix: str, adj_key: str, k: int) -> np.ndarray:
    """The ``(n_cells, k)`` kNN indices (self first) of the neighbourhood steps.

    ``uns['<prefix>neighbors']['indices']`` when stored, else read from ``obsp[adj_key]``
    (rows with fewer stored neighbours padded with the cell itself); the graph is made on
    demand, as dynamo does. Used by ``cell_velocities`` and the velocity confidences.

    Raises
    ------
    ValueError
        When ``neighbors`` does not write ``obsp[adj_key]``.
    """
    nkey = (f"{prefix.rstrip('_')}_" if prefix else "") + "neighbors"
    record = adata.uns.get(nkey, {})
    if isinstance(record, dict) and "indices" in record:
        idx = np.asarray(record["indices"])
        if idx.ndim == 2 and idx.shape[0] == adata.n_obs:
            return idx[:, :k].astype(np.int64)
    if adj_key not in adata.obsp:  # made on demand, as dynamo does
        neighbors(adata, result_prefix=prefix)
        if adj_key not in adata.obsp:
            raise MissingKeyError(
                f"no kNN graph: obsp[{adj_key!r}] is missing and dyn.tl.neighbors(adata, "
                f"result_prefix={prefix!r}) does not write it: give adj_key="
                f"'{neighbor_keys(prefix)[1]}' or compute that graph first"
            )
    return nb.self_padded(nb.knn_from_graph(adata.obsp[adj_key], k)[0])
