"""``dyn.vf.topography``: fixed points, nullclines and separatrices of a learned field."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import topography as gt
from ..graph.blocks import take_columns
from ..io import commit
from ..kernels import topography as kt

log = logging.getLogger(__name__)

N_MEDIAN = 100_000
"""Cells whose median is the confidence's reference point (a seeded sample above this)."""

_TOPOGRAPHY_KEYS = (
    "xlim",
    "ylim",
    "zlim",
    "Xss",
    "ftype",
    "confidence",
    "fp_ind",
    "NCx",
    "NCy",
    "separatrices",
    "NCx_points",
    "NCx_offsets",
    "NCy_points",
    "NCy_offsets",
    "separatrices_points",
    "separatrices_offsets",
    "separatrices_saddle",
    "separatrices_kind",
    "topography_parameters",
)
"""Every key ``topography`` may write (all are replaced on a new call)."""


@dataclass(frozen=True)
class _Setup:
    """The resolved inputs: coordinates, field, box, sample and scales."""

    X: Any
    field: gt.Field
    lo: np.ndarray
    hi: np.ndarray
    span: np.ndarray
    sample: np.ndarray
    n_cells: int


def topography(
    adata: ad.AnnData,
    basis: str | None = "umap",
    layer: str | None = None,
    *,
    X: Any = None,
    dims: Sequence[int] | None = None,
    n: int = 25,
    VecFld: Mapping[str, Any] | None = None,
    seed: int = 19491001,
    n_flow: int = 100,
    nullclines: bool = True,
    separatrices: bool = True,
    tol_redundant: float = 1e-4,
    k: int = 50,
) -> None:
    """Map the fixed points, nullclines and separatrices of a learned vector field.

    Fixed points are zeros of the analytic field found by a root finder (MINPACK's hybrid
    method with the analytic Jacobian, then Newton) from seeds that run as parallel Dask
    tasks. A solution counts when its last Newton step is below ``1e-6`` of the box size
    (dynamo keeps every end point of its solver, converged or not) and it lies in the box;
    solutions closer than ``tol_redundant`` are one point. The type comes from the
    eigenvalues of the analytic Jacobian (``ftype``: -1 all real parts < 0, stable;
    0 mixed, saddle; 1 all >= 0, unstable).

    Seeds, as dynamo's: in up to 3 dimensions ``n`` Latin-hypercube points in the data's
    range widened by 10% on each side (the box); in more, ``n`` cells (the box is the data's
    range). Added here: the end points of ``n_flow`` cells followed forwards and backwards
    along the field (they gather at attractors and repellers, whose Newton basins can be
    small). In 2-D, the nullclines ``f_x = 0`` and ``f_y = 0`` through each fixed point are
    traced by pseudo-arclength continuation (dynamo's step length and span; the first
    tangent is the curve's own, so no unseeded random direction), their crossings seed
    the root finder again (twice at most: new points get their nullclines too), and the
    separatrices are the stable and unstable manifolds of the saddles, traced from the
    eigenvectors. Everything is deterministic given ``seed``.

    The confidence of a fixed point is dynamo's: a Gaussian (sigma = 10% of the mean data
    range) of its mean distance to its ``k`` nearest cells, divided by the largest value
    over the fixed points and the cells' median point (exact per-block nearest cells; the
    median of a seeded sample of 100,000 cells above that many).

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``uns['VecFld_<basis>']`` (from
        :func:`dynadask.vf.VectorField`) or with ``VecFld`` given.
    basis
        The embedding: cells at ``obsm['X_<basis>']``, field in ``uns['VecFld_<basis>']``.
    layer
        Only names the result, as dynamo: ``uns['VecFld_<layer>']`` (``'X'``: ``'VecFld'``).
    X
        Cells' coordinates to use instead of ``obsm['X_<basis>']`` (N x d, numpy or Dask).
    dims
        Columns of the coordinates the field lives in (default: the fit's ``dims``, else all).
    n
        Latin-hypercube seeds (d <= 3) or seed cells (d > 3).
    VecFld
        A fitted field (``X_ctrl``, ``C``, ``beta``) to use instead of the stored one.
    seed
        Seed of the Latin hypercube and of the cell samples (dynamo's 19491001).
    n_flow
        Cells whose forward and backward trajectories' end points are added as seeds.
    nullclines
        Trace nullclines and use their crossings (2-D only).
    separatrices
        Trace the saddles' manifolds (2-D only).
    tol_redundant
        Distance below which two solutions are one fixed point.
    k
        Nearest cells of the confidence.

    Returns
    -------
    None

    Writes
    ------
    uns['VecFld_<basis>']
        The fit's keys are kept; added: ``Xss`` (fixed points, F x d), ``ftype`` (F,),
        ``confidence`` (F,), ``fp_ind`` (nearest cell of each fixed point; dynamo sets it,
        and replaces ``Xss`` by those cells, only above 3-D: here ``Xss`` are the fixed
        points themselves), ``xlim``, ``ylim`` (d <= 3), ``zlim`` (3-D), in 2-D ``NCx``,
        ``NCy`` (dicts ``{'0': curve, ...}`` as dynamo's) and ``separatrices`` (same
        form; dynamo stores None), each also flat as ``<name>_points`` (all points) and
        ``<name>_offsets`` (curve ``i`` is rows ``offsets[i]:offsets[i+1]``), plus
        ``separatrices_saddle`` (row of ``Xss``) and ``separatrices_kind`` (-1 stable
        manifold, 1 unstable); ``topography_parameters``. Not written: dynamo's
        ``X_data`` (the cells' coordinates, ``obsm['X_<basis>'][:, dims]``) and None values.

    Raises
    ------
    ValueError
        No field, no coordinates, a field whose dimension differs from the coordinates', or
        ``n``/``k`` below 1.
    """
    vf_key = _result_key(basis, layer)
    field_dict = _field_dict(adata, basis, VecFld)
    if n < 1 or k < 1 or n_flow < 0:
        raise InputError(f"n ({n}) and k ({k}) must be at least 1 and n_flow ({n_flow}) >= 0")
    setup = _setup(adata, basis, X, dims, field_dict, seed)
    d = setup.lo.size
    Xss, extra = _fixed_points(setup, n=n, seed=seed, n_flow=n_flow, tol=tol_redundant)
    curves: dict[str, Any] = {}
    if d == 2 and nullclines and Xss.shape[0]:
        Xss, curves = _with_nullclines(setup, Xss, tol_redundant)
    _, J = kt.value_and_jacobian(Xss, *setup.field) if Xss.shape[0] else (None, np.empty((0, d, d)))
    ftype = kt.fixed_point_types(J)
    if not Xss.shape[0]:
        log.warning("no fixed point found in the box: try a larger n or n_flow")
    out = _finish(setup, Xss, ftype, curves, d == 2 and separatrices, k)
    out["topography_parameters"] = {
        "n": int(n),
        "seed": int(seed),
        "n_flow": int(n_flow),
        "tol_redundant": float(tol_redundant),
        "k": int(k),
        "n_seeds": int(extra),
    }
    if dims is not None:
        out["topography_parameters"]["dims"] = np.asarray(dims)
    stored = adata.uns.get(vf_key, {}) if VecFld is None else dict(VecFld)
    kept = {key: v for key, v in dict(stored).items() if key not in _TOPOGRAPHY_KEYS}
    commit(adata, "topography", uns={vf_key: kept | out})


def _result_key(basis: str | None, layer: str | None) -> str:
    if layer is None:
        if basis is None:
            raise InputError("pass basis= (e.g. 'umap') or layer= to name the result")
        return f"VecFld_{basis}"
    return "VecFld" if layer == "X" else f"VecFld_{layer}"


def _field_dict(adata: ad.AnnData, basis: str | None, VecFld: Any) -> Mapping[str, Any]:
    if VecFld is None:
        key = f"VecFld_{basis}"
        if key not in adata.uns:
            raise MissingKeyError(
                f"no uns[{key!r}]: learn the field first with dyn.vf.VectorField(adata, "
                f"basis={basis!r}), or pass VecFld="
            )
        VecFld = adata.uns[key]
    missing = [m for m in ("X_ctrl", "C", "beta") if m not in VecFld]
    if missing:
        raise InputError(
            f"the vector field has no {missing}: pass a SparseVFC fit "
            "(dyn.vf.VectorField or dyn.vf.SparseVFC)"
        )
    return VecFld


def _setup(adata, basis, X, dims, vf, seed) -> _Setup:
    """Coordinates, field, box and the cell sample (one pass over the cells)."""
    if X is None:
        if basis is None or keys.basis_key(basis) not in adata.obsm:
            raise MissingKeyError(
                f"no obsm['X_{basis}']: pass basis= an embedding in obsm or the coordinates X="
            )
        X = adata.obsm[keys.basis_key(basis)]
    if dims is None and vf.get("dims") is not None:
        fd = vf["dims"]
        dims = np.arange(int(fd)) if np.ndim(fd) == 0 else np.asarray(fd)
    if dims is not None:
        X = take_columns(X if isinstance(X, da.Array) else np.asarray(X), np.asarray(dims))
    ctrl = np.asarray(vf["X_ctrl"], dtype=np.float64)
    if X.shape[1] != ctrl.shape[1]:
        raise InputError(
            f"the coordinates have {X.shape[1]} columns but the field has {ctrl.shape[1]}: "
            "pass the dims= the field was learned on"
        )
    field = (ctrl, np.asarray(vf["C"], dtype=np.float64), float(vf["beta"]))
    rows, sample = gt.sample_rows(X, N_MEDIAN, seed)
    span, sample = compute(gt.extent(X), sample, desc="topography: cells")
    sample = np.asarray(sample, dtype=np.float64)
    sample = sample[np.all(np.isfinite(sample), axis=1)]
    lo, hi = span
    if not np.all(np.isfinite(span)) or sample.shape[0] < 2:
        raise InputError("fewer than 2 cells have finite coordinates: nothing to map")
    if lo.size <= 3:
        lo, hi = lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo)
    return _Setup(X, field, lo, hi, span[1] - span[0], sample, int(rows.size))


def _fixed_points(setup: _Setup, *, n: int, seed: int, n_flow: int, tol: float):
    """Distinct converged roots from the seeds (one compute), and the number of seeds."""
    d = setup.lo.size
    rng = np.random.default_rng(seed)
    if d <= 3:
        base = setup.lo + kt.latin_hypercube(n, d, seed) * (setup.hi - setup.lo)
    else:
        base = setup.sample[rng.choice(setup.sample.shape[0], min(n, setup.sample.shape[0]), False)]
    flow = setup.sample[
        rng.choice(setup.sample.shape[0], min(n_flow, setup.sample.shape[0]), replace=False)
    ]
    seeds = np.vstack([base, flow, flow])
    signs = np.concatenate([np.zeros(base.shape[0]), np.ones(flow.shape[0]), -np.ones(len(flow))])
    X, ok = _roots(setup, seeds, signs, "topography: fixed points")
    X = X[ok]
    return X[kt.distinct(X, tol)], seeds.shape[0]


def _roots(setup: _Setup, seeds: np.ndarray, signs: np.ndarray, desc: str):
    size = float(np.max(setup.hi - setup.lo))
    (res,) = compute(
        gt.roots(
            seeds,
            signs,
            setup.field,
            setup.lo,
            setup.hi,
            xtol=1e-6 * size,
            ds=size / 100,
            n_steps=300,
        ),
        desc=desc,
    )
    return res


def _steps(setup: _Setup) -> tuple[float, int]:
    """Dynamo's continuation step: 1/1000 of 5 times the sum of the box's sides."""
    return 5 * float(np.sum(setup.hi - setup.lo)) / 1000, 1000


def _with_nullclines(setup: _Setup, Xss: np.ndarray, tol: float, rounds: int = 2):
    """Nullclines through the fixed points; their crossings seed new fixed points."""
    ds, n_steps = _steps(setup)
    NCx, NCy = [], []
    new = Xss
    for _ in range(rounds):
        (curves,) = compute(
            gt.nullclines(new, setup.field, setup.lo, setup.hi, ds=ds, n_steps=n_steps),
            desc="topography: nullclines",
        )
        NCx += kt.clip_curves(curves[0], setup.lo, setup.hi, 10 * ds)
        NCy += kt.clip_curves(curves[1], setup.lo, setup.hi, 10 * ds)
        cross = _crossings(NCx, NCy, 10 * ds)
        if not cross.shape[0]:
            break
        X, ok = _roots(setup, cross, np.zeros(cross.shape[0]), "topography: crossings")
        X = X[ok]
        new = X[kt.distinct(X, tol, existing=Xss)]
        if not new.shape[0]:
            break
        Xss = np.vstack([Xss, new])
    return Xss, {"NCx": NCx, "NCy": NCy}


def _crossings(NCx: list, NCy: list, interval: float) -> np.ndarray:
    px = [kt.points_along(c, interval) for c in NCx]
    py = [kt.points_along(c, interval) for c in NCy]
    found = [kt.intersections(a, b) for a in px for b in py]
    return np.vstack(found) if found else np.empty((0, 2))


def _finish(setup: _Setup, Xss, ftype, curves, with_separatrices: bool, k: int) -> dict:
    """Separatrices and confidence (one compute), then the uns entries."""
    d = setup.lo.size
    median = np.median(setup.sample, axis=0)
    k_eff = max(1, min(k, setup.n_cells - 1))
    nearest = gt.nearest_cells(setup.X, np.vstack([Xss, median]), k_eff)
    saddles = np.flatnonzero(ftype == kt.SADDLE)
    todo = [nearest]
    if with_separatrices and saddles.size:
        ds, n_steps = _steps(setup)
        todo.append(
            gt.separatrices(
                Xss[saddles], saddles, Xss, setup.field, setup.lo, setup.hi, ds=ds, n_steps=n_steps
            )
        )
    done = compute(*todo, desc="topography: confidence")
    dist, rows = done[0]
    sigma = 0.1 * float(np.mean(setup.span))
    out: dict[str, Any] = {
        "Xss": Xss,
        "ftype": ftype,
        "confidence": kt.confidence(dist.mean(axis=1), sigma)[:-1],
        "fp_ind": rows[:-1, 0].astype(np.int64),
    }
    if d <= 3:
        for name, j in (("xlim", 0), ("ylim", 1), ("zlim", 2))[:d]:
            out[name] = np.array([setup.lo[j], setup.hi[j]])
    if d == 2:
        for name in ("NCx", "NCy"):
            out |= _ragged(name, curves.get(name, []))
        sep, owner, kind = [], np.empty(0, dtype=np.int64), np.empty(0)
        if len(done) > 1:
            sep, owner, kind = _clip_separatrices(done[1], saddles, setup)
        out |= _ragged("separatrices", sep)
        out["separatrices_saddle"], out["separatrices_kind"] = owner, kind
    return out


def _clip_separatrices(res, saddles: np.ndarray, setup: _Setup):
    curves, owner, kind = res
    sep, own, kd = [], [], []
    for c, o, t in zip(curves, owner, kind, strict=True):
        for piece in kt.clip_curves([c], setup.lo, setup.hi):
            sep.append(piece)
            own.append(saddles[o])
            kd.append(t)
    return sep, np.asarray(own, dtype=np.int64), np.asarray(kd, dtype=np.float64)


def _ragged(name: str, curves: list[np.ndarray]) -> dict[str, Any]:
    """Dynamo's dict of curves and its flat mirror (points and offsets)."""
    sizes = [c.shape[0] for c in curves]
    points = np.vstack(curves) if curves else np.empty((0, 2))
    return {
        name: {str(i): c for i, c in enumerate(curves)},
        f"{name}_points": points,
        f"{name}_offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
    }
