"""The fused vector-calculus pass and 8 x 8 gene Jacobians on synthetic cells in 30-D PCA space.

python -m benchmarks.vf_jacobian                          # 10,000 and 100,000 cells, 2 workers
python -m benchmarks.vf_jacobian --sizes 10000 --workers 1

Cells lie around a smooth curve in 30 dimensions (Gaussian noise around a random Fourier
curve), with velocities from a known nonlinear field. One field is fitted (SparseVFC, ``--M``
control points, on the first ``--fit-cells`` cells) and evaluated at every size. Per size:

- ``fused pass``: speed, divergence, rotation (n-D curl), acceleration, curvature and the
  Jacobian determinant at every cell in one pass over row blocks (results computed to memory);
- ``jacobian 8x8``: ``dyn.vf.jacobian`` with 8 regulators x 8 effectors at every cell on a
  store-backed AnnData: the cells x 8 x 8 array written chunk by chunk into the store, plus
  ``obs['jacobian_det_pca']``.

Each row gives wall seconds and the peak resident memory of the client, the largest worker
and all processes (sampled every 0.2 s).
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
from dynadask._core.compute import compute
from dynadask.graph import vectorfield as gv

D = 30
N_GENES = 2000
GENES = [f"g{i}" for i in range(0, 80, 10)]
FUSED = ["speed", "divergence", "rotation", "acceleration", "curvature", "jacobian_det"]


def cells(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` cells around a random smooth curve in 30-D and their velocities (seeded)."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(1).normal(size=(3, 2, D)) / np.sqrt(D)
    t = rng.uniform(0, 1, n)
    waves = [np.sin((k + 1) * np.pi * t) for k in range(3)] + [
        np.cos((k + 1) * np.pi * t) for k in range(3)
    ]
    curve = sum(w[:, None] * b for w, b in zip(waves, basis.reshape(6, D), strict=True))
    X = 4 * curve + rng.normal(0, 0.3, (n, D))
    A = np.random.default_rng(2).normal(0, 0.3, (D, D)) - np.eye(D)
    V = X @ A.T + np.tanh(X @ np.random.default_rng(3).normal(0, 0.5, (D, D)))
    return X, V + rng.normal(0, 0.05, V.shape)


def fit(n_fit: int, M: int) -> tuple[dict, float]:
    """The field fitted on ``n_fit`` cells with ``M`` control points, and the fit's seconds."""
    X, V = cells(n_fit)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n_fit)]))
    adata.obsm["X_pca"], adata.obsm["velocity_pca"] = X, V
    start = time.perf_counter()
    dyn.vf.VectorField(adata, basis="pca", M=M, M_max=M)
    return adata.uns["VecFld_pca"], time.perf_counter() - start


def store(n: int, vf: dict, folder: Path, chunk_cells: int) -> Path:
    """A store with ``n`` cells: empty counts, ``X_pca``, the field and random loadings."""
    X, _ = cells(n, seed=10 + n)
    Q = np.linalg.qr(np.random.default_rng(4).normal(size=(N_GENES, D)))[0]
    from scipy import sparse

    adata = ad.AnnData(
        X=sparse.csr_matrix((n, N_GENES), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(
            {"use_for_pca": np.ones(N_GENES, bool)}, index=[f"g{i}" for i in range(N_GENES)]
        ),
        obsm={"X_pca": X.astype(np.float32)},
        uns={"VecFld_pca": {k: vf[k] for k in ("X_ctrl", "C", "beta")}, "PCs": Q},
    )
    path = folder / f"cells_{n}.zarr"
    h5 = folder / f"cells_{n}.h5ad"
    adata.write_h5ad(h5)
    dyn.io.convert(h5, path, chunk_cells=chunk_cells)
    h5.unlink()
    return path


def measure(n: int, vf: dict, folder: Path, mon: MemoryMonitor, rows: list[Row], chunk: int):
    path = store(n, vf, folder, chunk)
    adata = dyn.io.open(path)
    fit_ = adata.uns["VecFld_pca"]
    M = fit_["X_ctrl"].shape[0]
    with mon.stage("fused pass", n, rows, note=f"M={M}, 6 quantities incl. det J"):
        q = gv.quantities(adata.obsm["X_pca"], fit_["X_ctrl"], fit_["C"], fit_["beta"], FUSED)
        compute(*q.values(), desc="fused pass")
    with mon.stage("jacobian 8x8", n, rows, note="to the store, + det J"):
        dyn.vf.jacobian(adata, GENES, GENES)
    stored = dyn.io.open(path).uns["jacobian_pca"]["jacobian_gene"]
    assert stored.shape == (n, 8, 8), stored.shape
    shutil.rmtree(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--M", type=int, default=1000, help="control points of the field")
    parser.add_argument("--fit-cells", type=int, default=20_000)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--results", type=Path, default=Path("results_vf_jacobian"))
    args = parser.parse_args()
    vf, fit_s = fit(args.fit_cells, args.M)
    print(f"field: {args.fit_cells:,} cells, M = {vf['X_ctrl'].shape[0]}, fit {fit_s:.1f} s")
    rows: list[Row] = []
    folder = Path(tempfile.mkdtemp(prefix="vf_jacobian_"))
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    try:
        with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
            print(format_rows([], header=True))
            for n in args.sizes:
                measure(n, vf, folder, mon, rows, args.chunk_cells)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(format_rows(rows))
    save(rows, args.results, {"fit_cells": args.fit_cells, "M": args.M, "fit_seconds": fit_s})


if __name__ == "__main__":
    main()
