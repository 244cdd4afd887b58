"""Graph builder for simulations: one task per row block, every layer a lazy Dask array.

Each block's task simulates its cells once and returns all its layers; every layer's block is
a key of that result, so writing (or computing) all layers together simulates each block
once. Cells are seeded by their global index, so the values do not depend on the block size
or on the scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
from scipy import sparse

from ..kernels.sim_block import simulate_block
from ..kernels.sim_path import ssa_events


def simulation_blocks(
    net: dict,
    cells: dict,
    *,
    rows: int,
    seed: int,
    method: str,
    dt: float,
    layers: Sequence[str],
    truth: Sequence[str],
) -> list:
    """Return one Delayed per row block of ``rows`` cells, each the dict of its layers."""
    n = len(cells["traj"])
    shared = dask.delayed(net, pure=True, traverse=False)
    tasks = []
    for start in range(0, n, rows):
        part = {k: v[start : start + rows] for k, v in cells.items()}
        tasks.append(
            dask.delayed(simulate_block, pure=True)(
                shared,
                part,
                start=start,
                seed=seed,
                method=method,
                dt=dt,
                layers=tuple(layers),
                truth=tuple(truth),
            )
        )
    return tasks


def simulation_layers(
    blocks: list, sizes: Sequence[int], n_genes: int, *, layers: Sequence[str], truth: Sequence[str]
) -> dict[str, da.Array]:
    """Return every layer as a lazy (cells x genes) array over the blocks' results.

    Count layers have float32 CSR blocks; truth layers dense float32 blocks.
    """
    meta_csr = sparse.csr_matrix((0, 0), dtype=np.float32)
    meta_dense = np.empty((0, 0), dtype=np.float32)
    out = {}
    # dense layers first: dask.compute of mixed arrays and delayed objects returns the values
    # grouped by collection type, which writers relying on positions must not see interleaved
    for key in (*truth, *layers):
        meta = meta_csr if key in layers else meta_dense
        pieces = [
            da.from_delayed(b[key], shape=(size, n_genes), dtype=np.float32, meta=meta)
            for b, size in zip(blocks, sizes, strict=True)
        ]
        out[key] = da.concatenate(pieces, axis=0) if len(pieces) > 1 else pieces[0]
    return out


def path_tasks(
    tables: tuple[np.ndarray, ...],
    c0s: np.ndarray,
    t_span: tuple[float, float],
    *,
    beta: np.ndarray,
    gamma: np.ndarray,
    splicing: bool,
    seeds: Sequence[int],
    skip: int,
    max_len: int,
) -> list:
    """Return one Delayed per initial state, each the recorded path ``(times, states)``.

    Each path is simulated by :func:`~dynadask.kernels.sim_path.ssa_events` from its row of
    ``c0s`` with its own seed, so the result does not depend on the scheduler.
    """
    shared = dask.delayed((tables, beta, gamma), pure=True, traverse=False)
    return [
        dask.delayed(_path, pure=True)(
            shared, c0, float(t_span[0]), float(t_span[1]), splicing, int(s), skip, max_len
        )
        for c0, s in zip(np.asarray(c0s, dtype=np.float64), seeds, strict=True)
    ]


def _path(shared, c0, t0, t1, splicing, seed, skip, max_len):
    tables, beta, gamma = shared
    return ssa_events(c0, t0, t1, tables, beta, gamma, splicing, seed, skip, max_len)
