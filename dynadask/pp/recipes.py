"""The Preprocessor's Pearson-residual recipes and its ``regress_out`` step.

Each recipe collects its results in one :class:`Pending` and commits once (stage
'preprocess'); X's new values are lazy row blocks written by that commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import OptionError
from ..graph import residuals as gres
from ..graph.summaries import cell_totals
from ._inputs import subset_cells, x_counts
from ._pending import Pending
from .gene_selection import transformed_X
from .normalization import normalized_layers, size_factor_columns
from .pearson import add_residual_layers, pearson_selection
from .qc import qc_pass, stats_columns
from .regress import covariates, regressed

STAGE = "preprocess"
_REGRESS_OPTIONS = {"obs_keys", "layer", "gene_selection_key", "n_cores"}
_SELECT_OPTIONS = {"n_top_genes", "layer", "theta", "clip", "batch_key", "check_values"}
_NORMALIZE_OPTIONS = {"layers", "select_genes_layer", "select_genes_key", "theta", "clip"}


def regress_out_pending(
    adata: ad.AnnData,
    pending: Pending,
    options: dict[str, Any],
    fit_cells: Callable[[ad.AnnData, Pending], np.ndarray | None],
) -> Any:
    """Dynamo's ``regress_out`` inside a recipe: remove the obs columns' linear effect.

    ``options``: ``obs_keys`` (obs columns, also ones the recipe computed, e.g.
    ``nCounts``), ``layer`` (``'X'``, default, as the stage leaves it, or a layer),
    ``gene_selection_key`` (a boolean var column: only those genes are regressed, the
    others kept), ``n_cores`` (accepted; the blocks run on the Dask workers). The fit runs
    over the cells that pass the filter. Returns the new X (lazy, dense float32 row blocks
    on the regressed genes), or ``None`` when a layer other than X was regressed.
    """
    unknown = sorted(set(options) - _REGRESS_OPTIONS)
    if unknown:
        raise OptionError(f"regress_out_kwargs: unknown option(s) {unknown}")
    obs_keys = list(options.get("obs_keys") or [])
    layer = options.get("layer", "X") or "X"
    frame = adata.obs.copy()
    for key in obs_keys:
        column = pending.column(adata, "obs", key)
        if column is not None:
            frame[key] = column
    a = covariates(ad.AnnData(obs=frame), obs_keys)
    if layer == "X":
        x = pending.X if pending.X is not None else transformed_X(adata, pending)
        x = x_counts(adata) if x is None else x
    else:
        x = pending.layers[layer] if layer in pending.layers else adata.layers[layer]
    genes = None
    key = options.get("gene_selection_key")
    if key is not None:
        mask = pending.column(adata, "var", key)
        if mask is None or mask.dtype != bool:
            raise OptionError(f"gene_selection_key {key!r} must name a boolean var column")
        genes = np.flatnonzero(mask)
    residuals, _, _ = regressed(x, a, genes=genes, cells=fit_cells(adata, pending))
    new = residuals if genes is None else gres.with_columns(x, residuals, genes)
    if layer == "X":
        pending.X = new
        return new
    pending.layers[layer] = new
    return None


def _hvg_cell_filter(pre: Any, adata: ad.AnnData, pending: Pending) -> np.ndarray:
    """Drop (or flag) cells without counts in the feature genes; their sums over them."""
    genes = np.asarray(pending.var[keys.USE_FOR_PCA], dtype=bool)
    (sums,) = compute(cell_totals(x_counts(adata), genes=genes), desc="feature-gene cell sums")
    sums = np.asarray(sums).ravel()
    flags = pending.column(adata, "obs", keys.PASS_BASIC_FILTER)
    flags = np.ones(adata.n_obs, bool) if flags is None else flags.astype(bool).copy()
    flags &= sums > 0
    options = pre.filter_cells_by_highly_variable_genes_kwargs
    keep_filtered = bool(options.get("keep_filtered", False))
    pending.obs[keys.PASS_BASIC_FILTER] = flags
    if subset_cells(adata, flags, keep_filtered=keep_filtered or pre.keep_filtered_cells):
        for key, value in list(pending.obs.items()):
            pending.obs[key] = np.asarray(value)[flags]
        sums = sums[flags]
    return sums


def _residual_x(pre: Any, adata: ad.AnnData, pending: Pending, sums: np.ndarray) -> None:
    options = dict(pre.normalize_selected_genes_kwargs)
    unknown = sorted(set(options) - _NORMALIZE_OPTIONS - {"copy"})
    if unknown:
        raise OptionError(f"normalize_selected_genes_kwargs: unknown option(s) {unknown}")
    layers = options.pop("layers", "X")
    options.pop("copy", None)
    add_residual_layers(
        adata,
        pending,
        [layers] if isinstance(layers, str) else list(layers),
        check_values=False,
        x=x_counts(adata),
        cell_sums=sums,
        **options,
    )


def _select(pre: Any, adata: ad.AnnData, pending: Pending) -> None:
    options = {
        k: v for k, v in pre.select_genes_kwargs.items() if k not in ("chunksize", "inplace")
    }
    unknown = sorted(set(options) - _SELECT_OPTIONS)
    if unknown:
        raise OptionError(f"select_genes_kwargs: unknown option(s) {unknown} (Pearson residuals)")
    pearson_selection(adata, pending, **options)
    pre._edit_gene_list(adata, pending, np.asarray(pending.var[keys.USE_FOR_PCA], dtype=bool))


def _finish(pre: Any, adata: ad.AnnData, pending: Pending) -> None:
    if pre.regress_out_kwargs.get("obs_keys"):
        regress_out_pending(adata, pending, pre.regress_out_kwargs, pre._fit_cells)
    pre._pca(adata, pending, None, pending.X)
    pending.commit(adata, STAGE)


def pearson_residuals_recipe(
    pre: Any, adata: ad.AnnData, tkey: str | None, experiment_type: str | None
) -> None:
    """QC statistics, Pearson feature genes, feature-gene cell filter, residual X, PCA."""
    pending = pre._start(adata, tkey, experiment_type)
    obs, var = stats_columns(qc_pass(adata))
    pending.obs.update(obs)
    pending.var.update(var)
    _select(pre, adata, pending)
    sums = _hvg_cell_filter(pre, adata, pending)
    _residual_x(pre, adata, pending, sums)
    _finish(pre, adata, pending)


def monocle_pearson_residuals_recipe(
    pre: Any, adata: ad.AnnData, tkey: str | None, experiment_type: str | None
) -> None:
    """Monocle filters and normalised layers; Pearson feature genes and residual X; PCA."""
    pending = pre._start(adata, tkey, experiment_type)
    qc = pre._filter(adata, pending)
    _select(pre, adata, pending)
    names = pending.uns["pp"]["experiment_layers"]
    pending.obs.update(
        size_factor_columns(
            qc, names, pending.uns["pp"]["experiment_total_layers"], **pre.size_factor_kwargs
        )
    )
    sums = _hvg_cell_filter(pre, adata, pending)
    normalized_layers(adata, pending, names, size_factor_per_layer=pre.size_factor_per_layer)
    pending.uns["pp"]["X_normalized"] = False  # X keeps counts outside the feature genes
    _residual_x(pre, adata, pending, sums)
    _finish(pre, adata, pending)
