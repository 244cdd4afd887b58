"""Dask graphs for graph-smoothed moments, row block by row block.

For each output row block the smoothing graph's rows say which cells the block averages
over (:func:`dynadask.graph.neighbourhood.plan_blocks`); only those rows are gathered from
the chunks of each layer that hold them (one small take per touched chunk), then multiplied
by the block of the graph. Output blocks follow the row chunks of the first input. No
cells x cells matrix is ever dense, and no task holds more than one block of output plus the
rows it gathered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from .._core.compute import share
from ..kernels import moments as km
from . import neighbourhood as nb
from .blocks import as_rows


@dataclass(frozen=True)
class Input:
    """One array to smooth: values, the columns in use and the output width."""

    array: Any
    cols: np.ndarray | None = None
    width: int | None = None


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
    conn = sparse.csr_matrix(conn)
    for plan in nb.plan_blocks(conn, chunks):
        # each block's re-indexed graph rows go to the workers, one block at a time
        (local,) = share([nb.local_graph(conn, plan)])
        # gathered in the stored type (float32 on a store): the kernel sums in float64
        got = {n: nb.gather(xs[n], plan, inputs[n].cols, None) for n in used}
        for name, (a, b) in jobs.items():
            inp = inputs[a]
            width = inp.width if inp.width is not None else xs[a].shape[1]
            task = dask.delayed(km.smooth, pure=True)(local, got[a], got.get(b), inp.cols, width)
            out[name].append(
                da.from_delayed(task, shape=(plan.stop - plan.start, width), dtype=np.float32)
            )
    return {name: da.concatenate(parts, axis=0) for name, parts in out.items()}
