"""Zarr stores in AnnData's on-disk format: convert, open lazily, write results back."""

from .commit import commit, store_path
from .convert import convert
from .create import create_store
from .info import format_info, store_info
from .open import open, read, read_h5ad, read_loom, read_zarr

__all__ = [
    "commit",
    "convert",
    "create_store",
    "format_info",
    "open",
    "read",
    "read_h5ad",
    "read_loom",
    "read_zarr",
    "store_info",
    "store_path",
]
