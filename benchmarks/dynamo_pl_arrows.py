"""dynamo 1.5.3's own guide 2 x 2 figure on pancreas, and its arrow lengths (run with dynamo).

/work/dynvenv/bin/python benchmarks/dynamo_pl_arrows.py \
    --reference tests/data/pancreas_dynamo_reference.h5ad \
    --json tests/data/pl_arrow_lengths.json --png docs/gallery/dynamo_guide_2x2.png

Runs in a Python with dynamo-release 1.5.3 and without dynadask. It draws the "10 minutes to
dynamo" guide's 2 x 2 figure from dynamo's stored results (the topography flattened in
``uns['topography_umap']`` is put back where dynamo's ``pl.topography`` reads it), then records,
for the arrow panels, the median arrow length over the width of the axes (data units:
``|(U, V)| / scale`` of the arrows not masked, as ``angles='xy'`` and ``scale_units='xy'``).
``tests/test_pl_vf.py`` compares dynadask's arrows with these numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.quiver import Quiver  # noqa: E402


def arrow_lengths(ax) -> dict:
    """Median and quartiles of the drawn arrows' lengths over the axes' width."""
    quivers = [c for c in ax.collections if isinstance(c, Quiver)]
    q = quivers[0]
    shown = ~np.ma.getmaskarray(np.ma.array(q.U, mask=q.Umask))  # masked arrows are not drawn
    length = np.hypot(np.asarray(q.U)[shown], np.asarray(q.V)[shown]) / q.scale
    length = length[np.isfinite(length)]
    width = float(np.diff(ax.get_xlim())[0])
    lo, med, hi = np.percentile(length / width, [25, 50, 75])
    return {"median": float(med), "q25": float(lo), "q75": float(hi), "n_arrows": int(length.size)}


def unflatten_topography(adata: ad.AnnData, basis: str = "umap") -> None:
    """Put the flattened topography back into ``uns['VecFld_<basis>']`` as dynamo keeps it."""
    topo, vf = adata.uns[f"topography_{basis}"], adata.uns[f"VecFld_{basis}"]
    for axis in ("NCx", "NCy"):
        points, offsets = topo[f"{axis}_points"], topo[f"{axis}_offsets"]
        vf[axis] = {str(i): points[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)}
    vf["Xss"], vf["ftype"], vf["confidence"] = topo["Xss"], topo["ftype"], topo["confidence"]
    vf["X"] = adata.obsm[f"X_{basis}"]
    vf["Y"] = adata.obsm[f"velocity_{basis}"]
    vf["V"] = adata.obsm[f"velocity_{basis}_SparseVFC"]


def main() -> None:
    """Draw dynamo's guide figure, save it and the arrow lengths."""
    import dynamo as dyn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument("--dpi", type=int, default=80)
    args = parser.parse_args()
    adata = ad.read_h5ad(args.reference)
    unflatten_topography(adata)
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
    fig.canvas.draw()
    axes = fig.axes
    cell_ax = next(a for a in axes if any(isinstance(c, Quiver) for c in a.collections))
    grid_ax = [a for a in axes if any(isinstance(c, Quiver) for c in a.collections)][1]
    record = {
        "source": "dynamo-release 1.5.3, benchmarks/dynamo_pl_arrows.py",
        "figsize": [12, 10],
        "cell_wise_vectors": {"quiver_length": 6, "quiver_size": 6, **arrow_lengths(cell_ax)},
        "grid_vectors": {"quiver_length": 12, "quiver_size": 12, **arrow_lengths(grid_ax)},
    }
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    args.png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.png, dpi=args.dpi)
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
