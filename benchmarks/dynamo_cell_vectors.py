"""dynamo 1.5.3's cell_accelerations and cell_curvatures on its pancreas reference, recorded.

This script runs in dynamo's own virtual environment (it does not import dynadask; see
benchmarks/README.md for the environment):

    /path/to/dynamo-venv/bin/python benchmarks/dynamo_cell_vectors.py \
        --out tests/data/dynamo_cell_vectors.npz

The reference keeps dynamo's PCA field (``uns['VecFld_pca']``) without the data it was fitted
on and has no ``X``: the cells' PCA coordinates and velocities are put back as the field's
``X`` / ``Y`` (dynamo's field class reads them) and ``X`` is zeros of the data's shape (dynamo
sizes its gene-space acceleration layer from it). dynamo 1.5.3 passes the output key of
``cell_velocities`` as a kernel option, which is dropped, so the projected vectors land in
``obsm['velocity_umap']``; they are read from there. Written: ``acceleration_umap`` and
``curvature_umap`` (the projections, n x 2, float64).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import anndata as ad
import numpy as np

REFERENCE = (
    Path(__file__).resolve().parents[1] / "tests" / "data" / "pancreas_dynamo_reference.h5ad"
)


def load() -> ad.AnnData:
    """The reference as dynamo's field functions need it."""
    a = ad.read_h5ad(REFERENCE)
    a.uns["VecFld_pca"]["X"] = a.obsm["X_pca"]
    a.uns["VecFld_pca"]["Y"] = a.obsm["velocity_pca"]
    a.X = np.zeros(a.shape, dtype=np.float32)
    return a


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import dynamo as dyn

    out = {}
    for kind, call in (
        ("acceleration", dyn.vf.cell_accelerations),
        ("curvature", dyn.vf.cell_curvatures),
    ):
        a = load()
        before = np.asarray(a.obsm["velocity_umap"]).copy()
        call(a)  # vf_basis='pca', basis='umap'
        projected = np.asarray(a.obsm["velocity_umap"], dtype=np.float64)
        if np.allclose(projected, before):
            raise RuntimeError(f"dynamo's cell_{kind} left obsm['velocity_umap'] unchanged")
        out[f"{kind}_umap"] = projected
    np.savez_compressed(args.out, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
