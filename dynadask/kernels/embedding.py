"""Embedding-side kernels for one block of cells: velocity projection, drift, grids, scores.

Pure numpy/numba on one block; accumulation in float64.
"""

from __future__ import annotations

import numba
import numpy as np


def project_transitions(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    rows: np.ndarray,
    emb: np.ndarray,
    correct_density: bool = True,
) -> np.ndarray:
    """Embedding velocity of each row from its transition weights.

    ``u_i = sum_j T_ij e_ij - mean_j(T_ij) sum_j e_ij`` over the stored neighbours ``j`` of row
    ``i``, where ``e_ij`` is the unit vector from cell ``i`` to cell ``j`` in the embedding (a
    zero vector for coinciding cells). The second term (with ``correct_density``) removes
    the drift that uniform weights would give. Rows without neighbours get 0.

    Parameters
    ----------
    indptr, indices, data
        CSR arrays of a row block of the transition matrix (global column indices).
    rows
        Global indices of the block's cells.
    emb
        ``(n_cells, n_dims)`` embedding of all cells.
    correct_density
        Subtract the uniform-weight drift.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_dims)`` float64.
    """
    return _project(
        indptr,
        indices,
        data.astype(np.float64),
        rows,
        np.asarray(emb, dtype=np.float64),
        correct_density,
    )


@numba.njit(cache=True)
def _project(indptr, indices, data, rows, emb, correct_density):
    n, dim = indptr.shape[0] - 1, emb.shape[1]
    out = np.zeros((n, dim))
    for i in range(n):
        a, b = indptr[i], indptr[i + 1]
        if b == a:
            continue
        e_sum = np.zeros(dim)
        w_sum = 0.0
        for t in range(a, b):
            e = emb[indices[t]] - emb[rows[i]]
            norm = np.sqrt((e * e).sum())
            if norm > 0:
                e = e / norm
            else:
                e = e * 0.0
            out[i] += data[t] * e
            e_sum += e
            w_sum += data[t]
        if correct_density:
            out[i] -= w_sum / (b - a) * e_sum
    return out


def ito_drift(
    p: np.ndarray,
    ptr: np.ndarray,
    nbr_global: np.ndarray,
    rows: np.ndarray,
    emb: np.ndarray,
    correct_density: bool = True,
) -> np.ndarray:
    """Drift of the Itô kernel in an embedding, for one block (before global scaling).

    With ``correct_density``: ``u_i = D_i^T (p_i - mean(p_i))`` where ``D_i`` holds the
    displacements ``e_j - e_i`` to all candidates (the cell itself included) divided by their
    matrix 1-norm (largest column sum of absolute values); otherwise ``u_i = D_i^T p_i`` with
    raw displacements.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, n_dims)`` float64.
    """
    return _drift(
        np.asarray(p, dtype=np.float64),
        ptr,
        nbr_global,
        rows,
        np.asarray(emb, dtype=np.float64),
        correct_density,
    )


@numba.njit(cache=True)
def _drift(p, ptr, nbr_global, rows, emb, correct_density):
    n, dim = ptr.shape[0] - 1, emb.shape[1]
    out = np.zeros((n, dim))
    for i in range(n):
        a, b = ptr[i], ptr[i + 1]
        d = emb[nbr_global[a:b]] - emb[rows[i]]
        w = p[a:b].copy()
        if correct_density:
            norm1 = np.abs(d).sum(axis=0).max()
            if norm1 > 0:
                d = d / norm1
            w -= w.mean()
        for t in range(b - a):
            out[i] += w[t] * d[t]
    return out


def finite_range(e: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``[min, max]`` per column of ``e`` over the rows where ``e`` and ``v`` are finite."""
    e = np.asarray(e, dtype=np.float64)
    ok = np.isfinite(e).all(axis=1) & np.isfinite(np.asarray(v, dtype=np.float64)).all(axis=1)
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


def grid_sums(x: np.ndarray, v: np.ndarray, points: np.ndarray, scale: float) -> np.ndarray:
    """Gaussian-weighted sums of one block's velocities at grid points.

    For each grid point ``g`` and cell ``j`` with weight ``w = N(|x_j - g|; 0, scale)`` (normal
    density), returns per point: ``sum w``, ``sum w v`` (2), ``sum w |v|`` (mean absolute
    components summed, 1), ``sum w v v^T`` (3: xx, yy, xy). Rows with non-finite values are
    skipped.

    Returns
    -------
    numpy.ndarray
        ``(n_points, 7)`` float64 partial sums (add them over blocks).
    """
    x = np.asarray(x, dtype=np.float64)[:, :2]
    v = np.asarray(v, dtype=np.float64)[:, :2]
    ok = np.isfinite(x).all(axis=1) & np.isfinite(v).all(axis=1)
    x, v = x[ok], v[ok]
    out = np.zeros((points.shape[0], 7))
    step = max(1, 2_000_000 // max(points.shape[0], 1))
    for s in range(0, x.shape[0], step):
        xs, vs = x[s : s + step], v[s : s + step]
        d2 = ((points[:, None, :] - xs[None, :, :]) ** 2).sum(-1)
        w = np.exp(-0.5 * d2 / scale**2) / (scale * np.sqrt(2 * np.pi))
        feats = np.column_stack(
            [
                np.ones(len(vs)),
                vs,
                np.abs(vs).sum(1),
                vs[:, 0] ** 2,
                vs[:, 1] ** 2,
                vs[:, 0] * vs[:, 1],
            ]
        )
        out += w @ feats
    return out


def finish_grid(
    sums: np.ndarray,
    axes: list[np.ndarray],
    min_mass: float | None = None,
    cut_percentile: float = 5.0,
) -> dict[str, np.ndarray]:
    """Grid velocities from the summed Gaussian weights (streamline layout).

    ``V = sum w v / max(1, sum w)``; points whose velocity norm is below ``min_mass`` (default
    ``min(1e-5, 0.9 max norm)``) or whose weighted mean absolute velocity is in the lowest
    ``cut_percentile`` percent get NaN in the first component. ``D`` is half the weighted
    covariance of the velocities around each point.

    Returns
    -------
    dict
        ``X_grid`` ``(2, nx)`` (the axes), ``V_grid`` ``(2, ny, nx)`` and ``D``
        ``(n_points, 2, 2)``.
    """
    mass = sums[:, 0]
    v_grid = sums[:, 1:3] / np.maximum(1.0, mass)[:, None]
    safe = np.where(mass > 0, mass, 1.0)
    mx, my = sums[:, 1] / safe, sums[:, 2] / safe
    diffusion = np.empty((len(mass), 2, 2))
    diffusion[:, 0, 0] = (sums[:, 4] / safe - mx**2) / 2
    diffusion[:, 1, 1] = (sums[:, 5] / safe - my**2) / 2
    diffusion[:, 0, 1] = diffusion[:, 1, 0] = (sums[:, 6] / safe - mx * my) / 2
    ny, nx = len(axes[1]), len(axes[0])
    vg = v_grid.T.reshape(2, ny, nx)
    norm = np.sqrt((vg**2).sum(0))
    cutoff = norm < np.clip(1e-5 if min_mass is None else min_mass, None, norm.max() * 0.9)
    length = (sums[:, 3] / safe).reshape(ny, nx)
    cutoff |= length < np.percentile(length, cut_percentile)
    vg[0][cutoff] = np.nan
    return {"X_grid": np.stack(axes), "V_grid": vg, "D": diffusion}


def direction_scores(
    v: np.ndarray, emb_self: np.ndarray, emb_nbr: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Mean cosine between each cell's velocity and its displacements to chosen neighbours.

    Parameters
    ----------
    v, emb_self
        ``(n, d)`` velocity and position of each cell.
    emb_nbr
        ``(n, k, d)`` positions of each cell's neighbours.
    valid
        ``(n, k)`` which neighbours count (e.g. those in the target cluster).

    Returns
    -------
    numpy.ndarray
        Per-cell mean cosine over valid neighbours (NaN when there is none).
    """
    d = emb_nbr - emb_self[:, None, :]
    dn = np.linalg.norm(d, axis=2)
    vn = np.linalg.norm(v, axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (d * v[:, None, :]).sum(2) / (dn * vn)
    cos = np.where(valid & np.isfinite(cos), cos, 0.0)
    cnt = valid.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, cos.sum(1) / cnt, np.nan)


def projection_parts(
    w: np.ndarray, ptr: np.ndarray, nbr_global: np.ndarray, rows: np.ndarray, emb: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-cell sums from which the embedding velocity follows once weights are normalised.

    With unit vectors ``e_ij`` as in :func:`project_transitions`, over the candidates with a
    nonzero weight: ``a = sum w e``, ``c = sum e`` (``(n_rows, n_dims)``), ``w_sum = sum w``,
    ``abs_sum = sum |w|`` and ``count``. See :func:`finish_projection`.

    Returns
    -------
    dict
        The arrays above, float64.
    """
    a, c, sums = _parts(
        np.asarray(w, dtype=np.float64), ptr, nbr_global, rows, np.asarray(emb, dtype=np.float64)
    )
    return {"a": a, "c": c, "w_sum": sums[:, 0], "abs_sum": sums[:, 1], "count": sums[:, 2]}


@numba.njit(cache=True)
def _parts(w, ptr, nbr_global, rows, emb):
    n, dim = ptr.shape[0] - 1, emb.shape[1]
    a, c, sums = np.zeros((n, dim)), np.zeros((n, dim)), np.zeros((n, 3))
    for i in range(n):
        for t in range(ptr[i], ptr[i + 1]):
            if w[t] == 0:
                continue
            e = emb[nbr_global[t]] - emb[rows[i]]
            norm = np.sqrt((e * e).sum())
            e = e / norm if norm > 0 else e * 0.0
            a[i] += w[t] * e
            c[i] += e
            sums[i, 0] += w[t]
            sums[i, 1] += abs(w[t])
            sums[i, 2] += 1
    return a, c, sums


def finish_projection(
    parts: dict[str, np.ndarray], stay: np.ndarray, correct_density: bool = True
) -> np.ndarray:
    """Embedding velocity from :func:`projection_parts` and each cell's self weight.

    The normalised weights are ``w / (abs_sum + stay)``; the result equals
    :func:`project_transitions` on the normalised transition matrix.
    """
    total = parts["abs_sum"] + np.abs(stay)
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    out = parts["a"] * scale[:, None]
    if correct_density:
        mean_w = np.divide(
            parts["w_sum"] * scale,
            parts["count"],
            out=np.zeros_like(total),
            where=parts["count"] > 0,
        )
        out -= mean_w[:, None] * parts["c"]
    return out
