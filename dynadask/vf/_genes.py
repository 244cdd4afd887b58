"""Shared inputs of the gene-space derivatives: gene lists, PCA loadings, chosen cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import dask.array as da
import numpy as np

from .._core import keys
from .._core.errors import InputError, MissingKeyError
from .calculus import _cells

GeneList = str | Sequence[str] | None


def resolve_genes(adata: ad.AnnData, genes: GeneList, role: str) -> list[str]:
    """Gene names in ``adata.var`` order; a string names one gene or a boolean var column.

    Raises
    ------
    ValueError
        If a gene is not in ``adata.var_names`` or the list is empty.
    """
    if isinstance(genes, str):
        col = adata.var.get(genes)
        if col is not None and col.dtype == bool:
            genes = list(adata.var_names[col.to_numpy()])
        else:
            genes = [genes]
    wanted = set(genes)
    unknown = sorted(wanted - set(adata.var_names))
    if unknown:
        raise InputError(
            f"{role} {unknown} not in adata.var_names: pass genes of this AnnData "
            f"(e.g. {list(adata.var_names[:3])})"
        )
    names = [g for g in adata.var_names if g in wanted]
    if not names:
        raise MissingKeyError(f"no {role} given: pass at least one gene name")
    return names


def loadings(adata: ad.AnnData, Qkey: str, d: int) -> tuple[np.ndarray, np.ndarray]:
    """PCA loadings (genes x ``d``) and the var positions of their rows.

    The loadings are ``uns[Qkey]`` or ``varm[Qkey]``, over the ``use_for_pca`` genes (in
    var order) or over all genes.

    Raises
    ------
    ValueError
        If there are no loadings under ``Qkey`` or their shape fits neither gene set.
    """
    if Qkey in adata.uns:
        Q = np.asarray(adata.uns[Qkey], dtype=np.float64)
    elif Qkey in adata.varm:
        Q = np.asarray(adata.varm[Qkey], dtype=np.float64)
    else:
        raise MissingKeyError(
            f"no PCA loadings uns[{Qkey!r}] or varm[{Qkey!r}]: run dyn.pp.pca first or pass "
            "Qkey= the key of the loadings"
        )
    if Q.ndim != 2 or Q.shape[1] < d:
        raise InputError(f"loadings {Qkey!r} have shape {Q.shape}: need at least {d} components")
    if Q.shape[0] == adata.n_vars:
        return Q[:, :d], np.arange(adata.n_vars)
    if keys.USE_FOR_PCA in adata.var:
        rows = np.flatnonzero(adata.var[keys.USE_FOR_PCA].to_numpy(dtype=bool))
        if rows.size == Q.shape[0]:
            return Q[:, :d], rows
    raise InputError(
        f"loadings {Qkey!r} have {Q.shape[0]} rows, neither the {adata.n_vars} genes nor the "
        f"var[{keys.USE_FOR_PCA!r}] genes: pass the loadings of this AnnData's PCA"
    )


def gene_rows(
    adata: ad.AnnData,
    Q: np.ndarray,
    rows: np.ndarray,
    genes: list[str],
    role: str,
    gene_space: bool = False,
):
    """The loadings' rows of ``genes`` (``gene_space``: the rows are a gene-space field's genes).

    Raises
    ------
    ValueError
        If a gene has no loadings (outside ``var['use_for_pca']``).
    """
    pos = {int(r): i for i, r in enumerate(rows)}
    idx = adata.var_names.get_indexer(genes)
    missing = [g for g, i in zip(genes, idx, strict=True) if int(i) not in pos]
    if missing and gene_space:
        raise InputError(
            f"{role} {missing} are not genes of the gene-space field (uns['VecFld']['genes']): "
            "choose genes among them, or refit with dyn.vf.VectorField(adata, basis=None, "
            "genes=...)"
        )
    if missing:
        raise InputError(
            f"{role} {missing} have no PCA loadings (not in var['use_for_pca']): the field "
            "knows only the genes of the PCA; choose genes among them"
        )
    return Q[[pos[int(i)] for i in idx]]


def chosen_cells(
    adata: ad.AnnData, cell_idx: Any, sampling: str | None, sample_ncells: int, basis: str
) -> np.ndarray | None:
    """Sorted positions of the cells to evaluate, or ``None`` for all of them.

    As in dynamo, basis ``'umap'`` always uses all cells.
    """
    if basis == "umap":
        return None
    idx = _cells(adata, cell_idx, sampling, sample_ncells, basis)
    if idx is None:
        return None
    idx = np.unique(np.asarray(idx, dtype=np.int64))
    if idx.size and (idx[0] < 0 or idx[-1] >= adata.n_obs):
        raise InputError(f"cell_idx must lie in [0, {adata.n_obs}): got {idx[0]}..{idx[-1]}")
    return idx


def cell_index(cells: np.ndarray | None, like: da.Array) -> Any:
    """``cell_idx`` as stored: the chosen positions, or a lazy ``arange`` for all cells.

    The ``arange`` has the row chunks of ``like`` (a per-cell result over all cells).
    """
    if cells is None:
        return da.arange(like.shape[0], chunks=(like.chunks[0],), dtype=np.int64)
    return cells
