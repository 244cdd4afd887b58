"""Potential landscapes of a learned 2-D field: Ao, Bhattacharya and Tang (numpy, scipy).

The field is dynamo's Gaussian-kernel form ``f(x) = K(x, ctrl) C`` with its analytic
Jacobian (:mod:`dynadask.kernels.vectorfield`). Three constructions:

- **Ao** (Ao 2004): at a point with Jacobian ``F`` and diffusion ``D``, the antisymmetric
  ``Q`` solving ``F Q - (F Q)^T = F D - (F D)^T`` (linear in ``Q``'s entries, solved by least
  squares), then ``U = -x^T (D + Q)^-1 F x / 2``, a quadratic form about the origin;
- **Bhattacharya** (Bhattacharya, Zhang and Andersen 2011): Euler paths from a grid of
  starts, ``dU = -f . dx`` accumulated along each, every path shifted so that its end meets
  the potential of the attractor it reached;
- **Tang** (Tang et al. 2017, A-type action): the least action
  ``S = 1/4 sum_k (dx_k/dt - f(x_{k-1}))^T D^-1 (dx_k/dt - f(x_{k-1})) dt`` of a path
  between a reference stable point and each grid point, minimised with the exact gradient.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .vectorfield import evaluate, jacobian


def _antisym_basis(d: int) -> np.ndarray:
    """``m x d x d`` matrices ``E_k`` with ``+1`` at ``(a, b)``, ``-1`` at ``(b, a)``, ``a < b``."""
    pairs = [(a, b) for a in range(d) for b in range(a + 1, d)]
    E = np.zeros((len(pairs), d, d))
    for k, (a, b) in enumerate(pairs):
        E[k, a, b], E[k, b, a] = 1.0, -1.0
    return E


def _skew(M: np.ndarray) -> np.ndarray:
    return M - np.swapaxes(M, -1, -2)


def ao_block(
    x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float, D: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ao's potential at the rows of ``x``: ``(U (n,), S (n, d, d), A (n, d, d))``.

    ``S`` and ``A`` are the symmetric and antisymmetric parts of ``(D + Q)^-1``.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    F = jacobian(x, ctrl, C, beta)
    E = _antisym_basis(d)
    # column k of each cell's system: vec(F E_k - (F E_k)^T)
    M = _skew(np.einsum("nij,kjl->nkil", F, E)).reshape(n, E.shape[0], d * d)
    rhs = _skew(F @ D).reshape(n, d * d)
    q = np.einsum("nkr,nr->nk", np.linalg.pinv(np.swapaxes(M, 1, 2)), rhs)
    Q = np.einsum("nk,kij->nij", q, E)
    inv = np.linalg.inv(D[None] + Q)
    U = -0.5 * np.einsum("ni,nij,njk,nk->n", x, inv, F, x)
    return U, (inv + np.swapaxes(inv, 1, 2)) / 2, (inv - np.swapaxes(inv, 1, 2)) / 2


def euler_paths(
    starts: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    dt: float,
    n_steps: int,
    keep_every: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Euler paths ``x += f dt`` from every start, with ``dU = -f . dx`` accumulated.

    Returns the kept positions ``(n, K, d)`` and potentials ``(n, K)`` (every
    ``keep_every``-th step and the last, the start's potential 0) and the last step's change
    of potential ``(n,)`` (convergence).
    """
    x = np.asarray(starts, dtype=np.float64).copy()
    pot = np.zeros(x.shape[0])
    xs, ps = [x.copy()], [pot.copy()]
    change = np.zeros_like(pot)
    for step in range(1, n_steps):
        f = evaluate(x, ctrl, C, beta)
        dx = f * dt
        x = x + dx
        change = -(f * dx).sum(axis=1)
        pot = pot + change
        if step % keep_every == 0 or step == n_steps - 1:
            xs.append(x.copy())
            ps.append(pot.copy())
    return np.stack(xs, axis=1), np.stack(ps, axis=1), change


def align_basins(
    ends: np.ndarray, end_pot: np.ndarray, spacing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Shift of each path's potential so its end meets its attractor's, as Bhattacharya's.

    Paths are visited in order; a path whose end lies within ``spacing`` (in every
    coordinate) of a known attractor joins it, otherwise its end becomes a new attractor
    whose potential is the path's end potential. Returns ``shift`` (n,), to subtract from
    each path, and the attractors' positions.
    """
    att: list[np.ndarray] = []
    att_pot: list[float] = []
    shift = np.zeros(len(ends))
    for i, (e, p) in enumerate(zip(ends, end_pot, strict=True)):
        for a, ap in zip(att, att_pot, strict=True):
            if np.all(np.abs(e - a) < spacing):
                shift[i] = p - ap
                break
        else:
            att.append(e)
            att_pot.append(float(p))
    return shift, np.array(att).reshape(-1, ends.shape[1])


def action_and_gradient(
    inner: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    Dinv: np.ndarray,
    dt: float,
) -> tuple[float, np.ndarray]:
    """The A-type action of the path ``start, inner..., end`` and its gradient in ``inner``."""
    d = start.size
    p = np.vstack([start[None], inner.reshape(-1, d), end[None]])
    left = p[:-1]
    r = (p[1:] - left) / dt - evaluate(left, ctrl, C, beta)
    g = 0.5 * (r @ Dinv.T) * dt  # dS/dr_k (Dinv symmetric)
    S = 0.25 * float(np.einsum("ki,ij,kj->", r, Dinv, r)) * dt
    J = jacobian(p[1:-1], ctrl, C, beta)
    grad = (g[:-1] - g[1:]) / dt - np.einsum("kij,ki->kj", J, g[1:])
    return S, grad.ravel()


def least_action(
    start: np.ndarray,
    end: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    Dinv: np.ndarray,
    n_points: int,
    total_time: float,
    tol: float,
) -> tuple[float, np.ndarray]:
    """Least A-type action from ``start`` to ``end`` over ``n_points`` steps in ``total_time``.

    The path starts as the straight line; returns the action and the path (``n_points + 1``
    points).
    """
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    dt = total_time / n_points
    line = start + np.linspace(0.0, 1.0, n_points + 1)[:, None] * (end - start)
    res = minimize(
        action_and_gradient,
        line[1:-1].ravel(),
        args=(start, end, ctrl, C, beta, Dinv, dt),
        jac=True,
        method="L-BFGS-B",
        options={"ftol": tol, "gtol": tol, "maxiter": 2000},
    )
    path = np.vstack([start[None], res.x.reshape(-1, start.size), end[None]])
    return float(res.fun), path


def tang_block(
    points: np.ndarray,
    ref: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    Dinv: np.ndarray,
    n_points: int,
    total_time: float,
    tol: float,
) -> np.ndarray:
    """The least action from ``ref`` to each of ``points`` (n,)."""
    return np.array(
        [
            least_action(ref, p, ctrl, C, beta, Dinv, n_points, total_time, tol)[0]
            for p in np.asarray(points, dtype=np.float64)
        ]
    )
