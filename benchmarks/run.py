"""The benchmark harness: the workflow's stages at chosen sizes, on a chosen cluster.

    python -m benchmarks.run --sizes 10000 100000 --workers 2
    python -m benchmarks.run --sizes 100000 --stages dynamics --scheduler tcp://host:8786
    python -m benchmarks.run --sizes 10000 --compare-dynamo /path/to/dynamo-venv/bin/python

For each size it makes (once, cached in --data-dir) an atlas store with benchmarks.make_atlas
(--kind continuous or copies, --order locality, by-cluster or random), converts it into a
working store with dyn.io.convert (as `dynadask run` does with its input), runs the stages on
it and prints one row a stage: wall seconds, peak memory of the client, of the largest worker
and of all processes, cells per second. With
--compare-dynamo, dynamo runs the same stages on the same cells (exported to .h5ad) in that
interpreter; its time, peak memory and the time ratio are put in the table, and a failure
(error, time-out or memory kill) is marked. Results go to --results as CSV/JSON and a PNG of
time and memory versus cells (log-log).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import dynadask as dyn
from dynadask import pipeline

from .common import MemoryMonitor, Row, format_rows, machine, save
from .convert import export_h5ad
from .make_atlas import KINDS, ORDERS, make_atlas

HERE = Path(__file__).parent


def atlas(
    n_cells: int, data_dir: Path, chunk_cells: int, client, order: str, kind: str = "continuous"
) -> Path:
    """Return the cached atlas store of ``n_cells`` cells, making it the first time."""
    path = data_dir / f"atlas_{n_cells}_{chunk_cells}_{kind}_{order}.zarr"
    if not path.exists():
        tmp = path.with_name(path.name + ".making")
        opts = {"kind": kind, "order": order, "chunk_cells": chunk_cells, "client": client}
        make_atlas(tmp, n_cells, overwrite=True, **opts)
        tmp.rename(path)
    return path


def run_ours(
    store: Path, stages: list[str], n: int, mon: MemoryMonitor, chunk_cells: int
) -> list[Row]:
    """Run our stages on a fresh conversion of ``store``; one row a stage."""
    work = store.with_name(store.name.replace(".zarr", ".work.zarr"))
    shutil.rmtree(work, ignore_errors=True)
    rows: list[Row] = []
    with mon.stage("convert", n, rows):  # as dynadask run does with its input
        dyn.io.convert(store, work, chunk_cells=chunk_cells)
    adata = dyn.io.open(work)
    context = pipeline.Context(figures=work.with_name(work.stem + "_figures"))
    for stage in pipeline.STAGES:
        if stage.name in stages:
            with mon.stage(stage.name, n, rows):
                adata = stage.run(adata, context) or adata  # reorder reopens the store
    shutil.rmtree(work, ignore_errors=True)
    return rows


def run_dynamo(
    python: str, store: Path, stages: list[str], n: int, timeout: float, out: Path
) -> list[dict]:
    """Run dynamo's stages in ``python`` on the store's cells; return its rows."""
    h5ad = store.with_suffix(".h5ad")
    if not h5ad.exists():
        export_h5ad(store, h5ad)
    report = out / f"dynamo_{n}.json"
    report.unlink(missing_ok=True)
    cmd = [python, str(HERE / "dynamo_stages.py"), "--h5ad", str(h5ad), "--json", str(report)]
    try:
        proc = subprocess.run([*cmd, "--stages", *stages], timeout=timeout, capture_output=True)
        status = "" if proc.returncode == 0 else _killed(proc.returncode)
    except subprocess.TimeoutExpired:
        status = f"did not finish within {timeout:.0f} s"
    rows = json.loads(report.read_text()) if report.exists() else []
    done = {r["stage"] for r in rows}
    for stage in stages:
        if stage not in done and status:
            rows.append({"stage": stage, "cells": n, "status": status, "seconds": None})
            status = "not reached"
    return rows


def _killed(code: int) -> str:
    return "killed (out of memory)" if code in (-9, 137) else f"exited with code {code}"


def merge(ours: list[Row], theirs: list[dict]) -> None:
    """Put dynamo's time and the ratio into the note of our matching rows."""
    by_stage = {r["stage"]: r for r in theirs}
    for row in ours:
        other = by_stage.get(row.stage)
        if other is None:
            continue
        if other.get("status") == "ok":
            ratio = other["seconds"] / row.seconds if row.seconds else float("nan")
            speed = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            row.note = (
                f"dynamo {other['seconds']:.1f} s, {other['peak_gib']:.2f} GiB; dynadask {speed}"
            )
        else:
            row.note = f"dynamo: {other['status']}"


def plot(rows: list[Row], out: Path) -> None:
    """Save time and peak memory versus cells, log-log, one line a stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for stage in dict.fromkeys(r.stage for r in rows):
        mine = sorted((r for r in rows if r.stage == stage), key=lambda r: r.cells)
        cells = [r.cells for r in mine]
        axes[0].plot(cells, [r.seconds for r in mine], "o-", label=stage)
        axes[1].plot(cells, [r.total_peak_gib for r in mine], "o-", label=stage)
    for ax, label in zip(axes, ("wall seconds", "peak memory, all processes (GiB)"), strict=True):
        ax.set(xscale="log", yscale="log", xlabel="cells", ylabel=label)
    axes[0].legend(fontsize=7)
    fig.suptitle(machine(), fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    names = [s.name for s in pipeline.STAGES]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--stages", nargs="+", default=names, choices=names)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="continuous",
        help="atlas cells: continuous mixtures or resampled copies (see benchmarks.make_atlas)",
    )
    parser.add_argument(
        "--order",
        choices=ORDERS,
        default="locality",
        help="row order of the atlas (see benchmarks.make_atlas)",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("benchmarks/data"))
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/run"))
    parser.add_argument("--compare-dynamo", metavar="PYTHON", default=None)
    parser.add_argument("--dynamo-timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    args.results.mkdir(parents=True, exist_ok=True)
    print(machine())
    rows: list[Row] = []
    kwargs = {"n_workers": args.workers} if args.workers else {}
    with dyn.parallel.client(args.scheduler, **kwargs) as client, MemoryMonitor() as mon:
        for n in args.sizes:
            rows_per_chunk = min(args.chunk_cells, n)
            store = atlas(n, args.data_dir, rows_per_chunk, client, args.order, args.kind)
            ours = run_ours(store, args.stages, n, mon, rows_per_chunk)
            if args.compare_dynamo:
                theirs = run_dynamo(
                    args.compare_dynamo, store, args.stages, n, args.dynamo_timeout, args.results
                )
                merge(ours, theirs)
            rows += ours
    print(format_rows(rows))
    meta = {"sizes": args.sizes, "stages": args.stages, "kind": args.kind, "order": args.order}
    save(rows, args.results, meta)
    plot(rows, args.results)
    print(f"results in {args.results}/ (results.csv, results.json, scaling.png)", file=sys.stderr)


if __name__ == "__main__":
    main()
