"""Row permutations on one block: bucket rows by destination chunk, place them, chunk spread.

A permutation is given as ``order`` (new row ``r`` holds old row ``order[r]``) or as its
inverse ``dest`` (old row ``i`` goes to new row ``dest[i]``). Blocks are numpy arrays or
scipy CSR matrices with every column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from .._core.errors import InputError


def inverse(order: np.ndarray) -> np.ndarray:
    """Return the inverse permutation of ``order`` (int64).

    Raises
    ------
    ValueError
        If ``order`` is not a permutation of ``0 .. n-1``.
    """
    order = np.asarray(order)
    n = order.size
    if order.ndim != 1 or (n and (order.dtype.kind not in "iu" or order.min() < 0)):
        raise InputError("order must be a 1-D array of non-negative integer row positions")
    if n and order.max() >= n:
        raise InputError(f"order has position {int(order.max())} but there are only {n} rows")
    inv = np.full(n, -1, dtype=np.int64)
    inv[order] = np.arange(n, dtype=np.int64)
    if n and (inv < 0).any():
        raise InputError("order repeats some rows and misses others: it must be a permutation")
    return inv


def bucket_rows(
    block: Any, dest: np.ndarray, bounds: np.ndarray, columns: np.ndarray | None = None
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Sort the rows of ``block`` by destination and cut them by destination chunk.

    Parameters
    ----------
    block
        Rows of one input chunk (numpy or scipy sparse).
    dest
        The new row of each of these rows.
    bounds
        Row boundaries of the output chunks (``0, c, 2c, …, n``).
    columns
        For a cells x cells matrix, the new position of every column (the inverse
        permutation): column indices are mapped through it and kept sorted in each row.

    Returns
    -------
    tuple
        The rows in destination order (CSR with sorted indices, or numpy), their
        destinations, and ``offsets`` (``len(bounds)`` values): the rows bound for output
        chunk ``j`` are ``offsets[j]:offsets[j + 1]``.
    """
    dest = np.asarray(dest, dtype=np.int64)
    by_dest = np.argsort(dest, kind="stable")
    dest = dest[by_dest]
    if sparse.issparse(block):
        rows = sparse.csr_matrix(block)[by_dest]
        if columns is not None:
            rows = sparse.csr_matrix(
                (rows.data, columns[rows.indices].astype(rows.indices.dtype), rows.indptr),
                shape=rows.shape,
            )
        rows.sort_indices()
    else:
        rows = np.ascontiguousarray(np.asarray(block)[by_dest])
        if columns is not None:
            out = np.empty_like(rows)
            out[:, columns] = rows
            rows = out
    offsets = np.searchsorted(dest, bounds, side="left").astype(np.int64)
    return rows, dest, offsets


def place_rows(pieces: list[Any], dests: list[np.ndarray], start: int, n_rows: int) -> Any:
    """Stack the pieces bound for one output chunk and put every row at its place.

    Parameters
    ----------
    pieces
        Row pieces (all numpy or all scipy CSR) from the input chunks.
    dests
        The new (global) row of each piece's rows.
    start, n_rows
        The output chunk's first row and its number of rows.

    Returns
    -------
    numpy.ndarray or scipy.sparse.csr_matrix
        The output chunk, rows in order.

    Raises
    ------
    ValueError
        If the pieces do not fill the chunk exactly once.
    """
    local = np.concatenate(dests) - start if dests else np.zeros(0, dtype=np.int64)
    if local.size != n_rows or (n_rows and np.bincount(local, minlength=n_rows).max() != 1):
        raise InputError(f"the pieces hold {local.size} rows for an output chunk of {n_rows}")
    where = np.argsort(local, kind="stable")
    if pieces and sparse.issparse(pieces[0]):
        stacked = sparse.vstack(pieces, format="csr")
        out = stacked[where]
        out.sort_indices()
        return out
    stacked = np.concatenate(pieces, axis=0)
    return np.ascontiguousarray(stacked[where])


def sorted_indices(block: Any) -> Any:
    """``block`` with the column indices of each row sorted (CSR); dense blocks as they are."""
    if not sparse.issparse(block):
        return block
    block = sparse.csr_matrix(block, copy=True)
    block.sort_indices()
    return block


def chunk_pairs(
    block: Any, start: int, bounds: np.ndarray, dest: np.ndarray | None = None
) -> np.ndarray:
    """The (row chunk, neighbour chunk) pairs of a block of a cells x cells graph.

    Parameters
    ----------
    block
        Rows ``start …`` of the graph (scipy sparse); only its pattern is used.
    start
        The block's first row.
    bounds
        Row boundaries of the chunks.
    dest
        A permutation to measure under (each cell's new row), or ``None`` for the stored
        order. Each row counts its own chunk too (a gather always reads it).

    Returns
    -------
    numpy.ndarray
        Unique codes ``row_chunk * n_chunks + neighbour_chunk`` (int64).
    """
    g = sparse.csr_matrix(block)
    n_chunks = len(bounds) - 1
    rows = np.arange(start, start + g.shape[0], dtype=np.int64)
    cols = g.indices.astype(np.int64)
    if dest is not None:
        rows, cols = dest[rows], dest[cols]
    row_chunk = np.searchsorted(bounds, rows, side="right") - 1
    col_chunk = np.searchsorted(bounds, cols, side="right") - 1
    per_entry = np.repeat(row_chunk, np.diff(g.indptr))
    codes = np.concatenate([per_entry * n_chunks + col_chunk, row_chunk * (n_chunks + 1)])
    return np.unique(codes)


def spread_of(codes: np.ndarray, n_chunks: int) -> float:
    """Mean over row chunks of the number of chunks their neighbourhoods lie in."""
    if n_chunks == 0:
        return 0.0
    counts = np.bincount(np.asarray(codes, dtype=np.int64) // n_chunks, minlength=n_chunks)
    return float(counts.mean())


def permute_knn_indices(indices: np.ndarray, order: np.ndarray, dest: np.ndarray) -> np.ndarray:
    """Reorder a ``(n_cells, k)`` table of cell positions: rows moved and values renamed."""
    indices = np.asarray(indices)
    return dest[indices[order]].astype(indices.dtype)
