"""dyn.vf.topography: truth on known fields, dynamo's reference field, stores, kernels."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import fsolve
from scipy.spatial import Delaunay

import dynadask as dyn
from dynadask.kernels import topography as kt
from dynadask.kernels import vectorfield as kv

# ------------------------------------------------------------------------------------------
# known 2-D and 10-D fields, sampled unevenly, with noisy velocities and outliers


def _switch(P):
    """Toggle switch: stable at (3.0, 0.037) and (0.037, 3.0), saddle on the diagonal."""
    x, y = P[:, 0], P[:, 1]
    return np.column_stack([3 / (1 + y**4) - x, 3 / (1 + x**4) - y])


SWITCH_ROOTS = {"stable": [(3.0, 0.0366), (0.0366, 3.0)], "saddle": [(1.133, 1.133)]}


def _cycle(P):
    """Hopf normal form: unstable focus at 0, stable limit cycle of radius 1."""
    x, y = P[:, 0], P[:, 1]
    r2 = x**2 + y**2
    return np.column_stack([x - y - x * r2, x + y - y * r2])


def _rotating_wells(P):
    """A double well's gradient plus a rotation fading from the origin."""
    x, y = P[:, 0], P[:, 1]
    s = 0.5 * np.exp(-(x**2 + y**2) / 2)
    return np.column_stack([x - x**3 - s * y, -y + s * x])


def _roots(field, guesses):
    """The analytic field's zeros near the guesses (scipy's root finder on the truth)."""
    return [tuple(fsolve(lambda p: field(p[None])[0], g, xtol=1e-12)) for g in guesses]


WELLS = {
    "stable": _roots(_rotating_wells, [(-1, 0), (1, 0)]),
    "saddle": _roots(_rotating_wells, [(0, 0)]),
}


def _noisy(P, field, seed):
    rng = np.random.default_rng(seed)
    V = field(P)
    V = V + rng.normal(0, 0.05 * np.median(np.linalg.norm(V, axis=1)), V.shape)
    out = rng.choice(P.shape[0], P.shape[0] // 40, replace=False)
    V[out] = rng.normal(0, np.std(V), (out.size, P.shape[1]))
    return V


def _adata(P, V, basis="toy"):
    a = ad.AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(P.shape[0])]))
    a.obsm[f"X_{basis}"], a.obsm[f"velocity_{basis}"] = P, V
    return a


def _switch_cells(n, seed=0):
    """Dense at the two attractors, sparse along the diagonal, a few everywhere."""
    rng = np.random.default_rng(seed)
    k = [int(0.4 * n), int(0.25 * n), int(0.15 * n)]
    t = rng.uniform(0, 1, k[2])
    P = np.vstack(
        [
            rng.normal([2.9, 0.1], [0.35, 0.25], (k[0], 2)),
            rng.normal([0.1, 2.9], [0.25, 0.35], (k[1], 2)),
            np.column_stack([t, t]) * 3 + rng.normal(0, 0.2, (k[2], 2)),
            rng.uniform(-0.3, 3.6, (n - sum(k), 2)),
        ]
    )
    return P


def _cycle_cells(n, seed=0):
    rng = np.random.default_rng(seed)
    m = int(0.8 * n)
    th = rng.vonmises(0.0, 0.8, m)  # crowded on one side of the ring
    ring = np.column_stack([np.cos(th), np.sin(th)]) * rng.normal(1, 0.12, (m, 1))
    return np.vstack([ring, rng.uniform(-1.4, 1.4, (n - m, 2))])


def _wells_cells(n, seed=0):
    rng = np.random.default_rng(seed)
    k = [int(0.5 * n), int(0.3 * n)]
    return np.vstack(
        [
            rng.normal([-1, 0], [0.35, 0.5], (k[0], 2)),
            rng.normal([1, 0], [0.25, 0.3], (k[1], 2)),
            rng.uniform(-1.8, 1.8, (n - sum(k), 2)),
        ]
    )


def _check(vf, P, truth, tol):
    """Every true fixed point found with its type; none other inside the cells' hull."""
    Xss, ftype = vf["Xss"], vf["ftype"]
    code = {"stable": -1.0, "saddle": 0.0, "unstable": 1.0}
    matched = np.zeros(len(Xss), dtype=bool)
    for kind, points in truth.items():
        for p in points:
            d = np.linalg.norm(Xss - np.asarray(p), axis=1)
            i = int(np.argmin(d))
            assert d[i] <= tol, (kind, p, Xss, ftype)
            assert ftype[i] == code[kind], (kind, p, ftype[i])
            matched[i] = True
    inside = Delaunay(P).find_simplex(Xss) >= 0
    assert not np.any(inside & ~matched), (Xss[inside & ~matched], ftype[inside & ~matched])


# M: control points. With dynamo's default for the switch (0.05 N + 1 = 61) the fitted field
# is ~0 in the sparse upper-right corner (truth: speed ~4), and topography duly reports its two
# zeros there (measured); 100 control points fit that corner, and then no false zero remains.
CASES = {
    "switch": (_switch, _switch_cells, SWITCH_ROOTS, 100),
    "cycle": (_cycle, _cycle_cells, {"unstable": [(0.0, 0.0)]}, None),
    "wells": (_rotating_wells, _wells_cells, WELLS, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_points_of_known_2d_fields(case):
    field, cells, truth, M = CASES[case]
    P = cells(1200, seed=3)
    a = _adata(P, _noisy(P, field, seed=4))
    dyn.vf.VectorField(a, basis="toy", M=M)
    dyn.vf.topography(a, basis="toy")
    vf = a.uns["VecFld_toy"]
    span = np.max(P.max(0) - P.min(0))
    _check(vf, P, truth, tol=0.05 * span)
    assert vf["Xss"].shape[1] == 2 and vf["confidence"].shape == vf["ftype"].shape
    assert len(vf["NCx"]) > 0 and len(vf["NCy"]) > 0
    # the nullclines are zeros of their component of the learned field
    field_at = dyn.vf.vector_field_function(vf["NCx_points"], vf)
    scale = np.median(np.linalg.norm(a.obsm["velocity_toy_SparseVFC"], axis=1))
    assert np.max(np.abs(field_at[:, 0])) <= 1e-6 * scale
    field_at = dyn.vf.vector_field_function(vf["NCy_points"], vf)
    assert np.max(np.abs(field_at[:, 1])) <= 1e-6 * scale


def test_separatrix_of_the_switch_splits_the_basins():
    P = _switch_cells(1200, seed=5)
    a = _adata(P, _noisy(P, _switch, seed=6))
    dyn.vf.VectorField(a, basis="toy", M=100)
    dyn.vf.topography(a, basis="toy")
    vf = a.uns["VecFld_toy"]
    saddle = int(np.argmin(np.linalg.norm(vf["Xss"] - SWITCH_ROOTS["saddle"][0], axis=1)))
    assert vf["ftype"][saddle] == 0
    stable = vf["separatrices_kind"] == -1
    mine = stable & (vf["separatrices_saddle"] == saddle)
    assert mine.any()
    off = vf["separatrices_offsets"]
    curve = np.vstack(
        [vf["separatrices_points"][off[i] : off[i + 1]] for i in np.flatnonzero(mine)]
    )
    # the true separatrix of the symmetric switch is the diagonal x = y; in the cells' range
    near = np.all((curve > 0.3) & (curve < 2.8), axis=1)
    assert near.sum() >= 10
    assert np.median(np.abs(curve[near, 0] - curve[near, 1])) <= 0.15
    # the unstable manifold runs from the saddle to both attractors
    unstable = np.flatnonzero(
        (vf["separatrices_kind"] == 1) & (vf["separatrices_saddle"] == saddle)
    )
    ends = np.vstack([vf["separatrices_points"][[off[i], off[i + 1] - 1]] for i in unstable])
    for p in SWITCH_ROOTS["stable"]:
        assert np.min(np.linalg.norm(ends - np.asarray(p), axis=1)) <= 0.3
    # the dict form equals the flat mirror
    for i, c in vf["separatrices"].items():
        np.testing.assert_array_equal(c, vf["separatrices_points"][off[int(i)] : off[int(i) + 1]])


def _wells_10d(P):
    """The rotating double well in the first two coordinates, decay in the other eight."""
    return np.column_stack([_rotating_wells(P[:, :2]), -P[:, 2:]])


def test_fixed_points_in_10d():
    rng = np.random.default_rng(7)
    n = 1500
    P = np.column_stack([_wells_cells(n, seed=8), rng.normal(0, 0.3, (n, 8))])
    a = _adata(P, _noisy(P, _wells_10d, seed=9), basis="pc")
    dyn.vf.VectorField(a, basis="pc")
    dyn.vf.topography(a, basis="pc", n=50)
    vf = a.uns["VecFld_pc"]
    assert vf["Xss"].shape[1] == 10 and "NCx" not in vf and "xlim" not in vf
    truth = WELLS
    span = np.max(P.max(0) - P.min(0))
    matched = np.zeros(len(vf["Xss"]), dtype=bool)
    code = {"stable": -1.0, "saddle": 0.0}
    for kind, points in truth.items():
        for p in points:
            want = np.concatenate([p, np.zeros(8)])
            d = np.linalg.norm(vf["Xss"] - want, axis=1)
            i = int(np.argmin(d))
            assert d[i] <= 0.05 * span and vf["ftype"][i] == code[kind], (kind, d[i])
            matched[i] = True
    # no other fixed point among the cells: all others are far from every cell
    gap = np.linalg.norm(P[vf["fp_ind"]] - vf["Xss"], axis=1)
    cell_gap = np.median(np.sort(kv.sq_distances(P[:300], P), axis=1)[:, 1] ** 0.5)
    assert np.all(gap[~matched] > 3 * cell_gap), gap[~matched]


# ------------------------------------------------------------------------------------------
# dynamo's reference field on pancreas


def _reference_inputs(reference):
    a = ad.AnnData(obs=pd.DataFrame(index=reference.obs_names))
    a.obsm["X_umap"] = reference.obsm["X_umap"]
    a.uns["VecFld_umap"] = dict(reference.uns["VecFld_umap"])
    return a


def test_reference_field_fixed_points(reference):
    a = _reference_inputs(reference)
    dyn.vf.topography(a, basis="umap")
    vf, ref = a.uns["VecFld_umap"], reference.uns["topography_umap"]
    speed = np.linalg.norm(reference.obsm["velocity_umap_SparseVFC"], axis=1)
    residual = np.linalg.norm(dyn.vf.vector_field_function(ref["Xss"], vf), axis=1)
    zero = residual <= 1e-6 * np.median(speed)
    # measured: 14 of dynamo's 16 points are zeros of its field; the 2 others (one "stable",
    # one "saddle") are end points of its solver where |f| is 0.099 and 0.094 (25% of the
    # median speed): dynamo keeps them without a convergence test
    assert zero.sum() == 14
    stable = zero & (ref["ftype"] == -1)
    assert stable.sum() == 4
    for x in ref["Xss"][stable]:
        d = np.linalg.norm(vf["Xss"] - x, axis=1)
        assert d.min() <= 1e-6 and vf["ftype"][np.argmin(d)] == -1
    # every fixed point found is a zero of the field
    got = np.linalg.norm(dyn.vf.vector_field_function(vf["Xss"], vf), axis=1)
    assert np.all(got <= 1e-6 * np.median(speed))
    # the box is dynamo's
    np.testing.assert_allclose(vf["xlim"], reference.uns["VecFld_umap"]["xlim"], rtol=1e-6)
    np.testing.assert_allclose(vf["ylim"], reference.uns["VecFld_umap"]["ylim"], rtol=1e-6)
    for key in ("X_ctrl", "C", "beta"):  # the fit is kept
        np.testing.assert_array_equal(vf[key], reference.uns["VecFld_umap"][key])


def test_confidence_is_dynamos(reference):
    """dynamo's confidence of its own fixed points, from the per-block nearest cells."""
    from dynadask.graph import topography as gt

    X = reference.obsm["X_umap"].astype(np.float64)
    Xss = reference.uns["topography_umap"]["Xss"]
    q = np.vstack([Xss, np.median(X, axis=0)])
    dist, _ = gt.nearest_cells(np.asarray(X), q, 50).compute()
    span = X.max(0) - X.min(0)
    conf = kt.confidence(dist.mean(axis=1), 0.1 * np.mean(span))[:-1]
    np.testing.assert_allclose(conf, reference.uns["topography_umap"]["confidence"], rtol=1e-5)


# ------------------------------------------------------------------------------------------
# store == memory, determinism, errors


def test_store_backed_equals_in_memory(tmp_path):
    P = _switch_cells(800, seed=11)
    a = _adata(P, _noisy(P, _switch, seed=12))
    dyn.vf.VectorField(a, basis="toy", MaxIter=15)
    a.write_h5ad(tmp_path / "toy.h5ad")
    dyn.io.convert(tmp_path / "toy.h5ad", tmp_path / "toy.zarr", chunk_cells=300)
    stored = dyn.io.open(tmp_path / "toy.zarr")
    dyn.vf.topography(a, basis="toy")
    dyn.vf.topography(stored, basis="toy")
    reopened = dyn.io.open(tmp_path / "toy.zarr")
    want = a.uns["VecFld_toy"]
    for b in (stored, reopened):
        got = b.uns["VecFld_toy"]
        for key in ("Xss", "ftype", "confidence", "fp_ind", "xlim", "ylim", "C"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-10)
        for name in ("NCx", "NCy", "separatrices"):
            np.testing.assert_allclose(got[f"{name}_points"], want[f"{name}_points"], rtol=1e-10)
            np.testing.assert_array_equal(got[f"{name}_offsets"], want[f"{name}_offsets"])
            assert sorted(got[name]) == sorted(want[name])
    # a second call replaces the results and is deterministic
    first = {k: np.copy(v) for k, v in want.items() if k in ("Xss", "NCx_points")}
    dyn.vf.topography(a, basis="toy")
    for k, v in first.items():
        np.testing.assert_array_equal(a.uns["VecFld_toy"][k], v)


def test_vecfld_x_dims_and_layer_arguments():
    P = _wells_cells(600, seed=13)
    a = _adata(np.column_stack([P, np.zeros(len(P))]), np.zeros((len(P), 3)))
    res = dyn.vf.SparseVFC(P, _noisy(P, _rotating_wells, seed=14), M=60, MaxIter=20)
    dyn.vf.topography(a, basis="toy", layer="X", dims=[0, 1], VecFld=res, nullclines=False)
    vf = a.uns["VecFld"]
    assert "NCx" in vf and len(vf["NCx"]) == 0 and vf["NCx_offsets"].tolist() == [0]
    assert vf["topography_parameters"]["dims"].tolist() == [0, 1]
    assert np.sum(vf["ftype"] == -1) >= 2
    dyn.vf.topography(a, basis=None, layer="spliced", X=P, VecFld=res, separatrices=False)
    assert len(a.uns["VecFld_spliced"]["separatrices"]) == 0


def test_clear_errors():
    P = _wells_cells(300, seed=15)
    a = _adata(P, _rotating_wells(P))
    with pytest.raises(ValueError, match=r"VectorField\(adata, basis='toy'\)"):
        dyn.vf.topography(a, basis="toy")
    res = dyn.vf.SparseVFC(P, _rotating_wells(P), M=30, MaxIter=5)
    with pytest.raises(ValueError, match="dims="):
        dyn.vf.topography(a, basis="toy", X=np.column_stack([P, P]), VecFld=res)
    with pytest.raises(ValueError, match="obsm"):
        dyn.vf.topography(a, basis="tsne", VecFld=res)
    with pytest.raises(ValueError, match="SparseVFC fit"):
        dyn.vf.topography(a, basis="toy", VecFld={"C": res["C"]})
    with pytest.raises(ValueError, match="at least 1"):
        dyn.vf.topography(a, basis="toy", VecFld=res, n=0)


# ------------------------------------------------------------------------------------------
# kernels


def test_point_jacobian_and_roots_against_finite_differences():
    rng = np.random.default_rng(16)
    ctrl, C, beta = rng.normal(size=(30, 3)) + 4.0, rng.normal(size=(30, 3)), 0.5
    x = ctrl[3] + 0.1
    f, J = kt.point_value_jacobian(x, ctrl, C, beta)
    np.testing.assert_allclose(f, kv.evaluate(x[None], ctrl, C, beta)[0], rtol=1e-12)
    h = 1e-6
    fd = np.column_stack(
        [
            (
                kv.evaluate((x + h * e)[None], ctrl, C, beta)
                - kv.evaluate((x - h * e)[None], ctrl, C, beta)
            )[0]
            / (2 * h)
            for e in np.eye(3)
        ]
    )
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-9)
    # a linear field's only root, from anywhere in the box
    A = np.array([[-1.0, 2.0], [-0.5, -1.0]])
    grid = np.stack(np.meshgrid(np.linspace(-2, 2, 12), np.linspace(-2, 2, 12)), -1).reshape(-1, 2)
    res = dyn.vf.SparseVFC(grid, grid @ A.T, M=144, MaxIter=30, lambda_=1e-3)
    X, ok = kt.solve_roots(
        np.array([[0.5, -0.4], [-1.0, 1.0]]), res["X_ctrl"], res["C"], res["beta"], -2, 2, 1e-8
    )
    assert ok.all()
    np.testing.assert_allclose(X, 0.0, atol=2e-2)
    _, Jr = kt.value_and_jacobian(X[:1], res["X_ctrl"], res["C"], res["beta"])
    assert kt.fixed_point_types(Jr)[0] == -1


def test_curve_helpers():
    lh = kt.latin_hypercube(10, 3, 1)
    for j in range(3):  # one point per stratum of every axis
        np.testing.assert_array_equal(np.sort(np.floor(lh[:, j] * 10)), np.arange(10))
    a = np.array([[0.0, 0.0], [2.0, 2.0]])
    b = np.array([[0.0, 2.0], [2.0, 0.0], [2.0, 1.0]])
    np.testing.assert_allclose(kt.intersections(a, b), [[1.0, 1.0]])
    c = np.column_stack([np.linspace(-2, 2, 41), np.zeros(41)])
    c[20, 1] = 5.0  # a jump
    pieces = kt.clip_curves([c], np.array([-1.0, -1.0]), np.array([1.0, 1.0]), max_jump=1.0)
    assert [p.shape[0] for p in pieces] == [10, 10]
    assert kt.distinct(np.array([[0.0, 0], [1e-6, 0], [1, 0]]), 1e-4).tolist() == [0, 2]
    J = np.array([np.diag([-1.0, -2]), np.diag([1.0, -2]), np.diag([1.0, 0.5])])
    assert kt.fixed_point_types(J).tolist() == [-1.0, 0.0, 1.0]


def test_on_two_worker_processes(local_client):
    P = _cycle_cells(600, seed=17)
    a = _adata(P, _noisy(P, _cycle, seed=18))
    res = dyn.vf.SparseVFC(P, a.obsm["velocity_toy"], M=60, MaxIter=20)
    dyn.vf.topography(a, basis="toy", VecFld=res)  # seeds, curves and cells on the workers
    vf = a.uns["VecFld_toy"]
    _check(vf, P, {"unstable": [(0.0, 0.0)]}, tol=0.05 * np.max(P.max(0) - P.min(0)))
    assert len(vf["NCx"]) > 0 and vf["confidence"].shape == (len(vf["Xss"]),)
