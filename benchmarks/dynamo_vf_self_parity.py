"""dynamo 1.5.3's own vector field on its reference's inputs, against that reference.

Runs in dynamo's own virtual environment (it does not import dynadask), once per BLAS
thread count, to show how far dynamo reproduces its own pancreas reference:

    for t in 1 2; do OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t \\
        /path/to/dynamo-venv/bin/python benchmarks/dynamo_vf_self_parity.py REFERENCE.h5ad; done

Prints, per basis, the median cosine of the field at the cells to the reference's and the
Spearman correlation of speed, divergence, acceleration and curvature with the reference's.
"""

from __future__ import annotations

import os
import sys
import warnings

import anndata as ad
import numpy as np
from scipy import stats

QUANTITIES = ("speed", "divergence", "acceleration", "curvature")


def main(reference: str) -> None:
    warnings.filterwarnings("ignore")
    import dynamo as dyn

    ref = ad.read_h5ad(reference)
    obsm = {}
    for b in ("umap", "pca"):
        obsm[f"X_{b}"], obsm[f"velocity_{b}"] = ref.obsm[f"X_{b}"], ref.obsm[f"velocity_{b}"]
    adata = ad.AnnData(
        np.zeros((ref.n_obs, ref.n_vars), dtype=np.float32),
        obs=ref.obs[[]].copy(),
        var=ref.var[["use_for_pca"]].copy(),
        obsm=obsm,
        uns={"PCs": ref.uns["PCs"]},
    )
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    for b in ("umap", "pca"):
        dyn.vf.VectorField(adata, basis=b)
        V, R = adata.obsm[f"velocity_{b}_SparseVFC"], ref.obsm[f"velocity_{b}_SparseVFC"]
        cos = (V * R).sum(1) / np.linalg.norm(V, axis=1) / np.linalg.norm(R, axis=1)
        line = [f"{b}: field cosine median {np.median(cos):.4f}"]
        for q in QUANTITIES:
            getattr(dyn.vf, q)(adata, basis=b)
            rho = stats.spearmanr(adata.obs[f"{q}_{b}"], ref.obs[f"{q}_{b}"])[0]
            line.append(f"{q} {rho:.3f}")
        print(f"BLAS threads={threads}", "; ".join(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/pancreas_dynamo_reference.h5ad")
