"""Analytic Pearson residuals: feature genes by residual variance, residual-normalised layers.

The model is a negative binomial with offsets, ``mu = cell total * gene total / total``
and one overdispersion ``theta``; residuals are clipped at ``sqrt(n_cells)``. Per-gene sums
of the residuals are map-reduced over row blocks (each block densified a thousand genes
at a time); residual layers are written lazily, block by block.
"""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import residuals as gres
from ..graph.summaries import cell_totals
from ._inputs import fit_cells
from ._pending import Pending
from .gini import layer_data

HVG_KEY = "gene_highly_variable"
PARAMS_KEY = "X_pearson_residuals_normalization_params"


def _check_theta_clip(theta: float, clip: float | None) -> None:
    if not theta > 0:
        raise InputError(f"theta must be positive (Pearson residuals), not {theta}")
    if clip is not None and clip < 0:
        raise InputError(f"clip must be >= 0 or None (then sqrt(n_cells)), not {clip}")


def _counts(adata: ad.AnnData, layer: str | None) -> Any:
    name = "X" if layer in (None, "X") else layer
    if name != "X" and name not in adata.layers:
        raise MissingKeyError(f"layer {name!r} not found (layers: {sorted(adata.layers)})")
    return layer_data(adata, name)


def _warn_non_integers(x: Any, what: str) -> None:
    first = x[: min(x.shape[0], 500)]
    first = first.compute() if hasattr(first, "compute") else first
    values = first.data if hasattr(first, "data") and not isinstance(first, np.ndarray) else first
    values = np.asarray(values)
    if values.size and not np.all(np.equal(np.mod(values, 1), 0)):
        warnings.warn(
            f"Pearson residuals expect raw counts, but {what} holds non-integers",
            UserWarning,
            stacklevel=3,
        )


def _codes(adata: ad.AnnData, batch_key: str | None, kept: np.ndarray | None) -> tuple:
    if batch_key is None:
        codes = np.zeros(adata.n_obs, dtype=np.int64)
    else:
        if batch_key not in adata.obs:
            raise MissingKeyError(f"batch_key {batch_key!r} is not an obs column")
        codes = pd.Categorical(adata.obs[batch_key]).codes.astype(np.int64)
    if kept is not None:
        codes = np.where(kept, codes, -1)
    return codes, int(codes.max()) + 1


def residual_variances(
    x: Any,
    codes: np.ndarray,
    n_batches: int,
    *,
    theta: float = 100.0,
    clip: float | None = None,
) -> dict[str, np.ndarray]:
    """Per-batch residual variance of every gene (0 for genes without counts in the batch).

    Two passes: per-batch gene totals and cell totals, then the residuals' sums.
    Returns ``var`` (batches x genes) and the raw counts' ``means`` and ``variances`` over
    the kept cells (sample variance).
    """
    sums = gres.batch_sums(x, codes, n_batches)
    totals = cell_totals(x)
    sums, totals = compute(sums, totals, desc="Pearson residual totals")
    n = sums["n"]
    # dynamo sets the clip from the first batch and keeps it for the others
    first = np.sqrt(n[np.flatnonzero(n > 0)[0]]) if clip is None else float(clip)
    clips = np.full(n_batches, first)
    moments = gres.pearson_moments(
        x,
        np.asarray(totals).ravel(),
        codes,
        gene_sums=sums["gsum"],
        totals=sums["gsum"].sum(axis=1),
        clips=clips,
        theta=theta,
    )
    (moments,) = compute(moments, desc="Pearson residual variances")
    mean = moments["sum"] / n[:, None]
    var = np.clip(moments["sumsq"] / n[:, None] - mean**2, 0, None)
    n_all = max(float(n.sum()), 2.0)
    means = sums["sum"] / n_all
    variances = (sums["sumsq"] / n_all - means**2) * n_all / (n_all - 1)
    return {"var": var, "means": means, "variances": variances}


def hvg_table(
    var_names: pd.Index, stats: dict[str, np.ndarray], n_top_genes: int, batched: bool
) -> pd.DataFrame:
    """Dynamo's ranking: most batches among the top genes, then the median rank."""
    var = stats["var"]
    ranks = np.argsort(np.argsort(-var, axis=1, kind="stable"), axis=1).astype(np.float64)
    nbatches = (ranks < n_top_genes).sum(axis=0)
    ranks[ranks >= n_top_genes] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        median = np.nanmedian(ranks, axis=0)
    frame = pd.DataFrame(
        {
            "means": stats["means"],
            "variances": stats["variances"],
            "residual_variances": var.mean(axis=0),
            "highly_variable_rank": median,
            "highly_variable_nbatches": nbatches.astype(np.int64),
            "highly_variable_intersection": nbatches == var.shape[0],
        },
        index=var_names,
    )
    order = np.lexsort((np.where(np.isnan(median), np.inf, median), -nbatches))
    chosen = np.zeros(len(frame), dtype=bool)
    chosen[order[:n_top_genes]] = True
    frame[HVG_KEY] = chosen
    if not batched:
        frame = frame.drop(columns=["highly_variable_nbatches", "highly_variable_intersection"])
    return frame


def pearson_selection(
    adata: ad.AnnData,
    pending: Pending,
    *,
    layer: str | None = None,
    theta: float = 100.0,
    clip: float | None = None,
    n_top_genes: int = 2000,
    batch_key: str | None = None,
    check_values: bool = True,
) -> pd.DataFrame:
    """Rank the genes by Pearson residual variance; put dynamo's var columns in ``pending``."""
    _check_theta_clip(theta, clip)
    if n_top_genes is None:
        raise InputError("n_top_genes is required for Pearson-residual gene selection")
    x = _counts(adata, layer)
    if check_values:
        _warn_non_integers(x, "X" if layer in (None, "X") else f"layer {layer!r}")
    codes, n_batches = _codes(adata, batch_key, fit_cells(adata, pending))
    stats = residual_variances(x, codes, n_batches, theta=theta, clip=clip)
    frame = hvg_table(adata.var_names, stats, int(n_top_genes), batch_key is not None)
    for column in frame.columns:
        pending.var[column] = frame[column].to_numpy()
    pending.var[keys.USE_FOR_PCA] = frame[HVG_KEY].to_numpy()
    pp = pending.uns.setdefault("pp", dict(adata.uns.get("pp", {})))
    pp["hvg"] = {
        "flavor": "pearson_residuals",
        "computed_on": "adata.X" if layer in (None, "X") else layer,
    }
    return frame


def select_genes_by_pearson_residuals(
    adata: ad.AnnData,
    layer: str | None = None,
    theta: float = 100,
    *,
    clip: float | None = None,
    n_top_genes: int = 2000,
    batch_key: str | None = None,
    chunksize: int = 1000,
    check_values: bool = True,
    inplace: bool = True,
) -> tuple[ad.AnnData, pd.DataFrame] | None:
    """Feature genes with the largest variance of analytic Pearson residuals, out of core.

    For each batch (``obs[batch_key]``; one batch when ``None``): genes with counts in the
    batch get the variance over its cells of their clipped residuals (clip
    ``sqrt(n_cells)`` of the first batch, as dynamo, unless ``clip``), others 0; genes are
    ranked within the batch; then sorted by the number of batches in whose top
    ``n_top_genes`` they are, ties broken by the median rank, and the first ``n_top_genes``
    are chosen. Three passes over the counts.

    Parameters
    ----------
    adata
        AnnData with raw counts (in memory or store-backed).
    layer
        ``None`` / ``'X'`` or a layer name.
    theta
        Negative-binomial overdispersion (``np.inf``: Poisson).
    clip
        Residuals are clipped to ``[-clip, clip]`` (default ``sqrt(n_cells)``).
    n_top_genes
        Number of feature genes.
    batch_key
        obs column of batches ranked separately.
    chunksize
        Accepted for dynamo compatibility (blocks are densified 1,000 genes at a time).
    check_values
        Warn when the first cells hold non-integer values.
    inplace
        Write into ``adata`` (default); else return ``(adata, table)``.

    Returns
    -------
    tuple or None
        ``(adata, table)`` when not ``inplace`` (the table has dynamo's columns).

    Writes
    ------
    var: means, variances, residual_variances, highly_variable_rank, gene_highly_variable,
    use_for_pca (+ highly_variable_nbatches, highly_variable_intersection with a
    ``batch_key``); uns['pp']['hvg']
    """
    pending = Pending()
    frame = pearson_selection(
        adata,
        pending,
        layer=layer,
        theta=theta,
        clip=clip,
        n_top_genes=n_top_genes,
        batch_key=batch_key,
        check_values=check_values,
    )
    if not inplace:
        return adata, frame
    pending.commit(adata, "select_genes")
    return None


def residual_layer(
    x: Any,
    genes: np.ndarray,
    kept: np.ndarray | None,
    *,
    theta: float = 100.0,
    clip: float | None = None,
    cell_sums: np.ndarray | None = None,
) -> tuple[Any, float]:
    """Lazy clipped residuals of ``x`` on ``genes`` (var positions), with the clip used.

    The model's totals run over ``genes`` and the ``kept`` cells (all when ``None``);
    ``cell_sums`` (over ``genes``) may be given when already computed.
    """
    codes = np.zeros(x.shape[0], dtype=np.int64)
    if kept is not None:
        codes[~np.asarray(kept, dtype=bool)] = -1
    lazy = [gres.batch_sums(x, codes, 1)]
    if cell_sums is None:
        lazy.append(cell_totals(x, genes=genes))
    found = compute(*lazy, desc="Pearson residual totals")
    sums = found[0]
    cell_sums = np.asarray(found[1] if cell_sums is None else cell_sums).ravel()
    gene_sums = sums["gsum"][0][genes]
    n = float(sums["n"][0])
    clip = float(np.sqrt(n) if clip is None else clip)
    residuals = gres.pearson_residuals(
        x, cell_sums, gene_sums, gene_sums.sum(), genes=genes, theta=theta, clip=clip
    )
    return residuals, clip


def normalize_layers_pearson_residuals(
    adata: ad.AnnData,
    layers: list[str] | str = ("X",),
    select_genes_layer: str = "X",
    *,
    select_genes_key: str = keys.USE_FOR_PCA,
    copy: bool = False,
    theta: float = 100,
    clip: float | None = None,
    check_values: bool = True,
) -> ad.AnnData | None:
    """Replace layers by their analytic Pearson residuals (lazily, block by block).

    For X (the layer ``select_genes_layer``, on the genes ``var[select_genes_key]``) the
    chosen genes' columns of X are replaced by their residuals and the other columns keep
    their values, as dynamo does; the model's totals run over the chosen genes. Any other
    layer ``L`` gets ``layers['X_L']``: the residuals of all its genes (dense row blocks).
    Genes or cells without counts get residual 0 (dynamo: NaN).

    Parameters
    ----------
    adata
        AnnData with raw counts in the layers named (in memory or store-backed).
    layers
        Layer names (``'X'`` for X).
    select_genes_layer
        The layer normalised on the chosen genes only (default X).
    select_genes_key
        var column of the chosen genes.
    copy
        Work on (and return) a copy.
    theta, clip, check_values
        Overdispersion, clipping (default ``sqrt(n_cells)``), warn on non-integer values.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    X (chosen columns) and uns['pp']['X_pearson_residuals_normalization_params']
    (theta, clip, layer) for X; layers['X_<layer>'] for other layers
    """
    _check_theta_clip(theta, clip)
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        warnings.warn("layers is empty: nothing normalised", stacklevel=2)
        return adata.copy() if copy else None
    if select_genes_layer not in names:
        select_genes_layer = names[0]
    adata = adata.copy() if copy else adata
    pending = Pending()
    add_residual_layers(
        adata,
        pending,
        names,
        select_genes_layer=select_genes_layer,
        select_genes_key=select_genes_key,
        theta=theta,
        clip=clip,
        check_values=check_values,
    )
    pending.commit(adata, "normalize")
    return adata if copy else None


def add_residual_layers(
    adata: ad.AnnData,
    pending: Pending,
    names: list[str],
    *,
    select_genes_layer: str = "X",
    select_genes_key: str = keys.USE_FOR_PCA,
    theta: float = 100.0,
    clip: float | None = None,
    check_values: bool = True,
    x: Any = None,
    cell_sums: np.ndarray | None = None,
) -> None:
    """Put :func:`normalize_layers_pearson_residuals`' layers in ``pending``.

    ``x`` is the counts standing for X (default ``adata.X``); ``cell_sums`` the cells'
    totals over the chosen genes when already computed.
    """
    kept = fit_cells(adata, pending)
    for name in names:
        counts = (x if x is not None else _counts(adata, None)) if name == "X" else None
        counts = _counts(adata, name) if counts is None else counts
        if check_values:
            _warn_non_integers(counts, "X" if name == "X" else f"layer {name!r}")
        if name == select_genes_layer:
            chosen = pending.column(adata, "var", select_genes_key)
            if chosen is None:
                raise MissingKeyError(
                    f"var[{select_genes_key!r}] is missing: select genes first "
                    "(dyn.pp.select_genes_by_pearson_residuals)"
                )
            genes = np.flatnonzero(np.asarray(chosen, dtype=bool))
        else:
            genes = np.arange(adata.n_vars)
        sums = cell_sums if name == select_genes_layer else None
        residuals, used = residual_layer(
            counts, genes, kept, theta=theta, clip=clip, cell_sums=sums
        )
        if name == "X":
            pending.X = gres.with_columns(counts, residuals, genes)
            pp = pending.uns.setdefault("pp", dict(adata.uns.get("pp", {})))
            pp[PARAMS_KEY] = {
                "theta": float(theta),
                "clip": used,
                "layer": "X",
            }
        else:
            pending.layers[f"X_{name}"] = residuals
