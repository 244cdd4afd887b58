"""Shared benchmark plumbing: a memory monitor over the whole process tree, tables, files."""

from __future__ import annotations

import csv
import json
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

GIB = 2**30


@dataclass
class Row:
    """One measured stage."""

    stage: str
    cells: int
    seconds: float
    client_peak_gib: float
    worker_peak_gib: float
    total_peak_gib: float
    workers: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def cells_per_second(self) -> float:
        return self.cells / self.seconds if self.seconds > 0 else float("nan")


class MemoryMonitor:
    """Sample the resident memory of this process and all its descendants.

    Worker processes of a LocalCluster are children (or grandchildren, through the nanny) of
    this process, so the client's and every worker's peak are seen without asking Dask.
    """

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.me = psutil.Process(os.getpid())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        self.client_peak = 0
        self.worker_peaks: dict[int, int] = {}
        self.total_peak = 0

    def _sample(self) -> None:
        client = self.me.memory_info().rss
        self.client_peak = max(self.client_peak, client)
        total = client
        for child in self.me.children(recursive=True):
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            self.worker_peaks[child.pid] = max(self.worker_peaks.get(child.pid, 0), rss)
        self.total_peak = max(self.total_peak, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryMonitor:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    @contextmanager
    def stage(self, name: str, cells: int, rows: list[Row], note: str = "") -> Iterator[None]:
        """Time a stage and record its peaks (reset at the start of the stage)."""
        self.reset()
        self._sample()
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        self._sample()
        workers = sorted((v / GIB for v in self.worker_peaks.values()), reverse=True)
        rows.append(
            Row(
                stage=name,
                cells=cells,
                seconds=seconds,
                client_peak_gib=self.client_peak / GIB,
                worker_peak_gib=max(workers, default=0.0),
                total_peak_gib=self.total_peak / GIB,
                workers=[round(w, 2) for w in workers],
                note=note,
            )
        )
        print(format_rows(rows[-1:], header=False), flush=True)


HEADER = (
    f"{'stage':<22} {'cells':>10} {'wall s':>9} {'client GiB':>10} {'max worker GiB':>14} "
    f"{'all procs GiB':>13} {'cells/s':>10}  note"
)


def format_rows(rows: list[Row], header: bool = True) -> str:
    """Return rows as a fixed-width table."""
    lines = [HEADER] if header else []
    for r in rows:
        lines.append(
            f"{r.stage:<22} {r.cells:>10,} {r.seconds:>9.1f} {r.client_peak_gib:>10.2f} "
            f"{r.worker_peak_gib:>14.2f} {r.total_peak_gib:>13.2f} {r.cells_per_second:>10,.0f}"
            f"  {r.note}"
        )
    return "\n".join(lines)


def machine() -> str:
    """Describe the machine in one line."""
    mem = psutil.virtual_memory().total / GIB
    py = platform.python_version()
    return f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB, Python {py}"


def save(rows: list[Row], out: Path, meta: dict | None = None) -> None:
    """Write rows as CSV and JSON (with the date and machine) under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*asdict(rows[0]).keys(), "cells_per_second"] if rows else [])
        for r in rows:
            writer.writerow([*asdict(r).values(), r.cells_per_second])
    payload = {"date": stamp, "machine": machine(), **(meta or {})}
    payload["rows"] = [{**asdict(r), "cells_per_second": r.cells_per_second} for r in rows]
    (out / "results.json").write_text(json.dumps(payload, indent=2))
