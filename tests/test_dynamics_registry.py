"""Every ``tl.dynamics`` registry entry, run once through ``dyn.tl.dynamics`` on small data
with known rates (simulated with ``dyn.sim`` or from the closed-form means)."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pytest
from scipy import sparse
from scipy.stats import spearmanr
from test_dynamics import _labelled  # the same small labelling simulation

import dynadask as dyn
from dynadask.tl._dynamics_methods import REGISTRY


def _dense(x) -> np.ndarray:
    return x.toarray().astype(np.float64) if sparse.issparse(x) else np.asarray(x, np.float64)


def _conventional(model: str, method: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim = dyn.sim.simulate("independent", 800, n_genes=20, seed=2, method="ode")
    s, u = _dense(sim.layers["spliced"]), _dense(sim.layers["unspliced"])
    a = ad.AnnData(obs=sim.obs[[]].copy(), var=sim.var.copy())
    a.layers.update(M_s=s, M_u=u, M_ss=s * s, M_us=u * s, M_uu=u * u)
    dyn.tl.dynamics(a, model=model, est_method=method, experiment_type="conventional")
    g = a.var["gamma"].to_numpy()
    ok = np.isfinite(g)
    truth = (a.var["true_gamma"] / a.var["true_beta"]).to_numpy()
    assert ok.sum() >= 15
    assert spearmanr(g[ok], truth[ok])[0] > 0.7
    want = u[:, ok] - g[ok] * s[:, ok]  # velocity_S = beta M_u - gamma M_s, beta = 1
    np.testing.assert_allclose(a.layers["velocity_S"][:, ok], want, rtol=1e-4, atol=1e-4)
    return a


def _closed_form_trajectories(n=800, g=6, seed=3):
    """Induction then repression (beta = 1), smoothed-like counts: the dynamical model."""
    rng = np.random.default_rng(seed)
    alpha, gamma = rng.uniform(5, 30, g), rng.uniform(0.1, 1.5, g)
    t_switch = rng.uniform(1, 6, g)
    t = rng.uniform(0, 1, (n, 1)) * t_switch * 2.0

    def on(t):
        u = alpha * (1 - np.exp(-t))
        s = alpha / gamma * (1 - np.exp(-gamma * t)) - alpha * (np.exp(-t) - np.exp(-gamma * t)) / (
            gamma - 1
        )
        return u, s

    us, ss = on(t_switch)
    tau = t - t_switch
    uf = us * np.exp(-tau)
    sf = ss * np.exp(-gamma * tau) + us * (np.exp(-tau) - np.exp(-gamma * tau)) / (gamma - 1)
    uo, so = on(t)
    mu, ms = np.where(t <= t_switch, uo, uf), np.where(t <= t_switch, so, sf)
    u, s = rng.poisson(mu * 30) / 30, rng.poisson(ms * 30) / 30
    return u, s, gamma


def _mixed(n=2000, g=8, seed=5):
    """mix_std_stm: steady state at alpha_std, labelled for T = 4, the last t stimulated."""
    rng = np.random.default_rng(seed)
    times = (0.0, 1.0, 2.0, 4.0)
    a0, a1 = rng.uniform(4, 20, g), rng.uniform(4, 40, g)
    beta, gamma = rng.uniform(0.8, 2, g), rng.uniform(0.1, 0.6, g)
    t = rng.choice(times, n)[:, None]

    def phase(alpha, u0, s0, tau):
        du = u0 - alpha / beta
        u = alpha / beta + du * np.exp(-beta * tau)
        s = (
            alpha / gamma
            + (s0 - alpha / gamma) * np.exp(-gamma * tau)
            + beta * du * (np.exp(-beta * tau) - np.exp(-gamma * tau)) / (gamma - beta)
        )
        return u, s

    ul, sl = phase(a0, 0.0, 0.0, 4.0 - t)
    ul, sl = phase(a1, ul, sl, t)
    uu, su = phase(0.0, a0 / beta, a0 / gamma, np.full_like(t, 4.0))
    a = ad.AnnData(np.zeros((n, g), dtype=np.float32))
    for k, m in {"uu": uu, "ul": ul, "su": su, "sl": sl}.items():
        a.layers[f"X_{k}"] = sparse.csr_matrix(rng.poisson(m).astype(np.float32))
    a.obs["time"] = t.ravel()
    return a, beta, gamma


def _labelling(exp: str, method: str, family: str, n: int = 1500):
    sim = _labelled(exp, n)
    names = ("new", "total") if family == "new/total" else ("uu", "ul", "su", "sl")
    a = ad.AnnData(obs=sim.obs[["time"]].copy(), var=sim.var.copy())
    model = "stochastic" if method == "gmm" else "deterministic"
    if method == "gmm":  # reads second moments: one cell's own products stand in for them
        n_, t_ = _dense(sim.layers["new"]), _dense(sim.layers["total"])
        a.layers.update(M_n=n_, M_t=t_, M_nn=n_ * n_, M_tn=t_ * n_, M_tt=t_ * t_)
        dyn.tl.dynamics(a, model=model, est_method=method, experiment_type=exp, tkey="time")
    else:
        for k in names:
            a.layers[f"X_{k}"] = sim.layers[k]
        dyn.tl.dynamics(
            a,
            model=model,
            est_method=method,
            experiment_type=exp,
            tkey="time",
            use_smoothed=False,
        )
    assert a.uns["dynamics"]["experiment_type"] == exp
    assert a.uns["dynamics"]["est_method"] == method
    return a


def _relative_error(est, truth) -> float:
    return float(np.median(np.abs(np.asarray(est) / np.asarray(truth) - 1)))


# each labelling entry: the layer family it runs on, the largest median relative error of
# gamma, and the velocity layers it writes (new/total gamma is the decay of total RNA, which
# is the spliced gamma only at steady state; deg has no velocity without splicing layers)
SPLICED = ("uu/ul/su/sl", {"velocity_S", "velocity_U"})
LABELLING = {
    ("one-shot", "deterministic", "ols"): (*SPLICED, 0.2),
    ("one-shot", "stochastic", "gmm"): ("new/total", {"velocity_N", "velocity_T"}, 0.2),
    ("kin", "deterministic", "direct"): (*SPLICED, 0.2),
    ("kin", "deterministic", "twostep"): (*SPLICED, 0.2),
    ("deg", "deterministic", "direct"): ("new/total", set(), 0.2),
}
CONVENTIONAL = [
    ("conventional", "stochastic", "gmm"),
    ("conventional", "stochastic", "negbin"),
    ("conventional", "deterministic", "ols"),
]
OTHERS = [
    ("conventional", "dynamical", "em"),
    ("conventional", "dynamical", "curve"),  # tests/test_est_dynamical_em.py
    ("mix_std_stm", "deterministic", "direct"),
]


def test_every_registry_entry_has_a_case():
    assert sorted(REGISTRY) == sorted([*LABELLING, *CONVENTIONAL, *OTHERS])


@pytest.mark.parametrize("entry", CONVENTIONAL, ids="/".join)
def test_conventional_steady_state_entries(entry):
    a = _conventional(entry[1], entry[2])
    assert a.uns["dynamics"]["model"] == entry[1]
    if entry[2] == "negbin":
        assert {"bs", "bf"} <= set(a.var)


def test_conventional_dynamical_em():
    u, s, gamma = _closed_form_trajectories()
    a = ad.AnnData(np.zeros(u.shape, dtype=np.float32))
    a.layers.update(M_u=u.astype(np.float32), M_s=s.astype(np.float32))
    dyn.tl.dynamics(a, model="dynamical", experiment_type="conventional")
    assert a.uns["dynamics"]["est_method"] == "em"
    assert _relative_error(a.var["gamma"], gamma) < 0.1
    assert np.isfinite(a.var["t_switch"]).all() and (a.var["alpha"] > 0).all()


@pytest.mark.parametrize("entry", list(LABELLING), ids="/".join)
def test_labelling_entries_recover_gamma(entry):
    exp, _, method = entry
    family, velocities, tol = LABELLING[entry]
    a = _labelling(exp, method, family)
    assert _relative_error(a.var["gamma"], a.var["true_gamma"]) <= tol
    assert {k for k in a.layers if k.startswith("velocity_")} == velocities
    for k in velocities:
        assert np.isfinite(_dense(a.layers[k])).all()


def test_mix_std_stm_direct():
    a, beta, gamma = _mixed()
    dyn.tl.dynamics(
        a, experiment_type="mix_std_stm", tkey="time", use_smoothed=False, model="deterministic"
    )
    assert a.uns["dynamics"]["experiment_type"] == "mix_std_stm"
    assert _relative_error(a.var["gamma"], gamma) < 0.1
    assert _relative_error(a.var["beta"], beta) < 0.1
    assert {"velocity_S", "velocity_U"} <= set(a.layers)
