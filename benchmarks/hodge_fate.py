"""ddhodge and fate: parity with dynamo 1.5.3 on pancreas, truth, and times at scale.

python -m benchmarks.hodge_fate                       # pancreas parity, truth, 100k-cell times
python -m benchmarks.hodge_fate --cells 1000000 --workers 2 --fate-cells 1000 --pca-fate-cells 10000

Inputs are dynamo's own: the reference's ``X_umap``/``X_pca`` and its fitted fields
``VecFld_umap``/``VecFld_pca`` (tests/data/pancreas_dynamo_reference.h5ad), and a field fitted
here from its ``velocity_umap``. Larger data are jittered copies of the pancreas embeddings
under the same fields. Prints one table of stages (wall time and memory peaks) and the
parity/truth figures; writes results.csv/.json under ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import psutil
from scipy.stats import pearsonr, spearmanr

import dynadask as dyn

from .common import MemoryMonitor, Row, format_rows, machine, save

_ME = psutil.Process()


def _cpu() -> float:
    """CPU seconds of this process and its children (workers) so far."""
    total = sum(_ME.cpu_times()[:2])
    for child in _ME.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total


@contextmanager
def _stage(mon: MemoryMonitor, name: str, cells: int, rows: list[Row], note: str = ""):
    """A monitored stage whose note also gives the CPU seconds spent (the machine is shared)."""
    cpu = _cpu()
    with mon.stage(name, cells, rows, note):
        yield
    rows[-1].note = f"{note}; {_cpu() - cpu:.1f} CPU s".lstrip("; ")


TESTS = Path(__file__).resolve().parents[1] / "tests"
REFERENCE = TESTS / "data" / "pancreas_dynamo_reference.h5ad"
sys.path.insert(0, str(TESTS))
from test_hodge import _U, _minus_grad_U, _rotation  # noqa: E402


def _adata(X: np.ndarray, basis: str, vf: dict, V: np.ndarray | None = None) -> ad.AnnData:
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(len(X))]))
    a.obsm[f"X_{basis}"] = X
    if V is not None:
        a.obsm[f"velocity_{basis}"] = V
    if vf is not None:
        a.uns[f"VecFld_{basis}"] = {k: vf[k] for k in ("X_ctrl", "C", "beta")}
    return a


def _extent(X: np.ndarray) -> float:
    return float(np.max(X.max(0) - X.min(0)))


def pancreas(ref: ad.AnnData, mon: MemoryMonitor, rows: list[Row]) -> list[str]:
    notes = []
    n = ref.n_obs
    X = ref.obsm["X_umap"]
    a = _adata(X, "umap", ref.uns["VecFld_umap"])
    with _stage(mon, "ddhodge umap", n, rows, "dynamo's field"):
        dyn.ext.ddhodge(a, basis="umap")
    p, r = a.obs["umap_ddhodge_potential"].to_numpy(), ref.obs["umap_ddhodge_potential"].to_numpy()
    notes.append(
        f"ddhodge, dynamo's field: Spearman {spearmanr(p, r)[0]:.6f}, max |diff| "
        f"{np.max(np.abs(p - r)):.2e} (potential range {r.max():.1f}); CG iterations "
        f"{a.uns['ddhodge_umap']['cg_iterations']}"
    )
    with _stage(mon, "ddhodge umap sampled", n, rows, "n_downsamples=1000"):
        dyn.ext.ddhodge(a, basis="umap", n_downsamples=1000)
    notes.append(
        "ddhodge sampled mode (1,000 cells): Spearman "
        f"{spearmanr(a.obs['umap_ddhodge_potential'], r)[0]:.4f}"
    )
    own = _adata(X, "umap", None, ref.obsm["velocity_umap"])
    with _stage(mon, "VectorField umap", n, rows, "fit here"):
        dyn.vf.VectorField(own, basis="umap")
    with _stage(mon, "ddhodge umap (own VF)", n, rows, "field fitted here"):
        dyn.ext.ddhodge(own, basis="umap")
    notes.append(
        "ddhodge, field fitted here: Spearman "
        f"{spearmanr(own.obs['umap_ddhodge_potential'], r)[0]:.4f}"
    )
    init = list(ref.obs_names[ref.obs["clusters"] == "Ductal"][:50])
    a.obs_names = ref.obs_names
    own.obs_names = ref.obs_names
    ref_end = np.asarray(ref.uns["fate_umap"]["prediction"])[:, :, -1]
    for stitch in ("time", "dynamo"):
        for name, adata in (("dynamo's field", a), ("field fitted here", own)):
            with _stage(mon, f"fate 50 Ductal {stitch}", 50, rows, name):
                dyn.pd.fate(adata, init_cells=init, basis="umap", stitch=stitch)
            end = adata.uns["fate_umap"]["prediction"][:, :, -1]
            dist = np.linalg.norm(end - ref_end, axis=1) / _extent(X)
            notes.append(
                f"fate stitch={stitch}, {name}: end-point distance / extent median "
                f"{np.median(dist):.2e}, p90 {np.percentile(dist, 90):.3f}, "
                f"{int(np.sum(dist > 0.05))}/50 above 5%"
            )
    return notes


def truth(n: int = 5000) -> list[str]:
    rng = np.random.default_rng(3)
    P = rng.uniform(-2, 2, (n, 2))
    notes = []
    for swirl in (0.0, 1.0):
        V = _minus_grad_U(P) + swirl * _rotation(P)
        a = _adata(P, "toy", dyn.vf.SparseVFC(P, V, M=150, MaxIter=30))
        dyn.ext.ddhodge(a, basis="toy")
        p = a.obs["toy_ddhodge_potential"].to_numpy()
        notes.append(
            f"truth ({'gradient + swirl' if swirl else 'gradient'}, {n} cells): potential vs -U "
            f"Pearson {pearsonr(p, -_U(P))[0]:.4f}, Spearman {spearmanr(p, -_U(P))[0]:.4f}"
        )
    return notes


def _copies(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, X.shape[0], n)
    scale = 0.01 * (X.max(0) - X.min(0))
    return X[rows] + rng.normal(0, 1, (n, X.shape[1])) * scale


def scale(ref, cells, fate_cells, pca_fate_cells, mon, rows) -> list[str]:
    notes = []
    Xu = _copies(ref.obsm["X_umap"], cells, 0)
    a = _adata(Xu, "umap", ref.uns["VecFld_umap"])
    with _stage(mon, "ddhodge umap", cells, rows, "jittered pancreas"):
        dyn.ext.ddhodge(a, basis="umap")
    rec = a.uns["ddhodge_umap"]
    notes.append(
        f"ddhodge {cells:,} cells: {rec['n_components']} components, {rec['cg_iterations']} CG "
        f"iterations, residual {rec['residual']:.1e}"
    )
    rng = np.random.default_rng(1)
    if fate_cells:
        init = rng.choice(cells, fate_cells, replace=False)
        with _stage(mon, "fate umap", fate_cells, rows, f"t_end from {cells:,} cells"):
            dyn.pd.fate(a, init_cells=init, basis="umap")
    if pca_fate_cells:
        Xp = _copies(ref.obsm["X_pca"], cells, 2)
        b = _adata(Xp, "pca", ref.uns["VecFld_pca"])
        with _stage(mon, "ddhodge pca", cells, rows, "30-D, NN-descent kNN"):
            dyn.ext.ddhodge(b, basis="pca")
        init = rng.choice(cells, pca_fate_cells, replace=False)
        with _stage(mon, "fate pca", pca_fate_cells, rows, "30-D"):
            dyn.pd.fate(b, init_cells=init, basis="pca")
    return notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--fate-cells", type=int, default=1000)
    parser.add_argument("--pca-fate-cells", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=0, help="LocalCluster workers (0: none)")
    parser.add_argument("--skip-pancreas", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("results_hodge_fate"))
    args = parser.parse_args()
    client = None
    if args.workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
    ref = ad.read_h5ad(REFERENCE)
    rows: list[Row] = []
    notes: list[str] = []
    print(machine(), f"workers: {args.workers or 'none (threads in process)'}", flush=True)
    start = time.time()
    with MemoryMonitor() as mon:
        if not args.skip_pancreas:
            notes += pancreas(ref, mon, rows)
            notes += truth()
        if args.cells:
            notes += scale(ref, args.cells, args.fate_cells, args.pca_fate_cells, mon, rows)
    print()
    print(format_rows(rows))
    print()
    print("\n".join(notes))
    print(f"total {time.time() - start:.0f} s")
    save(rows, args.out, {"notes": notes, "workers": args.workers})
    if client is not None:
        client.close()


if __name__ == "__main__":
    main()
