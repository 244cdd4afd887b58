"""dyn.ext.ddhodge: parity with dynamo 1.5.3, truth on known fields, kernels, stores, errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.spatial import cKDTree
from scipy.stats import pearsonr, spearmanr

import dynadask as dyn
from dynadask.kernels import hodge as kh


def _reference_inputs(reference, vecfld=True):
    obsm = {k: reference.obsm[k] for k in ("X_umap", "velocity_umap")}
    uns = {"VecFld_umap": reference.uns["VecFld_umap"]} if vecfld else {}
    return ad.AnnData(obs=pd.DataFrame(index=reference.obs_names), obsm=obsm, uns=uns)


# ------------------------------------------------------------------------------------------
# kernels against slow, obvious versions


def _dense_flows(X, V, nbrs):
    """dynamo's double loop: E[i, j] = mean(v_i . u, v_j . u), E[j, i] = -E[i, j]."""
    n = X.shape[0]
    E = np.zeros((n, n))
    for i in range(n):
        for j in nbrs[i]:
            u = X[j] - X[i]
            u = u / (np.linalg.norm(u) or 1.0)
            E[i, j] = np.mean([V[i] @ u, V[j] @ u])
            E[j, i] = -E[i, j]
    return E


def test_edges_divergence_and_potential_match_dense_versions():
    rng = np.random.default_rng(0)
    # two clouds far apart: two connected components
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(50, 1, (30, 3))])
    V = rng.normal(size=X.shape)
    d2 = ((X[:, None] - X[None]) ** 2).sum(-1)
    nbrs = np.argsort(d2, axis=1)[:, 1:6]
    rows = np.arange(X.shape[0])
    edges = kh.edges_from_knn(nbrs, kh.edge_flows(X, V, rows, nbrs))
    E = _dense_flows(X, V, nbrs)
    F = edges.matrix().toarray()
    np.testing.assert_allclose(F, E, atol=1e-12)
    div = edges.divergence()
    np.testing.assert_allclose(div, E.sum(axis=1), atol=1e-12)
    A = (E != 0).astype(float)
    L = np.diag(A.sum(1)) - A
    np.testing.assert_allclose(edges.laplacian().toarray(), L)
    p_min_norm = np.linalg.lstsq(L, -div, rcond=None)[0]
    solve = kh.graph_potential(edges, div)
    assert solve.n_components == 2 and solve.residual < 1e-9
    np.testing.assert_allclose(solve.potential, p_min_norm - p_min_norm.min(), atol=1e-8)
    # a stored flow matrix gives back the same edges
    again = kh.edges_from_matrix(sparse.csr_matrix(F))
    np.testing.assert_allclose(again.divergence(), div, atol=1e-12)


@pytest.mark.parametrize("preconditioner", kh.PRECONDITIONERS)
def test_potential_solver_reports_failure(preconditioner):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 2))
    nbrs = cKDTree(X).query(X, k=4)[1][:, 1:]
    edges = kh.edges_from_knn(nbrs, kh.edge_flows(X, X, np.arange(2000), nbrs))
    with pytest.raises(RuntimeError, match="raise maxiter"):
        kh.graph_potential(edges, edges.divergence(), maxiter=2, preconditioner=preconditioner)
    with pytest.raises(dyn.InputError, match="unknown preconditioner"):
        kh.graph_potential(edges, edges.divergence(), preconditioner="ilu")


# ------------------------------------------------------------------------------------------
# parity with dynamo 1.5.3 on pancreas


def test_reproduces_dynamos_potential_with_its_field(reference):
    adata = _reference_inputs(reference)
    dyn.ext.ddhodge(adata, basis="umap")
    for key in ("umap_ddhodge_potential", "umap_ddhodge_div"):
        ref = reference.obs[key].to_numpy()
        got = adata.obs[key].to_numpy()
        # measured: 2e-8 (potential), 5e-7 (div) of the largest value
        assert np.max(np.abs(got - ref)) <= 1e-6 * np.max(np.abs(ref)), key
    F = adata.obsp["umap_ddhodge"]
    assert sparse.issparse(F) and abs(F + F.T).max() == 0
    # the potential increases along the flow: progenitors low, endocrine cells high
    med = (
        pd.Series(adata.obs["umap_ddhodge_potential"].to_numpy())
        .groupby(reference.obs["clusters"].to_numpy())
        .median()
    )
    assert med["Ductal"] < med["Ngn3 high EP"] < med["Pre-endocrine"] < med["Beta"]


def test_parity_with_a_field_fitted_here(reference):
    adata = _reference_inputs(reference, vecfld=False)
    dyn.vf.VectorField(adata, basis="umap")
    dyn.ext.ddhodge(adata, basis="umap")
    rho = spearmanr(adata.obs["umap_ddhodge_potential"], reference.obs["umap_ddhodge_potential"])
    assert rho[0] >= 0.95, rho  # measured 1.0000 (the fit here is close to dynamo's)


def test_sampled_mode_follows_the_full_solve(reference):
    adata = _reference_inputs(reference)
    dyn.ext.ddhodge(adata, basis="umap", n_downsamples=1000)
    sampled = adata.obs["umap_ddhodge_sampled"].to_numpy()
    assert sampled.sum() == 1000
    p = adata.obs["umap_ddhodge_potential"].to_numpy()
    assert np.isfinite(p).all() and "umap_ddhodge" not in adata.obsp
    rho = spearmanr(p, reference.obs["umap_ddhodge_potential"])[0]
    assert rho >= 0.95, rho  # measured 0.997
    assert adata.uns["ddhodge_umap"]["n_sampled"] == 1000
    # without upsampling the other cells stay empty; 'random' draws other cells
    dyn.ext.ddhodge(
        adata, basis="umap", n_downsamples=1000, up_sampling=False, sampling_method="random"
    )
    p2 = adata.obs["umap_ddhodge_potential"].to_numpy()
    assert np.isnan(p2).sum() == adata.n_obs - 1000
    assert not np.array_equal(adata.obs["umap_ddhodge_sampled"].to_numpy(), sampled)


# ------------------------------------------------------------------------------------------
# truth: known potentials


def _U(P):
    x, y = P[:, 0], P[:, 1]
    return 0.5 * x**2 + 0.25 * y**2 + 0.3 * x * y + 0.5 * np.sin(1.5 * x)


def _minus_grad_U(P):
    x, y = P[:, 0], P[:, 1]
    return -np.column_stack([x + 0.3 * y + 0.75 * np.cos(1.5 * x), 0.5 * y + 0.3 * x])


def _rotation(P):
    """A divergence-free swirl: (-dpsi/dy, dpsi/dx) of psi = exp(-|x|^2 / 2)."""
    psi = np.exp(-np.sum(P**2, axis=1) / 2)
    return np.column_stack([P[:, 1] * psi, -P[:, 0] * psi])


@pytest.mark.parametrize("swirl", [0.0, 1.0])
def test_potential_recovers_a_known_landscape(swirl):
    rng = np.random.default_rng(3)
    P = rng.uniform(-2, 2, (2500, 2))
    V = _minus_grad_U(P) + swirl * _rotation(P)
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(len(P))]))
    adata.obsm["X_toy"], adata.obsm["velocity_toy"] = P, V
    fit = dyn.vf.SparseVFC(P, V, M=150, MaxIter=30)
    dyn.ext.ddhodge(adata, basis="toy", VecFld=fit)
    p = adata.obs["toy_ddhodge_potential"].to_numpy()
    # the flow runs down U, so the potential (increasing along the flow) follows -U
    r, rho = pearsonr(p, -_U(P))[0], spearmanr(p, -_U(P))[0]
    assert r >= 0.95 and rho >= 0.95, (r, rho)  # measured at 5,000 cells: 0.9998 (0.9996 swirl)


# ------------------------------------------------------------------------------------------
# stores, reuse, a cluster, errors


def _toy(n=1200, seed=4):
    rng = np.random.default_rng(seed)
    P = rng.uniform(-2, 2, (n, 2))
    adata = ad.AnnData(
        X=np.zeros((n, 2), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
    )
    adata.obsm["X_toy"], adata.obsm["velocity_toy"] = P, _minus_grad_U(P)
    # a Gaussian field fitted by least squares on a grid of centres (no EM, no compute)
    g = np.linspace(-2, 2, 7)
    ctrl = np.array([(a, b) for a in g for b in g])
    K = np.exp(-2.0 * ((P[:, None] - ctrl[None]) ** 2).sum(-1))
    C = np.linalg.lstsq(K, _minus_grad_U(P), rcond=None)[0]
    adata.uns["VecFld_toy"] = {"X_ctrl": ctrl, "C": C, "beta": 2.0}
    return adata


def test_store_backed_equals_in_memory_and_reuses_the_graph(tmp_path):
    adata = _toy()
    adata.write_h5ad(tmp_path / "toy.h5ad")
    dyn.io.convert(tmp_path / "toy.h5ad", tmp_path / "toy.zarr", chunk_cells=300)
    stored = dyn.io.open(tmp_path / "toy.zarr")
    for a in (adata, stored):
        dyn.ext.ddhodge(a, basis="toy", n=10)
    reopened = dyn.io.open(tmp_path / "toy.zarr")
    want = adata.obs["toy_ddhodge_potential"].to_numpy()
    for a in (stored, reopened):
        np.testing.assert_allclose(a.obs["toy_ddhodge_potential"].to_numpy(), want, atol=1e-9)
        F = a.obsp["toy_ddhodge"]
        F = F.compute() if hasattr(F, "compute") else F
        assert abs(sparse.csr_matrix(F) - adata.obsp["toy_ddhodge"]).max() < 1e-12
    # a second call reads the stored graph (a different n would otherwise change it)
    dyn.ext.ddhodge(reopened, basis="toy", n=25)
    np.testing.assert_allclose(reopened.obs["toy_ddhodge_potential"].to_numpy(), want, atol=1e-9)
    dyn.ext.ddhodge(reopened, basis="toy", n=25, enforce=True)
    assert not np.allclose(reopened.obs["toy_ddhodge_potential"].to_numpy(), want)


def test_clear_errors(reference):
    adata = _reference_inputs(reference, vecfld=False)
    with pytest.raises(ValueError, match="VectorField"):
        dyn.ext.ddhodge(adata, basis="umap")
    adata = _reference_inputs(reference)
    with pytest.raises(ValueError, match="graphize_vecfld"):
        dyn.ext.ddhodge(adata, basis="umap", adjmethod="naive")
    with pytest.raises(ValueError, match="sampling_method"):
        dyn.ext.ddhodge(adata, basis="umap", n_downsamples=10, sampling_method="trn")
    with pytest.raises(ValueError, match="one row per cell"):
        dyn.ext.ddhodge(adata, basis="umap", X_data=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="basis="):
        dyn.ext.ddhodge(adata, basis=None)
    with pytest.raises(ValueError, match="obsm"):
        dyn.ext.ddhodge(adata, basis="pca", VecFld=reference.uns["VecFld_pca"])
    with pytest.raises(ValueError, match="columns"):
        dyn.ext.ddhodge(adata, basis="umap", VecFld=reference.uns["VecFld_pca"])
    with pytest.warns(UserWarning, match="cores is ignored"):
        dyn.ext.ddhodge(adata, basis="umap", n_downsamples=500, cores=4)


def test_on_a_cluster_equals_one_block(local_client):
    """Flows built per row block on two workers equal the kernels run on all cells at once."""

    from dynadask.graph import hodge as gh

    adata = _toy(seed=5)
    dyn.ext.ddhodge(adata, basis="toy", n=10)
    P, vf = adata.obsm["X_toy"], adata.uns["VecFld_toy"]
    V = dyn.vf.vector_field_function(P, vf)
    nbrs = cKDTree(P).query(P, k=11)[1][:, 1:]
    flows = kh.edge_flows(P, V, np.arange(len(P)), nbrs)
    np.testing.assert_allclose(gh.knn_flows(P, V, nbrs, rows=150), flows, atol=1e-12)
    edges = kh.edges_from_knn(nbrs, flows)
    want = kh.graph_potential(edges, edges.divergence()).potential
    np.testing.assert_allclose(adata.obs["toy_ddhodge_potential"].to_numpy(), want, atol=1e-8)
