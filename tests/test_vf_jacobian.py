"""dyn.vf Jacobian family: kernels vs finite differences, parity with dynamo, truth, stores."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import dynadask as dyn
from dynadask.kernels import jacobian as kj
from dynadask.kernels import vectorfield as kv

GENES = ["Neurog3", "Pax4", "Arx", "Pdx1", "Nkx2-2", "Ins1", "Ins2", "Gcg"]


def _field(d, m=30, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, d)) + 3.0, rng.normal(size=(m, d)), 0.3


# ------------------------------------------------------------------------------------------
# kernels


@pytest.mark.parametrize("d", [2, 3, 6])
def test_jacobian_and_hessian_match_finite_differences(d):
    ctrl, C, beta = _field(d)
    x = np.random.default_rng(1).normal(size=(4, d)) + 3.0
    vf = {"X_ctrl": ctrl, "C": C, "beta": beta}
    J, H, h = kj.jacobians(x, ctrl, C, beta), kj.hessians(x, ctrl, C, beta), 1e-5
    for n in range(len(x)):
        steps = [(x[n] + h * e, x[n] - h * e) for e in np.eye(d)]
        fd = np.column_stack(
            [
                (
                    dyn.vf.vector_field_function(p[None], vf)
                    - dyn.vf.vector_field_function(m[None], vf)
                )[0]
                / (2 * h)
                for p, m in steps
            ]
        )
        assert np.max(np.abs(J[n] - fd)) <= 1e-8 * np.max(np.abs(J[n]))
        fd2 = np.stack(
            [
                (kj.jacobians(p[None], ctrl, C, beta) - kj.jacobians(m[None], ctrl, C, beta))[0]
                / (2 * h)
                for p, m in steps
            ],
            axis=-1,
        )
        assert np.max(np.abs(H[n] - fd2)) <= 1e-8 * np.max(np.abs(H[n]))


def test_projections_sensitivity_laplacian_torsion_against_direct_forms():
    d = 4
    ctrl, C, beta = _field(d)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(7, d)) + 3.0
    Qe, Qr, Qc = rng.normal(size=(3, d)), rng.normal(size=(2, d)), rng.normal(size=(5, d))
    J, H = kj.jacobians(x, ctrl, C, beta), kj.hessians(x, ctrl, C, beta)
    np.testing.assert_allclose(
        kj.project(J, Qe, Qr), np.einsum("ai,nij,bj->nab", Qe, J, Qr), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(
        kj.projected_hessian(x, ctrl, C, beta, Qe[0], Qr, Qc),
        np.einsum("i,aj,bk,nijk->nab", Qe[0], Qr, Qc, H),
        rtol=1e-10,
        atol=1e-12,
    )
    S = kj.sensitivity(J)
    for n in range(len(x)):
        inv = np.linalg.inv(np.eye(d) - J[n])
        np.testing.assert_allclose(S[n], inv @ np.diag(1 / np.diag(inv)), rtol=1e-10)
    q = kv.field_quantities(x, ctrl, C, beta, ["velocity", "laplacian", "torsion"])
    np.testing.assert_allclose(q["laplacian"], np.einsum("nijj->ni", H), rtol=1e-10, atol=1e-12)
    v = q["velocity"]
    a = np.einsum("nij,nj->ni", J, v)
    ja = np.einsum("nij,nj->ni", J, a)
    tau = [
        np.outer(v[n], a[n]) @ ja[n] / np.linalg.norm(np.outer(v[n], a[n])) ** 2 for n in range(7)
    ]
    np.testing.assert_allclose(q["torsion"], np.array(tau), rtol=1e-9)


# ------------------------------------------------------------------------------------------
# pancreas: parity with dynamo's reference (uns['jacobian_pca'], obs['jacobian_det_pca'])


def _pancreas(reference, X=False):
    adata = ad.AnnData(
        X=np.zeros(reference.shape, dtype=np.float32) if X else None,
        obs=reference.obs[["clusters"]].copy(),
        var=reference.var[["use_for_pca"]].copy(),
        obsm={"X_pca": reference.obsm["X_pca"], "X_umap": reference.obsm["X_umap"]},
        uns={k: reference.uns[k] for k in ("VecFld_pca", "VecFld_umap", "PCs")},
    )
    return adata


def test_gene_jacobians_match_dynamo(reference):
    adata = _pancreas(reference)
    dyn.vf.jacobian(adata, regulators=GENES, effectors=GENES)
    ref = reference.uns["jacobian_pca"]
    entry = adata.uns["jacobian_pca"]
    assert entry["regulators"] == list(ref["regulators"]) == entry["effectors"]  # var order
    np.testing.assert_array_equal(entry["cell_idx"], ref["cell_idx"])
    want = ref["jacobian_gene"].transpose(2, 0, 1)  # dynamo: effectors x regulators x cells
    got = entry["jacobian_gene"]
    assert got.shape == (adata.n_obs, 8, 8) and got.dtype == np.float32
    # measured 5e-7 of the largest element (float32 storage on both sides)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))
    det, ref_det = adata.obs["jacobian_det_pca"].to_numpy(), reference.obs["jacobian_det_pca"]
    rel = np.abs(det - ref_det.to_numpy()) / np.abs(ref_det.to_numpy())
    # 30 x 30 determinants of order 1e-70: measured median 5e-6, largest 4e-3 (cancellation)
    assert np.median(rel) <= 1e-4 and np.quantile(rel, 0.99) <= 1e-2
    assert "jacobian" not in entry  # the d x d arrays only when asked (pca_jacobian)


def test_back_projection_on_chosen_cells_is_q_j_qt(reference):
    adata = _pancreas(reference)
    cells = [5, 17, 400, 3000]
    out = dyn.vf.jacobian(
        adata, ["Pax4", "Gcg"], ["Ins1"], cell_idx=cells, store_in_adata=False, pca_jacobian=True
    )
    vf, Q = reference.uns["VecFld_pca"], reference.uns["PCs"]
    genes = reference.var_names[reference.var["use_for_pca"].to_numpy()]
    J = kv.jacobian(reference.obsm["X_pca"][cells], vf["X_ctrl"], vf["C"], vf["beta"])
    rows = lambda names: Q[genes.get_indexer(names)]  # noqa: E731
    assert out["regulators"] == ["Gcg", "Pax4"]  # var order
    want = np.einsum("ai,nij,bj->nab", rows(["Ins1"]), J, rows(["Gcg", "Pax4"]))
    np.testing.assert_allclose(out["jacobian_gene"], want, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(out["jacobian"], J, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(out["det"], np.linalg.det(J), rtol=1e-6)
    np.testing.assert_array_equal(out["cell_idx"], cells)
    assert "jacobian_pca" not in adata.uns and "jacobian_det_pca" not in adata.obs


def test_sampling_leaves_other_cells_nan(reference):
    adata = _pancreas(reference)
    dyn.vf.jacobian(adata, GENES, sampling="random", sample_ncells=100)
    entry = adata.uns["jacobian_pca"]
    assert entry["jacobian_gene"].shape == (100, 8, 8)
    det = adata.obs["jacobian_det_pca"].to_numpy()
    assert np.isfinite(det).sum() == 100
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(det)), entry["cell_idx"])
    ref = reference.uns["jacobian_pca"]["jacobian_gene"][:, :, entry["cell_idx"]]
    assert np.max(np.abs(entry["jacobian_gene"] - ref.transpose(2, 0, 1))) <= 1e-5 * np.max(
        np.abs(ref)
    )


# ------------------------------------------------------------------------------------------
# truth: a linear field has a constant Jacobian


def _linear(n=1500, seed=3):
    rng = np.random.default_rng(seed)
    A = np.array([[-1.0, 0.6, 0.0], [-0.6, -1.0, 0.3], [0.2, 0.0, -0.5]])
    X = rng.normal(size=(n, 3))
    V = X @ A.T + rng.normal(0, 0.02, X.shape)
    G = 12
    Q = np.linalg.qr(rng.normal(size=(G, 3)))[0]
    var = pd.DataFrame(
        {"use_for_pca": np.r_[np.ones(G - 2, bool), [False, False]]},
        index=[f"g{i}" for i in range(G)],
    )
    obs = pd.DataFrame(
        {"group": np.where(X[:, 0] > 0, "right", "left")}, index=[f"c{i}" for i in range(n)]
    )
    adata = ad.AnnData(
        X=np.zeros((n, G), dtype=np.float32),
        obs=obs,
        var=var,
        obsm={"X_pca": X, "velocity_pca": V},
        uns={"PCs": Q[: G - 2]},
    )
    return adata, A, Q[: G - 2]


def test_a_linear_fields_jacobian_is_recovered():
    adata, A, Q = _linear()
    dyn.vf.VectorField(adata, basis="pca")
    dyn.vf.jacobian(adata, ["g0", "g3", "g5"], ["g1", "g2"], pca_jacobian=True)
    core = np.linalg.norm(adata.obsm["X_pca"], axis=1) < 1.5
    J = adata.uns["jacobian_pca"]["jacobian"]
    err = np.linalg.norm(J - A, axis=(1, 2)) / np.linalg.norm(A)
    assert np.median(err[core]) <= 0.08  # measured 0.058 (SparseVFC's smoothing)
    gene = adata.uns["jacobian_pca"]["jacobian_gene"]
    want = Q[[1, 2]] @ A @ Q[[0, 3, 5]].T
    assert np.median(np.linalg.norm(gene - want, axis=(1, 2))[core]) <= 0.08 * np.linalg.norm(want)
    det = adata.obs["jacobian_det_pca"].to_numpy()
    assert np.median(det[core]) == pytest.approx(np.linalg.det(A), rel=0.05)
    dyn.vf.sensitivity(
        adata, ["g0", "g3"], cell_idx=np.flatnonzero(core)[:50], pca_sensitivity=True
    )
    inv = np.linalg.inv(np.eye(3) - A)
    S = adata.uns["sensitivity_pca"]["sensitivity"]
    want_S = inv / np.diag(inv)[None, :]
    assert np.median(np.linalg.norm(S - want_S, axis=(1, 2))) <= 0.08 * np.linalg.norm(want_S)


# ------------------------------------------------------------------------------------------
# stores


def test_store_equals_memory_and_stays_lazy(tmp_path):
    adata, _, _ = _linear(n=900, seed=4)
    dyn.vf.VectorField(adata, basis="pca", MaxIter=10)
    adata.write_h5ad(tmp_path / "lin.h5ad")
    dyn.io.convert(tmp_path / "lin.h5ad", tmp_path / "lin.zarr", chunk_cells=256)
    stored = dyn.io.open(tmp_path / "lin.zarr")
    calls = [
        lambda a: dyn.vf.jacobian(a, ["g0", "g3"], ["g1", "g2", "g4"]),
        lambda a: dyn.vf.sensitivity(a, ["g0", "g3"], ["g1"], cell_idx=np.arange(0, 900, 7)),
        lambda a: dyn.vf.hessian(
            a, ["g0", "g1"], ["g2"], effector="g3", sampling="random", sample_ncells=60
        ),
        lambda a: dyn.vf.laplacian(a),
    ]
    for a in (adata, stored):
        for call in calls:
            call(a)
    reopened = dyn.io.open(tmp_path / "lin.zarr")
    arrays = [("jacobian_pca", "jacobian_gene"), ("sensitivity_pca", "sensitivity_gene")]
    arrays += [("hessian_pca", "hessian_gene")]
    for a in (stored, reopened):
        for key, name in arrays:
            lazy = a.uns[key][name]
            assert isinstance(lazy, da.Array), (key, name)
            np.testing.assert_allclose(np.asarray(lazy), adata.uns[key][name], rtol=1e-6)
            np.testing.assert_array_equal(
                np.asarray(a.uns[key]["cell_idx"]), adata.uns[key]["cell_idx"]
            )
        assert isinstance(a.uns["jacobian_pca"]["cell_idx"], da.Array)  # all cells: in the store
        for col in ("jacobian_det_pca", "sensitivity_det_pca", "Laplacian_pca"):
            np.testing.assert_allclose(a.obs[col], adata.obs[col], rtol=1e-9)
        np.testing.assert_allclose(
            np.asarray(a.layers["laplacian"]), adata.layers["laplacian"], rtol=1e-6
        )
    arr = dyn.vf.jacobian_array(reopened)
    assert isinstance(arr, xr.DataArray) and isinstance(arr.data, da.Array)
    assert arr.dims == ("cells", "effectors", "regulators")
    assert list(arr.effectors.values) == ["g1", "g2", "g4"] and list(arr.regulators.values) == [
        "g0",
        "g3",
    ]
    np.testing.assert_allclose(
        arr.sel(effectors="g2", regulators="g3").values,
        adata.uns["jacobian_pca"]["jacobian_gene"][:, 1, 1],
        rtol=1e-6,
    )
    assert arr.cells.values[5] == adata.obs_names[5]
    # the per-cell arrays are chunked by cells in the store
    import zarr

    z = zarr.open_group(str(tmp_path / "lin.zarr"))["uns/jacobian_pca/jacobian_gene"]
    assert z.chunks[1:] == (3, 2) and z.chunks[0] < 900
    # plain anndata reads the store in memory
    plain = ad.read_zarr(tmp_path / "lin.zarr")
    np.testing.assert_allclose(
        plain.uns["jacobian_pca"]["jacobian_gene"],
        adata.uns["jacobian_pca"]["jacobian_gene"],
        rtol=1e-6,
    )


# ------------------------------------------------------------------------------------------
# sensitivity, hessian, laplacian, torsion, ranking


def test_sensitivity_from_gene_jacobians(reference):
    adata = _pancreas(reference)
    cells = np.arange(0, 3696, 97)
    dyn.vf.sensitivity(adata, ["Pax4", "Gcg"], ["Ins1"], cell_idx=cells)
    entry = adata.uns["sensitivity_pca"]
    assert (
        entry["regulators"] == entry["effectors"] == ["Gcg", "Ins1", "Pax4"]
    )  # the union, var order
    J = dyn.vf.jacobian(adata, entry["regulators"], cell_idx=cells, store_in_adata=False)
    for n in range(cells.size):
        inv = np.linalg.inv(np.eye(3) - J["jacobian_gene"][n].astype(np.float64))
        np.testing.assert_allclose(
            entry["sensitivity_gene"][n], inv / np.diag(inv), rtol=1e-4, atol=1e-6
        )
    det = adata.obs["sensitivity_det_pca"].to_numpy()
    assert np.isfinite(det[cells]).all() and np.isnan(np.delete(det, cells)).all()
    dyn.vf.sensitivity(
        adata,
        ["Pax4"],
        ["Ins1"],
        cell_idx=cells[:3],
        projection_method="direct",
        pca_sensitivity=True,
    )
    entry = adata.uns["sensitivity_pca"]
    genes = reference.var_names[reference.var["use_for_pca"].to_numpy()]
    Q = reference.uns["PCs"]
    qi, qj = Q[genes.get_loc("Ins1")], Q[genes.get_loc("Pax4")]
    want = np.einsum("i,nij,j->n", qi, entry["sensitivity"].astype(np.float64), qj)
    np.testing.assert_allclose(entry["sensitivity_gene"][:, 0, 0], want, rtol=1e-4)


def test_hessian_genes_and_laplacian(reference):
    adata = _pancreas(reference)
    cells = [1, 50, 2000]
    out = dyn.vf.hessian(
        adata,
        ["Pax4", "Arx"],
        ["Gcg"],
        effector="Ins1",
        cell_idx=cells,
        store_in_adata=False,
        pca_hessian=True,
    )
    vf = reference.uns["VecFld_pca"]
    H = kj.hessians(reference.obsm["X_pca"][cells], vf["X_ctrl"], vf["C"], vf["beta"])
    genes = reference.var_names[reference.var["use_for_pca"].to_numpy()]
    Q = reference.uns["PCs"]
    rows = lambda names: Q[genes.get_indexer(names)]  # noqa: E731
    want = np.einsum(
        "i,aj,bk,nijk->nab", rows(["Ins1"])[0], rows(["Pax4", "Arx"]), rows(["Gcg"]), H
    )
    assert out["regulators"] == ["Pax4", "Arx"] and out["effectors"] == ["Ins1"]  # var order
    np.testing.assert_allclose(out["hessian_gene"], want, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(out["hessian"], H, rtol=1e-5, atol=1e-9)
    sub = adata[:80].copy()
    dyn.vf.laplacian(sub)
    H_all = kj.hessians(reference.obsm["X_pca"][:80], vf["X_ctrl"], vf["C"], vf["beta"])
    L = np.einsum("nijj->ni", H_all)
    np.testing.assert_allclose(sub.obsm["Laplacian_pca"], L, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(sub.obs["Laplacian_pca"], np.linalg.norm(L, axis=1), rtol=1e-8)
    layer = np.asarray(sub.layers["laplacian"])
    use = reference.var["use_for_pca"].to_numpy()
    np.testing.assert_allclose(layer[:, use], L @ Q.T, rtol=1e-4, atol=1e-8)
    assert np.isnan(layer[:, ~use]).all()
    with pytest.warns(UserWarning, match="hkey"):
        dyn.vf.laplacian(sub, hkey="my_hessian")


def test_torsion_in_3d():
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 3))
    V = np.column_stack([-X[:, 1], X[:, 0], 0.5 - X[:, 2]]) + rng.normal(0, 0.02, X.shape)
    a3 = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(400)]))
    a3.obsm["X_h"], a3.obsm["velocity_h"] = X, V
    dyn.vf.VectorField(a3, basis="h", MaxIter=10, grid_num=5)
    dyn.vf.torsion(a3, basis="h")
    vf = a3.uns["VecFld_h"]
    J = kv.jacobian(X, vf["X_ctrl"], vf["C"], vf["beta"])
    v = dyn.vf.vector_field_function(X, vf)
    a = np.einsum("nij,nj->ni", J, v)
    tau = v * (np.einsum("ni,nij,nj->n", a, J, a) / (np.sum(v**2, 1) * np.sum(a**2, 1)))[:, None]
    np.testing.assert_allclose(a3.obsm["torsion_h"], tau, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(a3.obs["torsion_h"], np.linalg.norm(tau, axis=1), rtol=1e-8)
    with pytest.raises(ValueError, match="3-D"):
        dyn.vf.torsion(_pancreas_like_2d(), basis="umap")


def _pancreas_like_2d():
    rng = np.random.default_rng(0)
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(5)]))
    a.obsm["X_umap"] = rng.normal(size=(5, 2))
    a.uns["VecFld_umap"] = {
        "X_ctrl": rng.normal(size=(3, 2)),
        "C": rng.normal(size=(3, 2)),
        "beta": 1.0,
    }
    return a


def _group_means(J, labels):
    return {g: J[labels == g].mean(axis=0) for g in pd.unique(labels)}


def test_rank_jacobian_genes(reference):
    adata = _pancreas(reference)
    dyn.vf.jacobian(adata, GENES)
    J = adata.uns["jacobian_pca"]["jacobian_gene"].astype(np.float64)
    genes = np.array(adata.uns["jacobian_pca"]["regulators"])
    labels = adata.obs["clusters"].to_numpy()
    means = _group_means(J, labels)
    dyn.vf.rank_jacobian_genes(adata, groups="clusters")
    table = adata.uns["full reg"]
    assert set(table) == set(map(str, means))
    for g, m in means.items():
        for i, eff in enumerate(genes):
            order = np.argsort(m[i])[::-1]
            assert list(table[g][eff]) == list(genes[order])
            np.testing.assert_allclose(table[g][f"{eff}_values"], m[i][order], rtol=1e-6)
    reg = dyn.vf.rank_jacobian_genes(adata, groups="clusters", mode="reg", abs=True, return_df=True)
    m = np.abs(J[labels == "Ductal"]).mean(axis=0).mean(axis=0)
    assert list(reg["Ductal"]) == list(genes[np.argsort(m)[::-1]])
    ints = dyn.vf.rank_jacobian_genes(adata, mode="int", exclude_diagonal=True, return_df=True)
    assert len(ints) == 8 * 7
    whole = J.mean(axis=0)
    top = np.unravel_index(np.argmax(np.where(np.eye(8, dtype=bool), -np.inf, whole)), whole.shape)
    assert ints["all"][0] == f"{genes[top[0]]} - {genes[top[1]]}"
    norm = dyn.vf.rank_jacobian_genes(adata, mode="eff", normalize=True, return_df=True)
    scaled = (J / np.abs(J).max(axis=0)).mean(axis=0).mean(axis=1)
    np.testing.assert_allclose(norm["all_values"], np.sort(scaled)[::-1], rtol=1e-6)
    sw = dyn.vf.rank_jacobian_genes(adata, mode="switch", return_df=True)
    prod = J * J.transpose(0, 2, 1) * ((J < 0) & (J.transpose(0, 2, 1) < 0))
    assert sw["all_values"][0] == pytest.approx(prod.mean(axis=0).max(), rel=1e-6)


def test_rank_on_a_store(tmp_path):
    adata, _, _ = _linear(n=600, seed=5)
    dyn.vf.VectorField(adata, basis="pca", MaxIter=10)
    adata.write_h5ad(tmp_path / "r.h5ad")
    dyn.io.convert(tmp_path / "r.h5ad", tmp_path / "r.zarr", chunk_cells=200)
    stored = dyn.io.open(tmp_path / "r.zarr")
    for a in (adata, stored):
        dyn.vf.jacobian(a, ["g0", "g1", "g2"])
        dyn.vf.rank_jacobian_genes(a, groups="group", mode="full eff")
    reopened = dyn.io.open(tmp_path / "r.zarr")
    for a in (stored, reopened):
        for g in ("left", "right"):
            got, want = a.uns["full eff"][g], adata.uns["full eff"][g]
            assert list(got["g0"]) == list(want["g0"])
            np.testing.assert_allclose(got["g0_values"], want["g0_values"], rtol=1e-6)


# ------------------------------------------------------------------------------------------
# errors


def test_clear_errors(reference):
    adata = _pancreas(reference)
    with pytest.raises(ValueError, match=r"\['Nope'\] not in adata.var_names"):
        dyn.vf.jacobian(adata, ["Ins1", "Nope"])
    unused = reference.var_names[~reference.var["use_for_pca"].to_numpy()][0]
    with pytest.raises(ValueError, match="no PCA loadings"):
        dyn.vf.jacobian(adata, [unused])
    with pytest.raises(ValueError, match="basis='pca'"):
        dyn.vf.jacobian(adata, ["Ins1"], basis="umap")
    with pytest.raises(ValueError, match=r"VectorField\(adata, basis='tsne'\)"):
        dyn.vf.jacobian(adata, ["Ins1"], basis="tsne")
    with pytest.raises(ValueError, match="Qkey"):
        dyn.vf.jacobian(adata, ["Ins1"], Qkey="loadings")
    with pytest.raises(ValueError, match="sampling"):
        dyn.vf.jacobian(adata, ["Ins1"], sampling="trn")
    with pytest.raises(ValueError, match="cell_idx"):
        dyn.vf.jacobian(adata, ["Ins1"], cell_idx=[5, 10**6])
    with pytest.raises(ValueError, match="analytically"):
        dyn.vf.jacobian(adata, ["Ins1"], method="numerical")
    with pytest.raises(ValueError, match="projection_method"):
        dyn.vf.sensitivity(adata, ["Ins1"], projection_method="inverse")
    with pytest.raises(ValueError, match="effector="):
        dyn.vf.hessian(adata, ["Ins1"], ["Gcg"])
    with pytest.raises(ValueError, match="one gene"):
        dyn.vf.hessian(adata, ["Ins1"], ["Gcg"], effector=["Pax4", "Arx"])
    with pytest.raises(ValueError, match=r"dyn.vf.jacobian\(adata"):
        dyn.vf.rank_jacobian_genes(adata)
    dyn.vf.jacobian(adata, ["Ins1", "Gcg"], ["Pax4"], cell_idx=[0, 1])
    with pytest.raises(ValueError, match="unknown mode"):
        dyn.vf.rank_jacobian_genes(adata, mode="top")
    with pytest.raises(ValueError, match="same regulators"):
        dyn.vf.rank_jacobian_genes(adata, mode="switch")
    with pytest.raises(ValueError, match="obs"):
        dyn.vf.rank_jacobian_genes(adata, groups="celltype")
    with pytest.raises(KeyError, match="pca_jacobian=True"):
        dyn.vf.jacobian_array(adata, array="jacobian")
