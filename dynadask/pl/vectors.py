"""Velocity figures on an embedding: arrows per cell, arrows on a grid, streamlines."""

from __future__ import annotations

from typing import Any

import anndata as ad
import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes

from . import _data, _grid
from ._figure import save_show_ret
from .scatters import Style, _as_list, point_panels

MAX_CELL_ARROWS = 10_000


def _style(adata: ad.AnnData, s_kwargs_dict: dict | None, **style: Any) -> Style:
    extra = dict(s_kwargs_dict or {})
    fields = set(Style.__dataclass_fields__)
    style.update({k: extra.pop(k) for k in list(extra) if k in fields})
    return Style(**style, scatter_kwargs=extra)


def _autoscale_aspect() -> float:
    """Height over width of the axes of a default figure (rc ``figure.figsize``, subplot box)."""
    rc = mpl.rcParams
    w, h = rc["figure.figsize"]
    box_w = rc["figure.subplot.right"] - rc["figure.subplot.left"]
    box_h = rc["figure.subplot.top"] - rc["figure.subplot.bottom"]
    return float(h * box_h) / float(w * box_w)


def arrow_factor(ranges: tuple[float, float], v: np.ndarray, n: int | None = None) -> float:
    """Factor on the vectors that gives dynamo's arrow lengths (before ``quiver_length``).

    dynamo divides the vectors by three times twice matplotlib's automatic quiver scale
    measured in a default figure whose axes span the positions' ranges ``rx``, ``ry`` (plus
    5 % margins each side). That scale is ``1.8 max(10, sqrt(n))`` times the mean arrow in
    pixels over the axes' width, so the factor is
    ``1.1 / (10.8 max(10, sqrt(n)) mean(|(u / rx, a v / ry)|))`` with ``a`` the height over
    the width of a default axes (0.745 for matplotlib's defaults). ``n`` is the number of
    positions (masked ones included); by default the number of vectors.
    """
    rx, ry = (float(r) if np.isfinite(r) and r > 0 else 1.0 for r in ranges)
    ok = np.isfinite(v).all(axis=1)
    if not ok.any():
        return 0.0
    pixels = np.hypot(v[ok, 0] / rx, _autoscale_aspect() * v[ok, 1] / ry).mean()
    sn = max(10.0, np.sqrt(ok.sum() if n is None else n))
    return 1.1 / (10.8 * sn * pixels) if pixels > 0 else 0.0


def point_ranges(xy: np.ndarray) -> tuple[float, float]:
    """Ranges of the x and y coordinates of the finite points."""
    ok = np.isfinite(xy).all(axis=1)
    if not ok.any():
        return 1.0, 1.0
    span = np.ptp(xy[ok], axis=0)
    return float(span[0]), float(span[1])


def grid_ranges(gx: np.ndarray, gy: np.ndarray) -> tuple[float, float]:
    """The ranges dynamo's arrow scale sees for a grid with axes ``gx`` and ``gy``.

    dynamo hands the scale the two axes stacked as a ``2 x N`` array and shifts each column
    by its smaller entry, so the ranges are those of ``max(gx - gy, 0)`` and
    ``max(gy - gx, 0)``, not of the axes themselves (on pancreas this makes its grid arrows
    about six times shorter than the axes' ranges would). Axes of different lengths or a zero
    range fall back to the axes' own ranges.
    """
    gx, gy = np.asarray(gx, dtype=np.float64), np.asarray(gy, dtype=np.float64)
    own = (float(np.ptp(gx)), float(np.ptp(gy)))
    if gx.shape != gy.shape:
        return own
    rx, ry = float(np.ptp(np.maximum(gx - gy, 0))), float(np.ptp(np.maximum(gy - gx, 0)))
    return (rx if rx > 0 else own[0], ry if ry > 0 else own[1])


def quiver_kwargs(
    quiver_size: float | None, quiver_length: float | None, edgecolor: str, **overrides: Any
) -> dict[str, Any]:
    """Arrow style as in dynamo: heads 10/12/8 x ``quiver_size``, length x ``quiver_length``."""
    size = 1.0 if quiver_size is None else float(quiver_size)
    length = size if quiver_length is None else float(quiver_length)
    return {
        "angles": "xy",
        "scale_units": "xy",
        "scale": 1.0 / length,
        "width": 0.0005,
        "headwidth": 10 * size,
        "headlength": 12 * size,
        "headaxislength": 8 * size,
        "minshaft": 1,
        "minlength": 1,
        "pivot": "tail",
        "linewidth": 0.1,
        "edgecolors": edgecolor,
        "alpha": 1,
        "zorder": 10,
        **overrides,
    }


def _edge(background: str | None) -> str:
    return "white" if background == "black" else "black"


def cell_wise_vectors(
    adata: ad.AnnData,
    basis: str = "umap",
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
    background: str | None = "white",
    ncols: int = 4,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    show_legend: Any = "on data",
    use_smoothed: bool = True,
    ax: Axes | None = None,
    sort: str = "raw",
    inverse: bool = False,
    cell_inds: Any = "all",
    quiver_size: float | None = 1,
    quiver_length: float | None = None,
    vector: str = "velocity",
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    s_kwargs_dict: dict | None = None,
    random_state: int = 0,
    **cell_wise_kwargs: Any,
) -> list[Axes] | None:
    """Draw one arrow per cell (its embedding velocity) over the cells coloured by ``color``.

    Cells are drawn as in :func:`scatters`; arrows take the colour of their cell. With
    ``cell_inds='all'`` at most ``MAX_CELL_ARROWS`` (10,000) cells, a seeded uniform sample,
    get an arrow, so the figure stays readable and small at millions of cells; only those
    cells' vectors are read. Arrow lengths are scaled as dynamo's (see :func:`arrow_factor`):
    the mean arrow is about ``quiver_length * span / (10 sqrt(n_arrows))`` long.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and ``obsm['<vector>_<basis>']``.
    basis, x, y
        Embedding and the two columns drawn.
    color, layer, highlights, labels, values, cmap, color_key, background, ncols, pointsize, \
figsize, show_legend, use_smoothed, ax, sort
        As in :func:`scatters`.
    inverse
        Reverse the arrows.
    cell_inds
        ``'all'``, ``'random'`` (1,000 cells), a number of cells or a list of cells.
    quiver_size, quiver_length
        Arrow head size and arrow length multipliers.
    vector
        ``'velocity'`` or another obsm prefix (e.g. ``'acceleration'``).
    save_show_or_return, save_kwargs
        As in :func:`scatters` (file prefix ``cell_wise_vector``).
    s_kwargs_dict
        More :func:`scatters` options (e.g. ``alpha``).
    random_state
        Seed of the subsample of cells that get arrows.
    **cell_wise_kwargs
        Passed to ``Axes.quiver``.

    Returns
    -------
    list of Axes or None
        When ``save_show_or_return`` is ``'return'`` or ``'all'``, a list with one axes per
        panel, also for a single colour (as dynamo's).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    key = _grid.velocity_key(adata, vector, basis)
    cells = _data.pick_cells(adata.n_obs, cell_inds, MAX_CELL_ARROWS, random_state, adata.obs_names)
    vel = _data.obsm_columns(adata, key, [x, y])
    style = _style(
        adata,
        s_kwargs_dict,
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
        ax=ax,
    )
    fig, axes, palettes, data = point_panels(
        adata, [basis], _as_list(color), [x, y], style, extra={"arrows": vel[cells]}
    )
    xy, v = data[f"emb:{basis}"][cells], np.asarray(data["arrows"], dtype=np.float64)
    factor = arrow_factor(point_ranges(data[f"emb:{basis}"]), v)
    v = v * factor * (-1 if inverse else 1)
    ok = np.isfinite(v).all(axis=1) & np.isfinite(xy).all(axis=1)
    kwargs = quiver_kwargs(quiver_size, quiver_length, _edge(background), **cell_wise_kwargs)
    for panel, palette in zip(axes, palettes, strict=True):
        rgba = palette.rgba(cells[ok])
        rgba[:, 3] = 1.0
        panel.quiver(xy[ok, 0], xy[ok, 1], v[ok, 0], v[ok, 1], color=rgba, **kwargs)
    return save_show_ret("cell_wise_vector", save_show_or_return, save_kwargs, list(axes), fig)


def grid_vectors(
    adata: ad.AnnData,
    basis: str = "umap",
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
    background: str | None = "white",
    ncols: int = 4,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    show_legend: Any = "on data",
    use_smoothed: bool = True,
    ax: Axes | None = None,
    sort: str = "raw",
    inverse: bool = False,
    cell_inds: Any = "all",
    method: str = "gaussian",
    xy_grid_nums: tuple[int, int] = (50, 50),
    cut_off_velocity: bool = True,
    quiver_size: float | None = None,
    quiver_length: float | None = None,
    vector: str = "velocity",
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    s_kwargs_dict: dict | None = None,
    q_kwargs_dict: dict | None = None,
    **grid_kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw velocities averaged on a regular grid as arrows over the cells.

    The grid is ``uns['grid_velocity_<basis>']`` when it matches the request (default
    options, its size equal to ``xy_grid_nums``); otherwise the cells' vectors are averaged
    with Gaussian weights (width ``smooth`` grid steps) in a sum over row blocks. Grid points
    with little mass or tiny velocities (``cut_off_velocity``) get no arrow.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and the grid or ``obsm['<vector>_<basis>']``.
    basis, x, y
        Embedding and the two columns drawn.
    color, layer, highlights, labels, values, cmap, color_key, background, ncols, pointsize, \
figsize, show_legend, use_smoothed, ax, sort
        As in :func:`scatters`.
    inverse
        Reverse the arrows.
    cell_inds
        Cells averaged onto the grid: ``'all'``, ``'random'``, a number or a list.
    method
        ``'gaussian'``.
    xy_grid_nums
        Grid points along x and y.
    cut_off_velocity
        Drop grid points with little mass or tiny velocities.
    quiver_size, quiver_length
        Arrow head size and arrow length multipliers.
    vector
        ``'velocity'`` or another obsm prefix.
    save_show_or_return, save_kwargs
        As in :func:`scatters` (file prefix ``grid_velocity``).
    s_kwargs_dict, q_kwargs_dict
        More :func:`scatters` options; more ``Axes.quiver`` options.
    **grid_kwargs
        ``smooth`` (default 0.5) and ``min_mass`` of the Gaussian averaging.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    style = _style(
        adata,
        s_kwargs_dict,
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
        ax=ax,
    )
    fig, axes, (axes_xy, v_grid) = _grid_figure(
        adata,
        basis,
        [x, y],
        color,
        style,
        vector=vector,
        cell_inds=cell_inds,
        method=method,
        xy_grid_nums=xy_grid_nums,
        cut_off_velocity=cut_off_velocity,
        grid_kwargs=grid_kwargs,
    )
    gx, gy = (g.ravel() for g in np.meshgrid(axes_xy[0], axes_xy[1]))
    u, v = v_grid[0].ravel(), v_grid[1].ravel()
    ok = np.isfinite(u) & np.isfinite(v)
    factor = arrow_factor(
        grid_ranges(axes_xy[0], axes_xy[1]), np.column_stack([u[ok], v[ok]]), n=u.size
    )
    sign = -1 if inverse else 1
    edge = _edge(background)
    kwargs = quiver_kwargs(
        quiver_size,
        quiver_length,
        edge,
        linewidth=0.2,
        facecolors=edge,
        color=edge,
        zorder=3,
        **(q_kwargs_dict or {}),
    )
    for panel in axes:
        panel.quiver(gx[ok], gy[ok], sign * factor * u[ok], sign * factor * v[ok], **kwargs)
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret("grid_velocity", save_show_or_return, save_kwargs, ret, fig)


def _grid_figure(
    adata: ad.AnnData,
    basis: str,
    dims: list[int],
    color: Any,
    style: Style,
    *,
    vector: str,
    cell_inds: Any,
    xy_grid_nums: tuple[int, int],
    cut_off_velocity: bool,
    grid_kwargs: dict[str, Any],
    method: str,
) -> tuple:
    """Scatter panels plus the grid ``(axes, V_grid)`` they are overlaid with."""
    every = isinstance(cell_inds, str) and cell_inds == "all"
    cells = None if every else _data.pick_cells(adata.n_obs, cell_inds, None, 0, adata.obs_names)
    grid = _grid.reusable_grid(
        adata,
        basis=basis,
        dims=dims,
        vector=vector,
        cells=cells,
        method=method,
        xy_grid_nums=xy_grid_nums,
        cut_off_velocity=cut_off_velocity,
        grid_kwargs=grid_kwargs,
    )
    if grid is None:  # raise on a missing key before anything is drawn
        vel = _data.obsm_columns(adata, _grid.velocity_key(adata, vector, basis), dims)
    fig, axes, _, data = point_panels(adata, [basis], _as_list(color), dims, style)
    if grid is None:
        emb = data[f"emb:{basis}"]
        if cells is not None:
            emb, vel = emb[cells], vel[cells]
        grid = _grid.cell_grid(
            emb, vel, xy_grid_nums, cut_off_velocity=cut_off_velocity, **grid_kwargs
        )
    return fig, axes, grid


def streamline_plot(
    adata: ad.AnnData,
    basis: str = "umap",
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
    background: str | None = "white",
    ncols: int = 4,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    show_legend: Any = "on data",
    use_smoothed: bool = True,
    ax: Axes | None = None,
    sort: str = "raw",
    inverse: bool = False,
    cell_inds: Any = "all",
    method: str = "gaussian",
    xy_grid_nums: tuple[int, int] = (50, 50),
    cut_off_velocity: bool = True,
    density: float = 1,
    linewidth: float = 1,
    streamline_alpha: float = 1,
    vector: str = "velocity",
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    s_kwargs_dict: dict | None = None,
    **streamline_kwargs: Any,
) -> list[Axes] | None:
    """Draw streamlines of the grid velocities over the cells (matplotlib's ``streamplot``).

    The grid comes from ``uns['grid_velocity_<basis>']`` or is averaged from the cells, as in
    :func:`grid_vectors`. Line width grows with the local speed (``2 * linewidth`` at the
    fastest grid point); lines are black (red on a black background).

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and the grid or ``obsm['<vector>_<basis>']``.
    basis, x, y
        Embedding and the two columns drawn.
    color, layer, highlights, labels, values, cmap, color_key, background, ncols, pointsize, \
figsize, show_legend, use_smoothed, ax, sort
        As in :func:`scatters`.
    inverse
        Reverse the flow.
    cell_inds, method, xy_grid_nums, cut_off_velocity, vector
        As in :func:`grid_vectors`.
    density
        Streamline density (``streamplot``'s density is twice this).
    linewidth
        Line width multiplier.
    streamline_alpha
        Opacity of lines and arrows.
    save_show_or_return, save_kwargs
        As in :func:`scatters` (file prefix ``streamline_plot``).
    s_kwargs_dict
        More :func:`scatters` options.
    **streamline_kwargs
        ``smooth`` / ``min_mass`` of the grid averaging; anything else goes to ``streamplot``.

    Returns
    -------
    list of Axes or None
        When ``save_show_or_return`` is ``'return'`` or ``'all'``, a list with one axes per
        panel, also for a single colour (as dynamo's).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    grid_kwargs = {
        k: streamline_kwargs.pop(k) for k in _grid.GRID_OPTIONS if k in streamline_kwargs
    }
    style = _style(
        adata,
        s_kwargs_dict,
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
        ax=ax,
    )
    fig, axes, (axes_xy, v_grid) = _grid_figure(
        adata,
        basis,
        [x, y],
        color,
        style,
        vector=vector,
        cell_inds=cell_inds,
        method=method,
        xy_grid_nums=xy_grid_nums,
        cut_off_velocity=cut_off_velocity,
        grid_kwargs=grid_kwargs,
    )
    v_grid = -v_grid if inverse else v_grid
    speed = np.sqrt((v_grid**2).sum(0))
    top = np.nanmax(speed) if np.isfinite(speed).any() else 0.0
    width = linewidth * 2 * speed / top if top > 0 else linewidth
    kwargs = {
        "density": density * 2,
        "linewidth": width,
        "arrowsize": 1,
        "arrowstyle": "fancy",
        "minlength": 0.1,
        "maxlength": 4.0,
        "integration_direction": "both",
        "zorder": 3,
        "color": "red" if background in ("black", "#000000") else "black",
        **streamline_kwargs,
    }
    bad = ~np.isfinite(v_grid).all(axis=0)  # dynamo masks only the first component
    u, v = (np.ma.masked_array(np.nan_to_num(c), mask=bad) for c in v_grid)
    for panel in axes:
        limits = panel.get_xlim(), panel.get_ylim()
        lines = panel.streamplot(axes_xy[0], axes_xy[1], u, v, **kwargs)
        panel.set_xlim(limits[0])
        panel.set_ylim(limits[1])
        lines.lines.set_alpha(streamline_alpha)
        lines.arrows.set_alpha(streamline_alpha)
    return save_show_ret("streamline_plot", save_show_or_return, save_kwargs, list(axes), fig)
