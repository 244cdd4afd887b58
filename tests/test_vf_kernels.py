"""The vector-field kernels against slow, obvious loops and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from dynadask._core.compute import compute_count
from dynadask.graph import vectorfield as gv
from dynadask.kernels import vectorfield as kv


def _field(d, m=40, seed=0):
    rng = np.random.default_rng(seed)
    ctrl = rng.normal(size=(m, d)) + 5.0  # away from the origin: centring must not matter
    C = rng.normal(size=(m, d))
    return ctrl, C, 0.4


def _f(x, ctrl, C, beta):
    out = np.zeros(ctrl.shape[1])
    for m in range(ctrl.shape[0]):
        out += C[m] * np.exp(-beta * np.sum((x - ctrl[m]) ** 2))
    return out


def _fd_jacobian(x, ctrl, C, beta, h=1e-6):
    d = x.size
    J = np.zeros((d, d))
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        J[:, j] = (_f(x + e, ctrl, C, beta) - _f(x - e, ctrl, C, beta)) / (2 * h)
    return J


def test_gauss_kernel_is_the_loop():
    ctrl, _, beta = _field(3)
    x = np.random.default_rng(1).normal(size=(25, 3)) + 5.0
    slow = np.array([[np.exp(-beta * np.sum((a - c) ** 2)) for c in ctrl] for a in x])
    np.testing.assert_allclose(kv.gauss_kernel(x, ctrl, beta), slow, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(kv.evaluate(x, ctrl, np.eye(40)[:, :3], beta, rows=7), slow[:, :3])


@pytest.mark.parametrize("d", [2, 3, 5])
def test_jacobian_matches_finite_differences(d):
    ctrl, C, beta = _field(d)
    x = np.random.default_rng(2).normal(size=(6, d)) + 5.0
    J = kv.jacobian(x, ctrl, C, beta)
    for n in range(len(x)):
        np.testing.assert_allclose(J[n], _fd_jacobian(x[n], ctrl, C, beta), atol=1e-6)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_quantities_from_the_jacobian(d):
    ctrl, C, beta = _field(d)
    x = np.random.default_rng(3).normal(size=(8, d)) + 5.0
    names = list(kv.QUANTITIES)
    q = kv.field_quantities(x, ctrl, C, beta, names)
    for n in range(len(x)):
        J = _fd_jacobian(x[n], ctrl, C, beta)
        v = _f(x[n], ctrl, C, beta)
        a = J @ v
        np.testing.assert_allclose(q["velocity"][n], v, rtol=1e-10)
        np.testing.assert_allclose(q["speed"][n], np.linalg.norm(v), rtol=1e-10)
        np.testing.assert_allclose(q["divergence"][n], np.trace(J), atol=1e-6)
        np.testing.assert_allclose(q["acceleration"][n], a, atol=1e-6)
        kappa = (a * (v @ v) - v * (v @ a)) / (v @ v) ** 2
        np.testing.assert_allclose(q["curvature"][n], kappa, rtol=1e-4, atol=1e-6)
        rot = np.linalg.norm(J - J.T) / np.sqrt(2)
        np.testing.assert_allclose(q["rotation"][n], rot, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(q["jacobian_det"][n], np.linalg.det(J), rtol=1e-4, atol=1e-8)
        if d == 2:
            np.testing.assert_allclose(q["curl"][n], J[1, 0] - J[0, 1], atol=1e-6)
        elif d == 3:
            curl = [J[2, 1] - J[1, 2], J[0, 2] - J[2, 0], J[1, 0] - J[0, 1]]
            np.testing.assert_allclose(q["curl"][n], curl, atol=1e-6)
        else:
            np.testing.assert_allclose(q["curl"][n], rot, rtol=1e-5, atol=1e-6)


def test_curvature_formula_1_is_the_outer_product_norm():
    ctrl, C, beta = _field(3)
    x = np.random.default_rng(4).normal(size=(5, 3)) + 5.0
    q = kv.field_quantities(x, ctrl, C, beta, ["velocity", "acceleration", "curvature"], 1)
    for n in range(5):
        v, a = q["velocity"][n], q["acceleration"][n]
        want = np.linalg.norm(np.outer(v, a)) / np.linalg.norm(v) ** 3
        np.testing.assert_allclose(q["curvature"][n], want, rtol=1e-10)


def test_em_block_sums_are_the_explicit_products():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    ctrl, C = x[:10], rng.normal(size=(10, 2)) * 0.1
    s = kv.em_block(
        x, y, ctrl=ctrl, beta=0.5, C=C, sigma2=0.3, gamma=0.8, a=5, minP=1e-5, theta=0.75
    )
    U = kv.gauss_kernel(x, ctrl, 0.5)
    r = np.sum((y - U @ C) ** 2, axis=1)
    t1 = np.exp(-r / 0.6)
    t2 = (2 * np.pi * 0.3) ** 1 * 0.2 / (0.8 * 5)
    P = t1 / (t1 + t2)
    Pc = np.maximum(P, 1e-5)
    np.testing.assert_allclose(s["G"], U.T @ np.diag(Pc) @ U, rtol=1e-12)
    np.testing.assert_allclose(s["R"], U.T @ np.diag(Pc) @ y, rtol=1e-12)
    np.testing.assert_allclose(s["Pr"], P @ r)
    assert s["inliers"] == np.sum(Pc > 0.75)
    C2 = rng.normal(size=(10, 2))
    direct = Pc @ np.sum((y - U @ C2) ** 2, axis=1)
    fast = kv.weighted_residual(s["Pc"], s["Pcyy"], s["R"], s["G"], C2)
    np.testing.assert_allclose(fast, direct, rtol=1e-10)


def test_posterior_never_underflows():
    P = kv.posterior(np.array([0.0, 1.0, 1e6]), sigma2=1e-3, gamma=0.9, a=5, D=30)
    assert P[0] > 0.99 and P[2] == 0.0 and np.all(np.isfinite(P))


def test_solvers_agree_on_a_well_posed_system():
    rng = np.random.default_rng(6)
    A = rng.normal(size=(20, 20))
    A = A @ A.T + 20 * np.eye(20)
    B = rng.normal(size=(20, 3))
    ref = np.linalg.solve(A, B)
    for method in ("cholesky", "lstsq", "drouin"):
        np.testing.assert_allclose(kv.solve_coefficients(A, B, method), ref, rtol=1e-8)
    with pytest.raises(ValueError, match="lstsq_method"):
        kv.solve_coefficients(A, B, "qr")


def test_signed_angle_is_dynamos_per_cell_rule():
    rng = np.random.default_rng(7)
    u, v = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    u[0] = 0
    got = kv.signed_angle(u, v)
    assert np.isnan(got[0])
    for n in range(1, 30):
        a, b = u[n] / np.linalg.norm(u[n]), v[n] / np.linalg.norm(v[n])
        minor = np.linalg.det(np.stack([a[-2:], b[-2:]]))
        sign = 1 if minor == 0 else -np.sign(minor)
        np.testing.assert_allclose(got[n], sign * np.arccos(np.clip(a @ b, -1, 1)))


def test_control_points_are_distinct_rows_of_x():
    rng = np.random.default_rng(8)
    X = np.repeat(rng.normal(size=(60, 2)), 2, axis=0)
    Y = rng.normal(size=X.shape)
    ctrl, idx, rows = kv.control_points(X, Y, 20, seed=3)
    assert len(np.unique(ctrl, axis=0)) == 20
    np.testing.assert_array_equal(X[rows], ctrl)
    np.testing.assert_array_equal(np.unique(X, axis=0)[idx], ctrl)
    with pytest.raises(ValueError, match="non-zero velocity"):
        kv.control_points(X, np.zeros_like(Y), 20)


def test_grid_is_dynamos_layout():
    X = np.array([[0.0, 10.0], [1.0, 20.0]])
    g = kv.grid(X, 5)
    assert g.shape == (25, 2)
    assert g[1, 0] > g[0, 0] and g[1, 1] == g[0, 1]  # first axis varies fastest
    np.testing.assert_allclose(g[0], [-0.01, 9.9])


def test_chunked_em_equals_one_block(monkeypatch):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(900, 2))
    Y = np.column_stack([-X[:, 1], X[:, 0]]) + rng.normal(0, 0.05, size=X.shape)
    ctrl = X[:30]
    one = gv.fit_em(X, Y, ctrl, 1.0, MaxIter=8)
    monkeypatch.setattr(gv, "BLOCK_BYTES", 30 * 8 * 100)  # 256-row blocks
    assert gv.block_rows(30) == 256
    before = compute_count()
    many = gv.fit_em(X, Y, ctrl, 1.0, MaxIter=8)
    # one pass over the blocks per EM iteration, plus one for the initial sigma2
    assert compute_count() - before == many["iteration"] + 2
    # the M x M system is ill-conditioned: compare the fields, not the coefficients
    f_one, f_many = (kv.evaluate(X, ctrl, r["C"], 1.0) for r in (one, many))
    np.testing.assert_allclose(f_many, f_one, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(many["E_traj"], one["E_traj"], rtol=1e-8)
    assert many["iteration"] == one["iteration"]
