"""Per-block kernels of preprocessing: count checks, QC sums, size-factor scaling, gene moments.

Each function works on one row block (numpy array or scipy sparse matrix, cells x genes) and
returns numpy arrays (float64 for sums) or a CSR block. No Dask, no AnnData.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy import sparse

from .._core.errors import CountsError
from .qc_sums import canonical, layer_sums, shared_sums


def as_csr(block) -> sparse.csr_matrix:
    """Return ``block`` as a CSR matrix (dense input is converted, sparse kept)."""
    if sparse.issparse(block):
        return sparse.csr_matrix(block)
    return sparse.csr_matrix(np.asarray(block))


def _values(block) -> np.ndarray:
    return block.data if sparse.issparse(block) else np.asarray(block)


def check_counts(block, name: str = "layer") -> None:
    """Raise :class:`dynadask.CountsError` if a block holds NaN, infinite or negative values.

    Parameters
    ----------
    block
        One row block of an expression layer.
    name
        The layer's name, used in the message.
    """
    values = _values(block)
    if values.size == 0:
        return
    if not np.all(np.isfinite(values)):
        raise CountsError(
            f"{name} holds NaN or infinite values: preprocessing needs raw counts; "
            "replace them (e.g. with 0) before calling the recipe"
        )
    if values.min() < 0:
        raise CountsError(
            f"{name} holds negative values: preprocessing needs raw, non-negative counts "
            "(was the layer already scaled or centred?)"
        )


def cell_sums(
    *blocks, mito: np.ndarray | None = None, shared: Sequence[Sequence[int]] = ()
) -> np.ndarray:
    """Per-cell detected-gene counts and totals of each block, mitochondrial and shared totals.

    Parameters
    ----------
    *blocks
        Aligned row blocks of several layers (same cells, same genes).
    mito
        Boolean mask of mitochondrial genes; their total in the first block is appended.
    shared
        Sets of block indices; for each set, the cell's shared counts (sum over genes of
        the set's values where all of them are positive) are appended.

    Returns
    -------
    numpy.ndarray
        ``(n_rows, 2 * len(blocks) + 1 + len(shared))`` float64: for each layer its count
        of genes > 0 and its total, the mitochondrial total of the first layer (0 without
        ``mito``), then one column per shared set.
    """
    csrs = [canonical(as_csr(b)) for b in blocks]
    n, k = csrs[0].shape[0], 2 * len(csrs)
    out = np.zeros((n, k + 1 + len(shared)))
    use_mito = mito is not None and np.any(mito)
    for i, csr in enumerate(csrs):
        detected, total, mito_total, *_ = layer_sums(csr, mito if use_mito and i == 0 else None)
        out[:, 2 * i], out[:, 2 * i + 1] = detected, total
        if use_mito and i == 0:
            out[:, k] = mito_total
    for j, members in enumerate(shared):
        if members:
            out[:, k + 1 + j] = shared_sums([csrs[i] for i in members])[0]
    return out


def gene_sums(*blocks, names: Sequence[str] = (), shared: Sequence[Sequence[int]] = ()) -> dict:
    """Per-gene sums of one row block of several layers, after checking they hold counts.

    Parameters
    ----------
    *blocks
        Aligned row blocks of several layers.
    names
        Layer names (for error messages), one per block.
    shared
        Sets of block indices; for each set, per gene, the sum over cells of the set's
        values in the cells where all of them are positive.

    Returns
    -------
    dict
        ``ncells`` and ``sum`` (``(len(blocks), n_genes)``) and ``shared``
        (``(len(shared), n_genes)``), float64.

    Raises
    ------
    ValueError
        If a block holds NaN, infinite or negative values.
    """
    names = list(names) or [f"layer {i}" for i in range(len(blocks))]
    csrs = [canonical(as_csr(b)) for b in blocks]
    n_genes = csrs[0].shape[1]
    ncells = np.zeros((len(csrs), n_genes))
    sums = np.zeros((len(csrs), n_genes))
    for i, (csr, name) in enumerate(zip(csrs, names, strict=True)):
        *_, ncells[i], sums[i], bad = layer_sums(csr)
        if bad:
            check_counts(csr, name)  # raises with the message for what was found
    common = np.zeros((len(shared), n_genes))
    for j, members in enumerate(shared):
        if members:
            common[j] = shared_sums([csrs[i] for i in members])[1]
    return {"ncells": ncells, "sum": sums, "shared": common}


def shared_counts(csrs: Sequence[sparse.csr_matrix], axis: int, n_out: int) -> np.ndarray:
    """Sum of the layers' values over the entries where every layer is positive, along ``axis``.

    An empty set of layers gives zeros of length ``n_out``.
    """
    if not csrs:
        return np.zeros(n_out)
    mask = csrs[0] > 0
    for csr in csrs[1:]:
        mask = mask.multiply(csr > 0)
    mask = sparse.csr_matrix(mask, dtype=np.float64)
    total = mask.multiply(csrs[0])
    for csr in csrs[1:]:
        total = total + mask.multiply(csr)
    return np.asarray(total.sum(axis=axis), dtype=np.float64).ravel()


def scale_rows(block, size_factors: np.ndarray, dtype=np.float32) -> sparse.csr_matrix:
    """Divide each row of a block by its cell's size factor; the result stays sparse (CSR)."""
    csr = as_csr(block).astype(dtype)
    sf = np.asarray(size_factors, dtype=np.float64).ravel()
    csr.data = (csr.data / np.repeat(sf, np.diff(csr.indptr))).astype(dtype)
    return csr


def log1p_block(block, dtype=np.float32) -> sparse.csr_matrix:
    """``log(1 + x)`` of a block's stored values (zeros stay zero, the block stays CSR)."""
    csr = as_csr(block).astype(dtype)
    csr.data = np.log1p(csr.data).astype(dtype)
    return csr


def normalized_gene_moments(block, size_factors: np.ndarray, log: bool = False) -> dict:
    """Per-gene sums of ``y = x / s`` and ``y**2`` of one row block (for dispersion fits).

    With ``log``, ``y = log1p(x / s)``.

    Returns
    -------
    dict
        ``sum`` and ``sumsq``, ``(n_genes,)`` float64; ``n`` (number of cells, 1-element).
    """
    x = scale_rows(block, size_factors, dtype=np.float64)
    if log:
        x.data = np.log1p(x.data)
    total, squares = column_sums(x)
    return {"sum": total, "sumsq": squares, "n": np.array([float(x.shape[0])])}


def column_sums(x: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Per-column sums of a CSR matrix's values and of their squares (float64, row order)."""
    x = canonical(x)  # duplicate entries are one value, as in scipy's products
    return _column_sums(np.asarray(x.data, dtype=np.float64), x.indices, x.indptr, x.shape[1])


@numba.njit(cache=True, nogil=True)
def _column_sums(data, indices, indptr, n_cols):  # pragma: no cover
    total = np.zeros(n_cols)
    squares = np.zeros(n_cols)
    for r in range(indptr.size - 1):
        for k in range(indptr[r], indptr[r + 1]):
            v = data[k]
            total[indices[k]] += v
            squares[indices[k]] += v * v
    return total, squares


def gene_moments(block, size_factors: np.ndarray) -> dict:
    """Per-gene ``sum``, ``sumsq`` and ``npos`` (values above 0) of ``x / s``, and ``n``.

    Any values (not only counts); float64 sums.
    """
    x = scale_rows(block, size_factors, dtype=np.float64)
    positive = np.bincount(x.indices[x.data > 0], minlength=x.shape[1])
    return {
        "sum": np.asarray(x.sum(axis=0)).ravel(),
        "sumsq": np.asarray(x.multiply(x).sum(axis=0)).ravel(),
        "npos": positive.astype(np.float64),
        "n": np.array([float(x.shape[0])]),
    }
