"""Least-action paths in 30-D PCA space on synthetic cells, pairs as tasks on 2 workers.

python -m benchmarks.lap                         # 100 paths, 100,000 cells, 2 workers
python -m benchmarks.lap --paths 10 --cells 20000

The cells and their field are those of :mod:`benchmarks.vf_jacobian` (noise around a smooth
curve in 30 dimensions, velocities from a known nonlinear field; SparseVFC with ``--M``
control points fitted on ``--fit-cells`` cells). The cells go into a store; ``--paths``
pairs (a start among the 10% of cells earliest along the curve, a target among the 10%
latest, seeded) are solved with ``dyn.pd.least_action(basis='pca')`` on the store-backed
AnnData: initial paths on the kNN graph of at most 20,000 sampled cells, one task per pair,
the result committed to the store. The row gives wall seconds and the peak resident memory
of the client, the largest worker and all processes (sampled every 0.2 s), and the note the
BFGS iterations and the median action.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import dynadask as dyn
from benchmarks.common import MemoryMonitor, Row, format_rows, save
from benchmarks.vf_jacobian import D, cells, fit

N_GENES = 500


def curve_position(n: int, seed: int) -> np.ndarray:
    """The curve parameter of the cells of ``cells(n, seed)`` (same draws)."""
    return np.random.default_rng(seed).uniform(0, 1, n)


def store(n: int, vf: dict, folder: Path, chunk_cells: int) -> Path:
    """A store with ``n`` cells: empty counts, ``X_pca``, the field and random loadings."""
    from scipy import sparse

    X, _ = cells(n, seed=10 + n)
    Q = np.linalg.qr(np.random.default_rng(4).normal(size=(N_GENES, D)))[0]
    adata = ad.AnnData(
        X=sparse.csr_matrix((n, N_GENES), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(
            {"use_for_pca": np.ones(N_GENES, bool)}, index=[f"g{i}" for i in range(N_GENES)]
        ),
        obsm={"X_pca": X.astype(np.float32)},
        uns={
            "VecFld_pca": {k: vf[k] for k in ("X_ctrl", "C", "beta")},
            "PCs": Q,
            "pca_mean": np.zeros(N_GENES),
        },
    )
    path = folder / f"cells_{n}.zarr"
    h5 = folder / f"cells_{n}.h5ad"
    adata.write_h5ad(h5)
    dyn.io.convert(h5, path, chunk_cells=chunk_cells)
    h5.unlink()
    return path


def pairs(n: int, k: int, seed: int = 5) -> tuple[list[str], list[str]]:
    """``k`` (start, target) cell names: early on the curve to late on it."""
    t = curve_position(n, 10 + n)
    rng = np.random.default_rng(seed)
    early = np.flatnonzero(t < np.quantile(t, 0.1))
    late = np.flatnonzero(t > np.quantile(t, 0.9))
    a, b = rng.choice(early, k), rng.choice(late, k)
    return [f"c{i}" for i in a], [f"c{i}" for i in b]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--paths", type=int, default=100)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--M", type=int, default=1000, help="control points of the field")
    parser.add_argument("--fit-cells", type=int, default=20_000)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--results", type=Path, default=Path("results_lap"))
    args = parser.parse_args()
    vf, fit_s = fit(args.fit_cells, args.M)
    print(f"field: {args.fit_cells:,} cells, M = {vf['X_ctrl'].shape[0]}, fit {fit_s:.1f} s")
    rows: list[Row] = []
    folder = Path(tempfile.mkdtemp(prefix="lap_"))
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    try:
        path = store(args.cells, vf, folder, args.chunk_cells)
        init, target = pairs(args.cells, args.paths)
        with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
            adata = dyn.io.open(path)
            start = time.perf_counter()
            with mon.stage(f"least_action x{args.paths}", args.cells, rows, note="30-D, to store"):
                dyn.pd.least_action(adata, init, target, basis="pca")
            wall = time.perf_counter() - start
        out = dyn.io.open(path).uns["LAP_pca"]
        iters = np.asarray(out["parameters"]["iterations"])
        action = np.asarray(out["action"])[:, -1]
        assert np.asarray(out["prediction"]).shape == (args.paths, 27, D)
        cpu = np.asarray(out["parameters"]["cpu_seconds"])
        rows[-1].note += (
            f"; CPU s per path median {np.median(cpu):.1f} (max {cpu.max():.1f}, "
            f"sum {cpu.sum():.0f})"
            f"; BFGS its median {np.median(iters):.0f} (max {iters.max()}), "
            f"converged {np.mean(out['parameters']['converged']):.0%}, "
            f"median action {np.median(action):.3g}"
        )
        print(f"{args.paths} paths in {wall:.1f} s: {wall / args.paths:.2f} s per path")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(format_rows(rows))
    save(rows, args.results, {"fit_cells": args.fit_cells, "M": args.M, "fit_seconds": fit_s})


if __name__ == "__main__":
    main()
