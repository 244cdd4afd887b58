"""``dyn.vf.Potential``: a potential landscape of the learned 2-D field on a grid."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anndata as ad
import numpy as np
from scipy.interpolate import griddata

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import potential as gp
from ..graph import topography as gt
from ..io import commit
from ..kernels import potential as kp

log = logging.getLogger(__name__)

METHODS = ("Ao", "Bhattacharya", "Tang")
GRID = 100
"""Points per axis of the interpolated grids (Ao, Bhattacharya), as dynamo."""
MAX_INTERPOLATED = 50_000
"""Ao's grid is interpolated from at most this many cells (a seeded sample beyond)."""


def _field(adata: ad.AnnData, basis: str) -> tuple[np.ndarray, np.ndarray, float]:
    key = f"VecFld_{basis}"
    vf = adata.uns.get(key)
    if not isinstance(vf, Mapping) or not {"X_ctrl", "C", "beta"} <= set(vf):
        raise MissingKeyError(
            f"no uns[{key!r}] with a SparseVFC fit: learn the field first with "
            f"dyn.vf.VectorField(adata, basis={basis!r})"
        )
    ctrl = np.asarray(vf["X_ctrl"], dtype=np.float64)
    if ctrl.shape[1] != 2:
        raise InputError(
            f"the field of basis {basis!r} is {ctrl.shape[1]}-D: Potential maps 2-D fields "
            "(use basis='umap', or dyn.ext.ddhodge for a potential in any dimension)"
        )
    return ctrl, np.asarray(vf["C"], dtype=np.float64), float(vf["beta"])


def _diffusion(DiffMat: Callable | np.ndarray | float | None) -> np.ndarray:
    """The constant 2 x 2 diffusion matrix (identity by default, as dynamo's)."""
    if DiffMat is None:
        return np.eye(2)
    D = DiffMat(np.zeros(2)) if callable(DiffMat) else DiffMat
    D = np.eye(2) * float(D) if np.ndim(D) == 0 else np.asarray(D, dtype=np.float64)
    if D.shape != (2, 2) or not np.allclose(D, D.T) or np.any(np.linalg.eigvalsh(D) <= 0):
        raise InputError(
            "DiffMat must give a symmetric positive-definite 2 x 2 matrix (or a positive "
            f"scalar); got {np.array2string(np.asarray(D))}"
        )
    return D


def _limits(lim: Sequence[float] | None, data: np.ndarray, name: str) -> np.ndarray:
    out = data if lim is None else np.asarray(lim, dtype=np.float64)
    if out.shape != (2,) or not np.all(np.isfinite(out)) or out[1] <= out[0]:
        raise InputError(f"{name} must be [low, high] with low < high; got {out.tolist()}")
    return out


def _grid(x_lim: np.ndarray, y_lim: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.linspace(*x_lim, n), np.linspace(*y_lim, n))


def Potential(  # noqa: N802 - dynamo's name
    adata: ad.AnnData,
    basis: str = "umap",
    *,
    x_lim: Sequence[float] | None = None,
    y_lim: Sequence[float] | None = None,
    DiffMat: Callable | np.ndarray | float | None = None,  # noqa: N803 - dynamo's name
    method: str = "Ao",
    xyGridSpacing: float | None = None,  # noqa: N803
    dt: float = 1e-2,
    tol: float = 1e-2,
    numTimeSteps: int = 1400,  # noqa: N803
    keep_every: int = 10,
    n_points: int = 25,
    boundary: Sequence[float] | None = None,
    refpoint: Sequence[float] | None = None,
    TotalTime: float = 2.0,  # noqa: N803
    action_tol: float = 1e-8,
    seed: int = 0,
) -> ad.AnnData:
    """Map a potential landscape of the learned 2-D vector field onto a grid.

    Three constructions, as in dynamo (``method``):

    - ``'Ao'`` (dynamo's default): at every cell, the antisymmetric ``Q`` of Ao's
      decomposition solves ``F Q - (F Q)^T = F D - (F D)^T`` (``F`` the field's analytic
      Jacobian there; a linear least-squares problem), and ``U = -x^T (D + Q)^-1 F x / 2``;
      the cells' ``U`` is interpolated linearly onto a 100 x 100 grid over the limits. ``U``
      is a quadratic form about the origin: it is Ao's potential for a linear field with its
      fixed point at 0 and only an approximation elsewhere (as in dynamo);
    - ``'Bhattacharya'``: Euler paths ``x += f dt`` (``numTimeSteps`` steps) from a grid of
      starts ``xyGridSpacing`` apart, accumulating ``dU = -f . dx``; paths ending within
      ``xyGridSpacing`` of each other share an attractor and are shifted so their ends meet
      its potential (that of the first path to reach it); the path points are interpolated
      onto a 100 x 100 grid. Exact along each path for a gradient field ``f = -grad U``;
    - ``'Tang'`` (the least action under A-type integration, Tang et al. 2017): at each point
      of an ``n_points`` x ``n_points`` grid, the least action
      ``S = 1/4 sum (dx/dt - f)^T D^-1 (dx/dt - f) dt`` (drift at the left point) of a path of
      ``n_points`` steps over ``TotalTime`` from ``refpoint`` to the grid point, minimised
      with the exact gradient (L-BFGS) from the straight line.

    The cells are read once (their range, and for Ao their coordinates, by row block); the
    cells' Ao values, Bhattacharya's paths and Tang's grid points are computed in parallel
    tasks (a row block, 64 paths or 16 grid points a task).

    Departures from dynamo 1.5.3: ``basis`` is used (dynamo's ``fit`` always reads umap);
    the limits default to the cells' range (dynamo: ``[0, 40]``, which misses most UMAPs);
    Bhattacharya's spacing defaults to a twentieth of the larger range (dynamo: 2) and its
    grid is not shifted by 0.1; Tang's path runs from the reference stable point to each
    grid point (dynamo starts at the grid point and ends at the reference, the action of
    the descent), ``Zgrid[i, j]`` belongs to ``(Xgrid[i, j], Ygrid[i, j])`` (dynamo's is
    transposed), its grid spans ``x_lim`` x ``y_lim`` (``boundary`` sets both, as dynamo's)
    and its reference defaults to the most confident stable fixed point of
    ``dyn.vf.topography`` (dynamo: the first one of its own search). Ao's grid comes from at
    most 50,000 cells (a seeded sample). The diffusion matrix is constant.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']`` (a 2-D field) and ``obsm['X_<basis>']``.
    basis
        The embedding of the field.
    x_lim, y_lim
        ``[low, high]`` of the grid (default: the cells' range).
    DiffMat
        The diffusion matrix: ``None`` (identity), a scalar, a 2 x 2 array or a function
        returning one (called once).
    method
        ``'Ao'``, ``'Bhattacharya'`` or ``'Tang'``.
    xyGridSpacing, dt, tol, numTimeSteps
        Bhattacharya: start spacing, Euler step, the convergence tolerance on the last
        step's change of potential (a warning names the paths that miss it), steps.
    keep_every
        Bhattacharya: keep every this many steps of each path for the interpolation.
    n_points
        Tang: grid points per axis and steps per path.
    boundary
        Tang: ``[low, high]`` for both axes (overrides ``x_lim`` and ``y_lim``).
    refpoint
        Tang: the start of every path (default: the most confident stable fixed point).
    TotalTime
        Tang: the duration of every path.
    action_tol
        Tang: the optimiser's tolerance.
    seed
        Ao: seed of the cells the grid is interpolated from when there are more than 50,000.

    Returns
    -------
    anndata.AnnData
        ``adata``, with the landscape.

    Raises
    ------
    dynadask.MissingKeyError
        Without the field, the embedding or (Tang, no ``refpoint``) a stable fixed point.
    dynadask.InputError
        For an unknown method, a field that is not 2-D, bad limits or diffusion matrix.

    Writes
    ------
    uns['grid_Pot_<basis>']
        ``Xgrid``, ``Ygrid``, ``Zgrid``, ``method``; Ao adds ``U`` (per cell), ``P`` (per
        cell, ``exp(-U)`` normalised), ``S``, ``A`` (cells x 2 x 2); Bhattacharya adds
        ``attractors`` (the paths' distinct ends); Tang adds ``refpoint``.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}, not {method!r}")
    basis = basis[2:] if basis.startswith("X_") else basis
    field = _field(adata, basis)
    D = _diffusion(DiffMat)
    key = keys.basis_key(basis)
    if key not in adata.obsm:
        raise MissingKeyError(f"no obsm[{key!r}]: run dyn.tl.reduceDimension (or pass a basis)")
    X = adata.obsm[key]
    if X.shape[1] != 2:
        raise InputError(f"obsm[{key!r}] has {X.shape[1]} columns: Potential needs 2")
    if method == "Ao":
        (span, (U, S, A)) = compute(gt.extent(X), gp.ao(X, field, D), desc="potential: Ao")
    else:
        (span,) = compute(gt.extent(X), desc="potential: cells' range")
    if boundary is not None:
        x_lim = y_lim = boundary
    x_lim = _limits(x_lim, span[:, 0], "x_lim")
    y_lim = _limits(y_lim, span[:, 1], "y_lim")
    if method == "Ao":
        out = _ao(X, U, S, A, x_lim, y_lim, seed)
    elif method == "Bhattacharya":
        out = _bhattacharya(field, x_lim, y_lim, xyGridSpacing, dt, tol, numTimeSteps, keep_every)
    else:
        out = _tang(adata, basis, field, D, x_lim, y_lim, n_points, refpoint, TotalTime, action_tol)
    out["method"] = method
    commit(adata, "Potential", uns={f"grid_Pot_{basis}": out})
    return adata


def _ao(X, U, S, A, x_lim, y_lim, seed) -> dict[str, Any]:
    ok = np.isfinite(U)
    rows = np.flatnonzero(ok)
    if rows.size > MAX_INTERPOLATED:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_INTERPOLATED, replace=False))
    xy = np.asarray(_rows(X, rows), dtype=np.float64)
    Xgrid, Ygrid = _grid(x_lim, y_lim, GRID)
    Zgrid = griddata(xy, U[rows], (Xgrid, Ygrid), method="linear")
    P = np.full(U.shape, np.nan)
    P[ok] = np.exp(-(U[ok] - U[ok].min()))
    P /= P[ok].sum()
    return {"Xgrid": Xgrid, "Ygrid": Ygrid, "Zgrid": Zgrid, "U": U, "P": P[:, None], "S": S, "A": A}


def _rows(X: Any, rows: np.ndarray) -> np.ndarray:
    """The coordinates of ``rows`` (read by row block on a store)."""
    if isinstance(X, np.ndarray):
        return X[rows]
    from ..graph.blocks import gather_rows

    (out,) = compute(gather_rows(X, rows), desc="potential: cells")
    return np.asarray(out)


def _bhattacharya(field, x_lim, y_lim, spacing, dt, tol, n_steps, keep_every) -> dict[str, Any]:
    spacing = max(np.ptp(x_lim), np.ptp(y_lim)) / 20 if spacing is None else float(spacing)
    if spacing <= 0 or n_steps < 2 or dt <= 0 or keep_every < 1:
        raise InputError("xyGridSpacing and dt must be positive, numTimeSteps at least 2")
    gx = np.arange(x_lim[0], x_lim[1] + spacing / 2, spacing)
    gy = np.arange(y_lim[0], y_lim[1] + spacing / 2, spacing)
    starts = np.array(np.meshgrid(gx, gy, indexing="ij")).reshape(2, -1).T
    (res,) = compute(gp.paths(starts, field, dt, n_steps, keep_every), desc="potential: paths")
    xs, pot, change = res
    late = np.abs(change) > tol
    if late.any():
        warnings.warn(
            f"{int(late.sum())} of {len(starts)} Bhattacharya paths have not converged "
            f"(last change of potential above tol={tol}): raise numTimeSteps or dt",
            stacklevel=3,
        )
    shift, attractors = kp.align_basins(xs[:, -1], pot[:, -1], spacing)
    pot = pot - shift[:, None]
    pts, vals = xs.reshape(-1, 2), pot.ravel()
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    Xgrid, Ygrid = _grid(np.array([lo[0], hi[0]]), np.array([lo[1], hi[1]]), GRID)
    Zgrid = griddata(pts, vals, (Xgrid, Ygrid), method="linear")
    return {"Xgrid": Xgrid, "Ygrid": Ygrid, "Zgrid": Zgrid, "attractors": attractors}


def _reference(adata: ad.AnnData, basis: str, refpoint) -> np.ndarray:
    if refpoint is not None:
        ref = np.asarray(refpoint, dtype=np.float64).ravel()
        if ref.shape != (2,):
            raise InputError(f"refpoint must be a 2-D point; got {ref.tolist()}")
        return ref
    for k in (f"VecFld_{basis}", f"topography_{basis}"):
        entry = adata.uns.get(k)
        if isinstance(entry, Mapping) and "Xss" in entry and "ftype" in entry:
            Xss = np.asarray(entry["Xss"], dtype=np.float64)
            stable = np.asarray(entry["ftype"]) == -1
            if stable.any():
                conf = np.asarray(entry.get("confidence", np.ones(len(Xss))), dtype=np.float64)
                return Xss[stable][np.argmax(conf[stable])]
    raise MissingKeyError(
        f"no stable fixed point of the {basis} field to start Tang's paths from: run "
        f"dyn.vf.topography(adata, basis={basis!r}) or pass refpoint="
    )


def _tang(adata, basis, field, D, x_lim, y_lim, n_points, refpoint, total_time, tol):
    if n_points < 2 or total_time <= 0:
        raise InputError("n_points must be at least 2 and TotalTime positive")
    ref = _reference(adata, basis, refpoint)
    Xgrid, Ygrid = _grid(x_lim, y_lim, n_points)
    points = np.column_stack([Xgrid.ravel(), Ygrid.ravel()])
    task = gp.actions(points, ref, field, np.linalg.inv(D), n_points, total_time, tol)
    (S,) = compute(task, desc="potential: least actions")
    return {"Xgrid": Xgrid, "Ygrid": Ygrid, "Zgrid": S.reshape(Xgrid.shape), "refpoint": ref}
