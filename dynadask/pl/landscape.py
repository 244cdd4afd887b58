"""``dyn.pl.show_landscape``: the potential landscape as a shaded 3-D surface."""

from __future__ import annotations

from typing import Any

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LightSource
from matplotlib.ticker import FormatStrFormatter, LinearLocator

from .._core import keys
from .._core.errors import MissingKeyError
from ._figure import save_show_ret


def show_landscape(
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    Xgrid: np.ndarray | None = None,  # noqa: N803 - dynamo's names
    Ygrid: np.ndarray | None = None,  # noqa: N803
    Zgrid: np.ndarray | None = None,  # noqa: N803
    cmap: str = "RdYlBu",
    figsize: tuple[float, float] = (6, 5),
    save_show_or_return: str = "show",
    save_kwargs: dict[str, Any] | None = None,
) -> Axes | None:
    """Draw the potential ``Zgrid`` over ``Xgrid`` x ``Ygrid`` as a shaded 3-D surface.

    As dynamo draws it: the grids of ``uns['grid_Pot_<basis>']`` (from
    :func:`dynadask.vf.Potential`) unless given, NaN drawn as 0, one face per grid cell
    shaded by a light source (azimuth 0, altitude 65) over ``cmap``, ten z ticks.

    Parameters
    ----------
    adata
        AnnData with ``uns['grid_Pot_<basis>']`` (not read when all three grids are given).
    basis
        The embedding of the landscape (axis labels ``<basis>_1``, ``<basis>_2``).
    Xgrid, Ygrid, Zgrid
        Grids replacing the stored ones.
    cmap
        Colour map of the shading.
    figsize
        Size of the figure in inches.
    save_show_or_return, save_kwargs
        As in :func:`dynadask.pl.scatters` (file prefix ``show_landscape``).

    Returns
    -------
    matplotlib.axes.Axes or None
        The 3-D axes when ``save_show_or_return`` is ``'return'`` or ``'all'``.

    Raises
    ------
    dynadask.MissingKeyError
        If a grid is neither given nor stored (names ``dyn.vf.Potential``).

    Writes
    ------
    Nothing in ``adata``; a file when saving.
    """
    basis = keys.basis_name(basis)
    given = {"Xgrid": Xgrid, "Ygrid": Ygrid, "Zgrid": Zgrid}
    if any(v is None for v in given.values()):
        stored = adata.uns.get(f"grid_Pot_{basis}")
        if stored is None:
            raise MissingKeyError(
                f"no uns['grid_Pot_{basis}']: map the landscape first with "
                f"dyn.vf.Potential(adata, basis={basis!r})"
            )
        given = {k: stored[k] if v is None else v for k, v in given.items()}
    X, Y, Z = (np.nan_to_num(np.asarray(given[k], dtype=np.float64)) for k in given)
    fig = plt.figure(figsize=figsize)
    ax = fig.add_subplot(projection="3d")
    rgb = LightSource(azdeg=0, altdeg=65).shade(Z, plt.get_cmap(cmap))
    ax.plot_surface(X, Y, Z, rstride=1, cstride=1, facecolors=rgb, linewidth=0, antialiased=False)
    ax.zaxis.set_major_locator(LinearLocator(10))
    ax.zaxis.set_major_formatter(FormatStrFormatter("%.02f"))
    ax.set_xlabel(f"{basis}_1")
    ax.set_ylabel(f"{basis}_2")
    ax.set_zlabel("U")
    return save_show_ret("show_landscape", save_show_or_return, save_kwargs, ax, fig)
