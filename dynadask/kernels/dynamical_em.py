"""EM fit of the splicing ODE per gene: latent cell times, switching time and rates.

With ``beta = 1`` (time in units of ``1 / beta``), a gene switched on at time 0 from no RNA
with transcription ``alpha`` and switched off at ``t_switch`` follows the closed-form curve of
:func:`dynadask.kernels.dynamical.shape` (``alpha`` times a shape set by ``gamma`` and
``t_switch``). Each cell ``i`` has a latent time on that curve and is observed with Gaussian
noise of per-gene variances ``var_u``, ``var_s``:

    u_i ~ N(u(t_i), var_u),   s_i ~ N(s(t_i), var_s)

The fit maximises this likelihood by alternating

- E-step: each cell's latent time is its projection on the curve in the metric of the noise
  (``(du^2 / var_u + ds^2 / var_s)``; the curve is piecewise linear between grid times);
- M-step: ``alpha`` in closed form for the projected points, ``(gamma, t_switch)`` by a
  pattern search on the weighted squared distance (each trial re-projects the cells), then
  the noise variances as the mean squared residuals.

Several starts per gene (the best distinct points of a coarse grid over ``(gamma,
t_switch)`` and one anchored at the steady-state slope) are run to convergence and the one
with the highest likelihood is kept. The fit also reports how far the curve separates the
cells beyond the noise (``signal``: variance of the fitted points in units of the noise
variances); cells that sit at one point (a gene at steady state) give a curve with no
information on ``gamma``, and the fit then reports the steady-state slope instead.
Everything here works on one gene's cells at a time (numba).
"""

from __future__ import annotations

import numba
import numpy as np

from .dynamical import distance, shape

N_OUT = 9  # alpha, gamma, t_switch, loglik, var_u, var_s, signal, t_min, t_max
COARSE_CELLS = 200  # cells that score the coarse grid of starts
N_STARTS = 3  # grid starts refined (plus the steady-state start)
MIN_SIGNAL = 2.0  # fitted-point variance (noise units) below which the gene is at steady state


@numba.njit(cache=True)
def project(
    u: np.ndarray,
    s: np.ndarray,
    wu: float,
    ws: float,
    gamma: float,
    t_switch: float,
    alpha: float,
    n_grid: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's nearest curve point ``(u, s)`` and its time (``t_switch + tau`` when off).

    The curve is the piecewise-linear interpolation of :func:`shape` scaled by ``alpha``;
    distances are weighted by ``wu``, ``ws`` (inverse noise variances).
    """
    cu, cs = shape(gamma, t_switch, n_grid)
    horizon = 8.0 * max(1.0, 1.0 / gamma)
    times = np.empty(2 * n_grid)
    for j in range(n_grid):
        times[j] = t_switch * j / (n_grid - 1)
        times[n_grid + j] = t_switch + horizon * (j / (n_grid - 1)) ** 2
    n = u.size
    pu, ps, pt = np.empty(n), np.empty(n), np.empty(n)
    for i in range(n):
        best = np.inf
        for j in range(2 * n_grid - 1):
            if j == n_grid - 1:
                continue
            au, as_ = alpha * cu[j], alpha * cs[j]
            du, ds = alpha * (cu[j + 1] - cu[j]), alpha * (cs[j + 1] - cs[j])
            dd = wu * du * du + ws * ds * ds
            lam = 0.0
            if dd > 0:
                lam = (wu * (u[i] - au) * du + ws * (s[i] - as_) * ds) / dd
                lam = min(max(lam, 0.0), 1.0)
            ru, rs = u[i] - au - lam * du, s[i] - as_ - lam * ds
            d = wu * ru * ru + ws * rs * rs
            if d < best:
                best = d
                pu[i], ps[i] = au + lam * du, as_ + lam * ds
                pt[i] = times[j] + lam * (times[j + 1] - times[j])
    return pu, ps, pt


@numba.njit(cache=True)
def _search(u, s, wu, ws, lg, lt, alpha, n_grid, step, min_step):
    """Pattern search in ``(log gamma, log t_switch)``; ``alpha`` re-solved at each trial."""
    moves = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))
    moves2 = ((1.0, 1.0), (-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0))
    f, alpha = distance(u, s, wu, ws, np.exp(lg), np.exp(lt), alpha, n_grid, 2)
    while step >= min_step:
        moved = False
        for k in range(8):
            dg, dt = moves[k] if k < 4 else moves2[k - 4]
            g, t = lg + dg * step, lt + dt * step
            if t > np.log(200.0) or abs(g) > np.log(1e3):
                continue
            fg, ag = distance(u, s, wu, ws, np.exp(g), np.exp(t), alpha, n_grid, 2)
            if fg < f:
                lg, lt, f, alpha, moved = g, t, fg, ag, True
                break
        if not moved:
            step *= 0.5
    return lg, lt, alpha, f


@numba.njit(cache=True)
def _noise(u, s, pu, ps, floor_u, floor_s):
    ru = np.mean((u - pu) ** 2)
    rs = np.mean((s - ps) ** 2)
    return max(ru, floor_u), max(rs, floor_s)


@numba.njit(cache=True)
def _start_alpha(u: np.ndarray, t_switch: float) -> float:
    top = np.sort(u)[int(0.99 * (u.size - 1))]
    return max(top, 1e-12) / (1.0 - np.exp(-min(t_switch, 50.0)))


@numba.njit(cache=True)
def em_gene(
    u: np.ndarray,
    s: np.ndarray,
    lg: float,
    lt: float,
    n_grid: int,
    n_em: int,
) -> tuple[float, float, float, float, float, float]:
    """EM from one start ``(log gamma, log t_switch)``.

    Returns ``log gamma, log t_switch, alpha, loglik`` (mean per cell, Gaussian noise at its
    fitted variances) and the two noise variances.
    """
    vu, vs = np.var(u), np.var(s)
    floor_u, floor_s = 1e-6 * vu, 1e-6 * vs
    var_u, var_s = vu, vs
    alpha = _start_alpha(u, np.exp(lt))
    step = 0.5
    for _ in range(n_em):
        wu, ws = 1.0 / var_u, 1.0 / var_s
        lg, lt, alpha, _ = _search(u, s, wu, ws, lg, lt, alpha, n_grid, step, 0.02)
        pu, ps, _ = project(u, s, wu, ws, np.exp(lg), np.exp(lt), alpha, n_grid)
        new_u, new_s = _noise(u, s, pu, ps, floor_u, floor_s)
        done = abs(np.log(new_u / var_u)) < 0.01 and abs(np.log(new_s / var_s)) < 0.01
        var_u, var_s = new_u, new_s
        step = 0.125
        if done:
            break
    loglik = -0.5 * (np.log(2 * np.pi * var_u) + np.log(2 * np.pi * var_s)) - 1.0
    return lg, lt, alpha, loglik, var_u, var_s


@numba.njit(cache=True)
def _thin(x: np.ndarray, at_most: int) -> np.ndarray:
    return x[:: max(1, x.size // at_most)]


@numba.njit(cache=True)
def _grid_starts(u, s, gamma0, n_grid, n_starts):
    """The ``n_starts`` best local minima of a coarse ``(log gamma, log t_switch)`` grid.

    The grid is scored with the data's spread as the metric.
    """
    cu, cs = _thin(u, COARSE_CELLS), _thin(s, COARSE_CELLS)
    wu, ws = 1.0 / np.var(u), 1.0 / np.var(s)
    ng, nt = 13, 12
    f = np.empty((ng, nt))
    for i in range(ng):
        g = np.log(gamma0) + (i - 6) * 0.5 * np.log(2.0)
        for k in range(nt):
            t = np.log(0.5) + k * 0.5 * np.log(2.0)
            ts = np.exp(t)
            f[i, k], _ = distance(cu, cs, wu, ws, np.exp(g), ts, _start_alpha(cu, ts), n_grid, 1)
    cand = np.empty((ng * nt, 3))
    m = 0
    for i in range(ng):
        for k in range(nt):
            low = True
            for di in range(-1, 2):
                for dk in range(-1, 2):
                    a, b = i + di, k + dk
                    if 0 <= a < ng and 0 <= b < nt and f[a, b] < f[i, k]:
                        low = False
            if low:
                cand[m, 0] = f[i, k]
                cand[m, 1] = np.log(gamma0) + (i - 6) * 0.5 * np.log(2.0)
                cand[m, 2] = np.log(0.5) + k * 0.5 * np.log(2.0)
                m += 1
    order = np.argsort(cand[:m, 0])[:n_starts]
    starts = np.empty((order.size, 2))
    for k in range(order.size):
        starts[k, 0], starts[k, 1] = cand[order[k], 1], cand[order[k], 2]
    return starts


@numba.njit(cache=True)
def fit_gene(u: np.ndarray, s: np.ndarray, gamma0: float, n_grid: int, n_em: int) -> np.ndarray:
    """Fit one gene from several starts; the ``N_OUT`` values of :func:`fit_genes`."""
    out = np.full(N_OUT, np.nan)
    if u.size < 10 or not (np.var(u) > 0 and np.var(s) > 0):
        return out
    if not (gamma0 > 0 and np.isfinite(gamma0)):
        gamma0 = np.mean(u) / max(np.mean(s), 1e-12)
    starts = _grid_starts(u, s, gamma0, n_grid, N_STARTS)
    best = -np.inf
    for k in range(starts.shape[0] + 1):
        lg, lt = np.log(gamma0), np.log(16.0)
        if k < starts.shape[0]:
            lg, lt = starts[k, 0], starts[k, 1]
        lg, lt, alpha, ll, var_u, var_s = em_gene(u, s, lg, lt, n_grid, n_em)
        if ll > best:
            best = ll
            out[0], out[1], out[2], out[3] = alpha, np.exp(lg), np.exp(lt), ll
            out[4], out[5] = var_u, var_s
    gamma, ts, alpha = out[1], out[2], out[0]
    pu, ps, pt = project(u, s, 1.0 / out[4], 1.0 / out[5], gamma, ts, alpha, n_grid)
    out[6] = 0.5 * (np.var(pu) / out[4] + np.var(ps) / out[5])
    out[7], out[8] = np.min(pt), np.max(pt)
    return out


@numba.njit(cache=True)
def fit_genes(
    u: np.ndarray, s: np.ndarray, gamma0: np.ndarray, n_grid: int = 24, n_em: int = 4
) -> np.ndarray:
    """:func:`fit_gene` for every column: ``N_OUT x genes``.

    Rows: ``alpha, gamma, t_switch, loglik`` (mean per cell), ``var_u, var_s`` (noise
    variances), ``signal`` (variance of the fitted points over the noise variances, averaged
    over ``u`` and ``s``), ``t_min``, ``t_max`` (earliest and latest latent times of the
    cells).
    """
    out = np.full((N_OUT, u.shape[1]), np.nan)
    for j in range(u.shape[1]):
        uj = np.ascontiguousarray(u[:, j])
        sj = np.ascontiguousarray(s[:, j])
        keep = np.isfinite(uj) & np.isfinite(sj)
        out[:, j] = fit_gene(uj[keep], sj[keep], gamma0[j], n_grid, n_em)
    return out


@numba.njit(cache=True)
def gene_times(
    u: np.ndarray,
    s: np.ndarray,
    alpha: np.ndarray,
    gamma: np.ndarray,
    t_switch: np.ndarray,
    var_u: np.ndarray,
    var_s: np.ndarray,
    n_grid: int = 24,
) -> np.ndarray:
    """Latent time of every cell (rows) for every gene (columns) on its fitted curve."""
    out = np.full(u.shape, np.nan)
    for j in range(u.shape[1]):
        if not (np.isfinite(gamma[j]) and np.isfinite(alpha[j]) and var_u[j] > 0):
            continue
        uj = np.ascontiguousarray(u[:, j])
        sj = np.ascontiguousarray(s[:, j])
        _, _, pt = project(
            uj, sj, 1.0 / var_u[j], 1.0 / var_s[j], gamma[j], t_switch[j], alpha[j], n_grid
        )
        out[:, j] = pt
    return out
