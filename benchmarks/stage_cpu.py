"""CPU and wall seconds of single analysis stages on a prepared store, in one process.

Runs ``dyn.tl.dynamics``, ``dyn.tl.reduceDimension(enforce=True)``,
``dyn.tl.cell_velocities(basis='umap', enforce=True)`` (the transition matrix rebuilt) and
``dyn.tl.cell_velocities(basis='pca')`` (reprojected from the stored matrix) on the
synchronous scheduler, so that the process's user + system time is all the work done; on a
shared machine that is steadier than wall time. Results are committed into the store: run
it on a copy.

    python -m benchmarks.stage_cpu STORE --stages dynamics cell_velocities
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import dask

import dynadask as dyn

CALLS = {
    "dynamics": lambda a: dyn.tl.dynamics(a),
    "reduceDimension": lambda a: dyn.tl.reduceDimension(a, enforce=True),
    "cell_velocities": lambda a: dyn.tl.cell_velocities(a, basis="umap", enforce=True),
    "cell_velocities_pca": lambda a: dyn.tl.cell_velocities(a, basis="pca"),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the stages named on the command line and print their CPU and wall seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--stages", nargs="+", default=list(CALLS), choices=list(CALLS))
    args = parser.parse_args(argv)
    out = {}
    with dask.config.set(scheduler="synchronous"):
        for name in args.stages:
            adata = dyn.io.open(args.store)
            cpu, wall = _cpu(), time.perf_counter()
            CALLS[name](adata)
            out[name] = {
                "cpu_s": round(_cpu() - cpu, 1),
                "wall_s": round(time.perf_counter() - wall, 1),
            }
            print(name, out[name], flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
