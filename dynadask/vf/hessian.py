"""``dyn.vf.hessian`` and ``dyn.vf.laplacian``: second derivatives of the learned field."""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import anndata as ad
import numpy as np

from .._core.errors import InputError
from ..graph import jacobian as gj
from ..io import commit
from ..kernels import jacobian as kj
from ._genes import GeneList, cell_index, chosen_cells, gene_rows, resolve_genes
from .calculus import _field, _gene_layer, _quantities, _row_norms, key
from .jacobian import _check_method, _computed, _fit_args, _loadings


def _hessian_kernel(x, *, ctrl, C, beta, q_eff, Q_reg, Q_co, full):
    out = {}
    if q_eff is not None:
        out["gene"] = kj.projected_hessian(x, ctrl, C, beta, q_eff, Q_reg, Q_co)
    if full:
        out["full"] = kj.hessians(x, ctrl, C, beta)
    return out


def hessian(
    adata: ad.AnnData,
    regulators: GeneList = None,
    coregulators: GeneList = None,
    *,
    effector: GeneList = None,
    cell_idx: Any = None,
    sampling: str | None = None,
    sample_ncells: int = 1000,
    basis: str | None = "pca",
    Qkey: str = "PCs",
    method: str = "analytical",
    store_in_adata: bool = True,
    pca_hessian: bool | None = None,
) -> dict[str, Any] | None:
    """Hessian ``d2 f_i / dx_j dx_k`` of the learned field at every (or chosen) cell.

    For a PCA field and genes given, the gene Hessian of one effector gene ``e`` is
    ``h[a, b] = sum_ijk Q[e]_i Q[reg_a]_j Q[coreg_b]_k H_ijk`` (dynamo's back-projection),
    computed from the field's closed form without the ``d^3`` array of each cell. In gene
    space (``basis=None``, the field ``uns['VecFld']``) the gene Hessian is the block
    ``H[e, reg, coreg]`` of the field's own Hessian.

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    regulators, coregulators
        Gene names (or one name, or a boolean var column), kept in var order.
    effector
        One gene (keyword-only here).
    cell_idx, sampling, sample_ncells
        The cells to evaluate (as for :func:`dynadask.vf.jacobian`).
    basis
        The basis the field was learned in; genes need ``'pca'`` or ``None`` (gene space).
    Qkey
        PCA loadings.
    method
        ``'analytical'``.
    store_in_adata
        Write the results (else return them, computed).
    pca_hessian
        Keep the ``d x d x d`` Hessians per cell under ``hessian``; default only when no
        genes are given (dynamo always keeps them).

    Returns
    -------
    dict or None
        With ``store_in_adata=False``: the ``uns`` entry, computed.

    Writes
    ------
    uns['hessian_<basis>'] (``uns['hessian']`` in gene space)
        ``cell_idx``, ``regulators``, ``coregulators``, ``effectors`` (the one effector),
        ``hessian_gene`` (cells x regulators x coregulators, float32; dynamo keeps a
        1 x regulators x coregulators array per cell), ``hessian`` (cells x d x d x d with
        ``[n, i, j, k] = d2 f_i / dx_j dx_k``, float32, see ``pca_hessian``); lazy on a
        store.

    Raises
    ------
    ValueError
        Genes given without all three of regulators, coregulators and one effector; more
        than one effector; and as :func:`dynadask.vf.jacobian`.
    """
    _check_method(method)
    X, fit = _field(adata, basis, "analytical")
    d = fit["X_ctrl"].shape[1]
    given = [g is not None for g in (regulators, coregulators, effector)]
    if any(given) and not all(given):
        raise InputError(
            "gene Hessians need regulators, coregulators and effector= (one gene); pass all "
            "three, or none for the basis Hessians"
        )
    cells = chosen_cells(adata, cell_idx, sampling, sample_ncells, basis)
    full = not any(given) if pca_hessian is None else bool(pca_hessian)
    shapes: dict[str, tuple[int, ...]] = {}
    kwargs = dict(_fit_args(fit), q_eff=None, Q_reg=None, Q_co=None, full=full)
    entry: dict[str, Any] = {}
    if all(given):
        if basis not in ("pca", None):
            raise InputError(
                f"gene Hessians need a field learned on PCA scores (basis='pca') or in gene "
                f"space (basis=None), not {basis!r}"
            )
        eff = resolve_genes(adata, effector, "effector")
        if len(eff) != 1:
            raise InputError(f"effector must be one gene, got {eff}")
        regs = resolve_genes(adata, regulators, "regulators")
        coregs = resolve_genes(adata, coregulators, "coregulators")
        Q, rows = _loadings(adata, basis, Qkey, d)
        genes = basis is None
        kwargs.update(
            q_eff=gene_rows(adata, Q, rows, eff, "effector", genes)[0],
            Q_reg=gene_rows(adata, Q, rows, regs, "regulators", genes),
            Q_co=gene_rows(adata, Q, rows, coregs, "coregulators", genes),
        )
        shapes["gene"] = (len(regs), len(coregs))
        entry.update(regulators=regs, coregulators=coregs, effectors=eff)
    if full:
        shapes["full"] = (d, d, d)
    M = fit["X_ctrl"].shape[0]
    work = M * (3 * d if full else 2) + 4 * sum(int(np.prod(s)) for s in shapes.values())
    res = gj.per_cell(X, partial(_hessian_kernel, **kwargs), shapes, cells, work)
    entry["cell_idx"] = cell_index(cells, next(iter(res.values())))
    if "gene" in res:
        entry["hessian_gene"] = res["gene"].astype(np.float32)
    if full:
        entry["hessian"] = res["full"].astype(np.float32)
    if not store_in_adata:
        return _computed(entry)
    commit(adata, "hessian", uns={key("hessian", basis): entry})
    return None


def laplacian(
    adata: ad.AnnData,
    hkey: str = "hessian_pca",
    basis: str | None = "pca",
    *,
    Qkey: str = "PCs",
    method: str = "analytical",
) -> None:
    """Laplacian ``L_i = sum_j d2 f_i / dx_j^2`` of each component of the field, every cell.

    Computed from the field's closed form at every cell, one row block per task, so no
    stored Hessian is needed. (dynamo 1.5.3 reads ``uns[hkey]['hessian']`` and sums
    ``H[j, j, i]`` over ``j``, which is the gradient of the divergence ``d(div f)/dx_i``
    rather than the Laplacian its documentation names; dynadask computes the Laplacian.)

    Parameters
    ----------
    adata
        AnnData with ``uns['VecFld_<basis>']``.
    hkey
        dynamo's Hessian key; not needed (a value other than the default is ignored with a
        warning).
    basis
        The basis the field was learned in (``None``: the gene-space field, keys without
        the suffix).
    Qkey
        PCA loadings that take the pca Laplacian back to genes.
    method
        ``'analytical'``.

    Writes
    ------
    obsm['Laplacian_<basis>']
        ``L`` per cell (n x d).
    obs['Laplacian_<basis>']
        ``||L||``.
    layers['laplacian']
        basis pca with loadings present: ``L Q^T`` on the ``use_for_pca`` genes, NaN
        elsewhere (float32, built one row block at a time); gene space: ``L`` on the
        field's genes.
    """
    _check_method(method)
    if hkey != "hessian_pca":
        warnings.warn(
            f"hkey={hkey!r} is ignored: the Laplacian is computed from the field itself",
            UserWarning,
            stacklevel=2,
        )
    X, fit = _field(adata, basis, "analytical")
    L = _quantities(X, fit, ["laplacian"])["laplacian"]
    name = key("Laplacian", basis)
    layers = _gene_layer(adata, basis, L, Qkey, "laplacian")
    commit(adata, "laplacian", obs={name: _row_norms(L)}, obsm={name: L}, layers=layers)
