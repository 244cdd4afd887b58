"""``dyn.pl.kinetic_curves`` and ``dyn.pl.kinetic_heatmap``: expression along a time axis.

The time is either a pseudotime of the cells (``mode='pseudotime'``: an obs column such as
``'umap_ddhodge_potential'``) or the time of a predicted trajectory (``mode='vector_field'``:
``uns['fate_<basis>']`` of :func:`dynadask.pd.fate`; ``mode='lap'``: ``uns['LAP_<basis>']``
of :func:`dynadask.pd.least_action`). Only the asked genes' columns are read from a layer
(Dask-backed layers in one pass over the row blocks); smoothing and ordering are numpy on the
client (``dynadask.kernels.time_series``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import dask.array as da
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..kernels import time_series as ts
from . import _data, _points
from ._figure import cluster_order, panels, save_show_ret
from .jacobian import derivatives

MODES = ("vector_field", "lap", "pseudotime")
GENE_ORDERS = ("maximum", "half_max_ordering", "raw")
MAX_POINTS_DRAWN = 200_000
"""``kinetic_curves`` draws at most this many cells per panel (an even subsample, seeded);
the curve is always computed from every cell."""


@dataclass
class Kinetics:
    """Values along time: ``values`` (``n x genes``) at ``time`` (``n``).

    ``cells`` holds the cell indices of the rows for ``mode='pseudotime'`` (``None`` for a
    trajectory, whose rows are its samples).
    """

    time: np.ndarray
    values: np.ndarray
    genes: list[str]
    cells: np.ndarray | None


def _as_names(genes: Sequence[str] | str | pd.Index) -> list[str]:
    names = [genes] if isinstance(genes, str) else [str(g) for g in genes]
    if not names:
        raise InputError("genes is empty: pass the names of the genes to draw")
    return names


def _keep(asked: list[str], available: Sequence[str], where: str) -> list[str]:
    """The asked names present in ``available``, in the asked order; an error if none."""
    have = set(available)
    kept = [g for g in dict.fromkeys(asked) if g in have]
    if not kept:
        raise InputError(
            f"none of the genes {asked[:8]} is in {where} (first names there: "
            f"{list(available)[:8]})"
        )
    missing = [g for g in dict.fromkeys(asked) if g not in have]
    if missing:
        warnings.warn(
            f"{len(missing)} of the genes are not in {where} and are left out: {missing[:8]}",
            UserWarning,
            stacklevel=5,  # the user's call of kinetic_curves / kinetic_heatmap
        )
    return kept


def _time_key(adata: ad.AnnData, tkey: str, basis: str | None) -> str:
    if tkey in adata.obs.columns:
        return tkey
    if tkey == "potential":
        found = [
            c
            for c in (f"{basis}_ddhodge_potential" if basis else None, "umap_ddhodge_potential")
            if c and c in adata.obs.columns
        ]
        if found:
            return found[0]
    raise MissingKeyError(
        f"obs[{tkey!r}] is missing: pass tkey= an obs column of pseudotime (e.g. "
        "'umap_ddhodge_potential', made by dyn.ext.ddhodge(adata, basis='umap'), or "
        "'latent_time' of dyn.tl.latent_time)"
    )


def _time_values(adata: ad.AnnData, tkey: str, basis: str | None) -> tuple[str, np.ndarray]:
    """The pseudotime column read (see :func:`_time_key`) and every cell's value (NaN if none)."""
    key = _time_key(adata, tkey, basis)
    return key, pd.to_numeric(adata.obs[key], errors="coerce").to_numpy(dtype=np.float64)


def _pseudotime(
    adata: ad.AnnData, genes: list[str], layer: str, tkey: str, basis: str | None, log: bool
) -> Kinetics:
    key, time = _time_values(adata, tkey, basis)
    cells = np.flatnonzero(np.isfinite(time))
    if cells.size < 2:
        raise InputError(f"obs[{key!r}] has {cells.size} finite values: need at least 2 cells")
    kept = _keep(genes, adata.var_names, "adata.var_names")
    _data.layer_array(adata, layer)  # a clear error for a missing layer
    columns = _data.gather({g: _data.gene_column(adata, g, layer) for g in kept})
    values = np.stack([columns[g] for g in kept], axis=1)[cells]
    if not np.isfinite(values).all():
        raise InputError(f"layer {layer!r} holds NaN or infinite values for the asked genes")
    if layer == "X":
        values = values if log else np.expm1(values)
    elif log:
        if (values < 0).any():
            raise InputError(
                f"layer {layer!r} has negative values: log1p needs counts; pass log=False"
            )
        values = np.log1p(values)
    return Kinetics(time[cells], values, kept, cells)


def _trajectory(
    adata: ad.AnnData,
    genes: list[str],
    mode: str,
    basis: str | None,
    project_back_to_high_dim: bool,
    traj_ind: int,
) -> Kinetics:
    prefix = "LAP_" if mode == "lap" else "fate_"
    stored = sorted(k for k in adata.uns if str(k).startswith(prefix))
    maker = "dyn.pd.least_action" if mode == "lap" else "dyn.pd.fate"
    if basis is None:
        raise InputError(
            f"mode={mode!r} needs basis= (the trajectories are stored per basis; "
            f"found {stored or 'none'}; made by {maker})"
        )
    basis = keys.basis_name(basis)
    key = prefix + basis
    if key not in adata.uns:
        raise MissingKeyError(f"no uns[{key!r}] (found {stored or 'none'}): run {maker} first")
    rec = adata.uns[key]
    n = int(np.shape(rec["t"])[0])
    if not -n <= traj_ind < n:
        raise InputError(f"traj_ind={traj_ind} but uns[{key!r}] holds {n} trajectories")
    if project_back_to_high_dim:
        if "exprs" not in rec:
            how = "inverse_transform=True" if mode != "lap" else "the PCA loadings uns['PCs']"
            raise MissingKeyError(
                f"uns[{key!r}] has no trajectories in genes ('exprs'): run {maker} in "
                f"basis='pca' with {how}, or pass project_back_to_high_dim=False"
            )
        names = [str(g) for g in rec["expr_genes" if "expr_genes" in rec else "genes"]]
        kept = _keep(genes, names, f"uns[{key!r}]'s genes")
        path = rec["exprs"][traj_ind]  # L x genes
    else:
        path = rec["prediction"][traj_ind]
        path = path.T if mode != "lap" else path  # fate: d x L; LAP: L x d
        names = [f"{basis}_{i}" for i in range(path.shape[1])]
        kept = _keep(genes, names, f"the components of uns[{key!r}]")
    cols = np.array([names.index(g) for g in kept])
    t = rec["t"][traj_ind]
    if isinstance(path, da.Array) or isinstance(t, da.Array):
        path, t = compute(path, t, desc="trajectory")
    values = np.asarray(path, dtype=np.float64)[:, cols]
    t = np.asarray(t, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(values).all(axis=1)
    return Kinetics(t[ok], values[ok], kept, None)


def kinetics(
    adata: ad.AnnData,
    genes: Sequence[str] | str,
    mode: str = "vector_field",
    basis: str | None = None,
    layer: str = "X",
    project_back_to_high_dim: bool = True,
    tkey: str = "potential",
    traj_ind: int = 0,
    log: bool = True,
) -> Kinetics:
    """Values of ``genes`` along time, as the two kinetic figures read them.

    See :func:`kinetic_heatmap` for the parameters. Rows are the cells with a finite
    pseudotime (in ``adata``'s order) or the samples of one trajectory (in time order).

    Raises
    ------
    ValueError
        Unknown mode, no basis for a trajectory, none of the genes found, a missing layer,
        time column or trajectory record.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {MODES}, not {mode!r}")
    names = _as_names(genes)
    if mode == "pseudotime":
        return _pseudotime(adata, names, layer, tkey, basis, log)
    return _trajectory(adata, names, mode, basis, project_back_to_high_dim, int(traj_ind))


def _scale_axis(standard_scale: int | None, name: str) -> int | None:
    if standard_scale not in (0, 1, None):
        raise InputError(f"{name} must be 0, 1 or None, not {standard_scale!r}")
    return standard_scale


def kinetic_curves(
    adata: ad.AnnData,
    genes: Sequence[str] | str,
    mode: str = "vector_field",
    *,
    basis: str | None = None,
    layer: str = "X",
    project_back_to_high_dim: bool = True,
    tkey: str = "potential",
    dist_threshold: float | None = 1e-10,
    ncol: int = 4,
    color: str | None = "ntr",
    c_palette: str = "Set2",
    standard_scale: int | None = 0,
    traj_ind: int = 0,
    log: bool = True,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    n_convolve: int = 30,
    spaced_num: int = 100,
    figsize: tuple[float, float] = (4, 3),
) -> list[Axes] | None:
    """Draw each gene's expression against time, one panel per gene.

    For a trajectory (``mode='vector_field'`` or ``'lap'``) each panel is the path's values
    at its samples, the samples after the path stops moving left out (``dist_threshold``).
    For ``mode='pseudotime'`` each panel shows the cells (at most ``MAX_POINTS_DRAWN``, an
    even seeded subsample; coloured by ``color`` when it is an obs column) and their
    running mean over ``n_convolve`` time-ordered cells read at ``spaced_num`` times (the
    curve of :func:`kinetic_heatmap`). dynamo draws seaborn line plots through every cell;
    seaborn is not a dependency.

    Parameters
    ----------
    adata
        AnnData, in memory or opened from a store.
    genes
        Gene names (or, with ``project_back_to_high_dim=False``, components ``'<basis>_i'``).
    mode
        ``'vector_field'`` (``uns['fate_<basis>']``), ``'lap'`` (``uns['LAP_<basis>']``) or
        ``'pseudotime'`` (the cells ordered by ``obs[tkey]``).
    basis
        The basis the trajectories were predicted in (trajectory modes).
    layer
        Layer read for ``mode='pseudotime'`` (``'X'`` or a key of ``adata.layers``).
    project_back_to_high_dim
        Trajectory modes: draw the trajectory in genes (its stored ``exprs``) rather than in
        the basis' components.
    tkey
        obs column of the pseudotime. ``'potential'`` falls back to
        ``obs['<basis>_ddhodge_potential']`` or ``obs['umap_ddhodge_potential']``.
    dist_threshold
        Trajectory modes: a sample is kept when its squared step from the one before exceeds
        this (``None``: every sample).
    ncol
        Panels per row.
    color
        obs column colouring the cells (pseudotime mode). When the default ``'ntr'`` is
        absent (it exists for labelling data only) the cells are drawn in one colour.
    c_palette
        Matplotlib colour map of the categories of ``color``.
    standard_scale
        ``0``: each gene scaled to ``[0, 1]`` over time; ``1``: each time over the genes;
        ``None``: values as read.
    traj_ind
        Which stored trajectory to draw (trajectory modes).
    log
        ``mode='pseudotime'``: X is drawn as stored (dynamo's X is log-normalised) and other
        layers as ``log1p``; ``False`` draws ``expm1(X)`` and other layers as stored.
        Trajectories are drawn as stored.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``kinetic_curves``).
    n_convolve, spaced_num
        Window (cells) and number of points of the pseudotime curve.
    figsize
        Size of one panel in inches.

    Returns
    -------
    list of Axes or None
        One axes per gene when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        As :func:`kinetics`; a ``color`` that is not an obs column; a bad ``standard_scale``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    axis = _scale_axis(standard_scale, "standard_scale")
    data = kinetics(adata, genes, mode, basis, layer, project_back_to_high_dim, tkey, traj_ind, log)
    labels = None
    if mode == "pseudotime" and color is not None:
        if color in adata.obs.columns:
            labels = adata.obs[color].iloc[data.cells]
        elif color != "ntr":
            raise MissingKeyError(
                f"color {color!r} is not a column of adata.obs "
                f"(columns: {list(adata.obs.columns)[:12]} ...)"
            )
    values = data.values
    if mode != "pseudotime":
        keep = ts.moving_samples(values, dist_threshold)
        time, values = data.time[keep], values[keep]
    else:
        time = data.time
    values = ts.min_max(values, axis)  # rows are times: 0 scales each gene
    fig, axes = panels(len(data.genes), ncol, figsize)
    if mode == "pseudotime":
        grid, curve, _ = ts.smooth_over_time(time, values, spaced_num, n_convolve)
        shown = _drawn(len(time))
        c, cmap, legend = _cell_colours(labels, shown, c_palette)
        size = _points.point_size(len(shown), base=2000.0)
        for j, ax in enumerate(axes):
            ax.scatter(
                time[shown],
                values[shown, j],
                s=size,
                c=c,
                cmap=cmap,
                alpha=0.4,
                linewidths=0,
                rasterized=True,
            )
            ax.plot(grid, curve[j], color="black", linewidth=1.5)
        if legend:
            axes[-1].legend(handles=legend, title=color, loc="center left", bbox_to_anchor=(1, 0.5))
    else:
        order = np.argsort(time, kind="stable")
        for j, ax in enumerate(axes):
            ax.plot(time[order], values[order, j], linewidth=1.5)
    last_row = len(axes) - min(max(1, ncol), len(axes))
    for k, (ax, gene) in enumerate(zip(axes, data.genes, strict=True)):
        ax.set_title(gene)
        ax.set_ylabel("expression")
        if k >= last_row:  # the bottom row only: titles would sit on the labels above
            ax.set_xlabel("time" if mode != "pseudotime" else "pseudotime")
    return save_show_ret("kinetic_curves", save_show_or_return, save_kwargs, axes, fig)


def _drawn(n: int) -> np.ndarray:
    """The cells drawn: all, or an even seeded subsample of ``MAX_POINTS_DRAWN``."""
    if n <= MAX_POINTS_DRAWN:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_POINTS_DRAWN, replace=False))


def _cell_colours(labels: pd.Series | None, shown: np.ndarray, palette: str):
    """Point colours, colour map and legend handles for the drawn cells."""
    if labels is None:
        return "tab:grey", None, []
    if _data.is_categorical(labels):
        cat = pd.Categorical(labels.astype(str))
        table = _palette(len(cat.categories), palette)
        handles = [
            mpl.lines.Line2D([], [], marker="o", linestyle="", color=table[k], label=name)
            for k, name in enumerate(cat.categories)
        ]
        return table[np.asarray(cat.codes)[shown]], None, handles
    return pd.to_numeric(labels, errors="coerce").to_numpy()[shown], "viridis", []


def _palette(n: int, name: str) -> np.ndarray:
    """``n`` colours from the colour map ``name`` (cycled when it has fewer)."""
    try:
        cmap = mpl.colormaps[name]
    except KeyError:
        raise InputError(
            f"unknown colour map {name!r}: pass a matplotlib colour map name"
        ) from None
    steps = getattr(cmap, "N", 256)
    idx = np.arange(n) % steps if steps < 64 else np.linspace(0, 1, max(n, 1))[:n]
    return cmap(idx)


def _check_order(gene_order_method: str) -> str:
    if gene_order_method not in GENE_ORDERS:
        raise InputError(
            f"gene_order_method must be one of {GENE_ORDERS}, not {gene_order_method!r}"
        )
    return gene_order_method


def _ordered(m: np.ndarray, method: str, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows (genes or pairs) x points scaled and the order of the rows.

    ``'half_max_ordering'``: every row on ``[0, 1]``, rows by the half-max rule; otherwise
    scaled along ``axis`` (1 each row, 0 each column) and ordered by peak (``'maximum'``) or
    kept in place (``'raw'``).
    """
    if method == "half_max_ordering":
        rows, _ = ts.half_max_order(m)
        return ts.min_max(m, axis=1), rows
    m = ts.min_max(m, axis)
    return m, ts.peak_order(m) if method == "maximum" else np.arange(m.shape[0])


def heatmap_table(
    data: Kinetics,
    mode: str,
    *,
    dist_threshold: float | None,
    gene_order_method: str,
    standard_scale: int | None,
    n_convolve: int,
    spaced_num: int | None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The heatmap's table (genes x points along time) and the time of each column.

    Pseudotime: the running mean over ``n_convolve`` time-ordered cells at ``spaced_num``
    evenly spaced times (``None``: at every cell, columns named by cell). Trajectories: the
    samples kept by ``dist_threshold``, not smoothed. Then scaled (``standard_scale``: 1 each
    gene, 0 each column) and the genes ordered (``gene_order_method``).
    """
    _check_order(gene_order_method)
    axis = _scale_axis(standard_scale, "standard_scale")
    if mode == "pseudotime":
        grid, m, order = ts.smooth_over_time(data.time, data.values, spaced_num, n_convolve)
        columns = None if spaced_num is not None else data.cells[order]
    else:
        keep = ts.moving_samples(data.values, dist_threshold)
        order = keep[np.argsort(data.time[keep], kind="stable")]
        grid, m, columns = data.time[order], data.values[order].T, None
    m, rows = _ordered(m, gene_order_method, axis)
    df = pd.DataFrame(m[rows], index=np.asarray(data.genes)[rows])
    if columns is not None:
        df.columns = columns
    return df, grid


def kinetic_heatmap(
    adata: ad.AnnData,
    genes: Sequence[str] | str | pd.Index,
    mode: str = "vector_field",
    *,
    basis: str | None = None,
    layer: str = "X",
    project_back_to_high_dim: bool = True,
    tkey: str = "potential",
    dist_threshold: float | None = 1e-10,
    color_map: str = "BrBG",
    gene_order_method: str = "maximum",
    show_colorbar: bool = False,
    cluster_row_col: Sequence[bool] = (False, False),
    figsize: tuple[float, float] = (11.5, 6),
    standard_scale: int | None = 1,
    n_convolve: int = 30,
    spaced_num: int | None = 100,
    traj_ind: int = 0,
    log: bool = True,
    gene_group: str | None = None,
    gene_group_cmap: str | None = None,
    cell_group: str | None = None,
    cell_group_cmap: str | None = None,
    enforce: bool = False,
    hline_rows: Sequence[int] | None = None,
    hlines_kwargs: dict | None = None,
    vline_cols: Sequence[int] | None = None,
    vlines_kwargs: dict | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    transpose: bool = False,
    **kwargs: Any,
) -> Axes | None:
    """Draw the genes' expression along time as a heatmap: genes x time.

    Pseudotime (``mode='pseudotime'``): the cells are ordered by ``obs[tkey]``, each gene is
    averaged over ``n_convolve`` consecutive cells and read at ``spaced_num`` evenly spaced
    times. Trajectories (``'vector_field'``, ``'lap'``): the samples of trajectory
    ``traj_ind`` while it moves. Each gene is scaled to ``[0, 1]`` (``standard_scale=1``) and
    the genes are ordered by where they peak (``'maximum'``), by dynamo's half-max rule
    (``'half_max_ordering'``: rising genes, falling genes, then transient ones, each by
    where it crosses half its maximum; ``dynadask.kernels.time_series.half_max_order``) or
    as given (``'raw'``). dynamo draws ``seaborn.clustermap``; dynadask draws the same table
    with ``imshow`` (no dendrograms), group colours in strips beside it.

    Parameters
    ----------
    adata, genes, mode, basis, layer, project_back_to_high_dim, tkey, traj_ind, log
        As in :func:`kinetic_curves`.
    dist_threshold
        Trajectory modes: samples whose squared step from the one before is at most this are
        left out (``None``: none).
    color_map
        Colour map of the scaled values.
    gene_order_method
        ``'maximum'``, ``'half_max_ordering'`` or ``'raw'``.
    show_colorbar
        Draw a colour bar.
    cluster_row_col
        Reorder by average-linkage clustering: the first entry the columns, the second the
        genes (dynamo's order of the pair).
    figsize
        Size of the figure in inches.
    standard_scale
        ``1``: each gene scaled to ``[0, 1]``; ``0``: each column; ``None``: as smoothed.
    n_convolve
        Cells in the running mean (pseudotime).
    spaced_num
        Points along the pseudotime (``None``: one column per cell).
    gene_group, gene_group_cmap
        var column whose groups colour a strip beside the genes, and its colour map.
    cell_group, cell_group_cmap
        obs column (pseudotime only) whose groups colour a strip along time: per column the
        group most of its cells belong to (the cells nearest that time), and its colour map.
    enforce
        With ``False``, a table (DataFrame) a user placed in ``uns['kinetic_heatmap']`` is
        drawn instead of computing one, as dynamo does; ``True`` always computes.
    hline_rows, hlines_kwargs, vline_cols, vlines_kwargs
        Rows / columns to mark with dash-dotted lines, and the lines' keywords.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``kinetic_heatmap``).
    transpose
        Genes along the x axis.
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    Axes or None
        The heatmap's axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        As :func:`kinetics`; unknown order method or scaling; a group column missing, or
        ``cell_group`` with trajectories.

    Writes
    ------
    Nothing in ``adata``; a file when saving. (dynamo stores the table in
    ``uns['kinetics_heatmap']``; a figure here never changes the data.)
    """
    cluster_cols, cluster_rows = (bool(c) for c in cluster_row_col)
    stored = adata.uns.get("kinetic_heatmap")
    data = grid = None
    if not enforce and isinstance(stored, pd.DataFrame):
        df = stored
    else:
        data = kinetics(
            adata, genes, mode, basis, layer, project_back_to_high_dim, tkey, traj_ind, log
        )
        df, grid = heatmap_table(
            data,
            mode,
            dist_threshold=dist_threshold,
            gene_order_method=gene_order_method,
            standard_scale=standard_scale,
            n_convolve=n_convolve,
            spaced_num=spaced_num,
        )
    m = df.to_numpy(dtype=np.float64)
    rows, cols = cluster_order(m, cluster_rows, cluster_cols)
    m, names = m[rows][:, cols], [str(g) for g in df.index[rows]]
    gene_strip = _gene_strip(adata, names, gene_group, gene_group_cmap)
    cells = data if mode == "pseudotime" else None
    cell_strip = _cell_strip(adata, cells, cell_group, cell_group_cmap, grid)
    if cell_strip is not None:
        cell_strip = (cell_strip[0][cols], cell_strip[1])
    fig, ax = _table_figure(
        m,
        names,
        xlabel="pseudotime" if mode == "pseudotime" else "time",
        color_map=color_map,
        norm=None,
        row_strip=gene_strip,
        col_strip=cell_strip,
        transpose=transpose,
        lines=(hline_rows, hlines_kwargs, vline_cols, vlines_kwargs),
        show_colorbar=show_colorbar,
        figsize=figsize,
        imshow_kwargs=kwargs,
    )
    return save_show_ret("kinetic_heatmap", save_show_or_return, save_kwargs, ax, fig)


def _table_figure(
    m: np.ndarray,
    names: list[str],
    *,
    xlabel: str,
    color_map: str,
    norm: Normalize | None,
    row_strip: tuple | None,
    col_strip: tuple | None,
    transpose: bool,
    lines: tuple,
    show_colorbar: bool,
    figsize: tuple[float, float],
    imshow_kwargs: dict,
):
    """Draw a named-rows x time table with ``imshow``, group strips, lines and a colour bar.

    ``norm=None`` spans the table's range. Returns the figure and the heatmap's axes.
    """
    if transpose:
        m, row_strip, col_strip = m.T, col_strip, row_strip
    fig = plt.figure(figsize=figsize)
    spec = fig.add_gridspec(
        2, 3, width_ratios=[0.03, 1, 0.025], height_ratios=[0.04, 1], wspace=0.02, hspace=0.02
    )
    ax = fig.add_subplot(spec[1, 1])
    if norm is None:
        top = np.nanmax(m) if np.isfinite(m).any() else 1.0
        bottom = np.nanmin(m) if np.isfinite(m).any() else 0.0
        norm = Normalize(bottom, top if top > bottom else bottom + 1)
    image = ax.imshow(
        m, cmap=color_map, norm=norm, aspect="auto", interpolation="nearest", **imshow_kwargs
    )
    ax.set_yticks(range(len(names)) if not transpose else [], names if not transpose else [])
    ax.tick_params(axis="y", labelsize="small")
    ax.set_xticks(
        [] if not transpose else range(len(names)), [] if not transpose else names, rotation=90
    )
    ax.set_xlabel("genes" if transpose else xlabel)
    legend = []
    for where, strip in (("left", row_strip), ("top", col_strip)):
        if strip is None:
            continue
        colours, handles = strip
        cax = fig.add_subplot(spec[1, 0] if where == "left" else spec[0, 1])
        rgba = colours[:, None, :] if where == "left" else colours[None, :, :]
        cax.imshow(rgba, aspect="auto", interpolation="nearest")
        cax.set_xticks([])
        cax.set_yticks([])
        legend += handles
    if legend:
        fig.legend(handles=legend, loc="upper right", fontsize="small", frameon=False)
    hline_rows, hlines_kwargs, vline_cols, vlines_kwargs = lines
    if hline_rows is not None:
        ax.hlines(
            np.asarray(hline_rows) - 0.5,
            *ax.get_xlim(),
            **{"linestyles": "dashdot", **(hlines_kwargs or {})},
        )
    if vline_cols is not None:
        ax.vlines(
            np.asarray(vline_cols) - 0.5,
            *ax.get_ylim(),
            **{"linestyles": "dashdot", **(vlines_kwargs or {})},
        )
    if show_colorbar:
        fig.colorbar(image, cax=fig.add_subplot(spec[1, 2]))
    return fig, ax


def _group_colours(values: pd.Series, cmap: str | None, stored: Any) -> tuple[dict, list]:
    cat = pd.Categorical(values.astype(str))
    names = list(cat.categories)
    table = _points.label_colors(names, stored) if cmap is None else _palette(len(names), cmap)
    lut = {name: table[k] for k, name in enumerate(names)}
    handles = [mpl.patches.Patch(color=lut[name], label=name) for name in names]
    return lut, handles


def _gene_strip(adata: ad.AnnData, genes: list[str], group: str | None, cmap: str | None):
    if group is None:
        return None
    if group not in adata.var.columns:
        raise MissingKeyError(f"gene_group {group!r} is not a column of adata.var")
    if not set(genes) <= set(adata.var_names):
        raise InputError("gene_group colours genes: the rows are not all genes of adata.var")
    values = adata.var[group].astype(str).reindex(genes)
    lut, handles = _group_colours(values, cmap, adata.uns.get(f"{group}_colors"))
    return np.stack([lut[v] for v in values]), handles


def _cell_strip(
    adata: ad.AnnData,
    data: Kinetics | None,
    group: str | None,
    cmap: str | None,
    grid: np.ndarray | None,
):
    """Colours of the columns by ``obs[group]``: ``data`` the cells of a pseudotime table."""
    if group is None:
        return None
    if data is None or grid is None:
        raise InputError(
            "cell_group colours the time axis of mode='pseudotime' (a trajectory's samples "
            "are not cells)"
        )
    if group not in adata.obs.columns:
        raise MissingKeyError(f"cell_group {group!r} is not a column of adata.obs")
    labels = adata.obs[group].astype(str).to_numpy()[data.cells]
    lut, handles = _group_colours(pd.Series(labels), cmap, adata.uns.get(f"{group}_colors"))
    # each cell to the nearest column time; a column takes its cells' most common group
    edges = (grid[1:] + grid[:-1]) / 2
    col = np.searchsorted(edges, data.time)
    names = list(lut)
    code = pd.Categorical(labels, categories=names).codes
    counts = np.zeros((len(grid), len(names)), dtype=np.int64)
    np.add.at(counts, (col, code), 1)
    majority = np.argmax(counts, axis=1)
    colours = np.stack([lut[names[k]] for k in majority])
    colours[counts.sum(axis=1) == 0] = mpl.colors.to_rgba("white")
    return colours, handles


def derivative_table(
    adata: ad.AnnData,
    kind: str,
    basis: str,
    regulators: Sequence[str] | str | None,
    effectors: Sequence[str] | str | None,
    *,
    tkey: str,
    gene_order_method: str,
    standard_scale: int | None,
    n_convolve: int,
) -> pd.DataFrame:
    """The per-cell Jacobian (or sensitivity) elements along pseudotime: pairs x columns.

    Rows are ``'regulator->effector'`` (effector by effector, regulators within), columns
    the cells the derivative was computed on, ordered by ``obs[tkey]`` (or, for
    ``'half_max_ordering'``, 100 evenly spaced times). ``'raw'``: each row divided by its
    largest magnitude (signs kept), not smoothed; ``'maximum'``: the running mean over
    ``n_convolve`` cells, scaled (``standard_scale``) and ordered by peak;
    ``'half_max_ordering'``: the running mean read at 100 times, each row on ``[0, 1]``,
    ordered by the half-max rule.
    """
    _check_order(gene_order_method)
    axis = _scale_axis(standard_scale, "standard_scale")
    der = derivatives(adata, kind, basis, regulators, effectors)
    key, time = _time_values(adata, tkey, basis)
    time = time[der.cell_idx]
    ok = np.flatnonzero(np.isfinite(time))
    if ok.size < 2:
        raise InputError(
            f"obs[{key!r}] is finite at {ok.size} of the cells of uns['{kind}_{basis}']: "
            "need at least 2"
        )
    values = np.asarray(_data.gather({"d": der.values})["d"], dtype=np.float64)
    n_eff, n_reg = len(der.effectors), len(der.regulators)
    pairs = np.asarray([f"{r}->{e}" for e in der.effectors for r in der.regulators], dtype=object)
    values = values.reshape(values.shape[0], n_eff * n_reg)[ok]  # cells x pairs
    cells = der.cell_idx[ok]
    if gene_order_method == "raw":
        order = np.argsort(time[ok], kind="stable")
        m = values[order].T
        top = np.max(np.abs(m), axis=1, keepdims=True)
        m = np.divide(m, top, out=np.zeros_like(m), where=top > 0)
        return pd.DataFrame(m, index=pairs, columns=adata.obs_names[cells[order]])
    on_grid = gene_order_method == "half_max_ordering"  # read at 100 times, else every cell
    _, m, order = ts.smooth_over_time(time[ok], values, 100 if on_grid else None, n_convolve)
    m, rows = _ordered(m, gene_order_method, axis)
    df = pd.DataFrame(m[rows], index=pairs[rows])
    if not on_grid:
        df.columns = adata.obs_names[cells[order]]
    return df


def _derivative_kinetics(
    adata: ad.AnnData,
    kind: str,
    basis: str,
    regulators: Sequence[str] | str | None,
    effectors: Sequence[str] | str | None,
    mode: str,
    options: dict[str, Any],
    kwargs: dict[str, Any],
) -> Axes | None:
    if mode != "pseudotime":
        raise InputError(
            f"mode must be 'pseudotime', not {mode!r}: the {kind} is stored per cell, so its "
            "time is the cells' pseudotime (tkey=)"
        )
    df = derivative_table(
        adata,
        kind,
        basis,
        regulators,
        effectors,
        tkey=options["tkey"],
        gene_order_method=options["gene_order_method"],
        standard_scale=options["standard_scale"],
        n_convolve=options["n_convolve"],
    )
    cluster_cols, cluster_rows = (bool(c) for c in options["cluster_row_col"])
    m = df.to_numpy(dtype=np.float64)
    rows, cols = cluster_order(m, cluster_rows, cluster_cols)
    m = m[rows][:, cols]
    top = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
    fig, ax = _table_figure(
        m,
        [str(p) for p in df.index[rows]],
        xlabel="pseudotime",
        color_map=options["color_map"],
        norm=Normalize(-top if top > 0 else -1.0, top if top > 0 else 1.0),  # centred on 0
        row_strip=None,
        col_strip=None,
        transpose=False,
        lines=(None, None, None, None),
        show_colorbar=options["show_colorbar"],
        figsize=options["figsize"],
        imshow_kwargs=kwargs,
    )
    return save_show_ret(
        f"{kind}_kinetics", options["save_show_or_return"], options["save_kwargs"], ax, fig
    )


def jacobian_kinetics(
    adata: ad.AnnData,
    basis: str = "umap",
    regulators: Sequence[str] | str | None = None,
    *,
    effectors: Sequence[str] | str | None = None,
    mode: str = "pseudotime",
    tkey: str = "potential",
    color_map: str = "bwr",
    gene_order_method: str = "raw",
    show_colorbar: bool = False,
    cluster_row_col: Sequence[bool] = (False, True),
    figsize: tuple[float, float] = (11.5, 6),
    standard_scale: int | None = 1,
    n_convolve: int = 30,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | None:
    """Draw each Jacobian element ``d f_effector / d x_regulator`` along pseudotime.

    One row per regulator -> effector pair of ``uns['jacobian_<basis>']`` (from
    :func:`dynadask.vf.jacobian`), one column per cell it was computed on, in the order of
    ``obs[tkey]`` (see :func:`derivative_table` for the three ``gene_order_method``).
    Colours are centred on zero. dynamo draws ``seaborn.clustermap``; dynadask draws the
    table with ``imshow`` (rows reordered by average-linkage clustering by default, no
    dendrograms).

    Parameters
    ----------
    adata
        AnnData, in memory or opened from a store.
    basis
        The basis the Jacobian was computed in (dynamo's default ``'umap'``; dynadask's
        ``dyn.vf.jacobian`` computes in ``'pca'``).
    regulators, effectors
        Genes among those of the stored Jacobian (``None``: all; one given, the other the
        same list, as :func:`dynadask.pl.jacobian`).
    mode
        ``'pseudotime'`` (the only time a per-cell array has).
    tkey
        obs column of the pseudotime (``'potential'`` falls back to ddhodge's column).
    color_map
        A diverging colour map.
    gene_order_method
        ``'raw'``, ``'maximum'`` or ``'half_max_ordering'``.
    show_colorbar
        Draw a colour bar.
    cluster_row_col
        Reorder by average-linkage clustering: the columns, the rows (dynamo's order).
    figsize
        Size of the figure in inches.
    standard_scale
        ``'maximum'`` only: ``1`` each pair scaled to ``[0, 1]``, ``0`` each column,
        ``None`` none.
    n_convolve
        Cells in the running mean (``'maximum'``, ``'half_max_ordering'``).
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``jacobian_kinetics``).
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    Axes or None
        The heatmap's axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        No stored Jacobian (names the ``dyn.vf`` call), genes outside it, a missing
        pseudotime, a mode other than ``'pseudotime'``, bad options.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    options = {k: v for k, v in locals().items() if k not in ("adata", "kwargs")}
    return _derivative_kinetics(
        adata, "jacobian", basis, regulators, effectors, mode, options, kwargs
    )


def sensitivity_kinetics(
    adata: ad.AnnData,
    basis: str = "umap",
    regulators: Sequence[str] | str | None = None,
    *,
    effectors: Sequence[str] | str | None = None,
    mode: str = "pseudotime",
    tkey: str = "potential",
    color_map: str = "bwr",
    gene_order_method: str = "raw",
    show_colorbar: bool = False,
    cluster_row_col: Sequence[bool] = (False, True),
    figsize: tuple[float, float] = (11.5, 6),
    standard_scale: int | None = 1,
    n_convolve: int = 30,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | None:
    """Draw each sensitivity ``d x_effector / d x_regulator`` along pseudotime.

    As :func:`jacobian_kinetics`, on ``uns['sensitivity_<basis>']`` (from
    :func:`dynadask.vf.sensitivity`; file prefix ``sensitivity_kinetics``).

    Parameters
    ----------
    adata, basis, regulators, effectors, mode, tkey, color_map, gene_order_method
        As in :func:`jacobian_kinetics`.
    show_colorbar, cluster_row_col, figsize, standard_scale, n_convolve
        As in :func:`jacobian_kinetics`.
    save_show_or_return, save_kwargs, **kwargs
        As in :func:`jacobian_kinetics`.

    Returns
    -------
    Axes or None
        The heatmap's axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        As :func:`jacobian_kinetics`.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    options = {k: v for k, v in locals().items() if k not in ("adata", "kwargs")}
    return _derivative_kinetics(
        adata, "sensitivity", basis, regulators, effectors, mode, options, kwargs
    )
