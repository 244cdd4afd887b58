"""Jacobians, sensitivities and Hessians of the Gaussian RBF field on one block of points.

The field is ``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)`` (see
:mod:`dynadask.kernels.vectorfield`). With ``K_m = exp(-beta ||x - c_m||^2)`` and
``d_m = x - c_m``:

- ``J_ij = df_i / dx_j = -2 beta sum_m K_m C_mi d_mj``;
- ``H_ijk = d2 f_i / dx_j dx_k = -2 beta sum_m K_m C_mi (delta_jk - 2 beta d_mj d_mk)``.

Gene-space quantities of a field learned on PCA scores ``x = Q^T g`` (loadings ``Q``,
genes x components) are the chain rule through ``Q``: the gene Jacobian between effector
genes (rows ``Q_e`` of ``Q``) and regulator genes (rows ``Q_r``) is ``Q_e J Q_r^T``
(:func:`project`, from the block's Jacobians, which the determinant needs anyway), and a gene
Hessian is ``sum_ijk q_e,i Q_r,aj Q_c,bk H_ijk``, formed without the ``d x d x d`` array of
each point as a contraction of the kernel matrix with per-control-point products of the
projected coefficients and centres.
"""

from __future__ import annotations

import numpy as np

from .vectorfield import _centred, _jacobian, sq_distances

JACOBIAN_ROWS = 1024
"""Points whose Jacobians :func:`jacobian_results` forms together: at 1,000 control points in
30-D, 1,024 rows were measured 15-20 % faster than 256 (the GEMM with ``d^2`` columns runs
better on more rows) and as fast as 2,048."""


def _kernel(x: np.ndarray, ctrl: np.ndarray, beta: float):
    x, c = _centred(x, ctrl)
    return np.exp(-beta * sq_distances(x, c)), x, c


def project(J: np.ndarray, Q_left: np.ndarray, Q_right: np.ndarray) -> np.ndarray:
    """``Q_left J Q_right^T`` for each matrix of ``J`` (n x k x k -> n x a x b), two GEMMs.

    Cheaper than a contraction of the kernel matrix once the ``J`` of a block exist
    (``a k^2 + a b k`` against ``M a b`` operations per point).
    """
    return np.matmul(np.matmul(Q_left, J), Q_right.T)


def jacobians(x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float) -> np.ndarray:
    """Full Jacobians ``J[n, i, j] = df_i / dx_j`` (n x d x d), one GEMM."""
    K, x, c = _kernel(x, ctrl, beta)
    return _jacobian(K, x, c, C, beta)


def jacobian_results(
    x: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    Q_eff: np.ndarray | None = None,
    Q_reg: np.ndarray | None = None,
    full: bool = False,
) -> dict[str, np.ndarray]:
    """``det J`` and, as asked, gene Jacobians and the Jacobians themselves at the rows of ``x``.

    Parameters
    ----------
    x
        Points (n x d).
    ctrl, C, beta
        Control points, coefficients and kernel width of the field.
    Q_eff, Q_reg
        Loadings of the effector and regulator genes (genes x d): ``gene`` is
        ``Q_eff J Q_reg^T`` (n x effectors x regulators); ``None``: no gene Jacobians.
    full
        Also return ``full``, the Jacobians (n x d x d).

    Returns
    -------
    dict
        ``det`` (n), and ``gene`` and ``full`` as asked.

    Notes
    -----
    :data:`JACOBIAN_ROWS` points at a time, so that each ``d x d`` Jacobian is formed, reduced to
    its determinant and projected while it is in cache; only the outputs asked for are
    assembled over all the points.
    """
    x, c = _centred(x, ctrl)
    C = np.asarray(C, dtype=np.float64)
    n, d = x.shape
    out = {"det": np.empty(n)}
    if Q_eff is not None:
        out["gene"] = np.empty((n, Q_eff.shape[0], Q_reg.shape[0]))
    if full:
        out["full"] = np.empty((n, d, d))
    for s in range(0, n, JACOBIAN_ROWS):
        e = min(n, s + JACOBIAN_ROWS)
        xs = x[s:e]
        K = sq_distances(xs, c)
        K *= -beta
        np.exp(K, out=K)
        J = _jacobian(K, xs, c, C, beta)
        out["det"][s:e] = np.linalg.det(J)
        if Q_eff is not None:
            out["gene"][s:e] = project(J, Q_eff, Q_reg)
        if full:
            out["full"][s:e] = J
    return out


def sensitivity(J: np.ndarray) -> np.ndarray:
    """``S = (I - J)^-1 diag(1 / diag((I - J)^-1))`` for each matrix of ``J`` (n x k x k).

    Column ``j`` of the inverse is divided by its diagonal element, as dynamo defines the
    sensitivity. Singular ``I - J`` gives NaN for that point.
    """
    n, k, _ = J.shape
    A = np.broadcast_to(np.eye(k), J.shape) - J
    out = np.full(J.shape, np.nan)
    ok = np.isfinite(A).all(axis=(1, 2))
    try:
        inv = np.linalg.inv(A[ok])
    except np.linalg.LinAlgError:
        inv = np.stack([_safe_inv(a) for a in A[ok]]) if ok.any() else np.empty((0, k, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        out[ok] = inv / np.diagonal(inv, axis1=1, axis2=2)[:, None, :]
    return out


def _safe_inv(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        return np.full(a.shape, np.nan)


def projected_hessian(
    x: np.ndarray,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    q_eff: np.ndarray,
    Q_reg: np.ndarray,
    Q_co: np.ndarray,
) -> np.ndarray:
    """``h[n, a, b] = sum_ijk q_eff,i Q_reg,aj Q_co,bk H_ijk(x_n)`` (n x n_reg x n_co).

    With ``w_m = K_m (C_m . q_eff)``, ``r_m = Q_reg d_m`` and ``s_m = Q_co d_m``:
    ``h = -2 beta (sum_m w_m Q_reg Q_co^T - 2 beta sum_m w_m r_m s_m^T)``, the last sum
    expanded over ``d_m = x - c_m`` into GEMMs.
    """
    K, x, c = _kernel(x, ctrl, beta)
    W = K * (C @ q_eff)[None, :]  # n x M
    w = W.sum(axis=1)
    rx, sx = x @ Q_reg.T, x @ Q_co.T  # n x nr, n x nc
    rc, sc = c @ Q_reg.T, c @ Q_co.T  # M x nr, M x nc
    n, nr, nc = x.shape[0], Q_reg.shape[0], Q_co.shape[0]
    Wr, Ws = W @ rc, W @ sc  # n x nr, n x nc
    cross = (W @ (rc[:, :, None] * sc[:, None, :]).reshape(c.shape[0], -1)).reshape(n, nr, nc)
    second = (
        w[:, None, None] * rx[:, :, None] * sx[:, None, :]
        - rx[:, :, None] * Ws[:, None, :]
        - Wr[:, :, None] * sx[:, None, :]
        + cross
    )
    return -2.0 * beta * (w[:, None, None] * (Q_reg @ Q_co.T)[None] - 2.0 * beta * second)


def hessians(x: np.ndarray, ctrl: np.ndarray, C: np.ndarray, beta: float) -> np.ndarray:
    """Full Hessians ``H[n, i, j, k] = d2 f_i / dx_j dx_k`` (n x d x d x d)."""
    K, x, c = _kernel(x, ctrl, beta)
    d = x.shape[1]
    D = x[:, None, :] - c[None, :, :]  # n x M x d
    KC = K[:, :, None] * C[None, :, :]  # n x M x d (index i)
    outer = np.einsum("nmi,nmj,nmk->nijk", KC, D, D)
    eye = np.einsum("nmi,jk->nijk", KC, np.eye(d))
    return -2.0 * beta * (eye - 2.0 * beta * outer)
