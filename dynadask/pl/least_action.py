"""``dyn.pl.least_action``: least-action paths over the cells' scatter."""

from __future__ import annotations

from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
from matplotlib.axes import Axes

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ._figure import save_show_ret
from ._paths import draw_paths
from .scatters import scatters


def _paths(adata: ad.AnnData, basis: str | None, x: int, y: int):
    """The plotted columns of every stored path (``n x L x 2``) and their cumulative action."""
    if basis is None:
        raise InputError("pass basis= (e.g. 'pca' or 'umap'): paths are stored per embedding")
    basis = keys.basis_name(basis)
    key = f"LAP_{basis}"
    if key not in adata.uns:
        raise MissingKeyError(
            f"no uns[{key!r}]: find the paths first with dyn.pd.least_action(adata, init_cells, "
            f"target_cells, basis={basis!r})"
        )
    P, S = adata.uns[key]["prediction"], adata.uns[key]["action"]
    d = P.shape[2]
    if not (0 <= x < d and 0 <= y < d):
        raise InputError(f"x={x} and y={y} must be columns of the {d}-dimensional paths")
    xy = P[:, :, [x, y]]
    if isinstance(xy, da.Array) or isinstance(S, da.Array):
        xy, S = compute(xy, S, desc="least action paths")
    return basis, np.asarray(xy, dtype=np.float64), np.asarray(S, dtype=np.float64)


def least_action(
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
    """Draw the least-action paths of ``uns['LAP_<basis>']`` over the cells' scatter.

    As dynamo draws them: the cells by :func:`dynadask.pl.scatters` (coloured by ``color``),
    each path as a black line and its points coloured by the action accumulated from the
    start (each path from its own 0 to its own total, bottom to top of ``cmap``).

    Parameters
    ----------
    adata
        AnnData with ``obsm['X_<basis>']`` and ``uns['LAP_<basis>']`` (from
        :func:`dynadask.pd.least_action`).
    x, y
        Columns of the embedding (and of the paths) on the two axes.
    basis
        The embedding the paths were found in (dynamo's default ``'pca'``).
    color
        obs column or gene colouring the cells.
    ax
        Draw into this axes.
    cmap
        Colour map of the accumulated action.
    linewidth
        Width of the path lines.
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
        No paths for the basis, or columns beyond the paths' dimension.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    basis, xy, S = _paths(adata, basis, x, y)
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
    top = S.max(axis=1, keepdims=True)
    share = S / np.where(top > 0, top, 1.0)
    draw_paths(axes, xy, share, cmap=cmap, linewidth=linewidth, size=16.0)
    fig = (axes[0] if isinstance(axes, list) else axes).figure
    return save_show_ret("kinetic_curves", save_show_or_return, save_kwargs, axes, fig)
