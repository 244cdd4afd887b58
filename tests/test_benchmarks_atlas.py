"""The continuous atlas generator of benchmarks/make_atlas.py, at 3,000 cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn
from benchmarks import make_atlas

N_CELLS = 3_000
ROWS = 1_000  # cells per Dask block (and per written chunk)
SPREAD_ROWS = 100  # the small chunk size the neighbourhood spread is measured with


@pytest.fixture(scope="module")
def template():
    return make_atlas.load_template("simple")


@pytest.fixture(scope="module")
def atlases(template):
    """Each order's AnnData (lazy) and its spliced and unspliced counts (computed)."""
    out = {}
    for order in make_atlas.ORDERS:
        adata = make_atlas.continuous_atlas(N_CELLS, ROWS, seed=0, order=order, template=template)
        s, u = dask_compute(adata.layers["spliced"], adata.layers["unspliced"])
        out[order] = (adata, s, u)
    return out


def dask_compute(*arrays):
    import dask

    return dask.compute(*arrays, scheduler="synchronous")


def _knn_of_rows(counts: sparse.csr_matrix, k: int = 10) -> np.ndarray:
    """Each row's k nearest other rows on 20 PCs of its own log1p normalised counts."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors
    from threadpoolctl import threadpool_limits

    totals = np.asarray(counts.sum(axis=1)).ravel()
    x = np.log1p(sparse.diags(np.median(totals) / np.maximum(totals, 1)) @ counts).toarray()
    with threadpool_limits(1):
        pcs = PCA(n_components=20, random_state=0).fit_transform(x)
        return NearestNeighbors(n_neighbors=k + 1).fit(pcs).kneighbors(pcs)[1][:, 1:]


def _chunk_spread(knn: np.ndarray, rows: int, share: float = 1.0) -> float:
    """Mean over row chunks of the number of chunks holding ``share`` of its cells' neighbours.

    ``share=1`` counts every chunk a neighbour lies in; ``share=0.9`` the fewest chunks that
    hold 90% of the neighbour entries (a few noisy neighbours do not count).
    """
    chunk = np.arange(len(knn)) // rows
    spread = []
    for c in range(chunk.max() + 1):
        counts = np.sort(np.bincount(chunk[knn[chunk == c]].ravel()))[::-1]
        covered = np.cumsum(counts) / counts.sum()
        spread.append(np.searchsorted(covered, share - 1e-9) + 1)
    return float(np.mean(spread))


def test_counts_are_nonnegative_integers(atlases):
    for adata, s, u in atlases.values():
        assert adata.shape == (N_CELLS, 2000)
        for m in (s, u):
            assert sparse.issparse(m) and m.format == "csr" and m.dtype == np.float32
            assert m.data.min() > 0  # zeros are not stored
            np.testing.assert_array_equal(m.data, np.round(m.data))


def test_orders_hold_the_same_cells_in_the_specified_order(atlases, template):
    cells = {
        order: np.sort(adata.obs["template_i"].to_numpy() * 10_000 + adata.obs["template_j"])
        for order, (adata, _, _) in atlases.items()
    }
    np.testing.assert_array_equal(cells["random"], cells["locality"])
    np.testing.assert_array_equal(cells["random"], cells["by-cluster"])

    codes = {o: a.obs["clusters"].cat.codes.to_numpy() for o, (a, _, _) in atlases.items()}
    assert np.all(np.diff(codes["by-cluster"]) >= 0)
    rank = template.rank[atlases["locality"][0].obs["template_i"].to_numpy()]
    assert np.all(np.diff(rank) >= 0)
    # random order: neighbouring rows share a cluster about as often as two random cells do
    p = np.bincount(codes["random"]) / N_CELLS
    same = np.mean(codes["random"][1:] == codes["random"][:-1])
    assert same < (p**2).sum() + 0.05
    # the neighbour is one of i's k = 15 nearest template cells, w in (0, 1)
    obs = atlases["random"][0].obs
    near = template.knn[obs["template_i"].to_numpy(), :15]
    assert np.all((near == obs["template_j"].to_numpy()[:, None]).any(axis=1))
    assert obs["weight"].between(0, 1).all()


def test_locality_order_keeps_neighbourhoods_in_few_chunks(atlases):
    # the kNN graph of the atlas's own cells, 10 neighbours, chunks of 100 rows (30 chunks)
    knn = {order: _knn_of_rows(s + u) for order, (_, s, u) in atlases.items()}
    every = {order: _chunk_spread(k, SPREAD_ROWS) for order, k in knn.items()}
    most = {order: _chunk_spread(k, SPREAD_ROWS, share=0.9) for order, k in knn.items()}
    n_chunks = N_CELLS // SPREAD_ROWS
    assert every["random"] > 0.95 * n_chunks  # measured 30 of 30
    assert every["locality"] < 0.6 * every["random"]  # measured 15
    assert most["random"] > 0.8 * n_chunks  # measured 26.4
    assert most["locality"] < 0.4 * most["random"]  # measured 7.9
    assert most["by-cluster"] < 0.4 * most["random"]  # measured 7.5


def test_cells_are_not_copies(atlases):
    _, s, u = atlases["random"]
    rows = sparse.hstack([s, u], format="csr")
    keys = {
        (rows.indices[a:b].tobytes(), rows.data[a:b].tobytes())
        for a, b in zip(rows.indptr[:-1], rows.indptr[1:], strict=True)
    }
    assert N_CELLS - len(keys) < 0.01 * N_CELLS


def test_library_size_has_the_requested_spread(atlases, template):
    def log_ratio(adata, s, u):
        # observed library size against the mixture's, before the library factor
        t = template.counts
        base = np.asarray((t["spliced"] + t["unspliced"]).sum(axis=1)).ravel()
        i, j = adata.obs["template_i"].to_numpy(), adata.obs["template_j"].to_numpy()
        w = adata.obs["weight"].to_numpy()
        expected = w * base[i] + (1 - w) * base[j]
        return np.log(np.asarray((s + u).sum(axis=1)).ravel() / expected)

    r = log_ratio(*atlases["random"])
    assert abs(np.std(r) - 0.3) < 0.03
    assert abs(np.median(r)) < 0.03
    flat = make_atlas.continuous_atlas(
        600, 600, seed=1, order="random", template=template, library_sd=0.0
    )
    s, u = dask_compute(flat.layers["spliced"], flat.layers["unspliced"])
    assert np.std(log_ratio(flat, s, u)) < 0.08  # Poisson noise only


def test_written_by_anndata_and_opened_by_dynadask(atlases, tmp_path):
    adata, s, _ = atlases["random"]
    path = make_atlas.write_anndata(adata, tmp_path / "atlas.zarr")
    lazy = dyn.io.open(path)
    assert lazy.shape == (N_CELLS, 2000)
    assert set(lazy.layers.keys()) == {"spliced", "unspliced"}
    assert list(lazy.obs["clusters"]) == list(adata.obs["clusters"])
    stored = dask_compute(lazy.X)[0]
    assert (stored != s).nnz == 0  # the same draws: seeded by block, not by scheduler
    out = dyn.io.convert(path, tmp_path / "converted.zarr", chunk_cells=ROWS)
    assert dyn.io.store_info(out)["n_obs"] == N_CELLS


def test_copies_kind_still_builds():
    obs, _, layers = make_atlas.atlas_arrays(300, 100, seed=0, order="by-cluster")
    assert np.all(np.diff(obs["clusters"].cat.codes.to_numpy()) >= 0)
    s = dask_compute(layers["spliced"])[0]
    assert s.shape == (300, 2000)
    np.testing.assert_array_equal(s.data, np.round(s.data))
