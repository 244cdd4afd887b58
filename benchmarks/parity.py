"""Parity with dynamo 1.5.3 on pancreas, end to end from the raw counts; prints a table.

    python -m benchmarks.parity [--reference ../shared/data/pancreas_dynamo_reference.h5ad]

Our whole workflow runs on the raw pancreas counts (in memory) and every stage is compared
with dynamo's reference output: feature genes, PCA subspace, kNN neighbours, moments,
gamma and velocity, then (on dynamo's own UMAP, as dynamo's velocities live there) the
embedding velocities and the cross-boundary direction of each known transition.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse
from scipy.linalg import subspace_angles
from scipy.stats import spearmanr

import dynadask as dyn

HERE = Path(__file__).resolve().parent
REFERENCE = HERE.parent.parent / "shared" / "data" / "pancreas_dynamo_reference.h5ad"
TRANSITIONS = [
    ("Ductal", "Ngn3 low EP"),
    ("Ngn3 low EP", "Ngn3 high EP"),
    ("Ngn3 high EP", "Pre-endocrine"),
] + [("Pre-endocrine", c) for c in ("Alpha", "Beta", "Delta", "Epsilon")]


def pearson_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of matching columns."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(0) / np.sqrt((x * x).sum(0) * (y * y).sum(0))


def cosine_rows(u: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Cosine of matching rows."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (u * w).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(w, axis=1)


def neighbour_overlap(a: sparse.spmatrix, b: sparse.spmatrix) -> float:
    """Mean share of each cell's stored neighbours in ``a`` that ``b`` also stores."""
    a, b = sparse.csr_matrix(a), sparse.csr_matrix(b)
    shares = [
        len(
            set(a.indices[a.indptr[i] : a.indptr[i + 1]])
            & set(b.indices[b.indptr[i] : b.indptr[i + 1]])
        )
        / max(a.indptr[i + 1] - a.indptr[i], 1)
        for i in range(a.shape[0])
    ]
    return float(np.mean(shares))


def loadings(adata: ad.AnnData) -> np.ndarray:
    """PCA loadings over all genes (zero rows for genes outside ``use_for_pca``)."""
    pcs = np.asarray(adata.uns["PCs"])
    full = np.zeros((adata.n_vars, pcs.shape[1]))
    full[np.asarray(adata.var["use_for_pca"], bool)] = pcs
    return full


def run(reference: Path) -> list[tuple[str, str, str]]:
    """Run our workflow on pancreas and return ``(measure, ours, target)`` rows."""
    ref = ad.read_h5ad(reference)
    a = dyn.sample_data.pancreas()
    rows, clock = [], {}

    def timed(name, fn):
        start = time.perf_counter()
        fn()
        clock[name] = time.perf_counter() - start

    timed("preprocess", lambda: dyn.pp.Preprocessor().preprocess_adata(a, recipe="monocle"))
    mine, theirs = (np.asarray(x.var["use_for_pca"], bool) for x in (a, ref))
    rows.append(
        ("use_for_pca Jaccard", f"{(mine & theirs).sum() / (mine | theirs).sum():.4f}", ">= 0.95")
    )
    angles = np.cos(subspace_angles(loadings(a)[:, :10], loadings(ref)[:, :10]))
    rows.append(("PCA 10-D subspace, min cosine", f"{angles.min():.4f}", ">= 0.98"))
    timed("neighbors", lambda: dyn.tl.neighbors(a))
    rows.append(
        (
            "kNN overlap (30 neighbours)",
            f"{neighbour_overlap(ref.obsp['distances'], a.obsp['distances']):.4f}",
            ">= 0.85",
        )
    )
    timed("moments", lambda: dyn.tl.moments(a))
    genes = np.flatnonzero(mine & theirs)
    for key in ("M_s", "M_u"):
        r = pearson_columns(
            np.asarray(a.layers[key], float)[:, genes], ref.layers[key].astype(float)[:, genes]
        )
        rows.append((f"{key} per-gene Pearson, median", f"{np.nanmedian(r):.4f}", ">= 0.99"))
    timed("dynamics", lambda: dyn.tl.dynamics(a))
    g, gr = a.var["gamma"].to_numpy(), ref.var["gamma"].to_numpy()
    both = np.isfinite(g) & np.isfinite(gr)
    rows.append(
        ("gamma Spearman (both finite)", f"{spearmanr(g[both], gr[both])[0]:.4f}", ">= 0.98")
    )
    rows.append(
        (
            "genes with finite gamma",
            f"{np.isfinite(g).sum()} vs {np.isfinite(gr).sum()}",
            "within 2%",
        )
    )
    r = pearson_columns(
        np.asarray(a.layers["velocity_S"], float)[:, both],
        ref.layers["velocity_S"].astype(float)[:, both],
    )
    rows.append(("velocity_S per-gene Pearson, median", f"{np.nanmedian(r):.4f}", ">= 0.98"))
    a.obsm["X_umap"] = ref.obsm["X_umap"].copy()  # dynamo's embedding, kept (enforce=False)
    timed("cell_velocities", lambda: dyn.tl.cell_velocities(a, basis="umap"))
    timed("cell_velocities_pca", lambda: dyn.tl.cell_velocities(a, basis="pca"))
    cos = cosine_rows(np.asarray(a.obsm["velocity_umap"]), ref.obsm["velocity_umap"])
    rows.append(("velocity_umap per-cell cosine, median", f"{np.nanmedian(cos):.4f}", ">= 0.9"))
    gene_space = cosine_rows(
        np.asarray(a.obsm["velocity_pca"]) @ loadings(a).T,
        ref.obsm["velocity_pca"] @ loadings(ref).T,
    )
    rows.append(
        ("velocity_pca in gene space, median cosine", f"{np.nanmedian(gene_space):.4f}", ">= 0.9")
    )
    ours = dyn.tl.cross_boundary_direction(a, "clusters", TRANSITIONS)
    dynamo = dyn.tl.cross_boundary_direction(ref, "clusters", TRANSITIONS)
    for t in TRANSITIONS:
        rows.append(
            (f"cross-boundary {t[0]} -> {t[1]}", f"{ours[t]:.3f}", f"dynamo {dynamo[t]:.3f}")
        )
    rows.append(("stage seconds", ", ".join(f"{k} {v:.1f}" for k, v in clock.items()), ""))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = run(args.reference)
    width = max(len(r[0]) for r in rows)
    for measure, ours, target in rows:
        print(f"{measure:<{width}}  {ours:<24} {target}")


if __name__ == "__main__":
    main()
