"""TLS on loopback: a ``dask scheduler`` and a ``dask worker`` with the certificates of
``deploy/tls.py``, a stage of ``dynadask run`` through them, and plain TCP refused.

The driver gets the TLS settings as ``deploy/README.md`` says, from Dask's configuration
(``deploy/tls.client_env``), and runs ``dynadask run --scheduler tls://...``; its size factors
must equal the in-memory recipe's.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import anndata as ad
import dask
import numpy as np
import pytest
from loopback import loopback_cluster

import dynadask as dyn
from dynadask.cli import main

DEPLOY = Path(__file__).parents[1] / "deploy"
N_CELLS = 200

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def _deploy_tls():
    spec = importlib.util.spec_from_file_location("deploy_tls", DEPLOY / "tls.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    tls = _deploy_tls()
    folder = tmp_path_factory.mktemp("tls")
    files = tls.make_certificates(folder / "certs")
    with loopback_cluster(folder / "cluster", n_workers=1, tls=files) as cluster:
        yield tls, files, cluster


def store_blocks(adata: ad.AnnData) -> int:
    return adata.X.numblocks[0]


def test_a_dynadask_call_commits_through_a_tls_cluster(tls_cluster, tmp_path, pancreas_path):
    """``dyn.pp.calc_sz_factor`` on a store: a pass over its row blocks by the TLS worker and
    a commit; the size factors equal the in-memory ones."""
    from distributed import Client, get_task_stream

    tls, files, cluster = tls_cluster
    a = ad.read_h5ad(pancreas_path)[:N_CELLS].copy()
    a.write_h5ad(tmp_path / "s.h5ad")
    store = dyn.io.convert(tmp_path / "s.h5ad", tmp_path / "s.zarr", chunk_cells=50)
    lazy = dyn.io.open(store)
    with Client(cluster.address, security=tls.security(files), timeout="30s") as c:
        assert c.scheduler_info()["address"].startswith("tls://")
        with get_task_stream(client=c) as tasks:
            dyn.pp.calc_sz_factor(lazy)
        assert len(tasks.data) >= store_blocks(lazy)  # the row blocks went through the worker
    dyn.pp.calc_sz_factor(a)
    back = dyn.io.open(store)
    assert "Size_Factor" in back.obs
    np.testing.assert_allclose(back.obs["Size_Factor"], a.obs["Size_Factor"], rtol=1e-6)


@pytest.mark.slow
def test_a_stage_runs_through_a_tls_scheduler_and_worker(tls_cluster, tmp_path, pancreas_path):
    tls, files, cluster = tls_cluster
    assert cluster.address.startswith("tls://127.0.0.1:")
    a = ad.read_h5ad(pancreas_path)
    idx = np.sort(np.random.default_rng(0).choice(a.n_obs, N_CELLS, replace=False))
    small = a[idx].copy()
    small.write_h5ad(tmp_path / "small.h5ad")
    # the variables of deploy/tls.client_env, as Dask reads them from the environment
    env = tls.client_env(files)
    with dask.config.set({k[5:].lower().replace("__", "."): v for k, v in env.items()}):
        argv = ["run", str(tmp_path / "small.h5ad"), "--out", str(tmp_path / "out"),
                "--chunk-cells", "100", "--no-progress", "--scheduler", cluster.address,
                "--stages", "preprocess"]  # fmt: skip
        assert main(argv) == 0
    out = dyn.io.open(tmp_path / "out" / "small.zarr")
    assert "preprocess" in out.uns["dynadask"]["stages"]
    want = small.copy()
    dyn.pp.recipe_monocle(want)
    np.testing.assert_allclose(out.obs["Size_Factor"], want.obs["Size_Factor"], rtol=1e-5)
    assert (out.var["use_for_pca"].to_numpy() == want.var["use_for_pca"].to_numpy()).all()


def test_plain_tcp_and_unknown_certificates_are_refused(tls_cluster, tmp_path):
    from distributed import Client
    from distributed.security import Security

    tls, files, cluster = tls_cluster
    plain = cluster.address.replace("tls://", "tcp://")
    with pytest.raises((OSError, TimeoutError)):
        Client(plain, timeout="3s")
    # a certificate of another CA is not accepted
    other = tls.make_certificates(tmp_path / "other")
    wrong = Security(tls_ca_file=str(other.ca), tls_client_cert=str(other.cert),
                     tls_client_key=str(other.key), require_encryption=True)  # fmt: skip
    with pytest.raises((OSError, TimeoutError)):
        Client(cluster.address, security=wrong, timeout="3s")
    with Client(cluster.address, security=tls.security(files), timeout="30s") as c:
        assert c.submit(sum, [1, 2, 3]).result(timeout=60) == 6
