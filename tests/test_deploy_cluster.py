"""``dynadask run`` against a real cluster: scheduler and workers as separate OS processes.

The loopback cluster (``tests/loopback.py``) is started from the venv's ``dask`` command, as
on a head node. Its results must equal the same run on an in-process ``LocalCluster``
(scheduler and two single-threaded workers as threads of the test process).

Tolerance: both runs build the same Dask graph over the same row chunks, so every task does
the same arithmetic on the same blocks; what may differ is float rounding where partial
results are combined in the order they arrive, or where a BLAS call in the test process (the
in-process workers) uses other threads than a worker process (one BLAS thread, set by the
nanny). Those are float32 rounding effects: 1e-5 of each quantity's largest magnitude bounds
them with room, and a wrong block, gene or cell order would be off by O(1) of it. Measured
(2026-12-02, 600 cells): every compared quantity bitwise equal (relative gap 0.0), in
preprocess and in preprocess .. cell_velocities.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import anndata as ad
import numpy as np
import psutil
import pytest
from loopback import loopback_cluster
from scipy import sparse

import dynadask as dyn
from dynadask.cli import main

RTOL = 1e-5
STAGES = ["preprocess", "neighbors", "reorder", "moments", "dynamics", "reduceDimension",
          "cell_velocities"]  # fmt: skip


@pytest.fixture(scope="module")
def loopback(tmp_path_factory):
    """A scheduler and two ``dask worker --nthreads 1 --memory-limit 1.5GiB`` processes."""
    with loopback_cluster(tmp_path_factory.mktemp("loopback")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def small_h5ad(tmp_path_factory, pancreas_path):
    """600 pancreas cells drawn at random (seed 0), as a file for ``dynadask run``."""
    a = dyn.read_h5ad(pancreas_path)
    idx = np.sort(np.random.default_rng(0).choice(a.n_obs, 600, replace=False))
    path = tmp_path_factory.mktemp("deploy") / "small.h5ad"
    a[idx].copy().write_h5ad(path)
    return path


def _run(src, out, address, stages) -> ad.AnnData:
    argv = ["run", str(src), "--out", str(out), "--chunk-cells", "200", "--no-progress",
            "--scheduler", address, "--stages", *stages]  # fmt: skip
    assert main(argv) == 0
    return dyn.io.open(out / "small.zarr")


def _in_process_run(src, out, stages) -> ad.AnnData:
    from distributed import LocalCluster

    # no memory limit: threads in this process would measure the whole test process's
    # memory against it and pause (a hang, seen once the process had grown past 1.2 GiB)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, memory_limit=0,
        dashboard_address=":0",
    ) as cluster:  # fmt: skip
        return _run(src, out, cluster.scheduler_address, stages)


def _dense(x) -> np.ndarray:
    x = x.compute() if hasattr(x, "compute") else x
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)


def _assert_same(remote: ad.AnnData, local: ad.AnnData, getters: dict) -> dict[str, float]:
    """Each quantity equal within RTOL of its largest magnitude; returns the relative gaps."""
    gaps = {}
    for name, get in getters.items():
        x, y = _dense(get(remote)), _dense(get(local))
        assert x.shape == y.shape and x.size, name
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=name)
        scale = np.nanmax(np.abs(y))
        gaps[name] = float(np.nanmax(np.abs(x - y)) / scale)
        assert gaps[name] <= RTOL, (name, gaps[name])
    print("relative gaps, loopback vs in-process:", gaps)
    return gaps


def test_loopback_cluster_is_separate_processes(loopback):
    from distributed import Client

    with Client(loopback.address) as c:
        info = c.scheduler_info(n_workers=-1)["workers"]
        pids = c.run(lambda: __import__("os").getpid())
    assert len(info) == 2 and {w["nthreads"] for w in info.values()} == {1}
    assert {w["memory_limit"] for w in info.values()} == {int(1.5 * 2**30)}
    assert set(pids.values()) <= loopback.pids()  # worker processes of the fixture
    assert psutil.Process().pid not in loopback.pids()
    assert loopback.dashboard.startswith("http://127.0.0.1:")


def test_teardown_leaves_no_process_when_the_body_fails(tmp_path):
    with pytest.raises(RuntimeError, match="test body failed"):
        with loopback_cluster(tmp_path / "c", n_workers=1) as cluster:
            pids = cluster.pids()
            assert len(pids) >= 3  # scheduler, nanny, worker process
            raise RuntimeError("test body failed")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    assert all(p.returncode is not None for p in cluster.processes)  # reaped


def test_preprocess_on_loopback_equals_in_process(loopback, small_h5ad, tmp_path):
    remote = _run(small_h5ad, tmp_path / "remote", loopback.address, ["preprocess"])
    local = _in_process_run(small_h5ad, tmp_path / "local", ["preprocess"])
    assert remote.n_obs == local.n_obs and remote.n_vars == local.n_vars
    np.testing.assert_array_equal(remote.var["use_for_pca"], local.var["use_for_pca"])
    _assert_same(
        remote,
        local,
        {
            "X_pca": lambda a: a.obsm["X_pca"],
            "X": lambda a: a.X,
            "Size_Factor": lambda a: a.obs["Size_Factor"].to_numpy(),
        },
    )


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_workflow_on_loopback_equals_in_process(loopback, small_h5ad, tmp_path):
    """preprocess .. cell_velocities through ``dynadask run --scheduler``, both clusters."""
    remote = _run(small_h5ad, tmp_path / "remote", loopback.address, STAGES)
    local = _in_process_run(small_h5ad, tmp_path / "local", STAGES)
    assert set(dyn.pipeline.completed(remote)) >= set(STAGES)
    np.testing.assert_array_equal(remote.obs_names, local.obs_names)
    np.testing.assert_array_equal(remote.var["use_for_dynamics"], local.var["use_for_dynamics"])
    _assert_same(
        remote,
        local,
        {
            "gamma": lambda a: a.var["gamma"].to_numpy(),
            "velocity_S": lambda a: a.layers["velocity_S"],
            "X_umap": lambda a: a.obsm["X_umap"],
            "velocity_umap": lambda a: a.obsm["velocity_umap"],
        },
    )


def _worker_hosts(client) -> set[str]:
    return {urlsplit(a).hostname for a in client.scheduler_info(n_workers=-1)["workers"]}


def test_workers_on_another_host_load_shared_values_from_dynadask_scratch(tmp_path, monkeypatch):
    """Workers seen on another host: values are scattered, or written once to the shared folder.

    The workers listen on 127.0.0.2, not one of the client's addresses, so dynadask treats
    them as remote. Without ``DYNADASK_SCRATCH`` a large value goes by ``scatter``; with it,
    into one file in that folder, which the worker loads; the file goes once the
    graph is dropped.
    """
    import dask
    from distributed import Client

    from dynadask._core import compute as core

    value = np.arange(100_000, dtype=np.float64)  # 800 kB, above core.INLINE_BYTES
    monkeypatch.setattr(core, "_scratch", {**core._scratch, "near": None, "local": {}})
    shared = tmp_path / "shared"
    with loopback_cluster(tmp_path / "c", n_workers=1, worker_host="127.0.0.2") as cluster:
        with Client(cluster.address) as client:
            assert _worker_hosts(client) == {"127.0.0.2"}
            assert not core._workers_are_local(client)
            monkeypatch.delenv("DYNADASK_SCRATCH", raising=False)
            (scattered,) = core.share([value])
            assert dask.delayed(np.sum)(scattered).compute() == value.sum()
            assert not shared.exists()
            monkeypatch.setenv("DYNADASK_SCRATCH", str(shared))
            (filed,) = core.share([value])
            (folder,) = shared.iterdir()  # this process's own folder
            (path,) = folder.iterdir()
            # a function the workers can import (this test module is not on their path)
            assert dask.delayed(np.sum)(filed).compute() == value.sum()
            del filed
            import gc

            gc.collect()
            assert not path.exists()


@pytest.mark.slow  # 163 s at load 13: recipe and three moments, numba compiled in each worker
def test_workers_on_another_host_read_moments_input_from_the_shared_scratch(
    tmp_path, small_h5ad, monkeypatch
):
    """Workers the client sees on another host get large values through $DYNADASK_SCRATCH.

    The workers listen on 127.0.0.2, which is not one of the client's own addresses, so
    dynadask treats them as remote: without a shared folder it scatters the values, with
    ``DYNADASK_SCRATCH`` it writes them there once and the workers load them from it. Both
    give the synchronous scheduler's moments exactly.
    """
    from distributed import Client

    from dynadask._core import compute as core

    adata = dyn.read_h5ad(small_h5ad)
    dyn.pp.recipe_monocle(adata)
    dyn.tl.moments(adata)  # no client: the synchronous scheduler
    want = _dense(adata.layers["M_s"])
    written: list = []
    write = core.ScratchFile.write
    monkeypatch.setattr(
        core.ScratchFile, "write", lambda v, root: written.append(root) or write(v, root)
    )
    monkeypatch.setattr(core, "_scratch", {**core._scratch, "near": None, "local": {}})
    shared = tmp_path / "shared"
    cluster_dir = tmp_path / "c"
    with loopback_cluster(cluster_dir, n_workers=2, worker_host="127.0.0.2") as cluster:
        with Client(cluster.address) as client:
            assert _worker_hosts(client) == {"127.0.0.2"}
            assert not core._workers_are_local(client)
            monkeypatch.delenv("DYNADASK_SCRATCH", raising=False)
            dyn.tl.moments(adata)  # scattered
            assert written == []
            np.testing.assert_array_equal(_dense(adata.layers["M_s"]), want)
            monkeypatch.setenv("DYNADASK_SCRATCH", str(shared))
            dyn.tl.moments(adata)
            assert written and all(root.parent == shared for root in written)
            np.testing.assert_array_equal(_dense(adata.layers["M_s"]), want)
