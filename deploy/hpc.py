"""``dynadask run`` on Dask workers submitted as SLURM or PBS jobs (``dask-jobqueue``).

The launcher runs where jobs can be submitted (a login node, or a small job of its own, see
``slurm/job.sh`` and ``pbs/job.sh``). It starts the Dask scheduler in its own process, submits
``--jobs`` batch jobs of ``--cores`` single-threaded workers each, waits for them, and runs
``dynadask run`` against the scheduler; the jobs end with the launcher. Each worker's memory
is sized from the store's chunk size (:func:`worker_memory`, deploy/README.md).

Usage (everything after ``--`` goes to ``dynadask run``)::

    python deploy/slurm/launch.py --jobs 4 --cores 8 --walltime 04:00:00 -- \
        --config deploy/job.toml /shared/atlas.h5ad --out /shared/results
    python deploy/slurm/launch.py --print-job-script -- --config deploy/job.toml
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from dask.utils import parse_bytes

GIB = 2**30
MEASURED_CHUNK_CELLS = 20_000
"""Cells per row chunk of the 1,000,000-cell runs in README.md's scale tables,"""
MEASURED_GENES = 2_000
"""their genes,"""
MEASURED_WORKER_PEAK = 5.38 * GIB
"""and the highest worker peak of any stage there (moments, random row order)."""
PAUSE_FRACTION = 0.8
"""Dask pauses a worker above this fraction of its limit (distributed.worker.memory.pause)."""
MIN_WORKER_MEMORY = 2 * GIB


def worker_memory(chunk_cells: int, n_genes: int = MEASURED_GENES) -> int:
    """Memory to give one single-threaded worker for a store of ``chunk_cells``-cell chunks.

    The measured peak of the 1,000,000-cell run (20,000-cell chunks of 2,000 genes) is
    scaled by the dense size of one chunk (``chunk_cells * n_genes`` float32 values) and set
    below Dask's pause threshold, rounded up to whole GiB, and at least 2 GiB.

    Parameters
    ----------
    chunk_cells
        Cells per row chunk of the store (``--chunk-cells``).
    n_genes
        Genes the workflow keeps (the recipe's 2,000 by default).

    Returns
    -------
    int
        Bytes per worker.
    """
    if chunk_cells < 1 or n_genes < 1:
        raise ValueError(f"chunk_cells={chunk_cells} and n_genes={n_genes} must be positive")
    scale = chunk_cells * n_genes / (MEASURED_CHUNK_CELLS * MEASURED_GENES)
    need = MEASURED_WORKER_PEAK * scale / PAUSE_FRACTION
    return max(MIN_WORKER_MEMORY, math.ceil(need / GIB) * GIB)


def cluster_kwargs(args: argparse.Namespace, chunk_cells: int | None) -> dict[str, Any]:
    """The cluster's settings: one job = ``cores`` 1-thread workers of the sized memory."""
    if args.worker_memory is not None:
        per_worker = int(parse_bytes(args.worker_memory))
    else:
        per_worker = worker_memory(chunk_cells, args.genes)
    kwargs: dict[str, Any] = {
        "cores": args.cores,
        "processes": args.cores,  # one single-threaded worker process a core
        "memory": f"{args.cores * per_worker / GIB:g}GiB",
        "walltime": args.walltime,
        "queue": args.queue,
        "account": args.account,
        "interface": args.interface,
        "local_directory": args.local_directory,
        "log_directory": args.log_directory,
        "python": args.python or sys.executable,
        "job_name": "dynadask-worker",
        "scheduler_options": {"dashboard_address": f":{args.dashboard_port}"},
    }
    return {k: v for k, v in kwargs.items() if v is not None}


KINDS = ("slurm", "pbs", "local")
"""The job systems: SLURM, PBS, and ``local`` (dask-jobqueue's ``LocalCluster``: the same
worker jobs run as processes of this machine, to try a launcher and job file before a queue)."""


def make_cluster(kind: str, args: argparse.Namespace, chunk_cells: int | None):
    """A ``dask_jobqueue`` cluster of one of :data:`KINDS` (no jobs submitted yet)."""
    import dask_jobqueue
    from dask_jobqueue.local import LocalCluster as LocalJobCluster

    classes = {
        "slurm": dask_jobqueue.SLURMCluster,
        "pbs": dask_jobqueue.PBSCluster,
        "local": LocalJobCluster,
    }
    if kind not in classes:
        raise ValueError(f"no job system {kind!r}: use one of {KINDS}")
    return classes[kind](**cluster_kwargs(args, chunk_cells))


def parser(kind: str) -> argparse.ArgumentParser:
    """The launcher's options (``dynadask run``'s follow ``--``)."""
    p = argparse.ArgumentParser(
        prog=f"deploy/{kind}/launch.py",
        description=f"dynadask run on Dask workers submitted as {kind.upper()} jobs",
    )
    p.add_argument("--jobs", type=int, default=2, help="batch jobs of workers to submit")
    p.add_argument("--cores", type=int, default=4, help="cores (1-thread workers) per job")
    p.add_argument("--walltime", default="04:00:00", help="each worker job's time limit")
    p.add_argument("--queue", help="partition (SLURM) or queue (PBS)")
    p.add_argument("--account", help="account to charge")
    p.add_argument("--interface", help="network interface of the workers, e.g. ib0")
    p.add_argument("--local-directory", help="node-local scratch for spilled data")
    p.add_argument("--log-directory", help="folder of the worker jobs' logs")
    p.add_argument("--python", help="python on the compute nodes (default: this one)")
    p.add_argument("--genes", type=int, default=MEASURED_GENES, help="genes, for sizing")
    p.add_argument("--worker-memory", help="each worker's memory (e.g. 6GiB): overrides sizing")
    p.add_argument("--dashboard-port", type=int, default=8787)
    p.add_argument("--wait", type=float, default=600, help="seconds to wait for the workers")
    p.add_argument(
        "--print-job-script", action="store_true", help="print a worker job's script and exit"
    )
    return p


def main(kind: str, argv: Sequence[str] | None = None) -> int:
    """Start the cluster, submit the worker jobs and run ``dynadask run`` against it."""
    from distributed import Client

    from dynadask.cli import main as dynadask_main
    from dynadask.cli import run_arguments

    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser(kind).parse_args(argv[:cut])
    run_args = argv[cut + 1 :]
    chunk_cells = run_arguments(run_args).chunk_cells
    if chunk_cells is None and args.worker_memory is None:
        print(
            f"{kind}/launch.py: workers are sized from the chunk size: give dynadask run "
            "--chunk-cells (or chunk-cells in its --config file), or --worker-memory",
            file=sys.stderr,
        )
        return 2
    with make_cluster(kind, args, chunk_cells) as cluster:
        if args.print_job_script:
            print(cluster.job_script())
            return 0
        cluster.scale(jobs=args.jobs)
        with Client(cluster) as c:
            print(f"dashboard: {c.dashboard_link}", flush=True)
            c.wait_for_workers(args.jobs * args.cores, timeout=args.wait)
            return dynadask_main(["run", *run_args, "--scheduler", cluster.scheduler_address])
