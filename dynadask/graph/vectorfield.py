"""Dask graphs of the SparseVFC fit and of the vector calculus over row blocks of cells.

The EM fit is one map-reduce per iteration over row blocks of the fit set: each block
forms its kernel rows ``U_b`` (never stored), its E-step with the current coefficients and
its M-step sums ``U_b^T P_b U_b`` and ``U_b^T P_b Y_b`` (tree-summed, M x M and M x D); the
client then solves the M x M system and updates ``sigma2`` from the same sums
(``sum P ||y - U C||^2 = sum P ||y||^2 - 2 tr(C^T R) + tr(C^T G C)``), so an iteration
reads every block once. The fit's cost is ``O(N_fit M^2)`` per iteration whatever ``N``.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from threadpoolctl import threadpool_limits

from .._core.compute import compute
from .._core.errors import InputError
from ..kernels import vectorfield as kv
from .blocks import as_rows, map_rows, shared_rows, sum_rows

BLOCK_BYTES = 64 * 2**20
"""Target size of one block's kernel matrix (rows x control points, float64)."""


def block_rows(n_ctrl: int, width: int = 1) -> int:
    """Rows per block so that a block's ``rows x n_ctrl x width`` float64 stays near 64 MiB."""
    return max(256, int(BLOCK_BYTES // (8 * max(n_ctrl, 1) * max(width, 1))))


def fit_em(
    X: Any,
    Y: Any,
    ctrl: np.ndarray,
    beta: float,
    *,
    a: float = 5.0,
    ecr: float = 1e-5,
    gamma: float = 0.9,
    lambda_: float = 3.0,
    minP: float = 1e-5,
    MaxIter: int = 500,
    theta: float = 0.75,
    lstsq_method: str = "cholesky",
) -> dict[str, Any]:
    """Run SparseVFC's EM on the fit set ``(X, Y)`` (finite rows only), block by block.

    Parameters
    ----------
    X, Y
        Positions and velocities of the fit set (N x D; numpy or Dask).
    ctrl, beta
        Control points and kernel width.
    a, ecr, gamma, lambda_, minP, MaxIter, theta
        SparseVFC's parameters (see :func:`dynadask.vf.SparseVFC`).
    lstsq_method
        Solver of the M-step (:func:`dynadask.kernels.vectorfield.solve_coefficients`).

    Returns
    -------
    dict
        ``C``, ``sigma2``, ``iteration``, ``tecr_traj``, ``E_traj``, and ``post`` (the
        coefficients, ``sigma2`` and ``gamma`` of the last E-step, which define the returned
        posterior).
    """
    ctrl = np.asarray(ctrl, dtype=np.float64)
    rows = block_rows(max(ctrl.shape[0], np.shape(X)[1]))  # wide gene-space rows too
    Xd, Yd = shared_rows(X, rows), shared_rows(Y, rows)  # read by every iteration
    N, D = Yd.shape
    K = kv.gauss_kernel(ctrl, ctrl, beta)
    C = np.zeros((ctrl.shape[0], D))
    (yy,) = compute(sum_rows(_sum_squares, Yd), desc="SparseVFC set-up")
    sigma2 = float(yy) / (N * D)
    sigma2 = 1e-7 if sigma2 < 1e-8 else sigma2
    i, tecr, E = 0, 1.0, 1.0
    E_traj, tecr_traj = [], []
    post = {"C": C, "sigma2": sigma2, "gamma": gamma}
    while i < MaxIter and tecr > ecr and sigma2 > 1e-8:
        post = {"C": C, "sigma2": sigma2, "gamma": gamma}
        step = sum_rows(
            kv.em_block, Xd, Yd, ctrl=ctrl, beta=beta, a=a, minP=minP, theta=theta, **post
        )
        (s,) = compute(step, desc=f"SparseVFC iteration {i}")
        E_old = E
        E = s["Pr"] / (2 * sigma2) + s["P"] * np.log(sigma2) * D / 2
        E += lambda_ / 2 * np.trace(C.T @ K @ C)
        tecr = abs((E - E_old) / E)
        E_traj.append(float(E))
        tecr_traj.append(float(tecr))
        C = _solve(s["G"] + lambda_ * sigma2 * K, s["R"], lstsq_method)
        sigma2 = kv.weighted_residual(s["Pc"], s["Pcyy"], s["R"], s["G"], C) / (D * s["Pc"])
        gamma = float(np.clip(s["inliers"] / N, 0.05, 0.95))
        i += 1
    if i == 0:
        raise InputError(
            f"SparseVFC did not start: sigma2 = {sigma2:.3g} (must exceed 1e-8) and ecr = {ecr} "
            "(must be below 1); the velocities may all be zero"
        )
    return {
        "C": C,
        "sigma2": float(sigma2),
        "iteration": i - 1,
        "tecr_traj": np.array(tecr_traj),
        "E_traj": np.array(E_traj),
        "post": post,
    }


def _solve(A: np.ndarray, B: np.ndarray, method: str) -> np.ndarray:
    """The M-step solve on the client; one BLAS thread for small systems.

    A few-hundred-row factorisation is latency-bound: with several BLAS threads on a busy
    machine it was measured 20-50 times slower than with one.
    """
    if A.shape[0] > 600:
        return kv.solve_coefficients(A, B, method)
    with threadpool_limits(1):
        return kv.solve_coefficients(A, B, method)


def _sum_squares(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    return np.float64(np.einsum("ij,ij->", y, y))


def fitted(X: Any, Y: Any, ctrl: np.ndarray, beta: float, fit: dict, **params: Any) -> da.Array:
    """Lazy ``[V, P, angle, cosine]`` per row (``N x (d + 3)``, float64; see ``fitted_block``).

    ``params`` holds ``a`` and ``minP``; ``fit`` is :func:`fit_em`'s result.
    """
    ctrl = np.asarray(ctrl, dtype=np.float64)
    rows = block_rows(max(ctrl.shape[0], np.shape(X)[1]))
    x, y = as_rows(X, rows), as_rows(Y, rows)
    post = fit["post"]
    return map_rows(
        kv.fitted_block,
        x,
        y,
        n_cols=x.shape[1] + 3,
        dtype=np.float64,
        ctrl=ctrl,
        beta=beta,
        C=fit["C"],
        C_post=post["C"],
        sigma2=post["sigma2"],
        gamma=post["gamma"],
        a=params["a"],
        minP=params["minP"],
    )


def quantities(
    X: Any,
    ctrl: np.ndarray,
    C: np.ndarray,
    beta: float,
    names: list[str],
    formula: int = 2,
) -> dict[str, da.Array]:
    """Lazy vector-calculus quantities at every row of ``X``, all from one pass.

    One task per row block computes every quantity in ``names`` (see
    :func:`dynadask.kernels.vectorfield.field_quantities`); the results are columns of that
    one array, so computing several of them together reads and evaluates each block once.
    """
    ctrl = np.asarray(ctrl, dtype=np.float64)
    d = ctrl.shape[1]
    widths = {n: _width(n, d, formula) for n in names}
    # the kernel works SUB_ROWS points at a time, so a block holds little more than its
    # inputs and results: a Dask X keeps its (stored) row chunks unless they are very large
    x = as_rows(X, None if _stored_rows(X) else OUTPUT_ROWS)
    packed = map_rows(
        _packed,
        x,
        n_cols=sum(max(w, 1) for w in widths.values()),
        dtype=np.float64,
        ctrl=ctrl,
        C=np.asarray(C, dtype=np.float64),
        beta=beta,
        names=list(names),
        formula=formula,
    )
    out, start = {}, 0
    for name, w in widths.items():
        out[name] = packed[:, start] if w == 0 else packed[:, start : start + w]
        start += max(w, 1)
    return out


OUTPUT_ROWS = 16384
"""Rows per block of the vector-calculus pass when the input's own blocks are not used."""


def _stored_rows(X: Any) -> bool:
    """Whether ``X`` is a Dask array whose row blocks (e.g. the store's chunks) can be kept."""
    return isinstance(X, da.Array) and max(X.chunks[0]) <= 2 * OUTPUT_ROWS


def _width(name: str, d: int, formula: int) -> int:
    """Columns of a quantity (0 for a scalar per point)."""
    if name in ("velocity", "acceleration", "torsion", "laplacian") or (
        name == "curvature" and formula == 2
    ):
        return d
    if name == "curl" and d == 3:
        return 3
    return 0


def _packed(x: np.ndarray, **kwargs: Any) -> np.ndarray:
    res = kv.field_quantities(np.asarray(x), **kwargs)
    return np.column_stack([v for v in res.values()])


def gene_vectors(vectors: Any, Q: np.ndarray | None, genes: np.ndarray, n_genes: int) -> da.Array:
    """Lazy ``vectors Q^T`` (or the vectors) on columns ``genes`` of ``n_genes``, NaN elsewhere.

    ``Q`` None places the vectors themselves (a gene-space field); the result is float32.

    One row block at a time, so the cells x genes result is never whole in memory.
    """
    return map_rows(
        kv.to_genes, vectors, n_cols=n_genes, dtype=np.float32, Q=Q, genes=genes, n_genes=n_genes
    )
