"""dynamo 1.5.3's behaviour on the calls of issue 19's list, on small pancreas subsamples.

Run with dynamo's interpreter (not dynadask's):

    nice -n 19 /work/dynvenv/bin/python benchmarks/api_audit_dynamo.py \
        /work/shared/data tests/data/dynamo_api_audit.json [case,case,...]

(with case names, only those are run again and merged into the existing file).

Records, per call, what dynamo returns (type, length, shape) and a few numbers of its
result, for ``tests/test_api_dynamo.py`` to compare with dynadask's. Subsamples: every 9th
cell of pancreas.h5ad (preprocessing calls); every 8th cell of dynamo's reference outputs
with 300 genes and a 30-NN graph on X_pca (the dyn.tl helpers; the same construction as the
``small`` fixture of tests/test_tl_api.py).
"""

import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
from scipy import sparse

warnings.filterwarnings("ignore")
GENES = ["Ins1", "Ins2", "Gcg", "Pdx1", "Nkx2-2", "Neurog3", "Pax4", "Arx"]
PICK_CELLS = [0, 7, 50, 133, 250, 400]
PICK_GENES = ["Gcg", "Ins2", "Pyy", "Sst", "Ghrl", "Iapp"]


def dense(x):
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def values(adata, key=None):
    """X (or a layer) at a few cells and genes that survive the filters."""
    genes = [g for g in PICK_GENES if g in adata.var_names]
    cells = [adata.obs_names[i] for i in PICK_CELLS if i < adata.n_obs]
    sub = adata[cells, genes]
    return {
        "cells": cells,
        "genes": genes,
        "values": dense(sub.X if key is None else sub.layers[key]).tolist(),
    }


def kind(obj):
    if isinstance(obj, (list, tuple)):
        return {"type": "list", "len": len(obj), "items": sorted({type(o).__name__ for o in obj})}
    return {"type": type(obj).__name__}


def small_tl(ref):
    from sklearn.neighbors import NearestNeighbors

    cells = np.arange(0, ref.n_obs, 8)
    dyn_genes = ref.var_names[np.asarray(ref.var["use_for_dynamics"], dtype=bool)]
    genes = ref.var_names.isin(list(dyn_genes[:292]) + GENES)
    sub = ref[cells, genes]
    pca = np.asarray(sub.obsm["X_pca"], dtype=np.float64)
    dist = NearestNeighbors(n_neighbors=30).fit(pca).kneighbors_graph(pca, mode="distance")
    conn = ((dist + dist.T) > 0).astype(np.float64).tocsr()
    var = sub.var[["use_for_pca", "use_for_dynamics", "use_for_transition", "gamma"]].copy()
    out = ad.AnnData(
        X=sparse.csr_matrix(np.maximum(np.asarray(sub.layers["M_s"]), 0).astype(np.float32)),
        obs=sub.obs[["clusters"]].copy(),
        var=var,
        layers={k: np.asarray(sub.layers[k], dtype=np.float32) for k in ("M_s", "velocity_S")},
        obsm={k: np.asarray(sub.obsm[k]) for k in ("X_pca", "X_umap", "velocity_umap")},
        obsp={"connectivities": conn, "distances": dist.tocsr()},
    )
    out.uns["neighbors"] = {"params": {"n_neighbors": 30}}
    return out


ONLY: set[str] = set()  # case names given on the command line: rerun those only


def run(name, res, fn):
    if ONLY and name not in ONLY:
        return
    try:
        res[name] = fn()
    except Exception as exc:  # record what dynamo does, failures included
        res[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print(name, str(res[name])[:200], flush=True)


def pp_cases(dyn, raw, res):
    """The preprocessing calls on every 9th pancreas cell."""

    def preprocess():
        a = raw.copy()
        dyn.pp.Preprocessor().preprocess_adata(a, recipe="monocle")
        return {"X_norm_method": a.uns["pp"].get("X_norm_method"), **values(a)}

    def normalize_after_sz():
        a = raw.copy()
        dyn.pp.calc_sz_factor(a)
        r = dyn.pp.normalize(a)
        return {
            "returns": kind(r),
            "sz": a.obs["Size_Factor"].to_numpy()[PICK_CELLS].tolist(),
            **values(a),
        }

    def log1p_returns():
        a = raw.copy()
        dyn.pp.calc_sz_factor(a)
        dyn.pp.normalize(a)
        r = dyn.pp.log1p(a)
        return {"returns": kind(r), "same_object": r is a, **values(r if r is not None else a)}

    def outliers():
        a = raw.copy()
        r = dyn.pp.filter_genes_by_outliers(a, min_cell_s=30)
        shape = list(a.shape)
        r2 = dyn.pp.filter_genes_by_outliers(a, min_cell_s=30, inplace=True)
        return {
            "returns": kind(r),
            "n_true": int(np.sum(r)),
            "index_is_genes": bool((r.index == raw.var_names).all())
            if hasattr(r, "index")
            else False,
            "shape_before": shape,
            "inplace_returns": kind(r2),
            "shape_after_inplace": list(a.shape),
        }

    def reduce5():
        a = raw.copy()
        dyn.pp.Preprocessor().preprocess_adata(a, recipe="monocle")
        a.obsm["X_pca"] = a.obsm["X_pca"][:, :5]
        r = dyn.tl.reduceDimension(a)
        return {"returns": kind(r), "X_umap_shape": list(a.obsm["X_umap"].shape)}

    for name, fn in [
        ("preprocess_X", preprocess),
        ("normalize_after_calc_sz_factor", normalize_after_sz),
        ("log1p", log1p_returns),
        ("filter_genes_by_outliers", outliers),
        ("reduceDimension_5pcs", reduce5),
    ]:
        run(name, res, fn)


def tl_cases(dyn, small, res):
    """The dyn.tl helpers on the small subsample of dynamo's outputs."""

    def moment1():
        x = np.asarray(small.layers["M_s"], dtype=np.float64)
        m, _ = dyn.tl.calc_1nd_moment(x, small.obsp["connectivities"])
        return {"rows": m[PICK_CELLS, :5].tolist()}

    def smallest():
        return {
            "value": float(
                dyn.tl.compute_smallest_distance(np.asarray(small.obsm["X_umap"], dtype=np.float64))
            )
        }

    def score():
        a = small.copy()
        s = dyn.tl.score_cells(a, GENES, "M_s")
        return {"returns": kind(s), "first": np.asarray(s)[:20].tolist(), "mean": float(np.mean(s))}

    def hybrid():
        a = small.copy()
        a.uns["pp"] = {"layers_norm_method": None}  # M_s is not logged (dynamo reads this)
        dyn.tl.cell_wise_confidence(a, method="hybrid")
        h = a.obs["hybrid_velocity_confidence"].to_numpy()
        return {
            "first": h[:20].tolist(),
            "nanmean": float(np.nanmean(h)),
            "n_nan": int(np.isnan(h).sum()),
        }

    def markers():
        a = small.copy()
        genes = list(a.var_names[np.asarray(a.var["use_for_pca"])][:40]) + GENES
        dyn.tl.find_group_markers(a, "clusters", genes, layer="M_s")
        t = a.uns["cluster_markers"]["deg_table"]
        top = dyn.tl.top_n_markers(a, top_n_genes=2, display=False)
        return {
            "columns": list(t.columns),
            "n_rows": int(len(t)),
            "top": top.reset_index(drop=True)[["test_group", "gene"]].astype(str).values.tolist(),
        }

    for name, fn in [
        ("calc_1nd_moment", moment1),
        ("compute_smallest_distance", smallest),
        ("score_cells", score),
        ("cell_wise_confidence_hybrid", hybrid),
        ("find_group_markers", markers),
    ]:
        run(name, res, fn)


def figure_cases(dyn, ref, res):
    """What the vector figures return."""

    def figures():
        a = ref[::4].copy()
        got = {}
        for fname in ("cell_wise_vectors", "streamline_plot"):
            r = getattr(dyn.pl, fname)(
                a, basis="umap", color=["clusters", "nGenes"], save_show_or_return="return"
            )
            got[fname] = kind(r)
            r1 = getattr(dyn.pl, fname)(
                a, basis="umap", color="clusters", save_show_or_return="return"
            )
            got[fname + "_one_color"] = kind(r1)
        for fname in ("umap", "scatters"):
            r = (
                getattr(dyn.pl, fname)(
                    a, color=["clusters", "nGenes"], save_show_or_return="return"
                )
                if fname == "umap"
                else dyn.pl.scatters(
                    a, basis="umap", color=["clusters", "nGenes"], save_show_or_return="return"
                )
            )
            got[fname] = kind(r)
        return got

    run("figures", res, figures)


def main(data, out):
    import matplotlib

    matplotlib.use("Agg")
    import dynamo as dyn

    raw = ad.read_h5ad(Path(data) / "pancreas.h5ad")[::9].copy()
    res = json.loads(Path(out).read_text()) if ONLY else {}
    res["n_cells_pp"] = int(raw.n_obs)
    pp_cases(dyn, raw, res)
    ref = ad.read_h5ad(Path(data) / "pancreas_dynamo_reference.h5ad")
    small = small_tl(ref)
    res["small_shape"] = list(small.shape)
    tl_cases(dyn, small, res)
    figure_cases(dyn, ref, res)
    Path(out).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    ONLY.update(sys.argv[3].split(",") if len(sys.argv) > 3 else ())
    main(sys.argv[1], sys.argv[2])
