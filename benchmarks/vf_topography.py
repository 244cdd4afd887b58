"""Topography of the pancreas UMAP field against dynamo 1.5.3's reference.

python -m benchmarks.vf_topography        # dynamo's own field, then a field refitted here

For each of dynamo's fixed points: |f| there (is it a zero of the field?), and the nearest
fixed point found here (distance as a share of the embedding's extent, and its type).
"""

from __future__ import annotations

import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

import dynadask as dyn

TESTS = Path(__file__).resolve().parents[1] / "tests"


def _inputs(ref: ad.AnnData, with_field: bool) -> ad.AnnData:
    a = ad.AnnData(obs=pd.DataFrame(index=ref.obs_names))
    a.obsm["X_umap"], a.obsm["velocity_umap"] = ref.obsm["X_umap"], ref.obsm["velocity_umap"]
    if with_field:
        a.uns["VecFld_umap"] = dict(ref.uns["VecFld_umap"])
    return a


def report(ref: ad.AnnData, which: str) -> None:
    a = _inputs(ref, which == "dynamo's field")
    if which != "dynamo's field":
        dyn.vf.VectorField(a, basis="umap")
    t = time.time()
    dyn.vf.topography(a, basis="umap")
    seconds = time.time() - t
    vf, top = a.uns["VecFld_umap"], ref.uns["topography_umap"]
    X = ref.obsm["X_umap"]
    extent = float(np.max(X.max(0) - X.min(0)))
    speed = np.median(np.linalg.norm(dyn.vf.vector_field_function(X, vf), axis=1))
    ft = vf["ftype"]
    counts = {t: int(np.sum(ft == c)) for t, c in (("stable", -1), ("saddle", 0), ("unstable", 1))}
    print(
        f"{which}: {seconds:.1f} s, {len(ft)} fixed points {counts}, "
        f"{len(vf['NCx'])} + {len(vf['NCy'])} nullcline pieces, "
        f"{len(vf['separatrices'])} separatrix pieces"
    )
    residual = np.linalg.norm(dyn.vf.vector_field_function(top["Xss"], vf), axis=1)
    for x, t, r in zip(top["Xss"], top["ftype"], residual, strict=True):
        d = np.linalg.norm(vf["Xss"] - x, axis=1)
        same = np.where(ft == t, d, np.inf)
        print(
            f"  dynamo {int(t):+d} at ({x[0]:7.3f}, {x[1]:7.3f}): |f|/median speed "
            f"{r / speed:.2e}; nearest here {d.min() / extent:.4f} of the extent "
            f"(type {int(ft[np.argmin(d)]):+d}), nearest of the same type "
            f"{same.min() / extent:.4f}"
        )


def main() -> None:
    ref = ad.read_h5ad(TESTS / "data" / "pancreas_dynamo_reference.h5ad")
    report(ref, "dynamo's field")
    report(ref, "field refitted here")


if __name__ == "__main__":
    main()
