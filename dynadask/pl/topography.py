"""``dyn.pl.topography``: the learned 2-D field's streamlines, fixed points and curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import matplotlib as mpl
import matplotlib.patheffects as path_effects
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.markers import MarkerStyle

from .._core.errors import InputError
from . import _data, _topo
from ._figure import save_show_ret
from .scatters import _as_list, point_panels
from .vectors import _style

TERMS = ("streamline", "nullcline", "fixed_points", "separatrices")
FILLTYPE = ("full", "top", "none")  # stable (-1), saddle (0), unstable (1)
NUMBER_COLORS = {-1: "black", 0: "blue", 1: "red"}
NULLCLINE_COLORS = ("#189e1a", "#1f77b4")  # x-nullclines, y-nullclines
SEPARATRIX_COLOR = "tomato"
CURVE_COLORS = {
    "NCx": NULLCLINE_COLORS[0],
    "NCy": NULLCLINE_COLORS[1],
    "separatrices": SEPARATRIX_COLOR,
}


@dataclass
class _Layers:
    """What a topography panel overlays, read before anything is drawn."""

    vf: Mapping[str, Any] | None
    stored: dict[str, Any]
    curves: dict[str, list[np.ndarray]] = field(default_factory=dict)
    points: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None


def _overlays(
    adata: ad.AnnData, basis: str, fps_basis: str, terms: list[str], dims: list[int]
) -> _Layers:
    """Read the field, curves and fixed points the terms need (raising on a missing key).

    Raises
    ------
    ValueError
        For an unknown term.
    """
    unknown = sorted(set(terms) - set(TERMS))
    if unknown:
        raise InputError(f"unknown terms {unknown}: topography draws {list(TERMS)}")
    vf = _topo.field(adata, basis) if "streamline" in terms else adata.uns.get(f"VecFld_{basis}")
    layers = _Layers(vf=vf, stored=dict(vf) if isinstance(vf, Mapping) else {})
    names = [
        n
        for t, n in (("nullcline", "NCx"), ("nullcline", "NCy"), ("separatrices", "separatrices"))
        if t in terms
    ]
    if names:
        entry = _topo.topography_entry(adata, basis)
        layers.stored.update(entry)
        layers.curves = {n: _topo.curves(entry, n, basis) for n in names}
    if "fixed_points" in terms:
        if fps_basis == basis:
            layers.stored.update(_topo.topography_entry(adata, basis))
        layers.points = _fixed_points(adata, fps_basis, basis, dims)
    return layers


def _dark(background: str | None) -> bool:
    return background is not None and mpl.colors.to_hex(background) == "#000000"


def _ax(ax: Axes | None) -> Axes:
    return plt.gca() if ax is None else ax


def draw_streamlines(
    ax: Axes,
    vf: Mapping[str, Any],
    xlim: np.ndarray,
    ylim: np.ndarray,
    *,
    n_grid: int = 100,
    density: float = 1,
    linewidth: float = 1,
    color: str = "black",
    alpha: float = 0.4,
    **kwargs: Any,
) -> Any:
    """Streamlines of the learned field on a grid; width ``2 * linewidth`` at the top speed."""
    gx, gy, V = _topo.field_on_grid(vf, xlim, ylim, n_grid)
    speed = np.hypot(V[0], V[1])
    top = float(np.nanmax(speed)) if np.isfinite(speed).any() else 0.0
    width = linewidth * 2 * speed / top if top > 0 else linewidth
    options = {
        "density": 2 * density,
        "linewidth": width,
        "arrowsize": 1,
        "arrowstyle": "fancy",
        "minlength": 0.1,
        "maxlength": 4.0,
        "zorder": 3,
        "color": color,
        **kwargs,
    }
    lines = ax.streamplot(gx, gy, V[0], V[1], **options)
    lines.lines.set_alpha(alpha)
    lines.arrows.set_alpha(alpha)
    return lines


def draw_fixed_points(
    ax: Axes,
    Xss: np.ndarray,
    ftype: np.ndarray,
    confidence: np.ndarray,
    *,
    marker: str = "o",
    markersize: float = 200,
    cmap: str | None = None,
    filltype: Sequence[str] = FILLTYPE,
    background: str | None = "white",
) -> None:
    """One marker per fixed point: filled (stable), top half (saddle) or hollow (unstable).

    The face colour is the point's confidence on ``cmap`` (viridis; inferno on black), the
    number drawn on it is black (stable), blue (saddle) or red (unstable).
    """
    dark = _dark(background)
    cm = mpl.colormaps[cmap or ("inferno" if dark else "viridis")]
    edge = "white" if dark else "black"
    halo = background or "white"
    for i, (p, t, c) in enumerate(zip(Xss, ftype, confidence, strict=True)):
        t = int(t)
        style = MarkerStyle(marker, fillstyle=filltype[t + 1])
        # a hollow marker is drawn in its face colour (matplotlib ignores an edge colour)
        outline = {} if style.get_fillstyle() == "none" else {"edgecolors": edge}
        ax.scatter(
            [p[0]],
            [p[1]],
            marker=style,
            s=markersize,
            c=np.asarray(cm(float(c))).reshape(1, -1),
            linewidths=1,
            zorder=5,
            **outline,
        )
        text = ax.text(
            p[0],
            p[1],
            str(i),
            color=NUMBER_COLORS[t],
            ha="center",
            va="center",
            zorder=6,
            weight="bold",
        )
        text.set_path_effects(
            [path_effects.Stroke(linewidth=1.5, foreground=halo, alpha=0.8), path_effects.Normal()]
        )


def draw_curves(ax: Axes, curves: list[np.ndarray], color: str, lw: float, label: str) -> None:
    """Draw each curve as a line (labelled ``label`` through the line's ``gid``)."""
    for c in curves:
        (line,) = ax.plot(c[:, 0], c[:, 1], color=color, lw=lw, zorder=4)
        line.set_gid(label)


def _fixed_points(
    adata: ad.AnnData, fps_basis: str, basis: str, dims: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed points on ``basis`` (nearest cells if ``fps_basis`` differs), types, confidence."""
    entry = _topo.topography_entry(adata, fps_basis)
    Xss = np.asarray(entry["Xss"], dtype=np.float64)
    ftype = np.asarray(entry["ftype"], dtype=np.float64)
    conf = np.asarray(entry.get("confidence", np.ones(len(Xss))), dtype=np.float64)
    if fps_basis != basis or Xss.shape[1] != 2:
        if "fp_ind" not in entry:
            raise _data.missing(
                "fixed points' nearest cells",
                f"VecFld_{fps_basis}/fp_ind",
                f"dyn.vf.topography(adata, basis={fps_basis!r})",
            )
        rows = np.asarray(entry["fp_ind"], dtype=np.int64)
        emb = _data.obsm_columns(adata, _data.basis_key(adata, basis), dims)
        Xss = _data.gather({"xy": emb[rows]})["xy"].astype(np.float64)
    return Xss, ftype, conf


def topography(
    adata: ad.AnnData,
    basis: str = "umap",
    fps_basis: str = "umap",
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
    xlim: Sequence[float] | None = None,
    ylim: Sequence[float] | None = None,
    terms: Sequence[str] = ("streamline", "fixed_points"),
    n_grid: int = 100,
    density: float = 1,
    linewidth: float = 1,
    streamline_color: str | None = None,
    streamline_alpha: float = 0.4,
    markersize: float = 200,
    marker_cmap: str | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    ax: Axes | None = None,
    sort: str = "raw",
    s_kwargs_dict: dict | None = None,
    **streamline_kwargs_dict: Any,
) -> Axes | list[Axes] | None:
    """Draw the learned 2-D vector field's topography over the cells.

    The cells are drawn as in :func:`dynadask.pl.scatters`; on top, per ``terms``:
    ``'streamline'`` (the field evaluated on an ``n_grid`` x ``n_grid`` grid over ``xlim`` x
    ``ylim``, line width growing with speed), ``'nullcline'`` (x-nullclines green, y-nullclines
    blue), ``'fixed_points'`` (numbered markers: filled stable, half-filled saddle, hollow
    unstable, face colour the confidence) and ``'separatrices'`` (tomato). Everything comes
    from ``uns['VecFld_<basis>']`` (``dyn.vf.VectorField`` then ``dyn.vf.topography``); only the
    two embedding columns and the colours are read from the cells.

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and ``uns['VecFld_<basis>']`` (a 2-D field).
    basis
        Embedding the cells and the field are drawn in.
    fps_basis
        Basis whose fixed points are drawn; when it differs from ``basis`` each fixed point is
        drawn at its nearest cell (``fp_ind``).
    x, y
        Embedding columns drawn.
    color, layer, highlights, labels, values, cmap, color_key, background, ncols, pointsize, \
figsize, show_legend, use_smoothed, ax, sort
        As in :func:`dynadask.pl.scatters`.
    xlim, ylim
        Box of the streamlines and the axes (default the topography's ``xlim``/``ylim``, else
        the cells' range widened by 10%).
    terms
        Any of ``'streamline'``, ``'nullcline'``, ``'fixed_points'``, ``'separatrices'``.
    n_grid
        Grid points per axis for the streamlines.
    density, linewidth
        Streamline density (``streamplot``'s is twice this) and width multiplier.
    streamline_color, streamline_alpha
        Line colour (black; white on black) and opacity.
    markersize, marker_cmap
        Fixed-point marker area and the colour map of their confidence.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``topography``).
    s_kwargs_dict
        More :func:`dynadask.pl.scatters` options.
    **streamline_kwargs_dict
        Passed to ``Axes.streamplot``.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    KeyError
        If the field or a requested term's results are missing (names the call).
    ValueError
        For an unknown term or a field that is not 2-D.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    terms = [terms] if isinstance(terms, str) else list(terms)
    layers = _overlays(adata, basis, fps_basis, terms, [x, y])
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
    fig, axes, _, data = point_panels(adata, [basis], _as_list(color), [x, y], style)
    box = _topo.limits(layers.stored, data[f"emb:{basis}"])
    box = (
        box[0] if xlim is None else np.asarray(xlim, dtype=float),
        box[1] if ylim is None else np.asarray(ylim, dtype=float),
    )
    line_color = streamline_color or ("white" if _dark(background) else "black")
    for panel in axes:
        panel.set_xlabel(f"{basis}_1")
        panel.set_ylabel(f"{basis}_2")
        if "streamline" in terms:
            draw_streamlines(
                panel,
                layers.vf,
                *box,
                n_grid=n_grid,
                density=density,
                linewidth=linewidth,
                color=line_color,
                alpha=streamline_alpha,
                **streamline_kwargs_dict,
            )
        for name, curves in layers.curves.items():
            draw_curves(panel, curves, CURVE_COLORS[name], 3, name)
        if layers.points is not None:
            draw_fixed_points(
                panel,
                *layers.points,
                markersize=markersize,
                cmap=marker_cmap,
                background=background,
            )
        panel.set_xlim(box[0])
        panel.set_ylim(box[1])
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret("topography", save_show_or_return, save_kwargs, ret, fig)


def plot_fixed_points(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    marker: str = "o",
    markersize: float = 200,
    cmap: str | None = None,
    filltype: Sequence[str] = FILLTYPE,
    background: str | None = "white",
    save_show_or_return: str = "return",
    save_kwargs: dict | None = None,
    ax: Axes | None = None,
) -> Axes | None:
    """Draw the fixed points of ``uns['VecFld_<basis>']`` (from ``dyn.vf.topography``).

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.topography(adata, basis=basis)``.
    basis
        Basis of the field.
    marker, markersize
        Marker shape and area.
    cmap
        Colour map of the confidence (viridis; inferno on black).
    filltype
        Fill styles of stable, saddle and unstable points.
    background
        Background colour (sets the edge and halo colours).
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``plot_fixed_points``).
    ax
        Axes to draw on (default the current axes).

    Returns
    -------
    Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    ax = _ax(ax)
    entry = _topo.topography_entry(adata, basis)
    Xss = np.asarray(entry["Xss"], dtype=np.float64)[:, :2]
    conf = np.asarray(entry.get("confidence", np.ones(len(Xss))), dtype=np.float64)
    draw_fixed_points(
        ax,
        Xss,
        np.asarray(entry["ftype"]),
        conf,
        marker=marker,
        markersize=markersize,
        cmap=cmap,
        filltype=filltype,
        background=background,
    )
    return save_show_ret("plot_fixed_points", save_show_or_return, save_kwargs, ax, ax.figure)


def plot_nullclines(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    lw: float = 3,
    save_show_or_return: str = "return",
    save_kwargs: dict | None = None,
    ax: Axes | None = None,
) -> Axes | None:
    """Draw the nullclines of ``uns['VecFld_<basis>']`` (x green, y blue).

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.topography(adata, basis=basis)`` on a 2-D field.
    basis
        Basis of the field.
    lw
        Line width.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``plot_nullclines``).
    ax
        Axes to draw on (default the current axes).

    Returns
    -------
    Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    ax = _ax(ax)
    entry = _topo.topography_entry(adata, basis)
    for name, colour in zip(("NCx", "NCy"), NULLCLINE_COLORS, strict=True):
        draw_curves(ax, _topo.curves(entry, name, basis), colour, lw, name)
    return save_show_ret("plot_nullclines", save_show_or_return, save_kwargs, ax, ax.figure)


def plot_separatrix(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    lw: float = 3,
    color: str = SEPARATRIX_COLOR,
    save_show_or_return: str = "return",
    save_kwargs: dict | None = None,
    ax: Axes | None = None,
) -> Axes | None:
    """Draw the separatrices (the saddles' stable and unstable manifolds) of a 2-D field.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.topography(adata, basis=basis)`` on a 2-D field.
    basis
        Basis of the field.
    lw, color
        Line width and colour.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``plot_separatrix``).
    ax
        Axes to draw on (default the current axes).

    Returns
    -------
    Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    ax = _ax(ax)
    entry = _topo.topography_entry(adata, basis)
    draw_curves(ax, _topo.curves(entry, "separatrices", basis), color, lw, "separatrices")
    return save_show_ret("plot_separatrix", save_show_or_return, save_kwargs, ax, ax.figure)
