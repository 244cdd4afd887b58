"""dyn.pd.perturbation: a linear field's analytic response, dynamo's recipe, stores, projection."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

import dynadask as dyn
from dynadask.kernels import vectorfield as kv

A = np.array([[-1.0, 0.5], [-0.3, -0.8]])
"""The linear field ``f(x) = A x`` in PCA space: its Jacobian is ``A`` everywhere."""

GENES = [f"g{i}" for i in range(6)]


def _linear_field():
    """``A x`` as a Gaussian field (least squares, wide kernels; Jacobian error < 1e-3)."""
    g = np.linspace(-3, 3, 10)
    ctrl = np.array([(a, b) for a in g for b in g])
    P = np.random.default_rng(0).uniform(-3, 3, (4000, 2))
    K = np.exp(-0.2 * ((P[:, None] - ctrl[None]) ** 2).sum(-1))
    return {"X_ctrl": ctrl, "C": np.linalg.lstsq(K, P @ A.T, rcond=None)[0], "beta": 0.2}


def _adata(n=300, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.5, (n, 2))
    Q = np.linalg.qr(rng.normal(size=(5, 2)))[0]  # 5 PCA genes, orthonormal loadings
    a = ad.AnnData(
        X=np.zeros((n, 6), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame({"use_for_pca": [True, True, False, True, True, True]}, index=GENES),
    )
    a.obsm["X_pca"] = X
    a.obsm["X_umap"] = X @ np.array([[1.0, 0.2], [-0.1, 1.0]])
    a.uns["PCs"], a.uns["pca_mean"] = Q, np.array([0.5, 1.0, 0.0, -0.2, 0.3])
    a.uns["VecFld_pca"] = _linear_field()
    idx = NearestNeighbors(n_neighbors=30).fit(X).kneighbors(X)[1]
    a.uns["neighbors"] = {"indices": idx, "params": {"n_neighbors": 30}}
    return a


def _dynamos_recipe(a, gene, value, cells=None):
    """dynamo's steps on dense matrices: genes, set, back to scores, per-cell Jacobians."""
    X, Q, mu = a.obsm["X_pca"], a.uns["PCs"], a.uns["pca_mean"]
    expr = X @ Q.T + mu
    g = list(a.var_names[a.var["use_for_pca"]]).index(gene)
    perturbed = expr.copy()
    rows = slice(None) if cells is None else cells
    perturbed[rows, g] = value
    dX = (perturbed - mu) @ Q - X
    vf = a.uns["VecFld_pca"]
    J = kv.jacobian(X, vf["X_ctrl"], vf["C"], vf["beta"])
    return np.einsum("nij,nj->ni", J, dX), dX


def test_linear_field_gives_the_analytic_response():
    a = _adata()
    dyn.pd.perturbation(a, "g3", 4.0)
    dY = np.asarray(a.obsm["j_delta_x_perturbation"])
    Q, mu, X = a.uns["PCs"], a.uns["pca_mean"], a.obsm["X_pca"]
    # g3 is the third PCA gene: delta x = (4 - x q^T - mu) q, delta Y = A delta x
    q = Q[2]
    want = ((4.0 - X @ q - mu[2])[:, None] * q[None, :]) @ A.T
    np.testing.assert_allclose(dY, want, atol=2e-3 * np.abs(want).max())
    # dynamo's recipe (dense genes, per-cell Jacobians) gives the same numbers
    ref, _ = _dynamos_recipe(a, "g3", 4.0)
    np.testing.assert_allclose(dY, ref, rtol=1e-9, atol=1e-10)
    # gene space: delta Y Q^T on the PCA genes, 0 on the other one
    layer = np.asarray(a.layers["j_delta_x_perturbation"])
    np.testing.assert_allclose(layer[:, a.var["use_for_pca"].to_numpy()], dY @ Q.T, rtol=1e-5)
    assert np.all(layer[:, 2] == 0)
    np.testing.assert_allclose(a.obsm["X_umap_perturbation"], a.obsm["X_umap"])


def test_other_methods_modes_and_cells():
    a = _adata()
    Q, mu, X = a.uns["PCs"], a.uns["pca_mean"], a.obsm["X_pca"]
    ref, dX = _dynamos_recipe(a, "g0", -2.0, cells=np.arange(10))
    dyn.pd.perturbation(a, ["g0", "g2"], [-2.0, 7.0], cells=list(range(10)))  # g2: not PCA
    dY = np.asarray(a.obsm["j_delta_x_perturbation"])
    np.testing.assert_allclose(dY, ref, rtol=1e-9, atol=1e-10)
    assert np.abs(dY[10:]).max() < 1e-12
    vf = a.uns["VecFld_pca"]
    f = lambda Y: kv.evaluate(Y, vf["X_ctrl"], vf["C"], vf["beta"])  # noqa: E731
    J = kv.jacobian(X, vf["X_ctrl"], vf["C"], vf["beta"])
    xp = X + dX
    for method, want in [
        ("j_x_prime", np.einsum("nij,nj->ni", J, xp) * 0.5),
        ("j_jv", np.einsum("nij,nj->ni", J, np.einsum("nij,nj->ni", J, dX)) * 0.5),
        ("f_x_prime", f(xp)),
        ("f_x_prime_minus_f_x_0", f(xp) - f(X)),
    ]:
        dyn.pd.perturbation(
            a, "g0", -2.0, cells=list(range(10)), pertubation_method=method, delta_t=0.5
        )
        np.testing.assert_allclose(a.obsm[f"{method}_perturbation"], want, rtol=1e-8, atol=1e-8)
    # z_score: the gene is set 1.5 standard deviations above its mean over the cells
    expr = X @ Q[1] + mu[1]
    dyn.pd.perturbation(a, "g1", 1.5, perturb_mode="z_score", zero_perturb_genes_vel=True)
    ref, _ = _dynamos_recipe(a, "g1", expr.mean() + 1.5 * expr.std())
    np.testing.assert_allclose(a.obsm["j_delta_x_perturbation"], ref, rtol=1e-8, atol=1e-10)
    assert np.all(np.asarray(a.layers["j_delta_x_perturbation"])[:, 1] == 0)


def test_projection_equals_cell_velocities():
    a = _adata()
    dyn.pd.perturbation(a, "g4", 3.0, projection_method="cosine")
    want = a.copy()
    dyn.tl.cell_velocities(
        want, X=a.obsm["X_pca"], V=np.asarray(a.obsm["j_delta_x_perturbation"]), method="cosine"
    )
    np.testing.assert_allclose(
        a.obsm["velocity_umap_perturbation"], want.obsm["velocity_umap"], rtol=1e-5, atol=1e-7
    )
    T = a.obsp["perturbation_transition_matrix"]
    np.testing.assert_allclose(
        T.toarray(), want.obsp["cosine_transition_matrix"].toarray(), atol=1e-6
    )


def test_store_backed_equals_in_memory(tmp_path):
    a = _adata()
    a.write_h5ad(tmp_path / "p.h5ad")
    dyn.io.convert(tmp_path / "p.h5ad", tmp_path / "p.zarr", chunk_cells=100)
    stored = dyn.io.open(tmp_path / "p.zarr")
    for x in (a, stored):
        dyn.pd.perturbation(x, "g3", 4.0)
    for x in (stored, dyn.io.open(tmp_path / "p.zarr")):
        for k in ("j_delta_x_perturbation", "velocity_umap_perturbation"):
            np.testing.assert_allclose(np.asarray(x.obsm[k]), a.obsm[k], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            np.asarray(x.layers["j_delta_x_perturbation"]), a.layers["j_delta_x_perturbation"]
        )


def test_clear_errors():
    a = _adata()
    for args, kwargs, match in [
        (("g9", 1.0), {}, "PCA gene"),
        (("g0", [1.0, 2.0]), {}, "expression values"),
        (("g0", 1.0), {"perturb_mode": "log"}, "perturb_mode"),
        (("g0", 1.0), {"pertubation_method": "jv"}, "pertubation_method"),
        (("g0", 1.0), {"projection_method": "fp"}, "not offered"),
        (("g0", 1.0), {"emb_basis": "tsne"}, "obsm"),
        (("g0", 1.0), {"cells": ["nope"]}, "cell names"),
        (("g0", 1.0), {"PCs_key": np.zeros((3, 2))}, "use_for_pca"),
    ]:
        with pytest.raises(ValueError, match=match):
            dyn.pd.perturbation(a, *args, **kwargs)
    with pytest.warns(UserWarning, match="jac_key"):
        dyn.pd.perturbation(a, "g0", 1.0, jac_key="jacobian_umap")
    del a.uns["VecFld_pca"]
    with pytest.raises(ValueError, match="VectorField"):
        dyn.pd.perturbation(a, "g0", 1.0)
