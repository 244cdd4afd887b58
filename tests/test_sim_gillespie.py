"""dyn.sim.Gillespie: dynamo's keys, the designs' exact moments, and dynamo's own numbers.

``tests/data/dynamo_gillespie.json`` holds dynamo 1.5.3's keys and statistics of its runs
(``benchmarks/gillespie_dynamo.py`` makes it): 400 runs of 'basic' with the parameters
``BASIC`` below, 100 runs of 'simulate_2bifurgenes' and one run each of 'oscillation' and
'differentiation' (50 lineages, per experiment and time the mean and variance of every
species and of the protein).

dynamo's 'basic' names its layers one place off (its ``uu`` holds the labelled unspliced
RNA, ``ul`` the unlabelled, ``su`` the labelled spliced, ``sl`` the unlabelled spliced);
the comparisons below read dynamo's numbers through ``DYNAMO_BASIC_NAME``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.linalg import expm

import dynadask as dyn
from dynadask._core.errors import InputError, MissingKeyError

DYNAMO = json.loads((Path(__file__).parent / "data" / "dynamo_gillespie.json").read_text())
BASIC = DYNAMO["basic"]["params"]
DYNAMO_BASIC_NAME = {"ul": "uu", "uu": "ul", "sl": "su", "su": "sl"}
SPECIES = ("ul", "uu", "sl", "su")  # columns 1..4 of the state [P, ul, uu, sl, su]


@pytest.fixture(scope="module")
def basic():
    return dyn.sim.Gillespie(**BASIC, method="basic", n_traj=400, batch=100, seed=1)[0]


@pytest.fixture(scope="module")
def labelling():
    return {
        m: dyn.sim.Gillespie(method=m, n_lineages=50, seed=2)
        for m in ("oscillation", "differentiation")
    }


def _dense(adata, key, n_traj, steps):
    """Cells x genes of a layer (or obsm 'promoter') with the dropped empty cells as zeros."""
    out = np.zeros((n_traj * steps, adata.n_vars))
    idx = adata.obs["Trajectory"].to_numpy() * steps + adata.obs["Step"].to_numpy()
    values = adata.obsm[key] if key == "promoter" else adata.layers[key].toarray()
    out[idx] = values
    return out.reshape(n_traj, steps, adata.n_vars)


def exact_means(g, t):
    """Means of [P, ul, uu, sl, su] of gene g from zero (linear ODEs of the first moments)."""
    names = ("a", "b", "la", "aa", "ai", "si", "be", "ga")
    a, b, la, aa, ai, si, be, ga = (BASIC[k][g] for k in names)
    m = np.zeros((6, 6))  # last row/column: the constant 1
    m[0, 0], m[0, 5] = -(a + b), b
    m[1, 0], m[1, 5], m[1, 1] = la * (aa - ai), la * ai, -be
    m[2, 0], m[2, 5], m[2, 2] = (1 - la) * (aa - ai), (1 - la) * ai, -be
    m[3, 1], m[3, 3] = (1 - si) * be, -ga
    m[4, 1], m[4, 2], m[4, 4] = si * be, be, -ga
    x0 = np.eye(6)[5]
    return np.array([expm(m * ti) @ x0 for ti in t])[:, :5]


def _keys(adata):
    return {
        "obs": {k: str(adata.obs[k].dtype) for k in adata.obs},
        "obs_index_name": adata.obs.index.name,
        "var": sorted(adata.var),
        "var_index_name": adata.var.index.name,
        "var_names": adata.var_names.tolist(),
        "layers": sorted(adata.layers),
        "X_dtype": str(adata.X.dtype),
    }


def _dynamo_keys(ref):
    return {
        "obs": ref["obs"],
        "obs_index_name": ref["obs_index_name"],
        "var": sorted(ref["var"]),
        "var_index_name": ref["var_index_name"],
        "var_names": ref["var_names"],
        "layers": ref["layers"],
        "X_dtype": ref["X_dtype"],
    }


def test_keys_are_dynamos(basic, labelling):
    ref = DYNAMO["basic"]["keys"]
    small, none = dyn.sim.Gillespie(**BASIC, method="basic")
    assert none is None and ref[1] is None
    assert _keys(small) == _dynamo_keys(ref[0])
    assert small.obs_names[0] == "traj_0_step_1"  # t = 0 has no RNA: dropped, as dynamo does
    assert set(small.obsm) == {"promoter"} and small.obsm["promoter"].shape == small.shape
    bif, none = dyn.sim.Gillespie(method="simulate_2bifurgenes")
    ref = DYNAMO["bifur"]["keys"]
    assert none is None and _keys(bif) == _dynamo_keys(ref[0])
    assert bif.obs_names[0] == ref[0]["obs_names_head"][0] == "traj_0_step_0"
    assert bif.var["true_beta"].dtype == np.int64  # dynamo's integer truth
    for method, pair in labelling.items():
        ref = DYNAMO[method]["keys"]
        for ours, theirs in zip(pair, ref, strict=True):
            assert _keys(ours) == _dynamo_keys(theirs)
            assert list(ours.shape) == theirs["shape"] == [1900, 2]
            assert {k: list(v.shape) for k, v in ours.obsm.items()} == theirs["obsm"]
            assert [ours.var[k].dtype.kind for k in ours.var] == ["f"] * 4
        counts = pair[0].obs["experiment_type"].value_counts().to_dict()
        assert counts == {
            "kin_t_5": 250, "kin_t_40": 250, "kin_t_200": 250, "kin_t_300": 250,
            "one_shot": 400, "deg_beign": 250, "deg_end": 250,
        }  # fmt: skip
        assert pair[0].obs_names.is_unique
        np.testing.assert_array_equal(
            pair[1].layers["total"].toarray(), pair[0].X.toarray()
        )  # fmt: skip


def test_basic_means_follow_the_exact_moments(basic):
    t_eval = DYNAMO["basic"]["t_eval"]
    for g in range(2):
        exact = exact_means(g, t_eval)
        for j, key in enumerate(SPECIES, start=1):
            x = _dense(basic, key, 400, 50)[:, :, g]
            se = np.sqrt(x.var(0) / 400) + 1e-12
            z = (x.mean(0) - exact[:, j])[1:] / se[1:]
            assert np.abs(z).max() < 4.5, (g, key, np.abs(z).max())
        # the steady state: gene 0 spends b / (a + b) = 2/3 of the time with its promoter on
        p_on = BASIC["b"][g] / (BASIC["a"][g] + BASIC["b"][g])
        on = _dense(basic, "promoter", 400, 50)[:, 25:, g].mean()
        assert abs(on - p_on) < 0.03, (on, p_on)
    # the active time up to t = 50 from an inactive start, p T - p (1 - e^{-kT}) / k
    a, b = np.asarray(BASIC["a"]), np.asarray(BASIC["b"])
    k, p = a + b, b / (a + b)
    expected = p * 50 - p * (1 - np.exp(-k * 50)) / k  # 32.889, 9.920
    on_time = basic.uns["gillespie"]["promoter_on_time"]
    se = on_time.std(0) / np.sqrt(len(on_time))
    assert np.all(np.abs(on_time.mean(0) - expected) < 4 * se), (on_time.mean(0), expected)


def test_basic_matches_dynamos_runs(basic):
    ref = DYNAMO["basic"]
    steady = slice(25, 50)  # record times 25.5 .. 50: both designs at their steady state
    for key in SPECIES:
        ours = _dense(basic, key, 400, 50)[:, steady]
        theirs_mean = np.asarray(ref["mean"][DYNAMO_BASIC_NAME[key]])[steady.start - 1 :]
        theirs_var = np.asarray(ref["var"][DYNAMO_BASIC_NAME[key]])[steady.start - 1 :]
        # dynamo reads its paths by linear interpolation cut to integers: about 0.3 lower
        np.testing.assert_allclose(ours.mean((0, 1)), theirs_mean.mean(0), rtol=0.05, atol=0.5)
        np.testing.assert_allclose(ours.var(0).mean(0), theirs_var.mean(0), rtol=0.15)
    # gene 0 at steady state: ul 5.47, uu 8.20, sl 14.58, su 30.98 (exact); dynamo's runs
    # average 5.34, 7.94, 14.35, 30.50 over the same record times (dynadask: 5.51, 8.13, 14.71,
    # 30.87 with seed 1)


def test_bifurcation_matches_dynamos_runs():
    adata, _ = dyn.sim.Gillespie(method="simulate_2bifurgenes", n_traj=30, seed=3)
    ref = DYNAMO["bifur"]
    n_cells, high, low = [], [], []
    for _, part in adata.obs.groupby("Trajectory").indices.items():
        s = adata.layers["spliced"][part].toarray()
        n_cells.append(len(part))
        level = s[len(part) // 2 :].mean(0)
        high.append(level.max())
        low.append(level.min())
    for ours, key in ((n_cells, "n_cells"), (high, "s_high_last_half"), (low, "s_low_last_half")):
        theirs = np.asarray(ref[key])
        se = np.sqrt(np.var(ours) / len(ours) + theirs.var() / len(theirs))
        assert abs(np.mean(ours) - theirs.mean()) < 4 * se, (key, np.mean(ours), theirs.mean())
    # dynamo (100 runs): 5911 cells a path; spliced RNA at 37.0 (chosen gene) and 3.6
    assert 5500 < np.mean(n_cells) < 6250 and 33 < np.mean(high) < 40 and np.mean(low) < 5


@pytest.mark.parametrize("method", ["oscillation", "differentiation"])
def test_labelling_designs_match_dynamos_run(labelling, method):
    adata = labelling[method][0]
    groups = DYNAMO[method]["groups"]
    z_all = []
    for (exp, t), idx in adata.obs.groupby(["experiment_type", "time"]).indices.items():
        ref = groups[f"{exp}|{t}"]
        for key in ("uu", "ul", "su", "sl", "protein"):
            x = adata.obsm[key][idx] if key == "protein" else adata.layers[key][idx].toarray()
            theirs_mean, theirs_var = (np.asarray(v) for v in ref[key])
            se = np.sqrt(x.var(0) / len(idx) + theirs_var / ref["n"]) + 1e-9
            z_all.append(np.abs(x.mean(0) - theirs_mean) / se)
    z_all = np.concatenate(z_all)
    assert len(z_all) == 38 * 5 * 2
    assert z_all.max() < 5, z_all.max()
    assert np.mean(z_all > 3) < 0.03


@pytest.mark.parametrize("method", ["oscillation", "differentiation"])
def test_labelled_rna_starts_at_zero_and_decays_at_beta(labelling, method):
    adata = labelling[method][0]
    obs, beta = adata.obs, adata.var["true_beta"].to_numpy()
    ul = adata.layers["ul"].toarray()
    for exp in ("kin_t_5", "kin_t_40", "kin_t_200", "kin_t_300"):
        first = ((obs["experiment_type"] == exp) & (obs["time"] == 0)).to_numpy()
        assert first.sum() == 50
        assert ul[first].sum() == 0 and adata.layers["sl"][first].sum() == 0
    for exp in ("deg_beign", "deg_end"):
        at = {t: ((obs["experiment_type"] == exp) & (obs["time"] == t)).to_numpy() for t in (0, 4)}
        # during the chase nothing makes labelled unspliced RNA: each molecule survives
        # four time units with probability exp(-4 beta)
        start = ul[at[0]].sum(0)
        keep = np.exp(-4 * beta)
        se = np.sqrt(start * keep * (1 - keep))
        assert np.all(np.abs(ul[at[4]].sum(0) - start * keep) < 4 * se)


def test_seeded_and_independent_of_batching():
    one = dyn.sim.Gillespie(**BASIC, method="basic", n_traj=7, batch=2, seed=5)[0]
    two = dyn.sim.Gillespie(**BASIC, method="basic", n_traj=7, batch=7, seed=5)[0]
    other = dyn.sim.Gillespie(**BASIC, method="basic", n_traj=7, seed=6)[0]
    np.testing.assert_array_equal(one.X.toarray(), two.X.toarray())
    assert one.n_obs != other.n_obs or (one.X != other.X).nnz > 0
    a = dyn.sim.Gillespie(method="oscillation", n_lineages=3, batch=1, seed=5)[0]
    b = dyn.sim.Gillespie(method="oscillation", n_lineages=3, batch=3, seed=5)[0]
    np.testing.assert_array_equal(a.obsm["protein"], b.obsm["protein"])


def test_written_into_a_store(tmp_path):
    adata, nosp = dyn.sim.Gillespie(method="oscillation", n_lineages=4, seed=7)
    basic, _ = dyn.sim.Gillespie(**BASIC, method="basic", n_traj=2, C0=np.ones(5), seed=7)
    for name, memory in (("osc", adata), ("nosp", nosp), ("basic", basic)):
        memory.write_h5ad(tmp_path / f"{name}.h5ad")
        store = dyn.io.open(dyn.io.convert(tmp_path / f"{name}.h5ad", tmp_path / f"{name}.zarr"))
        assert store.obs_names.tolist() == memory.obs_names.tolist()
        for key in memory.layers:
            stored = store.layers[key].compute()
            np.testing.assert_array_equal(stored.toarray(), memory.layers[key].toarray())
        for key in memory.obsm:
            np.testing.assert_array_equal(np.asarray(store.obsm[key]), memory.obsm[key])
    # a started promoter (C0 all ones: active, one molecule of each RNA) is on at t = 0
    assert basic.obs_names[0] == "traj_0_step_0"
    np.testing.assert_array_equal(basic.obsm["promoter"][0], [1, 1])


def test_errors_name_the_fix():
    with pytest.raises(InputError, match="unknown method"):
        dyn.sim.Gillespie(method="toggle")
    with pytest.raises(MissingKeyError, match="needs a, b, la"):
        dyn.sim.Gillespie(a=[1.0], b=[1.0], method="basic")
    bad = {**BASIC, "la": [0.4, 1.5]}
    with pytest.raises(InputError, match="la is a share"):
        dyn.sim.Gillespie(**bad, method="basic")
    with pytest.raises(InputError, match="C0"):
        dyn.sim.Gillespie(**BASIC, C0=np.zeros((4, 2)), method="basic")
    with pytest.raises(InputError, match="one per gene"):
        dyn.sim.Gillespie(**{**BASIC, "be": [1.0, 2.0, 3.0]}, method="basic")


def test_labelling_and_promoter_rules_are_exact():
    rates = {"aa": [20.0], "ai": [2.0], "be": [1.0], "ga": [0.5]}
    run = dict(method="basic", n_traj=3, seed=8)
    all_labelled = dyn.sim.Gillespie(a=[1.0], b=[1.0], la=[1.0], si=[0.0], **rates, **run)[0]
    assert all_labelled.layers["uu"].nnz == all_labelled.layers["su"].nnz == 0
    assert all_labelled.layers["ul"].sum() > 0 and all_labelled.layers["sl"].sum() > 0
    none_labelled = dyn.sim.Gillespie(a=[1.0], b=[1.0], la=[0.0], si=[0.5], **rates, **run)[0]
    assert none_labelled.layers["ul"].nnz == none_labelled.layers["sl"].nnz == 0
    # si = 1: every spliced labelled molecule loses its label
    lost = dyn.sim.Gillespie(a=[1.0], b=[1.0], la=[0.7], si=[1.0], **rates, **run)[0]
    assert lost.layers["sl"].nnz == 0 and lost.layers["ul"].sum() > 0
    # a = 0 and an active start: the promoter never turns off; b = 0 from inactive: never on
    on = np.array([1, 0, 0, 0, 0])
    kept = dyn.sim.Gillespie(a=[0.0], b=[5.0], la=[0.5], si=[0.0], C0=on, **rates, **run)[0]
    assert kept.obsm["promoter"].min() == 1
    off = dyn.sim.Gillespie(a=[5.0], b=[0.0], la=[0.5], si=[0.0], **rates, **{**run, "n_traj": 30})[
        0
    ]
    assert off.obsm["promoter"].max() == 0
    # inactive only: transcription at ai = 2, spliced RNA settles at ai / ga = 4
    settled = off.obs["Step"].to_numpy() > 20
    assert 3.4 < off.layers["spliced"].toarray()[settled].mean() < 4.6
