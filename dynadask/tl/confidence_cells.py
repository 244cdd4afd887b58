"""Per-cell velocity confidence and cross-boundary direction scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core import keys
from .._core.compute import compute, share
from .._core.errors import InputError, MissingKeyError
from ..graph import embedding as ge
from ..graph import neighbourhood as nb
from ..graph import pca as gpca
from ..graph.blocks import as_rows, map_rows, sum_rows, take_columns
from ..io import commit
from ..kernels import confidence as kconf
from ..kernels import embedding as ek
from .neighbors import neighbour_indices

_PAIRWISE = ("cosine", "correlation", "consensus")


def cell_wise_confidence(
    adata: ad.AnnData,
    X_data: Any = None,
    V_data: Any = None,
    *,
    ekey: str = keys.M_S,
    vkey: str = keys.VELOCITY_S,
    neighbors_from_basis: bool = False,
    method: str = "jaccard",
) -> ad.AnnData:
    """Per-cell confidence that a cell's velocity agrees with its neighbourhood.

    - ``'cosine'`` / ``'correlation'``: mean cosine (Pearson correlation) between the cell's
      velocity and those of its kNN neighbours (itself included).
    - ``'consensus'``: mean of ``cos(v_i, v_j) * min(|v_i|, |v_j|) / max(|v_i|, |v_j|)``.
    - ``'jaccard'``: Jaccard index between the two-step neighbourhoods of the kNN graph
      (``obsp['connectivities']``) and of a kNN graph built on the future states: 30 leading
      components (after the first) of an uncentred SVD of ``log2(x + v + 1)``.
    - ``'hybrid'``: the Jaccard index times the mean consensus (as above) between the cell's
      velocity and those of the cells in both two-step neighbourhoods (NaN when a velocity
      is zero or the intersection is empty, as in dynamo).

    Genes with any non-finite velocity are left out. Everything runs in row blocks.

    Parameters
    ----------
    adata
        AnnData with the layers and a kNN graph.
    X_data, V_data
        Expression and velocity to use instead of the layers.
    ekey, vkey
        Expression and velocity layers.
    neighbors_from_basis
        For ``'jaccard'``: build the present-state graph from a 30-NN search on
        ``X_data``/``ekey`` instead of ``obsp['connectivities']``.
    method
        ``'jaccard'``, ``'hybrid'``, ``'cosine'``, ``'correlation'`` or ``'consensus'``.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    obs['<method>_velocity_confidence']
        The confidence per cell.

    Raises
    ------
    ValueError
        Unknown method, missing layer (run ``dyn.tl.dynamics``) or missing kNN graph.
    """
    if method not in (*_PAIRWISE, "jaccard", "hybrid"):
        raise InputError(
            f"unknown method {method!r}: use 'jaccard', 'hybrid', 'cosine', 'correlation' or "
            "'consensus'"
        )
    x, v = _layers(adata, X_data, V_data, ekey, vkey)
    if method in ("jaccard", "hybrid"):
        score = _jaccard(adata, x, v, neighbors_from_basis, hybrid=method == "hybrid")
    else:
        k = int(adata.uns.get("neighbors", {}).get("params", {}).get("n_neighbors", 30))
        knn = neighbour_indices(adata, "", keys.DISTANCES, k)
        score = _pairwise(v, knn, method)
    commit(adata, "cell_wise_confidence", obs={f"{method}_velocity_confidence": score})
    return adata


def _layers(adata, x, v, ekey, vkey) -> tuple[Any, Any]:
    if v is None:
        if vkey not in adata.layers:
            raise MissingKeyError(f"layers[{vkey!r}] is missing: run dyn.tl.dynamics(adata) first")
        v = adata.layers[vkey]
    if x is None:
        if ekey not in adata.layers:
            raise MissingKeyError(f"layers[{ekey!r}] is missing: run dyn.tl.moments(adata) first")
        x = adata.layers[ekey]
    total = compute(sum_rows(_col_sums, v), desc="finite genes")[0]
    cols = np.flatnonzero(np.isfinite(total))
    return take_columns(x, cols), take_columns(v, cols)


def _col_sums(v: Any) -> np.ndarray:
    return np.asarray(v.sum(0), dtype=np.float64).ravel()


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _pairwise(v: Any, knn: np.ndarray, method: str) -> np.ndarray:
    vr = as_rows(v)
    blocks = nb.plan_blocks(knn, vr.chunks[0][0], depth=1)
    parts = [
        dask.delayed(_pairwise_block)(nb.gather(vr, b), b, knn[b.start : b.stop], method)
        for b in blocks
    ]
    return np.concatenate(compute(*parts, desc=f"{method} confidence"))


def _pairwise_block(v_union: Any, block: nb.Block, knn: np.ndarray, method: str) -> np.ndarray:
    v_union = _dense(v_union)
    vi = v_union[block.local(block.rows)]
    vj = v_union[block.local(knn)]
    if method == "correlation":
        vi = vi - vi.mean(1, keepdims=True)
        vj = vj - vj.mean(2, keepdims=True)
    ni, nj = np.linalg.norm(vi, axis=1)[:, None], np.linalg.norm(vj, axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ig,ikg->ik", vi, vj) / (ni * nj)
        if method == "consensus":
            cos = cos * np.minimum(ni, nj) / np.maximum(ni, nj)
    return np.where(ni[:, 0] > 0, np.nanmean(np.where(nj > 0, cos, 0.0), axis=1), 0.0)


def _future_pcs(x: Any, v: Any, n_components: int) -> np.ndarray:
    """Uncentred SVD coordinates of ``log2(x + v + 1)``, first component dropped.

    The one PCA path (:mod:`dynadask.graph.pca`, ``centre=False``) on ``log1p`` of the
    future state ``max(x + v, 0)``; ``log2`` is ``log1p / ln 2``, which scales the
    coordinates and leaves the axes as they are.
    """
    future = map_rows(_future, x, v, n_cols=x.shape[1], dtype=np.float64)
    _, comps, _, _ = gpca.fit(future, n_components + 1, log=True, centre=False)
    zero = np.zeros(comps.shape[0])
    coords = gpca.project(future, None, None, zero, comps, log=True, dtype=np.float64)
    return compute(coords, desc="future-state coordinates")[0][:, 1:] / np.log(2.0)


def _future(x: Any, v: Any) -> np.ndarray:
    return np.maximum(_dense(x) + _dense(v), 0.0)


def _knn_graph(coords: np.ndarray, k: int) -> sparse.csr_matrix:
    """Symmetric 0/1 graph of the ``k``-nearest neighbours (self excluded)."""
    from sklearn.neighbors import NearestNeighbors

    idx = (
        NearestNeighbors(n_neighbors=min(k, len(coords)))
        .fit(coords)
        .kneighbors(coords, return_distance=False)
    )
    n = len(coords)
    g = sparse.csr_matrix(
        (np.ones(idx.size), (np.repeat(np.arange(n), idx.shape[1]), idx.ravel())), shape=(n, n)
    )
    g.setdiag(0)
    g.eliminate_zeros()
    return ((g + g.T) > 0).astype(np.float64).tocsr()


def _jaccard(adata, x, v, from_basis: bool, hybrid: bool = False) -> np.ndarray:
    n_pcs = adata.obsm[keys.X_PCA].shape[1] if keys.X_PCA in adata.obsm else 30
    future = _knn_graph(_future_pcs(x, v, n_pcs), 30)
    if from_basis:
        present = _knn_graph(ge.take_rows(x, None), 30)
    elif keys.CONNECTIVITIES in adata.obsp:
        present = adata.obsp[keys.CONNECTIVITIES]
    else:
        raise MissingKeyError("obsp['connectivities'] is missing: run dyn.tl.neighbors(adata)")
    if isinstance(present, da.Array):
        present = compute(present, desc="read connectivities")[0]
    return _two_step_jaccard(_binary(present), future, v if hybrid else None)


def _binary(g: Any) -> sparse.csr_matrix:
    g = sparse.csr_matrix(g)
    return (g != 0).astype(np.float64).tocsr()


def _two_step_jaccard(a: sparse.csr_matrix, b: sparse.csr_matrix, v: Any = None) -> np.ndarray:
    """Per cell, the Jaccard index of its two-step neighbourhoods in graphs ``a`` and ``b``.

    Each row block gathers the rows of its one-step neighbours in each graph (one plan per
    graph), so no task holds a whole graph. With velocities ``v`` (hybrid), each block also
    gathers the velocities of its cells and their two-step neighbours in ``a`` and weighs
    the index by the mean consensus over the intersection.
    """
    ar = as_rows(a)
    chunks = ar.chunks[0]
    br = as_rows(b, rows=chunks[0])
    vr = None if v is None else as_rows(v, rows=chunks[0])
    parts = []
    for pa, pb in zip(nb.plan_blocks(a, chunks), nb.plan_blocks(b, chunks), strict=True):
        la, lb = share([nb.local_graph(a, pa), nb.local_graph(b, pb)])
        args = (la, nb.gather(ar, pa), lb, nb.gather(br, pb))
        if vr is None:
            parts.append(dask.delayed(_jaccard_block)(*args))
            continue
        reach = nb.Block(pa.start, pa.stop, _two_step_cells(a, pa.start, pa.stop))
        parts.append(
            dask.delayed(_hybrid_block)(*args, nb.gather(vr, reach), reach.cells, pa.start)
        )
    return np.concatenate(compute(*parts, desc="jaccard confidence"))


def _two_step_cells(a: sparse.csr_matrix, start: int, stop: int) -> np.ndarray:
    """The block's own cells and the cells two steps away from them in ``a``, sorted."""
    reach = sparse.csr_matrix(a[start:stop] @ a).indices
    return np.unique(np.concatenate([np.arange(start, stop), reach])).astype(np.int64)


def _two_step_sets(
    a_local: sparse.csr_matrix, a_rows: Any, b_local: sparse.csr_matrix, b_rows: Any
) -> tuple[sparse.csr_matrix, np.ndarray]:
    a2 = sparse.csr_matrix(a_local @ a_rows) > 0
    b2 = sparse.csr_matrix(b_local @ b_rows) > 0
    inter = sparse.csr_matrix(a2.multiply(b2))
    union = np.asarray((a2 + b2).sum(1)).ravel()
    n_inter = np.asarray(inter.sum(1)).ravel()
    jac = np.divide(n_inter, union, out=np.zeros(a_local.shape[0]), where=union > 0)
    return inter, jac


def _jaccard_block(
    a_local: sparse.csr_matrix, a_rows: Any, b_local: sparse.csr_matrix, b_rows: Any
) -> np.ndarray:
    return _two_step_sets(a_local, a_rows, b_local, b_rows)[1]


def _hybrid_block(
    a_local: sparse.csr_matrix,
    a_rows: Any,
    b_local: sparse.csr_matrix,
    b_rows: Any,
    v_cells: Any,
    cells: np.ndarray,
    start: int,
) -> np.ndarray:
    inter, jac = _two_step_sets(a_local, a_rows, b_local, b_rows)
    inter.sort_indices()
    v = _dense(v_cells)
    rows = np.repeat(np.arange(inter.shape[0]), np.diff(inter.indptr))
    vi_pos = np.searchsorted(cells, rows + start)
    vj_pos = np.searchsorted(cells, inter.indices)
    cons = kconf.pair_consensus(v, vi_pos, vj_pos)
    total = np.bincount(rows, weights=cons, minlength=inter.shape[0])
    count = np.bincount(rows, minlength=inter.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        return jac * (total / count)


def cross_boundary_direction(
    adata: ad.AnnData,
    cluster_key: str,
    transitions: Sequence[tuple[str, str]],
    *,
    basis: str = "umap",
    vkey: str | None = None,
    n_neighbors: int = 30,
) -> dict[tuple[str, str], float]:
    """How well embedding velocities point across known boundaries between cell groups.

    For a transition ``A -> B``: for each cell of ``A`` with kNN neighbours in ``B``, the mean
    cosine between its velocity and its displacements to those neighbours in the embedding;
    the score is the mean over such cells (1: straight across, -1: backwards, 0: random).

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']``, ``obsm['velocity_<basis>']`` and a kNN graph.
    cluster_key
        ``obs`` column of group labels.
    transitions
        ``(source, target)`` pairs of labels.
    basis
        Embedding.
    vkey
        Velocity key in ``obsm`` (default ``'velocity_<basis>'``).
    n_neighbors
        Neighbours per cell (self included) from ``obsp['distances']``.

    Returns
    -------
    dict
        Score per transition (NaN when no cell of ``A`` neighbours ``B``).
    """
    name = keys.basis_key(basis)
    vname = vkey or keys.velocity_key(name[2:])
    for k in (name, vname):
        if k not in adata.obsm:
            raise MissingKeyError(
                f"obsm[{k!r}] is missing: run dyn.tl.cell_velocities(adata, basis={basis!r}) first"
            )
    labels = np.asarray(adata.obs[cluster_key].astype(str))
    knn = neighbour_indices(adata, "", keys.DISTANCES, n_neighbors)[:, 1:]
    emb = ge.take_rows(adata.obsm[name], None)
    vel = ge.take_rows(adata.obsm[vname], None)
    scores = {}
    for src, dst in transitions:
        cells = np.flatnonzero(labels == src)
        nb = knn[cells]
        s = ek.direction_scores(vel[cells], emb[cells], emb[nb], labels[nb] == dst)
        scores[(src, dst)] = float(np.nanmean(s)) if np.isfinite(s).any() else float("nan")
    return scores
