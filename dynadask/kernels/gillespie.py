"""Exact stochastic simulation (Gillespie's direct method) of many cells, one block.

Each gene has four species, ``uu, ul, su, sl`` (unspliced / spliced, unlabelled /
labelled), and five reactions: transcription (into ``ul`` while the cell's label window
``[label_on, label_off)`` is open, into ``uu`` otherwise), splicing of ``uu`` and ``ul``
(rate ``beta``) and degradation of ``su`` and ``sl`` (rate ``gamma``). Transcription
rates follow the network's Hill terms (:mod:`dynadask.kernels.sim_network`) read from the
spliced totals ``su + sl``; the label does not change any rate, so the labelled and
unlabelled species are an exact split of the same process.

Every cell draws from its own random stream seeded by ``cell_seeds`` so the result does
not depend on how cells are cut into blocks. Initial counts are Poisson around the cell's
trajectory means ``x0[traj]`` (unspliced, spliced), all unlabelled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .sim_network import fill_alpha


@njit(cache=True)
def mix_seed(seed, index):
    """Return a 32-bit seed for cell ``index`` of a run seeded by ``seed`` (splitmix64)."""
    z = (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(index)) & np.uint64(
        0xFFFFFFFFFFFFFFFF
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z & np.uint64(0x7FFFFFFF))


@njit(cache=True)
def init_state(x0, st):
    """Draw unlabelled initial counts around the means ``x0`` (genes x [u, s]) into ``st``."""
    for g in range(st.shape[0]):
        st[g, 0] = np.random.poisson(x0[g, 0])  # noqa: NPY002
        st[g, 1] = 0.0
        st[g, 2] = np.random.poisson(x0[g, 1])  # noqa: NPY002
        st[g, 3] = 0.0


@njit(cache=True)
def _fire(st, g, r, alpha, beta, gamma, labelled):
    # apply the reaction of gene g picked by r (r < total propensity of g); True if s changed
    a = alpha[g]
    if r < a:
        st[g, 1 if labelled else 0] += 1.0
        return False
    r -= a
    for k in range(2):
        a = beta[g] * st[g, k]
        if r < a:
            st[g, k] -= 1.0
            st[g, k + 2] += 1.0
            return True
        r -= a
    if r < gamma[g] * st[g, 2]:
        st[g, 2] -= 1.0
    else:
        st[g, 3] = max(st[g, 3] - 1.0, 0.0)
    return True


@njit(cache=True)
def _propensity(st, g, alpha, beta, gamma):
    return alpha[g] + beta[g] * (st[g, 0] + st[g, 1]) + gamma[g] * (st[g, 2] + st[g, 3])


@njit(cache=True)
def ssa_genes(st, lo, hi, t0, t1, window, net, alpha, beta, gamma, coupled, s_buf):
    """Run the direct method on genes ``[lo, hi)`` of one cell's state ``st`` from t0 to t1.

    ``net`` is the network tuple ``(gene, kind, inputs, par)``; ``alpha`` holds the current
    transcription rates and is refreshed after every change of a spliced level when
    ``coupled``. ``window`` is ``(label_on, label_off)``.
    """
    t = t0
    while True:
        tot = 0.0
        for g in range(lo, hi):
            tot += _propensity(st, g, alpha, beta, gamma)
        if tot <= 0.0:
            return
        t += np.random.exponential(1.0 / tot)  # noqa: NPY002
        if t >= t1:
            return
        r = np.random.random() * tot  # noqa: NPY002 (numba's per-thread generator, seeded per cell)
        g = lo
        while g < hi - 1:
            a = _propensity(st, g, alpha, beta, gamma)
            if r < a:
                break
            r -= a
            g += 1
        labelled = window[0] <= t < window[1]
        if _fire(st, g, r, alpha, beta, gamma, labelled) and coupled:
            for i in range(st.shape[0]):
                s_buf[i] = st[i, 2] + st[i, 3]
            fill_alpha(s_buf, net[0], net[1], net[2], net[3], alpha)


@njit(cache=True)
def ssa_cells(x0, traj, t_end, windows, cell_seeds, net, beta, gamma, coupled):
    """Simulate cells from time 0 to ``t_end`` (per cell) with the direct method.

    Parameters
    ----------
    x0
        Initial means per trajectory, (n_traj, genes, 2) for (unspliced, spliced).
    traj
        Trajectory index of each cell.
    t_end
        Harvest time of each cell.
    windows
        Label window ``(on, off)`` of each cell, (cells, 2); ``inf`` for none.
    cell_seeds
        Seed of each cell's random stream.
    net
        ``(gene, kind, inputs, par)`` arrays of the network's Hill terms.
    beta, gamma
        Splicing and degradation rates per gene.
    coupled
        Whether transcription rates depend on the state.

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
        init_state(x0[traj[c]], st)
        for i in range(n_genes):
            s_buf[i] = st[i, 2]
        fill_alpha(s_buf, net[0], net[1], net[2], net[3], alpha)
        if coupled:
            ssa_genes(
                st, 0, n_genes, 0.0, t_end[c], windows[c], net, alpha, beta, gamma, True, s_buf
            )
            continue
        for g in range(n_genes):
            ssa_genes(
                st, g, g + 1, 0.0, t_end[c], windows[c], net, alpha, beta, gamma, False, s_buf
            )
    return out
