"""io/writers: chunk sizing, parallel dense and CSR writes read back exactly, clean-up."""

from __future__ import annotations

import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from anndata.io import read_elem
from scipy import sparse

from dynadask.io import writers


def test_zarr_rows_divide_the_block_and_hold_about_the_target():
    assert writers.zarr_rows(1000, 8, target=8000) == 1000  # the whole block fits
    assert writers.zarr_rows(1000, 100, target=3000) == 25  # 30 rows wanted, 25 divides 1000
    assert writers.zarr_rows(7, 10, target=20) == 1  # 7 is prime
    assert writers.zarr_rows(12, 10, target=40) == 4
    for block, row_bytes, target in [(16777, 8000, 2**22), (5000, 120, 2**16), (999, 3, 100)]:
        rows = writers.zarr_rows(block, row_bytes, target=target)
        assert block % rows == 0
        assert rows * row_bytes <= max(target, row_bytes)


def test_regular_rows_makes_every_block_but_the_last_equal():
    x = da.ones((13, 2), chunks=((3, 5, 5), (2,)))
    assert writers.regular_rows(x).chunks[0] == (5, 5, 3)
    y = da.ones((13, 2), chunks=((5, 5, 3), (2,)))
    assert writers.regular_rows(y) is y
    z = da.ones((16, 2), chunks=((5, 5, 6), (2,)))
    assert writers.regular_rows(z).chunks[0] == (6, 6, 4)
    one = da.ones((4, 2), chunks=((4,), (2,)))
    assert writers.regular_rows(one) is one


def _csr_blocks(m: sparse.csr_matrix, rows: tuple[int, ...]) -> da.Array:
    starts = np.cumsum((0,) + rows)
    parts = [da.from_delayed(dask.delayed(m[a:b]), (b - a, m.shape[1]), dtype=m.dtype,
                             meta=sparse.csr_matrix((0, 0), dtype=m.dtype))
             for a, b in zip(starts[:-1], starts[1:], strict=True)]  # fmt: skip
    return da.concatenate(parts, axis=0)


def test_write_arrays_dense_and_csr_read_back_exactly(tmp_path):
    rng = np.random.default_rng(3)
    dense = rng.random((23, 4)).astype(np.float32)
    cube = rng.random((23, 2, 3))
    m = sparse.random(23, 6, density=0.3, random_state=1, format="csr", dtype=np.float32)
    keep = np.ones(23, dtype=np.float32)
    keep[5:11] = 0  # a whole row block without stored values
    m = sparse.csr_matrix(sparse.diags(keep) @ m)
    m.eliminate_zeros()
    assert m[5:11].nnz == 0 and m.nnz > 0
    xs = _csr_blocks(m, (5, 6, 7, 5))  # irregular row blocks: rechunked before writing
    assert writers.is_sparse(xs) and not writers.is_sparse(da.from_array(dense))
    root = zarr.open_group(str(tmp_path / "w.zarr"), mode="w", zarr_format=3)
    extra = dask.delayed(lambda: 42)()
    out = writers.write_arrays(
        root,
        {
            "layers/dense": da.from_array(dense, chunks=((3, 10, 10), (4,))),
            "obsm/cube": da.from_array(cube, chunks=(8, 1, 3)),
            "layers/counts": xs,
        },
        extra_tasks=[extra],
    )
    assert out == [42]
    assert "_pieces" not in root
    np.testing.assert_array_equal(read_elem(root["layers/dense"]), dense)
    np.testing.assert_array_equal(read_elem(root["obsm/cube"]), cube)
    back = read_elem(root["layers/counts"])
    assert sparse.issparse(back) and back.format == "csr" and back.dtype == np.float32
    assert back.shape == m.shape
    assert (back != m).nnz == 0
    np.testing.assert_array_equal(back.indptr, m.indptr)
    assert root["layers/counts/indices"].dtype == np.int32
    # dense Zarr chunks are aligned with the (regularised) Dask row blocks
    assert 10 % root["layers/dense"].chunks[0] == 0
    assert root["obsm/cube"].chunks[1:] == (2, 3)


def test_write_arrays_csr_without_values(tmp_path):
    empty = sparse.csr_matrix((9, 3), dtype=np.float64)
    root = zarr.open_group(str(tmp_path / "e.zarr"), mode="w", zarr_format=3)
    assert writers.write_arrays(root, {"X": _csr_blocks(empty, (4, 5))}) == []
    back = read_elem(root["X"])
    assert back.shape == (9, 3) and back.nnz == 0
    np.testing.assert_array_equal(back.indptr, np.zeros(10))


def test_write_arrays_with_nothing_to_write(tmp_path):
    root = zarr.open_group(str(tmp_path / "n.zarr"), mode="w", zarr_format=3)
    assert writers.write_arrays(root, {}) == []
    assert list(root) == []


def test_remove_files_folders_and_nothing(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "g").write_text("y")
    writers.remove(f)
    writers.remove(d)
    writers.remove(tmp_path / "absent")
    assert not f.exists() and not d.exists()


@pytest.mark.timeout(60)
def test_remove_settled_outlasts_a_late_writer(tmp_path):
    d = tmp_path / "staging"
    (d / "sub").mkdir(parents=True)
    came_back = []

    def late_write():  # a task of a failed compute that still writes after the failure
        while d.exists():
            time.sleep(0.01)
        d.mkdir()
        came_back.append(time.monotonic())

    t = threading.Thread(target=late_write)
    t.start()
    writers.remove_settled(d, quiet=2.0, limit=30)
    end = time.monotonic()
    t.join()
    assert came_back and not d.exists()
    assert end - came_back[0] >= 2.0  # removed again, then waited a quiet period


def _zstd_levels(array: zarr.Array) -> list[int]:
    return [c.level for c in array.compressors if type(c).__name__ == "ZstdCodec"]


def test_written_arrays_use_fast_zstd_and_keep_zero_chunks(tmp_path):
    # zstd level 1 for dense and CSR arrays (level 3, zarr's default, encodes 3x slower);
    # a dense chunk of zeros is still written (no all-equal check per chunk)
    dense = np.zeros((12, 3), dtype=np.float32)
    dense[8:] = 2.5
    m = sparse.random(12, 5, density=0.4, random_state=2, format="csr", dtype=np.float32)
    root = zarr.open_group(str(tmp_path / "c.zarr"), mode="w", zarr_format=3)
    writers.write_arrays(
        root,
        {"layers/d": da.from_array(dense, chunks=(4, 3)), "layers/s": _csr_blocks(m, (6, 6))},
    )
    assert root["layers/d"].chunks[0] == 4
    assert _zstd_levels(root["layers/d"]) == [1]
    for part in ("data", "indices", "indptr"):
        assert _zstd_levels(root[f"layers/s/{part}"]) == [1]
    chunk_files = sorted(p.parent.name for p in (tmp_path / "c.zarr/layers/d/c").glob("*/*"))
    assert chunk_files == ["0", "1", "2"]  # rows 0-3 and 4-7 are all zero, still stored
    np.testing.assert_array_equal(read_elem(root["layers/d"]), dense)
    assert (read_elem(root["layers/s"]) != m).nnz == 0
