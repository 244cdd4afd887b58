"""Velocities on a regular grid for the grid and streamline figures.

``uns['grid_velocity_<basis>']`` (written by ``dyn.tl.cell_velocities``; ``X_grid`` holds the
two axes, ``V_grid`` is ``(2, ny, nx)``) is used when it matches the request and holds velocities
(dynamo 1.5.3 stores mean positions ``x + dx`` there; such a grid is recomputed). Otherwise the
cells' embedding velocities are averaged onto the grid by the one grid builder,
:func:`dynadask.graph.grid.grid_velocity`, with the figures' settings :data:`PLOT_GRID` (each
cell adds to the grid points within 5 widths; a cut point loses both components; the grid
spans every cell with finite coordinates), so only the small grid arrays reach the driver.
"""

from __future__ import annotations

import warnings
from typing import Any

import anndata as ad
import numpy as np

from .._core.errors import InputError
from ..graph import grid as gg
from . import _data

GRID_OPTIONS = ("smooth", "min_mass")
PLOT_GRID = {"radius": 5.0, "mask": "both", "span": "positions"}
"""How the figures call :func:`dynadask.graph.grid.grid_velocity`."""


def cell_grid(
    emb: Any,
    velocity: Any,
    xy_grid_nums: tuple[int, int],
    *,
    cut_off_velocity: bool = True,
    **grid_kwargs: Any,
) -> tuple[list[np.ndarray], np.ndarray]:
    """``(axes, V_grid)`` averaged from the cells by the grid builder (figure settings)."""
    grid = gg.grid_velocity(
        emb,
        velocity,
        tuple(xy_grid_nums),
        cut_off_velocity=cut_off_velocity,
        **PLOT_GRID,
        **grid_kwargs,
    )
    return list(grid["X_grid"]), grid["V_grid"]


def stored_grid(
    adata: ad.AnnData, basis: str, xy_grid_nums: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return ``(X_grid, V_grid)`` from uns when present and of the requested size."""
    grid = adata.uns.get(f"grid_velocity_{basis}")
    if not isinstance(grid, dict):
        return None
    grid = grid.get("VecFld", grid)  # dynamo nests it under 'VecFld' in some versions
    if "X_grid" not in grid or "V_grid" not in grid:
        return None
    x_grid, v_grid = grid["X_grid"], np.asarray(grid["V_grid"], dtype=np.float64)
    axes = [np.asarray(a, dtype=np.float64) for a in x_grid]
    if v_grid.shape != (2, len(axes[1]), len(axes[0])):
        return None
    if (len(axes[0]), len(axes[1])) != tuple(xy_grid_nums):
        return None
    if holds_positions(axes, v_grid):
        warnings.warn(
            f"uns['grid_velocity_{basis}'] holds mean positions, not velocities "
            "(dynamo 1.5.3 stores x + dx there): the grid is recomputed from obsm",
            stacklevel=3,
        )
        return None
    return axes, v_grid


def holds_positions(axes: list[np.ndarray], v_grid: np.ndarray) -> bool:
    """Whether a stored grid holds the cells' mean positions instead of their velocities.

    dynamo 1.5.3's ``cell_velocities`` averages ``x + dx`` (not ``dx``) onto the grid; such
    values sit within a grid step or so of their grid points, while velocities do not.
    """
    gx, gy = np.meshgrid(axes[0], axes[1])
    ok = np.isfinite(v_grid).all(axis=0)
    if not ok.any():
        return False
    resid = np.hypot(v_grid[0] - gx, v_grid[1] - gy)[ok]
    spread = np.hypot(gx - gx.mean(), gy - gy.mean())[ok]
    return bool(np.median(resid) < 0.25 * np.median(spread))


def velocity_key(adata: ad.AnnData, vector: str, basis: str) -> str:
    """Return the obsm key of the cells' embedding vectors, raising when it is missing.

    Raises
    ------
    KeyError
        With the call that makes the key.
    """
    key = f"{vector}_{basis}"
    if key not in adata.obsm:
        maker = (
            _data.MAKERS["velocity_"].format(basis=basis)
            if vector == "velocity"
            else f"dyn.vf.{vector}(adata, basis={basis!r})"
        )
        raise _data.missing("obsm", key, maker)
    return key


def reusable_grid(
    adata: ad.AnnData,
    *,
    basis: str,
    dims: list[int],
    vector: str,
    cells: np.ndarray | None,
    method: str,
    xy_grid_nums: tuple[int, int],
    cut_off_velocity: bool,
    grid_kwargs: dict[str, Any],
) -> tuple[list[np.ndarray], np.ndarray] | None:
    """The stored grid when it fits the request (default options), else ``None``.

    Raises
    ------
    ValueError
        For an unknown method or grid option.
    """
    if method.lower() != "gaussian":
        raise InputError(
            f"method {method!r}: grid velocities are averaged from the cells "
            "with Gaussian weights, method='gaussian'"
        )
    unknown = set(grid_kwargs) - set(GRID_OPTIONS)
    if unknown:
        raise InputError(f"unknown grid options {sorted(unknown)}: use {list(GRID_OPTIONS)}")
    default = (
        vector == "velocity"
        and cells is None
        and list(dims) == [0, 1]
        and cut_off_velocity
        and not grid_kwargs
    )
    return stored_grid(adata, basis, xy_grid_nums) if default else None
