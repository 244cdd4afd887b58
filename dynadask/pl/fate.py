"""``dyn.pl.fate`` and ``dyn.pl.fate_bias``: predicted trajectories and where they end."""

from __future__ import annotations

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
from ._figure import cluster_order, save_show_ret
from ._paths import draw_paths
from ._points import point_size
from .scatters import scatters


def _trajectories(adata: ad.AnnData, basis: str | None, x: int, y: int):
    """The two plotted columns of every stored trajectory (``n x 2 x L``) and the times."""
    if basis is None:
        raise InputError("pass basis= (e.g. 'umap' or 'pca'): fates are stored per embedding")
    basis = keys.basis_name(basis)
    key = f"fate_{basis}"
    if key not in adata.uns:
        raise MissingKeyError(
            f"no uns[{key!r}]: predict the fates first with dyn.pd.fate(adata, init_cells, "
            f"basis={basis!r})"
        )
    P, T = adata.uns[key]["prediction"], adata.uns[key]["t"]
    d = P.shape[1]
    if not (0 <= x < d and 0 <= y < d):
        raise InputError(f"x={x} and y={y} must be columns of the {d}-dimensional trajectories")
    xy = P[:, [x, y], :]
    if isinstance(xy, da.Array) or isinstance(T, da.Array):
        xy, T = compute(xy, T, desc="fate trajectories")
    return basis, np.asarray(xy, dtype=np.float64), np.asarray(T, dtype=np.float64)


def fate(
    adata: ad.AnnData,
    x: int = 0,
    y: int = 1,
    *,
    basis: str = "pca",
    color: str = "ntr",
    ax: Axes | None = None,
    cmap: str = "viridis",
    linewidth: float = 1.0,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw the predicted trajectories of ``uns['fate_<basis>']`` over the cells' scatter.

    As dynamo draws them: the cells by :func:`dynadask.pl.scatters` (coloured by ``color``),
    each trajectory as a black line through its samples and the samples as points coloured
    by time, from the trajectory's first time (bottom of ``cmap``) to its last (top). All
    trajectories form one line collection and one scatter layer, so thousands of them draw
    quickly; sample points are sized like cells (``16000 / sqrt(n_samples)``, at most 36).

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and ``uns['fate_<basis>']`` (from
        :func:`dynadask.pd.fate`).
    x, y
        Columns of the embedding (and of the trajectories) on the two axes.
    basis
        The embedding the fates were predicted in (dynamo's default ``'pca'``).
    color
        obs column or gene colouring the cells.
    ax
        Draw into this axes.
    cmap
        Colour map of the samples' times.
    linewidth
        Width of the trajectory lines.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``kinetic_curves``, as dynamo's).
    **kwargs
        Passed to :func:`dynadask.pl.scatters`.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        No fates for the basis, or columns beyond the trajectories' dimension.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    basis, xy, T = _trajectories(adata, basis, x, y)
    axes = scatters(
        adata,
        basis=basis,
        x=x,
        y=y,
        color=color,
        ax=ax,
        save_show_or_return="return",
        **kwargs,
    )
    span = T.max(axis=1, keepdims=True) - T.min(axis=1, keepdims=True)
    when = (T - T.min(axis=1, keepdims=True)) / np.where(span > 0, span, 1.0)
    size = min(point_size(when.size), 36.0)
    draw_paths(axes, xy.transpose(0, 2, 1), when, cmap=cmap, linewidth=linewidth, size=size)
    return save_show_ret("kinetic_curves", save_show_or_return, save_kwargs, axes, _figure_of(axes))


def _figure_of(axes: Axes | list[Axes]):
    """The figure of an axes or of the first of a list."""
    return (axes[0] if isinstance(axes, list) else axes).figure


def fate_bias(
    adata: ad.AnnData,
    group: str,
    basis: str = "umap",
    *,
    fate_bias_df: pd.DataFrame | None = None,
    figsize: tuple[float, float] = (6, 4),
    cmap: str = "viridis",
    row_cluster: bool = True,
    col_cluster: bool = True,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | None:
    """Draw the fate bias table as a clustered heatmap: trajectories x groups.

    dynamo draws ``seaborn.clustermap`` of the table (rows and columns reordered by
    average-linkage clustering on Euclidean distances, NaN as 0, no row labels). dynadask
    draws the same reordered matrix with ``imshow`` and a colour bar, colour limits fixed to
    the shares' range ``[0, 1]``, the rows' confidences in a narrow strip on the left, and
    the group names under the columns (seaborn is not a dependency; no dendrograms).

    Parameters
    ----------
    adata
        AnnData with the fates (see :func:`dynadask.pd.fate_bias`).
    group
        obs column of the groups.
    basis
        The embedding the fates were predicted in.
    fate_bias_df
        The table of :func:`dynadask.pd.fate_bias`; computed from ``adata`` when ``None``
        (as dynamo does; the table is not stored).
    figsize
        Size of the figure in inches.
    cmap
        Colour map of the shares.
    row_cluster, col_cluster
        Reorder the rows / columns by clustering.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``fate_bias``).
    **kwargs
        Passed to :func:`dynadask.pd.fate_bias` when it is computed.

    Returns
    -------
    Axes or None
        The heatmap's axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        As :func:`dynadask.pd.fate_bias`; a table without group columns.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    if fate_bias_df is None:
        from ..pd.fate_bias import fate_bias as table  # the table is computed, never stored

        fate_bias_df = table(adata, group, basis, **kwargs)
    df = fate_bias_df.copy()
    conf = df.pop("confidence").to_numpy(float) if "confidence" in df else None
    if df.shape[1] == 0:
        raise InputError("fate_bias_df has no group columns: pass dyn.pd.fate_bias's table")
    m = np.nan_to_num(df.to_numpy(dtype=np.float64), nan=0.0)
    rows, cols = cluster_order(m, row_cluster, col_cluster)
    m = m[rows][:, cols]
    fig = plt.figure(figsize=figsize)
    grid = fig.add_gridspec(1, 3, width_ratios=[0.04, 1, 0.04], wspace=0.05)
    ax = fig.add_subplot(grid[0, 1])
    image = ax.imshow(m, cmap=cmap, norm=Normalize(0.0, 1.0), aspect="auto", interpolation="none")
    ax.set_xticks(range(m.shape[1]), [str(c) for c in df.columns[cols]], rotation=90)
    ax.set_yticks([])
    ax.set_xlabel(group)
    if conf is not None:
        strip = fig.add_subplot(grid[0, 0], sharey=ax)
        strip.imshow(
            conf[rows][:, None],
            cmap="Greys",
            norm=Normalize(0.0, 1.0),
            aspect="auto",
            interpolation="none",
        )
        strip.set_xticks([0], ["confidence"], rotation=90)
        strip.tick_params(left=False, labelleft=False)
    fig.colorbar(image, cax=fig.add_subplot(grid[0, 2])).locator = mpl.ticker.MaxNLocator(3)
    return save_show_ret("fate_bias", save_show_or_return, save_kwargs, ax, fig)
