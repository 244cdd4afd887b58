"""``dyn.pl.plot_energy``: the SparseVFC fit's energy and its change rate per EM iteration."""

from __future__ import annotations

from typing import Any

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .._core.errors import InputError, MissingKeyError
from ._figure import save_show_ret


def plot_energy(
    adata: ad.AnnData | None,
    basis: str | None = None,
    vecfld_dict: dict[str, Any] | None = None,
    *,
    figsize: tuple[float, float] | None = None,
    fig: Figure | None = None,
    save_show_or_return: str = "show",
    save_kwargs: dict | None = None,
) -> Figure | None:
    """Draw the energy and the energy change rate of the vector-field fit, iteration by iteration.

    Two panels, both on a log scale as dynamo draws them: the energy ``E`` shifted to a
    minimum of 1 (``E - min E + 1``) and its relative change ``|E - E_old| / E``, each a
    black line with red points, from ``E_traj`` and ``tecr_traj`` of the fit record.

    Parameters
    ----------
    adata
        AnnData after :func:`dynadask.vf.VectorField` (unused when ``vecfld_dict`` is given).
    basis
        The record read is ``uns['VecFld_<basis>']`` (``uns['VecFld']`` for ``None``, the
        gene-space field).
    vecfld_dict
        A fit record to draw instead.
    figsize
        Size of a new figure.
    fig
        Add the two panels to this figure.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``energy``).

    Returns
    -------
    Figure or None
        The figure when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    ValueError
        No fit record, or one without ``E_traj`` / ``tecr_traj``.

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    if vecfld_dict is None:
        key = "VecFld" if basis is None else f"VecFld_{basis}"
        if adata is None or key not in adata.uns:
            raise MissingKeyError(
                f"no uns[{key!r}]: learn the field first with dyn.vf.VectorField(adata, "
                f"basis={basis!r}), or pass vecfld_dict="
            )
        vecfld_dict = adata.uns[key]
    if "E_traj" not in vecfld_dict or "tecr_traj" not in vecfld_dict:
        raise InputError(
            "the fit record has no E_traj / tecr_traj: refit with dyn.vf.VectorField to record "
            "the iterations"
        )
    E = np.asarray(vecfld_dict["E_traj"], dtype=np.float64).ravel()
    tecr = np.asarray(vecfld_dict["tecr_traj"], dtype=np.float64).ravel()
    fig = fig or plt.figure(figsize=figsize)
    for k, (values, label) in enumerate(
        [(E - E.min() + 1, "Energy"), (tecr, "Energy change rate")], start=1
    ):
        ax = fig.add_subplot(1, 2, k)
        steps = np.arange(values.size)
        ax.plot(steps, values, "k")
        ax.plot(steps, values, "r.")
        ax.set_yscale("log")
        ax.set_xlabel("Iteration")
        ax.set_ylabel(label)
    return save_show_ret("energy", save_show_or_return, save_kwargs, fig, fig)
