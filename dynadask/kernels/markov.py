"""Stationary distributions of a Markov chain given only its products with vectors."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigs


def _as_distribution(v: np.ndarray) -> np.ndarray:
    p = np.abs(np.real(v)).ravel()
    return p / p.sum()


def stationary_eigs(step: Callable[[np.ndarray], np.ndarray], n: int, tol: float) -> np.ndarray:
    """Leading eigenvector (largest real part) of the linear map ``step`` (ARPACK)."""
    if n < 3:
        return stationary_power(step, n, tol, 100_000)
    op = LinearOperator((n, n), matvec=step, dtype=np.float64)
    v0 = np.full(n, 1.0 / n)
    _, vecs = eigs(op, k=1, which="LR", v0=v0, tol=tol, maxiter=max(1000, 10 * n))
    return _as_distribution(vecs[:, 0])


def stationary_power(
    step: Callable[[np.ndarray], np.ndarray], n: int, tol: float, max_iter: int
) -> np.ndarray:
    """Fixed point of the lazy chain ``p <- (p + step(p)) / 2`` from the uniform distribution.

    The lazy chain has the same stationary distribution and no period. Stops when the L1
    change falls below ``tol`` (returns the distribution) or after ``max_iter`` steps.
    """
    p = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        nxt = 0.5 * (p + step(p))
        nxt = np.abs(nxt) / np.abs(nxt).sum()
        if np.abs(nxt - p).sum() < tol:
            return nxt
        p = nxt
    return p
