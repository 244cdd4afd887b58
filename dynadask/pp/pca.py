"""Exact PCA over row blocks: one cross-product pass, one eigendecomposition, lazy scores."""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from .._core.model import ModelRecord, with_record
from ..graph import pca as gpca
from ..kernels import pca as kpca
from ..kernels.pca import pca_from_moments
from ._inputs import fit_cells
from ._pending import Pending
from .gene_selection import x_view


def finish_pca(
    adata: ad.AnnData,
    pending: Pending,
    moments: dict,
    source: tuple[Any, np.ndarray, bool],
    *,
    n_pca_components: int = 30,
    pca_key: str = keys.X_PCA,
    pcs_key: str = "PCs",
    layer: str | None = None,
) -> None:
    """PCA from the moments over ``genes``; drops genes without counts from ``use_for_pca``.

    ``moments`` (``n``, ``sum``, ``gram``) are over the genes ``moments['genes']`` (indices
    into var), which may be a superset of the selected genes. ``source`` is read from X
    (``layer=None``) or from ``layers['X_<layer>']``. Besides dynamo's keys, the fitted-model
    record ``uns['dynadask_models'][pca_key]`` (kind ``'pca'``) is written.
    """
    use = np.asarray(pending.column(adata, "var", keys.USE_FOR_PCA), dtype=bool)
    cover = np.asarray(moments["genes"])
    rows = np.flatnonzero(use[cover])
    total = moments["sum"][rows]
    valid = np.isfinite(total) & (total != 0)
    use = use.copy()
    use[cover[rows[~valid]]] = False
    rows = rows[valid]
    if rows.size < 2:
        raise InputError(
            f"only {rows.size} selected gene(s) have counts: PCA needs at least 2 "
            "(check the gene filters and that the layers hold counts)"
        )
    k = min(n_pca_components, rows.size - 1)
    mean, comps, _, ratio = pca_from_moments(
        float(moments["n"][0]), total[valid], moments["gram"][np.ix_(rows, rows)], k
    )
    counts, sf, log = source
    pending.obsm[pca_key] = gpca.project(counts, sf, cover[rows], mean, comps, log=log)
    pending.var[keys.USE_FOR_PCA] = use
    pending.uns.update({pcs_key: comps, "pca_mean": mean, "explained_variance_ratio_": ratio})
    record = _record(adata, pending, pca_key, pcs_key, cover[rows], float(moments["n"][0]), layer)
    pending.uns[keys.MODELS] = with_record(
        pending.uns if keys.MODELS in pending.uns else adata.uns, record
    )


def _record(adata, pending, pca_key, pcs_key, genes, n_fit, layer) -> ModelRecord:
    """The fitted-model record of a PCA: its genes, inputs and the cells it saw."""
    if layer is None:  # once committed, X holds the transformed values the PCA saw
        inputs, sf_key, log = "X", None, False
    else:
        inputs, sf_key, log = f"layers/{keys.normalised_key(layer)}", None, False
    n_fit = int(round(n_fit))
    return ModelRecord(
        name=pca_key,
        kind="pca",
        inputs=inputs,
        n_obs=adata.n_obs,
        n_fit=n_fit,
        cells="all" if n_fit == adata.n_obs else f"obs:{keys.PASS_BASIC_FILTER}",
        params={"log": bool(log), "size_factors": sf_key},
        arrays={
            "components": pcs_key,
            "mean": "pca_mean",
            "explained_variance_ratio": "explained_variance_ratio_",
        },
        data={"genes": np.asarray(genes, dtype=np.int64)},
    )


def pca(
    adata: ad.AnnData,
    X_data: Any = None,  # noqa: N803 - dynamo's name
    n_pca_components: int = 30,
    *,
    pca_key: str = keys.X_PCA,
    pcs_key: str = "PCs",
    genes_to_append: list[str] | None = None,
    layer: str | None = None,
    svd_solver: str = "randomized",
    random_state: int = 0,
    use_truncated_SVD_threshold: int = 500_000,  # noqa: N803 - dynamo's name
    use_incremental_PCA: bool = False,  # noqa: N803 - dynamo's name
    incremental_batch_size: int | None = None,
    return_all: bool = False,
) -> ad.AnnData:
    """Principal components of X over the ``use_for_pca`` genes, exactly, out of core.

    One pass over row blocks accumulates per-gene sums and the genes x genes cross-product
    (one block dense at a time, float64); the covariance's eigenvectors are the loadings;
    the scores ``(x - mean) @ loadings`` are computed block by block. X is read as
    ``uns['pp']`` describes it (divided by ``Size_Factor`` and log1p after the recipe).
    Genes without counts are dropped from ``use_for_pca`` (as dynamo does). The sign of each
    axis makes its largest loading positive. dynamo's solver options are accepted and have
    no effect: the result is the exact PCA.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed).
    X_data
        Not supported out of core: must be ``None``.
    n_pca_components
        Number of components.
    pca_key, pcs_key
        obsm key of the scores, uns key of the loadings.
    genes_to_append
        Genes added to ``use_for_pca`` first.
    layer
        ``None``/``'X'``, or a layer whose normalised version ``X_<layer>`` is used as it is.
    svd_solver, random_state, use_truncated_SVD_threshold
        Accepted for dynamo compatibility (the decomposition is exact).
    use_incremental_PCA, incremental_batch_size
        Accepted for dynamo compatibility (the decomposition is exact).
    return_all
        Accepted for dynamo compatibility; the AnnData is returned.

    Returns
    -------
    anndata.AnnData
        ``adata``.

    Writes
    ------
    obsm[pca_key] (float32), uns[pcs_key] (genes in use x components, var order),
    uns['pca_mean'], uns['explained_variance_ratio_'], var['use_for_pca'],
    uns['dynadask_models'][pca_key] (the fitted-model record, kind ``'pca'``)
    """
    if X_data is not None:
        raise InputError("X_data is not supported: put the data in a layer and pass layer=")
    pending = Pending()
    use = pending.column(adata, "var", keys.USE_FOR_PCA)
    use = np.ones(adata.n_vars, bool) if use is None else use.astype(bool)
    if genes_to_append:
        use |= np.asarray(adata.var_names.isin(genes_to_append))
    pending.var[keys.USE_FOR_PCA] = use
    source = _source(adata, layer)
    genes = np.flatnonzero(use)
    lazy = gpca.cross_moments(*source[:2], genes, log=source[2], cells=fit_cells(adata))
    (moments,) = compute(lazy, desc="PCA moments")
    moments["genes"] = genes
    finish_pca(
        adata,
        pending,
        moments,
        source,
        n_pca_components=n_pca_components,
        pca_key=pca_key,
        pcs_key=pcs_key,
        layer=None if layer in (None, "X") else layer,
    )
    if use_incremental_PCA or return_all:
        warnings.warn(
            "use_incremental_PCA/return_all have no effect: the PCA is exact", stacklevel=2
        )
    pending.commit(adata, "pca")
    return adata


def _source(adata: ad.AnnData, layer: str | None) -> tuple[Any, np.ndarray, bool]:
    if layer in (None, "X"):
        return x_view(adata)
    key = keys.normalised_key(layer)
    if key not in adata.layers:
        raise MissingKeyError(
            f"layer {key!r} not found: run dyn.pp.normalize first (layers: {sorted(adata.layers)})"
        )
    return adata.layers[key], np.ones(adata.n_obs), False


def top_pca_genes(
    adata: ad.AnnData,
    pc_key: str = "PCs",
    n_top_genes: int = 100,
    *,
    pc_components: int | list[int] | None = None,
    adata_store_key: str = "top_pca_genes",
) -> ad.AnnData:
    """Flag the genes that are among the ``n_top_genes`` largest loadings of some component.

    Parameters
    ----------
    adata
        AnnData with PCA loadings (genes x components) in ``uns[pc_key]`` or ``varm[pc_key]``;
        loadings over the ``use_for_pca`` genes map back onto those genes.
    pc_key
        Where the loadings are.
    n_top_genes
        Genes taken from each component (by absolute loading).
    pc_components
        The first this many components, or a list of component indices (default: all).
    adata_store_key
        The var column written.

    Returns
    -------
    anndata.AnnData
        ``adata``.

    Writes
    ------
    var[adata_store_key]
    """
    if pc_key in adata.uns:
        loadings = np.asarray(adata.uns[pc_key])
    elif pc_key in adata.varm:
        loadings = np.asarray(adata.varm[pc_key])
    else:
        raise MissingKeyError(
            f"no PCA loadings {pc_key!r} in uns or varm: run dyn.pp.pca (or name pc_key)"
        )
    if isinstance(pc_components, int):
        loadings = loadings[:, :pc_components]
    elif pc_components is not None:
        loadings = loadings[:, list(pc_components)]
    top = kpca.top_loading_genes(loadings, n_top_genes)
    flags = np.zeros(adata.n_vars, dtype=bool)
    if top.size == adata.n_vars:
        flags = top
    elif keys.USE_FOR_PCA in adata.var and int(adata.var[keys.USE_FOR_PCA].sum()) == top.size:
        flags[np.flatnonzero(adata.var[keys.USE_FOR_PCA].to_numpy(bool))] = top
    else:
        raise InputError(
            f"{pc_key!r} has loadings for {top.size} genes, but there are {adata.n_vars} genes "
            f"and var['use_for_pca'] does not select {top.size}: rerun dyn.pp.pca"
        )
    Pending(var={adata_store_key: flags}).commit(adata, "top_pca_genes")
    return adata
