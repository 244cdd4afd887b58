"""dynamo's dyn.tl helpers: moments on a graph, sampling, distances, scores, growth,
stationary distributions, hybrid and confident velocities, scVelo key conversion.

Reference numbers come from numpy / scipy written out after dynamo 1.5.3's code, on a
pancreas subsample of dynamo's own outputs; every function also runs on a store.
"""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import test_api_dynamo
from scipy import linalg, sparse
from scipy.cluster.vq import kmeans2
from scipy.spatial.distance import pdist
from sklearn.neighbors import NearestNeighbors
from test_api_dynamo_rest import _scv_like  # the same scVelo-style AnnData

import dynadask as dyn
from dynadask.tl import confidence_cells as cc

GENES = ["Ins1", "Ins2", "Gcg", "Pdx1", "Nkx2-2", "Neurog3", "Pax4", "Arx"]


small = test_api_dynamo.small  # the audit's subsample and its machine-independent graph


def _dense(x) -> np.ndarray:
    x = x.compute() if isinstance(x, da.Array) else x
    return np.asarray(x.toarray() if sparse.issparse(x) else x)


def _store(adata: ad.AnnData, tmp_path, name="s") -> ad.AnnData:
    adata.write_h5ad(tmp_path / f"{name}.h5ad")
    dyn.io.convert(tmp_path / f"{name}.h5ad", tmp_path / f"{name}.zarr", chunk_cells=128)
    return dyn.io.open(tmp_path / f"{name}.zarr")


# ------------------------------------------------------------------------------------------
# calc_1nd_moment / calc_2nd_moment


def test_graph_moments_match_dense_algebra_in_memory_and_lazily(small):
    w = small.obsp["connectivities"]
    x = np.asarray(small.layers["M_s"], dtype=np.float64)
    y = np.asarray(small.layers["velocity_S"], dtype=np.float64)
    y = np.nan_to_num(y)
    wd = w.toarray()
    wn = wd / wd.sum(1, keepdims=True)
    m1, w_out = dyn.tl.calc_1nd_moment(x, w)
    np.testing.assert_allclose(m1, wn @ x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w_out.toarray(), wn, rtol=1e-12)
    np.testing.assert_allclose(dyn.tl.calc_1nd_moment(x, w, normalize_W=False), wd @ x)
    m2 = dyn.tl.calc_2nd_moment(x, y, w, center=True)
    np.testing.assert_allclose(m2, wn @ (x * y) - (wn @ x) * (wn @ y), rtol=1e-8, atol=1e-10)
    # a store's layer: one lazy task per row block, float32 as tl.moments stores moments
    lazy, _ = dyn.tl.calc_1nd_moment(da.from_array(x.astype(np.float32), chunks=(100, -1)), w)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), wn @ x, rtol=2e-5, atol=1e-5)
    lazy2 = dyn.tl.calc_2nd_moment(
        da.from_array(x, chunks=(100, -1)), da.from_array(y, chunks=(100, -1)), w, center=True
    )
    np.testing.assert_allclose(lazy2.compute(), m2, rtol=1e-4, atol=2e-4)  # float32 sums
    with pytest.raises(ValueError, match="sum to 0"):
        dyn.tl.calc_1nd_moment(x, sparse.csr_matrix(w.shape))


# ------------------------------------------------------------------------------------------
# sample


def _dynamo_trn(X, n, seed, tmax=200, li=0.2, lf=0.01, ei=0.3, ef=0.05):
    """dynamo 1.5.3's TRN, written out in numpy."""
    W = X[np.random.default_rng(seed).integers(0, X.shape[0], n)].copy()
    steps = int(tmax * n)
    li = li * n
    P = X[np.random.default_rng(seed).integers(0, X.shape[0], steps)]
    for t in range(1, steps + 1):
        tt = t / steps
        lam, eps = li * (lf / li) ** tt, ei * (ef / ei) ** tt
        D = P[t - 1] - W
        K = np.empty(n, dtype=np.int64)
        K[np.argsort((D * D).sum(1))] = np.arange(n)
        W += eps * np.exp(-K[:, None] / lam) * D
    return NearestNeighbors(n_neighbors=1).fit(X).kneighbors(W, return_distance=False)[:, 0]


def test_sample_methods_follow_dynamo(small):
    cells = np.arange(small.n_obs)
    got = dyn.tl.sample(cells, 50)
    want = np.random.default_rng(19491001).choice(small.n_obs, size=50, replace=False)
    np.testing.assert_array_equal(got, want)
    v = small.obsm["velocity_umap"]
    got = dyn.tl.sample(cells, 40, "velocity", V=v, seed=3)
    speed = np.linalg.norm(v, axis=1)
    want = np.random.default_rng(3).choice(cells, size=40, p=speed / speed.sum(), replace=False)
    np.testing.assert_array_equal(got, want)
    x = np.asarray(small.obsm["X_umap"], dtype=np.float64)
    got = dyn.tl.sample(cells, 8, "trn", X=x, seed=7)
    np.testing.assert_array_equal(got, _dynamo_trn(x, 8, 7))
    got = dyn.tl.sample(cells, 12, "kmeans", X=da.from_array(x, chunks=100), seed=5)
    centroids, _ = kmeans2(x, 12, seed=5)
    near = NearestNeighbors(n_neighbors=1).fit(x).kneighbors(centroids, return_distance=False)
    np.testing.assert_array_equal(got, near[:, 0])
    with pytest.raises(ValueError, match="needs X"):
        dyn.tl.sample(cells, 5, "trn")
    with pytest.raises(ValueError, match="unknown sampling method"):
        dyn.tl.sample(cells, 5, "grid")


# ------------------------------------------------------------------------------------------
# compute_smallest_distance


def test_smallest_distance_is_the_closest_pair(small):
    x = np.asarray(small.obsm["X_umap"], dtype=np.float64)
    assert dyn.tl.compute_smallest_distance(x) == pytest.approx(pdist(x).min(), rel=1e-12)
    dup = np.vstack([x, x[:5]])
    assert dyn.tl.compute_smallest_distance(dup) == pytest.approx(pdist(x).min(), rel=1e-12)
    assert dyn.tl.compute_smallest_distance(dup, use_unique_coords=False) == 0.0
    some = dyn.tl.compute_smallest_distance(da.from_array(x), sample_num=100, seed=1)
    assert some >= pdist(x).min()


# ------------------------------------------------------------------------------------------
# score_cells / cell_growth_rate


def _dynamo_score(adata, genes, layer, n_neighbors=30, beta=0.1, iteration=5):
    """dynamo 1.5.3's score_cells loop, written out (the same array read and written)."""
    pca = np.asarray(adata.obsm["X_pca"], dtype=np.float32)
    knn = NearestNeighbors(n_neighbors=n_neighbors).fit(pca).kneighbors(pca)[1]
    cols = adata.var_names.get_indexer(genes)
    prev = np.asarray(adata.layers[layer])[:, cols].mean(1).astype(np.float64)
    cur = np.zeros(prev.shape)
    for _ in range(iteration):
        for i in range(len(prev)):
            xn = prev[knn[i]]
            cur[i] = beta * xn[0] + (1 - beta) * xn[1:].mean()
        prev = cur
    return cur


def test_score_cells_matches_dynamo_loop_in_memory_and_on_a_store(small, tmp_path):
    adata = small.copy()
    want = _dynamo_score(adata, GENES, "M_s")
    got = dyn.tl.score_cells(adata, [g.upper() for g in GENES], "M_s")
    np.testing.assert_allclose(got, want, rtol=1e-5)
    stored = _store(small, tmp_path)
    assert dyn.tl.score_cells(stored, GENES, "M_s", return_score=False) is None
    np.testing.assert_allclose(stored.obs["cell_score"], want, rtol=1e-5)
    again = dyn.io.open(tmp_path / "s.zarr")
    np.testing.assert_allclose(again.obs["cell_score"], want, rtol=1e-5)
    assert list(again.uns["score_cells"]["genes"]) == list(adata.var_names.intersection(GENES))
    with pytest.raises(ValueError, match="none of the"):
        dyn.tl.score_cells(adata, ["NotAGene"])


def test_cell_growth_rate_from_clones_and_from_scores(small):
    adata = small.copy()
    rng = np.random.default_rng(0)
    adata.obs["time"] = rng.choice(["d0", "d1"], size=adata.n_obs)
    adata.obs["clone"] = rng.choice([f"c{i}" for i in range(20)], size=adata.n_obs)
    dyn.tl.cell_growth_rate(adata, "time", "d0", target="d1", clone_column="clone")
    obs = adata.obs
    src = (obs["time"] == "d0").to_numpy()
    for i in np.flatnonzero(src)[:20]:
        same = obs["clone"] == obs["clone"].iloc[i]
        want = ((same & (obs["time"] == "d1")).sum() + 1) / (
            (same & (obs["time"] == "d0")).sum() + 1
        )
        assert obs["growth_rate"].iloc[i] == pytest.approx(want)
    assert obs["growth_rate"][~src].isna().all()
    birth, death = GENES[:4], GENES[4:]
    dyn.tl.cell_growth_rate(adata, "time", "d0", birth_genes=birth, death_genes=death, layer="M_s")
    b, d = _dynamo_score(adata, birth, "M_s"), _dynamo_score(adata, death, "M_s")
    rate = lambda s, lo: 0.3 + 1.2 / (1 + np.exp(-np.log(1e-3) / lo * s))  # noqa: E731
    want = rate(b[src], b.min()) - rate(d[src], d.min())
    np.testing.assert_allclose(adata.obs["growth_rate"][src], want, rtol=1e-5)
    np.testing.assert_allclose(adata.obs["birth_score"], b, rtol=1e-5)
    with pytest.raises(ValueError, match="birth_genes and death_genes"):
        dyn.tl.cell_growth_rate(adata, "time", "d0")


# ------------------------------------------------------------------------------------------
# stationary_distribution


def _transition(small) -> sparse.csr_matrix:
    """A row-stochastic, non-reversible kernel on the kNN graph (random edge weights)."""
    a = small.obsp["connectivities"].tocoo()
    w = np.random.default_rng(1).random(a.nnz) + 0.05
    t = sparse.csr_matrix((w, (a.row, a.col)), shape=a.shape)
    return sparse.csr_matrix(sparse.diags(1 / np.asarray(t.sum(1)).ravel()) @ t)


@pytest.mark.parametrize("method", ["kmc", "diffusion"])
def test_stationary_distributions_are_left_eigenvectors(small, tmp_path, method):
    t = _transition(small)
    adata = ad.AnnData(obs=small.obs[["clusters"]].copy(), obsp={"pearson_transition_matrix": t})
    dyn.tl.stationary_distribution(adata, method, calc_rnd=False)
    sink = adata.obs["sink_steady_state_distribution"].to_numpy()
    source = adata.obs["source_steady_state_distribution"].to_numpy()
    back = t.T.tocsr()
    back = sparse.diags(1 / np.asarray(back.sum(1)).ravel()) @ back
    for p, m in ((sink, t), (source, back)):
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p >= 0).all()
        np.testing.assert_allclose(p @ m, p, atol=1e-12 if method == "kmc" else 1e-9)
    vals, left = linalg.eig(t.toarray(), left=True, right=False)
    ref = np.abs(np.real(left[:, np.argmax(np.real(vals))]))
    np.testing.assert_allclose(sink, ref / ref.sum(), rtol=1e-6, atol=1e-10)
    if method == "kmc":  # on a store every product is one pass over T's row blocks
        first = t[:150, :150]
        small_t = sparse.csr_matrix(sparse.diags(1 / np.asarray(first.sum(1)).ravel()) @ first)
        mem = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(150)]))
        mem.obsp["pearson_transition_matrix"] = small_t
        dyn.tl.stationary_distribution(mem, calc_rnd=False)
        stored = _store(mem, tmp_path)
        dyn.tl.stationary_distribution(stored, calc_rnd=False)
        again = dyn.io.open(tmp_path / "s.zarr")
        for key in ("sink", "source"):
            got = again.obs[f"{key}_steady_state_distribution"]
            want = mem.obs[f"{key}_steady_state_distribution"]
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)


def test_stationary_distribution_errors():
    with pytest.raises(KeyError, match="cell_velocities"):
        dyn.tl.stationary_distribution(ad.AnnData(np.zeros((3, 2))))


# ------------------------------------------------------------------------------------------
# cell_wise_confidence(method='hybrid'), confident_cell_velocities


def test_hybrid_confidence_is_jaccard_times_mean_consensus(small):
    adata = small.copy()
    dyn.tl.cell_wise_confidence(adata, method="hybrid")
    dyn.tl.cell_wise_confidence(adata, method="jaccard")
    hyb = adata.obs["hybrid_velocity_confidence"].to_numpy()
    jac = adata.obs["jaccard_velocity_confidence"].to_numpy()
    v = np.asarray(adata.layers["velocity_S"], dtype=np.float64)
    keep = np.isfinite(v).all(0)
    x, v = np.asarray(adata.layers["M_s"], dtype=np.float64)[:, keep], v[:, keep]
    future = cc._knn_graph(cc._future_pcs(x, v, 30), 30).toarray() > 0
    a = adata.obsp["connectivities"].toarray() > 0
    inter = ((a.astype(float) @ a) > 0) & ((future.astype(float) @ future) > 0)
    norm = np.linalg.norm(v, axis=1)
    checked = 0
    for i in range(0, adata.n_obs, 7):
        j = np.flatnonzero(inter[i])
        cos = v[j] @ v[i] / (norm[j] * norm[i])
        cons = cos * np.minimum(norm[j], norm[i]) / np.maximum(norm[j], norm[i])
        want = jac[i] * cons.mean() if j.size else np.nan
        np.testing.assert_allclose(hyb[i], want, rtol=1e-9, equal_nan=True)
        checked += np.isfinite(want)
    assert checked > 50


def test_confident_cell_velocities_uses_the_confident_genes(small, tmp_path):
    lineage = {"Ductal": ["Alpha", "Beta"]}
    stored = _store(small, tmp_path)
    dyn.tl.confident_cell_velocities(stored, "clusters", lineage, confidence_threshold=0.8)
    var = dyn.io.open(tmp_path / "s.zarr").var
    avg = (var["avg_prog_confidence"] + var["avg_mature_confidence"]) / 2
    np.testing.assert_array_equal(var["confident_genes"], (avg > 0.8).to_numpy())
    genes = var_names = var.index[var["confident_genes"].to_numpy(dtype=bool)]
    assert 0 < len(genes) < small.n_vars and set(var_names) <= set(
        small.var_names[small.var["use_for_dynamics"]]
    )
    direct = small.copy()
    cols = small.var_names.get_indexer(genes)
    dyn.tl.cell_velocities(
        direct,
        X=direct.layers["M_s"][:, cols],
        V=direct.layers["velocity_S"][:, cols],
        transition_genes=list(genes),
        enforce=True,
    )
    got = np.asarray(dyn.io.open(tmp_path / "s.zarr").obsm["velocity_umap"])
    np.testing.assert_allclose(got, direct.obsm["velocity_umap"], rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------
# scv_dyn_convertor


def test_scvelo_keys_round_trip(tmp_path):
    scv = _scv_like()
    ms = scv.layers["Ms"].copy()
    alpha = scv.var["fit_alpha"].to_numpy()
    out = dyn.tl.scv_dyn_convertor(scv.copy())
    assert set(out.layers) == {"X_spliced", "X_unspliced", "M_s", "M_u", "velocity_S"}
    np.testing.assert_array_equal(out.layers["M_s"], ms)
    assert out.var["pass_basic_filter"].tolist() == [True, False] * 3
    assert out.var["use_for_pca"].tolist() == [True, False, True, True, False, False]
    assert list(out.uns["vel_params_names"]) == ["alpha", "gamma"]
    np.testing.assert_array_equal(out.varm["vel_params"][:, 0], alpha)
    assert out.uns["dynamics"]["model"] == "stochastic" and "recover_dynamics" not in out.uns
    assert out.uns["pp"]["experiment_type"] == "conventional"
    back = dyn.tl.scv_dyn_convertor(out, "to_scv")
    assert set(back.layers) == {"spliced", "unspliced", "Ms", "Mu", "velocity"}
    np.testing.assert_array_equal(back.var["fit_alpha"], alpha)
    assert back.var["highly_variable_genes"].tolist() == ["True", "False"] * 3
    assert "pp" not in back.uns and "vel_params" not in back.varm
    stored = _store(scv, tmp_path)
    dyn.tl.scv_dyn_convertor(stored)
    again = dyn.io.open(tmp_path / "s.zarr")
    np.testing.assert_array_equal(_dense(again.layers["M_s"]), ms)
    assert again.var["use_for_pca"].tolist() == [True, False, True, True, False, False]
    np.testing.assert_array_equal(np.asarray(again.varm["vel_params"])[:, 0], alpha)
    with pytest.raises(ValueError, match="unknown mode"):
        dyn.tl.scv_dyn_convertor(scv, "to_loom")


# ------------------------------------------------------------------------------------------
# find_group_markers / top_n_markers


def _bh(p):
    n = len(p)
    order = np.argsort(p)
    q = np.minimum.accumulate((p[order] * n / np.arange(1, n + 1))[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1)
    return out


def _js_specificity(perc, perfect):
    def ent(p):
        if np.min(p) < 0 or np.sum(p) <= 0:
            return np.inf
        p = p[p > 0] / np.sum(p)
        return -np.sum(np.log(p) * p)

    p = np.asarray(perc) / np.sum(perc)
    p[np.isnan(p)] = 0
    d = ent((p + perfect) / 2) - (ent(p) + ent(perfect)) / 2
    d = 1 if np.isinf(d) else max(d, 0)
    return 1 - np.sqrt(d)


def _dynamo_markers(x, genes, labels, exp_frac=0.1, fc=1.0):
    """dynamo 1.5.3's two_groups_degs loop on a dense layer, written out per test group."""
    from scipy.stats import mannwhitneyu

    clusters = list(pd.unique(labels))
    n_cells = len(labels)
    tables = []
    for test in clusters:
        controls = sorted(set(clusters) - {test})
        n_test = int((labels == test).sum())
        min_n = [min(n_test, int((labels == c).sum())) for c in controls]
        rows = []
        for gi, gene in enumerate(genes):
            rbc, pval = 0, 1
            vals = x[:, gi]
            tv = vals[labels == test]
            perc = [np.count_nonzero(tv) / n_cells]
            ef = np.count_nonzero(tv) / n_test
            if ef < exp_frac:
                continue
            lmt = np.log2(tv.mean())
            perc += [np.count_nonzero(vals[labels == c]) / n_cells for c in controls]
            for i, c in enumerate(controls):
                cv = np.sort(vals[labels == c])[-min_n[i] :]
                mc = cv.mean()
                lfc = np.inf if mc == 0 else lmt - np.log2(mc)
                if abs(lfc) < fc:
                    continue
                try:
                    r = mannwhitneyu(tv, cv)
                except ValueError:
                    pass
                else:
                    pval, rbc = r.pvalue, 1 - 2 * r.statistic / (n_test * min_n[i])
                perfect = np.zeros(len(controls) + 1)
                perfect[i + 1] = 1
                ratio = (tv > 0).sum() / len(tv) - (cv > 0).sum() / len(cv)
                rows.append((gene, c, ef, rbc, lfc, pval, _js_specificity(perc, perfect), ratio))
        de = pd.DataFrame(
            rows,
            columns=[
                "gene",
                "versus_group",
                "exp_frac",
                "rbc",
                "log2_fc",
                "pval",
                "specificity",
                "diff_ratio_pos",
            ],
        )
        de = de[de.iloc[:, 2:].sum(1) > 0]
        de["qval"] = _bh(de["pval"].to_numpy()) if len(de) > 1 else np.nan
        de["test_group"] = test
        tables.append(de[de.qval < 0.05])
    return pd.concat(tables)


def test_group_markers_match_dynamo_rule_in_memory_and_on_a_store(small, tmp_path):
    genes = list(small.var_names[np.asarray(small.var["use_for_pca"])][:40]) + GENES
    adata = small.copy()
    cols = adata.var_names.isin(genes)
    names = adata.var_names[cols]
    x = np.asarray(adata.layers["M_s"], dtype=np.float64)[:, cols]
    labels = adata.obs["clusters"].astype(str).to_numpy()
    want = _dynamo_markers(x, names, labels)
    assert len(want) > 20
    dyn.tl.find_group_markers(adata, "clusters", genes, layer="M_s", max_values=5_000)
    got = adata.uns["cluster_markers"]["deg_table"]
    assert list(got.columns) == [
        "gene", "test_group", "versus_group", "specificity", "exp_frac",
        "diff_ratio_pos", "rbc", "log2_fc", "pval", "qval",
    ]  # fmt: skip
    key = ["test_group", "gene", "versus_group"]
    merged = want.merge(got, on=key, suffixes=("_want", ""), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    for col in ("specificity", "exp_frac", "diff_ratio_pos", "rbc", "log2_fc", "pval", "qval"):
        np.testing.assert_allclose(merged[col], merged[f"{col}_want"], rtol=1e-6, err_msg=col)
    first = labels[0]
    assert set(adata.uns["cluster_markers"]["de_genes0"]) == set(got.gene[got.test_group == first])
    top = dyn.tl.top_n_markers(adata, top_n_genes=2, display=False)
    top = top.reset_index(drop=True)  # dynamo's index repeats the test_group column
    assert (top.groupby("test_group").size() <= 2).all()
    ok = got.query("exp_frac > 0.1 and qval < 0.05 and specificity > 0.3 and log2_fc > 1")
    for grp, frame in top.groupby("test_group"):
        best = ok[ok.test_group == grp].specificity.nlargest(2).to_numpy()
        np.testing.assert_allclose(frame.specificity.to_numpy(), best)
    # a store: the same table, one counting pass and the gathered values
    stored = _store(small, tmp_path)
    dyn.tl.find_group_markers(stored, "clusters", genes, layer="M_s")
    again = dyn.io.open(tmp_path / "s.zarr").uns["cluster_markers"]["deg_table"]
    pd.testing.assert_frame_equal(
        again.sort_values(key).reset_index(drop=True),
        got.sort_values(key).reset_index(drop=True),
        rtol=1e-6,
        check_dtype=False,
    )
    with pytest.raises(ValueError, match="at least two"):
        one = small.copy()
        one.obs["one"] = "a"
        dyn.tl.find_group_markers(one, "one", genes, layer="M_s")
