"""Scatter shortcuts by basis (dynamo's ``dyn.pl.umap``, ``dyn.pl.pca``) and ``dyn.pl.space``."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes

from ..kernels.spatial import smallest_distance
from . import _data
from ._points import point_size
from .scatters import scatters


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
    space_key: str = "spatial",
    width: float = 6,
    marker: str = ".",
    pointsize: float | None = None,
    dpi: int = 100,
    ps_sample_num: int = 1000,
    alpha: float = 0.8,
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
        Genes drawn, one panel each.
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
    figsize
        Size of a panel; by default ``(width, width * y range / x range + 0.3)``.
    **kwargs
        Any other option of :func:`scatters`.

    Returns
    -------
    Axes or list of Axes or None
        As :func:`scatters`.

    Raises
    ------
    ValueError
        If neither ``genes`` nor ``color`` is given.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    names = [genes] if isinstance(genes, str) else list(genes or [])
    if color is not None:
        names += [color] if isinstance(color, str) else list(color)
    if not names:
        raise ValueError("space draws genes or obs columns: pass genes=[...] or color=...")
    if space_key not in adata.obsm and f"X_{space_key}" not in adata.obsm:
        raise KeyError(
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
