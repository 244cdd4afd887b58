"""kinetic_heatmap and kinetic_curves in pseudotime mode over a large store, timed.

python -m benchmarks.kinetic_scale STORE.zarr --out kinetic_scale   # PNGs + a timing table

``STORE.zarr`` is a continuous atlas of ``benchmarks.make_atlas`` (obs ``template_i``,
``template_j``, ``weight``), opened as written by anndata. Its cells get a pseudotime from
their template cells: ``w P[i] + (1 - w) P[j]`` with ``P`` dynamo's ddhodge potential of the
pancreas cells (``obs['umap_ddhodge_potential']`` of ``tests/data``'s reference), so the
pseudotime is continuous and the rows are in the store's order. Then, on a LocalCluster, as a
user would (``save_show_or_return='save'``, PNG):

- ``kinetic_heatmap``: ``GENES`` on layer ``spliced`` (log1p), ``half_max_ordering``,
  ``cell_group='clusters'``;
- ``kinetic_curves``: the first four of ``GENES`` on layer ``spliced``, coloured by cluster.

Each row gives wall seconds and the peak resident memory of the client, the largest worker and
all processes (sampled every 0.2 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402

import dynadask as dyn  # noqa: E402
from benchmarks.common import MemoryMonitor, Row, format_rows, save  # noqa: E402

REFERENCE = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "pancreas_dynamo_reference.h5ad"
)
GENES = ["Sox9", "Neurog3", "Pcsk2", "Ins1", "Spp1", "Krt19", "Cpe", "Chga", "Gcg", "Sst", "Ghrl"]
TKEY = "pseudotime"


def template_pseudotime(adata: ad.AnnData) -> np.ndarray:
    """Each atlas cell's mixture of its two template cells' ddhodge potentials."""
    ref = ad.read_h5ad(REFERENCE, backed="r")
    template = dyn.sample_data.pancreas()
    potential = (
        ref.obs["umap_ddhodge_potential"].reindex(template.obs_names).to_numpy(dtype=np.float64)
    )
    if not np.isfinite(potential).all():
        raise ValueError("the reference does not hold a potential for every template cell")
    obs = adata.obs
    w = obs["weight"].to_numpy(dtype=np.float64)
    i, j = obs["template_i"].to_numpy(), obs["template_j"].to_numpy()
    return w * potential[i] + (1 - w) * potential[j]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results_kinetic_scale"))
    args = parser.parse_args()
    adata = dyn.io.open(args.store)
    adata.obs[TKEY] = template_pseudotime(adata)  # in memory only: the store is not changed
    n = adata.n_obs
    rows: list[Row] = []
    kwargs = {"n_workers": args.workers, "threads_per_worker": 1}
    common = {"mode": "pseudotime", "layer": "spliced", "tkey": TKEY}
    with dyn.parallel.client(**kwargs), MemoryMonitor() as mon:
        with mon.stage("kinetic_heatmap", n, rows, note=f"{len(GENES)} genes"):
            dyn.pl.kinetic_heatmap(
                adata,
                GENES,
                **common,
                gene_order_method="half_max_ordering",
                cell_group="clusters",
                save_show_or_return="save",
                save_kwargs={"path": str(args.out / "heatmap"), "ext": "png", "dpi": 100},
            )
        with mon.stage("kinetic_curves", n, rows, note="4 genes"):
            dyn.pl.kinetic_curves(
                adata,
                GENES[:4],
                **common,
                color="clusters",
                save_show_or_return="save",
                save_kwargs={"path": str(args.out / "curves"), "ext": "png", "dpi": 100},
            )
    print()
    print(format_rows(rows))
    save(rows, args.out, {"store": str(args.store), "genes": GENES})


if __name__ == "__main__":
    main()
