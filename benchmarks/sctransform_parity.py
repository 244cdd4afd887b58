"""The sctransform recipe against dynamo 1.5.3's own runs on pancreas; prints a table.

    python -m benchmarks.sctransform_parity REF_DIR [--h5ad pancreas.h5ad] [--store-dir DIR]

``REF_DIR`` holds ``benchmarks/dynamo_sctransform.py``'s outputs (run it first, in dynamo's
venv, with ``--runs 2``). For each case (``sct``: the recipe as it is; ``sct500``: 500 genes
fitted and chosen) dynadask runs in memory and on a Zarr store, and each run is compared
with every dynamo run; dynamo's two runs are also compared with each other (its draw of
step-1 genes is not seeded). Columns: feature genes (Jaccard), residual X on the modelled
genes (Pearson over all entries, largest absolute difference, largest value), the first
10 principal components (smallest |Spearman| of matching components), wall seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse
from scipy.stats import spearmanr

import dynadask as dyn

HERE = Path(__file__).resolve().parent
PANCREAS = HERE.parent.parent / "shared" / "data" / "pancreas.h5ad"
N_PCS = 10


def dynamo_run(path: Path) -> dict:
    """One dynamo run: modelled genes (input positions), feature genes, residual X, PCA."""
    ref = np.load(path)
    genes = ref["genes"]
    x = sparse.csr_matrix(
        (ref["X_data"], ref["X_indices"], ref["X_indptr"]), shape=(ref["cells"].size, genes.size)
    )
    return {
        "genes": genes,
        "features": set(genes[ref["use_for_pca"]].tolist()),
        "X": x,
        "pca": np.asarray(ref["X_pca"][:, :N_PCS], dtype=np.float64),
    }


def ours(adata: ad.AnnData, genes: np.ndarray) -> dict:
    """The same pieces of a dynadask run, on dynamo's modelled genes."""
    x = adata.X
    x = x.compute() if hasattr(x, "compute") else x
    x = sparse.csr_matrix(x)[:, genes]
    pca = adata.obsm["X_pca"]
    pca = np.asarray(pca.compute() if hasattr(pca, "compute") else pca)[:, :N_PCS]
    use = np.flatnonzero(np.asarray(adata.var["use_for_pca"], dtype=bool))
    return {"features": set(use.tolist()), "X": x, "pca": pca.astype(np.float64)}


def compare(a: dict, b: dict) -> dict:
    """Jaccard of feature genes, residual correlation / max difference, PCA |Spearman|."""
    fa, fb = a["features"], b["features"]
    xa, xb = a["X"].toarray().ravel(), b["X"].toarray().ravel()
    rho = [abs(spearmanr(a["pca"][:, i], b["pca"][:, i])[0]) for i in range(N_PCS)]
    return {
        "jaccard": len(fa & fb) / len(fa | fb),
        "corr": float(np.corrcoef(xa, xb)[0, 1]),
        "maxdiff": float(np.abs(xa - xb).max()),
        "max": float(max(xa.max(), xb.max())),
        "pca_min": float(min(rho)),
    }


def run_ours(src: str, n_top: int | None, store: Path | None) -> tuple[ad.AnnData, float]:
    if store is None:
        adata = ad.read_h5ad(src)
    else:
        dyn.io.convert(src, store, overwrite=True)
        adata = dyn.io.open(store)
    start = time.perf_counter()
    pre = dyn.pp.Preprocessor()
    if n_top is None:
        pre.preprocess_adata(adata, recipe="sctransform")
    else:
        pre.config_sctransform_recipe(adata)
        pre.sctransform_kwargs["n_top_genes"] = n_top
        pre.preprocess_adata_sctransform(adata)
    return adata, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref_dir", type=Path)
    parser.add_argument("--h5ad", default=str(PANCREAS))
    parser.add_argument("--store-dir", type=Path, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    tmp = args.store_dir or Path(tempfile.mkdtemp(prefix="sct_parity_"))
    print(
        "case    | run          | vs dynamo run | Jaccard | X corr       | X max diff | "
        "X max | PCs min abs Spearman | seconds"
    )
    for case, n_top in (("sct", None), ("sct500", 500)):
        refs = sorted(args.ref_dir.glob(f"{case}_[0-9].npz"))
        runs = [dynamo_run(p) for p in refs]
        for i in range(1, len(runs)):
            c = compare(runs[0], runs[i])
            print(
                f"{case:7} | dynamo run {i} | 0 | {c['jaccard']:.4f} | {c['corr']:.10f} | "
                f"{c['maxdiff']:.2e} | {c['max']:.3f} | {c['pca_min']:.6f} |"
            )
        for where in ("memory", "store"):
            store = None if where == "memory" else tmp / f"{case}.zarr"
            adata, seconds = run_ours(args.h5ad, n_top, store)
            mine = ours(adata, runs[0]["genes"])
            for i, ref in enumerate(runs):
                c = compare(mine, ref)
                print(
                    f"{case:7} | dynadask {where:6} | {i} | {c['jaccard']:.4f} | "
                    f"{c['corr']:.10f} | {c['maxdiff']:.2e} | {c['max']:.3f} | "
                    f"{c['pca_min']:.6f} | {seconds:.1f}"
                )


if __name__ == "__main__":
    main()
