"""Write a large, realistic store by resampling pancreas cells with Poisson noise.

The atlas draws its cells from the 3,696 pancreas cells (seeded), replaces every stored
count c by a Poisson draw of mean c (spliced and unspliced, all 2,000 genes) and is written by
the workers straight into the Zarr store, row block by row block.

Row order (``--order``): ``locality`` (default) stores the cells in the order that
``dyn.tl.locality_order`` gives the template cells (reverse Cuthill-McKee on their kNN
graph), as a store is laid out for dynadask, so that a chunk's kNN neighbourhoods lie in few
chunks; ``random`` keeps the draws in random order, the worst case for every neighbourhood
step.

    python -m benchmarks.make_atlas --cells 1000000 --out atlas_1M.zarr
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import sparse

import dynadask as dyn
from dynadask._core.compute import share

from .common import MemoryMonitor, format_rows, machine, save

LAYERS = ("spliced", "unspliced")


def resample_block(
    template: dict[str, sparse.csr_matrix], cells: np.ndarray, seed: int, block: int
) -> dict[str, sparse.csr_matrix]:
    """Return Poisson-resampled copies of the template ``cells`` for every layer."""
    rng = np.random.default_rng([seed, block])
    out = {}
    for name in LAYERS:
        rows = template[name][cells]
        rows.data = rng.poisson(rows.data).astype(np.float32)
        rows.eliminate_zeros()
        out[name] = rows
    return out


def draw_cells(
    n_cells: int, n_template: int, rows: int, seed: int, rank: np.ndarray | None = None
) -> list[np.ndarray]:
    """Return the template cell indices of every row block (seeded by block).

    With ``rank`` (each template cell's position in a locality order) the cells are sorted
    by their template's rank, so that row blocks hold contiguous stretches of that order.
    """
    blocks = []
    for b, start in enumerate(range(0, n_cells, rows)):
        size = min(rows, n_cells - start)
        blocks.append(np.random.default_rng([seed, b, 1]).integers(0, n_template, size))
    if rank is None:
        return blocks
    cells = np.concatenate(blocks)
    cells = cells[np.argsort(rank[cells], kind="stable")]
    return np.split(cells, np.cumsum([b.size for b in blocks])[:-1])


def template_rank(src) -> np.ndarray:
    """Each pancreas cell's position in ``dyn.tl.locality_order`` of the pancreas cells."""
    a = src.copy()
    dyn.pp.recipe_monocle(a)
    dyn.tl.neighbors(a)
    order = dyn.tl.locality_order(a, method="graph")
    rank = np.empty(a.n_obs, dtype=np.int64)
    rank[order] = np.arange(a.n_obs)
    return rank


def atlas_arrays(n_cells: int, rows: int, seed: int, client=None, order: str = "locality"):
    """Return obs, var and the lazy layers of an atlas of ``n_cells`` cells."""
    if order not in ("locality", "random"):
        raise ValueError(f"order must be 'locality' or 'random', got {order!r}")
    src = dyn.sample_data.pancreas()
    template = {k: sparse.csr_matrix(src.layers[k], dtype=np.float32) for k in LAYERS}
    # the template goes to the workers as a file any of them can load again (a scattered
    # copy would be lost for good with a worker that dies), not into every task
    (shared,) = share([template])
    rank = template_rank(src) if order == "locality" else None
    picks = draw_cells(n_cells, src.n_obs, rows, seed, rank)
    blocks = {k: [] for k in LAYERS}
    meta = sparse.csr_matrix((0, 0), dtype=np.float32)
    for b, cells in enumerate(picks):
        both = dask.delayed(resample_block, pure=True, nout=None)(shared, cells, seed, b)
        for k in LAYERS:
            blocks[k].append(
                da.from_delayed(
                    both[k], shape=(len(cells), src.n_vars), dtype=np.float32, meta=meta
                )
            )
    layers = {k: da.concatenate(v, axis=0) for k, v in blocks.items()}
    source = np.concatenate(picks)
    obs = pd.DataFrame(
        {
            "clusters": src.obs["clusters"].values[source],
            "clusters_coarse": src.obs["clusters_coarse"].values[source],
            "source_cell": src.obs_names.values[source],
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    return obs, src.var[[]].copy(), layers


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", choices=("locality", "random"), default="locality")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/make_atlas"))
    args = parser.parse_args(argv)
    out = args.out or Path(f"atlas_{args.cells}.zarr")
    kwargs = {"n_workers": args.workers} if args.workers else {}
    rows: list = []
    print(machine())
    with dyn.parallel.client(args.scheduler, **kwargs) as client, MemoryMonitor() as mon:
        print(f"dashboard: {client.dashboard_link}")
        with mon.stage("make_atlas", args.cells, rows, note=str(out)):
            obs, var, layers = atlas_arrays(
                args.cells, args.chunk_cells, args.seed, client, args.order
            )
            dyn.io.create_store(out, obs, var, layers, chunk_cells=args.chunk_cells, overwrite=True)
    info = dyn.io.store_info(out)
    print(format_rows(rows))
    print(dyn.io.format_info(info))
    save(rows, args.results, {"cells": args.cells, "store": str(out), "order": args.order})


if __name__ == "__main__":
    main()
