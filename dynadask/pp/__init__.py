"""Preprocessing: filters, size factors, normalisation, feature genes and PCA."""

from .gene_selection import normalized_X, select_genes_monocle
from .gini import calc_Gini
from .normalization import (
    calc_sz_factor,
    log1p,
    normalize,
    normalize_cell_expr_by_size_factors,
)
from .pca import pca, top_pca_genes
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
from .svr import calc_dispersion_by_svr, get_svr_filter

normalize_cells = normalize

__all__ = [
    "Preprocessor",
    "basic_stats",
    "calc_Gini",
    "calc_dispersion_by_svr",
    "calc_sz_factor",
    "filter_cells",
    "filter_cells_by_outliers",
    "filter_genes",
    "filter_genes_by_clusters",
    "filter_genes_by_outliers",
    "filter_genes_by_pattern",
    "get_svr_filter",
    "log1p",
    "normalize",
    "normalize_cell_expr_by_size_factors",
    "normalize_cells",
    "normalized_X",
    "pca",
    "recipe_monocle",
    "select_genes_monocle",
    "top_pca_genes",
]
