"""Monocle-style feature genes: dispersion (coefficient of variation) versus mean, by SVR."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph.preprocess import normalized, normalized_stats
from ..kernels import preprocess_genes as kg
from ._inputs import fit_cells, x_counts
from ._pending import Pending
from .gini import available_layers, gini_of, layer_data

SORT_BY = ("cv_dispersion", "fano_dispersion", "gini")


def x_view(adata: ad.AnnData, pending: Pending | None = None) -> tuple[Any, np.ndarray, bool]:
    """X as the steps of a stage read it: the stored X, the size factors and log still to apply.

    X holds what ``uns['pp']`` says of it, as in dynamo: divided by ``obs['Size_Factor']``
    once ``X_normalized`` is committed, log-transformed once ``X_norm_method`` is 'log1p'.
    Within a stage the transforms recorded in ``pending`` but not yet committed are applied as
    X is read (the stage's commit then writes the transformed X).
    """
    done = adata.uns.get("pp", {})
    pp = pending.uns.get("pp", done) if pending is not None else done
    sf = None
    if pp.get("X_normalized") and not done.get("X_normalized"):
        sf = (pending or Pending()).column(adata, "obs", "Size_Factor")
    sf = np.ones(adata.n_obs) if sf is None else sf
    log = pp.get("X_norm_method") == "log1p" and done.get("X_norm_method") != "log1p"
    return x_counts(adata), sf, log


def transformed_X(adata: ad.AnnData, pending: Pending) -> Any:  # noqa: N802 - X as in AnnData
    """The lazy X a stage's commit writes (``pending``'s transforms applied), or ``None``.

    ``None`` when ``pending`` records no transform of X beyond what X already holds.
    """
    x, sf, log = x_view(adata, pending)
    if not log and np.all(sf == 1):
        return None
    return normalized(x, sf, log=log)


def normalized_X(  # noqa: N802 - X as in AnnData
    adata: ad.AnnData, genes: np.ndarray | list | None = None
) -> Any:
    """X after preprocessing (``log1p(X / Size_Factor)``, as dynamo holds it), lazily.

    Parameters
    ----------
    adata
        In-memory or store-backed AnnData.
    genes
        Gene names, integer indices or a boolean mask over var (all genes when ``None``).

    Returns
    -------
    dask.array.Array
        cells x genes, float32, CSR row blocks (never dense).
    """
    idx = None
    if genes is not None:
        genes = np.asarray(genes)
        if genes.dtype == bool:
            idx = np.flatnonzero(genes)
        elif genes.dtype.kind in "iu":
            idx = genes
        else:
            idx = adata.var_names.get_indexer(genes)
            if (idx < 0).any():
                raise MissingKeyError(f"genes not in var_names: {list(genes[idx < 0])[:5]}")
    x, sf, log = x_view(adata)
    return normalized(x, sf, genes=idx, log=log)


def select_from_moments(
    adata: ad.AnnData,
    pending: Pending,
    stats: dict,
    *,
    n_top_genes: int = 2000,
    sort_by: str = "cv_dispersion",
    exprs_frac_for_gene_exclusion: float = 1,
    genes_to_exclude: list[str] | None = None,
    SVRs_kwargs: dict | None = None,  # noqa: N803 - dynamo's name
) -> np.ndarray:
    """Choose the feature genes from per-gene sums of X (``sum``, ``sumsq``, ``n``).

    Adds ``use_for_pca``, ``frac`` (and the SVR columns) to ``pending`` and returns the mask.
    ``sort_by='gini'`` ranks by ``var['X_gini']``, which must be in ``pending`` (or var).
    """
    check_sort_by(sort_by)
    n = float(stats["n"][0])
    passed = pending.column(adata, "var", keys.PASS_BASIC_FILTER)
    passed = np.ones(adata.n_vars, bool) if passed is None else passed.astype(bool)
    if adata.n_vars <= n_top_genes:
        chosen = np.ones(adata.n_vars, dtype=bool)
    elif sort_by == "gini":
        chosen = _gini_choice(pending.column(adata, "var", "X_gini"), passed, n_top_genes)
    else:
        svr = dict(SVRs_kwargs or {})
        chosen = _svr_choice(pending, stats, n, passed, n_top_genes, svr, sort_by)
    frac = stats["sum"] / max(float(stats["sum"].sum()), np.finfo(float).tiny)
    excluded = set(genes_to_exclude or []) | set(
        adata.var_names[frac > exprs_frac_for_gene_exclusion]
    )
    chosen &= ~np.asarray(adata.var_names.isin(list(excluded)))
    if "frac" not in adata.var:
        pending.var["frac"] = frac
    pending.var[keys.USE_FOR_PCA] = chosen
    pending.uns["feature_selection"] = sort_by
    return chosen


def check_sort_by(sort_by: str) -> None:
    """Raise for a ``sort_by`` that is not one of :data:`SORT_BY`."""
    if sort_by not in SORT_BY:
        raise InputError(f"sort_by={sort_by!r} is not available: use one of {SORT_BY}")


def gini_columns(adata: ad.AnnData, pending: Pending | None = None) -> dict[str, np.ndarray]:
    """The ``<layer>_gini`` columns of X (as the stage reads it) and of every other layer.

    As dynamo's ``select_genes_monocle(sort_by='gini')``, which runs ``calc_Gini`` on all
    layers; X is read with ``pending``'s transforms (size factors, log) applied.
    """
    arrays = {}
    for name in available_layers(adata, "all"):
        arrays[name] = layer_data(adata, name)
    x, sf, log = x_view(adata, pending)
    arrays["X"] = x if not log and np.all(sf == 1) else normalized(x, sf, log=log)
    values = gini_of(arrays, fit_cells(adata, pending))
    return {f"{name}_gini": v for name, v in values.items()}


def _gini_choice(gini: np.ndarray | None, passed: np.ndarray, n_top: int) -> np.ndarray:
    """The ``n_top`` genes of ``passed`` with the largest Gini coefficient of X."""
    if gini is None:
        raise MissingKeyError("var['X_gini'] is missing: run dyn.pp.calc_Gini first")
    idx = np.flatnonzero(passed)
    chosen = np.zeros(passed.size, dtype=bool)
    chosen[idx[np.argsort(-np.asarray(gini)[idx], kind="stable")[:n_top]]] = True
    return chosen


def _svr_choice(
    pending, stats, n, passed, n_top_genes, svr_kwargs, sort_by="cv_dispersion"
) -> np.ndarray:
    idx = np.flatnonzero(passed)
    if sort_by == "fano_dispersion":
        log_m, log_cv = kg.mean_fano(stats["sum"][idx], stats["sumsq"][idx], n)
        if not np.isfinite(log_cv).all():
            raise InputError(
                "genes without expression have no Fano factor: filter genes first "
                "(dyn.pp.filter_genes) so that var['pass_basic_filter'] leaves them out"
            )
    else:
        log_m, log_cv = kg.mean_cv(stats["sum"][idx], stats["sumsq"][idx], n)
    score, gamma = kg.svr_scores(log_m, log_cv, svr_kwargs.get("svr_gamma"))
    full = {name: np.full(passed.size, np.nan) for name in ("log_m", "log_cv", "score")}
    full["score"][:] = -np.inf
    for name, values in zip(full, (log_m, log_cv, score), strict=True):
        full[name][idx] = values
    pending.var.update(full)
    pending.uns["velocyto_SVR"] = {"mean": log_m, "cv": log_cv, "svr_gamma": gamma}
    return kg.top_scores(full["score"], n_top_genes)


def select_genes_monocle(
    adata: ad.AnnData,
    layer: str = "X",
    keep_filtered: bool = True,
    *,
    n_top_genes: int = 2000,
    sort_by: str = "cv_dispersion",
    exprs_frac_for_gene_exclusion: float = 1,
    genes_to_exclude: list[str] | None = None,
    SVRs_kwargs: dict | None = None,  # noqa: N803 - dynamo's name
) -> None:
    """Select feature genes by how much more they vary than genes of the same mean.

    When there are no more genes than ``n_top_genes``, every gene is kept (dynamo's rule).
    Otherwise, among ``var['pass_basic_filter']`` genes, ``log2`` CV is regressed on ``log2``
    mean (RBF support-vector regression) and the genes with the largest residuals win
    (``'fano_dispersion'``: the Fano factor on the mean; ``'gini'``: the largest Gini
    coefficients of X win, computed exactly out of core, see :func:`calc_Gini`).
    Moments come from one pass over X (read as ``uns['pp']`` describes it).

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed).
    layer
        Only ``'X'``.
    keep_filtered
        Only ``True`` (genes are flagged, never dropped).
    n_top_genes
        Number of feature genes.
    sort_by
        ``'cv_dispersion'`` (``log2`` CV against ``log2`` mean), ``'fano_dispersion'`` (Fano
        factor against mean; ``var['log_m']``/``['log_cv']`` then hold those) or ``'gini'``
        (the largest Gini coefficients of X, after :func:`calc_Gini` of every layer).
    exprs_frac_for_gene_exclusion
        Genes holding more than this fraction of all counts are left out.
    genes_to_exclude
        Gene names left out.
    SVRs_kwargs
        ``svr_gamma`` for the regression.

    Writes
    ------
    var['use_for_pca'], var['frac'], uns['feature_selection']; with the SVR: var['log_m'],
    var['log_cv'], var['score'], uns['velocyto_SVR']; with ``'gini'``: var['<layer>_gini']
    for X and each layer
    """
    if layer != "X" or not keep_filtered:
        raise InputError(
            "select_genes_monocle works on X with keep_filtered=True (genes are flagged)"
        )
    check_sort_by(sort_by)
    pending = Pending()
    if sort_by == "gini" and adata.n_vars > n_top_genes:
        pending.var.update(gini_columns(adata))
    x, sf, log = x_view(adata)
    stats = normalized_stats(x, sf, log=log, cells=fit_cells(adata))
    (stats,) = compute(stats, desc="gene moments")
    select_from_moments(
        adata,
        pending,
        stats,
        n_top_genes=n_top_genes,
        sort_by=sort_by,
        exprs_frac_for_gene_exclusion=exprs_frac_for_gene_exclusion,
        genes_to_exclude=genes_to_exclude,
        SVRs_kwargs=SVRs_kwargs,
    )
    pending.commit(adata, "select_genes")
