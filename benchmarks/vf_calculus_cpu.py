"""CPU and wall seconds of the ``vector_calculus`` and ``jacobian`` stages, per quantity and basis.

On a prepared store (``dynadask run`` through ``vectorfield``), in one process on the
synchronous scheduler with one BLAS thread (as a Dask worker runs), so the process's user +
system time is all the work done; on a shared machine that is steadier than wall time. Rows:

- ``<quantity> (<basis>)``: ``dyn.vf.vector_calculus(basis=..., quantities=(quantity,))``,
  one quantity computed and committed alone;
- ``all five (<basis>)``: the pipeline's call, the five quantities in one pass;
- ``jacobian (pca)``: ``dyn.vf.jacobian`` on the pipeline's genes (``--genes`` or
  :func:`dynadask.pipeline.jacobian_genes`), to the store;
- ``stage vector_calculus`` / ``stage jacobian``: the pipeline's two stages as they run.

Results are committed into the store: run it on a copy.

    python -m benchmarks.vf_calculus_cpu STORE_COPY
    python -m benchmarks.vf_calculus_cpu STORE_COPY --rows stages --repeat 2
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable

import dask
from threadpoolctl import threadpool_limits

import dynadask as dyn
from dynadask import pipeline

QUANTITIES = pipeline.CALCULUS


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def calls(genes: list[str] | None, rows: str) -> dict[str, Callable]:
    """The measured calls by row name."""
    out: dict[str, Callable] = {}
    if rows in ("all", "quantities"):
        for basis in ("umap", "pca"):
            for q in QUANTITIES:
                out[f"{q} ({basis})"] = lambda a, b=basis, q=q: dyn.vf.vector_calculus(
                    a, basis=b, quantities=(q,)
                )
            out[f"all five ({basis})"] = lambda a, b=basis: dyn.vf.vector_calculus(
                a, basis=b, quantities=QUANTITIES
            )
        out["jacobian (pca)"] = lambda a: dyn.vf.jacobian(
            a, regulators=_genes(a, genes), effectors=_genes(a, genes), basis="pca"
        )
    if rows in ("all", "stages"):

        def stage_calculus(a):
            for basis in ("umap", "pca"):
                dyn.vf.vector_calculus(a, basis=basis, quantities=QUANTITIES)

        out["stage vector_calculus"] = stage_calculus
        out["stage jacobian"] = lambda a: dyn.vf.jacobian(
            a, regulators=_genes(a, genes), effectors=_genes(a, genes), basis="pca"
        )
    return out


def _genes(adata, genes: list[str] | None) -> list[str]:
    return list(genes) if genes else pipeline.jacobian_genes(adata)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Run the calls and print a table of CPU and wall seconds (best of ``--repeat``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a copy of a store after the vectorfield stage")
    parser.add_argument("--rows", choices=("all", "quantities", "stages"), default="all")
    parser.add_argument("--only", nargs="+", default=None, help="row names to run")
    parser.add_argument("--genes", nargs="+", default=None)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    todo = calls(args.genes, args.rows)
    if args.only:
        todo = {k: v for k, v in todo.items() if k in args.only}
    out: dict[str, dict[str, float]] = {}
    n_obs = dyn.io.open(args.store).n_obs
    print(f"{args.store}: {n_obs:,} cells; synchronous scheduler, 1 BLAS thread", flush=True)
    print(f"{'row':<28} {'CPU s':>8} {'wall s':>8}", flush=True)
    with dask.config.set(scheduler="synchronous"), threadpool_limits(1):
        for name, call in todo.items():
            best = None
            for _ in range(args.repeat):
                adata = dyn.io.open(args.store)
                cpu, wall = _cpu(), time.perf_counter()
                call(adata)
                t = (_cpu() - cpu, time.perf_counter() - wall)
                best = t if best is None or t[0] < best[0] else best
            out[name] = {"cpu_s": round(best[0], 2), "wall_s": round(best[1], 2)}
            print(f"{name:<28} {best[0]:>8.2f} {best[1]:>8.2f}", flush=True)
    print(f"process peak RSS {_peak_gib():.2f} GiB")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
