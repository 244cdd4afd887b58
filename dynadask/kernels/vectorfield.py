"""Kernels of the SparseVFC vector field on one block of points (numpy and scipy only).

The field is a Gaussian radial-basis expansion over ``M`` control points ``c_m``::

    f(x) = sum_m C_m exp(-beta * ||x - c_m||^2)

Every kernel matrix is formed as one GEMM (``||x||^2 + ||c||^2 - 2 x c^T``) on coordinates
centred at the control points' mean (distances and every derivative are unchanged by the
shift, and the GEMM form loses less to cancellation). Derivatives are closed forms of the
same matrix, ``O(n M d)`` per block except the full Jacobian (``O(n M d^2)``, one GEMM).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import linalg
from scipy.spatial import cKDTree
from scipy.special import expit

from .._core.errors import InputError

QUANTITIES = (
    "velocity",
    "speed",
    "divergence",
    "curl",
    "rotation",
    "acceleration",
    "curvature",
    "jacobian_det",
    "torsion",
    "laplacian",
)
"""What :func:`field_quantities` can compute for every point of a block."""


# ------------------------------------------------------------------------------------------
# kernel matrices


def sq_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``x`` and ``c`` as one GEMM (>= 0)."""
    d2 = x @ c.T
    d2 *= -2.0
    d2 += np.einsum("ij,ij->i", x, x)[:, None]
    d2 += np.einsum("ij,ij->i", c, c)[None, :]
    np.maximum(d2, 0.0, out=d2)
    return d2


def gauss_kernel(x: np.ndarray, ctrl: np.ndarray, beta: float) -> np.ndarray:
    """``exp(-beta ||x_n - c_m||^2)`` for every point ``x_n`` and control point ``c_m``."""
    x, ctrl = _centred(x, ctrl)
    d2 = sq_distances(x, ctrl)
    d2 *= -beta
    return np.exp(d2, out=d2)


def _centred(x: np.ndarray, ctrl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ctrl = np.asarray(ctrl, dtype=np.float64)
    centre = ctrl.mean(axis=0)
    return np.asarray(x, dtype=np.float64) - centre, ctrl - centre


def evaluate(
    x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float, rows: int = 8192
) -> np.ndarray:
    """The field ``f(x) = K(x, ctrl) C`` at the rows of ``x``, ``rows`` points at a time."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty((x.shape[0], C.shape[1]))
    for s in range(0, x.shape[0], rows):
        out[s : s + rows] = gauss_kernel(x[s : s + rows], ctrl, beta) @ C
    return out


# ------------------------------------------------------------------------------------------
# set-up of a fit: control points, bandwidth, grid


def control_points(
    X: np.ndarray, Y: np.ndarray, M: int, seed: int = 0, velocity_based: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick ``M`` control points among the distinct rows of ``X``, as dynamo does.

    The distinct rows are sorted lexicographically (``np.unique(X, axis=0)``); with
    ``velocity_based`` they are drawn without replacement with probabilities proportional
    to the speed ``||Y||`` of the first cell holding each row (``default_rng(seed)``),
    otherwise as the first ``M`` of a ``RandomState(seed)`` permutation.

    Returns
    -------
    tuple
        ``X_ctrl`` (M x d, the dtype of ``X``), ``ctrl_idx`` (positions among the distinct
        rows, dynamo's ``ctrl_idx``) and ``rows`` (positions of the control cells in ``X``).

    Raises
    ------
    ValueError
        If fewer than ``M`` distinct rows have a non-zero velocity for velocity sampling.
    """
    distinct, first = np.unique(X, axis=0, return_index=True)
    M = min(int(M), distinct.shape[0])
    if velocity_based:
        speed = np.linalg.norm(Y[first], axis=1)
        if np.count_nonzero(speed) < M:
            raise InputError(
                f"only {np.count_nonzero(speed)} distinct cells have a non-zero velocity, "
                f"fewer than the {M} control points: pass a smaller M or "
                "velocity_based_sampling=False"
            )
        p = speed / np.sum(speed)
        idx = np.random.default_rng(seed).choice(np.arange(len(speed)), size=M, p=p, replace=False)
    else:
        idx = np.random.RandomState(seed).permutation(distinct.shape[0])[:M]
    return distinct[idx], idx, first[idx]


def bandwidth_beta(ctrl: np.ndarray) -> float:
    """Kernel width from the control points as dynamo chooses it: ``beta = 1 / h^2``.

    ``h = sqrt(2) * mean distance to the k nearest other control points / 1.5`` with
    ``k = max(2, int(0.2 M)) - 1`` (exact neighbours, self excluded).

    Raises
    ------
    ValueError
        With fewer than 3 control points (no neighbours to measure).
    """
    m = ctrl.shape[0]
    k = max(2, int(0.2 * m)) - 1
    if m <= k:
        raise InputError(f"{m} control points are too few to choose a kernel width: pass beta")
    dist, _ = cKDTree(ctrl).query(ctrl, k=k + 1)
    h = np.sqrt(2) * np.mean(dist[:, 1:]) / 1.5
    return float(1.0 / h**2)


def default_m(n: int, m_max: int | None) -> int:
    """Number of control points by dynamo's rule ``max(min(50, n), int(0.05 n) + 1)``, capped."""
    m = max(min(50, n), int(0.05 * n) + 1)
    return m if m_max is None else min(m, int(m_max))


def grid(X: np.ndarray, grid_num: int = 50) -> np.ndarray:
    """Regular grid over the range of ``X``, as dynamo builds it (``grid_num ** d`` rows).

    The first axis varies fastest. The range is widened by 1% on each side; as in dynamo, the
    upper margin is measured from the already-lowered minimum.
    """
    lo, hi = X.min(axis=0), X.max(axis=0)
    lo = lo - 0.01 * np.abs(hi - lo)
    hi = hi + 0.01 * np.abs(hi - lo)
    axes = np.meshgrid(*[np.linspace(a, b, grid_num) for a, b in zip(lo, hi, strict=True)])
    return np.array([ax.ravel() for ax in axes]).T


# ------------------------------------------------------------------------------------------
# EM of SparseVFC


def posterior(r: np.ndarray, sigma2: float, gamma: float, a: float, D: int) -> np.ndarray:
    """Inlier posterior ``t1 / (t1 + t2)`` with ``t1 = exp(-r / 2 sigma2)``, in log space.

    ``t2 = (2 pi sigma2)^(D/2) (1 - gamma) / (gamma a)`` is the uniform outlier density.
    Written as ``expit(log t1 - log t2)`` it never underflows (dynamo replaces exact zeros of
    ``t1`` by the smallest non-zero one instead, which can make far outliers look like
    inliers when ``t2`` is tiny, as in 30 dimensions).
    """
    log_t2 = 0.5 * D * np.log(2 * np.pi * sigma2) + np.log1p(-gamma) - np.log(gamma * a)
    return expit(-r / (2 * sigma2) - log_t2)


def em_block(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ctrl: np.ndarray,
    beta: float,
    C: np.ndarray,
    sigma2: float,
    gamma: float,
    a: float,
    minP: float,
    theta: float,
) -> dict[str, np.ndarray]:
    """One row block's share of an EM iteration (E-step with ``C``, then M-step sums).

    Returns
    -------
    dict
        ``G = U^T diag(P) U`` (M x M), ``R = U^T diag(P) Y`` (M x D) with the clipped
        posterior ``P = max(P, minP)``; ``Pr`` and ``P`` (the energy's sums with the raw
        posterior), ``Pc`` and ``Pcyy`` (``sum P`` and ``sum P ||y||^2`` with the clipped
        one) and ``inliers`` (``#(P > theta)``).
    """
    y = np.asarray(y, dtype=np.float64)
    U = gauss_kernel(x, ctrl, beta)
    res = y - U @ C
    r = np.einsum("ij,ij->i", res, res)
    P = posterior(r, sigma2, gamma, a, y.shape[1])
    Pc = np.maximum(P, minP)
    R = U.T @ (Pc[:, None] * y)
    U *= np.sqrt(Pc)[:, None]  # in place: W = diag(sqrt P) U, and G = W^T W (one SYRK)
    return {
        "G": U.T @ U,
        "R": R,
        "Pr": np.float64(P @ r),
        "P": np.float64(P.sum()),
        "Pc": np.float64(Pc.sum()),
        "Pcyy": np.float64(Pc @ np.einsum("ij,ij->i", y, y)),
        "inliers": np.float64(np.count_nonzero(Pc > theta)),
    }


def solve_coefficients(A: np.ndarray, B: np.ndarray, method: str = "cholesky") -> np.ndarray:
    """Solve the M-step system ``A C = B`` (``A = U^T P U + lambda sigma2 K``, symmetric).

    ``'cholesky'`` uses a symmetric positive-definite factorisation and falls back to
    least squares if ``A`` is numerically not positive definite; ``'lstsq'`` (dynamo's
    ``'scipy'``) is a least-squares solve of ``A`` itself; ``'drouin'`` is dynamo's default,
    the normal equations ``(A^T A) C = A^T B``, which square the condition number (kept for
    comparison with dynamo only).
    """
    with warnings.catch_warnings():
        # the kernel matrix is often near-singular (rcond ~ 1e-17 on a 2-D embedding); the
        # regularised system still has a well-defined solution, so the warning is noise
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        if method == "cholesky":
            try:
                return linalg.solve(A, B, assume_a="pos", check_finite=False)
            except (linalg.LinAlgError, ValueError):
                method = "lstsq"
        if method in ("lstsq", "scipy"):
            return linalg.lstsq(A, B, check_finite=False)[0]
        if method == "drouin":
            return linalg.solve(A.T @ A, A.T @ B, check_finite=False)
    raise InputError(f"unknown lstsq_method {method!r}: use 'cholesky', 'lstsq' or 'drouin'")


def weighted_residual(P_sum: float, Pyy: float, R: np.ndarray, G: np.ndarray, C: np.ndarray):
    """``sum_n P_n ||y_n - U_n C||^2`` from the M-step sums (no pass over the cells).

    Equal to ``sum P ||y||^2 - 2 tr(C^T R) + tr(C^T G C)``.
    """
    return max(Pyy - 2.0 * np.sum(C * R) + np.sum(C * (G @ C)), 0.0) if P_sum > 0 else 0.0


def fitted_block(
    x: np.ndarray,
    y: np.ndarray,
    *,
    ctrl: np.ndarray,
    beta: float,
    C: np.ndarray,
    C_post: np.ndarray,
    sigma2: float,
    gamma: float,
    a: float,
    minP: float,
) -> np.ndarray:
    """Per-point results of a fit: ``[V (d columns), P, angle, cosine]``.

    ``V = f(x)`` with the final coefficients ``C``; ``P`` is the clipped posterior of the
    last E-step (residual against ``U C_post``, with that step's ``sigma2`` and ``gamma``), as
    dynamo returns it; ``angle`` is dynamo's signed angle between ``y`` and ``V`` and
    ``cosine`` their cosine (1e-20 added to the norms, as dynamo's restart test). Rows with
    a non-finite ``y`` get NaN for ``P``, ``angle`` and ``cosine``.
    """
    y = np.asarray(y, dtype=np.float64)
    U = gauss_kernel(x, ctrl, beta)
    V = U @ C
    ok = np.isfinite(y).all(axis=1)
    y0 = np.where(ok[:, None], y, 0.0)
    res = y0 - U @ C_post
    P = np.maximum(posterior(np.einsum("ij,ij->i", res, res), sigma2, gamma, a, y.shape[1]), minP)
    cos = np.einsum("ij,ij->i", y0, V) / (
        (np.linalg.norm(y0, axis=1) + 1e-20) * (np.linalg.norm(V, axis=1) + 1e-20)
    )
    out = np.column_stack([V, P, signed_angle(y0, V), cos])
    out[~ok, -3:] = np.nan
    return out


def signed_angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed angle (dynamo's) between the rows of ``u`` and ``v`` (radians; NaN if one is 0).

    ``arccos`` of the clipped cosine, negated when the 2 x 2 minor of the last two
    coordinates of the unit vectors is positive.
    """
    nu, nv = np.linalg.norm(u, axis=1), np.linalg.norm(v, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        uu, vv = u / nu[:, None], v / nv[:, None]
        minor = uu[:, -2] * vv[:, -1] - uu[:, -1] * vv[:, -2]
        sign = np.where(minor == 0, 1.0, -np.sign(minor))
        out = sign * np.arccos(np.clip(np.einsum("ij,ij->i", uu, vv), -1.0, 1.0))
    out[(nu == 0) | (nv == 0)] = np.nan
    return out


# ------------------------------------------------------------------------------------------
# vector calculus on the fitted field


def jacobian(x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float) -> np.ndarray:
    """Analytic Jacobians ``J[n, i, j] = df_i / dx_j`` at the rows of ``x`` (n x d x d)."""
    x, c = _centred(x, ctrl)
    K = np.exp(-beta * sq_distances(x, c))
    return _jacobian(K, x, c, C, beta)


def _jacobian(K, x, c, C, beta):
    """``J = -2 beta (f x^T - sum_m K_m C_m c_m^T)``, formed in place in the GEMM's output.

    Written as ``2 beta (K B - f x^T)``: the same values to the bit (IEEE subtraction is
    antisymmetric) without the three ``n x d x d`` temporaries of the direct form.
    """
    n, d = x.shape
    f = K @ C
    B = (C[:, :, None] * c[:, None, :]).reshape(c.shape[0], d * d)
    J = (K @ B).reshape(n, d, d)
    for i in range(d):
        J[:, i, :] -= f[:, i, None] * x
    J *= 2.0 * beta
    return J


SUB_ROWS = 256
"""Points evaluated together inside a kernel call: the kernel matrix of 256 points and the
GEMM outputs beside it stay in the processor's cache (256 x 1,000 control points = 2 MiB),
so the element-wise passes over them do not go to main memory."""


def _pairs(d: int) -> tuple[np.ndarray, np.ndarray]:
    """The index pairs ``(i, j)`` of the rotation components a quantity ``curl`` needs.

    2-D: ``(1, 0)``; 3-D: ``(2, 1), (0, 2), (1, 0)`` (the curl vector); other d: every
    ``i < j`` (the rotation magnitude).
    """
    if d == 2:
        return np.array([1]), np.array([0])
    if d == 3:
        return np.array([2, 0, 1]), np.array([1, 2, 0])
    return np.triu_indices(d, k=1)


def field_quantities(
    x: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    names: Sequence[str],
    formula: int = 2,
) -> dict[str, np.ndarray]:
    """Several vector-calculus quantities of the field at the rows of ``x``, one kernel matrix.

    Parameters
    ----------
    x
        Points (n x d).
    ctrl, C, beta
        Control points, coefficients and kernel width of the field.
    names
        Any of :data:`QUANTITIES`: ``velocity`` (f, n x d), ``speed`` (``||f||``),
        ``divergence`` (``tr J``), ``curl`` (2-D: ``J_10 - J_01``; 3-D: the curl vector,
        n x 3; other d: the rotation magnitude), ``rotation`` (``||J - J^T||_F / sqrt 2`` in any
        dimension; equals ``|curl|`` in 2-D and ``||curl||`` in 3-D), ``acceleration``
        (``J f``, n x d), ``curvature`` (formula 2: ``(a |v|^2 - v (v.a)) / |v|^4`` with
        ``v = f``, ``a = J f``, n x d; formula 1: ``||a|| / ||v||^2``, n), ``jacobian_det``,
        ``torsion`` (dynamo's vector ``(v a^T)(J a) / ||v a^T||_F^2 = v (a . J a) / (|v|^2
        |a|^2)``, n x d; the outer product stands where the cross product of the textbook
        torsion would) and ``laplacian`` (``sum_j d2 f_i / dx_j^2`` per component, n x d).
    formula
        Curvature formula (1 or 2), as dynamo's.

    Returns
    -------
    dict
        One array per name.

    Notes
    -----
    The points are taken :data:`SUB_ROWS` at a time, each sub-block's kernel matrix formed
    once and kept in cache for every product. The rotation in d > 3 is one GEMM with the
    ``d (d - 1) / 2`` pairs ``i < j`` (half the columns of the full Jacobian, which is formed
    only for ``jacobian_det``).
    """
    unknown = set(names) - set(QUANTITIES)
    if unknown:
        raise InputError(f"unknown quantities {sorted(unknown)}: choose from {QUANTITIES}")
    if formula not in (1, 2):
        raise InputError(f"curvature formula must be 1 or 2, not {formula!r}")
    x, c = _centred(x, ctrl)
    C = np.asarray(C, dtype=np.float64)
    plan = _Plan(c, C, names)
    parts = [
        _field_block(x[s : s + SUB_ROWS], c, C, beta, plan, formula)
        for s in range(0, max(x.shape[0], 1), SUB_ROWS)
    ]
    if len(parts) == 1:
        return {k: parts[0][k] for k in names}
    return {k: np.concatenate([p[k] for p in parts]) for k in names}


class _Plan:
    """What a call of :func:`field_quantities` computes, and the right-hand sides of its GEMMs.

    ``s`` (M) gives the divergence's ``sum_m K_m (C_m . c_m)``, ``W`` (M x pairs) the
    rotation's ``sum_m K_m (C_mi c_mj - C_mj c_mi)``; each quantity has its own product, so
    its value does not depend on which others are asked.
    """

    def __init__(self, c: np.ndarray, C: np.ndarray, names: Sequence[str]) -> None:
        d = c.shape[1]
        self.names = set(names)
        self.full_j = "jacobian_det" in self.names
        self.rotate = bool({"rotation", "curl"} & self.names)
        self.accelerate = bool({"acceleration", "curvature", "torsion"} & self.names)
        self.s = np.einsum("mi,mi->m", C, c) if "divergence" in self.names else None
        self.i, self.j = _pairs(d)
        self.W = None
        if self.rotate and not (self.full_j and d > 3):
            self.W = np.ascontiguousarray(C[:, self.i] * c[:, self.j] - C[:, self.j] * c[:, self.i])


def _field_block(x, c, C, beta, plan: _Plan, formula: int) -> dict[str, np.ndarray]:
    """:func:`field_quantities` on one sub-block of points (centred coordinates)."""
    d = x.shape[1]
    D2 = sq_distances(x, c)
    if "laplacian" in plan.names:
        K = np.exp(-beta * D2)
    else:
        D2 *= -beta
        K = np.exp(D2, out=D2)
    f = K @ C
    out: dict[str, np.ndarray] = {"velocity": f, "speed": np.linalg.norm(f, axis=1)}
    if "laplacian" in plan.names:
        out["laplacian"] = -2.0 * beta * (d * f - 2.0 * beta * ((K * D2) @ C))
    if plan.s is not None:
        out["divergence"] = -2.0 * beta * (np.einsum("ni,ni->n", f, x) - K @ plan.s)
    J = _jacobian(K, x, c, C, beta) if plan.full_j else None
    if J is not None:
        out["jacobian_det"] = np.linalg.det(J)
    if plan.rotate:
        out.update(_rotation(K, plan, x, f, beta, J))
    if plan.accelerate:
        acc = _j_times(K, x, c, C, f, f, beta)
        out["acceleration"] = acc
        out.update(_curvature(f, acc, formula))
        if "torsion" in plan.names:
            out["torsion"] = _torsion(f, acc, _j_times(K, x, c, C, f, acc, beta))
    return out


def _j_times(K, x, c, C, f, v, beta) -> np.ndarray:
    """``J v`` at every point: ``-2 beta (f (x . v) - sum_m K_m (c_m . v) C_m)``."""
    return -2.0 * beta * (f * np.einsum("ni,ni->n", x, v)[:, None] - (K * (v @ c.T)) @ C)


def _torsion(v: np.ndarray, a: np.ndarray, ja: np.ndarray) -> np.ndarray:
    """The torsion vector of dynamo: ``v (a . J a) / (|v|^2 |a|^2)``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.einsum("ni,ni->n", a, ja) / (
            np.einsum("ni,ni->n", v, v) * np.einsum("ni,ni->n", a, a)
        )
    return v * scale[:, None]


def _rotation(K, plan: _Plan, x, f, beta, J) -> dict[str, np.ndarray]:
    """``curl`` and ``rotation`` from one GEMM ``K W`` (or from ``J`` when it is formed).

    ``(J - J^T)_ij = -2 beta (f_i x_j - f_j x_i - sum_m K_m (C_mi c_mj - C_mj c_mi))``; in
    d > 3 ``||J - J^T||_F / sqrt 2`` sums the squares of the pairs ``i < j``.
    """
    d = x.shape[1]
    if plan.W is None:  # d > 3 with the full Jacobian at hand
        rot = np.linalg.norm(J - J.transpose(0, 2, 1), axis=(1, 2)) / np.sqrt(2)
        return {"curl": rot, "rotation": rot}
    i, j = plan.i, plan.j
    A = K @ plan.W
    A -= f[:, i] * x[:, j]
    A += f[:, j] * x[:, i]
    if d == 2:
        curl = 2.0 * beta * A[:, 0]
        return {"curl": curl, "rotation": np.abs(curl)}
    if d == 3:
        curl = 2.0 * beta * A
        return {"curl": curl, "rotation": np.linalg.norm(curl, axis=1)}
    # each pair (i, j) and (j, i) of the full matrix: ||J - J^T||_F^2 / 2 = sum_{i<j} A_ij^2
    rot = 2.0 * beta * np.sqrt(np.einsum("nk,nk->n", A, A))
    return {"curl": rot, "rotation": rot}


def _curvature(v: np.ndarray, a: np.ndarray, formula: int) -> dict[str, np.ndarray]:
    vv = np.einsum("ni,ni->n", v, v)
    with np.errstate(invalid="ignore", divide="ignore"):
        if formula == 1:
            return {"curvature": np.linalg.norm(a, axis=1) / vv}
        if formula == 2:
            va = np.einsum("ni,ni->n", v, a)
            return {"curvature": (a * vv[:, None] - v * va[:, None]) / (vv**2)[:, None]}
    raise InputError(f"curvature formula must be 1 or 2, not {formula!r}")


def to_genes(v: np.ndarray, Q: np.ndarray | None, genes: np.ndarray, n_genes: int) -> np.ndarray:
    """Rows ``v Q^T`` on columns ``genes`` of an ``n_genes``-wide float32 matrix, NaN elsewhere.

    ``Q`` None places ``v`` itself. With ``Q``, :data:`SUB_ROWS` rows at a time: the float64
    product over all ``n_genes`` columns (zero loadings outside ``genes``) stays in cache
    until it is rounded into the float32 result.
    """
    v = np.asarray(v, dtype=np.float64)
    if Q is None:
        out = np.full((v.shape[0], n_genes), np.nan, dtype=np.float32)
        out[:, genes] = v
        return out
    Qz = np.zeros((n_genes, v.shape[1]))
    Qz[genes] = Q
    out = np.empty((v.shape[0], n_genes), dtype=np.float32)
    tmp = np.empty((min(SUB_ROWS, v.shape[0]), n_genes))
    for s in range(0, v.shape[0], SUB_ROWS):
        e = min(v.shape[0], s + SUB_ROWS)
        np.matmul(v[s:e], Qz.T, out=tmp[: e - s])
        out[s:e] = tmp[: e - s]
    other = np.ones(n_genes, dtype=bool)
    other[genes] = False
    if other.any():
        out[:, other] = np.nan
    return out
