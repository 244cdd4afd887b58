"""AnnData's on-disk encoding in Zarr v3: open stores, encoding attributes, validation."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import zarr
from zarr.codecs import ZstdCodec

from .._core.errors import StoreError, StoreNotFoundError
from .location import Remote, location

ANNDATA_ATTRS = {"encoding-type": "anndata", "encoding-version": "0.1.0"}
DENSE_ATTRS = {"encoding-type": "array", "encoding-version": "0.2.0"}
DICT_ATTRS = {"encoding-type": "dict", "encoding-version": "0.1.0"}
ZARR_FORMAT = 3

COMPRESSORS = (ZstdCodec(level=1),)
"""The codec of every array dynadask writes: zstd at level 1.

Zarr's default (zstd at its default level, 3) compresses float32 moments and velocities at
about 130 MB per CPU second; level 1 at 380-440 MB/s with the same ratio (0.56 for ``M_s``,
0.63 for ``velocity_S``), and decompresses faster too (benchmarks/README.md, *Store I/O*).
"""


def csr_attrs(shape: tuple[int, int]) -> dict[str, Any]:
    """Return the attributes anndata writes on a CSR matrix group."""
    return {
        "encoding-type": "csr_matrix",
        "encoding-version": "0.1.0",
        "shape": [int(s) for s in shape],
    }


def check_store(path: str | Path | Remote) -> Any:
    """Return ``path``'s location after checking that it is an AnnData Zarr store.

    A URL (``s3://bucket/atlas.zarr``) gives a :class:`~dynadask.io.location.Remote`,
    anything else a ``Path``.

    Raises
    ------
    FileNotFoundError
        If nothing exists at ``path``.
    ValueError
        If ``path`` is not a Zarr group written in AnnData's format.
    """
    path = location(path)
    if isinstance(path, Remote):
        return _check_remote(path)
    if not path.exists():
        raise StoreNotFoundError(
            f"no store at {path}: convert a file first with dyn.io.convert(src, {str(path)!r})"
        )
    meta = path / "zarr.json"
    if meta.is_file():
        attrs = json.loads(meta.read_text()).get("attributes", {})
    elif (path / ".zattrs").is_file():
        attrs = json.loads((path / ".zattrs").read_text())
    else:
        raise StoreError(
            f"{path} is not a Zarr store (no zarr.json or .zattrs): "
            "pass the folder written by dyn.io.convert or anndata's write_zarr"
        )
    if attrs.get("encoding-type") != "anndata":
        raise StoreError(
            f"{path} is a Zarr group but not an AnnData store "
            f"(encoding-type {attrs.get('encoding-type')!r}): convert it with dyn.io.convert"
        )
    return path


def _check_remote(path: Remote) -> Remote:
    fs = path.fs
    try:
        meta = fs.cat(path.child("zarr.json"))
    except FileNotFoundError:
        raise StoreNotFoundError(
            f"no store at {path}: convert a file first with dyn.io.convert(src, {str(path)!r}) "
            "(check the URL, and the endpoint and credentials in storage_options)"
        ) from None
    attrs = json.loads(meta).get("attributes", {})
    if attrs.get("encoding-type") != "anndata":
        raise StoreError(
            f"{path} is a Zarr group but not an AnnData store "
            f"(encoding-type {attrs.get('encoding-type')!r}): convert it with dyn.io.convert"
        )
    return path


def open_group(path: str | Path | Remote, mode: str = "r") -> zarr.Group:
    """Open the root group of a store (a folder or an object-store prefix).

    Reading uses consolidated metadata where it is present; writing bypasses it (anndata
    refuses to edit a consolidated group), and :func:`consolidate` refreshes it afterwards.
    """
    path = location(path)
    if isinstance(path, Remote):
        store = path.zarr_store(read_only=mode == "r")
        if mode == "r":
            return zarr.open_group(store, mode=mode)
        return zarr.open_group(store, mode=mode, use_consolidated=False, zarr_format=3)
    if mode == "r":
        return zarr.open_group(str(path), mode=mode)
    return zarr.open_group(str(path), mode=mode, use_consolidated=False)


def write_elem(group: zarr.Group, key: str, value: Any) -> None:
    """Write ``value`` under ``group[key]`` in AnnData's encoding (Zarr format 3)."""
    with ad.settings.override(zarr_write_format=ZARR_FORMAT):
        ad.io.write_elem(group, key, value, dataset_kwargs={"compressors": COMPRESSORS})


def consolidate(path: str | Path | Remote) -> None:
    """Consolidate the store's metadata so that readers see every array in one read."""
    path = location(path)
    with warnings.catch_warnings():  # zarr's notice that v3 has no consolidated metadata yet
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        if isinstance(path, Remote):
            zarr.consolidate_metadata(path.zarr_store(read_only=False))
        else:
            zarr.consolidate_metadata(str(path))
