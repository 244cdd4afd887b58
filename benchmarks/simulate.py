"""Simulate an experiment straight into a store on the cluster; time and peak memory.

    python -m benchmarks.simulate --cells 1000000 --model independent --experiment kin \
        --method langevin --out sim_1M.zarr

Every block of cells is simulated by a worker (seeded by block) and written into the store;
the client holds only the per-cell annotations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dynadask as dyn

from .common import MemoryMonitor, format_rows, machine, save


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--model", default="independent")
    parser.add_argument("--experiment", default="kin", help="experiment_type of dyn.sim")
    parser.add_argument("--method", default="langevin", choices=("ssa", "langevin", "ode"))
    parser.add_argument("--genes", type=int, default=20, help="genes of the 'independent' model")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/simulate"))
    args = parser.parse_args(argv)
    out = args.out or Path(f"sim_{args.cells}.zarr")
    options = {"experiment_type": args.experiment, "method": args.method, "seed": 0}
    if args.model == "independent":
        options["n_genes"] = args.genes
    kwargs = {"n_workers": args.workers} if args.workers else {}
    rows: list = []
    print(machine())
    with dyn.parallel.client(args.scheduler, **kwargs), MemoryMonitor() as mon:
        note = f"{args.model} {args.experiment} {args.method}"
        with mon.stage("simulate_store", args.cells, rows, note=note):
            dyn.sim.simulate_store(out, args.model, args.cells, overwrite=True, **options)
    print(format_rows(rows))
    print(dyn.io.format_info(dyn.io.store_info(out)))
    save(rows, args.results, {"cells": args.cells, "store": str(out), **options})


if __name__ == "__main__":
    main()
