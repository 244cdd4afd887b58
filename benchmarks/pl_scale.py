"""A streamline plot coloured by a gene and a topography plot over a large store, timed.

python -m benchmarks.pl_scale STORE.zarr --out pl_scale       # PNGs + a timing table

``STORE.zarr`` is a store of ``dynadask run`` taken through ``topography`` (``X_umap``,
``velocity_umap``, ``uns['VecFld_umap']`` with its fixed points). Each figure is drawn from the
store-backed AnnData as a user would (``save_show_or_return='save'``, PNG), on a LocalCluster:

- ``streamline_plot``: ``dyn.pl.streamline_plot(adata, color=GENE)`` with ``GENE`` the first
  ``use_for_pca`` gene (``--gene`` to name one), its smoothed layer when present;
- ``topography``: ``dyn.pl.topography(adata, color='ntr')`` (else ``'clusters'``;
  streamlines, fixed points, nullclines and separatrices over the cells).

Each row gives wall seconds and the peak resident memory of the client, the largest worker and
all processes (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import dynadask as dyn  # noqa: E402
from benchmarks.common import MemoryMonitor, Row, format_rows, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--gene", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results_pl_scale"))
    args = parser.parse_args()
    adata = dyn.io.open(args.store)
    gene = args.gene or str(adata.var_names[adata.var["use_for_pca"].to_numpy(dtype=bool)][0])
    colour = "ntr" if "ntr" in adata.obs else "clusters"
    n = adata.n_obs
    rows: list[Row] = []
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
        with mon.stage("streamline_plot", n, rows, note=f"color={gene}"):
            dyn.pl.streamline_plot(
                adata,
                color=gene,
                save_show_or_return="save",
                save_kwargs={"path": str(args.out / "streamline"), "ext": "png", "dpi": 100},
            )
        with mon.stage("topography", n, rows, note=f"color={colour}"):
            dyn.pl.topography(
                adata,
                color=colour,
                save_show_or_return="save",
                save_kwargs={"path": str(args.out / "topography"), "ext": "png", "dpi": 100},
            )
    print()
    print(format_rows(rows))
    save(rows, args.out, {"store": str(args.store), "gene": gene})


if __name__ == "__main__":
    main()
