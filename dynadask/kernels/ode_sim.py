"""Fast simulation paths for many cells, one block: chemical Langevin and mean ODE + Poisson.

Same species, reactions, label windows, seeding and initial means as
:mod:`dynadask.kernels.gillespie`.

* Chemical Langevin (``noise=True``): Euler-Maruyama steps of at most ``dt``, each reaction
  channel firing ``a h + sqrt(a h) N(0, 1)`` times, or a Poisson number of times of mean
  ``a h`` when that mean is small (``POISSON_BELOW``: tau-leaping, which keeps the means
  right near zero), levels kept non-negative, rounded to counts at harvest. Steps are
  aligned with the label window's edges.
* Mean ODE (``noise=False``): the deterministic means are integrated and the counts drawn as
  independent Poissons around them. For networks whose transcription rates do not depend on
  the state (independent genes) the means come from the closed-form solution and the result
  is exact: first-order reactions fed by constant synthesis keep independent Poisson counts
  from a Poisson start.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .gillespie import init_state
from .sim_network import fill_alpha

POISSON_BELOW = 10.0  # expected firings per step under which a channel leaps by a Poisson draw


@njit(cache=True)
def _exp_gap(beta, gamma, h):
    # (exp(-beta h) - exp(-gamma h)) / (gamma - beta), stable when beta ~ gamma
    d = (gamma - beta) * h
    ratio = math.expm1(d) / d if abs(d) > 1e-12 else 1.0
    return math.exp(-gamma * h) * h * ratio


@njit(cache=True)
def linear_segment(st, alpha, beta, gamma, h, labelled):
    """Advance the means ``st`` (genes x [uu, ul, su, sl]) by ``h`` with constant rates."""
    for g in range(st.shape[0]):
        e_b, e_g = math.exp(-beta[g] * h), math.exp(-gamma[g] * h)
        gap = _exp_gap(beta[g], gamma[g], h)
        for k in range(2):
            a = alpha[g] if (k == 1) == labelled else 0.0
            u_inf = a / beta[g]
            u, s = st[g, k], st[g, k + 2]
            st[g, k] = u_inf + (u - u_inf) * e_b
            st[g, k + 2] = s * e_g + a * (1.0 - e_g) / gamma[g] + beta[g] * (u - u_inf) * gap


@njit(cache=True)
def _noisy(f, noise):
    # Langevin increment; a Poisson leap where the channel fires rarely in a step (the Gaussian
    # approximation breaks down there and truncation at zero would bias the means)
    if not noise:
        return f
    if f < POISSON_BELOW:
        return float(np.random.poisson(f))  # noqa: NPY002
    return f + math.sqrt(f) * np.random.standard_normal()  # noqa: NPY002


@njit(cache=True)
def _step(st, h, labelled, alpha, beta, gamma, noise):
    for g in range(st.shape[0]):
        syn = _noisy(alpha[g] * h, noise)
        spl0 = _noisy(beta[g] * st[g, 0] * h, noise)
        spl1 = _noisy(beta[g] * st[g, 1] * h, noise)
        deg0 = _noisy(gamma[g] * st[g, 2] * h, noise)
        deg1 = _noisy(gamma[g] * st[g, 3] * h, noise)
        st[g, 1 if labelled else 0] += syn
        st[g, 0] = max(st[g, 0] - spl0, 0.0)
        st[g, 1] = max(st[g, 1] - spl1, 0.0)
        st[g, 2] = max(st[g, 2] + spl0 - deg0, 0.0)
        st[g, 3] = max(st[g, 3] + spl1 - deg1, 0.0)


@njit(cache=True)
def _segment(st, t0, t1, labelled, net, alpha, beta, gamma, coupled, dt, noise, s_buf):
    length = t1 - t0
    if length <= 0.0:
        return
    if not coupled and not noise:
        linear_segment(st, alpha, beta, gamma, length, labelled)
        return
    m = int(math.ceil(length / dt))
    h = length / m
    for _ in range(m):
        if coupled:
            for i in range(st.shape[0]):
                s_buf[i] = st[i, 2] + st[i, 3]
            fill_alpha(s_buf, net[0], net[1], net[2], net[3], alpha)
        _step(st, h, labelled, alpha, beta, gamma, noise)


@njit(cache=True)
def _finish(st, noise):
    for g in range(st.shape[0]):
        for k in range(4):
            st[g, k] = np.rint(st[g, k]) if noise else np.random.poisson(st[g, k])  # noqa: NPY002


@njit(cache=True)
def fast_cells(x0, traj, t_end, windows, cell_seeds, net, beta, gamma, coupled, dt, noise):
    """Simulate cells from time 0 to ``t_end`` with the Langevin (``noise``) or mean-ODE path.

    Parameters are those of :func:`dynadask.kernels.gillespie.ssa_cells`, plus the largest
    step ``dt`` and ``noise`` (True: chemical Langevin; False: mean ODE + Poisson counts).

    Returns
    -------
    numpy.ndarray
        Counts (cells, genes, 4) of ``uu, ul, su, sl`` at harvest (float64).
    """
    n, n_genes = traj.shape[0], x0.shape[1]
    out = np.zeros((n, n_genes, 4))
    alpha, s_buf = np.zeros(n_genes), np.zeros(n_genes)
    for c in range(n):
        np.random.seed(cell_seeds[c])  # noqa: NPY002
        st = out[c]
        if noise:
            init_state(x0[traj[c]], st)
        else:
            st[:, 0] = x0[traj[c], :, 0]
            st[:, 2] = x0[traj[c], :, 1]
        for i in range(n_genes):
            s_buf[i] = st[i, 2]
        fill_alpha(s_buf, net[0], net[1], net[2], net[3], alpha)
        t1 = t_end[c]
        on = min(max(windows[c, 0], 0.0), t1)
        off = min(max(windows[c, 1], on), t1)
        _segment(st, 0.0, on, False, net, alpha, beta, gamma, coupled, dt, noise, s_buf)
        _segment(st, on, off, True, net, alpha, beta, gamma, coupled, dt, noise, s_buf)
        _segment(st, off, t1, False, net, alpha, beta, gamma, coupled, dt, noise, s_buf)
        _finish(st, noise)
    return out
