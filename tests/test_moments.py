"""tl.moments and its kernels: slow versions, dynamo parity, labelling times, store == memory."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask.graph import moments as gm
from dynadask.graph import neighbourhood as nb
from dynadask.kernels import moments as km
from dynadask.tl.moments import moment_jobs


def _pearson_per_gene(x, y):
    x = x - x.mean(0)
    y = y - y.mean(0)
    den = np.sqrt((x * x).sum(0) * (y * y).sum(0))
    ok = den > 0
    return (x * y).sum(0)[ok] / den[ok]


def _graph(n, density=0.1, seed=0):
    g = sparse.random(n, n, density=density, random_state=seed, format="csr")
    g = ((g + g.T) > 0).astype(np.float32)
    return km.smoothing_graph(g)


def _reference_input(reference, pancreas):
    """Reference X_pca and the size-factor normalised layers dynamo smoothed."""
    a = ad.AnnData(
        obs=reference.obs[["spliced_Size_Factor", "unspliced_Size_Factor"]].copy(),
        var=reference.var[[]].copy(),
        obsm={"X_pca": reference.obsm["X_pca"]},
    )
    for layer in ("spliced", "unspliced"):
        sf = reference.obs[f"{layer}_Size_Factor"].to_numpy()
        a.layers[f"X_{layer}"] = sparse.csr_matrix(sparse.diags(1 / sf) @ pancreas.layers[layer])
    return a


@pytest.fixture
def labelled():
    """Two labelling times on the same manifold: new RNA 0 at t=1, 100 at t=2."""
    rng = np.random.default_rng(0)
    n = 200
    x = rng.normal(size=(n, 5)).astype(np.float32)
    time = np.repeat([1.0, 2.0], n // 2)
    new = np.where(time[:, None] == 1, 0.0, 100.0) + rng.uniform(0, 1, (n, 4))
    total = new + rng.uniform(0, 5, (n, 4))
    a = ad.AnnData(
        obs={"time": time},
        obsm={"X_pca": x},
        layers={"X_new": sparse.csr_matrix(new), "X_total": total},
    )
    a.uns["pp"] = {"tkey": "time", "experiment_type": "kin"}
    return a


# ---------------------------------------------------------------- kernels vs slow versions
def test_smoothing_graph_is_mean_over_self_and_neighbours():
    g = sparse.csr_matrix(np.array([[0, 0.3, 0], [0.3, 0, 0.8], [0, 0.8, 0]]))
    w = km.smoothing_graph(g).toarray()
    assert np.allclose(w, [[0.5, 0.5, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5]])


def test_smooth_matches_loop_for_sparse_and_dense():
    rng = np.random.default_rng(1)
    w = _graph(30, seed=1)
    x = sparse.random(30, 6, density=0.4, random_state=2, format="csr")
    y = rng.uniform(size=(30, 6))
    needed, local = km.local_rows(w[10:20])
    for xx, yy in ((x, None), (x, y), (x.toarray(), y)):
        got = km.smooth(local, km.take_rows(xx, needed), None if yy is None else yy[needed])
        for r, i in enumerate(range(10, 20)):
            want = np.zeros(6)
            for j in range(30):
                prod = np.asarray(xx[j].toarray() if sparse.issparse(xx) else xx[j]).ravel()
                if yy is not None:
                    prod = prod * yy[j]
                want += w[i, j] * prod
            assert np.allclose(got[r], want, rtol=1e-6)


def test_smooth_places_gene_columns():
    w = _graph(10, seed=3)
    x = np.arange(10 * 4, dtype=float).reshape(10, 4)
    cols = np.array([0, 3])
    needed, local = km.local_rows(w)
    got = km.smooth(local, km.take_rows(x, needed, cols), cols=cols, n_vars=4)
    assert np.allclose(got[:, [1, 2]], 0)
    assert np.allclose(got[:, cols], (w @ x)[:, cols], rtol=1e-6)


def test_smooth_in_steps_equals_one_pass_and_keeps_float32_inputs():
    # rows done a few at a time, on float32 gathered rows, give the same float32 result
    w = _graph(40, seed=4)
    x = sparse.random(40, 5, density=0.5, random_state=5, format="csr", dtype=np.float32)
    y = sparse.random(40, 5, density=0.5, random_state=6, format="csr", dtype=np.float32)
    cols = np.array([1, 2, 4])
    needed, local = km.local_rows(w[5:35])
    x32 = km.take_rows(x, needed, cols, dtype=None)
    assert x32.dtype == np.float32
    whole = km.smooth(
        local,
        km.take_rows(x, needed, cols),
        km.take_rows(y, needed, cols),
        cols=cols,
        n_vars=5,
        step=10**6,
    )
    steps = km.smooth(
        local, x32, km.take_rows(y, needed, cols, dtype=None), cols=cols, n_vars=5, step=7
    )
    want = (w @ (x.multiply(y)).astype(np.float64)).toarray()[5:35]
    assert np.array_equal(steps, whole)
    assert np.allclose(steps[:, cols], want[:, cols], rtol=1e-6)
    assert not steps[:, [0, 3]].any()
    dense = km.smooth(local, x32.toarray(), None, cols=cols, n_vars=5, step=3)
    assert np.allclose(dense[:, cols], (w @ x.astype(np.float64)).toarray()[5:35][:, cols])


def _pieces(m, cuts, rows):
    """``m``'s rows ``rows`` as :class:`km.Pieces` over the row blocks cut at ``cuts``."""
    bounds = np.concatenate([[0], cuts, [m.shape[0]]])
    blocks, positions = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        inside = rows[(rows >= lo) & (rows < hi)]
        if inside.size:
            blocks.append(m[lo:hi])
            positions.append(inside - lo)
    return km.Pieces(blocks, positions)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_smooth_from_sparse_blocks_equals_gathered_product(dtype):
    # the block-wise kernel (no gathered rows) gives the gathered float64 product bit for bit
    w = _graph(90, density=0.07, seed=7)
    x = sparse.random(90, 12, density=0.35, random_state=8, format="csr") * 9
    y = sparse.random(90, 12, density=0.5, random_state=9, format="csr") * 9
    x, y = (sparse.csr_matrix(m.astype(dtype)) for m in (x, y))
    needed, local = km.local_rows(w[20:70])
    cuts = np.array([25, 40, 77])
    px, py = _pieces(x, cuts, needed), _pieces(y, cuts, needed)
    assert len(px.blocks) == 4
    cols = np.array([0, 3, 4, 10])
    for yy, cc in ((None, None), (py, None), (px, None), (py, cols)):
        got = km.smooth(local, px, yy, cc, 12, step=9)
        want_y = None if yy is None else km.take_rows(y if yy is py else x, needed, cc)
        gathered = km.smooth(local, km.take_rows(x, needed, cc), want_y, cc, 12, step=9)
        assert np.array_equal(got, gathered)
        prod = x if yy is None else x.multiply(y if yy is py else x)
        want = (w @ prod.astype(np.float64)).toarray()[20:70]
        keep = slice(None) if cc is None else cc
        assert np.allclose(got[:, keep], want[:, keep], rtol=1e-6)
        assert np.abs(got).sum() > 1
        if cc is not None:
            assert not np.delete(got, cc, axis=1).any()


def test_smooth_from_unsorted_blocks_with_duplicates():
    # a block with unsorted and repeated column indices counts as its canonical form
    w = _graph(12, density=0.3, seed=2)
    raw = sparse.csr_matrix(
        (np.array([1.0, 2.0, 4.0, 8.0]), np.array([2, 0, 2, 1]), np.array([0, 3] + [4] * 11)),
        shape=(12, 3),
    )
    assert not raw.has_canonical_format
    needed, local = km.local_rows(w)
    got = km.smooth(local, _pieces(raw, np.array([6]), needed))
    want = w @ np.vstack([[2.0, 0.0, 5.0], [0.0, 8.0, 0.0]] + [[0.0, 0.0, 0.0]] * 10)
    assert np.allclose(got, want, rtol=1e-6)
    assert got.sum() > 0


def test_chunks_touched():
    band = sparse.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(40, 40), format="csr")
    assert nb.chunks_touched(band, (10,) * 4).tolist() == [2, 3, 3, 2]


@pytest.mark.parametrize("kind", ["numpy", "scipy", "dask", "dask-sparse"])
def test_smooth_inputs_equals_dense_product(kind):
    w = _graph(57, density=0.08, seed=4)
    x = sparse.random(57, 9, density=0.3, random_state=5, format="csr")
    y = sparse.random(57, 9, density=0.3, random_state=6, format="csr")
    wrap = {
        "numpy": lambda m: m.toarray(),
        "scipy": lambda m: m,
        "dask": lambda m: da.from_array(m.toarray(), chunks=(13, 9)),
        "dask-sparse": lambda m: gm.as_rows(m, rows=20),
    }[kind]
    inputs = {"a": gm.Input(wrap(x)), "b": gm.Input(wrap(y))}
    out = gm.smooth_inputs(w, inputs, {"Ma": ("a", None), "Mab": ("a", "b")})
    assert np.allclose(out["Ma"].compute(), w @ x.toarray(), rtol=1e-5, atol=1e-7)
    assert np.allclose(out["Mab"].compute(), w @ x.multiply(y).toarray(), rtol=1e-5, atol=1e-7)


def test_moment_jobs_use_dynamo_names():
    assert moment_jobs(["X_spliced", "X_unspliced"]) == {
        "M_u": ("X_unspliced", None),
        "M_uu": ("X_unspliced", "X_unspliced"),
        "M_s": ("X_spliced", None),
        "M_us": ("X_unspliced", "X_spliced"),
        "M_ss": ("X_spliced", "X_spliced"),
    }
    assert set(moment_jobs(["X_new", "X_total"])) == {"M_t", "M_tt", "M_n", "M_tn", "M_nn"}
    assert set(moment_jobs(["X_uu", "X_ul", "X_su", "X_sl"])) == {"M_uu", "M_ul", "M_su", "M_sl"}
    both = moment_jobs(["X_spliced", "X_unspliced", "X_uu"])
    assert both["M_uu"] == ("X_unspliced", "X_unspliced")


# ---------------------------------------------------------------- dynamo parity
@pytest.mark.parametrize("with_graph", [True, False])
def test_moments_pancreas_parity(reference, pancreas, with_graph):
    a = _reference_input(reference, pancreas)
    if with_graph:
        dyn.tl.neighbors(a)
    dyn.tl.moments(a)
    for key in ("M_s", "M_u"):
        r = _pearson_per_gene(a.layers[key].astype(float), reference.layers[key].astype(float))
        assert np.median(r) >= 0.999 and r.min() > 0.99
    pattern = (a.obsp["moments_con"] > 0) != (reference.obsp["moments_con"] > 0)
    assert pattern.nnz <= (0 if with_graph else 100)
    assert {"M_ss", "M_us", "M_uu"} <= set(a.layers)
    assert a.layers["M_s"].dtype == np.float32
    s = a.layers["X_spliced"]
    assert np.allclose(
        a.layers["M_ss"], a.obsp["moments_con"] @ s.multiply(s).toarray(), rtol=1e-5, atol=1e-6
    )


def test_moments_store_equals_memory(reference, pancreas, tmp_path):
    a = _reference_input(reference, pancreas)[:1200].copy()
    a.write_h5ad(tmp_path / "a.h5ad")
    dyn.io.convert(tmp_path / "a.h5ad", tmp_path / "a.zarr", chunk_cells=250)
    s = dyn.io.open(tmp_path / "a.zarr")
    dyn.tl.moments(s)
    dyn.tl.moments(a)
    for key in ("M_s", "M_u", "M_ss", "M_us", "M_uu"):
        assert isinstance(s.layers[key], da.Array)
        assert np.array_equal(s.layers[key].compute(), a.layers[key])
    again = dyn.io.open(tmp_path / "a.zarr")
    assert "moments" in again.uns["dynadask"]["stages"]
    assert (
        abs(sparse.csr_matrix(again.obsp["moments_con"].compute()) - a.obsp["moments_con"]).max()
        == 0
    )


# ---------------------------------------------------------------- labelling times
def test_labelling_times_never_mix(labelled):
    dyn.tl.moments(labelled)
    w = labelled.obsp["moments_con"].tocoo()
    t = labelled.obs["time"].to_numpy()
    assert (t[w.row] == t[w.col]).all()
    m_n = labelled.layers["M_n"]
    assert m_n[t == 1].max() < 1 and m_n[t == 2].min() > 100
    assert {"M_t", "M_nn", "M_tn", "M_tt"} <= set(labelled.layers)


def test_mixing_when_grouping_is_off(labelled):
    dyn.tl.moments(labelled, group=False)
    m_n = labelled.layers["M_n"]
    assert m_n[labelled.obs["time"].to_numpy() == 1].max() > 10


def test_explicit_group_column(labelled):
    labelled.uns["pp"]["tkey"] = "None"
    labelled.obs["batch"] = np.where(labelled.obs["time"] == 1, "a", "b")
    dyn.tl.moments(labelled, group="batch")
    assert labelled.layers["M_n"][labelled.obs["time"].to_numpy() == 1].max() < 1


# ---------------------------------------------------------------- options
def test_given_conn_is_used_as_is(labelled):
    n = labelled.n_obs
    conn = sparse.eye(n, format="csr") * 2
    dyn.tl.moments(labelled, conn=conn, layers=["new"])
    assert np.allclose(labelled.layers["M_n"], 2 * labelled.layers["X_new"].toarray())
    assert set(labelled.layers) == {"X_new", "X_total", "M_n", "M_nn"}


def test_gaussian_kernel_rows_sum_to_one(labelled):
    dyn.tl.moments(labelled, use_gaussian_kernel=True, group=False)
    w = labelled.obsp["moments_con"]
    assert np.allclose(np.asarray(w.sum(1)).ravel(), 1, atol=1e-6)
    assert w.diagonal().min() > 0


def test_genes_and_protein_and_copy(labelled):
    labelled.obsm["X_protein"] = np.ones((labelled.n_obs, 3))
    out = dyn.tl.moments(labelled, genes=[labelled.var_names[1]], copy=True)
    assert "M_n" not in labelled.layers and "M_p" in out.obsm
    assert np.allclose(out.obsm["M_p"], 1, atol=1e-6)
    assert np.all(out.layers["M_n"][:, [0, 2, 3]] == 0) and out.layers["M_n"][:, 1].max() > 0


def test_moments_errors(labelled):
    bare = ad.AnnData(obs=labelled.obs, obsm=labelled.obsm)
    with pytest.raises(ValueError, match="recipe_monocle"):
        dyn.tl.moments(bare)
    with pytest.raises(ValueError, match="missing"):
        dyn.tl.moments(labelled, layers=["spliced"])
    no_pca = labelled.copy()
    del no_pca.obsm["X_pca"]
    with pytest.raises(ValueError, match=r"dyn\.pp\.pca"):
        dyn.tl.moments(no_pca)
    with pytest.raises(ValueError, match="square"):
        dyn.tl.moments(labelled, conn=sparse.eye(5, format="csr"))
    with pytest.raises(ValueError, match="not a column"):
        dyn.tl.moments(labelled, group="nope")
    with pytest.raises(ValueError, match="use_mnn"):
        dyn.tl.moments(labelled, use_mnn=True)
    with pytest.raises(ValueError, match="not in adata.var_names"):
        dyn.tl.moments(labelled, genes=["nope"])
    with pytest.raises(ValueError, match="rows"):
        dyn.tl.moments(labelled, np.zeros((3, 2)))


# ---------------------------------------------------------------- locality
def test_locality_order_reduces_chunks_touched():
    rng = np.random.default_rng(8)
    t = rng.uniform(0, 20, 3000)
    x = np.column_stack([np.cos(t) * t, np.sin(t) * t, rng.normal(size=(3000, 3))])
    a = ad.AnnData(
        obs={"i": np.arange(3000).astype(str)},
        obsm={"X_pca": x.astype(np.float32)},
        layers={"X_spliced": sparse.random(3000, 5, density=0.5, random_state=1, format="csr")},
    )
    kd = dyn.tl.locality_order(a)
    dyn.tl.neighbors(a)
    rcm = dyn.tl.locality_order(a)
    assert sorted(kd) == sorted(rcm) == list(range(3000))
    chunks = (300,) * 10
    touched = {}
    for name, b in (("random", a), ("kdtree", a[kd].copy()), ("graph", a[rcm].copy())):
        dyn.tl.moments(b, group=False)
        touched[name] = nb.chunks_touched(b.obsp["moments_con"], chunks).mean()
    assert touched["random"] == 10 and touched["kdtree"] <= 5 and touched["graph"] <= 3
    with pytest.raises(ValueError, match=r"dyn\.pp\.pca"):
        dyn.tl.locality_order(ad.AnnData(obs=a.obs))
    with pytest.raises(ValueError, match=r"dyn\.tl\.neighbors"):
        dyn.tl.locality_order(ad.AnnData(obs=a.obs), method="graph")
    with pytest.raises(ValueError, match="unknown method"):
        dyn.tl.locality_order(a, method="hilbert")


def test_moments_on_a_cluster_equal_memory(labelled, tmp_path, local_client):
    labelled.write_h5ad(tmp_path / "l.h5ad")
    dyn.io.convert(tmp_path / "l.h5ad", tmp_path / "l.zarr", chunk_cells=60)
    s = dyn.io.open(tmp_path / "l.zarr")
    dyn.tl.neighbors(s, n_neighbors=10)
    dyn.tl.moments(s, n_neighbors=10, group=False)
    dyn.tl.neighbors(labelled, n_neighbors=10)
    dyn.tl.moments(labelled, n_neighbors=10, group=False)
    for key in ("M_n", "M_t", "M_tn"):
        assert np.array_equal(s.layers[key].compute(), labelled.layers[key])


def _line_of_cells(n=1200, genes=40):
    """Cells along a line (neighbours sit in nearby rows), sparse and dense layers."""
    rng = np.random.default_rng(1)
    line = np.sort(rng.uniform(0, 100, n))
    pca = np.column_stack([line, rng.normal(scale=0.01, size=(n, 2))]).astype(np.float32)
    counts = rng.poisson(3, size=(n, genes)).astype(np.float32)
    return ad.AnnData(
        obsm={"X_pca": pca},
        layers={"X_spliced": sparse.csr_matrix(counts), "X_unspliced": counts / 2},
    )


def _reachable(collections):
    """Keys of the tasks a scheduler runs for ``collections`` (the written keys' ancestors)."""
    import dask
    from dask.core import flatten, get_dependencies

    culled = dask.optimize(*collections)
    graph = {k: v for c in culled for k, v in dict(c.__dask_graph__()).items()}
    stack = [k for c in culled for k in flatten(c.__dask_keys__())]
    seen = set()
    while stack:
        key = stack.pop()
        if key not in seen:
            seen.add(key)
            stack.extend(get_dependencies(graph, key))
    return seen


def test_moments_store_written_in_waves(tmp_path, monkeypatch):
    """Each wave's compute reads only the input blocks its rows' neighbourhoods use."""
    import importlib

    import dask

    from dynadask.io import writers

    tm = importlib.import_module("dynadask.tl.moments")
    n, chunk = 1200, 100
    a = _line_of_cells(n)
    a.write_h5ad(tmp_path / "a.h5ad")
    dyn.io.convert(tmp_path / "a.h5ad", tmp_path / "a.zarr", chunk_cells=chunk)
    s = dyn.io.open(tmp_path / "a.zarr")
    inputs = {
        d.key for name in ("X_spliced", "X_unspliced") for d in s.layers[name].to_delayed().ravel()
    }
    read_per_compute = []

    def recording(*collections, desc=""):
        read_per_compute.append(len(_reachable(collections) & inputs))
        return compute_before(*collections, desc=desc)

    compute_before = writers.compute
    monkeypatch.setattr(writers, "compute", recording)
    monkeypatch.setattr(tm, "WAVE_BLOCKS_PER_SLOT", 1)
    with dask.config.set(num_workers=2, scheduler="threads"):
        dyn.tl.moments(s, n_neighbors=10)
    dyn.tl.moments(a, n_neighbors=10)
    # six waves of two blocks; each reads its own two blocks and at most one on either side
    # from each of the two layers, never the whole layers (24 blocks)
    waves = [r for r in read_per_compute if r]  # the first compute writes no dense array
    assert len(waves) == n // chunk // 2
    assert max(waves) <= 2 * 4
    for key in ("M_s", "M_u", "M_ss", "M_us", "M_uu"):
        assert np.array_equal(s.layers[key].compute(), a.layers[key])


def test_moments_waves_on_a_cluster(tmp_path, monkeypatch, local_client):
    """On a cluster: one compute per wave, same results."""
    import importlib

    tm = importlib.import_module("dynadask.tl.moments")
    a = _line_of_cells(600)
    a.write_h5ad(tmp_path / "a.h5ad")
    computes = {}
    for per_slot in (1, 100):
        dyn.io.convert(tmp_path / "a.h5ad", tmp_path / f"{per_slot}.zarr", chunk_cells=50)
        s = dyn.io.open(tmp_path / f"{per_slot}.zarr")
        dyn.tl.neighbors(s, n_neighbors=10)
        monkeypatch.setattr(tm, "WAVE_BLOCKS_PER_SLOT", per_slot)
        before = dyn._core.compute.compute_count()
        dyn.tl.moments(s, n_neighbors=10)
        computes[per_slot] = dyn._core.compute.compute_count() - before
    # 12 blocks, 2 worker threads: 6 waves of 2 blocks against one wave of all 12
    assert computes[1] - computes[100] == 5
    dyn.tl.moments(a, n_neighbors=10)
    for key in ("M_s", "M_u", "M_ss", "M_us", "M_uu"):
        assert np.array_equal(s.layers[key].compute(), a.layers[key])
