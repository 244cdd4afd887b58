"""dyn.pd.fate: the integrator against scipy, exact linear flows, directions, parity, stores."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

import dynadask as dyn
from dynadask.kernels import fate as kf
from dynadask.kernels import integrate as ki
from dynadask.kernels import trajectory as kt

A = np.array([[-0.5, 1.0], [-1.0, -0.3]])
"""A stable spiral: the exact flow is ``expm(A t) x0``."""


def _linear(Y):
    return np.asarray(Y) @ A.T


def _exact(x0, t):
    return np.array([expm(A * s) @ x0 for s in np.atleast_1d(t)])


def _reference_inputs(reference):
    obsm = {k: reference.obsm[k] for k in ("X_umap", "velocity_umap_SparseVFC")}
    uns = {"VecFld_umap": reference.uns["VecFld_umap"]}
    return ad.AnnData(obs=pd.DataFrame(index=reference.obs_names), obsm=obsm, uns=uns)


def _ductal(reference):
    return list(reference.obs_names[reference.obs["clusters"] == "Ductal"][:50])


# ------------------------------------------------------------------------------------------
# the integrator and the resampling


@pytest.mark.parametrize("t_bound", [900.0, -900.0])
def test_batch_matches_solve_ivp_on_dynamos_field(reference, t_bound):
    vf = reference.uns["VecFld_umap"]
    field = kf.gaussian_field(vf["X_ctrl"], vf["C"], vf["beta"])
    y0 = reference.obsm["X_umap"][::700][:6].astype(np.float64)
    sol = ki.integrate(field, y0, t_bound, max_step=abs(t_bound) / 250)
    event = lambda t, x: np.all(np.abs(field(x[None])[0]) < 1e-5) - 1  # noqa: E731
    event.terminal = True
    for b in range(len(y0)):
        ref = solve_ivp(
            lambda t, x: field(x[None])[0],
            [0, t_bound],
            y0[b],
            max_step=abs(t_bound) / 250,
            events=event,
        )
        t, y, _ = sol.path(b)
        # the same steps, accepted and rejected, as scipy's RK45 on the state alone
        assert t.size == ref.t.size
        np.testing.assert_allclose(t, ref.t, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(y, ref.y.T, rtol=1e-7, atol=1e-7)


def test_exact_solution_of_a_linear_field():
    x0 = np.array([[3.0, -1.0], [0.5, 2.0], [-2.0, -2.0]])
    sol = ki.integrate(_linear, x0, 12.0, max_step=0.1, threshold=None, rtol=1e-8, atol=1e-10)
    for b in range(len(x0)):
        t, y, f = sol.path(b)
        assert t[-1] == 12.0 and sol.status[b] == 0
        np.testing.assert_allclose(y, _exact(x0[b], t), atol=1e-7)
        q = np.linspace(0, 12, 101)
        np.testing.assert_allclose(ki.hermite(t, y, f, q), _exact(x0[b], q), atol=2e-6)
    # the terminal event: the spiral reaches |f| < 1e-5 and stops there
    sol = ki.integrate(_linear, x0, 1e4, max_step=5.0)
    assert np.all(sol.status == 1)
    ends = np.array([sol.path(b)[1][-1] for b in range(3)])
    assert np.all(np.abs(_linear(ends)) < 1e-5 * 5)


def test_periodic_tail_is_cut_and_arc_length_is_uniform():
    s = np.linspace(0, 1, 300)
    line = np.column_stack([s, 0 * s])
    circle = np.column_stack([np.cos(np.linspace(0, 40 * np.pi, 600)), np.zeros(600)])
    x = np.vstack([line, 1 + 0 * circle, 1 + 0.0 * circle])
    end = kt.repeat_cut(x, tol=1e-3)
    assert 300 <= end < x.shape[0]  # the static tail goes, the ramp stays
    assert kt.repeat_cut(np.column_stack([s, s**2]), tol=1e-6) == 300  # no repeats: no cut
    t = s**2  # a path that speeds up: uniform arc length is uniform in s
    times = kt.arclength_times(line, t, 10)
    np.testing.assert_allclose(np.sqrt(times), np.linspace(0.1, 1, 10), atol=1e-3)


# ------------------------------------------------------------------------------------------
# the API: exact flows and directions


@pytest.mark.parametrize("direction", ["forward", "backward", "both"])
def test_fate_follows_a_known_linear_flow(direction):
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]))
    adata.obsm["X_lin"] = np.array([[3.0, -1.0], [0.5, 2.0], [-2.0, -2.0], [1.0, 1.0]])
    dyn.pd.fate(
        adata,
        init_cells=["c0", "c2"],
        basis="lin",
        t_end=6.0,
        direction=direction,
        interpolation_num=100,
        VecFld_true=_linear,
        rtol=1e-8,
        atol=1e-10,
    )
    out = adata.uns["fate_lin"]
    L = 200 if direction == "both" else 100
    assert out["t"].shape == (2, L) and out["prediction"].shape == (2, 2, L)
    assert list(out["init_cells"]) == ["c0", "c2"] and list(out["genes"]) == ["lin_0", "lin_1"]
    for b, x0 in enumerate(adata.obsm["X_lin"][[0, 2]]):
        t = out["t"][b]
        if direction == "forward":  # the start (t = 0) is dropped, as dynamo does
            assert np.all(np.diff(t) > 0) and 0 < t[0] < 0.5 and t[-1] == pytest.approx(6.0)
        elif direction == "backward":  # in integration order, as dynamo
            assert np.all(np.diff(t) < 0) and -0.5 < t[0] < 0 and t[-1] == pytest.approx(-6.0)
        else:  # joined in time, the far end of the backward branch dropped
            assert np.all(np.diff(t) > 0) and -6.0 < t[0] < -5.5 and t[-1] == pytest.approx(6.0)
            assert np.sum(t == 0) <= 1  # no pile of samples at t = 0
        np.testing.assert_allclose(out["prediction"][b].T, _exact(x0, t), atol=1e-5, rtol=1e-5)


def test_average_modes_positions_and_a_scaled_field():
    adata = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(4)]))
    adata.obsm["X_lin"] = np.array([[3.0, -1.0], [0.5, 2.0], [-2.0, -2.0], [1.0, 1.0]])
    opts = {"basis": "lin", "t_end": 3.0, "direction": "forward", "VecFld_true": _linear}
    dyn.pd.fate(adata, init_cells=[0, 1], average="origin", **opts)
    out = adata.uns["fate_lin"]
    np.testing.assert_allclose(out["init_states"], [[1.75, 0.5]])
    assert out["prediction"].shape == (1, 2, 250) and list(out["init_cells"]) == ["c0", "c1"]
    dyn.pd.fate(adata, init_cells=[0, 1], average="trajectory", **opts)
    assert adata.uns["fate_lin"]["prediction"].shape == (1, 2, 250)
    dyn.pd.fate(adata, init_cells=None, init_states=[[1.0, 0.0]], scale=2.0, **opts)
    out = adata.uns["fate_lin"]
    # twice the field over the same time: the state at t equals the plain flow at 2t
    t, x = out["t"][0], out["prediction"][0].T
    np.testing.assert_allclose(x[-1], _exact(np.array([1.0, 0.0]), 2 * t[-1])[0], atol=1e-3)


# ------------------------------------------------------------------------------------------
# parity with dynamo 1.5.3: the 50 Ductal cells of the reference


def test_parity_with_dynamos_fates(reference):
    adata = _reference_inputs(reference)
    init = _ductal(reference)
    ref = reference.uns["fate_umap"]
    X = reference.obsm["X_umap"]
    extent = np.max(X.max(0) - X.min(0))
    dyn.pd.fate(adata, init_cells=init, basis="umap", stitch="dynamo")
    out = adata.uns["fate_umap"]
    assert list(out["init_cells"]) == list(ref["init_cells"])
    np.testing.assert_allclose(out["parameters"]["t_end"], 5301.3, rtol=1e-4)
    end = np.linalg.norm(out["prediction"][:, :, -1] - ref["prediction"][:, :, -1], axis=1)
    # measured: median 2e-11, 1 of 50 cells beyond 5% (dynamo itself: 2 on this CPU)
    assert np.median(end) / extent <= 1e-6 and np.mean(end / extent > 0.05) <= 0.1
    zeros = (np.asarray(out["t"]) == 0).sum(axis=1)
    assert np.median(zeros) >= 100  # dynamo's stitching piles samples at t = 0 (reference: 160)
    dyn.pd.fate(adata, init_cells=init, basis="umap")
    out = adata.uns["fate_umap"]
    end = np.linalg.norm(out["prediction"][:, :, -1] - ref["prediction"][:, :, -1], axis=1)
    assert np.median(end) / extent <= 0.05  # measured 6e-4 to 1e-3 (batch shapes differ)
    assert np.all((np.asarray(out["t"]) == 0).sum(axis=1) <= 1)


# ------------------------------------------------------------------------------------------
# stores, PCA back to genes, errors, a cluster


def _toy_store(tmp_path):
    rng = np.random.default_rng(2)
    P = rng.uniform(-3, 3, (600, 2))
    adata = ad.AnnData(
        X=np.zeros((600, 2), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(600)]),
    )
    adata.obsm["X_toy"] = P
    g = np.linspace(-3, 3, 6)
    ctrl = np.array([(a, b) for a in g for b in g])
    K = np.exp(-1.0 * ((P[:, None] - ctrl[None]) ** 2).sum(-1))
    C = np.linalg.lstsq(K, _linear(P), rcond=None)[0]
    adata.uns["VecFld_toy"] = {"X_ctrl": ctrl, "C": C, "beta": 1.0}
    adata.write_h5ad(tmp_path / "toy.h5ad")
    dyn.io.convert(tmp_path / "toy.h5ad", tmp_path / "toy.zarr", chunk_cells=200)
    return adata


def test_store_backed_equals_in_memory(tmp_path):
    adata = _toy_store(tmp_path)
    stored = dyn.io.open(tmp_path / "toy.zarr")
    cells = ["c3", "c250", "c599", "c17"]
    for a in (adata, stored):
        dyn.pd.fate(a, init_cells=cells, basis="toy", interpolation_num=50)
    want = adata.uns["fate_toy"]
    for a in (stored, dyn.io.open(tmp_path / "toy.zarr")):
        got = a.uns["fate_toy"]
        np.testing.assert_allclose(np.asarray(got["prediction"]), want["prediction"])
        np.testing.assert_allclose(np.asarray(got["t"]), want["t"])
        np.testing.assert_allclose(
            np.asarray(got["init_states"]), adata.obsm["X_toy"][[3, 250, 599, 17]]
        )
        assert list(got["init_cells"]) == cells


def test_pca_trajectories_back_in_genes(reference):
    adata = ad.AnnData(
        obs=pd.DataFrame(index=reference.obs_names),
        var=pd.DataFrame(
            {"use_for_pca": reference.var["use_for_pca"].to_numpy()}, index=reference.var_names
        ),
    )
    adata.obsm["X_pca"] = reference.obsm["X_pca"]
    adata.uns["VecFld_pca"] = reference.uns["VecFld_pca"]
    adata.uns["PCs"] = reference.uns["PCs"]
    dyn.pd.fate(
        adata,
        init_cells=[0, 5],
        basis="pca",
        direction="forward",
        interpolation_num=20,
        inverse_transform=True,
    )
    out = adata.uns["fate_pca"]
    assert out["prediction"].shape == (2, 30, 20) and out["exprs"].shape == (2, 20, 1617)
    np.testing.assert_allclose(
        out["exprs"][1], out["prediction"][1].T @ reference.uns["PCs"].T, rtol=1e-5, atol=1e-5
    )
    assert out["expr_genes"][0] == reference.var_names[reference.var["use_for_pca"]][0]


def test_clear_errors(reference):
    adata = _reference_inputs(reference)
    init = _ductal(reference)[:2]
    for kwargs, match in [
        ({"direction": "sideways"}, "direction"),
        ({"sampling": "logspace"}, "arc_length"),
        ({"average": "median"}, "average"),
        ({"stitch": "features"}, "stitch"),
        ({"inverse_transform": True}, "basis='pca'"),
        ({"basis": None}, "basis="),
        ({"basis": "pca"}, "obsm"),
        ({"t_end": -1.0}, "positive"),
        ({"init_states": np.zeros((1, 3))}, "columns"),
    ]:
        with pytest.raises(ValueError, match=match):
            dyn.pd.fate(adata, init_cells=init, **({"basis": "umap"} | kwargs))
    with pytest.raises(ValueError, match="cell name or position"):
        dyn.pd.fate(adata, init_cells=["nope"], basis="umap")
    with pytest.raises(ValueError, match="init_cells"):
        dyn.pd.fate(adata, init_cells=None, basis="umap")
    with pytest.warns(UserWarning, match="cores is ignored"):
        dyn.pd.fate(adata, init_cells=init, basis="umap", interpolation_num=10, cores=2)
    del adata.uns["VecFld_umap"]
    with pytest.raises(ValueError, match="VectorField"):
        dyn.pd.fate(adata, init_cells=init, basis="umap")


def test_batches_on_a_cluster_equal_the_kernel(reference, local_client):
    """Tasks of 3 states on two workers give what the kernel gives on the same batches.

    (On this 2-D field, rounding differences of 1e-16 between batch shapes of the BLAS
    kernel grow into visible shifts along some paths, so the batches are the same here.)
    """
    adata = _reference_inputs(reference)
    init = _ductal(reference)[:6]
    dyn.pd.fate(adata, init_cells=init, basis="umap", interpolation_num=20, batch_size=3)
    vf = reference.uns["VecFld_umap"]
    field = kf.gaussian_field(vf["X_ctrl"], vf["C"], vf["beta"])
    t_end = adata.uns["fate_umap"]["parameters"]["t_end"]
    y0 = reference[init].obsm["X_umap"]
    parts = [kf.fate_batch(y0[s : s + 3], field, t_end, interpolation_num=20) for s in (0, 3)]
    T, P = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    np.testing.assert_allclose(adata.uns["fate_umap"]["t"], T, rtol=1e-9)
    np.testing.assert_allclose(
        adata.uns["fate_umap"]["prediction"], P.transpose(0, 2, 1), rtol=1e-9, atol=1e-9
    )
