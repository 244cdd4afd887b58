"""dyn.vf.rank_*_genes: dynamo's rule on dynamo's own arrays, kernels, stores, errors."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.graph import rank as gr
from dynadask.kernels import rank as kr
from dynadask.kernels import vectorfield as kv

GENES = ["Ins2", "Gcg", "Neurog3", "Ins1", "Pdx1", "Pax4", "Nkx2-2", "Arx"]


def _dynamo_rank(values, groups, absolute=False):
    """dynamo 1.5.3's rank_genes, written out: NaN -> 0, |.|, np.mean per sorted group label."""
    arr = np.array(values, copy=True)
    arr[np.isnan(arr)] = 0
    if absolute:
        arr = np.abs(arr)
    return {g: arr[groups == g].mean(axis=0) for g in np.unique(groups)}


def _check_ranking(table, names, pooled, tol=1e-5):
    """Each group's genes carry dynamo's pooled values and come in non-increasing order."""
    lookup = pd.Series(np.arange(names.size), index=names)
    for group, want in pooled.items():
        got_names = table[group].to_numpy()
        assert sorted(got_names) == sorted(names)
        got = table[f"{group}_values"].to_numpy()
        ref = want[lookup[got_names].to_numpy()]
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * scale)
        assert np.all(np.diff(ref) <= tol * scale), group  # dynamo's order, up to float noise
        top = np.argsort(want)[::-1][:10]
        if np.all(-np.diff(want[top]) > tol * scale):  # no near-ties among the top 10
            assert list(got_names[:10]) == list(names[top])


def _reference_adata(reference, layers=("velocity_S",), pca=False):
    var = reference.var[["use_for_pca", "use_for_dynamics", "use_for_transition"]].copy()
    adata = ad.AnnData(
        obs=reference.obs[["clusters"]].copy(),
        var=var,
        layers={k: np.asarray(reference.layers[k]) for k in layers},
    )
    if pca:
        adata.obsm["X_pca"] = reference.obsm["X_pca"]
        adata.uns["VecFld_pca"] = reference.uns["VecFld_pca"]
        adata.uns["PCs"] = reference.uns["PCs"]
    return adata


# ------------------------------------------------------------------------------------------
# kernels


def test_group_stats_kernel_against_a_loop_and_merged_blocks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 7))
    x[rng.random(x.shape) < 0.05] = np.nan
    codes = rng.integers(-1, 4, size=200)
    codes[codes == 2] = 3  # group 2 has no cells
    whole = kr.group_stats(x, codes, n_groups=4)
    parts = [
        kr.group_stats(x[a : a + 50], codes[a : a + 50], n_groups=4) for a in (0, 50, 100, 150)
    ]
    merged = kr.merge_stats(*parts)
    x0 = np.where(np.isnan(x), 0.0, x)
    for g in range(4):
        rows = x0[codes == g]
        assert whole["count"][g] == rows.shape[0] == merged["count"][g]
        if rows.shape[0] == 0:
            assert np.isnan(kr.pool(whole, "mean", False)[g]).all()
            continue
        for k, v in {
            "sum": rows.sum(0),
            "abs_sum": np.abs(rows).sum(0),
            "max": rows.max(0),
            "min": rows.min(0),
            "abs_max": np.abs(rows).max(0),
            "abs_min": np.abs(rows).min(0),
        }.items():
            np.testing.assert_allclose(whole[k][g], v, rtol=1e-12)
            np.testing.assert_allclose(merged[k][g], v, rtol=1e-12)
        np.testing.assert_allclose(kr.pool(whole, "mean", True)[g], np.abs(rows).mean(0))
    # sparse blocks give the same statistics
    csr = kr.group_stats(sparse.csr_matrix(x0), codes, n_groups=4)
    np.testing.assert_allclose(csr["sum"], whole["sum"])
    lazy = gr.group_stats(da.from_array(x, chunks=(37, 7)), codes, 4).compute()
    for k in kr.STATS:
        np.testing.assert_allclose(lazy[k], whole[k], rtol=1e-12)


def test_jacobian_diagonal_equals_the_projected_full_jacobian():
    rng = np.random.default_rng(1)
    d, M, g = 6, 25, 11
    ctrl, C = rng.normal(size=(M, d)), rng.normal(size=(M, d))
    x = rng.normal(size=(40, d))
    Q = rng.normal(size=(g, d))
    J = kv.jacobian(x, ctrl, C, 0.3)
    want = np.einsum("gi,nij,gj->ng", Q, J, Q)
    np.testing.assert_allclose(kr.jacobian_diagonal(x, ctrl, C, 0.3, Q), want, rtol=1e-10)
    lazy = gr.jacobian_diagonal(da.from_array(x, chunks=(15, d)), ctrl, C, 0.3, Q).compute()
    np.testing.assert_allclose(lazy, want, rtol=1e-10)


# ------------------------------------------------------------------------------------------
# dynamo's rule on dynamo's arrays (the reference file)


def test_rank_velocity_genes_follows_dynamo_on_its_velocities(reference):
    adata = _reference_adata(reference)
    out = dyn.vf.rank_velocity_genes(adata, groups="clusters", output_values=True)
    assert out is adata
    genes = reference.var["use_for_dynamics"].to_numpy()
    names = np.asarray(reference.var_names[genes])
    V = np.asarray(reference.layers["velocity_S"])[:, genes]
    groups = reference.obs["clusters"].astype(str).to_numpy()
    for key, absolute in (("rank_velocity_S", False), ("rank_abs_velocity_S", True)):
        table = adata.uns[key]
        assert list(table.columns[::2]) == sorted(set(groups))
        _check_ranking(table, names, _dynamo_rank(V, groups, absolute))
    # one group by default; mean |v| >= |mean v| gene by gene
    dyn.vf.rank_velocity_genes(adata, output_values=True, prefix_store="all")
    signed = adata.uns["all_velocity_S"].set_index("all")["all_values"]
    absolute = adata.uns["all_abs_velocity_S"].set_index("all")["all_values"]
    assert np.all(absolute[signed.index] >= np.abs(signed) - 1e-9)
    _check_ranking(adata.uns["all_velocity_S"], names, {"all": np.nan_to_num(V).mean(0)})


def test_rank_acceleration_and_curvature_genes_on_dynamos_pca_field(reference):
    adata = _reference_adata(reference, layers=(), pca=True)
    dyn.vf.acceleration(adata, basis="pca")
    dyn.vf.curvature(adata, basis="pca")
    groups = reference.obs["clusters"].astype(str).to_numpy()
    genes = reference.var["use_for_dynamics"].to_numpy()
    names = np.asarray(reference.var_names[genes])
    for name, fn in (
        ("acceleration", dyn.vf.rank_acceleration_genes),
        ("curvature", dyn.vf.rank_curvature_genes),
    ):
        fn(adata, groups="clusters", output_values=True)
        layer = np.asarray(adata.layers[name], dtype=np.float64)[:, genes]
        for key, absolute in ((f"rank_{name}", False), (f"rank_abs_{name}", True)):
            _check_ranking(adata.uns[key], names, _dynamo_rank(layer, groups, absolute), 1e-4)
    # normalize: each gene's values divided by its largest |value| over the cells
    dyn.vf.rank_acceleration_genes(
        adata, groups="clusters", normalize=True, output_values=True, prefix_store="norm"
    )
    layer = np.nan_to_num(np.asarray(adata.layers["acceleration"], dtype=np.float64)[:, genes])
    scale = np.abs(layer).max(0)
    want = {
        g: np.where(scale > 0, v / np.where(scale > 0, scale, 1), 0)
        for g, v in _dynamo_rank(layer, groups).items()
    }
    _check_ranking(adata.uns["norm_acceleration"], names, want, 1e-4)


def test_rank_divergence_genes_is_the_diagonal_of_dynamos_gene_jacobian(reference):
    adata = _reference_adata(reference, layers=(), pca=True)
    jac = reference.uns["jacobian_pca"]
    adata.uns["jacobian_pca"] = {k: jac[k] for k in ("regulators", "effectors", "cell_idx")}
    table = dyn.vf.rank_divergence_genes(adata, groups="clusters", output_values=True)
    assert adata.uns["rank_div_gene_jacobian_pca"] is table
    # dynamo's values: the diagonal of the stored effectors x regulators x cells array
    diag = np.einsum("iij->ji", jac["jacobian_gene"]).astype(np.float64)
    groups = reference.obs["clusters"].astype(str).to_numpy()
    names = np.asarray(reference.var_names[reference.var_names.isin(GENES)])
    order = pd.Index(jac["regulators"]).get_indexer(names)
    _check_ranking(table, names, _dynamo_rank(diag[:, order], groups), 1e-4)
    # the evaluated diagonal itself, against dynamo's stored Jacobian, cell by cell
    X, fit, Q = dyn.vf.rank._diagonal_field(adata, "pca", names, "PCs")
    got = gr.jacobian_diagonal(X, fit["X_ctrl"], fit["C"], fit["beta"], Q).compute()
    want = diag[:, order]
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))
    # without a Jacobian record: the genes given, every cell
    del adata.uns["jacobian_pca"]
    again = dyn.vf.rank_divergence_genes(
        adata, genes=GENES[:3], output_values=True, prefix_store="direct"
    )
    sub = names[np.isin(names, GENES[:3])]
    _check_ranking(again, sub, {"all": want[:, np.isin(names, GENES[:3])].mean(0)}, 1e-4)


# ------------------------------------------------------------------------------------------
# other options, stores, errors


def test_rank_genes_options(reference):
    adata = _reference_adata(reference)
    V = np.nan_to_num(np.asarray(reference.layers["velocity_S"], dtype=np.float64))
    genes = ["Ins2", "Gcg", "Pdx1", "Malat1"]
    table = dyn.vf.rank_genes(adata, "velocity_S", groups="clusters", genes=genes, fcn_pool="max")
    cols = adata.var_names.get_indexer(table["Beta"])
    beta = (reference.obs["clusters"] == "Beta").to_numpy()
    assert np.all(np.diff(V[beta][:, cols].max(0)) <= 0)
    assert sorted(table["Beta"]) == sorted(genes)
    # a var column ranks genes once; a dask array and a boolean mask work as keys
    adata.var["score"] = np.arange(adata.n_vars, dtype=float)
    by_var = dyn.vf.rank_genes(adata, "score", groups="clusters")
    assert (
        list(by_var.columns) == ["all"]
        and by_var["all"].iloc[0]
        == adata.var_names[np.flatnonzero(adata.var["use_for_dynamics"])[-1]]
    )
    lazy = dyn.vf.rank_genes(
        adata,
        da.from_array(V, chunks=(500, -1)),
        groups=adata.obs["clusters"].to_numpy(),
        genes=adata.var["use_for_transition"].to_numpy(),
        fcn_pool=np.sum,
        output_values=True,
    )
    mask = adata.var["use_for_transition"].to_numpy()
    ductal = (reference.obs["clusters"] == "Ductal").to_numpy()
    want = V[ductal][:, mask].sum(0)
    np.testing.assert_allclose(np.sort(lazy["Ductal_values"])[::-1], np.sort(want)[::-1])


def test_store_backed_equals_in_memory(reference, tmp_path):
    small = _reference_adata(reference, layers=("velocity_S", "M_s"), pca=True)[::6].copy()
    small.write_h5ad(tmp_path / "small.h5ad")
    dyn.io.convert(tmp_path / "small.h5ad", tmp_path / "small.zarr", chunk_cells=200)
    stored = dyn.io.open(tmp_path / "small.zarr")
    jac = {"regulators": np.array(GENES), "effectors": np.array(GENES)}
    jac["cell_idx"] = np.arange(0, small.n_obs, 2)
    for a in (small, stored):
        a.uns["jacobian_pca"] = jac
        dyn.vf.acceleration(a, basis="pca")
        dyn.vf.curvature(a, basis="pca")
        kw = {"groups": "clusters", "output_values": True}
        dyn.vf.rank_velocity_genes(a, **kw)
        dyn.vf.rank_acceleration_genes(a, **kw)
        dyn.vf.rank_curvature_genes(a, **kw)
        dyn.vf.rank_divergence_genes(a, **kw)
    reopened = dyn.io.open(tmp_path / "small.zarr")
    keys = [
        "rank_velocity_S",
        "rank_abs_velocity_S",
        "rank_acceleration",
        "rank_abs_acceleration",
        "rank_curvature",
        "rank_abs_curvature",
        "rank_div_gene_jacobian_pca",
    ]
    for a in (stored, reopened):
        for key in keys:
            want, got = small.uns[key], a.uns[key]
            assert list(got.columns) == list(want.columns)
            for col in want.columns:
                if col.endswith("_values"):
                    np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-6)
                else:
                    assert list(got[col]) == list(want[col]), (key, col)
    # divergence: the mean over the evaluated cells (cell_idx) of each group
    names = np.asarray(small.var_names[small.var_names.isin(GENES)])
    X, fit, Q = dyn.vf.rank._diagonal_field(small, "pca", names, "PCs")
    diag = kr.jacobian_diagonal(X[jac["cell_idx"]], fit["X_ctrl"], fit["C"], fit["beta"], Q)
    groups = small.obs["clusters"].astype(str).to_numpy()[jac["cell_idx"]]
    _check_ranking(small.uns["rank_div_gene_jacobian_pca"], names, _dynamo_rank(diag, groups))


def test_clear_errors(reference):
    adata = _reference_adata(reference)
    with pytest.raises(ValueError, match=r"dyn.vf.acceleration\(adata, basis='pca'\)"):
        dyn.vf.rank_acceleration_genes(adata)
    with pytest.raises(ValueError, match=r"dyn.vf.curvature\(adata, basis='pca'\)"):
        dyn.vf.rank_curvature_genes(adata)
    with pytest.raises(ValueError, match="dyn.tl.dynamics"):
        dyn.vf.rank_velocity_genes(adata, vkey="velocity_T")
    with pytest.raises(ValueError, match="not an obs column"):
        dyn.vf.rank_velocity_genes(adata, groups="louvain")
    with pytest.raises(ValueError, match="not in var_names"):
        dyn.vf.rank_velocity_genes(adata, genes=["Ins2", "NoSuchGene"])
    with pytest.raises(ValueError, match="use_for_dynamics"):
        dyn.vf.rank_velocity_genes(adata, genes=list(adata.var_names[~adata.var.use_for_dynamics]))
    with pytest.raises(TypeError, match="block by block"):
        dyn.vf.rank_velocity_genes(adata, fcn_pool=lambda x: np.median(x, axis=0))
    with pytest.raises(TypeError, match="abs"):
        dyn.vf.rank_velocity_genes(adata, abs=True)
    with pytest.raises(TypeError, match="unknown option"):
        dyn.vf.rank_velocity_genes(adata, group="clusters")
    with pytest.raises(ValueError, match="one label per cell"):
        dyn.vf.rank_genes(adata, "velocity_S", groups=["a", "b"])
    with pytest.raises(ValueError, match=r"dyn.vf.jacobian\(adata"):
        dyn.vf.rank_divergence_genes(adata)
    adata.uns["jacobian_pca"] = {"regulators": ["Ins2"], "effectors": ["Gcg"], "cell_idx": [0]}
    with pytest.raises(ValueError, match="regulators and effectors"):
        dyn.vf.rank_divergence_genes(adata)
    with pytest.raises(ValueError, match="no way back to genes"):
        dyn.vf.rank_divergence_genes(adata, jkey="jacobian_umap", genes=["Ins2"])
    del adata.uns["jacobian_pca"]
    with pytest.raises(ValueError, match=r"VectorField\(adata, basis='pca'\)"):
        dyn.vf.rank_divergence_genes(adata, genes=["Ins2"])
