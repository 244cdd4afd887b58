"""Compiled per-block QC sums of count layers: one pass over each layer's stored values.

:func:`dynadask.kernels.preprocess.cell_sums` and :func:`~dynadask.kernels.preprocess.
gene_sums` call these on canonical CSR blocks (sorted indices, no duplicates) instead of
building boolean and product matrices with scipy: per row the detected genes and the total,
per gene the detected cells and the total, and the shared counts of a set of layers (the
values summed over the entries where every layer of the set is positive). Sums are float64
and run in the stored order, as scipy's reductions do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy import sparse


@numba.njit(cache=True, nogil=True)
def _layer_sums(data, indices, indptr, n_genes, mito, keep, per_cell):  # pragma: no cover
    n = indptr.size - 1
    detected = np.zeros(n)
    total = np.zeros(n)
    mito_total = np.zeros(n)
    gene_cells = np.zeros(n_genes)
    gene_total = np.zeros(n_genes)
    bad = 0  # 1: NaN or infinite value, 2: negative value
    for r in range(n):
        count = 0.0
        acc = 0.0
        macc = 0.0
        for k in range(indptr[r], indptr[r + 1]):
            v = np.float64(data[k])
            c = indices[k]
            if not np.isfinite(v):
                bad = 1
            elif v < 0 and bad == 0:
                bad = 2
            if v > 0:
                count += 1.0
            acc += v
            if mito.size and mito[c]:
                macc += v
            if keep[r]:
                if v > 0:
                    gene_cells[c] += 1.0
                gene_total[c] += v
        if per_cell:
            detected[r] = count
            total[r] = acc
            mito_total[r] = macc
    return detected, total, mito_total, gene_cells, gene_total, bad


@numba.njit(cache=True, nogil=True)
def _shared_sums(data, indices, indptr, n_genes, keep):  # pragma: no cover
    # data, indices: the layers' values one after another; indptr: (n_layers, n_rows + 1)
    n_layers = indptr.shape[0]
    n = indptr.shape[1] - 1
    hits = np.zeros(n_genes, dtype=np.int64)
    acc = np.zeros(n_genes)
    per_cell = np.zeros(n)
    per_gene = np.zeros(n_genes)
    for r in range(n):
        for layer in range(n_layers):
            for k in range(indptr[layer, r], indptr[layer, r + 1]):
                c = indices[k]
                v = np.float64(data[k])
                hits[c] += 1 if v > 0 else n_layers + 1  # a value <= 0 rules the entry out
                acc[c] += v
        row = 0.0
        for k in range(indptr[0, r], indptr[0, r + 1]):
            c = indices[k]
            if hits[c] == n_layers:
                row += acc[c]
                if keep[r]:
                    per_gene[c] += acc[c]
        per_cell[r] = row
        for layer in range(n_layers):
            for k in range(indptr[layer, r], indptr[layer, r + 1]):
                hits[indices[k]] = 0
                acc[indices[k]] = 0.0
    return per_cell, per_gene


def canonical(csr: sparse.csr_matrix) -> sparse.csr_matrix:
    """``csr`` with sorted indices and no duplicate entries (a copy only when needed)."""
    if csr.has_canonical_format:
        return csr
    csr = csr.copy()
    csr.sum_duplicates()
    return csr


def layer_sums(
    csr: sparse.csr_matrix, mito: np.ndarray | None = None, keep: np.ndarray | None = None
) -> tuple[np.ndarray, ...]:
    """Per-row detected genes, totals, mitochondrial totals; per-gene detected cells, totals.

    ``keep`` (boolean per row) limits the per-gene sums to those rows. The last value is
    0, or 1 for a NaN or infinite value, or 2 for a negative one.
    """
    csr = canonical(csr)
    n = csr.shape[0]
    keep = np.ones(n, dtype=np.bool_) if keep is None else np.asarray(keep, dtype=np.bool_)
    mito = np.zeros(0, dtype=np.bool_) if mito is None else np.asarray(mito, dtype=np.bool_)
    return _layer_sums(
        csr.data, csr.indices, csr.indptr.astype(np.int64), csr.shape[1], mito, keep, True
    )


def shared_sums(
    csrs: Sequence[sparse.csr_matrix], keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row and per-gene shared counts of aligned canonical CSR blocks (at least one)."""
    csrs = [canonical(c) for c in csrs]
    n, n_genes = csrs[0].shape
    keep = np.ones(n, dtype=np.bool_) if keep is None else np.asarray(keep, dtype=np.bool_)
    offsets = np.cumsum([0] + [c.nnz for c in csrs[:-1]])
    indptr = np.stack([c.indptr.astype(np.int64) + o for c, o in zip(csrs, offsets, strict=True)])
    data = np.concatenate([c.data.astype(np.float64) for c in csrs])
    indices = np.concatenate([c.indices.astype(np.int64) for c in csrs])
    return _shared_sums(data, indices, indptr, n_genes, keep)
