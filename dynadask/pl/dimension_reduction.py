"""Scatter shortcuts by basis (dynamo's ``dyn.pl.umap``, ``dyn.pl.pca``) and ``dyn.pl.space``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from .._core.errors import InputError, MissingKeyError
from ..kernels.spatial import smallest_distance
from . import _data
from ._figure import clean_axes, save_show_ret
from ._points import draw_values, point_size
from .scatters import scatters

# dynamo's colour maps for stacked genes, in order
STACK_CMAPS = (
    "Greys",
    "Purples",
    "Blues",
    "Greens",
    "Oranges",
    "Reds",
    "YlOrBr",
    "YlOrRd",
    "OrRd",
    "PuRd",
    "RdPu",
    "BuPu",
    "GnBu",
    "PuBu",
    "YlGnBu",
    "PuBuGn",
    "BuGn",
    "YlGn",
)


@dataclass(frozen=True)
class _Stack:
    cmaps: tuple[str, ...] | list[str]
    threshold: float
    legend_size: float


def umap(adata: ad.AnnData, **kwargs: Any) -> Axes | list[Axes] | None:
    """Plot cells on ``obsm['X_umap']``: :func:`scatters` with ``basis='umap'``.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_umap']`` (in memory or from a store).
    **kwargs
        Any option of :func:`scatters` (``color``, ``save_show_or_return`` ...).

    Returns
    -------
    Axes or list of Axes or None
        As :func:`scatters`: one axes for one panel, a list for several.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return scatters(adata, "umap", **kwargs)


def pca(adata: ad.AnnData, **kwargs: Any) -> Axes | list[Axes] | None:
    """Plot cells on ``obsm['X_pca']``: :func:`scatters` with ``basis='pca'``.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_pca']`` (in memory or from a store).
    **kwargs
        Any option of :func:`scatters`.

    Returns
    -------
    Axes or list of Axes or None
        As :func:`scatters`.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return scatters(adata, "pca", **kwargs)


def space(
    adata: ad.AnnData,
    color: str | list[str] | None = None,
    genes: str | list[str] | None = None,
    *,
    gene_cmaps: list[str] | None = None,
    space_key: str = "spatial",
    width: float = 6,
    marker: str = ".",
    pointsize: float | None = None,
    dpi: int = 100,
    ps_sample_num: int = 1000,
    alpha: float = 0.8,
    stack_genes: bool = False,
    stack_genes_threshold: float = 0.01,
    stack_colors_legend_size: float = 10,
    figsize: tuple[float, float] | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Plot cells at their physical coordinates (``obsm['spatial']``), one panel per colour.

    dynamo's ``space``: :func:`scatters` on ``space_key`` coloured by ``genes`` then
    ``color``, in a figure whose aspect follows the coordinates (``width`` wide), with
    markers as large as the smallest spacing between cells: the smallest nearest-neighbour
    distance over ``ps_sample_num`` sampled cells (seeded; duplicates ignored), converted
    to pixels at ``dpi``, squared as the marker area.

    Parameters
    ----------
    adata
        AnnData with ``obsm[space_key]`` (in memory or from a store; the two coordinate
        columns are read).
    color
        obs columns or genes drawn after ``genes``.
    genes
        Genes drawn, one panel each (or all in one panel with ``stack_genes``).
    gene_cmaps
        Colour maps of the stacked genes, in order (default: dynamo's 18 sequential maps,
        ``Greys``, ``Purples``, ``Blues`` ...).
    space_key
        obsm key of the coordinates.
    width
        Width of a panel in inches (when ``figsize`` is not given).
    marker
        Marker style.
    pointsize
        Multiplier of :func:`scatters`' default marker area; by default the area comes from
        the cells' spacing, as above.
    dpi
        Resolution the spacing is converted at.
    ps_sample_num
        Cells sampled for the spacing.
    alpha
        Point opacity.
    stack_genes
        Draw every gene in one panel (titled ``stacked spatial genes``), each with its own
        colour map and only in the cells where its value exceeds ``stack_genes_threshold``,
        with a legend instead of colour bars. Ignored (with a warning) when ``color`` is
        given, as in dynamo.
    stack_genes_threshold
        Values at or below it are not drawn when stacking.
    stack_colors_legend_size
        Marker size in the stacked legend.
    figsize
        Size of a panel; by default ``(width, width * y range / x range + 0.3)``.
    **kwargs
        Any other option of :func:`scatters`.

    Returns
    -------
    Axes or list of Axes or None
        As :func:`scatters`; the single axes when stacking (dynamo lists it once per gene).

    Raises
    ------
    ValueError
        If neither ``genes`` nor ``color`` is given.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    if color is not None and stack_genes:
        warnings.warn(
            "stack_genes is ignored with color=: stacking draws numeric values only; "
            "pass the genes (or numeric obs columns) as genes=[...]",
            UserWarning,
            stacklevel=2,
        )
        stack_genes = False
    names = [genes] if isinstance(genes, str) else list(genes or [])
    if color is not None:
        names += [color] if isinstance(color, str) else list(color)
    if not names:
        raise InputError("space draws genes or obs columns: pass genes=[...] or color=...")
    if space_key not in adata.obsm and f"X_{space_key}" not in adata.obsm:
        raise MissingKeyError(
            f"obsm[{space_key!r}] is missing: space draws the cells' physical coordinates; "
            f"store them as adata.obsm[{space_key!r}] (n_cells x 2) or pass space_key="
        )
    key = _data.basis_key(adata, space_key)
    xy = np.asarray(
        _data.gather({"xy": _data.obsm_columns(adata, key, [0, 1])})["xy"], dtype=np.float64
    )
    span = np.nanmax(xy, axis=0) - np.nanmin(xy, axis=0)
    span = np.where(span > 0, span, 1.0)
    if figsize is None:
        figsize = (width, span[1] / span[0] * width + 0.3)
    if pointsize is None:
        pixels = smallest_distance(xy, sample_num=ps_sample_num) * figsize[0] / span[0] * dpi
        pointsize = max(pixels**2, 1e-3) / point_size(adata.n_obs)
    if stack_genes:
        stack = _Stack(gene_cmaps or STACK_CMAPS, stack_genes_threshold, stack_colors_legend_size)
        return _stacked(adata, key, xy, names, figsize, pointsize, alpha, stack, **kwargs)
    return scatters(
        adata,
        space_key,
        color=names,
        figsize=figsize,
        pointsize=pointsize,
        alpha=alpha,
        marker=marker,
        **kwargs,
    )


def _stacked(
    adata: ad.AnnData,
    key: str,
    xy: np.ndarray,
    names: list[str],
    figsize: tuple[float, float],
    pointsize: float,
    alpha: float,
    stack: _Stack,
    *,
    layer: str = "X",
    use_smoothed: bool = True,
    ax: Axes | None = None,
    background: str | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **scatter_kwargs: Any,
) -> Axes | None:
    """All genes in one panel, each in its own colour map where it exceeds the threshold."""
    read = _data.smoothed_layer(layer, use_smoothed)
    values = _data.gather({n: _data.color_vector(adata, n, read) for n in names})
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    size = point_size(xy.shape[0], pointsize)
    handles = []
    for k, name in enumerate(names):
        v = np.asarray(values[name], dtype=np.float64)
        keep = v > stack.threshold
        if not keep.any():
            continue
        cmap = stack.cmaps[k % len(stack.cmaps)]
        draw_values(
            ax,
            xy[keep],
            v[keep],
            cmap=cmap,
            show_colorbar=False,
            s=size,
            alpha=alpha,
            **scatter_kwargs,
        )
        top = plt.get_cmap(cmap)(1.0)
        handles.append(
            Line2D(
                [0],
                [0],
                marker="o",
                color="w",
                markerfacecolor=top,
                label=name,
                markersize=stack.legend_size,
            )
        )
    ax.legend(handles=handles, loc="upper right", prop={"size": stack.legend_size})
    ax.set_title("stacked spatial genes")
    clean_axes(ax, background)
    return save_show_ret("scatters", save_show_or_return, save_kwargs, ax, ax.figure)
