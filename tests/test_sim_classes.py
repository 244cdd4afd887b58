"""dyn.sim's simulator classes: dynamo's keys, the motifs' known truth, dynamo's numbers.

``tests/data/dynamo_sim_classes.json`` holds dynamo 1.5.3's keys and statistics of its paths
on the same settings (``benchmarks/sim_classes_dynamo.py`` makes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import dynadask as dyn

DYNAMO = json.loads((Path(__file__).parent / "data" / "dynamo_sim_classes.json").read_text())
CLASSES = {
    "bif": (dyn.sim.BifurcationTwoGenes, dyn.sim.bifur2genes_params),
    "bif_splicing": (dyn.sim.BifurcationTwoGenes, dyn.sim.bifur2genes_splicing_params),
    "osc": (dyn.sim.OscillationTwoGenes, dyn.sim.osc2genes_params),
    "osc_splicing": (dyn.sim.OscillationTwoGenes, dyn.sim.osc2genes_splicing_params),
    "neuro": (dyn.sim.Neurongenesis, dyn.sim.neurongenesis_params),
}


def _small(name, seed=0):
    cls, params = CLASSES[name]
    sim = cls(params, n_C0s=2, seed=seed)
    sim.simulate([0, 5 if name == "neuro" else 20], n_cells=200)
    return sim


def _keys(adata):
    return {
        "shape": list(adata.shape),
        "obs": sorted(adata.obs),
        "obs_index_name": adata.obs.index.name,
        "var": sorted(adata.var),
        "var_index_name": adata.var.index.name,
        "var_names": adata.var_names.tolist(),
        "layers": sorted(adata.layers),
    }


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_anndata_has_dynamos_keys_and_parameters(name):
    sim = _small(name)
    adata = sim.generate_anndata()
    ref = DYNAMO[name]["keys"]
    assert _keys(adata) == {
        **{k: ref[k] for k in ("shape", "obs_index_name", "var_index_name", "var_names")},
        "obs": sorted(ref["obs"]),
        "var": sorted(ref["var"]),
        "layers": ref["layers"],
    }
    assert list(adata.var) == list(ref["var"])  # dynamo's column order
    for key, value in DYNAMO[name]["param_dict"].items():
        np.testing.assert_allclose(sim.param_dict[key], value, rtol=1e-12)
        assert str(adata.var[key].dtype) == ref["var"][key]
    # every cell is a recorded state of its path: X is the sum of the species
    species = [adata.layers[k] for k in ("unspliced", "spliced") if k in adata.layers]
    np.testing.assert_array_equal(adata.X, sum(species) if species else adata.layers["total"])
    assert np.all(np.diff(adata.obs["time"].to_numpy()[adata.obs["trajectory"] == 0]) >= 0)


@pytest.mark.parametrize("name", ["bif", "bif_splicing"])
def test_labelling_writes_dynamos_keys(name):
    sim = _small(name)
    kin = dyn.sim.KinLabelingSimulator(sim)
    kin.simulate(label_time=2.0)
    adata = kin.write_to_anndata(sim.generate_anndata())
    ref = DYNAMO[f"{name}_kin"]["keys"]
    assert sorted(adata.layers) == ref["layers"]
    assert sorted(adata.obs) == sorted(ref["obs"])
    assert np.all(adata.obs["actual_label_time"] <= 2.0)
    np.testing.assert_array_equal(adata.obs["label_time"], 2.0)


def test_velocities_are_the_models():
    sim = _small("bif_splicing")
    adata = sim.generate_anndata()
    p = sim.param_dict
    u, s = adata.layers["unspliced"], adata.layers["spliced"]
    np.testing.assert_allclose(adata.layers["velocity_S"], p["beta"] * u - p["gamma"] * s)
    # velocity_T: the reduced model alpha(s) - gamma s, written out from dynamo's Hill terms
    a, b, S, K, m, n = (p[k] for k in ("a", "b", "S", "K", "m", "n"))  # noqa: N806
    act = a * s**m / (S**m + s**m)
    inh = b * K**n / (K**n + s[:, ::-1] ** n)
    np.testing.assert_allclose(adata.layers["velocity_T"], act + inh - p["gamma"] * s, rtol=1e-9)


@pytest.fixture(scope="module")
def toggle():
    """The bifurcation model's paths to t = 150, 3,000 cells drawn (as the fixture's)."""
    sim = dyn.sim.BifurcationTwoGenes(dyn.sim.bifur2genes_params, n_C0s=10)
    sim.simulate([0, 150], n_cells=3000)
    return sim


def test_bifurcation_settles_at_the_stable_fixed_points(toggle):
    late = toggle.C[toggle.T > 100]
    hi, lo = np.median(late.max(axis=1)), np.median(late.min(axis=1))
    ref = DYNAMO["bif_attractor"]
    # the noise-free model's asymmetric stable points (one gene on, the other off)
    points, stable = dyn.sim.fixed_points("bifurcation", dyn.sim.bifur2genes_params)
    asym = points[stable & (np.abs(points[:, 0] - points[:, 1]) > 10)]
    assert len(asym) == 2
    np.testing.assert_allclose(hi, asym.max(), rtol=0.1)
    np.testing.assert_allclose(lo, asym.min(axis=1).max(), atol=5)
    np.testing.assert_allclose([hi, lo], [ref["high_median"], ref["low_median"]], rtol=0.1, atol=3)


def _period(paths, dt=0.25):
    # lag of the first peak of the paths' mean autocorrelation (last two thirds of each)
    acs = []
    for t, x in paths:
        grid = np.arange(t[0] + (t[-1] - t[0]) / 3, t[-1], dt)
        y = np.interp(grid, t, x)
        y = y - y.mean()
        acs.append(np.correlate(y, y, "full")[len(y) - 1 :] / (y @ y))
    ac = np.mean([a[: min(map(len, acs))] for a in acs], axis=0)
    first = int(np.argmax(ac < 0))
    return float((first + np.argmax(ac[first : 4 * first])) * dt)


def test_oscillation_period_and_level_match_dynamo():
    sim = dyn.sim.OscillationTwoGenes(dyn.sim.osc2genes_params, n_C0s=7)
    sim.simulate([0, 300])
    got = _period([(sim.T[sim.traj_id == i], sim.C[sim.traj_id == i, 0]) for i in range(8)])
    # molecule noise drives cycles wider and slower than the noise-free ones (dynamo's paths
    # too): the period is compared with dynamo's, the level with the noise-free cycle's
    np.testing.assert_allclose(got, DYNAMO["osc_period"]["autocorrelation_peak"], rtol=0.25)
    level = sim.C[sim.T > 100].mean(axis=0)
    np.testing.assert_allclose(level, DYNAMO["osc_level"]["mean"], rtol=0.1)
    field = sim.network.as_dict()
    ode = solve_ivp(
        lambda t, x: dyn.sim.vector_field(x[None], field)[0], (0, 300), [70.0, 70.0],
        max_step=0.05,
    )  # fmt: skip
    cycle = ode.y[:, ode.t > 100]
    assert 12 < _period([(ode.t, ode.y[0])]) < 16
    assert np.all((cycle.min(axis=1) < level) & (level < cycle.max(axis=1) + 5))


def test_labelled_rna_matches_its_expectation(toggle):
    kin = dyn.sim.KinLabelingSimulator(toggle)
    gamma = toggle.param_dict["gamma"]
    for t in (1.0, 4.0):
        kin.simulate(label_time=t)
        expect = kin.alpha * (1 - np.exp(-gamma * t)) / gamma
        ratio = kin.Cl.sum() / expect.sum()
        np.testing.assert_allclose(ratio, 1.0, atol=0.03)
        assert np.all(kin.Tl <= t)
        # dynamo keeps the first reaction after the labelling time (its loop tests the time
        # before the step): about one molecule more per cell, as its numbers show
        extra = (DYNAMO["kin_new_over_expected"][str(t)] - ratio) * expect.sum() / len(expect)
        assert 0.3 < extra < 1.1


def test_seeded_and_reproducible():
    a, b, c = (_small("osc", seed=s).generate_anndata() for s in (3, 3, 4))
    np.testing.assert_array_equal(a.X, b.X)
    assert not np.array_equal(a.X, c.X)


def test_labelling_into_a_store(tmp_path):
    sim = _small("bif_splicing")
    memory = sim.generate_anndata()
    memory.write_h5ad(tmp_path / "sim.h5ad")
    store = dyn.io.open(dyn.io.convert(tmp_path / "sim.h5ad", tmp_path / "sim.zarr"))
    for target in (memory, store):
        kin = dyn.sim.KinLabelingSimulator(sim, seed=1)
        kin.simulate(label_time=np.linspace(0.5, 3, memory.n_obs))
        kin.write_to_anndata(target)
    again = dyn.io.open(tmp_path / "sim.zarr")
    for key in ("ul", "sl"):
        np.testing.assert_array_equal(np.asarray(again.layers[key]), memory.layers[key])
    np.testing.assert_array_equal(again.obs["label_time"], memory.obs["label_time"])


def test_errors_name_the_fix():
    params = dict(dyn.sim.bifur2genes_params)
    del params["S"]
    with pytest.raises(KeyError, match="bifur2genes_params"):
        dyn.sim.BifurcationTwoGenes(params)
    sim = dyn.sim.OscillationTwoGenes(dyn.sim.osc2genes_params, n_C0s=0)
    with pytest.raises(KeyError, match="simulate"):
        dyn.sim.KinLabelingSimulator(sim)
    with pytest.raises(ValueError, match="C0s"):
        dyn.sim.OscillationTwoGenes(dyn.sim.osc2genes_params, C0s=np.ones((2, 3)))
    sim.simulate([0, 2], n_cells=10)
    kin = dyn.sim.KinLabelingSimulator(sim)
    kin.simulate(1.0)
    with pytest.raises(ValueError, match="generate_anndata"):
        kin.write_to_anndata(_small("osc").generate_anndata())
