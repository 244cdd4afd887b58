"""Recorded Gillespie paths of one gene network, and labelling runs at fixed rates (one block).

The state of a cell is one count per species. With splicing a network of ``G`` genes has
``2 G`` species, all unspliced first, then all spliced (``u_0 .. u_{G-1}, s_0 .. s_{G-1}``);
without splicing it has ``G`` species, the total RNA of each gene. Each gene has three
reactions (two without splicing): transcription at the rate of its Hill terms
(:mod:`dynadask.kernels.sim_network`) read from the *primary* species (spliced, or total),
splicing ``u -> s`` at ``beta u`` and degradation of the primary species at ``gamma x``.

``ssa_events`` runs the direct method from an initial state and records the state after
every ``skip``-th reaction, as a list of event times and states; ``label_cells`` runs, per
cell, the same reactions with the transcription rates held at the cell's values, from no
RNA, for the cell's labelling time.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .sim_network import fill_alpha


@njit(cache=True)
def _rates(state, n_genes, splicing, net, alpha, beta, gamma, prop, buf):
    # propensities of every reaction: per gene [synthesis, (splicing), degradation]
    off = n_genes if splicing else 0
    for g in range(n_genes):
        buf[g] = state[off + g]
    fill_alpha(buf, net[0], net[1], net[2], net[3], alpha)
    width = 3 if splicing else 2
    total = 0.0
    for g in range(n_genes):
        prop[width * g] = alpha[g]
        if splicing:
            prop[width * g + 1] = beta[g] * state[g]
        prop[width * g + width - 1] = gamma[g] * state[off + g]
        for k in range(width):
            total += prop[width * g + k]
    return total


@njit(cache=True)
def _fire(state, reaction, n_genes, splicing):
    # apply reaction `reaction` (index into the propensity vector) to `state`
    width = 3 if splicing else 2
    g, k = reaction // width, reaction % width
    off = n_genes if splicing else 0
    if k == 0:
        state[g] += 1.0  # transcription into u (or the total)
    elif splicing and k == 1:
        state[g] -= 1.0
        state[off + g] += 1.0
    else:
        state[off + g] = max(state[off + g] - 1.0, 0.0)


@njit(cache=True)
def _pick(prop, r):
    # index of the reaction that the uniform draw r (0 <= r < sum(prop)) selects
    for i in range(prop.shape[0]):
        if r < prop[i]:
            return i
        r -= prop[i]
    last = prop.shape[0] - 1
    while last > 0 and prop[last] <= 0.0:
        last -= 1
    return last


@njit(cache=True)
def ssa_events(c0, t0, t1, net, beta, gamma, splicing, seed, skip, max_len):
    """Run the direct method from state ``c0`` at ``t0`` until ``t1`` and record the path.

    Parameters
    ----------
    c0
        Initial counts per species (see the module's layout).
    t0, t1
        Start and end of the simulated time.
    net
        ``(gene, kind, inputs, par)`` arrays of the network's Hill terms.
    beta, gamma
        Splicing and degradation rates per gene.
    splicing
        Whether the species are (unspliced, spliced) per gene or one total per gene.
    seed
        Seed of the path's random stream.
    skip
        Record every ``skip``-th reaction (``0`` or ``1``: every reaction).
    max_len
        Most states recorded (the initial state included); the path stops there.

    Returns
    -------
    tuple of numpy.ndarray
        Event times (n,) and states (n, species): the initial state, then the states
        after the recorded reactions that happened before ``t1``.
    """
    np.random.seed(seed)  # noqa: NPY002 (numba's generator, one stream per path)
    n_genes = beta.shape[0]
    n_species = c0.shape[0]
    width = 3 if splicing else 2
    prop = np.zeros(width * n_genes)
    alpha, buf = np.zeros(n_genes), np.zeros(n_genes)
    times = np.empty(max_len)
    states = np.empty((max_len, n_species))
    state = c0.astype(np.float64).copy()
    times[0] = t0
    states[0] = state
    n, count, t = 1, 0, t0
    while n < max_len:
        total = _rates(state, n_genes, splicing, net, alpha, beta, gamma, prop, buf)
        if total <= 0.0:
            break
        t += np.random.exponential(1.0 / total)  # noqa: NPY002
        if t > t1:
            break
        _fire(state, _pick(prop, np.random.random() * total), n_genes, splicing)  # noqa: NPY002
        count += 1
        if skip <= 1 or count % skip == 0:
            times[n] = t
            states[n] = state
            n += 1
    return times[:n].copy(), states[:n].copy()


@njit(cache=True)
def label_cells(alpha, label_time, seeds, beta, gamma, splicing):
    """Simulate labelled RNA from none, at each cell's fixed transcription rates.

    Parameters
    ----------
    alpha
        Transcription rate per cell and gene (cells, genes), held constant.
    label_time
        Labelling duration per cell.
    seeds
        Seed per cell.
    beta, gamma
        Splicing and degradation rates per gene.
    splicing
        Labelled (unspliced, spliced) per gene, or one labelled total per gene.

    Returns
    -------
    numpy.ndarray
        (cells, species + 1): the labelled counts at the end of the labelling, then the time
        of the last reaction (0 when none happened).
    """
    n_cells, n_genes = alpha.shape
    n_species = 2 * n_genes if splicing else n_genes
    width = 3 if splicing else 2
    out = np.zeros((n_cells, n_species + 1))
    prop = np.zeros(width * n_genes)
    off = n_genes if splicing else 0
    for c in range(n_cells):
        np.random.seed(seeds[c])  # noqa: NPY002
        state = out[c, :n_species]
        t, last = 0.0, 0.0
        while True:
            total = 0.0
            for g in range(n_genes):
                prop[width * g] = alpha[c, g]
                if splicing:
                    prop[width * g + 1] = beta[g] * state[g]
                prop[width * g + width - 1] = gamma[g] * state[off + g]
                for k in range(width):
                    total += prop[width * g + k]
            if total <= 0.0:
                break
            t += np.random.exponential(1.0 / total)  # noqa: NPY002
            if t > label_time[c]:
                break
            _fire(state, _pick(prop, np.random.random() * total), n_genes, splicing)  # noqa: NPY002
            last = t
        out[c, n_species] = last
    return out
