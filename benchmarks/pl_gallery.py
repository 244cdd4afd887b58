"""Draw the vector-field figures on dynamo's pancreas reference and time each one.

python -m benchmarks.pl_gallery --out docs/gallery     # PNGs + a timing table

Every figure reads results dynamo 1.5.3 stored in ``tests/data/pancreas_dynamo_reference.h5ad``
(the field ``VecFld_umap``, its flattened topography ``topography_umap``, ``jacobian_pca``,
ddhodge's potential, the vector calculus columns); nothing is recomputed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

import dynadask as dyn  # noqa: E402

REFERENCE = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "pancreas_dynamo_reference.h5ad"
)


def guide(adata: ad.AnnData):
    """The "10 minutes to dynamo" guide's 2 x 2 figure, as the guide writes it."""
    fig, f1_axes = plt.subplots(ncols=2, nrows=2, constrained_layout=True, figsize=(12, 10))
    f1_axes[0, 0] = dyn.pl.cell_wise_vectors(
        adata,
        color="umap_ddhodge_potential",
        pointsize=0.1,
        alpha=0.7,
        ax=f1_axes[0, 0],
        quiver_length=6,
        quiver_size=6,
        save_show_or_return="return",
    )
    f1_axes[0, 1] = dyn.pl.grid_vectors(
        adata,
        color="speed_umap",
        ax=f1_axes[0, 1],
        quiver_length=12,
        quiver_size=12,
        save_show_or_return="return",
    )
    f1_axes[1, 0] = dyn.pl.streamline_plot(
        adata, color="divergence_pca", ax=f1_axes[1, 0], save_show_or_return="return"
    )
    f1_axes[1, 1] = dyn.pl.topography(
        adata, color="acceleration_umap", ax=f1_axes[1, 1], save_show_or_return="return"
    )
    return fig


FIGURES = {
    "guide_2x2": guide,
    "topography": lambda a: (
        dyn.pl.topography(
            a,
            color="clusters",
            terms=["streamline", "nullcline", "fixed_points"],
            save_show_or_return="return",
        ).figure
    ),
    "line_integral_conv": lambda a: (
        dyn.pl.line_integral_conv(a, save_show_or_return="return").figure
    ),
    "jacobian": lambda a: (
        dyn.pl.jacobian(a, ["Neurog3", "Pdx1"], save_show_or_return="return")[0].figure
    ),
    "jacobian_heatmap": lambda a: (
        dyn.pl.jacobian_heatmap(a, 0, save_show_or_return="return").figure
    ),
    "divergence": lambda a: dyn.pl.divergence(a, basis="umap", save_show_or_return="return").figure,
    "phase_portraits": lambda a: (
        dyn.pl.phase_portraits(a, ["Gcg"], color="clusters", save_show_or_return="return")[0].figure
    ),
}


def main() -> None:
    """Write one PNG per figure and print how long each took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--dpi", type=int, default=60)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    adata = ad.read_h5ad(REFERENCE)
    print("| figure | seconds |\n|---|---|")
    for name, make in FIGURES.items():
        t = time.perf_counter()
        fig = make(adata)
        fig.savefig(args.out / f"{name}.png", dpi=args.dpi)
        plt.close(fig)
        print(f"| {name} | {time.perf_counter() - t:.1f} |")


if __name__ == "__main__":
    main()
