"""dynamo's ``filter_cells_by_highly_variable_genes``: drop cells without feature-gene counts."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import MissingKeyError
from ..graph.summaries import cell_totals
from ._inputs import subset_in_place
from ._pending import Pending
from .gini import available_layers, layer_data


def filter_cells_by_highly_variable_genes(
    adata: ad.AnnData,
    keep_filtered: bool = False,
    select_genes_layer: str = "X",
    *,
    high_var_genes_key: str = keys.USE_FOR_PCA,
    obs_store_key: str = keys.PASS_BASIC_FILTER,
) -> ad.AnnData:
    """Flag (and drop) the cells whose values over the feature genes sum to 0, as dynamo.

    One pass over the row blocks sums each cell over the genes of
    ``var[high_var_genes_key]``. Cells summing to 0 get ``False`` in
    ``obs[obs_store_key]`` (created ``True`` when absent; earlier ``False`` values stay).
    Without ``keep_filtered`` they are dropped in memory; a store keeps them, flagged, with
    a warning.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    keep_filtered
        Keep the failing cells (flagged only).
    select_genes_layer
        ``'X'`` or the layer summed.
    high_var_genes_key
        var column of the feature genes.
    obs_store_key
        obs column of the flags.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated (subset in memory unless ``keep_filtered``).

    Writes
    ------
    obs[obs_store_key]

    Raises
    ------
    dynadask.MissingKeyError
        If ``var[high_var_genes_key]`` or the layer is absent (run gene selection first).
    """
    if high_var_genes_key not in adata.var:
        raise MissingKeyError(
            f"var[{high_var_genes_key!r}] is missing: run a gene selection first "
            "(dyn.pp.select_genes_monocle)"
        )
    (layer,) = available_layers(adata, [select_genes_layer])
    genes = adata.var[high_var_genes_key].to_numpy(dtype=bool)
    (sums,) = compute(cell_totals(layer_data(adata, layer), genes=genes), desc="cell sums")
    flags = (
        adata.obs[obs_store_key].to_numpy(dtype=bool).copy()
        if obs_store_key in adata.obs
        else np.ones(adata.n_obs, dtype=bool)
    )
    flags[np.asarray(sums).ravel() == 0] = False
    Pending(obs={obs_store_key: flags}).commit(adata, "filter_cells")
    if not keep_filtered:
        subset_in_place(adata, flags, "obs")
    return adata
