"""Refit of the splicing ODE per gene with every cell's time fixed to a time shared by genes.

The EM of :mod:`dynadask.kernels.dynamical_em` gives every gene its own latent time per
cell. Where a gene's cells stay where ``gamma s`` is small against ``u`` (an induction
caught early), curves with very different ``gamma`` pass through the same cells at other
latent times, so the gene alone does not determine ``gamma``. All genes of a data set share
the cells' times, though: once the cells' time is known from the genes together, the speed
at which a gene's ``s`` grows against its ``u`` along that time fixes ``gamma``.

Here a cell's shared time ``T`` is given (about 0 to 1), and gene ``g`` runs on its own clock
``tau = k T + b`` (``k`` its speed: ``beta`` times the unit of ``T``; ``b`` its clock at
``T = 0``; ``tau`` below 0 means the gene has not been switched on). With ``beta = 1`` in
``tau``, the gene's mean is ``alpha`` times the closed-form shape of
:mod:`dynadask.kernels.dynamical` at ``tau`` (``gamma`` and ``t_switch`` in units of
``1 / beta``, as the EM reports them: ``gamma / beta`` does not depend on the unit of
``T``). The fit minimises the squared residuals of ``u`` and ``s`` weighted by the gene's noise
variances (given: the EM's, or those a previous refit left, :func:`residual_variances`),
``alpha`` in closed form, by a pattern search over
``(log k, b, log gamma, log t_switch)`` from several starts. Everything here works on one
gene's cells at a time (numba).
"""

from __future__ import annotations

import numba
import numpy as np

from .dynamical import off_phase, on_phase
from .dynamical_em import project

N_OUT = 7  # alpha, gamma, t_switch, k, b, loglik, sse
SEARCH_CELLS = 600  # cells the starts run on (the best is refined on all)
GAMMA_STARTS = (1.0, 0.25, 4.0)  # factors on the start gamma (the EM's or the last round's)
T_SWITCH_MAX = 200.0
VAR_FLOOR = 1e-4  # noise variance kept above this share of the gene's variance over the cells
# accepted moves per pattern search: a guard, not a tuning (on four 1,500 x 60 regime sets
# the starts took a median of 11-37 moves and at most about 1,000)
MAX_MOVES = 5000


@numba.njit(cache=True, nogil=True)
def _switch_off(gamma: float, t_switch: float) -> tuple[float, float, float]:
    """The switch-off time (capped) and the unit-``alpha`` means ``(u, s)`` there."""
    ts = min(t_switch, 1e3)
    us, ss = on_phase(ts, gamma)
    return ts, us, ss


@numba.njit(cache=True, nogil=True)
def _point(t: float, gamma: float, ts: float, us: float, ss: float) -> tuple[float, float]:
    """Unit-``alpha`` means ``(u, s)`` at gene time ``t`` (``ts, us, ss``: :func:`_switch_off`)."""
    if t <= 0:
        return 0.0, 0.0
    if t <= ts:
        return on_phase(t, gamma)
    return off_phase(t - ts, gamma, us, ss)


@numba.njit(cache=True, nogil=True)
def unit_curve(tau: np.ndarray, gamma: float, t_switch: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit-``alpha`` means ``(u, s)`` at gene times ``tau`` (0 before the switch-on)."""
    n = tau.size
    cu, cs = np.empty(n), np.empty(n)
    ts, us, ss = _switch_off(gamma, t_switch)
    for i in range(n):
        cu[i], cs[i] = _point(tau[i], gamma, ts, us, ss)
    return cu, cs


@numba.njit(cache=True, nogil=True)
def _sse(u, s, time, wu, ws, x):
    """Weighted squared residuals at ``x = (log k, b, log gamma, log t_switch)``; best alpha.

    One pass computes the curve at every cell and the sums that give ``alpha``, a second the
    residuals (the pattern searches call this for every trial: no temporary arrays but the
    curve's two).
    """
    n = u.size
    k, b, gamma = np.exp(x[0]), x[1], np.exp(x[2])
    ts, us, ss = _switch_off(gamma, np.exp(x[3]))
    cu, cs = np.empty(n), np.empty(n)
    num, den = 0.0, 0.0
    for i in range(n):
        a, c = _point(k * time[i] + b, gamma, ts, us, ss)
        cu[i], cs[i] = a, c
        num += wu * u[i] * a + ws * s[i] * c
        den += wu * a * a + ws * c * c
    alpha = num / den if den > 0 else 0.0
    alpha = max(alpha, 0.0)
    f = 0.0
    for i in range(n):
        ru, rs = u[i] - alpha * cu[i], s[i] - alpha * cs[i]
        f += wu * ru * ru + ws * rs * rs
    return f, alpha


@numba.njit(cache=True, nogil=True)
def _inside(x) -> bool:
    return (
        abs(x[0]) < np.log(1e3)
        and -50.0 < x[1] < T_SWITCH_MAX
        and abs(x[2]) < np.log(1e3)
        and np.log(0.01) < x[3] < np.log(T_SWITCH_MAX)
    )


@numba.njit(cache=True, nogil=True)
def _search(u, s, time, wu, ws, x, step, min_step):
    """Pattern search: steps along each axis (``b`` in steps of ``max(k, 1)`` times the step).

    At most ``MAX_MOVES`` moves are accepted. The floor on ``b``'s step: a clock slowed
    towards ``k``'s lower bound (a gene flat in the shared time) would otherwise walk ``b``
    in steps of a thousandth (seconds per gene).
    """
    f, alpha = _sse(u, s, time, wu, ws, x)
    accepted = 0
    while step >= min_step and accepted < MAX_MOVES:
        moved = False
        for axis in range(4):
            for sign in (1.0, -1.0):
                y = x.copy()
                y[axis] += sign * step * (max(np.exp(x[0]), 1.0) if axis == 1 else 1.0)
                if not _inside(y):
                    continue
                fy, ay = _sse(u, s, time, wu, ws, y)
                if fy < f:
                    x, f, alpha, moved = y, fy, ay, True
                    break
            if moved:
                break
        if moved:
            accepted += 1
        else:
            step *= 0.5
    return x, f, alpha


@numba.njit(cache=True, nogil=True)
def _clock(time, pt) -> tuple[float, float]:
    """Least-squares line ``pt = k time + b`` (the gene's EM times against the shared time)."""
    ok = np.isfinite(time) & np.isfinite(pt)
    if ok.sum() < 3:
        return 1.0, 0.0
    t, p = time[ok], pt[ok]
    vt = np.var(t)
    if not vt > 0:
        return 1.0, 0.0
    k = np.mean((t - np.mean(t)) * (p - np.mean(p))) / vt
    k = min(max(k, 1e-2), 1e3)
    return k, np.mean(p) - k * np.mean(t)


@numba.njit(cache=True, nogil=True)
def refit_gene(
    u: np.ndarray,
    s: np.ndarray,
    time: np.ndarray,
    alpha: float,
    gamma: float,
    t_switch: float,
    var_u: float,
    var_s: float,
    n_grid: int,
) -> np.ndarray:
    """One gene's fit at fixed cell times; ``N_OUT`` values (see :func:`refit_genes`).

    The EM's curve ``(alpha, gamma, t_switch)`` and noise variances ``var_u, var_s`` give
    the weights and the starts (its cells' projected times against ``time`` give the start
    clock).
    """
    out = np.full(N_OUT, np.nan)
    ok = np.isfinite(u) & np.isfinite(s) & np.isfinite(time)
    if ok.sum() < 10 or not (np.isfinite(gamma) and gamma > 0 and var_u > 0 and var_s > 0):
        return out
    u, s, time = u[ok], s[ok], time[ok]
    wu, ws = 1.0 / var_u, 1.0 / var_s
    _, _, pt = project(u, s, wu, ws, gamma, t_switch, alpha, n_grid)
    k, b = _clock(time, pt)
    every = max(1, u.size // SEARCH_CELLS)
    su, ss, st = u[::every], s[::every], time[::every]
    best_f, best_x = np.inf, np.zeros(4)
    for factor in GAMMA_STARTS:
        x = np.array([np.log(k), b, np.log(gamma * factor), np.log(min(t_switch, 100.0))])
        x[1] = min(max(x[1], -49.0), T_SWITCH_MAX - 1.0)
        x, f, _ = _search(su, ss, st, wu, ws, x, 0.5, 0.01)
        if f < best_f:
            best_f, best_x = f, x
    x, f, a = _search(u, s, time, wu, ws, best_x, 0.0625, 0.005)
    n = u.size
    ru = f  # weighted sse: sum (ru^2 / var_u + rs^2 / var_s)
    out[0], out[1], out[2] = a, np.exp(x[2]), np.exp(x[3])
    out[3], out[4] = np.exp(x[0]), x[1]
    out[5] = -0.5 * (np.log(2 * np.pi * var_u) + np.log(2 * np.pi * var_s)) - 0.5 * ru / n
    out[6] = f / n
    return out


@numba.njit(cache=True, nogil=True)
def refit_genes(
    u: np.ndarray,
    s: np.ndarray,
    alpha: np.ndarray,
    gamma: np.ndarray,
    t_switch: np.ndarray,
    var_u: np.ndarray,
    var_s: np.ndarray,
    time: np.ndarray,
    n_grid: int = 24,
) -> np.ndarray:
    """:func:`refit_gene` for every column of ``u, s`` (cells x genes): ``N_OUT x genes``.

    ``time`` is one per cell (rows), the other vectors one per gene. Rows: ``alpha, gamma,
    t_switch`` (the curve in units of ``1 / beta``), ``k, b`` (the gene's clock
    ``tau = k time + b``), ``loglik`` (mean per cell, Gaussian at the given noise variances)
    and the mean weighted squared residual.
    """
    out = np.full((N_OUT, u.shape[1]), np.nan)
    for j in range(u.shape[1]):
        out[:, j] = refit_gene(
            np.ascontiguousarray(u[:, j]), np.ascontiguousarray(s[:, j]), time,
            alpha[j], gamma[j], t_switch[j], var_u[j], var_s[j], n_grid,
        )  # fmt: skip
    return out


@numba.njit(cache=True, nogil=True)
def residual_variances(
    u: np.ndarray, s: np.ndarray, time: np.ndarray, fit: np.ndarray
) -> np.ndarray:
    """Per gene, the mean squared residuals of ``u`` and ``s`` to its refit: ``2 x genes``.

    ``fit``: the ``N_OUT x genes`` rows of :func:`refit_genes` at the cells' shared ``time``.
    These are the noise variances under which the refit is most likely (the Gaussian
    likelihood's maximum over them); each is kept above ``VAR_FLOOR`` times the gene's
    variance over the cells. NaN where the gene has no refit.
    """
    g = u.shape[1]
    out = np.full((2, g), np.nan)
    for j in range(g):
        uj, sj = u[:, j], s[:, j]
        ok = np.isfinite(uj) & np.isfinite(sj) & np.isfinite(time)
        if not (ok.any() and np.isfinite(fit[0, j]) and np.isfinite(fit[1, j])):
            continue
        uj, sj, tj = uj[ok], sj[ok], time[ok]
        cu, cs = unit_curve(fit[3, j] * tj + fit[4, j], fit[1, j], fit[2, j])
        ru, rs = uj - fit[0, j] * cu, sj - fit[0, j] * cs
        out[0, j] = max(np.mean(ru * ru), VAR_FLOOR * np.var(uj), 1e-300)
        out[1, j] = max(np.mean(rs * rs), VAR_FLOOR * np.var(sj), 1e-300)
    return out


@numba.njit(cache=True, nogil=True)
def shared_time(times: np.ndarray, k: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per cell, the median over genes of ``(tau - b) / k`` (each gene's time in shared units).

    ``times``: cells x genes latent times on the genes' curves (NaN where a gene is left out).
    """
    n, g = times.shape
    out = np.full(n, np.nan)
    row = np.empty(g)
    for i in range(n):
        m = 0
        for j in range(g):
            v = (times[i, j] - b[j]) / k[j]
            if np.isfinite(v):
                row[m] = v
                m += 1
        if m:
            out[i] = np.median(row[:m])
    return out


@numba.njit(cache=True, nogil=True)
def joint_time(
    u: np.ndarray,
    s: np.ndarray,
    grid: np.ndarray,
    alpha: np.ndarray,
    gamma: np.ndarray,
    t_switch: np.ndarray,
    k: np.ndarray,
    b: np.ndarray,
    var_u: np.ndarray,
    var_s: np.ndarray,
) -> np.ndarray:
    """Per cell, the shared time on ``grid`` that fits all genes at once.

    The time minimising the sum over genes (columns) of the weighted squared residuals of
    ``u`` and ``s`` to the genes' curves at their clocks ``k T + b``; genes with a NaN
    parameter are left out. Between grid points the minimum is refined by a parabola through
    the three nearest.
    """
    n, g = u.shape
    m = grid.size
    cu, cs = np.zeros((g, m)), np.zeros((g, m))  # a gene's curve contiguous over the grid
    use = np.zeros(g, np.bool_)
    for j in range(g):
        ok = np.isfinite(alpha[j]) and np.isfinite(gamma[j]) and np.isfinite(k[j])
        ok = ok and np.isfinite(b[j]) and var_u[j] > 0 and var_s[j] > 0
        if not ok:
            continue
        use[j] = True
        a, c = unit_curve(k[j] * grid + b[j], gamma[j], t_switch[j])
        cu[j], cs[j] = alpha[j] * a, alpha[j] * c
    out = np.full(n, np.nan)
    f = np.empty(m)
    for i in range(n):
        any_gene = False
        f[:] = 0.0
        for j in range(g):
            if not use[j] or not (np.isfinite(u[i, j]) and np.isfinite(s[i, j])):
                continue
            any_gene = True
            wu, ws = 1.0 / var_u[j], 1.0 / var_s[j]
            for q in range(m):
                du, ds = u[i, j] - cu[j, q], s[i, j] - cs[j, q]
                f[q] += wu * du * du + ws * ds * ds
        if not any_gene:
            continue
        q = np.argmin(f)
        t = grid[q]
        if 0 < q < m - 1:
            den = f[q - 1] - 2 * f[q] + f[q + 1]
            if den > 0:
                t += 0.5 * (f[q - 1] - f[q + 1]) / den * (grid[q + 1] - grid[q])
        out[i] = t
    return out


@numba.njit(cache=True, nogil=True)
def clock_scores(
    u: np.ndarray,
    s: np.ndarray,
    time: np.ndarray,
    ut: np.ndarray,
    st: np.ndarray,
    time_t: np.ndarray,
    own: np.ndarray,
    shared: np.ndarray,
    var_u: np.ndarray,
    var_s: np.ndarray,
    n_grid: int = 24,
) -> np.ndarray:
    """Mean log-likelihood per scored cell of each gene's own curve and its refit, both timed.

    ``u, s, time``: the fit cells and their shared time; ``ut, st, time_t``: the scored
    cells. ``own``: ``3 x genes`` EM curves ``(alpha, gamma, t_switch)``, given a clock by the
    least-squares line of their fit cells' projected times on ``time``; ``shared``: the
    ``N_OUT x genes`` rows of :func:`refit_genes`. Both are scored at the cells' shared
    times with the same noise variances (``alpha`` re-solved on the scored cells for both):
    ``2 x genes``, the constant terms left out.
    """
    g = u.shape[1]
    out = np.full((2, g), np.nan)
    for j in range(g):
        if not (var_u[j] > 0 and var_s[j] > 0 and np.isfinite(own[1, j])):
            continue
        wu, ws = 1.0 / var_u[j], 1.0 / var_s[j]
        uj, sj = np.ascontiguousarray(u[:, j]), np.ascontiguousarray(s[:, j])
        ok = np.isfinite(uj) & np.isfinite(sj) & np.isfinite(time)
        okt = np.isfinite(ut[:, j]) & np.isfinite(st[:, j]) & np.isfinite(time_t)
        if ok.sum() < 3 or okt.sum() < 3:
            continue
        a, b = ut[:, j][okt], st[:, j][okt]
        _, _, pt = project(uj[ok], sj[ok], wu, ws, own[1, j], own[2, j], own[0, j], n_grid)
        k, c = _clock(time[ok], pt)
        x = np.array([np.log(k), c, np.log(own[1, j]), np.log(own[2, j])])
        f, _ = _sse(a, b, time_t[okt], wu, ws, x)
        out[0, j] = -0.5 * f / a.size
        if np.isfinite(shared[1, j]):
            x = np.array([np.log(shared[3, j]), shared[4, j], np.log(shared[1, j])])
            x = np.append(x, np.log(shared[2, j]))
            f, _ = _sse(a, b, time_t[okt], wu, ws, x)
            out[1, j] = -0.5 * f / a.size
    return out
