"""Simulation kernels against slow obvious versions and known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from dynadask.kernels.gillespie import mix_seed, ssa_cells
from dynadask.kernels.ode_sim import fast_cells, linear_segment
from dynadask.kernels.sim_block import cell_seeds, simulate_block
from dynadask.kernels.sim_network import alpha_rows, nearest_point
from dynadask.sim.models import build_network


def _act(x, a, k, n):
    return a * x**n / (k**n + x**n)


def _inh(x, a, k, n):
    return a * k**n / (k**n + x**n)


def _tables(net):
    return (net.gene, net.kind, net.inputs, net.par)


@pytest.fixture(scope="module")
def states():
    return np.random.default_rng(0).uniform(0, 120, (50, 2))


def test_toggle_switch_rates_match_hill_formulas(states):
    net = build_network("bifurcation")
    p = {k: net.var[f"true_{k}"] for k in ("a", "b", "S", "K", "m", "n")}
    x, y = states[:, 0], states[:, 1]
    slow = np.stack([
        _act(x, p["a"][0], p["S"][0], p["m"][0]) + _inh(y, p["b"][0], p["K"][0], p["n"][0]),
        _act(y, p["a"][1], p["S"][1], p["m"][1]) + _inh(x, p["b"][1], p["K"][1], p["n"][1]),
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(alpha_rows(states, *_tables(net)), slow, rtol=1e-12)


def test_oscillator_rates_match_hill_formulas(states):
    net = build_network("oscillation")
    p = {k: net.var[f"true_{k}"] for k in ("a", "b", "S", "K", "m", "n")}
    x, y = states[:, 0], states[:, 1]
    slow = np.stack([
        _act(x, p["a"][0], p["S"][0], p["m"][0]) + _inh(y, p["b"][0], p["K"][0], p["n"][0]),
        _act(y, p["a"][1], p["S"][1], p["m"][1]) + _act(x, p["b"][1], p["K"][1], p["n"][1]),
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(alpha_rows(states, *_tables(net)), slow, rtol=1e-12)


def test_neurogenesis_rates_match_the_motif_equations():
    net = build_network("neurogenesis")
    a, k, n = net.var["true_a"], net.var["true_K"], net.var["true_n"]
    x = np.random.default_rng(1).uniform(0, 80, (20, 12))
    p = x ** n[0]  # every gene has n = 4
    kn = k**n
    expected = np.stack([
        a[0] * kn[0] / (kn[0] + p[:, 4] + p[:, 9] + p[:, 11]),
        a[1] * p[:, 0] / (kn[1] + p[:, 0] + p[:, 5]),
        a[2] * p[:, 1] / (kn[2] + p[:, 1]),
        a[3] * p[:, 1] / (kn[3] + p[:, 1] + p[:, 7]),
        a[4] * (p[:, 2] + p[:, 3] + p[:, 10]) / (kn[4] + p[:, 2] + p[:, 3] + p[:, 10]),
        a[5] * p[:, 0] / (kn[5] + p[:, 0] + p[:, 1]),
        a[6] * p[:, 5] / (kn[6] + p[:, 5] + p[:, 7]),
        a[7] * p[:, 5] / (kn[7] + p[:, 5] + p[:, 6]),
        a[8] * p[:, 5] * p[:, 6] / (kn[8] + p[:, 5] * p[:, 6]),
        a[9] * p[:, 8] / (kn[9] + p[:, 8]),
        a[10] * p[:, 7] / (kn[10] + p[:, 7]),
        a[11] * p[:, 7] / (kn[11] + p[:, 7]),
    ], axis=1)  # fmt: skip
    np.testing.assert_allclose(alpha_rows(x, *_tables(net)), expected, rtol=1e-10)


@pytest.mark.parametrize("labelled", [False, True])
def test_linear_segment_matches_matrix_exponential(labelled):
    alpha, beta, gamma = (
        np.array([5.0, 3.0, 2.0]),
        np.array([1.0, 0.4, 0.7]),
        np.array([0.3, 0.4, 1.5]),
    )  # the middle gene has beta == gamma
    st = np.random.default_rng(2).uniform(0, 10, (3, 4))
    h = 1.7
    expected = np.empty_like(st)
    for g in range(3):
        # species (uu, ul, su, sl, 1): the last one carries the constant synthesis
        m = np.zeros((5, 5))
        m[0, 0] = m[1, 1] = -beta[g]
        m[2, 0] = m[3, 1] = beta[g]
        m[2, 2] = m[3, 3] = -gamma[g]
        m[1 if labelled else 0, 4] = alpha[g]
        expected[g] = (expm(m * h) @ np.append(st[g], 1.0))[:4]
    linear_segment(st, alpha, beta, gamma, h, labelled)
    np.testing.assert_allclose(st, expected, rtol=1e-10)


def _independent(alpha, beta, gamma):
    g = len(alpha)
    net = (
        np.arange(g),
        np.zeros(g, np.int64),
        -np.ones((g, 3), np.int64),
        np.stack([alpha, np.ones(g), np.ones(g)], axis=1),
    )
    return net


KIN = (np.array([20.0, 40.0]), np.array([1.0, 2.0]), np.array([0.5, 0.8]))


def test_ssa_stationary_counts_are_poisson_with_the_analytic_means():
    alpha, beta, gamma = KIN
    n = 4000
    x0 = np.stack([alpha / beta, alpha / gamma], axis=1)[None]
    out = ssa_cells(
        x0,
        np.zeros(n, np.int64),
        np.full(n, 3.0),
        np.full((n, 2), np.inf),
        cell_seeds(1, 0, n),
        _independent(*KIN),
        beta,
        gamma,
        False,
    )
    u, s = out[:, :, 0], out[:, :, 2]
    assert np.all(out[:, :, [1, 3]] == 0)  # no label window
    np.testing.assert_allclose(u.mean(0), alpha / beta, rtol=0.03)
    np.testing.assert_allclose(s.mean(0), alpha / gamma, rtol=0.03)
    np.testing.assert_allclose(s.var(0) / s.mean(0), 1.0, atol=0.08)  # Poisson


def _induction_means(alpha, beta, gamma, t):
    u = alpha / beta * (1 - np.exp(-beta * t))
    s = alpha / gamma * (1 - np.exp(-gamma * t)) + alpha / (gamma - beta) * (
        np.exp(-gamma * t) - np.exp(-beta * t)
    )
    return u, s


@pytest.mark.parametrize("noise", [None, True, False])
def test_induction_from_zero_matches_the_closed_form(noise):
    alpha, beta, gamma = KIN
    n, t = 3000, 1.5
    args = (
        np.zeros((1, 2, 2)),
        np.zeros(n, np.int64),
        np.full(n, t),
        np.full((n, 2), np.inf),
        cell_seeds(4, 0, n),
        _independent(*KIN),
        beta,
        gamma,
        False,
    )
    out = ssa_cells(*args) if noise is None else fast_cells(*args, 0.01, noise)
    u_mean, s_mean = _induction_means(alpha, beta, gamma, t)
    np.testing.assert_allclose(out[:, :, 0].mean(0), u_mean, rtol=0.03)
    np.testing.assert_allclose(out[:, :, 2].mean(0), s_mean, rtol=0.03)
    assert np.all(out == np.rint(out)) and np.all(out >= 0)


def test_cell_seeds_are_per_cell_and_distinct():
    seeds = cell_seeds(7, 100, 50)
    assert seeds[3] == mix_seed(7, 103)
    assert len(set(seeds.tolist())) == 50
    assert cell_seeds(8, 100, 50)[0] != seeds[0]


def test_block_results_do_not_depend_on_the_batch():
    net = build_network("bifurcation")
    kernel_net = {**net.as_dict(), "x0": net.x0, "coupled": True}
    n = 40
    rng = np.random.default_rng(0)
    cells = {
        "traj": rng.integers(0, 10, n),
        "t_end": rng.uniform(0, 30, n),
        "windows": np.full((n, 2), np.inf),
    }
    kw = dict(
        start=0, seed=3, method="ssa", dt=0.1, layers=("spliced", "uu"), truth=("velocity_S_true",)
    )
    a = simulate_block(kernel_net, cells, batch=7, **kw)
    b = simulate_block(kernel_net, cells, batch=1024, **kw)
    assert (a["spliced"] != b["spliced"]).nnz == 0
    np.testing.assert_array_equal(a["velocity_S_true"], b["velocity_S_true"])
    assert a["spliced"].format == "csr" and a["spliced"].dtype == np.float32


def test_nearest_point_with_sparse_parts():
    from scipy import sparse

    pts = np.array([[0.0, 10.0], [10.0, 0.0]])
    a = sparse.csr_matrix(np.array([[1.0, 8.0], [9.0, 0.0]]))
    b = np.array([[0.0, 1.0], [0.0, 2.0]])
    np.testing.assert_array_equal(nearest_point(a, b, points=pts, scale=np.ones(2)), [0, 1])
