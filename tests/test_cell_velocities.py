"""cell_velocities, the transition kernels, and per-cell confidence: invariants and parity."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.graph import neighbourhood as nb
from dynadask.graph import transition as gt
from dynadask.kernels import embedding as ek
from dynadask.kernels import transition as tk

TRANSITIONS = [
    ("Ductal", "Ngn3 low EP"),
    ("Ngn3 low EP", "Ngn3 high EP"),
    ("Ngn3 high EP", "Pre-endocrine"),
] + [("Pre-endocrine", c) for c in ("Alpha", "Beta", "Delta", "Epsilon")]


def _cos(u, w):
    return (u * w).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(w, axis=1)


def _knn(x, k):
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


# ---------------------------------------------------------------- kernels vs slow versions
def test_recursive_neighbours_match_sets():
    rng = np.random.default_rng(0)
    knn = np.column_stack([np.arange(40), rng.integers(0, 40, (40, 4))])
    ptr, nbr = tk.recursive_neighbours(knn, np.arange(5, 12), depth=2)
    for i, cell in enumerate(range(5, 12)):
        want = {cell} | set(knn[cell]) | {j for m in knn[cell] for j in knn[m]}
        assert list(nbr[ptr[i] : ptr[i + 1]]) == sorted(want)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_block_plan_lists_every_cell_the_rows_reach(depth):
    rng = np.random.default_rng(1)
    knn = np.column_stack([np.arange(300), rng.integers(0, 300, (300, 6))]).astype(np.int32)
    blocks = nb.plan_blocks(knn, [70, 100, 130], depth)
    assert [(b.start, b.stop) for b in blocks] == [(0, 70), (70, 170), (170, 300)]
    for b in blocks:
        want = set(range(b.start, b.stop))
        for _ in range(depth):
            want |= {int(j) for c in want for j in knn[c]}
        assert b.cells.dtype == np.int64 and list(b.cells) == sorted(want)


@pytest.mark.parametrize("centred", [True, False])
def test_correlation_kernel_matches_numpy(centred):
    rng = np.random.default_rng(1)
    x, v = rng.normal(size=(30, 12)), rng.normal(size=(30, 12))
    knn = _knn(x, 5)
    ptr, nbr = tk.recursive_neighbours(knn, np.arange(30), 1)
    got = tk.correlation_kernel(x, x, v, ptr, nbr, centred=centred)
    f = np.sign(v) * np.sqrt(np.abs(v))
    for i in range(30):
        for t in range(ptr[i], ptr[i + 1]):
            d = x[nbr[t]] - x[i]
            if nbr[t] == i:
                assert got[t] == 0
                continue
            a = np.sign(d) * np.sqrt(np.abs(d))
            want = (
                np.corrcoef(a, f[i])[0, 1]
                if centred
                else a @ f[i] / np.linalg.norm(a) / np.linalg.norm(f[i])
            )
            assert got[t] == pytest.approx(want, abs=1e-12)


def test_correlation_kernel_widens_float32_inputs():
    # the kernel reads float32 rows (a store's type) and widens each value: the same
    # numbers as on a float64 copy
    rng = np.random.default_rng(11)
    x = rng.gamma(1.0, 1.0, (80, 33)).astype(np.float32)
    v = rng.normal(size=(80, 33)).astype(np.float32)
    v[3] = 0.0
    ptr, nbr = tk.recursive_neighbours(_knn(x.astype(float), 6), np.arange(80), 2)
    for transform in ("sqrt", "log", "linear"):
        got = tk.correlation_kernel(x, x, v, ptr, nbr, transform=transform)
        want = tk.correlation_kernel(
            x.astype(float), x.astype(float), v.astype(float), ptr, nbr, transform=transform
        )
        np.testing.assert_array_equal(got, want)
        assert (got[ptr[3] : ptr[4]] == 0).all()


def test_correlations_are_computed_once(monkeypatch):
    # the transition matrix reuses the first pass's weights: one kernel call per block,
    # and the same matrix as normalising the weights of all cells at once
    rng = np.random.default_rng(12)
    n, g = 300, 10
    x, v, emb = rng.normal(size=(n, g)) + 5, rng.normal(size=(n, g)), rng.normal(size=(n, 2))
    knn = _knn(x, 8)
    calls = []
    kernel = tk.correlation_kernel
    monkeypatch.setattr(
        tk, "correlation_kernel", lambda *a, **k: calls.append(1) or kernel(*a, **k)
    )
    inp = gt.KernelInputs(
        da.from_array(x, chunks=(70, g)), da.from_array(v, chunks=(70, g)), knn, emb, 70
    )
    trans, velocity = gt.correlation_transitions(inp)
    got = trans.compute(scheduler="sync")
    assert len(calls) == 5  # 5 row blocks of 70, 70, 70, 70, 20 cells
    rows = np.arange(n)
    ptr, nbr = tk.recursive_neighbours(knn, rows, 2)
    corr = kernel(x, x, v, ptr, nbr)
    upper = np.percentile(tk.row_confidence(corr, ptr), 98)
    want = gt._csr(rows, ptr, nbr, tk.correlation_transition(corr, ptr, nbr, rows, upper), n)
    got = sparse.csr_matrix(got)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=2e-7)
    parts = ek.projection_parts(tk.correlation_weights(corr, ptr, nbr, rows), ptr, nbr, rows, emb)
    stay = tk.self_weight(tk.row_confidence(corr, ptr), upper)
    np.testing.assert_allclose(velocity, ek.finish_projection(parts, stay), rtol=1e-12)


def test_correlation_rows_sum_to_one_with_self_share():
    rng = np.random.default_rng(2)
    x, v = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    ptr, nbr = tk.recursive_neighbours(_knn(x, 6), np.arange(50), 2)
    corr = tk.correlation_kernel(x, x, v, ptr, nbr)
    upper = np.percentile(tk.row_confidence(corr, ptr), 98)
    w = tk.correlation_transition(corr, ptr, nbr, np.arange(50), upper)
    stay = tk.self_weight(tk.row_confidence(corr, ptr), upper)
    raw = tk.correlation_weights(corr, ptr, nbr, np.arange(50))
    owner = np.repeat(np.arange(50), np.diff(ptr))
    total = np.bincount(owner, np.abs(raw)) + stay
    rows = np.bincount(owner, np.abs(w)) + stay / total
    np.testing.assert_allclose(rows, 1.0, atol=1e-12)
    assert (np.bincount(owner, np.abs(w)) <= 1 + 1e-12).all()


def test_ito_rows_sum_to_one_and_match_formula():
    rng = np.random.default_rng(3)
    x, v = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    ptr, nbr = tk.recursive_neighbours(_knn(x, 6), np.arange(40), 2)
    p = tk.ito_kernel(x, x, v, ptr, nbr, m_diff=2.0, adaptive=False, tol=0.0)
    owner = np.repeat(np.arange(40), np.diff(ptr))
    np.testing.assert_allclose(np.bincount(owner, p), 1.0, atol=1e-12)
    i = 7
    d = x[nbr[ptr[i] : ptr[i + 1]]] - x[i]
    k = np.exp(-0.25 / 2.0 * ((d - v[i]) ** 2).sum(1))
    np.testing.assert_allclose(p[ptr[i] : ptr[i + 1]], k / k.sum(), rtol=1e-10)
    pa = tk.ito_kernel(x, x, v, ptr, nbr)
    np.testing.assert_allclose(np.bincount(owner, pa), 1.0, atol=1e-12)


def test_projection_parts_equal_projection_of_normalised_matrix():
    rng = np.random.default_rng(4)
    x, v, emb = rng.normal(size=(60, 9)), rng.normal(size=(60, 9)), rng.normal(size=(60, 2))
    rows = np.arange(60)
    ptr, nbr = tk.recursive_neighbours(_knn(x, 5), rows, 2)
    corr = tk.correlation_kernel(x, x, v, ptr, nbr)
    upper = np.percentile(tk.row_confidence(corr, ptr), 98)
    w = tk.correlation_transition(corr, ptr, nbr, rows, upper)
    t = gt._csr(rows, ptr, nbr, w, 60)
    direct = ek.project_transitions(t.indptr, t.indices, t.data.astype(float), rows, emb)
    parts = ek.projection_parts(tk.correlation_weights(corr, ptr, nbr, rows), ptr, nbr, rows, emb)
    via = ek.finish_projection(parts, tk.self_weight(tk.row_confidence(corr, ptr), upper))
    np.testing.assert_allclose(direct, via, atol=1e-6)


# ------------------------------------------------------------------- behaviour of the API
def _moving_cell_adata(seed=5):
    """Cells on a 2-D grid mapped into 40 genes; the middle cell moves to one neighbour."""
    rng = np.random.default_rng(seed)
    side, g = 25, 40
    coords = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2) * 1.0
    coords += rng.normal(scale=0.05, size=coords.shape)
    n = len(coords)
    x = coords @ rng.normal(size=(2, g)) + 20.0
    knn = _knn(coords, 15)
    v = rng.normal(scale=1e-4, size=(n, g))
    cell = side * (side // 2) + side // 2
    target = knn[cell, 3]
    v[cell] = x[target] - x[cell]
    a = ad.AnnData(np.zeros((n, g), np.float32))
    a.layers["M_s"], a.layers["velocity_S"] = x, v
    a.var["use_for_transition"] = True
    rows = np.repeat(np.arange(n), 14)
    d = np.sqrt(((x[rows] - x[knn[:, 1:].ravel()]) ** 2).sum(1))
    a.obsp["distances"] = sparse.csr_matrix((d, (rows, knn[:, 1:].ravel())), shape=(n, n))
    a.obsm["X_pca"] = coords
    return a, cell, target


@pytest.mark.parametrize("method", ["pearson", "cosine", "kmc"])
def test_velocity_of_cell_moving_to_a_neighbour_points_to_it(method):
    a, cell, target = _moving_cell_adata()
    dyn.tl.cell_velocities(a, basis="pca", method=method, n_neighbors=15)
    u = a.obsm["velocity_pca"][cell]
    d = a.obsm["X_pca"][target] - a.obsm["X_pca"][cell]
    assert u @ d / np.linalg.norm(u) / np.linalg.norm(d) > 0.9


# ------------------------------------------------------------------ pancreas: parity etc.
@pytest.fixture(scope="module")
def ref():
    from pathlib import Path

    return ad.read_h5ad(Path(__file__).parent / "data" / "pancreas_dynamo_reference.h5ad")


@pytest.fixture(scope="module")
def ours(ref):
    a = ref.copy()
    for k in ("velocity_umap", "velocity_pca"):
        del a.obsm[k]
    del a.var["use_for_transition"]
    dyn.tl.cell_velocities(a)
    dyn.tl.cell_velocities(a, basis="pca")
    return a


def test_transition_genes_as_dynamo(ours, ref):
    assert (ours.var["use_for_transition"].values == ref.var["use_for_transition"].values).all()
    assert ours.var["use_for_transition"].sum() == 364


def test_parity_umap_and_pca_velocity(ours, ref):
    assert np.nanmedian(_cos(ours.obsm["velocity_umap"], ref.obsm["velocity_umap"])) >= 0.99
    pcs = np.asarray(ref.uns["PCs"])
    gene = _cos(ours.obsm["velocity_pca"] @ pcs.T, ref.obsm["velocity_pca"] @ pcs.T)
    assert np.nanmedian(gene) >= 0.99


def test_transition_matrix_rows(ours):
    t = ours.obsp["pearson_transition_matrix"]
    rows = np.asarray(abs(t).sum(1)).ravel()
    assert (rows <= 1 + 1e-5).all() and np.median(rows) > 0.9
    assert t.diagonal().max() == 0


def test_grid_velocity_layout(ours):
    grid = ours.uns["grid_velocity_umap"]
    assert grid["X_grid"].shape == (2, 50) and grid["V_grid"].shape == (2, 50, 50)
    assert np.isfinite(grid["V_grid"][1]).all() and np.isnan(grid["V_grid"][0]).any()


def test_cross_boundary_direction(ours, ref):
    mine = dyn.tl.cross_boundary_direction(ours, "clusters", TRANSITIONS)
    theirs = dyn.tl.cross_boundary_direction(ref, "clusters", TRANSITIONS)
    for t in TRANSITIONS:
        assert mine[t] == pytest.approx(theirs[t], abs=0.02)
    assert mine[("Ngn3 low EP", "Ngn3 high EP")] > 0.5


def test_direction_scores_kernel():
    v = np.array([[1.0, 0.0], [0.0, 1.0]])
    emb = np.zeros((2, 2))
    nbr = np.array([[[1.0, 0.0], [-1.0, 0.0]], [[1.0, 0.0], [0.0, 2.0]]])
    s = ek.direction_scores(v, emb, nbr, np.array([[True, False], [True, True]]))
    np.testing.assert_allclose(s, [1.0, 0.5])


# --------------------------------------------------------------- chunked == in-memory
@pytest.fixture(scope="module")
def small(ref):
    a = ref[:900].copy()
    a.obsp["distances"] = sparse.csr_matrix(a.obsp["distances"])
    return a


def test_chunked_and_dask_inputs_equal_in_memory(small):
    a = small.copy()
    dyn.tl.cell_velocities(a, enforce=True)
    b = small.copy()
    for k in ("M_s", "velocity_S"):
        b.layers[k] = da.from_array(np.asarray(b.layers[k]), chunks=(200, -1))
    dyn.tl.cell_velocities(b, enforce=True)
    np.testing.assert_allclose(a.obsm["velocity_umap"], b.obsm["velocity_umap"], atol=1e-10)
    ta, tb = a.obsp["pearson_transition_matrix"], b.obsp["pearson_transition_matrix"]
    assert abs(ta - tb).max() < 1e-7


def test_store_backed_equals_in_memory(small, tmp_path):
    a = small.copy()
    dyn.tl.cell_velocities(a, enforce=True)
    src = tmp_path / "small.h5ad"
    small.write_h5ad(src)
    dyn.io.convert(src, tmp_path / "small.zarr", chunk_cells=300)
    s = dyn.io.open(tmp_path / "small.zarr")
    dyn.tl.cell_velocities(s, enforce=True)
    np.testing.assert_allclose(
        np.asarray(s.obsm["velocity_umap"]), a.obsm["velocity_umap"], atol=1e-8
    )
    again = dyn.io.open(tmp_path / "small.zarr")
    t = again.obsp["pearson_transition_matrix"]
    t = sparse.vstack(list(da.compute(*t.to_delayed().ravel()))) if isinstance(t, da.Array) else t
    assert abs(sparse.csr_matrix(t) - a.obsp["pearson_transition_matrix"]).max() < 1e-7
    np.testing.assert_allclose(
        again.uns["grid_velocity_umap"]["X_grid"], a.uns["grid_velocity_umap"]["X_grid"], rtol=1e-6
    )


# ----------------------------------------------------------------------- confidence
@pytest.mark.parametrize("method", ["cosine", "correlation", "consensus", "jaccard"])
def test_cell_wise_confidence(small, method):
    a = small.copy()
    dyn.tl.cell_wise_confidence(a, method=method)
    c = a.obs[f"{method}_velocity_confidence"].to_numpy()
    assert c.shape == (a.n_obs,) and np.isfinite(c).all()
    assert (c <= 1 + 1e-9).all() and c.mean() > (0.15 if method == "jaccard" else 0.5)


def test_cosine_confidence_matches_loop(small):
    a = small.copy()
    dyn.tl.cell_wise_confidence(a, method="cosine")
    v = np.asarray(a.layers["velocity_S"])
    v = v[:, np.isfinite(v.sum(0))]
    knn = nb.self_padded(nb.knn_from_graph(a.obsp["distances"], 30)[0])
    i = 17
    want = np.mean([v[i] @ v[j] / np.linalg.norm(v[i]) / np.linalg.norm(v[j]) for j in knn[i]])
    assert a.obs["cosine_velocity_confidence"].iloc[i] == pytest.approx(want, rel=1e-6)


# ------------------------------------------------------------------------ clear errors
def test_errors(small):
    a = small.copy()
    with pytest.raises(ValueError, match="unknown basis"):
        dyn.tl.cell_velocities(a, basis="tsne")
    with pytest.raises(ValueError, match="unknown method"):
        dyn.tl.cell_velocities(a, method="magic")
    with pytest.raises(TypeError, match="unknown option"):
        dyn.tl.cell_velocities(a, sigma=3)
    b = small.copy()
    del b.layers["velocity_S"]
    with pytest.raises(ValueError, match="dyn.tl.dynamics"):
        dyn.tl.cell_velocities(b, enforce=True)
    c = small.copy()
    with pytest.raises(ValueError, match="obsp\\['my_graph'\\] is missing"):
        dyn.tl.cell_velocities(c, adj_key="my_graph", enforce=True)


def test_knn_graph_made_on_demand(small):
    """Without a kNN graph, cell_velocities makes dynamo's (30 neighbours on X_pca) first."""
    c = small.copy()
    del c.obsp["distances"], c.obsp["connectivities"], c.uns["neighbors"]
    dyn.tl.cell_velocities(c, enforce=True)
    d = c.obsp["distances"]
    assert d.shape == (c.n_obs, c.n_obs)
    np.testing.assert_array_equal(np.diff(d.indptr), 29)
    assert c.uns["neighbors"]["params"]["n_neighbors"] == 30
    v = np.asarray(c.obsm["velocity_umap"])
    assert np.isfinite(v).all() and np.median(np.linalg.norm(v, axis=1)) > 0
    with pytest.raises(ValueError, match="unknown method"):
        dyn.tl.cell_wise_confidence(small.copy(), method="magic")
