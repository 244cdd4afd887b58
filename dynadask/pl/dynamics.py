"""``dyn.pl.phase_portraits``: unspliced versus spliced per gene, with the steady-state line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from . import _data, _points
from ._figure import clean_axes, panels, save_show_ret

PER_GENE = 3  # phase portrait, expression on the embedding, velocity on the embedding


def _phase_layers(adata: ad.AnnData, use_smoothed: bool) -> tuple[str, str]:
    """The (spliced, unspliced) layers of the phase portrait.

    Raises
    ------
    KeyError
        If none of the candidate pairs is present.
    """
    raw = (keys.SPLICED, keys.UNSPLICED)
    pairs = [(keys.M_S, keys.M_U)] if use_smoothed else [tuple(map(keys.normalised_key, raw)), raw]
    for s, u in pairs:
        if s in adata.layers and u in adata.layers:
            return s, u
    if use_smoothed:
        raise _data.missing("layers", f"{keys.M_S}/{keys.M_U}", _data.MAKERS["M_"])
    raise MissingKeyError(
        "layers X_spliced/X_unspliced (or spliced/unspliced) are missing: "
        "use_smoothed=False draws the normalised layers"
    )


def steady_state(var: Any, gene: str) -> tuple[float, float] | None:
    """Slope ``gamma / beta`` and offset ``gamma_b`` of gene's steady-state line (None if NaN).

    Raises
    ------
    KeyError
        If var has no ``gamma`` column.
    """
    if "gamma" not in var.columns:
        raise _data.missing("var column", "gamma", _data.MAKERS["gamma"])
    gamma = float(var.at[gene, "gamma"])
    beta = float(var.at[gene, "beta"]) if "beta" in var.columns else 1.0
    offset = float(var.at[gene, "gamma_b"]) if "gamma_b" in var.columns else 0.0
    beta = 1.0 if not np.isfinite(beta) or beta == 0 else beta
    offset = 0.0 if not np.isfinite(offset) else offset
    return (gamma / beta, offset) if np.isfinite(gamma) else None


def _fetch(
    adata: ad.AnnData,
    genes: list[str],
    layers: dict[str, str],
    basis: str,
    dims: list[int],
    color: str,
) -> dict[str, Any]:
    items: dict[str, Any] = {
        "emb": _data.obsm_columns(adata, _data.basis_key(adata, basis), dims),
        "color": _data.color_vector(adata, color, layers["s"]),
    }
    for g in genes:
        for role, layer in layers.items():
            items[f"{role}:{g}"] = _data.gene_column(adata, g, layer)
    return _data.gather(items)


def _draw_cells(
    ax: Axes, xy: np.ndarray, colour: Any, style: dict[str, Any], stored: Any = None, **kwargs: Any
) -> None:
    if _data.is_categorical(colour):
        _points.draw_labels(
            ax,
            xy,
            colour,
            stored_colors=stored,
            highlights=style["highlights"],
            show_legend=style["legend"],
            **kwargs,
        )
    else:
        _points.draw_values(ax, xy, np.asarray(colour, dtype=np.float64), **kwargs)


def _phase_panel(
    ax: Axes,
    s: np.ndarray,
    u: np.ndarray,
    colour: Any,
    line: Any,
    names: tuple[str, str],
    style: dict[str, Any],
    stored: Any,
) -> None:
    _draw_cells(ax, np.column_stack([s, u]), colour, style, stored, **style["scatter"])
    if line is not None:
        grid = np.linspace(0.0, np.nanmax(s) if np.isfinite(s).any() else 1.0, 50)
        ax.plot(grid, line[0] * grid + line[1], dashes=[6, 2], c="black", zorder=5)
    ax.set_xlabel(f"spliced ({names[0]})")
    ax.set_ylabel(f"unspliced ({names[1]})")


def phase_portraits(
    adata: ad.AnnData,
    genes: str | Sequence[str],
    *,
    x: int = 0,
    y: int = 1,
    pointsize: float | None = None,
    vkey: str | None = None,
    ekey: str | None = None,
    basis: str = "umap",
    log1p: bool = True,
    color: str = "cell_cycle_phase",
    use_smoothed: bool = True,
    highlights: list | None = None,
    figsize: tuple[float, float] = (6, 4),
    ncols: int | None = None,
    legend: str = "upper left",
    background: str | None = None,
    alpha: float = 0.2,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> list[Axes] | None:
    """Draw, per gene, its phase portrait and its expression and velocity on an embedding.

    Three panels per gene: unspliced versus spliced (``M_u`` vs ``M_s``, or the normalised
    ``X_unspliced`` vs ``X_spliced`` with ``use_smoothed=False``) coloured by ``color`` with
    the steady-state line ``u = gamma / beta * s + gamma_b`` from var (``beta`` 1 and
    ``gamma_b`` 0 when absent; no line when gamma is NaN); the expression (``ekey``,
    ``log1p``) on the embedding; the velocity (``vkey``) on the embedding. Only the genes'
    own columns are read, in one compute.

    Parameters
    ----------
    adata
        AnnData after ``dyn.tl.dynamics`` (and an embedding).
    genes
        Gene name(s).
    x, y
        Embedding columns.
    pointsize
        Multiplier of the default marker area ``2500 / sqrt(n_cells)`` (dynamo's).
    vkey
        Velocity layer (default ``velocity_S``).
    ekey
        Expression layer of the second panel (default the phase portrait's spliced layer).
    basis
        Embedding in obsm.
    log1p
        Show ``log1p`` of the expression.
    color
        obs column (or gene) colouring the phase portrait.
    use_smoothed
        Use the moment layers for the phase portrait.
    highlights
        Categories drawn in colour.
    figsize
        Size of one panel.
    ncols
        Panels per row (default 3, one gene per row).
    legend
        Legend of the categories (``'on data'``, a location, or ``False``).
    background
        Axes background colour.
    alpha
        Point opacity (dynamo's 0.2).
    save_show_or_return, save_kwargs
        As in :func:`scatters` (file prefix ``phase_portraits``).
    **kwargs
        Passed to ``Axes.scatter``.

    Returns
    -------
    list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    genes = [genes] if isinstance(genes, str) else list(genes)
    unknown = [g for g in genes if g not in adata.var_names]
    if unknown or not genes:
        raise InputError(f"genes {unknown or genes} are not in adata.var_names")
    s_layer, u_layer = _phase_layers(adata, use_smoothed)
    layers = {"s": s_layer, "u": u_layer, "e": ekey or s_layer, "v": vkey or keys.VELOCITY_S}
    _data.layer_array(adata, layers["v"])
    lines = {g: steady_state(adata.var, g) for g in genes}
    data = _fetch(adata, genes, layers, basis, [x, y], color)
    fig, axes = panels(len(genes) * PER_GENE, ncols or PER_GENE, figsize, None, background)
    draw = {
        "s": _points.point_size(adata.n_obs, pointsize, _points.PHASE_POINTS),
        "alpha": alpha,
        **kwargs,
    }
    style = {"highlights": highlights, "legend": legend, "scatter": draw}
    stored = adata.uns.get(f"{color}_colors")
    for i, g in enumerate(genes):
        ax_phase, ax_e, ax_v = axes[PER_GENE * i : PER_GENE * (i + 1)]
        _phase_panel(
            ax_phase,
            data[f"s:{g}"],
            data[f"u:{g}"],
            data["color"],
            lines[g],
            (s_layer, u_layer),
            style,
            stored,
        )
        ax_phase.set_title(g)
        e = np.log1p(np.clip(data[f"e:{g}"], 0, None)) if log1p else data[f"e:{g}"]
        _points.draw_values(ax_e, data["emb"], e, **draw)
        _points.draw_values(ax_v, data["emb"], data[f"v:{g}"], sym_c=True, sort="abs", **draw)
        ax_e.set_title(f"{g} ({layers['e']})")
        ax_v.set_title(f"{g} ({layers['v']})")
        for panel in (ax_e, ax_v):
            clean_axes(panel, background)
    return save_show_ret("phase_portraits", save_show_or_return, save_kwargs, axes, fig)
