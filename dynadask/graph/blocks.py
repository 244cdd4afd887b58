"""Row-block plumbing shared by every graph builder.

The chunk contract: cells are cut in row blocks, genes stay in one block. Every builder
turns its inputs into that shape with :func:`as_rows`, maps a kernel over aligned row blocks
with :func:`map_rows`, and sums per-gene statistics over row blocks with :func:`sum_rows`
(Dask's chunk / combine / aggregate split, as a tree of additions). :func:`take_columns`
keeps a subset of genes inside the task that reads each block, and :func:`gather_rows`
collects arbitrary cells into one task, one small take per row block that holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import singledispatch
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import share
from .._core.errors import InputError
from .._core.settings import get_chunk_policy
from ..kernels import moments as km

ArrayLike = Any  # numpy array, scipy sparse matrix or dask array

EMBED_BYTES = 16 * 2**20
"""In-memory arrays up to this size travel inside the task graph; larger ones are shared."""


@singledispatch
def as_rows(x: ArrayLike, rows: int | None = None) -> da.Array:
    """Return ``x`` as a Dask array cut in row blocks with all columns in one block.

    Parameters
    ----------
    x
        A numpy array, a scipy sparse matrix (kept sparse, as CSR blocks) or a Dask array.
        A large numpy array or any sparse matrix goes to the workers piece by piece
        (:func:`dynadask._core.compute.share`) instead of inside the task graph.
    rows
        Cells per block. By default the chunk policy decides from the number of columns;
        a Dask array keeps its row chunks unless ``rows`` is given.

    Returns
    -------
    dask.array.Array
        The same values, chunked ``(rows, n_cols)``.
    """
    x = np.asarray(x)
    n_cols = x.shape[1] if x.ndim > 1 else 1
    rows = rows or get_chunk_policy().rows_per_block(n_cols, x.shape[0])
    if x.nbytes <= EMBED_BYTES:
        return da.from_array(x, chunks=(rows,) + tuple(-1 for _ in x.shape[1:]))
    return _shared_pieces(x, rows, meta=np.empty((0,) * x.ndim, dtype=x.dtype))


@as_rows.register(sparse.spmatrix)
@as_rows.register(sparse.sparray)
def _(x: sparse.spmatrix, rows: int | None = None) -> da.Array:
    x = sparse.csr_matrix(x)
    rows = rows or get_chunk_policy().rows_per_block(x.shape[1], x.shape[0])
    return _shared_pieces(x, rows, meta=sparse.csr_matrix((0, 0), dtype=x.dtype))


def _shared_pieces(x: Any, rows: int, meta: Any) -> da.Array:
    """``x`` as a Dask array of row pieces handed to the workers one at a time."""
    blocks = [
        da.from_delayed(
            share([x[i : i + rows]])[0],
            shape=(min(rows, x.shape[0] - i),) + x.shape[1:],
            dtype=x.dtype,
            meta=meta,
        )
        for i in range(0, max(x.shape[0], 1), rows)
    ]
    return da.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def shared_rows(x: ArrayLike, rows: int) -> da.Array:
    """``x`` in row blocks of ``rows``, a numpy ``x`` handed to the workers outside the graph.

    For an array computed on again and again (an iterative fit): each compute then sends a
    small graph instead of embedding the values (:func:`dynadask._core.compute.share`).
    """
    if isinstance(x, da.Array):
        return as_rows(x, rows)
    x = np.asarray(x)
    return _shared_pieces(x, rows, meta=np.empty((0,) * x.ndim, dtype=x.dtype))


@as_rows.register(da.Array)
def _(x: da.Array, rows: int | None = None) -> da.Array:
    if x.ndim > 1 and x.numblocks[1] != 1:
        x = x.rechunk({1: -1})
    if rows is not None and x.chunks[0][0] != rows:
        x = x.rechunk({0: rows})
    return x


def align_rows(*arrays: ArrayLike) -> list[da.Array]:
    """Return the arrays as Dask arrays that share the row chunks of the first one.

    Raises
    ------
    ValueError
        If the arrays do not have the same number of rows.
    """
    first = as_rows(arrays[0])
    out = [first]
    for i, x in enumerate(arrays[1:], start=1):
        if x.shape[0] != first.shape[0]:
            raise InputError(
                f"array {i} has {x.shape[0]} rows but array 0 has {first.shape[0]}: "
                "all inputs of a row-wise step must describe the same cells"
            )
        y = as_rows(x)
        if y.chunks[0] != first.chunks[0]:
            y = y.rechunk({0: first.chunks[0]})
        out.append(y)
    return out


def map_rows(
    fn: Callable[..., np.ndarray],
    *arrays: ArrayLike,
    n_cols: int | None = None,
    dtype: Any = np.float32,
    **kwargs: Any,
) -> da.Array:
    """Apply ``fn`` to aligned row blocks of ``arrays`` and stack the dense results.

    Parameters
    ----------
    fn
        A kernel ``fn(*blocks, **kwargs) -> ndarray`` returning one row per input row.
    *arrays
        Inputs with the same number of rows (any array type).
    n_cols
        Number of columns of the output; ``None`` for a 1-D output (one value per row).
    dtype
        Output dtype.
    **kwargs
        Passed to ``fn`` (small objects only: large objects go through ``share``).

    Returns
    -------
    dask.array.Array
        Lazy result with the row chunks of the first input.
    """
    xs = align_rows(*arrays)
    chunks = (xs[0].chunks[0],) if n_cols is None else (xs[0].chunks[0], (n_cols,))
    index = "i" if n_cols is None else "ij"
    # every input is one block wide, so the column index of each input is contracted away
    args = []
    for n, x in enumerate(xs):
        args += [x, ("i",) + tuple(f"c{n}_{d}" for d in range(1, x.ndim))]
    return da.blockwise(
        fn,
        tuple(index),
        *args,
        adjust_chunks={"i": xs[0].chunks[0]},
        new_axes={} if n_cols is None else {"j": n_cols},
        concatenate=True,
        dtype=dtype,
        meta=np.empty((0,) * len(index), dtype=dtype),
        **kwargs,
    ).rechunk(chunks)


def sum_rows(
    fn: Callable[..., Any],
    *arrays: ArrayLike,
    split_every: int = 8,
    **kwargs: Any,
) -> dask.delayed:
    """Sum ``fn`` over aligned row blocks: a lazy per-gene reduction over cells.

    Parameters
    ----------
    fn
        ``fn(*blocks, **kwargs)`` returns a numpy array, a tuple of arrays or a dict of
        arrays (per-gene sufficient statistics of one row block, float64).
    *arrays
        Inputs with the same number of rows.
    split_every
        Fan-in of the tree of additions.
    **kwargs
        Passed to ``fn``.

    Returns
    -------
    dask.delayed.Delayed
        The sum over all row blocks, in the structure ``fn`` returns. Compute several at once
        with ``dask.compute``.
    """
    xs = align_rows(*arrays)
    per_block = [x.to_delayed().ravel() for x in xs]
    parts = [
        dask.delayed(fn, pure=True)(*blocks, **kwargs) for blocks in zip(*per_block, strict=True)
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(_add, pure=True)(*parts[i : i + split_every])
            for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def _add(*parts: Any) -> Any:
    first = parts[0]
    if isinstance(first, dict):
        return {k: _add(*(p[k] for p in parts)) for k in first}
    if isinstance(first, tuple):
        return tuple(_add(*items) for items in zip(*parts, strict=True))
    out = np.array(first, dtype=np.result_type(first, np.float64), copy=True)
    for p in parts[1:]:
        out += p
    return out


def take_columns(x: ArrayLike, cols: np.ndarray) -> ArrayLike:
    """Columns ``cols`` (positions or a boolean mask) of ``x``, for any array type.

    For a Dask array the selection is a per-block map, which Dask fuses with the task that
    reads the block: only the selected columns of a block ever stay in a worker's memory
    (a fancy index ``x[:, cols]`` keeps whole blocks until its separate take runs).
    """
    cols = np.asarray(cols)
    cols = np.flatnonzero(cols) if cols.dtype == bool else cols.astype(np.int64)
    if not isinstance(x, da.Array):
        return x[:, cols]
    x = as_rows(x)
    return x.map_blocks(
        _take_columns, cols, chunks=(x.chunks[0], (cols.size,)), dtype=x.dtype, meta=x._meta
    )


def _take_columns(block: Any, cols: np.ndarray) -> Any:
    if sparse.issparse(block):
        return sparse.csr_matrix(block)[:, cols]
    block = np.asarray(block)
    if block.ndim == 2 and cols.size > 1 and cols[0] >= 0 and np.all(cols[1:] > cols[:-1]):
        # increasing columns: a boolean selection writes the rows in C order directly
        # (several times faster than a fancy index, whose result is column-major)
        keep = np.zeros(block.shape[1], dtype=bool)
        keep[cols] = True
        return np.compress(keep, block, axis=1)
    return np.take(block, cols, axis=1)


def row_pieces(rows: np.ndarray, chunks: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
    """Split sorted cell indices by the row chunk holding them: ``(chunk, local rows)`` pairs."""
    bounds = np.concatenate([[0], np.cumsum(chunks)])
    owner = np.searchsorted(bounds, rows, side="right") - 1
    starts = np.flatnonzero(np.diff(owner, prepend=-1))
    ends = np.append(starts[1:], rows.size)
    return [
        (int(owner[a]), rows[a:b] - bounds[owner[a]]) for a, b in zip(starts, ends, strict=True)
    ]


def row_sources(x: da.Array, rows: np.ndarray) -> tuple[list[np.ndarray], list[Any]]:
    """The row blocks of ``x`` that hold ``rows`` (sorted), and the rows' positions in each.

    Returns the positions and the blocks as delayed objects, for a task that gathers the rows
    itself (:func:`take_gathered`) among other work, so the gathered rows never outlive it.
    """
    blocks = x.to_delayed().ravel()
    parts = row_pieces(np.asarray(rows, dtype=np.int64), x.chunks[0])
    return [p for _, p in parts], [blocks[c] for c, _ in parts]


def gather_rows(
    x: da.Array, rows: np.ndarray, cols: np.ndarray | None = None, dtype: Any = np.float64
) -> Any:
    """One lazy task with rows ``rows`` (sorted) and columns ``cols`` of ``x``, as ``dtype``.

    The task reads only the row blocks that hold the rows; sparse blocks give CSR, dense
    ones numpy (``dtype=None`` keeps the blocks' type). Blocks shared by several gathers
    are read once per compute. Every call makes a new key, so a gather made for one compute
    is never resubmitted by another.
    """
    positions, blocks = row_sources(x, rows)
    return dask.delayed(_gather, pure=False)(cols, dtype, positions, *blocks)


def take_gathered(
    cols: np.ndarray | None, dtype: Any, positions: list[np.ndarray], blocks: list[Any]
) -> Any:
    """Inside a task: the rows at ``positions`` of each block, stacked (see :func:`row_sources`)."""
    pieces = [km.take_rows(b, p, cols, dtype) for b, p in zip(blocks, positions, strict=True)]
    return km.stack_rows(pieces)


def _gather(cols: np.ndarray | None, dtype: Any, positions: list[np.ndarray], *blocks: Any) -> Any:
    return take_gathered(cols, dtype, positions, list(blocks))
