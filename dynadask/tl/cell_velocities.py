"""``dyn.tl.cell_velocities``: transition matrices and embedding velocities, chunked."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd

from .._core import keys
from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError, OptionError
from .._core.settings import get_chunk_policy
from .._core.validate import enough_cells
from ..graph import grid as gg
from ..graph import pca as gpca
from ..graph import transition as gt
from ..graph.blocks import take_columns
from ..io import commit
from .neighbors import neighbour_indices

_CORR_KWARGS = {"n_recurse_neighbors": 2, "transform": "sqrt", "use_neg_vals": True}
_KMC_KWARGS = {"n_recurse_neighbors": 2, "M_diff": 2.0, "adaptive_local_kernel": True, "tol": 1e-7}
_KERNEL_DEFAULTS = {
    "pearson": _CORR_KWARGS,
    "cosine": _CORR_KWARGS,
    "kmc": _KMC_KWARGS,
    "transform": {},
}
_PARAMS = {"S": "gamma", "T": "gamma", "U": "alpha", "P": "delta"}


def cell_velocities(
    adata: ad.AnnData,
    ekey: str | None = None,
    vkey: str | None = None,
    *,
    X: Any = None,
    V: Any = None,
    X_embedding: Any = None,
    n_pca_components: int | None = None,
    transition_genes: str | Sequence | None = None,
    min_r2: float | None = None,
    min_alpha: float | None = None,
    min_gamma: float | None = None,
    min_delta: float | None = None,
    basis: str = "umap",
    neighbor_key_prefix: str = "",
    adj_key: str = keys.DISTANCES,
    add_transition_key: str | None = None,
    add_velocity_key: str | None = None,
    n_neighbors: int = 30,
    method: str = "pearson",
    neg_cells_trick: bool = True,
    xy_grid_nums: tuple[int, int] = (50, 50),
    correct_density: bool = True,
    scale: bool = True,
    enforce: bool = False,
    preserve_len: bool = False,
    **kernel_kwargs: Any,
) -> ad.AnnData:
    """Project gene-space velocities onto an embedding through a cell transition kernel.

    For each cell, a kernel over its neighbourhood (neighbours and their neighbours along the
    kNN graph, ``n_recurse_neighbors=2``) weighs how well each displacement ``x_j - x_i`` in
    gene space (genes ``var['use_for_transition']``) agrees with the cell's velocity:

    - ``'pearson'`` / ``'cosine'``: correlation ``c`` of the signed square roots of velocity
      and displacement, weight ``expm1(c / 0.1)`` (negative ones subtract when
      ``neg_cells_trick``), a self weight that keeps cells whose velocity points nowhere,
      rows normalised by the sum of absolute weights, self weight removed.
    - ``'kmc'``: the Itô kernel in a 30-component PCA of ``log1p`` expression,
      ``exp(-|d - tau v|^2 / (4 M_diff tau |v|^2))`` with a local time scale ``tau``.
    - ``'transform'``: the UMAP model of :func:`reduceDimension` applied to ``x + v``.

    The embedding velocity of cell ``i`` is ``sum_j T_ij e_ij`` over unit vectors ``e_ij``
    towards its neighbours, minus ``mean_j(T_ij) sum_j e_ij`` when ``correct_density``. All
    of it runs in row blocks; each block gathers only the rows its neighbourhoods use.

    Parameters
    ----------
    adata
        AnnData with a velocity layer, an expression layer and a kNN graph.
    ekey, vkey
        Expression and velocity layers (default ``'M_s'`` / ``'velocity_S'``, or ``M_t`` /
        ``velocity_T`` for total RNA).
    X, V
        Expression and velocity (cells x features) to use instead of the layers; columns
        whose velocity is not finite in every cell are left out (as dynamo does).
    X_embedding
        Coordinates to project on instead of ``obsm['X_<basis>']``.
    n_pca_components
        Project ``log1p`` expression and ``log1p(x + v)`` to this many principal components
        before the kernel (30 for ``'kmc'`` when ``None``).
    transition_genes
        A ``var`` column, gene names or booleans; by default ``var['use_for_transition']``,
        set (when missing or ``enforce``) to genes with ``gamma > min_gamma`` and
        ``gamma_r2 > min_r2`` (0.01 each) among ``use_for_dynamics``.
    min_r2, min_alpha, min_gamma, min_delta
        Thresholds of that selection.
    basis
        Embedding: ``obsm['X_<basis>']``.
    neighbor_key_prefix, adj_key, n_neighbors
        The kNN graph: ``uns['<prefix>neighbors']['indices']`` when present, else the
        ``n_neighbors`` nearest in ``obsp[adj_key]``.
    add_transition_key, add_velocity_key
        Output keys (default ``'<method>_transition_matrix'``, ``'velocity_<basis>'``).
    method
        ``'pearson'``, ``'cosine'``, ``'kmc'`` or ``'transform'``.
    neg_cells_trick
        Let negatively correlated neighbours enter the correlation kernels.
    xy_grid_nums
        Grid size of ``uns['grid_velocity_<basis>']``.
    correct_density
        Subtract the uniform-weight drift.
    scale
        Divide the ``'kmc'`` drift by its largest entry.
    enforce
        Recompute the transition matrix and the transition genes even when present.
    preserve_len
        Scale each embedding velocity to the transition-weighted gene-space speed.
    **kernel_kwargs
        Kernel options: ``n_recurse_neighbors``, ``transform`` (``'sqrt'``, ``'log'``,
        ``'linear'``), ``use_neg_vals`` for the correlation kernels; ``n_recurse_neighbors``,
        ``M_diff``, ``adaptive_local_kernel``, ``tol`` for ``'kmc'``.

    Returns
    -------
    anndata.AnnData
        ``adata``, updated.

    Writes
    ------
    obsp['<method>_transition_matrix']
        Row-stochastic (in absolute value) sparse transitions, rows = source cells (not for
        ``'transform'``).
    obsm['velocity_<basis>']
        Embedding velocities.
    uns['grid_velocity_<basis>']
        ``X_grid`` (2 x nx), ``V_grid`` (2 x ny x nx), ``D``: velocities on a grid.
    var['use_for_transition']
        When the genes were selected here.
    obsm['X_velocity_pca'], obsm['velocity_pca_raw'], uns['velocity_PCs']
        When ``n_pca_components`` is used.

    Raises
    ------
    ValueError
        Unknown method or basis, missing velocity layer (run ``dyn.tl.dynamics``), missing
        kNN graph (run ``dyn.tl.neighbors``), unknown kernel option.
    """
    kernel = _kernel_options(method, kernel_kwargs, neg_cells_trick, correct_density, scale)
    enough_cells(adata.n_obs, n_neighbors)
    opts = _Options(
        genes=_GeneChoice(transition_genes, enforce, min_r2, min_alpha, min_gamma, min_delta),
        n_pca_components=n_pca_components,
        neighbor_key_prefix=neighbor_key_prefix,
        adj_key=adj_key,
        n_neighbors=n_neighbors,
        kernel=kernel,
    )
    basis_name = keys.basis_key(basis)
    emb = X_embedding if X_embedding is not None else _embedding(adata, basis_name)
    tkey = add_transition_key or f"{method}_transition_matrix"
    if method in gt.REPROJECTABLE and tkey in adata.obsp and not enforce:
        velocity = gt.velocity_from_transitions(adata.obsp[tkey], emb, correct_density)
        result = _Result(velocity)
    elif method == "transform":
        from .reduce_dimension import umap_transform_velocity

        result = _Result(umap_transform_velocity(adata, emb, vkey))
    else:
        result = _from_kernel(adata, _gene_data(adata, ekey, vkey, X, V, opts), emb, method, opts)
    if preserve_len:
        genes = result.genes or _gene_data(adata, ekey, vkey, X, V, opts)
        trans = adata.obsp[tkey] if result.transitions is None else result.transitions
        velocity = gt.preserve_length(result.velocity, trans, genes.v)
        result = replace(result, velocity=velocity, genes=genes)
    vel_key = add_velocity_key or keys.velocity_key(basis_name[2:])
    grid = gg.grid_velocity(emb, result.velocity, tuple(xy_grid_nums))
    commit(adata, "cell_velocities", **_writes(result, tkey, vel_key, grid))
    return adata


@dataclass(frozen=True)
class _GeneChoice:
    """How the transition genes are chosen (see :func:`select_transition_genes`)."""

    genes: Any
    enforce: bool
    min_r2: float | None
    min_alpha: float | None
    min_gamma: float | None
    min_delta: float | None

    def thresholds(self) -> dict[str, float | None]:
        return {
            "min_r2": self.min_r2,
            "min_alpha": self.min_alpha,
            "min_gamma": self.min_gamma,
            "min_delta": self.min_delta,
        }


@dataclass(frozen=True)
class _Options:
    """The resolved options of one ``cell_velocities`` call."""

    genes: _GeneChoice
    n_pca_components: int | None
    neighbor_key_prefix: str
    adj_key: str
    n_neighbors: int
    kernel: gt.KernelOptions


@dataclass(frozen=True)
class _GeneData:
    """Expression and velocity the kernel reads; ``mask`` the genes (``None`` for X/V)."""

    x: Any
    v: Any
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class _VelocityPCA:
    """Expression and velocity in a PCA basis, and the basis."""

    x: Any
    v: Any
    components: np.ndarray


@dataclass(frozen=True)
class _Result:
    """What a ``cell_velocities`` call computed."""

    velocity: np.ndarray
    transitions: Any = None
    genes: _GeneData | None = None
    pca: _VelocityPCA | None = None


def _writes(result: _Result, tkey: str, vel_key: str, grid: dict) -> dict[str, dict[str, Any]]:
    """The commit's keys: dynamo's names for each computed result."""
    out: dict[str, dict[str, Any]] = {"obsp": {}, "obsm": {}, "var": {}, "uns": {}}
    if result.genes is not None and result.genes.mask is not None:
        out["var"][keys.USE_FOR_TRANSITION] = result.genes.mask
    if result.pca is not None:
        out["obsm"].update({"X_velocity_pca": result.pca.x, "velocity_pca_raw": result.pca.v})
        out["uns"]["velocity_PCs"] = result.pca.components
    if result.transitions is not None:
        out["obsp"][tkey] = result.transitions
    out["obsm"][vel_key] = result.velocity
    out["uns"][f"grid_{vel_key}"] = grid
    return out


def _kernel_options(
    method: str,
    kernel_kwargs: dict[str, Any],
    neg_cells_trick: bool,
    correct_density: bool,
    scale: bool,
) -> gt.KernelOptions:
    """Dynamo's kernel options (checked against ``method``) as the kernels' own options."""
    if method not in _KERNEL_DEFAULTS:
        raise InputError(f"unknown method {method!r}: use one of {sorted(_KERNEL_DEFAULTS)}")
    allowed = _KERNEL_DEFAULTS[method]
    unknown = sorted(set(kernel_kwargs) - set(allowed))
    if unknown:
        raise OptionError(
            f"unknown option(s) {unknown} for method {method!r}; it accepts {sorted(allowed)}"
        )
    o = {**_CORR_KWARGS, **_KMC_KWARGS, **allowed, **kernel_kwargs}
    negatives = ("subtract" if o["use_neg_vals"] else "add") if neg_cells_trick else "drop"
    return gt.KernelOptions(
        depth=o["n_recurse_neighbors"],
        correct_density=correct_density,
        transform=o["transform"],
        negatives=negatives,
        m_diff=o["M_diff"],
        adaptive=o["adaptive_local_kernel"],
        tol=o["tol"],
        scale=scale,
    )


def _embedding(adata: ad.AnnData, name: str) -> Any:
    if name not in adata.obsm:
        have = [k for k in adata.obsm if k.startswith("X_")]
        raise MissingKeyError(
            f"unknown basis: obsm[{name!r}] is missing (have {have}); run "
            "dyn.tl.reduceDimension(adata) for 'umap' or give an existing basis"
        )
    return adata.obsm[name]


def resolve_layers(adata: ad.AnnData, ekey: str | None, vkey: str | None) -> tuple[str, str]:
    """Return the (expression, velocity) layer names, with a clear error when missing."""
    if vkey is None:
        vkey = next((k for k in (keys.VELOCITY_S, keys.VELOCITY_T) if k in adata.layers), None)
        if vkey is None:
            raise MissingKeyError(
                "no velocity layer (velocity_S / velocity_T) in adata.layers: "
                "run dyn.tl.dynamics(adata) first"
            )
    elif vkey not in adata.layers:
        raise MissingKeyError(
            f"velocity layer {vkey!r} is missing: run dyn.tl.dynamics(adata) "
            "first (or give an existing vkey)"
        )
    if ekey is None:
        ekey = {keys.VELOCITY_T: keys.M_T}.get(vkey, keys.M_S)
    if ekey not in adata.layers:
        raise MissingKeyError(
            f"expression layer {ekey!r} is missing: run dyn.tl.moments(adata) "
            "first (or give an existing ekey)"
        )
    return ekey, vkey


def select_transition_genes(
    adata: ad.AnnData, vkey: str, thresholds: dict[str, Any], genes: Any, enforce: bool
) -> np.ndarray:
    """Boolean mask over ``var`` of the genes whose velocities drive the kernel."""
    dyn_genes = (
        adata.var[keys.USE_FOR_DYNAMICS].to_numpy(bool)
        if keys.USE_FOR_DYNAMICS in adata.var
        else np.ones(adata.n_vars, bool)
    )
    if genes is None:
        if keys.USE_FOR_TRANSITION in adata.var and not enforce:
            return adata.var[keys.USE_FOR_TRANSITION].to_numpy(bool)
        return _by_parameters(adata, vkey, thresholds, dyn_genes)
    if isinstance(genes, str):
        mask = adata.var[genes].to_numpy(bool)
    elif len(genes) and isinstance(genes[0], (bool, np.bool_)):
        mask = np.asarray(genes, dtype=bool)
    else:
        mask = adata.var_names.isin(list(genes))
    mask = mask & dyn_genes
    if not mask.any():
        raise InputError("none of the transition genes has velocities (var['use_for_dynamics'])")
    return mask


def _by_parameters(
    adata: ad.AnnData, vkey: str, thresholds: dict[str, Any], dyn_genes: np.ndarray
) -> np.ndarray:
    param = _PARAMS.get(vkey.rsplit("_", 1)[-1], "gamma")
    if param not in adata.var:
        raise MissingKeyError(f"var[{param!r}] is missing: run dyn.tl.dynamics(adata) first")
    r2 = adata.var.get(f"{param}_r2", pd.Series(1.0, index=adata.var_names))
    r2 = pd.to_numeric(r2, errors="coerce").fillna(-np.inf).to_numpy(float)
    value = pd.to_numeric(adata.var[param], errors="coerce").to_numpy(float)
    min_value = thresholds.get(f"min_{param}") or 0.01
    min_r2 = thresholds.get("min_r2") or 0.01
    with np.errstate(invalid="ignore"):
        mask = (value > min_value) & (r2 > min_r2) & dyn_genes
    if mask.sum() < 5 and adata.n_vars > 5:
        warnings.warn(
            "fewer than 5 genes pass the transition-gene thresholds: using the 50 "
            f"with the best {param}_r2",
            stacklevel=3,
        )
        order = np.argsort(np.where(dyn_genes, r2, -np.inf))[::-1][:50]
        mask = np.zeros(adata.n_vars, bool)
        mask[order] = True
    return mask


def _gene_data(adata, ekey, vkey, X, V, opts: _Options) -> _GeneData:  # noqa: N803
    if X is not None and V is not None:
        if X.shape != V.shape:
            raise InputError(f"X {X.shape} and V {V.shape} must have the same shape")
        return _user_genes(adata, X, V, opts.genes.genes)
    ekey, vkey = resolve_layers(adata, ekey, vkey)
    choice = opts.genes
    mask = select_transition_genes(adata, vkey, choice.thresholds(), choice.genes, choice.enforce)
    idx = np.flatnonzero(mask)
    v = take_columns(adata.layers[vkey], idx)
    finite = _finite_columns(v)
    mask[idx[~finite]] = False
    if mask.sum() == 0:
        raise InputError(f"no transition gene has finite {vkey}: check dyn.tl.dynamics")
    idx = np.flatnonzero(mask)
    return _GeneData(
        take_columns(adata.layers[ekey], idx), take_columns(adata.layers[vkey], idx), mask
    )


def _user_genes(adata: ad.AnnData, X: Any, V: Any, names: Any) -> _GeneData:  # noqa: N803
    """Given X and V, the genes whose velocity is finite in every cell, as dynamo keeps.

    With ``transition_genes`` naming X's columns, those dropped get
    ``var['use_for_transition'] = False`` (the rest of the column is left as it is).
    """
    finite = _finite_columns(V)
    if finite.all():
        return _GeneData(X, V)
    if not finite.any():
        raise InputError("no column of V is finite in every cell: check the velocities")
    keep = np.flatnonzero(finite)
    mask = None
    if names is not None and not isinstance(names, str) and len(names) == finite.size:
        names = np.asarray(names)
        if names.dtype.kind not in "bi":
            current = adata.var.get(keys.USE_FOR_TRANSITION)
            mask = np.zeros(adata.n_vars, bool) if current is None else current.to_numpy(bool)
            mask = mask.copy()
            mask[adata.var_names.get_indexer(names[~finite])] = False
    return _GeneData(take_columns(X, keep), take_columns(V, keep), mask)


def _finite_columns(v: Any) -> np.ndarray:
    if isinstance(v, da.Array):
        from ..graph.blocks import sum_rows

        total = compute(sum_rows(_col_sums, v), desc="finite genes")[0]
    else:
        total = _col_sums(v)
    return np.isfinite(total)


def _col_sums(v: Any) -> np.ndarray:
    return np.asarray(v.sum(0), dtype=np.float64).ravel()


def _log1p_wanted(adata: ad.AnnData) -> bool:
    pp = adata.uns.get("pp", {})
    return (
        isinstance(pp, dict)
        and "layers_norm_method" in pp
        and pp["layers_norm_method"] in (None, "None")
    )


def _velocity_pca(adata: ad.AnnData, x: Any, v: Any, n_pcs: int) -> _VelocityPCA:
    log = _log1p_wanted(adata)
    mean, comps, _, _ = gpca.fit(x, min(n_pcs, x.shape[1] - 1), log=log)
    xp = gpca.project(x, None, None, mean, comps, log=log, dtype=np.float64)
    return _VelocityPCA(xp, gpca.displacement(x, v, mean, comps, log=log), comps)


def _block_rows(x: Any, n_cols: int) -> int:
    if isinstance(x, da.Array):
        return int(x.chunks[0][0])
    return get_chunk_policy().rows_per_block(n_cols * 32, x.shape[0])


def _from_kernel(
    adata: ad.AnnData, genes: _GeneData, emb: Any, method: str, opts: _Options
) -> _Result:
    """Transitions and embedding velocity from the kernel ``method`` of ``gt.KERNELS``."""
    x, v = genes.x, genes.v
    n_pcs = opts.n_pca_components or (30 if method == "kmc" else None)
    pca = _velocity_pca(adata, x, v, n_pcs) if n_pcs else None
    if pca is not None:
        x, v = pca.x, pca.v
    knn = neighbour_indices(adata, opts.neighbor_key_prefix, opts.adj_key, opts.n_neighbors)
    inp = gt.KernelInputs(x, v, knn, emb, _block_rows(x, x.shape[1]))
    trans, velocity = gt.KERNELS[method](inp, opts.kernel)
    return _Result(velocity, trans, replace(genes, x=x, v=v), pca)
