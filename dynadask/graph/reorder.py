"""Permute the rows of lazy arrays out of core: a two-phase bucket pass through scratch files.

Under a random permutation every output chunk needs rows of every input chunk, so rows are
moved in two phases, and the bulk data goes through files in a scratch folder, never
through the scheduler:

1. each input row chunk is read once, its rows sorted by destination and written as one
   set of ``.npy`` files (``<folder>/<i>.<part>.npy``); the task returns only the offsets
   of the rows (and stored values) bound for each output chunk;
2. each output chunk reads its rows out of every input chunk's files (memory-mapped
   slices), stacks them and puts every row at its place.

No task holds more than about two row chunks. The caller owns the scratch folder (creates
it beside the store, removes it afterwards).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import share
from ..kernels import reorder as kr
from .blocks import as_rows


def chunk_bounds(n_rows: int, rows: int) -> np.ndarray:
    """Row boundaries ``0, rows, 2 rows, …, n_rows`` of regular chunks."""
    return np.append(np.arange(0, n_rows, max(rows, 1), dtype=np.int64), n_rows)


def permute_rows(
    x: da.Array,
    dest: np.ndarray,
    bounds: np.ndarray,
    folder: Path,
    *,
    columns: Any = None,
) -> da.Array:
    """Lazy ``x`` with old row ``i`` moved to row ``dest[i]``, in output chunks ``bounds``.

    Parameters
    ----------
    x
        Lazy rows (numpy or scipy sparse blocks, all columns in one block).
    dest
        New row of every old row (the inverse of the order): numpy, or a delayed value of it
        shared with the workers once (:func:`dynadask._core.compute.share`); each task takes
        its rows' part itself, so the graph never holds a slice of it per chunk.
    bounds
        Row boundaries of the output chunks.
    folder
        Scratch folder for this array's pieces (created by the phase-1 tasks).
    columns
        For a cells x cells matrix: ``dest`` again (or a delayed value of it, shared with
        the workers once), so that column ``j`` becomes column ``dest[j]``.

    Returns
    -------
    dask.array.Array
        The permuted array, chunked by ``bounds``; computing it runs both phases.
    """
    x = as_rows(x)
    starts = np.concatenate([[0], np.cumsum(x.chunks[0])]).astype(np.int64)
    is_sparse = sparse.issparse(x._meta)
    if isinstance(dest, np.ndarray):
        (dest,) = share([dest])
    written = [
        dask.delayed(_bucket_to_files, pure=False)(
            block,
            dest,
            (int(starts[i]), int(starts[i + 1])),
            bounds,
            columns,
            str(folder),
            i,
        )
        for i, block in enumerate(x.to_delayed().ravel())
    ]
    meta = sparse.csr_matrix((0, 0), dtype=x.dtype) if is_sparse else x._meta
    blocks = []
    for j in range(len(bounds) - 1):
        start, stop = int(bounds[j]), int(bounds[j + 1])
        shape = (stop - start,) + tuple(x.shape[1:])
        task = dask.delayed(_gather_from_files, pure=False)(
            written, str(folder), j, start, shape, np.dtype(x.dtype).str, is_sparse
        )
        blocks.append(da.from_delayed(task, shape=shape, dtype=x.dtype, meta=meta))
    if not blocks:
        return x
    return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def _bucket_to_files(
    block: Any,
    dest: np.ndarray,
    span: tuple[int, int],
    bounds: np.ndarray,
    columns: Any,
    folder: str,
    i: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Phase 1: sort one input chunk (rows ``span`` of ``dest``) by destination, write it."""
    mine = np.asarray(dest[span[0] : span[1]])
    rows, dest, offsets = kr.bucket_rows(block, mine, bounds, columns)
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    np.save(path / f"{i}.dest.npy", dest)
    if sparse.issparse(rows):
        np.save(path / f"{i}.data.npy", rows.data)
        np.save(path / f"{i}.indices.npy", rows.indices)
        np.save(path / f"{i}.indptr.npy", rows.indptr.astype(np.int64))
        return offsets, rows.indptr[offsets].astype(np.int64)
    np.save(path / f"{i}.values.npy", rows)
    return offsets, None


def _gather_from_files(
    written: list[tuple[np.ndarray, np.ndarray | None]],
    folder: str,
    j: int,
    start: int,
    shape: tuple[int, ...],
    dtype: str,
    is_sparse: bool,
) -> Any:
    """Phase 2: read output chunk ``j``'s rows out of every input chunk's files."""
    path = Path(folder)
    pieces, dests = [], []
    for i, (offsets, stored) in enumerate(written):
        r0, r1 = int(offsets[j]), int(offsets[j + 1])
        if r1 == r0:
            continue
        dests.append(np.array(np.load(path / f"{i}.dest.npy", mmap_mode="r")[r0:r1]))
        if is_sparse:
            v0, v1 = int(stored[j]), int(stored[j + 1])
            indptr = np.array(np.load(path / f"{i}.indptr.npy", mmap_mode="r")[r0 : r1 + 1])
            data = np.array(np.load(path / f"{i}.data.npy", mmap_mode="r")[v0:v1])
            indices = np.array(np.load(path / f"{i}.indices.npy", mmap_mode="r")[v0:v1])
            pieces.append(
                sparse.csr_matrix((data, indices, indptr - indptr[0]), shape=(r1 - r0, shape[1]))
            )
        else:
            pieces.append(np.array(np.load(path / f"{i}.values.npy", mmap_mode="r")[r0:r1]))
    if not pieces:
        if is_sparse:
            return sparse.csr_matrix(shape, dtype=dtype)
        return np.zeros(shape, dtype=dtype)
    out = kr.place_rows(pieces, dests, start, shape[0])
    return out.astype(dtype, copy=False)


def spread_codes(graph: Any, bounds: np.ndarray, dest: Any = None, split_every: int = 8) -> Any:
    """Lazy (row chunk, neighbour chunk) pairs of a cells x cells graph (see ``chunk_pairs``).

    Parameters
    ----------
    graph
        The kNN graph (scipy sparse or a Dask array of sparse row blocks).
    bounds
        Row boundaries of the chunks to measure with.
    dest
        A permutation to measure under (each cell's new row; a delayed value is fine), or
        ``None`` for the stored order.
    split_every
        Fan-in of the tree of unions.

    Returns
    -------
    dask.delayed.Delayed
        The unique pair codes; :func:`dynadask.kernels.reorder.spread_of` turns them into
        the mean number of chunks a chunk's neighbourhoods lie in.
    """
    if not isinstance(graph, da.Array):
        return dask.delayed(kr.chunk_pairs, pure=True)(sparse.csr_matrix(graph), 0, bounds, dest)
    graph = as_rows(graph)
    starts = np.concatenate([[0], np.cumsum(graph.chunks[0])]).astype(np.int64)
    parts = [
        dask.delayed(kr.chunk_pairs, pure=True)(block, int(starts[i]), bounds, dest)
        for i, block in enumerate(graph.to_delayed().ravel())
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(_union, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _union(*codes: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate(codes))
