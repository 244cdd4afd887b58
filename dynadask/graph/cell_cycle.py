"""Graph builders of cell-cycle scoring: marker coherence sums and per-cell phase totals."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..kernels import cell_cycle as kcc
from .blocks import ArrayLike, map_rows
from .preprocess import sum_kept_rows


def coherence_sums(
    x: ArrayLike,
    members: list[np.ndarray],
    genes: np.ndarray,
    *,
    logs: int = 0,
    cells: np.ndarray | None = None,
) -> Any:
    """Lazy sums for each marker gene's correlation with its phase's mean (one pass)."""
    return sum_kept_rows(
        kcc.coherence_sums,
        x,
        cells=cells,
        members=[np.asarray(m) for m in members],
        genes=np.asarray(genes),
        logs=logs,
    )


def phase_totals(
    x: ArrayLike, members: list[np.ndarray], genes: np.ndarray, *, logs: int = 0
) -> da.Array:
    """Lazy per-cell summed expression of each phase's genes, ``(cells, phases)`` float64."""
    return map_rows(
        kcc.phase_totals,
        x,
        n_cols=len(members),
        dtype=np.float64,
        members=[np.asarray(m) for m in members],
        genes=np.asarray(genes),
        logs=logs,
    )
