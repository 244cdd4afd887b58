"""Convert h5ad, loom and Zarr files into a row-chunked AnnData Zarr store, streaming.

Matrices are never loaded whole: a CSR matrix is copied array by array in chunk-aligned
ranges; dense, CSC and loom matrices are read in row blocks, made sparse, and written by the
parallel CSR writer. The store is built in a temporary folder and renamed into place at the
end, so a failed conversion leaves nothing at the destination.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anndata as ad
import dask
import dask.array as da
import h5py
import numpy as np
import pandas as pd
import zarr
from scipy import sparse

from .._core.errors import InputError, StoreExistsError, StoreNotFoundError
from .._core.settings import get_chunk_policy
from .format import (
    ANNDATA_ATTRS,
    COMPRESSORS,
    DICT_ATTRS,
    check_store,
    consolidate,
    csr_attrs,
    open_group,
    write_elem,
)
from .journal import staging_folders, store_lock
from .location import Remote, is_url, location, location_of_store
from .objectstore import remove_prefix
from .writers import quiet_zarr, remove, write_arrays

_SMALL = ("obsm", "varm", "obsp", "varp", "uns")


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    chunk_cells: int | None = None,
    overwrite: bool = False,
    storage_options: dict[str, Any] | str | None = None,
) -> Path | str:
    """Convert an ``.h5ad``, ``.loom`` or AnnData Zarr file into a dynadask store.

    Parameters
    ----------
    src
        The source file (or Zarr folder), on a local or shared file system.
    dst
        The store to create: a folder (by convention ending in ``.zarr``) or an object-store
        URL such as ``s3://bucket/atlas.zarr``.
    chunk_cells
        Cells per row block (Dask blocks when the store is opened). By default the chunk
        policy picks it from the number of genes.
    overwrite
        Replace an existing store at ``dst``.
    storage_options
        fsspec options for a URL (``endpoint_url``, ``key``, ``secret``, …; a dict or JSON
        text), remembered for later calls on the same bucket; by default those given before,
        else ``AWS_ENDPOINT_URL`` and the usual credential variables.

    Returns
    -------
    pathlib.Path or str
        The path of the new store (its URL for an object store).

    Raises
    ------
    FileNotFoundError
        If ``src`` does not exist.
    dynadask.StoreExistsError
        If ``dst`` exists and ``overwrite`` is False.
    ValueError
        If ``src`` is not a kind of file this reads, or its matrices disagree in shape.
    """
    if is_url(src):
        raise InputError(
            f"cannot convert from {src}: the source must be a local or shared-file-system "
            "file; copy it there first (the store itself may be a URL)"
        )
    src = Path(src)
    target = location(dst, storage_options)
    if not src.exists():
        raise StoreNotFoundError(f"no such file: {src}: check the input path")
    if isinstance(target, Remote):
        return _convert_remote(src, target, chunk_cells, overwrite)
    dst = target
    if dst.exists() and not overwrite:
        raise StoreExistsError(f"{dst} exists: pass overwrite=True to replace it")
    tmp = dst.with_name(f"{dst.name}.converting-{os.getpid()}")
    remove(tmp)
    try:
        source = _open_source(src)
        n_obs, n_vars = len(source.obs), len(source.var)
        rows = chunk_cells or get_chunk_policy().rows_per_block(n_vars, n_obs)
        _write_store(source, tmp, rows)
        with store_lock(dst):
            for folder in staging_folders(dst.resolve()):
                remove(folder)  # a killed commit of the store being replaced
            remove(dst)
            os.replace(tmp, dst)
    finally:
        remove(tmp)
    return dst


def _convert_remote(src: Path, dst: Remote, chunk_cells: int | None, overwrite: bool) -> str:
    """Write the store in place under its prefix; it is marked an AnnData store last.

    An object store has no rename, so the store is written where it stays; the root's
    ``encoding-type: anndata`` (which :func:`dynadask.io.open` checks) is written in the
    final metadata write, and a failure removes what was written.
    """
    if dst.exists() and not overwrite:
        raise StoreExistsError(f"{dst} exists: pass overwrite=True to replace it")
    source = _open_source(src)
    rows = chunk_cells or get_chunk_policy().rows_per_block(len(source.var), len(source.obs))
    with store_lock(dst):
        for folder in staging_folders(dst):
            remove_prefix(folder)  # a killed commit of the store being replaced
        remove_prefix(dst)
        try:
            _write_store(source, dst, rows)
        except BaseException:
            remove_prefix(dst)
            raise
    return dst.url


class _Source:
    """What a source file holds: annotations in memory, matrices as row-block readers."""

    def __init__(self, obs: pd.DataFrame, var: pd.DataFrame) -> None:
        self.obs, self.var = obs, var
        self.small: dict[str, Any] = {}
        # key -> ("csr", reader of 1-D arrays) or ("rows", reader of row blocks)
        self.matrices: dict[str, tuple[str, Any]] = {}


def _open_source(src: Path) -> _Source:
    if src.is_dir():
        check_store(src)
        return _from_anndata(zarr.open_group(str(src), mode="r"), src, "zarr")
    if src.suffix == ".h5ad":
        with h5py.File(src, "r") as f:
            return _from_anndata(f, src, "h5")
    if src.suffix == ".loom":
        return _from_loom(src)
    raise InputError(f"cannot convert {src}: expected a .h5ad or .loom file or a Zarr store")


def _from_anndata(root: Any, src: Path, kind: str) -> _Source:
    source = _Source(ad.io.read_elem(root["obs"]), ad.io.read_elem(root["var"]))
    for slot in _SMALL:
        if slot in root:
            source.small[slot] = ad.io.read_elem(root[slot])
    names = (["X"] if "X" in root else []) + [f"layers/{k}" for k in root.get("layers", {})]
    for name in names:
        elem = root[name]
        encoding = elem.attrs.get("encoding-type")
        sparse_encoded = encoding in ("csr_matrix", "csc_matrix")
        shape = tuple(elem.attrs["shape"]) if sparse_encoded else elem.shape
        _check_shape(name, shape, source)
        if encoding == "csr_matrix":
            source.matrices[name] = ("csr", (src, kind, name, shape, elem["data"].dtype))
        else:
            source.matrices[name] = ("rows", (src, kind, name, shape, _dtype(elem)))
    return source


def _dtype(elem: Any) -> np.dtype:
    return elem["data"].dtype if "data" in getattr(elem, "keys", lambda: [])() else elem.dtype


def _from_loom(src: Path) -> _Source:
    with h5py.File(src, "r") as f:
        n_vars, n_obs = f["matrix"].shape
        obs = _loom_attrs(f["col_attrs"], ("CellID", "obs_names", "cell_names"), n_obs)
        var = _loom_attrs(f["row_attrs"], ("Gene", "var_names", "gene_names"), n_vars)
        source = _Source(obs, var)
        source.matrices["X"] = ("rows", (src, "loom", "matrix", (n_obs, n_vars), f["matrix"].dtype))
        for key in f.get("layers", {}):
            _check_shape(f"layers/{key}", f["layers"][key].shape[::-1], source)
            shape = (n_obs, n_vars)
            source.matrices[f"layers/{key}"] = (
                "rows",
                (src, "loom", f"layers/{key}", shape, f["layers"][key].dtype),
            )
    return source


def _loom_attrs(group: h5py.Group, index_keys: tuple[str, ...], n: int) -> pd.DataFrame:
    data = {}
    for key in group:
        values = group[key][()]
        if values.ndim != 1 or len(values) != n:
            continue
        if values.dtype.kind in "SO":
            values = np.array([v.decode() if isinstance(v, bytes) else v for v in values])
        data[key] = values
    frame = pd.DataFrame(data)
    for key in index_keys:
        if key in frame:
            frame.index = frame.pop(key).astype(str).values
            break
    else:
        frame.index = np.arange(n).astype(str)
    return frame


def _check_shape(name: str, shape: tuple[int, ...], source: _Source) -> None:
    want = (len(source.obs), len(source.var))
    if tuple(shape) != want:
        raise InputError(
            f"{name} has shape {tuple(shape)} but obs x var is {want}: the file is inconsistent"
        )


def _write_store(source: _Source, path: Path | Remote, rows: int) -> None:
    root = open_group(path, mode="w")
    root.attrs.update({"dynadask": {"chunk_cells": int(rows)}})
    with quiet_zarr():
        write_elem(root, "obs", source.obs)
        write_elem(root, "var", source.var)
        for slot in ("layers", *_SMALL):
            if slot not in source.small:
                write_elem(root, slot, {})
        for slot, value in source.small.items():
            write_elem(root, slot, value)
    copies, arrays = [], {}
    for name, (how, spec) in source.matrices.items():
        if how == "csr":
            copies += _copy_csr_tasks(root, name, spec)
        else:
            arrays[name] = _row_blocks(spec, rows)
    write_arrays(root, arrays, copies)
    root.require_group("layers").attrs.update(DICT_ATTRS)
    root.attrs.update(ANNDATA_ATTRS)  # last: a store cut short is not taken for one
    consolidate(path)


def _open_array(src: Path, kind: str, key: str) -> Any:
    if kind == "zarr":
        return zarr.open_group(str(src), mode="r")[key]
    return h5py.File(src, "r")[key]


def _copy_range(src: Path, kind: str, key: str, dst: Any, name: str, start: int, stop: int) -> int:
    values = _open_array(src, kind, key)[start:stop]
    target = open_group(dst, mode="a")[name]
    target[start:stop] = values.astype(target.dtype, copy=False)
    return stop - start


def _copy_csr_tasks(root: zarr.Group, name: str, spec: tuple) -> list[Any]:
    """Copy a CSR group's three arrays in chunk-aligned ranges, one task a chunk."""
    src, kind, key, shape, dtype = spec
    group = root.require_group(name)
    group.attrs.update(csr_attrs(shape))
    dst = location_of_store(root.store)
    tasks = []
    for part in ("data", "indices", "indptr"):
        source = _open_array(src, kind, f"{key}/{part}")
        length, item = source.shape[0], np.dtype(source.dtype)
        if part == "indices" and item.kind in "iu" and item.itemsize > 4 and shape[1] < 2**31:
            item = np.dtype(np.int32)  # as dynadask writes every CSR: half the bytes to read
        step = get_chunk_policy().zarr_elements(item.itemsize)
        with quiet_zarr():
            group.create_array(
                part,
                shape=(length,),
                chunks=(max(min(step, length), 1),),
                dtype=item,
                compressors=COMPRESSORS,
            )
        for start in range(0, length, step):
            stop = min(start + step, length)
            tasks.append(
                dask.delayed(_copy_range, pure=False)(
                    src, kind, f"{key}/{part}", dst, f"{name}/{part}", start, stop
                )
            )
    return tasks


def _read_rows(spec: tuple, start: int, stop: int) -> sparse.csr_matrix:
    src, kind, key, _, _ = spec
    if kind == "loom":
        with h5py.File(src, "r") as f:
            return sparse.csr_matrix(f[key][:, start:stop].T)
    if kind == "h5":
        with h5py.File(src, "r") as f:
            return _rows_of(f[key], start, stop)
    return _rows_of(zarr.open_group(str(src), mode="r")[key], start, stop)


def _rows_of(elem: Any, start: int, stop: int) -> sparse.csr_matrix:
    if elem.attrs.get("encoding-type") == "csc_matrix":
        return sparse.csr_matrix(ad.io.sparse_dataset(elem)[start:stop])
    return sparse.csr_matrix(elem[start:stop])


def _row_blocks(spec: tuple, rows: int) -> da.Array:
    _, _, _, shape, dtype = spec
    meta = sparse.csr_matrix((0, 0), dtype=dtype)
    blocks = [
        da.from_delayed(
            dask.delayed(_read_rows, pure=True)(spec, i, min(i + rows, shape[0])),
            shape=(min(rows, shape[0] - i), shape[1]),
            dtype=dtype,
            meta=meta,
        )
        for i in range(0, shape[0], rows)
    ]
    return da.concatenate(blocks, axis=0)
