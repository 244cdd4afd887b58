"""``dyn.vf.jacobian`` and ``dyn.vf.sensitivity``: per-cell derivatives back in gene space.

The Jacobian of the learned field at each chosen cell comes from the field's closed form
(:mod:`dynadask.kernels.jacobian`); for a field learned on PCA scores, gene Jacobians
between effector and regulator genes are ``Q[eff] J Q[reg]^T`` (dynamo's back-projection).
Everything is computed one row block of cells per task; per-cell arrays are stored
cells-first (``cells x effectors x regulators``) and, on a store, as chunked Zarr arrays
that ``uns`` refers to lazily (:func:`dynadask.io.commit`). :func:`jacobian_array` reads
one as a labelled ``xarray.DataArray``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np
import xarray as xr

from .._core.compute import compute
from .._core.errors import InputError, MissingKeyError
from ..graph import jacobian as gj
from ..io import commit
from ..kernels import jacobian as kj
from . import gene_space as gs
from ._genes import GeneList, cell_index, chosen_cells, gene_rows, loadings, resolve_genes
from .calculus import _field, key

PROJECTIONS = ("from_jacobian", "direct")


def _jacobian_kernel(x, *, ctrl, C, beta, Q_eff, Q_reg, full):
    return kj.jacobian_results(x, ctrl, C, beta, Q_eff, Q_reg, full)


def _gene_pair(adata, regulators, effectors, basis, Qkey, d):
    """Regulator and effector names and loadings (``None`` when no genes are given)."""
    if regulators is None and effectors is None:
        return None
    regulators = effectors if regulators is None else regulators
    effectors = regulators if effectors is None else effectors
    if basis not in ("pca", None):
        raise InputError(
            f"gene Jacobians need a field learned on PCA scores (basis='pca') or in gene "
            f"space (basis=None), not {basis!r}: fit dyn.vf.VectorField(adata, basis='pca'), "
            f"or omit regulators/effectors to get the {basis} Jacobians"
        )
    regs = resolve_genes(adata, regulators, "regulators")
    effs = resolve_genes(adata, effectors, "effectors")
    Q, rows = _loadings(adata, basis, Qkey, d)
    return (
        regs,
        effs,
        gene_rows(adata, Q, rows, regs, "regulators", basis is None),
        gene_rows(adata, Q, rows, effs, "effectors", basis is None),
    )


def _loadings(adata: ad.AnnData, basis: str | None, Qkey: str, d: int):
    """Loadings from the field's coordinates to genes and the var positions of their rows.

    Basis pca: the PCA loadings. Gene space: the identity on the field's genes, so a gene
    Jacobian is the block of the field's own Jacobian (``J[eff, reg]``).
    """
    if basis is None:
        cols = adata.var_names.get_indexer(gs.field_genes(adata.uns["VecFld"]))
        return np.eye(d), cols
    return loadings(adata, Qkey, d)


def _fit_args(fit: dict) -> dict[str, Any]:
    return {"ctrl": fit["X_ctrl"], "C": fit["C"], "beta": fit["beta"]}


def _check_method(method: str) -> None:
    if method != "analytical":
        raise InputError(f"unknown method {method!r}: derivatives are computed analytically")


def jacobian(
    adata: ad.AnnData,
    regulators: GeneList = None,
    effectors: GeneList = None,
    *,
    cell_idx: Any = None,
    sampling: str | None = None,
    sample_ncells: int = 1000,
    basis: str | None = "pca",
    Qkey: str = "PCs",
    method: str = "analytical",
    store_in_adata: bool = True,
    pca_jacobian: bool | None = None,
) -> dict[str, Any] | None:
    """Jacobian of the learned field at every cell (or chosen cells), back in gene space.

    ``J[i, j] = df_i / dx_j`` from the field's closed form. For a PCA field and genes
    given, the gene Jacobian of each cell is ``Q[effectors] J Q[regulators]^T``
    (``d f_effector / d x_regulator``), ``Q`` the loadings ``Qkey``.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']`` (in memory or store-backed).
    regulators, effectors
        Gene names (or one name, or a boolean var column); a missing list takes the other.
        They are kept in var order, as dynamo does. Every gene must be in ``var_names``
        and have loadings (dynamo silently drops genes outside ``use_for_dynamics``).
    cell_idx
        Positions (or a boolean mask) of the cells to evaluate; default all.
    sampling
        Instead of ``cell_idx``: ``'random'`` or ``'velocity'`` picks ``sample_ncells``
        cells (seed 19491001); ``None``/``'all'``: all cells. Basis ``'umap'`` always uses
        all cells, as in dynamo.
    sample_ncells
        Cells to sample.
    basis
        The basis the field was learned in; genes need ``'pca'`` or ``None`` (the
        gene-space field ``uns['VecFld']``: the gene Jacobian is the block
        ``J[effectors, regulators]`` of the field's own Jacobian, the genes must be the
        field's, and the keys drop the ``_<basis>`` suffix: ``uns['jacobian']``,
        ``obs['jacobian_det']``; dynamo keeps the whole Jacobian there instead).
    Qkey
        PCA loadings in ``uns`` or ``varm`` (``use_for_pca`` genes or all genes x PCs).
    method
        ``'analytical'``.
    store_in_adata
        Write the results (else return them, computed, and write nothing).
    pca_jacobian
        Keep the ``d x d`` Jacobians per cell under ``jacobian``; default only when no
        genes are given (dynamo always keeps them: ``d^2`` values per cell).

    Returns
    -------
    dict or None
        With ``store_in_adata=False``: the ``uns`` entry below, computed, plus ``det``.

    Writes
    ------
    uns['jacobian_<basis>']
        ``cell_idx`` (sorted positions), ``regulators``, ``effectors`` (var order),
        ``jacobian_gene`` (cells x effectors x regulators, float32; dynamo's is effectors x
        regulators x cells), ``jacobian`` (cells x d x d, float32, see ``pca_jacobian``).
        On a store the per-cell arrays (and an all-cell ``cell_idx``) are chunked Zarr
        arrays, read lazily; :func:`jacobian_array` labels them.
    obs['jacobian_det_<basis>']
        ``det J`` (NaN at cells not evaluated).

    Raises
    ------
    ValueError
        No field in ``basis``, genes with another basis, unknown genes, genes without
        loadings, missing loadings, a bad ``cell_idx`` or ``sampling``.
    """
    _check_method(method)
    X, fit = _field(adata, basis, "analytical")
    d = fit["X_ctrl"].shape[1]
    genes = _gene_pair(adata, regulators, effectors, basis, Qkey, d)
    cells = chosen_cells(adata, cell_idx, sampling, sample_ncells, basis)
    full = genes is None if pca_jacobian is None else bool(pca_jacobian)
    shapes: dict[str, tuple[int, ...]] = {"det": ()}
    kwargs = dict(_fit_args(fit), Q_eff=None, Q_reg=None, full=full)
    entry: dict[str, Any] = {}
    if genes is not None:
        regs, effs, Q_reg, Q_eff = genes
        shapes["gene"] = (len(effs), len(regs))
        kwargs.update(Q_eff=Q_eff, Q_reg=Q_reg)
        entry.update(regulators=regs, effectors=effs)
    if full:
        shapes["full"] = (d, d)
    work = d  # the kernel forms its Jacobians a few hundred points at a time
    kernel = partial(_jacobian_kernel, **kwargs)
    res = gj.per_cell(X, kernel, shapes, cells, work)
    return _write(adata, "jacobian", basis, res, entry, cells, store_in_adata)


def _computed(entry: dict, det: Any = None, cells: np.ndarray | None = None) -> dict[str, Any]:
    """The entry with its Dask arrays computed (and ``det`` at the chosen cells), one pass."""
    names = [k for k, v in entry.items() if isinstance(v, da.Array)]
    extra = [] if det is None else [det]
    values = compute(*[entry[k] for k in names], *extra)
    out = dict(entry) | {k: np.asarray(v) for k, v in zip(names, values, strict=False)}
    if det is not None:
        det = np.asarray(values[-1])
        out["det"] = det if cells is None else det[cells]
    return out


def _sensitivity_kernel(x, *, ctrl, C, beta, Q_eff, Q_reg, Q_all, full):
    J = kj.jacobians(x, ctrl, C, beta)
    S = kj.sensitivity(J)
    out = {"det": np.linalg.det(S)}
    if Q_all is not None:  # from_jacobian: the square gene Jacobian over all the genes
        out["gene"] = kj.sensitivity(kj.project(J, Q_all, Q_all))
    elif Q_eff is not None:  # direct: S back-projected
        out["gene"] = kj.project(S, Q_eff, Q_reg)
    if full:
        out["full"] = S
    return out


def sensitivity(
    adata: ad.AnnData,
    regulators: GeneList = None,
    effectors: GeneList = None,
    *,
    cell_idx: Any = None,
    sampling: str | None = None,
    sample_ncells: int = 1000,
    basis: str | None = "pca",
    Qkey: str = "PCs",
    method: str = "analytical",
    projection_method: str = "from_jacobian",
    store_in_adata: bool = True,
    pca_sensitivity: bool | None = None,
) -> dict[str, Any] | None:
    """Sensitivity ``S = (I - J)^-1 diag(1 / diag((I - J)^-1))`` at every (or chosen) cell.

    dynamo's definition: the inverse of ``I - J`` with each column divided by its diagonal
    element. In gene space (PCA field, genes given), ``projection_method='from_jacobian'``
    (dynamo's default) applies it to the square gene Jacobian over the union of regulators
    and effectors; ``'direct'`` back-projects the PCA-space ``S`` as ``Q[eff] S Q[reg]^T``.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    regulators, effectors
        Gene names (as for :func:`jacobian`).
    cell_idx, sampling, sample_ncells
        The cells to evaluate (as for :func:`jacobian`).
    basis
        The basis the field was learned in; genes need ``'pca'`` or ``None`` (the
        gene-space field ``uns['VecFld']``: the gene Jacobian is the block
        ``J[effectors, regulators]`` of the field's own Jacobian, the genes must be the
        field's, and the keys drop the ``_<basis>`` suffix: ``uns['jacobian']``,
        ``obs['jacobian_det']``; dynamo keeps the whole Jacobian there instead).
    Qkey
        PCA loadings.
    method
        ``'analytical'``.
    projection_method
        ``'from_jacobian'`` or ``'direct'``.
    store_in_adata
        Write the results (else return them, computed).
    pca_sensitivity
        Keep the ``d x d`` matrices under ``sensitivity``; default only without genes.

    Returns
    -------
    dict or None
        With ``store_in_adata=False``: the ``uns`` entry, computed, plus ``det``.

    Writes
    ------
    uns['sensitivity_<basis>']
        ``cell_idx``, ``regulators``, ``effectors`` (both the union, in var order, for
        ``from_jacobian``), ``sensitivity_gene`` (cells x effectors x regulators, float32),
        ``sensitivity`` (cells x d x d, see ``pca_sensitivity``); lazy on a store.
    obs['sensitivity_det_<basis>']
        ``det S`` of the PCA-space sensitivity (NaN at cells not evaluated).

    Raises
    ------
    ValueError
        As :func:`jacobian`, and an unknown ``projection_method``.
    """
    _check_method(method)
    if projection_method not in PROJECTIONS:
        raise InputError(f"unknown projection_method {projection_method!r}: use {PROJECTIONS}")
    X, fit = _field(adata, basis, "analytical")
    d = fit["X_ctrl"].shape[1]
    genes = _gene_pair(adata, regulators, effectors, basis, Qkey, d)
    cells = chosen_cells(adata, cell_idx, sampling, sample_ncells, basis)
    full = genes is None if pca_sensitivity is None else bool(pca_sensitivity)
    shapes: dict[str, tuple[int, ...]] = {"det": ()}
    kwargs = dict(_fit_args(fit), Q_eff=None, Q_reg=None, Q_all=None, full=full)
    entry: dict[str, Any] = {}
    if genes is not None:
        regs, effs, Q_reg, Q_eff = genes
        if projection_method == "from_jacobian":
            union = resolve_genes(adata, regs + effs, "genes")
            Q, rows = _loadings(adata, basis, Qkey, d)
            kwargs["Q_all"] = gene_rows(adata, Q, rows, union, "genes", basis is None)
            regs = effs = union
        else:
            kwargs.update(Q_eff=Q_eff, Q_reg=Q_reg)
        shapes["gene"] = (len(effs), len(regs))
        entry.update(regulators=regs, effectors=effs)
    if full:
        shapes["full"] = (d, d)
    work = fit["X_ctrl"].shape[0] + 5 * d * d
    kernel = partial(_sensitivity_kernel, **kwargs)
    res = gj.per_cell(X, kernel, shapes, cells, work)
    return _write(adata, "sensitivity", basis, res, entry, cells, store_in_adata)


def _write(adata, name: str, basis: str, res: dict, entry: dict, cells, store: bool):
    """Put ``res`` (``det``, ``gene``, ``full``) under dynamo's ``<name>`` keys; commit or return.

    ``uns['<name>_<basis>']`` gets ``cell_idx``, ``<name>_gene`` and ``<name>`` (float32) beside
    ``entry``'s gene lists; ``obs['<name>_det_<basis>']`` the determinants.
    """
    entry["cell_idx"] = cell_index(cells, next(iter(res.values())))
    if "gene" in res:
        entry[f"{name}_gene"] = res["gene"].astype(np.float32)
    if "full" in res:
        entry[name] = res["full"].astype(np.float32)
    if not store:
        return _computed(entry, det=res["det"], cells=cells)
    obs = {key(f"{name}_det", basis): res["det"]}
    commit(adata, name, obs=obs, uns={key(name, basis): entry})
    return None


# dims of each stored per-cell array after the cells
_DIMS = {
    "jacobian_gene": ("effectors", "regulators"),
    "sensitivity_gene": ("effectors", "regulators"),
    "jacobian": ("effectors", "regulators"),
    "sensitivity": ("effectors", "regulators"),
    "hessian_gene": ("regulators", "coregulators"),
    "hessian": ("effectors", "regulators", "coregulators"),
}


def jacobian_array(
    adata: ad.AnnData, key: str = "jacobian_pca", *, array: str = "jacobian_gene"
) -> xr.DataArray:
    """A stored per-cell array as a lazy ``xarray.DataArray`` with gene names.

    Parameters
    ----------
    adata
        AnnData after :func:`jacobian`, :func:`sensitivity` or :func:`dynadask.vf.hessian`.
    key
        The ``uns`` entry (``'jacobian_pca'``, ``'sensitivity_pca'``, ``'hessian_pca'``).
    array
        The array in it: ``'jacobian_gene'``, ``'jacobian'``, ``'sensitivity_gene'``,
        ``'sensitivity'``, ``'hessian_gene'`` or ``'hessian'``.

    Returns
    -------
    xarray.DataArray
        Dims ``cells`` (obs names of ``cell_idx``) and ``effectors``/``regulators`` (gene
        names; component labels ``PC1``... for the basis arrays), or ``regulators``/
        ``coregulators`` for gene Hessians. Backed by a Dask array (nothing read until
        used) when the AnnData is store-backed.

    Raises
    ------
    KeyError
        If ``uns[key][array]`` does not exist (with the call that makes it).
    """
    entry = adata.uns.get(key)
    if entry is None or array not in entry or array not in _DIMS:
        known = sorted(entry) if entry is not None else []
        raise MissingKeyError(
            f"no uns[{key!r}][{array!r}] (present: {known}): run dyn.vf.jacobian (or "
            "sensitivity / hessian) with genes, or pca_jacobian=True for the basis array"
        )
    data = entry[array]
    data = data if isinstance(data, da.Array) else np.asarray(data)
    (idx,) = (
        compute(entry["cell_idx"])
        if isinstance(entry["cell_idx"], da.Array)
        else (entry["cell_idx"],)
    )
    dims = ("cells",) + _DIMS[array]
    coords: dict[str, Any] = {"cells": np.asarray(adata.obs_names)[np.asarray(idx)]}
    if array.endswith("_gene"):
        for dim in dims[1:]:
            coords[dim] = list(entry[dim])
    else:
        basis = key.split("_", 1)[1] if "_" in key else ""
        label = "PC" if basis == "pca" else f"{basis}_"
        for dim, n in zip(dims[1:], data.shape[1:], strict=True):
            coords[dim] = [f"{label}{i + 1}" for i in range(n)]
    return xr.DataArray(data, dims=dims, coords=coords, name=f"{key}/{array}")
