"""Preprocessing and PCA kernels and graph builders against slow obvious versions."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import sparse

from dynadask._core.compute import compute
from dynadask.graph import pca as gpca
from dynadask.graph import preprocess as gpp
from dynadask.kernels import pca as kpca
from dynadask.kernels import preprocess as kpp
from dynadask.kernels import preprocess_genes as kg


def _counts(n=300, g=40, seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, (n, g)) * (rng.random((n, g)) < density)
    return x.astype(np.float32)


@pytest.fixture
def layers():
    return _counts(seed=1), _counts(seed=2, density=0.2)


def test_cell_sums_match_dense(layers):
    s, u = layers
    mito = np.zeros(s.shape[1], bool)
    mito[:3] = True
    out = kpp.cell_sums(sparse.csr_matrix(s), u, mito=mito, shared=[[0, 1]])
    both = (s > 0) & (u > 0)
    np.testing.assert_array_equal(out[:, 0], (s > 0).sum(1))
    np.testing.assert_allclose(out[:, 1], s.sum(1))
    np.testing.assert_array_equal(out[:, 2], (u > 0).sum(1))
    np.testing.assert_allclose(out[:, 3], u.sum(1))
    np.testing.assert_allclose(out[:, 4], s[:, :3].sum(1))
    np.testing.assert_allclose(out[:, 5], ((s + u) * both).sum(1))


def test_gene_sums_match_dense(layers):
    s, u = layers
    out = kpp.gene_sums(s, sparse.csr_matrix(u), names=["s", "u"], shared=[[0, 1], [0]])
    np.testing.assert_array_equal(out["ncells"], np.stack([(s > 0).sum(0), (u > 0).sum(0)]))
    np.testing.assert_allclose(out["sum"], np.stack([s.sum(0), u.sum(0)]))
    both = (s > 0) & (u > 0)
    np.testing.assert_allclose(out["shared"][0], ((s + u) * both).sum(0))
    np.testing.assert_allclose(out["shared"][1], s.sum(0))


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_check_counts_rejects_non_counts(bad):
    x = _counts(20, 5)
    x[3, 2] = bad
    with pytest.raises(ValueError, match="spliced holds"):
        kpp.gene_sums(sparse.csr_matrix(x), names=["spliced"])


def test_scaling_and_log_stay_sparse(layers):
    s, _ = layers
    sf = np.linspace(0.5, 2.0, s.shape[0])
    scaled = kpp.scale_rows(sparse.csr_matrix(s), sf)
    assert sparse.issparse(scaled) and scaled.dtype == np.float32
    np.testing.assert_allclose(scaled.toarray(), s / sf[:, None], rtol=1e-6)
    np.testing.assert_allclose(kpp.log1p_block(s).toarray(), np.log1p(s), rtol=1e-6)
    mom = kpp.normalized_gene_moments(s, sf, log=True)
    y = np.log1p(s / sf[:, None])
    np.testing.assert_allclose(mom["sum"], y.sum(0))
    np.testing.assert_allclose(mom["sumsq"], (y**2).sum(0))


def test_pca_from_moments_is_exact_pca(layers):
    s, _ = layers
    sf = np.linspace(0.5, 2.0, s.shape[0])
    genes = np.arange(5, 35)
    mom = kpca.cross_moments(sparse.csr_matrix(s), sf, genes)
    mean, comps, var, ratio = kpca.pca_from_moments(mom["n"][0], mom["sum"], mom["gram"], 10)
    y = np.log1p(s / sf[:, None])[:, genes]
    yc = y - y.mean(0)
    _, sv, vt = np.linalg.svd(yc, full_matrices=False)
    np.testing.assert_allclose(mean, y.mean(0), atol=1e-12)
    np.testing.assert_allclose(np.abs(comps), np.abs(vt[:10].T), atol=1e-8)
    np.testing.assert_allclose(var, sv[:10] ** 2 / len(y), rtol=1e-8)
    np.testing.assert_allclose(ratio, sv[:10] ** 2 / (sv**2).sum(), rtol=1e-8)
    assert np.all(comps[np.argmax(np.abs(comps), axis=0), np.arange(10)] > 0)
    scores = kpca.project(sparse.csr_matrix(s), sf, genes, mean, comps)
    np.testing.assert_allclose(scores, yc @ comps, atol=1e-4)


def test_dispersion_scores_and_top_genes():
    rng = np.random.default_rng(0)
    x = rng.gamma(1.0, rng.uniform(0.1, 5, 50), (400, 50))
    log_m, log_cv = kg.mean_cv(x.sum(0), (x**2).sum(0), 400)
    np.testing.assert_allclose(log_m, np.log2(x.mean(0)))
    np.testing.assert_allclose(log_cv, np.log2(x.std(0) / x.mean(0)))
    zero_m, zero_cv = kg.mean_cv(np.zeros(2), np.zeros(2), 10)
    assert np.all(zero_m == 0) and np.all(zero_cv == 0)
    score = np.array([0.5, np.nan, 2.0, -np.inf, 1.0, 2.0])
    np.testing.assert_array_equal(kg.top_scores(score, 2), [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(kg.top_scores(score, 10), [1, 0, 1, 0, 1, 1])


@pytest.mark.parametrize("kind", ["numpy", "sparse", "dask"])
def test_builders_agree_across_input_types(layers, kind):
    s, u = layers
    wrap = {
        "numpy": lambda x: x,
        "sparse": sparse.csr_matrix,
        "dask": lambda x: da.from_array(x, chunks=(70, -1)),
    }[kind]
    cells, genes = gpp.qc_sums({"s": wrap(s), "u": wrap(u)}, shared=[["s", "u"]])
    cells, genes = compute(cells, genes)
    ref_cells = kpp.cell_sums(s, u, shared=[[0, 1]])
    ref_genes = kpp.gene_sums(s, u, shared=[[0, 1]])
    np.testing.assert_allclose(cells, ref_cells)
    for key in ref_genes:
        np.testing.assert_allclose(genes[key], ref_genes[key])
    sf = np.linspace(0.5, 2, s.shape[0])
    (stats,) = compute(gpp.normalized_stats(wrap(s), sf, gram_genes=np.arange(10)))
    one = kpca.cross_moments(s, sf, np.arange(10))
    np.testing.assert_allclose(stats["gram"], one["gram"], rtol=1e-12)
    out = gpp.scaled(wrap(s), sf, log=True).compute()
    np.testing.assert_allclose(out.toarray(), np.log1p(s / sf[:, None]), rtol=1e-6)
    comps = np.eye(10)[:, :3]
    proj = gpca.project(wrap(s), sf, np.arange(10), np.zeros(10), comps).compute()
    np.testing.assert_allclose(proj, np.log1p(s / sf[:, None])[:, :3], rtol=1e-5)


@pytest.mark.parametrize("kind", ["numpy", "sparse", "dask"])
def test_masked_reductions_equal_sums_over_kept_cells(layers, kind):
    s, u = layers
    rng = np.random.default_rng(5)
    keep = rng.random(s.shape[0]) < 0.7
    sf = rng.uniform(0.5, 2.0, s.shape[0])
    wrap = {
        "numpy": lambda a: a,
        "sparse": sparse.csr_matrix,
        "dask": lambda a: da.from_array(a, chunks=(70, -1)),
    }[kind]
    genes = np.arange(0, s.shape[1], 2)
    _, per_gene = gpp.qc_sums({"s": wrap(s), "u": wrap(u)}, cells=keep)
    stats = gpp.normalized_stats(wrap(s), sf, gram_genes=genes, cells=keep)
    cross = gpca.cross_moments(wrap(s), sf, genes, cells=keep)
    per_gene, stats, cross = compute(per_gene, stats, cross)
    np.testing.assert_allclose(per_gene["sum"], np.stack([s[keep].sum(0), u[keep].sum(0)]))
    np.testing.assert_array_equal(per_gene["ncells"][0], (s[keep] > 0).sum(0))
    y = s[keep] / sf[keep, None]
    np.testing.assert_allclose(stats["sum"], y.sum(0), rtol=1e-10)
    np.testing.assert_allclose(stats["sumsq"], (y**2).sum(0), rtol=1e-10)
    assert stats["n"][0] == cross["n"][0] == keep.sum()
    ly = np.log1p(y[:, genes])
    np.testing.assert_allclose(cross["gram"], ly.T @ ly, rtol=1e-10)
    np.testing.assert_allclose(stats["gram"], ly.T @ ly, rtol=1e-10)


def test_cross_moments_in_row_slices(layers, monkeypatch):
    s, _ = layers
    sf = np.linspace(0.5, 2.0, s.shape[0])
    whole = kpca.cross_moments(sparse.csr_matrix(s), sf)
    monkeypatch.setattr(kpca, "DENSE_BYTES", 8 * s.shape[1] * 7)  # slices of 64 rows
    sliced = kpca.cross_moments(sparse.csr_matrix(s), sf)
    y = np.log1p(s / sf[:, None])
    for out in (whole, sliced):
        np.testing.assert_allclose(out["gram"], y.T @ y, rtol=1e-10)
        np.testing.assert_allclose(out["sum"], y.sum(0), rtol=1e-10)
        assert out["n"][0] == s.shape[0]


def test_qc_sums_read_a_repeated_layer_once(layers):
    s, u = layers
    xs = sparse.csr_matrix(s)
    shared = [["spliced", "unspliced"]]
    cells_a, genes_a = gpp.qc_sums({"X": xs, "spliced": xs, "unspliced": u}, shared=shared)
    cells_b, genes_b = gpp.qc_sums({"X": xs, "spliced": xs.copy(), "unspliced": u}, shared=shared)
    # one (array, delayed) pair per compute: dask 2026.8 groups mixed collections by type
    # and returns them out of order (compute(array, delayed, array) -> array, array, delayed)
    ca, ga = compute(cells_a, genes_a)
    cb, gb = compute(cells_b, genes_b)
    assert ca.shape == cb.shape == (s.shape[0], 2 * 3 + 1 + 1)
    np.testing.assert_array_equal(ca, cb)
    for key in ("ncells", "sum", "shared"):
        np.testing.assert_array_equal(ga[key], gb[key])
