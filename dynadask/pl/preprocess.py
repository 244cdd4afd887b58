"""Quality-control figures: dynamo's ``basic_stats``, ``show_fraction``, ``exp_by_groups``.

Also ``highest_frac_genes``. Per-cell and per-gene sums these figures need and the AnnData
lacks are reduced block by block (``graph/summaries.py``): only vectors of length n_cells or
n_genes, or a few gene columns, reach the figure. Nothing is written into the AnnData.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError
from ..graph import summaries as gs
from . import _data
from ._facets import Facets, violin_facets
from ._figure import save_fig, save_show_ret

QC_COLUMNS = ("nGenes", "nCounts", "pMito")
# the raw layers show_fraction compares, by experiment
FRACTION_MODES = {
    "splicing": ("unspliced", "spliced"),
    "labelling": ("new", "total"),
    "full": ("uu", "ul", "su", "sl"),
}


def _groups(adata: ad.AnnData, group: str | None) -> pd.Series | None:
    if group is None or group not in adata.obs.columns:
        return None
    return adata.obs[group]


def _qc_table(adata: ad.AnnData) -> pd.DataFrame:
    """Return obs nGenes, nCounts, pMito, or the same statistics of X reduced block by block."""
    if set(QC_COLUMNS) <= set(adata.obs.columns):
        return adata.obs.loc[:, list(QC_COLUMNS)].astype(np.float64)
    x = _data.layer_array(adata, "X")
    mito = np.asarray(adata.var_names.astype(str).str.upper().str.startswith("MT-"), dtype=bool)
    stats = np.asarray(compute(gs.basic_stats(x, mito), desc="basic stats")[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        p_mito = np.where(stats[:, 1] > 0, stats[:, 2] / stats[:, 1], 0.0)
    values = {"nGenes": stats[:, 0], "nCounts": stats[:, 1], "pMito": p_mito}
    return pd.DataFrame(values, index=adata.obs_names)


def basic_stats(
    adata: ad.AnnData,
    group: str | None = None,
    figsize: tuple[float, float] = (4, 3),
    *,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Facets | None:
    """Violins of the genes detected, total counts and mitochondrial fraction of each cell.

    Reads ``obs['nGenes']``, ``obs['nCounts']`` and ``obs['pMito']`` (written by
    ``dyn.pp.recipe_monocle``); when one is missing, the three are computed from X (raw
    counts; mitochondrial genes are those whose name starts with ``MT-``, any case) in one
    pass over its row blocks, as dynamo computes them on the fly.

    Parameters
    ----------
    adata
        The AnnData (in memory or opened from a store).
    group
        An obs column: one violin per group in each panel (categories in order, other
        values sorted); ``None`` or a name not in obs gives one violin per panel.
    figsize
        Size of each panel in inches.
    save_show_or_return
        ``'save'``, ``'show'``, ``'return'``, ``'both'`` or ``'all'``.
    save_kwargs
        ``path``, ``prefix``, ``dpi``, ``ext``, ``transparent``, ``close``, ``verbose``.

    Returns
    -------
    Facets or None
        With ``'return'`` / ``'all'``: the panels (``figure``, a 1 x 3 ``axes`` array titled
        ``nGenes``, ``nCounts``, ``pMito``, and the long ``data`` table). dynamo returns a
        seaborn ``FacetGrid`` with the same panels.

    Writes
    ------
    Nothing in ``adata`` (dynamo adds the three obs columns when it computes them); a file
    when saving.
    """
    table = _qc_table(adata)
    facets = violin_facets(table, _groups(adata, group), figsize=figsize)
    return save_show_ret("basic_stats", save_show_or_return, save_kwargs, facets, facets.figure)


def _fraction_mode(adata: ad.AnnData) -> str:
    for mode, names in FRACTION_MODES.items():
        if set(names) <= set(adata.layers):
            return mode
    raise InputError(
        "show_fraction needs raw spliced and unspliced layers, new and total layers, or "
        f"uu, ul, su and sl layers; this AnnData has {sorted(adata.layers)}"
    )


def show_fraction(
    adata: ad.AnnData,
    genes: list[str] | None = None,
    group: str | None = None,
    *,
    figsize: tuple[float, float] = (4, 3),
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Facets | None:
    """Violins of each cell's share of unspliced / spliced (or new / old, or uu/ul/su/sl) RNA.

    The per-cell totals of the raw layers over ``genes`` (all genes by default) are summed
    block by block in one pass. Splicing data: ``unspliced`` and ``spliced`` (and
    ``ambiguous`` when that layer exists) over their sum; labelling data: ``new_frac_cell`` =
    new / total and ``old_frac_cell`` = 1 - that; ``uu``/``ul``/``su``/``sl`` data: each over
    their sum (``uu_frac`` ...).

    Parameters
    ----------
    adata
        The AnnData (in memory or opened from a store) with raw count layers.
    genes
        Genes the totals run over (names not in ``var_names`` are ignored).
    group
        An obs column: one violin per group in each panel.
    figsize
        Size of each panel in inches.
    save_show_or_return, save_kwargs
        As in :func:`basic_stats` (file prefix ``show_fraction``).

    Returns
    -------
    Facets or None
        The panels with ``'return'`` / ``'all'`` (dynamo: a seaborn ``FacetGrid``).

    Raises
    ------
    ValueError
        If no gene of ``genes`` is in the data, or the layers of none of the three kinds
        of data are present.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    cols = None
    if genes is not None:
        cols = np.flatnonzero(adata.var_names.isin(list(genes)))
        if cols.size == 0:
            raise InputError(f"none of the genes {list(genes)[:5]} is in adata.var_names")
    mode = _fraction_mode(adata)
    names = list(FRACTION_MODES[mode])
    if mode == "splicing" and "ambiguous" in adata.layers:
        names.append("ambiguous")
    totals = compute(
        gs.cell_totals(*(adata.layers[n] for n in names), genes=cols), desc="layer totals"
    )[0]
    totals = np.asarray(totals, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if mode == "labelling":
            new = totals[:, 0] / totals[:, 1]
            table = {"new_frac_cell": new, "old_frac_cell": 1 - new}
        else:
            shares = totals / totals.sum(axis=1, keepdims=True)
            suffix = "_frac" if mode == "full" else ""
            table = {f"{n}{suffix}": shares[:, i] for i, n in enumerate(names)}
    facets = violin_facets(
        pd.DataFrame(table, index=adata.obs_names),
        _groups(adata, group),
        figsize=figsize,
        ylabel="Fraction",
    )
    return save_show_ret("show_fraction", save_show_or_return, save_kwargs, facets, facets.figure)


def _default_layer(adata: ad.AnnData, layer: str | None) -> str:
    if layer is not None:
        return layer
    splicing = {keys.SPLICED, keys.UNSPLICED} <= set(adata.layers)
    labelling = {keys.NEW, keys.TOTAL} <= set(adata.layers) or set(keys.LABELLING_LAYERS) <= set(
        adata.layers
    )
    if labelling:
        return f"X_{keys.NEW}"
    return f"X_{keys.SPLICED}" if splicing else "X"


def _gene_columns(adata: ad.AnnData, genes: list[str], layer: str) -> dict[str, Any]:
    return {g: _data.gene_column(adata, g, layer) for g in genes}


def exp_by_groups(
    adata: ad.AnnData,
    genes: list[str],
    layer: str | None = None,
    *,
    group: str | None = None,
    use_ratio: bool = False,
    use_smoothed: bool = True,
    log: bool = True,
    angle: float = 0,
    re_order: bool = True,
    figsize: tuple[float, float] = (4, 3),
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Facets | None:
    """Violins of genes' expression in each group (e.g. labelling time), one row per gene.

    Only the genes' own columns are read (one pass over the row blocks for all of them).
    Each panel also shows the group means with 95 % normal intervals (dynamo: seaborn's
    point plot, bootstrap intervals).

    Parameters
    ----------
    adata
        The AnnData (in memory or opened from a store).
    genes
        Genes to draw (names not in ``var_names`` are ignored).
    layer
        Layer read; by default ``X_new`` for labelling data, ``X_spliced`` for splicing data,
        else ``X``.
    group
        obs column of the groups on the x axis (``None``: one violin per gene).
    use_ratio
        Draw the gene's share instead: over ``X_total`` (labelling) or ``X_unspliced +
        X_spliced`` (splicing), smoothed likewise; only for ``X_*`` / ``M_*`` layers.
    use_smoothed
        Read the moment layer (``X_spliced`` -> ``M_s``, ``X_new`` -> ``M_n`` ...).
    log
        Draw ``log1p`` of the values (dynamo applies ``log1p`` whatever ``log`` says; here
        ``log=False`` draws the values themselves).
    angle
        Rotation of the group labels.
    re_order
        Sort categorical groups.
    figsize
        Size of each panel in inches.
    save_show_or_return, save_kwargs
        As in :func:`basic_stats` (file prefix ``exp_by_groups``).

    Returns
    -------
    Facets or None
        The panels (one row per gene, titled by the gene) with ``'return'`` / ``'all'``.

    Raises
    ------
    ValueError
        If no gene is in the data or ``group`` is not an obs column.
    KeyError
        If the layer is missing (the message names the call that makes it).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    valid = [g for g in adata.var_names.intersection(list(genes))]
    if not valid:
        raise InputError(f"none of the genes {list(genes)[:5]} is in adata.var_names")
    if group is not None and group not in adata.obs.columns:
        raise InputError(f"group {group!r} is not a column of adata.obs")
    layer = _default_layer(adata, layer)
    read = _data.smoothed_layer(layer, use_smoothed) if layer.startswith("X_") else layer
    items: dict[Any, Any] = {("x", g): v for g, v in _gene_columns(adata, valid, read).items()}
    parts: list[str] = []
    if use_ratio and layer.startswith(("X_", "M_")):
        labelling = {keys.NEW, keys.TOTAL} <= set(adata.layers)
        parts = [f"X_{keys.TOTAL}"] if labelling else [f"X_{keys.UNSPLICED}", f"X_{keys.SPLICED}"]
        for part in parts:
            src = keys.moment_key(part) if use_smoothed else part
            items.update({(part, g): v for g, v in _gene_columns(adata, valid, src).items()})
    data = _data.gather(items)
    table = {}
    for g in valid:
        x = np.asarray(data["x", g], dtype=np.float64)
        if parts:
            total = sum(np.asarray(data[p, g], dtype=np.float64) for p in parts)
            with np.errstate(divide="ignore", invalid="ignore"):
                x = x / total
        table[g] = np.log1p(x) if log else x
    facets = violin_facets(
        pd.DataFrame(table, index=adata.obs_names),
        _groups(adata, group),
        by="row",
        figsize=figsize,
        ylabel="log(Expression + 1)" if log else "Expression",
        rotation=angle,
        re_order=re_order,
        means=True,
    )
    return save_show_ret("exp_by_groups", save_show_or_return, save_kwargs, facets, facets.figure)


def _features(
    adata: ad.AnnData, gene_prefix_list: list[str] | None, gene_prefix_only: bool
) -> tuple[list[str], list[np.ndarray]]:
    """The ranked features: every gene, or (with prefixes, ``gene_prefix_only``) each prefix."""
    names = adata.var_names.astype(str)
    if gene_prefix_list is None:
        return list(names), [np.array([j]) for j in range(adata.n_vars)]
    members = {}
    taken = np.zeros(adata.n_vars, dtype=bool)
    for prefix in gene_prefix_list:
        hit = np.asarray(names.str.startswith(prefix), dtype=bool) & ~taken
        taken |= hit
        if hit.any():
            members[prefix] = np.flatnonzero(hit)
    if not members:
        raise InputError(
            f"no gene name starts with any of {list(gene_prefix_list)}: "
            "check the prefixes (they are case-sensitive)"
        )
    if not gene_prefix_only:
        return list(names), [np.array([j]) for j in range(adata.n_vars)]
    return list(members), list(members.values())


def highest_frac_genes(
    adata: ad.AnnData,
    n_top: int = 30,
    gene_prefix_list: list[str] | None = None,
    *,
    gene_prefix_only: bool = True,
    show: bool = True,
    save_path: str | None = None,
    ax: Axes | None = None,
    gene_annotations: list[str] | None = None,
    gene_annotation_key: str = "use_for_pca",
    log: bool = False,
    store_key: str = "highest_frac_genes",
    orient: str = "v",
    figsize: tuple[float, float] | None = None,
    layer: str | None = None,
    title: str | None = None,
    v_rotation: float = 35,
    **kwargs: Any,
) -> Axes:
    """Box plots of each cell's fraction of counts in the genes with the largest totals.

    Genes are ranked by their total over all cells (dynamo's ``percent`` is that total
    divided by the number of genes, so the order is the same); each box shows, for one of
    the ``n_top`` genes, the gene's count over the cell's total count in every cell with
    counts. Two passes over the row blocks: the per-gene totals, then the chosen genes'
    per-cell fractions (each block's cell totals computed in the same task), so only
    ``n_cells x n_top`` values reach the figure.

    Parameters
    ----------
    adata
        The AnnData (in memory or opened from a store).
    n_top
        Number of genes (or prefixes) shown.
    gene_prefix_list
        Gene-name prefixes (e.g. ``['MT-', 'Rpl']``); with ``gene_prefix_only`` each prefix's
        genes are summed and ranked as one feature (a gene counts for its first matching
        prefix).
    gene_prefix_only
        Rank the prefix groups instead of genes (only with ``gene_prefix_list``; without it,
        as in dynamo, the prefixes are checked and the genes ranked).
    show
        Call ``plt.show()``.
    save_path
        Save the figure to ``<dir>/plot_highest_gene_<name>.pdf`` (``save_path`` =
        ``<dir>/<name>``).
    ax
        Draw into this axes.
    gene_annotations
        Labels of the shown genes on the second axis; by default the values of
        ``var[gene_annotation_key]`` for them (gene ranking only).
    gene_annotation_key
        var column of the default annotations.
    log
        Log scale on the fraction axis.
    store_key
        Accepted for dynamo's signature: dynadask does not store the table (figures write
        nothing into the AnnData).
    orient
        ``'v'`` (genes along x) or ``'h'`` (genes along y).
    figsize
        Figure size; by default ``(0.4 n_top, 5)`` (``'v'``) or ``(7, 0.4 n_top)``.
    layer
        Layer the fractions are computed on (X by default).
    title
        Axes title (default ``'Rank by gene expression fraction'`` or ``'Rank by <layer>
        fraction'``).
    v_rotation
        Rotation of gene names with ``orient='v'``.
    **kwargs
        Passed to ``Axes.boxplot``.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into (dynamo returns it whatever ``show`` says).

    Raises
    ------
    ValueError
        If ``orient`` is not ``'v'`` or ``'h'`` or no gene matches the prefixes.

    Writes
    ------
    Nothing in ``adata`` (dynamo stores the table in ``uns[store_key]``); a file with
    ``save_path``.
    """
    if orient not in ("v", "h"):
        raise InputError(f"orient must be 'v' (genes along x) or 'h' (along y), not {orient!r}")
    names, members = _features(adata, gene_prefix_list, gene_prefix_only)
    x = _data.layer_array(adata, "X" if layer is None else layer)
    gene_sum = np.asarray(compute(gs.gene_totals(x), desc="gene totals")[0], dtype=np.float64)
    feature_sum = np.array([np.nansum(gene_sum[m]) for m in members])
    top = np.argsort(-feature_sum, kind="stable")[:n_top]
    fractions = compute(gs.feature_fractions(x, [members[i] for i in top]), desc="fractions")[0]
    fractions = np.asarray(fractions, dtype=np.float64)
    fractions = fractions[np.isfinite(fractions).all(axis=1)]  # cells without counts
    labels = [names[i] for i in top]
    if ax is None:
        length = n_top * 0.4
        size = figsize or ((length, 5) if orient == "v" else (7, length))
        _, ax = plt.subplots(figsize=size)
    positions = np.arange(len(top))
    ax.boxplot(
        [fractions[:, k] for k in range(len(top))],
        positions=positions,
        orientation="vertical" if orient == "v" else "horizontal",
        showmeans=True,
        flierprops={"markersize": 1},
        **kwargs,
    )
    if (
        gene_annotations is None
        and gene_annotation_key in adata.var
        and not (gene_prefix_list is not None and gene_prefix_only)
    ):
        gene_annotations = list(adata.var[gene_annotation_key].to_numpy()[top])
    _label_axes(ax, labels, gene_annotations, gene_annotation_key, orient, v_rotation, log)
    ax.set_title(
        title
        if title is not None
        else "Rank by gene expression fraction"
        if layer is None
        else f"Rank by {layer} fraction"
    )
    if show:
        plt.show()
    if save_path:
        save_fig(ax.figure, path=save_path, prefix="plot_highest_gene", close=False)
    return ax


def _label_axes(
    ax: Axes,
    labels: list[str],
    annotations: list[Any] | None,
    key: str,
    orient: str,
    rotation: float,
    log: bool,
) -> None:
    positions = np.arange(len(labels))
    if orient == "v":
        ax.set_xticks(positions, labels, rotation=rotation, ha="right")
        ax.set_xlabel("genes")
        ax.set_ylabel("fractions of total counts")
        if log:
            ax.set_yscale("log")
        if annotations is not None:
            twin = ax.twiny()
            twin.set_xlim(ax.get_xlim())
            twin.set_xticks(positions, [str(a) for a in annotations], rotation=rotation, ha="left")
            twin.set_xlabel(key)
        return
    ax.set_yticks(positions, labels)
    ax.set_xlabel("fractions of total counts")
    ax.set_ylabel("genes")
    if log:
        ax.set_xscale("log")
    if annotations is not None:
        twin = ax.twinx()
        twin.set_ylim(ax.get_ylim())
        twin.set_yticks(positions, [str(a) for a in annotations])
        twin.set_ylabel(key)
