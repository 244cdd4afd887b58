"""Faults on an atlas store, each in separate processes: the results must equal a clean run.

Cases (each on its own copy of the input, against one uninterrupted reference run):

- ``driver:<stage>``: ``dynadask run`` (driver and its LocalCluster in their own process
  group) is killed with SIGKILL while ``<stage>`` writes its results (its staging folder has
  appeared beside the store), then run again with the same command: it must resume (stages
  complete before the kill are skipped) and end with the reference's results.
- ``worker:<stage>``: the stages before ``<stage>`` are run, then ``<stage>`` runs on a
  LocalCluster of two worker processes while a thread kills one worker with SIGKILL as soon
  as the scheduler reports some of the stage's tasks done and others still to run; Dask
  recomputes what was lost and the results must equal the reference's.

Results are compared key by key (every layer, obsm, obs and var column the stages write):
the largest gap relative to each quantity's largest magnitude is printed; ``equal`` when it
is at most ``--rtol`` (float rounding from partial sums combined in arrival order).

Usage::

    nice -n 19 python -m benchmarks.faults --cells 50000 --out /tmp/faults

The input is a continuous atlas (``benchmarks.make_atlas``, simple template graph, random
row order), written once into ``--out``.

With ``--from-clean`` a case starts from a copy of the clean run's store instead of from the
input, so that it costs the faulted stage and what follows rather than a whole run:

- ``driver:<stage>``: the copy's records of ``<stage>`` and every later stage are removed
  (the store then says what a run killed before ``<stage>`` leaves), ``dynadask run`` is
  killed while ``<stage>`` writes and run again; it must resume at ``<stage>``;
- ``worker:<stage>``: ``<stage>`` alone runs again on the copy (forced) while a worker is
  killed; its results must equal the clean run's;
- ``control:<stage>``: as ``driver:<stage>`` with nothing killed: how far a fault-free run
  from ``<stage>`` on, in new processes, lands from the clean run (BLAS kernels may sum in
  an order that depends on memory alignment, so two processes can differ in the last bits,
  and a vector-field fit amplifies such differences).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

STAGES = ["preprocess", "neighbors", "reorder", "moments", "dynamics", "reduceDimension",
          "cell_velocities", "cell_velocities_pca", "vectorfield"]  # fmt: skip
DRIVER_KILLS = ["moments", "dynamics", "vectorfield"]
WORKER_KILLS = ["moments", "dynamics", "vectorfield"]
COMPARED = ("layers", "obsm", "obs", "var")
COMMIT_NAME = {"vectorfield": "vector_field"}  # the first commit of a stage, if not its name


def _run_cmd(src: Path, out: Path, stages: list[str], chunk: int) -> list[str]:
    return [sys.executable, "-m", "dynadask.cli", "run", str(src), "--out", str(out),
            "--chunk-cells", str(chunk), "--workers", "2", "--no-progress",
            "--stages", *stages]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _store(out: Path, src: Path) -> Path:
    return out / f"{src.stem}.zarr"


def run_clean(src: Path, out: Path, chunk: int) -> float:
    """The uninterrupted reference run; its wall time."""
    start = time.perf_counter()
    log = (out.parent / f"{out.name}.log").open("w")
    subprocess.run(_run_cmd(src, out, STAGES, chunk), check=True, env=_env(), stdout=log,
                   stderr=subprocess.STDOUT)  # fmt: skip
    return time.perf_counter() - start


def driver_kill(
    src: Path, out: Path, stage: str, chunk: int, ref: Path | None = None, kill: bool = True
) -> dict:
    """Kill ``dynadask run`` while ``stage`` writes; run it again; what each run did.

    With ``ref`` (the clean run's folder), start from a copy of its store made incomplete
    from ``stage`` on (:func:`copy_of_clean`)."""
    store = _store(out, src)
    if ref is not None:
        copy_of_clean(ref, out, src, before=stage)
    out.mkdir(parents=True, exist_ok=True)
    log = (out.parent / f"{out.name}.log").open("w")
    proc = subprocess.Popen(_run_cmd(src, out, STAGES, chunk), env=_env(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    killed = None
    while kill and proc.poll() is None:
        if list(store.parent.glob(f"{store.name}.staging-{COMMIT_NAME.get(stage, stage)}-*")):
            os.killpg(proc.pid, signal.SIGKILL)
            killed = time.strftime("%H:%M:%S")
            break
        time.sleep(0.05)
    proc.wait()
    before = _completed(store)
    start = time.perf_counter()
    again = subprocess.run(_run_cmd(src, out, STAGES, chunk), env=_env(), stdout=log,
                           stderr=subprocess.STDOUT)  # fmt: skip
    return {"killed_at": killed, "complete_after_kill": before, "rerun_status": again.returncode,
            "rerun_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def copy_of_clean(ref: Path, out: Path, src: Path, before: str | None = None) -> Path:
    """A copy of the clean store in ``out``; with ``before``, its records of ``before`` and
    every later stage removed (the records of the earlier stages kept)."""
    import zarr

    store = _store(out, src)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    shutil.copytree(_store(ref, src), store)
    if before is not None:
        keep = set(STAGES[: STAGES.index(before)])
        if "cell_velocities" in keep:  # that stage records its basis
            keep.add("cell_velocities_umap")
        group = zarr.open_group(store / "uns" / "dynadask" / "stages", mode="r+")
        for name in list(group.array_keys()):
            if name not in keep:
                del group[name]
        zarr.consolidate_metadata(store)
    return store


def _control(src: Path, out: Path, stage: str, chunk: int, ref: Path | None = None) -> dict:
    return driver_kill(src, out, stage, chunk, ref, kill=False)


def _completed(store: Path) -> list[str]:
    import dynadask as dyn
    from dynadask.pipeline import completed

    return sorted(completed(dyn.io.open(store)))


def _states(dask_scheduler) -> tuple[int, int]:
    done = pending = 0
    for ts in dask_scheduler.tasks.values():
        if ts.state in ("memory", "released", "forgotten"):
            done += 1
        elif ts.state in ("processing", "waiting", "queued", "no-worker"):
            pending += 1
    return done, pending


class Killer(threading.Thread):
    """SIGKILL one worker process once the scheduler has tasks done and tasks to run."""

    def __init__(self, client, min_done: int = 2) -> None:
        super().__init__(daemon=True)
        self.client, self.min_done = client, min_done
        self.stop = threading.Event()
        self.killed: dict | None = None

    def run(self) -> None:
        pids = self.client.run(os.getpid)
        while not self.stop.is_set():
            done, pending = self.client.run_on_scheduler(_states)
            if done >= self.min_done and pending >= 1:
                addr = sorted(pids)[0]
                os.kill(pids[addr], signal.SIGKILL)
                self.killed = {"done": done, "pending": pending}
                return
            time.sleep(0.05)


def worker_kill(src: Path, out: Path, stage: str, chunk: int, ref: Path | None = None) -> dict:
    """Run the stages before ``stage`` cleanly, then ``stage`` with a worker killed.

    With ``ref`` (the clean run's folder): ``stage`` runs again (forced) on a copy of the
    clean store, with a worker killed, and nothing else runs."""
    from distributed import Client, LocalCluster

    from dynadask import pipeline

    i = STAGES.index(stage)
    out.mkdir(parents=True, exist_ok=True)
    log = (out.parent / f"{out.name}.log").open("w")
    if ref is not None:
        copy_of_clean(ref, out, src)
    else:
        subprocess.run(_run_cmd(src, out, STAGES[:i], chunk), check=True, env=_env(),
                       stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            memory_limit="1.5GiB",
            dashboard_address="127.0.0.1:0",
        ) as cluster,  # fmt: skip
        Client(cluster) as client,
    ):
        killer = Killer(client)
        killer.start()
        start = time.perf_counter()
        try:
            pipeline.run(
                _store(out, src), stages=[stage], force=ref is not None, log=lambda s: None
            )
        finally:
            killer.stop.set()
            killer.join()
        took = time.perf_counter() - start
    if ref is not None:
        return {"killed": killer.killed, "stage_s": round(took, 1)}
    rest = subprocess.run(_run_cmd(src, out, STAGES, chunk), env=_env(), stdout=log,
                          stderr=subprocess.STDOUT)  # fmt: skip
    return {"killed": killer.killed, "stage_s": round(took, 1), "rest_status": rest.returncode}


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x)


def compare(a: Path, b: Path, rtol: float) -> dict:
    """Largest relative gap per compared key of two stores (``nan`` flags differing NaNs)."""
    import dynadask as dyn

    x, y = dyn.io.open(a), dyn.io.open(b)
    gaps: dict[str, float] = {}
    for slot in COMPARED:
        left, right = getattr(x, slot), getattr(y, slot)
        for key in left.keys() if slot in ("layers", "obsm") else left.columns:
            if key not in (right.keys() if slot in ("layers", "obsm") else right.columns):
                gaps[f"{slot}/{key}"] = float("inf")
                continue
            u, v = left[key], right[key]
            if hasattr(u, "compute"):
                u, v = u.compute(), v.compute()
            u, v = _dense(u), _dense(v)
            if u.dtype.kind not in "fiub":
                gaps[f"{slot}/{key}"] = 0.0 if np.array_equal(u.astype(str), v.astype(str)) else 1.0
                continue
            u, v = u.astype(np.float64), v.astype(np.float64)
            if not np.array_equal(np.isnan(u), np.isnan(v)):
                gaps[f"{slot}/{key}"] = float("nan")
                continue
            scale = np.nanmax(np.abs(u)) if np.isfinite(u).any() else 1.0
            diff = np.nanmax(np.abs(u - v)) if u.size else 0.0
            gaps[f"{slot}/{key}"] = float(diff / scale) if scale else float(diff)
    worst = max(gaps.values(), default=0.0)
    return {"equal": bool(worst <= rtol), "worst": worst,
            "worst_key": max(gaps, key=lambda k: gaps[k]) if gaps else None}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    """Run the cases and print one line each (and ``faults.json`` in ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=50_000)
    parser.add_argument("--chunk-cells", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=Path("faults"))
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--cases", nargs="*", default=None, help="e.g. driver:moments")
    parser.add_argument(
        "--from-clean", action="store_true", help="start cases from the clean store"
    )
    args = parser.parse_args(argv)
    from benchmarks.make_atlas import make_atlas

    args.out.mkdir(parents=True, exist_ok=True)
    src = args.out / f"atlas_{args.cells}.zarr"
    if not src.exists():
        make_atlas(src, args.cells, order="random", chunk_cells=args.chunk_cells,
                   graph="simple")  # fmt: skip
    ref = args.out / "clean"
    if not _store(ref, src).exists() or len(_completed(_store(ref, src))) < len(STAGES) - 1:
        print(f"clean run: {run_clean(src, ref, args.chunk_cells):.0f} s", flush=True)
    cases = args.cases or [f"driver:{s}" for s in DRIVER_KILLS] + [
        f"worker:{s}" for s in WORKER_KILLS
    ]
    results = {}
    for case in cases:
        kind, stage = case.split(":")
        out = args.out / case.replace(":", "_")
        shutil.rmtree(out, ignore_errors=True)
        fn = {"driver": driver_kill, "worker": worker_kill, "control": _control}[kind]
        try:
            info = fn(src, out, stage, args.chunk_cells, ref if args.from_clean else None)
            info |= compare(_store(ref, src), _store(out, src), args.rtol)
        except Exception as err:  # noqa: BLE001 - a case's failure is its outcome
            info = {"error": f"{type(err).__name__}: {err}"}
        results[case] = info
        print(case, json.dumps(info, default=str), flush=True)
    name = "faults_from_clean.json" if args.from_clean else "faults.json"
    (args.out / name).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
