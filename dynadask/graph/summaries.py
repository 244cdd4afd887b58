"""Graph builders of the per-gene and per-cell summaries that ``dyn.pl`` draws.

Cells are in row blocks, genes in one block. Per-gene sums are a tree of additions over row
blocks (:func:`~dynadask.graph.blocks.sum_rows`); per-cell values (a few columns) are mapped
block by block. Nothing here holds a cells x genes matrix; the caller computes the lazy
results together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..kernels import preprocess as kpp
from ..kernels import summaries as ks
from .blocks import ArrayLike, map_rows, sum_rows, take_columns


def gene_totals(x: ArrayLike) -> Any:
    """Lazy per-gene sums over all cells (a Delayed ``(n_genes,)`` float64 array)."""
    return sum_rows(ks.column_sums, x)


def cell_totals(*arrays: ArrayLike, genes: np.ndarray | None = None) -> da.Array:
    """Lazy per-cell sums of several layers over ``genes`` (all when ``None``).

    Returns a ``(n_cells, len(arrays))`` float64 Dask array; with ``genes`` only those
    columns are kept inside the task that reads each block.
    """
    if genes is not None:
        arrays = tuple(take_columns(a, genes) for a in arrays)
    return map_rows(ks.row_sums, *arrays, n_cols=len(arrays), dtype=np.float64)


def feature_fractions(x: ArrayLike, members: Sequence[np.ndarray]) -> da.Array:
    """Lazy per-cell shares of each feature (a gene or a group of genes) in the cell's total.

    ``(n_cells, len(members))`` float64, NaN in cells without counts.
    """
    members = [np.asarray(m, dtype=np.int64) for m in members]
    return map_rows(ks.feature_fractions, x, n_cols=len(members), dtype=np.float64, members=members)


def basic_stats(x: ArrayLike, mito: np.ndarray) -> da.Array:
    """Lazy per-cell genes detected, total counts and mitochondrial counts of ``x``.

    ``(n_cells, 3)`` float64 with columns ``nGenes``, ``nCounts`` and the total of the genes
    in the boolean mask ``mito`` (the same per-cell sums as the recipe's QC pass).
    """
    return map_rows(kpp.cell_sums, x, n_cols=3, dtype=np.float64, mito=np.asarray(mito, bool))
