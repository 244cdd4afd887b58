"""dyn.sim: the simulated truth is self-consistent, reproducible, the same in memory and stores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.optimize import fsolve

import dynadask as dyn

KIN = {"alpha": [20.0, 40.0, 8.0], "beta": [1.0, 2.0, 0.6], "gamma": [0.5, 0.8, 0.2]}
A, B, G = (np.array(KIN[k]) for k in ("alpha", "beta", "gamma"))


def _dense(x):
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def _labelled_after_pulse(t):
    # mean labelled u and s after labelling a steady-state cell for t
    ul = A / B * (1 - np.exp(-B * t))
    sl = A / G * (1 - np.exp(-G * t)) + A / (G - B) * (np.exp(-G * t) - np.exp(-B * t))
    return ul, sl


def _steady(n, seed=0, **kw):
    return dyn.sim.simulate("independent", n, KIN, start="steady", seed=seed, **kw)


@pytest.mark.parametrize("method", ["ssa", "langevin", "ode"])
def test_stationary_means_match_alpha_over_beta_and_gamma(method):
    adata = _steady(3000, method=method)
    u, s = _dense(adata.layers["unspliced"]), _dense(adata.layers["spliced"])
    np.testing.assert_allclose(u.mean(0), A / B, rtol=0.04)
    np.testing.assert_allclose(s.mean(0), A / G, rtol=0.04)
    np.testing.assert_allclose(adata.var["true_gamma"], G)
    # the true velocity is beta u - gamma s of each cell, zero on average at steady state
    np.testing.assert_allclose(adata.layers["velocity_S_true"], B * u - G * s, rtol=1e-5)
    assert abs(adata.layers["velocity_S_true"].mean(0) / (A)).max() < 0.04


@pytest.mark.parametrize("method", ["ssa", "ode"])
def test_one_shot_new_to_total_ratio_matches_the_analytic_ratio(method):
    t = 1.5
    adata = _steady(4000, seed=1, method=method, experiment_type="one-shot", label_time=t)
    new = _dense(adata.layers["new"]).mean(0)
    total = _dense(adata.layers["total"]).mean(0)
    ul, sl = _labelled_after_pulse(t)
    np.testing.assert_allclose(new / total, (ul + sl) / (A / B + A / G), rtol=0.03)
    np.testing.assert_array_equal(adata.obs["time"], t)
    layers = adata.layers
    assert (layers["new"] != layers["ul"] + layers["sl"]).nnz == 0
    assert (layers["total"] != layers["new"] + layers["uu"] + layers["su"]).nnz == 0


def test_without_splicing_delay_the_ratio_is_one_minus_exp_minus_gamma_t():
    # splicing much faster than degradation: new/total -> 1 - exp(-gamma t)
    params = {"alpha": [30.0, 30.0], "beta": [200.0, 200.0], "gamma": [0.3, 1.0]}
    adata = dyn.sim.simulate(
        "independent",
        3000,
        params,
        start="steady",
        method="ode",
        experiment_type="one-shot",
        label_time=1.0,
        dt=1e-3,
    )
    ratio = _dense(adata.layers["new"]).mean(0) / _dense(adata.layers["total"]).mean(0)
    np.testing.assert_allclose(ratio, 1 - np.exp(-np.array([0.3, 1.0])), rtol=0.03)


def test_kinetics_ratios_per_label_time():
    times = (0.5, 2.0, 6.0)
    adata = _steady(6000, seed=2, method="ode", experiment_type="kin", label_time=times)
    assert sorted(adata.obs["time"].unique()) == list(times)
    for t in times:
        cells = (adata.obs["time"] == t).to_numpy()
        new = _dense(adata.layers["new"][cells]).mean(0)
        total = _dense(adata.layers["total"][cells]).mean(0)
        ul, sl = _labelled_after_pulse(t)
        np.testing.assert_allclose(new / total, (ul + sl) / (A / B + A / G), rtol=0.05)


def test_degradation_chase_matches_the_closed_form():
    pulse, chase = 8.0, (0.0, 2.0)
    adata = _steady(
        6000, seed=3, method="ssa", experiment_type="deg", pulse_time=pulse, chase_time=chase
    )
    ul0, sl0 = _labelled_after_pulse(pulse)
    for c in chase:
        cells = (adata.obs["time"] == c).to_numpy()
        ul = _dense(adata.layers["ul"][cells]).mean(0)
        sl = _dense(adata.layers["sl"][cells]).mean(0)
        gap = (np.exp(-B * c) - np.exp(-G * c)) / (G - B)
        np.testing.assert_allclose(ul, ul0 * np.exp(-B * c), rtol=0.06, atol=0.05)
        np.testing.assert_allclose(sl, sl0 * np.exp(-G * c) + B * ul0 * gap, rtol=0.05)
    assert (adata.obs["label_time"] == pulse).all()


def test_pulse_chase_mixture_has_both_kinds_of_cells():
    adata = _steady(
        400,
        method="ode",
        experiment_type="mix_pulse_chase",
        label_time=(1.0, 2.0),
        chase_time=(1.0, 3.0),
        pulse_time=6.0,
    )
    obs = adata.obs
    assert set(obs["experiment"]) == {"pulse", "chase"}
    chase = obs["experiment"] == "chase"
    assert set(obs.loc[chase, "time"]) == {1.0, 3.0}
    assert set(obs.loc[~chase, "time"]) == {1.0, 2.0}
    assert (obs.loc[chase, "label_time"] == 6.0).all()
    np.testing.assert_allclose(
        obs["sim_time"], obs["state_time"] + obs["label_time"] + obs["chase_time"]
    )


def test_langevin_and_ssa_agree_on_the_toggle_switch():
    kw = dict(seed=4, t_span=(0.0, 60.0), true_velocity=False)
    ssa = dyn.sim.simulate("bifurcation", 1500, method="ssa", **kw)
    cle = dyn.sim.simulate("bifurcation", 1500, method="langevin", **kw)
    for layer in ("spliced", "unspliced"):
        m_ssa = _dense(ssa.layers[layer]).mean(0)
        m_cle = _dense(cle.layers[layer]).mean(0)
        np.testing.assert_allclose(m_cle, m_ssa, rtol=0.05)
    np.testing.assert_array_equal(ssa.obs["sim_time"], cle.obs["sim_time"])


def _toggle_fixed_points_slow(net_var):
    p = {k: net_var[f"true_{k}"].to_numpy() for k in ("a", "b", "S", "K", "m", "n", "gamma")}

    def field(x):
        act = p["a"] * x ** p["m"] / (p["S"] ** p["m"] + x ** p["m"])
        other = x[::-1]
        inh = p["b"] * p["K"] ** p["n"] / (p["K"] ** p["n"] + other ** p["n"])
        return act + inh - p["gamma"] * x

    starts = [(100.0, 0.0), (50.0, 50.0), (0.0, 100.0)]
    return np.array(sorted(tuple(fsolve(field, s, xtol=1e-12)) for s in starts))


@pytest.fixture(scope="module")
def toggle():
    return dyn.sim.simulate("bifurcation", 1200, seed=5, method="langevin", t_span=(120.0, 300.0))


def test_toggle_switch_fixed_points_and_stability(toggle):
    rec = toggle.uns["sim"]
    expected = _toggle_fixed_points_slow(toggle.var)
    np.testing.assert_allclose(rec["fixed_points"], expected, rtol=1e-6)
    np.testing.assert_array_equal(rec["fixed_point_stable"], [True, False, True])
    # symmetric saddle: a h + b (1 - h) = gamma s with h = 1/2 at s = S = K
    np.testing.assert_allclose(rec["fixed_points"][1], [50.0, 50.0], rtol=1e-8)
    np.testing.assert_allclose(dyn.sim.vector_field(rec["fixed_points"], rec), 0, atol=1e-8)


def test_toggle_switch_cells_settle_at_the_stable_fixed_points(toggle):
    rec = toggle.uns["sim"]
    s = _dense(toggle.layers["spliced"])
    types = toggle.obs["cell_type"].astype(str)
    for k in np.flatnonzero(rec["fixed_point_stable"]):
        cells = (types == f"fixed_point_{k}").to_numpy()
        assert cells.sum() > 300  # both fates are taken
        high = np.argmax(rec["fixed_points"][k])
        np.testing.assert_allclose(s[cells, high].mean(), rec["fixed_points"][k][high], rtol=0.05)


def test_truth_layers_and_field_grid_are_consistent(toggle):
    rec = toggle.uns["sim"]
    s, u = _dense(toggle.layers["spliced"]), _dense(toggle.layers["unspliced"])
    beta, gamma = toggle.var["true_beta"].to_numpy(), toggle.var["true_gamma"].to_numpy()
    field = dyn.sim.vector_field(s, rec)
    np.testing.assert_allclose(toggle.layers["alpha_true"], field + gamma * s, rtol=1e-5)
    np.testing.assert_allclose(
        toggle.layers["velocity_U_true"],
        toggle.layers["alpha_true"] - beta * u,
        rtol=1e-4,
        atol=1e-4,
    )
    full = dyn.sim.vector_field(np.hstack([u, s]), "bifurcation", splicing=True)
    np.testing.assert_allclose(full[:, 2:], toggle.layers["velocity_S_true"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(rec["grid_velocity"], dyn.sim.vector_field(rec["grid"], rec))
    assert rec["grid"].shape == (900, 2)


def test_oscillator_has_one_unstable_fixed_point():
    pts, stable = dyn.sim.fixed_points("oscillation")
    assert pts.shape == (1, 2) and not stable[0]
    np.testing.assert_allclose(dyn.sim.vector_field(pts, "oscillation"), 0, atol=1e-8)


def test_neurogenesis_simulation_and_attractors():
    adata = dyn.sim.simulate("neurogenesis", 300, seed=6, method="ode")
    assert adata.shape == (300, 12) and adata.var_names[0] == "Pax6"
    rec = adata.uns["sim"]
    assert rec["fixed_point_stable"].sum() >= 2  # several fates
    np.testing.assert_allclose(dyn.sim.vector_field(rec["fixed_points"], rec), 0, atol=1e-6)
    assert adata.obs["cell_type"].nunique() >= 2


def test_seeded_reproducibility_and_chunk_independence():
    kw = dict(method="ssa", experiment_type="kin", seed=11)
    a = dyn.sim.simulate("oscillation", 300, chunk_cells=300, **kw)
    b = dyn.sim.simulate("oscillation", 300, chunk_cells=64, **kw)
    c = dyn.sim.simulate("oscillation", 300, chunk_cells=300, **{**kw, "seed": 12})
    for k in a.layers:
        np.testing.assert_array_equal(_dense(a.layers[k]), _dense(b.layers[k]))
    assert (a.layers["total"] != c.layers["total"]).nnz > 0
    pd.testing.assert_frame_equal(a.obs, b.obs)


def test_layer_names_and_obs_of_each_design():
    conv = dyn.sim.simulate("independent", 50, n_genes=4)
    assert set(conv.layers) == {"spliced", "unspliced", "velocity_U_true", "velocity_S_true"}
    np.testing.assert_array_equal(conv.obs["time"], conv.obs["sim_time"])
    assert (conv.X != conv.layers["spliced"]).nnz == 0
    lab = dyn.sim.simulate(
        "independent",
        50,
        n_genes=4,
        experiment_type="one-shot",
        layers=("new", "total"),
        true_velocity=False,
    )
    assert set(lab.layers) == {"new", "total"}
    assert (lab.X != lab.layers["total"]).nnz == 0
    assert {"true_alpha", "true_beta", "true_gamma"} <= set(lab.var)


def _compare(mem, store):
    for k in mem.layers:
        np.testing.assert_array_equal(_dense(store.layers[k].compute()), _dense(mem.layers[k]))
    np.testing.assert_array_equal(_dense(store.X.compute()), _dense(mem.X))
    # the cell types are committed after the store is written (as strings)
    typed = {"cell_type": str} if "cell_type" in mem.obs else {}
    pd.testing.assert_frame_equal(store.obs.astype(typed), mem.obs.astype(typed))
    pd.testing.assert_frame_equal(store.var, mem.var)
    np.testing.assert_array_equal(store.uns["sim"]["fixed_points"], mem.uns["sim"]["fixed_points"])


def test_store_equals_memory(tmp_path):
    kw = dict(seed=8, method="ssa", experiment_type="mix_pulse_chase")
    mem = dyn.sim.simulate("bifurcation", 500, chunk_cells=500, **kw)
    path = dyn.sim.simulate_store(tmp_path / "sim.zarr", "bifurcation", 500, chunk_cells=128, **kw)
    store = dyn.io.open(path)
    assert store.layers["ul"].chunks[0][0] == 128
    _compare(mem, store)
    with pytest.raises(FileExistsError):
        dyn.sim.simulate_store(path, "bifurcation", 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"model": "nope"}, "unknown model"),
        ({"experiment_type": "pulse"}, "unknown experiment_type"),
        ({"method": "euler"}, "unknown method"),
        ({"layers": ("spliced", "ambiguous")}, "unknown layers"),
        ({"n_cells": 0}, "positive number of cells"),
        ({"params": {"alpha": [1.0], "beta": [0.0], "gamma": [1.0]}}, "must be positive"),
        ({"params": {"alpha": [-1.0], "beta": [1.0], "gamma": [1.0]}}, "non-negative"),
        ({"experiment_type": "one-shot", "label_time": (1, 2)}, "one label_time"),
        ({"experiment_type": "kin", "label_time": (-1,)}, "non-negative"),
        ({"start": "middle"}, "start must be"),
        ({"t_span": (5.0, 1.0)}, "t_span"),
    ],
)
def test_errors_name_the_problem(kwargs, match):
    kwargs = {"model": "independent", "n_cells": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        dyn.sim.simulate(kwargs.pop("model"), kwargs.pop("n_cells"), **kwargs)


def test_store_simulates_each_block_once(tmp_path, monkeypatch):
    import dask

    import dynadask.graph.sim as graph_sim

    calls = []
    original = graph_sim.simulate_block

    def counting(*args, **kwargs):
        calls.append(kwargs["start"])
        return original(*args, **kwargs)

    monkeypatch.setattr(graph_sim, "simulate_block", counting)
    with dask.config.set(scheduler="sync"):
        dyn.sim.simulate_store(
            tmp_path / "once.zarr",
            "bifurcation",
            300,
            chunk_cells=100,
            method="ode",
            experiment_type="one-shot",
        )
    assert sorted(calls) == [0, 100, 200]


# keep last: the module-scoped cluster stays the default scheduler until the module ends
def test_store_on_a_cluster_equals_memory(tmp_path, local_client):
    kw = dict(seed=9, method="langevin", n_genes=30)
    path = dyn.sim.simulate_store(tmp_path / "c.zarr", "independent", 700, chunk_cells=200, **kw)
    _compare(dyn.sim.simulate("independent", 700, **kw), dyn.io.open(path))
