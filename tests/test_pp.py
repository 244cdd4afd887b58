"""dyn.pp: monocle recipe parity with dynamo 1.5.3, store == memory, input types, errors."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from scipy import sparse
from scipy.linalg import subspace_angles

import dynadask as dyn
from dynadask._core.compute import compute_count


@pytest.fixture(scope="module")
def processed(pancreas_path):
    adata = ad.read_h5ad(pancreas_path)
    dyn.pp.recipe_monocle(adata)
    return adata


def _column_corr(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.array([abs(np.corrcoef(a[:, i], b[:, i])[0, 1]) for i in range(a.shape[1])])


def test_feature_genes_match_dynamo(processed, reference):
    ours, theirs = processed.var.use_for_pca.values, reference.var.use_for_pca.values
    assert (ours & theirs).sum() / (ours | theirs).sum() >= 0.95
    assert ours.sum() == 1617
    np.testing.assert_array_equal(
        processed.var.pass_basic_filter.values, reference.var.pass_basic_filter.values
    )


def test_qc_and_size_factors_match_dynamo(processed, reference):
    for key in ("Size_Factor", "spliced_Size_Factor", "unspliced_Size_Factor", "ntr", "pMito"):
        np.testing.assert_allclose(processed.obs[key], reference.obs[key], rtol=1e-5, atol=1e-7)
    for key in ("nGenes", "nCounts", "initial_spliced_cell_size", "initial_unspliced_cell_size"):
        np.testing.assert_array_equal(processed.obs[key], reference.obs[key])
    for key in ("nCells", "nCounts"):
        np.testing.assert_array_equal(processed.var[key], reference.var[key])
    np.testing.assert_allclose(processed.var.frac, reference.var.frac, rtol=1e-5, atol=1e-9)
    assert processed.uns["pp"]["experiment_type"] == "conventional"
    assert processed.uns["pp"]["X_norm_method"] == "log1p"


def test_pca_matches_dynamo(processed, reference):
    pcs, ref = processed.uns["PCs"], reference.uns["PCs"]
    assert pcs.shape == ref.shape == (1617, 30)
    assert np.cos(subspace_angles(pcs[:, :10], ref[:, :10])).min() >= 0.98
    corr = _column_corr(processed.obsm["X_pca"][:, :10], reference.obsm["X_pca"][:, :10])
    assert corr.min() > 0.99
    np.testing.assert_allclose(
        processed.uns["explained_variance_ratio_"][:10],
        reference.uns["explained_variance_ratio_"][:10],
        rtol=1e-3,
    )
    np.testing.assert_allclose(processed.uns["pca_mean"], reference.uns["pca_mean"], atol=1e-4)


def test_normalised_layers_are_sparse_and_scaled(processed):
    xs = processed.layers["X_spliced"]
    assert sparse.issparse(xs)
    sf = processed.obs["spliced_Size_Factor"].values[:, None]
    np.testing.assert_allclose(
        xs[:50].toarray(), processed.layers["spliced"][:50].toarray() / sf[:50], rtol=1e-5
    )


def test_store_backed_equals_in_memory(pancreas_path, processed, tmp_path):
    dyn.io.convert(pancreas_path, tmp_path / "p.zarr")
    store = dyn.io.open(tmp_path / "p.zarr")
    dyn.pp.recipe_monocle(store)
    reopened = dyn.io.open(tmp_path / "p.zarr")
    assert "preprocess" in reopened.uns["dynadask"]["stages"]
    np.testing.assert_allclose(reopened.obsm["X_pca"].compute(), processed.obsm["X_pca"], atol=1e-5)
    np.testing.assert_array_equal(reopened.var.use_for_pca, processed.var.use_for_pca)
    np.testing.assert_allclose(reopened.obs.Size_Factor, processed.obs.Size_Factor)
    xs = reopened.layers["X_unspliced"].compute()
    assert sparse.issparse(xs)
    assert abs(xs - processed.layers["X_unspliced"]).max() < 1e-6
    assert reopened.uns["pp"]["X_norm_method"] == "log1p"


def _small(pancreas_path, n=600):
    adata = ad.read_h5ad(pancreas_path)[:n].copy()
    return adata


@pytest.mark.parametrize("kind", ["numpy", "dask", "no_X"])
def test_input_types_give_the_same_answer(pancreas_path, kind):
    base = _small(pancreas_path)
    dyn.pp.recipe_monocle(base)
    other = _small(pancreas_path)
    if kind == "numpy":
        other.X = other.X.toarray()
        other.layers["unspliced"] = other.layers["unspliced"].toarray()
    elif kind == "dask":
        for name in ("spliced", "unspliced"):
            other.layers[name] = da.from_array(other.layers[name].toarray(), chunks=(128, -1))
    else:
        other.X = None
    dyn.pp.recipe_monocle(other)
    np.testing.assert_allclose(np.asarray(other.obsm["X_pca"]), base.obsm["X_pca"], atol=1e-4)
    np.testing.assert_array_equal(other.var.use_for_pca, base.var.use_for_pca)
    np.testing.assert_allclose(other.obs.unspliced_Size_Factor, base.obs.unspliced_Size_Factor)


def test_recipe_reads_the_data_three_times(pancreas_path):
    adata = _small(pancreas_path)
    before = compute_count()
    dyn.pp.Preprocessor().preprocess_adata(adata, recipe="monocle")
    assert compute_count() - before == 3  # QC counts, gene moments + cross-product, commit


def test_dispersion_selection_against_direct_fit(pancreas_path):
    from sklearn.svm import SVR

    adata = _small(pancreas_path, 1500)
    dyn.pp.recipe_monocle(adata, n_top_genes=300)
    sel = adata.var.use_for_pca.values
    # genes without counts drop out in PCA, so compare before that: score order
    passed = adata.var.pass_basic_filter.values
    counts = _small(pancreas_path, 1500)[adata.obs_names].X  # X itself is now log1p(X / sf)
    x = counts.toarray()[:, passed].astype(float) / adata.obs.Size_Factor.values[:, None]
    mu, sd = x.mean(0), x.std(0)
    log_m = np.where(mu > 0, np.log2(np.where(mu > 0, mu, 1)), 0)
    log_cv = np.where(mu > 0, np.log2(np.where(mu > 0, sd / np.where(mu > 0, mu, 1), 1)), 0)
    fit = SVR(gamma=150.0 / passed.sum()).fit(log_m[:, None], log_cv)
    score = log_cv - fit.predict(log_m[:, None])
    expected = np.zeros(adata.n_vars, bool)
    expected[np.flatnonzero(passed)[np.argsort(-score)[:300]]] = True
    assert sel.sum() == 300 and not (sel & ~passed).any()
    assert (sel & expected).sum() >= 297
    np.testing.assert_allclose(adata.var.score.values[passed], score, atol=5e-3)


def test_building_blocks(pancreas_path):
    adata = _small(pancreas_path)
    dyn.pp.filter_genes(adata, min_cell_s=20, min_cell_u=5, min_avg_exp_s=0)
    dyn.pp.calc_sz_factor(adata)
    assert {"Size_Factor", "spliced_Size_Factor", "initial_unspliced_cell_size"} <= set(adata.obs)
    dyn.pp.normalize(adata)
    assert sparse.issparse(adata.layers["X_spliced"])
    dyn.pp.select_genes_monocle(adata, n_top_genes=400)
    assert adata.var.use_for_pca.sum() == 400
    dyn.pp.log1p(adata)
    dyn.pp.pca(adata, n_pca_components=10)
    assert adata.obsm["X_pca"].shape == (600, 10) and adata.uns["PCs"].shape[1] == 10
    recipe = _small(pancreas_path)
    dyn.pp.recipe_monocle(recipe, n_top_genes=400, fg_kwargs={"min_cell_s": 20})
    np.testing.assert_array_equal(recipe.var.use_for_pca, adata.var.use_for_pca)


def test_filter_cells_drops_in_memory_and_flags(pancreas_path):
    adata = _small(pancreas_path)
    n_genes = (adata.X > 0).sum(1).A1
    threshold = np.sort(n_genes)[100]
    dyn.pp.filter_cells(adata, min_expr_genes_s=threshold, min_expr_genes_u=0)
    assert adata.n_obs == (n_genes >= threshold).sum()
    kept = _small(pancreas_path)
    dyn.pp.filter_cells(kept, min_expr_genes_s=threshold, min_expr_genes_u=0, keep_filtered=True)
    assert kept.n_obs == 600 and kept.obs.pass_basic_filter.sum() == adata.n_obs


def _labelling(n=400, g=60, seed=0):
    rng = np.random.default_rng(seed)
    time = np.repeat([1.0, 2.0, 4.0, 8.0], n // 4)
    total = rng.poisson(3.0, (n, g)).astype(np.float32)
    frac = 1 - np.exp(-0.2 * time)[:, None]
    new = rng.binomial(total.astype(int), frac).astype(np.float32)
    adata = ad.AnnData(
        X=sparse.csr_matrix(total),
        layers={"new": sparse.csr_matrix(new), "total": sparse.csr_matrix(total)},
    )
    adata.obs["hours"] = time
    return adata


def test_labelling_data(pancreas_path):
    adata = _labelling()
    dyn.pp.recipe_monocle(adata, tkey="hours", fc_kwargs={"min_expr_genes_s": 1})
    pp = adata.uns["pp"]
    assert pp["experiment_type"] == "kin" and pp["has_labeling"] and pp["tkey"] == "hours"
    assert {"X_new", "X_total"} <= set(adata.layers)
    assert {"new_Size_Factor", "total_Size_Factor", "initial_total_cell_size"} <= set(adata.obs)
    new, total = adata.layers["new"].sum(1).A1, adata.layers["total"].sum(1).A1
    np.testing.assert_allclose(adata.obs.ntr, new / total, rtol=1e-6)
    one = _labelling()
    one.obs["hours"] = 2.0
    dyn.pp.recipe_monocle(one, tkey="hours", fc_kwargs={"min_expr_genes_s": 1})
    assert one.uns["pp"]["experiment_type"] == "one-shot"


def test_clear_errors(pancreas_path):
    adata = _small(pancreas_path, 200)
    adata.layers["unspliced"] = adata.layers["unspliced"].copy()
    adata.layers["unspliced"].data[0] = -1
    with pytest.raises(ValueError, match="negative"):
        dyn.pp.recipe_monocle(adata)
    adata = _small(pancreas_path, 200)
    adata.X = adata.X.copy()
    adata.X.data[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dyn.pp.recipe_monocle(adata)
    bare = ad.AnnData(obs=adata.obs, var=adata.var)
    with pytest.raises(ValueError, match="no X"):
        dyn.pp.recipe_monocle(bare)
    with pytest.raises(KeyError, match="not in adata.layers"):
        dyn.pp.calc_sz_factor(_small(pancreas_path, 200), layers=["total"])
    with pytest.raises(ValueError, match="recipe"):
        dyn.pp.Preprocessor().preprocess_adata(_small(pancreas_path, 200), recipe="no_such_recipe")
    with pytest.raises(ValueError, match="no cell passes"):
        dyn.pp.recipe_monocle(_small(pancreas_path, 200), fc_kwargs={"min_expr_genes_s": 10**6})
    with pytest.raises(ValueError, match="tkey"):
        dyn.pp.recipe_monocle(_labelling())
    with pytest.raises(ValueError, match="0 cells"):
        dyn.pp.recipe_monocle(_small(pancreas_path, 200)[:0].copy())


def test_store_with_failing_cells_matches_dropping_them(pancreas_path, tmp_path):
    memory = _small(pancreas_path)
    n_genes = (memory.X > 0).sum(1).A1
    fc = {"min_expr_genes_s": float(np.sort(n_genes)[60])}
    path = tmp_path / "small.h5ad"
    memory.write_h5ad(path)
    dyn.io.convert(path, tmp_path / "small.zarr")
    dyn.pp.recipe_monocle(memory, n_top_genes=500, fc_kwargs=fc)
    store = dyn.io.open(tmp_path / "small.zarr")
    with pytest.warns(UserWarning, match="flagged"):
        dyn.pp.recipe_monocle(store, n_top_genes=500, fc_kwargs=fc)
    store = dyn.io.open(tmp_path / "small.zarr")
    keep = store.obs.pass_basic_filter.to_numpy(bool)
    assert store.n_obs == 600 and memory.n_obs == keep.sum() < 560
    np.testing.assert_array_equal(store.var.pass_basic_filter, memory.var.pass_basic_filter)
    np.testing.assert_array_equal(store.var.use_for_pca, memory.var.use_for_pca)
    for key in ("Size_Factor", "unspliced_Size_Factor", "ntr"):
        np.testing.assert_allclose(store.obs[key].to_numpy()[keep], memory.obs[key], rtol=1e-6)
    np.testing.assert_allclose(store.var.ntr, memory.var.ntr, rtol=1e-6)
    np.testing.assert_allclose(store.uns["PCs"], memory.uns["PCs"], atol=1e-6)
    pcs = store.obsm["X_pca"].compute()
    np.testing.assert_allclose(pcs[keep], memory.obsm["X_pca"], atol=1e-4)
    assert np.isfinite(pcs[~keep]).all()


def test_x_after_the_recipe_is_dynamos_x(processed, pancreas_path, tmp_path):
    """X holds log1p(counts / Size_Factor), as in dynamo, in memory and in a store."""
    counts = ad.read_h5ad(pancreas_path).X
    expected = np.log1p(counts.toarray() / processed.obs.Size_Factor.values[:, None])
    assert sparse.issparse(processed.X) and processed.X.dtype == np.float32
    np.testing.assert_allclose(processed.X.toarray(), expected, rtol=1e-5, atol=1e-6)
    assert processed.uns["pp"]["X_normalized"] and processed.uns["pp"]["X_norm_method"] == "log1p"
    genes = processed.var_names[processed.var.use_for_pca.values][:50]
    lazy = dyn.pp.normalized_X(processed, genes)
    assert sparse.issparse(lazy.blocks[0].compute()) and lazy.shape == (processed.n_obs, 50)
    np.testing.assert_allclose(
        lazy.compute().toarray(), processed[:, genes].X.toarray(), rtol=1e-6, atol=1e-7
    )
    mask = processed.var.use_for_pca.values
    pcs = (processed.X[:, mask].toarray() - processed.uns["pca_mean"]) @ processed.uns["PCs"]
    np.testing.assert_allclose(pcs, processed.obsm["X_pca"], atol=1e-3)
    with pytest.raises(KeyError, match="not in var_names"):
        dyn.pp.normalized_X(processed, ["no-such-gene"])
    with pytest.raises(dyn.InputError, match="already holds normalised values"):
        dyn.pp.recipe_monocle(processed)
    dyn.io.convert(pancreas_path, tmp_path / "x.zarr")
    dyn.pp.recipe_monocle(dyn.io.open(tmp_path / "x.zarr"))
    stored = dyn.io.open(tmp_path / "x.zarr").X.compute()
    assert sparse.issparse(stored) and abs(stored - processed.X).max() < 1e-6


def test_building_blocks_transform_x_once(pancreas_path):
    """normalize then log1p, as a dynamo user calls them: X is divided, then logged, once."""
    adata = _small(pancreas_path, 300)
    counts = adata.X.toarray()
    dyn.pp.calc_sz_factor(adata)
    sf = adata.obs.Size_Factor.values[:, None]
    dyn.pp.normalize(adata)
    np.testing.assert_allclose(adata.X.toarray(), counts / sf, rtol=1e-5)
    assert dyn.pp.log1p(adata) is adata  # dynamo returns the AnnData
    np.testing.assert_allclose(adata.X.toarray(), np.log1p(counts / sf), rtol=1e-5, atol=1e-6)
    dyn.pp.log1p(adata)  # recorded: not logged twice
    np.testing.assert_allclose(adata.X.toarray(), np.log1p(counts / sf), rtol=1e-5, atol=1e-6)
    copy = dyn.pp.log1p(adata, layers=["X_spliced"], copy=True)
    assert copy is not adata and adata.uns["pp"].get("layers_norm_method") != "log1p"


def test_filter_genes_returns_flags_or_drops(pancreas_path, tmp_path):
    adata = _small(pancreas_path, 300)
    flags = dyn.pp.filter_genes_by_outliers(adata, min_cell_s=30)
    expected = (adata.X > 0).sum(0).A1 >= 30
    assert flags.index.equals(adata.var_names) and flags.name == "pass_basic_filter"
    assert adata.n_vars == 2000 and (flags.values <= expected).all() and flags.sum() > 100
    kept = adata.var_names[flags.values]
    assert dyn.pp.filter_genes_by_outliers(adata, min_cell_s=30, inplace=True) is adata
    assert adata.var_names.equals(kept)
    dyn.io.convert(pancreas_path, tmp_path / "g.zarr")
    store = dyn.io.open(tmp_path / "g.zarr")
    with pytest.warns(UserWarning, match="not subset in place"):
        out = dyn.pp.filter_genes_by_outliers(store, min_cell_s=30, inplace=True)
    assert out is store and store.n_vars == 2000 and not store.var.pass_basic_filter.all()


def test_store_on_a_cluster_equals_memory(pancreas_path, processed, tmp_path, local_client):
    dyn.io.convert(pancreas_path, tmp_path / "c.zarr")
    store = dyn.io.open(tmp_path / "c.zarr")
    dyn.pp.recipe_monocle(store)
    store = dyn.io.open(tmp_path / "c.zarr")
    np.testing.assert_allclose(store.obsm["X_pca"].compute(), processed.obsm["X_pca"], atol=1e-5)
    np.testing.assert_allclose(store.uns["PCs"], processed.uns["PCs"], atol=1e-8)
    np.testing.assert_allclose(store.obs.spliced_Size_Factor, processed.obs.spliced_Size_Factor)
    xs = store.layers["X_spliced"].compute()
    assert sparse.issparse(xs) and abs(xs - processed.layers["X_spliced"]).max() < 1e-6


def test_legacy_recipe_options(pancreas_path):
    adata = _small(pancreas_path, 300)
    dyn.pp.recipe_monocle(adata, method="pca", keep_filtered_genes=True, feature_selection="SVR")
    assert adata.obsm["X_pca"].shape == (300, 30)
    with pytest.warns(UserWarning, match="ignored"):
        dyn.pp.recipe_monocle(_small(pancreas_path, 300), norm_method="log2")
    with pytest.raises(TypeError, match="unexpected"):
        dyn.pp.recipe_monocle(_small(pancreas_path, 300), no_such_option=1)
    frac = _small(pancreas_path, 300)
    dyn.pp.recipe_monocle(frac, exprs_frac_for_gene_exclusion=0.01)
    high = frac.var.frac.to_numpy() > 0.01
    assert high.any() and not frac.var.use_for_pca.to_numpy()[high].any()


def test_preprocessor_takes_dynamos_filter_dicts(pancreas_path):
    adata = _small(pancreas_path, 300)
    keep = np.ones(300, bool)
    keep[:10] = False
    genes = {"filter_bool": None, "min_cell_s": 5, "min_cell_p": 5, "min_count_p": 0}
    pre = dyn.pp.Preprocessor(
        filter_cells_by_outliers_kwargs={"filter_bool": keep, "keep_filtered": True},
        filter_genes_by_outliers_kwargs=genes,
    )
    pre.preprocess_adata(adata, recipe="monocle")
    assert adata.n_obs == 300 and not adata.obs.pass_basic_filter[:10].any()
    assert adata.var.pass_basic_filter.sum() > 0


def test_top_pca_genes_and_gene_patterns(processed, pancreas_path):
    adata = processed.copy()
    assert dyn.pp.top_pca_genes(adata, n_top_genes=50, pc_components=5) is adata
    pcs = np.abs(adata.uns["PCs"][:, :5])
    expected = np.zeros(pcs.shape[0], bool)
    for col in pcs.T:
        expected[np.argsort(-col)[:50]] = True
    flags = adata.var.top_pca_genes.to_numpy()
    np.testing.assert_array_equal(flags[adata.var.use_for_pca.to_numpy()], expected)
    assert not flags[~adata.var.use_for_pca.to_numpy()].any() and 50 <= flags.sum() <= 250
    with pytest.raises(KeyError, match="no PCA loadings"):
        dyn.pp.top_pca_genes(adata, pc_key="nope")
    small = _small(pancreas_path, 100)
    matched = dyn.pp.filter_genes_by_pattern(small, patterns=("Rps", "Rpl"))
    names = small.var_names[np.asarray(matched)]
    assert len(matched) == 2000 and len(names) > 5
    assert all(n.startswith(("Rps", "Rpl")) for n in names)
    assert dyn.pp.filter_genes_by_pattern(small, patterns=("Rps", "Rpl"), drop_genes=True) is None
    assert small.n_vars == 2000 - len(names) and not small.var_names.isin(names).any()


def test_filter_genes_by_clusters_is_velocytos_rule(pancreas_path, tmp_path):
    adata = _small(pancreas_path, 600)
    flags = dyn.pp.filter_genes_by_clusters(adata, "clusters", min_avg_S=0.1, size_limit=40)
    u, s = adata.layers["unspliced"].toarray(), adata.layers["spliced"].toarray()
    labels = adata.obs["clusters"].to_numpy()
    u_avg, s_avg = [], []
    for c in np.unique(labels):
        rows = labels == c
        big = rows.sum() > 40
        u_avg.append(u[rows].mean(0) if big else u.mean(0))
        s_avg.append(s[rows].mean(0) if big else s.mean(0))
    expected = (np.max(u_avg, 0) > 0.02) & (np.max(s_avg, 0) > 0.1)
    assert 100 < expected.sum() < 2000
    np.testing.assert_array_equal(flags, expected)
    dyn.io.convert(pancreas_path, tmp_path / "c.zarr")
    full = dyn.io.open(tmp_path / "c.zarr")
    memory = ad.read_h5ad(pancreas_path)
    np.testing.assert_array_equal(
        dyn.pp.filter_genes_by_clusters(full, "clusters"),
        dyn.pp.filter_genes_by_clusters(memory, "clusters"),
    )
    with pytest.raises(KeyError, match="obs\\['nope'\\]"):
        dyn.pp.filter_genes_by_clusters(adata, "nope")
