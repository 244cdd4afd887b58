"""PCA and gene-selection figures (dynamo's names).

``variance_explained``, ``biplot``, ``loading`` and ``feature_genes`` read what preprocessing
stored (``uns['explained_variance_ratio_']``, the loadings ``uns['PCs']``, two columns of
``obsm['X_pca']``, the per-gene columns of the gene selection); ``feature_genes`` with
``mode='gini'`` reduces the layer's per-gene means block by block. Nothing is written into
the AnnData.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError
from .._core.model import read as read_record
from ..graph import summaries as gs
from ..kernels import preprocess_genes as kg
from . import _data
from ._figure import save_show_ret
from ._points import point_size

PCA_MAKER = "dyn.pp.recipe_monocle(adata) or dyn.pp.pca(adata)"
SELECTION_MAKER = "dyn.pp.recipe_monocle(adata) (monocle gene selection)"


def _uns(adata: ad.AnnData, key: str, maker: str) -> Any:
    if key not in adata.uns:
        raise _data.missing("uns entry", key, maker)
    return adata.uns[key]


def _loadings(adata: ad.AnnData, loading_key: str) -> np.ndarray:
    if loading_key in adata.uns:
        return np.asarray(adata.uns[loading_key], dtype=np.float64)
    if loading_key in adata.varm:
        return np.asarray(adata.varm[loading_key], dtype=np.float64)
    raise _data.missing("PCA loadings (uns or varm)", loading_key, PCA_MAKER)


def loading_genes(adata: ad.AnnData, n_rows: int) -> list[str]:
    """Names of the genes that are the rows of the loadings (PCA genes, in var order).

    From the PCA's model record when there is one, else ``var['use_for_pca']`` when it
    counts ``n_rows`` genes, else all genes when there are ``n_rows``.
    """
    names = adata.var_names.astype(str)
    record = read_record(adata.uns, keys.X_PCA)
    if record is not None and "genes" in record.data and len(record.data["genes"]) == n_rows:
        return list(names[np.asarray(record.data["genes"], dtype=np.int64)])
    if keys.USE_FOR_PCA in adata.var and int(adata.var[keys.USE_FOR_PCA].sum()) == n_rows:
        return list(names[adata.var[keys.USE_FOR_PCA].to_numpy(dtype=bool)])
    if adata.n_vars == n_rows:
        return list(names)
    return [f"gene {i}" for i in range(n_rows)]


def n_components(ratio: np.ndarray, threshold: float = 0.002) -> int:
    """Dynamo's elbow: the first PC where the cumulative ratio's increments cross ``threshold``.

    The first index where ``diff(cumsum(ratio)) > threshold`` changes value; 20 when it
    never does.
    """
    change = np.diff(np.diff(np.cumsum(ratio)) > threshold)
    return int(np.flatnonzero(change)[0]) if change.any() else 20


def variance_explained(
    adata: ad.AnnData,
    threshold: float = 0.002,
    n_pcs: int | None = None,
    *,
    figsize: tuple[float, float] = (4, 3),
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Axes | None:
    """Plot the variance ratio explained by each principal component, with the elbow marked.

    Parameters
    ----------
    adata
        AnnData with ``uns['explained_variance_ratio_']`` (in memory or from a store).
    threshold
        Increment of the cumulative ratio below which further PCs add little: the vertical
        line marks :func:`n_components`.
    n_pcs
        Mark this PC instead.
    figsize
        Figure size in inches.
    save_show_or_return
        ``'save'``, ``'show'``, ``'return'``, ``'both'`` or ``'all'``.
    save_kwargs
        ``path``, ``prefix``, ``dpi``, ``ext``, ``transparent``, ``close``, ``verbose``.

    Returns
    -------
    Axes or None
        The axes with ``'return'`` / ``'all'``: the red curve is the ratio per PC.

    Raises
    ------
    KeyError
        If ``uns['explained_variance_ratio_']`` is missing (names the call that makes it).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    ratio = np.asarray(_uns(adata, "explained_variance_ratio_", PCA_MAKER), dtype=np.float64)
    fig, ax = plt.subplots(figsize=figsize)
    ax.plot(ratio, c="r")
    n_comps = n_pcs if n_pcs is not None else n_components(ratio, threshold)
    ax.axvline(n_comps, c="r")
    ax.set_xlabel("PCs")
    ax.set_ylabel("Variance explained")
    ax.set_xticks(sorted({*ax.get_xticks(), n_comps}))
    ax.set_xlim(0, len(ratio))
    return save_show_ret("variance_explained", save_show_or_return, save_kwargs, ax, fig)


def biplot(
    adata: ad.AnnData,
    pca_components: tuple[int, int] = (0, 1),
    pca_key: str = "X_pca",
    *,
    loading_key: str = "PCs",
    figsize: tuple[float, float] = (6, 4),
    scale_pca_embedding: bool = False,
    draw_pca_embedding: bool = False,
    show_text: bool = False,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    ax: Axes | None = None,
) -> Axes | None:
    """Overlay the genes' loadings (arrows) on two principal components (and the cells).

    Each PCA gene is an arrow (all in one quiver) from the origin to ``(loading_x *
    max(pc_x), loading_y * max(pc_y))``, the maxima taken over the cells' scores (only the
    two score columns are read). With ``draw_pca_embedding`` the cells are drawn too
    (divided by the range of each column with ``scale_pca_embedding``), as points of the
    usual size ``16000 / sqrt(n_cells)``.

    Parameters
    ----------
    adata
        AnnData with the loadings and ``obsm[pca_key]`` (in memory or from a store).
    pca_components
        The two components (columns) drawn.
    pca_key
        obsm key of the scores.
    loading_key
        Key of the loadings (genes x components) in uns or varm.
    figsize
        Figure size in inches (when ``ax`` is not given).
    scale_pca_embedding
        Divide the cells' coordinates by the range of each component.
    draw_pca_embedding
        Draw the cells.
    show_text
        Label each arrow with its gene (dynamo labels them with cell names) and, with
        ``draw_pca_embedding``, each cell with ``obs['cluster']`` when that column exists.
    save_show_or_return, save_kwargs
        As in :func:`variance_explained` (file prefix ``biplot``).
    ax
        Draw into this axes.

    Returns
    -------
    Axes or None
        The axes with ``'return'`` / ``'all'``; the genes' arrows are one ``Quiver`` (one
        arrow per gene, from the origin).

    Raises
    ------
    KeyError
        If the loadings or the scores are missing.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    pcs = _loadings(adata, loading_key)
    if pca_key not in adata.obsm:
        raise _data.missing("embedding", pca_key, PCA_MAKER)
    i, j = (int(c) for c in pca_components)
    xy = _data.gather({"xy": _data.obsm_columns(adata, pca_key, [i, j])})["xy"]
    xy = np.asarray(xy, dtype=np.float64)
    top = np.nanmax(xy, axis=0)
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    genes = loading_genes(adata, pcs.shape[0])
    tips = pcs[:, [i, j]] * top
    zero = np.zeros(len(tips))
    # one artist for all genes (dynamo adds one patch per gene, slow with thousands)
    ax.quiver(
        zero,
        zero,
        tips[:, 0],
        tips[:, 1],
        color="r",
        angles="xy",
        scale_units="xy",
        scale=1,
        width=0.002,
    )
    ax.update_datalim(np.vstack([tips, [[0.0, 0.0]]]))
    ax.autoscale_view()
    if show_text:
        for (tx, ty), name in zip(tips * 1.01, genes, strict=True):
            ax.text(tx, ty, name, color="r")
    ax.set_xlabel(f"PC{i}")
    ax.set_ylabel(f"PC{j}")
    if draw_pca_embedding:
        scale = 1.0 / np.ptp(xy, axis=0) if scale_pca_embedding else np.ones(2)
        pts = xy * scale
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            c="b",
            alpha=0.1,
            s=point_size(len(pts)),
            rasterized=True,
            linewidths=0,
        )
        if show_text and "cluster" in adata.obs:
            for (px, py), name in zip(pts, adata.obs["cluster"].astype(str), strict=True):
                ax.text(px * 1.01, py * 1.01, name, color="b", alpha=0.1)
    return save_show_ret("biplot", save_show_or_return, save_kwargs, ax, ax.figure)


def loading(
    adata: ad.AnnData,
    n_pcs: int | None = 10,
    loading_key: str = "PCs",
    *,
    n_top_genes: int = 10,
    ncol: int = 5,
    figsize: tuple[float, float] = (6, 4),
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> np.ndarray | None:
    """For each of the first ``n_pcs`` components, the genes with the largest |loading|.

    One panel per component: the ``n_top_genes`` absolute loadings, largest first, each
    labelled with its gene, red for a positive loading and black for a negative one.

    Parameters
    ----------
    adata
        AnnData with the loadings in uns or varm.
    n_pcs
        Number of components (all when ``None``).
    loading_key
        Key of the loadings (genes x components).
    n_top_genes
        Genes per panel.
    ncol
        Panels per row.
    figsize
        Size of one panel in inches.
    save_show_or_return, save_kwargs
        As in :func:`variance_explained` (file prefix ``loading``).

    Returns
    -------
    numpy.ndarray of Axes or None
        With ``'return'`` / ``'all'``, the panels as a 2-D array (rows x ``ncol``), like
        ``plt.subplots``; panel ``k`` is titled ``PC k``.

    Raises
    ------
    KeyError
        If the loadings are missing.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    pcs = _loadings(adata, loading_key)
    n_pcs = pcs.shape[1] if n_pcs is None else min(int(n_pcs), pcs.shape[1])
    genes = loading_genes(adata, pcs.shape[0])
    ncol = max(1, min(ncol, n_pcs))
    nrow = int(np.ceil(n_pcs / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(figsize[0] * ncol, figsize[1] * nrow), squeeze=False
    )
    x = np.arange(min(n_top_genes, pcs.shape[0]))
    for k in range(nrow * ncol):
        ax = axes[k // ncol, k % ncol]
        if k >= n_pcs:
            ax.set_visible(False)
            continue
        order = np.argsort(-np.abs(pcs[:, k]), kind="stable")[: x.size]
        values = np.abs(pcs[order, k])
        ax.scatter(x, values)
        for pos, g in zip(x, order, strict=True):
            colour = "r" if pcs[g, k] > 0 else "k"
            ax.text(pos, values[pos] * 1.01, genes[g], color=colour)
        ax.set_title(f"PC {k}")
    return save_show_ret("loading", save_show_or_return, save_kwargs, axes, fig)


def _selection_table(adata: ad.AnnData, layer: str, mode: str) -> tuple[np.ndarray, ...]:
    """Per-gene x, y of the feature-gene plot and the SVR entry (when the mode uses one)."""
    if mode == "gini":
        key = f"{layer}_gini"
        if key not in adata.var:
            raise _data.missing("var column", key, SELECTION_MAKER.replace("(monocle", "(gini"))
        x = _data.layer_array(adata, layer)
        total = np.asarray(compute(gs.gene_totals(x), desc="gene means")[0], dtype=np.float64)
        return total / adata.n_obs, adata.var[key].to_numpy(dtype=np.float64), None
    prefix = "" if layer == "X" else f"{layer}_"
    mean_key, var_key = (
        ("pp_gene_mean", "pp_gene_variance")
        if mode == "seurat_dispersion"
        else (f"{prefix}log_m", f"{prefix}log_cv")
    )
    for key in (mean_key, var_key):
        if key not in adata.var:
            raise _data.missing(
                "var column",
                key,
                f"{SELECTION_MAKER} with more genes than n_top_genes, so that the "
                "dispersion-versus-mean regression runs,",
            )
    svr = None
    if mode in ("cv_dispersion", "fano_dispersion"):
        svr_key = "velocyto_SVR" if layer in ("X", "raw") else f"{layer}_velocyto_SVR"
        svr = _uns(adata, svr_key, SELECTION_MAKER)
    return (
        adata.var[mean_key].to_numpy(dtype=np.float64),
        adata.var[var_key].to_numpy(dtype=np.float64),
        svr,
    )


def feature_genes(
    adata: ad.AnnData,
    layer: str = "X",
    mode: str | None = None,
    *,
    figsize: tuple[float, float] = (4, 3),
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Figure | None:
    """Dispersion versus mean of every gene, the selected (``use_for_pca``) genes in red.

    For ``cv_dispersion`` / ``fano_dispersion`` (dynamo's monocle selection) the genes are
    ``var['log_m']`` against ``var['log_cv']`` with the support-vector trend refitted from
    ``uns['velocyto_SVR']`` (1,000 points across the means); ``seurat_dispersion`` reads
    ``var['pp_gene_mean']`` / ``['pp_gene_variance']``; ``gini`` plots each gene's mean in
    ``layer`` (one reduction over the row blocks) against ``var['<layer>_gini']``.

    Parameters
    ----------
    adata
        AnnData after gene selection (in memory or from a store).
    layer
        ``'X'`` or a layer; non-X layers read ``<layer>_log_m`` ... .
    mode
        ``'cv_dispersion'``, ``'fano_dispersion'``, ``'seurat_dispersion'`` or ``'gini'``;
        by default ``uns['feature_selection']``.
    figsize
        Figure size in inches.
    save_show_or_return, save_kwargs
        As in :func:`variance_explained` (file prefix ``feature_genes``).

    Returns
    -------
    matplotlib.figure.Figure or None
        The figure with ``'return'`` / ``'all'`` (dynamo returns ``plt.gcf()``): one line
        (the trend, dispersion modes) and two point sets, selected genes first.

    Raises
    ------
    ValueError
        If ``mode`` is not one of those.
    KeyError
        If the gene-selection columns are missing (the SVR runs only when there are more
        genes than ``n_top_genes``).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    mode = mode if mode is not None else str(_uns(adata, "feature_selection", SELECTION_MAKER))
    if "_dispersion" not in mode and mode != "gini":
        raise InputError(
            f"mode={mode!r}: use 'cv_dispersion', 'fano_dispersion', 'seurat_dispersion' or 'gini'"
        )
    x, y, svr = _selection_table(adata, layer, mode)
    fig, ax = plt.subplots(figsize=figsize)
    ok = np.isfinite(x) & np.isfinite(y)
    if svr is not None and ok.any():
        grid = np.linspace(np.nanmin(x[ok]), np.nanmax(x[ok]), 1000)
        fit = kg.svr_curve(svr["mean"], svr["cv"], float(svr["svr_gamma"]), grid)
        ax.plot(grid, fit, alpha=0.4, color="r")
    chosen = (
        adata.var[keys.USE_FOR_PCA].to_numpy(dtype=bool)
        if keys.USE_FOR_PCA in adata.var
        else np.ones(adata.n_vars, dtype=bool)
    )
    ax.scatter(x[ok & chosen], y[ok & chosen], s=3, alpha=1, color="xkcd:red")
    ax.scatter(x[ok & ~chosen], y[ok & ~chosen], s=3, alpha=0.5, color="xkcd:grey")
    if mode == "gini":
        ax.set_xlabel("Mean")
        ax.set_ylabel("Variance")
    else:
        ax.set_yscale("log")
        ax.set_xlabel("Mean (log)")
        ax.set_ylabel("CV (log)")
    return save_show_ret("feature_genes", save_show_or_return, save_kwargs, fig, fig)
