"""The whole-trajectory (dynamical) estimator: the kernel vs a slow version, known answers."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import dynadask as dyn
from dynadask.est.csc import Dynamical, SteadyState
from dynadask.kernels import dynamical as kd


def _curve(alpha, gamma, t_switch, t):
    """Closed-form means of the on/off splicing ODE (beta = 1), by phase."""

    def on(t):
        return alpha * (1 - np.exp(-t)), alpha / gamma * (1 - np.exp(-gamma * t)) - alpha * (
            np.exp(-t) - np.exp(-gamma * t)
        ) / (gamma - 1)

    us, ss = on(t_switch)
    tau = t - t_switch
    uf = us * np.exp(-tau)
    sf = ss * np.exp(-gamma * tau) + us * (np.exp(-tau) - np.exp(-gamma * tau)) / (gamma - 1)
    uo, so = on(t)
    return np.where(t <= t_switch, uo, uf), np.where(t <= t_switch, so, sf)


def _cells(n=1500, g=24, span=2.0, pool=30, seed=0):
    """Cells along each gene's induction (and repression when span > 1), Poisson counts
    averaged over ``pool`` draws (as kNN smoothing pools neighbours)."""
    rng = np.random.default_rng(seed)
    alpha, gamma = rng.uniform(5, 30, g), rng.uniform(0.1, 1.5, g)
    t_switch = rng.uniform(1, 6, g)
    t = rng.uniform(0, 1, (n, 1)) * t_switch * span
    mu, ms = _curve(alpha, gamma, t_switch, t)
    u = rng.poisson(mu * pool) / pool
    s = rng.poisson(ms * pool) / pool
    return u, s, {"alpha": alpha, "gamma": gamma, "t_switch": t_switch, "u": mu, "s": ms}


def test_shape_follows_the_closed_form():
    gamma, ts = 0.4, 3.0
    cu, cs = kd.shape(gamma, ts, 50)
    t_on = ts * np.arange(50) / 49
    u, s = _curve(1.0, gamma, ts, t_on)
    np.testing.assert_allclose(cu[:50], u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cs[:50], s, rtol=1e-12, atol=1e-12)
    tau = 8.0 / gamma * (np.arange(50) / 49) ** 2
    u, s = _curve(1.0, gamma, ts, ts + tau)
    np.testing.assert_allclose(cu[50:], u, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cs[50:], s, rtol=1e-10, atol=1e-12)
    # gamma = 1 is continuous
    a, b = kd.shape(1.0, ts, 20), kd.shape(1.0 + 1e-5, ts, 20)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4)


def _segments_slow(x, pts, w, n_grid):
    """One cell ``x`` against every segment of the curve ``pts``: weighted squared distance
    and position on it (inf and 0 at the gap between the phases)."""
    dist, pos = np.full(2 * n_grid - 1, np.inf), np.zeros(2 * n_grid - 1)
    for j in range(2 * n_grid - 1):
        if j == n_grid - 1:
            continue
        a, d = pts[j], pts[j + 1] - pts[j]
        pos[j] = np.clip(np.sum(w * (x - a) * d) / max(np.sum(w * d * d), 1e-300), 0, 1)
        r = x - a - pos[j] * d
        dist[j] = np.sum(w * r * r)
    return dist, pos


def _distance_slow(u, s, wu, ws, gamma, ts, alpha, n_grid):
    cu, cs = kd.shape(gamma, ts, n_grid)
    pts, w = alpha * np.c_[cu, cs], np.array([wu, ws])
    return sum(_segments_slow(x, pts, w, n_grid)[0].min() for x in np.c_[u, s])


def test_distance_matches_a_slow_projection():
    rng = np.random.default_rng(1)
    u, s = rng.uniform(0, 10, 40), rng.uniform(0, 30, 40)
    sse, _ = kd.distance(u, s, 0.3, 0.05, 0.5, 2.0, 9.0, 15, 1)
    assert sse == pytest.approx(_distance_slow(u, s, 0.3, 0.05, 0.5, 2.0, 9.0, 15), rel=1e-9)


def test_nearest_segments_match_a_slow_projection():
    """Per cell: the nearest segment (never the gap between the phases), its position, the
    distance; a segment of no length projects on its start."""
    rng = np.random.default_rng(3)
    u, s = rng.uniform(0, 10, 60), rng.uniform(0, 30, 60)
    n_grid, alpha, wu, ws = 15, 9.0, 0.3, 0.05
    cu, cs = kd.shape(0.5, 2.0, n_grid)
    cu[4], cs[4] = cu[3], cs[3]  # segment 3 has no length
    cs[n_grid:] += 2.0  # the phases apart: the gap between them would be the nearest for some
    d, at, lam = kd.nearest_segments(u, s, kd.segments(cu, cs, alpha, wu, ws), wu, ws)
    pts, w = alpha * np.c_[cu, cs], np.array([wu, ws])
    for i, x in enumerate(np.c_[u, s]):
        dist, pos = _segments_slow(x, pts, w, n_grid)
        # a cell nearest to a grid point is as near to both segments that meet there
        assert dist[at[i]] == pytest.approx(dist.min(), rel=1e-12)
        assert lam[i] == pytest.approx(pos[at[i]], abs=1e-12)
        assert d[i] == pytest.approx(dist.min(), rel=1e-12)
    assert (at != n_grid - 1).all() and len(set(at)) > 5


def test_noise_free_trajectories_recover_the_rates():
    _, _, truth = _cells(n=800, g=12, span=2.0, seed=2)
    # n_grid passed as Dynamical passes it: the machine code compiled for dyn.tl.dynamics is
    # reused (left out, the literal default compiles the whole call tree again)
    gamma0 = kd.start_gamma(truth["u"], truth["s"])
    out = kd.fit_genes(truth["u"], truth["s"], gamma0, n_grid=Dynamical().n_grid)
    assert np.median(np.abs(out[1] / truth["gamma"] - 1)) < 0.02
    assert np.median(np.abs(out[0] / truth["alpha"] - 1)) < 0.02
    assert np.median(np.abs(out[2] / truth["t_switch"] - 1)) < 0.05
    assert np.all(out[3] > 0.99)


def test_whole_trajectory_beats_the_steady_state_fit():
    """Cells through induction and repression: the extreme cells are off steady state."""
    u, s, truth = _cells()
    dyn_fit = Dynamical(n_fit_cells=1000).fit(u, s).params
    ss_fit = SteadyState("deterministic", "ols").fit(u, s).params
    err_dyn = np.median(np.abs(dyn_fit["gamma"][0] / truth["gamma"] - 1))
    err_ss = np.median(np.abs(ss_fit["gamma"][0] / truth["gamma"] - 1))
    assert err_dyn < 0.05 and err_ss > 0.15  # measured: 0.02 vs 0.27
    assert spearmanr(dyn_fit["gamma"][0], truth["gamma"])[0] > 0.97


def test_strata_and_degenerate_genes():
    u, s, truth = _cells(n=1200, g=6)
    u[:, 0] = 0.0  # no unspliced spread: no fit
    codes = np.arange(u.shape[0]) % 2
    p = Dynamical(n_fit_cells=600).fit(u, s, codes=codes).params
    assert p["gamma"].shape == (2, 6)
    assert np.all(np.isnan(p["gamma"][:, 0]))
    np.testing.assert_allclose(p["gamma"][0, 1:], p["gamma"][1, 1:], rtol=0.15)


def test_dynamics_model_dynamical_in_memory_and_store(tmp_path):
    u, s, truth = _cells(n=1500, g=10, seed=3)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(u.shape[0])])
    var = pd.DataFrame(index=[f"g{j}" for j in range(u.shape[1])])
    a = ad.AnnData(
        obs=obs, var=var, layers={"M_u": u.astype(np.float32), "M_s": s.astype(np.float32)}
    )
    a.write_h5ad(tmp_path / "d.h5ad")
    dyn.tl.dynamics(a, model="dynamical", experiment_type="conventional")
    assert a.uns["dynamics"]["model"] == "dynamical"
    assert a.uns["dynamics"]["est_method"] == "em"
    assert np.median(np.abs(a.var["gamma"] / truth["gamma"] - 1)) < 0.05
    assert {"alpha", "t_switch", "gamma_r2"} <= set(a.var)
    want = a.layers["M_u"] - a.var["gamma"].to_numpy() * a.layers["M_s"]
    np.testing.assert_allclose(a.layers["velocity_S"], want, rtol=1e-5, atol=1e-4)
    # velocity agrees in rank with the true derivative du/dt... of s: ds/dt = u - gamma s
    true_v = truth["u"] - truth["gamma"] * truth["s"]
    rho = [spearmanr(a.layers["velocity_S"][:, j], true_v[:, j])[0] for j in range(10)]
    assert np.median(rho) > 0.9
    dyn.io.convert(tmp_path / "d.h5ad", tmp_path / "d.zarr", chunk_cells=400)
    b = dyn.io.open(tmp_path / "d.zarr")
    dyn.tl.dynamics(b, model="dynamical", experiment_type="conventional")
    np.testing.assert_allclose(b.var["gamma"], a.var["gamma"], rtol=1e-6)
