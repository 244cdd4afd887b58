"""``dyn.vf.SparseVFC`` and ``dyn.vf.vector_field_function``: the field from arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from .._core.compute import compute
from .._core.errors import InputError
from ..graph import vectorfield as gv
from ..kernels import vectorfield as kv

M_MAX = 1000
"""Default cap on the number of control points (dynamo's rule gives 0.05 N)."""

N_FIT = 100_000
"""Default size of the fit set: above it the EM runs on a seeded sample of this many cells."""


def SparseVFC(
    X: Any,
    Y: Any,
    Grid: Any = None,
    *,
    M: int | None = 100,
    a: float = 5,
    beta: float | None = None,
    ecr: float = 1e-5,
    gamma: float = 0.9,
    lambda_: float = 3,
    minP: float = 1e-5,
    MaxIter: int = 500,
    theta: float = 0.75,
    velocity_based_sampling: bool = True,
    sigma: float = 0.8,
    eta: float = 0.5,
    seed: int = 0,
    lstsq_method: str = "cholesky",
    M_max: int | None = M_MAX,
    n_fit: int | None = N_FIT,
) -> dict[str, Any]:
    """Learn a vector field from positions and noisy velocities (SparseVFC, Ma et al. 2013).

    dynamo's algorithm: ``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)`` over ``M`` control
    points drawn (seeded, by speed) among the distinct rows of ``X``, ``beta`` from their
    nearest-neighbour distances, and an EM whose E-step weighs each cell by its posterior of
    being an inlier (Gaussian residual against a uniform outlier density ``1/a``) and whose
    M-step solves ``(U^T P U + lambda sigma2 K) C = U^T P Y``.

    Departures from dynamo 1.5.3, all deliberate:

    - the M-step is solved by a symmetric positive-definite (Cholesky) solve of that system;
      dynamo's default ("drouin") solves its normal equations, which squares the condition
      number and makes the 2-D fits chaotic (``lstsq_method='drouin'`` reproduces it);
    - the posterior is computed in log space (no underflow to 0, so no replacement of zeros
      by the smallest non-zero value);
    - each EM iteration is one map-reduce over row blocks of the fit set (the N x M kernel
      matrix is never held whole), and above ``n_fit`` finite rows the EM runs on a seeded
      uniform sample of ``n_fit`` of them, so its cost does not grow with N;
    - ``M=None`` means dynamo's ``max(min(50, N), int(0.05 N) + 1)``, capped at ``M_max``.

    Parameters
    ----------
    X
        Positions (N x d; numpy or Dask).
    Y
        Velocities (N x d); rows with a non-finite value are left out of the fit.
    Grid
        Optional points at which to evaluate the field (``grid_V``).
    M
        Number of control points (``None``: dynamo's rule capped at ``M_max``).
    a
        Volume of the outliers' uniform distribution.
    beta
        Kernel width ``exp(-beta ||x - y||^2)``; ``None`` chooses it from the control points.
    ecr
        Stop when the relative energy change falls below this.
    gamma
        Initial inlier fraction.
    lambda_
        Regularisation weight.
    minP
        Lower clip of the posterior in the M-step.
    MaxIter
        Maximum EM iterations.
    theta
        Posterior above which a cell counts as an inlier.
    velocity_based_sampling
        Draw control points by speed (else uniformly).
    sigma, eta
        Parameters of dynamo's divergence-/curl-free kernels; unused by the Gaussian kernel
        fitted here (accepted so that dynamo's calls run unchanged).
    seed
        Seed of the control-point draw (and of the fit sample above ``n_fit``).
    lstsq_method
        ``'cholesky'`` (default), ``'lstsq'`` (dynamo's ``'scipy'``) or ``'drouin'``.
    M_max
        Cap on ``M`` when ``M`` is ``None``.
    n_fit
        Fit on a sample of this many finite rows when there are more (``None``: all).

    Returns
    -------
    dict
        ``X_ctrl``, ``ctrl_idx`` (positions among the sorted distinct rows, as dynamo),
        ``ctrl_rows`` (rows of ``X`` that are the control points), ``C``, ``beta``,
        ``sigma2``, ``P`` (posterior of the fit rows, n x 1), ``V`` (field at the fit rows),
        ``VFCIndex``, ``iteration``, ``tecr_traj``, ``E_traj``, ``grid``, ``grid_V``,
        ``valid_ind``, ``fit_idx`` (fit rows among ``valid_ind``; all of them up to
        ``n_fit``) and ``mean_cosine`` (of ``Y`` and ``V`` over the fit rows).

    Writes
    ------
    Nothing (arrays in, a dictionary out).

    Raises
    ------
    ValueError
        Mismatched shapes, too few distinct cells, an unknown solver.
    """
    X, Y = _as_numpy(X), _as_numpy(Y)
    if X.shape != Y.shape or X.ndim != 2:
        raise InputError(f"X {X.shape} and Y {Y.shape} must be the same N x d shape")
    valid = np.flatnonzero(np.isfinite(Y.sum(axis=1)))
    params = {"a": a, "ecr": ecr, "gamma": gamma, "lambda_": lambda_, "minP": minP}
    params |= {"MaxIter": MaxIter, "theta": theta, "lstsq_method": lstsq_method}
    fit = fit_field(
        X[valid],
        Y[valid],
        M=kv.default_m(valid.size, M_max) if M is None else M,
        beta=beta,
        seed=seed,
        velocity_based=velocity_based_sampling,
        n_fit=n_fit,
        params=params,
    )
    Xf, Yf = X[valid][fit["fit_idx"]], Y[valid][fit["fit_idx"]]
    (rows,) = compute(gv.fitted(Xf, Yf, fit["X_ctrl"], fit["beta"], fit, **params))
    d = X.shape[1]
    P = rows[:, d]
    out = {k: v for k, v in fit.items() if k != "post"}
    out["ctrl_rows"] = valid[fit["ctrl_rows"]]
    out |= {"valid_ind": valid, "P": P[:, None], "V": rows[:, :d]}
    out |= {"VFCIndex": np.flatnonzero(P > theta), "mean_cosine": float(np.mean(rows[:, -1]))}
    out["grid"] = None if Grid is None else np.asarray(Grid)
    out["grid_V"] = None if Grid is None else grid_values(Grid, fit)
    return out


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, da.Array):
        (x,) = compute(x)
    return np.asarray(x)


def fit_field(
    X: np.ndarray,
    Y: np.ndarray,
    *,
    M: int,
    beta: float | None,
    seed: int,
    velocity_based: bool,
    n_fit: int | None,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Control points, kernel width and EM on finite rows ``X``, ``Y`` (the shared core)."""
    ctrl, ctrl_idx, ctrl_rows = kv.control_points(X, Y, M, seed, velocity_based)
    beta = kv.bandwidth_beta(ctrl) if beta is None else float(beta)
    n = X.shape[0]
    if n_fit is not None and n > n_fit:
        fit_idx = np.sort(np.random.default_rng(seed).choice(n, size=int(n_fit), replace=False))
    else:
        fit_idx = np.arange(n)
    Xf = X if fit_idx.size == n else X[fit_idx]
    Yf = Y if fit_idx.size == n else Y[fit_idx]
    em = gv.fit_em(Xf, Yf, ctrl, beta, **params)
    out = {"X_ctrl": ctrl, "ctrl_idx": ctrl_idx, "ctrl_rows": ctrl_rows, "beta": beta}
    return out | em | {"fit_idx": fit_idx, "M": int(ctrl.shape[0])}


def grid_values(grid: Any, fit: dict[str, Any]) -> np.ndarray:
    """The fitted field at the grid points (evaluated a few thousand points at a time)."""
    return kv.evaluate(np.asarray(grid), fit["X_ctrl"], fit["C"], fit["beta"])


def vector_field_function(
    x: Any,
    vf_dict: dict[str, Any],
    dim: int | Sequence[int] | None = None,
    *,
    X_ctrl_ind: Sequence[int] | None = None,
) -> np.ndarray:
    """Evaluate a fitted field ``f(x) = sum_m C_m exp(-beta ||x - c_m||^2)`` at points.

    Parameters
    ----------
    x
        Points (n x d, or one point of length d).
    vf_dict
        A fit: ``uns['VecFld_<basis>']`` or :func:`SparseVFC`'s result (``X_ctrl``, ``C``,
        ``beta``).
    dim
        Keep only these output components (an int keeps the first ``dim``).
    X_ctrl_ind
        Use only these control points (the others' coefficients are set to 0).

    Returns
    -------
    numpy.ndarray
        The field at ``x`` (n x d, or d for one point).

    Writes
    ------
    Nothing.
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    C = np.asarray(vf_dict["C"], dtype=np.float64)
    if X_ctrl_ind is not None:
        keep = np.zeros(C.shape[0], dtype=bool)
        keep[np.asarray(X_ctrl_ind)] = True
        C = np.where(keep[:, None], C, 0.0)
    V = kv.evaluate(np.atleast_2d(x), np.asarray(vf_dict["X_ctrl"]), C, float(vf_dict["beta"]))
    if dim is not None:
        V = V[:, :dim] if np.isscalar(dim) else V[:, list(dim)]
    return V[0] if single else V
