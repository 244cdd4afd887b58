"""``dyn.vf.VectorField``: learn the vector field of an embedding's velocities."""

from __future__ import annotations

import logging
from typing import Any

import anndata as ad
import numpy as np

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError, OptionError
from .._core.model import with_record
from ..graph import vectorfield as gv
from ..graph.blocks import take_columns
from ..io import commit
from ..kernels import vectorfield as kv
from . import gene_space as gs
from ._record import field_record
from .sparsevfc import M_MAX, N_FIT, fit_field, grid_values

log = logging.getLogger(__name__)

_SVC_DEFAULTS: dict[str, Any] = {
    "M": None,
    "a": 5,
    "beta": None,
    "ecr": 1e-5,
    "gamma": 0.9,
    "lambda_": 3,
    "minP": 1e-5,
    "MaxIter": 30,
    "theta": 0.75,
    "velocity_based_sampling": True,
    "sigma": 0.8,
    "eta": 0.5,
    "seed": 0,
    "lstsq_method": "cholesky",
    "M_max": M_MAX,
    "n_fit": N_FIT,
}
_EM_KEYS = ("a", "ecr", "gamma", "lambda_", "minP", "MaxIter", "theta", "lstsq_method")


def VectorField(
    adata: ad.AnnData,
    basis: str | None = None,
    layer: str | None = None,
    *,
    dims: int | list[int] | None = None,
    genes: list[str] | None = None,
    normalize: bool = False,
    grid_velocity: bool = False,
    grid_num: int = 50,
    velocity_key: str = keys.VELOCITY_S,
    method: str = "SparseVFC",
    min_vel_corr: float = 0.6,
    restart_num: int = 5,
    restart_seed: list[int] | tuple[int, ...] = (0, 100, 200, 300, 400),
    result_key: str | None = None,
    copy: bool = False,
    **kwargs: Any,
) -> ad.AnnData | None:
    """Learn a continuous vector field from the cells' velocities (SparseVFC).

    With a basis, the field is fitted with :func:`dynadask.vf.SparseVFC` on
    ``obsm['X_<basis>']`` and ``obsm['velocity_<basis>']``; with ``basis=None`` in gene space,
    on an expression layer and a velocity layer over the transition genes (see ``layer``).
    dynamo's ``VectorField`` defaults apply (``MaxIter=30``,
    ``M = max(min(50, N), int(0.05 N) + 1)`` control points, here capped at ``M_max=1000``,
    and the EM run on a seeded sample of ``n_fit=100,000`` cells above that many; in gene
    space only the sampled rows are ever read whole). If the
    mean cosine between the input and fitted velocities over the cells the EM was fitted on
    (as dynamo's rule, whose fit set is every finite cell) is below ``min_vel_corr`` the fit
    is repeated with the next seed of ``restart_seed`` (at most ``restart_num`` fits; the
    best is kept). The kept field is then evaluated at every cell once, one row block at a
    time, as it is written.

    Parameters
    ----------
    adata
        AnnData (in memory or store-backed) with the embedding and its velocities.
    basis
        Embedding: any ``obsm['X_<basis>']`` with ``obsm['velocity_<basis>']`` (scVelo's
        ``X_umap``/``velocity_umap`` as well); ``None``: gene space. There SparseVFC's
        outlier volume ``a`` defaults to the value at which the first E-step calls a cell
        with the mean residual an inlier (:func:`dynadask.vf.gene_space.outlier_volume`)
        instead of dynamo's 5: with ``a=5`` the ``(2 pi sigma2)^(D/2)`` term wins in
        hundreds of dimensions, every posterior is clipped to ``minP`` and the regulariser
        shrinks the field towards 0 (on pancreas' 364 transition genes to 0.4 % of the
        velocities' norm). Pass ``a=5`` for dynamo's.
    layer
        Gene space: the expression layer. Default: the first moment of the velocity
        (``velocity_S`` -> ``M_s``, scVelo's ``velocity`` -> ``Ms``; dynamo 1.5.3 has no
        working default). ``'X'`` is the un-logged normalised X.
    genes
        Gene space: the genes (default ``var['use_for_transition']``, else scVelo's
        ``var['velocity_genes']``). Genes with a non-finite value in any cell are left out.
    velocity_key
        Gene space: the velocity layer (``'velocity'`` for scVelo's).
    dims
        Keep the first ``dims`` coordinates (an int) or these columns (a list); a basis only.
    normalize
        Must be False (dynamo 1.5.3's normalisation fails with ``KeyError: 'X_ctrl'``).
    grid_velocity
        Evaluate the field on a grid also in 4 or more dimensions (``grid_num ** d`` points).
    grid_num
        Grid points per dimension.
    method
        ``'SparseVFC'``.
    min_vel_corr, restart_num, restart_seed
        Restart rule (see above).
    result_key
        Prefix of the uns key instead of ``'VecFld'``.
    copy
        Work on (and return) a copy.
    **kwargs
        SparseVFC parameters: ``M``, ``a``, ``beta``, ``ecr``, ``gamma``, ``lambda_``,
        ``minP``, ``MaxIter``, ``theta``, ``velocity_based_sampling``, ``sigma``, ``eta``,
        ``seed``, ``lstsq_method``, ``M_max``, ``n_fit``.

    Returns
    -------
    anndata.AnnData or None
        The copy when ``copy``.

    Writes
    ------
    With ``basis=None`` the keys have no ``_<basis>`` suffix (``uns['VecFld']``,
    ``obs['control_point']``, ``obs['inlier_prob']``, ``obs['obs_vf_angle']``), uns also
    holds ``layer``, ``genes`` (the genes of the field, in its column order) and
    ``velocity_key``, ``valid_ind`` is every cell and ``fit_idx`` the sampled rows (cells),
    and the field at the cells is ``layers['<velocity_key>_SparseVFC']`` (float32, 0 off the
    field's genes, written block by block) instead of the obsm entry.
    uns['VecFld_<basis>']
        ``X_ctrl``, ``ctrl_idx``, ``ctrl_cells`` (obs positions of the control points), ``C``,
        ``beta``, ``sigma2``, ``VFCIndex`` (inliers, as positions among the fit rows
        ``valid_ind[fit_idx]``, i.e. among ``valid_ind`` without a sample), ``iteration``,
        ``tecr_traj``, ``E_traj``,
        ``valid_ind``, ``fit_idx`` (only when the EM ran on a sample), ``method``,
        ``normalize``, ``dims`` (when given), ``grid``/``grid_V`` (d < 4 or
        ``grid_velocity``), ``mean_cosine`` (over the fit cells) and ``parameters``. No
        per-cell copies of X, Y, V or P (they are the obsm/obs entries).
    uns['dynadask_models']['VecFld_<basis>']
        The fitted-model record (kind ``'sparsevfc'``): the fit cells, the seed, the input
        columns and the paths of ``X_ctrl``, ``C``, ``beta``, ``ctrl_cells``.
    obsm['velocity_<basis>_SparseVFC']
        The field at every cell.
    obs['control_point_<basis>']
        True for the control cells (the cells themselves; dynamo 1.5.3 flags other ones).
    obs['inlier_prob_<basis>']
        Posterior of being an inlier (NaN where the velocity is not finite); outside the
        fit sample, the same posterior under the fitted noise model.
    obs['obs_vf_angle_<basis>']
        Signed angle (radians) between input and fitted velocity; NaN where either is zero
        or the velocity is not finite. (dynamo's ``obsm['X_<basis>_SparseVFC']``, a copy of
        the coordinates, is not written.)

    Raises
    ------
    ValueError
        Unknown basis or missing velocities (or, in gene space, missing layers, unknown
        genes, no transition genes, ``dims``), ``normalize=True``, an unknown method.
        TypeError for an unknown SparseVFC option.
    """
    basis = _check_call(adata, basis, normalize, method)
    opts = _options(kwargs)
    adata = adata.copy() if copy else adata
    seeds = _seeds(restart_num, restart_seed, opts["seed"])
    if basis is None:
        space = gs.resolve(adata, layer, genes, velocity_key, _bases(adata))
        grid = (grid_velocity, grid_num)
        opts["a"] = None if "a" not in kwargs else opts["a"]  # None: the velocities' volume
        _gene_field(adata, space, dims, grid, opts, seeds, min_vel_corr, result_key)
        return adata if copy else None
    X_all, V_all = _inputs(adata, basis, dims)
    X, V = (np.asarray(v) for v in compute(X_all, V_all, desc="vector field inputs"))
    valid = np.flatnonzero(np.isfinite(V.sum(axis=1)))
    _check_inputs(X, valid, basis)
    fit, rows, P, score = _fit_with_restarts(X, V, X_all, V_all, valid, opts, seeds, min_vel_corr)
    d = X.shape[1]
    grid = kv.grid(X, grid_num) if d < 4 or grid_velocity else None  # all rows, as dynamo
    vf = _uns(fit, valid, grid, score, dims, opts)
    vf["VFCIndex"] = np.flatnonzero(P > opts["theta"])
    control = np.zeros(adata.n_obs, dtype=bool)
    control[vf["ctrl_cells"]] = True
    name = f"{result_key or 'VecFld'}_{basis}"
    record = field_record(name, vf, adata.n_obs, basis)
    commit(
        adata,
        "vector_field",
        obsm={f"{keys.velocity_key(basis)}_SparseVFC": rows[:, :d]},
        obs={
            f"control_point_{basis}": control,
            f"inlier_prob_{basis}": rows[:, d],
            f"obs_vf_angle_{basis}": rows[:, d + 1],
        },
        uns={name: vf, keys.MODELS: with_record(adata.uns, record)},
    )
    return adata if copy else None


def _bases(adata: ad.AnnData) -> list[str]:
    """The embeddings that have velocities."""
    return sorted(
        k[2:] for k in adata.obsm if k.startswith("X_") and keys.velocity_key(k[2:]) in adata.obsm
    )


def _check_call(adata: ad.AnnData, basis: str | None, normalize: bool, method: str) -> str | None:
    bases = _bases(adata)
    if method.lower() != "sparsevfc":
        raise InputError(f"unknown method {method!r}: dynadask fits 'SparseVFC'")
    if normalize:
        raise InputError(
            "normalize=True is not supported (dynamo 1.5.3's fails with KeyError 'X_ctrl'); "
            "fit on the coordinates as they are"
        )
    if basis is None:
        return None
    basis = keys.basis_name(basis)
    if keys.basis_key(basis) not in adata.obsm:
        raise MissingKeyError(
            f"no obsm['X_{basis}']: run dyn.tl.reduceDimension (umap) or dyn.pp.pca first, "
            f"or pass one of the bases with velocities: {bases}"
        )
    if keys.velocity_key(basis) not in adata.obsm:
        raise MissingKeyError(
            f"no obsm['velocity_{basis}']: run dyn.tl.cell_velocities(adata, basis={basis!r}) first"
        )
    return basis


MIN_CELLS = 10
"""Fewest cells with finite velocities a field is learned from."""


def _check_inputs(X: np.ndarray, valid: np.ndarray, basis: str) -> None:
    """Raise before the fit when the coordinates are not finite or few velocities are."""
    bad = int(np.sum(~np.isfinite(X).all(axis=1)))
    if bad:
        raise InputError(
            f"obsm['X_{basis}'] has {bad} cells with NaN or infinite coordinates: recompute "
            "the embedding (dyn.tl.reduceDimension / dyn.pp.pca) on finite data"
        )
    if valid.size < MIN_CELLS:
        raise InputError(
            f"only {valid.size} of {X.shape[0]} cells have finite velocities in "
            f"obsm['velocity_{basis}'] (at least {MIN_CELLS} are needed): rerun "
            f"dyn.tl.cell_velocities(adata, basis={basis!r}) after dyn.tl.dynamics"
        )


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(kwargs) - set(_SVC_DEFAULTS))
    if unknown:
        raise OptionError(f"unknown SparseVFC option(s) {unknown}: use {sorted(_SVC_DEFAULTS)}")
    opts = _SVC_DEFAULTS | kwargs
    kv.solve_coefficients(np.eye(1), np.ones((1, 1)), opts["lstsq_method"])  # validate early
    return opts


def _inputs(adata: ad.AnnData, basis: str, dims: Any) -> tuple[Any, Any]:
    X, V = adata.obsm[keys.basis_key(basis)], adata.obsm[keys.velocity_key(basis)]
    if dims is None:
        return X, V
    cols = np.arange(int(dims)) if np.isscalar(dims) else np.asarray(dims)
    if cols.size == 0 or cols.min() < 0 or cols.max() >= X.shape[1]:
        raise InputError(
            f"dims={dims!r} asks for columns the {X.shape[1]}-D obsm['X_{basis}'] does not "
            f"have: pass dims <= {X.shape[1]} (or column positions below {X.shape[1]})"
        )
    return take_columns(X, cols), take_columns(V, cols)


def _fit_once(X: np.ndarray, V: np.ndarray, valid: np.ndarray, opts: dict, seed: int) -> dict:
    M = opts["M"] if opts["M"] is not None else kv.default_m(valid.size, opts["M_max"])
    return fit_field(
        X[valid],
        V[valid],
        M=M,
        beta=opts["beta"],
        seed=seed,
        velocity_based=opts["velocity_based_sampling"],
        n_fit=opts["n_fit"],
        params={k: opts[k] for k in _EM_KEYS},
    )


def _seeds(restart_num: int, restart_seed: Any, seed: int) -> list[int]:
    """The seeds of the successive fits (dynamo: the restart seeds replace ``seed``)."""
    if restart_num <= 0:
        return [int(seed)]
    seeds = list(restart_seed)
    if len(seeds) != restart_num:
        seeds = list(np.arange(restart_num) * 100)
    return [int(s) for s in seeds]


def _fit_with_restarts(X, V, X_all, V_all, valid, opts, seeds, min_vel_corr):
    """Fit with each seed until the mean cosine reaches ``min_vel_corr``; keep the best.

    As dynamo, the cosine between input and fitted velocities is averaged over the cells the
    EM was fitted on (``valid[fit_idx]``: every finite cell up to ``n_fit``, else the seeded
    sample), so a fit that is refitted costs one pass over its fit set and none over all the
    cells. Returns the fit, the lazy per-cell rows ``[V, P, angle, cosine]`` of every cell
    for the kept fit (evaluated once, when they are written), the posterior of the fit
    cells (their order: ``fit_idx``) and the score.
    """
    best = None
    for seed in seeds:
        fit = _fit_once(X, V, valid, opts, seed=seed)
        fit["seed"] = seed
        cells = valid[fit["fit_idx"]]
        (own,) = compute(
            gv.fitted(X[cells], V[cells], fit["X_ctrl"], fit["beta"], fit, **_post(opts)),
            desc="vector field score",
        )
        score = float(np.mean(own[:, -1]))
        if best is None or score > best[2]:
            best = (fit, np.asarray(own[:, -3]), score)
        if score >= min_vel_corr:
            break
        log.warning("mean cosine %.3f < min_vel_corr %.3f: refitting", score, min_vel_corr)
    fit, P, score = best
    rows = gv.fitted(X_all, V_all, fit["X_ctrl"], fit["beta"], fit, **_post(opts))
    return fit, rows, P, score


def _post(opts: dict) -> dict:
    return {"a": opts["a"], "minP": opts["minP"]}


def _uns(fit: dict, valid: np.ndarray, grid: Any, score: float, dims: Any, opts: dict) -> dict:
    n_valid = valid.size
    vf = {
        "X_ctrl": np.asarray(fit["X_ctrl"]),
        "ctrl_idx": np.asarray(fit["ctrl_idx"]),
        "ctrl_cells": valid[fit["ctrl_rows"]],
        "C": fit["C"],
        "beta": float(fit["beta"]),
        "sigma2": float(fit["sigma2"]),
        "iteration": int(fit["iteration"]),
        "tecr_traj": fit["tecr_traj"],
        "E_traj": fit["E_traj"],
        "valid_ind": valid,
        "method": "SparseVFC",
        "normalize": False,
        "mean_cosine": float(score),
        "parameters": {k: v for k, v in opts.items() if v is not None and k not in ("sigma", "eta")}
        | {"M": int(fit["M"]), "seed": int(fit["seed"])},
    }
    if fit["fit_idx"].size < n_valid:
        vf["fit_idx"] = fit["fit_idx"]
    if dims is not None:
        vf["dims"] = dims if np.isscalar(dims) else np.asarray(dims)
    if grid is not None:
        vf["grid"], vf["grid_V"] = grid, grid_values(grid, fit)
    return vf


def _gene_field(adata, space, dims, grid_opts, opts, seeds, min_vel_corr, result_key):
    """Fit and write a gene-space field: the EM reads a seeded sample of rows only."""
    grid_velocity, grid_num = grid_opts
    if dims is not None:
        raise InputError("dims selects columns of an embedding; in gene space pass genes=")
    n, d = adata.n_obs, space.genes.size
    if grid_velocity and float(grid_num) ** d > 1e6:
        raise InputError(
            f"a grid of {grid_num}^{d} points in gene space is too large: leave "
            "grid_velocity=False, or fit on fewer genes (genes=)"
        )
    sample = gs.sample_rows(n, opts["n_fit"], opts["seed"])
    X, V = gs.take_rows(space.X, space.V, rows=sample)
    if opts["a"] is None:
        opts = opts | {"a": gs.outlier_volume(V, opts["gamma"])}
    valid = np.arange(sample.size)
    fit, rows, P, score = _fit_with_restarts(
        X, V, space.X, space.V, valid, opts, seeds, min_vel_corr
    )
    grid = kv.grid(gs.bounds(space.X), grid_num) if d < 4 or grid_velocity else None
    vf = _uns(fit, valid, grid, score, None, opts)
    vf["ctrl_cells"] = sample[fit["ctrl_rows"]]
    vf["valid_ind"] = np.arange(n)
    if sample.size < n:
        vf["fit_idx"] = sample[fit["fit_idx"]]
    vf["VFCIndex"] = np.flatnonzero(P > opts["theta"])
    vf |= {"layer": space.layer, "genes": space.genes, "velocity_key": space.velocity_key}
    control = np.zeros(n, dtype=bool)
    control[vf["ctrl_cells"]] = True
    commit(
        adata,
        "vector_field",
        layers={f"{space.velocity_key}_SparseVFC": gs.place(rows[:, :d], space.cols, adata.n_vars)},
        obs={"control_point": control, "inlier_prob": rows[:, d], "obs_vf_angle": rows[:, d + 1]},
        uns={result_key or "VecFld": vf},
    )
