"""dynamo 1.5.3's ``recipe='sctransform'`` on pancreas: the parity target of dynadask's.

Runs in dynamo's own virtual environment (it does not import dynadask). dynamo's sctransform
needs KDEpy, which dynamo does not install; put it on the path without touching the venv:

    pip install --no-deps --target /tmp/kdepy KDEpy
    cd /tmp && PYTHONPATH=/tmp/kdepy nice -n 19 /path/to/dynamo-venv/bin/python \
        /path/to/repo/benchmarks/dynamo_sctransform.py pancreas.h5ad OUT_DIR [--runs 2]

Cases:

- ``sct``: ``Preprocessor().preprocess_adata(adata, recipe='sctransform')`` as it is.
- ``sct500``: ``config_sctransform_recipe``, then ``sctransform_kwargs['n_top_genes'] = 500``
  and ``preprocess_adata_sctransform``: 500 step-1 genes drawn by density (dynamo's draw is
  not seeded) and 500 feature genes by residual variance.

For each case and run it writes ``OUT_DIR/<case>_<run>.npz``: the kept genes and cells
(positions in the input), the var columns dynamo writes, ``use_for_pca``, the residual X
(CSR parts), ``X_pca``, and ``OUT_DIR/<case>_<run>.json`` with the key names and wall time.
``python -m benchmarks.sctransform_parity OUT_DIR`` compares them with dynadask's run.

The test fixture ``tests/data/sctransform_reference.npz`` is cut from those files (numpy
only, any environment):

    python benchmarks/dynamo_sctransform.py fixture OUT_DIR tests/data/sctransform_reference.npz
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

warnings.filterwarnings("ignore")
import dynamo as dyn  # noqa: E402

VAR_COLUMNS = [
    "Intercept_sct",
    "log_umi_sct",
    "theta_sct",
    "Intercept_step1_sct",
    "log_umi_step1_sct",
    "dispersion_step1_sct",
    "model_pars_theta_step1",
    "genes_step1_sct",
    "log10_gmean_sct",
    "sct_score",
]
OBS_COLUMNS = ["umi_sct", "log_umi_sct", "gene_sct", "log_gene_sct"]
N_CELLS, N_PCS = 100, 5  # the test fixture's cells and components


def run_case(raw: ad.AnnData, n_top: int | None) -> tuple[ad.AnnData, float]:
    b = raw.copy()
    start = time.perf_counter()
    if n_top is None:
        dyn.pp.Preprocessor().preprocess_adata(b, recipe="sctransform")
    else:
        pre = dyn.pp.Preprocessor()
        pre.config_sctransform_recipe(b)
        pre.sctransform_kwargs["n_top_genes"] = n_top
        pre.preprocess_adata_sctransform(b)
    return b, time.perf_counter() - start


def save(b: ad.AnnData, raw: ad.AnnData, seconds: float, stem: Path) -> None:
    x = sp.csr_matrix(b.X)
    arrays = {
        "genes": raw.var_names.get_indexer(b.var_names).astype(np.int32),
        "cells": raw.obs_names.get_indexer(b.obs_names).astype(np.int32),
        "use_for_pca": b.var["use_for_pca"].to_numpy(bool),
        "X_data": x.data.astype(np.float32),
        "X_indices": x.indices.astype(np.int32),
        "X_indptr": x.indptr.astype(np.int64),
        "X_pca": np.asarray(b.obsm["X_pca"], dtype=np.float32),
    }
    for key in VAR_COLUMNS:
        if key in b.var:
            arrays[f"var_{key}"] = b.var[key].to_numpy(np.float64)
    for key in OBS_COLUMNS:
        if key in b.obs:
            arrays[f"obs_{key}"] = b.obs[key].to_numpy(np.float64)
    for layer in ("X_spliced", "X_unspliced"):
        if layer in b.layers:
            arrays[f"{layer}_sum"] = np.asarray(b.layers[layer].sum(axis=0)).ravel()
    np.savez_compressed(f"{stem}.npz", **arrays)
    rec = {
        "dynamo": dyn.__version__,
        "seconds": seconds,
        "shape": list(b.shape),
        "var": sorted(b.var.columns),
        "obs": sorted(b.obs.columns),
        "obsm": sorted(b.obsm),
        "layers": sorted(b.layers),
        "uns": sorted(b.uns),
        "pp": {k: repr(v) for k, v in b.uns["pp"].items()},
        "X_dtype": str(b.X.dtype),
        "raw": b.raw is not None,
    }
    Path(f"{stem}.json").write_text(json.dumps(rec, indent=1) + "\n")


def fixture(src: Path, dst: Path) -> None:
    """Write the test fixture from run 0 (and run 1's feature genes) of each case.

    ``sct``: the modelled genes, dynamo's regularised parameters, residual X and the first
    ``N_PCS`` PCA scores of ``N_CELLS`` seeded cells. ``sct500``: feature genes of both
    runs, PCA scores of the same cells.
    """
    out = {}
    for case in ("sct", "sct500"):
        ref = np.load(src / f"{case}_0.npz")
        cells = np.sort(np.random.default_rng(0).choice(ref["cells"].size, N_CELLS, replace=False))
        genes = ref["genes"]
        x = sp.csr_matrix(
            (ref["X_data"], ref["X_indices"], ref["X_indptr"]),
            shape=(ref["cells"].size, genes.size),
        )
        out[f"{case}_cells"] = ref["cells"][cells].astype(np.int16)
        out[f"{case}_genes"] = genes.astype(np.int16)
        out[f"{case}_pca"] = ref["X_pca"][cells, :N_PCS].astype(np.float32)
        out[f"{case}_use_for_pca"] = genes[ref["use_for_pca"]].astype(np.int16)
        if case == "sct":
            out["sct_X"] = x[cells].toarray().astype(np.float32)
            for key in ("Intercept_sct", "log_umi_sct", "theta_sct"):
                out[f"sct_{key}"] = ref[f"var_{key}"].astype(np.float32)
        else:
            other = np.load(src / f"{case}_1.npz")
            out["sct500_use_for_pca_run1"] = other["genes"][other["use_for_pca"]].astype(np.int16)
    np.savez_compressed(dst, **out)


def main() -> None:
    if sys.argv[1] == "fixture":
        fixture(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    src, dst = sys.argv[1], Path(sys.argv[2])
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 1
    dst.mkdir(parents=True, exist_ok=True)
    raw = ad.read_h5ad(src)
    for case, n_top in (("sct", None), ("sct500", 500)):
        for run in range(runs):
            b, seconds = run_case(raw, n_top)
            save(b, raw, seconds, dst / f"{case}_{run}")
            print(case, run, f"{seconds:.1f} s", b.shape, flush=True)


if __name__ == "__main__":
    main()
