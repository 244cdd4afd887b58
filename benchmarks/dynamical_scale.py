"""``dyn.tl.dynamics(model='dynamical')`` on a prepared store: wall time and peak memory.

    python -m benchmarks.dynamical_scale --store work.zarr [--workers 2] [--memory-limit 3.5GiB]

The store must hold the moments ``M_u``, ``M_s`` (a store after ``dynadask run`` up to
``moments``, e.g. ``benchmarks.run``'s working stores). The store is modified (the dynamics
results are committed into it): pass a copy. The EM fits on a seeded sample of at most
2,000 cells (``DynamicalEM.n_fit_cells``) whatever the store's size; the velocity layer is
one pass over row blocks. Prints the stage row (wall seconds; peak resident memory of the
client, the largest worker and all processes), the fit's genes and the number of genes
taken as at steady state.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from dask.distributed import Client, LocalCluster

import dynadask as dyn
from benchmarks.common import MemoryMonitor, Row, format_rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--memory-limit", default="3.5GiB")
    parser.add_argument("--model", default="dynamical")
    args = parser.parse_args(argv)
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=args.threads,
        memory_limit=args.memory_limit,
        dashboard_address=None,
    )
    rows: list[Row] = []
    with Client(cluster), MemoryMonitor() as mon:
        adata = dyn.io.open(args.store)
        start = time.perf_counter()
        with mon.stage(f"dynamics {args.model}", adata.n_obs, rows):
            dyn.tl.dynamics(adata, model=args.model)
        seconds = time.perf_counter() - start
    used = adata.var["use_for_dynamics"].to_numpy(bool)
    steady = np.nansum(adata.var.get("fit_steady", np.zeros(adata.n_vars))[used])
    print(format_rows(rows))
    print(f"genes fitted {used.sum()}, at steady state {int(steady)}, {seconds:.1f} s")
    cluster.close()


if __name__ == "__main__":
    main()
