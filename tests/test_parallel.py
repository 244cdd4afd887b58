"""Client discovery, computing through the active scheduler, the row-block helpers."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster
from scipy import sparse

import dynadask as dyn
from dynadask.graph.blocks import (
    align_rows,
    as_rows,
    gather_rows,
    map_rows,
    row_pieces,
    sum_rows,
    take_columns,
)


@pytest.fixture
def cluster():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as c:
        yield c


def test_client_reuses_the_current_client(cluster):
    with Client(cluster) as current:
        assert dyn.parallel.client() is current


def test_client_connects_to_address_from_environment(cluster, monkeypatch):
    monkeypatch.setenv("DYNADASK_SCHEDULER", cluster.scheduler_address)
    with dyn.parallel.client() as c:
        assert c.scheduler.address == cluster.scheduler_address
        assert c.submit(lambda: 41 + 1).result() == 42


def test_client_connects_to_explicit_address(cluster):
    with dyn.parallel.client(cluster.scheduler_address) as c:
        assert c.scheduler.address == cluster.scheduler_address


def test_client_starts_a_local_cluster(monkeypatch):
    monkeypatch.delenv("DYNADASK_SCHEDULER", raising=False)
    with dyn.parallel.client(n_workers=1, processes=False) as c:
        assert isinstance(c.cluster, LocalCluster)
        assert len(c.scheduler_info()["workers"]) == 1
        # the dashboard (plain HTTP) listens on localhost only, not on every interface
        server = c.cluster.scheduler.http_server
        hosts = {s.getsockname()[0] for s in server._sockets.values()}
        assert hosts == {"127.0.0.1"}, hosts


def test_default_local_cluster_is_sized_to_the_machine():
    kwargs = dyn.parallel.local_cluster_kwargs()
    assert kwargs["threads_per_worker"] == 1 and kwargs["processes"]
    assert kwargs["n_workers"] >= 1 and kwargs["memory_limit"] > 2**28


def test_library_compute_runs_on_the_client(local_client, tmp_path, pancreas_path):
    store = dyn.io.convert(pancreas_path, tmp_path / "p.zarr", chunk_cells=1000)
    lazy = dyn.io.open(store)
    n = dyn.parallel.compute_count()
    ran_on = dyn.parallel.compute(
        da.from_delayed(dask.delayed(_worker_name)(), shape=(), dtype=object)
    )[0]
    assert ran_on.startswith("tcp://") and dyn.parallel.compute_count() == n + 1
    total = sum_rows(lambda b: np.asarray(b.sum(0)).ravel(), lazy.layers["spliced"]).compute()
    assert total.sum() == pytest.approx(dyn.sample_data.pancreas().layers["spliced"].sum())


def _worker_name() -> str:
    from distributed import get_worker

    return get_worker().address


@pytest.mark.parametrize("kind", ["numpy", "sparse", "dask"])
def test_row_helpers_agree_across_array_types(kind):
    rng = np.random.default_rng(0)
    dense = rng.random((523, 17)) * (rng.random((523, 17)) < 0.3)
    x = {"numpy": dense, "sparse": sparse.csr_matrix(dense), "dask": da.from_array(dense, 100)}[
        kind
    ]
    blocks = as_rows(x, rows=100)
    assert blocks.chunks[0][0] == 100 and blocks.numblocks[1] == 1
    y = rng.random((523, 2))
    out = map_rows(
        lambda a, b: (
            (np.asarray(a.todense() if sparse.issparse(a) else a) @ np.ones(17))[:, None] + b
        ),
        blocks,
        y,
        n_cols=2,
        dtype=np.float64,
    ).compute()
    np.testing.assert_allclose(out, dense.sum(1)[:, None] + y)
    stats = sum_rows(
        lambda a: {"s": np.asarray(a.sum(0)).ravel(), "n": np.array([a.shape[0]])}, blocks
    )
    got = stats.compute()
    np.testing.assert_allclose(got["s"], dense.sum(0))
    assert got["n"][0] == 523


def test_align_rows_rejects_different_cells():
    with pytest.raises(ValueError, match="same cells"):
        align_rows(np.zeros((5, 2)), np.zeros((6, 2)))


@pytest.mark.parametrize("kind", ["numpy", "sparse", "dask", "dask-sparse"])
def test_take_columns_and_gather_rows_agree_with_indexing(kind):
    rng = np.random.default_rng(1)
    dense = rng.random((523, 17)) * (rng.random((523, 17)) < 0.4)
    x = {
        "numpy": dense,
        "sparse": sparse.csr_matrix(dense),
        "dask": da.from_array(dense, (100, 17)),
        "dask-sparse": as_rows(sparse.csr_matrix(dense), rows=100),
    }[kind]
    cols = np.array([16, 2, 5])
    mask = np.zeros(17, bool)
    mask[cols] = True
    for sel, want in ((cols, dense[:, cols]), (mask, dense[:, mask])):
        got = take_columns(x, sel)
        assert got.shape == want.shape
        got = got.compute() if isinstance(got, da.Array) else got
        np.testing.assert_array_equal(got.toarray() if sparse.issparse(got) else got, want)
    rows = np.array([0, 3, 99, 100, 101, 350, 522])
    g = gather_rows(as_rows(x, rows=100), rows, cols).compute()
    assert g.dtype == np.float64
    np.testing.assert_allclose(g.toarray() if sparse.issparse(g) else g, dense[rows][:, cols])


def test_take_columns_is_fused_with_the_block_read():
    x = da.ones((400, 50), chunks=(100, 50))
    y = take_columns(x, np.arange(0, 50, 7))
    graph = dict(dask.base.collections_to_expr([y], optimize_graph=True).__dask_graph__())
    assert len(graph) == x.numblocks[0]  # one task per block: read and select together


def test_row_pieces_split_by_chunk():
    parts = row_pieces(np.array([0, 3, 4, 9, 12]), (4, 4, 4, 4))
    assert [(c, p.tolist()) for c, p in parts] == [(0, [0, 3]), (1, [0]), (2, [1]), (3, [0])]


def test_large_numpy_arrays_are_shared_not_embedded(local_client, monkeypatch):
    from dynadask.graph import blocks

    rng = np.random.default_rng(2)
    x = rng.random((1000, 6))
    embedded = as_rows(x, rows=300)
    monkeypatch.setattr(blocks, "EMBED_BYTES", x.nbytes // 2)
    shared = as_rows(x, rows=300)
    assert shared.chunks == embedded.chunks

    def carries_data(y):
        return any(
            isinstance(v, np.ndarray) and v.size >= 300 for v in dict(y.__dask_graph__()).values()
        )

    # the small array's graph holds its pieces; the shared one's pieces are on the workers
    assert carries_data(embedded) and not carries_data(shared)
    np.testing.assert_array_equal(shared.compute(), x)
    np.testing.assert_allclose(sum_rows(lambda b: b.sum(0), shared).compute(), x.sum(0))


def test_compute_keeps_the_order_of_mixed_collections():
    # dask 2026.8 groups the results of mixed kinds (arrays, delayed) by optimizer
    from dynadask._core.compute import compute

    x, y = da.arange(3, chunks=3), da.arange(5, chunks=2)
    a, b = dask.delayed(str)("a"), dask.delayed(str)("b")
    got = compute(a, x, b, 7, y)
    assert got[0] == "a" and got[2] == "b" and got[3] == 7
    assert got[1].tolist() == [0, 1, 2] and got[4].tolist() == list(range(5))


def test_share_writes_files_any_worker_can_load_and_removes_them(cluster, tmp_path):
    from dynadask._core.compute import scratch_beside, scratch_files, share

    rng = np.random.default_rng(0)
    dense = rng.normal(size=(300, 200))
    csr = sparse.random(3000, 400, density=0.05, random_state=1, format="csr")
    obj = {"a": dense, "b": "x"}
    tiny = np.arange(5)
    with Client(cluster), scratch_beside(tmp_path / "s.zarr"):
        shared = share([dense, csr, obj, tiny])
        files = scratch_files()
        assert len(files) == 3 and all(
            f.startswith(str(tmp_path / "s.zarr.scratch")) for f in files
        )
        got = dask.compute(*shared)
        assert np.array_equal(got[0], dense) and got[0].flags.writeable
        assert (got[1] != csr).nnz == 0
        assert np.array_equal(got[2]["a"], dense) and got[2]["b"] == "x"
        assert np.array_equal(got[3], tiny)
        del shared
        assert not scratch_files()
    assert not (tmp_path / "s.zarr.scratch").exists()


def test_per_gene_fits_read_their_columns_from_shared_files(local_client):
    # the EM's per-gene tasks (graph.kinetics.column_blocks) get the sample's columns from
    # one shared file per array, not as slices inside the graph
    import cloudpickle

    from dynadask._core.compute import scratch_files
    from dynadask.graph.kinetics import column_blocks, share_columns

    rng = np.random.default_rng(3)
    u, s = rng.random((2000, 90)), rng.random((2000, 90))
    w = rng.random(90)

    def kernel(a, b, v, scale=1.0):
        return np.stack([a.sum(0) * v, b.max(0)]) * scale

    lazy = column_blocks(kernel, [u, s], [w], 8, scale=2.0)
    graph = len(cloudpickle.dumps(dict(lazy.__dask_graph__())))
    assert graph < u.nbytes / 10  # the columns (2.9 MB for u and s) are not in the graph
    np.testing.assert_allclose(lazy.compute(), kernel(u, s, w, scale=2.0))
    # shared once, used by repeated fits (the refit's rounds): one file per array in all
    held = set(scratch_files())
    cols = share_columns([u, s])
    before = set(scratch_files())
    assert len(before - held) == 2
    for scale in (1.0, 3.0):
        got = column_blocks(kernel, cols, [w], 8, scale=scale).compute()
        np.testing.assert_allclose(got, kernel(u, s, w, scale=scale))
    assert set(scratch_files()) == before
