"""dynamo 1.5.3's behaviour on the calls of issue 19's list, on small pancreas subsamples.

Run with dynamo's interpreter (not dynadask's):

    nice -n 19 /work/dynvenv/bin/python benchmarks/api_audit_dynamo.py \
        /work/shared/data tests/data/dynamo_api_audit.json [case,case,...]

(with case names, only those are run again and merged into the existing file).

Records, per call, what dynamo returns (type, length, shape) and a few numbers of its
result, for ``tests/test_api_dynamo.py`` to compare with dynadask's. Subsamples: every 9th
cell of pancreas.h5ad (preprocessing calls); every 8th cell of dynamo's reference outputs
with 300 genes and a 30-NN graph on X_pca (the dyn.tl helpers; the same construction as the
``small`` fixture of tests/test_api_dynamo.py, which tests/test_tl_api.py shares).
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


def small_tl(ref, loops=None):
    """The dyn.tl subsample; ``loops``: the cells whose graph has an edge to itself.

    Each cell is its own first neighbour at a distance that BLAS gives as 0 or as rounding
    (up to ~1e-7, different between CPUs); the cells with a non-zero one keep a self-edge.
    ``loops=None`` takes this machine's; the recorded ``small_self_loops`` make the graph of
    the recorded figures on any machine (``tests/test_api_dynamo.py`` builds it so).
    """
    from sklearn.neighbors import NearestNeighbors

    cells = np.arange(0, ref.n_obs, 8)
    dyn_genes = ref.var_names[np.asarray(ref.var["use_for_dynamics"], dtype=bool)]
    genes = ref.var_names.isin(list(dyn_genes[:292]) + GENES)
    sub = ref[cells, genes]
    pca = np.asarray(sub.obsm["X_pca"], dtype=np.float64)
    dist = NearestNeighbors(n_neighbors=30).fit(pca).kneighbors_graph(pca, mode="distance")
    if loops is None:
        loops = np.flatnonzero(dist.diagonal() > 0).tolist()
    dist.setdiag(0.0)
    conn = ((dist + dist.T) > 0).astype(np.float64).tolil()
    conn[loops, loops] = 1.0
    conn = conn.tocsr()
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


def transition(small):
    """A row-stochastic, non-reversible kernel on the kNN graph (seeded random edge weights;
    the construction of tests/test_tl_api.py)."""
    a = small.obsp["connectivities"].tocoo()
    w = np.random.default_rng(1).random(a.nnz) + 0.05
    t = sparse.csr_matrix((w, (a.row, a.col)), shape=a.shape)
    return sparse.csr_matrix(sparse.diags(1 / np.asarray(t.sum(1)).ravel()) @ t)


def scv_like():
    """A small AnnData in scVelo's conventions (the construction of tests/test_tl_api.py)."""
    import pandas as pd

    rng = np.random.default_rng(0)
    n, g = 40, 6
    return ad.AnnData(
        X=rng.random((n, g)).astype(np.float32),
        layers={
            k: rng.random((n, g)).astype(np.float32)
            for k in ("spliced", "unspliced", "Ms", "Mu", "velocity")
        },
        var=pd.DataFrame(
            {
                "highly_variable_genes": ["True", "False"] * 3,
                "highly_variable": [True, False, True, True, False, False],
                "fit_alpha": rng.random(g),
                "fit_gamma": rng.random(g),
            },
            index=[f"g{i}" for i in range(g)],
        ),
        uns={"recover_dynamics": {"fit_connected_states": True}},
    )


def keys_of(a):
    return {
        "layers": sorted(a.layers),
        "var": sorted(a.var.columns),
        "uns": sorted(a.uns),
        "varm": sorted(a.varm),
        "obsm": sorted(a.obsm),
    }


def stationary_case(dyn, small):
    """dynamo's stationary distributions of the benchmark's transition matrix."""
    out = {}
    t = transition(small)
    a = ad.AnnData(obs=small.obs[["clusters"]].copy(), obsp={"transition_matrix": t})
    try:
        r = dyn.tl.stationary_distribution(a)
        out["default_returns"] = kind(r)
    except Exception as exc:
        out["default_error"] = f"{type(exc).__name__}: {exc}"
    # dynamo's 'diffusion' runs scipy.linalg.eig on T: a sparse T fails, a dense one runs
    for name, method, m in (
        ("kmc", "kmc", t),
        ("diffusion", "diffusion", t),
        ("diffusion_dense", "diffusion", t.toarray()),
    ):
        a = ad.AnnData(obs=small.obs[["clusters"]].copy(), obsp={"transition_matrix": m})
        try:
            r = dyn.tl.stationary_distribution(a, method, calc_rnd=False)
        except Exception as exc:
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        got = {"returns": kind(r)}
        for side in ("sink", "source"):
            p = a.obs[f"{side}_steady_state_distribution"].to_numpy()
            got[side] = p[:20].tolist()
            got[side + "_sum"] = float(p.sum())
            got[side + "_minmax"] = [float(p.min()), float(p.max())]
        out[name] = got
    return out


def tl_more_cases(dyn, small, ref, res):
    """sample, stationary_distribution, cell_growth_rate, confident_cell_velocities,
    scv_dyn_convertor on the small subsample (or small constructions)."""
    cells = np.arange(small.n_obs)

    def sample():
        out = {}
        r = dyn.tl.sample(cells, 50)
        out["random"] = np.asarray(r).tolist()
        out["returns"] = kind(r)
        v = np.asarray(small.obsm["velocity_umap"], dtype=np.float64)
        out["velocity"] = np.asarray(dyn.tl.sample(cells, 40, "velocity", V=v)).tolist()
        x = np.asarray(small.obsm["X_umap"], dtype=np.float64)
        out["trn"] = np.asarray(dyn.tl.sample(cells, 8, "trn", X=x)).tolist()
        k = dyn.tl.sample(cells, 12, "kmeans", X=x)
        out["kmeans_len"] = len(k)
        try:
            dyn.tl.sample(cells, 5, "velocity")
        except Exception as exc:
            out["velocity_without_V"] = type(exc).__name__
        return out

    def stationary():
        return stationary_case(dyn, small)

    def growth():
        a = small.copy()
        # collection times and clones in uneven proportions (every clone at d0 and d1)
        a.obs["time"] = np.array(["d0", "d1", "d2"])[(cells * 7 // 3) % 3]
        a.obs["clone"] = [f"c{(i * i) % 13}" for i in cells]
        r = dyn.tl.cell_growth_rate(a, "time", "d0", target="d1", clone_column="clone")
        g = a.obs["growth_rate"].to_numpy()
        out = {
            "returns": kind(r),
            "same_object": r is a,
            "clone_rates": g[:30].tolist(),
            "clone_n_nan": int(np.isnan(g).sum()),
        }
        b = small.copy()
        b.obs["time"] = a.obs["time"].to_numpy()
        dyn.tl.cell_growth_rate(
            b, "time", "d0", birth_genes=GENES[:4], death_genes=GENES[4:], layer="M_s"
        )
        g = b.obs["growth_rate"].to_numpy()
        out["score_rates"] = g[:30].tolist()
        out["score_n_nan"] = int(np.isnan(g).sum())
        out["birth_score"] = b.obs["birth_score"].to_numpy()[:20].tolist()
        out["death_score"] = b.obs["death_score"].to_numpy()[:20].tolist()
        out["obs_columns"] = sorted(set(b.obs.columns) - set(small.obs.columns))
        return out

    def confident():
        a = small.copy()
        # dynamo's gene_wise_confidence indexes its counts as a sparse column's: dense layers
        # fail (IndexError), so the layers are given as CSR
        for k in ("M_s", "velocity_S"):
            a.layers[k] = sparse.csr_matrix(a.layers[k])
        a.uns["dynamics"] = dict(ref.uns["dynamics"])  # dynamo's cell_velocities reads
        a.uns["pp"] = dict(ref.uns["pp"])  # these two records, and an M_u layer
        a.layers["M_u"] = sparse.csr_matrix(ref[::8][:, small.var_names].layers["M_u"])
        r = dyn.tl.confident_cell_velocities(
            a, "clusters", {"Ductal": ["Alpha", "Beta"]}, confidence_threshold=0.8
        )
        conf = np.asarray(a.var["confident_genes"], dtype=bool)
        return {
            "returns": kind(r),
            "same_object": r is a,
            "confident_genes": list(a.var_names[conf]),
            "avg_confidence": a.var["avg_confidence"].to_numpy()[:30].tolist(),
            "velocity_umap": np.asarray(a.obsm["velocity_umap"])[PICK_CELLS].tolist(),
            "velocity_umap_all": np.round(np.asarray(a.obsm["velocity_umap"]), 6).tolist(),
            "new_var": sorted(set(a.var.columns) - set(small.var.columns)),
            "use_for_transition": list(a.var_names[np.asarray(a.var["use_for_transition"], bool)]),
            "n_finite_confident": int(
                np.isfinite(dense(a[:, conf].layers["velocity_S"]).sum(0)).sum()
            ),
            "obsp": sorted(a.obsp),
        }

    def convertor():
        scv = scv_like()
        out = dyn.tl.scv_dyn_convertor(scv.copy())
        back = dyn.tl.scv_dyn_convertor(out.copy(), "to_scv")
        return {
            "returns": kind(out),
            "to_dyn": keys_of(out),
            "vel_params_names": list(out.uns.get("vel_params_names", [])),
            "vel_params_first_col": np.asarray(out.varm["vel_params"])[:, 0].tolist(),
            "use_for_pca": out.var["use_for_pca"].tolist(),
            "pass_basic_filter": out.var["pass_basic_filter"].tolist(),
            "dynamics": {k: str(v) for k, v in out.uns.get("dynamics", {}).items()},
            "pp": {k: str(v) for k, v in out.uns.get("pp", {}).items()},
            "to_scv": keys_of(back),
        }

    for name, fn in [
        ("sample", sample),
        ("stationary_distribution", stationary),
        ("cell_growth_rate", growth),
        ("confident_cell_velocities", confident),
        ("scv_dyn_convertor", convertor),
    ]:
        run(name, res, fn)


def pp_more_cases(dyn, data, ref, res):
    """top_pca_genes on dynamo's reference; the gene filters on the raw pancreas counts."""
    full = ad.read_h5ad(Path(data) / "pancreas.h5ad")

    def top_pca():
        out = {}
        a = ref.copy()
        r = dyn.pp.top_pca_genes(a)
        out["returns"] = kind(r)
        out["same_object"] = r is a
        flags = np.asarray(a.var["top_pca_genes"], dtype=bool)
        out["default_n"] = int(flags.sum())
        out["default_first"] = list(a.var_names[flags][:20])
        dyn.pp.top_pca_genes(a, n_top_genes=50, pc_components=5, adata_store_key="top5")
        out["five_pcs_50"] = list(a.var_names[np.asarray(a.var["top5"], dtype=bool)])
        return out

    def by_clusters():
        out = {}
        for limit in (40, 400):
            r = dyn.pp.filter_genes_by_clusters(full.copy(), "clusters", size_limit=limit)
            out[f"limit_{limit}"] = {
                "returns": kind(r),
                "n_true": int(np.sum(r)),
                "true_idx": np.flatnonzero(np.asarray(r)).tolist(),
            }
        return out

    def by_pattern():
        out = {}
        a = full.copy()
        r = dyn.pp.filter_genes_by_pattern(a)
        out["default_returns"] = kind(r) if r is not None else {"type": "NoneType"}
        r = dyn.pp.filter_genes_by_pattern(a, patterns=("Rps", "Rpl", "mt-"))
        out["mouse_returns"] = kind(r)
        out["mouse_true"] = [str(g) for g, m in zip(a.var_names, r, strict=True) if m]
        r = dyn.pp.filter_genes_by_pattern(a, patterns=("Rps", "Rpl", "mt-"), drop_genes=True)
        out["drop_returns"] = kind(r) if r is not None else {"type": "NoneType"}
        out["drop_shape"] = list(a.shape)
        return out

    for name, fn in [
        ("top_pca_genes", top_pca),
        ("filter_genes_by_clusters", by_clusters),
        ("filter_genes_by_pattern", by_pattern),
    ]:
        run(name, res, fn)


def facet_summary(g):
    """What a seaborn FacetGrid holds: its panels and the long table it draws."""
    data = g.data
    out = {
        "type": type(g).__name__,
        "axes_shape": list(np.shape(g.axes)),
        "columns": list(data.columns),
        "n_rows": int(len(data)),
        "means": {str(k): float(v) for k, v in data.groupby("variable")["value"].mean().items()},
        "titles": [ax.get_title() for ax in np.ravel(g.axes)],
    }
    if "group" in data:
        out["group_means"] = {
            f"{v}|{gr}": float(m)
            for (v, gr), m in data.groupby(["variable", "group"], observed=True)["value"]
            .mean()
            .items()
        }
    return out


def features_case(dyn, raw, p):
    """dynamo's feature_genes after its two preprocessing recipes."""
    out = {}
    try:
        f = dyn.pl.feature_genes(p.copy(), save_show_or_return="return")
        out["pp"] = {"returns": kind(f)}
    except Exception as exc:
        out["pp"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    a = raw.copy()
    dyn.pp.recipe_monocle(a)
    try:
        f = dyn.pl.feature_genes(a, save_show_or_return="return")
        ax = f.axes[0]
        out["recipe_monocle"] = {
            "returns": kind(f),
            "mode": str(a.uns.get("feature_selection")),
            "n_points": [len(c.get_offsets()) for c in ax.collections],
            "n_lines": len(ax.lines),
            "labels": [ax.get_xlabel(), ax.get_ylabel(), ax.get_yscale()],
        }
    except Exception as exc:
        out["recipe_monocle"] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


def highest_on(dyn, a):
    """dynamo's highest_frac_genes figure and the uns record it writes."""
    ax = dyn.pl.highest_frac_genes(a, n_top=10, show=False)
    rec = a.uns["highest_frac_genes"]
    df = rec["top_genes_df"]
    return {
        "returns": kind(ax),
        "uns_keys": sorted(rec),
        "top": [str(c) for c in df.columns],
        "shape": list(df.shape),
        "means": df.mean(0).to_numpy().tolist(),
        "percents": rec["gene_percents"]["percent"].to_numpy()[rec["selected_indices"]].tolist(),
        "xticks": [t.get_text() for t in ax.get_xticklabels()],
        "labels": [ax.get_xlabel(), ax.get_ylabel(), ax.get_title()],
    }


def pl_stat_cases(dyn, raw, ref, res):
    """The statistics figures on every 9th pancreas cell after dynamo's preprocessing (the
    PCA figures also on dynamo's reference)."""
    import matplotlib.pyplot as plt

    p = raw.copy()
    dyn.pp.Preprocessor().preprocess_adata(p, recipe="monocle")
    ret = {"save_show_or_return": "return"}

    def basic():
        return {
            "plain": facet_summary(dyn.pl.basic_stats(p.copy(), **ret)),
            "group": facet_summary(dyn.pl.basic_stats(p.copy(), group="clusters", **ret)),
        }

    def fraction():
        return {
            "plain": facet_summary(dyn.pl.show_fraction(p.copy(), **ret)),
            "group": facet_summary(dyn.pl.show_fraction(p.copy(), group="clusters", **ret)),
        }

    def by_groups():
        genes = ["Gcg", "Ins2", "Pyy"]
        g = dyn.pl.exp_by_groups(p.copy(), genes, group="clusters", use_smoothed=False, **ret)
        out = facet_summary(g)
        out["xticks"] = [t.get_text() for t in np.ravel(g.axes)[0].get_xticklabels()]
        out["ylabel"] = np.ravel(g.axes)[0].get_ylabel()
        # on the raw counts of the spliced layer (no preprocessing needed)
        g = dyn.pl.exp_by_groups(
            raw.copy(), genes, layer="spliced", group="clusters", use_smoothed=False, **ret
        )
        out["raw_spliced"] = facet_summary(g)
        return out

    def variance():
        out = {}
        for name, a in (("pp", p), ("reference", ref)):
            ax = dyn.pl.variance_explained(a.copy(), **ret)
            out[name] = {
                "returns": kind(ax),
                "curve": np.asarray(ax.lines[0].get_ydata(), dtype=float).tolist(),
                "cut": float(np.asarray(ax.lines[1].get_xdata())[0]),
                "xlim": list(ax.get_xlim()),
                "labels": [ax.get_xlabel(), ax.get_ylabel()],
            }
        return out

    def bi():
        a = ref.copy()
        ax = dyn.pl.biplot(a, **ret)
        # each gene's arrow from the origin: FancyArrow keeps its (dx, dy)
        tips = np.array([[pt._dx, pt._dy] for pt in ax.patches])
        return {
            "returns": kind(ax),
            "n_arrows": len(ax.patches),
            "n_cell_lines": len(ax.lines),
            "n_texts": len(ax.texts),
            "first_text": ax.texts[0].get_text() if ax.texts else None,
            "labels": [ax.get_xlabel(), ax.get_ylabel()],
            "tips_first": tips[:10].tolist(),
            "tips_abs_sum": np.abs(tips).sum(0).tolist(),
        }

    def load():
        a = ref.copy()
        axes = dyn.pl.loading(a, n_pcs=4, n_top_genes=5, ncol=2, **ret)
        first = np.ravel(axes)[0]
        return {
            "returns": kind(axes),
            "shape": list(np.shape(axes)),
            "titles": [x.get_title() for x in np.ravel(axes)],
            "first_values": np.asarray(first.collections[0].get_offsets())[:, 1].tolist(),
            "first_texts": [t.get_text() for t in first.texts],
        }

    def features():
        return features_case(dyn, raw, p)

    def highest():
        return {"pp": highest_on(dyn, p.copy()), "raw": highest_on(dyn, raw.copy())}

    for name, fn in [
        ("pl_basic_stats", basic),
        ("pl_show_fraction", fraction),
        ("pl_exp_by_groups", by_groups),
        ("pl_variance_explained", variance),
        ("pl_biplot", bi),
        ("pl_loading", load),
        ("pl_feature_genes", features),
        ("pl_highest_frac_genes", highest),
    ]:
        run(name, res, fn)
        plt.close("all")


def main(data, out):
    import matplotlib

    matplotlib.use("Agg")
    import dynamo as dyn

    raw = ad.read_h5ad(Path(data) / "pancreas.h5ad")[::9].copy()
    res = json.loads(Path(out).read_text()) if ONLY else {}
    res["n_cells_pp"] = int(raw.n_obs)
    pp_cases(dyn, raw, res)
    ref = ad.read_h5ad(Path(data) / "pancreas_dynamo_reference.h5ad")
    recorded = json.loads(Path(out).read_text()) if Path(out).exists() else {}
    small = small_tl(ref, recorded.get("small_self_loops"))
    res["small_shape"] = list(small.shape)
    res["small_self_loops"] = np.flatnonzero(small.obsp["connectivities"].diagonal()).tolist()
    tl_cases(dyn, small, res)
    figure_cases(dyn, ref, res)
    tl_more_cases(dyn, small, ref, res)
    pp_more_cases(dyn, data, ref, res)
    pl_stat_cases(dyn, raw, ref, res)
    Path(out).write_text(json.dumps(res, indent=1, default=str) + "\n")


if __name__ == "__main__":
    ONLY.update(sys.argv[3].split(",") if len(sys.argv) > 3 else ())
    main(sys.argv[1], sys.argv[2])
