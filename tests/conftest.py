"""Shared fixtures: the bundled pancreas data, dynamo's reference outputs, a local cluster."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")  # the figure tests draw off screen

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import dynadask as dyn  # noqa: E402

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "pancreas_dynamo_reference.h5ad"


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every figure a test leaves open (the figure tests draw dozens)."""
    yield
    plt.close("all")


@pytest.fixture(scope="session")
def pancreas_path() -> Path:
    """Path of the raw pancreas counts that ship with dynadask."""
    return dyn.sample_data.pancreas_path()


@pytest.fixture
def pancreas() -> ad.AnnData:
    """A fresh in-memory copy of the raw pancreas data."""
    return dyn.sample_data.pancreas()


@pytest.fixture(scope="session")
def reference_path() -> Path:
    """Path of dynamo 1.5.3's outputs on the pancreas data (see tests/data/*.md)."""
    return REFERENCE


@pytest.fixture(scope="session")
def reference() -> ad.AnnData:
    """dynamo 1.5.3's outputs on pancreas, read once (do not modify)."""
    return ad.read_h5ad(REFERENCE)


@pytest.fixture(scope="session")
def _local_cluster():
    """Two single-threaded worker processes, started once for the whole session.

    A new cluster's workers would import and compile the numba-backed libraries again
    (umap-learn, pynndescent), which costs more than most tests that use them.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def local_client(_local_cluster):
    """A client of a LocalCluster of two single-threaded worker processes, as on the CI machine.

    The client (and with it the default scheduler) lives for one test module; the cluster
    behind it is the session's.
    """
    from distributed import Client

    with Client(_local_cluster) as client:
        yield client
