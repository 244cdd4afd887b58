"""Products of a row-blocked cells x cells transition matrix with cell vectors.

A stationary distribution needs ``v^T T`` (forward chain) or ``T w`` (backward chain) many
times. Each product is one pass over the row blocks of ``T`` (numpy, scipy sparse or a
Dask array of CSR blocks on a store): ``v^T T`` sums each block's ``T_b^T v_b`` in a tree,
``T w`` stacks each block's ``T_b w``. Only vectors of length ``n_cells`` reach the client.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
from scipy import sparse

from .._core.compute import compute, share
from .._core.errors import InputError
from .blocks import as_rows, sum_rows


def _left(block: Any, v: np.ndarray) -> np.ndarray:
    return np.asarray(block.T @ np.asarray(v, dtype=np.float64).ravel()).ravel()


def _right(block: Any, w: np.ndarray) -> np.ndarray:
    return np.asarray(block @ w).ravel().astype(np.float64)


def _col_sums(block: Any) -> np.ndarray:
    return np.asarray(block.sum(0), dtype=np.float64).ravel()


def _row_sums(block: Any) -> np.ndarray:
    return np.asarray(block.sum(1), dtype=np.float64).ravel()


class RowBlocked:
    """A square matrix read by row blocks; ``left(v) = T^T v`` and ``right(w) = T w``.

    An in-memory scipy / numpy matrix is used directly; a Dask array makes one compute per
    product, one task per row block.
    """

    def __init__(self, t: Any) -> None:
        if t.ndim != 2 or t.shape[0] != t.shape[1]:
            raise InputError(f"a transition matrix is square (got shape {t.shape})")
        self.lazy = not (sparse.issparse(t) or isinstance(t, np.ndarray))
        self.t = as_rows(t) if self.lazy else sparse.csr_matrix(t)
        self.n = t.shape[0]
        self.passes = 0

    def left(self, v: np.ndarray) -> np.ndarray:
        """``T^T v``: the distribution ``v`` one step forward."""
        self.passes += 1
        if not self.lazy:
            return np.asarray(self.t.T @ v).ravel()
        return compute(sum_rows(_left, self.t, np.asarray(v)), desc="v T")[0]

    def right(self, w: np.ndarray) -> np.ndarray:
        """``T w``."""
        self.passes += 1
        if not self.lazy:
            return np.asarray(self.t @ w).ravel()
        (w_d,) = share([np.asarray(w, dtype=np.float64)])
        parts = [dask.delayed(_right, pure=True)(b, w_d) for b in self.t.to_delayed().ravel()]
        return np.concatenate(compute(*parts, desc="T w"))

    def sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column sums, in one pass."""
        if not self.lazy:
            return (
                np.asarray(self.t.sum(1)).ravel().astype(np.float64),
                np.asarray(self.t.sum(0)).ravel().astype(np.float64),
            )
        rows = [dask.delayed(_row_sums)(b) for b in self.t.to_delayed().ravel()]
        cols = sum_rows(_col_sums, self.t)
        *row_parts, col = compute(*rows, cols, desc="transition sums")
        return np.concatenate(row_parts), col
