"""Preprocessing: filters, size factors, normalisation, feature genes and PCA."""

from .cell_cycle import cell_cycle_scores
from .fractions import highest_frac_genes
from .gene_selection import normalized_X, select_genes_monocle
from .gini import calc_Gini
from .hvg_cells import filter_cells_by_highly_variable_genes
from .normalization import (
    calc_sz_factor,
    log1p,
    normalize,
    normalize_cell_expr_by_size_factors,
)
from .pca import pca, top_pca_genes
from .pearson import normalize_layers_pearson_residuals, select_genes_by_pearson_residuals
from .preprocessor import Preprocessor, recipe_monocle
from .qc import (
    basic_stats,
    filter_cells,
    filter_cells_by_outliers,
    filter_genes,
    filter_genes_by_clusters,
    filter_genes_by_outliers,
    filter_genes_by_pattern,
)
from .ratios import calc_new_to_total_ratio
from .sctransform import sctransform
from .svr import calc_dispersion_by_svr, get_svr_filter
from .transform import log1p_adata_layer, scale

normalize_cells = normalize

__all__ = [
    "Preprocessor",
    "basic_stats",
    "calc_Gini",
    "calc_dispersion_by_svr",
    "calc_new_to_total_ratio",
    "calc_sz_factor",
    "cell_cycle_scores",
    "filter_cells",
    "filter_cells_by_highly_variable_genes",
    "filter_cells_by_outliers",
    "filter_genes",
    "filter_genes_by_clusters",
    "filter_genes_by_outliers",
    "filter_genes_by_pattern",
    "get_svr_filter",
    "highest_frac_genes",
    "log1p",
    "log1p_adata_layer",
    "normalize",
    "normalize_cell_expr_by_size_factors",
    "normalize_layers_pearson_residuals",
    "normalize_cells",
    "normalized_X",
    "pca",
    "recipe_monocle",
    "scale",
    "sctransform",
    "select_genes_by_pearson_residuals",
    "select_genes_monocle",
    "top_pca_genes",
]
