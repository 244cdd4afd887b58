"""Zarr stores in AnnData's on-disk format: convert, open lazily, write results back, reorder."""

from .commit import commit, store_path
from .convert import convert
from .create import create_store
from .info import format_info, store_info
from .open import open, read, read_h5ad, read_loom, read_zarr
from .order import chunk_spread, original_order, reorder

__all__ = [
    "chunk_spread",
    "commit",
    "convert",
    "create_store",
    "format_info",
    "open",
    "original_order",
    "read",
    "read_h5ad",
    "read_loom",
    "read_zarr",
    "reorder",
    "store_info",
    "store_path",
]
