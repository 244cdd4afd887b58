"""CPU and wall seconds of single analysis stages on a prepared store, in one process.

Runs the named stages on the synchronous scheduler, so that the process's user + system
time is all the work done; on a shared machine that is steadier than wall time. The front of
``dynadask run`` is ``convert`` (``--convert-from SRC`` writes STORE from SRC first),
``preprocess`` (the monocle recipe with PCA), ``neighbors`` and ``reorder`` (the pipeline's
``reorder_if_spread``); later stages are ``dynamics``, ``reduceDimension(enforce=True)``,
``cell_velocities(basis='umap', enforce=True)`` (the transition matrix rebuilt) and
``cell_velocities(basis='pca')`` (reprojected from the stored matrix). Results are
committed into the store: run it on a copy. The last column is the process's peak resident
memory so far (GiB).

    python -m benchmarks.stage_cpu STORE --convert-from RAW.zarr \
        --stages preprocess neighbors reorder
    python -m benchmarks.stage_cpu STORE --stages dynamics cell_velocities
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import dask

import dynadask as dyn
from dynadask import io
from dynadask.pipeline import reorder_if_spread

CALLS = {
    "preprocess": lambda a: dyn.pp.Preprocessor().preprocess_adata(a, recipe="monocle"),
    "neighbors": lambda a: dyn.tl.neighbors(a),
    "reorder": reorder_if_spread,
    "dynamics": lambda a: dyn.tl.dynamics(a),
    "reduceDimension": lambda a: dyn.tl.reduceDimension(a, enforce=True),
    "cell_velocities": lambda a: dyn.tl.cell_velocities(a, basis="umap", enforce=True),
    "cell_velocities_pca": lambda a: dyn.tl.cell_velocities(a, basis="pca"),
}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the stages named on the command line and print their CPU and wall seconds.

    Parameters
    ----------
    argv
        Command-line arguments (by default ``sys.argv[1:]``).

    Returns
    -------
    dict
        Per stage: ``cpu_s`` (user + system), ``wall_s`` and ``peak_gib`` (the process's
        peak resident memory up to the end of the stage).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--stages", nargs="*", default=[], choices=list(CALLS))
    parser.add_argument("--convert-from", default=None, help="convert this file into STORE first")
    args = parser.parse_args(argv)
    out = {}

    def record(name: str, cpu: float, wall: float) -> None:
        out[name] = {
            "cpu_s": round(_cpu() - cpu, 1),
            "wall_s": round(time.perf_counter() - wall, 1),
            "peak_gib": round(_peak_gib(), 2),
        }
        print(name, out[name], flush=True)

    with dask.config.set(scheduler="synchronous"):
        if args.convert_from is not None:
            cpu, wall = _cpu(), time.perf_counter()
            io.convert(args.convert_from, args.store, overwrite=True)
            record("convert", cpu, wall)
        for name in args.stages:
            adata = dyn.io.open(args.store)
            cpu, wall = _cpu(), time.perf_counter()
            CALLS[name](adata)
            record(name, cpu, wall)
    print(f"{'stage':<20} {'CPU s':>8} {'wall s':>8} {'peak GiB':>9}")
    for name, row in out.items():
        print(f"{name:<20} {row['cpu_s']:>8} {row['wall_s']:>8} {row['peak_gib']:>9}")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
