"""dyn.pd.fate_bias: dynamo's rule computed directly, walk back, options, stores, errors."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

import dynadask as dyn
from dynadask.kernels import fate_bias as kb


def _dynamo_rule(
    X,
    labels,
    P,
    T,
    *,
    inds=None,
    use_sink=True,
    step_pct=None,
    speed_pct=5,
    threshold=1.0,
    source=None,
):
    """dynamo 1.5.3's fate bias written out directly: one trajectory at a time, pandas counts."""
    nn = NearestNeighbors(n_neighbors=30, algorithm="kd_tree").fit(X)
    dist, _ = nn.kneighbors(X)
    median = np.median(dist[:, 1])
    rows, conf = [], []
    for path, t in zip(P, T, strict=True):
        n = len(t)
        if inds is not None:
            ind = np.asarray(inds)
        elif use_sink:
            speed = np.linalg.norm(np.diff(path, axis=1), axis=0) / np.diff(t)
            moving = np.where(speed[::-1] > np.percentile(speed, speed_pct))[0]
            ind = np.arange(n - max(moving.min(), 10), n)
        elif step_pct is not None:
            ind = np.arange(int(n - step_pct * n), n)
        else:
            ind = np.arange(n)
        d, k = nn.kneighbors(path[:, ind].T)
        back = 0
        while True:
            near = d.ravel() < threshold * median
            if near.any():
                _, reached = nn.kneighbors(X[k.ravel()])
                p = labels.iloc[reached.ravel()].value_counts() / reached.size
                if source is not None:
                    s = p[source].sum()
                    if 0 < s < 1:
                        p[source] = 0
                        p[p.idxmax()] += s
                rows.append(p)
                conf.append(1 - ((~near).sum() + back) / (near.size + back))
                break
            back += 1
            if np.any(ind - 1 < 0):
                rows.append(labels.value_counts() * np.nan)
                conf.append(0.0)
                break
            d, k = nn.kneighbors(path[:, ind - 1].T)
            d, k = d[:, 0], k[:, 0]
            ind = ind - 1
    out = pd.DataFrame(rows).reset_index(drop=True)
    out.columns = out.columns.astype(object)
    out.insert(0, "confidence", conf)
    return out


def _compare(got, want):
    assert set(got.columns) == set(want.columns)
    want = want[list(got.columns)]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)


@pytest.fixture(scope="module")
def fates(reference):
    """Forward fates (60 samples) of 2 cells of each cluster."""
    obs = reference.obs[["clusters"]].copy()
    a = ad.AnnData(
        obs=obs,
        obsm={k: reference.obsm[k] for k in ("X_umap", "velocity_umap_SparseVFC")},
        uns={"VecFld_umap": reference.uns["VecFld_umap"]},
    )
    init = [c for g in obs["clusters"].cat.categories for c in obs.index[obs.clusters == g][:2]]
    dyn.pd.fate(a, init_cells=init, basis="umap", direction="forward", interpolation_num=60)
    return a


def test_equals_dynamos_rule_on_pancreas(fates):
    got = dyn.pd.fate_bias(fates, "clusters")
    f = fates.uns["fate_umap"]
    want = _dynamo_rule(fates.obsm["X_umap"], fates.obs["clusters"], f["prediction"], f["t"])
    assert list(got.index) == list(f["init_cells"]) and got.shape == (16, 9)
    assert list(got.columns[1:]) == list(fates.obs["clusters"].cat.categories)
    _compare(got.reset_index(drop=True), want)
    shares = got.drop(columns="confidence").to_numpy()
    lost = np.isnan(shares).all(axis=1)  # paths that leave the cells and never come back
    assert 0 < lost.sum() <= 4 and np.all(got["confidence"][lost] == 0)
    shares = shares[~lost]
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert np.all((got["confidence"][~lost] > 0) & (got["confidence"][~lost] <= 1))
    # the paths end in different places: several groups win somewhere
    assert len(set(shares.argmax(axis=1))) >= 3


@pytest.mark.parametrize(
    "options, oracle",
    [
        ({"inds": [-3, -2, -1]}, {"inds": [57, 58, 59]}),
        ({"dist_threshold": 0.3, "speed_percentile": 20}, {"threshold": 0.3, "speed_pct": 20}),
        (
            {"use_sink_percentage": False, "step_used_percentage": 0.05},
            {"use_sink": False, "step_pct": 0.05},
        ),
        ({"source_groups": ["Ductal", "Ngn3 low EP"]}, {"source": ["Ductal", "Ngn3 low EP"]}),
    ],
)
def test_options_follow_dynamos_rule(fates, options, oracle):
    got = dyn.pd.fate_bias(fates, "clusters", **options)
    f = fates.uns["fate_umap"]
    want = _dynamo_rule(
        fates.obsm["X_umap"], fates.obs["clusters"], f["prediction"], f["t"], **oracle
    )
    _compare(got.reset_index(drop=True), want)
    if "source_groups" in options:
        held = got[["Ductal", "Ngn3 low EP"]].sum(axis=1).to_numpy()
        assert np.all(np.isclose(held, 0) | np.isclose(held, 1)) and np.any(np.isclose(held, 0))


def _walk_back_paths(X):
    """A path that leaves the cells (walks back to them), one far from every cell (NaN)."""
    span = X.max(0) - X.min(0)
    start = X[10]
    out = start + np.linspace(0, 1, 40)[:, None] * span * 3  # ends far outside the data
    far = X.max(0) + span * 5 + np.linspace(0, 1, 40)[:, None] * span
    P = np.stack([out.T, far.T])
    T = np.tile(np.linspace(0, 1, 40) ** 2, (2, 1))  # slowing down: a sink at the end
    return P, T


def test_walk_back_and_a_path_that_never_meets_the_data(fates):
    X = fates.obsm["X_umap"]
    P, T = _walk_back_paths(X)
    a = ad.AnnData(obs=fates.obs[["clusters"]], obsm={"X_umap": X})
    a.uns["fate_umap"] = {"prediction": P, "t": T, "init_cells": np.array(["out", "far"])}
    got = dyn.pd.fate_bias(a, "clusters")
    want = _dynamo_rule(X, a.obs["clusters"], P, T)
    assert list(got.index) == ["out", "far"]
    assert got.loc["far"].drop("confidence").isna().all() and got.loc["far", "confidence"] == 0
    row = got.loc["out"].drop("confidence")
    np.testing.assert_allclose(row.sum(), 1.0)
    assert 0 < got.loc["out", "confidence"] < 0.5  # found after walking back
    np.testing.assert_allclose(got.iloc[0].to_numpy(), want[got.columns].iloc[0].to_numpy())


def test_tail_rule():
    # constant speed, then 25 slow segments: the tail is the last 25 samples
    t = np.concatenate([np.arange(50.0), 50 + np.arange(1, 26) * 100.0])
    path = np.vstack([np.arange(75.0), np.zeros(75)])
    assert list(kb.tail(path, t)) == list(range(50, 75))
    # a short slow end still gives 10 samples (a zero time step with movement is fast)
    t2 = np.arange(75.0)
    t2[-3:] = t2[-4]
    assert list(kb.tail(path, t2)) == list(range(65, 75))
    assert list(kb.tail(path, t2, use_sink_percentage=False, step_used_percentage=0.2)) == list(
        range(60, 75)
    )
    assert kb.tail(path, t2, use_sink_percentage=False).size == 75


def test_dynamos_own_fates_do_not_raise(fates, reference):
    """dynamo's stored fates (stitched: repeated times) on which dynamo's own rule raises."""
    a = ad.AnnData(obs=fates.obs[["clusters"]], obsm={"X_umap": fates.obsm["X_umap"]})
    ref = reference.uns["fate_umap"]
    a.uns["fate_umap"] = {k: ref[k] for k in ("prediction", "t", "init_cells")}
    assert (np.diff(np.asarray(ref["t"]), axis=1) == 0).any()
    got = dyn.pd.fate_bias(a, "clusters")
    assert got.shape == (50, 9) and np.isfinite(got["confidence"]).all()
    shares = got.drop(columns="confidence").dropna().to_numpy()
    assert len(shares) >= 40
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)


def test_store_equals_memory(fates, tmp_path):
    a = ad.AnnData(
        X=np.zeros((fates.n_obs, 1), dtype=np.float32),
        obs=fates.obs[["clusters"]],
        obsm={"X_umap": fates.obsm["X_umap"]},
        uns={"fate_umap": {k: fates.uns["fate_umap"][k] for k in ("prediction", "t")}},
    )
    a.uns["fate_umap"]["init_cells"] = np.asarray(fates.uns["fate_umap"]["init_cells"])
    a.write_h5ad(tmp_path / "f.h5ad")
    dyn.io.convert(tmp_path / "f.h5ad", tmp_path / "f.zarr", chunk_cells=500)
    stored = dyn.io.open(tmp_path / "f.zarr")
    got = dyn.pd.fate_bias(stored, "clusters", source_groups="Ductal")
    want = dyn.pd.fate_bias(a, "clusters", source_groups="Ductal")
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=0, atol=1e-12)


def test_clear_errors(fates):
    for kwargs, match in [
        ({"group": "nope"}, "obs"),
        ({"basis": "pca"}, "obsm"),
        ({"basis": None}, "basis="),
        ({"source_groups": ["Liver"]}, "source_groups"),
        ({"speed_percentile": 120}, "speed_percentile"),
        ({"use_sink_percentage": False, "step_used_percentage": 5}, "fraction"),
        ({"inds": [1000]}, "inds"),
        ({"metric": "no-such-metric"}, "metric"),
    ]:
        with pytest.raises(ValueError, match=match):
            dyn.pd.fate_bias(fates, **({"group": "clusters"} | kwargs))
    a = ad.AnnData(obs=fates.obs[["clusters"]], obsm={"X_umap": fates.obsm["X_umap"]})
    with pytest.raises(ValueError, match=r"dyn\.pd\.fate"):
        dyn.pd.fate_bias(a, "clusters")
    with pytest.warns(UserWarning, match="cores is ignored"):
        dyn.pd.fate_bias(fates, "clusters", cores=2, inds=[-1])
