"""Per-cell derivative arrays of the vector field (Jacobians, sensitivities, Hessians) by row block.

:func:`per_cell` runs one kernel per row block of all cells on the chosen cells of that
block and packs every result of a cell in one row (NaN for cells not chosen). From that one
lazy array come the cell-wise scalars over all cells (for ``obs``) and the per-cell arrays
of the chosen cells (``cells x ...``, for a chunked store array): computing them together
evaluates each block once. :func:`group_sums` reduces such a per-cell array over cell
groups, block by block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np

from .blocks import as_rows, map_rows, sum_rows
from .vectorfield import BLOCK_BYTES

Kernel = Callable[[np.ndarray], dict[str, np.ndarray]]


def rows_for(work_per_row: int) -> int:
    """Rows per block so that ``rows x work_per_row`` float64 stays near 64 MiB (>= 64)."""
    return max(64, int(BLOCK_BYTES // (8 * max(work_per_row, 1))))


def per_cell(
    X: Any,
    kernel: Kernel,
    shapes: dict[str, tuple[int, ...]],
    cells: np.ndarray | None,
    work_per_row: int,
) -> dict[str, da.Array]:
    """Lazy per-cell results of ``kernel`` at the rows ``cells`` of ``X`` (all when ``None``).

    Parameters
    ----------
    X
        Coordinates of all cells (numpy or Dask, n x d).
    kernel
        ``kernel(x) -> {name: array (len(x), *shapes[name])}`` on the chosen rows of a block.
    shapes
        Per-cell shape of each result; ``()`` for a scalar.
    cells
        Sorted positions of the chosen cells, or ``None`` for every cell.
    work_per_row
        float64 values a kernel holds per row (sets the block size; a Dask ``X`` with
        smaller row blocks keeps them).

    Returns
    -------
    dict
        Scalars as ``n``-vectors over all cells (NaN where not chosen); arrays as
        ``(len(cells), *shape)`` float64, in the order of ``cells``.
    """
    n = X.shape[0]
    widths = {k: int(np.prod(s, dtype=np.int64)) for k, s in shapes.items()}
    chosen = np.ones(n, dtype=bool) if cells is None else np.isin(np.arange(n), cells)
    rows = rows_for(work_per_row + sum(widths.values()))
    if isinstance(X, da.Array):  # never larger blocks than the store's
        rows = min(rows, int(X.chunks[0][0]))
    x = as_rows(X, rows)
    packed = map_rows(
        _packed_block,
        x,
        chosen,
        n_cols=sum(widths.values()),
        dtype=np.float64,
        kernel=kernel,
        names=list(shapes),
        widths=widths,
    )
    out, start = {}, 0
    for name, shape in shapes.items():
        w = widths[name]
        if shape == ():
            out[name] = packed[:, start]
        else:
            cols = packed[:, start : start + w]
            if cells is not None:
                cols = cols[cells]
            out[name] = cols.reshape((cols.shape[0],) + shape)
        start += w
    return out


def _packed_block(x, chosen, *, kernel, names, widths) -> np.ndarray:
    chosen = np.asarray(chosen, dtype=bool).ravel()
    out = np.full((x.shape[0], sum(widths.values())), np.nan)
    if not chosen.any():
        return out
    res = kernel(np.asarray(x, dtype=np.float64)[chosen])
    start = 0
    for name in names:
        w = widths[name]
        out[chosen, start : start + w] = np.asarray(res[name]).reshape(-1, w)
        start += w
    return out


def group_sums(
    J: Any, codes: np.ndarray, n_groups: int, transform: Callable[[np.ndarray], np.ndarray]
) -> Any:
    """Lazy ``{'sum': (groups, ...), 'count': (groups,), 'absmax': (...)}`` over the cells.

    ``sum`` adds ``transform(J)`` of each group's cells, ``absmax`` is the largest ``|J|``
    over all cells (before the transform); one task per row block, summed as a tree.
    """
    Jd = as_rows(J)
    shape = Jd.shape[1:]
    flat = Jd.reshape((Jd.shape[0], int(np.prod(shape, dtype=np.int64))))
    return sum_rows(
        _group_block, flat, codes, n_groups=n_groups, shape=shape, transform=transform
    ), da.nanmax(da.abs(Jd), axis=0)


def _group_block(j, codes, *, n_groups, shape, transform) -> dict[str, np.ndarray]:
    j = np.asarray(j, dtype=np.float64).reshape((-1,) + tuple(shape))
    codes = np.asarray(codes).ravel()
    t = transform(j).reshape(j.shape[0], -1)
    sums = np.zeros((n_groups, t.shape[1]))
    np.add.at(sums, codes, t)
    return {"sum": sums, "count": np.bincount(codes, minlength=n_groups).astype(np.float64)}
