"""``dyn.pd.fate``: the past and future states of cells along the learned vector field."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import fate as gf
from ..graph import vectorfield as gv
from ..io import commit
from ..kernels import fate as kf

_AVERAGE = (False, True, "origin", "trajectory")


def fate(
    adata: ad.AnnData,
    init_cells: Sequence[str] | Sequence[int] | None,
    init_states: np.ndarray | None = None,
    *,
    basis: str = "umap",
    t_end: float | None = None,
    direction: str = "both",
    interpolation_num: int = 250,
    average: bool | str = False,
    sampling: str = "arc_length",
    VecFld_true: Callable[[np.ndarray], np.ndarray] | None = None,
    inverse_transform: bool = False,
    Qkey: str = "PCs",
    scale: float = 1,
    cores: int = 1,
    stitch: str = "time",
    rtol: float = 1e-3,
    atol: float = 1e-6,
    batch_size: int | None = None,
) -> None:
    """Predict where cells come from and go to by integrating the learned vector field.

    Each initial state is integrated forward over ``[0, t_end]`` and/or backward over
    ``[0, -t_end]`` with dynamo's settings (Dormand-Prince 5(4), ``rtol=1e-3``,
    ``atol=1e-6``, ``max_step = t_end / interpolation_num``, and a terminal event when every
    component of the field is below 1e-5), then resampled at points spaced uniformly in arc
    length (``interpolation_num`` per direction, after cutting a periodic tail) as dynamo
    does. Unlike dynamo, which runs ``solve_ivp`` cell by cell, the states are integrated as
    batches (one field evaluation per stage for a whole batch, each trajectory with its own
    step size), each batch a task of the active Dask scheduler.

    Departures from dynamo 1.5.3:

    - ``direction='both'`` joins the two branches in time order (``stitch='time'``); dynamo
      measures the arc length along the backward states with their *feature* axis reversed,
      which puts about a third of the samples at ``t = 0``. ``stitch='dynamo'`` reproduces
      that for parity;
    - the terminal event ends a trajectory at the end of the step where it fires (dynamo
      locates the switch inside the step), and positions between steps come from cubic
      Hermite interpolation of the accepted steps (dynamo: the solver's quartic);
    - ``t`` and ``prediction`` are stored as arrays (``n x L`` and ``n x d x L``; dynamo
      keeps lists of the same per-cell arrays); ``average='trajectory'`` averages the
      trajectories sample by sample, times included.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with ``obsm['X_<basis>']`` and
        ``uns['VecFld_<basis>']`` (from :func:`dynadask.vf.VectorField`).
    init_cells
        Names of the initial cells (or, when none of them is a name, their positions).
    init_states
        Initial states (``n x d``) instead of the cells' coordinates.
    basis
        The embedding the field was learned in.
    t_end
        Integration time; by default dynamo's: the largest coordinate range over the 1st
        percentile of the field's non-zero absolute components at the cells.
    direction
        ``'forward'``, ``'backward'`` or ``'both'``.
    interpolation_num
        Samples per direction.
    average
        ``False``; ``True`` or ``'origin'``: one trajectory from the mean initial state;
        ``'trajectory'``: the mean of the trajectories.
    sampling
        ``'arc_length'``.
    VecFld_true
        A known field to integrate instead of the learned one: ``f(Y)`` maps an ``m x d``
        array of states to their derivatives.
    inverse_transform
        Basis ``pca``: also store the trajectories in gene space, ``prediction^T Q^T`` with
        the loadings ``uns[Qkey]``.
    Qkey
        Key of the PCA loadings.
    scale
        Factor on the field.
    cores
        Ignored with a warning: batches run on the active Dask scheduler.
    stitch
        ``'time'`` or ``'dynamo'`` (see above).
    rtol, atol
        Local error tolerances of the integrator.
    batch_size
        Initial states per task (default from the dimension).

    Writes
    ------
    uns['fate_<basis>']
        ``init_states`` (``n x d``), ``init_cells``, ``average``, ``t`` (``n x L``),
        ``prediction`` (``n x d x L``), ``genes`` (``'<basis>_0'``, …), ``exprs``
        (``n x L x genes``, with ``inverse_transform``) and ``parameters`` (``t_end``,
        ``direction``, ``interpolation_num``, ``stitch``, ``rtol``, ``atol``).

    Raises
    ------
    ValueError
        No basis, field or coordinates; unknown cells; bad options.
    """
    if cores not in (1, None):
        warnings.warn(
            "cores is ignored: dynadask computes on the active Dask scheduler", stacklevel=2
        )
    basis = _check(adata, basis, direction, sampling, average, stitch, inverse_transform)
    X = adata.obsm[keys.basis_key(basis)]
    vf = adata.uns.get(f"VecFld_{basis}")
    if vf is None and VecFld_true is None:
        raise MissingKeyError(
            f"no uns['VecFld_{basis}']: learn the field first with dyn.vf.VectorField(adata, "
            f"basis={basis!r}), or pass VecFld_true="
        )
    field = (
        kf.gaussian_field(vf["X_ctrl"], vf["C"], vf["beta"], scale)
        if VecFld_true is None
        else _scaled(VecFld_true, scale)
    )
    names, y0 = _initial(adata, X, init_cells, init_states)
    if average in (True, "origin"):
        y0 = y0.mean(axis=0, keepdims=True)
    if t_end is None:
        t_end = _t_end(adata, X, basis, vf, VecFld_true)
    if not np.isfinite(t_end) or t_end <= 0:
        raise InputError(f"t_end must be a positive number, not {t_end!r}")
    T, P = gf.fates(
        y0,
        field,
        float(t_end),
        batch=batch_size,
        direction=direction,
        interpolation_num=int(interpolation_num),
        stitch=stitch,
        rtol=rtol,
        atol=atol,
    )
    if average == "trajectory":
        T, P = T.mean(axis=0, keepdims=True), P.mean(axis=0, keepdims=True)
    out = {
        "init_states": y0,
        "init_cells": np.asarray(names, dtype=str),
        "average": average,
        "t": T,
        "prediction": P,
        "genes": np.array([f"{basis}_{i}" for i in range(y0.shape[1])]),
        "parameters": {
            "t_end": float(t_end),
            "direction": direction,
            "interpolation_num": int(interpolation_num),
            "stitch": stitch,
            "rtol": rtol,
            "atol": atol,
        },
    }
    if inverse_transform:
        out["exprs"], out["expr_genes"] = _to_genes(adata, P, Qkey)
    commit(adata, "fate", uns={f"fate_{basis}": out})


def _check(adata, basis, direction, sampling, average, stitch, inverse_transform) -> str:
    if basis is None:
        raise InputError(
            "fate integrates a field learned in an embedding: pass basis= (e.g. 'umap' or "
            "'pca'); the gene-space field (basis=None) is not offered"
        )
    basis = basis[2:] if basis.startswith("X_") else basis
    if keys.basis_key(basis) not in adata.obsm:
        raise MissingKeyError(f"no obsm['X_{basis}']: compute the embedding first")
    if direction not in kf.DIRECTIONS:
        raise InputError(f"unknown direction {direction!r}: use one of {kf.DIRECTIONS}")
    if sampling != "arc_length":
        raise InputError(f"unknown sampling {sampling!r}: trajectories are sampled 'arc_length'")
    if not any(average is a or (isinstance(a, str) and average == a) for a in _AVERAGE):
        raise InputError(f"unknown average {average!r}: use one of {_AVERAGE}")
    if stitch not in kf.STITCHES:
        raise InputError(f"unknown stitch {stitch!r}: use one of {kf.STITCHES}")
    if inverse_transform and basis != "pca":
        raise InputError(
            "inverse_transform maps PCA trajectories to genes: integrate in basis='pca' "
            f"(the {basis!r} embedding has no linear inverse)"
        )
    return basis


def _scaled(fn: Callable[[np.ndarray], np.ndarray], scale: float) -> Callable:
    return fn if scale == 1 else _Scaled(fn, float(scale))


class _Scaled:
    def __init__(self, fn: Callable, scale: float) -> None:
        self.fn, self.scale = fn, scale

    def __call__(self, Y: np.ndarray) -> np.ndarray:
        return self.scale * np.asarray(self.fn(Y), dtype=np.float64)


def _initial(adata, X, init_cells, init_states) -> tuple[list[str], np.ndarray]:
    """The initial cells' names and their states (``n x d``)."""
    if init_states is not None:
        y0 = np.atleast_2d(np.asarray(init_states, dtype=np.float64))
        if y0.shape[1] != X.shape[1]:
            raise InputError(
                f"init_states has {y0.shape[1]} columns but obsm has {X.shape[1]}: pass states "
                "in the basis coordinates"
            )
        if y0.ndim != 2 or not np.all(np.isfinite(y0)):
            raise InputError(
                f"init_states must be a finite (n, {X.shape[1]}) array of start points; got "
                f"shape {y0.shape} with {int(np.sum(~np.isfinite(y0)))} NaN/infinite values"
            )
        names = [] if init_cells is None else [str(c) for c in np.atleast_1d(init_cells)]
        return names, y0
    if init_cells is None:
        raise InputError("pass init_cells (cell names or positions) or init_states")
    cells = list(np.atleast_1d(init_cells))
    names = adata.obs_names
    found = [c for c in cells if isinstance(c, str) and c in names]
    if found:
        absent = [c for c in cells if not (isinstance(c, str) and c in names)]
        if absent:
            raise InputError(
                f"{len(absent)} of init_cells are not cells of this AnnData (e.g. "
                f"{[str(c) for c in absent[:3]]}): pass names from adata.obs_names"
            )
        rows = names.get_indexer(found)
    else:
        try:
            rows = np.asarray(cells, dtype=np.int64)
        except (TypeError, ValueError):
            raise InputError(f"none of init_cells {cells[:5]} is a cell name or position") from None
        if rows.size and (rows.min() < -adata.n_obs or rows.max() >= adata.n_obs):
            raise InputError(f"init_cells positions must lie in [0, {adata.n_obs})")
        rows = rows % adata.n_obs
    if rows.size == 0:
        raise InputError("init_cells is empty")
    if isinstance(X, da.Array):
        order = np.argsort(rows)
        (x,) = compute(X[rows[order]], desc="fate initial states")
        y0 = np.empty(x.shape)
        y0[order] = x
    else:
        y0 = np.asarray(X, dtype=np.float64)[rows]
    return [str(c) for c in names[rows]], y0


def _t_end(adata, X, basis, vf, VecFld_true) -> float:
    """The ``t_end`` of dynamo: widest coordinate range over the 1st percentile of ``|f|`` > 0."""
    key = f"{keys.velocity_key(basis)}_SparseVFC"
    if VecFld_true is not None:
        V = None
    elif key in adata.obsm:
        V = adata.obsm[key]
    else:
        V = gv.quantities(X, vf["X_ctrl"], vf["C"], vf["beta"], ["velocity"])["velocity"]
    lo, hi = (
        (da.min(X, axis=0), da.max(X, axis=0))
        if isinstance(X, da.Array)
        else (
            np.min(X, axis=0),
            np.max(X, axis=0),
        )
    )
    if V is None:
        lo, hi, x = compute(lo, hi, X, desc="fate time span")
        V = VecFld_true(np.asarray(x, dtype=np.float64))
    else:
        lo, hi, V = compute(lo, hi, V, desc="fate time span")
    V = np.abs(np.asarray(V, dtype=np.float64))
    V = V[V > 0]
    if V.size == 0:
        raise InputError("the field is zero at every cell: pass t_end=")
    return float(np.max(np.asarray(hi) - np.asarray(lo)) / np.percentile(V, 1))


def _to_genes(adata: ad.AnnData, P: np.ndarray, Qkey: str) -> tuple[np.ndarray, np.ndarray]:
    """``Q P`` for every trajectory ``P`` (``n x d x L``): ``n x L x genes``, and the genes."""
    Q = adata.uns.get(Qkey) if Qkey in adata.uns else adata.varm.get(Qkey)
    if Q is None:
        raise MissingKeyError(f"no PCA loadings uns[{Qkey!r}] (or varm): run dyn.pp.pca first")
    Q = np.asarray(Q, dtype=np.float64)
    d = P.shape[1]
    if Q.ndim != 2 or Q.shape[1] < d:
        raise InputError(f"uns[{Qkey!r}] has shape {Q.shape}: need genes x at least {d}")
    genes = adata.var_names.to_numpy()
    if Q.shape[0] != adata.n_vars:
        mask = adata.var.get(keys.USE_FOR_PCA)
        if mask is None or int(np.sum(mask)) != Q.shape[0]:
            raise InputError(
                f"uns[{Qkey!r}] has {Q.shape[0]} rows, neither all genes nor var['use_for_pca']"
            )
        genes = genes[np.asarray(mask, dtype=bool)]
    exprs = np.einsum("ndl,gd->nlg", P, Q[:, :d]).astype(np.float32)
    return exprs, genes.astype(str)
