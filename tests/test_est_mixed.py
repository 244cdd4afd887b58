"""The mixed steady-state / stimulation labelling design (``mix_std_stm``): known answers."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.est.tsc import Labelling
from dynadask.est.tsc.labelling import stimulation_key

TIMES = (0.0, 1.0, 2.0, 4.0)  # stimulation durations; every cell is labelled for max = 4


def _phase(alpha, beta, gamma, u0, s0, tau):
    """Means of the splicing chain after ``tau`` at constant ``alpha`` from ``(u0, s0)``."""
    du = u0 - alpha / beta
    u = alpha / beta + du * np.exp(-beta * tau)
    s = (
        alpha / gamma
        + (s0 - alpha / gamma) * np.exp(-gamma * tau)
        + beta * du * (np.exp(-beta * tau) - np.exp(-gamma * tau)) / (gamma - beta)
    )
    return u, s


def _mixed(n=4000, g=10, seed=5):
    """Cells at steady state (alpha_std), labelled for T; the last t of it stimulated."""
    rng = np.random.default_rng(seed)
    a0, a1 = rng.uniform(4, 20, g), rng.uniform(4, 40, g)
    beta, gamma = rng.uniform(0.8, 2, g), rng.uniform(0.1, 0.6, g)
    t = rng.choice(TIMES, n)[:, None]
    big_t = max(TIMES)
    # labelled RNA: from 0 for T - t at alpha_std, then t at alpha_stm
    ul, sl = _phase(a0, beta, gamma, 0.0, 0.0, big_t - t)
    ul, sl = _phase(a1, beta, gamma, ul, sl, t)
    # unlabelled RNA: the steady state decaying for T without synthesis
    uu, su = _phase(0.0, beta, gamma, a0 / beta, a0 / gamma, np.full_like(t, big_t))
    means = {"uu": uu, "ul": ul, "su": su, "sl": sl}
    layers = {k: sparse.csr_matrix(rng.poisson(v).astype(float)) for k, v in means.items()}
    truth = {
        "alpha_std": a0,
        "alpha_stm": a1,
        "beta": beta,
        "gamma": gamma,
        "means": means,
        "t": t.ravel(),
    }
    return layers, truth


def test_mixed_splicing_recovers_rates():
    layers, truth = _mixed()
    p = Labelling("mix_std_stm").fit(layers, truth["t"]).params
    for name in ("beta", "gamma", "alpha_std"):
        err = np.abs(p[name][0] / truth[name] - 1)
        assert np.median(err) < 0.05, name
    for tau in TIMES[1:]:
        err = np.abs(p[stimulation_key(tau)][0] / truth["alpha_stm"] - 1)
        assert np.median(err) < 0.1, tau
    np.testing.assert_allclose(p[stimulation_key(0.0)], p["alpha_std"])


def test_mixed_new_total_recovers_gamma_and_alpha():
    layers, truth = _mixed(seed=6)
    new = layers["ul"] + layers["sl"]
    total = new + layers["uu"] + layers["su"]
    # without splicing labels, treat new/total as one species with the spliced decay rate:
    # build it directly so the model holds exactly
    rng = np.random.default_rng(1)
    a0, a1, gamma, t = truth["alpha_std"], truth["alpha_stm"], truth["gamma"], truth["t"][:, None]
    big_t = max(TIMES)
    n_mean = a0 / gamma * -np.expm1(-gamma * (big_t - t)) * np.exp(
        -gamma * t
    ) + a1 / gamma * -np.expm1(-gamma * t)
    old = a0 / gamma * np.exp(-gamma * big_t) * np.ones_like(t)
    new = sparse.csr_matrix(rng.poisson(n_mean).astype(float))
    total = new + sparse.csr_matrix(rng.poisson(old).astype(float))
    est = Labelling("mix_std_stm").fit({"new": new, "total": total}, truth["t"])
    p = est.params
    assert np.median(np.abs(p["gamma"][0] / gamma - 1)) < 0.05
    assert np.median(np.abs(p["alpha_std"][0] / a0 - 1)) < 0.05
    assert np.median(np.abs(p[stimulation_key(4.0)][0] / a1 - 1)) < 0.1
    assert np.all(p["gamma_r2"][0] <= 1)
    # velocity_N = alpha_stm(t) - gamma new, per cell with its own stimulation time
    vel = est.velocities({"new": new, "total": total}, truth["t"])
    got = np.asarray(vel["velocity_N"].compute())
    stm = np.stack([p[stimulation_key(tau)][0] for tau in TIMES])
    code = np.searchsorted(TIMES, truth["t"])
    want = stm[code] - p["gamma"][0] * new.toarray()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_mixed_velocity_is_the_ode_derivative():
    layers, truth = _mixed()
    # the noise-free means: velocities equal the true derivatives at harvest
    means = {k: sparse.csr_matrix(np.asarray(v, dtype=float)) for k, v in truth["means"].items()}
    est = Labelling("mix_std_stm").fit(means, truth["t"])
    vel = {k: np.asarray(v.compute()) for k, v in est.velocities(means, truth["t"]).items()}
    u = truth["means"]["uu"] + truth["means"]["ul"]
    s = truth["means"]["su"] + truth["means"]["sl"]
    # after stimulation began every cell transcribes at alpha_stm (t = 0: alpha_std)
    alpha = np.where(truth["t"][:, None] > 0, truth["alpha_stm"], truth["alpha_std"])
    np.testing.assert_allclose(vel["velocity_U"], alpha - truth["beta"] * u, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(
        vel["velocity_S"], truth["beta"] * u - truth["gamma"] * s, rtol=1e-3, atol=1e-3
    )


def test_mixed_through_dynamics_on_a_store(tmp_path):
    layers, truth = _mixed(n=2000, g=8)
    obs = pd.DataFrame({"time": truth["t"]}, index=[f"c{i}" for i in range(truth["t"].size)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(8)])
    a = ad.AnnData(obs=obs, var=var, layers={f"X_{k}": v for k, v in layers.items()})
    dyn.tl.dynamics(a, use_smoothed=False, tkey="time", experiment_type="mix_std_stm")
    assert a.uns["dynamics"]["experiment_type"] == "mix_std_stm"
    assert np.median(np.abs(a.var["gamma"] / truth["gamma"] - 1)) < 0.05
    assert {"alpha_std", stimulation_key(4.0)} <= set(a.var)
    assert {"velocity_U", "velocity_S"} <= set(a.layers)
    path = tmp_path / "mixed.h5ad"
    a0 = ad.AnnData(obs=obs, var=var, layers={f"X_{k}": v for k, v in layers.items()})
    a0.write_h5ad(path)
    dyn.io.convert(path, tmp_path / "mixed.zarr", chunk_cells=700)
    b = dyn.io.open(tmp_path / "mixed.zarr")
    dyn.tl.dynamics(b, use_smoothed=False, tkey="time", experiment_type="mix_std_stm")
    np.testing.assert_allclose(b.var["gamma"], a.var["gamma"], rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(b.layers["velocity_S"]), a.layers["velocity_S"], rtol=1e-5, atol=1e-5
    )


def test_mixed_needs_two_times_and_is_never_detected():
    layers, truth = _mixed(n=300, g=3)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        Labelling("mix_std_stm").fit(layers, np.ones(300))
    with pytest.raises(ValueError, match=">= 0"):
        Labelling("mix_std_stm").fit(layers, truth["t"] - 1)
