"""Violin panels, one per variable, and the grid object dynamo's seaborn figures return.

dynamo draws ``basic_stats``, ``show_fraction`` and ``exp_by_groups`` with seaborn's
``FacetGrid``; dynadask draws the same panels with matplotlib (no seaborn dependency) and
returns a :class:`Facets` with the attributes a caller of a ``FacetGrid`` uses: ``figure``
(``fig``), ``axes`` (a 2-D array), ``axes_dict`` and ``data`` (the long table drawn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

MAX_KDE_POINTS = 200_000
"""A violin's density is estimated on at most this many values (a seeded sample)."""


@dataclass
class Facets:
    """Panels of one figure, laid out like seaborn's ``FacetGrid``."""

    figure: Figure
    axes: np.ndarray
    data: pd.DataFrame

    @property
    def fig(self) -> Figure:
        """The figure (seaborn's older name)."""
        return self.figure

    @property
    def axes_dict(self) -> dict[str, Axes]:
        """Each panel by its title (the variable it shows)."""
        return {ax.get_title(): ax for ax in self.axes.flat}

    def savefig(self, *args: Any, **kwargs: Any) -> None:
        """Save the figure (``Figure.savefig``'s arguments)."""
        self.figure.savefig(*args, **kwargs)


def group_order(groups: pd.Series, re_order: bool = False) -> list[Any]:
    """The groups in drawing order: categories (sorted with ``re_order``) or sorted values."""
    if isinstance(groups.dtype, pd.CategoricalDtype):
        cats = groups.cat.categories
        return list(cats.sort_values() if re_order else cats)
    return list(np.sort(groups.dropna().unique()))


def violin(ax: Axes, samples: Sequence[np.ndarray], color: Any, positions: Sequence[int]) -> None:
    """Draw one violin per sample at ``positions``; a constant sample is drawn as a line."""
    rng = np.random.default_rng(0)
    for pos, values in zip(positions, samples, strict=True):
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        if values.size > MAX_KDE_POINTS:
            values = rng.choice(values, MAX_KDE_POINTS, replace=False)
        if np.ptp(values) == 0:
            ax.hlines(values[0], pos - 0.4, pos + 0.4, color=color)
            continue
        parts = ax.violinplot(values, [pos], widths=0.8, showextrema=False)
        for body in parts["bodies"]:
            body.set_facecolor(color)
            body.set_edgecolor("0.3")
            body.set_alpha(0.8)
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        ax.vlines(pos, q1, q3, color="0.2", linewidth=3)
        ax.scatter([pos], [med], color="white", s=8, zorder=3)


def violin_facets(
    table: pd.DataFrame,
    groups: pd.Series | None,
    *,
    by: str = "col",
    figsize: tuple[float, float] = (4, 3),
    ylabel: str = "",
    rotation: float = -30,
    re_order: bool = False,
    means: bool = False,
) -> Facets:
    """One panel per column of ``table`` (a row of panels, or a column with ``by='row'``).

    Without ``groups`` each panel holds one violin of the column's values; with ``groups``
    (an obs column) one violin per group, in :func:`group_order` (categories in their
    order, sorted with ``re_order``). ``means`` adds the group
    means (black points joined by a line, with 95 % normal intervals), as dynamo's
    ``exp_by_groups``. Panels share no axis; the y axis starts at 0 when the values are
    non-negative.
    """
    names = list(table.columns)
    n = len(names)
    nrow, ncol = (n, 1) if by == "row" else (1, n)
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(figsize[0] * ncol, figsize[1] * nrow), squeeze=False
    )
    colours = mpl.colormaps["tab10"](np.arange(n) % 10)
    order = group_order(groups, re_order) if groups is not None else [None]
    codes = None if groups is None else pd.Categorical(groups, categories=order).codes
    for k, (ax, name) in enumerate(zip(axes.flat, names, strict=True)):
        values = table[name].to_numpy(dtype=np.float64)
        samples = [values] if codes is None else [values[codes == i] for i in range(len(order))]
        positions = list(range(len(samples)))
        violin(ax, samples, colours[k], positions)
        if means:
            _means(ax, samples, positions)
        ax.set_title(str(name))
        ax.set_ylabel(ylabel)
        if groups is None:
            ax.set_xticks([])
        else:
            ax.set_xticks(positions, [str(g) for g in order], rotation=rotation)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0:
            ax.set_ylim(bottom=0)
    long = table.melt(var_name="variable", value_name="value")
    if groups is not None:
        long.insert(0, "group", np.tile(np.asarray(groups), n))
    fig.tight_layout()
    return Facets(fig, axes, long)


def _means(ax: Axes, samples: list[np.ndarray], positions: list[int]) -> None:
    mean, half = [], []
    for s in samples:
        s = s[np.isfinite(s)]
        mean.append(s.mean() if s.size else np.nan)
        half.append(1.96 * s.std(ddof=1) / np.sqrt(s.size) if s.size > 1 else 0.0)
    ax.errorbar(positions, mean, yerr=half, color="k", marker="o", markersize=4, zorder=4)
