"""Parallel writers: Dask arrays into Zarr arrays in AnnData's encoding.

Dense arrays are stored block by block by the workers (Dask chunks aligned with Zarr chunks).
Sparse CSR arrays take two passes: each row block writes its own piece, then the pieces are
concatenated into the final ``data``/``indices`` arrays with chunk-aligned writes, and the
global ``indptr`` is assembled from the pieces' row pointers (one vector of n_cells). The
pieces are written unencoded (they are read back once and removed). A per-row transform of a
stored CSR matrix (``x / s``, ``log1p(x / s)``) skips the pieces: it is written value chunk
by value chunk with the stored matrix's indices and row pointers (:mod:`dynadask.io.rowwise`).
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr
from scipy import sparse

from .._core.compute import compute
from .._core.lineage import row_transform
from .._core.settings import get_chunk_policy
from .format import COMPRESSORS, DENSE_ATTRS, csr_attrs, open_group
from .location import location_of_store


@contextmanager
def quiet_zarr():
    """Silence zarr's notices about sharding defaults and consolidated metadata."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*autosharding.*")
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        yield


def zarr_rows(block_rows: int, row_bytes: int, target: int | None = None) -> int:
    """Return Zarr chunk rows that divide ``block_rows`` and hold about ``target`` bytes."""
    target = target or 4 * get_chunk_policy().zarr_chunk_bytes
    if block_rows * row_bytes <= target:
        return block_rows
    want = max(1, target // max(row_bytes, 1))
    for rows in range(want, 0, -1):
        if block_rows % rows == 0:
            return rows
    return 1


def regular_rows(x: da.Array) -> da.Array:
    """Rechunk ``x`` so that every row block but the last has the same size."""
    rows = x.chunks[0]
    if len(set(rows[:-1])) <= 1 and (len(rows) == 1 or rows[-1] <= rows[0]):
        return x
    return x.rechunk({0: max(rows)})


def create_dense(root: zarr.Group, key: str, x: da.Array | np.ndarray) -> zarr.Array:
    """Create an empty Zarr array under ``root[key]`` for ``x`` with anndata's dense encoding."""
    shape = tuple(int(s) for s in x.shape)
    block = x.chunks[0][0] if isinstance(x, da.Array) else max(shape[0], 1)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(x.dtype).itemsize
    chunks = (zarr_rows(max(block, 1), row_bytes),) + shape[1:]
    with quiet_zarr():
        # a dense result is rarely all zero in a chunk: skip zarr's check of every chunk
        arr = root.create_array(
            key,
            shape=shape,
            chunks=chunks,
            dtype=x.dtype,
            fill_value=0,
            overwrite=True,
            compressors=COMPRESSORS,
            config={"write_empty_chunks": True},
        )
    arr.attrs.update(DENSE_ATTRS)
    return arr


def store_dense(root: zarr.Group, key: str, x: da.Array) -> Any:
    """Return a lazy task that writes dense ``x`` block by block under ``root[key]``."""
    x = _whole_rows(regular_rows(x))
    target = create_dense(root, key, x)
    return da.store(x, target, lock=False, compute=False)


def _write_piece(block: Any, path: Any, key: str, index: int) -> tuple[int, np.ndarray]:
    block = sparse.csr_matrix(block)
    block.sort_indices()
    root = open_group(path, mode="a")
    with quiet_zarr():
        for name in ("data", "indices"):
            values = getattr(block, name)
            root.create_array(
                f"{key}/{index}/{name}",
                data=values,
                chunks=(max(len(values), 1),),
                overwrite=True,
                compressors=None,  # read back once and removed: not worth encoding
            )
    return block.nnz, block.indptr.astype(np.int64)


def stage_csr_pieces(root_path: Any, key: str, x: da.Array) -> list[Any]:
    """Return lazy tasks that write each row block of sparse ``x`` as a piece under ``key``."""
    return [
        dask.delayed(_write_piece, pure=False)(block, root_path, key, i)
        for i, block in enumerate(x.to_delayed().ravel())
    ]


def assemble_csr(
    root: zarr.Group,
    pieces_key: str,
    key: str,
    shape: tuple[int, int],
    dtype: Any,
    results: list[tuple[int, np.ndarray]],
) -> list[Any]:
    """Create the CSR group ``root[key]`` from written pieces; return the lazy copy tasks.

    Parameters
    ----------
    root
        The group holding the pieces and the target.
    pieces_key, key
        Where the pieces are and where the matrix goes.
    shape, dtype
        The matrix's shape and value dtype.
    results
        What each piece's writer returned: its number of stored values and row pointers.
    """
    nnz = np.array([n for n, _ in results], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(nnz)])
    indptr = np.concatenate(
        [ptr[:-1] + off for (_, ptr), off in zip(results, offsets[:-1], strict=True)]
        + [[offsets[-1]]]
    ).astype(np.int64)
    group = root.require_group(key, overwrite=True)
    group.attrs.update(csr_attrs(shape))
    with quiet_zarr():
        group.create_array(
            "indptr", data=indptr, chunks=(min(len(indptr), 2**20),), compressors=COMPRESSORS
        )
    tasks = []
    policy = get_chunk_policy()
    for name, kind in (("data", dtype), ("indices", np.int32)):
        pieces = [
            da.from_zarr(root[f"{pieces_key}/{i}/{name}"])[: int(n)] for i, n in enumerate(nnz)
        ]
        total = int(offsets[-1])
        step = policy.zarr_elements(np.dtype(kind).itemsize)
        joined = da.concatenate(pieces) if pieces else da.zeros((0,), dtype=kind)
        joined = joined.astype(kind).rechunk((step,))
        with quiet_zarr():
            target = group.create_array(
                name,
                shape=(total,),
                chunks=(max(min(step, total), 1),),
                dtype=kind,
                compressors=COMPRESSORS,
            )
        tasks.append(da.store(joined, target, lock=False, compute=False))
    return tasks


def write_arrays(
    root: zarr.Group,
    arrays: dict[str, da.Array],
    extra_tasks: list[Any] | tuple = (),
    waves: int | None = None,
) -> list[Any]:
    """Write lazy arrays under ``root`` in parallel: dense directly, sparse CSR via pieces.

    Everything pending (``extra_tasks`` too) runs in one compute; the sparse pieces are then
    assembled in a second one and removed. With ``waves``, the dense arrays are written
    ``waves`` row blocks at a time instead, one compute per wave after the rest.

    Parameters
    ----------
    root
        The Zarr group (the root of a local folder or of an object-store prefix).
    arrays
        Lazy arrays by key (``'layers/spliced'``, …); blocks may be numpy or scipy CSR.
    extra_tasks
        Other lazy values to compute in the first compute.
    waves
        Row blocks per wave for the dense arrays (``None``: all in the first compute). For
        results whose blocks read rows of many input blocks (moments): the scheduler runs
        input reads ahead of the work that frees them, so in one compute a worker comes to
        hold most of the inputs; a wave's compute holds only the blocks its rows use.

    Returns
    -------
    list
        The computed values of ``extra_tasks``.
    """
    from .rowwise import indices_sorted, row_transform_tasks, source_of

    path = location_of_store(root.store)
    tasks, sparse_jobs, reused, dense = list(extra_tasks), [], [], {}
    for name, x in arrays.items():
        spec = row_transform(x) if is_sparse(x) else None
        source = source_of(spec, x.shape) if spec is not None else None
        if source is not None:
            jobs = row_transform_tasks(root, name, spec, source, x.shape)
            reused.append((name, x, source, len(tasks), len(jobs)))
            tasks += jobs
        elif is_sparse(x):
            x = regular_rows(x) if x.numblocks[0] > 1 else x
            jobs = stage_csr_pieces(path, f"_pieces/{name}", x)
            sparse_jobs.append((name, x, len(tasks), len(jobs)))
            tasks += jobs
        elif waves:
            dense[name] = x
        else:
            tasks.append(store_dense(root, name, x))
    results = compute(*tasks) if tasks else []
    for wave in _waves(dense, root, waves or 1):
        compute(*wave)
    for name, x, source, i, n in reused:
        if not indices_sorted(list(results[i : i + n]), source):
            # a row of the source has unsorted column indices: write it the general way
            x = regular_rows(x) if x.numblocks[0] > 1 else x
            jobs = stage_csr_pieces(path, f"_pieces/{name}", x)
            results = list(results) + list(compute(*jobs))
            sparse_jobs.append((name, x, len(results) - len(jobs), len(jobs)))
    second = [
        assemble_csr(root, f"_pieces/{name}", name, x.shape, x.dtype, list(results[i : i + n]))
        for name, x, i, n in sparse_jobs
    ]
    if second:
        compute(*[t for group in second for t in group])
    if "_pieces" in root:
        del root["_pieces"]
    return list(results[: len(extra_tasks)])


def _waves(arrays: dict[str, da.Array], root: zarr.Group, blocks: int) -> Iterator[list[Any]]:
    """Lazy writes of ``arrays`` (dense), ``blocks`` row blocks of each at a time."""
    if not arrays:
        return
    prepared = {name: _whole_rows(regular_rows(x)) for name, x in arrays.items()}
    targets = {name: create_dense(root, name, x) for name, x in prepared.items()}
    bounds = np.concatenate([[0], np.cumsum(next(iter(prepared.values())).chunks[0])])
    for first in range(0, bounds.size - 1, blocks):
        start, stop = int(bounds[first]), int(bounds[min(first + blocks, bounds.size - 1)])
        yield [
            da.store(
                x[start:stop],
                targets[name],
                regions=(slice(start, stop),),
                lock=False,
                compute=False,
            )
            for name, x in prepared.items()
        ]


def _whole_rows(x: da.Array) -> da.Array:
    """``x`` with each row block one chunk across its other axes."""
    if x.ndim > 1 and x.numblocks[1] != 1:
        return x.rechunk({i: -1 for i in range(1, x.ndim)})
    return x


def is_sparse(x: da.Array) -> bool:
    """Return whether the blocks of Dask array ``x`` are scipy sparse matrices."""
    return sparse.issparse(getattr(x, "_meta", None))


def remove(path: Path) -> None:
    """Remove a file or folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def remove_settled(path: Path, quiet: float = 1.0, limit: float = 60.0) -> None:
    """Remove a folder that tasks of a failed compute may still be writing into.

    When a task fails, the local scheduler raises at once while other tasks of the same
    compute are still running; their writes can bring the folder back. Remove it, and
    again, until it has stayed away for ``quiet`` seconds (at most ``limit`` seconds).
    """
    start = time.monotonic()
    remove(path)
    gone_since = time.monotonic()
    while time.monotonic() - gone_since < quiet and time.monotonic() - start < limit:
        time.sleep(0.05)
        if path.exists():
            remove(path)
            gone_since = time.monotonic()
