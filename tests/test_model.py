"""The fitted-model record: round trip through a Zarr store, load, apply_blocks == apply."""

from __future__ import annotations

import anndata as ad
import dask.array as da
import numpy as np
import pytest
from sklearn.datasets import make_blobs

import dynadask as dyn
from dynadask._core import keys
from dynadask._core.model import ModelRecord, read, with_record
from dynadask.graph import embedding as ge
from dynadask.graph import model as gm
from dynadask.tl.reduce_dimension import load_umap
from dynadask.vf._record import load_field


def test_record_round_trip_through_a_store(tmp_path):
    record = ModelRecord(
        name="X_toy",
        kind="pca",
        inputs="X",
        n_obs=5,
        n_fit=3,
        cells="index:fit_cells",
        seed=7,
        params={"log": True, "size_factors": None, "widths": [1, 2]},
        arrays={"components": "toy/PCs", "mean": "toy/mean"},
        data={"fit_cells": np.array([0, 2, 4]), "genes": np.array([1, 2])},
    )
    a = ad.AnnData(np.zeros((5, 3), np.float32))
    a.uns["toy"] = {"PCs": np.eye(2)[:, :1], "mean": np.array([0.5, 1.0])}
    a.uns[keys.MODELS] = with_record(a.uns, record)
    a.write_zarr(tmp_path / "toy.zarr")
    back = read(ad.read_zarr(tmp_path / "toy.zarr").uns, "X_toy")
    assert back is not None and back.to_uns().keys() == record.to_uns().keys()
    assert (back.kind, back.inputs, back.n_obs, back.n_fit, back.seed) == ("pca", "X", 5, 3, 7)
    assert back.params["log"] is True and "size_factors" not in back.params
    np.testing.assert_array_equal(back.params["widths"], [1, 2])
    assert dict(back.arrays) == dict(record.arrays)
    np.testing.assert_array_equal(back.fit_positions(a.uns), [0, 2, 4])
    np.testing.assert_array_equal(back.array(a.uns, "mean"), [0.5, 1.0])
    assert read(a.uns, "X_other") is None


def test_record_errors():
    uns = {"PCs": np.eye(2)}
    rec = ModelRecord("X_a", "pca", "X", 3, 3, arrays={"components": "gone/PCs"})
    with pytest.raises(KeyError, match="refit"):
        rec.array(uns, "components")
    with pytest.raises(KeyError, match="has no array 'mean'"):
        rec.array(uns, "mean")
    with pytest.raises(ValueError, match="known kinds"):
        gm.load(ModelRecord("X_a", "tsne", "X", 3, 3), uns)
    with pytest.raises(ValueError, match="upgrade"):
        ModelRecord.from_uns("X_a", {**rec.to_uns(), "version": 99})
    with pytest.raises(ValueError, match="lacks"):
        ModelRecord.from_uns("X_a", {"kind": "pca"})
    with pytest.raises(ValueError, match="cannot resolve"):
        ModelRecord("X_a", "pca", "X", 3, 2, cells="obs:kept").fit_positions(uns)


def test_pca_record_from_a_store(pancreas_path, tmp_path):
    """PCA on a store whose failing cells stay: the record names them; apply == the scores."""
    memory = ad.read_h5ad(pancreas_path)[:600].copy()
    n_genes = (memory.X > 0).sum(1).A1
    fc = {"min_expr_genes_s": float(np.sort(n_genes)[60])}
    memory.write_h5ad(tmp_path / "small.h5ad")
    dyn.io.convert(tmp_path / "small.h5ad", tmp_path / "small.zarr", chunk_cells=200)
    with pytest.warns(UserWarning, match="flagged"):
        dyn.pp.recipe_monocle(dyn.io.open(tmp_path / "small.zarr"), n_top_genes=500, fc_kwargs=fc)
    store = dyn.io.open(tmp_path / "small.zarr")
    record = read(store.uns, keys.X_PCA)
    keep = store.obs[keys.PASS_BASIC_FILTER].to_numpy(bool)
    assert record.kind == "pca" and record.cells == "obs:pass_basic_filter"
    assert record.n_fit == keep.sum() < record.n_obs == 600
    np.testing.assert_array_equal(record.fit_positions(store.uns, store.obs), np.flatnonzero(keep))
    # X after the recipe holds log1p(counts / Size_Factor): the model applies to X as stored
    assert record.params == {"log": False}
    model = gm.load(record, store.uns)
    assert model.n_out == 30
    genes = record.array(store.uns, "genes")
    np.testing.assert_array_equal(genes, np.flatnonzero(store.var.use_for_pca))
    lazy = gm.apply_blocks(model, store.X)
    assert isinstance(lazy, da.Array) and lazy.numblocks[0] == 3
    got = lazy.compute()
    x = store.X.compute()[:, genes].toarray().astype(np.float64)
    expected = (x - np.asarray(store.uns["pca_mean"])) @ np.asarray(store.uns["PCs"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # the scores the recipe stored came from the counts before X was written as float32
    np.testing.assert_allclose(got, np.asarray(store.obsm[keys.X_PCA]), atol=1e-4)
    whole = model.apply(store.X.compute())
    np.testing.assert_allclose(got, whole, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def umap_store(tmp_path_factory):
    """reduceDimension on a sample (300 of 500 cells), then the result written to a store."""
    x, _ = make_blobs(600, n_features=8, centers=4, cluster_std=2.0, random_state=1)
    x = x.astype(np.float32)
    a = ad.AnnData(np.zeros((500, 2), np.float32))
    a.obsm["X_pca"] = x[:500]
    dyn.tl.reduceDimension(
        a, n_pca_components=8, n_neighbors=10, max_fit_cells=400, n_fit_cells=300, max_iter=60
    )
    path = tmp_path_factory.mktemp("umap") / "u.zarr"
    a.write_zarr(path)
    return a, path, x[500:]


def test_umap_record_loads_without_refit_and_applies_per_block(umap_store):
    a, path, new = umap_store
    store = dyn.io.open(path)
    model, record = load_umap(store)
    assert (record.kind, record.cells, record.seed, record.n_fit) == (
        "umap",
        "index:fit_idx",
        0,
        300,
    )
    assert record.inputs == "obsm/X_pca[:, :8]" and record.params["n_epochs"] == 60
    fit_idx = record.fit_positions(store.uns)
    # the loaded model places the cells outside the sample exactly where reduceDimension did
    again = gm.apply_blocks(model, da.from_array(a.obsm["X_pca"], chunks=120), fitted=fit_idx)
    np.testing.assert_array_equal(again.compute(), np.asarray(store.obsm["X_umap"]))
    # its transform equals the transform of the model fitted from scratch
    fitted = ge.fit_umap(np.asarray(store.uns["umap_fit"]["X_fit"]), dict(record.params))
    expected = fitted.transform(new)
    np.testing.assert_array_equal(model.apply(new), expected)
    blocks = gm.apply_blocks(model, da.from_array(new, chunks=30))
    np.testing.assert_array_equal(blocks.compute(), expected)


def test_umap_record_replaced_on_refit(umap_store):
    a, _, _ = umap_store
    b = a.copy()
    dyn.tl.reduceDimension(b, n_pca_components=8, n_neighbors=10, max_iter=30, enforce=True)
    record = read(b.uns, "X_umap")
    assert record.cells == "all" and record.seed is None and record.n_fit == 500
    b.uns[keys.MODELS].pop("X_umap")
    with pytest.raises(ValueError, match="reduceDimension"):
        load_umap(b)


def test_field_record_and_apply_blocks(tmp_path):
    rng = np.random.default_rng(0)
    P = rng.uniform(-2, 2, (400, 3))
    V = np.column_stack([-P[:, 1], P[:, 0], np.zeros(400)])
    a = ad.AnnData(np.zeros((400, 2), np.float32))
    a.obsm["X_toy"], a.obsm["velocity_toy"] = P, V
    dyn.vf.VectorField(a, basis="toy", dims=2, MaxIter=10, M=40)
    a.write_zarr(tmp_path / "f.zarr")
    store = dyn.io.open(tmp_path / "f.zarr")
    record = read(store.uns, "VecFld_toy")
    assert (record.kind, record.cells, record.n_fit, record.seed) == (
        "sparsevfc",
        "index:fit_cells",
        400,
        0,
    )
    np.testing.assert_array_equal(record.params["columns"], [0, 1])
    model = load_field(store, "toy")
    lazy = gm.apply_blocks(model, da.from_array(P, chunks=150))
    np.testing.assert_allclose(lazy.compute(), model.apply(P), rtol=1e-12)
    np.testing.assert_allclose(
        lazy.compute(), np.asarray(store.obsm["velocity_toy_SparseVFC"]), rtol=1e-9, atol=1e-12
    )
    # a field dict without a record (e.g. dynamo's) gets one from its keys
    store.uns[keys.MODELS] = {}
    np.testing.assert_allclose(load_field(store, "toy").apply(P), model.apply(P), rtol=1e-12)
    with pytest.raises(ValueError, match="VectorField"):
        load_field(store, "umap")
