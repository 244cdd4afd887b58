"""dyn.vf.Potential and dyn.pl.show_landscape: known gradient fields, stores, errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

import dynadask as dyn  # noqa: E402
from dynadask.kernels import potential as kp  # noqa: E402
from dynadask.kernels.vectorfield import gauss_kernel  # noqa: E402

H = np.array([[1.0, 0.3], [0.3, 2.0]])


def U_quadratic(X):
    return 0.5 * np.einsum("ni,ij,nj->n", X, H, X)


def U_quartic(X):
    return U_quadratic(X) + 0.05 * X[:, 0] ** 4


def grad_quartic(X):
    return X @ H + np.column_stack([0.2 * X[:, 0] ** 3, np.zeros(len(X))])


def _adata(grad, n=600, seed=0):
    """Cells in [-2.5, 2.5]^2 with dynamo's kernel field fitted to ``f = -grad U``."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2.5, 2.5, (n, 2))
    g = np.linspace(-3, 3, 14)
    ctrl = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    beta = 1 / (2 * 0.6**2)
    C = np.linalg.lstsq(gauss_kernel(X, ctrl, beta), -grad(X), rcond=None)[0]
    vf = {"X_ctrl": ctrl, "C": C, "beta": beta, "Xss": np.zeros((1, 2)), "ftype": np.array([-1])}
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n)])
    return ad.AnnData(obs=obs, obsm={"X_umap": X}, uns={"VecFld_umap": vf})


@pytest.fixture(scope="module")
def linear():
    return _adata(lambda X: X @ H)


@pytest.fixture(scope="module")
def quartic():
    return _adata(grad_quartic)


def _grid_rank(entry, U):
    Z = np.asarray(entry["Zgrid"])
    pts = np.column_stack([np.ravel(entry["Xgrid"]), np.ravel(entry["Ygrid"])])
    ok = np.isfinite(Z.ravel())
    return spearmanr(Z.ravel()[ok], U(pts[ok]))[0], ok.mean()


def test_ao_is_the_quadratic_potential_of_a_linear_field(linear):
    a = linear.copy()
    dyn.vf.Potential(a, basis="umap", method="Ao")
    entry = a.uns["grid_Pot_umap"]
    X = a.obsm["X_umap"]
    # with D = I and a symmetric Jacobian -H, Q = 0 and U = x^T H x / 2 (up to the error of
    # the kernel fit's Jacobian, largest at the edges)
    rel = np.abs(entry["U"] - U_quadratic(X)) / np.maximum(U_quadratic(X), 0.1)
    assert np.median(rel) < 0.01 and rel.max() < 0.15
    rho, covered = _grid_rank(entry, U_quadratic)
    assert rho >= 0.99 and covered > 0.9
    assert entry["Zgrid"].shape == (100, 100)
    np.testing.assert_allclose(entry["Xgrid"][0, [0, -1]], [X[:, 0].min(), X[:, 0].max()])
    np.testing.assert_allclose(entry["P"].sum(), 1.0)
    assert entry["S"].shape == entry["A"].shape == (a.n_obs, 2, 2)
    np.testing.assert_allclose(entry["S"][0], np.eye(2), atol=0.02)  # (D + Q)^-1 = I


def test_ao_solves_q_for_a_rotating_field():
    # F = -(I + w E): Ao's Q makes (D + Q)^-1 F symmetric
    w = 0.7
    F = -(np.eye(2) + w * np.array([[0.0, 1.0], [-1.0, 0.0]]))
    g = np.linspace(-3, 3, 14)
    ctrl = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    X = np.random.default_rng(1).uniform(-2, 2, (400, 2))
    beta = 1 / (2 * 0.6**2)
    C = np.linalg.lstsq(gauss_kernel(X, ctrl, beta), X @ F.T, rcond=None)[0]
    U, S, A = kp.ao_block(X[:5], ctrl, C, beta, np.eye(2))
    for i in range(5):
        M = np.linalg.inv(S[i] + A[i]) - np.eye(2)  # Q
        np.testing.assert_allclose(M, -M.T, atol=1e-6)
        G = (S[i] + A[i]) @ F
        np.testing.assert_allclose(G, G.T, atol=0.02)
    np.testing.assert_allclose(U, 0.5 * (X[:5] ** 2).sum(1), rtol=0.03)


def test_bhattacharya_recovers_a_gradient_potential(quartic):
    a = quartic.copy()
    dyn.vf.Potential(a, method="Bhattacharya", dt=0.05, numTimeSteps=300, xyGridSpacing=0.5)
    entry = a.uns["grid_Pot_umap"]
    rho, covered = _grid_rank(entry, U_quartic)
    assert rho >= 0.95 and covered > 0.8
    np.testing.assert_allclose(entry["attractors"], [[0.0, 0.0]], atol=0.05)  # one basin


def test_tang_least_action_recovers_a_gradient_potential(quartic):
    a = quartic.copy()
    dyn.vf.Potential(a, method="Tang", n_points=7, TotalTime=2.0)
    entry = a.uns["grid_Pot_umap"]
    rho, covered = _grid_rank(entry, U_quartic)
    assert rho >= 0.95 and covered == 1.0
    np.testing.assert_allclose(entry["refpoint"], [0.0, 0.0])
    assert entry["Zgrid"].shape == (7, 7)
    # the action costs at least nothing at the reference and grows away from it
    Z = entry["Zgrid"]
    assert Z[3, 3] < 1e-3 * Z.max() and Z.min() >= -1e-6
    # the gradient of the discrete action is exact
    rng = np.random.default_rng(2)
    vf = a.uns["VecFld_umap"]
    inner, s, e = rng.normal(size=8), np.zeros(2), np.array([1.0, 1.0])
    args = (s, e, vf["X_ctrl"], vf["C"], vf["beta"], np.eye(2), 0.3)
    S, g = kp.action_and_gradient(inner, *args)
    h = 1e-6
    num = [(kp.action_and_gradient(inner + h * d, *args)[0] - S) / h for d in np.eye(8)]
    np.testing.assert_allclose(num, g, rtol=1e-3, atol=1e-4)


def test_store_equals_memory_and_the_landscape_is_drawn(linear, tmp_path):
    a = linear.copy()
    a.write_h5ad(tmp_path / "a.h5ad")
    dyn.io.convert(tmp_path / "a.h5ad", tmp_path / "a.zarr", chunk_cells=250)
    store = dyn.io.open(tmp_path / "a.zarr")
    dyn.vf.Potential(store, method="Ao")
    dyn.vf.Potential(a, method="Ao")
    again = dyn.io.open(tmp_path / "a.zarr")
    for k in ("Xgrid", "Ygrid", "Zgrid", "U", "P", "S", "A"):
        want = np.asarray(a.uns["grid_Pot_umap"][k])
        # the store's row blocks round differently from memory's: entries far below the
        # array's scale differ in their own seventh digit (seen: 3e-14 on A, scale 2e-5)
        np.testing.assert_allclose(
            np.asarray(again.uns["grid_Pot_umap"][k]),
            want,
            rtol=1e-7,
            atol=1e-7 * np.nanmax(np.abs(want)),
            equal_nan=True,
        )
    assert "Potential" in again.uns["dynadask"]["stages"]
    ax = dyn.pl.show_landscape(again, basis="umap", save_show_or_return="return")
    assert ax.name == "3d" and ax.get_zlabel() == "U"
    (surface,) = ax.collections
    assert len(surface.get_facecolors()) == 99 * 99  # one face per grid cell
    dyn.pl.show_landscape(
        a,
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "land"), "ext": "png", "dpi": 30, "verbose": False},
    )
    from PIL import Image

    with Image.open(tmp_path / "show_landscape_land.png") as img:
        assert img.size[0] > 50 and img.size[1] > 50


def test_clear_errors(linear, quartic):
    bare = ad.AnnData(obs=pd.DataFrame(index=["a", "b"]), obsm={"X_umap": np.zeros((2, 2))})
    with pytest.raises(dyn.MissingKeyError, match=r"dyn\.vf\.VectorField"):
        dyn.vf.Potential(bare)
    with pytest.raises(dyn.InputError, match="method"):
        dyn.vf.Potential(linear.copy(), method="Wang")
    with pytest.raises(dyn.InputError, match="DiffMat"):
        dyn.vf.Potential(linear.copy(), DiffMat=np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(dyn.InputError, match="x_lim"):
        dyn.vf.Potential(linear.copy(), x_lim=[1, 0])
    a = quartic.copy()
    del a.uns["VecFld_umap"]["Xss"]
    with pytest.raises(dyn.MissingKeyError, match="refpoint"):
        dyn.vf.Potential(a, method="Tang", n_points=3)
    assert "grid_Pot_umap" not in a.uns
    with pytest.raises(KeyError, match=r"dyn\.vf\.Potential"):
        dyn.pl.show_landscape(bare)
