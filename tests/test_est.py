"""Kinetic estimators on plain arrays: kernels vs slow versions, known answers, map-reduce."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import sparse

from dynadask.est import quantiles
from dynadask.est.csc import SteadyState
from dynadask.est.quantiles import extreme_thresholds
from dynadask.est.tsc import Labelling, Strata
from dynadask.kernels import estimation as ke
from dynadask.kernels import estimation_labelling as el
from dynadask.kernels import kinetics as kk

RNG = np.random.default_rng(7)


def _as(kind: str, x: np.ndarray, rows: int = 170):
    if kind == "numpy":
        return x
    if kind == "sparse":
        return sparse.csr_matrix(x)
    if kind == "dask":
        return da.from_array(x, chunks=(rows, x.shape[1]))
    from dynadask.graph.blocks import as_rows

    return as_rows(sparse.csr_matrix(x), rows=rows)  # dask of CSR blocks


KINDS = ["numpy", "sparse", "dask", "dask-sparse"]


def _extreme_slow(s, u, perc_left, perc_right):
    su = s / np.clip(s.max(), 1e-3, None) + u / np.clip(u.max(), 1e-3, None)
    if perc_left is None:
        return su >= np.percentile(su, 100 - perc_right)
    lo, hi = np.percentile(su, [perc_left, 100 - perc_right])
    return (su <= lo) | (su >= hi)


def _gmm_slow(u, s, us, ss):
    y = np.vstack([u, u + 2 * us])
    x = np.vstack([s, 2 * ss - s])
    k = np.array([(x[i] * y[i]).sum() / (x[i] * x[i]).sum() for i in range(2)])
    cov_inv = np.linalg.pinv(np.diag((y - k[:, None] * x).var(1)))
    xy = sum(y[:, i] @ cov_inv @ x[:, i] for i in range(x.shape[1]))
    xx = sum(x[:, i] @ cov_inv @ x[:, i] for i in range(x.shape[1]))
    return xy / xx if xx != 0 else np.nan


def _data(n=600, g=12):
    s = RNG.gamma(2.0, 1.0, (n, g)) * (RNG.random((n, g)) < 0.7)
    gamma = RNG.uniform(0.2, 2.0, g)
    u = gamma * s + RNG.normal(0, 0.2, (n, g)).clip(-0.1)
    u = np.clip(u, 0, None)
    ss = s * s + RNG.random((n, g))
    us = u * s + RNG.random((n, g))
    return u, s, us, ss, gamma


@pytest.mark.parametrize("kind", KINDS)
def test_quantiles_equal_numpy_percentile(kind):
    n, g = 1500, 9
    s = RNG.poisson(0.4, (n, g)) * RNG.random((n, g))
    u = RNG.poisson(0.3, (n, g)).astype(float)
    s[:, 2] = 0.0
    u[:, 2] = 0.0  # all ties
    codes = RNG.integers(-1, 3, n)
    got = extreme_thresholds(_as(kind, s), _as(kind, u), codes, 3, [95, 5, 37.5], n_bins=16)
    for k in range(3):
        m = codes == k
        su = s[m] / np.clip(s[m].max(0), 1e-3, None) + u[m] / np.clip(u[m].max(0), 1e-3, None)
        for i, q in enumerate([95, 5, 37.5]):
            np.testing.assert_array_equal(got["values"][i][k], np.percentile(su, q, axis=0))


def test_product_sums_match_loops():
    n, g = 300, 5
    a, b = RNG.random((n, g)), RNG.random((n, g))
    codes = RNG.integers(-1, 2, n)
    terms = {"n": (), "ab": ("a", "b"), "aab": ("a", "a", "b"), "x:a": ("a",)}
    scale = {"s": np.ones((2, g)), "u": np.ones((2, g))}
    right = np.full((2, g), 1.2)
    st = kk.product_sums(
        {"a": a, "b": sparse.csr_matrix(b)},
        codes,
        2,
        terms,
        extreme={"s": "a", "u": "b", "scale": scale, "left": None, "right": right},
    )
    for k in range(2):
        m = codes == k
        np.testing.assert_allclose(st["n"][k], m.sum())
        np.testing.assert_allclose(st["ab"][k], (a[m] * b[m]).sum(0))
        np.testing.assert_allclose(st["aab"][k], (a[m] ** 2 * b[m]).sum(0))
        np.testing.assert_allclose(st["x:a"][k], (a[m] * (a[m] + b[m] >= 1.2)).sum(0))


def test_product_sums_both_tails_float32_and_slices_match_loops():
    # two tails, float32 layers, a derived layer and more rows than one slice (2,048)
    n, g = 4500, 4
    a = RNG.random((n, g)).astype(np.float32)
    b = RNG.random((n, g)).astype(np.float32)
    codes = RNG.integers(-1, 3, n)
    terms = {"n": (), "x:n": (), "ab": ("a", "b"), "x:dd": ("d", "d"), "x:a": ("a",)}
    scale = {"s": np.full((3, g), 2.0), "u": np.full((3, g), 0.5)}
    left, right = np.full((3, g), 0.6), np.full((3, g), 1.9)
    st = kk.product_sums(
        {"a": a, "b": b},
        codes,
        3,
        terms,
        extreme={"s": "a", "u": "b", "scale": scale, "left": left, "right": right},
        derived={"d": ((2.0, "a"), (-1.0, "b"))},
    )
    a64, b64 = a.astype(float), b.astype(float)
    score = a64 / 2.0 + b64 / 0.5
    tail = (score >= 1.9) | (score <= 0.6)
    d = 2.0 * a64 - b64
    for k in range(3):
        m = codes == k
        np.testing.assert_array_equal(st["n"][k], m.sum())
        np.testing.assert_array_equal(st["x:n"][k], tail[m].sum(0))
        np.testing.assert_allclose(st["ab"][k], (a64[m] * b64[m]).sum(0), rtol=1e-12)
        np.testing.assert_allclose(st["x:dd"][k], (d[m] ** 2 * tail[m]).sum(0), rtol=1e-12)
        np.testing.assert_allclose(st["x:a"][k], (a64[m] * tail[m]).sum(0), rtol=1e-12)


@pytest.mark.parametrize("cap", [None, 3, "budget"])
@pytest.mark.parametrize("kind", ["numpy", "dask"])
@pytest.mark.parametrize("tails", [(None, 5), (10, 20)])
def test_window_sums_equal_the_sums_over_exact_thresholds(kind, tails, cap, monkeypatch):
    # one pass with the window cells pending (and, with cap 3, most genes sent to the
    # separate passes; with a small budget, the most crowded ones, chosen from the
    # histogram) gives the sums over the cells at or beyond the exact percentiles:
    # a gene of ties (all zero), a gene of many zeros, strata with left-out cells, NaN
    if cap == 3:
        monkeypatch.setattr(kk, "PENDING_CAP", 3)
    elif cap == "budget":
        monkeypatch.setattr(quantiles, "KEY_BUDGET", 40)
        monkeypatch.setattr(quantiles, "PENDING_BUDGET", 100)
        sent = []
        exact = SteadyState._sums_exactly
        monkeypatch.setattr(
            SteadyState, "_sums_exactly", lambda self, *a: sent.append(a[-1]) or exact(self, *a)
        )
    n, g = 5000, 6
    s = RNG.gamma(2.0, 1.0, (n, g)) * (RNG.random((n, g)) < 0.6)
    u = 0.5 * s + RNG.random((n, g)) * (RNG.random((n, g)) < 0.5)
    s[:, 2], u[:, 2] = 0.0, 0.0
    s[RNG.random(n) < 0.97, 3], u[:, 3] = 0.0, 0.0
    us, ss = u * s + RNG.random((n, g)), s * s + RNG.random((n, g))
    s[5, 4] = np.nan
    codes = RNG.integers(-1, 3, n)
    left, right = tails
    est = SteadyState(perc_left=left, perc_right=right, n_bins=16)
    layers = {k: _as(kind, x, rows=1700) for k, x in {"s": s, "u": u, "us": us, "v": ss}.items()}
    terms = ke.STEADY_TERMS | ke.GMM_TERMS
    got = est._sums(layers, codes, 3, terms)
    qs = [100 - right] + ([left] if left is not None else [])
    q = extreme_thresholds(layers["s"], layers["u"], codes, 3, qs, n_bins=16)
    extreme = {
        "s": "s",
        "u": "u",
        "scale": q["grid"]["scale"],
        "right": q["values"][0],
        "left": q["values"][1] if left is not None else None,
    }
    want = kk.product_sums(
        {"s": s, "u": u, "us": us, "v": ss}, codes, 3, terms, extreme=extreme, derived=ke.DERIVED
    )
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12, err_msg=k)
    assert got["x:n"][0, 2] == (codes == 0).sum()  # all ties: every cell is extreme
    assert 0 < got["x:n"][0, 0] < (codes == 0).sum()
    if cap == "budget":
        # the crowded genes took the separate passes; not the gene of ties (one count each)
        assert len(sent) == 1 and sent[0].size > 0 and 2 not in sent[0]


def test_extent_keeps_nan_as_numpy():
    s = RNG.random((50, 3))
    u = RNG.random((50, 3)).astype(np.float32)
    s[4, 1] = np.nan
    codes = np.zeros(50, np.int64)
    ext = kk.extent(s, u, codes, 1)
    np.testing.assert_array_equal(ext["s_min"][0], np.min(s, 0))
    np.testing.assert_array_equal(ext["s_max"][0], np.max(s, 0))
    np.testing.assert_array_equal(ext["u_max"][0], np.max(u, 0).astype(float))
    assert np.isnan(ext["s_min"][0, 1]) and np.isnan(ext["s_max"][0, 1])


@pytest.mark.parametrize(
    "method", [("deterministic", "ols"), ("stochastic", "gmm"), ("stochastic", "negbin")]
)
def test_steady_state_matches_slow_per_gene_fits(method):
    u, s, us, ss, _ = _data()
    est = SteadyState(*method).fit(u, s, us, ss)
    for j in range(u.shape[1]):
        m = _extreme_slow(s[:, j], u[:, j], None, 5)
        if method[1] == "ols":
            want = (s[m, j] * u[m, j]).sum() / (s[m, j] ** 2).sum()
        elif method[1] == "gmm":
            want = _gmm_slow(u[m, j], s[m, j], us[m, j], ss[m, j])
        else:
            want = _negbin_slow(u[:, j], s[:, j], ss[:, j], m)
        np.testing.assert_allclose(est.params["gamma"][0, j], want, rtol=1e-6)
        k = est.params["gamma"][0, j]
        res = ((k * s[:, j] - u[:, j]) ** 2).sum()
        r2 = 1 - res / ((u[:, j] - u[:, j].mean()) ** 2).sum()
        np.testing.assert_allclose(est.params["gamma_r2"][0, j], r2, rtol=1e-6)
        ll = -u.shape[0] / 2 * np.log(2 * np.pi) - u.shape[0] / 2 * np.log(res) - 0.5
        np.testing.assert_allclose(est.params["gamma_logLL"][0, j], ll, rtol=1e-9)


def _negbin_slow(u, s, ss, m):
    from scipy.optimize import least_squares

    phi = (s * s * (ss - s)).sum() / (s**4).sum()
    r, n, v = s[m], u[m], ss[m]
    k0 = (r * n).sum() / (r * r).sum()

    def g(k):
        g1, g2 = k * r - n, k * k * v - k * n - phi * n * n
        s1 = max((k0 * r - n).std(), 1e-3)
        s2 = max((k0 * k0 * v - k0 * n - phi * n * n).std(), 1e-3)
        return np.hstack([g1 / s1, g2 / s2])

    return least_squares(g, k0, bounds=(0, np.inf), xtol=1e-14, ftol=1e-14).x[0]


def test_ols_with_intercept_recovers_line_and_uses_both_tails():
    n, g = 2000, 4
    s = RNG.uniform(0, 5, (n, g))
    u = 0.7 * s + 0.3
    est = SteadyState("deterministic", "ols", intercept=True).fit(u, s)
    np.testing.assert_allclose(est.params["gamma"][0], 0.7, rtol=1e-9)
    np.testing.assert_allclose(est.params["gamma_b"][0], 0.3, rtol=1e-9)
    np.testing.assert_allclose(est.params["gamma_r2"][0], 1.0)


@pytest.mark.parametrize("method", [("deterministic", "ols"), ("stochastic", "gmm")])
def test_known_slope_on_noise_free_data(method):
    n, g = 800, 6
    s = RNG.gamma(2.0, 1.0, (n, g))
    gamma = RNG.uniform(0.1, 3.0, g)
    u = gamma * s
    us, ss = u * s, s * s  # exact for u = gamma s: u + 2us = gamma(2ss - s) + (u + gamma s)
    est = SteadyState(*method).fit(u, s, us, ss)
    if method[1] == "ols":
        np.testing.assert_allclose(est.params["gamma"][0], gamma, rtol=1e-9)
    else:  # GMM is consistent: both equations scale with gamma up to the residual weights
        assert np.all(np.abs(est.params["gamma"][0] / gamma - 1) < 0.5)


@pytest.mark.parametrize("kind", KINDS)
def test_map_reduce_equals_one_block(kind):
    u, s, us, ss, _ = _data(n=700)
    one = SteadyState().fit(u, s, us, ss).params
    many = SteadyState().fit(*(_as(kind, x, rows=97) for x in (u, s, us, ss))).params
    for k in ("gamma", "gamma_r2", "gamma_logLL"):
        np.testing.assert_allclose(many[k], one[k], rtol=1e-10)


def test_strata_estimate_each_group_alone():
    u, s, us, ss, _ = _data(n=900)
    codes = np.repeat([0, 1, 2], 300)
    est = SteadyState().fit(u, s, us, ss, codes=codes)
    for k in range(3):
        m = codes == k
        alone = SteadyState().fit(u[m], s[m], us[m], ss[m]).params["gamma"][0]
        np.testing.assert_allclose(est.params["gamma"][k], alone, rtol=1e-10)


def test_velocity_uses_each_cells_group_parameters():
    u, s, us, ss, _ = _data(n=400)
    codes = np.repeat([0, 1], 200)
    est = SteadyState().fit(u, s, us, ss, codes=codes)
    v = np.asarray(est.velocity(da.from_array(u, chunks=(77, -1)), s, codes))
    g = est.params["gamma"]
    np.testing.assert_allclose(v, u - g[codes] * s, rtol=1e-5, atol=1e-5)


def test_all_zero_gene_gives_nan_gamma_and_errors_are_clear():
    u, s, us, ss, _ = _data(n=300)
    u[:, 0] = 0.0
    us[:, 0] = 0.0  # no unspliced RNA: both moment equations have zero residuals
    est = SteadyState().fit(u, s, us, ss)
    assert np.isnan(est.params["gamma"][0, 0])
    assert np.isfinite(est.params["gamma"][0, 1:]).all()
    with pytest.raises(ValueError, match="second moments"):
        SteadyState().fit(u, s)
    with pytest.raises(ValueError, match="unknown steady-state fit"):
        SteadyState("deterministic", "gmm")
    with pytest.raises(ValueError, match="codes has"):
        SteadyState().fit(u, s, us, ss, codes=np.zeros(3))


def test_profile_fit_recovers_curves():
    tau = np.array([0.5, 1.0, 2.0, 4.0])
    rate = np.array([0.05, 0.4, 3.0])
    amp = np.array([2.0, 7.0, 0.5])
    y = amp[:, None] * el.synthesis(tau[None], rate[:, None])
    got, a, r2 = el.profile_fit(tau, y, el.synthesis)
    np.testing.assert_allclose(got, rate, rtol=1e-5)
    np.testing.assert_allclose(a, amp, rtol=1e-5)
    beta = np.array([1.0, 2.0, 0.7])
    f, off = el.spliced_chase(beta[:, None, None], amp[:, None, None])
    y = 3.0 * f(tau, rate[:, None, None])[:, 0] + off(tau, rate[:, None, None])[:, 0]
    got, a, _ = el.profile_fit(tau, y, f, offset=off)
    np.testing.assert_allclose(got, rate, rtol=1e-4)
    np.testing.assert_allclose(a, 3.0, rtol=1e-4)


def _labelled_counts(exp, times, n=3000, g=8, seed=3):
    """Steady-state cells labelled for t (kin/one-shot) or chased for t after a long pulse."""
    rng = np.random.default_rng(seed)
    alpha, beta, gamma = rng.uniform(2, 20, g), rng.uniform(0.5, 2, g), rng.uniform(0.1, 0.8, g)
    t = rng.choice(times, n)[:, None]
    u_ss, s_ss = alpha / beta, alpha / gamma
    if exp == "deg":
        ul = u_ss * np.exp(-beta * t)
        sl = s_ss * np.exp(-gamma * t) + beta * u_ss * (np.exp(-gamma * t) - np.exp(-beta * t)) / (
            beta - gamma
        )
    else:
        ul = u_ss * (1 - np.exp(-beta * t))
        sl = s_ss * (1 - (beta * np.exp(-gamma * t) - gamma * np.exp(-beta * t)) / (beta - gamma))
    layers = {
        "ul": rng.poisson(ul),
        "sl": rng.poisson(sl),
        "uu": rng.poisson(u_ss - ul),
        "su": rng.poisson(s_ss - sl),
    }
    return (
        {k: sparse.csr_matrix(v.astype(float)) for k, v in layers.items()},
        t.ravel(),
        beta,
        gamma,
    )


@pytest.mark.parametrize(
    ("exp", "method", "times"),
    [
        ("one-shot", "ols", [1.0]),
        ("kin", "direct", [0.5, 1, 2, 4]),
        ("kin", "twostep", [0.5, 1, 2, 4]),
        ("deg", "direct", [0.0, 1, 2, 4]),
    ],
)
def test_labelling_recovers_absolute_rates(exp, method, times):
    layers, t, beta, gamma = _labelled_counts(exp, times)
    p = Labelling(exp, method).fit(layers, t).params
    assert np.median(np.abs(p["gamma"][0] / gamma - 1)) < 0.05
    assert np.median(np.abs(p["beta"][0] / beta - 1)) < 0.05


def test_labelling_new_total_and_groups():
    layers, t, beta, gamma = _labelled_counts("kin", [0.5, 1, 2, 4])
    new = layers["ul"] + layers["sl"]
    total = new + layers["uu"] + layers["su"]
    codes = np.arange(t.size) % 2
    est = Labelling("kin", "twostep").fit({"new": new, "total": total}, t, group_codes=codes)
    assert est.params["gamma"].shape == (2, gamma.size)
    np.testing.assert_allclose(est.params["gamma"][0], est.params["gamma"][1], rtol=0.2)
    vel = est.velocities({"new": new, "total": total}, t, codes)
    assert set(vel) == {"velocity_N", "velocity_T"}
    assert vel["velocity_T"].shape == new.shape


def test_labelling_errors():
    layers, t, *_ = _labelled_counts("kin", [0.5, 1.0])
    with pytest.raises(ValueError, match="one labelling time"):
        Labelling("one-shot").fit(layers, t)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        Labelling("kin").fit(layers, np.ones(t.size))
    with pytest.raises(ValueError, match="needs layers"):
        Labelling("kin").fit({"ul": layers["ul"]}, t)
    with pytest.raises(ValueError, match="no labelling estimator"):
        Labelling("deg", "twostep")
    with pytest.raises(ValueError, match="missing or infinite"):
        Strata.make(np.array([1.0, np.nan]))


def test_percentile_helpers_against_numpy():
    x = np.sort(RNG.random(101))
    for q in (0, 5, 50, 95, 100, 33.3):
        r1, r2, frac = ke.percentile_ranks(np.array(x.size), q)
        got = ke.lerp(x[r1], x[r2], frac)
        assert got == np.percentile(x, q)
