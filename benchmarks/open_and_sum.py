"""Open a store lazily and sum a layer over cells through the client; time and memory.

python -m benchmarks.open_and_sum atlas_1M.zarr --layer spliced
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import psutil

import dynadask as dyn
from dynadask.graph.blocks import sum_rows

from .common import GIB, MemoryMonitor, format_rows, machine, save


def gene_totals(block) -> np.ndarray:
    """Per-gene sums of one row block (float64)."""
    return np.asarray(block.sum(axis=0), dtype=np.float64).ravel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--layer", default="spliced")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/open_and_sum"))
    args = parser.parse_args(argv)
    print(machine())
    rows: list = []
    kwargs = {"n_workers": args.workers} if args.workers else {}
    with dyn.parallel.client(args.scheduler, **kwargs), MemoryMonitor() as mon:
        before = psutil.Process().memory_info().rss
        start = time.perf_counter()
        with mon.stage("open (lazy)", 0, rows):
            adata = dyn.io.open(args.store)
        rows[-1].cells = adata.n_obs
        opened = time.perf_counter() - start
        grew = (psutil.Process().memory_info().rss - before) / GIB
        shape = f"{adata.n_obs:,} x {adata.n_vars:,}"
        print(f"opened {shape} in {opened:.2f} s; client grew {grew:.3f} GiB")
        with mon.stage(f"sum {args.layer}", adata.n_obs, rows):
            totals = sum_rows(gene_totals, adata.layers[args.layer]).compute()
        print(f"total counts: {totals.sum():,.0f}")
    print(format_rows(rows))
    save(rows, args.results, {"store": str(args.store), "open_seconds": opened})


if __name__ == "__main__":
    main()
