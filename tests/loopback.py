"""A real Dask cluster on loopback: ``dask scheduler`` and ``dask worker`` as OS processes.

Each process is started from the ``dask`` command of this interpreter's environment in its own
session (process group), so the teardown can end it together with the worker processes its
nanny spawned. The processes import this checkout's ``dynadask`` (``PYTHONPATH``), as the
workers of a real deployment import the installed one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0


@dataclass
class Loopback:
    """A running loopback cluster: its scheduler address and the processes behind it."""

    address: str
    dashboard: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def pids(self) -> set[int]:
        """Every live process of the cluster, the nannies' worker processes included."""
        pids: set[int] = set()
        for proc in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                p = psutil.Process(proc.pid)
                pids |= {p.pid} | {c.pid for c in p.children(recursive=True)}
        return pids


def dask_command() -> str:
    """The ``dask`` command beside this interpreter (the venv's), else the one on PATH."""
    exe = Path(sys.executable).parent / "dask"
    found = str(exe) if exe.exists() else shutil.which("dask")
    if found is None:
        raise RuntimeError("no `dask` command: install distributed into this environment")
    return found


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.pop("DYNADASK_SCHEDULER", None)
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(
            [dask_command(), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
            start_new_session=True,  # its own process group: killpg reaches its children
        )


def _wait_for_file(path: Path, procs: list[subprocess.Popen], logs: list[Path]) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[:2]} exited early:\n{log.read_text()[-3000:]}")
        if path.exists():
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(path.read_text())
        time.sleep(0.2)
    raise TimeoutError(f"the scheduler wrote no {path.name} within {STARTUP_TIMEOUT} s")


def stop(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """End each process group: SIGTERM, then SIGKILL what is left after ``grace`` seconds."""
    members: list[psutil.Process] = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p = psutil.Process(proc.pid)
            members += [p, *p.children(recursive=True)]
    for proc in reversed(procs):  # workers first, the scheduler last
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=grace)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for p in alive:  # a child that left the group
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(members, timeout=grace)
    for proc in procs:
        proc.wait(timeout=grace)  # reap: no zombies


@contextlib.contextmanager
def loopback_cluster(
    folder: Path,
    n_workers: int = 2,
    memory_limit: str = "1.5GiB",
    tls: Any = None,
    worker_host: str = "127.0.0.1",
) -> Iterator[Loopback]:
    """Start ``dask scheduler`` and ``n_workers`` single-threaded ``dask worker`` processes.

    Parameters
    ----------
    folder
        Where the scheduler file, the processes' logs and the workers' spill folders go.
    n_workers
        Worker processes (one ``dask worker`` command each, one thread each).
    memory_limit
        Each worker's memory limit.
    tls
        Certificate files (``ca``, ``cert``, ``key`` attributes, as ``deploy/tls.py``'s
        ``TLSFiles``): the scheduler listens on ``tls://`` and every process presents the
        certificate; ``None`` for plain TCP.
    worker_host
        The loopback address the workers listen on: ``127.0.0.2`` makes them look like
        workers on another host to the client (any ``127.x.y.z`` reaches this machine).

    Yields
    ------
    Loopback
        The scheduler's address once all workers have joined. Every process is ended on exit,
        also when the body raises.
    """
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    secure: list[str] = []
    security = None
    if tls is not None:
        from distributed.security import Security

        secure = ["--tls-ca-file", str(tls.ca), "--tls-cert", str(tls.cert),
                  "--tls-key", str(tls.key)]  # fmt: skip
        security = Security(tls_ca_file=str(tls.ca), tls_client_cert=str(tls.cert),
                            tls_client_key=str(tls.key), require_encryption=True)  # fmt: skip
    procs: list[subprocess.Popen] = []
    logs = [folder / "scheduler.log"]
    try:
        procs.append(
            _start(
                [
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(scheduler_file),
                    *(["--protocol", "tls", *secure] if tls is not None else []),
                ],
                logs[0],
            )  # fmt: skip
        )
        info = _wait_for_file(scheduler_file, procs, logs)
        for i in range(n_workers):
            logs.append(folder / f"worker{i}.log")
            procs.append(
                _start(
                    [
                        "worker",
                        info["address"],
                        "--nthreads",
                        "1",
                        "--memory-limit",
                        memory_limit,
                        "--host",
                        worker_host,
                        "--no-dashboard",
                        "--name",
                        f"loopback-{i}",
                        "--local-directory",
                        str(folder / f"worker{i}"),
                        *secure,
                    ],
                    logs[-1],
                )  # fmt: skip
            )
        with Client(info["address"], timeout="30s", security=security) as c:
            c.wait_for_workers(n_workers, timeout=STARTUP_TIMEOUT)
            dashboard = c.dashboard_link
        yield Loopback(info["address"], dashboard, procs)
    finally:
        stop(procs)
