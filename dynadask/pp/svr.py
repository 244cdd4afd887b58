"""dynamo's dispersion-versus-mean support-vector regression (``calc_dispersion_by_svr``)."""

from __future__ import annotations

from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
from scipy import sparse

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError, OptionError
from ..graph.preprocess import gene_moments
from ..kernels import preprocess_genes as kg
from ._inputs import fit_cells
from ._pending import Pending
from .gini import available_layers, layer_data

ALGORITHMS = ("cv_dispersion", "fano_dispersion")
_OPTIONS = {
    "relative_expr": True,
    "total_szfactor": "total_Size_Factor",
    "min_expr_cells": 0,
    "min_expr_avg": 0,
    "max_expr_avg": np.inf,
    "winsorize": False,
    "winsor_perc": (1, 99.5),
    "svr_gamma": None,
    "sort_inverse": False,
}


def svr_key(layer: str) -> str:
    """Uns key of a layer's fit: ``velocyto_SVR`` for X, else ``<layer>_velocyto_SVR``."""
    return "velocyto_SVR" if layer in ("X", "raw") else f"{layer}_velocyto_SVR"


def _prefix(layer: str) -> str:
    return "" if layer == "X" else f"{layer}_"


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_OPTIONS))
    if unknown:
        raise OptionError(f"calc_dispersion_by_svr got unexpected keyword argument(s) {unknown}")
    options = {**_OPTIONS, **kwargs}
    if options["winsorize"]:
        raise InputError(
            "winsorize=True needs each gene's percentiles, which dynadask does not compute "
            "here: leave winsorize=False"
        )
    return options


def _size_factors(adata: ad.AnnData, layer: str, options: dict) -> np.ndarray:
    """The size factors dynamo divides ``layer`` by (ones without ``relative_expr``)."""
    ones = np.ones(adata.n_obs)
    if not options["relative_expr"]:
        return ones
    total = options["total_szfactor"]
    if total is not None and total in adata.obs:
        return adata.obs[total].to_numpy(dtype=np.float64)
    key = keys.size_factor_key(layer)
    if key in adata.obs:
        return adata.obs[key].to_numpy(dtype=np.float64)
    if layer == "X":
        raise MissingKeyError(
            "obs['Size_Factor'] is missing: run dyn.pp.calc_sz_factor first, or pass "
            "relative_expr=False to fit X as it is"
        )
    return ones


def _subset(
    adata: ad.AnnData, filter_bool: Any, use_all_genes_cells: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Genes (mask) fitted and cells (mask or ``None``) summed over, as dynamo picks them."""
    if use_all_genes_cells:
        genes = np.ones(adata.n_vars, bool) if filter_bool is None else np.asarray(filter_bool)
        if genes.dtype != bool or genes.size != adata.n_vars:
            raise InputError(f"filter_bool must be a boolean mask of the {adata.n_vars} genes")
        cells = None
    else:
        found = [k for k in (keys.USE_FOR_PCA, keys.PASS_BASIC_FILTER) if k in adata.var]
        genes = adata.var[found[0]].to_numpy(dtype=bool) if found else np.ones(adata.n_vars, bool)
        cells = (
            adata.obs[keys.USE_FOR_PCA].to_numpy(bool) if keys.USE_FOR_PCA in adata.obs else None
        )
    kept = fit_cells(adata)
    if kept is not None:
        cells = kept if cells is None else cells & kept
    return genes, cells


def _is_dense(x: Any) -> bool:
    if isinstance(x, da.Array):
        return not sparse.issparse(x._meta)
    return not sparse.issparse(x)


def dispersion_columns(
    stats: dict, genes: np.ndarray, algorithm: str, options: dict, ddof: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Fit the SVR over the detected ``genes``; return the var columns and the uns record.

    The columns (``log_m``, ``log_cv``, ``score``) are NaN outside ``genes``, and NaN, NaN,
    ``-inf`` for genes of ``genes`` not detected (too few expressing cells, mean outside
    the bounds). For ``fano_dispersion`` they hold the mean and the Fano factor.
    """
    n = float(stats["n"][0])
    mean = stats["sum"] / n
    detected = (
        genes
        & (stats["npos"] >= options["min_expr_cells"])
        & (mean <= options["max_expr_avg"])
        & (mean >= options["min_expr_avg"])
    )
    idx = np.flatnonzero(detected)
    if idx.size == 0:
        raise InputError("no gene is left to fit: relax min_expr_cells / min_expr_avg")
    if algorithm == "cv_dispersion":
        m, cv = kg.mean_cv_ddof(stats["sum"][idx], stats["sumsq"][idx], n, ddof)
    else:
        m, cv = kg.mean_fano(stats["sum"][idx], stats["sumsq"][idx], n)
        if not np.isfinite(cv).all():
            raise InputError(
                f"{int((~np.isfinite(cv)).sum())} fitted genes have no expression, so no Fano "
                "factor: filter genes first (dyn.pp.filter_genes) or set min_expr_avg > 0"
            )
    score, gamma = kg.svr_scores(m, cv, options["svr_gamma"])
    score = -score if options["sort_inverse"] else score
    columns = {name: np.full(genes.size, np.nan) for name in ("log_m", "log_cv", "score")}
    columns["score"][genes] = -np.inf
    for name, values in zip(columns, (m, cv, score), strict=True):
        columns[name][idx] = values
    return columns, {"mean": m, "cv": cv, "svr_gamma": gamma}


def calc_dispersion_by_svr(
    adata: ad.AnnData,
    filter_bool: np.ndarray | None = None,
    layers: str | list[str] = "X",
    *,
    algorithm: str = "cv_dispersion",
    use_all_genes_cells: bool = False,
    **SVRs_kwargs: Any,  # noqa: N803 - dynamo's name
) -> ad.AnnData:
    """Score genes by how much more they vary than genes of the same mean (SVR), as dynamo.

    Each layer is divided by its cells' size factors (``obs['Size_Factor']`` for X,
    ``obs['<layer>_Size_Factor']`` for a layer, ``obs[total_szfactor]`` instead when
    present), then, from per-gene sums over the row blocks (one pass per call), either the
    ``log2`` mean and ``log2`` coefficient of variation (``'cv_dispersion'``; population
    s.d. for sparse data, sample s.d. for dense data, as dynamo) or the mean and the Fano
    factor (``'fano_dispersion'``) of each fitted gene. An RBF support-vector regression
    (scikit-learn's ``SVR``, ``gamma = 150 / n_genes`` by default) of the second on the
    first gives the trend; the score is the residual.

    Which genes and cells: with ``use_all_genes_cells=False`` (default) the genes of
    ``var['use_for_pca']`` (else ``var['pass_basic_filter']``, else all) and the cells of
    ``obs['use_for_pca']`` (else all); with ``True``, the genes of ``filter_bool`` and every
    cell. On a store, cells flagged ``False`` in ``obs['pass_basic_filter']`` are left out.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData (dynamo calls it ``adata_ori``).
    filter_bool
        Boolean mask of genes (only with ``use_all_genes_cells``, as in dynamo).
    layers
        ``'X'``, a layer name, a list of them or ``'all'``.
    algorithm
        ``'cv_dispersion'`` or ``'fano_dispersion'``.
    use_all_genes_cells
        Fit the genes of ``filter_bool`` over all cells.
    **SVRs_kwargs
        dynamo's options: ``svr_gamma``, ``sort_inverse`` (negate the score),
        ``relative_expr`` (divide by size factors; default True), ``total_szfactor``,
        ``min_expr_cells``, ``min_expr_avg``, ``max_expr_avg``; ``winsorize`` must stay
        False.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    var['log_m'], var['log_cv'], var['score'] (``<layer>_`` prefixed for layers other than
    X); uns['velocyto_SVR'] (``uns['<layer>_velocyto_SVR']``): ``mean``, ``cv``,
    ``svr_gamma``

    Raises
    ------
    dynadask.InputError
        Unknown algorithm, ``winsorize=True``, no gene left, or a fitted gene without
        expression (fano).
    dynadask.MissingKeyError
        A missing layer, or X without ``obs['Size_Factor']`` (with ``relative_expr``).
    """
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm={algorithm!r} is not available: use one of {ALGORITHMS}")
    options = _options(SVRs_kwargs)
    names = available_layers(adata, layers)
    genes, cells = _subset(adata, filter_bool, use_all_genes_cells)
    factors = {name: _size_factors(adata, name, options) for name in names}
    lazy = [gene_moments(layer_data(adata, n), factors[n], cells) for n in names]
    stats = compute(*lazy, desc="gene moments")
    pending = Pending()
    for name, got in zip(names, stats, strict=True):
        ddof = 1 if _is_dense(layer_data(adata, name)) else 0
        columns, record = dispersion_columns(got, genes, algorithm, options, ddof)
        pending.var.update({_prefix(name) + k: v for k, v in columns.items()})
        pending.uns[svr_key(name)] = record
    pending.commit(adata, "dispersion")
    return adata


def get_svr_filter(
    adata: ad.AnnData,
    layer: str = "spliced",
    n_top_genes: int = 3000,
    *,
    return_adata: bool = False,
) -> ad.AnnData | np.ndarray:
    """The ``n_top_genes`` genes with the highest finite SVR score, as dynamo picks them.

    Reads ``var['score']`` (layer ``'X'`` or ``'all'``) or ``var['<layer>_score']`` from
    :func:`calc_dispersion_by_svr`. Ties at the cut go to the first genes in var order.

    Parameters
    ----------
    adata
        AnnData with the score column.
    layer
        The layer whose score ranks the genes.
    n_top_genes
        Number of genes chosen.
    return_adata
        Write the choice into ``var['use_for_pca']`` and return ``adata``; else return the
        mask.

    Returns
    -------
    anndata.AnnData or numpy.ndarray
        ``adata``, or the boolean mask over the genes.

    Writes
    ------
    var['use_for_pca'] with ``return_adata``

    Raises
    ------
    dynadask.MissingKeyError
        If the score column is missing.
    """
    column = "score" if layer in ("X", "all") else f"{layer}_score"
    if column not in adata.var:
        raise MissingKeyError(
            f"var[{column!r}] is missing: run dyn.pp.calc_dispersion_by_svr(adata, "
            f"layers={'X' if column == 'score' else layer!r}) first"
        )
    mask = kg.top_scores(adata.var[column].to_numpy(dtype=np.float64), n_top_genes)
    if not return_adata:
        return mask
    Pending(var={keys.USE_FOR_PCA: mask}).commit(adata, "select_genes")
    return adata
