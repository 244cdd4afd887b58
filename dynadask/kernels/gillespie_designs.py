"""Exact stochastic paths for the ``dyn.sim.Gillespie`` designs, one batch of paths at a time.

Two reaction systems, both run with the direct method on numba's generator seeded once per
path (so a path does not depend on how paths are batched):

*Promoter switching with labelling* (one gene at a time, genes independent). The state is
``[P, ul, uu, sl, su]``: the promoter (1 active, 0 inactive), labelled and unlabelled
unspliced RNA, labelled and unlabelled spliced RNA. Reactions: the promoter turns off at
rate ``a`` and on at rate ``b``; transcription at ``aa`` (active) or ``ai`` (inactive), a
share ``la`` of it labelled; labelled unspliced RNA is spliced at ``be`` into labelled
spliced RNA, except a share ``si`` that becomes unlabelled spliced RNA; unlabelled
unspliced RNA is spliced at ``be``; spliced RNA is degraded at ``ga``.

*Two genes with protein* (the 'oscillation' and 'differentiation' motifs). The state is
``[u1, s1, u2, s2, w1, l1, w2, l2, p1, p2]``: unlabelled unspliced / spliced RNA, labelled
unspliced / spliced RNA and the protein of each gene. Transcription into the unlabelled
and the labelled unspliced species each follow their own Hill rates (the parameter vector
below holds both sets, so labelling is switched on by passing a vector whose unlabelled
set is zero); splicing at ``be``, RNA degradation at ``ga``, translation of spliced RNA
(labelled or not) at ``et`` and protein degradation at ``de``. In the differentiation
motif the rates read the proteins, gene ``i`` at
``a_i p_i^n / (K^n + p_i^n) + b_i K^n / (K^n + p_j^n) + c_i``; in the oscillation motif
they read the unspliced totals ``x_i = u_i + w_i``: gene 1 at
``a_1 x_1^n / (K^n + x_1^n) + b_1 K^n / (K^n + x_2^n)``, gene 2 at
``a_2 x_2^n / (K^n + x_2^n) + b_2 x_1^n / (K^n + x_1^n)``.

Parameter vector of the protein models (22 values):
``a1, b1, c1, a2, b2, c2, a1_l, b1_l, c1_l, a2_l, b2_l, c2_l, K, n,
be1, ga1, et1, de1, be2, ga2, et2, de2``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

DIFFERENTIATION = 0
OSCILLATION = 1
N_PROTEIN_SPECIES = 10
# rows each lineage of a labelling design gives: 4 kinetics checkpoints x 5 label times,
# 8 one-shot checkpoints, 2 degradation starts x 5 chase times
KIN_CHECKPOINTS = (1, 3, 5, 6)
N_DESIGN_ROWS = len(KIN_CHECKPOINTS) * 5 + 8 + 2 * 5


# ---------------------------------------------------------------- promoter switching
@njit(cache=True)
def _promoter_props(st, a, b, la, aa, ai, si, be, ga, prop):
    on = st[0] > 0
    prop[0] = a if on else 0.0  # active -> inactive
    prop[1] = 0.0 if on else b  # inactive -> active
    rate = aa if on else ai
    prop[2] = la * rate  # -> ul
    prop[3] = (1.0 - la) * rate  # -> uu
    prop[4] = (1.0 - si) * be * st[1]  # ul -> sl
    prop[5] = si * be * st[1]  # ul -> su
    prop[6] = be * st[2]  # uu -> su
    prop[7] = ga * st[3]  # sl -> 0
    prop[8] = ga * st[4]  # su -> 0
    total = 0.0
    for k in range(9):
        total += prop[k]
    return total


@njit(cache=True)
def _promoter_fire(st, k):
    if k == 0:
        st[0] = 0.0
    elif k == 1:
        st[0] = 1.0
    elif k == 2:
        st[1] += 1.0
    elif k == 3:
        st[2] += 1.0
    elif k == 4:
        st[1] -= 1.0
        st[3] += 1.0
    elif k == 5:
        st[1] -= 1.0
        st[4] += 1.0
    elif k == 6:
        st[2] -= 1.0
        st[4] += 1.0
    elif k == 7:
        st[3] -= 1.0
    else:
        st[4] -= 1.0


@njit(cache=True)
def _pick(prop, n, r):
    k = 0
    while k < n - 1 and r >= prop[k]:
        r -= prop[k]
        k += 1
    return k


@njit(cache=True)
def promoter_paths(c0, t0, t_eval, params, seeds):
    """Run one promoter-switching path per seed for every gene and record it at ``t_eval``.

    Parameters
    ----------
    c0
        Initial state per gene, (genes, 5) as ``[P, ul, uu, sl, su]``.
    t0
        Start time.
    t_eval
        Increasing record times (``>= t0``).
    params
        (8, genes): ``a, b, la, aa, ai, si, be, ga`` per gene.
    seeds
        One seed per path.

    Returns
    -------
    states : numpy.ndarray
        (paths, len(t_eval), genes, 5) states at the record times.
    on_time : numpy.ndarray
        (paths, genes) time the promoter was active between ``t0`` and ``t_eval[-1]``.
    """
    n_paths, n_t, n_genes = seeds.shape[0], t_eval.shape[0], c0.shape[0]
    out = np.zeros((n_paths, n_t, n_genes, 5))
    on_time = np.zeros((n_paths, n_genes))
    prop = np.zeros(9)
    st = np.zeros(5)
    t_end = t_eval[n_t - 1]
    for p in range(n_paths):
        np.random.seed(seeds[p])  # noqa: NPY002 (numba's generator, one stream per path)
        for g in range(n_genes):
            a, b, la, aa = params[0, g], params[1, g], params[2, g], params[3, g]
            ai, si, be, ga = params[4, g], params[5, g], params[6, g], params[7, g]
            for k in range(5):
                st[k] = c0[g, k]
            t, i = t0, 0
            while i < n_t:
                total = _promoter_props(st, a, b, la, aa, ai, si, be, ga, prop)
                t_next = np.inf if total <= 0.0 else t + np.random.exponential(1.0 / total)  # noqa: NPY002
                while i < n_t and t_eval[i] < t_next:
                    out[p, i, g, :] = st
                    i += 1
                if st[0] > 0:
                    on_time[p, g] += min(t_next, t_end) - min(t, t_end)
                if t_next >= t_end:
                    break
                k = _pick(prop, 9, np.random.random() * total)  # noqa: NPY002
                _promoter_fire(st, k)
                t = t_next
    return out, on_time


# ---------------------------------------------------------------- two genes with protein
@njit(cache=True)
def _hill(x, k_n, n):
    xn = x**n
    return xn / (k_n + xn)


@njit(cache=True)
def _protein_props(st, par, kind, prop):
    k_n, n = par[12] ** par[13], par[13]
    if kind == DIFFERENTIATION:
        r1, r2 = st[8], st[9]
        act1, act2 = _hill(r1, k_n, n), _hill(r2, k_n, n)
        rep1, rep2 = 1.0 - _hill(r2, k_n, n), 1.0 - _hill(r1, k_n, n)
        prop[0] = par[0] * act1 + par[1] * rep1 + par[2]
        prop[1] = par[3] * act2 + par[4] * rep2 + par[5]
        prop[2] = par[6] * act1 + par[7] * rep1 + par[8]
        prop[3] = par[9] * act2 + par[10] * rep2 + par[11]
    else:
        x1, x2 = st[0] + st[4], st[2] + st[6]
        h1, h2 = _hill(x1, k_n, n), _hill(x2, k_n, n)
        rep2 = 1.0 - h2
        prop[0] = par[0] * h1 + par[1] * rep2
        prop[1] = par[3] * h2 + par[4] * h1
        prop[2] = par[6] * h1 + par[7] * rep2
        prop[3] = par[9] * h2 + par[10] * h1
    be1, ga1, et1, de1 = par[14], par[15], par[16], par[17]
    be2, ga2, et2, de2 = par[18], par[19], par[20], par[21]
    prop[4] = be1 * st[0]
    prop[5] = be2 * st[2]
    prop[6] = be1 * st[4]
    prop[7] = be2 * st[6]
    prop[8] = ga1 * st[1]
    prop[9] = ga2 * st[3]
    prop[10] = ga1 * st[5]
    prop[11] = ga2 * st[7]
    prop[12] = et1 * st[1]
    prop[13] = et2 * st[3]
    prop[14] = et1 * st[5]
    prop[15] = et2 * st[7]
    prop[16] = de1 * st[8]
    prop[17] = de2 * st[9]
    total = 0.0
    for k in range(18):
        total += prop[k]
    return total


@njit(cache=True)
def _protein_fire(st, k):
    if k < 4:
        st[(0, 2, 4, 6)[k]] += 1.0  # transcription: u1, u2, w1, w2
    elif k < 8:
        src = (0, 2, 4, 6)[k - 4]  # splicing: u1 -> s1, u2 -> s2, w1 -> l1, w2 -> l2
        st[src] -= 1.0
        st[src + 1] += 1.0
    elif k < 12:
        st[(1, 3, 5, 7)[k - 8]] -= 1.0  # RNA degradation
    elif k < 16:
        st[8 + (k - 12) % 2] += 1.0  # translation: s1, s2, l1, l2 -> p1, p2, p1, p2
    else:
        st[8 + k - 16] -= 1.0  # protein degradation


@njit(cache=True)
def protein_path(st, duration, t_rec, par, kind, rec, prop):
    """Advance the state ``st`` in place for ``duration`` and record it at ``t_rec``.

    ``t_rec`` holds increasing times in ``[0, duration]`` measured from the start; the
    state at each is written to the rows of ``rec``. The state at ``duration`` is left in
    ``st``.
    """
    t, i, n_rec = 0.0, 0, t_rec.shape[0]
    while True:
        total = _protein_props(st, par, kind, prop)
        t_next = np.inf if total <= 0.0 else t + np.random.exponential(1.0 / total)  # noqa: NPY002
        while i < n_rec and t_rec[i] < t_next:
            rec[i, :] = st
            i += 1
        if t_next >= duration:
            return
        _protein_fire(st, _pick(prop, 18, np.random.random() * total))  # noqa: NPY002
        t = t_next


@njit(cache=True)
def labelling_design(c0, seeds, pre, unlab, lab, kind, t_pre):
    """Run dynamo's labelling design on one lineage per seed (the protein motifs).

    Each lineage starts at ``c0``, runs the ``pre`` model for ``t_pre``, then the ``unlab``
    (treated) model for 410 time units recorded at the checkpoints 0, 5, 10, 40, 100, 200,
    300, 400. From checkpoints 5, 40, 200 and 300 it is labelled (``lab`` model) for one
    time unit and recorded at 0, 0.1, 0.2, 0.4, 0.8 (kinetics); from every checkpoint it is
    labelled for one time unit (one-shot); from checkpoints 0 and 400 it is labelled for 10
    time units and then chased with the ``unlab`` model, recorded at 0, 1, 2, 4, 8
    (degradation). In the kinetics and degradation rows the protein is the one at the end
    of that run.

    Returns
    -------
    numpy.ndarray
        (lineages, 38, 10): 20 kinetics rows (checkpoint-major, then label time), 8
        one-shot rows, 10 degradation rows (start-major, then chase time).
    """
    n = seeds.shape[0]
    out = np.zeros((n, N_DESIGN_ROWS, N_PROTEIN_SPECIES))
    prop = np.zeros(18)
    st = np.zeros(N_PROTEIN_SPECIES)
    cps = np.zeros((8, N_PROTEIN_SPECIES))
    none = np.zeros(0)
    empty = np.zeros((0, N_PROTEIN_SPECIES))
    t_cp = np.array([0.0, 5.0, 10.0, 40.0, 100.0, 200.0, 300.0, 400.0])
    t_kin = np.array([0.0, 0.1, 0.2, 0.4, 0.8])
    t_deg = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    kin_cps = np.array(KIN_CHECKPOINTS)
    for c in range(n):
        np.random.seed(seeds[c])  # noqa: NPY002 (numba's generator, one stream per lineage)
        st[:] = c0
        protein_path(st, t_pre, none, pre, kind, empty, prop)
        protein_path(st, 410.0, t_cp, unlab, kind, cps, prop)
        row = 0
        for j in range(kin_cps.shape[0]):
            st[:] = cps[kin_cps[j]]
            rec = out[c, row : row + 5]
            protein_path(st, 1.0, t_kin, lab, kind, rec, prop)
            rec[:, 8:] = st[8:]
            row += 5
        for j in range(8):
            st[:] = cps[j]
            protein_path(st, 1.0, none, lab, kind, empty, prop)
            out[c, row] = st
            row += 1
        for j in (0, 7):
            st[:] = cps[j]
            protein_path(st, 10.0, none, lab, kind, empty, prop)
            rec = out[c, row : row + 5]
            protein_path(st, 10.0, t_deg, unlab, kind, rec, prop)
            rec[:, 8:] = st[8:]
            row += 5
    return out
