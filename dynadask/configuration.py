"""Figure settings in dynamo's style (matplotlib rc parameters) and dynamo's data-store switches."""

from __future__ import annotations

from typing import Literal

import matplotlib as mpl
from cycler import cycler

from ._core.adata_config import DynamoAdataConfig, update_data_store_mode
from ._core.errors import InputError

# a colour cycle readable on white and on black backgrounds
_COLORS = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip


def set_figure_params(
    dynamo: bool | str = True,
    *,
    background: Literal["white", "black"] = "white",
    fontsize: int = 8,
    dpi: int = 80,
    dpi_save: int = 150,
    figsize: tuple[float, float] = (6.0, 4.0),
    transparent: bool = False,
) -> None:
    """Set matplotlib's rc parameters for dynadask figures.

    Parameters
    ----------
    dynamo
        Use dynadask's figure style (``True`` or ``'dynamo'``); ``False`` only sets sizes.
    background
        ``'white'`` (default) or ``'black'``: figure and axes background, with text, ticks
        and axes edges in the contrasting colour.
    fontsize
        Base font size in points.
    dpi, dpi_save
        Resolution on screen and when saving.
    figsize
        Default figure size in inches.
    transparent
        Save figures with a transparent background.

    Raises
    ------
    ValueError
        If ``background`` is neither 'white' nor 'black'.
    """
    if background not in ("white", "black"):
        raise InputError(f"background must be 'white' or 'black', not {background!r}")
    fg = "black" if background == "white" else "white"
    rc = {
        "figure.dpi": dpi,
        "savefig.dpi": dpi_save,
        "figure.figsize": figsize,
        "savefig.transparent": transparent,
        "font.size": fontsize,
        "legend.fontsize": fontsize,
        "axes.titlesize": fontsize + 2,
        "axes.labelsize": fontsize,
        "xtick.labelsize": fontsize,
        "ytick.labelsize": fontsize,
    }
    if dynamo:
        rc.update(
            {
                "figure.facecolor": background,
                "axes.facecolor": background,
                "savefig.facecolor": background,
                "axes.edgecolor": fg,
                "axes.labelcolor": fg,
                "text.color": fg,
                "xtick.color": fg,
                "ytick.color": fg,
                "legend.frameon": False,
                "axes.grid": False,
                "axes.spines.top": False,
                "axes.spines.right": False,
                "axes.prop_cycle": cycler(color=_COLORS),
                "image.cmap": "viridis",
            }
        )
    mpl.rcParams.update(rc)


def set_pub_style(scaler: float = 1.0) -> None:
    """Set a compact style for publication figures (small fonts, thin lines).

    Parameters
    ----------
    scaler
        Multiplies every font size and line width.
    """
    set_figure_params("dynamo", background="white", fontsize=round(6 * scaler), dpi_save=300)
    mpl.rcParams.update(
        {
            "axes.linewidth": 0.5 * scaler,
            "lines.linewidth": 0.8 * scaler,
            "xtick.major.width": 0.5 * scaler,
            "ytick.major.width": 0.5 * scaler,
            "xtick.major.size": 2.5 * scaler,
            "ytick.major.size": 2.5 * scaler,
            "font.family": "sans-serif",
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
        }
    )


__all__ = [
    "DynamoAdataConfig",
    "set_figure_params",
    "set_pub_style",
    "update_data_store_mode",
]
