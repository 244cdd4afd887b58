"""sctransform (regularised negative-binomial residuals) and dynamo's ``sctransform`` recipe.

Four reads of the data at most: per-gene sums over every kept cell together with the
gathered cell sample; the step-1 fits on the sample (one task per group of genes, no pass
over the data); the residuals' per-gene sums for the feature-gene score (only when there
are more genes than ``n_top_genes``); the commit, which writes the residual X block by
block. The model follows dynamo 1.5.3's ``sctransform_core``: see
:mod:`dynadask.kernels.sctransform`.
"""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError, OptionError
from .._core.validate import sample_counts
from ..graph import sctransform as gsct
from ..graph.summaries import cell_totals
from ..kernels import sctransform as ksct
from ._inputs import fit_cells, raw_layers, x_counts
from ._pending import Pending
from .normalization import initial_size_key, normalized_layers, size_factors_from_totals
from .recipes import regress_out_pending

FIT_CELLS = 5000
"""Cells the step-1 fit samples when ``n_cells`` is not given (sctransform's own default)."""

PARAMS_KEY = "sctransform"
"""``uns['pp']`` entry recording the run: layer, clip, cells and genes fitted, bandwidth."""

VAR_PARAMS = ("Intercept", "log_umi", "theta")
_OPTIONS = {"min_cells", "gmean_eps", "n_cells", "bin_size", "bw_adjust", "inplace", "seed"}


def _counts(adata: ad.AnnData, layer: str) -> Any:
    if layer == "X":
        return x_counts(adata)
    if layer not in adata.layers:
        raise MissingKeyError(f"layer {layer!r} not found (layers: {sorted(adata.layers)})")
    return adata.layers[layer]


def _sample_rows(kept: np.ndarray, n_cells: int | None, seed: int) -> np.ndarray:
    rows = np.flatnonzero(kept)
    want = min(rows.size, FIT_CELLS) if n_cells is None else int(n_cells)
    if want < 1:
        raise InputError(f"n_cells must be a positive number of cells, not {n_cells}")
    if want >= rows.size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=want, replace=False))


def _step1_genes(
    sample: Any, model: np.ndarray, n_genes: int, *, min_cells: float, eps: float, rng: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Step-1 genes (positions among the modelled genes) and their log10 gmean on the sample."""
    s = sample[:, model]
    sums = ksct.gene_sums(s, eps=eps)
    found = np.flatnonzero(sums["sum"] >= min_cells)
    lg = ksct.log10_gmean(sums["logsum"][found], s.shape[0], eps)
    if n_genes is not None and n_genes < found.size:
        drawn = ksct.draw_genes(found, lg, int(n_genes), rng)
        lg = lg[np.searchsorted(found, drawn)]
        found = drawn
    return found, lg


def sctransform_fit(
    x: Any,
    genes: np.ndarray,
    *,
    kept: np.ndarray,
    n_genes: int | None = 2000,
    n_cells: int | None = None,
    min_cells: float = 5,
    gmean_eps: float = 1.0,
    bw_adjust: float = 3.0,
    bin_size: int = gsct.FIT_GROUP,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit sctransform's model on the columns ``genes`` of ``x`` over the cells ``kept``.

    Returns per-gene arrays over ``genes`` (NaN where a gene is not modelled or not a
    step-1 gene): ``params`` (3 x genes: intercept, slope, theta), ``step1`` (3 x genes:
    intercept, slope, dispersion of the step-1 genes that are not outliers),
    ``theta_step1`` (every step-1 gene's own theta), ``genes_step1`` (1 for the step-1 genes
    kept, 0 for the other modelled genes), ``log10_gmean``; and ``clip``, ``n_fit``
    (cells fitted), ``bandwidth``.
    """
    genes = np.asarray(genes)
    sums, sample = compute(
        gsct.gene_sums(x, genes, cells=None if kept.all() else kept, eps=gmean_eps),
        gsct.sample(x, _sample_rows(kept, n_cells, seed), genes),
        desc="sctransform: gene sums, cell sample",
    )
    n_kept = float(sums["n"][0])
    model = np.flatnonzero(sums["sum"] >= min_cells)
    if model.size < 3:
        raise InputError(
            f"sctransform needs genes with at least min_cells={min_cells} counts: "
            f"{model.size} of {genes.size} have them"
        )
    log_gmean = ksct.log10_gmean(sums["logsum"][model], n_kept, gmean_eps)
    umi = np.asarray(sample[:, model].sum(axis=1)).ravel()
    sample = sample[umi > 0]
    rng = np.random.default_rng(seed)
    step1, lg1 = _step1_genes(sample, model, n_genes, min_cells=min_cells, eps=gmean_eps, rng=rng)
    counts = sample[:, model[step1]]
    (fitted,) = compute(
        gsct.fit(counts, np.log10(umi[umi > 0]), group=int(bin_size)),
        desc="sctransform: step-1 fits",
    )
    reg = ksct.regularize(fitted, lg1, log_gmean, bw_adjust=bw_adjust)
    out = {
        "params": np.full((3, genes.size), np.nan),
        "step1": np.full((3, genes.size), np.nan),
        "theta_step1": np.full(genes.size, np.nan),
        "genes_step1": np.full(genes.size, np.nan),
        "log10_gmean": np.full(genes.size, np.nan),
    }
    out["params"][:, model] = reg["params"]
    where = model[step1]
    kept1 = where[reg["kept"]]
    out["step1"][:2, kept1] = fitted[:2, reg["kept"]]
    out["step1"][2, kept1] = reg["dispersion"][reg["kept"]]
    out["theta_step1"][where] = fitted[2]
    out["genes_step1"][model] = 0.0
    out["genes_step1"][kept1] = 1.0
    out["log10_gmean"][model] = log_gmean
    out.update(
        clip=float(np.sqrt(n_kept / 30.0)),
        n_fit=int(sample.shape[0]),
        n_step1=int(step1.size),
        bandwidth=float(reg["bandwidth"]),
    )
    return out


def _cell_columns(x: Any, genes: np.ndarray) -> dict[str, Any]:
    """Lazy obs columns ``umi_sct, log_umi_sct, gene_sct, log_gene_sct, umi_per_gene_sct, …``."""
    attrs = gsct.cell_attributes(x, genes)
    return {f"{name}_sct": attrs[:, i] for i, name in enumerate(ksct.CELL_ATTRIBUTES)}


def sct_pending(
    adata: ad.AnnData,
    pending: Pending,
    layer: str,
    genes: np.ndarray,
    *,
    n_top_genes: int = 2000,
    counts: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Put sctransform's results for ``layer`` on the columns ``genes`` into ``pending``.

    X gets the residuals in those columns (other columns keep their values); another layer
    ``L`` gets ``layers['X_L']``. With X and more than ``n_top_genes`` genes the residual
    variance ``var['sct_score']`` chooses ``var['use_for_pca']``. Returns the fit.
    """
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise OptionError(f"sctransform got unknown option(s) {unknown}")
    if options.pop("inplace", True) is not True:
        raise OptionError(
            "sctransform(inplace=False) is not offered: results go into the AnnData "
            "(dynamo's wrapper discards the copy inplace=False makes)"
        )
    if not n_top_genes or int(n_top_genes) < 1:
        raise InputError(f"n_top_genes must be a positive number of genes, not {n_top_genes}")
    for name in ("bw_adjust", "gmean_eps", "bin_size"):
        if name in options and not float(options[name]) > 0:
            raise InputError(f"{name} must be positive, not {options[name]}")
    genes = np.asarray(genes)
    x = _counts(adata, layer) if counts is None else counts
    kept = fit_cells(adata, pending)
    kept = np.ones(adata.n_obs, dtype=bool) if kept is None else kept
    fit = sctransform_fit(x, genes, kept=kept, n_genes=int(n_top_genes), **options)
    residual = gsct.residuals(x, genes, fit["params"], fit["clip"])
    if layer == "X":
        pending.X = residual
    else:
        pending.layers[f"X_{layer}"] = residual
    _var_columns(adata, pending, genes, fit)
    modelled = genes[np.isfinite(fit["params"]).all(axis=0)]
    pending.obs.update(_cell_columns(x, modelled))
    if layer == "X" and genes.size > int(n_top_genes):
        moments = gsct.residual_moments(
            x, genes, fit["params"], fit["clip"], cells=None if kept.all() else kept
        )
        (moments,) = compute(moments, desc="sctransform: residual variances")
        n = float(kept.sum())
        score = np.full(adata.n_vars, np.nan)
        score[genes] = moments["sumsq"] / n - (moments["sum"] / n) ** 2
        chosen = np.zeros(adata.n_vars, dtype=bool)
        order = np.argsort(-score[genes], kind="stable")[: int(n_top_genes)]
        chosen[genes[order]] = True
        pending.var["sct_score"] = score
        pending.var[keys.USE_FOR_PCA] = chosen
    pp = pending.uns.setdefault("pp", dict(adata.uns.get("pp", {})))
    pp[PARAMS_KEY] = {
        "layer": layer,
        "clip": fit["clip"],
        "n_cells_fitted": fit["n_fit"],
        "n_genes_fitted": fit["n_step1"],
        "bandwidth": fit["bandwidth"],
        "seed": int(options.get("seed", 0)),
    }
    return fit


def _var_columns(adata: ad.AnnData, pending: Pending, genes: np.ndarray, fit: dict) -> None:
    def column(values: np.ndarray) -> np.ndarray:
        full = np.full(adata.n_vars, np.nan)
        full[genes] = values
        return full

    for i, name in enumerate(VAR_PARAMS):
        pending.var[f"{name}_sct"] = column(fit["params"][i])
    for i, name in enumerate(("Intercept", "log_umi", "dispersion")):
        pending.var[f"{name}_step1_sct"] = column(fit["step1"][i])
    pending.var["model_pars_theta_step1"] = column(fit["theta_step1"])
    pending.var["genes_step1_sct"] = column(fit["genes_step1"])
    pending.var["log10_gmean_sct"] = column(fit["log10_gmean"])


def sctransform(
    adata: ad.AnnData,
    layers: str | list[str] = "X",
    output_layer: str | None = None,
    *,
    n_top_genes: int = 2000,
    **kwargs: Any,
) -> None:
    """Normalise counts by sctransform's regularised negative-binomial residuals.

    Per gene ``log mu = b0 + b1 log10(umi)`` (``umi``: the cell's total over the modelled
    genes) with a negative-binomial ``theta``, fitted on a seeded cell sample and a
    density-weighted draw of ``n_top_genes`` genes, then smoothed against the genes'
    log10 geometric means (local linear kernel regression, outlier genes set aside). The
    residuals ``(x - mu) / sqrt(mu + mu^2 / theta)`` of the non-zero counts, negative ones
    set to 0 and cut at ``sqrt(n_cells / 30)`` (dynamo 1.5.3's rule), are computed block
    by block. Genes with fewer than ``min_cells`` counts in all are not modelled (residual
    0). One commit (stage 'sctransform').

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory or opened with ``dyn.io.open``).
    layers
        ``'X'`` or layer names (a list), each transformed on its own.
    output_layer
        Accepted for dynamo compatibility (dynamo does not use it either).
    n_top_genes
        Genes drawn for the step-1 fit, and feature genes chosen by residual variance
        (``use_for_pca``) when X has more genes.
    **kwargs
        ``min_cells`` (5; counts, not cells, as in dynamo), ``gmean_eps`` (1), ``n_cells``
        (cells sampled for the step-1 fit; default all up to :data:`FIT_CELLS`, then a
        sample of that many: dynamo's default is all cells), ``bw_adjust`` (3),
        ``bin_size`` (genes per fitting task, 128), ``seed`` (0; dynamo's draws are not
        seeded), ``inplace`` (only ``True``).

    Writes
    ------
    X (or layers['X_<layer>']): residuals, CSR; var: Intercept_sct, log_umi_sct,
    theta_sct, Intercept_step1_sct, log_umi_step1_sct, dispersion_step1_sct,
    model_pars_theta_step1, genes_step1_sct, log10_gmean_sct (+ sct_score, use_for_pca for
    X with more than ``n_top_genes`` genes); obs: umi_sct, log_umi_sct, gene_sct,
    log_gene_sct, umi_per_gene_sct, log_umi_per_gene_sct; uns['pp']['sctransform']

    Raises
    ------
    dynadask.MissingKeyError
        For a layer that is not there.
    dynadask.OptionError
        For an unknown option or ``inplace=False``.
    """
    del output_layer
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise InputError("layers is empty: name 'X' or a layer to transform")
    pending = Pending()
    for name in names:
        x = _counts(adata, name)
        if name != "X":
            warnings.warn(
                f"sctransform on layer {name!r}: residuals are meant for X; the layer's "
                "residuals (X_<layer>) are not counts for the kinetics",
                UserWarning,
                stacklevel=2,
            )
        sample_counts(x, "X" if name == "X" else f"layer {name!r}")
        sct_pending(
            adata, pending, name, np.arange(adata.n_vars), n_top_genes=n_top_genes, **kwargs
        )
    pending.commit(adata, "sctransform")


def _size_factors_over(adata: ad.AnnData, pending: Pending, qc: Any, genes: np.ndarray) -> None:
    """Size factors of every experiment layer from the cells' totals over ``genes`` only.

    dynamo's recipe drops the genes failing the filter before its size factors; a store
    keeps them, so the totals are summed over the passing genes instead.
    """
    names = pending.uns["pp"]["experiment_layers"]
    layers = raw_layers(adata, names)
    (totals,) = compute(cell_totals(*layers.values(), genes=genes), desc="sctransform: totals")
    totals = np.asarray(totals)
    for i, name in enumerate(layers):
        sf, cells = size_factors_from_totals(totals[:, i], kept=qc.kept)
        pending.obs[keys.size_factor_key(name)] = sf
        pending.obs[initial_size_key(name)] = cells


def sctransform_recipe(
    pre: Any, adata: ad.AnnData, tkey: str | None, experiment_type: str | None
) -> None:
    """Dynamo's sctransform recipe, one commit (stage 'preprocess').

    Basic filters; size factors over the passing genes; monocle feature genes (3,000) as
    the genes sctransform models (dynamo subsets the AnnData to them); sctransform on X
    (2,000 genes fitted, 2,000 feature genes by residual variance); normalised layers
    ``X_<layer>`` (not X); optional ``regress_out``; PCA (50) on the residual X.
    """
    pending = pre._start(adata, tkey, experiment_type)
    qc = pre._filter(adata, pending)
    passed = np.asarray(pending.var[keys.PASS_BASIC_FILTER], dtype=bool)
    _size_factors_over(adata, pending, qc, np.flatnonzero(passed))
    n_top = int(pre.select_genes_kwargs.get("n_top_genes", 3000) or adata.n_vars)
    if passed.sum() <= n_top:
        chosen = passed.copy()
        pending.var[keys.USE_FOR_PCA] = chosen
        pre._edit_gene_list(adata, pending, chosen)
    else:
        pre._select_genes(adata, pending, selector="monocle")
    genes = np.flatnonzero(np.asarray(pending.var[keys.USE_FOR_PCA], dtype=bool) & passed)
    if genes.size == 0:
        raise InputError("no feature gene passes the gene filter: sctransform has no genes")
    sct = dict(pre.sctransform_kwargs)
    n_sct = sct.pop("n_top_genes", 2000)
    pending.var[keys.USE_FOR_PCA] = np.isin(np.arange(adata.n_vars), genes)
    sct_pending(adata, pending, "X", genes, n_top_genes=n_sct, counts=x_counts(adata), **sct)
    names = [n for n in pending.uns["pp"]["experiment_layers"] if n != "X"]
    normalized_layers(adata, pending, names, size_factor_per_layer=pre.size_factor_per_layer)
    pending.uns["pp"]["X_normalized"] = False  # X holds residuals, not X / Size_Factor
    if pre.regress_out_kwargs.get("obs_keys"):
        regress_out_pending(adata, pending, pre.regress_out_kwargs, pre._fit_cells)
    pre._pca(adata, pending, None, pending.X)
    pending.commit(adata, "preprocess")
