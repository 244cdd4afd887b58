"""Per-block residual matrices: analytic Pearson residuals and linear regression residuals.

Each function works on one row block (numpy or scipy sparse, cells x genes) together with
per-cell and per-gene numbers reduced beforehand, and returns dense float64 arrays (or
per-gene sums). No Dask, no AnnData.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

GENE_CHUNK = 1000  # genes densified at once when only per-gene sums are returned


def _dense(block, genes: np.ndarray | None = None) -> np.ndarray:
    if genes is not None:
        block = block[:, genes]
    out = block.toarray() if sparse.issparse(block) else np.asarray(block)
    return out.astype(np.float64, copy=False)


def pearson_residuals(
    block,
    cell_sums: np.ndarray,
    gene_sums: np.ndarray,
    total: float,
    *,
    theta: float = 100.0,
    clip: float = np.inf,
    genes: np.ndarray | None = None,
) -> np.ndarray:
    """Clipped analytic Pearson residuals ``(x - mu) / sqrt(mu + mu^2 / theta)`` of a block.

    ``mu = cell_sum * gene_sum / total`` (negative-binomial offset model with one
    overdispersion ``theta``). Rows whose ``cell_sums`` are 0 and columns whose ``gene_sums``
    are 0 (no expected counts) get 0.

    Parameters
    ----------
    block
        Counts, cells x genes.
    cell_sums
        Each cell's total over the genes the model is fitted on (this block's rows).
    gene_sums
        Each column's total over all cells (over ``genes`` when given).
    total
        The sum of all counts the model is fitted on.
    theta, clip
        Overdispersion; residuals are clipped to ``[-clip, clip]``.
    genes
        Column positions to use (all when ``None``).
    """
    x = _dense(block, genes)
    mu = np.outer(np.asarray(cell_sums, dtype=np.float64).ravel(), gene_sums) / float(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (x - mu) / np.sqrt(mu + mu**2 / theta)
    r[mu == 0] = 0.0
    return np.clip(r, -clip, clip)


def batch_sums(block, codes: np.ndarray, *, n_batches: int = 1) -> dict:
    """Per-batch column sums of a count block, and its per-gene sums and sums of squares.

    Rows with a negative code are left out of every sum.

    Returns ``gsum`` (batches x genes), ``n`` (cells per batch), ``sum`` and ``sumsq``
    (genes, over all the block's cells), float64.
    """
    codes = np.asarray(codes).ravel()
    csr = sparse.csr_matrix(block, dtype=np.float64)
    gsum = np.zeros((n_batches, csr.shape[1]))
    for b in np.unique(codes[codes >= 0]):
        gsum[b] = np.asarray(csr[codes == b].sum(axis=0)).ravel()
    kept = csr[codes >= 0]
    return {
        "gsum": gsum,
        "n": np.bincount(codes[codes >= 0], minlength=n_batches).astype(np.float64),
        "sum": np.asarray(kept.sum(axis=0)).ravel(),
        "sumsq": np.asarray(kept.multiply(kept).sum(axis=0)).ravel(),
    }


def pearson_moments(
    block,
    cell_sums: np.ndarray,
    codes: np.ndarray,
    *,
    gene_sums: np.ndarray,
    totals: np.ndarray,
    clips: np.ndarray,
    theta: float = 100.0,
) -> dict:
    """Per-batch, per-gene ``sum`` and ``sumsq`` of clipped Pearson residuals over a block.

    Row ``i`` belongs to batch ``codes[i]``, whose expected counts use ``gene_sums[b]``,
    ``totals[b]`` and whose residuals are clipped at ``clips[b]`` (rows with a negative code
    are left out). The block is densified
    :data:`GENE_CHUNK` columns at a time. Returns ``sum`` and ``sumsq`` (batches x genes).
    """
    codes = np.asarray(codes).ravel()
    cell_sums = np.asarray(cell_sums, dtype=np.float64).ravel()
    gene_sums = np.asarray(gene_sums, dtype=np.float64)
    n_batches, n_genes = gene_sums.shape
    s = np.zeros((n_batches, n_genes))
    ss = np.zeros((n_batches, n_genes))
    csc = sparse.csc_matrix(block) if sparse.issparse(block) else np.asarray(block)
    for b in np.unique(codes[codes >= 0]):
        rows = codes == b
        part_block = csc[rows]
        for start in range(0, n_genes, GENE_CHUNK):
            cols = np.arange(start, min(start + GENE_CHUNK, n_genes))
            r = pearson_residuals(
                part_block,
                cell_sums[rows],
                gene_sums[b, cols],
                totals[b],
                theta=theta,
                clip=clips[b],
                genes=cols,
            )
            s[b, cols] = r.sum(axis=0)
            ss[b, cols] = (r * r).sum(axis=0)
    return {"sum": s, "sumsq": ss}


def with_columns(block, values: np.ndarray, genes: np.ndarray) -> sparse.csr_matrix:
    """A CSR copy of ``block`` whose columns ``genes`` hold ``values`` (float32)."""
    csr = sparse.csr_matrix(block, dtype=np.float32)
    genes = np.asarray(genes)
    keep = np.setdiff1d(np.arange(csr.shape[1]), genes)
    merged = sparse.hstack(
        [csr[:, keep], sparse.csr_matrix(np.asarray(values, dtype=np.float32))], format="csr"
    )
    return merged[:, np.argsort(np.concatenate([keep, genes]))].tocsr()


def regression_sums(block, covariates: np.ndarray, *, genes: np.ndarray | None = None) -> dict:
    """Per-gene sums of a block and their products with centred covariates.

    Returns ``sum`` (genes) and ``cross`` (covariates x genes), float64, for the normal
    equations of a least-squares fit of every gene on the covariates (with intercept).
    """
    a = np.asarray(covariates, dtype=np.float64)
    if sparse.issparse(block):
        csr = sparse.csr_matrix(block if genes is None else block[:, genes], dtype=np.float64)
        total = np.asarray(csr.sum(axis=0)).ravel()
        cross = np.asarray((csr.T @ a).T)
    else:
        x = _dense(block, genes)
        total, cross = x.sum(axis=0), a.T @ x
    return {"sum": total, "cross": cross}


def regression_residuals(
    block,
    covariates: np.ndarray,
    intercept: np.ndarray,
    coef: np.ndarray,
    *,
    genes: np.ndarray | None = None,
) -> np.ndarray:
    """``x - intercept - covariates @ coef`` for a block (dense float64)."""
    x = _dense(block, genes)
    return x - intercept[None, :] - np.asarray(covariates, dtype=np.float64) @ coef
