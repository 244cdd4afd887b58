"""Per-block kernels of exact PCA: cross-product moments, the eigen-solution, projection.

The PCA input is ``log1p(x / s)`` restricted to a set of genes (``x`` a row block of counts,
``s`` the cells' size factors). A row block contributes its per-gene sums and its genes x genes
cross-product (dense, float64); summed over all blocks they give the covariance, whose
eigenvectors are the principal axes.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy import linalg, sparse

from .preprocess import as_csr

DENSE_BYTES = 32 * 2**20  # a dense slice of rows x genes (float64) stays under this size


def log_norm(
    block, size_factors: np.ndarray | None, genes: np.ndarray | None = None, log: bool = True
):
    """Return ``log1p(x / s)`` (or ``x / s``) of a block as CSR float64, on ``genes`` if given.

    ``size_factors=None`` leaves the values undivided (expression that is normalised already).
    """
    csr = as_csr(block)
    if genes is not None:
        csr = csr[:, genes]
    csr = csr.astype(np.float64)
    if size_factors is not None:
        sf = np.asarray(size_factors, dtype=np.float64).ravel()
        csr.data = csr.data / np.repeat(sf, np.diff(csr.indptr))
    if log:
        csr.data = np.log1p(csr.data)
    return csr


def cross_moments(
    block, size_factors: np.ndarray | None, genes: np.ndarray | None = None, log: bool = True
) -> dict:
    """Sums and cross-product of ``log1p(x / s)`` over one row block.

    Parameters
    ----------
    block
        Counts, cells x genes (numpy or scipy sparse).
    size_factors
        One size factor per cell of the block (``None``: values used as they are).
    genes
        Integer indices of the genes to keep (all when ``None``).
    log
        Take ``log1p`` after dividing by the size factors.

    Returns
    -------
    dict
        ``n`` (1-element), ``sum`` (``(g,)``) and ``gram`` (``(g, g)``), float64. Rows are
        densified a slice at a time (at most ``DENSE_BYTES``), never the whole block.
    """
    n_cols = block.shape[1]
    if genes is not None and 2 * len(genes) < n_cols:  # few genes: select them first
        return gram_of(log_norm(block, size_factors, genes, log))
    return gram_of(log_norm(block, size_factors, None, log), genes)


def gram_of(y, genes: np.ndarray | None = None) -> dict:
    """``n``, per-gene sums and the cross-product of CSR ``y`` over ``genes`` (all if ``None``).

    Rows are densified a slice at a time (at most ``DENSE_BYTES``) by a compiled fill.
    """
    y = sparse.csr_matrix(y)
    n_cols = y.shape[1]
    pos = np.arange(n_cols, dtype=np.int64)
    if genes is not None:
        genes = np.asarray(genes, dtype=np.int64)
        pos = np.full(n_cols, -1, dtype=np.int64)
        pos[genes] = np.arange(genes.size)
    g = n_cols if genes is None else genes.size
    step = max(64, DENSE_BYTES // (8 * max(g, 1)))  # rows densified at a time
    total, gram = np.zeros(g), np.zeros((g, g))
    data = np.asarray(y.data, dtype=np.float64)
    indptr = y.indptr.astype(np.int64)
    for start in range(0, y.shape[0], step):
        stop = min(start + step, y.shape[0])
        part = np.zeros((stop - start, g))
        _fill_rows(data, y.indices, indptr, pos, start, stop, part)
        total += part.sum(axis=0)
        gram += part.T @ part
    return {"n": np.array([float(y.shape[0])]), "sum": total, "gram": gram}


@numba.njit(cache=True, nogil=True)
def _fill_rows(data, indices, indptr, pos, start, stop, out):  # pragma: no cover
    """Add rows ``start:stop`` of a CSR matrix into dense ``out``, column ``c`` at ``pos[c]``."""
    for r in range(start, stop):
        for k in range(indptr[r], indptr[r + 1]):
            p = pos[indices[k]]
            if p >= 0:
                out[r - start, p] += data[k]


def pca_from_moments(
    n: float, total: np.ndarray, gram: np.ndarray, n_components: int, centre: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Principal axes from summed moments (exact PCA of the centred data).

    Parameters
    ----------
    n
        Number of cells.
    total, gram
        Per-gene sums and the genes x genes cross-product summed over cells.
    n_components
        Number of axes to keep (at most the number of genes).
    centre
        Centre the data (PCA); ``False`` gives the axes of the uncentred second moments
        (a truncated SVD of the data) and a zero ``mean``.

    Returns
    -------
    tuple
        ``mean`` (g,), ``components`` (g x k, unit columns), ``explained_variance``
        (k, population variance of each component) and ``explained_variance_ratio`` (k).
        The sign of each axis is fixed so that its largest-magnitude loading is positive.
    """
    mean = total / n if centre else np.zeros_like(total, dtype=np.float64)
    cov = gram / n - np.outer(mean, mean)
    cov = (cov + cov.T) / 2
    g = cov.shape[0]
    k = min(n_components, g)
    values, vectors = linalg.eigh(cov, subset_by_index=[g - k, g - 1])
    order = np.argsort(values)[::-1]
    values, vectors = np.clip(values[order], 0, None), vectors[:, order]
    biggest = np.argmax(np.abs(vectors), axis=0)
    vectors = vectors * np.sign(vectors[biggest, np.arange(k)])
    total_var = max(float(np.trace(cov)), np.finfo(float).tiny)
    return mean, vectors, values, values / total_var


def project(
    block,
    size_factors: np.ndarray | None,
    genes: np.ndarray | None,
    mean: np.ndarray,
    components: np.ndarray,
    log: bool = True,
    out_dtype: type = np.float32,
) -> np.ndarray:
    """``(log1p(x / s)[:, genes] - mean) @ components`` for one row block (``out_dtype``).

    The product is taken on the sparse values; the mean's projection is subtracted after.
    """
    y = log_norm(block, size_factors, genes, log)
    return _scores(y, mean, components).astype(out_dtype)


def _scores(y, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    return np.asarray(y @ components) - (mean @ components)[None, :]


def displacement(x, v, mean: np.ndarray, components: np.ndarray, log: bool = True) -> np.ndarray:
    """Scores of ``x + v`` minus scores of ``x`` (float64): a velocity step in the PCA basis.

    With ``log``, ``x + v`` is clipped at 0 before ``log1p`` (a velocity step cannot make
    expression negative, and ``log1p`` of values below -1 is undefined).
    """
    x = np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float64)
    v = np.asarray(v.toarray() if hasattr(v, "toarray") else v, dtype=np.float64)
    future = np.maximum(x + v, 0.0) if log else x + v
    now = _scores(log_norm(x, None, None, log), mean, components)
    return _scores(log_norm(future, None, None, log), mean, components) - now


def top_loading_genes(components: np.ndarray, n_top: int) -> np.ndarray:
    """Genes among the ``n_top`` largest absolute loadings of at least one component.

    ``components`` is genes x components. A gene tied with the ``(n_top + 1)``-th largest
    loading of a component does not count for it.
    """
    q = np.abs(np.asarray(components, dtype=np.float64))
    if n_top >= q.shape[0]:
        return np.ones(q.shape[0], dtype=bool)
    cut = -np.partition(-q, n_top, axis=0)[n_top]  # the (n_top + 1)-th largest per column
    return (q > cut).any(axis=1)
