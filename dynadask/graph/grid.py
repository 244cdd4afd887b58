"""Dask graph of Gaussian grid velocities: one pass for the grid's span, one summed pass.

Used by ``dyn.tl.cell_velocities`` (``uns['grid_velocity_<basis>']``) and by the grid and
streamline figures of ``dyn.pl``. Each row block adds its cells' Gaussian-weighted sums at
the grid points (:func:`dynadask.kernels.grid.grid_sums`); the sums are added over blocks as
a tree (:func:`dynadask.graph.blocks.sum_rows`), so only the small grid reaches the driver.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError
from ..kernels import grid as kg
from .blocks import align_rows, sum_rows

SPANS = ("vectors", "positions")
"""Cells the grid spans: finite position and vector, or finite position only."""


def grid_velocity(
    emb: Any,
    velocity: Any,
    xy_grid_nums: tuple[int, int] = (50, 50),
    *,
    smooth: float = 0.5,
    min_mass: float | None = None,
    cut_off_velocity: bool = True,
    radius: float | None = None,
    mask: str = "first",
    span: str = "vectors",
) -> dict[str, np.ndarray]:
    """Vectors averaged on a regular grid over the first two embedding dimensions.

    Each grid point averages the cells' vectors with Gaussian weights of width ``smooth``
    times the mean grid step (a sum over row blocks of all cells, so it is exact in any
    chunking); see :func:`dynadask.kernels.grid.finish_grid` for the masking.

    Parameters
    ----------
    emb, velocity
        ``(n, >=2)`` positions and vectors (numpy or Dask; first two columns used).
    xy_grid_nums
        Grid points along x and y.
    smooth
        Gaussian width in grid steps.
    min_mass
        Norm cut-off (default ``1e-5``).
    cut_off_velocity
        Apply the cut-offs; ``False`` keeps every grid point.
    radius
        ``None``: sum over all cell-point pairs (``dyn.tl.cell_velocities``); else only over
        grid points within ``radius`` widths of each cell (the figures use 5).
    mask
        ``'first'`` (dynamo's ``cell_velocities``: NaN in the first component) or ``'both'``.
    span
        ``'vectors'``: the grid spans the cells with a finite position and vector;
        ``'positions'``: those with a finite position (range in the embedding's dtype).

    Returns
    -------
    dict
        ``X_grid`` ``(2, nx)``, ``V_grid`` ``(2, ny, nx)``, ``D`` ``(nx * ny, 2, 2)``.

    Raises
    ------
    ValueError
        When no cell has finite coordinates, or for an unknown ``span``.
    """
    if span not in SPANS:
        raise InputError(f"unknown span {span!r}: use one of {list(SPANS)}")
    e, v = _first_two(emb), _first_two(velocity)
    lazy = isinstance(e, da.Array) or isinstance(v, da.Array)
    er, vr = align_rows(e, v)
    # both passes read the same aligned blocks, so every key means the same task in the two
    # computes (a Dask reduction would give the same keys other task specs)
    if span == "vectors":
        lo, hi = _span(er, vr) if lazy else _span_of(kg.finite_range(e, v))
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    else:
        lo, hi = _span(er, None) if lazy else _span_of(kg.finite_range(e))
        if not np.isfinite(lo).all():
            raise InputError("the embedding has no finite coordinates to put a grid on")
    axes = kg.grid_axes(lo, hi, tuple(xy_grid_nums))
    scale = float(np.mean([ax[1] - ax[0] for ax in axes])) * smooth
    sums = compute(
        sum_rows(kg.grid_sums, er, vr, axes=axes, scale=scale, radius=radius),
        desc="grid velocity",
    )[0]
    if cut_off_velocity:
        return kg.finish_grid(sums, axes, min_mass=min_mass, mask=mask)
    return kg.finish_grid(sums, axes, min_mass=0.0, cut_percentile=0.0, mask=mask)


def _span(e: da.Array, v: da.Array | None) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest coordinates over the qualifying cells, one task per row block."""
    eb = e.to_delayed().ravel()
    vb = [None] * len(eb) if v is None else v.to_delayed().ravel()
    ranges = [dask.delayed(kg.finite_range)(a, b) for a, b in zip(eb, vb, strict=True)]
    return _span_of(*compute(*ranges, desc="grid range"))


def _span_of(*ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    parts = np.array(ranges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no finite cell: NaN, checked after
        return np.nanmin(parts[:, 0], axis=0), np.nanmax(parts[:, 1], axis=0)


def _first_two(x: Any) -> Any:
    return x[:, :2] if isinstance(x, da.Array) else np.asarray(x)[:, :2]
