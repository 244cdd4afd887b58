"""Reordering a store's rows into a locality order, out of core, and reading them back."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask import pipeline
from dynadask._core import keys
from dynadask.graph import reorder as gr
from dynadask.kernels import reorder as kr

CHUNK = 500


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Preprocessed pancreas with its kNN graph, in its order and shuffled into a store."""
    tmp = tmp_path_factory.mktemp("reorder")
    base = dyn.sample_data.pancreas()
    dyn.pp.recipe_monocle(base)
    dyn.tl.neighbors(base)
    perm = np.random.default_rng(1).permutation(base.n_obs)
    mem = base[perm].copy()  # anndata permutes obsp both ways, but not uns
    mem.uns["neighbors"]["indices"] = np.argsort(perm)[base.uns["neighbors"]["indices"][perm]]
    mem.write_h5ad(tmp / "random.h5ad")
    store = dyn.io.convert(tmp / "random.h5ad", tmp / "random.zarr", chunk_cells=CHUNK)
    return {"base": base, "mem": mem, "perm": perm, "store": store, "tmp": tmp}


def _copy(data, name: str) -> Path:
    dst = data["tmp"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(data["store"], dst)
    return dst


@pytest.fixture(scope="module")
def reordered(data):
    path = _copy(data, "reordered.zarr")
    before = dyn.io.open(path)
    order = dyn.tl.locality_order(before)
    return {"path": path, "adata": dyn.io.reorder(before), "order": order, "before": before}


def _dense(x):
    x = x.compute() if isinstance(x, da.Array) else x
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


def _assert_same(got: ad.AnnData, want: ad.AnnData) -> None:
    """Every cell-indexed element of ``got`` equals ``want``'s (obs without the record)."""
    assert list(got.obs_names) == list(want.obs_names)
    obs = got.obs.drop(columns=[keys.ORIGINAL_ROW], errors="ignore")
    pd.testing.assert_frame_equal(obs, want.obs.drop(columns=[keys.ORIGINAL_ROW], errors="ignore"))
    np.testing.assert_array_equal(_dense(got.X), _dense(want.X))
    assert set(got.layers) >= set(want.layers)
    for key in want.layers:
        np.testing.assert_array_equal(_dense(got.layers[key]), _dense(want.layers[key]))
    for key in want.obsm:
        np.testing.assert_array_equal(_dense(got.obsm[key]), _dense(want.obsm[key]))
    for key in want.obsp:
        g = got.obsp[key]
        g = sparse.csr_matrix(g.compute() if isinstance(g, da.Array) else g)
        assert g.has_sorted_indices
        assert abs(g - sparse.csr_matrix(want.obsp[key])).max() == 0
    np.testing.assert_array_equal(got.uns["neighbors"]["indices"], want.uns["neighbors"]["indices"])


def _leftovers(path: Path) -> list[str]:
    return [p.name for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.")]


def test_reorder_lays_every_element_out_in_the_computed_order(data, reordered):
    order, r = reordered["order"], reordered["adata"]
    assert not np.array_equal(order, np.arange(len(order)))
    np.testing.assert_array_equal(r.obs[keys.ORIGINAL_ROW].to_numpy(), order)
    assert r.obs[keys.ORIGINAL_ROW].dtype == np.int64
    want = data["mem"][order].copy()
    want.uns["neighbors"]["indices"] = kr.permute_knn_indices(
        data["mem"].uns["neighbors"]["indices"], order, np.argsort(order)
    )
    _assert_same(r, want)
    # still store-backed, chunked as before, every matrix lazy; nothing left beside the store
    assert dyn.io.store_path(r) == reordered["path"]
    assert dyn.io.store_info(reordered["path"])["chunk_cells"] == CHUNK
    assert all(x.chunks[0][:-1] == (CHUNK,) * 7 for x in [r.X, *r.layers.values()])
    assert sparse.issparse(r.layers["spliced"]._meta)
    assert "reorder" in r.uns["dynadask"]["stages"]
    assert _leftovers(reordered["path"]) == []
    # the AnnData opened before no longer commits into the store
    assert dyn.io.store_path(reordered["before"]) is None


def test_chunk_spread_drops(data, reordered):
    record = reordered["adata"].uns["dynadask"]["reorder"]
    assert record["method"] == "graph" and record["n_chunks"] == 8
    assert record["spread_before"] == 8.0  # random order: every chunk touches all 8
    assert record["spread_after"] <= 3.5
    assert dyn.io.chunk_spread(reordered["adata"]) == record["spread_after"]
    assert dyn.io.chunk_spread(dyn.io.open(data["store"])) == 8.0
    band = sparse.diags([1.0, 1.0, 1.0], [-1, 0, 1], shape=(40, 40), format="csr")
    codes = gr.spread_codes(band, gr.chunk_bounds(40, 10)).compute()
    assert kr.spread_of(codes, 4) == 2.5  # as graph.neighbourhood.chunks_touched: 2, 3, 3, 2


def test_open_in_original_order_gives_the_data_back(data, reordered):
    back = dyn.io.open(reordered["path"], order="original")
    assert isinstance(back.layers["spliced"], da.Array)
    np.testing.assert_array_equal(back.obs[keys.ORIGINAL_ROW], np.arange(back.n_obs))
    _assert_same(back, data["mem"])
    # not store-backed: nothing computed on it can go into the store in the wrong order
    assert dyn.io.store_path(back) is None
    assert back.uns["dynadask"]["view_of"] == str(reordered["path"])
    _assert_same(dyn.read_zarr(reordered["path"], order="original"), data["mem"])
    with pytest.raises(ValueError, match="order must be"):
        dyn.io.open(reordered["path"], order="sorted")


def test_moments_after_the_reorder_equal_the_unshuffled_data(data, reordered):
    path = data["tmp"] / "moments.zarr"
    shutil.copytree(reordered["path"], path)
    s = dyn.io.open(path)
    dyn.tl.moments(s)
    base = data["base"].copy()  # the cells before they were shuffled into the store
    dyn.tl.moments(base)
    back = dyn.io.open(path, order="original")  # the store's original (shuffled) order
    for key in ("M_s", "M_u", "M_ss", "M_us", "M_uu"):
        np.testing.assert_allclose(
            back.layers[key].compute(), base.layers[key][data["perm"]], rtol=1e-5, atol=1e-6
        )
    assert list(back.obs_names) == list(data["mem"].obs_names)


def _digest(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_failure_in_phase_two_leaves_the_store_unchanged(data, monkeypatch):
    path = _copy(data, "failing.zarr")
    before = _digest(path)
    calls = {"n": 0}
    place = kr.place_rows

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full")
        return place(*args, **kwargs)

    monkeypatch.setattr(gr.kr, "place_rows", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        dyn.io.reorder(path)
    assert calls["n"] >= 5
    assert _digest(path) == before
    assert _leftovers(path) == []


def test_in_memory_reorder_keeps_the_same_record(data, reordered):
    mem = data["mem"]
    r = dyn.io.reorder(mem, method="graph")
    order = reordered["order"]
    np.testing.assert_array_equal(r.obs[keys.ORIGINAL_ROW].to_numpy(), order)
    want = mem[order].copy()
    want.uns["neighbors"]["indices"] = kr.permute_knn_indices(
        mem.uns["neighbors"]["indices"], order, np.argsort(order)
    )
    _assert_same(r, want)
    assert keys.ORIGINAL_ROW not in mem.obs  # the input is left alone
    assert r.uns["dynadask"]["reorder"]["method"] == "graph"
    _assert_same(dyn.io.original_order(r), mem)
    # a second reorder composes: the column still names the original rows
    again = dyn.io.reorder(r, order=np.arange(r.n_obs)[::-1].copy())
    np.testing.assert_array_equal(again.obs[keys.ORIGINAL_ROW].to_numpy(), order[::-1])
    assert again.uns["dynadask"]["reorder"]["method"] == "given"
    _assert_same(dyn.io.original_order(again), mem)
    with pytest.raises(ValueError, match="permutation"):
        dyn.io.reorder(mem, order=np.zeros(mem.n_obs, dtype=int))
    with pytest.raises(ValueError, match="cells"):
        dyn.io.reorder(mem, order=np.arange(3))


def test_pipeline_stage_reorders_a_random_store_then_skips(data):
    path = _copy(data, "pipeline.zarr")
    lines: list[str] = []
    adata = pipeline.run(path, stages=["reorder", "moments"], log=lines.append)
    record = adata.uns["dynadask"]["reorder"]
    assert record["reordered"] and record["spread_before"] == 8.0
    assert record["spread_after"] < record["spread_before"]
    # the stages after the reorder used the reopened store: moments went into it
    assert dyn.io.store_path(adata) == path
    stored = dyn.io.open(path)
    assert {"reorder", "moments"} <= set(stored.uns["dynadask"]["stages"])
    assert "M_s" in stored.layers and keys.ORIGINAL_ROW in stored.obs
    assert stored.uns["dynadask"]["reorder"]["reordered"]
    # local now: a forced second run measures and keeps the rows
    rows = stored.obs[keys.ORIGINAL_ROW].to_numpy().copy()
    again = pipeline.run(path, stages=["reorder"], force=True, log=lines.append)
    record = again.uns["dynadask"]["reorder"]
    assert not record["reordered"] and record["spread_before"] <= 3.5
    np.testing.assert_array_equal(dyn.io.open(path).obs[keys.ORIGINAL_ROW].to_numpy(), rows)
    assert pipeline.reorder_if_spread(dyn.io.open(path), min_spread=8) is None


def test_permuted_arrays_share_one_destination(tmp_path):
    """The graph holds the new row positions once for every array moved, not a slice per chunk.

    (At 1,000,000 cells the reorder stage's graph was 62.8 MiB: every chunk of each of its
    eight cell-indexed arrays carried its cells' positions.)
    """
    import cloudpickle

    from dynadask._core.compute import share

    n = 4000
    rng = np.random.default_rng(0)
    dest = rng.permutation(n).astype(np.int64)
    (shared,) = share([dest])
    bounds = gr.chunk_bounds(n, 500)
    arrays = [
        da.from_array(rng.random((n, 3)), chunks=(250, 3)),
        da.from_array(rng.random((n, 5)).astype(np.float32), chunks=(400, 5)),
        da.from_array(rng.random((n, 2)), chunks=(500, 2)),
    ]
    moved = [gr.permute_rows(x, shared, bounds, tmp_path / f"{i}") for i, x in enumerate(arrays)]
    phase_one = {
        k: v
        for m in moved
        for k, v in dict(m.__dask_graph__()).items()
        if "bucket_to_files" in str(k)
    }
    # about 150 bytes a task, the positions being one shared value beside them
    assert len(cloudpickle.dumps(phase_one)) < dest.nbytes / 2  # 4,911 bytes; 46,483 before
    for x, m in zip(arrays, moved, strict=True):
        want = np.empty(x.shape, dtype=x.dtype)
        want[dest] = x.compute()
        np.testing.assert_array_equal(m.compute(), want)
