"""dynamo's ``highest_frac_genes`` (the genes with the largest share of the counts)."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._core.compute import compute
from .._core.errors import InputError
from ..graph.summaries import cell_totals, feature_fractions, gene_totals
from ._pending import Pending
from .gini import available_layers, layer_data


def _prefix_members(names: pd.Index, prefixes: list[str]) -> dict[str, np.ndarray]:
    """Genes of each prefix (a gene counts for its first matching prefix), in var order."""
    names = pd.Index(names.astype(str))
    owner = np.full(names.size, -1)
    for i, prefix in enumerate(prefixes):
        owner[(owner < 0) & np.asarray(names.str.startswith(prefix), dtype=bool)] = i
    if (owner < 0).all():
        raise InputError(f"no gene name starts with any of {prefixes}: check gene_prefix_list")
    return {p: np.flatnonzero(owner == i) for i, p in enumerate(prefixes)}


def highest_frac_genes(
    adata: ad.AnnData,
    store_key: str = "highest_frac_genes",
    n_top: int = 30,
    *,
    gene_prefix_list: list[str] | None = None,
    gene_prefix_only: bool = False,
    layer: str | None = None,
) -> ad.AnnData:
    """The genes (or gene-name prefixes) holding the most counts, with each cell's shares.

    As dynamo: genes are ranked by ``percent``, their total over all cells divided by the
    number of genes; the table holds, for each cell with counts, each top gene's count over
    the cell's total. With ``gene_prefix_list`` and ``gene_prefix_only`` the genes of each
    prefix are summed (a gene counts for its first matching prefix; prefixes without genes
    are left out) and the prefixes ranked. Two passes over the row blocks: cell and gene
    totals (and the prefix sums), then the top genes' per-cell shares.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    store_key
        uns key of the results.
    n_top
        Number of genes (or prefixes) kept.
    gene_prefix_list
        Gene-name prefixes (e.g. ``['mt-', 'Rpl']``).
    gene_prefix_only
        Rank the prefixes instead of the genes (only with ``gene_prefix_list``).
    layer
        Layer (X when ``None``).

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    uns[store_key]: ``top_genes_df`` (cells with counts x top features, shares),
    ``gene_percents`` (data frame, column ``percent``), ``selected_indices``, ``layer``,
    ``gene_prefix_list``, ``show_individual_prefix_gene`` (``None`` values are not written
    into a store); ``gene_mat``, the matrix ranked: the cells x prefixes sums, or the layer
    itself, which is set in ``adata.uns`` only (a store would get a copy of the layer)

    Raises
    ------
    dynadask.InputError
        If no gene matches ``gene_prefix_list`` or ``n_top`` is not positive.
    dynadask.MissingKeyError
        If ``layer`` is absent.
    """
    if n_top < 1:
        raise InputError(f"n_top must be at least 1, not {n_top}")
    name = "X" if layer is None else layer
    (name,) = available_layers(adata, [name])
    x = layer_data(adata, name)
    members = _prefix_members(adata.var_names, gene_prefix_list) if gene_prefix_list else {}
    by_prefix = bool(members) and gene_prefix_only
    members = {p: m for p, m in members.items() if m.size}
    lazy: list[Any] = [cell_totals(x), gene_totals(x)]
    if by_prefix:
        lazy.append(feature_fractions(x, list(members.values())))
    got = compute(*lazy, desc="gene totals")
    total = np.asarray(got[0], dtype=np.float64).ravel()
    keep = total != 0
    if by_prefix:
        names = pd.Index(list(members))
        gene_mat = np.asarray(got[2])[keep] * total[keep, None]
        percents = gene_mat.sum(axis=0) / gene_mat.shape[1]
    else:
        names = adata.var_names
        gene_mat = x
        percents = np.asarray(got[1], dtype=np.float64) / adata.n_vars
    selected = np.argsort(-percents, kind="stable")[:n_top]
    if by_prefix:
        shares = gene_mat[:, selected] / total[keep, None]
    else:
        (shares,) = compute(feature_fractions(x, [[i] for i in selected]), desc="gene shares")
        shares = np.asarray(shares)[keep]
    record = {
        "top_genes_df": pd.DataFrame(
            shares, index=adata.obs_names[keep], columns=names[selected].astype(str)
        ),
        "layer": layer,
        "selected_indices": selected,
        "gene_prefix_list": gene_prefix_list,
        "show_individual_prefix_gene": gene_prefix_only,
        "gene_percents": pd.DataFrame({"percent": percents}, index=names.astype(str)),
    }
    stored = {k: v for k, v in record.items() if v is not None}
    if by_prefix:  # cells x prefixes: small
        stored["gene_mat"] = gene_mat
    Pending(uns={store_key: stored}).commit(adata, "highest_frac_genes")
    adata.uns[store_key] = {**record, "gene_mat": gene_mat}
    return adata
