"""Dask graphs for graph-smoothed moments, row block by row block.

For each output row block the smoothing graph's rows say which cells the block averages
over; only those rows are gathered from the chunks of each layer that hold them (one small
take per touched chunk), then multiplied by the block of the graph. Output blocks follow the
row chunks of the first input. No cells x cells matrix is ever dense, and no task holds more
than one block of output plus the rows it gathered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import share
from ..kernels import moments as km
from .blocks import as_rows, gather_rows, row_pieces


@dataclass(frozen=True)
class Input:
    """One array to smooth: values, the columns in use and the output width."""

    array: Any
    cols: np.ndarray | None = None
    width: int | None = None


@dataclass(frozen=True)
class BlockPlan:
    """Output rows ``start:stop``: the cells they average over and the re-indexed graph rows."""

    start: int
    stop: int
    needed: np.ndarray
    local: sparse.csr_matrix


def plan_blocks(conn: sparse.csr_matrix, chunks: tuple[int, ...]) -> Iterator[BlockPlan]:
    """Cut the graph in row blocks of sizes ``chunks`` and list each block's cells."""
    conn = sparse.csr_matrix(conn)
    start = 0
    for size in chunks:
        needed, local = km.local_rows(conn[start : start + size])
        yield BlockPlan(start, start + size, needed, local)
        start += size


def chunks_touched(conn: sparse.csr_matrix, chunks: tuple[int, ...]) -> np.ndarray:
    """For each row block of ``conn`` (sizes ``chunks``), how many row chunks its cells span."""
    return np.array([len(row_pieces(p.needed, chunks)) for p in plan_blocks(conn, chunks)])


def smooth_inputs(
    conn: sparse.csr_matrix, inputs: dict[str, Input], jobs: dict[str, tuple[str, str | None]]
) -> dict[str, da.Array]:
    """Lazy moments ``out = conn @ a`` or ``conn @ (a * b)`` for each job ``out: (a, b)``.

    Parameters
    ----------
    conn
        ``n x n`` smoothing graph (scipy CSR, rows as they should weigh).
    inputs
        Arrays to smooth by name (numpy, scipy sparse or Dask; any row chunks).
    jobs
        Output name -> ``(a, b)`` input names; ``b`` is ``None`` for a first moment.

    Returns
    -------
    dict
        Output name -> Dask array (float32, dense, row chunks of the first input).
    """
    xs = {name: as_rows(inp.array) for name, inp in inputs.items()}
    chunks = next(iter(xs.values())).chunks[0]
    out: dict[str, list] = {name: [] for name in jobs}
    used = {n for ab in jobs.values() for n in ab if n is not None}
    for plan in plan_blocks(conn, chunks):
        # each block's re-indexed graph rows go to the workers, one block at a time
        (local,) = share([plan.local])
        got = {n: gather_rows(xs[n], plan.needed, inputs[n].cols) for n in used}
        for name, (a, b) in jobs.items():
            inp = inputs[a]
            width = inp.width if inp.width is not None else xs[a].shape[1]
            task = dask.delayed(km.smooth, pure=True)(local, got[a], got.get(b), inp.cols, width)
            out[name].append(
                da.from_delayed(task, shape=(plan.stop - plan.start, width), dtype=np.float32)
            )
    return {name: da.concatenate(parts, axis=0) for name, parts in out.items()}
