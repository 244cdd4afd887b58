"""Graph builders of preprocessing: QC reductions, size-factor scaling, gene moments.

Cells are in row blocks, genes in one block. Per-cell results (a few columns) and per-gene
results (a few rows) are lazy; the caller computes them together in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
from dask import delayed
from scipy import sparse

from .._core.lineage import remember_row_transform
from ..kernels import pca as kpca
from ..kernels import preprocess as kpp
from .blocks import ArrayLike, align_rows, map_rows, sum_rows

_CSR_META = sparse.csr_matrix((0, 0), dtype=np.float32)


def _on_kept_rows(fn: Callable[..., Any], *blocks, **kwargs) -> Any:
    """Apply ``fn`` to the rows of the blocks that the last block (a boolean mask) keeps."""
    *data, keep = blocks
    keep = np.asarray(keep, dtype=bool).ravel()
    return fn(*(b if keep.all() else b[keep] for b in data), **kwargs)


def sum_kept_rows(
    fn: Callable[..., Any], *arrays: ArrayLike, cells: np.ndarray | None = None, **kwargs: Any
) -> Any:
    """:func:`~dynadask.graph.blocks.sum_rows` over the cells in ``cells`` (all when ``None``).

    ``cells`` is a boolean mask over rows; rows it leaves out contribute nothing.
    """
    if cells is None:
        return sum_rows(fn, *arrays, **kwargs)
    mask = np.asarray(cells, dtype=bool).ravel()
    return sum_rows(partial(_on_kept_rows, fn), *arrays, mask, **kwargs)


def qc_sums(
    layers: Mapping[str, ArrayLike],
    *,
    mito: np.ndarray | None = None,
    shared: Sequence[Sequence[str]] = (),
    cells: np.ndarray | None = None,
) -> tuple[da.Array, Any]:
    """Lazy per-cell and per-gene counts of several raw layers, in one pass over the data.

    Parameters
    ----------
    layers
        Raw count layers by name (same cells and genes).
    mito
        Boolean mask of mitochondrial genes (their total in the first layer is kept per cell).
    shared
        Sets of layer names whose shared counts (where all are positive) are summed.
    cells
        Boolean mask of the cells the per-gene sums run over (all when ``None``); the
        per-cell columns always cover every cell.

    Returns
    -------
    tuple
        ``cells``: dask array ``(n_cells, 2 * n_layers + 1 + len(shared))`` (per layer: genes
        detected, total; the mitochondrial total; the shared counts of each set).
        ``genes``: a Delayed dict with ``ncells``, ``sum`` (``(n_layers, n_genes)``) and
        ``shared`` (``(len(shared), n_genes)``). A layer with NaN or negative values makes
        the computation raise ``ValueError``. The same array given under two names (X
        standing for spliced) is read once.
    """
    names = list(layers)
    arrays, where = _distinct(list(layers.values()))
    sets = [[where[names.index(n)] for n in members] for members in shared]
    n_cols = 2 * len(arrays) + 1 + len(sets)
    per_cell = map_rows(
        kpp.cell_sums, *arrays, n_cols=n_cols, dtype=np.float64, mito=mito, shared=sets
    )
    first = [names[where.index(i)] for i in range(len(arrays))]
    genes = sum_kept_rows(kpp.gene_sums, *arrays, cells=cells, names=first, shared=sets)
    if len(arrays) == len(names):
        return per_cell, genes
    columns = [c for i in where for c in (2 * i, 2 * i + 1)]
    columns += list(range(2 * len(arrays), n_cols))
    return per_cell[:, columns], delayed(_expand_genes, pure=True)(genes, where)


def _distinct(arrays: list) -> tuple[list, list[int]]:
    """The distinct arrays (by identity) and, for each input, the index of its array."""
    unique: list = []
    where = []
    for x in arrays:
        found = [i for i, u in enumerate(unique) if u is x]
        where.append(found[0] if found else len(unique))
        unique += [] if found else [x]
    return unique, where


def _expand_genes(genes: dict, where: list[int]) -> dict:
    return {"ncells": genes["ncells"][where], "sum": genes["sum"][where], "shared": genes["shared"]}


def _stats_block(block, sf, genes=None, gram=True, log=False, gram_log=True) -> dict:
    out = kpp.normalized_gene_moments(block, sf, log)
    if gram:
        moments = kpca.cross_moments(block, sf, genes, gram_log)
        out.update(lsum=moments["sum"], gram=moments["gram"])
    return out


def normalized_stats(
    x: ArrayLike,
    size_factors: np.ndarray,
    *,
    log: bool = False,
    gram_genes: np.ndarray | None = None,
    gram_log: bool = True,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy per-gene moments of ``x / s``, with the PCA cross-product of ``log1p(x / s)``.

    Parameters
    ----------
    x
        Raw counts (cells x genes).
    size_factors
        One size factor per cell.
    log
        Take the moments of ``log1p(x / s)`` instead.
    gram_genes
        Genes (integer indices) over which the cross-product is accumulated; ``None`` skips it.
    gram_log
        Accumulate the cross-product of ``log1p(x / s)`` (else of ``x / s``).
    cells
        Boolean mask of the cells summed over (all when ``None``).

    Returns
    -------
    dask.delayed.Delayed
        Dict with ``n``, ``sum``, ``sumsq`` (all genes) and, with ``gram_genes``, ``lsum``
        and ``gram`` over those genes.
    """
    return sum_kept_rows(
        _stats_block,
        x,
        np.asarray(size_factors, dtype=np.float64),
        cells=cells,
        genes=gram_genes,
        gram=gram_genes is not None,
        log=log,
        gram_log=gram_log,
    )


def _with_factor_column(x: ArrayLike, size_factors: np.ndarray) -> tuple[da.Array, da.Array]:
    xd, sd = align_rows(x, np.asarray(size_factors, dtype=np.float64))
    return xd, sd[:, None]


def _scale(block, sf, dtype=np.float32):
    return kpp.scale_rows(block, np.asarray(sf).ravel(), dtype=dtype)


def scaled(x: ArrayLike, size_factors: np.ndarray, *, log: bool = False) -> da.Array:
    """Lazy ``x / s`` (or ``log1p(x / s)``) as CSR row blocks, float32; never densified."""
    xd, sd = _with_factor_column(x, size_factors)
    out = da.map_blocks(_scale, xd, sd, dtype=np.float32, meta=_CSR_META)
    if log:
        out = out.map_blocks(kpp.log1p_block, dtype=np.float32, meta=_CSR_META)
    else:  # (log1p of float32 quotients is not the float64 rule RowTransform applies)
        remember_row_transform(out, x, size_factors, log=False, via_float32=True, dtype=np.float32)
    return out


def _normalized_block(block, sf, genes=None, log=False) -> sparse.csr_matrix:
    out = kpca.log_norm(block, np.asarray(sf).ravel(), genes, log)
    return out.astype(np.float32)


def normalized(
    x: ArrayLike, size_factors: np.ndarray, *, genes: np.ndarray | None = None, log: bool = False
) -> da.Array:
    """Lazy ``x / s`` (or ``log1p(x / s)``) over ``genes`` (all when ``None``), CSR row blocks."""
    xd, sd = _with_factor_column(x, size_factors)
    n_cols = xd.shape[1] if genes is None else len(genes)
    out = da.map_blocks(
        _normalized_block,
        xd,
        sd,
        genes=None if genes is None else np.asarray(genes),
        log=log,
        chunks=(xd.chunks[0], (n_cols,)),
        dtype=np.float32,
        meta=_CSR_META,
    )
    if genes is None:
        remember_row_transform(out, x, size_factors, log=log, via_float32=False, dtype=np.float32)
    return out


def _totals(*blocks) -> np.ndarray:
    return kpp.cell_sums(*blocks)[:, 1:-1:2]


def cell_totals(*arrays: ArrayLike) -> da.Array:
    """Lazy per-cell totals of several layers, ``(n_cells, n_layers)`` float64."""
    return map_rows(_totals, *arrays, n_cols=len(arrays), dtype=np.float64)


def log1p_layer(x: ArrayLike) -> da.Array:
    """Lazy ``log1p`` of a layer's stored values as CSR row blocks, float32."""
    xd = align_rows(x)[0]
    return xd.map_blocks(kpp.log1p_block, dtype=np.float32, meta=_CSR_META)


def gene_moments(x: ArrayLike, size_factors: np.ndarray, cells: np.ndarray | None = None) -> Any:
    """Lazy per-gene ``sum``, ``sumsq``, ``npos`` and ``n`` of ``x / s`` over ``cells``.

    ``cells`` is a boolean mask of the rows summed over (all when ``None``).
    """
    sf = np.asarray(size_factors, dtype=np.float64)
    return sum_kept_rows(kpp.gene_moments, x, sf, cells=cells)
