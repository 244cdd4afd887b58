"""Open AnnData stores lazily (Dask arrays over the store's chunks) and read other formats."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import anndata as ad
import dask.array as da
import zarr
from anndata.experimental import read_dispatched, read_elem_lazy

from .._core import keys
from .._core.errors import InputError, StoreNotFoundError
from .._core.lineage import remember_stored
from .._core.settings import get_chunk_policy
from .format import check_store, open_group
from .journal import recover
from .location import Remote, location, location_of_store
from .tenx import read_10x_h5, read_10x_mtx

_LAZY_SLOTS = ("layers", "obsm", "varm", "obsp", "varp")


def open(  # noqa: A001
    store: str | Path,
    *,
    chunk_cells: int | None = None,
    order: str = "store",
    storage_options: dict[str, Any] | str | None = None,
) -> ad.AnnData:
    """Open an AnnData Zarr store lazily.

    ``X``, ``layers``, ``obsm``, ``obsp`` and the other matrices become Dask arrays over the
    store's chunks (sparse matrices stay sparse, as CSR row blocks); ``obs``, ``var`` and ``uns``
    are read into memory. Results written with :func:`dynadask.io.commit` go back into the store.

    Parameters
    ----------
    store
        Path of a store written by :func:`dynadask.io.convert` or anndata's ``write_zarr``,
        or its URL in an object store (``s3://bucket/atlas.zarr``).
    chunk_cells
        Cells per Dask block. By default the store's own chunking (recorded at conversion)
        or the chunk policy.
    order
        ``'store'``: the rows as stored (the AnnData is store-backed). ``'original'``: the
        cells in the user's order from before :func:`dynadask.io.reorder` (lazy fancy
        indexing; see :func:`dynadask.io.original_order`): that AnnData is not
        store-backed, results computed on it stay in memory. The two are the same for a
        store that was never reordered.
    storage_options
        fsspec options for a URL (``endpoint_url``, ``key``, ``secret``, …; a dict or JSON
        text), kept in memory for later commits to the bucket; by default those given
        before in this process, else ``AWS_ENDPOINT_URL`` and the credential variables.

    Returns
    -------
    anndata.AnnData
        The lazy AnnData; ``uns['dynadask']['store']`` records where it lives (path or URL).

    Raises
    ------
    FileNotFoundError
        If there is no store at ``store``.
    ValueError
        If ``store`` is not an AnnData Zarr store, or ``order`` is unknown.
    """
    if order not in ("store", "original"):
        raise InputError(f"order must be 'store' or 'original', got {order!r}")
    path = _checked(store, storage_options)
    recover(path)
    root = open_group(path)
    obs = ad.io.read_elem(root["obs"])
    var = ad.io.read_elem(root["var"])
    uns = read_uns(root["uns"]) if "uns" in root else {}
    rows = chunk_cells or root.attrs.get("dynadask", {}).get("chunk_cells")
    rows = rows or get_chunk_policy().rows_per_block(len(var), len(obs))
    slots: dict[str, Any] = {}
    for slot in _LAZY_SLOTS:
        if slot in root:
            slots[slot] = {k: _lazy(root[slot][k], rows) for k in root[slot].keys()}
    X = _lazy(root["X"], rows) if "X" in root else None
    adata = ad.AnnData(X=X, obs=obs, var=var, uns=uns, **slots)
    record = adata.uns.setdefault(keys.DYNADASK, {})
    record[keys.STORE] = str(path)
    record[keys.ORDER_ID] = root.attrs.get(keys.DYNADASK, {}).get(keys.ORDER_ID)
    record.setdefault(keys.STAGES, {})
    if order == "original":
        from .order import original_order  # io/order imports this module

        return original_order(adata)
    return adata


def _checked(store: Any, storage_options: Any) -> Any:
    """The store's location (a resolved path or a URL's Remote) after checking it."""
    path = check_store(location(store, storage_options))
    return path if isinstance(path, Remote) else path.resolve()


LAZY_ATTR = "dynadask-lazy"
"""Attribute of a cell-indexed array in ``uns`` that is read lazily (set by ``commit``)."""


LAZY_UNS_BYTES = 64 * 2**20
"""A dense array in ``uns`` larger than this is opened as a Dask array over the store."""


def is_large(array: Any) -> bool:
    """Whether an ``uns`` array is large enough to stay in the store (:data:`LAZY_UNS_BYTES`)."""
    return int(array.nbytes) > LAZY_UNS_BYTES


def read_uns(group: zarr.Group) -> dict[str, Any]:
    """Read ``uns`` into memory, except large arrays, which stay in the store as Dask arrays.

    Lazy are the arrays marked :data:`LAZY_ATTR` (cell-indexed results such as the per-cell
    gene Jacobians of ``dyn.vf.jacobian``, written by :func:`dynadask.io.commit` chunked by
    cells) and any dense array of more than :data:`LAZY_UNS_BYTES` (e.g. the trajectories of
    ``dyn.pd.fate`` from many cells: 10,000 cells x 30 dimensions x 500 points are 1.1 GiB),
    so that opening a store costs memory for its annotations, not for its results.
    """

    def callback(func: Any, elem_name: str, elem: Any, iospec: Any) -> Any:
        if isinstance(elem, zarr.Array) and (
            elem.attrs.get(LAZY_ATTR) or (iospec.encoding_type == "array" and is_large(elem))
        ):
            return lazy_array(elem)
        return func(elem)

    return read_dispatched(group, callback)


def lazy_array(elem: zarr.Array) -> da.Array:
    """A dense array of the store as a Dask array with its Zarr chunks' rows as blocks."""
    return _lazy(elem, int(elem.chunks[0]))


def _remember(x: da.Array, elem: zarr.Group) -> None:
    """Note where lazy CSR ``x`` is stored, for writers that reuse its structure."""
    try:
        where = location_of_store(elem.store)
    except AttributeError:  # an in-memory Zarr store: nothing to reuse
        return
    remember_stored(x, where, elem.path)


def _lazy(elem: zarr.Array | zarr.Group, rows: int) -> Any:
    """Read one matrix element lazily with row blocks of ``rows`` cells."""
    encoding = elem.attrs.get("encoding-type")
    if encoding in ("csr_matrix", "array"):
        shape = elem.shape if isinstance(elem, zarr.Array) else tuple(elem.attrs["shape"])
        chunks = (min(rows, max(shape[0], 1)),) + (-1,) * (len(shape) - 1)
        x = read_elem_lazy(elem, chunks=chunks)
        if encoding == "csr_matrix":
            _remember(x, elem)
        return x
    if encoding == "csc_matrix":
        return read_elem_lazy(elem)
    # data frames and other encodings in obsm are small: read them whole
    return ad.io.read_elem(elem)


def read_zarr(
    store: str | Path,
    *,
    lazy: bool = False,
    chunk_cells: int | None = None,
    order: str = "store",
    storage_options: dict[str, Any] | str | None = None,
) -> ad.AnnData:
    """Read an AnnData Zarr store, into memory or lazily.

    Parameters
    ----------
    store
        Path of the store, or its URL in an object store.
    lazy
        Return Dask arrays over the store's chunks (see :func:`open`) instead of reading
        everything into memory.
    chunk_cells
        Cells per Dask block when ``lazy``.
    order
        ``'store'`` (the rows as stored) or ``'original'`` (the order from before
        :func:`dynadask.io.reorder`; see :func:`open`).
    storage_options
        fsspec options for a URL (see :func:`open`).

    Returns
    -------
    anndata.AnnData
        The data.
    """
    if lazy:
        return open(store, chunk_cells=chunk_cells, order=order, storage_options=storage_options)
    if order not in ("store", "original"):
        raise InputError(f"order must be 'store' or 'original', got {order!r}")
    path = _checked(store, storage_options)
    recover(path)
    adata = ad.read_zarr(open_group(path) if isinstance(path, Remote) else path)
    if order == "original":
        from .order import original_order  # io/order imports this module

        adata = original_order(adata)
    return adata


def read_h5ad(filename: str | Path, backed: str | None = None) -> ad.AnnData:
    """Read an ``.h5ad`` file (anndata's reader; ``backed='r'`` keeps X on disk).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    return ad.read_h5ad(_existing(filename), backed=backed)


def read_loom(filename: str | Path, **kwargs: Any) -> ad.AnnData:
    """Read a ``.loom`` file (velocyto's output) with its layers into memory.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    """
    return ad.io.read_loom(_existing(filename), **kwargs)


def read(filename: str | Path, **kwargs: Any) -> ad.AnnData:
    """Read a file by its kind: ``.h5ad``, ``.loom``, a Zarr store, 10x ``.h5`` or an mtx folder.

    Parameters
    ----------
    filename
        Path of the file or folder.
    **kwargs
        Passed to the reader of that kind (``lazy=True`` for a Zarr store).

    Returns
    -------
    anndata.AnnData
        The data.

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the kind of file is not recognised.
    """
    path = _existing(filename)
    if path.is_dir() and ((path / "zarr.json").exists() or (path / ".zattrs").exists()):
        return read_zarr(path, **kwargs)
    if path.is_dir():
        return read_10x_mtx(path, **kwargs)
    suffix = "".join(path.suffixes[-1:]).lower()
    readers = {".h5ad": read_h5ad, ".loom": read_loom}
    if suffix in readers:
        return readers[suffix](path, **kwargs)
    if suffix == ".h5":
        return read_10x_h5(path, **kwargs)
    raise InputError(
        f"cannot tell the kind of {path}: expected .h5ad, .loom, .h5 (10x), a Zarr store "
        "or a 10x mtx folder"
    )


def _existing(filename: str | Path) -> Path:
    path = Path(filename)
    if not path.exists():
        raise StoreNotFoundError(f"no such file: {path}: check the path")
    return path


def is_lazy(x: Any) -> bool:
    """Return whether ``x`` is a Dask array."""
    return isinstance(x, da.Array)


__all__ = ["open", "read", "read_h5ad", "read_loom", "read_zarr", "is_lazy"]
del builtins
