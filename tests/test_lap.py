"""dyn.pd.least_action: action and gradient, truth on known bistable fields, stores, tasks."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime, fsolve, minimize_scalar

import dynadask as dyn
from dynadask.graph import lap as gl
from dynadask.kernels import lap as kl

D = 10.0


def _wells(P, s0=0.5):
    """A double well's gradient plus a rotation fading from the origin (saddle at 0)."""
    P = np.atleast_2d(P)
    x, y = P[:, 0], P[:, 1]
    s = s0 * np.exp(-(x**2 + y**2) / 2)
    return np.column_stack([x - x**3 - s * y, -y + s * x])


def _gradient_wells(P):
    """``-grad U`` with ``U = x^4 / 4 - x^2 / 2 + y^2 / 2``: barrier 1/4 at the origin."""
    return _wells(P, s0=0.0)


def _root(guess):
    return fsolve(lambda p: _wells(p)[0], guess, xtol=1e-12)


def _gaussian_fit(seed=0):
    """The rotating wells as a Gaussian field (least squares on a 12 x 12 grid of centres)."""
    rng = np.random.default_rng(seed)
    g = np.linspace(-2, 2, 12)
    ctrl = np.array([(a, b) for a in g for b in g])
    P = rng.uniform(-2, 2, (3000, 2))
    K = np.exp(-2.0 * ((P[:, None] - ctrl[None]) ** 2).sum(-1))
    C = np.linalg.lstsq(K, _wells(P), rcond=None)[0]
    return {"X_ctrl": ctrl, "C": C, "beta": 2.0}


def _cells(n=600, seed=1):
    """Cells crowded at the two attractors, a few on the way between and around."""
    rng = np.random.default_rng(seed)
    k = [int(0.4 * n), int(0.4 * n)]
    P = np.vstack(
        [
            rng.normal([-1, -0.3], [0.2, 0.2], (k[0], 2)),
            rng.normal([1, 0.3], [0.2, 0.2], (k[1], 2)),
            rng.uniform(-1.6, 1.6, (n - sum(k), 2)),
        ]
    )
    return P


def _adata(n=600, pca=False):
    P = _cells(n)
    a = ad.AnnData(
        X=np.zeros((n, 3), dtype=np.float32),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame({"use_for_pca": [True, False, True]}, index=["g0", "g1", "g2"]),
    )
    basis = "pca" if pca else "toy"
    a.obsm[f"X_{basis}"] = P
    a.uns[f"VecFld_{basis}"] = _gaussian_fit()
    if pca:
        a.uns["PCs"] = np.array([[0.6, 0.8], [0.8, -0.6]])
        a.uns["pca_mean"] = np.array([0.5, 1.0])
    return a


def _polyline_distance(path, p):
    a, b = path[:-1], path[1:]
    ab = b - a
    t = np.clip(np.einsum("ij,ij->i", p - a, ab) / np.einsum("ij,ij->i", ab, ab), 0, 1)
    return float(np.linalg.norm(a + t[:, None] * ab - p, axis=1).min())


# ------------------------------------------------------------------------------------------
# kernels


@pytest.mark.parametrize("kind", ["gaussian", "callable"])
def test_action_gradient_and_jacobian_products(kind):
    vf = _gaussian_fit()
    field = (
        kl.GaussianField(vf["X_ctrl"], vf["C"], vf["beta"])
        if kind == "gaussian"
        else kl.CallableField(_wells)
    )
    rng = np.random.default_rng(3)
    path = kl.straight_path(np.array([-1.0, 0.3]), np.array([1.0, -0.2]), 10)
    path += rng.normal(0, 0.1, path.shape)
    inner = path[1:-1].ravel()
    S, grad = kl.action_and_gradient(inner, path[0], path[-1], field, 0.3, D)
    assert S == pytest.approx(kl.action(path, field, 0.3, D), rel=1e-12)
    fd = approx_fprime(
        inner, lambda v: kl.action_and_gradient(v, path[0], path[-1], field, 0.3, D)[0], 1e-7
    )
    np.testing.assert_allclose(grad, fd, atol=2e-6 * np.abs(grad).max())
    # J u against a finite-difference Jacobian of the same field
    J = kl.CallableField(field).jacobians(path)
    U = rng.normal(size=path.shape)
    np.testing.assert_allclose(field.jvp(path, U), np.einsum("nij,nj->ni", J, U), atol=1e-6)
    # the closed-form best time step is the minimum over dt
    dt, S_best = kl.best_dt(path, field, D)
    scan = minimize_scalar(
        lambda t: kl.action(path, field, t, D), bounds=(1e-3, 50), method="bounded"
    )
    assert dt == pytest.approx(scan.x, rel=1e-4)
    assert S_best == pytest.approx(kl.action(path, field, dt, D), rel=1e-10)


def test_graph_paths_follow_cells_and_fall_back_to_a_line():
    coords = np.column_stack([np.linspace(0, 1, 11), np.zeros(11)])
    coords = np.vstack([coords, [[5.0, 5.0], [5.1, 5.0]]])  # an island
    g = kl.knn_graph(
        np.array(
            [[i, i - 1 if i else 1, min(i + 1, 10)] for i in range(11)]
            + [[11, 12, 12], [12, 11, 11]]
        )
    )
    walks = kl.hop_paths(g, np.array([0, 0, 3]), np.array([10, 11, 3]))
    assert walks[0].tolist() == list(range(11)) and walks[1] is None and walks[2].tolist() == [3]
    starts, ends = np.array([[-0.1, 0.0], [0.0, 0.0]]), np.array([[1.1, 0.0], [5.0, 5.0]])
    paths, on_graph = gl.initial_paths(coords, starts, ends, 5, graph=g)
    assert on_graph.tolist() == [True, False]
    np.testing.assert_allclose(paths[0][:, 0], [-0.1, 0, 0.25, 0.5, 0.75, 1.0, 1.1])
    np.testing.assert_allclose(paths[1], kl.straight_path(starts[1], ends[1], 6))


# ------------------------------------------------------------------------------------------
# truth


def test_gradient_wells_action_is_twice_the_barrier_over_D():
    """For ``f = -grad U`` the least action uphill is ``2 dU / D`` (0.05), downhill 0."""
    field = kl.CallableField(_gradient_wells)
    init = kl.straight_path(np.array([-1.0, 0.0]), np.array([1.0, 0.0]), 26)
    init[1:-1, 1] += 0.5  # start off the axis
    res = kl.optimise_path(init, field, D=D)
    assert res["converged"]
    assert res["action"] == pytest.approx(2 * 0.25 / D, rel=0.03)  # measured 0.0508
    assert np.abs(res["path"][:, 1]).max() < 1e-4  # the path runs along the axis


def test_lap_between_attractors_passes_the_saddle():
    a = _adata()
    A, B, saddle = _root([-1, 0]), _root([1, 0]), _root([0, 0])
    np.testing.assert_allclose(saddle, 0, atol=1e-9)
    for vecfld in (_wells, None):  # the known field, then its Gaussian fit in uns
        lap = dyn.pd.least_action(
            a, None, None, init_states=A[None], target_states=B[None], basis="toy", vecfld=vecfld
        )
        out = a.uns["LAP_toy"]
        path = out["prediction"][0]
        assert path.shape == (27, 2) and out["parameters"]["init_path"][0] == "graph"
        np.testing.assert_allclose(path[[0, -1]], [A, B])
        # the initial path through the cells and the straight line cost more
        field = kl.CallableField(_wells)
        straight = kl.best_dt(kl.straight_path(A, B, 26), field, D)[1]
        total = out["action"][0, -1]
        assert total < 0.75 * straight  # measured 0.030 vs 0.046
        # wells 1.9 apart; the path through the cells passes 0.53 from the saddle, the least
        # action path 0.12 (a finite time cuts the corner; the gradient case passes exactly)
        init, _ = gl.initial_paths(a.obsm["X_toy"], A[None], B[None], 25)
        assert _polyline_distance(init[0], saddle) > 0.4
        assert _polyline_distance(path, saddle) < 0.15
        np.testing.assert_allclose(lap.t, out["t"][0])
        np.testing.assert_allclose(out["mftp"][0], np.exp(out["action"][0]))
        assert np.all(np.diff(out["action"][0]) >= 0) and out["action"][0, 0] == 0


# ------------------------------------------------------------------------------------------
# the API: pairs, genes, stores, tasks, errors


def test_pairs_given_paths_and_genes():
    a = _adata(pca=True)
    cells_a = ["c0", "c1", "c2"]
    cells_b = ["c300", "c301"]
    with pytest.warns(UserWarning, match="trimmed"):
        laps = dyn.pd.least_action(a, cells_a, cells_b, n_points=10)
    assert len(laps) == 2 and laps[0].X.shape == (12, 2)
    dyn.pd.least_action(a, cells_a, cells_b, paired=False, n_points=10)
    out = a.uns["LAP_pca"]
    assert out["prediction"].shape == (6, 12, 2)
    assert list(out["init_cells"]) == ["c0", "c0", "c1", "c1", "c2", "c2"]
    assert list(out["target_cells"]) == ["c300", "c301"] * 3
    np.testing.assert_allclose(out["init_states"][2], a.obsm["X_pca"][1])
    # back to genes through the loadings, pca_mean and expm1
    want = np.expm1(out["prediction"] @ a.uns["PCs"].T + a.uns["pca_mean"])
    np.testing.assert_allclose(out["exprs"], want, rtol=1e-5)
    assert list(out["genes"]) == ["g0", "g2"]
    # a given initial path: its ends stay, the action drops below the path's own
    init = kl.straight_path(a.obsm["X_pca"][0], a.obsm["X_pca"][300], 8)
    lap = dyn.pd.least_action(a, ["c0"], ["c300"], init_paths=init)
    assert a.uns["LAP_pca"]["parameters"]["init_path"][0] == "given"
    np.testing.assert_allclose(lap.X[[0, -1]], init[[0, -1]])
    assert lap.action_t()[-1] < kl.best_dt(init, kl.GaussianField(**_kw(a)), D)[1]


def _kw(a):
    vf = a.uns["VecFld_pca"]
    return {"ctrl": vf["X_ctrl"], "C": vf["C"], "beta": vf["beta"]}


def test_store_backed_equals_in_memory(tmp_path):
    a = _adata()
    a.write_h5ad(tmp_path / "toy.h5ad")
    dyn.io.convert(tmp_path / "toy.h5ad", tmp_path / "toy.zarr", chunk_cells=200)
    stored = dyn.io.open(tmp_path / "toy.zarr")
    kwargs = {"basis": "toy", "n_points": 12, "sample_cells": 400, "n_neighbors": 10}
    for x in (a, stored):
        dyn.pd.least_action(x, ["c3", "c5"], ["c250", "c599"], **kwargs)
    want = a.uns["LAP_toy"]
    for x in (stored, dyn.io.open(tmp_path / "toy.zarr")):
        got = x.uns["LAP_toy"]
        for k in ("prediction", "t", "action", "init_states", "target_states"):
            np.testing.assert_allclose(np.asarray(got[k]), want[k])
        assert list(got["init_cells"]) == ["c3", "c5"]


def test_pairs_as_tasks_on_a_cluster_equal_the_kernel(local_client):
    a = _adata()
    lap = dyn.pd.least_action(a, ["c3", "c7"], ["c250", "c270"], basis="toy", n_points=12)
    out = a.uns["LAP_toy"]
    vf = a.uns["VecFld_toy"]
    field = kl.GaussianField(vf["X_ctrl"], vf["C"], vf["beta"])
    paths, _ = gl.initial_paths(a.obsm["X_toy"], out["init_states"], out["target_states"], 12)
    for i, p in enumerate(paths):
        res = kl.optimise_path(p, field, D=D)
        np.testing.assert_allclose(lap[i].X, res["path"], rtol=1e-9, atol=1e-12)
        assert out["action"][i, -1] == pytest.approx(res["action"], rel=1e-9)


def test_clear_errors():
    a = _adata()
    for kwargs, match in [
        ({"basis": None}, "basis="),
        ({"basis": "umap"}, "obsm"),
        ({"n_points": 0}, "n_points"),
        ({"adj_key": "nope"}, "obsp"),
        ({"init_paths": np.zeros((2, 2))}, "L >= 3"),
        ({"init_paths": [np.zeros((4, 2))] * 3}, "one per pair"),
        ({"vecfld": 3}, "function"),
        ({"target_states": np.zeros((1, 3)), "target_cells": None}, "columns"),
    ]:
        call = {"basis": "toy", "target_cells": ["c300"]} | kwargs
        target = call.pop("target_cells")
        with pytest.raises(ValueError, match=match):
            dyn.pd.least_action(a, ["c0"], target, **call)
    del a.uns["VecFld_toy"]
    with pytest.raises(ValueError, match="VectorField"):
        dyn.pd.least_action(a, ["c0"], ["c300"], basis="toy")


def test_plot_draws_each_path_coloured_by_action(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.collections import LineCollection, PathCollection

    a = _adata()
    a.obs["group"] = "a"
    dyn.pd.least_action(a, ["c3", "c5"], ["c250", "c260"], basis="toy", n_points=10)
    ax = dyn.pl.least_action(a, basis="toy", color="group", save_show_or_return="return")
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    P = a.uns["LAP_toy"]["prediction"]
    for b in range(2):
        np.testing.assert_allclose(lines.get_segments()[b], P[b])
    dots = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
    S = a.uns["LAP_toy"]["action"]
    np.testing.assert_allclose(dots.get_array(), (S / S[:, -1:]).ravel())
    dyn.pl.least_action(
        a,
        basis="toy",
        color="group",
        save_show_or_return="save",
        save_kwargs={"path": str(tmp_path / "lap"), "ext": "png"},
    )
    assert (tmp_path / "kinetic_curves_lap.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="least_action"):
        dyn.pl.least_action(a, basis="umap")
    with pytest.raises(ValueError, match="columns"):
        dyn.pl.least_action(a, x=2, basis="toy")
