"""The pca vector field on the continuous atlas: fit, fused pass and gene Jacobians by size.

python -m benchmarks.vf_scale PREPARED.zarr                       # 10k, 100k and every cell
python -m benchmarks.vf_scale PREPARED.zarr --sizes 10000 --workers 1

``PREPARED.zarr`` is a store of ``dynadask run`` taken through ``cell_velocities_pca``
(``obsm['X_pca']``, ``obsm['velocity_pca']``, ``uns['PCs']``), e.g.::

    dynadask run atlas_1000000_20000_continuous_random.zarr --out prep1M \\
        --stages preprocess neighbors reorder moments dynamics cell_velocities_pca

For a size below the store's cell count, a seeded random subset of the cells (their pca
coordinates, velocities and the PCA loadings) is written to a new store by
``dyn.io.convert``; at the full size the prepared store itself is used. Per size, on a
store-backed AnnData and a LocalCluster:

- ``fit``: ``dyn.vf.VectorField(adata, basis='pca')`` with its defaults (SparseVFC on a
  seeded sample of at most 100,000 cells, at most 1,000 control points, then the field at
  every cell written to the store);
- ``fused pass``: speed, divergence, rotation (n-D curl), acceleration, curvature and the
  Jacobian determinant at every cell in one pass over row blocks (computed to memory);
- ``jacobian 8x8``: ``dyn.vf.jacobian`` with 8 regulators x 8 effectors (the genes the PCA
  holds best, as the ``jacobian`` stage picks them) at every cell, written to the store;
- with ``--hodge``: ``dyn.ext.ddhodge(adata, basis='pca')`` (potential of every cell);
- with ``--fate-cells K``: ``dyn.pd.fate`` from ``K`` seeded random cells in pca space.

Each row gives wall seconds and the peak resident memory of the client, the largest worker
and all processes (sampled every 0.2 s).

With ``--compare-dynamo PYTHON`` (an interpreter with dynamo-release 1.5.3), dynamo runs the
same steps on the same cells (the subset written as .h5ad) in that interpreter, after ours,
through ``benchmarks/dynamo_stages.py``: ``VectorField(basis='pca')`` with its defaults;
speed, divergence, acceleration and curvature as four calls (its curl fails in 30-D, and it
has no fused pass); ``jacobian`` of the same 8 x 8 genes; ``ddhodge`` and ``fate`` from the
same cells. Its time and peak memory go into the note of our row (or how it failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
from scipy import sparse

import dynadask as dyn
from benchmarks.common import MemoryMonitor, Row, format_rows, save
from benchmarks.run import merge, run_dynamo
from dynadask._core.compute import compute
from dynadask.graph import vectorfield as gv
from dynadask.pipeline import jacobian_genes

FUSED = ["speed", "divergence", "rotation", "acceleration", "curvature", "jacobian_det"]


def subset_store(prepared: ad.AnnData, n: int, folder: Path, chunk_cells: int) -> Path:
    """A store of ``n`` seeded random cells of ``prepared``: pca coordinates, velocities, PCA."""
    rows = np.sort(np.random.default_rng(0).choice(prepared.n_obs, n, replace=False))
    X = np.asarray(prepared.obsm["X_pca"][rows])
    V = np.asarray(prepared.obsm["velocity_pca"][rows])
    cols = [c for c in ("use_for_pca", "use_for_dynamics", "gamma") if c in prepared.var]
    var = prepared.var[cols].copy()
    adata = ad.AnnData(
        X=sparse.csr_matrix((n, prepared.n_vars), dtype=np.float32),
        obs=pd.DataFrame(index=np.asarray(prepared.obs_names)[rows]),
        var=var,
        obsm={"X_pca": X, "velocity_pca": V},
        uns={k: np.asarray(prepared.uns[k]) for k in ("PCs", "explained_variance_ratio_")},
    )
    h5 = folder / f"cells_{n}.h5ad"
    path = folder / f"cells_{n}.zarr"
    adata.write_h5ad(h5)
    dyn.io.convert(h5, path, chunk_cells=chunk_cells)
    return path


def measure(
    path: Path, n: int, mon: MemoryMonitor, rows: list[Row], hodge: bool, fate_cells: int
) -> None:
    """The timed steps on the store at ``path`` (``n`` cells)."""
    adata = dyn.io.open(path)
    with mon.stage("fit", n, rows, note="VectorField(basis='pca'), defaults"):
        dyn.vf.VectorField(adata, basis="pca")
    fit = adata.uns["VecFld_pca"]
    M = np.asarray(fit["X_ctrl"]).shape[0]
    with mon.stage("fused pass", n, rows, note=f"M={M}, 6 quantities incl. det J"):
        q = gv.quantities(
            adata.obsm["X_pca"],
            np.asarray(fit["X_ctrl"]),
            np.asarray(fit["C"]),
            float(fit["beta"]),
            FUSED,
        )
        compute(*q.values(), desc="fused pass")
    genes = jacobian_genes(adata, 8)
    with mon.stage("jacobian 8x8", n, rows, note="to the store, + det J"):
        dyn.vf.jacobian(adata, genes, genes)
    stored = dyn.io.open(path).uns["jacobian_pca"]["jacobian_gene"]
    assert stored.shape == (n, 8, 8), stored.shape
    if hodge:
        with mon.stage("ddhodge", n, rows, note="basis pca, every cell"):
            dyn.ext.ddhodge(adata, basis="pca")
    if fate_cells:
        init = np.random.default_rng(1).choice(n, min(fate_cells, n), replace=False)
        names = list(np.asarray(adata.obs_names)[np.sort(init)])
        with mon.stage("fate", n, rows, note=f"{len(names):,} init cells, pca, both directions"):
            dyn.pd.fate(adata, names, basis="pca")


DYNAMO_STEPS = {
    "fit": "vectorfield_pca",
    "fused pass": "vector_calculus_pca",
    "jacobian 8x8": "jacobian_8x8",
    "ddhodge": "ddhodge_pca",
    "fate": "fate_pca",
}
"""Our step -> the dynamo_stages.py stage that does the same work in dynamo."""


def dynamo_rows(args: argparse.Namespace, path: Path, n: int) -> list[dict]:
    """dynamo's rows for the steps measured at ``n`` cells, named as ours."""
    steps = ["fit", "fused pass", "jacobian 8x8"]
    steps += ["ddhodge"] * args.hodge + ["fate"] * bool(args.fate_cells)
    os.environ["FATE_CELLS"] = str(args.fate_cells)
    args.results.mkdir(parents=True, exist_ok=True)
    theirs = run_dynamo(
        args.compare_dynamo,
        path,
        [DYNAMO_STEPS[s] for s in steps],
        n,
        args.dynamo_timeout,
        args.results,
    )
    ours_by_theirs = {v: k for k, v in DYNAMO_STEPS.items()}
    for row in theirs:
        row["stage"] = ours_by_theirs.get(row["stage"], row["stage"])
    return theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("prepared", type=Path)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 0],
        help="cell counts; 0 = every cell of the prepared store",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-cells", type=int, default=20_000)
    parser.add_argument("--hodge", action="store_true", help="also time ext.ddhodge (pca)")
    parser.add_argument("--fate-cells", type=int, default=0, help="also time pd.fate from so many")
    parser.add_argument("--results", type=Path, default=Path("results_vf_scale"))
    parser.add_argument("--compare-dynamo", metavar="PYTHON", default=None)
    parser.add_argument("--dynamo-timeout", type=float, default=3600.0)
    args = parser.parse_args()
    prepared = dyn.io.open(args.prepared)
    rows: list[Row] = []
    folder = Path(tempfile.mkdtemp(prefix="vf_scale_"))
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    try:
        with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
            print(format_rows([], header=True))
            for n in args.sizes:
                whole = n in (0, prepared.n_obs)
                n = prepared.n_obs if whole else n
                path = (
                    args.prepared if whole else subset_store(prepared, n, folder, args.chunk_cells)
                )
                first = len(rows)
                measure(path, n, mon, rows, args.hodge, args.fate_cells)
                if args.compare_dynamo and not whole:
                    theirs = dynamo_rows(args, path, n)
                    merge(rows[first:], theirs)
                    print(format_rows(rows[first:]), flush=True)
                if not whole:
                    shutil.rmtree(path)
                    path.with_suffix(".h5ad").unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(format_rows(rows))
    save(rows, args.results, {"prepared": str(args.prepared), "sizes": args.sizes})


if __name__ == "__main__":
    main()
