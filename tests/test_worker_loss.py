"""A worker process killed in the middle of a stage: Dask recomputes, the stage still finishes.

The store is Poisson-resampled pancreas cells in random row order (the worst case for
neighbourhood steps: every output block gathers rows from every chunk), preprocessed and
given its kNN graph once per module. ``dyn.tl.moments`` then runs on a LocalCluster of two
single-threaded worker processes while a thread kills one worker with SIGKILL as soon as the
scheduler reports the first smoothing tasks done; the result must equal an uninterrupted run.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import dynadask as dyn
from benchmarks.make_atlas import LAYERS, resample_block
from dynadask._core.compute import scratch_files, share
from dynadask.pipeline import completed

N_GENES = 500  # the most expressed genes: enough for the workflow, a quarter of the work


def _random_order_store(path: Path, n_cells: int, chunk_cells: int, seed: int = 0) -> Path:
    """Pancreas cells drawn with replacement, counts Poisson-resampled, in random order."""
    src = dyn.sample_data.pancreas()
    total = np.asarray(src.layers["spliced"].sum(0)).ravel()
    src = src[:, np.sort(np.argsort(-total)[:N_GENES])].copy()
    # the template goes to the workers as a file each can load, not inside the graph
    (template,) = share([{k: sparse.csr_matrix(src.layers[k], dtype=np.float32) for k in LAYERS}])
    picks = np.random.default_rng(seed).integers(0, src.n_obs, n_cells)
    meta = sparse.csr_matrix((0, 0), dtype=np.float32)
    blocks: dict[str, list] = {k: [] for k in LAYERS}
    for b, start in enumerate(range(0, n_cells, chunk_cells)):
        cells = picks[start : start + chunk_cells]
        both = dask.delayed(resample_block, pure=True, nout=None)(template, cells, seed, b)
        for k in LAYERS:
            blocks[k].append(
                da.from_delayed(
                    both[k], shape=(cells.size, src.n_vars), dtype=np.float32, meta=meta
                )
            )
    obs = pd.DataFrame(
        {"clusters": src.obs["clusters"].values[picks]},
        index=[f"cell{i}" for i in range(n_cells)],
    )
    layers = {k: da.concatenate(v, axis=0) for k, v in blocks.items()}
    return dyn.io.create_store(path, obs, src.var[[]].copy(), layers, chunk_cells=chunk_cells)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        yield cluster, client


def _prepare(folder: Path, n_cells: int, chunk_cells: int) -> tuple[Path, dict[str, np.ndarray]]:
    """A preprocessed random-order store with its kNN graph, and uninterrupted moments."""
    path = _random_order_store(folder / "atlas.zarr", n_cells, chunk_cells)
    adata = dyn.io.open(path)
    dyn.pp.recipe_monocle(adata)
    # exact search: no NN-descent compilation in the workers, the same graph for the test
    dyn.tl.neighbors(adata, method="ball_tree")
    dyn.tl.moments(adata, group=False)
    return path, {k: adata.layers[k].compute() for k in ("M_s", "M_u", "M_us")}


@pytest.fixture(scope="module")
def small(tmp_path_factory, cluster):
    return _prepare(tmp_path_factory.mktemp("loss"), 8_000, 1_000)


@pytest.fixture(scope="module")
def large(tmp_path_factory, cluster):
    return _prepare(tmp_path_factory.mktemp("loss_large"), 50_000, 5_000)


def _smooth_states(dask_scheduler) -> tuple[int, int]:
    """(finished, unfinished) counts of the smoothing tasks (fused with their writers)."""
    done = pending = 0
    for ts in dask_scheduler.tasks.values():
        if "smooth" in ts.prefix.name:
            if ts.state in ("memory", "released", "forgotten"):
                done += 1
            else:
                pending += 1
    return done, pending


class _Killer(threading.Thread):
    """Kills one worker process (SIGKILL) once some smoothing tasks are done, others not."""

    def __init__(self, client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.killed: dict | None = None

    def run(self) -> None:
        pids = self.client.run(os.getpid)
        while not self.stop.is_set():
            done, pending = self.client.run_on_scheduler(_smooth_states)
            if done >= 1 and pending >= 1:
                addr = sorted(pids)[0]
                os.kill(pids[addr], signal.SIGKILL)
                self.killed = {"address": addr, "done": done, "pending": pending}
                return
            time.sleep(0.05)


def _moments_with_a_kill(prepared, client) -> None:
    path, want = prepared
    adata = dyn.io.open(path)
    killer = _Killer(client)
    killer.start()
    try:
        dyn.tl.moments(adata, group=False)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.killed is not None, "the worker was not killed during the stage"
    assert killer.killed["pending"] > 0
    # the nanny replaced the killed worker: the stage finished on a cluster that lost one
    assert killer.killed["address"] not in client.scheduler_info(n_workers=-1)["workers"]
    assert "moments" in completed(adata)
    for key, value in want.items():
        np.testing.assert_allclose(adata.layers[key].compute(), value, rtol=1e-6, atol=1e-6)
    gc.collect()
    assert not scratch_files(), "scratch files were left behind"


def test_moments_survive_a_worker_killed_mid_stage(small, cluster):
    _moments_with_a_kill(small, cluster[1])


@pytest.mark.slow
def test_moments_survive_a_worker_killed_mid_stage_50k_cells(large, cluster):
    _moments_with_a_kill(large, cluster[1])
