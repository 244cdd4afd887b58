"""Figure plumbing: panel grids and dynamo's save / show / return convention."""

from __future__ import annotations

import os
import warnings
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.cluster import hierarchy

from .._core.errors import InputError

MODES = ("save", "show", "return", "both", "all")
SAVE_DEFAULTS = {
    "path": None,
    "prefix": None,
    "dpi": None,
    "ext": "pdf",
    "transparent": True,
    "close": True,
    "verbose": True,
}


def panels(
    n: int,
    ncols: int,
    figsize: tuple[float, float],
    ax: Axes | None = None,
    background: str | None = None,
) -> tuple[Figure, list[Axes]]:
    """Return a figure and ``n`` axes laid out ``ncols`` per row (or the given ``ax``).

    Raises
    ------
    ValueError
        If ``ax`` is given for more than one panel.
    """
    if ax is not None:
        if n != 1:
            raise InputError(
                f"ax= draws a single panel but this call makes {n} panels: "
                "pass one color (and one gene) or leave ax=None"
            )
        return ax.figure, [ax]
    ncol = max(1, min(ncols or n, n))
    nrow = int(np.ceil(n / ncol))
    fig = plt.figure(figsize=(figsize[0] * ncol, figsize[1] * nrow), facecolor=background)
    grid = fig.add_gridspec(nrow, ncol, wspace=0.3, hspace=0.3)
    return fig, [fig.add_subplot(grid[i // ncol, i % ncol]) for i in range(n)]


def cluster_order(m: np.ndarray, rows: bool, cols: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row and column orders of a heatmap, as seaborn's clustermap reorders them.

    Where asked, the leaf order of average-linkage Euclidean clustering (NaN taken as 0;
    fewer than 3 rows or columns stay as they are); otherwise the given order.
    """
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))

    def leaves(data: np.ndarray, asked: bool) -> np.ndarray:
        if not asked or data.shape[0] < 3:
            return np.arange(data.shape[0])
        return hierarchy.leaves_list(hierarchy.linkage(data, method="average", metric="euclidean"))

    return leaves(m, rows), leaves(m.T, cols)


def clean_axes(ax: Axes, background: str | None = None) -> None:
    """Hide spines and ticks (dynamo's ``despline`` / ``deaxis`` defaults)."""
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xticks([])
    ax.set_yticks([])
    if background is not None:
        ax.set_facecolor(background)


def save_fig(
    fig: Figure,
    *,
    path: str | None = None,
    prefix: str | None = None,
    dpi: int | None = None,
    ext: str = "pdf",
    transparent: bool = True,
    close: bool = True,
    verbose: bool = True,
) -> str:
    """Write ``fig`` to ``<dir>/<prefix>_<name>.<ext>`` where ``path`` is ``<dir>/<name>``.

    ``path=None`` writes into the working directory; a ``path`` ending in a separator names a
    directory (file name ``dyn_savefig``). Returns the path written.
    """
    path = os.path.join(os.getcwd(), "") if path is None else str(path)
    directory, name = os.path.split(path)
    directory, name = directory or ".", name or "dyn_savefig"
    os.makedirs(directory, exist_ok=True)
    stem = name if prefix is None else f"{os.path.normpath(prefix)}_{name}"
    target = os.path.join(directory, f"{stem}.{ext}")
    if verbose:
        print(f"saving figure to {target}")
    fig.savefig(
        target,
        dpi=300 if dpi is None else dpi,
        transparent=transparent,
        format=ext,
        bbox_inches="tight",
    )
    if close:
        plt.close(fig)
    return target


def save_show_ret(
    prefix: str, save_show_or_return: str, save_kwargs: dict[str, Any] | None, ret: Any, fig: Figure
) -> Any:
    """Save, show and/or return a finished figure, as dynamo's plotting functions do.

    ``'save'`` writes the file (see :func:`save_fig`; ``save_kwargs`` overrides ``path``,
    ``prefix``, ``dpi``, ``ext``, ``transparent``, ``close``, ``verbose``) and closes the
    figure; ``'show'`` shows it; ``'return'`` returns ``ret`` (the axes); ``'both'`` saves
    and shows; ``'all'`` saves, shows and returns.

    Raises
    ------
    ValueError
        If ``save_show_or_return`` is not one of those.
    """
    if save_show_or_return not in MODES:
        raise InputError(f"save_show_or_return must be one of {MODES}, not {save_show_or_return!r}")
    if save_show_or_return in ("save", "both", "all"):
        kwargs = {**SAVE_DEFAULTS, "prefix": prefix, **(save_kwargs or {})}
        unknown = set(kwargs) - set(SAVE_DEFAULTS)
        if unknown:
            raise InputError(f"unknown save_kwargs {sorted(unknown)}: use {sorted(SAVE_DEFAULTS)}")
        if save_show_or_return != "save":
            kwargs["close"] = False
        save_fig(fig, **kwargs)
    if save_show_or_return in ("show", "both", "all"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # non-interactive backends warn on show()
            plt.show()
    if save_show_or_return in ("return", "all"):
        return ret
    return None
