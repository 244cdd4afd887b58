"""`dynadask run` on a cluster of separate processes, with each process's peak memory per stage.

    python -m benchmarks.cluster_run ATLAS.zarr --out RUN_DIR [--workers 2] [--threads 1]
        [--memory-limit 10GiB]

Starts a scheduler (`dask scheduler`) and ``--workers`` worker processes (`dask worker` under its
nanny, ``--threads`` task threads each, default 1) as separate OS processes on loopback, then
runs the command a user runs,
``dynadask run ATLAS --scheduler ADDRESS --out RUN_DIR``, as a third kind of process (the
driver). Every process's resident memory (with its children) is sampled every 0.2 s; the
driver's output lines are time-stamped as they arrive, so each stage's window ("<stage> done
in ...") gets the peak of the driver, the scheduler and each worker. Prints one row a stage
and the whole run, and writes ``cluster_run.json`` in RUN_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from .common import GIB, machine

DONE = re.compile(r"^(?P<stage>\S+)\s+(done in|already complete)|^(?P<convert>converted) ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss(proc: psutil.Process) -> int:
    """Resident memory of ``proc`` and its descendants (0 once it is gone)."""
    try:
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0


class Sampler:
    """Peak resident memory per named process, per stage window."""

    def __init__(self, procs: dict[str, psutil.Process], interval: float = 0.2) -> None:
        self.procs = procs
        self.interval = interval
        self.window: dict[str, int] = dict.fromkeys(procs, 0)
        self.whole: dict[str, int] = dict.fromkeys(procs, 0)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            sample = {name: _rss(p) for name, p in self.procs.items()}
            with self.lock:
                for name, rss in sample.items():
                    self.window[name] = max(self.window[name], rss)
                    self.whole[name] = max(self.whole[name], rss)
            self.stop.wait(self.interval)

    def take_window(self) -> dict[str, float]:
        """The peaks since the last call, in GiB; starts a new window."""
        with self.lock:
            out = {k: v / GIB for k, v in self.window.items()}
            self.window = dict.fromkeys(self.procs, 0)
        return out


def start_cluster(
    n_workers: int, memory_limit: str, scratch: Path, nthreads: int = 1
) -> tuple[str, list]:
    """Start ``dask scheduler`` and ``n_workers`` ``dask worker`` processes; return address."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    log = open(scratch / "cluster.log", "w")  # noqa: SIM115 - kept open for the processes
    sched = subprocess.Popen(
        [str(bindir / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", ":0"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    workers = [  # fmt: skip
        subprocess.Popen(
            [
                str(bindir / "dask"),
                "worker",
                address,
                "--nthreads",
                str(nthreads),
                "--nworkers",
                "1",
                "--memory-limit",
                memory_limit,
                "--local-directory",
                str(scratch / f"w{i}"),
                "--name",
                f"worker-{i}",
                "--dashboard-address",
                ":0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )  # fmt: skip
        for i in range(n_workers)
    ]
    from distributed import Client

    deadline = time.time() + 120
    while True:
        try:
            with Client(address, timeout=5) as c:
                c.wait_for_workers(n_workers, timeout=60)
            break
        except Exception:  # noqa: BLE001 - the scheduler may not be listening yet
            if time.time() > deadline:
                raise
            time.sleep(1)
    return address, [sched, *workers]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="input store or file of `dynadask run`")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--memory-limit",
        default=None,
        help="per worker (default: as dynadask's LocalCluster, 0.8 x memory / workers)",
    )
    parser.add_argument("--threads", type=int, default=1, help="task threads per worker")
    parser.add_argument("--stages", nargs="*", default=None)
    parser.add_argument("--resume", action="store_true", help="keep RUN_DIR (resume a run)")
    parser.add_argument(
        "--force", action="store_true", help="redo the named stages (`dynadask run --force`)"
    )
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    scratch = args.out / "cluster"
    scratch.mkdir(exist_ok=True)
    if args.memory_limit is None:
        args.memory_limit = str(int(0.8 * psutil.virtual_memory().total / args.workers))
    address, cluster = start_cluster(args.workers, args.memory_limit, scratch, args.threads)
    cmd = [str(Path(sys.executable).parent / "dynadask"), "run", args.src,
           "--scheduler", address, "--out", str(args.out), "--no-progress"]  # fmt: skip
    if args.stages:
        cmd += ["--stages", *args.stages]
    if args.force:
        cmd += ["--force"]
    print(machine(), flush=True)
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    driver = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    names = ["driver", "scheduler"] + [f"worker-{i}" for i in range(args.workers)]
    pids = [driver.pid] + [p.pid for p in cluster]
    procs = {name: psutil.Process(pid) for name, pid in zip(names, pids, strict=True)}
    sampler = Sampler(procs)
    sampler.thread.start()
    rows = []
    last = start
    assert driver.stdout is not None
    for line in driver.stdout:
        now = time.perf_counter()
        sys.stdout.write(f"[{now - start:8.1f}] {line}")
        sys.stdout.flush()
        m = DONE.match(line.strip())
        if m:
            peaks = sampler.take_window()
            stage = "convert" if m.group("convert") else m.group("stage")
            rows.append({"stage": stage, "seconds": now - last, "peaks_gib": peaks})
            last = now
    code = driver.wait()
    total = time.perf_counter() - start
    sampler.stop.set()
    sampler.thread.join()
    whole = {k: v / GIB for k, v in sampler.whole.items()}
    for p in cluster:
        p.terminate()
    for p in cluster:
        p.wait(timeout=30)

    head = f"{'stage':<22}{'wall s':>9}" + "".join(f"{n:>12}" for n in names)
    print("\npeak resident memory per process (GiB), each with its children")
    print(head)
    for r in rows:
        cells = "".join(f"{r['peaks_gib'][n]:>12.2f}" for n in names)
        print(f"{r['stage']:<22}{r['seconds']:>9.1f}{cells}")
    print(f"{'whole run':<22}{total:>9.1f}" + "".join(f"{whole[n]:>12.2f}" for n in names))
    print(f"driver exit code {code}")
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "command": cmd,
        "exit_code": code,
        "seconds": total,
        "stages": rows,
        "whole_peaks_gib": whole,
    }
    (args.out / "cluster_run.json").write_text(json.dumps(report, indent=2))
    sys.exit(code)


if __name__ == "__main__":
    main()
