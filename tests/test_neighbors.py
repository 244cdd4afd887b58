"""tl.neighbors and the kNN kernels: slow versions, dynamo parity, store == memory, errors."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.graph import neighbors as gn
from dynadask.kernels import neighbors as kn


def _brute(x, k):
    d = np.sqrt(((x[:, None].astype(np.float64) - x[None]) ** 2).sum(-1))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, 1)


def _overlap(a, b):
    """Mean share of each row's stored neighbours of ``a`` that ``b`` also stores."""
    a, b = sparse.csr_matrix(a), sparse.csr_matrix(b)
    shares = []
    for i in range(a.shape[0]):
        ra = set(a.indices[a.indptr[i] : a.indptr[i + 1]])
        rb = set(b.indices[b.indptr[i] : b.indptr[i + 1]])
        shares.append(len(ra & rb) / max(len(ra), 1))
    return float(np.mean(shares))


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(3, 6))
    x = np.vstack([c + rng.normal(size=(40, 6)) for c in centres]).astype(np.float32)
    return ad.AnnData(obs={"cell": np.arange(len(x)).astype(str)}, obsm={"X_pca": x})


# ---------------------------------------------------------------- kernels vs slow versions
def test_self_first_moves_or_inserts_the_cell():
    idx = np.array([[3, 0, 5], [4, 2, 7]])
    dist = np.array([[0.0, 0.0, 1.0], [0.5, 0.7, 0.9]], dtype=np.float32)
    got_i, got_d = kn.self_first(idx, dist, row0=0)
    assert got_i.tolist() == [[0, 3, 5], [1, 4, 2]]
    assert np.allclose(got_d, [[0, 0, 1], [0, 0.5, 0.7]])


def test_knn_from_distances_matches_loop():
    rng = np.random.default_rng(1)
    g = sparse.random(20, 20, density=0.3, random_state=2, format="csr", dtype=np.float32)
    g.data = rng.uniform(0.1, 5, g.nnz).astype(np.float32)
    g.setdiag(0)
    g.eliminate_zeros()
    idx, dist = kn.knn_from_distances(g.indptr, g.indices, g.data, 0, 4)
    for i in range(20):
        row = g[i].toarray().ravel()
        order = [j for j in np.argsort(row, kind="stable") if row[j] > 0][:3]
        assert idx[i, 0] == i and dist[i, 0] == 0
        want = order + [-1] * (3 - len(order))
        assert idx[i, 1:].tolist() == want


def test_distance_graphs_match_loop():
    x = np.random.default_rng(3).normal(size=(25, 4)).astype(np.float32)
    idx, dist = _brute(x, 6)
    d, c = kn.distance_graphs(idx, dist.astype(np.float32), 25)
    for i in range(25):
        for j in range(1, 6):
            assert d[i, idx[i, j]] == pytest.approx(dist[i, j], rel=1e-6)
    assert d.nnz == c.nnz == 25 * 5 and set(c.data) == {1.0}
    assert d.diagonal().sum() == 0


def test_fuzzy_union_matches_umap():
    from umap.umap_ import fuzzy_simplicial_set

    x = np.random.default_rng(4).normal(size=(60, 5)).astype(np.float32)
    idx, dist = _brute(x, 8)
    want = fuzzy_simplicial_set(
        x,
        8,
        np.random.RandomState(0),
        "euclidean",
        knn_indices=idx,
        knn_dists=dist.astype(np.float32),
    )[0]
    got = kn.fuzzy_union(idx, kn.fuzzy_weights(idx, dist, 8), n_epochs=10**12)
    assert abs(got - want).max() < 1e-6
    pruned = kn.fuzzy_union(idx, kn.fuzzy_weights(idx, dist, 8), n_epochs=5)
    assert pruned.data.min() >= got.data.max() / 5 and pruned.nnz < got.nnz


def test_gaussian_graph_matches_loop():
    x = np.random.default_rng(5).normal(size=(15, 3))
    idx, dist = _brute(x, 4)
    g = kn.gaussian_graph(idx, dist, sigma=2.0).toarray()
    for i in range(15):
        for j in range(4):
            assert g[i, idx[i, j]] == pytest.approx(np.exp(-(dist[i, j] ** 2) / 8))


def test_choose_method_follows_dynamo():
    assert gn.choose_method(3000, 30, None) == "ball_tree"
    assert gn.choose_method(3000, 5, None) == "kd_tree"
    assert gn.choose_method(6000, 30, None) == "pynn"
    assert gn.choose_method(60000, 2, None) == "kd_tree"
    with pytest.raises(ValueError, match="hnswlib"):
        gn.choose_method(10, 3, "hnswlib")
    with pytest.raises(ValueError, match="unknown kNN method"):
        gn.choose_method(10, 3, "annoy")


@pytest.mark.parametrize(
    "method", ["ball_tree", "brute", pytest.param("pynn", marks=pytest.mark.slow)]
)
def test_search_methods_find_the_true_neighbours(method):
    """pynndescent compiles its numba search on first use (over a minute on 2 cores): slow."""
    x = np.random.default_rng(6).normal(size=(300, 8)).astype(np.float32)
    idx, dist = gn.knn(x, 10, method)
    want, wd = _brute(x, 10)
    assert (idx[:, 0] == np.arange(300)).all()
    share = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, want, strict=True)])
    assert share >= (0.95 if method == "pynn" else 1.0)
    if method != "pynn":
        assert np.allclose(dist, wd, atol=1e-4)


def test_groups_never_mix():
    x = np.random.default_rng(7).normal(size=(50, 3)).astype(np.float32)
    groups = [np.arange(0, 50, 2), np.arange(1, 50, 2)]
    (idx, _), k_cell = gn.knn_in_groups(x, 8, groups, None)
    assert (k_cell == 8).all()
    assert ((idx % 2) == (np.arange(50) % 2)[:, None]).all()
    small = [np.arange(0, 4), np.arange(4, 50)]
    (idx, _), k_cell = gn.knn_in_groups(x, 8, small, None)
    assert (k_cell[:4] == 3).all() and (idx[:4, 3:] == -1).all() and (idx[:4, :3] < 4).all()


# ---------------------------------------------------------------- API
def test_neighbors_writes_dynamo_keys(blobs):
    dyn.tl.neighbors(blobs, n_neighbors=10)
    d, c = blobs.obsp["distances"], blobs.obsp["connectivities"]
    assert d.shape == (120, 120) and (np.diff(d.indptr) == 9).all()
    assert set(c.data) == {1.0} and (d != 0).nnz == c.nnz
    idx, dist = _brute(blobs.obsm["X_pca"], 10)
    assert (blobs.uns["neighbors"]["indices"] == idx).all()
    params = blobs.uns["neighbors"]["params"]
    assert params["n_neighbors"] == 10 and params["metric"] == "euclidean"
    # a cell's neighbours are in its own blob
    assert (blobs.uns["neighbors"]["indices"] // 40 == np.arange(120)[:, None] // 40).all()


def test_neighbors_prefix_and_x_data(blobs):
    x = blobs.obsm["X_pca"][:, :2]
    dyn.tl.neighbors(blobs, da.from_array(x, chunks=50), n_neighbors=5, result_prefix="two")
    assert "two_distances" in blobs.obsp and "two_connectivities" in blobs.obsp
    assert (blobs.uns["two_neighbors"]["indices"] == _brute(x, 5)[0]).all()


def test_neighbors_pancreas_parity(reference):
    a = ad.AnnData(obs=reference.obs[[]], obsm={"X_pca": reference.obsm["X_pca"]})
    dyn.tl.neighbors(a)
    assert _overlap(reference.obsp["distances"], a.obsp["distances"]) >= 0.99
    assert (a.obsp["connectivities"] != reference.obsp["connectivities"]).nnz == 0
    ref = reference.obsp["distances"]
    assert abs(a.obsp["distances"] - ref).max() < 1e-3


@pytest.mark.slow
def test_neighbors_pancreas_parity_nndescent(reference):
    a = ad.AnnData(obs=reference.obs[[]], obsm={"X_pca": reference.obsm["X_pca"]})
    dyn.tl.neighbors(a, method="pynn")
    assert _overlap(reference.obsp["distances"], a.obsp["distances"]) >= 0.85


def test_neighbors_store_equals_memory(blobs, tmp_path):
    blobs.write_h5ad(tmp_path / "b.h5ad")
    dyn.io.convert(tmp_path / "b.h5ad", tmp_path / "b.zarr", chunk_cells=50)
    s = dyn.io.open(tmp_path / "b.zarr")
    dyn.tl.neighbors(s, n_neighbors=7)
    dyn.tl.neighbors(blobs, n_neighbors=7)
    got = s.obsp["distances"].compute()
    assert abs(sparse.csr_matrix(got) - blobs.obsp["distances"]).max() == 0
    again = dyn.io.open(tmp_path / "b.zarr")
    assert again.uns["neighbors"]["params"]["n_neighbors"] == 7
    assert "neighbors" in again.uns["dynadask"]["stages"]


def test_neighbors_errors(blobs):
    bare = ad.AnnData(obs=blobs.obs)
    with pytest.raises(ValueError, match=r"dyn\.pp\.pca"):
        dyn.tl.neighbors(bare)
    with pytest.raises(ValueError, match="umap.*missing|missing.*reduceDimension|X_umap"):
        dyn.tl.neighbors(blobs, basis="umap")
    with pytest.raises(ValueError, match="rows"):
        dyn.tl.neighbors(blobs, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="n_neighbors"):
        dyn.tl.neighbors(blobs, n_neighbors=1)
    with pytest.raises(ValueError, match="unknown kNN method"):
        dyn.tl.neighbors(blobs, method="nope")
    with pytest.raises(ValueError, match="embedding"):
        dyn.tl.neighbors(blobs, basis=None, layer="spliced")
    nan = blobs.copy()
    nan.obsm["X_pca"][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        dyn.tl.neighbors(nan)
    with pytest.warns(UserWarning, match="cores"):
        dyn.tl.neighbors(blobs, cores=4)
