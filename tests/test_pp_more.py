"""dyn.pp's gene statistics as dynamo writes them: Gini, SVR dispersion, ntr, fractions.

Each is checked against a direct numpy computation of dynamo's formula (or dynamo's own
outputs on pancreas), a store against the same data in memory, and bad input.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse
from sklearn.svm import SVR

import dynadask as dyn

N_CELLS = 600


@pytest.fixture(scope="module")
def small_path(pancreas_path, tmp_path_factory):
    """A 600-cell pancreas subsample (X = spliced counts) as an h5ad file."""
    adata = ad.read_h5ad(pancreas_path)[:N_CELLS].copy()
    path = tmp_path_factory.mktemp("small") / "small.h5ad"
    adata.write_h5ad(path)
    return path


@pytest.fixture
def small(small_path):
    return ad.read_h5ad(small_path)


@pytest.fixture
def store(small_path, tmp_path):
    dyn.io.convert(small_path, tmp_path / "s.zarr", chunk_cells=128)
    return dyn.io.open(tmp_path / "s.zarr")


def _dense(x):
    x = x.compute() if hasattr(x, "compute") else x
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def dynamo_gini(x):
    """dynamo's formula: shift by the matrix minimum and 1e-7, sort, weight by rank."""
    cm = _dense(x)
    cm = cm - cm.min() + 1e-7
    cm = np.sort(cm, axis=0)
    n = cm.shape[0]
    index = 2 * np.arange(1, n + 1) - n - 1
    return (index[:, None] * cm).sum(0) / (n * cm.sum(0))


# --- calc_Gini -------------------------------------------------------------------------


def test_gini_equals_dynamo_formula(small):
    out = dyn.pp.calc_Gini(small)
    assert out is small
    for layer in ("X", "spliced", "unspliced"):
        ref = small.X if layer == "X" else small.layers[layer]
        np.testing.assert_allclose(small.var[f"{layer}_gini"], dynamo_gini(ref), atol=1e-12)
    assert 0.3 < np.median(small.var["X_gini"]) < 1


def test_gini_negative_values_and_batches():
    from dynadask.pp.gini import gini_of

    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 25))
    x[rng.random(x.shape) < 0.6] = 0
    x[:, 4] = 0  # a gene without values
    x[:, 5] = 2.5  # a gene without zeros
    got = gini_of({"a": sparse.csr_matrix(x), "b": x}, max_values=200)  # many batches
    for values in got.values():
        np.testing.assert_allclose(values, dynamo_gini(x), atol=1e-12)


def test_gini_store_equals_memory(small, store):
    dyn.pp.calc_Gini(small, layers=["X", "unspliced"])
    dyn.pp.calc_Gini(store, layers=["X", "unspliced"])
    reopened = dyn.io.open(dyn.io.store_path(store))
    for key in ("X_gini", "unspliced_gini"):
        np.testing.assert_allclose(reopened.var[key], small.var[key], atol=1e-12)
    assert "spliced_gini" not in reopened.var


def test_gini_rejects_missing_layer(small):
    with pytest.raises(KeyError, match="not in this AnnData"):
        dyn.pp.calc_Gini(small, layers=["nope"])


# --- calc_dispersion_by_svr / get_svr_filter -------------------------------------------


def _direct_svr(x, sf, genes, algorithm, ddof=0):
    y = _dense(x)[:, genes] / sf[:, None]
    mu = y.mean(0)
    var = y.var(0, ddof=ddof)
    if algorithm == "cv_dispersion":
        with np.errstate(divide="ignore", invalid="ignore"):
            m, cv = np.log2(mu), np.log2(np.sqrt(var) / mu)
        m[mu == 0], cv[mu == 0] = 0, 0
    else:
        m, cv = mu, var / mu
    fit = SVR(gamma=150.0 / genes.size).fit(m[:, None], cv)
    return m, cv, cv - fit.predict(m[:, None])


@pytest.mark.parametrize("algorithm", ["cv_dispersion", "fano_dispersion"])
def test_svr_equals_direct_fit(small, algorithm):
    dyn.pp.filter_genes(small, min_cell_s=10, min_cell_u=5, min_avg_exp_s=0)
    dyn.pp.calc_sz_factor(small)
    out = dyn.pp.calc_dispersion_by_svr(small, algorithm=algorithm)
    assert out is small
    genes = np.flatnonzero(small.var.pass_basic_filter)
    assert 300 < genes.size < small.n_vars
    m, cv, score = _direct_svr(small.X, small.obs.Size_Factor.to_numpy(), genes, algorithm)
    var = small.var.iloc[genes]
    np.testing.assert_allclose(var["log_m"], m, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var["log_cv"], cv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var["score"], score, atol=5e-3)
    assert small.var["score"].isna().sum() == small.n_vars - genes.size
    assert small.uns["velocyto_SVR"]["svr_gamma"] == pytest.approx(150 / genes.size)
    top = dyn.pp.get_svr_filter(small, layer="X", n_top_genes=100)
    expected = np.zeros(small.n_vars, bool)
    expected[genes[np.argsort(-score, kind="stable")[:100]]] = True
    assert top.sum() == 100 and (top & expected).sum() >= 98


def test_svr_layer_subset_and_dense_sample_sd(small):
    small.var["pass_basic_filter"] = np.asarray(small.layers["unspliced"].sum(0)).ravel() > 20
    dyn.pp.calc_sz_factor(small)
    small.layers["unspliced"] = small.layers["unspliced"].toarray()  # dense: sample s.d.
    dyn.pp.calc_dispersion_by_svr(small, layers="unspliced", min_expr_cells=3)
    genes = small.var.pass_basic_filter.to_numpy()
    detected = genes & ((small.layers["unspliced"] > 0).sum(0) >= 3)
    sf = small.obs.unspliced_Size_Factor.to_numpy()
    idx = np.flatnonzero(detected)
    m, cv, score = _direct_svr(small.layers["unspliced"], sf, idx, "cv_dispersion", ddof=1)
    np.testing.assert_allclose(small.var["unspliced_score"].to_numpy()[idx], score, atol=5e-3)
    assert np.isnan(small.var["unspliced_score"].to_numpy()[~genes]).all()
    assert np.isneginf(small.var["unspliced_score"].to_numpy()[genes & ~detected]).all()
    assert "unspliced_velocyto_SVR" in small.uns
    mask = dyn.pp.get_svr_filter(small, layer="unspliced", n_top_genes=50, return_adata=True)
    assert mask is small and small.var.use_for_pca.sum() == 50


def test_svr_store_equals_memory(small, store):
    for adata in (small, store):
        dyn.pp.calc_sz_factor(adata)
        dyn.pp.calc_dispersion_by_svr(adata, layers=["X", "spliced"])
    reopened = dyn.io.open(dyn.io.store_path(store))
    for key in ("log_m", "spliced_log_cv"):
        np.testing.assert_allclose(reopened.var[key], small.var[key], atol=1e-9)
    for key in ("score", "spliced_score"):  # libsvm stops within its tolerance, 1e-3
        np.testing.assert_allclose(reopened.var[key], small.var[key], atol=5e-3)
    np.testing.assert_allclose(reopened.uns["velocyto_SVR"]["cv"], small.uns["velocyto_SVR"]["cv"])


def test_svr_bad_input(small):
    with pytest.raises(KeyError, match="calc_sz_factor"):
        dyn.pp.calc_dispersion_by_svr(small)
    dyn.pp.calc_sz_factor(small)
    with pytest.raises(ValueError, match="algorithm"):
        dyn.pp.calc_dispersion_by_svr(small, algorithm="gini")
    with pytest.raises(ValueError, match="winsorize"):
        dyn.pp.calc_dispersion_by_svr(small, winsorize=True)
    with pytest.raises(TypeError, match="unexpected"):
        dyn.pp.calc_dispersion_by_svr(small, nonsense=1)
    with pytest.raises(ValueError, match="no expression"):  # all-zero genes have no Fano factor
        dyn.pp.calc_dispersion_by_svr(small, algorithm="fano_dispersion")
    with pytest.raises(KeyError, match="calc_dispersion_by_svr"):
        dyn.pp.get_svr_filter(small, layer="unspliced")


# --- select_genes_monocle(sort_by=...) and the Preprocessor ------------------------------


def _prepared(adata):
    dyn.pp.filter_genes(adata, min_cell_s=10, min_cell_u=5, min_avg_exp_s=0)
    dyn.pp.normalize(adata)  # X / Size_Factor, as dynamo's X when it selects genes
    return np.flatnonzero(adata.var.pass_basic_filter)


def test_select_genes_by_gini(small):
    passed = _prepared(small)
    dyn.pp.select_genes_monocle(small, n_top_genes=200, sort_by="gini")
    gini = dynamo_gini(small.X)
    np.testing.assert_allclose(small.var["X_gini"], gini, atol=1e-12)
    assert {"spliced_gini", "unspliced_gini"} <= set(small.var)
    expected = np.zeros(small.n_vars, bool)
    expected[passed[np.argsort(-gini[passed], kind="stable")[:200]]] = True
    np.testing.assert_array_equal(small.var.use_for_pca, expected)
    assert small.uns["feature_selection"] == "gini"


def test_select_genes_by_fano(small):
    passed = _prepared(small)
    dyn.pp.select_genes_monocle(small, n_top_genes=200, sort_by="fano_dispersion")
    m, fano, score = _direct_svr(small.X, np.ones(small.n_obs), passed, "fano_dispersion")
    np.testing.assert_allclose(small.var["log_cv"].to_numpy()[passed], fano, rtol=1e-6)
    expected = np.zeros(small.n_vars, bool)
    expected[passed[np.argsort(-score, kind="stable")[:200]]] = True
    chosen = small.var.use_for_pca.to_numpy()
    assert chosen.sum() == 200 and (chosen & expected).sum() >= 196
    assert small.uns["feature_selection"] == "fano_dispersion"
    with pytest.raises(ValueError, match="sort_by"):
        dyn.pp.select_genes_monocle(small, sort_by="SVR")


def test_preprocessor_gini_store_equals_memory(small, small_path, store):
    kwargs = {"select_genes_kwargs": {"sort_by": "gini", "n_top_genes": 300}}
    dyn.pp.Preprocessor(**kwargs).preprocess_adata(small, recipe="monocle")
    dyn.pp.Preprocessor(**kwargs).preprocess_adata(store, recipe="monocle")
    reopened = dyn.io.open(dyn.io.store_path(store))
    counts = ad.read_h5ad(small_path)[small.obs_names].X
    gini = dynamo_gini(_dense(counts) / small.obs.Size_Factor.to_numpy()[:, None])
    np.testing.assert_allclose(small.var["X_gini"], gini, atol=1e-12)
    np.testing.assert_allclose(reopened.var["X_gini"], gini, atol=1e-9)
    assert small.var.use_for_pca.sum() == 300 and small.uns["feature_selection"] == "gini"
    np.testing.assert_array_equal(reopened.var.use_for_pca, small.var.use_for_pca)


# --- calc_new_to_total_ratio -----------------------------------------------------------


def test_ntr_equals_dynamo_reference(pancreas, reference):
    ntr, var_ntr = dyn.pp.calc_new_to_total_ratio(pancreas)
    np.testing.assert_allclose(ntr, reference.obs["ntr"], rtol=1e-6)
    np.testing.assert_allclose(var_ntr, reference.var["ntr"], rtol=1e-6)  # NaN where both are
    assert np.isnan(var_ntr).sum() == np.isnan(reference.var["ntr"]).sum() > 0


def test_ntr_labelling_store_equals_memory(small, store):
    ntr, var_ntr = dyn.pp.calc_new_to_total_ratio(store)
    u, s = _dense(small.layers["unspliced"]), _dense(small.layers["spliced"])
    np.testing.assert_allclose(ntr, u.sum(1) / (u + s).sum(1), rtol=1e-12)
    seen = (u + s).sum(0) > 0
    np.testing.assert_allclose(var_ntr[seen], u.sum(0)[seen] / (u + s).sum(0)[seen])
    assert np.isnan(var_ntr[~seen]).all() and (~seen).any()
    labelled = ad.AnnData(
        X=small.X, layers={"new": small.layers["unspliced"], "total": small.layers["spliced"]}
    )
    ntr, var_ntr = dyn.pp.calc_new_to_total_ratio(labelled)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(ntr, u.sum(1) / s.sum(1), rtol=1e-12)
    parts = {k: small.layers["spliced"][:, i::4] for i, k in enumerate(("uu", "ul", "su", "sl"))}
    four = ad.AnnData(X=sparse.csr_matrix((N_CELLS, parts["uu"].shape[1])), layers=parts)
    ntr, _ = dyn.pp.calc_new_to_total_ratio(four)
    p = {k: _dense(v).sum(1) for k, v in parts.items()}
    np.testing.assert_allclose(ntr, (p["ul"] + p["sl"]) / sum(p.values()), rtol=1e-12)
    assert dyn.pp.calc_new_to_total_ratio(ad.AnnData(X=small.X)) == (None, None)


# --- highest_frac_genes, scale, log1p_adata_layer, filter_cells_by_highly_variable_genes --


def test_highest_frac_genes_as_dynamo(small, store):
    small.X[:2] = 0  # two cells without counts leave the table
    small.X.eliminate_zeros()
    dyn.pp.highest_frac_genes(small, n_top=10)
    got = small.uns["highest_frac_genes"]
    x = _dense(small.X)
    percent = x.sum(0) / small.n_vars
    top = np.argsort(-percent, kind="stable")[:10]
    np.testing.assert_array_equal(got["selected_indices"], top)
    np.testing.assert_allclose(got["gene_percents"]["percent"], percent)
    keep = x.sum(1) > 0
    expected = x[keep][:, top] / x[keep].sum(1, keepdims=True)
    np.testing.assert_allclose(got["top_genes_df"].to_numpy(), expected, rtol=1e-12)
    assert list(got["top_genes_df"].columns) == list(small.var_names[top])
    assert got["top_genes_df"].shape[0] == N_CELLS - 2 and got["gene_mat"] is small.X
    with pytest.raises(ValueError, match="no gene name starts"):
        dyn.pp.highest_frac_genes(small, gene_prefix_list=["zzz"])


def test_highest_frac_prefixes_store(small_path, store):
    dyn.pp.highest_frac_genes(store, n_top=5, gene_prefix_list=["Rp", "Gm"], gene_prefix_only=True)
    got = dyn.io.open(dyn.io.store_path(store)).uns["highest_frac_genes"]
    raw = ad.read_h5ad(small_path)
    x, names = _dense(raw.X), raw.var_names.astype(str)
    rp = x[:, names.str.startswith("Rp")].sum(1)
    gm = x[:, names.str.startswith("Gm")].sum(1)
    np.testing.assert_allclose(got["gene_mat"], np.column_stack([rp, gm]), rtol=1e-6)
    percent = np.array([rp.sum(), gm.sum()]) / 2
    np.testing.assert_allclose(got["gene_percents"]["percent"], percent, rtol=1e-6)
    order = np.argsort(-percent, kind="stable")
    assert list(got["top_genes_df"].columns) == [["Rp", "Gm"][i] for i in order]
    shares = np.column_stack([rp, gm])[:, order] / x.sum(1, keepdims=True)
    np.testing.assert_allclose(got["top_genes_df"].to_numpy(), shares, rtol=1e-6)


def test_scale_and_log1p_layer(small, store):
    before = _dense(small.layers["unspliced"])
    out = dyn.pp.scale(small, layers=["unspliced"], scale_to=100)
    assert out is small and sparse.issparse(small.layers["unspliced"])
    totals = before.sum(1, keepdims=True)
    expected = np.divide(before * 100, totals, out=np.zeros_like(before), where=totals > 0)
    np.testing.assert_allclose(_dense(small.layers["unspliced"]), expected, rtol=1e-5)
    dyn.pp.scale(store, layers=["unspliced"], scale_to=100)
    dyn.pp.log1p_adata_layer(store, layer="unspliced")
    reopened = dyn.io.open(dyn.io.store_path(store))
    got = _dense(reopened.layers["unspliced"])
    np.testing.assert_allclose(got, np.log1p(expected), rtol=1e-5, atol=1e-6)
    copy = dyn.pp.log1p_adata_layer(small, copy=True)
    assert copy is not small and copy.uns["pp"]["X_norm_method"] == "log1p"
    np.testing.assert_allclose(_dense(copy.X), np.log1p(_dense(small.X)), rtol=1e-6)
    with pytest.raises(ValueError, match="X is not scaled"):
        dyn.pp.scale(small, layers=["X"])
    with pytest.raises(KeyError, match="scale_to_layer"):
        dyn.pp.scale(small, scale_to_layer="nope")


def test_filter_cells_by_highly_variable_genes(small, store):
    genes = np.zeros(small.n_vars, bool)
    genes[np.argsort(-np.asarray(small.X.sum(0)).ravel())[1000:1010]] = True  # ten rarer genes
    without = np.asarray(small.X[:, genes].sum(1)).ravel() == 0
    assert 0 < without.sum() < N_CELLS
    for adata in (small, store):
        adata.var["use_for_pca"] = genes
    with pytest.warns(UserWarning, match="not subset"):
        dyn.pp.filter_cells_by_highly_variable_genes(store)
    reopened = dyn.io.open(dyn.io.store_path(store))
    np.testing.assert_array_equal(reopened.obs["pass_basic_filter"], ~without)
    dyn.pp.filter_cells_by_highly_variable_genes(small)
    assert small.n_obs == N_CELLS - without.sum() and small.obs["pass_basic_filter"].all()
    del small.var["use_for_pca"]
    with pytest.raises(KeyError, match="gene selection"):
        dyn.pp.filter_cells_by_highly_variable_genes(small)
