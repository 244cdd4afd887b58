"""A vector field and gene rankings from scVelo's keys (velocities made by another tool).

The AnnData is made by dynadask's own pipeline on part of pancreas (two minutes on the
reference machine, so those tests are ``slow``), or taken from dynamo's reference outputs,
then given scVelo's names: ``layers['Ms']``, ``layers['Mu']``, ``layers['velocity']``,
``var['velocity_genes']``, ``obsm['X_umap']``, ``obsm['velocity_umap']``; every dynamo-only
key is removed. The calls that read them must give what the dynamo-named calls give.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

import dynadask as dyn

SCVELO_NAMES = {"M_s": "Ms", "M_u": "Mu", "velocity_S": "velocity"}


@pytest.fixture(scope="module")
def pair():
    adata = dyn.sample_data.pancreas()[::4].copy()  # 924 cells
    dyn.pp.recipe_monocle(adata)
    dyn.tl.dynamics(adata)
    dyn.tl.reduceDimension(adata)
    dyn.tl.cell_velocities(adata)
    scv = adata.copy()
    for old, new in SCVELO_NAMES.items():
        scv.layers[new] = scv.layers.pop(old)
    for key in list(scv.layers):
        if key not in SCVELO_NAMES.values() and key not in ("spliced", "unspliced"):
            del scv.layers[key]
    scv.var["velocity_genes"] = scv.var.pop("use_for_transition")
    scv.var = scv.var[["velocity_genes"]]
    scv.obsm = {k: scv.obsm[k] for k in ("X_umap", "velocity_umap", "X_pca")}
    scv.uns = {}
    scv.obsp = {}
    return adata, scv


@pytest.mark.slow
def test_field_from_scvelo_keys(pair):
    adata, scv = pair
    for a in (adata, scv):
        dyn.vf.VectorField(a, basis="umap", MaxIter=15)
    np.testing.assert_allclose(
        scv.obsm["velocity_umap_SparseVFC"], adata.obsm["velocity_umap_SparseVFC"], rtol=1e-10
    )
    assert scv.uns["VecFld_umap"]["mean_cosine"] > 0.6
    # gene space: scVelo's 'velocity' on its 'velocity_genes', expression 'Ms' by default
    dyn.vf.VectorField(adata, basis=None, MaxIter=10)
    dyn.vf.VectorField(scv, basis=None, velocity_key="velocity", MaxIter=10)
    vf, want = scv.uns["VecFld"], adata.uns["VecFld"]
    assert vf["layer"] == "Ms" and vf["velocity_key"] == "velocity"
    assert list(vf["genes"]) == list(want["genes"]) and len(vf["genes"]) > 50
    np.testing.assert_allclose(vf["C"], want["C"], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        np.asarray(scv.layers["velocity_SparseVFC"]),
        np.asarray(adata.layers["velocity_S_SparseVFC"]),
        rtol=1e-6,
    )


@pytest.mark.slow
def test_rankings_from_scvelo_keys(pair):
    adata, scv = pair
    dyn.vf.rank_velocity_genes(adata, groups="clusters", output_values=True)
    dyn.vf.rank_velocity_genes(scv, vkey="velocity", groups="clusters", output_values=True)
    want, got = adata.uns["rank_velocity_S"], scv.uns["rank_velocity"]
    # without use_for_dynamics every gene is ranked (NaN counts as 0), as dynamo does
    assert got.shape[0] == scv.n_vars and want.shape[0] == adata.var.use_for_dynamics.sum()
    dynamics = set(adata.var_names[adata.var.use_for_dynamics])
    for group in ("Ductal", "Beta"):
        kept = [g for g in got[group] if g in dynamics]
        values = dict(zip(got[group], got[f"{group}_values"], strict=True))
        ref = dict(zip(want[group], want[f"{group}_values"], strict=True))
        np.testing.assert_allclose([values[g] for g in kept], [ref[g] for g in kept], rtol=1e-9)
        assert kept[:20] == list(want[group][:20])


def test_scvelo_named_reference_outputs(reference):
    """dynamo's reference outputs under scVelo's names: same field and rankings."""
    cells = np.arange(0, reference.n_obs, 3)
    scv = ad.AnnData(
        obs=reference.obs[["clusters"]].iloc[cells].copy(),
        var=reference.var[["use_for_transition"]].rename(
            columns={"use_for_transition": "velocity_genes"}
        ),
        layers={
            new: np.asarray(reference.layers[old])[cells]
            for old, new in SCVELO_NAMES.items()
            if old in reference.layers
        },
        obsm={k: reference.obsm[k][cells] for k in ("X_umap", "velocity_umap")},
    )
    dyn.vf.VectorField(scv, basis="umap", MaxIter=15)
    X, V = reference.obsm["X_umap"][cells], reference.obsm["velocity_umap"][cells]
    direct = dyn.vf.SparseVFC(X, V, M=None, MaxIter=15)
    np.testing.assert_allclose(scv.uns["VecFld_umap"]["C"], direct["C"], rtol=1e-8, atol=1e-10)
    dyn.vf.VectorField(scv, basis=None, velocity_key="velocity", MaxIter=10)
    genes = reference.var["use_for_transition"].to_numpy()
    assert list(scv.uns["VecFld"]["genes"]) == list(reference.var_names[genes])
    assert scv.uns["VecFld"]["layer"] == "Ms"
    assert np.all(np.asarray(scv.layers["velocity_SparseVFC"])[:, ~genes] == 0)
    dyn.vf.rank_velocity_genes(scv, vkey="velocity", groups="clusters")
    V = np.nan_to_num(np.asarray(scv.layers["velocity"], dtype=np.float64))
    beta = (scv.obs["clusters"] == "Beta").to_numpy()
    top = scv.var_names[np.argsort(V[beta].mean(0))[::-1][:10]]
    assert list(scv.uns["rank_velocity"]["Beta"][:10]) == list(top)
    assert "rank_abs_velocity" in scv.uns
