"""The known truth of a simulated network: its vector field, fixed points and a grid of it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..kernels.sim_network import full_jacobian, is_coupled, reduced_field
from .models import Network, build_network

NetLike = Network | Mapping | str


def _net_dict(model: NetLike, params: Mapping | None = None) -> dict[str, np.ndarray]:
    if isinstance(model, Mapping):
        model = model.get("network", model)
        return {k: np.asarray(model[k]) for k in ("beta", "gamma", "gene", "kind", "inputs", "par")}
    return build_network(model, params).as_dict()


def vector_field(
    x: np.ndarray,
    model: NetLike = "bifurcation",
    params: Mapping | None = None,
    *,
    splicing: bool = False,
) -> np.ndarray:
    """Return the true velocity of a simulated network at the states ``x``.

    Parameters
    ----------
    x
        States, (cells, genes) spliced levels, or (cells, 2 x genes) ``[u, s]`` when
        ``splicing``.
    model
        A model name, a :class:`~dynadask.sim.models.Network`, or a simulation record
        (``adata.uns['sim']``) whose ``network`` entry holds the arrays.
    params
        Parameters of a named model.
    splicing
        If False, the reduced field in spliced space ``alpha(s) - gamma s`` (unspliced at
        its quasi-steady state); if True, the full ``(du, ds) = (alpha(s) - beta u,
        beta u - gamma s)``.

    Returns
    -------
    numpy.ndarray
        Velocities, the shape of ``x`` (2-D).
    """
    net = _net_dict(model, params)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if not splicing:
        return reduced_field(x, net)
    g = net["beta"].size
    u, s = x[:, :g], x[:, g:]
    ds = net["beta"] * u - net["gamma"] * s
    du = reduced_field(s, net) + net["gamma"] * s - net["beta"] * u
    return np.hstack([du, ds])


def _reduced_jacobian(s: np.ndarray, net: dict, eps: float = 1e-6) -> np.ndarray:
    # batched central differences: (points, genes, genes)
    g = s.shape[1]
    jac = np.empty((s.shape[0], g, g))
    for j in range(g):
        step = eps * np.maximum(1.0, np.abs(s[:, j]))
        hi, lo = s.copy(), s.copy()
        hi[:, j] += step
        lo[:, j] -= step
        jac[:, :, j] = (reduced_field(hi, net) - reduced_field(lo, net)) / (2 * step[:, None])
    return jac


def _newton(s: np.ndarray, net: dict, n_iter: int = 60) -> np.ndarray:
    for _ in range(n_iter):
        f = reduced_field(s, net)
        jac = _reduced_jacobian(s, net)
        ok = np.abs(np.linalg.det(jac)) > 1e-300
        step = np.zeros_like(s)
        step[ok] = np.linalg.solve(jac[ok], -f[ok][..., None])[..., 0]
        s = np.clip(s + np.clip(step, -0.5 * s - 1.0, None), 0.0, None)
    return s


def _relax(s: np.ndarray, net: dict, t: float, steps: int = 400) -> np.ndarray:
    h = t / steps
    for _ in range(steps):
        s = np.clip(s + h * reduced_field(s, net), 0.0, None)
    return s


def _starts(net: dict, n_starts: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    top = upper_levels(net)
    g = top.size
    if g <= 2:
        side = int(np.ceil(n_starts ** (1 / g)))
        axes = [np.linspace(0, t, side) for t in top]
        starts = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
    else:
        starts = np.random.default_rng(seed).uniform(0, 1, (n_starts, g)) * top
    return starts, top


def upper_levels(model: NetLike) -> np.ndarray:
    """Return each gene's highest reachable spliced level (all its terms at full strength)."""
    net = _net_dict(model) if not isinstance(model, dict) or "par" not in model else model
    top = np.zeros(net["beta"].size)
    np.add.at(top, net["gene"], net["par"][:, 0])
    return top / net["gamma"]


def fixed_points(
    model: NetLike = "bifurcation",
    params: Mapping | None = None,
    *,
    n_starts: int = 400,
    seed: int = 0,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray]:
    """Return the fixed points of a simulated network in spliced space and their stability.

    With constant transcription the only fixed point is ``alpha / gamma`` (stable).
    Otherwise they are found by Newton's method from a grid (two genes) or random points
    (more genes) and from where the flow takes those points, kept when the velocity
    vanishes to ``tol`` (relative to the levels), de-duplicated. Stability is read from the
    eigenvalues of the full ``(u, s)`` system's Jacobian.

    Returns
    -------
    points : numpy.ndarray
        (k, genes) spliced levels; the unspliced levels are ``gamma s / beta``.
    stable : numpy.ndarray
        (k,) whether each point is asymptotically stable.
    """
    net = _net_dict(model, params)
    if not is_coupled(net["inputs"], net["kind"]):  # constant transcription: one stable point
        return upper_levels(net)[None], np.ones(1, dtype=bool)
    starts, top = _starts(net, n_starts, seed)
    horizon = 10.0 / float(np.min(net["gamma"]))
    cand = _newton(np.vstack([starts, _relax(starts, net, horizon)]), net)
    scale = np.maximum(top, 1.0)
    ok = np.all(np.abs(reduced_field(cand, net)) <= tol * scale * net["gamma"], axis=1)
    points: list[np.ndarray] = []
    for p in cand[ok]:
        if all(np.max(np.abs(p - q) / scale) > 1e-4 for q in points):
            points.append(p)
    pts = np.array(sorted(points, key=tuple)).reshape(-1, net["beta"].size)
    stable = np.array(
        [np.all(np.linalg.eigvals(full_jacobian(p, net)).real < 0) for p in pts], dtype=bool
    )
    return pts, stable


def field_grid(model: NetLike, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Return an ``n x n`` grid over a two-gene network's spliced plane and its velocities."""
    net = _net_dict(model)
    top = upper_levels(net) * 1.1
    axes = [np.linspace(0, t, n) for t in top]
    grid = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="xy")], axis=1)
    return grid, reduced_field(grid, net)
