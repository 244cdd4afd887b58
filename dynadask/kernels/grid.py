"""Gaussian grid averages of vectors (velocities) over an embedding, one block at a time.

A grid of ``nx x ny`` points spans the cells' first two coordinates. Each row block adds,
per grid point, Gaussian-weighted sums of its cells' vectors (:func:`grid_sums`, all pairs or
only the grid points near each cell); the sums add over row blocks, and :func:`finish_grid`
turns their total into grid velocities with dynamo's cut-offs. Pure numpy, float64 sums.
"""

from __future__ import annotations

import numpy as np

N_SUMS = 7
"""Sums per grid point: ``w``, ``w v_x``, ``w v_y``, ``w (|v_x| + |v_y|)``, second moments."""


def finite_range(e: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
    """``[min, max]`` per column of ``e`` over its finite rows (where ``v`` is finite too).

    The result keeps ``e``'s floating dtype; all-NaN when no row qualifies.
    """
    e = np.asarray(e)
    e = e if np.issubdtype(e.dtype, np.floating) else e.astype(np.float64)
    ok = np.isfinite(e).all(axis=1)
    if v is not None:
        ok &= np.isfinite(np.asarray(v, dtype=np.float64)).all(axis=1)
    if not ok.any():
        return np.full((2, e.shape[1]), np.nan)
    return np.stack([e[ok].min(axis=0), e[ok].max(axis=0)])


def grid_axes(lo: np.ndarray, hi: np.ndarray, n_grid: tuple[int, int]) -> list[np.ndarray]:
    """Grid coordinates along each axis: the data range widened by 1% on each side."""
    axes = []
    for m, big, num in zip(lo, hi, n_grid, strict=True):
        pad = 0.01 * abs(big - m)
        axes.append(np.linspace(m - pad, big + pad, num))
    return axes


def grid_points(axes: list[np.ndarray]) -> np.ndarray:
    """All grid points, x varying fastest: ``(len(axes[1]) * len(axes[0]), 2)``."""
    gx, gy = np.meshgrid(axes[0], axes[1])
    return np.column_stack([gx.ravel(), gy.ravel()])


def _features(v: np.ndarray) -> np.ndarray:
    return np.column_stack(
        [np.ones(len(v)), v, np.abs(v).sum(1), v[:, 0] ** 2, v[:, 1] ** 2, v[:, 0] * v[:, 1]]
    )


def _finite_pairs(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)[:, :2]
    v = np.asarray(v, dtype=np.float64)[:, :2]
    ok = np.isfinite(x).all(axis=1) & np.isfinite(v).all(axis=1)
    return x[ok], v[ok]


def grid_sums(
    x: np.ndarray,
    v: np.ndarray,
    axes: list[np.ndarray],
    scale: float,
    radius: float | None = None,
) -> np.ndarray:
    """Gaussian-weighted sums of one block's vectors at the grid points.

    For each grid point ``g`` and cell ``j`` with weight ``w = N(|x_j - g|; 0, scale)`` (normal
    density), per point: ``sum w``, ``sum w v`` (2), ``sum w (|v_x| + |v_y|)``, ``sum w v_x^2``,
    ``sum w v_y^2``, ``sum w v_x v_y``. Rows with non-finite values are skipped; the partial
    sums add over row blocks.

    Parameters
    ----------
    x, v
        ``(n, >=2)`` positions and vectors (first two columns used).
    axes
        Evenly spaced grid coordinates along x and along y.
    scale
        Gaussian width.
    radius
        ``None``: every cell-point pair. Otherwise only pairs with ``d <= radius * scale``:
        each cell touches a fixed window of grid points, so the cost is linear in cells and
        independent of the grid size (5 drops weights below ``exp(-12.5)`` of the peak).

    Returns
    -------
    numpy.ndarray
        ``(len(axes[1]) * len(axes[0]), 7)`` float64, x varying fastest.
    """
    x, v = _finite_pairs(x, v)
    if radius is None:
        return _all_pairs(x, v, axes, scale)
    return _near_pairs(x, v, axes, scale, radius)


def _all_pairs(x: np.ndarray, v: np.ndarray, axes: list[np.ndarray], scale: float) -> np.ndarray:
    # the Gaussian of a 2-D distance is the product of one Gaussian per axis, so a cell's
    # weights at the nx x ny points are an outer product of nx and ny values; per feature the
    # sums are ``Ey^T (Ex * f)``, one matrix product over the block's cells
    nx, ny = len(axes[0]), len(axes[1])
    out = np.zeros((ny, nx * N_SUMS))
    norm = 1.0 / (scale * np.sqrt(2 * np.pi))
    step = max(1, 4_000_000 // max(nx * N_SUMS, 1))
    for s in range(0, x.shape[0], step):
        xs = x[s : s + step]
        ex = np.exp(-0.5 * ((xs[:, 0:1] - axes[0][None, :]) / scale) ** 2)
        ey = np.exp(-0.5 * ((xs[:, 1:2] - axes[1][None, :]) / scale) ** 2) * norm
        wf = ex[:, :, None] * _features(v[s : s + step])[:, None, :]
        out += ey.T @ wf.reshape(len(xs), nx * N_SUMS)
    return out.reshape(ny * nx, N_SUMS)


def _near_pairs(
    x: np.ndarray, v: np.ndarray, axes: list[np.ndarray], scale: float, radius: float
) -> np.ndarray:
    nx, ny = len(axes[0]), len(axes[1])
    feats = _features(v)
    out = np.zeros((nx * ny, N_SUMS))
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


def finish_grid(
    sums: np.ndarray,
    axes: list[np.ndarray],
    min_mass: float | None = None,
    cut_percentile: float = 5.0,
    mask: str = "first",
) -> dict[str, np.ndarray]:
    """Grid velocities from the summed Gaussian weights (streamline layout).

    ``V = sum w v / max(1, sum w)`` per grid point. Points whose velocity norm is below
    ``min_mass`` (default ``1e-5``; never above 0.9 of the largest norm) or whose weighted
    mean absolute velocity is in the lowest ``cut_percentile`` percent are NaN: in the first
    component only (``mask='first'``, dynamo's ``cell_velocities``) or in both
    (``mask='both'``). ``min_mass=0`` and ``cut_percentile=0`` keep all points. ``D`` is half
    the weighted covariance of the vectors around each point.

    Parameters
    ----------
    sums
        ``(nx * ny, 7)`` totals of :func:`grid_sums`.
    axes
        The grid coordinates along x and y.
    min_mass, cut_percentile
        The two cut-offs.
    mask
        ``'first'`` or ``'both'``: the components a cut point loses.

    Returns
    -------
    dict
        ``X_grid`` ``(2, nx)`` (the axes; a list of the two when ``nx != ny``), ``V_grid``
        ``(2, ny, nx)`` float64 and ``D`` ``(n_points, 2, 2)``.
    """
    mass = sums[:, 0]
    safe = np.where(mass > 0, mass, 1.0)
    ny, nx = len(axes[1]), len(axes[0])
    vg = (sums[:, 1:3] / np.maximum(1.0, mass)[:, None]).T.reshape(2, ny, nx).copy()
    norm = np.sqrt((vg**2).sum(0))
    cut = norm < min(1e-5 if min_mass is None else min_mass, norm.max() * 0.9)
    if cut_percentile > 0:
        length = (sums[:, 3] / safe).reshape(ny, nx)
        cut |= length < np.percentile(length, cut_percentile)
    if mask == "both":
        vg[:, cut] = np.nan
    else:
        vg[0][cut] = np.nan
    x_grid = np.stack(axes) if nx == ny else [np.asarray(ax) for ax in axes]
    return {"X_grid": x_grid, "V_grid": vg, "D": _diffusion(sums, safe)}


def _diffusion(sums: np.ndarray, safe: np.ndarray) -> np.ndarray:
    mx, my = sums[:, 1] / safe, sums[:, 2] / safe
    diffusion = np.empty((len(safe), 2, 2))
    diffusion[:, 0, 0] = (sums[:, 4] / safe - mx**2) / 2
    diffusion[:, 1, 1] = (sums[:, 5] / safe - my**2) / 2
    diffusion[:, 0, 1] = diffusion[:, 1, 0] = (sums[:, 6] / safe - mx * my) / 2
    return diffusion
