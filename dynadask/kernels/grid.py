"""Finishing Gaussian grid averages of velocities (pure numpy, any grid shape).

The per-block partial sums come from :func:`dynadask.kernels.embedding.grid_sums` (they add
over row blocks); this turns their total into grid velocities with dynamo's cut-offs.
"""

from __future__ import annotations

import numpy as np


def grid_velocity(
    sums: np.ndarray,
    shape: tuple[int, int],
    min_mass: float | None = None,
    cut_percentile: float = 5.0,
) -> np.ndarray:
    """Grid velocities ``(2, ny, nx)`` from summed Gaussian weights.

    ``V = sum w v / max(1, sum w)`` per grid point (x varying fastest in ``sums``). Points whose
    velocity norm is below ``min_mass`` (default ``1e-5``; never above 0.9 of the largest
    norm) or whose weighted mean absolute velocity is in the lowest ``cut_percentile``
    percent are NaN (both components). ``min_mass=0`` and ``cut_percentile=0`` keep all.

    Parameters
    ----------
    sums
        ``(nx * ny, 7)`` totals: ``sum w``, ``sum w v`` (2), ``sum w |v|``, second moments.
    shape
        ``(nx, ny)``.
    min_mass, cut_percentile
        The two cut-offs.

    Returns
    -------
    numpy.ndarray
        ``(2, ny, nx)`` float64.
    """
    nx, ny = shape
    mass = sums[:, 0]
    v = (sums[:, 1:3] / np.maximum(1.0, mass)[:, None]).T.reshape(2, ny, nx).copy()
    norm = np.sqrt((v**2).sum(0))
    threshold = min(1e-5 if min_mass is None else min_mass, norm.max() * 0.9)
    cut = norm < threshold
    if cut_percentile > 0:
        safe = np.where(mass > 0, mass, 1.0)
        length = (sums[:, 3] / safe).reshape(ny, nx)
        cut |= length < np.percentile(length, cut_percentile)
    v[:, cut] = np.nan
    return v


def grid_sums_local(
    x: np.ndarray, v: np.ndarray, axes: list[np.ndarray], scale: float, radius: float = 5.0
) -> np.ndarray:
    """Gaussian-weighted sums of one block's vectors at the grid points near each cell.

    The same sums as :func:`dynadask.kernels.embedding.grid_sums` (weight ``N(d; 0, scale)``
    of the distance ``d`` from cell to grid point; per point ``sum w``, ``sum w v``,
    ``sum w (|v_x| + |v_y|)``, ``sum w v_x^2``, ``sum w v_y^2``, ``sum w v_x v_y``) but only
    over pairs with ``d <= radius * scale``: each cell touches a fixed window of grid points,
    so the cost is linear in cells and independent of the grid size. Rows with non-finite
    values are skipped; partial sums add over row blocks.

    Parameters
    ----------
    x, v
        ``(n, >=2)`` positions and vectors (first two columns used).
    axes
        Evenly spaced grid coordinates along x and along y.
    scale
        Gaussian width.
    radius
        Cut-off in units of ``scale`` (5 drops weights below ``exp(-12.5)`` of the peak).

    Returns
    -------
    numpy.ndarray
        ``(len(axes[1]) * len(axes[0]), 7)`` float64, x varying fastest.
    """
    x = np.asarray(x, dtype=np.float64)[:, :2]
    v = np.asarray(v, dtype=np.float64)[:, :2]
    ok = np.isfinite(x).all(axis=1) & np.isfinite(v).all(axis=1)
    x, v = x[ok], v[ok]
    nx, ny = len(axes[0]), len(axes[1])
    feats = np.column_stack(
        [np.ones(len(v)), v, np.abs(v).sum(1), v[:, 0] ** 2, v[:, 1] ** 2, v[:, 0] * v[:, 1]]
    )
    out = np.zeros((nx * ny, 7))
    near, reach = [], []
    for d, ax in enumerate(axes):
        step = float(ax[1] - ax[0]) if len(ax) > 1 and ax[1] > ax[0] else np.inf
        near.append(
            np.rint((x[:, d] - ax[0]) / step).astype(np.int64)
            if np.isfinite(step)
            else np.zeros(len(x), dtype=np.int64)
        )
        reach.append(int(np.ceil(radius * scale / step + 0.5)) if np.isfinite(step) else 0)
    for di in range(-reach[0], reach[0] + 1):
        for dj in range(-reach[1], reach[1] + 1):
            _add_offset(out, x, feats, near[0] + di, near[1] + dj, axes, scale, radius)
    return out


def _add_offset(
    out: np.ndarray,
    x: np.ndarray,
    feats: np.ndarray,
    gi: np.ndarray,
    gj: np.ndarray,
    axes: list[np.ndarray],
    scale: float,
    radius: float,
) -> None:
    nx, ny = len(axes[0]), len(axes[1])
    inside = (gi >= 0) & (gi < nx) & (gj >= 0) & (gj < ny)
    gi, gj = gi[inside], gj[inside]
    d2 = (axes[0][gi] - x[inside, 0]) ** 2 + (axes[1][gj] - x[inside, 1]) ** 2
    w = np.exp(-0.5 * d2 / scale**2) / (scale * np.sqrt(2 * np.pi))
    w[d2 > (radius * scale) ** 2] = 0.0
    idx = gj * nx + gi
    for k in range(feats.shape[1]):
        out[:, k] += np.bincount(idx, weights=w * feats[inside, k], minlength=nx * ny)
