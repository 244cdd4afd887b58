"""Cell sampling on in-memory coordinates: velocity-weighted draws, TRN nodes, k-means.

The topology representing network (TRN) places ``n`` nodes among the points by neural gas
learning: each step draws a point, ranks the nodes by their squared distance to it and
moves node of rank ``k`` towards the point by ``eps(t) * exp(-k / lam(t))``, with ``lam``
and ``eps`` decaying geometrically from their initial to their final values. The sample is
the point nearest to each node.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.cluster.vq import kmeans2
from scipy.spatial import cKDTree

from .._core.errors import InputError


def by_velocity(V: np.ndarray, n: int, seed: int) -> np.ndarray:  # noqa: N803
    """``n`` distinct rows drawn with probability proportional to the row norm of ``V``."""
    speed = np.linalg.norm(np.asarray(V, dtype=np.float64), axis=1)
    total = speed.sum()
    if not np.isfinite(total) or total <= 0:
        raise InputError("velocity sampling needs finite velocities that are not all zero")
    if np.count_nonzero(speed) < n:
        raise InputError(
            f"velocity sampling of {n} cells needs at least {n} cells with non-zero velocity "
            f"(there are {np.count_nonzero(speed)}): lower n or use method='random'"
        )
    rng = np.random.default_rng(seed)
    return rng.choice(np.arange(len(speed)), size=n, p=speed / total, replace=False)


@numba.njit(cache=True)
def _neural_gas(nodes, points, lam0, lam1, eps0, eps1, cutoff):  # pragma: no cover - numba
    n_steps = points.shape[0]
    n_nodes, n_dims = nodes.shape
    diff = np.empty((n_nodes, n_dims))
    sq = np.empty(n_nodes)
    for t in range(1, n_steps + 1):
        frac = t / n_steps
        lam = lam0 * (lam1 / lam0) ** frac
        eps = eps0 * (eps1 / eps0) ** frac
        p = points[t - 1]
        for i in range(n_nodes):
            s = 0.0
            for d in range(n_dims):
                diff[i, d] = p[d] - nodes[i, d]
                s += diff[i, d] * diff[i, d]
            sq[i] = s
        order = np.argsort(sq)
        limit = n_nodes if cutoff == 0 else -lam * np.log(cutoff / eps)
        for rank in range(n_nodes):
            if rank >= limit:
                break
            i = order[rank]
            step = eps * np.exp(-rank / lam)
            for d in range(n_dims):
                nodes[i, d] += step * diff[i, d]
    return nodes


def trn_nodes(
    X: np.ndarray,  # noqa: N803
    n: int,
    seed: int,
    *,
    tmax: int = 200,
    li: float = 0.2,
    lf: float = 0.01,
    ei: float = 0.3,
    ef: float = 0.05,
    c: float = 0,
) -> np.ndarray:
    """Node positions of a topology representing network of ``n`` nodes on ``X``.

    Initial nodes are ``n`` points drawn with replacement by ``default_rng(seed)``; the
    ``tmax * n`` training points are drawn by a fresh ``default_rng(seed)`` (dynamo's draws).
    ``li`` is scaled by ``n``; ``c > 0`` moves only nodes whose step would exceed ``c``.
    """
    X = np.asarray(X, dtype=np.float64)  # noqa: N806
    nodes = X[np.random.default_rng(seed).integers(0, X.shape[0], n)].copy()
    n_steps = int(tmax * n)
    points = X[np.random.default_rng(seed).integers(0, X.shape[0], n_steps)]
    return _neural_gas(nodes, points, li * n, lf, ei, ef, float(c))


def nearest_points(X: np.ndarray, query: np.ndarray) -> np.ndarray:  # noqa: N803
    """Index of the row of ``X`` nearest to each row of ``query`` (exact, Euclidean)."""
    return cKDTree(np.asarray(X, dtype=np.float64)).query(np.asarray(query), k=1)[1]


def by_trn(X: np.ndarray, n: int, seed: int, **kwargs) -> np.ndarray:  # noqa: N803
    """The point nearest to each node of a TRN of ``n`` nodes (see :func:`trn_nodes`)."""
    return nearest_points(X, trn_nodes(X, n, seed, **kwargs))


def by_kmeans(X: np.ndarray, n: int, seed: int) -> np.ndarray:  # noqa: N803
    """The point nearest to each of ``n`` k-means centroids (``scipy.cluster.vq.kmeans2``)."""
    X = np.asarray(X, dtype=np.float64)  # noqa: N806
    centroids, _ = kmeans2(X, n, seed=seed)
    return nearest_points(X, centroids)


def smallest_distance(coords: np.ndarray, leaf_size: int, query: np.ndarray) -> float:
    """Smallest distance from the rows ``query`` of ``coords`` to another row of ``coords``."""
    tree = cKDTree(coords, leafsize=leaf_size)
    dist, _ = tree.query(coords[query], k=2)
    return float(dist[:, 1].min())
