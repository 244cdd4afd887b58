"""dynamo 1.5.3's simulator classes on small settings: keys, shapes and summary numbers.

Run with dynamo's interpreter (not dynadask's):

    nice -n 19 /work/dynvenv/bin/python benchmarks/sim_classes_dynamo.py \
        tests/data/dynamo_sim_classes.json [keys] [toggle] [osc]

(naming parts reruns only those, merged into the existing file).

It writes the AnnData keys and dtypes each class returns, and statistics of its stochastic
paths that a correct simulator of the same model reproduces: the bifurcation's attractor
levels, the oscillation's period, the labelled RNA against its expectation. The tests of
``dyn.sim.BifurcationTwoGenes`` and the other classes compare dynadask's output with them.
"""

import json
import sys
from pathlib import Path

import numpy as np


def keys(adata):
    """The AnnData's keys, dtypes and shape."""
    return {
        "shape": list(adata.shape),
        "obs": {k: str(adata.obs[k].dtype) for k in adata.obs},
        "obs_index_name": adata.obs.index.name,
        "var": {k: str(adata.var[k].dtype) for k in adata.var},
        "var_index_name": adata.var.index.name,
        "var_names": adata.var_names.tolist(),
        "layers": sorted(adata.layers),
        "X_dtype": str(adata.X.dtype),
    }


def period(paths, dt=0.25):
    """Lag of the first peak of the paths' mean autocorrelation (the last two thirds of each)."""
    acs = []
    for t, x in paths:
        grid = np.arange(t[0] + (t[-1] - t[0]) / 3, t[-1], dt)
        y = np.interp(grid, t, x)
        y = y - y.mean()
        acs.append(np.correlate(y, y, "full")[len(y) - 1 :] / (y @ y))
    ac = np.mean([a[: min(map(len, acs))] for a in acs], axis=0)
    first = int(np.argmax(ac < 0))
    return float((first + np.argmax(ac[first : 4 * first])) * dt)


def main(out, parts):
    import dynamo as dyn

    np.random.seed(0)  # noqa: NPY002 - dynamo's cell draw reads numpy's global state
    res = json.loads(Path(out).read_text()) if parts else {}
    if not parts or "keys" in parts:
        keys_part(dyn, res)
        dump(res, out)
    if not parts or "toggle" in parts:
        toggle_part(dyn, res)
        dump(res, out)
    if not parts or "osc" in parts:
        osc_part(dyn, res)
        dump(res, out)


def keys_part(dyn, res):
    """Each class's AnnData keys on a small run."""
    sims = {
        "bif": (dyn.sim.BifurcationTwoGenes, dyn.sim.bifur2genes_params),
        "bif_splicing": (dyn.sim.BifurcationTwoGenes, dyn.sim.bifur2genes_splicing_params),
        "osc": (dyn.sim.OscillationTwoGenes, dyn.sim.osc2genes_params),
        "osc_splicing": (dyn.sim.OscillationTwoGenes, dyn.sim.osc2genes_splicing_params),
        "neuro": (dyn.sim.Neurongenesis, dyn.sim.neurongenesis_params),
    }
    for name, (cls, params) in sims.items():
        sim = cls(params, n_C0s=2)
        sim.simulate([0, 5 if name == "neuro" else 20], n_cells=200)
        adata = sim.generate_anndata()
        res[name] = {"keys": keys(adata), "n_C0s_2_trajectories": int(sim.C0s.shape[0])}
        res[name]["param_dict"] = {k: np.asarray(v).tolist() for k, v in sim.param_dict.items()}
        if name.startswith("bif"):
            kin = dyn.sim.KinLabelingSimulator(sim)
            kin.simulate(label_time=2.0)
            res[name + "_kin"] = {"keys": keys(kin.write_to_anndata(adata.copy()))}


def toggle_part(dyn, res):
    """Attractor levels of the bifurcation; labelled RNA against its expectation."""
    # bifurcation: late cells sit at the attractors (one gene high, the other low)
    sim = dyn.sim.BifurcationTwoGenes(dyn.sim.bifur2genes_params, n_C0s=10)
    sim.simulate([0, 150], n_cells=3000)
    late = sim.C[sim.T > 100]
    hi, lo = late.max(axis=1), late.min(axis=1)
    res["bif_attractor"] = {
        "high_median": float(np.median(hi)),
        "low_median": float(np.median(lo)),
        "n_cells": int(len(late)),
    }
    # labelling: new RNA against alpha (1 - exp(-gamma t)) / gamma at each cell's rate
    kin = dyn.sim.KinLabelingSimulator(sim)
    gamma = sim.param_dict["gamma"]
    ratios = {}
    for t in (1.0, 4.0):
        kin.simulate(label_time=t)
        expect = kin.alpha * (1 - np.exp(-gamma * t)) / gamma
        ratios[str(t)] = float(kin.Cl.sum() / expect.sum())
    res["kin_new_over_expected"] = ratios


def osc_part(dyn, res):
    """The oscillator's period."""
    # oscillation: period of gene 1's paths
    sim = dyn.sim.OscillationTwoGenes(dyn.sim.osc2genes_params, n_C0s=3)
    sim.simulate([0, 300])
    paths = [(sim.T[sim.traj_id == i], sim.C[sim.traj_id == i, 0]) for i in range(4)]
    res["osc_period"] = {"autocorrelation_peak": period(paths), "n_paths": 4}
    res["osc_level"] = {"mean": sim.C[sim.T > 100].mean(axis=0).tolist()}


def dump(res, out):
    """Write what is measured so far."""
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], set(sys.argv[2:]))
