"""dyn.pd.state_graph on a flow with known group order; stores; errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import dynadask as dyn
from dynadask.kernels import state_graph as ks
from dynadask.kernels.vectorfield import gauss_kernel


@pytest.fixture(scope="module")
def flow():
    """Cells along x in [0, 3] in three groups, a field carrying them to the right."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 3, 600), rng.uniform(-0.5, 0.5, 600)])
    groups = np.array(["A", "B", "C"])[np.minimum((X[:, 0]).astype(int), 2)]
    gx, gy = np.linspace(-0.5, 3.5, 17), np.linspace(-1, 1, 9)
    ctrl = np.array(np.meshgrid(gx, gy)).reshape(2, -1).T
    beta = 1 / (2 * 0.35**2)
    C = np.linalg.lstsq(
        gauss_kernel(X, ctrl, beta), np.column_stack([np.ones(600), -X[:, 1]]), rcond=None
    )[0]
    # shuffle the group order of appearance: B first
    order = np.argsort(groups != "B", kind="stable")
    obs = pd.DataFrame({"clusters": groups[order]}, index=[f"c{i}" for i in range(600)])
    return ad.AnnData(
        obs=obs,
        obsm={"X_umap": X[order]},
        uns={"VecFld_umap": {"X_ctrl": ctrl, "C": C, "beta": beta}},
    )


def test_transitions_follow_the_flow(flow):
    a = flow.copy()
    dyn.pd.state_graph(a, "clusters", basis="umap", sample_num=30, t_end=5.0)
    out = a.uns["clusters_graph"]
    assert list(out["group_names"]) == ["B", "A", "C"]  # order of first appearance
    G = pd.DataFrame(out["group_graph"], index=out["group_names"], columns=out["group_names"])
    # no way back against the flow; forward to every later group. A start cell near a
    # group's right edge leaves it with too few points to count it (10), so the diagonal
    # and the shares are below the ideal 1/3, 1/2 and 1
    assert G.loc["B", "A"] == G.loc["C", "A"] == G.loc["C", "B"] == 0
    assert G.loc["A", "B"] > 0.25 and G.loc["A", "C"] > 0.25 and G.loc["B", "C"] > 0.4
    assert G.loc["C", "C"] > 0.6 and G.loc["A", "A"] > 0.1
    assert (G.sum(axis=1) <= 1 + 1e-9).all() and G.loc["A"].sum() > 0.9
    T = pd.DataFrame(out["group_avg_time"], index=out["group_names"], columns=out["group_names"])
    # from A the flow (speed 1) reaches B about a time unit before C
    assert T.loc["A", "A"] < T.loc["A", "B"] < T.loc["A", "C"]
    assert 0.5 < T.loc["A", "C"] - T.loc["A", "B"] < 1.5
    assert np.isnan(T.loc["C", "A"]) and np.isnan(T.loc["B", "A"])
    b = flow.copy()
    dyn.pd.state_graph(b, "clusters", sample_num=30, t_end=5.0)
    np.testing.assert_array_equal(b.uns["clusters_graph"]["group_graph"], out["group_graph"])


def test_store_equals_memory(flow, tmp_path):
    flow.write_h5ad(tmp_path / "f.h5ad")
    dyn.io.convert(tmp_path / "f.h5ad", tmp_path / "f.zarr", chunk_cells=200)
    store = dyn.io.open(tmp_path / "f.zarr")
    a = flow.copy()
    dyn.pd.state_graph(a, "clusters", sample_num=10, t_end=5.0)
    dyn.pd.state_graph(store, "clusters", sample_num=10, t_end=5.0)
    again = dyn.io.open(tmp_path / "f.zarr")
    for k in ("group_graph", "group_avg_time"):
        np.testing.assert_allclose(
            np.asarray(again.uns["clusters_graph"][k]),
            a.uns["clusters_graph"][k],
            equal_nan=True,
        )
    assert "state_graph" in again.uns["dynadask"]["stages"]


def test_kernel_counts_points_near_cells():
    keep = ks.kept_points(np.array([[0, 0], [0, 1e-4], [0, 1.0], [0, 1.0]]), 1e-3)
    assert keep.tolist() == [True, False, True, False]
    codes = np.array([0] * 12 + [1] * 5 + [2] * 20)
    dist = np.r_[np.full(12, 0.1), np.full(5, 0.1), np.full(20, 0.9)]
    t = np.arange(37.0)
    passed, mean_t = ks.passes(codes, dist, t, 0.5, 3, 10)
    assert passed.tolist() == [True, False, False]  # 5 points too few, 20 too far
    assert mean_t[0] == pytest.approx(5.5) and np.isnan(mean_t[1:]).all()


def test_clear_errors(flow):
    with pytest.raises(dyn.MissingKeyError, match="obs"):
        dyn.pd.state_graph(flow.copy(), "nope")
    with pytest.raises(dyn.InputError, match="'vf'"):
        dyn.pd.state_graph(flow.copy(), "clusters", method="markov")
    bare = flow.copy()
    del bare.uns["VecFld_umap"]
    with pytest.raises(dyn.MissingKeyError, match=r"dyn\.vf\.VectorField"):
        dyn.pd.state_graph(bare, "clusters")
    assert "clusters_graph" not in bare.uns


def test_the_graph_is_drawn_between_group_medians(flow):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    a = flow.copy()
    a.uns["clusters_graph"] = {
        "group_graph": np.array([[0.5, 0.1, 0.4], [0.3, 0.4, 0.3], [0.0, 0.0, 1.0]]),
        "group_avg_time": np.zeros((3, 3)),
        "group_names": np.array(["B", "A", "C"]),
    }
    ax = dyn.pl.state_graph(a, "clusters", save_show_or_return="return")
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    assert set(arrows) == {"B->C", "A->B", "A->C"}  # B->A is the weaker direction of A-B
    X, labels = a.obsm["X_umap"], a.obs["clusters"].to_numpy()
    from dynadask.pl.state_graph import graph_to_draw

    P = graph_to_draw(a.uns["clusters_graph"]["group_graph"], 0.001, True, 1)
    np.testing.assert_allclose(P[1], [0.3, 0.4, 0.3])  # A's row kept whole, sums to 1
    np.testing.assert_allclose(P[0], [0.5, 0.0, 0.4] / np.float64(0.9))  # B->A removed
    np.testing.assert_allclose(arrows["A->C"].get_linewidth(), 3 * 0.3)
    a_mid, c_mid = (np.median(X[labels == g], axis=0) for g in ("A", "C"))
    start, end = arrows["A->C"]._posA_posB  # from A's median to C's (data coordinates)
    np.testing.assert_allclose(start, a_mid)
    np.testing.assert_allclose(end, c_mid)
    plt.close("all")
    with pytest.raises(dyn.MissingKeyError, match=r"dyn\.pd\.state_graph"):
        dyn.pl.state_graph(flow.copy(), "clusters")
