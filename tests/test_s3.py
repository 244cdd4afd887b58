"""Stores in a real S3 server on loopback (moto's standalone server), through the user's calls.

The server runs in a thread of this process and answers HTTP on 127.0.0.1; dynadask reaches
it with s3fs exactly as it reaches AWS or MinIO (``storage_options`` / ``AWS_ENDPOINT_URL``).
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
pytest.importorskip("s3fs", reason="s3fs is not installed")

import dynadask as dyn  # noqa: E402
from dynadask.io import objectstore  # noqa: E402
from dynadask.io.location import Remote, location  # noqa: E402

N_OBS, N_VARS = 120, 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3():
    """A running S3 server on loopback and the options that reach it."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "test", "secret": "test"}
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("atlas")
    yield options
    server.stop()


@pytest.fixture
def bucket(s3, request):
    """A fresh prefix in the bucket for one test."""
    name = request.node.name.replace("[", "-").replace("]", "")
    return f"s3://atlas/{name}"


def _source(tmp_path):
    rng = np.random.default_rng(0)
    counts = sparse.random(N_OBS, N_VARS, density=0.4, random_state=0, format="csr") * 10
    counts.data = np.round(counts.data).astype(np.float32)
    adata = ad.AnnData(
        X=counts.copy(),
        obs=pd.DataFrame(index=[f"c{i}" for i in range(N_OBS)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(N_VARS)]),
    )
    adata.layers["spliced"] = counts.copy()
    adata.obsm["X_fake"] = rng.random((N_OBS, 2))
    src = tmp_path / "src.h5ad"
    adata.write_h5ad(src)
    return src, adata


def _hashes(where: Remote) -> dict[str, str]:
    """Every object's hash; a stage's completion time (differs between runs) by its name."""
    fs = where.fs
    parent = where.key.rsplit("/", 1)[0]
    keys = objectstore.files(fs, parent)
    return {
        k: "a time"
        if "/uns/dynadask/stages/" in k and not k.endswith(".json")
        else hashlib.sha256(fs.cat_file(f"{parent}/{k}")).hexdigest()
        for k in keys
    }


def test_convert_open_commit_roundtrip(tmp_path, s3, bucket):
    src, adata = _source(tmp_path)
    url = f"{bucket}/s.zarr"
    out = dyn.io.convert(src, url, chunk_cells=50, storage_options=s3)
    assert out == url
    lazy = dyn.io.open(url, storage_options=json.dumps(s3))
    assert lazy.uns["dynadask"]["store"] == url
    assert isinstance(lazy.layers["spliced"], da.Array)
    np.testing.assert_array_equal(
        lazy.layers["spliced"].compute().toarray(), adata.layers["spliced"].toarray()
    )
    np.testing.assert_allclose(np.asarray(lazy.obsm["X_fake"]), adata.obsm["X_fake"])
    new = da.from_array(np.arange(N_OBS * N_VARS, dtype=np.float32).reshape(N_OBS, -1), (50, -1))
    dyn.io.commit(
        lazy,
        "first",
        layers={"a": new, "b": sparse.csr_matrix(np.eye(N_OBS, N_VARS, dtype=np.float32))},
        obs={"col": np.arange(N_OBS, dtype=float)},
        uns={"entry": {"value": 3}},
    )
    again = dyn.io.open(url)  # the options are remembered for the bucket
    np.testing.assert_array_equal(again.layers["a"].compute(), new.compute())
    np.testing.assert_array_equal(again.layers["b"].compute().toarray(), np.eye(N_OBS, N_VARS))
    np.testing.assert_array_equal(again.obs["col"], np.arange(N_OBS))
    assert again.uns["entry"]["value"] == 3
    assert "first" in again.uns["dynadask"]["stages"]
    memory = dyn.io.read_zarr(url)
    np.testing.assert_array_equal(memory.layers["a"], new.compute())
    # nothing beside the store but the store: no staging prefix, no lock
    names = {k.split("/")[0] for k in objectstore.files(location(url).fs, bucket[len("s3://") :])}
    assert names == {"s.zarr"}
    with pytest.raises(dyn.StoreExistsError):
        dyn.io.convert(src, url)
    info = dyn.io.store_info(url)
    assert info["n_obs"] == N_OBS and "first" in info["stages"]


@pytest.mark.slow  # minutes on moto's server (150 s at load 13): every object is copied twice
def test_reorder_on_s3_through_the_shared_scratch(tmp_path, s3, bucket, monkeypatch):
    """The reorder's row pieces go to $DYNADASK_SCRATCH (the folder remote workers share)."""
    from dynadask.io import order as order_module

    src, adata = _source(tmp_path)
    url = f"{bucket}/s.zarr"
    dyn.io.convert(src, url, chunk_cells=50, storage_options=s3)
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("DYNADASK_SCRATCH", str(shared))
    used = []
    real = order_module._scratch_beside
    monkeypatch.setattr(order_module, "_scratch_beside", lambda p: used.append(real(p)) or used[-1])
    perm = np.random.default_rng(3).permutation(N_OBS)
    out = dyn.io.reorder(url, perm)
    assert len(used) == 1 and used[0].parent == shared
    assert list(shared.iterdir()) == []  # removed after the commit
    want = adata.layers["spliced"].toarray()[perm]
    np.testing.assert_array_equal(out.layers["spliced"].compute().toarray(), want)
    np.testing.assert_allclose(np.asarray(out.obsm["X_fake"]), adata.obsm["X_fake"][perm])
    assert list(out.obs_names) == [f"c{i}" for i in perm]
    back = dyn.io.open(url, order="original")
    assert list(back.obs_names) == list(adata.obs_names)
    np.testing.assert_array_equal(
        back.layers["spliced"].compute().toarray(), adata.layers["spliced"].toarray()
    )


def test_missing_store_and_bad_options(s3, bucket):
    with pytest.raises(dyn.StoreNotFoundError, match="no store at"):
        dyn.io.open(f"{bucket}/none.zarr", storage_options=s3)
    with pytest.raises(dyn.InputError, match="not JSON"):
        dyn.io.open(f"{bucket}/none.zarr", storage_options="{endpoint")


def _second(lazy: ad.AnnData) -> None:
    """A commit that replaces a layer with one with fewer chunks, adds keys and a group."""
    new = da.from_array(np.zeros((N_OBS, N_VARS), np.float32), chunks=(50, -1))
    dyn.io.commit(
        lazy,
        "second",
        layers={"a": new, "c": new + 1},
        varm={"loadings": np.ones((N_VARS, 2))},
        obs={"col": np.ones(N_OBS)},
        uns={"entry": {"value": 2}},
    )


class _Crash(BaseException):
    """The process dies here: this step and every later one never happen."""


@pytest.mark.slow  # minutes on moto's server: run with -m slow (benchmarks)
@pytest.mark.parametrize("every", [False, True])
def test_commit_faults_leave_all_old_or_all_new(tmp_path, s3, bucket, monkeypatch, every):
    """An exception (and a death) at the steps of the object-store switch.

    The default run breaks the first step, those around the journal (the switch) and the
    last two; the slow run breaks every one.
    """
    src, _ = _source(tmp_path)
    url = f"{bucket}/s.zarr"
    dyn.io.convert(src, url, chunk_cells=50, storage_options=s3)
    fs = location(url).fs
    fs.rm(location(url).child("varm"), recursive=True)  # the commit must make the group
    dyn.io.format.consolidate(url)
    first = da.from_array(np.full((N_OBS, N_VARS), 1.0, np.float32), chunks=(50, -1))
    dyn.io.commit(dyn.io.open(url), "first", layers={"a": first}, obs={"col": np.zeros(N_OBS)})
    base = location(url).with_name("base.zarr")
    fs.copy(location(url).key, base.key, recursive=True)
    old = _hashes(location(url))

    steps: list[tuple] = []

    def counting(kind, fs_, *args):
        steps.append((kind, args[0] if args else None))
        return objectstore._perform(kind, fs_, *args)

    monkeypatch.setattr(objectstore, "_op", counting)
    _second(dyn.io.open(url))
    monkeypatch.setattr(objectstore, "_op", objectstore._perform)
    new = _hashes(location(url))
    n = len(steps)
    kinds = {k for k, _ in steps}
    assert {"copy", "delete", "put", "consolidate"} <= kinds and n > 20
    # the old value of layers/a had chunks the new (all-zero, fill value) one lacks
    assert any(k == "delete" and "layers/a/c" in str(p) for k, p in steps)

    def reset():
        fs.rm(location(url).key, recursive=True)
        fs.copy(base.key, location(url).key, recursive=True)
        fs.invalidate_cache()
        assert _hashes(location(url)) == old

    journal_at = next(i for i, (k, p) in enumerate(steps) if k == "put" and "journal" in p)
    points = set(range(n)) if every else set()
    points |= {0, journal_at - 1, journal_at, journal_at + 1, n - 2, n - 1}
    tested = 0
    for i in sorted(points):
        for death in (False, True):
            reset()
            calls = {"n": 0}

            def faulty(kind, fs_, *args, i=i, death=death, calls=calls):
                calls["n"] += 1
                if calls["n"] - 1 == i or (death and calls["n"] - 1 > i):
                    raise _Crash() if death else OSError(f"injected at step {i}")
                return objectstore._perform(kind, fs_, *args)

            monkeypatch.setattr(objectstore, "_op", faulty)
            with pytest.raises(_Crash if death else OSError):
                _second(dyn.io.open(url))
            monkeypatch.setattr(objectstore, "_op", objectstore._perform)
            if death:  # the next process opens the store
                reopened = dyn.io.open(url)
                switched = i > journal_at
                assert _hashes(location(url)) == (new if switched else old), (i, steps[i])
                assert ("second" in reopened.uns["dynadask"]["stages"]) == switched
            elif i < n - 1:  # up to the consolidation, an error rolls the switch back
                assert _hashes(location(url)) == old, (i, steps[i])
            else:  # the journal's deletion failed: the switch is over, the next open ends it
                dyn.io.open(url)
                assert _hashes(location(url)) == new, (i, steps[i])
            tested += 1
    assert tested == 2 * len(points)


def test_lock_object_names_the_writer(s3, bucket, tmp_path):
    src, _ = _source(tmp_path)
    url = f"{bucket}/s.zarr"
    dyn.io.convert(src, url, storage_options=s3)
    store = location(url)
    owner = {"host": "another-host", "pid": 1, "time": "2026-01-01T00:00:00+00:00"}
    objectstore.write_lock(store, owner)
    with pytest.raises(dyn.StoreLockedError, match="another-host"):
        dyn.io.commit(dyn.io.open(url), "x", obs={"c": np.zeros(N_OBS)})
    objectstore.delete_lock(store)
    dyn.io.commit(dyn.io.open(url), "x", obs={"c": np.zeros(N_OBS)})
    assert objectstore.read_lock(store) is None


def test_cli_on_s3(s3, bucket, tmp_path):
    src, _ = _source(tmp_path)
    url = f"{bucket}/cli.zarr"
    opts = json.dumps(s3)
    run = [sys.executable, "-m", "dynadask.cli"]
    done = subprocess.run(
        [*run, "convert", str(src), url, "--storage-options", opts, "--workers", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert url in done.stdout
    env = {"AWS_ENDPOINT_URL": s3["endpoint_url"], "AWS_ACCESS_KEY_ID": "test"}
    env["AWS_SECRET_ACCESS_KEY"] = "test"
    import os

    done = subprocess.run(
        [*run, "info", url], capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    assert done.returncode == 0, done.stderr
    assert f"{N_OBS:,} cells" in done.stdout
    done = subprocess.run(
        [*run, "info", f"{bucket}/nothing.zarr", "--storage-options", opts],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "no store at" in done.stderr


STAGES = ["preprocess", "neighbors", "moments", "dynamics"]


@pytest.mark.slow  # minutes on moto's server: run with -m slow (benchmarks)
def test_workflow_on_s3_equals_local_disk(s3, bucket, tmp_path, pancreas_path):
    """The first stages of the workflow on a pancreas store in S3 give the local run's results."""
    from dynadask import pipeline

    a = dyn.read_h5ad(pancreas_path)
    idx = np.random.default_rng(0).choice(a.n_obs, 600, replace=False)
    a[np.sort(idx)].copy().write_h5ad(tmp_path / "small.h5ad")
    local = dyn.io.convert(tmp_path / "small.h5ad", tmp_path / "small.zarr", chunk_cells=300)
    url = dyn.io.convert(
        tmp_path / "small.h5ad", f"{bucket}/small.zarr", chunk_cells=300, storage_options=s3
    )
    quiet = {"stages": STAGES, "log": lambda _: None, "figures": tmp_path / "fig"}
    on_disk = pipeline.run(local, **quiet)
    on_s3 = pipeline.run(url, **quiet)
    assert set(STAGES) <= set(pipeline.completed(on_s3))
    for key in ("M_s", "M_u", "velocity_S"):
        np.testing.assert_array_equal(
            np.asarray(on_s3.layers[key].compute()), np.asarray(on_disk.layers[key].compute())
        )
    np.testing.assert_array_equal(
        np.asarray(on_s3.obsm["X_pca"]), np.asarray(on_disk.obsm["X_pca"])
    )
    pd.testing.assert_frame_equal(on_s3.var, on_disk.var)
    reread = dyn.io.open(url)
    np.testing.assert_array_equal(
        reread.obsp["distances"].compute().toarray(), on_disk.obsp["distances"].compute().toarray()
    )
