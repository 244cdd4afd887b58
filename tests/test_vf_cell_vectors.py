"""dyn.vf.cell_accelerations / cell_curvatures against dynamo 1.5.3 on its pancreas reference.

dynamo's projections are recorded in ``tests/data/dynamo_cell_vectors.npz`` by
``benchmarks/dynamo_cell_vectors.py`` (run in dynamo's environment on the same reference:
its PCA field, kNN graph and embedding).
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pytest

import dynadask as dyn

DYNAMO = Path(__file__).parent / "data" / "dynamo_cell_vectors.npz"


@pytest.fixture(scope="module")
def small(reference):
    """dynamo's cells with their PCA field, PCA and umap coordinates and kNN graph."""
    return ad.AnnData(
        X=None,
        obs=reference.obs[["clusters"]].copy(),
        obsm={k: reference.obsm[k] for k in ("X_pca", "X_umap", "velocity_umap")},
        obsp={k: reference.obsp[k] for k in ("distances", "connectivities")},
        uns={
            "VecFld_pca": dict(reference.uns["VecFld_pca"]),
            "neighbors": reference.uns["neighbors"],
        },
    )


@pytest.fixture(scope="module")
def store(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("cellvectors")
    small.write_h5ad(path / "c.h5ad")
    return dyn.io.convert(path / "c.h5ad", path / "c.zarr", chunk_cells=1000)


@pytest.mark.parametrize("kind", ["acceleration", "curvature"])
def test_projection_equals_dynamos(small, kind):
    a = small.copy()
    call = dyn.vf.cell_accelerations if kind == "acceleration" else dyn.vf.cell_curvatures
    call(a)
    want = np.load(DYNAMO)[f"{kind}_umap"]
    got = np.asarray(a.obsm[f"{kind}_umap"], dtype=np.float64)
    assert got.shape == want.shape == (a.n_obs, 2)
    # measured: at most 2.4e-5 (acceleration) and 1.1e-5 (curvature) apart, vectors up to 2.6
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    cos = np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() > 1 - 1e-6
    # the vectors in pca were computed on the way, and the velocity projection is untouched
    assert a.obsm[f"{kind}_pca"].shape == (a.n_obs, 30)
    np.testing.assert_array_equal(a.obsm["velocity_umap"], small.obsm["velocity_umap"])
    T = a.obsp[f"{kind}_transition_matrix"]
    assert T.shape == (a.n_obs, a.n_obs) and "pearson_transition_matrix" not in a.obsp
    assert f"grid_{kind}_umap" in a.uns


def test_a_store_gets_what_memory_gets(small, store):
    lazy = dyn.io.open(store)
    dyn.vf.cell_accelerations(lazy)
    again = dyn.io.open(store)  # read back from the store
    want = np.load(DYNAMO)["acceleration_umap"]
    got = np.asarray(again.obsm["acceleration_umap"], dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())
    np.testing.assert_array_equal(
        np.asarray(again.obsm["velocity_umap"]), small.obsm["velocity_umap"]
    )


def test_clear_errors(small):
    a = small.copy()
    cases = [
        (lambda: dyn.vf.cell_accelerations(a, vf_basis="umap"), "is an embedding"),
        (lambda: dyn.vf.cell_curvatures(a, basis="pca"), "both 'pca'"),
        (lambda: dyn.vf.cell_accelerations(a, basis="tsne"), r"obsm\['X_tsne'\] is missing"),
        (
            lambda: dyn.vf.cell_accelerations(ad.AnnData(obsm=dict(a.obsm), obs=a.obs)),
            r"dyn.vf.VectorField\(adata, basis='pca'\)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    assert "acceleration_umap" not in a.obsm  # nothing written by a refused call
