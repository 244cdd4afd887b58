"""Time the out-of-core reorder of a store in random row order: wall time and peak memory.

The store is a Poisson-resampled pancreas atlas in random order (``make_atlas --order
random``), written if it does not exist; the monocle recipe and the kNN graph are computed
when missing (timed as their own rows); then ``dyn.io.reorder`` puts every cell-indexed
element in the graph's locality order.

    python -m benchmarks.reorder --cells 100000 --out atlas_100k_random.zarr
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dynadask as dyn

from .common import MemoryMonitor, format_rows, machine, save
from .make_atlas import atlas_arrays


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=None, help="the store (made if missing)")
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/reorder"))
    args = parser.parse_args(argv)
    out = args.out or Path(f"atlas_{args.cells}_random.zarr")
    kwargs = {"n_workers": args.workers} if args.workers else {}
    rows: list = []
    print(machine())
    with dyn.parallel.client(args.scheduler, **kwargs) as client, MemoryMonitor() as mon:
        if not out.exists():
            with mon.stage("make_atlas (random)", args.cells, rows, note=str(out)):
                obs, var, layers = atlas_arrays(
                    args.cells, args.chunk_cells, args.seed, client, "random"
                )
                dyn.io.create_store(out, obs, var, layers, chunk_cells=args.chunk_cells)
        adata = dyn.io.open(out)
        if "X_pca" not in adata.obsm:
            with mon.stage("preprocess", adata.n_obs, rows):
                dyn.pp.recipe_monocle(adata)
        if "connectivities" not in adata.obsp:
            with mon.stage("neighbors", adata.n_obs, rows):
                dyn.tl.neighbors(adata)
        with mon.stage("reorder", adata.n_obs, rows):
            adata = dyn.io.reorder(adata)
        record = adata.uns["dynadask"]["reorder"]
        rows[-1].note = (
            f"{record['method']}: spread {record['spread_before']:.2f} -> "
            f"{record['spread_after']:.2f} of {record['n_chunks']} chunks"
        )
    print(format_rows(rows))
    print(dyn.io.format_info(dyn.io.store_info(out)))
    save(rows, args.results, {"cells": args.cells, "store": str(out), "reorder": record})


if __name__ == "__main__":
    main()
