"""Write tests/data/pp_recipes_reference.{json,npz}: dynamo 1.5.3's recipes on pancreas.

Run with dynamo's own environment (not dynadask's; CI has no dynamo):

    cd /tmp && nice -n 19 /work/dynvenv/bin/python \
        /work/wt-pp8/tests/data/make_pp_recipes_reference.py /work/shared/data/pancreas.h5ad \
        /work/wt-pp8/tests/data

Cases (the keys of the JSON file and the prefixes of the npz arrays):

- ``seurat``: ``Preprocessor().preprocess_adata(adata, recipe='seurat')``.
- ``seurat500``: ``config_seurat_recipe``, ``select_genes_kwargs['n_top_genes'] = 500``,
  ``preprocess_adata_seurat``.
- ``pearson``: ``recipe='pearson_residuals'`` (keys only).
- ``pearson500``: ``config_pearson_residuals_recipe``, ``n_top_genes = 500``,
  ``preprocess_adata_pearson_residuals``.
- ``mpr500``: the same for ``monocle_pearson_residuals``.
- ``cellcycle``: ``Preprocessor(cell_cycle_score_enable=True)``, recipe 'monocle'.
- ``regress``: ``Preprocessor(regress_out_kwargs={'obs_keys': ['S_score', 'G2M_score']})``,
  recipe 'monocle'.

For each: the AnnData's key names, the selected genes (positions in var), the PCA scores of
``N_CELLS`` seeded cells (``cells``: their positions) on the first ``N_PCS`` components, X
on those cells and ``GENES``. ``--compact SRC DST`` shrinks files of an earlier version.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

warnings.filterwarnings("ignore")
import dynamo as dyn  # noqa: E402

N_CELLS, N_PCS = 200, 5
GENES = ["Pcsk2", "Ghrl", "Cpa1", "Sst", "Top2a", "Actb"]


def dense(x):
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)


def summary(b: ad.AnnData, name: str, raw: ad.AnnData, out: dict, arrays: dict) -> None:
    cells = np.sort(np.random.default_rng(0).choice(b.n_obs, N_CELLS, replace=False))
    genes = [g for g in GENES if g in b.var_names]
    gidx = [b.var_names.get_loc(g) for g in genes]
    rec = {
        "n_obs": b.n_obs,
        "n_vars": b.n_vars,
        "obs_names_kept": b.n_obs == raw.n_obs and bool((b.obs_names == raw.obs_names).all()),
        "var": sorted(b.var.columns),
        "obs": sorted(b.obs.columns),
        "obsm": sorted(b.obsm),
        "layers": sorted(b.layers),
        "uns": sorted(b.uns),
        "pp": {
            k: (v if isinstance(v, (str, bool, int, float, type(None), list)) else repr(v))
            for k, v in b.uns["pp"].items()
        },
        "X_sparse": bool(sp.issparse(b.X)),
        "X_dtype": str(b.X.dtype),
        "cells": [str(c) for c in b.obs_names[cells]],
        "genes": genes,
    }
    if "use_for_pca" in b.var:
        rec["use_for_pca"] = np.flatnonzero(b.var["use_for_pca"].to_numpy(bool)).tolist()
    if "pass_basic_filter" in b.var:
        rec["pass_basic_filter_genes"] = int(b.var["pass_basic_filter"].sum())
    arrays[f"{name}_X"] = dense(b.X[cells][:, gidx]).astype(np.float32)
    if "X_pca" in b.obsm:
        arrays[f"{name}_pca"] = np.asarray(b.obsm["X_pca"][cells, :N_PCS], dtype=np.float32)
        rec["n_pcs"] = int(b.obsm["X_pca"].shape[1])
    for key in ("residual_variances", "pp_gene_mean", "pp_gene_variance"):
        if key in b.var:
            arrays[f"{name}_{key}"] = b.var[key].to_numpy(np.float32)
    if "X_spliced" in b.layers:
        spliced = dense(b.layers["X_spliced"][cells][:, gidx])
        arrays[f"{name}_X_spliced"] = spliced.astype(np.float32)
    if "cell_cycle_scores" in b.obsm:
        scores = b.obsm["cell_cycle_scores"]
        rec["cell_cycle_columns"] = list(scores.columns)
        found = b.uns["cell_phase_genes"]
        rec["cell_phase_genes"] = {k: list(map(str, v)) for k, v in found.items()}
        rec["cell_phase_order"] = list(b.uns["cell_phase_order"])
        phases = rec["cell_phase_order"]
        arrays[f"{name}_phase"] = np.array(
            [phases.index(p) for p in b.obs["cell_cycle_phase"].astype(str)], dtype=np.int8
        )
        num = scores[phases + ["cell_cycle_progress", "cell_cycle_order"]].to_numpy(np.float64)
        arrays[f"{name}_scores"] = num[cells].astype(np.float32)
    out[name] = rec


def main(src: str, dst: str) -> None:
    raw = ad.read_h5ad(src)
    out: dict = {"dynamo": dyn.__version__, "n_cells": N_CELLS, "n_pcs": N_PCS}
    arrays: dict = {}

    def run(name, setup):
        b = raw.copy()
        setup(b)
        summary(b, name, raw, out, arrays)
        print(name, "done", flush=True)

    run("seurat", lambda b: dyn.pp.Preprocessor().preprocess_adata(b, recipe="seurat"))

    def seurat500(b):
        pre = dyn.pp.Preprocessor()
        pre.config_seurat_recipe(b)
        pre.select_genes_kwargs["n_top_genes"] = 500
        pre.preprocess_adata_seurat(b)

    run("seurat500", seurat500)
    run("pearson", lambda b: dyn.pp.Preprocessor().preprocess_adata(b, recipe="pearson_residuals"))

    def pearson500(b):
        pre = dyn.pp.Preprocessor()
        pre.config_pearson_residuals_recipe(b)
        pre.select_genes_kwargs["n_top_genes"] = 500
        pre.preprocess_adata_pearson_residuals(b)

    run("pearson500", pearson500)

    def mpr500(b):
        pre = dyn.pp.Preprocessor()
        pre.config_monocle_pearson_residuals_recipe(b)
        pre.select_genes_kwargs["n_top_genes"] = 500
        pre.preprocess_adata_monocle_pearson_residuals(b)

    run("mpr500", mpr500)
    run(
        "cellcycle",
        lambda b: dyn.pp.Preprocessor(cell_cycle_score_enable=True).preprocess_adata(b, "monocle"),
    )
    run(
        "regress",
        lambda b: dyn.pp.Preprocessor(
            regress_out_kwargs={"obs_keys": ["S_score", "G2M_score"]}
        ).preprocess_adata(b, "monocle"),
    )
    save(out, arrays, Path(dst))


def save(out: dict, arrays: dict, dst: Path) -> None:
    """Write the files small: cells as positions, gene masks as npz arrays, no copies."""
    names = list(ad.read_h5ad(sys.argv[1], backed="r").obs_names) if len(sys.argv) > 1 else None
    for name, rec in out.items():
        if not isinstance(rec, dict):
            continue
        if "cells" in rec and names is not None and rec.get("obs_names_kept"):
            rec["cells"] = [names.index(c) for c in rec["cells"]]
        if isinstance(rec.get("use_for_pca"), list):
            arrays[f"{name}_use_for_pca"] = np.asarray(rec.pop("use_for_pca"), dtype=np.int16)
        rec.pop("obs", None)
    for name in ("pearson", "mpr500"):
        arrays.pop(f"{name}_residual_variances", None)
    for name in ("seurat", "seurat500"):
        arrays.pop(f"{name}_pp_gene_variance", None)
    arrays.pop("seurat_pp_gene_mean", None)
    for name in ("seurat", "seurat500", "cellcycle", "regress"):  # tests read mpr500's only
        arrays.pop(f"{name}_X_spliced", None)
    for key in ("cellcycle_X", "cellcycle_pca"):
        arrays.pop(key, None)
    (dst / "pp_recipes_reference.json").write_text(json.dumps(out, default=str) + "\n")
    np.savez_compressed(dst / "pp_recipes_reference.npz", **arrays)


if __name__ == "__main__":
    if sys.argv[2:3] == ["--compact"]:  # shrink files written by an earlier version
        src = Path(sys.argv[3])
        found = json.loads((src / "pp_recipes_reference.json").read_text())
        save(found, dict(np.load(src / "pp_recipes_reference.npz")), Path(sys.argv[4]))
    else:
        main(*sys.argv[1:3])
