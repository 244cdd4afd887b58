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

import numba
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse.linalg import LinearOperator, cg

from .._core.errors import InputError
from . import multigrid


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


def index_dtype(n: int) -> type:
    """The smallest integer type that holds node numbers of an ``n``-node graph."""
    return np.int32 if n < np.iinfo(np.int32).max else np.int64


@dataclass(frozen=True)
class EdgeFlow:
    """An antisymmetric flow on an undirected graph, one entry per edge ``lo < hi``.

    Node numbers are 32-bit below 2**31 nodes: at a million cells and 30 neighbours the
    edge lists are 30 million long, and every byte per edge counts on the client.
    """

    n: int
    lo: np.ndarray
    hi: np.ndarray
    flow: np.ndarray
    """Flow from ``lo`` to ``hi`` (the flow from ``hi`` to ``lo`` is its negative)."""

    def matrix(self) -> sparse.csr_matrix:
        """The ``n x n`` antisymmetric flow matrix ``F`` (dynamo's ``obsp['<basis>_ddhodge']``)."""
        return _symmetric_csr(self.n, self.lo, self.hi, self.flow, -self.flow)

    def divergence(self) -> np.ndarray:
        """Net outflow of every node, ``div_i = sum_j F_ij``."""
        out = np.bincount(self.lo, weights=self.flow, minlength=self.n)
        out -= np.bincount(self.hi, weights=self.flow, minlength=self.n)
        return out

    def degree(self) -> np.ndarray:
        """Number of edges at every node."""
        return np.bincount(self.lo, minlength=self.n) + np.bincount(self.hi, minlength=self.n)

    def laplace(
        self, x: np.ndarray, free: np.ndarray | None = None, deg: np.ndarray | None = None
    ) -> np.ndarray:
        """``L x`` with ``L = D - A``, from the edge lists (no matrix is built).

        With ``free`` (1.0 for a free node, 0.0 for a pinned one): ``L`` restricted to the
        free nodes and the identity on the pinned ones, ``F L F x + (1 - F) x``. ``deg``:
        the degrees as floats, when already at hand.
        """
        deg = self.degree().astype(np.float64) if deg is None else deg
        mask = np.ones(self.n) if free is None else np.asarray(free, dtype=np.float64)
        out = np.empty(self.n)
        _masked_laplace(self.lo, self.hi, deg, mask, np.ravel(np.asarray(x, np.float64)), out)
        return out

    def laplacian(self) -> sparse.csr_matrix:
        """The unweighted graph Laplacian ``D - A`` of the edges."""
        ones = np.ones(self.lo.size)
        A = _symmetric_csr(self.n, self.lo, self.hi, -ones, -ones)
        return (A + sparse.diags(self.degree().astype(np.float64))).tocsr()

    def pinned_laplacian(self, pinned: np.ndarray) -> sparse.csr_matrix:
        """``D - A`` on the free nodes, the identity on the ``pinned`` ones, as a CSR matrix.

        Symmetric positive definite when every connected component has a pinned node. Its
        values (-1, the degrees, 1) are small integers, so they are stored exactly as float32
        with 32-bit column numbers: 8 bytes per edge end.
        """
        pinned = np.asarray(pinned, dtype=np.bool_)
        counts = np.ones(self.n, dtype=np.int64)
        _free_ends(self.lo, self.hi, pinned, counts)
        indptr = np.zeros(self.n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        kind = index_dtype(int(indptr[-1]))
        indices = np.empty(int(indptr[-1]), dtype=kind)
        data = np.empty(int(indptr[-1]), dtype=np.float32)
        deg = self.degree().astype(np.float32)
        _fill_laplacian(self.lo, self.hi, pinned, deg, indptr, indices, data)
        return sparse.csr_matrix(
            (data, indices, indptr.astype(kind, copy=False)), shape=(self.n, self.n)
        )

    def components(self) -> tuple[int, np.ndarray]:
        """Connected components: their number and each node's label."""
        ones = np.ones(self.lo.size, dtype=np.int8)
        graph = sparse.csr_matrix((ones, (self.lo, self.hi)), shape=(self.n, self.n))
        return csgraph.connected_components(graph, directed=True, connection="weak")


@numba.njit(cache=True, nogil=True)
def _masked_laplace(lo, hi, deg, free, x, out):  # pragma: no cover - compiled
    """``out = F (D - A) F x + (1 - F) x`` over the edge lists ``(lo, hi)``, one pass."""
    n = x.shape[0]
    for i in range(n):
        out[i] = deg[i] * free[i] * x[i]
    for e in range(lo.shape[0]):
        a, b = lo[e], hi[e]
        out[a] -= free[b] * x[b]
        out[b] -= free[a] * x[a]
    for i in range(n):
        out[i] = free[i] * out[i] + (1.0 - free[i]) * x[i]


@numba.njit(cache=True, nogil=True)
def _free_ends(lo, hi, pinned, counts):  # pragma: no cover - compiled
    """Add to ``counts`` each node's edges to free nodes (pinned nodes keep none)."""
    for e in range(lo.shape[0]):
        a, b = lo[e], hi[e]
        if not pinned[a] and not pinned[b]:
            counts[a] += 1
            counts[b] += 1


@numba.njit(cache=True, nogil=True)
def _fill_laplacian(lo, hi, pinned, deg, indptr, indices, data):  # pragma: no cover - compiled
    """Rows of the pinned Laplacian: the diagonal first, then -1 per edge between free nodes."""
    n = deg.shape[0]
    fill = indptr[:-1].copy()
    for i in range(n):
        indices[fill[i]] = i
        data[fill[i]] = 1.0 if pinned[i] else deg[i]
        fill[i] += 1
    for e in range(lo.shape[0]):
        a, b = lo[e], hi[e]
        if pinned[a] or pinned[b]:
            continue
        indices[fill[a]] = b
        data[fill[a]] = -1.0
        fill[a] += 1
        indices[fill[b]] = a
        data[fill[b]] = -1.0
        fill[b] += 1


def _symmetric_csr(n: int, lo, hi, upper: np.ndarray, lower: np.ndarray) -> sparse.csr_matrix:
    """CSR: ``upper`` at ``(lo, hi)``, ``lower`` at ``(hi, lo)`` (32-bit indices if they fit)."""
    rows = np.concatenate([lo, hi])
    cols = np.concatenate([hi, lo])
    data = np.concatenate([upper, lower])
    return sparse.csr_matrix((data, (rows, cols)), shape=(n, n))


def edges_from_knn(nbrs: np.ndarray, flows: np.ndarray) -> EdgeFlow:
    """The symmetrised graph of kNN lists with one flow per undirected edge.

    An edge found from both ends gets the mean of its two (equal up to rounding) flows.
    Duplicates are merged by a sparse matrix's sum of duplicates (32-bit indices), which
    needs about half the memory of sorting 64-bit edge keys.

    Parameters
    ----------
    nbrs
        ``n x k`` neighbour indices of every cell (``-1`` for none; the cell itself is skipped).
    flows
        ``n x k`` flows from each cell to each neighbour (:func:`edge_flows`).
    """
    n, k = nbrs.shape
    kind = index_dtype(n)
    i = np.repeat(np.arange(n, dtype=kind), k)
    j = np.asarray(nbrs).astype(kind, copy=False).ravel()
    f = np.asarray(flows, dtype=np.float64).ravel()
    keep = (j >= 0) & (j != i)
    if not keep.all():
        i, j, f = i[keep], j[keep], f[keep]
    del keep
    swap = j < i
    lo, hi = np.where(swap, j, i), np.where(swap, i, j)
    del i, j
    f = np.where(swap, -f, f)
    del swap
    summed = sparse.csr_matrix((f, (lo, hi)), shape=(n, n))
    del f
    counts = sparse.csr_matrix((np.ones(lo.size, dtype=np.float32), (lo, hi)), shape=(n, n))
    del lo, hi
    summed.sum_duplicates()
    counts.sum_duplicates()
    rows = np.repeat(np.arange(n, dtype=kind), np.diff(summed.indptr))
    flow = summed.data / counts.data
    return EdgeFlow(n=n, lo=rows, hi=summed.indices.astype(kind, copy=False), flow=flow)


def edges_from_matrix(F: sparse.spmatrix) -> EdgeFlow:
    """The edges of a stored antisymmetric flow matrix (its upper triangle)."""
    coo = sparse.triu(sparse.csr_matrix(F), k=1).tocoo()
    kind = index_dtype(F.shape[0])
    return EdgeFlow(
        n=F.shape[0],
        lo=coo.row.astype(kind),
        hi=coo.col.astype(kind),
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


PRECONDITIONERS = ("multigrid", "jacobi")
"""Preconditioners of :func:`graph_potential`'s conjugate gradients."""


def graph_potential(
    edges: EdgeFlow,
    div: np.ndarray,
    *,
    rtol: float = 1e-10,
    maxiter: int | None = None,
    preconditioner: str = "multigrid",
) -> PotentialSolve:
    """Solve ``L p = -div`` on every connected component, zero mean per component, min 0.

    One node per component is pinned to 0, which leaves a symmetric positive-definite
    system; it is solved by preconditioned conjugate gradients, all components at once. The
    pinned solution is then centred on each component, which is the minimum-norm solution of
    the singular system (``sum div = 0`` on each component, so the system is consistent).

    The default preconditioner is one V-cycle of a smoothed-aggregation multigrid hierarchy
    of the pinned Laplacian (:mod:`dynadask.kernels.multigrid`): on the kNN graph of a 2-D
    embedding it needs a few dozen iterations where the Jacobi (degree) preconditioner needs
    thousands (their number grows with the graph's diameter). ``'jacobi'`` applies ``L``
    from the edge lists by a compiled loop and builds no matrix.

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
    preconditioner
        ``'multigrid'`` or ``'jacobi'``.

    Raises
    ------
    dynadask.InputError
        An unknown ``preconditioner`` (a ``ValueError``).
    RuntimeError
        If CG does not reach ``rtol`` within ``maxiter`` iterations.
    """
    if preconditioner not in PRECONDITIONERS:
        raise InputError(f"unknown preconditioner {preconditioner!r}: use one of {PRECONDITIONERS}")
    n = edges.n
    n_comp, label = edges.components()
    pinned = np.zeros(n, dtype=bool)
    pinned[np.unique(label, return_index=True)[1]] = True
    free = (~pinned).astype(np.float64)
    deg = edges.degree().astype(np.float64)
    b = -np.asarray(div, dtype=np.float64)
    p = np.zeros(n)
    iterations = 0
    if not pinned.all():
        if preconditioner == "multigrid":
            op = edges.pinned_laplacian(pinned)
            hierarchy = multigrid.build(op)
            precond = LinearOperator((n, n), matvec=hierarchy.vcycle, dtype=np.float64)
        else:
            # L restricted to the free nodes, the identity on the pinned ones: symmetric
            # positive definite, applied from the edge lists in one compiled pass
            op = LinearOperator(
                (n, n), matvec=lambda x: edges.laplace(x, free, deg), dtype=np.float64
            )
            inv_deg = np.where(pinned, 1.0, 1.0 / np.maximum(deg, 1.0))
            precond = LinearOperator(
                (n, n), matvec=lambda r: inv_deg * np.ravel(r), dtype=np.float64
            )
        count = [0]

        def _count(_: np.ndarray) -> None:
            count[0] += 1

        sol, info = cg(
            op,
            free * b,
            rtol=rtol,
            atol=0.0,
            maxiter=maxiter or 10 * n,
            M=precond,
            callback=_count,
        )
        del op, precond
        if info != 0:
            raise RuntimeError(
                f"the potential's conjugate-gradient solve stopped after {count[0]} iterations "
                f"without reaching rtol={rtol}: raise maxiter or loosen rtol"
            )
        p = free * sol
        iterations = count[0]
    p -= (np.bincount(label, weights=p, minlength=n_comp) / np.bincount(label))[label]
    norm_b = np.linalg.norm(b)
    residual = float(np.linalg.norm(edges.laplace(p, deg=deg) - b) / norm_b) if norm_b > 0 else 0.0
    p -= p.min()
    return PotentialSolve(p, int(n_comp), iterations, residual)


def upsample(values: np.ndarray, nbrs: np.ndarray) -> np.ndarray:
    """The mean of ``values`` (``m x c``) over each row's neighbours ``nbrs`` (``n x k``)."""
    return np.asarray(values, dtype=np.float64)[nbrs].mean(axis=1)
