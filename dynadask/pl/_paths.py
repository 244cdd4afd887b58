"""Paths over a scatter: one line collection and one layer of points shaded along each path."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize


def draw_paths(
    axes: Axes | list[Axes],
    points: np.ndarray,
    shade: np.ndarray,
    *,
    cmap: str,
    linewidth: float,
    size: float,
) -> None:
    """Draw every path into each axes: black lines, then its points coloured by ``shade``.

    Parameters
    ----------
    axes
        One axes or a list (one panel each); every panel gets all paths.
    points
        ``(n_paths, n_points, 2)`` coordinates on the panel's axes.
    shade
        ``(n_paths, n_points)`` values in [0, 1] mapped to ``cmap`` (time, accumulated
        action, ...).
    cmap
        Colour map of the points.
    linewidth
        Width of the lines.
    size
        Marker area of the points (points squared).
    """
    for panel in axes if isinstance(axes, list) else [axes]:
        lines = LineCollection(list(points), colors="k", linewidths=linewidth, zorder=3)
        panel.add_collection(lines, autolim=True)
        panel.scatter(
            points[:, :, 0].ravel(),
            points[:, :, 1].ravel(),
            c=shade.ravel(),
            cmap=cmap,
            norm=Normalize(0.0, 1.0),
            s=size,
            zorder=4,
            rasterized=True,
        )
        panel.autoscale_view()
