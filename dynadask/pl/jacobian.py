"""Jacobian and sensitivity figures: per-pair scatters on an embedding, per-cell heatmaps.

They read ``uns['jacobian_<basis>']`` (``dyn.vf.jacobian``) or ``uns['sensitivity_<basis>']``
(``dyn.vf.sensitivity``): ``<kind>_gene`` cells x effectors x regulators (dynamadask; dynamo's
own is effectors x regulators x cells, also read), ``cell_idx``, ``regulators``,
``effectors``. On a store the per-cell array is a lazy Dask array; only the chosen genes'
columns (and, for a heatmap, the chosen cells' rows) are read, in one compute with the
embedding. Values are signed: ``bwr`` with limits symmetric about zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize

from .._core.errors import InputError, MissingKeyError
from . import _data, _points
from ._figure import clean_axes, panels, save_show_ret

MAKERS = {
    "jacobian": "dyn.vf.jacobian(adata, regulators=..., effectors=..., basis={basis!r})",
    "sensitivity": "dyn.vf.sensitivity(adata, regulators=..., effectors=..., basis={basis!r})",
}
TITLES = {
    "jacobian": (
        r"$\partial f_{%s} / \partial x_{%s}$",
        r"$\frac{\partial f_{%s}}{\partial x_{%s}}$",
    ),
    "sensitivity": (r"$d x_{%s} / d x_{%s}$", r"$\frac{d x_{%s}}{d x_{%s}}$"),
}


@dataclass(frozen=True)
class Derivatives:
    """A stored per-cell derivative array, cells first, restricted to the chosen genes."""

    values: Any  # (cells, effectors, regulators), numpy or Dask
    cell_idx: np.ndarray
    regulators: list[str]
    effectors: list[str]


def _choose(asked: Sequence[str] | str | None, stored: list[str], role: str, key: str) -> list:
    if asked is None:
        return list(range(len(stored)))
    asked = [asked] if isinstance(asked, str) else list(asked)
    unknown = [g for g in asked if g not in stored]
    if unknown:
        raise InputError(
            f"{role} {unknown} have no values in uns[{key!r}] (it holds {stored}): rerun the "
            "dyn.vf call with them"
        )
    return [stored.index(g) for g in asked]


def derivatives(
    adata: ad.AnnData,
    kind: str,
    basis: str,
    regulators: Sequence[str] | str | None = None,
    effectors: Sequence[str] | str | None = None,
) -> Derivatives:
    """Read ``uns['<kind>_<basis>']`` for the chosen regulators and effectors (lazy if stored).

    With only one of ``regulators`` / ``effectors`` given, the other is the same list
    (as dynamo does).

    Raises
    ------
    KeyError
        If the entry or its per-cell gene array is missing (names the ``dyn.vf`` call).
    ValueError
        If a gene was not part of the computation.
    """
    key = f"{kind}_{basis}"
    entry = adata.uns.get(key)
    array = None if entry is None else entry.get(f"{kind}_gene")
    if array is None:
        raise _data.missing(
            "uns entry",
            f"{key}/{kind}_gene",
            MAKERS.get(kind, MAKERS["jacobian"]).format(basis=basis),
        )
    cells = np.asarray(entry["cell_idx"], dtype=np.int64)
    regs, effs = [str(g) for g in entry["regulators"]], [str(g) for g in entry["effectors"]]
    if regulators is None and effectors is not None:
        regulators = effectors
    if effectors is None and regulators is not None:
        effectors = regulators
    r = _choose(regulators, regs, "regulators", key)
    e = _choose(effectors, effs, "effectors", key)
    shape = tuple(array.shape)
    if shape != (cells.size, len(effs), len(regs)):
        if shape != (len(effs), len(regs), cells.size):
            raise InputError(f"uns[{key!r}]['{kind}_gene'] has shape {shape}: not a cell array")
        array = array.transpose(2, 0, 1)  # dynamo's effectors x regulators x cells
    values = array[:, e][:, :, r]
    return Derivatives(values, cells, [regs[i] for i in r], [effs[i] for i in e])


def _scatter_grid(
    adata: ad.AnnData,
    kind: str,
    regulators: Any,
    effectors: Any,
    *,
    basis: str,
    d_basis: str,
    dims: list[int],
    figsize: tuple[float, float],
    pointsize: float | None,
    cmap: str,
    sym_c: bool,
    sort: str,
    stacked_fraction: bool,
    background: str | None,
    ax: Axes | None,
    scatter_kwargs: dict[str, Any],
) -> tuple[Any, list[Axes]]:
    """Panels regulators (rows) x effectors (columns), each cell coloured by its value."""
    der = derivatives(adata, kind, d_basis, regulators, effectors)
    emb = _data.obsm_columns(adata, _data.basis_key(adata, basis), dims)
    data = _data.gather({"xy": emb[der.cell_idx], "d": der.values})
    xy, values = data["xy"], np.asarray(data["d"], dtype=np.float64)
    n_r, n_e = len(der.regulators), len(der.effectors)
    fig, axes = panels(n_r * n_e, n_e, figsize, ax, background)
    vmin, vmax = scatter_kwargs.pop("vmin", None), scatter_kwargs.pop("vmax", None)
    draw = {
        "s": _points.point_size(xy.shape[0], pointsize, _points.JACOBIAN_POINTS),
        "alpha": 0.2,
        **scatter_kwargs,
    }
    title = TITLES.get(kind, TITLES["jacobian"])[1 if stacked_fraction else 0]
    for i, reg in enumerate(der.regulators):
        for j, eff in enumerate(der.effectors):
            panel, v = axes[i * n_e + j], values[:, j, i]
            top = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 1.0
            lo, hi = (-top, top) if sym_c else (None, None)
            _points.draw_values(
                panel,
                xy,
                v,
                cmap=cmap,
                sort=sort,
                sym_c=sym_c,
                vmin=lo if vmin is None else vmin,
                vmax=hi if vmax is None else vmax,
                **draw,
            )
            panel.set_title(title % (eff, reg))
            clean_axes(panel, background)
    return fig, axes


def jacobian(
    adata: ad.AnnData,
    regulators: Sequence[str] | str | None = None,
    effectors: Sequence[str] | str | None = None,
    *,
    basis: str = "umap",
    jkey: str = "jacobian",
    j_basis: str = "pca",
    x: int = 0,
    y: int = 1,
    cmap: str = "bwr",
    background: str | None = None,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    sym_c: bool = True,
    sort: str = "abs",
    stacked_fraction: bool = False,
    ax: Axes | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw each Jacobian element ``df_effector / dx_regulator`` across the cells on an embedding.

    One panel per (regulator, effector) pair: regulators down the rows, effectors across the
    columns; the cells that have a Jacobian (``cell_idx``) are drawn, coloured by the element
    with ``cmap`` and limits ``+-max |value|`` (``sym_c``), largest magnitudes on top.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.jacobian`` (``uns['<jkey>_<j_basis>']``).
    regulators, effectors
        Genes drawn (default all computed; one given sets the other too).
    basis
        Embedding the cells are drawn on.
    jkey, j_basis
        The entry read is ``uns['<jkey>_<j_basis>']``.
    x, y
        Embedding columns.
    cmap
        Colour map (``bwr``).
    background
        Axes background colour.
    pointsize
        Multiplier of the default marker area ``2000 / sqrt(n_cells)`` (dynamo's).
    figsize
        Size of one panel.
    sym_c
        Limits ``(-m, m)`` with ``m`` the largest magnitude (else the percentiles).
    sort
        Drawing order: ``'abs'`` (largest magnitude on top), ``'raw'`` or ``'neg'``.
    stacked_fraction
        Titles as stacked fractions.
    ax
        Axes to draw into (one pair only).
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``jacobian``).
    **kwargs
        ``vmin`` / ``vmax`` and ``Axes.scatter`` options.

    Returns
    -------
    Axes or list of Axes or None
        The axes (row by row) when ``save_show_or_return`` is ``'return'`` or ``'all'``
        (dynamo returns its GridSpec).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    fig, axes = _scatter_grid(
        adata,
        jkey,
        regulators,
        effectors,
        basis=basis,
        d_basis=j_basis,
        dims=[x, y],
        figsize=figsize,
        pointsize=pointsize,
        cmap=cmap,
        sym_c=sym_c,
        sort=sort,
        stacked_fraction=stacked_fraction,
        background=background,
        ax=ax,
        scatter_kwargs=dict(kwargs),
    )
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret(jkey, save_show_or_return, save_kwargs, ret, fig)


def sensitivity(
    adata: ad.AnnData,
    regulators: Sequence[str] | str | None = None,
    effectors: Sequence[str] | str | None = None,
    *,
    basis: str = "umap",
    skey: str = "sensitivity",
    s_basis: str = "pca",
    x: int = 0,
    y: int = 1,
    cmap: str = "bwr",
    background: str | None = None,
    pointsize: float | None = None,
    figsize: tuple[float, float] = (6, 4),
    sym_c: bool = True,
    sort: str = "abs",
    stacked_fraction: bool = False,
    ax: Axes | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw each sensitivity ``dx_effector / dx_regulator`` across the cells on an embedding.

    As :func:`jacobian`, from ``uns['<skey>_<s_basis>']`` (``dyn.vf.sensitivity``).

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.sensitivity``.
    regulators, effectors
        Genes drawn (default all computed; one given sets the other too).
    basis
        Embedding the cells are drawn on.
    skey, s_basis
        The entry read is ``uns['<skey>_<s_basis>']``.
    x, y, cmap, background, pointsize, figsize, sym_c, sort, stacked_fraction, ax
        As in :func:`jacobian`.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``sensitivity``).
    **kwargs
        ``vmin`` / ``vmax`` and ``Axes.scatter`` options.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    fig, axes = _scatter_grid(
        adata,
        skey,
        regulators,
        effectors,
        basis=basis,
        d_basis=s_basis,
        dims=[x, y],
        figsize=figsize,
        pointsize=pointsize,
        cmap=cmap,
        sym_c=sym_c,
        sort=sort,
        stacked_fraction=stacked_fraction,
        background=background,
        ax=ax,
        scatter_kwargs=dict(kwargs),
    )
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret(skey, save_show_or_return, save_kwargs, ret, fig)


def _heatmaps(
    adata: ad.AnnData,
    kind: str,
    cell_idx: int | Sequence[int],
    *,
    average: bool,
    basis: str,
    regulators: Any,
    effectors: Any,
    figsize: tuple[float, float],
    ncols: int,
    cmap: str,
    annot: bool,
    imshow_kwargs: dict[str, Any],
) -> tuple[Any, list[Axes]]:
    der = derivatives(adata, kind, basis, regulators, effectors)
    asked = np.atleast_1d(np.asarray(cell_idx, dtype=np.int64))
    where = {int(c): k for k, c in enumerate(der.cell_idx)}
    rows = [where[int(c)] for c in asked if int(c) in where]
    if not rows:
        raise MissingKeyError(
            f"no {kind} was computed for cells {asked[:10].tolist()}: pick among "
            f"uns['{kind}_{basis}']['cell_idx'] or rerun dyn.vf.{kind} with cell_idx="
        )
    values = np.asarray(_data.gather({"d": der.values[np.asarray(rows)]})["d"], dtype=np.float64)
    mats = [values.mean(axis=0)] if average else list(values)
    names = (
        ["Average Jacobian Matrix" if kind == "jacobian" else f"Average {kind} matrix"]
        if average
        else [str(adata.obs_names[der.cell_idx[r]]) for r in rows]
    )
    fig, axes = panels(len(mats), ncols, figsize)
    for panel, m, name in zip(axes, mats, names, strict=True):
        _heatmap(panel, m.T, der.regulators, der.effectors, cmap, annot, imshow_kwargs)
        panel.set_title(name)
    return fig, axes


def _heatmap(
    ax: Axes,
    m: np.ndarray,
    rows: list[str],
    cols: list[str],
    cmap: str,
    annot: bool,
    kwargs: dict[str, Any],
) -> None:
    """``m`` (rows x cols) as an image centred on zero, each value written in its square."""
    top = float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0
    top = top if top > 0 else 1.0
    norm = Normalize(-top, top)
    ax.imshow(m, cmap=cmap, norm=norm, aspect="auto", **kwargs)
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("effectors")
    ax.set_ylabel("regulators")
    if annot:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize="x-small")


def jacobian_heatmap(
    adata: ad.AnnData,
    cell_idx: int | Sequence[int],
    average: bool = False,
    *,
    jkey: str = "jacobian",
    basis: str = "pca",
    regulators: Sequence[str] | str | None = None,
    effectors: Sequence[str] | str | None = None,
    figsize: tuple[float, float] = (7, 5),
    ncols: int = 1,
    cmap: str = "bwr",
    annot: bool = True,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw the gene Jacobian of chosen cells (or their average) as heatmaps centred on zero.

    Rows are regulators, columns effectors (element ``df_effector / dx_regulator``); the
    colour limits are ``+-`` the largest magnitude of each matrix and every value is written
    in its square. Only the chosen cells' rows of a stored (lazy) array are read.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.jacobian``.
    cell_idx
        Cell positions; those without a Jacobian are skipped.
    average
        One heatmap of the cells' mean Jacobian.
    jkey, basis
        The entry read is ``uns['<jkey>_<basis>']`` (dynamo's default basis is ``'umap'``;
        ``dyn.vf.jacobian`` writes ``'pca'``).
    regulators, effectors
        Genes shown (default all computed).
    figsize
        Size of one heatmap.
    ncols
        Heatmaps per row.
    cmap
        Colour map (``bwr``).
    annot
        Write the values in the squares.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``jacobian_heatmap``).
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        If none of the cells has a Jacobian, or a gene was not computed.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    fig, axes = _heatmaps(
        adata,
        jkey,
        cell_idx,
        average=average,
        basis=basis,
        regulators=regulators,
        effectors=effectors,
        figsize=figsize,
        ncols=ncols,
        cmap=cmap,
        annot=annot,
        imshow_kwargs=kwargs,
    )
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret(f"{jkey}_heatmap", save_show_or_return, save_kwargs, ret, fig)


def sensitivity_heatmap(
    adata: ad.AnnData,
    cell_idx: int | Sequence[int],
    *,
    skey: str = "sensitivity",
    basis: str = "pca",
    regulators: Sequence[str] | str | None = None,
    effectors: Sequence[str] | str | None = None,
    figsize: tuple[float, float] = (7, 5),
    ncols: int = 1,
    cmap: str = "bwr",
    annot: bool = True,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Draw the gene sensitivity matrices of chosen cells as heatmaps centred on zero.

    As :func:`jacobian_heatmap`, from ``uns['<skey>_<basis>']`` (``dyn.vf.sensitivity``).

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.sensitivity``.
    cell_idx
        Cell positions; those without values are skipped.
    skey, basis
        The entry read is ``uns['<skey>_<basis>']``.
    regulators, effectors, figsize, ncols, cmap, annot
        As in :func:`jacobian_heatmap`.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``sensitivity_heatmap``).
    **kwargs
        Passed to ``Axes.imshow``.

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    fig, axes = _heatmaps(
        adata,
        skey,
        cell_idx,
        average=False,
        basis=basis,
        regulators=regulators,
        effectors=effectors,
        figsize=figsize,
        ncols=ncols,
        cmap=cmap,
        annot=annot,
        imshow_kwargs=kwargs,
    )
    ret = axes[0] if len(axes) == 1 else axes
    return save_show_ret(f"{skey}_heatmap", save_show_or_return, save_kwargs, ret, fig)
