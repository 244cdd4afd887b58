"""The landscape, state-graph, least-action and fate-bias figures on pancreas, memory and store.

Inputs are dynamo 1.5.3's own pancreas results (its umap field, topography and the fates of
its 50 Ductal cells), so each figure is checked against values dynamo computed.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402

import dynadask as dyn  # noqa: E402


@pytest.fixture(scope="module")
def pancreas(reference):
    """dynamo's cells, umap embedding, umap field and the fates of its 50 Ductal cells."""
    vf = dict(reference.uns["VecFld_umap"])
    vf.update({k: reference.uns["topography_umap"][k] for k in ("Xss", "ftype", "confidence")})
    return ad.AnnData(
        X=np.zeros((reference.n_obs, 1), dtype=np.float32),
        obs=reference.obs[["clusters"]].copy(),
        obsm={k: reference.obsm[k] for k in ("X_umap", "velocity_umap")},
        uns={
            "VecFld_umap": vf,
            "fate_umap": {
                k: reference.uns["fate_umap"][k] for k in ("init_cells", "prediction", "t")
            },
        },
    )


@pytest.fixture(scope="module")
def store(pancreas, tmp_path_factory):
    path = tmp_path_factory.mktemp("plpancreas")
    pancreas.write_h5ad(path / "p.h5ad")
    return dyn.io.convert(path / "p.h5ad", path / "p.zarr", chunk_cells=1000)


def test_landscape_of_the_pancreas_field(pancreas, store):
    a = pancreas.copy()
    dyn.vf.Potential(a, basis="umap", method="Bhattacharya")
    grid = a.uns["grid_Pot_umap"]
    ax = dyn.pl.show_landscape(a, basis="umap", save_show_or_return="return")
    assert ax.name == "3d" and ax.get_zlabel() == "U"
    (surface,) = ax.collections
    Z = np.asarray(grid["Zgrid"])
    assert len(surface.get_facecolors()) == (Z.shape[0] - 1) * (Z.shape[1] - 1)
    lo, hi = ax.get_zlim()
    assert lo <= np.nanmin(Z) and hi >= np.nanmax(Z)
    # the store draws the same surface from its own Potential
    lazy = dyn.io.open(store)
    dyn.vf.Potential(lazy, basis="umap", method="Bhattacharya")
    np.testing.assert_allclose(
        np.asarray(dyn.io.open(store).uns["grid_Pot_umap"]["Zgrid"]), Z, equal_nan=True
    )
    again = dyn.pl.show_landscape(dyn.io.open(store), basis="umap", save_show_or_return="return")
    assert len(again.collections[0].get_facecolors()) == len(surface.get_facecolors())


def test_state_graph_of_dynamos_fates(pancreas, store):
    # 30 start cells a group (default 100): the figure's checks need edges, not their weights
    for adata in (pancreas.copy(), dyn.io.open(store)):
        dyn.pd.state_graph(adata, "clusters", basis="umap", sample_num=30)
        entry = adata.uns["clusters_graph"]
        G = np.asarray(entry["group_graph"])
        names = [str(g) for g in entry["group_names"]]
        assert G.shape == (len(names), len(names)) and np.all(G >= 0)
        # the 50 fates all start in the Ductal group
        assert G[names.index("Ductal")].sum() > 0
        ax = dyn.pl.state_graph(adata, "clusters", basis="umap", save_show_or_return="return")
        arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
        assert arrows and all("->" in p.get_gid() for p in arrows)
        assert {p.get_gid().split("->")[0] for p in arrows} <= set(names)


def test_least_action_path_between_two_groups(pancreas, store):
    obs = pancreas.obs
    start = str(obs.index[(obs["clusters"] == "Ductal").to_numpy()][0])
    end = str(obs.index[(obs["clusters"] == "Alpha").to_numpy()][0])
    for adata in (pancreas.copy(), dyn.io.open(store)):
        dyn.pd.least_action(adata, [start], [end], basis="umap", n_points=20)
        entry = adata.uns["LAP_umap"]
        P = np.asarray(entry["prediction"])
        X = np.asarray(pancreas.obsm["X_umap"])
        np.testing.assert_allclose(P[0][0], X[obs.index.get_loc(start)], atol=1e-6)
        np.testing.assert_allclose(P[0][-1], X[obs.index.get_loc(end)], atol=1e-6)
        ax = dyn.pl.least_action(
            adata, basis="umap", color="clusters", save_show_or_return="return"
        )
        (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
        np.testing.assert_allclose(lines.get_segments()[0], P[0])
        dots = [c for c in ax.collections if isinstance(c, PathCollection)][-1]
        S = np.asarray(entry["action"])
        np.testing.assert_allclose(dots.get_array(), (S / S[:, -1:]).ravel())


def test_fate_bias_of_dynamos_fates_on_a_store(pancreas, store):
    mem = dyn.pd.fate_bias(pancreas.copy(), "clusters", basis="umap")
    lazy = dyn.pd.fate_bias(dyn.io.open(store), "clusters", basis="umap")
    np.testing.assert_allclose(lazy.to_numpy(), mem.to_numpy())
    groups = mem.drop(columns="confidence")  # one row a fate: its share of each group
    assert len(mem) == 50 and np.allclose(groups.sum(axis=1), 1.0)
    assert (groups.idxmax(axis=1) != "Ductal").any()  # some fates leave their start
    ax = dyn.pl.fate_bias(
        dyn.io.open(store), "clusters", basis="umap", save_show_or_return="return"
    )
    axes = ax if isinstance(ax, list | tuple | np.ndarray) else [ax]
    assert any(a.images for a in np.ravel(axes))
