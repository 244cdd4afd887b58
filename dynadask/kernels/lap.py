"""Least-action paths on a vector field: action, its gradient, the optimiser (numpy, scipy).

A path of ``L`` points ``x_0 .. x_{L-1}`` with a fixed time step ``dt`` has the discretised
Freidlin-Wentzell action (midpoint rule, diffusion constant ``D``)::

    S = dt / (2 D) * sum_k || (x_{k+1} - x_k) / dt - f((x_k + x_{k+1}) / 2) ||^2

With ``r_k`` the residual of segment ``k`` and ``z_k = J(m_k)^T r_k`` (``m_k`` its midpoint),
the gradient with respect to an inner point is
``dS/dx_k = (r_{k-1} - r_k) / D - dt / (2 D) (z_{k-1} + z_k)``. For the Gaussian field
``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)`` the product ``J^T r`` is a closed form of the
kernel matrix (``O(L M d)``), so no ``d x d`` Jacobian is formed. For a fixed path the action
is ``(A / dt - 2 B + dt F) / (2 D)`` with ``A = sum ||dx||^2``, ``B = sum dx . f`` and
``F = sum ||f||^2``, minimised by ``dt = sqrt(A / F)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from scipy.sparse import csgraph

from .._core.errors import InputError
from .vectorfield import sq_distances


class GaussianField:
    """The learned field and its Jacobian-transpose products on batches of points."""

    def __init__(self, ctrl: np.ndarray, C: np.ndarray, beta: float) -> None:
        ctrl = np.asarray(ctrl, dtype=np.float64)
        self.centre = ctrl.mean(axis=0)
        self.ctrl = ctrl - self.centre
        self.C = np.asarray(C, dtype=np.float64)
        self.beta = float(beta)

    def _kernel(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(X, dtype=np.float64) - self.centre
        return np.exp(-self.beta * sq_distances(x, self.ctrl)), x

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """``f(X)`` for every row of ``X``."""
        return self._kernel(X)[0] @ self.C

    def residual(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``r = V - f(X)`` and ``J(X)^T r`` for every row."""
        K, x = self._kernel(X)
        r = V - K @ self.C
        w = K * (r @ self.C.T)
        z = -2.0 * self.beta * (x * w.sum(axis=1, keepdims=True) - w @ self.ctrl)
        return r, z

    def jvp(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        """``J(X) u`` for every row ``x`` of ``X`` and ``u`` of ``U``."""
        K, x = self._kernel(X)
        f = K @ self.C
        return (
            -2.0
            * self.beta
            * (f * np.einsum("ni,ni->n", x, U)[:, None] - (K * (U @ self.ctrl.T)) @ self.C)
        )


class CallableField:
    """A field given as ``fn(X) -> dX/dt``; Jacobians by central differences."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], eps: float = 1e-6) -> None:
        self.fn, self.eps = fn, float(eps)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """``f(X)`` for every row of ``X``."""
        return np.asarray(self.fn(np.asarray(X, dtype=np.float64)), dtype=np.float64)

    def jacobians(self, X: np.ndarray) -> np.ndarray:
        """``J[n, i, j] = df_i / dx_j`` at every row (``n x d x d``)."""
        X = np.asarray(X, dtype=np.float64)
        n, d = X.shape
        h = self.eps * np.maximum(1.0, np.abs(X))
        J = np.empty((n, d, d))
        for j in range(d):
            step = np.zeros_like(X)
            step[:, j] = h[:, j]
            J[:, :, j] = (self(X + step) - self(X - step)) / (2 * h[:, j : j + 1])
        return J

    def residual(self, X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``r = V - f(X)`` and ``J(X)^T r`` for every row."""
        r = V - self(X)
        return r, np.einsum("nij,ni->nj", self.jacobians(X), r)

    def jvp(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        """``J(X) u`` for every row ``x`` of ``X`` and ``u`` of ``U``."""
        return np.einsum("nij,nj->ni", self.jacobians(X), U)


Field = GaussianField | CallableField


# ------------------------------------------------------------------------------------------
# action


def segment_actions(path: np.ndarray, field: Field, dt: float, D: float = 1.0) -> np.ndarray:
    """The action of each of the ``L - 1`` segments of ``path`` (their sum is ``S``)."""
    path = np.asarray(path, dtype=np.float64)
    mid = 0.5 * (path[:-1] + path[1:])
    r = np.diff(path, axis=0) / dt - field(mid)
    return 0.5 * dt / D * np.einsum("ki,ki->k", r, r)


def action(path: np.ndarray, field: Field, dt: float, D: float = 1.0) -> float:
    """The discretised action of ``path`` with time step ``dt``."""
    return float(segment_actions(path, field, dt, D).sum())


def action_and_gradient(
    inner: np.ndarray, start: np.ndarray, end: np.ndarray, field: Field, dt: float, D: float
) -> tuple[float, np.ndarray]:
    """Action of the path ``start, inner, end`` and its gradient in the (flat) inner points."""
    d = start.shape[0]
    path = np.vstack([start, inner.reshape(-1, d), end])
    mid = 0.5 * (path[:-1] + path[1:])
    r, z = field.residual(mid, np.diff(path, axis=0) / dt)
    S = 0.5 * dt / D * float(np.einsum("ki,ki->", r, r))
    grad = (r[:-1] - r[1:]) / D - dt / (2.0 * D) * (z[:-1] + z[1:])
    return S, grad.ravel()


def best_dt(path: np.ndarray, field: Field, D: float = 1.0) -> tuple[float, float]:
    """The time step minimising the action of a fixed path, and that action.

    ``dt = sqrt(A / F)`` (see the module's note); a path where the field vanishes at every
    midpoint has no finite optimum and keeps ``dt = 1``.
    """
    path = np.asarray(path, dtype=np.float64)
    dx = np.diff(path, axis=0)
    f = field(0.5 * (path[:-1] + path[1:]))
    A, B, F = float(np.sum(dx * dx)), float(np.sum(dx * f)), float(np.sum(f * f))
    if F <= 0 or A <= 0:
        return 1.0, action(path, field, 1.0, D)
    dt = float(np.sqrt(A / F))
    return dt, (A / dt - 2.0 * B + dt * F) / (2.0 * D)


def straight_path(start: np.ndarray, end: np.ndarray, n_points: int) -> np.ndarray:
    """``n_points + 1`` evenly spaced points from ``start`` to ``end``."""
    s = np.linspace(0.0, 1.0, n_points + 1)[:, None]
    return start[None, :] + s * (end - start)[None, :]


def optimise_path(
    path: np.ndarray,
    field: Field,
    *,
    D: float = 10.0,
    EM_steps: int = 2,
    gtol: float = 1e-5,
    maxiter: int | None = None,
    method: str = "L-BFGS-B",
) -> dict:
    """The least-action path from an initial one, end points fixed, time step free.

    As dynamo: a first ``dt`` minimising the action of the initial path, then ``EM_steps``
    rounds of (a) a quasi-Newton minimisation over the inner points at the fixed total time
    ``dt * L`` (so the step becomes ``dt L / (L - 1)``) and (b) the best ``dt`` for the new
    path. ``method='BFGS'`` is dynamo's optimiser (scipy's dense BFGS: two ``n^3`` matrix
    products per iteration, ``n = (L - 2) d``); the default ``'L-BFGS-B'`` (limited memory,
    ``O(n)`` per iteration) reaches the same minimum much faster in many dimensions.

    Returns
    -------
    dict
        ``path`` (``L x d``), ``dt``, ``action`` (total), ``iterations`` (summed),
        ``converged`` (every BFGS round ended on its tolerance).
    """
    path = np.array(path, dtype=np.float64, copy=True)
    if path.ndim != 2 or path.shape[0] < 3:
        raise InputError(f"a path needs at least 3 points (L x d), got shape {path.shape}")
    start, end = path[0].copy(), path[-1].copy()
    dt, S = best_dt(path, field, D)
    iterations, converged = 0, True
    for _ in range(int(EM_steps)):
        step = dt * path.shape[0] / (path.shape[0] - 1)
        sol = minimize(
            action_and_gradient,
            path[1:-1].ravel(),
            args=(start, end, field, step, D),
            jac=True,
            method=method,
            options=_options(method, gtol, maxiter),
        )
        path[1:-1] = sol.x.reshape(-1, path.shape[1])
        iterations += int(sol.nit)
        converged &= bool(sol.success)
        dt, S = best_dt(path, field, D)
    return {"path": path, "dt": dt, "action": S, "iterations": iterations, "converged": converged}


def _options(method: str, gtol: float, maxiter: int | None) -> dict:
    if method not in ("BFGS", "L-BFGS-B"):
        raise InputError(f"unknown optimiser {method!r}: use 'L-BFGS-B' or 'BFGS'")
    opts: dict = {"gtol": gtol}
    if method == "L-BFGS-B":
        opts.update(ftol=1e-12, maxcor=20, maxfun=10**6)
    if maxiter:
        opts["maxiter"] = int(maxiter)
    return opts


def cumulative_action(path: np.ndarray, field: Field, dt: float, D: float) -> np.ndarray:
    """The action from the start to each point (``L``, starting at 0)."""
    return np.concatenate([[0.0], np.cumsum(segment_actions(path, field, dt, D))])


# ------------------------------------------------------------------------------------------
# initial paths: shortest paths on a sparse graph of cells


def knn_graph(idx: np.ndarray) -> sparse.csr_matrix:
    """The undirected, unweighted graph of a kNN table (``n x k``, self entries dropped)."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    cols = idx.ravel()
    keep = (cols >= 0) & (cols != rows)
    g = sparse.csr_matrix((np.ones(keep.sum(), np.int8), (rows[keep], cols[keep])), shape=(n, n))
    return (g + g.T).tocsr()


def hop_paths(
    graph: sparse.csr_matrix, sources: np.ndarray, targets: np.ndarray
) -> list[np.ndarray | None]:
    """Fewest-hop paths ``sources[i] -> targets[i]`` (node lists; ``None`` if unconnected).

    One breadth-first search per distinct source (``O(nodes + edges)`` each).
    """
    out: list[np.ndarray | None] = [None] * len(sources)
    for s in np.unique(sources):
        _, pred = csgraph.breadth_first_order(
            graph, int(s), directed=False, return_predecessors=True
        )
        for i in np.flatnonzero(sources == s):
            node, walk = int(targets[i]), []
            while node >= 0 and node != s:
                walk.append(node)
                node = int(pred[node])
            if node == s:
                out[i] = np.array([s] + walk[::-1], dtype=np.int64)
    return out


def arclength_points(X: np.ndarray, num: int) -> np.ndarray:
    """``num`` points evenly spaced in arc length along the polyline ``X`` (ends included)."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] == 1:
        return np.repeat(X, num, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(X, axis=0), axis=1))])
    z = np.linspace(0.0, arc[-1], num)
    return np.column_stack([np.interp(z, arc, X[:, j]) for j in range(X.shape[1])])
