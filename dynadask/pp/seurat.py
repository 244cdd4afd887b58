"""Seurat's feature genes: the binned, z-scored dispersion of size-factor-normalised X."""

from __future__ import annotations

import anndata as ad
import numpy as np

from .._core import keys
from .._core.errors import InputError
from ..kernels import preprocess_genes as kg
from ._pending import Pending

GENE_MEAN, GENE_VARIANCE, HIGHLY_VARIABLE = (
    "pp_gene_mean",
    "pp_gene_variance",
    "gene_highly_variable",
)


def select_from_moments_seurat(
    adata: ad.AnnData,
    pending: Pending,
    stats: dict,
    *,
    n_top_genes: int | None = 2000,
    algorithm: str = "seurat_dispersion",
    gene_names: list[str] | None = None,
    var_filter_key: str = keys.PASS_BASIC_FILTER,
    **_: object,
) -> np.ndarray:
    """Choose feature genes as dynamo's seurat recipe does, from per-gene sums of ``X / s``.

    Among the genes of ``var[var_filter_key]`` (or ``gene_names``): mean and sample variance
    over the cells, binned z-scored log dispersion; the ``n_top_genes`` largest (ties kept;
    ``None``: every gene, as dynamo's recipe then sets it to the number of genes).
    Adds ``pp_gene_mean`` / ``pp_gene_variance`` (the mean and variance of the log
    dispersion in the gene's bin, the values dynamo writes under these names),
    ``gene_highly_variable`` and ``use_for_pca`` to ``pending`` and returns the mask.
    """
    if algorithm != "seurat_dispersion":
        raise InputError(f"algorithm={algorithm!r}: the seurat recipe uses 'seurat_dispersion'")
    if gene_names:
        idx = adata.var_names.get_indexer(list(gene_names))
        idx = idx[idx >= 0]
    else:
        passed = pending.column(adata, "var", var_filter_key) if var_filter_key else None
        passed = np.ones(adata.n_vars, bool) if passed is None else passed.astype(bool)
        idx = np.flatnonzero(passed)
    n = float(stats["n"][0])
    mean = stats["sum"][idx] / n
    var = kg.gene_variance(stats["sum"][idx], stats["sumsq"][idx], n, ddof=1)
    norm, bin_mean, bin_var = kg.seurat_dispersion_norm(mean, var)
    top = adata.n_vars if n_top_genes is None else int(n_top_genes)
    chosen_idx = kg.top_with_ties(norm, top)
    chosen = np.zeros(adata.n_vars, dtype=bool)
    chosen[idx] = chosen_idx
    for key, values in ((GENE_MEAN, bin_mean), (GENE_VARIANCE, bin_var)):
        column = np.full(adata.n_vars, np.nan)
        column[idx] = values
        pending.var[key] = column
    pending.var[HIGHLY_VARIABLE] = chosen
    pending.var[keys.USE_FOR_PCA] = chosen.copy()
    return chosen
