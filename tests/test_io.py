"""Stores: conversion round trips, lazy opening, atomic write-back, clear errors."""

from __future__ import annotations

import anndata as ad
import dask
import dask.array as da
import h5py
import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import sparse

import dynadask as dyn
from dynadask.graph.blocks import sum_rows


def _small(n_obs: int = 250, n_vars: int = 40, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    counts = sparse.random(n_obs, n_vars, density=0.3, random_state=seed, format="csr") * 10
    counts.data = np.round(counts.data).astype(np.float32)
    obs = pd.DataFrame(
        {"clusters": pd.Categorical(rng.choice(["a", "b"], n_obs)), "t": rng.random(n_obs)},
        index=[f"c{i}" for i in range(n_obs)],
    )
    var = pd.DataFrame(index=[f"g{i}" for i in range(n_vars)])
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var)
    adata.layers["spliced"] = counts.astype(np.float32)
    adata.layers["unspliced"] = sparse.csr_matrix(counts.multiply(0.5).ceil(), dtype=np.float32)
    adata.obsm["X_fake"] = rng.random((n_obs, 3))
    adata.uns["note"] = "kept"
    return adata


def _same(a: ad.AnnData, b: ad.AnnData) -> None:
    assert a.shape == b.shape
    assert list(a.obs_names) == list(b.obs_names)
    assert list(a.var_names) == list(b.var_names)
    for key in b.layers:
        x, y = a.layers[key], b.layers[key]
        x = x.toarray() if sparse.issparse(x) else np.asarray(x)
        y = y.toarray() if sparse.issparse(y) else np.asarray(y)
        np.testing.assert_array_equal(x, y)


def test_convert_h5ad_round_trip(tmp_path, pancreas_path):
    store = dyn.io.convert(pancreas_path, tmp_path / "p.zarr", chunk_cells=1000)
    back = ad.read_zarr(store)
    src = ad.read_h5ad(pancreas_path)
    _same(back, src)
    assert (back.X != src.X).nnz == 0
    pd.testing.assert_frame_equal(back.obs, src.obs)
    assert sparse.issparse(back.layers["spliced"])


def test_convert_and_commit_write_zstd_level_1(tmp_path):
    # every matrix dynadask writes uses zstd level 1 (zarr's default level 3 encodes 3x
    # slower for the same size); anndata's writer, used for obsm and small arrays, too
    a = _small()
    a.write_h5ad(tmp_path / "a.h5ad")
    store = dyn.io.convert(tmp_path / "a.h5ad", tmp_path / "a.zarr", chunk_cells=100)
    s = dyn.io.open(store)
    dyn.io.commit(s, "test", layers={"dense": np.ones(s.shape, dtype=np.float32)})
    root = zarr.open_group(str(store), mode="r")
    for key in ("layers/spliced/data", "layers/spliced/indices", "X/indptr", "obsm/X_fake",
                "layers/dense"):  # fmt: skip
        codecs = [c for c in root[key].compressors if type(c).__name__ == "ZstdCodec"]
        assert [c.level for c in codecs] == [1], key
    _same(ad.read_zarr(store), a)


@pytest.mark.parametrize("kind", ["loom", "zarr2", "zarr3", "dense_csc_h5ad"])
def test_convert_other_sources(tmp_path, kind):
    adata = _small()
    if kind == "loom":
        src = tmp_path / "s.loom"
        adata.write_loom(src)
    elif kind.startswith("zarr"):
        src = tmp_path / "s.zarr"
        with ad.settings.override(zarr_write_format=int(kind[-1])):
            adata.write_zarr(src)
    else:
        adata.X = adata.X.toarray()
        adata.layers["spliced"] = sparse.csc_matrix(adata.layers["spliced"])
        src = tmp_path / "s.h5ad"
        adata.write_h5ad(src)
    store = dyn.io.convert(src, tmp_path / "out.zarr", chunk_cells=64)
    back = ad.read_zarr(store)
    _same(back, _small())
    assert sparse.issparse(back.layers["spliced"]) and sparse.issparse(back.X)
    np.testing.assert_array_equal(back.X.toarray(), _small().X.toarray())
    if kind != "loom":
        np.testing.assert_allclose(back.obsm["X_fake"], adata.obsm["X_fake"])


def test_open_is_lazy_and_row_chunked(tmp_path, pancreas_path):
    store = dyn.io.convert(pancreas_path, tmp_path / "p.zarr", chunk_cells=1000)
    lazy = dyn.io.open(store)
    x = lazy.layers["spliced"]
    assert isinstance(x, da.Array)
    assert x.chunks[0] == (1000, 1000, 1000, 696) and x.numblocks[1] == 1
    assert sparse.issparse(x.blocks[1].compute())
    total = sum_rows(lambda b: np.asarray(b.sum(0)).ravel(), x).compute()
    want = np.asarray(ad.read_h5ad(pancreas_path).layers["spliced"].sum(0)).ravel()
    np.testing.assert_allclose(total, want, rtol=1e-6)
    assert dyn.io.open(store, chunk_cells=500).layers["spliced"].chunks[0][0] == 500
    assert dyn.read_zarr(store, lazy=True).uns["dynadask"]["store"] == str(store.resolve())


def _dense(x: da.Array) -> da.Array:
    return x.map_blocks(
        lambda b: b.toarray() * 2, dtype=np.float32, meta=np.empty((0, 0), np.float32)
    )


def test_commit_in_memory_equals_store(tmp_path):
    adata = _small()
    store = dyn.io.convert(_write(adata, tmp_path), tmp_path / "s.zarr", chunk_cells=64)
    lazy = dyn.io.open(store)
    for target in (adata, lazy):
        x = dyn.parallel.as_rows(target.layers["spliced"])
        dyn.io.commit(
            target,
            "double",
            layers={"twice": _dense(x)},
            obsm={"X_two": da.ones((target.n_obs, 2), chunks=(64, 2))},
            obsp={"graph": sparse.identity(target.n_obs, format="csr", dtype=np.float32)},
            obs={"n": np.arange(target.n_obs)},
            var={"flag": np.arange(target.n_vars) % 2 == 0},
            uns={"params": {"k": 3}},
        )
    back = ad.read_zarr(store)
    for result in (adata, lazy, back):
        np.testing.assert_allclose(
            np.asarray(result.layers["twice"]), 2 * adata.layers["spliced"].toarray()
        )
        assert result.obs["n"].tolist() == list(range(adata.n_obs))
        assert result.var["flag"].sum() == (adata.n_vars + 1) // 2
        assert "double" in result.uns["dynadask"]["stages"]
        assert result.uns["params"]["k"] == 3
    assert isinstance(lazy.layers["twice"], da.Array)
    assert (back.obsp["graph"] != sparse.identity(adata.n_obs)).nnz == 0
    assert dyn.io.store_info(store)["stages"].keys() == {"double"}


def test_commit_sparse_dask_result(tmp_path):
    adata = _small()
    store = dyn.io.convert(_write(adata, tmp_path), tmp_path / "s.zarr", chunk_cells=64)
    lazy = dyn.io.open(store)
    dyn.io.commit(lazy, "copy", layers={"copy": lazy.layers["unspliced"]})
    back = ad.read_zarr(store)
    assert sparse.issparse(back.layers["copy"])
    assert (back.layers["copy"] != adata.layers["unspliced"]).nnz == 0


def _fail(block: np.ndarray) -> np.ndarray:
    raise RuntimeError("worker died")


def test_interrupted_commit_leaves_nothing(tmp_path):
    adata = _small()
    store = dyn.io.convert(_write(adata, tmp_path), tmp_path / "s.zarr", chunk_cells=64)
    lazy = dyn.io.open(store)
    good = _dense(lazy.layers["spliced"])
    bad = good.map_blocks(lambda b: _fail(b) if b[0, 0] >= 0 else b, dtype=np.float32)
    bad = da.concatenate([good[:64], bad[64:]])
    with pytest.raises(RuntimeError, match="worker died"):
        dyn.io.commit(lazy, "broken", layers={"good": good, "bad": bad}, obs={"x": np.ones(250)})
    root = zarr.open_group(str(store), mode="r")
    assert "good" not in root["layers"] and "bad" not in root["layers"]
    assert "x" not in ad.read_zarr(store).obs
    assert not list(tmp_path.glob("*.staging-*"))
    assert "broken" not in dyn.io.open(store).uns["dynadask"]["stages"]


def test_commit_rejects_wrong_shapes(tmp_path):
    adata = _small()
    with pytest.raises(ValueError, match="does not describe these cells"):
        dyn.io.commit(adata, "bad", layers={"x": np.zeros((3, adata.n_vars))})
    with pytest.raises(ValueError, match="expected 250"):
        dyn.io.commit(adata, "bad", obs={"x": np.zeros(3)})


def test_subset_of_store_is_treated_as_in_memory(tmp_path):
    adata = _small()
    store = dyn.io.convert(_write(adata, tmp_path), tmp_path / "s.zarr", chunk_cells=64)
    lazy = dyn.io.open(store)
    sub = lazy[:10].copy()
    assert dyn.io.store_path(sub) is None
    dyn.io.commit(sub, "sub", obs={"y": np.ones(10)})
    assert "y" not in ad.read_zarr(store).obs


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no store at"):
        dyn.io.open(tmp_path / "missing.zarr")
    with pytest.raises(FileNotFoundError):
        dyn.io.convert(tmp_path / "missing.h5ad", tmp_path / "x.zarr")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(ValueError, match="not an AnnData store"):
        dyn.io.open(tmp_path / "plain.zarr")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a Zarr store"):
        dyn.io.open(tmp_path / "folder")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="cannot convert"):
        dyn.io.convert(tmp_path / "x.txt", tmp_path / "y.zarr")


def test_convert_refuses_mismatched_layers_and_writes_nothing(tmp_path):
    src = _write(_small(), tmp_path)
    with h5py.File(src, "r+") as f:
        f["layers/spliced"].attrs["shape"] = np.array([999, 40])
    with pytest.raises(ValueError, match="inconsistent"):
        dyn.io.convert(src, tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()
    assert not list(tmp_path.glob("bad.zarr*"))


def test_convert_does_not_overwrite_by_default(tmp_path):
    src = _write(_small(), tmp_path)
    dyn.io.convert(src, tmp_path / "s.zarr")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dyn.io.convert(src, tmp_path / "s.zarr")
    dyn.io.convert(src, tmp_path / "s.zarr", overwrite=True)


def test_create_store_from_lazy_blocks(tmp_path):
    adata = _small()
    x = dyn.parallel.as_rows(adata.layers["spliced"], rows=100)
    store = dyn.io.create_store(tmp_path / "c.zarr", adata.obs, adata.var, {"spliced": x})
    back = ad.read_zarr(store)
    assert (back.layers["spliced"] != adata.layers["spliced"]).nnz == 0
    assert dyn.io.store_info(store)["chunk_cells"] == 100
    with pytest.raises(ValueError, match="obs x var"):
        dyn.io.create_store(tmp_path / "d.zarr", adata.obs[:5], adata.var, {"spliced": x})
    assert not (tmp_path / "d.zarr").exists()


def test_readers_dispatch_on_kind(tmp_path):
    adata = _small()
    src = _write(adata, tmp_path)
    assert dyn.read(src).shape == adata.shape
    assert dyn.read_h5ad(src).shape == adata.shape
    adata.write_loom(tmp_path / "s.loom")
    assert dyn.read_loom(tmp_path / "s.loom").shape == adata.shape
    with pytest.raises(FileNotFoundError):
        dyn.read(tmp_path / "nope.h5ad")


def test_read_10x_h5_and_mtx(tmp_path):
    import scipy.io

    counts = sparse.random(6, 4, density=0.5, random_state=1, format="csr") * 5
    counts.data = np.ceil(counts.data)
    csc = sparse.csc_matrix(counts.T)  # features x cells
    with h5py.File(tmp_path / "m.h5", "w") as f:
        m = f.create_group("matrix")
        for name in ("data", "indices", "indptr"):
            m[name] = getattr(csc, name)
        m["shape"] = np.array([4, 6])
        m["barcodes"] = np.array([f"b{i}".encode() for i in range(6)])
        feats = m.create_group("features")
        feats["id"] = np.array([f"id{i}".encode() for i in range(4)])
        feats["name"] = np.array([f"g{i}".encode() for i in range(4)])
        feats["feature_type"] = np.array([b"Gene Expression"] * 4)
    got = dyn.read(tmp_path / "m.h5")
    np.testing.assert_array_equal(got.X.toarray(), counts.toarray())
    folder = tmp_path / "mtx"
    folder.mkdir()
    scipy.io.mmwrite(folder / "matrix.mtx", counts.T)
    pd.Series([f"b{i}" for i in range(6)]).to_csv(
        folder / "barcodes.tsv", index=False, header=False
    )
    pd.DataFrame({"id": [f"id{i}" for i in range(4)], "n": [f"g{i}" for i in range(4)]}).to_csv(
        folder / "features.tsv", sep="\t", index=False, header=False
    )
    got = dyn.read(folder)
    np.testing.assert_array_equal(got.X.toarray(), counts.toarray())
    assert list(got.var_names) == ["g0", "g1", "g2", "g3"]


def _write(adata: ad.AnnData, tmp_path) -> object:
    path = tmp_path / "src.h5ad"
    adata.write_h5ad(path)
    return path


def test_dask_scheduler_is_not_changed_by_library(tmp_path):
    before = dask.config.get("scheduler", None)
    dyn.io.convert(_write(_small(), tmp_path), tmp_path / "s.zarr")
    assert dask.config.get("scheduler", None) == before
