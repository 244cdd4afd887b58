"""reduceDimension: UMAP fitted on all cells or on a sample, blockwise transform, skipping."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness

import dynadask as dyn

N_CELLS = 1200


def _adata(x):
    a = ad.AnnData(np.zeros((len(x), 3), np.float32))
    a.obsm["X_pca"] = x
    return a


@pytest.fixture(scope="module")
def data():
    x, labels = make_blobs(N_CELLS, n_features=10, centers=5, cluster_std=2.0, random_state=0)
    return x.astype(np.float32), labels


@pytest.fixture(scope="module")
def full(data):
    a = _adata(data[0])
    dyn.tl.reduceDimension(a, n_pca_components=10, n_neighbors=15)
    return a


@pytest.fixture(scope="module")
def sampled(data):
    a = _adata(da.from_array(data[0], chunks=(300, -1)))
    dyn.tl.reduceDimension(
        a, n_pca_components=10, n_neighbors=15, max_fit_cells=800, n_fit_cells=500
    )
    return a


def test_full_fit_writes_embedding_and_record(full):
    assert full.obsm["X_umap"].shape == (N_CELLS, 2)
    fit = full.uns["umap_fit"]
    assert fit["X_fit"].shape == (N_CELLS, 10) and len(fit["fit_idx"]) == N_CELLS
    assert fit["umap_kwargs"]["min_dist"] == 0.5 and fit["n_pca_components"] == 10


def test_sample_fit_preserves_neighbourhoods(data, full, sampled):
    emb = np.asarray(sampled.obsm["X_umap"])
    assert len(sampled.uns["umap_fit"]["fit_idx"]) == 500
    t_data = trustworthiness(data[0], emb, n_neighbors=10)
    t_full = trustworthiness(full.obsm["X_umap"], emb, n_neighbors=10)
    assert t_data >= 0.9 and t_full >= 0.9


def test_reproducible_and_chunking_free(data, sampled):
    b = _adata(data[0])
    dyn.tl.reduceDimension(
        b, n_pca_components=10, n_neighbors=15, max_fit_cells=800, n_fit_cells=500
    )
    np.testing.assert_allclose(np.asarray(sampled.obsm["X_umap"]), b.obsm["X_umap"], atol=1e-4)


def test_skips_existing_unless_enforced(data, full):
    a = _adata(data[0])
    a.obsm["X_umap"] = np.zeros((N_CELLS, 2))
    with pytest.warns(UserWarning, match="enforce"):
        dyn.tl.reduceDimension(a, n_pca_components=10)
    assert (a.obsm["X_umap"] == 0).all()
    dyn.tl.reduceDimension(a, n_pca_components=10, n_neighbors=15, enforce=True)
    np.testing.assert_allclose(a.obsm["X_umap"], full.obsm["X_umap"], atol=1e-4)


def test_errors(data):
    a = ad.AnnData(np.zeros((10, 3), np.float32))
    with pytest.raises(ValueError, match="dyn.pp.pca"):
        dyn.tl.reduceDimension(a)
    b = _adata(data[0])
    with pytest.raises(ValueError, match="unknown basis"):
        dyn.tl.reduceDimension(b, basis="umap")
    with pytest.raises(ValueError, match="not available"):
        dyn.tl.reduceDimension(b, reduction_method="tsne")
    with pytest.raises(ValueError, match="unknown UMAP option"):
        dyn.tl.reduceDimension(b, n_pca_components=10, learning_rat=1.0)
    with pytest.raises(ValueError, match="dims .* ask for component 12"):
        dyn.tl.reduceDimension(b, dims=[0, 12])


def test_fewer_pcs_than_asked_are_all_used(data, full):
    """As in dynamo: X_pca with 10 columns and n_pca_components=30 embeds all 10."""
    b = _adata(data[0])
    dyn.tl.reduceDimension(b, n_pca_components=30, n_neighbors=15)
    assert b.uns["umap_fit"]["n_pca_components"] == 10
    np.testing.assert_allclose(np.asarray(b.obsm["X_umap"]), np.asarray(full.obsm["X_umap"]))


def test_transform_method_moves_cells_towards_their_velocity(data, full):
    x, labels = data
    rng = np.random.default_rng(0)
    genes = rng.normal(size=(10, 20))
    expr = x @ genes
    a = ad.AnnData(expr.astype(np.float32))
    a.var["use_for_pca"] = True
    mean = expr.mean(0)
    u, s, vt = np.linalg.svd(expr - mean, full_matrices=False)
    a.uns["PCs"] = vt[:10].T
    a.obsm["X_pca"] = (expr - mean) @ vt[:10].T
    dyn.tl.reduceDimension(a, n_pca_components=10, n_neighbors=15)
    src, dst = 0, 1
    shift = expr[labels == dst].mean(0) - expr[labels == src].mean(0)
    v = np.zeros_like(expr)
    v[labels == src] = 0.5 * shift
    a.layers["velocity_S"] = v
    dyn.tl.cell_velocities(a, method="transform")
    d = a.obsm["velocity_umap"][labels == src].mean(0)
    e = a.obsm["X_umap"]
    toward = e[labels == dst].mean(0) - e[labels == src].mean(0)
    assert d @ toward / np.linalg.norm(d) / np.linalg.norm(toward) > 0.5
    assert "transform_transition_matrix" not in a.obsp


def test_compiled_start_equals_umap_learns_own(data):
    # the compiled start of transformed points has umap-learn's numbers bit for bit: on a
    # membership graph with an exact match (a 1), an empty row and rows of weights, and
    # through a whole transform
    import umap
    import umap.umap_ as umap_module
    from scipy import sparse

    from dynadask.graph.embedding import compiled_start
    from dynadask.kernels.embedding import graph_average

    rng = np.random.default_rng(3)
    g = sparse.random(200, 80, density=0.1, random_state=4, dtype=np.float32).tocsr()
    g.data[::17] = 1.0
    g = sparse.vstack([g, sparse.csr_matrix((1, 80), dtype=np.float32)]).tocsr()
    emb = rng.normal(size=(80, 2)).astype(np.float32)
    want = umap_module.init_graph_transform(g, emb)
    assert np.isnan(want[-1]).all() and np.isfinite(want[:-1]).all()
    np.testing.assert_array_equal(graph_average(g, emb), want)
    x = data[0]
    model = umap.UMAP(n_neighbors=15, random_state=0, n_epochs=60).fit(x[:700])
    before = model.transform(x[700:])
    with compiled_start():
        assert umap_module.init_graph_transform is graph_average
        during = model.transform(x[700:])
    assert umap_module.init_graph_transform is not graph_average
    np.testing.assert_array_equal(during, before)
