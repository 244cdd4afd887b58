"""Lay a store's cells out in a locality order, out of core, and read them back in the original.

Every neighbourhood step gathers each row chunk's kNN neighbour rows; in a store whose
rows are in random order (donor, batch or file order) every chunk's neighbourhoods touch
every other chunk. :func:`reorder` rewrites every cell-indexed element of a store in a
locality order (:mod:`dynadask.graph.locality`) in one streaming pass, records each
cell's original row in ``obs['dynadask_original_row']``, and :func:`original_order` (or
``dyn.io.open(path, order='original')``) gives the data back in the user's order, lazily.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
from scipy import sparse

from .._core import keys
from .._core.compute import SCRATCH_ENV, compute, share
from .._core.errors import InputError, MissingKeyError
from .._core.settings import get_chunk_policy
from ..graph import locality as gl
from ..graph import reorder as gr
from ..graph.blocks import take_columns
from ..kernels import reorder as kr
from .commit import commit, store_path
from .format import consolidate, open_group
from .location import Remote
from .open import open as open_store
from .writers import remove, remove_settled


def reorder(
    data: ad.AnnData | str | Path,
    order: np.ndarray | None = None,
    *,
    method: str = "auto",
    basis: str = "pca",
) -> ad.AnnData:
    """Put the cells in a locality order: every cell-indexed element, in one streaming pass.

    On a store (a path, or an AnnData opened with :func:`dynadask.io.open`) the workers
    rewrite ``X``, every layer, ``obsm``, ``obsp`` (rows and columns: ``P G P^T``, indices
    sorted in each row), the ``obs`` frame (``obs_names`` stay with their cells) and the
    kNN ``indices`` of ``uns['neighbors']`` (any ``uns`` dict with an ``indices`` table of
    one row per cell). Rows move in two phases through a scratch folder beside the store
    (``<store>.reorder-<id>``, removed afterwards, also on failure): each input row chunk
    is read once and written as pieces by destination chunk, then each output chunk joins
    its pieces, so no task holds more than about two row chunks and the scheduler no bulk
    data. The results go in through :func:`dynadask.io.commit` (stage ``reorder``), so an
    interruption leaves the store as it was; its chunking is kept. An in-memory AnnData is
    permuted in memory, with the same record.

    Parameters
    ----------
    data
        A store path, a store-backed AnnData, or an in-memory AnnData.
    order
        The new order: row ``r`` of the result holds the current row ``order[r]``. By
        default :func:`dynadask.graph.locality.locality_order` with ``method`` and
        ``basis`` (the order :func:`dynadask.tl.locality_order` gives).
    method
        Order method when ``order`` is not given: ``'graph'`` (reverse Cuthill-McKee on
        ``obsp['connectivities']``), ``'kdtree'`` (leaf order of a k-d tree on
        ``obsm['X_<basis>']``) or ``'auto'`` (``'graph'`` when the kNN graph exists).
    basis
        Embedding of the ``'kdtree'`` order.

    Returns
    -------
    anndata.AnnData
        The reordered data: the store reopened (AnnData opened before the reorder can no
        longer commit into the store; use this one), or a new in-memory AnnData.

    Writes
    ------
    obs['dynadask_original_row']
        Each cell's row in the original order (kept through later reorders, so they
        compose); ``dyn.io.open(path, order='original')`` uses it.
    uns['dynadask']['reorder']
        ``method``, ``chunk_cells``, ``n_chunks`` and the neighbourhood chunk spread
        ``spread_before`` / ``spread_after`` (mean over row chunks of the number of chunks
        their cells' kNN neighbours lie in; ``NaN`` without a kNN graph).

    Raises
    ------
    ValueError
        If ``order`` is not a permutation of the cells, or no order can be computed
        (no kNN graph and no embedding).
    """
    adata = open_store(data) if isinstance(data, str | Path) else data
    path = store_path(adata)
    if path is None:
        return _reorder_in_memory(adata, order, method, basis)
    return _reorder_store(path, order, method, basis)


def chunk_spread(
    adata: ad.AnnData, chunk_cells: int | None = None, order: np.ndarray | None = None
) -> float:
    """The mean number of row chunks each chunk's kNN neighbourhoods lie in.

    For each row chunk, the distinct chunks holding its cells or any of their kNN
    neighbours (``obsp['distances']``, else ``obsp['connectivities']``); the mean over
    chunks. 1 is perfect locality; in random order it approaches the number of chunks.
    Out of core it reads only the graph's column indices, one row block a task.

    Parameters
    ----------
    adata
        AnnData with a kNN graph.
    chunk_cells
        Cells per chunk: by default the Dask row blocks (the store's chunking), or the
        chunk policy's for an in-memory AnnData.
    order
        Measure under this new order instead of the current one.

    Returns
    -------
    float
        The mean spread, ``NaN`` when there is no kNN graph.
    """
    graph = _knn_graph(adata)
    if graph is None:
        return float("nan")
    bounds = gr.chunk_bounds(adata.n_obs, chunk_cells or chunk_rows(adata))
    dest = None if order is None else share([kr.inverse(order)])[0]
    codes = compute(gr.spread_codes(graph, bounds, dest), desc="chunk spread")[0]
    return kr.spread_of(codes, len(bounds) - 1)


def original_order(adata: ad.AnnData) -> ad.AnnData:
    """The cells of ``adata`` in their original order (before any reorder), lazily.

    Rows of Dask arrays are taken with Dask's fancy indexing, ``obsp`` is permuted back
    both ways, the ``obs`` frame is reordered. The result is not store-backed: results
    computed on it stay in memory (:func:`dynadask.io.store_path` gives ``None``), so that
    nothing is ever written into the store in the wrong order. Run analyses on the store's
    own order and read them back this way.

    Parameters
    ----------
    adata
        AnnData with ``obs['dynadask_original_row']`` (without it, it is returned as it is).

    Returns
    -------
    anndata.AnnData
        The data in the original order; ``uns['dynadask']`` notes ``view_of`` (the store)
        and ``order = 'original'``.

    Raises
    ------
    ValueError
        If ``obs['dynadask_original_row']`` is not a permutation of the rows.
    """
    if keys.ORIGINAL_ROW not in adata.obs:
        return adata
    back = np.asarray(adata.obs[keys.ORIGINAL_ROW].to_numpy(), dtype=np.int64)
    back = kr.inverse(back)  # the current row of each original row
    view = permute(adata, back)
    record = dict(view.uns.get(keys.DYNADASK, {}))
    source = record.pop(keys.STORE, None)
    record.pop(keys.ORDER_ID, None)
    if source is not None:
        record["view_of"] = source
    record["order"] = "original"
    view.uns[keys.DYNADASK] = record
    return view


def permute(adata: ad.AnnData, order: np.ndarray) -> ad.AnnData:
    """A new AnnData whose row ``r`` is row ``order[r]`` of ``adata`` (lazy stays lazy).

    Every cell-indexed element moves: ``X``, layers, ``obsm``, ``obsp`` (rows and columns),
    ``obs`` and the kNN ``indices`` tables in ``uns``. ``var``, ``varm``, ``varp`` and the
    rest of ``uns`` are shared.
    """
    order = np.asarray(order, dtype=np.int64)
    dest = kr.inverse(order)
    if len(order) != adata.n_obs:
        raise InputError(f"order has {len(order)} positions but adata has {adata.n_obs} cells")

    def rows(x: Any) -> Any:
        if isinstance(x, pd.DataFrame):
            return x.iloc[order]
        return x[order]

    obsp = {}
    for key, g in adata.obsp.items():
        g = take_columns(g[order], order)
        if isinstance(g, da.Array):
            g = g.map_blocks(kr.sorted_indices, dtype=g.dtype, meta=g._meta)
        obsp[key] = kr.sorted_indices(g) if sparse.issparse(g) else g
    uns = dict(adata.uns)
    uns.update(_permuted_uns(adata.uns, order, dest, adata.n_obs))
    return ad.AnnData(
        X=None if adata.X is None else rows(adata.X),
        obs=adata.obs.iloc[order].copy(),
        var=adata.var,
        uns=uns,
        layers={k: rows(v) for k, v in adata.layers.items()},
        obsm={k: rows(v) for k, v in adata.obsm.items()},
        obsp=obsp,
        varm=dict(adata.varm),
        varp=dict(adata.varp),
    )


# ------------------------------------------------------------------ internals


def _reorder_in_memory(
    adata: ad.AnnData, order: np.ndarray | None, method: str, basis: str
) -> ad.AnnData:
    order, method = _the_order(adata, order, method, basis)
    rows = chunk_rows(adata)
    before, after = chunk_spread(adata, rows), chunk_spread(adata, rows, order)
    out = permute(adata, order)
    if keys.ORIGINAL_ROW not in out.obs:  # the current order is the original one
        out.obs[keys.ORIGINAL_ROW] = order
    out.uns[keys.DYNADASK] = dict(out.uns.get(keys.DYNADASK, {}))
    out.uns[keys.DYNADASK][keys.REORDER] = _record(method, order, rows, before, after)
    return out


def _reorder_store(
    path: Path | Remote, order: np.ndarray | None, method: str, basis: str
) -> ad.AnnData:
    adata = open_store(path)
    order, method = _the_order(adata, order, method, basis)
    dest = kr.inverse(order)
    rows = chunk_rows(adata)
    bounds = gr.chunk_bounds(adata.n_obs, rows)
    scratch = _scratch_beside(path)
    try:
        shared = share([dest])[0]
        graph = _knn_graph(adata)
        before = after = float("nan")
        if graph is not None:
            codes = compute(
                gr.spread_codes(graph, bounds),
                gr.spread_codes(graph, bounds, shared),
                desc="chunk spread",
            )
            before, after = (kr.spread_of(c, len(bounds) - 1) for c in codes)
        folders = iter(scratch / f"{i:03d}" for i in range(10**6))

        def moved(x: Any, columns: Any = None) -> Any:
            if isinstance(x, da.Array):
                return gr.permute_rows(x, shared, bounds, next(folders), columns=columns)
            if isinstance(x, pd.DataFrame):
                return x.iloc[order]
            if columns is not None:
                x = sparse.csr_matrix(x)[order][:, order]
                x.sort_indices()
                return x
            return x[order]

        matrices = {
            "X": None if adata.X is None else moved(adata.X),
            "layers": {k: moved(v) for k, v in adata.layers.items()},
            "obsm": {k: moved(v) for k, v in adata.obsm.items()},
            "obsp": {k: moved(v, columns=shared) for k, v in adata.obsp.items()},
        }
        frame = _with_original_rows(adata.obs).iloc[order]
        record = adata.uns.setdefault(keys.DYNADASK, {})
        record[keys.REORDER] = _record(method, order, rows, before, after)
        commit(
            adata,
            "reorder",
            **matrices,
            obs=frame,
            uns=_permuted_uns(adata.uns, order, dest, adata.n_obs),
        )
    except BaseException:
        remove_settled(scratch)
        raise
    remove(scratch)
    _new_order_id(path)
    return open_store(path)


def _scratch_beside(path: Path | Remote) -> Path:
    """Where the reorder's intermediate row blocks go: a folder every worker reads and writes.

    Beside a local store; for an object store, under ``$DYNADASK_SCRATCH`` (the shared
    folder of workers on other hosts, as for :func:`dynadask._core.compute.share`), else in
    the temporary folder (right when the workers share this host).
    """
    name = f"{path.name}.reorder-{uuid.uuid4().hex[:8]}"
    if isinstance(path, Remote):
        shared = os.environ.get(SCRATCH_ENV)
        return Path(shared if shared else tempfile.gettempdir()) / name
    return path.with_name(name)


def _the_order(adata: ad.AnnData, order: Any, method: str, basis: str) -> tuple[np.ndarray, str]:
    """The order to apply and how it was made (``'given'``, ``'graph'`` or ``'kdtree'``)."""
    if order is None:
        graph = adata.obsp[keys.CONNECTIVITIES] if keys.CONNECTIVITIES in adata.obsp else None
        method = gl.resolve(method, graph is not None)
        order = gl.locality_order(graph, lambda: _embedding(adata, basis), method)
    else:
        method = "given"
    order = np.asarray(order)
    if order.shape != (adata.n_obs,):
        raise InputError(f"order has shape {order.shape} but adata has {adata.n_obs} cells")
    kr.inverse(order)  # raises if it is not a permutation
    return order.astype(np.int64), method


def _embedding(adata: ad.AnnData, basis: str) -> np.ndarray:
    """``obsm['X_<basis>']`` in memory (float32), for the k-d tree order."""
    name = keys.basis_key(basis)
    if name not in adata.obsm:
        raise MissingKeyError(
            f"obsm[{name!r}] is missing: run dyn.tl.neighbors (graph order) or dyn.pp.pca "
            "first, or pass order="
        )
    x = adata.obsm[name]
    if isinstance(x, da.Array):
        x = compute(x, desc=f"read {name}")[0]
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32)


def _with_original_rows(obs: pd.DataFrame) -> pd.DataFrame:
    """``obs`` with the original-row column (a copy with it added when it is missing)."""
    if keys.ORIGINAL_ROW in obs:
        return obs
    obs = obs.copy()
    obs[keys.ORIGINAL_ROW] = np.arange(len(obs), dtype=np.int64)
    return obs


def _record(method: str, order: Any, rows: int, before: float, after: float) -> dict:
    n_chunks = -(-len(order) // max(rows, 1))
    return {
        "method": str(method),
        "chunk_cells": int(rows),
        "n_chunks": int(n_chunks),
        "spread_before": float(before),
        "spread_after": float(after),
    }


def _permuted_uns(
    uns: Mapping[str, Any], order: np.ndarray, dest: np.ndarray, n: int
) -> dict[str, Any]:
    """The ``uns`` dicts that hold a kNN ``indices`` table (one row per cell), permuted.

    Their ``indices`` are moved and renamed (cell positions), their other tables of one row
    per cell (e.g. dense ``distances``) moved.
    """
    out = {}
    for key, entry in uns.items():
        if not isinstance(entry, Mapping) or "indices" not in entry:
            continue
        idx = entry["indices"]
        if not (isinstance(idx, np.ndarray) and idx.ndim == 2 and idx.shape[0] == n):
            continue
        if idx.dtype.kind not in "iu":
            continue
        fixed = dict(entry)
        for name, value in entry.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n:
                fixed[name] = value[order]
        fixed["indices"] = kr.permute_knn_indices(idx, order, dest)
        out[key] = fixed
    return out


def _knn_graph(adata: ad.AnnData) -> Any:
    for key in (keys.DISTANCES, keys.CONNECTIVITIES):
        if key in adata.obsp:
            return adata.obsp[key]
    return None


def chunk_rows(adata: ad.AnnData) -> int:
    """Cells per row chunk: the first Dask array's row blocks, else the chunk policy's."""
    for x in [adata.X, *adata.layers.values(), *adata.obsm.values(), *adata.obsp.values()]:
        if isinstance(x, da.Array):
            return int(x.chunks[0][0])
    return get_chunk_policy().rows_per_block(adata.n_vars, adata.n_obs)


def _new_order_id(path: Path | Remote) -> None:
    """Give the store a new row-order id, so that AnnData opened before cannot commit."""
    root = open_group(path, mode="a")
    attrs = dict(root.attrs.get(keys.DYNADASK, {}))
    attrs[keys.ORDER_ID] = uuid.uuid4().hex
    root.attrs[keys.DYNADASK] = attrs
    consolidate(path)
