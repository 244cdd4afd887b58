"""Write a per-row transform of a stored CSR matrix by value chunks, reusing its structure.

``x / s`` and ``log1p(x / s)`` (one factor per row, :class:`~dynadask._core.lineage.
RowTransform`) keep every stored value where it is: the result's row pointers and column
indices are the source's. Instead of building CSR row blocks, writing them as pieces and
assembling the pieces (two writes and a read of values and indices), each task reads a run
of the source's value chunks, transforms them with the factors of their rows and writes the
same run of the result's value chunks. The column indices are copied chunk by chunk (as
files when the source's chunks are encoded as the result's would be), the row pointers
once from the client; tasks read the pointers of their rows back from there, and the per-row
factors reach them once (:func:`dynadask._core.compute.share`). Writes are aligned with the
Zarr chunks, so tasks never share one.

The copy is checked as it goes: the general writer sorts each row's column indices, so a
source with an unsorted row is reported and the caller writes that matrix the general way.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import dask
import numpy as np
import zarr

from .._core.compute import share
from .._core.lineage import RowTransform
from .._core.settings import get_chunk_policy
from .format import COMPRESSORS, csr_attrs, open_group
from .writers import quiet_zarr

CHUNKS_PER_TASK = 8
"""Value chunks (of 4 MiB each) a task reads and writes: about 100 MB of work memory."""


def source_of(spec: RowTransform, shape: tuple[int, int]) -> zarr.Group | None:
    """The stored CSR group ``spec`` transforms, or ``None`` when it cannot be reused."""
    try:
        group = open_group(spec.location)[spec.key]
    except (KeyError, FileNotFoundError, OSError):
        return None
    if not isinstance(group, zarr.Group) or group.attrs.get("encoding-type") != "csr_matrix":
        return None
    if tuple(group.attrs.get("shape", ())) != tuple(shape) or len(spec.factors) != shape[0]:
        return None
    return group


def row_transform_tasks(
    root: zarr.Group, name: str, spec: RowTransform, source: zarr.Group, shape: tuple[int, int]
) -> list[Any]:
    """Create ``root[name]`` (CSR) and return the lazy tasks that fill its values and indices.

    Parameters
    ----------
    root
        The group written into (a store's root or a staging root).
    name
        The key of the new matrix (``'layers/X_spliced'``).
    spec
        The transform.
    source
        The stored CSR group it transforms (:func:`source_of`).
    shape
        The matrix's shape.

    Returns
    -------
    list
        Delayed tasks; each returns ``(kind, ok, first, last, stop)`` where ``kind`` is
        ``'data'`` or ``'indices'``; for the indices ``ok`` says whether each row's column
        indices are sorted within the task's range and ``first``/``last`` are its first and
        last index (checked across ranges by :func:`indices_sorted`).
    """
    indptr = np.asarray(source["indptr"][:], dtype=np.int64)
    total = int(indptr[-1])
    policy = get_chunk_policy()
    group = root.require_group(name, overwrite=True)
    group.attrs.update(csr_attrs(shape))
    steps = {"data": policy.zarr_elements(np.dtype(spec.dtype).itemsize)}
    steps["indices"] = policy.zarr_elements(4)
    with quiet_zarr():
        group.create_array(
            "indptr", data=indptr, chunks=(min(len(indptr), 2**20),), compressors=COMPRESSORS
        )
        for part, kind in (("data", spec.dtype), ("indices", np.int32)):
            group.create_array(
                part,
                shape=(total,),
                chunks=(max(min(steps[part], total), 1),),
                dtype=kind,
                compressors=COMPRESSORS,
            )
    dst = _location(root)
    same_files = _same_encoding(source["indices"], group["indices"], dst, spec.location)
    # the per-cell factors reach the tasks once (a shared file under a client), and each
    # task reads its rows' pointers from the indptr just written: slices of both inside the
    # tasks made the million-cell preprocess graph 77 MiB (the whole factors in each, 99.7)
    light = dataclasses.replace(spec, factors=np.empty(0))
    (factors,) = share([np.asarray(spec.factors)])
    tasks = []
    for part in ("data", "indices"):
        span = steps[part] * CHUNKS_PER_TASK
        for a in range(0, total, span):
            b = min(a + span, total)
            rows = (
                int(np.searchsorted(indptr, a, side="right")) - 1,
                int(np.searchsorted(indptr, b, side="left")),
            )
            if part == "data":
                task = dask.delayed(_transform_values, pure=False)(
                    light, factors, rows, dst, name, a, b
                )
            else:
                task = dask.delayed(_copy_indices, pure=False)(
                    spec.location, spec.key, rows, dst, name, a, b, same_files
                )
            tasks.append(task)
    return tasks


def indices_sorted(results: list[tuple], indptr_of: zarr.Group) -> bool:
    """Whether every row's column indices are sorted, from the index tasks' results."""
    parts = sorted((r for r in results if r[0] == "indices"), key=lambda r: r[4])
    if not all(r[1] for r in parts):
        return False
    if len(parts) < 2:
        return True
    starts = np.asarray(indptr_of["indptr"][:], dtype=np.int64)
    for left, right in zip(parts[:-1], parts[1:], strict=True):
        boundary = left[4]
        row_continues = not np.any(starts == boundary)
        if row_continues and left[3] > right[2]:
            return False
    return True


def _location(root: zarr.Group) -> Any:
    from .location import location_of_store

    return location_of_store(root.store)


def _same_encoding(src: zarr.Array, dst: zarr.Array, dst_where: Any, src_where: Any) -> bool:
    """Whether ``src``'s chunk files can be copied as ``dst``'s (local stores, same encoding)."""
    if not (isinstance(dst_where, Path) and isinstance(src_where, Path)):
        return False
    a, b = src.metadata.to_dict(), dst.metadata.to_dict()
    keep = ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "codecs", "fill_value")
    return all(a.get(k) == b.get(k) for k in keep)


def _row_pointers(dst: Any, name: str, rows: tuple[int, int]) -> np.ndarray:
    """Row pointers of rows ``rows[0]:rows[1]`` (and the next), from the result's indptr."""
    return np.asarray(open_group(dst)[f"{name}/indptr"][rows[0] : rows[1] + 1], dtype=np.int64)


def _transform_values(
    spec: RowTransform,
    factors: np.ndarray,
    rows: tuple[int, int],
    dst: Any,
    name: str,
    a: int,
    b: int,
) -> tuple:
    """Values ``a:b`` of the result: the source's, transformed with their rows' factors."""
    values = open_group(spec.location)[f"{spec.key}/data"][a:b]
    counts = np.diff(np.clip(_row_pointers(dst, name, rows), a, b))
    out = spec.values(values, np.repeat(np.asarray(factors[rows[0] : rows[1]]), counts))
    open_group(dst, mode="a")[f"{name}/data"][a:b] = out
    return ("data", True, 0, 0, b)


def _copy_indices(
    src_where: Any,
    src_key: str,
    rows: tuple[int, int],
    dst: Any,
    name: str,
    a: int,
    b: int,
    as_files: bool,
) -> tuple:
    """Column indices ``a:b`` of the result (the source's), checked sorted within rows."""
    ptr = _row_pointers(dst, name, rows)
    source = open_group(src_where)[f"{src_key}/indices"]
    idx = np.asarray(source[a:b])
    ok = _sorted_within_rows(idx, ptr, a, b)
    if as_files:
        step = source.chunks[0]
        for c in range(a // step, -(-b // step)):
            chunk = source.metadata.encode_chunk_key((c,))
            src_file = Path(src_where) / src_key / "indices" / chunk
            dst_file = Path(dst) / name / "indices" / chunk
            if src_file.exists():
                dst_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_file, dst_file)
    else:
        open_group(dst, mode="a")[f"{name}/indices"][a:b] = idx.astype(np.int32)
    first = int(idx[0]) if idx.size else 0
    last = int(idx[-1]) if idx.size else 0
    return ("indices", ok, first, last, b)


def _sorted_within_rows(idx: np.ndarray, ptr: np.ndarray, a: int, b: int) -> bool:
    """Whether ``idx`` (values ``a:b``) never decreases inside a row (rows cut by ``ptr``)."""
    if idx.size < 2:
        return True
    drops = np.diff(idx.astype(np.int64)) < 0
    starts = ptr[(ptr > a) & (ptr < b)] - a - 1  # a drop into a row's first value is allowed
    drops[starts] = False
    return not drops.any()
