"""``dyn.pl.state_graph``: the cell groups' transition graph drawn over the cells."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch

from .._core import keys
from .._core.errors import MissingKeyError
from . import _data
from ._figure import save_show_ret
from .scatters import scatters


def graph_to_draw(
    P: np.ndarray,
    transition_threshold: float | None,
    keep_only_one_direction: bool,
    edge_scale: float,
) -> np.ndarray:
    """The edge weights dynamo draws: one direction kept, small ones dropped, rows to 1."""
    P = np.array(P, dtype=np.float64)
    if keep_only_one_direction:
        P[P - P.T < 0] = 0
    if transition_threshold is not None:
        P[P < transition_threshold] = 0
    total = P.sum(axis=1, keepdims=True) * edge_scale
    return np.divide(P, total, out=np.zeros_like(P), where=total > 0)


def state_graph(
    adata: ad.AnnData,
    group: str,
    basis: str = "umap",
    *,
    transition_threshold: float | None = 0.001,
    keep_only_one_direction: bool = True,
    edge_scale: float = 1,
    x: int = 0,
    y: int = 1,
    color: str | None = None,
    width: float = 3,
    edgecolor: str = "k",
    facecolor: str = "k",
    graph_alpha: float = 0.8,
    ax: Axes | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw the transition graph of ``uns['<group>_graph']`` as arrows between groups.

    As dynamo: the graph of :func:`dynadask.pd.state_graph`, with the weaker direction of
    each pair of groups removed (``keep_only_one_direction``), weights below
    ``transition_threshold`` dropped and each row scaled to sum to ``1 / edge_scale``; every
    remaining edge between two groups is a curved arrow from the first group's median
    position to the second's, ``width`` x weight wide and ``graph_alpha`` x min(2 weight, 1)
    opaque, over the cells' scatter (coloured by ``color``, default the groups).

    Parameters
    ----------
    adata
        AnnData with ``uns['<group>_graph']``, ``obs[group]`` and ``obsm['X_<basis>']``.
    group
        obs column of the groups the graph was built on.
    basis
        Embedding drawn.
    transition_threshold, keep_only_one_direction, edge_scale
        The edges kept, as above.
    x, y
        Embedding columns drawn.
    color
        obs column or gene colouring the cells (default ``group``).
    width, edgecolor, facecolor, graph_alpha
        Arrow width, colours and opacity.
    ax
        Draw into this axes.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``state_graph``).
    **kwargs
        Passed to :func:`dynadask.pl.scatters`.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    dynadask.MissingKeyError
        Without ``uns['<group>_graph']`` (names ``dyn.pd.state_graph``) or ``obs[group]``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    entry = adata.uns.get(f"{group}_graph")
    if entry is None or group not in adata.obs:
        raise MissingKeyError(
            f"no uns['{group}_graph'] (or obs[{group!r}]): build the graph first with "
            f"dyn.pd.state_graph(adata, {group!r}, basis={basis!r})"
        )
    basis = keys.basis_name(basis)
    P = graph_to_draw(
        entry["group_graph"], transition_threshold, keep_only_one_direction, edge_scale
    )
    names = [str(n) for n in entry["group_names"]]
    emb = _data.obsm_columns(adata, _data.basis_key(adata, basis), [x, y])
    xy = np.asarray(_data.gather({"xy": emb})["xy"], dtype=np.float64)
    labels = adata.obs[group].astype(str).to_numpy()
    centre = np.array([np.nanmedian(xy[labels == n], axis=0) for n in names])
    axes = scatters(
        adata,
        basis=basis,
        x=x,
        y=y,
        color=group if color is None else color,
        ax=ax,
        save_show_or_return="return",
        **kwargs,
    )
    for panel in axes if isinstance(axes, list) else [axes]:
        for i, j in zip(*np.nonzero(P), strict=True):
            if i == j:
                continue
            panel.add_patch(
                FancyArrowPatch(
                    tuple(centre[i]),
                    tuple(centre[j]),
                    arrowstyle="-|>",
                    connectionstyle="arc3, rad=0.25",
                    mutation_scale=15,
                    linewidth=width * P[i, j],
                    facecolor=facecolor,
                    edgecolor=edgecolor,
                    alpha=graph_alpha * min(2 * P[i, j], 1.0),
                    zorder=5,
                    gid=f"{names[i]}->{names[j]}",
                )
            )
    fig = (axes[0] if isinstance(axes, list) else axes).figure
    return save_show_ret("state_graph", save_show_or_return, save_kwargs, axes, fig)
