"""Dask graphs for graph-smoothed moments, row block by row block.

For each output row block the smoothing graph's rows say which cells the block averages
over (:func:`dynadask.graph.neighbourhood.plan_blocks`). One task per block and output
receives the row chunks that hold those rows and takes from them, a few graph rows at a time,
only the rows each step uses (:class:`dynadask.kernels.moments.Pieces`): no gathered matrix
is ever built or kept between tasks, so a scheduler running tasks ahead cannot pile gathered
rows up. What a worker holds is the chunks still wanted by a block to come and the output
blocks not yet written. Output blocks follow the row chunks of the first input. No cells x
cells matrix is ever dense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from scipy import sparse

from .._core.compute import share
from ..kernels import moments as km
from . import neighbourhood as nb
from .blocks import as_rows, row_sources


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
    used = sorted({n for ab in jobs.values() for n in ab if n is not None})
    conn = sparse.csr_matrix(conn)
    for plan in nb.plan_blocks(conn, chunks):
        # each block's re-indexed graph rows go to the workers, one block at a time
        (local,) = share([nb.local_graph(conn, plan)])
        sources = {n: row_sources(xs[n], plan.cells) for n in used}
        for name, (a, b) in jobs.items():
            inp = inputs[a]
            width = inp.width if inp.width is not None else xs[a].shape[1]
            src_b = None if b is None else sources[b]
            task = dask.delayed(_smooth_block, pure=True)(local, sources[a], src_b, inp.cols, width)
            shape = (plan.stop - plan.start, width)
            # named for what it does (the scheduler shows 'smooth' tasks, not 'from-value')
            key = f"smooth-{tokenize(task, name)}"
            out[name].append(da.from_delayed(task, shape=shape, dtype=np.float32, name=key))
    return {name: da.concatenate(parts, axis=0) for name, parts in out.items()}


def _smooth_block(local: sparse.csr_matrix, a: tuple, b: tuple | None, cols: Any, width: int):
    """One moment of one block, taking rows from the chunks (``row_sources`` pairs) by step."""
    x = km.Pieces(a[1], a[0], cols)
    y = None if b is None else km.Pieces(b[1], b[0], cols)
    return km.smooth(local, x, y, cols, width)
