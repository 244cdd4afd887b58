"""dynamo 1.5.3's ``Gillespie`` designs: keys, shapes and statistics of its runs.

Run with dynamo's interpreter (not dynadask's):

    nice -n 19 /work/dynvenv/bin/python benchmarks/gillespie_dynamo.py \
        tests/data/dynamo_gillespie.json [basic] [bifur] [oscillation] [differentiation]

(naming parts reruns only those, merged into the existing file). The oscillation and
differentiation designs take minutes each in dynamo (pure-Python paths).

Recorded: the AnnData keys of every design, per-time-point means and variances of the
'basic' design over many runs (dynamo simulates one trajectory per call), the number of
recorded events and the attractor levels of 'simulate_2bifurgenes', and the per-experiment
means of the labelled / unlabelled species and the protein of 'oscillation' and
'differentiation'. ``tests/test_sim_gillespie.py`` compares dynadask's output with them.
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

# the 'basic' design's parameters (two genes), shared with tests/test_sim_gillespie.py
BASIC = {
    "a": [0.5, 2.0],
    "b": [1.0, 0.5],
    "la": [0.4, 0.6],
    "aa": [20.0, 30.0],
    "ai": [1.0, 2.0],
    "si": [0.2, 0.1],
    "be": [1.0, 2.0],
    "ga": [0.3, 0.5],
}


def keys(pair):
    """The keys, dtypes and shapes of the (adata, adata_no_splicing) pair."""
    out = []
    for adata in pair:
        if adata is None:
            out.append(None)
            continue
        out.append(
            {
                "shape": list(adata.shape),
                "obs": {k: str(adata.obs[k].dtype) for k in adata.obs},
                "obs_index_name": adata.obs.index.name,
                "obs_names_head": adata.obs_names[:3].tolist(),
                "var": {k: str(adata.var[k].dtype) for k in adata.var},
                "var_index_name": adata.var.index.name,
                "var_names": adata.var_names.tolist(),
                "layers": sorted(adata.layers),
                "obsm": {k: list(np.shape(v)) for k, v in adata.obsm.items()},
                "X_dtype": str(adata.X.dtype),
                "X_type": type(adata.X).__name__,
            }
        )
    return out


def basic(runs=400):
    from dynamo.simulation import Gillespie

    first = None
    names = ["uu", "ul", "su", "sl", "unspliced", "spliced"]
    sums = {k: np.zeros((49, 2)) for k in names}
    sq = {k: np.zeros((49, 2)) for k in names}
    for _ in range(runs):
        pair = Gillespie(**BASIC, method="basic")
        if first is None:
            first = keys(pair)
        adata = pair[0]
        steps = adata.obs["Step"].to_numpy()
        for k in names:
            x = np.zeros((49, 2))
            x[steps - 1] = adata.layers[k].toarray()  # cells without RNA were dropped: zeros
            sums[k] += x
            sq[k] += x**2
    steps = list(range(1, 50))
    mean = {k: (sums[k] / runs).tolist() for k in names}
    var = {k: (sq[k] / runs - (sums[k] / runs) ** 2).tolist() for k in names}
    return {
        "keys": first,
        "params": BASIC,
        "runs": runs,
        "t_eval": np.linspace(0, 50, 50).tolist(),
        "steps": steps,
        "mean": mean,
        "var": var,
    }


def bifur(runs=100):
    from dynamo.simulation import Gillespie

    first, n_cells, hi, lo, mean_all = None, [], [], [], []
    for _ in range(runs):
        pair = Gillespie(method="simulate_2bifurgenes", t_span=[0, 50])
        if first is None:
            first = keys(pair)
        adata = pair[0]
        n_cells.append(adata.n_obs)
        # dynamo's 'unspliced' layer holds (u1, s1) and 'spliced' (u2, s2)
        un, sp = adata.layers["unspliced"].toarray(), adata.layers["spliced"].toarray()
        s1, s2 = un[:, 1], sp[:, 1]
        last = slice(adata.n_obs // 2, None)
        a, b = s1[last].mean(), s2[last].mean()
        hi.append(max(a, b))
        lo.append(min(a, b))
        mean_all.append([un[:, 0].mean(), sp[:, 0].mean(), s1.mean(), s2.mean()])
    return {
        "keys": first,
        "runs": runs,
        "n_cells": n_cells,
        "s_high_last_half": hi,
        "s_low_last_half": lo,
        "u1_u2_s1_s2_mean": mean_all,
    }


def labelling(method):
    from dynamo.simulation import Gillespie

    pair = Gillespie(method=method)
    adata, nosp = pair
    groups = {}
    for (exp, t), idx in adata.obs.groupby(["experiment_type", "time"]).indices.items():
        entry = {"n": int(len(idx))}
        for k in ("uu", "ul", "su", "sl"):
            x = adata.layers[k][idx].toarray()
            entry[k] = [x.mean(0).tolist(), x.var(0).tolist()]
        p = np.asarray(adata.obsm["protein"])[idx]
        entry["protein"] = [p.mean(0).tolist(), p.var(0).tolist()]
        groups[f"{exp}|{t}"] = entry
    return {"keys": keys(pair), "groups": groups}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    parts = sys.argv[2:] or ["basic", "bifur", "oscillation", "differentiation"]
    data = json.loads(out.read_text()) if out.exists() else {}
    for part in parts:
        if part == "basic":
            data[part] = basic()
        elif part == "bifur":
            data[part] = bifur()
        else:
            data[part] = labelling(part)
        out.write_text(json.dumps(data, indent=1))
        print("done", part, flush=True)
