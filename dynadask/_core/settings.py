"""Chunk policy: how many cells a Dask block holds, and Zarr chunk sizes."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class ChunkPolicy:
    """How stores and Dask graphs cut arrays into pieces.

    Attributes
    ----------
    target_block_bytes
        Aim for Dask row blocks of about this many bytes of dense float32 data.
    min_rows, max_rows
        Bounds on the number of cells in one row block.
    zarr_chunk_bytes
        Aim for Zarr chunks of about this size on disk (before compression).
    """

    target_block_bytes: int = 128 * 2**20
    min_rows: int = 1_000
    max_rows: int = 50_000
    zarr_chunk_bytes: int = 4 * 2**20

    def rows_per_block(self, n_cols: int, n_rows: int | None = None) -> int:
        """Return the number of cells per row block for a matrix with ``n_cols`` columns."""
        rows = self.target_block_bytes // max(4 * n_cols, 1)
        rows = int(np.clip(rows, self.min_rows, self.max_rows))
        if n_rows is not None:
            rows = max(1, min(rows, n_rows))
        return rows

    def zarr_elements(self, itemsize: int) -> int:
        """Return the number of elements of a 1-D Zarr chunk of ``itemsize`` bytes each."""
        return max(1, self.zarr_chunk_bytes // itemsize)


_policy = ChunkPolicy()


def get_chunk_policy() -> ChunkPolicy:
    """Return the active chunk policy."""
    return _policy


def set_chunk_policy(**changes: int) -> ChunkPolicy:
    """Change fields of the active chunk policy and return the new policy."""
    global _policy
    _policy = replace(_policy, **changes)
    return _policy
