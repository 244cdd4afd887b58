"""Smoothed-aggregation algebraic multigrid: a preconditioner for graph Laplacian solves.

The potential of :func:`dynadask.kernels.hodge.graph_potential` solves a graph Laplacian
system on the kNN graph of a 2-D embedding. Such a graph is wide (its diameter grows like
the square root of the number of cells), so plain or Jacobi-preconditioned conjugate
gradients need thousands of iterations at a million cells. One V-cycle of an aggregation
multigrid hierarchy, used as the preconditioner, removes the smooth error that CG is slow
on, and the iteration count then barely grows with the graph.

The hierarchy (:func:`build`):

- nodes are grouped into aggregates by a greedy pass over the strong connections (a node
  whose neighbours are all still free seeds an aggregate of itself and them; the nodes left
  join the aggregate they are most strongly tied to);
- the tentative prolongator maps each aggregate to its nodes (a 0/1 matrix); one damped
  Jacobi step smooths it, ``P = (I - w D^-1 A) P0`` with ``w = 4 / (3 rho(D^-1 A))``;
- the coarse matrix is the Galerkin product ``P^T A P``; levels are added until a matrix has
  at most ``coarse_size`` rows, which is then factored densely.

:meth:`Hierarchy.vcycle` is one V-cycle from a zero guess: forward Gauss-Seidel sweeps before
the coarse correction and backward sweeps after it, so the preconditioner is symmetric
positive definite whenever ``A`` is, as conjugate gradients require.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.linalg
from scipy import sparse


@dataclass
class Level:
    """One level: its matrix, diagonal and the prolongator to it from the next coarser one."""

    A: sparse.csr_matrix
    diag: np.ndarray
    P: sparse.csr_matrix | None = None
    R: sparse.csr_matrix | None = None


@dataclass
class Hierarchy:
    """A multigrid hierarchy with a dense factor of its coarsest matrix."""

    levels: list[Level]
    coarse: tuple = field(default=())
    sweeps: int = 1

    def vcycle(self, b: np.ndarray) -> np.ndarray:
        """One V-cycle for ``A x = b`` from ``x = 0`` (a symmetric positive-definite map)."""
        return self._cycle(0, np.ascontiguousarray(b, dtype=np.float64))

    def _cycle(self, k: int, b: np.ndarray) -> np.ndarray:
        if k == len(self.levels) - 1:
            return scipy.linalg.cho_solve(self.coarse, b)
        lev = self.levels[k]
        A = lev.A
        x = np.zeros_like(b)
        for _ in range(self.sweeps):
            _gauss_seidel(A.indptr, A.indices, A.data, lev.diag, b, x, True)
        r = b - A @ x
        x += lev.P @ self._cycle(k + 1, lev.R @ r)
        for _ in range(self.sweeps):
            _gauss_seidel(A.indptr, A.indices, A.data, lev.diag, b, x, False)
        return x

    @property
    def operator_complexity(self) -> float:
        """Stored entries of all levels over those of the finest."""
        return sum(lev.A.nnz for lev in self.levels) / max(self.levels[0].A.nnz, 1)


def build(
    A: sparse.csr_matrix,
    *,
    coarse_size: int = 500,
    max_levels: int = 12,
    theta: float = 0.0,
    sweeps: int = 1,
) -> Hierarchy:
    """The smoothed-aggregation hierarchy of a symmetric positive-definite sparse ``A``.

    Parameters
    ----------
    A
        Symmetric positive-definite matrix (CSR; a graph Laplacian with one row per connected
        component replaced by the identity, for instance).
    coarse_size
        Rows at or below which a level is solved densely.
    max_levels
        Most levels.
    theta
        Strength threshold: ``a_ij`` joins nodes into one aggregate when
        ``|a_ij| > theta sqrt(a_ii a_jj)`` (0 takes every connection).
    sweeps
        Gauss-Seidel sweeps before and after each coarse correction.

    Returns
    -------
    Hierarchy
    """
    A = sparse.csr_matrix(A)
    levels = []
    while True:
        diag = A.diagonal().astype(np.float64)
        lev = Level(A=A, diag=diag)
        levels.append(lev)
        if A.shape[0] <= coarse_size or len(levels) == max_levels:
            break
        agg, n_agg = _aggregate(A.indptr, A.indices, A.data, diag, theta)
        if n_agg >= A.shape[0]:
            break
        n = A.shape[0]
        P0 = sparse.csr_matrix((np.ones(n), (np.arange(n), agg)), shape=(n, n_agg))
        Dinv = sparse.diags(1.0 / diag)
        omega = 4.0 / (3.0 * _spectral_radius(A, diag))
        P = (P0 - omega * (Dinv @ (A @ P0))).tocsr()
        R = P.T.tocsr()
        lev.P, lev.R = P, R
        A = (R @ (A @ P)).tocsr()
    dense = levels[-1].A.toarray().astype(np.float64)
    try:
        coarse = scipy.linalg.cho_factor(dense)
    except np.linalg.LinAlgError:
        # rounding can leave a tiny negative pivot on a nearly singular coarse matrix
        coarse = scipy.linalg.cho_factor(dense + np.eye(len(dense)) * 1e-12 * np.abs(dense).max())
    return Hierarchy(levels=levels, coarse=coarse, sweeps=sweeps)


def _spectral_radius(A: sparse.csr_matrix, diag: np.ndarray, steps: int = 20) -> float:
    """Largest eigenvalue of ``D^-1 A`` by power iteration (seeded), a little overestimated."""
    x = np.random.default_rng(0).random(A.shape[0])
    rho = 1.0
    for _ in range(steps):
        y = (A @ x) / diag
        rho = float(np.linalg.norm(y) / np.linalg.norm(x))
        x = y / np.linalg.norm(y)
    return 1.05 * rho


@numba.njit(cache=True, nogil=True)
def _gauss_seidel(indptr, indices, data, diag, b, x, forward):  # pragma: no cover - compiled
    """One Gauss-Seidel sweep of ``A x = b`` in place, forward or backward."""
    n = b.shape[0]
    for t in range(n):
        i = t if forward else n - 1 - t
        s = b[i]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i:
                s -= data[p] * x[j]
        x[i] = s / diag[i]


def _aggregate(indptr, indices, data, diag, theta):
    """Greedy aggregation over the strong connections: each node's aggregate and their count."""
    agg, n_agg = _seed_aggregates(indptr, indices, data, diag, theta)
    _join_aggregates(indptr, indices, data, agg)
    # nodes with no strong tie (an isolated or pinned node) stand alone
    alone = agg < 0
    agg[alone] = n_agg + np.arange(int(alone.sum()))
    return agg, n_agg + int(alone.sum())


@numba.njit(cache=True, nogil=True)
def _strong(a, di, dj, theta):  # pragma: no cover - compiled
    return abs(a) > theta * np.sqrt(abs(di * dj))


@numba.njit(cache=True, nogil=True)
def _seed_aggregates(indptr, indices, data, diag, theta):  # pragma: no cover - compiled
    """A node whose strong neighbours are all free seeds an aggregate with them."""
    n = diag.shape[0]
    agg = np.full(n, -1, dtype=np.int64)
    n_agg = 0
    for i in range(n):
        if agg[i] >= 0:
            continue
        free = True
        has = False
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i and _strong(data[p], diag[i], diag[j], theta):
                has = True
                free = free and agg[j] < 0
        if not (free and has):
            continue
        agg[i] = n_agg
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i and _strong(data[p], diag[i], diag[j], theta):
                agg[j] = n_agg
        n_agg += 1
    return agg, n_agg


@numba.njit(cache=True, nogil=True)
def _join_aggregates(indptr, indices, data, agg):  # pragma: no cover - compiled
    """The nodes left join the seeded aggregate they are most strongly tied to, in place."""
    first = agg.copy()
    for i in range(agg.shape[0]):
        if agg[i] >= 0:
            continue
        weight = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i and first[j] >= 0 and abs(data[p]) > weight:
                weight = abs(data[p])
                agg[i] = first[j]
