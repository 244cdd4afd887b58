"""Scatter shortcuts for the vector-field quantities (dynamo's ``dyn.pl.speed`` ... ``curvature``).

Each draws ``obs['<quantity>_<basis>']`` written by ``dyn.vf.<quantity>`` (plus any other
``color``) with :func:`dynadask.pl.scatters`; divergence and curl are signed and drawn with
``bwr`` and colour limits symmetric about zero.
"""

from __future__ import annotations

from typing import Any

import anndata as ad
from matplotlib.axes import Axes

from . import _data
from .scatters import scatters


def _quantity(
    adata: ad.AnnData,
    quantity: str,
    basis: str | None,
    color: str | list[str] | None,
    plot_basis: str,
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter ``obs['<quantity>_<basis>']`` (first panel) and ``color`` (more panels).

    Raises
    ------
    KeyError
        If the obs column is missing (names the ``dyn.vf`` call that writes it).
    """
    key = quantity if basis is None else f"{quantity}_{basis}"
    if key not in adata.obs.columns:
        raise _data.missing("obs column", key, f"dyn.vf.{quantity}(adata, basis={basis!r})")
    colors = [key] + ([] if color is None else [color] if isinstance(color, str) else list(color))
    return scatters(adata, plot_basis, color=colors, **kwargs)


def speed(
    adata: ad.AnnData,
    basis: str = "pca",
    color: str | list[str] | None = None,
    *,
    plot_basis: str = "umap",
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter the cells coloured by the speed of the learned field (the norm of its velocity).

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.speed(adata, basis=basis)``.
    basis
        Basis the quantity was computed in; its obs column is ``speed_<basis>``.
    color
        More obs columns or genes, one panel each after the speed panel.
    plot_basis
        Embedding the cells are drawn on (dynamo draws them on the UMAP whatever ``basis``).
    **kwargs
        Any :func:`dynadask.pl.scatters` option (``save_show_or_return``, ``ax``, ...).

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return _quantity(adata, "speed", basis, color, plot_basis, **kwargs)


def divergence(
    adata: ad.AnnData,
    basis: str = "pca",
    color: str | list[str] | None = None,
    *,
    cmap: str = "bwr",
    sym_c: bool = True,
    plot_basis: str = "umap",
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter the cells coloured by the divergence of the field (sources > 0), centred on 0.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.divergence(adata, basis=basis)``.
    basis
        Basis the quantity was computed in; its obs column is ``divergence_<basis>``.
    color
        More obs columns or genes, one panel each after the divergence panel.
    cmap
        Colour map (``bwr``).
    sym_c
        Colour limits symmetric about zero.
    plot_basis
        Embedding the cells are drawn on (dynamo draws them on the UMAP whatever ``basis``).
    **kwargs
        Any :func:`dynadask.pl.scatters` option (``save_show_or_return``, ``ax``, ...).

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return _quantity(
        adata, "divergence", basis, color, plot_basis, cmap=cmap, sym_c=sym_c, **kwargs
    )


def curl(
    adata: ad.AnnData,
    basis: str = "umap",
    color: str | list[str] | None = None,
    *,
    cmap: str = "bwr",
    sym_c: bool = True,
    plot_basis: str = "umap",
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter the cells coloured by the curl of the 2-D field (anticlockwise > 0), centred on 0.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.curl(adata, basis=basis)``.
    basis
        Basis the quantity was computed in; its obs column is ``curl_<basis>``.
    color
        More obs columns or genes, one panel each after the curl panel.
    cmap
        Colour map (``bwr``).
    sym_c
        Colour limits symmetric about zero.
    plot_basis
        Embedding the cells are drawn on (dynamo draws them on the UMAP whatever ``basis``).
    **kwargs
        Any :func:`dynadask.pl.scatters` option (``save_show_or_return``, ``ax``, ...).

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return _quantity(adata, "curl", basis, color, plot_basis, cmap=cmap, sym_c=sym_c, **kwargs)


def acceleration(
    adata: ad.AnnData,
    basis: str = "pca",
    color: str | list[str] | None = None,
    *,
    plot_basis: str = "umap",
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter the cells coloured by the norm of the field's acceleration.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.acceleration(adata, basis=basis)``.
    basis
        Basis the quantity was computed in; its obs column is ``acceleration_<basis>``.
    color
        More obs columns or genes, one panel each after the acceleration panel.
    plot_basis
        Embedding the cells are drawn on (dynamo draws them on the UMAP whatever ``basis``).
    **kwargs
        Any :func:`dynadask.pl.scatters` option (``save_show_or_return``, ``ax``, ...).

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return _quantity(adata, "acceleration", basis, color, plot_basis, **kwargs)


def curvature(
    adata: ad.AnnData,
    basis: str = "pca",
    color: str | list[str] | None = None,
    *,
    plot_basis: str = "umap",
    **kwargs: Any,
) -> Axes | list[Axes] | None:
    """Scatter the cells coloured by the curvature of the field's flow lines.

    Parameters
    ----------
    adata
        AnnData after ``dyn.vf.curvature(adata, basis=basis)``.
    basis
        Basis the quantity was computed in; its obs column is ``curvature_<basis>``.
    color
        More obs columns or genes, one panel each after the curvature panel.
    plot_basis
        Embedding the cells are drawn on (dynamo draws them on the UMAP whatever ``basis``).
    **kwargs
        Any :func:`dynadask.pl.scatters` option (``save_show_or_return``, ``ax``, ...).

    Returns
    -------
    Axes or list of Axes or None
        The axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    return _quantity(adata, "curvature", basis, color, plot_basis, **kwargs)
