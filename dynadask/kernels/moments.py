"""Moment kernels: the smoothing graph and graph-weighted averages of one row block.

A first moment of cell ``i`` is ``sum_j W_ij x_j`` over its neighbourhood; a second moment
is the same average of ``x_j * y_j``. A row block of ``W`` only touches the rows of ``x``
its neighbourhoods use: :func:`local_rows` lists them and re-indexes the block so that the
product runs on those gathered rows alone. Sums are accumulated in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from scipy import sparse


def smoothing_graph(sym: sparse.spmatrix) -> sparse.csr_matrix:
    """Row-normalised binary graph with self loops: dynamo's ``moments_con``.

    Every stored edge of ``sym`` and every cell itself weigh 1; each row is divided by its
    count, so each cell's moment is the plain mean over itself and its graph neighbours.

    Returns
    -------
    scipy.sparse.csr_matrix
        float32, rows sum to 1.
    """
    g = sparse.csr_matrix(sym, dtype=np.float32, copy=True)
    g.data[:] = 1.0
    g = (g + sparse.eye(g.shape[0], format="csr", dtype=np.float32)).tocsr()
    deg = np.diff(g.indptr)
    g.data = np.repeat((1.0 / np.maximum(deg, 1)).astype(np.float32), deg)
    g.sort_indices()
    return g


def row_normalise(w: sparse.spmatrix) -> sparse.csr_matrix:
    """Divide each row by its sum (rows summing to 0 stay 0); float32 CSR."""
    w = sparse.csr_matrix(w, dtype=np.float64, copy=True)
    sums = np.asarray(w.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    w.data *= np.repeat(scale, np.diff(w.indptr))
    out = w.astype(np.float32)
    out.sort_indices()
    return out


def local_rows(block: sparse.spmatrix) -> tuple[np.ndarray, sparse.csr_matrix]:
    """The cells a row block of the graph uses, and the block re-indexed onto them.

    Returns
    -------
    needed, local
        Sorted global indices of the used cells; the block with its columns renumbered to
        positions in ``needed`` (shape ``n_rows x len(needed)``).
    """
    block = sparse.csr_matrix(block)
    needed = np.unique(block.indices).astype(np.int64)
    cols = np.searchsorted(needed, block.indices)
    local = sparse.csr_matrix((block.data, cols, block.indptr), shape=(block.shape[0], needed.size))
    return needed, local


def take_rows(
    block: Any, rows: np.ndarray, cols: np.ndarray | None = None, dtype: Any = np.float64
) -> Any:
    """Rows ``rows`` (positions in the block) and columns ``cols`` of one block.

    Sparse blocks stay CSR, dense ones stay numpy. Values are cast to ``dtype`` (``None``
    keeps the block's own type, so a float32 block is gathered at half the memory).
    """
    if sparse.issparse(block):
        out = sparse.csr_matrix(block)[rows]
        out = out if cols is None else out[:, cols]
        return sparse.csr_matrix(out, dtype=dtype or out.dtype)
    out = np.asarray(block)[rows]
    out = out if cols is None else out[:, cols]
    return np.asarray(out, dtype=dtype or out.dtype)


def stack_rows(pieces: list[Any]) -> Any:
    """Stack row pieces (all sparse or all dense) in order."""
    if any(sparse.issparse(p) for p in pieces):
        return sparse.vstack([sparse.csr_matrix(p) for p in pieces], format="csr")
    return np.vstack(pieces)


@dataclass(frozen=True)
class Pieces:
    """Rows of a layer spread over row blocks, taken on demand (never stacked whole).

    Row ``r`` of the (virtual) gathered matrix is row ``positions[k][r - start_k]`` of
    ``blocks[k]``, the pieces following one another; ``cols`` picks genes.
    """

    blocks: list[Any]
    positions: list[np.ndarray]
    cols: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """Rows of all pieces, and columns."""
        width = self.blocks[0].shape[1] if self.cols is None else self.cols.size
        return sum(p.size for p in self.positions), width

    def take(self, rows: np.ndarray) -> Any:
        """Gathered rows ``rows`` (sorted), float64: CSR when the blocks are sparse."""
        bounds = np.cumsum([0] + [p.size for p in self.positions])
        cut = np.searchsorted(rows, bounds)
        parts = [
            take_rows(b, p[rows[cut[k] : cut[k + 1]] - bounds[k]], self.cols)
            for k, (b, p) in enumerate(zip(self.blocks, self.positions, strict=True))
            if cut[k + 1] > cut[k]
        ]
        return stack_rows(parts)


def smooth(
    local: sparse.csr_matrix,
    x: Any,
    y: Any = None,
    cols: np.ndarray | None = None,
    n_vars: int | None = None,
    step: int = 2048,
) -> np.ndarray:
    """Graph-weighted average of ``x`` (or of ``x * y``) over each row's neighbourhood.

    The rows are done ``step`` at a time, each on the gathered rows its neighbourhoods use,
    so the temporaries (the products ``x * y`` and the float64 sums) stay a small multiple of
    ``step`` rows whatever the block size; only the float32 output is block-sized.

    Parameters
    ----------
    local
        ``n_rows x m`` graph block re-indexed onto the gathered rows (see :func:`local_rows`).
    x, y
        ``m x g`` gathered rows (CSR or dense, any float type, or :class:`Pieces` taken step
        by step) of one or two layers, same genes. Products and sums are computed in float64.
    cols
        Positions of the ``g`` genes among ``n_vars`` output columns (all when ``None``).
    n_vars
        Width of the output; other columns are 0.
    step
        Rows of the graph block done at once.

    Returns
    -------
    numpy.ndarray
        ``n_rows x n_vars`` float32.
    """
    w = sparse.csr_matrix(local)
    width = x.shape[1] if cols is None else n_vars
    if _all_csr(x, y):
        return _smooth_csr(w, x, y, cols, width, step)
    return _smooth_gathered(w, x, y, cols, width, step)


def _smooth_gathered(
    w: sparse.csr_matrix, x: Any, y: Any, cols: Any, width: int, step: int
) -> np.ndarray:
    """:func:`smooth` on rows gathered step by step (dense inputs, or rows already gathered)."""
    out = np.zeros((w.shape[0], width), dtype=np.float32)
    where = slice(None) if cols is None else cols
    for start in range(0, w.shape[0], step):
        used, part = local_rows(w[start : start + step])
        out[start : start + step, where] = _weighted_sum(part, x, y, used)
    return out


def _weighted_sum(part: sparse.csr_matrix, x: Any, y: Any, used: np.ndarray) -> np.ndarray:
    """``part @ x[used]`` (or ``@ (x * y)[used]``) in float64, as a dense array."""
    xs = _rows(x, used)
    if y is not None:
        ys = _rows(y, used)
        xs = (
            xs.multiply(ys)
            if sparse.issparse(xs)
            else xs * (ys.toarray() if sparse.issparse(ys) else ys)
        )
    prod = sparse.csr_matrix(part, dtype=np.float64) @ xs
    return prod.toarray() if sparse.issparse(prod) else np.asarray(prod)


def _rows(x: Any, rows: np.ndarray) -> Any:
    return x.take(rows) if isinstance(x, Pieces) else take_rows(x, rows)


def _all_csr(x: Any, y: Any) -> bool:
    """Whether ``x`` (and ``y``) are :class:`Pieces` of sparse blocks only."""
    return all(
        isinstance(p, Pieces) and all(sparse.issparse(b) for b in p.blocks)
        for p in ((x,) if y is None else (x, y))
    )


def _canonical(block: Any) -> sparse.csr_matrix:
    """``block`` as CSR with sorted, unique column indices (a copy only when needed)."""
    block = sparse.csr_matrix(block)
    if not block.has_canonical_format:
        block = block.copy()
        block.sum_duplicates()
    return block


def _smooth_csr(
    w: sparse.csr_matrix, x: Pieces, y: Pieces | None, cols: Any, width: int, step: int
) -> np.ndarray:
    """:func:`smooth` straight from the sparse source blocks, without gathering rows.

    For each step of rows a float64 accumulator receives, block after block, every
    neighbour's stored values, weighted; the graph's sorted columns follow the blocks'
    order, so every sum adds its terms in the order of the gathered product. For a second
    moment the products ``x * y`` of the used rows are formed once per source block (float64)
    rather than once per neighbour visit. Only genes in ``cols`` count.
    """
    n_cols = x.blocks[0].shape[1]
    keep = np.arange(n_cols) if cols is None else np.asarray(cols, dtype=np.int64)
    col_map = np.full(n_cols, -1, dtype=np.int64)
    col_map[keep] = keep  # a kept gene's output column is its own column
    if not w.has_sorted_indices:
        w = w.sorted_indices()
    sources = []
    for k, bx in enumerate(x.blocks):
        pos = np.asarray(x.positions[k], dtype=np.int64)
        if y is None:
            sources.append((_canonical(bx), pos))
            continue
        px = sparse.csr_matrix(_canonical(bx)[pos], dtype=np.float64)
        py = sparse.csr_matrix(_canonical(y.blocks[k])[pos], dtype=np.float64)
        sources.append((_canonical(px.multiply(py)), np.arange(pos.size, dtype=np.int64)))
    bounds = np.cumsum([0] + [p.size for p in x.positions])
    data = w.data.astype(np.float64)
    indices = w.indices.astype(np.int64)
    out = np.zeros((w.shape[0], width), dtype=np.float32)
    for start in range(0, w.shape[0], step):
        stop = min(start + step, w.shape[0])
        acc = np.zeros((stop - start, width), dtype=np.float64)
        cursor = w.indptr[start:stop].astype(np.int64)
        ends = w.indptr[start + 1 : stop + 1].astype(np.int64)
        for k, (src, pos) in enumerate(sources):
            _accumulate(
                acc, cursor, ends, indices, data, int(bounds[k]), int(bounds[k + 1]), pos,
                src.indptr, src.indices, src.data, col_map,
            )  # fmt: skip
        out[start:stop] = acc
    return out


@numba.njit(cache=True, nogil=True)
def _accumulate(acc, cursor, ends, w_indices, w_data, lo, hi, pos, xp, xi, xd, col_map):  # noqa: PLR0913
    """Add the neighbours in gathered rows ``lo:hi`` (one source block) to ``acc``."""
    for i in range(acc.shape[0]):
        c = cursor[i]
        while c < ends[i] and w_indices[c] < hi:
            r = pos[w_indices[c] - lo]
            wv = w_data[c]
            for t in range(xp[r], xp[r + 1]):
                g = col_map[xi[t]]
                if g >= 0:
                    acc[i, g] += wv * np.float64(xd[t])
            c += 1
        cursor[i] = c
