"""cell_accelerations and cell_curvatures over a large store, timed.

python -m benchmarks.cell_vectors_scale STORE.zarr --out cell_vectors   # a timing table

``STORE.zarr`` is a store of ``dynadask run`` (it holds ``uns['VecFld_pca']``, ``X_pca``,
``X_umap`` and the kNN graph). Each call runs on a LocalCluster as a user would, on the
store-backed AnnData, and commits its results to the store (``obsm['acceleration_umap']``,
``obsp['acceleration_transition_matrix']``, ...; the acceleration and curvature in pca are
computed first when the store lacks them, and that time is in the row).

Each row gives wall seconds and the peak resident memory of the client, the largest worker and
all processes (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dynadask as dyn
from benchmarks.common import MemoryMonitor, Row, format_rows, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results_cell_vectors"))
    args = parser.parse_args()
    rows: list[Row] = []
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
        for name, call in (
            ("cell_accelerations", dyn.vf.cell_accelerations),
            ("cell_curvatures", dyn.vf.cell_curvatures),
        ):
            adata = dyn.io.open(args.store)
            had = "acceleration_pca" if name == "cell_accelerations" else "curvature_pca"
            note = "pca vectors stored" if had in adata.obsm else "pca vectors computed"
            with mon.stage(name, adata.n_obs, rows, note=note):
                call(adata)
    print()
    print(format_rows(rows))
    save(rows, args.out, {"store": str(args.store)})


if __name__ == "__main__":
    main()
