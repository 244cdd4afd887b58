"""The ``figures`` stage of ``dynadask run`` on a finished store, figure by figure, timed.

python -m benchmarks.pl_figures STORE.zarr --out DIR                  # one process
python -m benchmarks.pl_figures STORE.zarr --out DIR --workers 2      # on a LocalCluster

``STORE.zarr`` is a store every stage of ``dynadask run`` has been through (the stage only
reads it; its commit is skipped here, so the store is left as it is). The stage runs as the
pipeline runs it (``pipeline._figures``), writing its PNGs under ``DIR/figures``; each
``dyn.pl`` call it makes is timed, and so is each of the stage's own helpers that exist
(the reads shared by the figures), in wall seconds and CPU seconds of this process (user +
sys). Without ``--workers`` Dask runs synchronously in this process, so the CPU seconds are
the whole cost; with workers they are the driver's only. The last rows are the rest of the
stage (the guide figure's ``savefig``, its panel layout) and the whole stage; the peak
resident memory of this process closes the table.

``--tile K`` draws the figures of ``K`` times the store's cells: the data the stage reads
(``pipeline.figure_data``) is repeated ``K`` times, each copy's positions moved by a seeded
jitter of 0.2 % of the embedding's range, so the drawing is timed at ``K x n`` cells (the
read is timed at ``n`` cells; it grows linearly with the store's row chunks).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import dask  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask import pipeline  # noqa: E402

PL_CALLS = (
    "scatters",
    "streamline_plot",
    "cell_wise_vectors",
    "grid_vectors",
    "phase_portraits",
    "topography",
    "fate",
)
STAGE_HELPERS = ("figure_data",)
"""Helpers of the stage timed when the pipeline has them."""


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    """Wall and CPU seconds of each wrapped call, in call order."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` timed under ``name`` plus what identifies the call (its output file)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name
            path = (kwargs.get("save_kwargs") or {}).get("path")
            if path:
                label = f"{name} -> {Path(path).name}"
            elif kwargs.get("ax") is not None:
                label = f"{name} (guide panel, color={kwargs.get('color')})"
            w, c = time.perf_counter(), _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.rows.append((label, time.perf_counter() - w, _cpu() - c))

        return timed


@contextlib.contextmanager
def timed_stage(timer: Timer) -> Iterator[None]:
    """Time the stage's ``dyn.pl`` calls and helpers; skip its commit."""
    saved: list[tuple[Any, str, Any]] = []
    for owner, names in ((pipeline.pl, PL_CALLS), (pipeline, STAGE_HELPERS)):
        for name in names:
            if hasattr(owner, name):
                saved.append((owner, name, getattr(owner, name)))
                setattr(owner, name, timer.wrap(name, getattr(owner, name)))
    saved.append((pipeline.io, "commit", pipeline.io.commit))
    pipeline.io.commit = lambda *a, **k: None
    try:
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def tiled(view: ad.AnnData, k: int, seed: int = 0) -> ad.AnnData:
    """``view``'s cells ``k`` times (new names; embedding positions jittered per copy)."""
    rng = np.random.default_rng(seed)
    n = view.n_obs
    obs = pd.concat([view.obs] * k)
    obs.index = [f"{name}-{i}" for i in range(k) for name in view.obs_names]
    obsm = {}
    for key, x in view.obsm.items():
        x = np.tile(np.asarray(x), (k, 1))
        if key.startswith("X_"):
            span = np.ptp(x[np.isfinite(x).all(axis=1)], axis=0)
            x = x + rng.normal(scale=0.002 * span, size=x.shape) * (np.arange(k * n) >= n)[:, None]
        obsm[key] = x
    layers = {key: np.tile(np.asarray(x), (k, 1)) for key, x in view.layers.items()}
    return ad.AnnData(obs=obs, var=view.var, obsm=obsm, layers=layers, uns=view.uns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results_pl_figures"))
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--tile", type=int, default=1)
    args = parser.parse_args()
    if args.tile > 1:
        read = pipeline.figure_data
        pipeline.figure_data = lambda *a, **k: tiled(read(*a, **k), args.tile)
    adata = dyn.io.open(args.store)
    context = pipeline.Context(figures=args.out / "figures", log=print)
    timer = Timer()
    if args.workers:
        cluster = dyn.parallel.client(n_workers=args.workers, threads_per_worker=1)
    else:
        cluster = dask.config.set(scheduler="synchronous")
    with cluster, timed_stage(timer):
        w, c = time.perf_counter(), _cpu()
        pipeline._figures(adata, context)
        wall, cpu = time.perf_counter() - w, _cpu() - c
    rest = (wall - sum(r[1] for r in timer.rows), cpu - sum(r[2] for r in timer.rows))
    rows = [*timer.rows, ("rest of the stage", *rest), ("figures stage", wall, cpu)]
    width = max(len(r[0]) for r in rows)
    where = f"{args.workers} workers (CPU: driver only)" if args.workers else "synchronous"
    cells = f"{adata.n_obs:,} cells" + (f" drawn {args.tile} times" if args.tile > 1 else "")
    print(f"\n{cells}, {where}")
    print(f"{'call':<{width}}  {'wall s':>8}  {'CPU s':>8}")
    for name, w_s, c_s in rows:
        print(f"{name:<{width}}  {w_s:8.2f}  {c_s:8.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak resident memory of this process: {peak:.2f} GiB")


if __name__ == "__main__":
    main()
