"""Kernels of the topography of a learned vector field (numpy and scipy only).

Fixed points are zeros of the analytic field ``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)``
found by a root finder with the analytic Jacobian; their type comes from the Jacobian's
eigenvalues. In 2-D the nullclines (``f_0 = 0`` and ``f_1 = 0``) are traced by
pseudo-arclength continuation with a Newton corrector, and the separatrices (stable and
unstable manifolds of the saddles) are integrated along the normalised field from the
saddles' eigenvectors. Every function works on plain arrays; the field is the triple
``(ctrl, C, beta)``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import optimize

from . import vectorfield as kv

STABLE, SADDLE, UNSTABLE = -1.0, 0.0, 1.0
"""``ftype`` codes, as dynamo's: every eigenvalue's real part < 0; mixed; every one >= 0."""


# ------------------------------------------------------------------------------------------
# the field and its Jacobian at a few points


def value_and_jacobian(
    x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """The field (n x d) and its analytic Jacobian ``J[n, i, j] = df_i/dx_j`` at rows ``x``."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    return kv.evaluate(x, ctrl, C, beta), kv.jacobian(x, ctrl, C, beta)


# ------------------------------------------------------------------------------------------
# seeds


def latin_hypercube(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points in ``[0, 1)^d``, one in each of the ``n`` equal strata of every axis.

    A uniform draw inside each stratum, then an independent random order of the strata per
    axis (``numpy.random.default_rng(seed)``: the draw first, then one permutation per axis).
    """
    rng = np.random.default_rng(seed)
    lower = np.arange(n) / n
    inside = rng.random((n, d)) / n + lower[:, None]
    out = np.empty((n, d))
    for j in range(d):
        out[:, j] = inside[rng.permutation(n), j]
    return out


# ------------------------------------------------------------------------------------------
# fixed points


def solve_roots(
    seeds: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    xtol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Zeros of the field reached from each seed (MINPACK ``hybrj`` + Newton polish).

    A root counts when the last Newton step ``|J^-1 f|`` is below ``xtol`` (a scale-free
    test: a point where the field is merely small, as far from every control point, does
    not pass) and it lies inside the box ``[lo, hi]``.

    Returns
    -------
    tuple
        ``X`` (n x d, the solutions) and ``ok`` (n, bool: converged and inside the box).
    """
    seeds = np.atleast_2d(np.asarray(seeds, dtype=np.float64))
    X = np.full_like(seeds, np.nan)
    ok = np.zeros(seeds.shape[0], dtype=bool)

    ctrl = np.asarray(ctrl, dtype=np.float64)
    C = np.asarray(C, dtype=np.float64)

    def fun(x):
        return point_value_jacobian(x, ctrl, C, beta)

    for i, x0 in enumerate(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            x = optimize.root(fun, x0, jac=True, method="hybr").x
        x, step = _polish(x, fun, 1e-3 * xtol)
        X[i] = x
        ok[i] = bool(np.all(np.isfinite(x)) and step <= xtol and _inside(x, lo, hi))
    return X, ok


def point_value_jacobian(
    x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float
) -> tuple[np.ndarray, np.ndarray]:
    """The field (d,) and its Jacobian (d x d) at one point, from the differences ``c_m - x``.

    ``J = 2 beta sum_m k_m C_m (c_m - x)^T`` with ``k_m = exp(-beta ||x - c_m||^2)``; for
    one point this direct form is cheaper than the blocked kernels and as accurate.
    """
    diff = ctrl - x
    k = np.exp(-beta * np.einsum("ij,ij->i", diff, diff))
    kC = C * k[:, None]
    return k @ C, 2.0 * beta * (kC.T @ diff)


def _polish(x: np.ndarray, fun, done: float, n_iter: int = 4) -> tuple[np.ndarray, float]:
    """Newton steps until one is below ``done`` (at most ``n_iter``).

    Returns the point and the size of the last step (inf if the Jacobian is singular).
    """
    step = np.inf
    for _ in range(n_iter):
        f, J = fun(x)
        try:
            dx = np.linalg.solve(J, f)
        except np.linalg.LinAlgError:
            return x, np.inf
        if not np.all(np.isfinite(dx)):
            return x, np.inf
        step = float(np.linalg.norm(dx))
        x = x - dx
        if step <= done:
            break
    return x, step


def _inside(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.all((x >= lo) & (x <= hi), axis=-1)


def distinct(X: np.ndarray, tol: float, existing: np.ndarray | None = None) -> np.ndarray:
    """Positions of the rows of ``X`` farther than ``tol`` from every earlier kept row.

    Greedy in row order; rows within ``tol`` of a row of ``existing`` are dropped too.
    """
    kept: list[int] = []
    ref = np.empty((0, X.shape[1])) if existing is None else np.asarray(existing)
    for i, x in enumerate(X):
        pool = np.vstack([ref, X[kept]]) if kept else ref
        if pool.shape[0] == 0 or np.min(np.linalg.norm(pool - x, axis=1)) > tol:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def fixed_point_types(J: np.ndarray) -> np.ndarray:
    """``ftype`` of each Jacobian (F x d x d): -1 stable, 0 saddle, 1 unstable (float)."""
    re = np.real(np.linalg.eigvals(np.asarray(J, dtype=np.float64)))
    out = np.full(re.shape[0], UNSTABLE)
    neg = np.any(re < 0, axis=1)
    out[neg] = SADDLE
    out[np.all(re < 0, axis=1)] = STABLE
    return out


# ------------------------------------------------------------------------------------------
# nullclines (2-D)


def trace_nullclines(
    starts: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    ds: float,
    n_steps: int,
    margin: float = 0.5,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two nullclines through each start point, each traced both ways (2-D fields).

    Pseudo-arclength continuation of ``f_k(x) = 0``: a step of length ``ds`` along the
    tangent, then Newton on ``[f_k(x), (x - x_prev) . t - ds]`` with the analytic gradient
    of ``f_k``. The first tangent is the curve's own (``grad f_k`` turned by 90 degrees), so
    no random direction is needed. A step whose Newton fails is retried at half the length
    (down to ``ds / 64``, then the branch stops); a branch also stops when it leaves the box
    ``[lo, hi]`` widened by ``margin`` times its size on each side (a curve may leave the box
    and come back: clip the result with :func:`clip_curves`), closes on its start or
    reaches the arclength ``n_steps * ds``. All branches advance together.

    Returns
    -------
    tuple
        ``NCx`` and ``NCy``: per start point, the ``f_0 = 0`` (resp. ``f_1 = 0``) curve as
        two branches, each an array of points beginning at the start point.
    """
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    n = starts.shape[0]
    comp = np.tile(np.repeat([0, 1], 2), n)  # per start: x+, x-, y+, y-
    sign = np.tile([1.0, -1.0, 1.0, -1.0], n)
    x = np.repeat(starts, 4, axis=0)
    _, J = value_and_jacobian(x, ctrl, C, beta)
    g = J[np.arange(x.shape[0]), comp]  # grad f_k
    t = np.column_stack([-g[:, 1], g[:, 0]]) * sign[:, None]
    norm = np.linalg.norm(t, axis=1)
    alive = norm > 0
    t[alive] /= norm[alive, None]
    outer_lo, outer_hi = lo - margin * (hi - lo), hi + margin * (hi - lo)
    paths = [[p.copy()] for p in x]
    h = np.full(x.shape[0], float(ds))
    length = np.zeros(x.shape[0])
    for _ in range(8 * n_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        new, good = _corrector(x[idx], t[idx], comp[idx], ctrl, C, beta, h[idx])
        h[idx[~good]] /= 2  # retry a failed step with half the length
        alive[idx[~good & (h[idx] < ds / 64)]] = False
        for j in np.flatnonzero(good):
            i = idx[j]
            d = new[j] - x[i]
            length[i] += np.linalg.norm(d)
            t[i] = d / np.linalg.norm(d)
            x[i] = new[j]
            h[i] = min(ds, 2 * h[i])
            paths[i].append(new[j])
            closed = len(paths[i]) > 3 and np.linalg.norm(new[j] - paths[i][0]) < 0.5 * ds
            if closed or length[i] >= n_steps * ds or not _inside(new[j], outer_lo, outer_hi):
                alive[i] = False
    curves = [np.array(p) for p in paths]
    NCx = [c for i, c in enumerate(curves) if comp[i] == 0]
    NCy = [c for i, c in enumerate(curves) if comp[i] == 1]
    return NCx, NCy


def _corrector(x0, t, comp, ctrl, C, beta, ds, n_iter=10):
    """Newton on ``[f_k(x), (x - x0) . t - ds]`` from ``x0 + ds t`` for every branch.

    ``ds`` is one step length or one per branch.

    Returns the corrected points and whether each converged (last step below ``1e-8 ds``)
    to a point between ``0.1 ds`` and ``3 ds`` from ``x0``.
    """
    ds = np.broadcast_to(np.asarray(ds, dtype=np.float64), x0.shape[:1])
    x = x0 + ds[:, None] * t
    rows = np.arange(x.shape[0])
    conv = np.zeros(x.shape[0], dtype=bool)
    safe = np.ones(x.shape[0], dtype=bool)
    for _ in range(n_iter):
        f, J = value_and_jacobian(x, ctrl, C, beta)
        r0, r1 = f[rows, comp], np.einsum("ij,ij->i", x - x0, t) - ds
        a, b = J[rows, comp, 0], J[rows, comp, 1]  # row 1: grad f_k; row 2: t
        det = a * t[:, 1] - b * t[:, 0]
        safe &= np.abs(det) > 0
        det = np.where(safe, det, 1.0)
        dx = np.column_stack([t[:, 1] * r0 - b * r1, -t[:, 0] * r0 + a * r1]) / det[:, None]
        dx[~safe] = 0.0
        x = x - dx
        conv = np.linalg.norm(dx, axis=1) <= 1e-8 * ds
        if np.all(conv | ~safe):
            break
    moved = np.linalg.norm(x - x0, axis=1)
    good = safe & conv & np.all(np.isfinite(x), axis=1) & (moved > 0.1 * ds) & (moved < 3 * ds)
    return x, good


def clip_curves(
    curves: list[np.ndarray], lo: np.ndarray, hi: np.ndarray, max_jump: float | None = None
) -> list[np.ndarray]:
    """Pieces of the curves inside the box ``[lo, hi]``, also cut at jumps above ``max_jump``.

    Pieces of fewer than 2 points are dropped.
    """
    out = []
    for c in curves:
        c = np.asarray(c, dtype=np.float64)
        if c.shape[0] < 2:
            continue
        keep = _inside(c, lo, hi)
        cut = np.zeros(c.shape[0], dtype=bool)
        if max_jump is not None:
            cut[1:] = np.linalg.norm(np.diff(c, axis=0), axis=1) > max_jump
        # a new piece starts where a kept point follows a dropped one or a jump
        start = keep & (np.concatenate([[True], ~keep[:-1]]) | cut)
        piece = np.cumsum(start)
        for p in np.unique(piece[keep]):
            seg = c[keep & (piece == p)]
            if seg.shape[0] >= 2:
                out.append(seg)
    return out


def points_along(curve: np.ndarray, interval: float) -> np.ndarray:
    """The first point and then one point each time the arclength grows by ``interval``."""
    curve = np.asarray(curve)
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(curve, axis=0), axis=1))])
    bins = np.floor(s / interval).astype(np.int64)
    first = np.concatenate([[True], bins[1:] != bins[:-1]])
    return curve[first] if curve.shape[0] else curve


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Points where the polyline ``a`` crosses the polyline ``b`` (all segment pairs)."""
    if a.shape[0] < 2 or b.shape[0] < 2:
        return np.empty((0, 2))
    p, r = a[:-1, None, :], (a[1:] - a[:-1])[:, None, :]
    q, s = b[None, :-1, :], (b[1:] - b[:-1])[None, :, :]
    cross = r[..., 0] * s[..., 1] - r[..., 1] * s[..., 0]
    qp = q - p
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (qp[..., 0] * s[..., 1] - qp[..., 1] * s[..., 0]) / cross
        v = (qp[..., 0] * r[..., 1] - qp[..., 1] * r[..., 0]) / cross
    hit = (cross != 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
    i, j = np.nonzero(hit)
    return a[i] + u[i, j][:, None] * (a[i + 1] - a[i])


# ------------------------------------------------------------------------------------------
# separatrices (2-D)


def trace_manifolds(
    saddles: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    ds: float,
    n_steps: int,
    targets: np.ndarray,
    own: np.ndarray | None = None,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Stable and unstable manifolds of each saddle, integrated from its eigenvectors.

    From ``x_s +- ds u`` (``u`` the unit eigenvector of the negative eigenvalue for the
    stable manifold, of the positive one for the unstable), RK4 steps of length ``ds`` along
    ``-f/|f|`` (stable: backward in time) or ``f/|f|`` (unstable). A branch stops when it
    leaves the box, comes within ``2 ds`` of a point of ``targets`` (fixed points; the
    saddle's own row ``own[s]`` of ``targets`` is ignored), or after ``n_steps`` steps. The
    two branches of a manifold are joined through the saddle.

    Returns
    -------
    tuple
        ``curves`` (one per manifold), ``saddle`` (the row of ``saddles`` of each) and
        ``kind`` (-1 stable manifold, the separatrix proper; 1 unstable manifold).
    """
    saddles = np.atleast_2d(np.asarray(saddles, dtype=np.float64))
    if saddles.shape[0] == 0:
        return [], np.empty(0, dtype=np.int64), np.empty(0)
    _, J = value_and_jacobian(saddles, ctrl, C, beta)
    starts, direction, owner, kinds = [], [], [], []
    for s, Js in enumerate(J):
        w, v = np.linalg.eig(Js)
        for kind, pick in ((-1.0, np.argmin(w.real)), (1.0, np.argmax(w.real))):
            u = np.real(v[:, pick])
            u /= np.linalg.norm(u)
            for side in (-1.0, 1.0):
                starts.append(saddles[s] + side * ds * u)
                direction.append(kind)  # stable manifold: backward in time, along -f
                owner.append(s)
                kinds.append(kind)
    x = np.array(starts)
    sgn = np.array(direction)
    own = np.full(saddles.shape[0], -1) if own is None else np.asarray(own)
    skip = own[np.asarray(owner)]
    paths = _rk4_paths(x, sgn, ctrl, C, beta, lo, hi, ds, n_steps, targets, skip)
    curves, saddle, kind = [], [], []
    for m in range(0, len(paths), 2):
        s = owner[m]
        curves.append(np.vstack([paths[m][::-1], saddles[s][None, :], paths[m + 1]]))
        saddle.append(s)
        kind.append(kinds[m])
    return curves, np.asarray(saddle, dtype=np.int64), np.asarray(kind)


def _rk4_paths(x, sgn, ctrl, C, beta, lo, hi, ds, n_steps, targets, skip, keep=True):
    """RK4 along ``sgn f / |f|`` with step ``ds`` for every row of ``x`` (stops: see callers).

    Returns the paths (``keep``) or only the last points.
    """
    x = np.array(x, dtype=np.float64)
    paths = [[p.copy()] for p in x] if keep else []
    alive = np.ones(x.shape[0], dtype=bool)
    targets = np.atleast_2d(targets) if np.size(targets) else np.empty((0, x.shape[1]))
    for _ in range(n_steps):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        p, s = x[idx], sgn[idx]
        k1 = _unit_field(p, s, ctrl, C, beta)
        k2 = _unit_field(p + 0.5 * ds * k1, s, ctrl, C, beta)
        k3 = _unit_field(p + 0.5 * ds * k2, s, ctrl, C, beta)
        k4 = _unit_field(p + ds * k3, s, ctrl, C, beta)
        new = p + ds / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        x[idx] = new
        if keep:
            for j, i in enumerate(idx):
                paths[i].append(new[j])
        stop = ~_inside(new, lo, hi) | (np.linalg.norm(new - p, axis=1) < 0.05 * ds)
        if targets.shape[0]:
            gap = np.linalg.norm(new[:, None, :] - targets[None], axis=2)
            mine = skip[idx] >= 0
            gap[mine, skip[idx][mine]] = np.inf
            stop |= np.min(gap, axis=1) < 2 * ds
        alive[idx[stop]] = False
    return [np.array(p) for p in paths] if keep else x


def flow_ends(
    x: np.ndarray,
    sign: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    lo: np.ndarray,
    hi: np.ndarray,
    ds: float,
    n_steps: int,
) -> np.ndarray:
    """Where each point's trajectory along ``sign f / |f|`` ends after ``n_steps`` steps ``ds``.

    Forward (``sign`` 1) the points gather at the attractors, backward (-1) at the repellers,
    which makes the end points good seeds for the root finder. A trajectory stops early
    when it leaves the box ``[lo, hi]``.
    """
    sign = np.asarray(sign, dtype=np.float64)
    no = np.empty(0, dtype=np.int64)
    return _rk4_paths(x, sign, ctrl, C, beta, lo, hi, ds, n_steps, [], no, keep=False)


def _unit_field(p, s, ctrl, C, beta):
    f = kv.evaluate(p, ctrl, C, beta) * s[:, None]
    n = np.linalg.norm(f, axis=1)
    return np.divide(f, n[:, None], out=np.zeros_like(f), where=n[:, None] > 0)


# ------------------------------------------------------------------------------------------
# confidence: distances to the nearest cells


def nearest_block(
    block: np.ndarray, queries: np.ndarray, k: int, offset: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows of one block to each query: ``(squared distances, rows)``.

    Sorted per query; row numbers are ``offset`` + the position in the block.
    Blocks with fewer than ``k`` finite rows return what they have (padded with inf / -1).
    """
    x = np.asarray(block, dtype=np.float64)
    finite = np.all(np.isfinite(x), axis=1)
    d2 = np.full((queries.shape[0], x.shape[0]), np.inf)
    if finite.any():
        d2[:, finite] = kv.sq_distances(np.asarray(queries, dtype=np.float64), x[finite])
    rows = np.arange(x.shape[0]) + offset
    return _k_smallest(d2, np.broadcast_to(rows, d2.shape), k)


def _k_smallest(d2: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    m = d2.shape[1]
    if m > k:
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        d2, rows = np.take_along_axis(d2, part, 1), np.take_along_axis(rows, part, 1)
    order = np.argsort(d2, axis=1, kind="stable")
    d2, rows = np.take_along_axis(d2, order, 1), np.take_along_axis(rows, order, 1)
    if d2.shape[1] < k:
        pad = k - d2.shape[1]
        d2 = np.pad(d2, ((0, 0), (0, pad)), constant_values=np.inf)
        rows = np.pad(rows, ((0, 0), (0, pad)), constant_values=-1)
    return d2, rows


def merge_nearest(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-block ``nearest_block`` results (squared distances) into the overall ``k``."""
    k = parts[0][0].shape[1]
    d2 = np.concatenate([p[0] for p in parts], axis=1)
    rows = np.concatenate([p[1] for p in parts], axis=1)
    return _k_smallest(d2, rows, k)


def confidence(mean_dist: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian of the mean distance to the nearest cells, divided by its largest value."""
    g = np.exp(-0.5 * (np.asarray(mean_dist, dtype=np.float64) / sigma) ** 2)
    top = np.max(g) if g.size else 1.0
    return g / top if top > 0 else g
