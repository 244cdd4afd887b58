"""Drawing cells as points, coloured by labels or by values, at any number of cells.

Up to :data:`RASTER_POINTS` (20,000) cells are drawn with one rasterised ``scatter``; above
it the cells become one image (:class:`PointImage`) drawn at the resolution of the output:
each cell a disc of the scatter's marker area, composited over the ones before it with the
scatter's alpha, in the same order (``kernels/raster.splat_discs``). It looks like the
scatter and takes time and memory linear in the number of cells (matplotlib draws each
marker as a path: 0.7 CPU s for 100,000 markers at 120 dpi, against about 0.05 s). The
default marker area is dynamo's ``16000 / sqrt(n_cells)`` points squared (see
:func:`point_size`).

Signed quantities (velocities, divergence, curl, Jacobian elements) get colour limits
symmetric about zero, so zero is always the middle of the diverging map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import matplotlib.patheffects as path_effects
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, to_rgba, to_rgba_array
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D

from .._core.errors import InputError
from ..kernels import raster as kraster

RASTER_POINTS = 20_000
"""Above this many cells a panel's cells are drawn as one :class:`PointImage`."""
SCATTER_POINTS = 16000.0
"""dynamo's marker area of a scatter for one cell: ``16000 / sqrt(n_cells)`` points squared."""
PHASE_POINTS = 2500.0
"""dynamo's phase portraits: ``2500 / sqrt(n_cells)``."""
JACOBIAN_POINTS = 2000.0
"""dynamo's Jacobian and sensitivity scatters: ``2000 / sqrt(n_cells)``."""
OTHER_COLOR = "#d3d3d3"
NAN_COLOR = "lightgray"


@dataclass
class Palette:
    """How the panel coloured its cells: ``rgba(rows)`` gives the colours of chosen cells."""

    rgba: Callable[[np.ndarray], np.ndarray]
    labels: list[str]


def point_size(n_cells: int, pointsize: float | None = None, base: float = SCATTER_POINTS) -> float:
    """Marker area in points squared, as dynamo's: ``base / sqrt(n_cells)`` times ``pointsize``.

    ``base`` is 16,000 for scatters (dynamo's ``pl.scatters``: 263 at 3,696 cells, drawn with
    alpha 0.1), 2,500 for phase portraits and 2,000 for Jacobian scatters (alpha 0.2).
    """
    scale = 1.0 if pointsize is None else pointsize
    return base / np.sqrt(max(n_cells, 1)) * scale


def label_colors(categories: list[Any], stored: Any = None, color_key: Any = None) -> np.ndarray:
    """RGBA table, one row per category, from ``color_key``, a stored palette or a default."""
    n = len(categories)
    if isinstance(color_key, dict):
        return to_rgba_array([color_key.get(c, OTHER_COLOR) for c in categories])
    for source in (color_key, stored):
        if source is not None and len(source) >= n:
            return to_rgba_array(list(source)[:n])
    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "gist_rainbow"
    cmap = mpl.colormaps[name]
    steps = np.arange(n) if name != "gist_rainbow" else np.linspace(0, 1, n)
    return cmap(steps)


def draw_labels(
    ax: Axes,
    xy: np.ndarray,
    labels: Any,
    *,
    highlights: list | None = None,
    stored_colors: Any = None,
    color_key: Any = None,
    show_legend: Any = "on data",
    font_color: str = "black",
    **scatter_kwargs: Any,
) -> Palette:
    """Draw cells coloured by category, with labels on the data or a legend on the right."""
    cat = pd.Categorical(labels)
    names = [str(c) for c in cat.categories]
    table = label_colors(list(cat.categories), stored_colors, color_key)
    codes = np.asarray(cat.codes)
    if highlights:
        keep = np.isin(np.asarray(cat.categories.astype(str)), [str(h) for h in highlights])
        table[~keep] = to_rgba(OTHER_COLOR)
        shown = [n for n, k in zip(names, keep, strict=True) if k]
    else:
        keep, shown = np.ones(len(names), dtype=bool), names
    table = np.vstack([table, to_rgba(NAN_COLOR)])  # code -1 (missing) -> last row
    # background (non-highlighted, missing) cells first so the highlighted ones are on top
    front = np.append(keep, False)[codes]
    order = np.concatenate([np.flatnonzero(~front), np.flatnonzero(front)])
    _points(ax, xy[order], table[codes[order]], **scatter_kwargs)
    _legend(ax, xy, codes, names, table, keep, show_legend, font_color)
    return Palette(lambda rows: table[codes[rows]], shown)


def _legend(
    ax: Axes,
    xy: np.ndarray,
    codes: np.ndarray,
    names: list[str],
    table: np.ndarray,
    keep: np.ndarray,
    show_legend: Any,
    font_color: str,
) -> None:
    if show_legend in (None, False, "none", "off"):
        return
    present = [k for k in np.unique(codes[codes >= 0]) if keep[k]]
    if show_legend == "on data" and len(present) > 1:
        for k in present:
            cx, cy = np.nanmedian(xy[codes == k], axis=0)
            text = ax.text(
                cx,
                cy,
                names[k],
                color=font_color,
                zorder=1000,
                ha="center",
                va="center",
                weight="bold",
            )
            text.set_path_effects(
                [
                    path_effects.Stroke(linewidth=1.5, foreground="white", alpha=0.8),
                    path_effects.Normal(),
                ]
            )
        return
    handles = [
        Line2D([0], [0], marker="o", linestyle="None", color=table[k], label=names[k])
        for k in present
    ]
    if isinstance(show_legend, str) and show_legend not in ("on data", "right margin"):
        ax.legend(handles=handles, loc=show_legend, fontsize="small", framealpha=0.6)
        return
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        frameon=False,
        ncol=len(handles) // 15 + 1,
    )


def value_limits(values: np.ndarray, sym_c: bool = False) -> tuple[float, float]:
    """Colour limits: the 2nd and 98th percentiles (of positive values when few are nonzero).

    With ``sym_c`` the limits are ``(-m, m)``, ``m`` the larger magnitude of the two
    percentiles of all finite values, whatever their signs: zero sits in the middle of the map.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (-1.0, 1.0) if sym_c else (0.0, 1.0)
    if sym_c:
        m = float(np.max(np.abs(np.percentile(finite, [2, 98]))))
        m = m if m > 0 else float(np.max(np.abs(finite))) or 1.0
        return -m, m
    positive = finite[finite > 0]
    if finite.min() == 0 and 0 < positive.size < 0.02 * finite.size:
        finite = positive
    lo, hi = np.percentile(finite, [2, 98])
    return float(lo), (float(hi) if hi > lo else float(lo) + 1e-12)


def draw_values(
    ax: Axes,
    xy: np.ndarray,
    values: np.ndarray,
    *,
    cmap: str | None = None,
    sort: str = "raw",
    sym_c: bool = False,
    show_colorbar: bool = True,
    vmin: float | None = None,
    vmax: float | None = None,
    **scatter_kwargs: Any,
) -> Palette:
    """Draw cells coloured by a continuous value (high values on top), with a colour bar.

    ``vmin`` / ``vmax`` override the limits of :func:`value_limits`.
    """
    values = np.asarray(values, dtype=np.float64)
    keys = {"raw": values, "abs": np.abs(values), "neg": -values}
    if sort not in keys:
        raise InputError(f"sort must be 'raw', 'abs' or 'neg', not {sort!r}")
    order = np.argsort(np.where(np.isnan(keys[sort]), -np.inf, keys[sort]), kind="stable")
    cm = mpl.colormaps[cmap or ("bwr" if sym_c else "viridis")].with_extremes(bad=NAN_COLOR)
    lo, hi = value_limits(values, sym_c)
    norm = Normalize(lo if vmin is None else vmin, hi if vmax is None else vmax)
    _points(ax, xy[order], cm(norm(values[order])), **scatter_kwargs)
    if show_colorbar:
        mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cm)
        cax = ax.inset_axes([1.01, 0.05, 0.025, 0.35])
        ax.figure.colorbar(mappable, cax=cax).locator = mpl.ticker.MaxNLocator(nbins=3)
    return Palette(lambda rows: cm(norm(values[rows])), [])


def _points(
    ax: Axes, xy: np.ndarray, rgba: np.ndarray, *, s: float, alpha: float = 0.1, **kwargs: Any
) -> None:
    if xy.shape[0] > RASTER_POINTS:
        ok = np.isfinite(xy).all(axis=1)
        if ok.any():
            ax.update_datalim(np.vstack([xy[ok].min(axis=0), xy[ok].max(axis=0)]))
            ax.autoscale_view()
        ax.add_image(PointImage(ax, xy, rgba, s=s, alpha=alpha, zorder=kwargs.get("zorder", 1)))
        return
    ax.scatter(
        xy[:, 0],
        xy[:, 1],
        c=rgba,
        s=s,
        alpha=alpha,
        linewidths=0,
        edgecolors="none",
        rasterized=True,
        plotnonfinite=True,
        **{"zorder": 1, **kwargs},
    )


class PointImage(AxesImage):
    """Cells drawn as discs into an image of the axes' size, at the output's resolution.

    What a rasterised ``scatter`` of the same points (marker area ``s`` points squared,
    ``alpha``, colours ``rgba``, drawn in the order given) shows, made without a path per
    marker. The image spans the axes' view and is re-made when the view, the axes' size or
    the output's resolution changes (``savefig`` at another dpi), so a disc is always
    ``sqrt(s)`` points wide. Like the scatter's, the points count in the axes' data limits.
    """

    def __init__(
        self,
        ax: Axes,
        xy: np.ndarray,
        rgba: np.ndarray,
        *,
        s: float,
        alpha: float = 0.1,
        zorder: float = 1,
    ) -> None:
        super().__init__(ax, interpolation="nearest", origin="lower", zorder=zorder)
        self.xy = np.asarray(xy, dtype=np.float64)
        self.rgb = np.ascontiguousarray(np.asarray(rgba)[:, :3], dtype=np.float32)
        self.size = float(s)
        self.disc_alpha = float(alpha)
        self.set_clip_path(ax.patch)
        self._key: tuple | None = None

    def get_array(self) -> np.ndarray:
        """The RGBA image (made for the figure's own dpi when it has not been drawn yet)."""
        if self._key is None:
            self._render(self.axes.figure.dpi / 72.0, 1.0)
        return super().get_array()

    def get_extent(self) -> tuple[float, float, float, float]:
        """The view box the image was last made for ``(left, right, bottom, top)``."""
        if self._extent is None:
            x0, x1 = self.axes.get_xlim()
            y0, y1 = self.axes.get_ylim()
            return (x0, x1, y0, y1)
        return self._extent

    def _render(self, pixels_per_point: float, magnification: float) -> None:
        ax = self.axes
        box = ax.bbox
        nx = max(int(round(box.width * magnification)), 1)
        ny = max(int(round(box.height * magnification)), 1)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        radius = 0.5 * np.sqrt(self.size) * pixels_per_point * magnification
        key = (nx, ny, x0, x1, y0, y1, radius)
        if key == self._key:
            return
        display = ax.transData.transform(self.xy)
        px = (display[:, 0] - box.x0) * magnification
        py = (display[:, 1] - box.y0) * magnification
        img = kraster.splat_discs(px, py, self.rgb, self.disc_alpha, radius, (ny, nx))
        self.set_data(img)
        self._extent = (x0, x1, y0, y1)
        self._key = key

    def draw(self, renderer: Any) -> None:
        """Re-make the image for this renderer's resolution and view, then draw it."""
        self._render(renderer.points_to_pixels(1.0), renderer.get_image_magnification())
        super().draw(renderer)
