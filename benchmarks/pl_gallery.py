"""Draw every dyn.pl figure on pancreas, write the PNGs and docs/gallery.md, time each one.

python -m benchmarks.pl_gallery --out docs/gallery --md docs/gallery.md

Every figure reads results dynamo 1.5.3 stored in ``tests/data/pancreas_dynamo_reference.h5ad``
(the field ``VecFld_umap``, its flattened topography ``topography_umap``, ``jacobian_pca``,
ddhodge's potential, the vector calculus columns, the fates ``fate_umap``). The few results
dynamo's reference does not hold are made first with dynadask (``dyn.pd.fate_bias``,
``dyn.pd.state_graph``, ``dyn.pd.least_action``, ``dyn.vf.Potential``, the 8 genes'
``dyn.vf.sensitivity``); the markdown says which. The kinetic figures read the ``M_s`` layer
along ddhodge's potential. ``dynamo_guide_2x2.png`` is dynamo's own
guide figure, drawn by ``benchmarks/dynamo_pl_arrows.py`` in a Python with dynamo.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import dynadask as dyn  # noqa: E402

REFERENCE = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "pancreas_dynamo_reference.h5ad"
)
GENES = ["Neurog3", "Pax4", "Arx", "Pdx1", "Nkx2-2", "Ins1", "Ins2", "Gcg"]
KINETIC_GENES = GENES + ["Spp1", "Sox9", "Krt19", "Cpe", "Pcsk2", "Chga", "Sst", "Ghrl", "Pyy"]


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


def _fig(result):
    """The figure of whatever a plotting call returned (axes, list of axes, facets)."""
    if isinstance(result, list | tuple | np.ndarray):
        result = np.ravel(result)[0]
    return getattr(result, "figure", result)


def prepare(adata: ad.AnnData) -> dict[str, str]:
    """Results the reference lacks, made with dynadask; returns what was run for each."""
    ran = {}
    adata.uns["fate_bias_clusters"] = dyn.pd.fate_bias(adata, "clusters")
    ran["fate_bias"] = "dyn.pd.fate_bias(adata, 'clusters')"
    dyn.pd.state_graph(adata, "clusters", basis="umap", sample_num=50)
    ran["state_graph"] = "dyn.pd.state_graph(adata, 'clusters', basis='umap', sample_num=50)"
    clusters = adata.obs["clusters"].astype(str).to_numpy()
    start = list(adata.obs_names[clusters == "Ductal"][:3])
    ends = [adata.obs_names[clusters == c][0] for c in ("Alpha", "Beta", "Delta")]
    dyn.pd.least_action(adata, start, ends, basis="umap")
    ran["least_action"] = "dyn.pd.least_action(adata, 3 Ductal cells, an Alpha, Beta, Delta cell)"
    dyn.vf.Potential(adata, basis="umap")
    ran["show_landscape"] = "dyn.vf.Potential(adata, basis='umap')"
    dyn.vf.sensitivity(adata, regulators=GENES, effectors=GENES, cell_idx=np.arange(0, 3696, 4))
    ran["sensitivity"] = "dyn.vf.sensitivity(adata, 8 genes, 8 genes, every 4th cell)"
    return ran


def figures() -> dict[str, tuple[str, Callable]]:
    """Name -> (the call shown in the gallery, a function drawing it)."""
    r = {"save_show_or_return": "return"}
    return {
        "guide_2x2": ("the guide's four calls on one 2 x 2 figure (above)", guide),
        "scatters": (
            "dyn.pl.scatters(adata, color=['clusters', 'umap_ddhodge_potential'])",
            lambda a: dyn.pl.scatters(a, color=["clusters", "umap_ddhodge_potential"], **r),
        ),
        "cell_wise_vectors": (
            "dyn.pl.cell_wise_vectors(adata, color='clusters', quiver_length=6, quiver_size=6)",
            lambda a: dyn.pl.cell_wise_vectors(
                a, color="clusters", quiver_length=6, quiver_size=6, **r
            ),
        ),
        "grid_vectors": (
            "dyn.pl.grid_vectors(adata, color='clusters', quiver_length=12, quiver_size=12)",
            lambda a: dyn.pl.grid_vectors(
                a, color="clusters", quiver_length=12, quiver_size=12, **r
            ),
        ),
        "streamline_plot": (
            "dyn.pl.streamline_plot(adata, color='Gcg', layer='M_s')",
            lambda a: dyn.pl.streamline_plot(a, color="Gcg", layer="M_s", **r),
        ),
        "topography": (
            "dyn.pl.topography(adata, color='clusters')",
            lambda a: dyn.pl.topography(a, color="clusters", **r),
        ),
        "nullclines_fixed_points": (
            "dyn.pl.plot_nullclines(adata, ax=ax); dyn.pl.plot_fixed_points(adata, ax=ax)",
            _nullclines,
        ),
        "line_integral_conv": (
            "dyn.pl.line_integral_conv(adata)",
            lambda a: dyn.pl.line_integral_conv(a, **r),
        ),
        "speed": ("dyn.pl.speed(adata, basis='umap')", lambda a: dyn.pl.speed(a, "umap", **r)),
        "divergence": (
            "dyn.pl.divergence(adata, basis='umap')",
            lambda a: dyn.pl.divergence(a, "umap", **r),
        ),
        "curl": ("dyn.pl.curl(adata, basis='umap')", lambda a: dyn.pl.curl(a, "umap", **r)),
        "acceleration": (
            "dyn.pl.acceleration(adata, basis='umap')",
            lambda a: dyn.pl.acceleration(a, "umap", **r),
        ),
        "curvature": (
            "dyn.pl.curvature(adata, basis='umap')",
            lambda a: dyn.pl.curvature(a, "umap", **r),
        ),
        "jacobian": (
            "dyn.pl.jacobian(adata, ['Neurog3', 'Pdx1'])",
            lambda a: dyn.pl.jacobian(a, ["Neurog3", "Pdx1"], **r),
        ),
        "jacobian_heatmap": (
            "dyn.pl.jacobian_heatmap(adata, 0)",
            lambda a: dyn.pl.jacobian_heatmap(a, 0, **r),
        ),
        "sensitivity": (
            "dyn.pl.sensitivity(adata, ['Neurog3', 'Pdx1'])",
            lambda a: dyn.pl.sensitivity(a, ["Neurog3", "Pdx1"], **r),
        ),
        "phase_portraits": (
            "dyn.pl.phase_portraits(adata, ['Gcg'], color='clusters')",
            lambda a: dyn.pl.phase_portraits(a, ["Gcg"], color="clusters", **r),
        ),
        "fate": ("dyn.pl.fate(adata, basis='umap')", lambda a: dyn.pl.fate(a, basis="umap", **r)),
        "fate_bias": (
            "dyn.pl.fate_bias(adata, 'clusters')",
            lambda a: dyn.pl.fate_bias(a, "clusters", **r),
        ),
        "state_graph": (
            "dyn.pl.state_graph(adata, 'clusters')",
            lambda a: dyn.pl.state_graph(a, "clusters", **r),
        ),
        "least_action": (
            "dyn.pl.least_action(adata, basis='umap')",
            lambda a: dyn.pl.least_action(a, basis="umap", **r),
        ),
        "show_landscape": (
            "dyn.pl.show_landscape(adata, basis='umap')",
            lambda a: dyn.pl.show_landscape(a, basis="umap", **r),
        ),
        "kinetic_heatmap": (
            "dyn.pl.kinetic_heatmap(adata, GENES, mode='pseudotime', layer='M_s', "
            "tkey='umap_ddhodge_potential', gene_order_method='half_max_ordering', "
            "cell_group='clusters')",
            lambda a: dyn.pl.kinetic_heatmap(
                a,
                KINETIC_GENES,
                mode="pseudotime",
                layer="M_s",
                tkey="umap_ddhodge_potential",
                gene_order_method="half_max_ordering",
                cell_group="clusters",
                **r,
            ),
        ),
        "jacobian_kinetics": (
            "dyn.pl.jacobian_kinetics(adata, 'pca', ['Neurog3', 'Pdx1', 'Pax4', 'Nkx2-2'], "
            "effectors=['Ins1', 'Ins2', 'Gcg', 'Arx'], tkey='umap_ddhodge_potential')",
            lambda a: dyn.pl.jacobian_kinetics(
                a,
                "pca",
                ["Neurog3", "Pdx1", "Pax4", "Nkx2-2"],
                effectors=["Ins1", "Ins2", "Gcg", "Arx"],
                tkey="umap_ddhodge_potential",
                **r,
            ),
        ),
        "kinetic_curves": (
            "dyn.pl.kinetic_curves(adata, ['Sox9', 'Neurog3', 'Pcsk2', 'Ins1'], "
            "mode='pseudotime', layer='M_s', tkey='umap_ddhodge_potential', color='clusters')",
            lambda a: dyn.pl.kinetic_curves(
                a,
                ["Sox9", "Neurog3", "Pcsk2", "Ins1"],
                mode="pseudotime",
                layer="M_s",
                tkey="umap_ddhodge_potential",
                color="clusters",
                **r,
            ),
        ),
    }


def _nullclines(adata: ad.AnnData):
    fig, ax = plt.subplots(figsize=(6, 4))
    dyn.pl.plot_nullclines(adata, ax=ax)
    dyn.pl.plot_fixed_points(adata, ax=ax)
    return fig


def shrink(path: Path) -> None:
    """Rewrite a PNG with a 256-colour palette (a quarter of the bytes, same look)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(256)
    small.save(path, optimize=True)


def main() -> None:
    """Write one PNG per figure, the gallery page, and print how long each took."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    parser.add_argument("--md", type=Path, default=Path("docs/gallery.md"))
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    adata = ad.read_h5ad(REFERENCE)
    t = time.perf_counter()
    ran = prepare(adata)
    print(f"prepared in {time.perf_counter() - t:.1f} s")
    rows = []
    for name, (call, make) in figures().items():
        t = time.perf_counter()
        fig = _fig(make(adata))
        fig.savefig(args.out / f"{name}.png", dpi=args.dpi, bbox_inches="tight")
        plt.close("all")
        shrink(args.out / f"{name}.png")
        rows.append((name, call, time.perf_counter() - t))
        print(f"| {name} | {rows[-1][2]:.1f} |")
    args.md.write_text(_markdown(rows, ran, args.out.relative_to(args.md.parent)))


def _markdown(rows: list[tuple[str, str, float]], ran: dict[str, str], folder: Path) -> str:
    lines = [
        "# Gallery: every `dyn.pl` figure on pancreas",
        "",
        "Made by `python -m benchmarks.pl_gallery` (3,696 cells; dynamo 1.5.3's stored results "
        "in `tests/data/pancreas_dynamo_reference.h5ad`, nothing recomputed unless said). "
        "Seconds are one run on a shared 2-core machine.",
        "",
        "## The guide's 2 x 2 figure: dynamo 1.5.3 (left) and dynadask (right)",
        "",
        f"![dynamo]({folder}/dynamo_guide_2x2.png) ![dynadask]({folder}/guide_2x2.png)",
        "",
    ]
    for name, call, seconds in rows:
        if name == "guide_2x2":
            continue
        lines += [f"## {name}", "", f"`{call}` ({seconds:.1f} s)", ""]
        if name in ran:
            lines += [f"Made first with dynadask: `{ran[name]}`.", ""]
        lines += [f"![{name}]({folder}/{name}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
