"""Transition kernels between a cell and its neighbours, for one block of cells.

Every function works on one row block. Neighbourhoods are ragged: ``ptr`` (length
``n_rows + 1``) and ``nbr`` (positions into the gathered neighbour rows) list, for row ``i``,
the candidates ``nbr[ptr[i]:ptr[i + 1]]``, as in a CSR matrix. Accumulation is in float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from scipy import sparse

from .._core.errors import InputError


def recursive_neighbours(
    knn: np.ndarray, rows: np.ndarray, depth: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Return the sorted set of neighbours up to ``depth`` hops of each row, itself included.

    Parameters
    ----------
    knn
        ``(n_cells, k)`` neighbour indices of every cell.
    rows
        Global indices of the cells whose neighbourhoods are wanted.
    depth
        Number of hops along ``knn``.

    Returns
    -------
    ptr, nbr
        Ragged neighbourhoods: global indices ``nbr[ptr[i]:ptr[i + 1]]`` for ``rows[i]``.
    """
    return _recursive(knn.astype(np.int64), rows.astype(np.int64), depth)


@numba.njit(cache=True)
def _recursive(knn, rows, depth):
    n, k = rows.shape[0], knn.shape[1]
    width = 1
    for _ in range(depth):
        width = width * k + 1
    ptr = np.zeros(n + 1, dtype=np.int64)
    out = np.empty(n * min(width, knn.shape[0]), dtype=np.int64)
    buf = np.empty(width, dtype=np.int64)
    for i in range(n):
        buf[0] = rows[i]
        m, start = 1, 0
        for _ in range(depth):
            stop = m
            for t in range(start, stop):
                for j in range(k):
                    buf[m] = knn[buf[t], j]
                    m += 1
            start = stop
        uniq = np.unique(buf[:m])
        ptr[i + 1] = ptr[i] + uniq.shape[0]
        out[ptr[i] : ptr[i + 1]] = uniq
    return ptr, out[: ptr[n]].copy()


def correlation_kernel(
    x_nbr: np.ndarray,
    x_self: np.ndarray,
    v: np.ndarray,
    ptr: np.ndarray,
    nbr: np.ndarray,
    centred: bool = True,
    transform: str = "sqrt",
) -> np.ndarray:
    """Correlation of each cell's velocity with its displacements to its candidates.

    For cell ``i`` and candidate ``j``: ``corr(f(x_j - x_i), f(v_i))`` over genes, where ``f`` is
    the signed square root (``transform='sqrt'``), the signed ``log1p`` (``'log'``) or the
    identity (``'linear'``); Pearson when ``centred`` else cosine. A zero displacement or a
    zero velocity gives 0; a cell whose velocity sums to zero gets 0 everywhere.

    Parameters
    ----------
    x_nbr
        ``(m, n_genes)`` expression of the gathered candidate cells.
    x_self, v
        ``(n_rows, n_genes)`` expression and velocity of the block's cells.
    ptr, nbr
        Ragged candidate positions into ``x_nbr`` per row.
    centred
        Pearson (True) or cosine (False).
    transform
        ``'sqrt'``, ``'log'`` or ``'linear'``.

    Returns
    -------
    numpy.ndarray
        float64 correlation per candidate, aligned with ``nbr``.
    """
    codes = {"linear": 0, "sqrt": 1, "log": 2}
    if transform not in codes:
        raise InputError(f"transform must be one of {sorted(codes)}, not {transform!r}")
    return _correlation(
        np.asarray(x_nbr), np.asarray(x_self), np.asarray(v), ptr, nbr, centred, codes[transform]
    )


@numba.njit(cache=True, inline="always")
def _root(a, code):
    # the signed transform of one value: square root, log1p or identity, sign kept
    if code == 1:
        return math.copysign(math.sqrt(abs(a)), a)
    if code == 2:
        return math.copysign(math.log1p(abs(a)), a)
    return a


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _correlation(x_nbr, x_self, v, ptr, nbr, centred, root):
    # one fused loop over genes per (cell, candidate): no temporary arrays; the inputs
    # may be float32 (each value is widened to float64 before the difference)
    n, g = x_self.shape
    out = np.zeros(nbr.shape[0])
    b = np.empty(g)
    xi = np.empty(g)
    for i in range(n):
        total = 0.0
        for j in range(g):
            total += np.float64(v[i, j])
        if total == 0:
            continue
        mean = 0.0
        for j in range(g):
            b[j] = _root(np.float64(v[i, j]), root)
            mean += b[j]
        mean = mean / g if centred else 0.0
        bsq = 0.0
        for j in range(g):
            b[j] -= mean
            bsq += b[j] * b[j]
            xi[j] = np.float64(x_self[i, j])
        bnorm = np.sqrt(bsq)
        if bnorm == 0:
            continue
        for t in range(ptr[i], ptr[i + 1]):
            r = nbr[t]
            num, sq, tot = 0.0, 0.0, 0.0
            for j in range(g):
                a = _root(np.float64(x_nbr[r, j]) - xi[j], root)
                num += a * b[j]
                sq += a * a
                tot += a
            if centred:
                sq -= tot * tot / g
            if sq > 1e-300:
                out[t] = num / (np.sqrt(sq) * bnorm)
    return out


def row_confidence(corr: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Return each row's largest positive correlation (0 when none is positive)."""
    return _row_max_positive(corr, ptr)


@numba.njit(cache=True)
def _row_max_positive(corr, ptr):
    n = ptr.shape[0] - 1
    out = np.zeros(n)
    for i in range(n):
        for t in range(ptr[i], ptr[i + 1]):
            if corr[t] > out[i]:
                out[i] = corr[t]
    return out


NEGATIVES = {"subtract": 0, "add": 1, "drop": 2}


def correlation_weights(
    corr: np.ndarray,
    ptr: np.ndarray,
    nbr_global: np.ndarray,
    rows: np.ndarray,
    sigma: float = 0.1,
    negatives: str = "subtract",
) -> np.ndarray:
    """Unnormalised transition weights from correlations.

    ``expm1(c / sigma)`` for a candidate with correlation ``c > 0``. A negative ``c`` weighs
    ``-expm1(-c / sigma)`` (``negatives='subtract'``), ``expm1(c / sigma) + 1`` (``'add'``)
    or nothing (``'drop'``). The cell itself and zero correlations weigh 0.

    Returns
    -------
    numpy.ndarray
        Weights aligned with ``corr``.
    """
    if negatives not in NEGATIVES:
        raise InputError(f"negatives must be one of {sorted(NEGATIVES)}, not {negatives!r}")
    return _raw_weights(corr, ptr, nbr_global, rows, float(sigma), NEGATIVES[negatives])


@numba.njit(cache=True)
def _raw_weights(corr, ptr, nbr_global, rows, sigma, mode):
    out = np.zeros(corr.shape[0])
    for i in range(ptr.shape[0] - 1):
        for t in range(ptr[i], ptr[i + 1]):
            c = corr[t]
            if nbr_global[t] == rows[i] or c == 0:
                continue
            if c > 0:
                out[t] = np.expm1(c / sigma)
            elif mode == 0:
                out[t] = -np.expm1(-c / sigma)
            elif mode == 1:
                out[t] = np.expm1(c / sigma) + 1.0
    return out


def self_weight(confidence: np.ndarray, upper: float, sigma: float = 0.1) -> np.ndarray:
    """Weight of staying put: ``expm1(clip(upper - confidence, 0, 1) / sigma)``.

    ``confidence`` is a cell's largest positive correlation and ``upper`` the 98th percentile
    of it over all cells, so cells whose velocity points at no neighbour mostly stay.
    """
    return np.expm1(np.clip(upper - np.asarray(confidence, dtype=np.float64), 0, 1) / sigma)


def correlation_transition(
    corr: np.ndarray,
    ptr: np.ndarray,
    nbr_global: np.ndarray,
    rows: np.ndarray,
    upper: float,
    sigma: float = 0.1,
    negatives: str = "subtract",
) -> np.ndarray:
    """Normalised transition weights from correlations, one row per cell.

    The weights of :func:`correlation_weights` and the :func:`self_weight` of each cell are
    divided by their sum of absolute values, then the self weight is dropped: the absolute
    values of a row sum to one minus the cell's share of staying.

    Parameters
    ----------
    corr, ptr, nbr_global
        Ragged correlations and the global indices of the candidates.
    rows
        Global indices of the block's cells.
    upper
        The 98th percentile of the per-cell largest correlation over all cells.
    sigma
        Kernel width.
    negatives
        How negative correlations enter (see :func:`correlation_weights`).

    Returns
    -------
    numpy.ndarray
        Weights aligned with ``corr`` (0 for the cell itself and for zero correlations).
    """
    w = correlation_weights(corr, ptr, nbr_global, rows, sigma, negatives)
    stay = self_weight(row_confidence(corr, ptr), upper, sigma)
    owner = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    total = np.bincount(owner, weights=np.abs(w), minlength=len(ptr) - 1) + stay
    scale = np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)
    return w * np.repeat(scale, np.diff(ptr))


def ito_kernel(
    x_nbr: np.ndarray,
    x_self: np.ndarray,
    v: np.ndarray,
    ptr: np.ndarray,
    nbr: np.ndarray,
    m_diff: float = 2.0,
    adaptive: bool = True,
    tol: float = 1e-7,
) -> np.ndarray:
    """Itô (drift-diffusion) kernel: transition probabilities from each cell to its candidates.

    For displacement ``d_j = x_j - x_i``: ``exp(-|d_j - tau v|^2 / (4 m_diff tau |v|^2))`` with
    the local time scale ``tau`` = mean of ``|d_j| / (v . d_j / |d_j|)`` over the candidates in
    the top 30% of forward projection (capped at 100; ``tau v = 0`` and ``tau = 100`` in the
    normalisation when none moves forward). Without ``adaptive`` it is
    ``exp(-|d_j - v|^2 / (4 m_diff))``. Probabilities below ``tol`` are dropped and each row
    renormalised; a row with no finite positive weight is uniform over its candidates.

    Returns
    -------
    numpy.ndarray
        Probabilities aligned with ``nbr`` (each row sums to one; the cell itself included).
    """
    return _ito(
        np.asarray(x_nbr, dtype=np.float64),
        np.asarray(x_self, dtype=np.float64),
        np.asarray(v, dtype=np.float64),
        ptr,
        nbr,
        1.0 / m_diff,
        adaptive,
        tol,
    )


@numba.njit(cache=True)
def _tau(d, v):
    m = d.shape[0]
    dist = np.sqrt((d * d).sum(axis=1))
    proj = np.zeros(m)
    for j in range(m):
        if dist[j] > 0:
            proj[j] = (d[j] * v).sum() / dist[j]
    cut = np.quantile(proj, 0.7)
    tot, cnt = 0.0, 0
    for j in range(m):
        if proj[j] >= cut and proj[j] > 0:
            tot += dist[j] / proj[j]
            cnt += 1
    return min(tot / cnt, 1e2) if cnt > 0 else -1.0


@numba.njit(cache=True)
def _ito(x_nbr, x_self, v, ptr, nbr, inv_s, adaptive, tol):
    out = np.zeros(nbr.shape[0])
    for i in range(ptr.shape[0] - 1):
        a, b = ptr[i], ptr[i + 1]
        d = x_nbr[nbr[a:b]] - x_self[i]
        vi, scale, shift = v[i], inv_s, v[i]
        if adaptive:
            tau = _tau(d, vi)
            vv = (vi * vi).sum()
            shift = tau * vi if tau > 0 else vi * 0.0
            scale = inv_s / ((tau if tau > 0 else 1e2) * vv)
        r = d - shift
        k = np.exp(-0.25 * scale * (r * r).sum(axis=1))
        s = k.sum()
        p = k / s if (s > 0 and np.isfinite(s)) else np.full(b - a, 1.0 / (b - a))
        for j in range(b - a):
            if p[j] <= tol:
                p[j] = 0.0
        out[a:b] = p / p.sum()
    return out


def row_norms(v) -> np.ndarray:
    """Euclidean norm of each row of a block (NaN entries count as 0), float64."""
    v = np.asarray(v.toarray() if sparse.issparse(v) else v, dtype=np.float64)
    return np.sqrt(np.nansum(v * v, axis=1))


def weighted_speed(block, speeds: np.ndarray) -> np.ndarray:
    """``T @ speeds`` for a row block ``T`` of a transition matrix (any sparse or dense)."""
    block = sparse.csr_matrix(block)
    return np.asarray(block @ speeds).ravel()
