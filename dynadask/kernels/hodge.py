"""Kernels of the discrete Hodge decomposition of a flow on a kNN graph (numpy and scipy).

A flow ``F`` lives on the edges of the symmetrised kNN graph: for an edge ``(i, j)`` with unit
direction ``u = (x_j - x_i) / ||x_j - x_i||``, ``F_ij = (v_i + v_j) . u / 2`` and
``F_ji = -F_ij`` (dynamo's ``graphize_velocity``). Its divergence at a node is the net
outflow ``div_i = sum_j F_ij``, and the potential ``p`` solves the unweighted graph Poisson
equation ``L p = -div`` with ``L = D - A`` (``A`` the 0/1 adjacency). ``L`` is singular, one
null vector per connected component; the solution returned is the one with zero mean on
every component (the minimum-norm least-squares solution, as dynamo's dense solve gives),
shifted so that its minimum is 0. ``p`` then increases along the flow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse.linalg import LinearOperator, cg


def edge_flows(x: np.ndarray, v: np.ndarray, rows: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """Flows ``(v_i + v_j) . u_ij / 2`` from each row to each of its neighbours.

    Parameters
    ----------
    x, v
        Coordinates and field values of the cells a block touches (``m x d``).
    rows
        Positions (in ``x``) of the block's own cells (``n``).
    nbrs
        Positions (in ``x``) of their neighbours (``n x k``; ``-1`` for none).

    Returns
    -------
    numpy.ndarray
        ``n x k`` flows (0 where there is no neighbour or it sits at the same point).
    """
    x = np.asarray(x, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    valid = nbrs >= 0
    j = np.where(valid, nbrs, rows[:, None])
    diff = x[j] - x[rows][:, None, :]
    dist = np.sqrt(np.einsum("nkd,nkd->nk", diff, diff))
    dist[dist == 0] = 1.0
    flow = np.einsum("nkd,nkd->nk", v[rows][:, None, :] + v[j], diff) / (2.0 * dist)
    flow[~valid] = 0.0
    return flow


@dataclass(frozen=True)
class EdgeFlow:
    """An antisymmetric flow on an undirected graph, one entry per edge ``lo < hi``."""

    n: int
    lo: np.ndarray
    hi: np.ndarray
    flow: np.ndarray
    """Flow from ``lo`` to ``hi`` (the flow from ``hi`` to ``lo`` is its negative)."""

    def matrix(self) -> sparse.csr_matrix:
        """The ``n x n`` antisymmetric flow matrix ``F`` (dynamo's ``obsp['<basis>_ddhodge']``)."""
        r = np.concatenate([self.lo, self.hi])
        c = np.concatenate([self.hi, self.lo])
        d = np.concatenate([self.flow, -self.flow])
        return sparse.csr_matrix((d, (r, c)), shape=(self.n, self.n))

    def divergence(self) -> np.ndarray:
        """Net outflow of every node, ``div_i = sum_j F_ij``."""
        out = np.bincount(self.lo, weights=self.flow, minlength=self.n)
        out -= np.bincount(self.hi, weights=self.flow, minlength=self.n)
        return out

    def laplacian(self) -> sparse.csr_matrix:
        """The unweighted graph Laplacian ``D - A`` of the edges."""
        deg = np.bincount(self.lo, minlength=self.n) + np.bincount(self.hi, minlength=self.n)
        r = np.concatenate([self.lo, self.hi, np.arange(self.n)])
        c = np.concatenate([self.hi, self.lo, np.arange(self.n)])
        d = np.concatenate([-np.ones(2 * self.lo.size), deg.astype(np.float64)])
        return sparse.csr_matrix((d, (r, c)), shape=(self.n, self.n))


def edges_from_knn(nbrs: np.ndarray, flows: np.ndarray) -> EdgeFlow:
    """The symmetrised graph of kNN lists with one flow per undirected edge.

    An edge found from both ends gets the mean of its two (equal up to rounding) flows.

    Parameters
    ----------
    nbrs
        ``n x k`` neighbour indices of every cell (``-1`` for none; the cell itself is skipped).
    flows
        ``n x k`` flows from each cell to each neighbour (:func:`edge_flows`).
    """
    n, k = nbrs.shape
    i = np.repeat(np.arange(n, dtype=np.int64), k)
    j = np.asarray(nbrs, dtype=np.int64).ravel()
    f = np.asarray(flows, dtype=np.float64).ravel()
    keep = (j >= 0) & (j != i)
    i, j, f = i[keep], j[keep], f[keep]
    swap = j < i
    lo, hi = np.where(swap, j, i), np.where(swap, i, j)
    f = np.where(swap, -f, f)
    key, inverse = np.unique(lo * n + hi, return_inverse=True)
    counts = np.bincount(inverse, minlength=key.size)
    mean = np.bincount(inverse, weights=f, minlength=key.size) / counts
    return EdgeFlow(n=n, lo=key // n, hi=key % n, flow=mean)


def edges_from_matrix(F: sparse.spmatrix) -> EdgeFlow:
    """The edges of a stored antisymmetric flow matrix (its upper triangle)."""
    coo = sparse.triu(sparse.csr_matrix(F), k=1).tocoo()
    return EdgeFlow(
        n=F.shape[0],
        lo=coo.row.astype(np.int64),
        hi=coo.col.astype(np.int64),
        flow=coo.data.astype(np.float64),
    )


@dataclass(frozen=True)
class PotentialSolve:
    """A potential with its solver record."""

    potential: np.ndarray
    n_components: int
    iterations: int
    residual: float
    """Relative residual ``||L p + div|| / ||div||`` of the returned potential."""


def graph_potential(
    edges: EdgeFlow, div: np.ndarray, *, rtol: float = 1e-10, maxiter: int | None = None
) -> PotentialSolve:
    """Solve ``L p = -div`` on every connected component, zero mean per component, min 0.

    One node per component is pinned to 0, which leaves a symmetric positive-definite
    system; it is solved by conjugate gradients with a Jacobi (degree) preconditioner, all
    components at once. The pinned solution is then centred on each component, which is
    the minimum-norm solution of the singular system (``sum div = 0`` on each component,
    so the system is consistent).

    Parameters
    ----------
    edges
        The graph (:func:`edges_from_knn`).
    div
        Divergence of every node.
    rtol
        Relative residual at which CG stops.
    maxiter
        CG iteration cap (default ``10 n``).

    Raises
    ------
    RuntimeError
        If CG does not reach ``rtol`` within ``maxiter`` iterations.
    """
    n = edges.n
    L = edges.laplacian()
    n_comp, label = csgraph.connected_components(L, directed=False)
    pinned = np.zeros(n, dtype=bool)
    pinned[np.unique(label, return_index=True)[1]] = True
    free = np.flatnonzero(~pinned)
    b = -np.asarray(div, dtype=np.float64)
    p = np.zeros(n)
    iterations = 0
    if free.size:
        Lf = sparse.csr_matrix(L[free][:, free])
        inv_deg = 1.0 / Lf.diagonal()
        precond = LinearOperator(Lf.shape, matvec=lambda r: inv_deg * r, dtype=np.float64)
        count = [0]

        def _count(_: np.ndarray) -> None:
            count[0] += 1

        sol, info = cg(
            Lf,
            b[free],
            rtol=rtol,
            atol=0.0,
            maxiter=maxiter or 10 * n,
            M=precond,
            callback=_count,
        )
        if info != 0:
            raise RuntimeError(
                f"the potential's conjugate-gradient solve stopped after {count[0]} iterations "
                f"without reaching rtol={rtol}: raise maxiter or loosen rtol"
            )
        p[free] = sol
        iterations = count[0]
    p -= (np.bincount(label, weights=p, minlength=n_comp) / np.bincount(label))[label]
    norm_b = np.linalg.norm(b)
    residual = float(np.linalg.norm(L @ p - b) / norm_b) if norm_b > 0 else 0.0
    p -= p.min()
    return PotentialSolve(p, int(n_comp), iterations, residual)


def upsample(values: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """The mean of ``values`` (``m x c``) over each row's neighbours ``nbrs`` (``n x k``)."""
    return np.asarray(values, dtype=np.float64)[nbrs].mean(axis=1)
