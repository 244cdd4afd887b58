"""Kernels of the seurat / Pearson-residual recipes, the regression and cell-cycle scores,
each against the formula written out with numpy / pandas on small random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from dynadask.kernels import cell_cycle as kcc
from dynadask.kernels import preprocess_genes as kg
from dynadask.kernels import residuals as kres


def _pandas_seurat(mean, var, n_bins=20):
    """Seurat's binned dispersion as pandas computes it (pd.cut, groupby, fillna)."""
    disp = var / mean
    disp[disp == 0] = np.nan
    frame = pd.DataFrame({"mean": np.log1p(mean), "dispersion": np.log(disp)})
    frame["bin"] = pd.cut(frame["mean"], bins=n_bins)
    grouped = frame.groupby("bin", observed=False)["dispersion"]
    bin_mean, bin_std = grouped.mean(), grouped.std(ddof=1)
    single = bin_std.isnull()
    bin_std[single] = bin_mean[single].values
    bin_mean[single] = 0
    m = bin_mean[frame["bin"].values].values
    s = bin_std[frame["bin"].values].values
    return ((frame["dispersion"] - m) / s).fillna(0).to_numpy(), m, s**2


def test_seurat_dispersion_equals_pandas_binning():
    rng = np.random.default_rng(3)
    mean = rng.lognormal(0, 1.5, 400)
    var = mean * rng.lognormal(0.5, 0.7, 400)
    var[:5] = 0  # zero dispersion -> NaN -> 0
    norm, m, v = kg.seurat_dispersion_norm(mean, var)
    want, want_m, want_v = _pandas_seurat(mean, var)
    np.testing.assert_allclose(norm, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m, want_m, rtol=1e-12)
    np.testing.assert_allclose(v, want_v, rtol=1e-12, equal_nan=True)
    top = kg.top_with_ties(norm, 50)
    assert top.sum() == 50 and norm[top].min() >= norm[~top].max()


def test_pearson_residuals_kernel_equals_formula():
    rng = np.random.default_rng(0)
    x = rng.poisson(rng.gamma(0.5, 2, (60, 1)) * rng.gamma(0.3, 1, (1, 40))).astype(float)
    cells, genes, total = x.sum(1), x.sum(0), x.sum()
    mu = np.outer(cells, genes) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.clip((x - mu) / np.sqrt(mu + mu**2 / 100), -np.sqrt(60), np.sqrt(60))
    want[mu == 0] = 0
    got = kres.pearson_residuals(
        sparse.csr_matrix(x), cells, genes, total, theta=100, clip=np.sqrt(60)
    )
    np.testing.assert_allclose(got, want, rtol=1e-12)
    codes = np.zeros(60, dtype=np.int64)
    mom = kres.pearson_moments(
        sparse.csr_matrix(x),
        cells,
        codes,
        gene_sums=genes[None],
        totals=np.array([total]),
        clips=np.array([np.sqrt(60)]),
    )
    np.testing.assert_allclose(mom["sum"][0], want.sum(0), atol=1e-9)
    np.testing.assert_allclose(mom["sumsq"][0], (want**2).sum(0), rtol=1e-12)


def test_with_columns_replaces_only_the_chosen_columns():
    x = sparse.random(30, 12, density=0.3, format="csr", random_state=1, dtype=np.float32)
    genes = np.array([1, 5, 7])
    values = np.arange(90, dtype=np.float32).reshape(30, 3) - 40
    out = kres.with_columns(x, values, genes).toarray()
    want = x.toarray()
    want[:, genes] = values
    np.testing.assert_array_equal(out, want)


def test_regression_kernels_equal_least_squares():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(80, 2))
    x = a @ rng.normal(size=(2, 7)) + rng.normal(size=(80, 7)) + 3
    ac = a - a.mean(0)
    sums = kres.regression_sums(x, ac)
    coef = np.linalg.solve(ac.T @ ac, sums["cross"])
    intercept = sums["sum"] / 80 - a.mean(0) @ coef
    got = kres.regression_residuals(x, a, intercept, coef)
    design = np.column_stack([np.ones(80), a])
    beta = np.linalg.lstsq(design, x, rcond=None)[0]
    np.testing.assert_allclose(got, x - design @ beta, atol=1e-10)


def test_phase_scores_equal_dynamos_correlation_with_indicators():
    rng = np.random.default_rng(4)
    totals = rng.gamma(2, 1, (50, 5))
    scores = kcc.phase_scores(totals)
    z = (totals - totals.mean(0)) / totals.std(0)
    for c in range(5):
        for p in range(5):
            indicator = np.eye(5)[p]
            assert abs(scores[c, p] - np.corrcoef(z[c], indicator)[0, 1]) < 1e-12
    phase, progress, order = kcc.phase_progress(scores)
    np.testing.assert_array_equal(phase, scores.argmax(1))
    rows = np.arange(50)
    np.testing.assert_allclose(
        progress, scores[rows, (phase - 1) % 5] - scores[rows, (phase + 1) % 5]
    )
    for p in np.unique(phase):
        idx = np.flatnonzero(phase == p)
        if idx.size > 1:
            best = idx[np.argmax(progress[idx])]
            assert order[best] == 0 and np.nanmax(order[idx]) == 1


def test_coherence_equals_pearson_correlation():
    rng = np.random.default_rng(5)
    x = rng.gamma(1, 1, (40, 9))
    members = [np.array([0, 1, 2]), np.array([3, 4, 5, 6, 7, 8])]
    half = [kcc.coherence_sums(x[:17], members), kcc.coherence_sums(x[17:], members)]
    sums = {k: half[0][k] + half[1][k] for k in half[0]}
    corr = kcc.coherence(sums, 2)
    for p, cols in enumerate(members):
        avg = x[:, cols].mean(1)
        want = [np.corrcoef(x[:, g], avg)[0, 1] for g in cols]
        np.testing.assert_allclose(corr[p], want, rtol=1e-10)
