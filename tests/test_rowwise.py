"""The row-wise CSR writer: x / s and log1p(x / s) of a stored matrix, written with its structure.

Each result is compared with the same transform computed block by block in memory (values,
indices, row pointers, all bit for bit), with value runs cut inside rows (tiny Zarr chunks),
on a source with sorted rows (the fast path, indices copied as files) and with unsorted rows
(written the general way, sorted).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import dask
import numpy as np
import pytest
from scipy import sparse

import dynadask as dyn
from dynadask._core import settings
from dynadask._core.lineage import row_transform
from dynadask.graph.preprocess import normalized, scaled
from dynadask.kernels import pca as kpca
from dynadask.kernels import preprocess as kpp


def _counts(n_obs: int = 200, n_vars: int = 30, seed: int = 0) -> sparse.csr_matrix:
    m = sparse.random(n_obs, n_vars, density=0.3, random_state=seed, format="csr") * 20
    m.data = np.floor(m.data).astype(np.float32)  # explicit zeros kept
    m.indices = m.indices.astype(np.int64)
    m.indptr = m.indptr.astype(np.int64)
    return m


def _unsorted(m: sparse.csr_matrix) -> sparse.csr_matrix:
    out = m.copy()
    for r in range(0, out.shape[0], 7):  # reverse some rows' entries
        a, b = out.indptr[r], out.indptr[r + 1]
        out.indices[a:b] = out.indices[a:b][::-1].copy()
        out.data[a:b] = out.data[a:b][::-1].copy()
    out.has_sorted_indices = False
    return out


@pytest.fixture
def tiny_chunks():
    before = settings.get_chunk_policy()
    settings.set_chunk_policy(zarr_chunk_bytes=256, min_rows=10)  # 64 float32 values a chunk
    yield
    settings._policy = before


@pytest.mark.parametrize("rows_sorted", [True, False])
def test_row_transforms_equal_blockwise(tmp_path: Path, tiny_chunks, rows_sorted: bool) -> None:
    counts = _counts()
    stored = counts if rows_sorted else _unsorted(counts)
    src = tmp_path / "src.zarr"
    ad.AnnData(X=stored.copy(), layers={"spliced": stored.copy()}).write_zarr(src)
    store = dyn.io.convert(src, tmp_path / "s.zarr", chunk_cells=40)
    adata = dyn.io.open(store)
    sf = np.random.default_rng(1).random(counts.shape[0]) + 0.5
    lazy = {
        "X_spliced": scaled(adata.layers["spliced"], sf),
        "X_log": normalized(adata.X, sf, log=True),
    }
    assert all(row_transform(x) is not None for x in lazy.values())
    with dask.config.set(scheduler="synchronous"):
        dyn.io.commit(adata, "test", layers=lazy)
    got = ad.read_zarr(store)
    want = {
        "X_spliced": kpp.scale_rows(stored, sf),
        "X_log": kpca.log_norm(stored, sf, None, True).astype(np.float32),
    }
    for key, expected in want.items():
        expected = sparse.csr_matrix(expected)
        expected.sort_indices()
        out = got.layers[key]
        assert out.indices.dtype == np.int32
        np.testing.assert_array_equal(out.indptr, expected.indptr)
        np.testing.assert_array_equal(out.indices, expected.indices)
        np.testing.assert_array_equal(out.data, expected.data)  # bit for bit
        assert out.has_sorted_indices
    copied = Path(store) / "layers" / "X_spliced" / "indices" / "c" / "0"
    source = Path(store) / "layers" / "spliced" / "indices" / "c" / "0"
    assert (copied.read_bytes() == source.read_bytes()) == rows_sorted


def test_convert_stores_int32_indices(tmp_path: Path) -> None:
    src = tmp_path / "src.zarr"
    ad.AnnData(X=_counts()).write_zarr(src)
    store = dyn.io.convert(src, tmp_path / "s.zarr")
    x = ad.read_zarr(store).X
    assert x.indices.dtype == np.int32
    np.testing.assert_array_equal(x.toarray(), _counts().toarray())


def test_each_task_carries_only_its_rows_factors(tmp_path: Path, tiny_chunks) -> None:
    """Neither the per-cell factors nor row pointers fill the graph (77-100 MiB at 1M cells)."""
    import cloudpickle
    import zarr

    from dynadask.io.rowwise import row_transform_tasks

    counts = _counts(n_obs=2000)
    src = tmp_path / "src.zarr"
    ad.AnnData(X=counts.copy()).write_zarr(src)
    store = dyn.io.convert(src, tmp_path / "s.zarr", chunk_cells=400)
    adata = dyn.io.open(store)
    sf = np.random.default_rng(1).random(counts.shape[0]) + 0.5
    spec = row_transform(scaled(adata.X, sf))
    root = zarr.open_group(tmp_path / "out.zarr", mode="w")
    tasks = row_transform_tasks(root, "X_scaled", spec, zarr.open_group(store)["X"], counts.shape)
    assert len(tasks) > 4
    for task in tasks:
        assert len(cloudpickle.dumps(dict(task.__dask_graph__()))) < sf.nbytes * 1.1
    # nor are their row pointers and factor slices: the factors once (in the graph without a
    # client, in a shared file with one), the rest a few hundred bytes a task
    merged = {k: v for task in tasks for k, v in dict(task.__dask_graph__()).items()}
    size = len(cloudpickle.dumps(merged))
    assert size < sf.nbytes + 300 * len(tasks)  # 59,517 > 37,600 bytes before; now 24,586
    dask.compute(*tasks, scheduler="synchronous")
    got = zarr.open_group(tmp_path / "out.zarr")["X_scaled/data"][:]
    np.testing.assert_array_equal(got, kpp.scale_rows(counts, sf).data)
