"""dynamo's other preprocessing recipes, cell-cycle scores and regress_out, against dynamo.

dynamo 1.5.3's numbers on pancreas come from tests/data/pp_recipes_reference.{json,npz}
(made by tests/data/make_pp_recipes_reference.py with dynamo itself): selected genes,
residual variances, X values on 200 seeded cells and six genes, PCA scores of those cells,
cell-cycle phases. Each recipe runs here as a dynamo user calls it; a store run equals the
in-memory run on a subsample.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from scipy import sparse, stats

import dynadask as dyn

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "pp_recipes_reference.json").read_text())
ARR = dict(np.load(DATA / "pp_recipes_reference.npz"))
N_SMALL = 200


def _dense(x):
    x = x.compute() if hasattr(x, "compute") else x
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _rows(adata, case):
    """dynamo's 200 cells (positions in pancreas; dynamo kept every cell)."""
    assert REF[case]["obs_names_kept"] and adata.n_obs == REF[case]["n_obs"]
    return np.asarray(REF[case]["cells"])


def _cols(adata, case):
    return adata.var_names.get_indexer(REF[case]["genes"])


def _pca_agreement(adata, case, n=5):
    """Per component |Spearman| of the PCA scores of dynamo's 200 cells with dynamo's."""
    ours = np.asarray(adata.obsm["X_pca"])[_rows(adata, case), :n]
    ref = ARR[f"{case}_pca"][:, :n]
    return np.array([abs(stats.spearmanr(ours[:, k], ref[:, k])[0]) for k in range(n)])


def _run(pancreas_path, setup):
    adata = ad.read_h5ad(pancreas_path)
    setup(adata)
    return adata


def _seurat500(adata):
    pre = dyn.pp.Preprocessor()
    pre.config_seurat_recipe(adata)
    pre.select_genes_kwargs["n_top_genes"] = 500
    pre.preprocess_adata_seurat(adata)


def _pearson500(adata):
    pre = dyn.pp.Preprocessor()
    pre.config_pearson_residuals_recipe(adata)
    pre.select_genes_kwargs["n_top_genes"] = 500
    pre.preprocess_adata_pearson_residuals(adata)


def _mpr500(adata):
    pre = dyn.pp.Preprocessor()
    pre.config_monocle_pearson_residuals_recipe(adata)
    pre.select_genes_kwargs["n_top_genes"] = 500
    pre.preprocess_adata_monocle_pearson_residuals(adata)


@pytest.fixture(scope="module")
def seurat(pancreas_path):
    return _run(pancreas_path, lambda a: dyn.pp.Preprocessor().preprocess_adata(a, "seurat"))


@pytest.fixture(scope="module")
def seurat500(pancreas_path):
    return _run(pancreas_path, _seurat500)


@pytest.fixture(scope="module")
def pearson500(pancreas_path):
    return _run(pancreas_path, _pearson500)


@pytest.fixture(scope="module")
def mpr500(pancreas_path):
    return _run(pancreas_path, _mpr500)


@pytest.fixture(scope="module")
def cellcycle_regress(pancreas_path):
    """The monocle recipe with both optional steps (dynamo's fixture ran them apart)."""
    pre = dyn.pp.Preprocessor(cell_cycle_score_enable=True)
    cc = _run(pancreas_path, lambda a: pre.preprocess_adata(a, recipe="monocle"))
    reg = dyn.pp.Preprocessor(regress_out_kwargs={"obs_keys": ["S_score", "G2M_score"]})
    rg = _run(pancreas_path, lambda a: reg.preprocess_adata(a, recipe="monocle"))
    return cc, rg


# --- seurat ----------------------------------------------------------------------------


def test_seurat_recipe_writes_dynamos_keys_and_pca(seurat):
    ref, case = REF["seurat"], "seurat"
    assert set(ref["var"]) <= set(seurat.var.columns)
    assert {"X_pca"} <= set(seurat.obsm)
    assert set(ref["pp"]) - {"norm_method"} <= set(seurat.uns["pp"]) | {"norm_method"}
    assert seurat.uns["pp"]["X_norm_method"] == ref["pp"]["X_norm_method"] == "log1p"
    assert "ntr" not in seurat.obs  # dynamo's seurat recipe computes no ntr
    assert int(seurat.var["use_for_pca"].sum()) == len(ARR[f"{case}_use_for_pca"])
    rows, cols = _rows(seurat, "seurat"), _cols(seurat, "seurat")
    np.testing.assert_allclose(
        _dense(seurat.X)[np.ix_(rows, cols)], ARR["seurat_X"], rtol=1e-5, atol=1e-6
    )
    assert _pca_agreement(seurat, "seurat").min() > 0.99


def test_seurat_feature_genes_equal_dynamos(seurat500):
    chosen = np.flatnonzero(seurat500.var["gene_highly_variable"].to_numpy(bool))
    assert set(chosen) == set(ARR["seurat500_use_for_pca"].tolist())
    np.testing.assert_allclose(
        seurat500.var["pp_gene_mean"].to_numpy(),
        ARR["seurat500_pp_gene_mean"],
        rtol=1e-5,
        atol=1e-6,
        equal_nan=True,
    )
    assert _pca_agreement(seurat500, "seurat500").min() > 0.99


# --- Pearson residuals -----------------------------------------------------------------


def test_pearson_recipe_residuals_and_genes_equal_dynamos(pearson500):
    ref, case = REF["pearson500"], "pearson500"
    np.testing.assert_allclose(
        pearson500.var["residual_variances"].to_numpy(),
        ARR["pearson500_residual_variances"],
        rtol=1e-4,
        atol=1e-6,
    )
    chosen = np.flatnonzero(pearson500.var["gene_highly_variable"].to_numpy(bool))
    assert set(chosen) == set(ARR[f"{case}_use_for_pca"].tolist())
    rows, cols = _rows(pearson500, "pearson500"), _cols(pearson500, "pearson500")
    np.testing.assert_allclose(
        _dense(pearson500.X)[np.ix_(rows, cols)], ARR["pearson500_X"], rtol=1e-4, atol=1e-4
    )
    assert pearson500.obsm["X_pca"].shape[1] == ref["n_pcs"] == 50
    assert _pca_agreement(pearson500, "pearson500").min() > 0.99
    assert "X_pearson_residuals_normalization_params" in pearson500.uns["pp"]
    assert pearson500.uns["pp"]["hvg"]["flavor"] == "pearson_residuals"


def test_monocle_pearson_recipe_equals_dynamos(mpr500):
    ref, case = REF["mpr500"], "mpr500"
    chosen = np.flatnonzero(mpr500.var["use_for_pca"].to_numpy(bool))
    assert set(chosen) == set(ARR[f"{case}_use_for_pca"].tolist())
    rows, cols = _rows(mpr500, "mpr500"), _cols(mpr500, "mpr500")
    np.testing.assert_allclose(
        _dense(mpr500.X)[np.ix_(rows, cols)], ARR["mpr500_X"], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(
        _dense(mpr500.layers["X_spliced"])[np.ix_(rows, cols)],
        ARR["mpr500_X_spliced"],
        rtol=1e-5,
        atol=1e-6,
    )
    assert set(ref["layers"]) <= set(mpr500.layers)
    assert _pca_agreement(mpr500, "mpr500").min() > 0.99


# --- cell-cycle scores and regress_out ------------------------------------------------


def test_cell_cycle_scores_equal_dynamos(cellcycle_regress):
    adata = cellcycle_regress[0]
    ref = REF["cellcycle"]
    assert list(adata.obsm["cell_cycle_scores"].columns) == ref["cell_cycle_columns"]
    assert list(adata.uns["cell_phase_order"]) == ref["cell_phase_order"]
    for phase, genes in ref["cell_phase_genes"].items():
        assert set(adata.uns["cell_phase_genes"][phase]) == set(genes), phase
    phases = ref["cell_phase_order"]
    ours = np.array([phases.index(p) for p in adata.obs["cell_cycle_phase"].astype(str)])
    assert (ours == ARR["cellcycle_phase"]).mean() > 0.999
    rows = _rows(adata, "cellcycle")
    scores = adata.obsm["cell_cycle_scores"][phases + ["cell_cycle_progress"]].to_numpy(float)
    np.testing.assert_allclose(
        scores[rows], ARR["cellcycle_scores"][:, :6].astype(float), atol=1e-4
    )


def test_regress_out_equals_dynamos(cellcycle_regress):
    adata = cellcycle_regress[1]
    rows, cols = _rows(adata, "regress"), _cols(adata, "regress")
    np.testing.assert_allclose(
        _dense(adata.X)[np.ix_(rows, cols)], ARR["regress_X"], rtol=1e-4, atol=1e-4
    )
    assert _pca_agreement(adata, "regress").min() > 0.99
    # the regressed X has no linear trace of the covariates left
    a = adata.obs[["S_score", "G2M_score"]].to_numpy(float)
    x = _dense(adata.X)[:, cols]
    design = np.column_stack([np.ones(len(a)), a])
    beta = np.linalg.lstsq(design, x, rcond=None)[0]
    assert np.abs(beta).max() < 1e-4


# --- stores equal memory ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_path(pancreas_path, tmp_path_factory):
    adata = ad.read_h5ad(pancreas_path)[:N_SMALL].copy()
    path = tmp_path_factory.mktemp("recipes") / "small.h5ad"
    adata.write_h5ad(path)
    return path


def _store(small_path, tmp_path, name):
    dyn.io.convert(small_path, tmp_path / f"{name}.zarr", chunk_cells=64)
    return dyn.io.open(tmp_path / f"{name}.zarr")


@pytest.mark.parametrize(
    ("recipe", "options"),
    [
        ("seurat", {}),
        ("pearson_residuals", {"select_genes_kwargs": {"n_top_genes": 150}}),
        ("monocle_pearson_residuals", {"select_genes_kwargs": {"n_top_genes": 150}}),
        (
            "monocle",
            {
                "cell_cycle_score_enable": True,
                "regress_out_kwargs": {"obs_keys": ["S_score", "G2M_score"]},
            },
        ),
    ],
)
def test_store_equals_memory(small_path, tmp_path, recipe, options):
    memory = ad.read_h5ad(small_path)
    dyn.pp.Preprocessor(**options).preprocess_adata(memory, recipe=recipe)
    store = _store(small_path, tmp_path, recipe)
    dyn.pp.Preprocessor(**options).preprocess_adata(store, recipe=recipe)
    again = dyn.io.open(tmp_path / f"{recipe}.zarr")
    rows = np.asarray(again.obs_names.isin(memory.obs_names))  # a store keeps failing cells
    assert again.obs["pass_basic_filter"].to_numpy(bool).sum() == memory.n_obs
    np.testing.assert_array_equal(
        again.var["use_for_pca"].to_numpy(bool), memory.var["use_for_pca"].to_numpy(bool)
    )
    np.testing.assert_allclose(_dense(again.X)[rows], _dense(memory.X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        np.abs(np.asarray(again.obsm["X_pca"])[rows]),
        np.abs(np.asarray(memory.obsm["X_pca"])),
        rtol=1e-3,
        atol=1e-3,
    )
    if options.get("cell_cycle_score_enable"):
        phases = again.obs["cell_cycle_phase"].astype(str).to_numpy()[rows]
        assert (phases == memory.obs["cell_cycle_phase"].astype(str).to_numpy()).all()
        np.testing.assert_allclose(
            again.obsm["cell_cycle_scores"]["S"].to_numpy(float)[rows],
            memory.obsm["cell_cycle_scores"]["S"].to_numpy(float),
            atol=1e-6,
        )


# --- the public functions --------------------------------------------------------------


def test_select_genes_by_pearson_residuals_public(small_path, tmp_path):
    memory = ad.read_h5ad(small_path)
    out = dyn.pp.select_genes_by_pearson_residuals(memory, n_top_genes=100, inplace=False)
    assert out[0] is memory and "residual_variances" not in memory.var
    table = out[1]
    assert int(table["gene_highly_variable"].sum()) == 100
    assert table.loc[table["gene_highly_variable"], "residual_variances"].min() >= (
        table.loc[~table["gene_highly_variable"], "residual_variances"].max()
    )
    # batches: each batch ranked on its own, genes sorted by batches then median rank
    dyn.pp.select_genes_by_pearson_residuals(memory, n_top_genes=100, batch_key="clusters")
    assert int(memory.var["use_for_pca"].sum()) == 100
    nb = memory.var["highly_variable_nbatches"].to_numpy()
    top = memory.var["use_for_pca"].to_numpy(bool)
    assert nb.max() <= memory.obs["clusters"].nunique() and nb[top].min() >= nb[~top].max()
    store = _store(small_path, tmp_path, "sel")
    dyn.pp.select_genes_by_pearson_residuals(store, n_top_genes=100, batch_key="clusters")
    np.testing.assert_allclose(
        store.var["residual_variances"].to_numpy(), memory.var["residual_variances"], rtol=1e-9
    )


def test_normalize_layers_pearson_residuals_public(small_path, tmp_path):
    memory = ad.read_h5ad(small_path)
    dyn.pp.select_genes_by_pearson_residuals(memory, n_top_genes=50)
    counts = _dense(memory.X)
    dyn.pp.normalize_layers_pearson_residuals(memory, layers=["X", "spliced"])
    chosen = memory.var["use_for_pca"].to_numpy(bool)
    x = counts[:, chosen]
    mu = np.outer(x.sum(1), x.sum(0)) / x.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.clip((x - mu) / np.sqrt(mu + mu**2 / 100), -np.sqrt(N_SMALL), np.sqrt(N_SMALL))
    want[mu == 0] = 0
    got = _dense(memory.X)
    np.testing.assert_allclose(got[:, chosen], want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(got[:, ~chosen], counts[:, ~chosen])
    assert memory.layers["X_spliced"].shape == memory.shape
    store = _store(small_path, tmp_path, "norm")
    dyn.pp.select_genes_by_pearson_residuals(store, n_top_genes=50)
    dyn.pp.normalize_layers_pearson_residuals(store, layers=["X", "spliced"])
    again = dyn.io.open(tmp_path / "norm.zarr")
    np.testing.assert_allclose(_dense(again.X), got, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(
        _dense(again.layers["X_spliced"]), _dense(memory.layers["X_spliced"]), atol=1e-5
    )


def test_cell_cycle_scores_public_on_a_store(small_path, tmp_path):
    memory = ad.read_h5ad(small_path)
    dyn.pp.recipe_monocle(memory)
    out = dyn.pp.cell_cycle_scores(memory, copy=True)
    assert "cell_cycle_phase" not in memory.obs and "cell_cycle_phase" in out.obs
    store = _store(small_path, tmp_path, "cc")
    dyn.pp.recipe_monocle(store)
    assert dyn.pp.cell_cycle_scores(store) is None
    again = dyn.io.open(tmp_path / "cc.zarr")
    phases = again.obs["cell_cycle_phase"].astype(str)
    assert (phases == out.obs["cell_cycle_phase"].astype(str)).all()


def test_bad_input_is_named():
    adata = dyn.sample_data.pancreas()[:200].copy()
    with pytest.raises(dyn.InputError, match="theta"):
        dyn.pp.select_genes_by_pearson_residuals(adata, theta=0)
    with pytest.raises(dyn.MissingKeyError, match="batch_key"):
        dyn.pp.select_genes_by_pearson_residuals(adata, batch_key="nope")
    with pytest.raises(dyn.MissingKeyError, match="not_a_column"):
        dyn.pp.Preprocessor(regress_out_kwargs={"obs_keys": ["not_a_column"]}).preprocess_adata(
            adata.copy()
        )
    with pytest.raises(dyn.InputError, match="marker genes"):
        dyn.pp.cell_cycle_scores(
            adata, gene_list={p: ["NOPE"] for p in ["G1-S", "S", "G2-M", "M", "M-G1"]}
        )
    with pytest.raises(dyn.InputError, match="recipe"):
        dyn.pp.Preprocessor().preprocess_adata(adata, recipe="not_a_recipe")


def test_seurat_without_pca_stops_after_log1p(small_path):
    adata = ad.read_h5ad(small_path)
    pre = dyn.pp.Preprocessor()
    pre.config_seurat_recipe(adata)
    assert pre.select_genes_kwargs["algorithm"] == "seurat_dispersion"
    assert pre.filter_genes_by_outliers_kwargs == {"shared_count": 20}
    pre.preprocess_adata_seurat_wo_pca(adata)
    assert "X_pca" not in adata.obsm and adata.uns["pp"]["X_norm_method"] == "log1p"
    full = ad.read_h5ad(small_path)
    dyn.pp.Preprocessor().preprocess_adata(full, recipe="seurat")
    np.testing.assert_array_equal(
        adata.var["gene_highly_variable"].to_numpy(bool),
        full.var["gene_highly_variable"].to_numpy(bool),
    )
    np.testing.assert_allclose(_dense(adata.X), _dense(full.X), rtol=1e-6)
