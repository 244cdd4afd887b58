"""``dyn.pl.scatters``: cells on an embedding, coloured by obs columns or genes."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._core.errors import InputError
from . import _data, _points
from ._figure import clean_axes, panels, save_show_ret


@dataclass(frozen=True)
class Style:
    """Options shared by every figure that draws cells as points (dynamo's argument names)."""

    layer: str = "X"
    use_smoothed: bool = True
    highlights: list | None = None
    labels: Any = None
    values: Any = None
    cmap: str | None = None
    color_key: Any = None
    background: str | None = None
    ncols: int = 4
    pointsize: float | None = None
    figsize: tuple[float, float] = (6, 4)
    show_legend: Any = "on data"
    sort: str = "raw"
    alpha: float = 0.1
    sym_c: bool = False
    ax: Axes | None = None
    scatter_kwargs: dict = field(default_factory=dict)

    @property
    def read_layer(self) -> str:
        """The layer gene colours are read from (the moment layer when smoothed)."""
        return _data.smoothed_layer(self.layer, self.use_smoothed)


def _as_list(v: Any) -> list:
    return list(v) if isinstance(v, list | tuple) else [v]


def point_panels(
    adata: ad.AnnData,
    bases: list[str],
    colors: list[Any],
    dims: list[int],
    style: Style,
    extra: dict[str, Any] | None = None,
) -> tuple[Figure, list[Axes], list[_points.Palette], dict[str, Any]]:
    """Draw one panel per (basis, color) and return the figure, axes, palettes and data.

    Everything the panels need, plus ``extra`` (e.g. velocities for arrows), is fetched in
    one compute; the fetched arrays are returned under ``'emb:<basis>'``, ``'c:<color>'``
    and the keys of ``extra``.

    Raises
    ------
    ValueError
        If both ``labels`` and ``values`` are given.
    """
    if style.labels is not None and style.values is not None:
        raise InputError("labels and values colour the cells in two ways: give only one")
    items = {f"emb:{b}": _data.obsm_columns(adata, _data.basis_key(adata, b), dims) for b in bases}
    given = style.labels if style.labels is not None else style.values
    for c in colors:
        items[f"c:{c}"] = (
            np.asarray(given)
            if given is not None
            else _data.color_vector(adata, c, style.read_layer)
        )
    data = _data.gather({**items, **(extra or {})})
    fig, axes = panels(
        len(bases) * len(colors), style.ncols, style.figsize, style.ax, style.background
    )
    palettes = [
        _draw_panel(ax, adata, data[f"emb:{b}"], data[f"c:{c}"], str(c), style)
        for ax, (b, c) in zip(axes, product(bases, colors), strict=True)
    ]
    return fig, axes, palettes, data


def _draw_panel(
    ax: Axes, adata: ad.AnnData, xy: np.ndarray, colour: Any, name: str, style: Style
) -> _points.Palette:
    kwargs = {
        "s": _points.point_size(xy.shape[0], style.pointsize),
        "alpha": style.alpha,
        **style.scatter_kwargs,
    }
    if style.labels is not None or (style.values is None and _data.is_categorical(colour)):
        palette = _points.draw_labels(
            ax,
            xy,
            colour,
            highlights=style.highlights,
            stored_colors=adata.uns.get(f"{name}_colors"),
            color_key=style.color_key,
            show_legend=style.show_legend,
            **kwargs,
        )
    else:
        signed = style.sym_c or _data.is_signed(adata, name, style.read_layer)
        palette = _points.draw_values(
            ax,
            xy,
            np.asarray(colour, dtype=np.float64),
            cmap=style.cmap,
            sort=style.sort,
            sym_c=signed,
            **kwargs,
        )
    ax.set_title(name)
    clean_axes(ax, style.background)
    return palette


def scatters(
    adata: ad.AnnData,
    basis: str | list[str] = "umap",
    *,
    x: int = 0,
    y: int = 1,
    color: str | list[str] = "ntr",
    layer: str = "X",
    highlights: list | None = None,
    labels: Any = None,
    values: Any = None,
    cmap: str | None = None,
    color_key: Any = None,
    background: str | None = None,
    ncols: int = 4,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    show_legend: Any = "on data",
    use_smoothed: bool = True,
    ax: Axes | None = None,
    sort: str = "raw",
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    alpha: float = 0.1,
    sym_c: bool = False,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Plot cells on an embedding, coloured by cell annotations or gene expression.

    Each colour (and each basis) gets its own panel, ``ncols`` panels per row. A categorical
    obs column is drawn with one colour per category (``uns['<color>_colors']`` when it holds
    a palette), labelled at the median of its cells (``show_legend='on data'``) or in a
    legend on the right (any other true value); a numeric column or a gene is drawn with a
    colour map and a colour bar, high values on top. Points are rasterised, so millions of
    cells make a small file; above ``dynadask.pl._points.RASTER_POINTS`` cells they are
    aggregated into one image. Only the two embedding columns and the colour vectors are
    read; a gene reads only its own column of the layer.

    Parameters
    ----------
    adata
        The AnnData (in memory or opened from a store).
    basis
        Embedding in obsm (``X_<basis>`` or ``<basis>``); a list draws one row of panels per
        basis.
    x, y
        Columns of the embedding on the two axes.
    color
        obs column(s) or gene name(s); a list gives several panels.
    layer
        Layer genes are read from (``'X'`` for X).
    highlights
        Categories drawn in colour; the others are grey.
    labels, values
        Per-cell labels or values used instead of ``color``.
    cmap
        Colour map for values (default ``viridis``; ``bwr`` with limits symmetric about zero
        for signed values: genes of velocity-like layers, obs columns of divergence, curl,
        Jacobian or sensitivity).
    color_key
        Colours of the categories: a dict or a list in category order.
    background
        Axes background colour.
    ncols
        Panels per row.
    pointsize
        Multiplier of the default marker area ``16000 / sqrt(n_cells)`` (dynamo's).
    figsize
        Size of one panel in inches.
    show_legend
        ``'on data'`` (names at the median of each category), ``True`` or
        ``'right margin'`` (legend right of the panel), a legend location such as
        ``'upper left'`` (inside the panel), or ``False``.
    use_smoothed
        Read genes from the moment layer of ``layer`` (spliced -> ``M_s`` ...).
    ax
        Draw into this axes (single panel only).
    sort
        Drawing order for values: ``'raw'``, ``'abs'`` or ``'neg'`` (last on top).
    save_show_or_return
        ``'save'``, ``'show'``, ``'return'``, ``'both'`` or ``'all'``.
    save_kwargs
        ``path``, ``prefix``, ``dpi``, ``ext``, ``transparent``, ``close``, ``verbose``.
    alpha
        Point opacity.
    sym_c
        Colour limits symmetric around zero.
    **kwargs
        Passed to ``Axes.scatter``.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    style = Style(
        layer=layer,
        use_smoothed=use_smoothed,
        highlights=highlights,
        labels=labels,
        values=values,
        cmap=cmap,
        color_key=color_key,
        background=background,
        ncols=ncols,
        pointsize=pointsize,
        figsize=figsize,
        show_legend=show_legend,
        sort=sort,
        alpha=alpha,
        sym_c=sym_c,
        ax=ax,
        scatter_kwargs=kwargs,
    )
    fig, axes, _, _ = point_panels(adata, _as_list(basis), _as_list(color), [x, y], style)
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret("scatters", save_show_or_return, save_kwargs, ret, fig)
